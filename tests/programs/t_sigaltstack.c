/*
 * t_sigaltstack.c — sigaltstack(2) belongs to each thread.
 *   - a new thread has none (SS_DISABLE, NULL, 0); EINVAL for bad flags,
 *     ENOMEM below MINSIGSTKSZ (2048), SS_ONSTACK as a mode is accepted,
 *     SS_AUTODISARM is reported back, SS_DISABLE disables;
 *   - six threads each set their own and raise a signal whose handler has
 *     SA_ONSTACK: each handler runs on its own thread's alternate stack,
 *     where sigaltstack reports SS_ONSTACK and refuses a change (EPERM),
 *     and uc_stack is that thread's;
 *   - the same for a signal sent to the process by the main thread while
 *     the receiving thread computes (the kernel interrupts it), while
 *     another thread has set a different alternate stack;
 *   - a thread without one runs a SA_ONSTACK handler on its own stack, as
 *     does a thread with one for a handler without SA_ONSTACK (and what
 *     that handler changes with sigaltstack is undone when it returns, as
 *     the kernel restores the stack saved in the signal frame);
 *   - SS_AUTODISARM: disarmed while the handler runs, armed again after;
 *   - a handler that siglongjmps out leaves the thread off its alternate
 *     stack, and the next handler runs there again.
 */
#include "signal_support.h"

#include <setjmp.h>
#include <ucontext.h>

#define ALT_SIZE (64 * 1024)
#define AUTODISARM ((int)(1u << 31)) /* SS_AUTODISARM: the kernel's, not in glibc's headers */

/* What the last handler saw. Handlers run one at a time (g_lock). */
struct seen {
    uintptr_t local;    /* the address of a local of the handler */
    stack_t query;      /* sigaltstack(NULL, &query) inside it */
    int change_rc, change_errno;  /* sigaltstack(&other) inside it */
    stack_t uc_stack;   /* ucontext's uc_stack */
    int runs;
};
static struct seen g_seen;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static char g_other[ALT_SIZE];  /* what handlers try to switch to */
static int g_try_change;        /* whether the handler tries a change */
static int g_jump;              /* whether the handler siglongjmps out */
static sigjmp_buf g_jmp;

static void on_signal(int sig, siginfo_t *info, void *ucv)
{
    (void)sig;
    (void)info;
    volatile char local = 0;
    g_seen.local = (uintptr_t)&local;
    sigaltstack(NULL, &g_seen.query);
    g_seen.change_rc = 0;
    g_seen.change_errno = 0;
    if (g_try_change) {
        stack_t other = {.ss_sp = g_other, .ss_size = sizeof g_other, .ss_flags = 0};
        g_seen.change_rc = sigaltstack(&other, NULL);
        g_seen.change_errno = errno;
    }
    g_seen.uc_stack = ((ucontext_t *)ucv)->uc_stack;
    g_seen.runs++;
    if (g_jump) siglongjmp(g_jmp, 1);
}

static void install(int sig, int onstack)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO | (onstack ? SA_ONSTACK : 0);
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(sig, &sa, NULL) == 0, "sigaction(%d)", sig);
}

static int within(uintptr_t p, const void *base, size_t size)
{
    return p >= (uintptr_t)base && p < (uintptr_t)base + size;
}

static void set_alt(void *base, size_t size, int flags)
{
    stack_t ss = {.ss_sp = base, .ss_size = size, .ss_flags = flags};
    CHECK(sigaltstack(&ss, NULL) == 0, "sigaltstack(%p, %zu, %#x)", base, size, flags);
}

static stack_t query(void)
{
    stack_t q;
    memset(&q, 0x55, sizeof q);
    CHECK(sigaltstack(NULL, &q) == 0, "sigaltstack query");
    return q;
}

/* The handler ran on [base, base+size), said SS_ONSTACK there and could not
 * change it; uc_stack was that stack. */
static void expect_ran_on(const void *base, size_t size, const char *who)
{
    CHECK(within(g_seen.local, base, size), "%s: the handler ran at %#lx, not on its alternate stack %p+%zu", who,
          (unsigned long)g_seen.local, base, size);
    CHECK(g_seen.query.ss_flags == SS_ONSTACK, "%s: sigaltstack in the handler reports flags %#x, not SS_ONSTACK",
          who, g_seen.query.ss_flags);
    CHECK(g_seen.query.ss_sp == base && g_seen.query.ss_size == size,
          "%s: sigaltstack in the handler reports %p+%zu, not its own %p+%zu", who, g_seen.query.ss_sp,
          g_seen.query.ss_size, base, size);
    if (g_try_change)
        CHECK(g_seen.change_rc == -1 && g_seen.change_errno == EPERM,
              "%s: changing the alternate stack while on it returned %d errno %d, not EPERM", who, g_seen.change_rc,
              g_seen.change_errno);
    CHECK(g_seen.uc_stack.ss_sp == base && g_seen.uc_stack.ss_size == size && g_seen.uc_stack.ss_flags == 0,
          "%s: uc_stack is %p+%zu flags %#x, not its own %p+%zu", who, g_seen.uc_stack.ss_sp,
          g_seen.uc_stack.ss_size, g_seen.uc_stack.ss_flags, base, size);
}

/* The handler ran near `frame` (a local of the thread), not on any
 * alternate stack of this test. */
static void expect_ran_near(uintptr_t frame, const char *who)
{
    uintptr_t d = g_seen.local > frame ? g_seen.local - frame : frame - g_seen.local;
    CHECK(d < 256 * 1024, "%s: the handler ran at %#lx, %lu bytes from the thread's frame %#lx: not on its stack",
          who, (unsigned long)g_seen.local, (unsigned long)d, (unsigned long)frame);
}

/* ---- queries and errors ---- */

static void *queries(void *arg)
{
    (void)arg;
    static char buf[ALT_SIZE];
    stack_t q = query();
    CHECK(q.ss_flags == SS_DISABLE && q.ss_sp == NULL && q.ss_size == 0,
          "a new thread's alternate stack: %p+%zu flags %#x, not none", q.ss_sp, q.ss_size, q.ss_flags);
    stack_t bad = {.ss_sp = buf, .ss_size = sizeof buf, .ss_flags = 5};
    errno = 0;
    CHECK(sigaltstack(&bad, NULL) == -1 && errno == EINVAL, "flags 5: want EINVAL");
    stack_t small = {.ss_sp = buf, .ss_size = 2047, .ss_flags = 0};
    errno = 0;
    CHECK(sigaltstack(&small, NULL) == -1 && errno == ENOMEM, "2047 bytes: want ENOMEM");
    q = query();
    CHECK(q.ss_flags == SS_DISABLE, "a failed sigaltstack changed the state");
    set_alt(buf, 2048, 0);
    q = query();
    CHECK(q.ss_sp == buf && q.ss_size == 2048 && q.ss_flags == 0, "after setting 2048 bytes: %p+%zu flags %#x",
          q.ss_sp, q.ss_size, q.ss_flags);
    set_alt(buf, sizeof buf, SS_ONSTACK);
    q = query();
    CHECK(q.ss_sp == buf && q.ss_size == sizeof buf && q.ss_flags == 0, "after SS_ONSTACK: %p+%zu flags %#x",
          q.ss_sp, q.ss_size, q.ss_flags);
    /* One call that sets and reports the previous. */
    stack_t next = {.ss_sp = buf, .ss_size = 4096, .ss_flags = AUTODISARM}, prev;
    CHECK(sigaltstack(&next, &prev) == 0, "sigaltstack(&next, &prev)");
    CHECK(prev.ss_size == sizeof buf, "sigaltstack(&next, &prev) reported size %zu, not the previous", prev.ss_size);
    q = query();
    CHECK(q.ss_size == 4096 && q.ss_flags == AUTODISARM, "SS_AUTODISARM: %zu flags %#x", q.ss_size, q.ss_flags);
    stack_t off = {.ss_sp = buf, .ss_size = 1, .ss_flags = SS_DISABLE};
    CHECK(sigaltstack(&off, NULL) == 0, "SS_DISABLE");
    q = query();
    CHECK(q.ss_flags == SS_DISABLE && q.ss_sp == NULL && q.ss_size == 0, "after SS_DISABLE: %p+%zu flags %#x",
          q.ss_sp, q.ss_size, q.ss_flags);
    return NULL;
}

/* ---- each thread its own, raise() ---- */

enum { RAISERS = 6 };
static struct gate g_gate;

static void *raiser(void *arg)
{
    (void)arg;
    void *alt = malloc(ALT_SIZE);
    CHECK(alt != NULL, "malloc");
    set_alt(alt, ALT_SIZE, 0);
    gate_wait(&g_gate); /* every thread has set its own before any raises */
    for (int i = 0; i < 3; ++i) {
        pthread_mutex_lock(&g_lock);
        int runs = g_seen.runs;
        CHECK(raise(SIGUSR1) == 0, "raise");
        CHECK(g_seen.runs == runs + 1, "the handler did not run during raise()");
        expect_ran_on(alt, ALT_SIZE, "raise() in a thread with its own alternate stack");
        pthread_mutex_unlock(&g_lock);
        sleep_ms(1);
    }
    stack_t q = query();
    CHECK(q.ss_sp == alt && q.ss_flags == 0, "after the handlers: %p flags %#x", q.ss_sp, q.ss_flags);
    gate_wait(&g_gate); /* nobody frees its stack while another may still run */
    stack_t off = {.ss_flags = SS_DISABLE};
    CHECK(sigaltstack(&off, NULL) == 0, "SS_DISABLE");
    free(alt);
    return NULL;
}

/* ---- a signal the kernel delivers while the thread computes ---- */

static atomic_int g_spinning;
static atomic_int g_decoy_set, g_decoy_stop;
static char g_spin_alt[ALT_SIZE], g_decoy_alt[ALT_SIZE];

static void spin_until_handled(int runs)
{
    int64_t until = now_ns() + 10000000000LL;
    atomic_store(&g_spinning, 1);
    while (*(volatile int *)&g_seen.runs == runs && now_ns() < until) {
    }
    atomic_store(&g_spinning, 0);
    /* A blocking call: where a handler held back would run. */
    sleep_ms(1);
    CHECK(g_seen.runs == runs + 1, "the signal sent to the process was not handled (runs %d)", g_seen.runs - runs);
}

static void *decoy(void *arg);
static pthread_t g_decoy;

static void *spinner_with_alt(void *arg)
{
    (void)arg;
    set_alt(g_spin_alt, sizeof g_spin_alt, 0);
    g_decoy = spawn(decoy, NULL);
    wait_flag(&g_decoy_set); /* another thread has set a different one since */
    unblock(SIGRTMIN);
    int runs = g_seen.runs;
    spin_until_handled(runs);
    expect_ran_on(g_spin_alt, sizeof g_spin_alt, "a signal interrupting a computing thread");
    block(SIGRTMIN);
    return NULL;
}

static void *decoy(void *arg)
{
    (void)arg;
    set_alt(g_decoy_alt, sizeof g_decoy_alt, 0);
    atomic_store(&g_decoy_set, 1);
    wait_flag(&g_decoy_stop);
    return NULL;
}

static void *spinner_without_alt(void *arg)
{
    (void)arg;
    volatile char frame = 0;
    stack_t q = query();
    CHECK(q.ss_flags == SS_DISABLE, "a new thread has an alternate stack");
    unblock(SIGRTMIN);
    spin_until_handled(g_seen.runs);
    expect_ran_near((uintptr_t)&frame, "a computing thread without an alternate stack");
    CHECK(g_seen.query.ss_flags == SS_DISABLE, "the handler's sigaltstack reports flags %#x, not SS_DISABLE",
          g_seen.query.ss_flags);
    block(SIGRTMIN);
    return NULL;
}

static void kernel_delivery(const char *phase, void *(*fn)(void *))
{
    set_phase(phase);
    atomic_store(&g_spinning, 0);
    pthread_t t = spawn(fn, NULL);
    wait_flag(&g_spinning);
    CHECK(kill(getpid(), SIGRTMIN) == 0, "kill");
    join_within(t, 20000, phase);
}

/* ---- no alternate stack, no SA_ONSTACK, SS_AUTODISARM ---- */

static void *without_alt(void *arg)
{
    (void)arg;
    volatile char frame = 0;
    CHECK(raise(SIGUSR1) == 0, "raise");
    expect_ran_near((uintptr_t)&frame, "SA_ONSTACK in a thread without an alternate stack");
    CHECK(g_seen.query.ss_flags == SS_DISABLE, "the handler's sigaltstack reports flags %#x, not SS_DISABLE",
          g_seen.query.ss_flags);
    return NULL;
}

static void *not_onstack(void *arg)
{
    (void)arg;
    volatile char frame = 0;
    static char alt[ALT_SIZE];
    set_alt(alt, sizeof alt, 0);
    g_try_change = 1;
    CHECK(raise(SIGUSR2) == 0, "raise");
    g_try_change = 0;
    expect_ran_near((uintptr_t)&frame, "a handler without SA_ONSTACK");
    CHECK(g_seen.query.ss_sp == alt && g_seen.query.ss_flags == 0,
          "the handler's sigaltstack reports %p flags %#x, not %p flags 0", g_seen.query.ss_sp,
          g_seen.query.ss_flags, (void *)alt);
    CHECK(g_seen.change_rc == 0, "the handler could not change the alternate stack (errno %d)", g_seen.change_errno);
    stack_t q = query();
    CHECK(q.ss_sp == alt && q.ss_size == sizeof alt,
          "the change made in the handler was kept (%p+%zu): the kernel restores the stack saved in the frame",
          q.ss_sp, q.ss_size);
    return NULL;
}

static void *autodisarm(void *arg)
{
    (void)arg;
    static char alt[ALT_SIZE];
    set_alt(alt, sizeof alt, AUTODISARM);
    CHECK(raise(SIGUSR1) == 0, "raise");
    CHECK(within(g_seen.local, alt, sizeof alt), "SS_AUTODISARM: the handler did not run on the alternate stack");
    CHECK(g_seen.query.ss_flags == SS_DISABLE && g_seen.query.ss_size == 0,
          "SS_AUTODISARM: inside the handler sigaltstack reports %zu flags %#x, not disarmed",
          g_seen.query.ss_size, g_seen.query.ss_flags);
    CHECK(g_seen.uc_stack.ss_sp == alt && g_seen.uc_stack.ss_flags == AUTODISARM,
          "SS_AUTODISARM: uc_stack %p flags %#x", g_seen.uc_stack.ss_sp, g_seen.uc_stack.ss_flags);
    stack_t q = query();
    CHECK(q.ss_sp == alt && q.ss_size == sizeof alt && q.ss_flags == AUTODISARM,
          "SS_AUTODISARM: after the handler %p+%zu flags %#x, not armed again", q.ss_sp, q.ss_size, q.ss_flags);
    return NULL;
}

static int blocked_now(int sig)
{
    sigset_t m;
    CHECK(pthread_sigmask(SIG_BLOCK, NULL, &m) == 0, "pthread_sigmask query");
    return sigismember(&m, sig);
}

static void *jumper(void *arg)
{
    (void)arg;
    static char alt[ALT_SIZE];
    set_alt(alt, sizeof alt, 0);
    for (int i = 0; i < 3; ++i) {
        g_jump = 1;
        /* Without saving the mask: the jump leaves SIGUSR1 blocked, as the
         * kernel blocked it for the handler. */
        if (sigsetjmp(g_jmp, 0) == 0) {
            raise(SIGUSR1);
            CHECK(0, "the handler did not jump out");
        }
        g_jump = 0;
        CHECK(blocked_now(SIGUSR1), "SIGUSR1 is not blocked after jumping out of its handler");
        unblock(SIGUSR1);
        expect_ran_on(alt, sizeof alt, "a handler that jumps out");
        stack_t q = query();
        CHECK(q.ss_sp == alt && q.ss_flags == 0, "after jumping out of the handler: %p flags %#x", q.ss_sp,
              q.ss_flags);
    }
    raise(SIGUSR1);
    expect_ran_on(alt, sizeof alt, "a handler after others jumped out");
    return NULL;
}

int main(void)
{
    sig_watchdog(60);
    install(SIGUSR1, 1);
    install(SIGUSR2, 0);
    install(SIGRTMIN, 1);
    /* Only the thread under test accepts SIGRTMIN. */
    block(SIGRTMIN);

    set_phase("queries and errors");
    join_within(spawn(queries, NULL), 10000, "queries");

    set_phase("each thread's own alternate stack (raise)");
    g_try_change = 1;
    gate_init(&g_gate, RAISERS);
    pthread_t r[RAISERS];
    for (int i = 0; i < RAISERS; ++i) r[i] = spawn(raiser, NULL);
    for (int i = 0; i < RAISERS; ++i) join_within(r[i], 20000, "raiser");
    gate_destroy(&g_gate);

    kernel_delivery("a signal the kernel delivers while the thread computes", spinner_with_alt);
    g_try_change = 0;
    kernel_delivery("the same, in a thread without an alternate stack", spinner_without_alt);
    atomic_store(&g_decoy_stop, 1);
    join(g_decoy);

    set_phase("SA_ONSTACK without an alternate stack");
    join_within(spawn(without_alt, NULL), 10000, "without_alt");
    set_phase("a handler without SA_ONSTACK");
    join_within(spawn(not_onstack, NULL), 10000, "not_onstack");
    set_phase("SS_AUTODISARM");
    join_within(spawn(autodisarm, NULL), 10000, "autodisarm");
    set_phase("siglongjmp out of a handler on the alternate stack");
    join_within(spawn(jumper, NULL), 10000, "jumper");
    printf("ok\n");
    return 0;
}
