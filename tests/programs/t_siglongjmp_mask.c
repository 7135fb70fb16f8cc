/*
 * t_siglongjmp_mask.c — sigsetjmp(env, 1) saves, and siglongjmp/longjmp
 * restore, the calling thread's own signal mask.
 *   - a thread blocking SIGUSR2 (the others do not) jumps out of a SIGUSR1
 *     handler run by raise(): its mask is again exactly {SIGUSR2}
 *     (SIGUSR1 no longer blocked as it was in the handler), three times;
 *   - a mask change between sigsetjmp and longjmp is undone, also with
 *     setjmp() the function (BSD: it saves the mask; the macro does not);
 *   - a thread jumps out of a handler the kernel ran while it computed
 *     (a SIGRTMIN sent to the process, which only it accepts): SIGRTMIN is
 *     unblocked again, and a second one sent to the process reaches it;
 *   - the main thread does the same.
 */
#include "signal_support.h"

#include <setjmp.h>

static sigjmp_buf g_env;
static atomic_int g_hits;

static void jump_out(int sig)
{
    (void)sig;
    atomic_fetch_add(&g_hits, 1);
    siglongjmp(g_env, 1);
}

static sigset_t mask_now(void)
{
    sigset_t m;
    CHECK(pthread_sigmask(SIG_BLOCK, NULL, &m) == 0, "pthread_sigmask query");
    return m;
}

static void expect_exactly(int blocked, const int *sigs, int n, const char *what)
{
    sigset_t m = mask_now();
    for (int i = 0; i < n; ++i) {
        int want = sigs[i] == blocked;
        CHECK(sigismember(&m, sigs[i]) == want, "%s: signal %d blocked %d, want %d", what, sigs[i],
              sigismember(&m, sigs[i]), want);
    }
}

static const int k_sigs[] = {SIGUSR1, SIGUSR2, SIGWINCH};

static void raise_and_jump(const char *who)
{
    for (volatile int i = 0; i < 3; i = i + 1) {
        int hits = atomic_load(&g_hits);
        if (sigsetjmp(g_env, 1) == 0) {
            raise(SIGUSR1);
            CHECK(0, "%s: the handler did not jump out", who);
        }
        CHECK(atomic_load(&g_hits) == hits + 1, "%s: the handler ran %d times", who, atomic_load(&g_hits) - hits);
        expect_exactly(SIGUSR2, k_sigs, 3, who);
    }
    set_phase("a mask change between sigsetjmp and longjmp is undone");
    volatile int jumped = 0;
    if (sigsetjmp(g_env, 1) == 0) {
        block(SIGWINCH);
        longjmp(g_env, 1);
    }
    jumped = 1;
    CHECK(jumped, "longjmp");
    expect_exactly(SIGUSR2, k_sigs, 3, "after longjmp");

    set_phase("setjmp the function (not the macro, which is _setjmp) saves the mask too");
    jumped = 0;
    static jmp_buf fresh; /* never saved by sigsetjmp */
    if ((setjmp)(fresh) == 0) {
        block(SIGWINCH);
        longjmp(fresh, 1);
    }
    jumped = 1;
    CHECK(jumped, "longjmp");
    expect_exactly(SIGUSR2, k_sigs, 3, "after longjmp to setjmp()");
}

static void *jumper(void *arg)
{
    (void)arg;
    block(SIGUSR2);
    raise_and_jump("a thread");
    return NULL;
}

/* The only thread accepting SIGRTMIN, jumping out of its handler; it
 * spins in round N when g_spinning is N + 1. */
static atomic_int g_spinning;
static sigjmp_buf g_rt_env;

static void rt_jump_out(int sig)
{
    (void)sig;
    atomic_fetch_add(&g_hits, 1);
    siglongjmp(g_rt_env, 1);
}

static void *computing_jumper(void *arg)
{
    (void)arg;
    unblock(SIGRTMIN);
    for (volatile int round = 0; round < 2; round = round + 1) {
        int hits = atomic_load(&g_hits);
        if (sigsetjmp(g_rt_env, 1) == 0) {
            int64_t until = now_ns() + 10000000000LL;
            atomic_store(&g_spinning, round + 1);
            while (now_ns() < until) {
            }
            CHECK(0, "round %d: SIGRTMIN sent to the process was not handled within 10 s", round);
        }
        CHECK(atomic_load(&g_hits) == hits + 1, "round %d: the handler ran %d times", round,
              atomic_load(&g_hits) - hits);
        sigset_t m = mask_now();
        CHECK(!sigismember(&m, SIGRTMIN), "round %d: SIGRTMIN still blocked after jumping out", round);
    }
    return NULL;
}

int main(void)
{
    sig_watchdog(60);
    on(SIGUSR1, jump_out, 0);
    on(SIGRTMIN, rt_jump_out, 0);
    block(SIGRTMIN);
    ticker_start();

    set_phase("a thread jumps out of a handler");
    join_within(spawn(jumper, NULL), 10000, "jumper");

    set_phase("a thread jumps out of a handler the kernel ran");
    pthread_t t = spawn(computing_jumper, NULL);
    for (int round = 0; round < 2; ++round) {
        while (atomic_load(&g_spinning) != round + 1) sleep_ms(1);
        CHECK(kill(getpid(), SIGRTMIN) == 0, "kill");
    }
    join_within(t, 30000, "computing_jumper");

    set_phase("the main thread jumps out of a handler");
    block(SIGUSR2);
    raise_and_jump("the main thread");
    ticker_stop();
    printf("ok\n");
    return 0;
}
