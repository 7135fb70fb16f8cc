/*
 * t_signal_running.c — a signal for a thread that is computing runs its
 * handler at once, as the kernel interrupts a running thread:
 *   - pthread_kill, tgkill on its id and pthread_sigqueue from the main
 *     thread to a thread spinning in a pure CPU loop on a flag only its
 *     handler sets (no call at all inside the loop);
 *   - pthread_kill from another created thread while the target spins
 *     (under greenld with two hubs: a fiber of the other hub; with one hub
 *     the sender cannot run beside a spinner, which the run reports);
 *   - pthread_kill to a thread just created, before it ever ran, by a
 *     thread that then blocks in pthread_join: the target runs next and
 *     computes at once;
 *   - pthread_kill to a thread just woken from pthread_cond_wait, before
 *     it runs again;
 *   - a signal that arrives while the target loops over uncontended
 *     pthread_mutex_lock/unlock (inside greenld's own code under the shim),
 *     then only computes: process-directed (kill(), every other thread
 *     blocks it) and thread-directed (pthread_kill).
 * Each handler must run in the target itself within a bounded time (the
 * target gives up after kBoundMs so that a failure ends the run instead of
 * spinning forever).
 */
#include "signal_support.h"

enum { kBoundMs = 3000 };

static volatile sig_atomic_t g_got;
static _Atomic int64_t g_got_ns, g_sent_ns;
static atomic_int g_handler_tid;
static atomic_int g_handler_code;

static void on_sig(int sig, siginfo_t *info, void *uc)
{
    (void)sig;
    (void)uc;
    atomic_store(&g_handler_tid, gettid());
    atomic_store(&g_handler_code, info->si_code);
    atomic_store(&g_got_ns, now_ns());
    g_got = 1;
}

static void catch_sig(int sig)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sig;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(sig, &sa, NULL) == 0, "sigaction(%d)", sig);
}

struct spinner {
    atomic_int ready;
    atomic_int tid;
    atomic_int give_up;      /* set by the main thread past the bound */
    atomic_int stop_locking; /* ends the mutex loop (lock_first) */
    int lock_first;
    /* wait on this condvar until `go` before computing (cond_first) */
    int cond_first;
    pthread_mutex_t m;
    pthread_cond_t c;
    int go;
    long long spins;
};

static void spinner_init(struct spinner *s)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->m, NULL);
    pthread_cond_init(&s->c, NULL);
}

/* The loop: two loads per turn, no call. */
static void compute(struct spinner *s)
{
    long long n = 0;
    while (!g_got && !atomic_load_explicit(&s->give_up, memory_order_relaxed)) n++;
    s->spins = n;
}

static void *spin_main(void *arg)
{
    struct spinner *s = arg;
    atomic_store(&s->tid, gettid());
    if (s->cond_first) {
        pthread_mutex_lock(&s->m);
        atomic_store(&s->ready, 1);
        while (!s->go) pthread_cond_wait(&s->c, &s->m);
        pthread_mutex_unlock(&s->m);
    }
    atomic_store(&s->ready, 1);
    if (s->lock_first) {
        pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
        while (!atomic_load_explicit(&s->stop_locking, memory_order_relaxed) &&
               !atomic_load_explicit(&s->give_up, memory_order_relaxed)) {
            pthread_mutex_lock(&lock);
            pthread_mutex_unlock(&lock);
        }
    }
    compute(s);
    return NULL;
}

/* Waits (in the main thread, which stays native) until the handler ran or
 * the bound passed; then the spinner is told to give up. */
static void expect_handled(struct spinner *s, pthread_t t, const char *what)
{
    const int64_t start = now_ns();
    while (!g_got && now_ns() - start < (int64_t)kBoundMs * 1000000) sleep_ms(1);
    const int got = g_got;
    atomic_store(&s->give_up, 1);
    join(t);
    CHECK(got, "%s: the handler did not run within %d ms while the target computed (%lld turns)", what, kBoundMs,
          s->spins);
    CHECK_EQ(atomic_load(&g_handler_tid), atomic_load(&s->tid));
    printf("%s: handled %.3f ms after it was sent\n", what,
           (double)(atomic_load(&g_got_ns) - atomic_load(&g_sent_ns)) / 1e6);
}

static void reset(void)
{
    g_got = 0;
    atomic_store(&g_handler_tid, 0);
    atomic_store(&g_handler_code, 0);
}

/* ---- from the main thread, the target computing ---- */

enum how { by_pthread_kill, by_tgkill, by_sigqueue };

static void from_main(enum how how, const char *what)
{
    set_phase(what);
    reset();
    struct spinner s;
    spinner_init(&s);
    pthread_t t = spawn(spin_main, &s);
    while (!atomic_load(&s.ready)) sleep_ms(1);
    sleep_ms(20); /* well inside its loop */
    atomic_store(&g_sent_ns, now_ns());
    switch (how) {
        case by_pthread_kill: CHECK_RC(pthread_kill(t, SIGUSR1), 0); break;
        case by_tgkill: CHECK(syscall(SYS_tgkill, getpid(), atomic_load(&s.tid), SIGUSR1) == 0, "tgkill"); break;
        case by_sigqueue: {
            union sigval v = {.sival_int = 7};
            CHECK_RC(pthread_sigqueue(t, SIGUSR1, v), 0);
            break;
        }
    }
    expect_handled(&s, t, what);
    if (how == by_sigqueue) CHECK_EQ(atomic_load(&g_handler_code), SI_QUEUE);
}

/* ---- from another created thread, the target computing ---- */

struct sender {
    pthread_t target;
    atomic_int started;
    int rc;
};

static void *send_main(void *arg)
{
    struct sender *snd = arg;
    atomic_store(&snd->started, 1);
    snd->rc = pthread_kill(snd->target, SIGUSR1);
    return NULL;
}

static void from_other_thread(void)
{
    set_phase("pthread_kill from another thread to a computing thread");
    reset();
    struct spinner s;
    spinner_init(&s);
    pthread_t t = spawn(spin_main, &s);
    while (!atomic_load(&s.ready)) sleep_ms(1);
    sleep_ms(20);
    struct sender snd = {.target = t};
    atomic_store(&g_sent_ns, now_ns());
    pthread_t st = spawn(send_main, &snd);
    for (int i = 0; i < 1000 && !atomic_load(&snd.started); ++i) sleep_ms(1);
    if (!atomic_load(&snd.started)) {
        /* Only under greenld with one hub: the spinner holds the only OS
         * thread that runs created threads. */
        CHECK(is_shim(), "the sender thread did not start within 1 s");
        atomic_store(&s.give_up, 1);
        join(t);
        join(st);
        printf("from another thread: the sender shares the computing thread's hub (one hub): not applicable\n");
        return;
    }
    expect_handled(&s, t, "pthread_kill from another thread to a computing thread");
    join(st);
    CHECK_RC(snd.rc, 0);
}

/* ---- to a thread that has not run yet, by one that then blocks ---- */

struct creator {
    struct spinner *s;
    int rc;
};

static void *create_and_kill_main(void *arg)
{
    struct creator *c = arg;
    pthread_t t = spawn(spin_main, c->s);
    c->rc = pthread_kill(t, SIGUSR1);
    join(t); /* parks: with one hub the target runs next */
    return NULL;
}

static void to_new_thread(void)
{
    set_phase("pthread_kill to a thread before it ran, then pthread_join");
    reset();
    struct spinner s;
    spinner_init(&s);
    struct creator c = {.s = &s};
    pthread_t t = spawn(create_and_kill_main, &c);
    const int64_t start = now_ns();
    while (!g_got && now_ns() - start < (int64_t)kBoundMs * 1000000) sleep_ms(1);
    const int got = g_got;
    atomic_store(&s.give_up, 1);
    join(t);
    CHECK_RC(c.rc, 0);
    CHECK(got, "the new thread computed %lld turns without running its handler", s.spins);
    CHECK_EQ(atomic_load(&g_handler_tid), atomic_load(&s.tid));
}

/* ---- to a thread just woken from a condvar wait ---- */

static void *wake_and_kill_main(void *arg)
{
    struct creator *c = arg;
    struct spinner *s = c->s;
    pthread_t t = spawn(spin_main, s);
    while (!atomic_load(&s->ready)) sleep_ms(1);
    pthread_mutex_lock(&s->m);
    s->go = 1;
    pthread_cond_signal(&s->c);
    pthread_mutex_unlock(&s->m);
    c->rc = pthread_kill(t, SIGUSR1);
    join(t);
    return NULL;
}

static void to_woken_thread(void)
{
    set_phase("pthread_kill to a thread just woken from pthread_cond_wait");
    reset();
    struct spinner s;
    spinner_init(&s);
    s.cond_first = 1;
    struct creator c = {.s = &s};
    pthread_t t = spawn(wake_and_kill_main, &c);
    const int64_t start = now_ns();
    while (!g_got && now_ns() - start < (int64_t)kBoundMs * 1000000) sleep_ms(1);
    const int got = g_got;
    atomic_store(&s.give_up, 1);
    join(t);
    CHECK_RC(c.rc, 0);
    CHECK(got, "the woken thread computed %lld turns without running its handler", s.spins);
    CHECK_EQ(atomic_load(&g_handler_tid), atomic_load(&s.tid));
}

/* ---- arriving while the target is inside mutex calls ---- */

static void during_mutex_loop(int process_directed, const char *what)
{
    set_phase(what);
    reset();
    struct spinner s;
    spinner_init(&s);
    s.lock_first = 1;
    pthread_t t = spawn(spin_main, &s);
    /* kill() must reach the looping thread (created accepting SIGUSR2),
     * not this one. */
    block(SIGUSR2);
    while (!atomic_load(&s.ready)) sleep_ms(1);
    sleep_ms(20);
    atomic_store(&g_sent_ns, now_ns());
    if (process_directed)
        CHECK(kill(getpid(), SIGUSR2) == 0, "kill");
    else
        CHECK_RC(pthread_kill(t, SIGUSR2), 0);
    sleep_ms(30);
    atomic_store(&s.stop_locking, 1);
    expect_handled(&s, t, what);
    unblock(SIGUSR2);
}

/* argv[1], if given: run only the cases whose name contains it. */
static const char *g_only;
static int selected(const char *what) { return !g_only || strstr(what, g_only); }

int main(int argc, char **argv)
{
    g_only = argc > 1 ? argv[1] : NULL;
    sig_watchdog(60);
    catch_sig(SIGUSR1);
    catch_sig(SIGUSR2);

    static const struct {
        enum how how;
        const char *what;
    } from_main_cases[] = {
        {by_pthread_kill, "pthread_kill from the main thread to a computing thread"},
        {by_tgkill, "tgkill from the main thread to a computing thread"},
        {by_sigqueue, "pthread_sigqueue from the main thread to a computing thread"},
    };
    for (size_t i = 0; i < sizeof from_main_cases / sizeof from_main_cases[0]; ++i)
        if (selected(from_main_cases[i].what)) from_main(from_main_cases[i].how, from_main_cases[i].what);
    if (selected("pthread_kill from another thread")) from_other_thread();
    if (selected("pthread_kill to a thread before it ran")) to_new_thread();
    if (selected("pthread_kill to a thread just woken")) to_woken_thread();
    if (selected("kill() while the target loops over mutex calls"))
        during_mutex_loop(1, "kill() while the target loops over mutex calls, then computes");
    if (selected("pthread_kill while the target loops over mutex calls"))
        during_mutex_loop(0, "pthread_kill while the target loops over mutex calls, then computes");
    printf("ok\n");
    return 0;
}
