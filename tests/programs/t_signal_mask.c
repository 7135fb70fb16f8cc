/*
 * t_signal_mask.c — signal dispositions and per-thread masks.
 *   - sigaction reports back exactly the action the program set (handler,
 *     flags, sa_mask); signal() returns the previous handler; SA_RESETHAND
 *     resets the disposition once the handler ran; the handler runs with
 *     the thread's mask | sa_mask | the signal (and not the signal with
 *     SA_NODEFER).
 *   - pthread_sigmask in one thread changes only that thread's mask; a
 *     thread starts with its creator's mask.
 *   - pthread_kill to a thread that blocks the signal leaves it pending for
 *     that thread (sigpending shows it, the handler does not run); when the
 *     thread unblocks it, the handler runs before pthread_sigmask returns.
 *   - pthread_kill to a thread reaches that thread and no other; raise() in
 *     a thread runs the handler in it before raise returns.
 *   - a vfork child resetting a handler (as Python's subprocess does before
 *     exec) leaves the parent's disposition alone.
 */
#include "signal_support.h"

#include <sys/wait.h>

static atomic_int g_hits;
static pthread_t g_handler_thread;
static sigset_t g_mask_in_handler;

static void on_usr1(int sig)
{
    (void)sig;
    g_handler_thread = pthread_self();
    pthread_sigmask(SIG_BLOCK, NULL, &g_mask_in_handler);
    atomic_fetch_add(&g_hits, 1);
}

static void on_usr1_info(int sig, siginfo_t *info, void *uc)
{
    (void)info;
    (void)uc;
    on_usr1(sig);
}

static int blocked(int sig)
{
    sigset_t m;
    CHECK(pthread_sigmask(SIG_BLOCK, NULL, &m) == 0, "pthread_sigmask query");
    return sigismember(&m, sig);
}

#define SA_RESTORER_FLAG 0x04000000  /* glibc adds it to every action it installs */

static void *dispositions(void *arg)
{
    (void)arg;
    set_phase("sigaction reports the action set");
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_usr1_info;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGUSR2);
    sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_RESETHAND;
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");
    CHECK(sigaction(SIGUSR1, NULL, &old) == 0, "sigaction query");
    CHECK(old.sa_sigaction == on_usr1_info, "old handler %p, expected %p", (void *)old.sa_sigaction,
          (void *)on_usr1_info);
    CHECK((old.sa_flags & ~SA_RESTORER_FLAG) == (int)(SA_SIGINFO | SA_RESTART | SA_RESETHAND), "old flags %#x",
          old.sa_flags);
    CHECK(sigismember(&old.sa_mask, SIGUSR2) && !sigismember(&old.sa_mask, SIGUSR1), "old sa_mask");

    set_phase("raise in a thread, SA_RESETHAND");
    int hits = atomic_load(&g_hits);
    CHECK(raise(SIGUSR1) == 0, "raise");
    CHECK(atomic_load(&g_hits) == hits + 1, "the handler had not run when raise returned");
    CHECK(pthread_equal(g_handler_thread, pthread_self()), "the handler ran in another thread");
    CHECK(sigismember(&g_mask_in_handler, SIGUSR1) && sigismember(&g_mask_in_handler, SIGUSR2),
          "the handler did not run with sig | sa_mask blocked");
    CHECK(!blocked(SIGUSR1) && !blocked(SIGUSR2), "the mask was not restored after the handler");
    CHECK(sigaction(SIGUSR1, NULL, &old) == 0 && old.sa_handler == SIG_DFL, "SA_RESETHAND did not reset");

    set_phase("SA_NODEFER");
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");
    CHECK(raise(SIGUSR1) == 0, "raise");
    CHECK(!sigismember(&g_mask_in_handler, SIGUSR1) && sigismember(&g_mask_in_handler, SIGUSR2),
          "SA_NODEFER: the handler's mask");

    set_phase("signal() returns the previous handler");
    void (*prev)(int) = signal(SIGUSR1, on_usr1);
    CHECK((void *)prev == (void *)on_usr1_info, "signal returned %p", (void *)prev);
    CHECK(sigaction(SIGUSR1, NULL, &old) == 0, "sigaction query");
    CHECK(old.sa_handler == on_usr1 && (old.sa_flags & SA_RESTART) && !(old.sa_flags & SA_SIGINFO),
          "signal() installed flags %#x", old.sa_flags);
    CHECK(signal(SIGUSR1, SIG_IGN) == on_usr1, "signal(SIG_IGN) returned another handler");
    hits = atomic_load(&g_hits);
    CHECK(raise(SIGUSR1) == 0, "raise of an ignored signal");
    CHECK(atomic_load(&g_hits) == hits, "an ignored signal ran the handler");
    CHECK(signal(SIGUSR1, on_usr1) == SIG_IGN, "signal returned another disposition than SIG_IGN");
    return NULL;
}

/* ---- per-thread masks ---- */

static atomic_int g_stage;
static pthread_t g_main;

static void *child_reports_mask(void *arg)
{
    *(int *)arg = blocked(SIGUSR2);
    return NULL;
}

static void *blocker(void *arg)
{
    (void)arg;
    block(SIGUSR1);
    block(SIGUSR2);
    int inherited = -1;
    join(spawn(child_reports_mask, &inherited));
    CHECK(inherited == 1, "a thread did not inherit its creator's mask");
    atomic_store(&g_stage, 1);
    while (atomic_load(&g_stage) != 2) sleep_ms(1);
    /* main has sent us SIGUSR1: pending for us, not handled. */
    sigset_t p;
    CHECK(sigpending(&p) == 0, "sigpending");
    CHECK(sigismember(&p, SIGUSR1), "SIGUSR1 sent to this thread is not pending for it");
    CHECK(atomic_load(&g_hits) == 0, "a blocked signal ran its handler");
    unblock(SIGUSR1);
    CHECK(atomic_load(&g_hits) == 1, "unblocking a pending signal did not run its handler before returning");
    CHECK(pthread_equal(g_handler_thread, pthread_self()), "the handler ran in another thread");
    CHECK(sigpending(&p) == 0 && !sigismember(&p, SIGUSR1), "SIGUSR1 still pending after its handler ran");
    return NULL;
}

static void *open_thread(void *arg)
{
    (void)arg;
    CHECK(!blocked(SIGUSR1) && !blocked(SIGUSR2), "another thread's mask leaked into this one");
    const int base = atomic_load(&g_hits);
    atomic_store(&g_stage, 3);
    while (atomic_load(&g_hits) == base) sleep_ms(1);
    CHECK(pthread_equal(g_handler_thread, pthread_self()), "pthread_kill reached another thread");
    return NULL;
}

int main(void)
{
    sig_watchdog(20);
    ticker_start();
    long ticks = ticker_ticks();
    join_within(spawn(dispositions, NULL), 5000, "dispositions");

    set_phase("per-thread masks");
    atomic_store(&g_hits, 0);
    on(SIGUSR1, on_usr1, 0);
    g_main = pthread_self();
    pthread_t b = spawn(blocker, NULL);
    wait_flag(&g_stage);
    CHECK(!blocked(SIGUSR1), "a thread's pthread_sigmask changed the main thread's mask");
    CHECK(pthread_kill(b, SIGUSR1) == 0, "pthread_kill");
    sleep_ms(50);
    atomic_store(&g_stage, 2);
    join_within(b, 5000, "blocker");

    set_phase("pthread_kill reaches the thread named");
    atomic_store(&g_stage, 0);
    pthread_t o = spawn(open_thread, NULL);
    while (atomic_load(&g_stage) != 3) sleep_ms(1);
    CHECK(pthread_kill(o, SIGUSR1) == 0, "pthread_kill");
    join_within(o, 5000, "open thread");

    set_phase("a vfork child resets a handler");
    pid_t pid = vfork();
    if (pid == 0) {
        signal(SIGUSR1, SIG_DFL);
        _exit(0);
    }
    CHECK(pid > 0, "vfork");
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status), "waitpid");
    struct sigaction now;
    CHECK(sigaction(SIGUSR1, NULL, &now) == 0 && now.sa_handler == on_usr1,
          "the vfork child's signal(SIG_DFL) changed the parent's disposition");
    atomic_store(&g_stage, 0);
    int hits = atomic_load(&g_hits);
    o = spawn(open_thread, NULL);
    while (atomic_load(&g_stage) != 3) sleep_ms(1);
    CHECK(pthread_kill(o, SIGUSR1) == 0, "pthread_kill");
    join_within(o, 5000, "open thread after vfork");
    CHECK(atomic_load(&g_hits) > hits, "the handler did not run after the vfork child's reset");
    ticker_expect(ticks, 20, "mask tests");
    ticker_stop();
    puts("ok");
    return 0;
}
