/*
 * t_shared_condvar.c — process-shared condition variables (glibc's layout,
 * shared with other processes) used with process-private mutexes, and the
 * other process-shared objects a thread may wait on:
 *   - a single pthread_cond_signal from another process (plain glibc: the
 *     program re-executed without LD_PRELOAD) wakes a waiter, made once
 *     the parent took the mutex after the waiter released it (POSIX's
 *     atomicity); while the waiter waits, another thread runs (probe);
 *   - 1,000 handoffs between two threads, and between the main thread and
 *     a created one, on one condition variable: no lost wake-up;
 *   - pthread_cond_timedwait and pthread_cond_clockwait time out (both
 *     clocks, and a CLOCK_MONOTONIC condition variable), the mutex held on
 *     return, while another thread runs;
 *   - an error-checking mutex not held: EPERM; a recursive mutex locked
 *     twice stays locked during the wait (as glibc's unlock only drops the
 *     count) and keeps its count, in a created thread and in the main
 *     thread; locked once, it is released and relocked;
 *   - a robust private mutex whose holder ended while the waiter (a
 *     created thread, then the main thread) waited: the wait returns
 *     EOWNERDEAD with the mutex;
 *   - with a priority-inheritance or a robust process-shared mutex
 *     (glibc's), a waiter lets another thread run, and a cancelled one
 *     holds the mutex in its cleanup handler;
 *   - a signal handler for the waiter runs while it waits, and the wait
 *     goes on;
 *   - pthread_cancel of a waiter (process-private and process-shared
 *     mutex) ends the wait promptly; the cleanup handler runs holding the
 *     mutex, after waiting for it if another thread holds it; the join
 *     result is PTHREAD_CANCELED; the main thread too, last;
 *   - a process-shared barrier and read-write lock: a waiter lets another
 *     thread run; pthread_barrier_wait is not a cancellation point, so a
 *     waiter cancelled there goes on until the barrier opens.
 */
#include "signal_support.h"

#include <sys/mman.h>
#include <sys/wait.h>

struct shared {
    pthread_cond_t cv;      /* process-shared, CLOCK_REALTIME */
    pthread_cond_t mono;    /* process-shared, CLOCK_MONOTONIC */
    pthread_barrier_t barrier; /* process-shared, 2 threads */
    pthread_rwlock_t rw;    /* process-shared */
    pthread_mutex_t pshared; /* process-shared mutex */
    pthread_mutex_t robust_shared;
    atomic_int cmd;         /* to the signaller process: 1 signal cv, 9 quit */
    atomic_int done;        /* commands it carried out */
};

static struct shared *g_sh;
static pthread_mutex_t g_check;     /* private, error-checking */
static pthread_mutex_t g_recursive; /* private, recursive */
static pthread_mutex_t g_robust;    /* private, robust */
static struct probe g_probe;

/* ---- the signaller: a process running plain glibc ---- */

static int signaller_main(int fd)
{
    g_sh = mmap(NULL, sizeof *g_sh, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (g_sh == MAP_FAILED) return 3;
    int64_t until = now_ns() + 60000000000LL;
    while (now_ns() < until) {
        int c = atomic_load(&g_sh->cmd);
        if (c == 9) return 0;
        if (c == 1) {
            if (pthread_cond_signal(&g_sh->cv) != 0) return 4;
            atomic_store(&g_sh->cmd, 0);
            atomic_fetch_add(&g_sh->done, 1);
        }
        usleep(1000);
    }
    return 5;
}

static pid_t start_signaller(int fd)
{
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        char arg[16];
        snprintf(arg, sizeof arg, "%d", fd);
        unsetenv("LD_PRELOAD");
        execl("/proc/self/exe", "t_shared_condvar", "signaller", arg, (char *)NULL);
        _exit(6);
    }
    return pid;
}

static void signaller_do(int cmd)
{
    int before = atomic_load(&g_sh->done);
    atomic_store(&g_sh->cmd, cmd);
    while (atomic_load(&g_sh->done) == before) sleep_ms(1);
}

/* ---- a waiter with a predicate ---- */

struct waiter {
    pthread_cond_t *cv;
    pthread_mutex_t *m;
    int pred;
    int rc;
    atomic_int waiting, returned;
};

static void *waiter_main(void *arg)
{
    struct waiter *w = arg;
    CHECK_RC(pthread_mutex_lock(w->m), 0);
    atomic_store(&w->waiting, 1);
    while (!w->pred) {
        w->rc = pthread_cond_wait(w->cv, w->m);
        if (w->rc) break;
    }
    atomic_store(&w->returned, 1);
    CHECK_RC(pthread_mutex_unlock(w->m), 0);
    return NULL;
}

/* Returns once the waiter released its mutex inside the wait: from then
 * on, a signal made under the mutex must wake it. */
static void await_waiting(struct waiter *w)
{
    wait_flag(&w->waiting);
    CHECK_RC(pthread_mutex_lock(w->m), 0);
    CHECK_RC(pthread_mutex_unlock(w->m), 0);
}

static void cross_process_phase(void)
{
    set_phase("shared condvar, private mutex: one signal from a plain-glibc process");
    for (int round = 0; round < 20; ++round) {
        struct waiter w = {.cv = &g_sh->cv, .m = &g_check};
        pthread_t t = spawn(waiter_main, &w);
        await_waiting(&w);
        if (round == 0) probe_expect(&g_probe, 3000, "a thread waiting on a shared condvar with a private mutex");
        CHECK_RC(pthread_mutex_lock(&g_check), 0);
        w.pred = 1;
        CHECK_RC(pthread_mutex_unlock(&g_check), 0);
        signaller_do(1);
        join_within(t, 5000, "waiter signalled by another process");
        CHECK_RC(w.rc, 0);
    }
}

/* ---- handoffs ---- */

enum { kHandoffs = 1000 };
static pthread_mutex_t g_plain; /* private, normal */
static int g_turn, g_count;

static void handoff_loop(int me)
{
    for (;;) {
        CHECK_RC(pthread_mutex_lock(&g_plain), 0);
        while (g_turn != me && g_count < kHandoffs) CHECK_RC(pthread_cond_wait(&g_sh->cv, &g_plain), 0);
        if (g_count >= kHandoffs) {
            CHECK_RC(pthread_mutex_unlock(&g_plain), 0);
            return;
        }
        g_count++;
        g_turn = !me;
        CHECK_RC(pthread_cond_signal(&g_sh->cv), 0);
        CHECK_RC(pthread_mutex_unlock(&g_plain), 0);
    }
}

static void *handoff_main(void *arg)
{
    handoff_loop((int)(long)arg);
    return NULL;
}

static void handoff_phase(void)
{
    set_phase("1,000 handoffs between two created threads on a shared condvar");
    g_turn = 0;
    g_count = 0;
    pthread_t a = spawn(handoff_main, (void *)0L), b = spawn(handoff_main, (void *)1L);
    join_within(a, 30000, "handoff thread 0");
    join_within(b, 30000, "handoff thread 1");
    CHECK_EQ(g_count, kHandoffs);

    set_phase("1,000 handoffs between the main thread and a created one");
    g_turn = 0;
    g_count = 0;
    pthread_t c = spawn(handoff_main, (void *)1L);
    handoff_loop(0);
    join_within(c, 30000, "handoff thread");
    CHECK_EQ(g_count, kHandoffs);
}

/* ---- timeouts ---- */

static void *timed_main(void *arg)
{
    (void)arg;
    CHECK_RC(pthread_mutex_lock(&g_check), 0);
    int64_t t0 = now_ns();
    struct timespec ts = abs_after_ms(CLOCK_REALTIME, 2500);
    CHECK_RC(pthread_cond_timedwait(&g_sh->cv, &g_check, &ts), ETIMEDOUT);
    CHECK(now_ns() - t0 >= 2490000000LL, "timedwait returned early");
    ts = abs_after_ms(CLOCK_MONOTONIC, 100);
    CHECK_RC(pthread_cond_clockwait(&g_sh->cv, &g_check, CLOCK_MONOTONIC, &ts), ETIMEDOUT);
    ts = abs_after_ms(CLOCK_MONOTONIC, 100);
    CHECK_RC(pthread_cond_timedwait(&g_sh->mono, &g_check, &ts), ETIMEDOUT);
    ts.tv_nsec = 1000000000;
    CHECK_RC(pthread_cond_timedwait(&g_sh->cv, &g_check, &ts), EINVAL);
    CHECK_RC(pthread_cond_clockwait(&g_sh->cv, &g_check, CLOCK_PROCESS_CPUTIME_ID, &ts), EINVAL);
    CHECK_RC(pthread_mutex_unlock(&g_check), 0); /* held on return */
    CHECK_RC(pthread_mutex_unlock(&g_check), EPERM);
    return NULL;
}

static void timeout_phase(void)
{
    set_phase("timedwait and clockwait on a shared condvar time out");
    pthread_t t = spawn(timed_main, NULL);
    sleep_ms(50);
    probe_expect(&g_probe, 2000, "a thread in pthread_cond_timedwait on a shared condvar");
    join_within(t, 5000, "timed waiter");
}

/* ---- mutex kinds ---- */

static atomic_int g_stage;

static void *recursive_twice_main(void *arg)
{
    (void)arg;
    CHECK_RC(pthread_mutex_lock(&g_recursive), 0);
    CHECK_RC(pthread_mutex_lock(&g_recursive), 0);
    atomic_store(&g_stage, 1);
    struct timespec ts = abs_after_ms(CLOCK_REALTIME, 300);
    CHECK_RC(pthread_cond_timedwait(&g_sh->cv, &g_recursive, &ts), ETIMEDOUT);
    CHECK_RC(pthread_mutex_unlock(&g_recursive), 0);
    CHECK_RC(pthread_mutex_unlock(&g_recursive), 0);
    CHECK_RC(pthread_mutex_unlock(&g_recursive), EPERM);
    return NULL;
}

static void *recursive_prober(void *arg)
{
    (void)arg;
    wait_flag(&g_stage);
    sleep_ms(100);
    CHECK_RC(pthread_mutex_trylock(&g_recursive), EBUSY);
    return NULL;
}

static void mutex_kinds_phase(void)
{
    set_phase("error-checking mutex not held: EPERM");
    CHECK_RC(pthread_cond_wait(&g_sh->cv, &g_check), EPERM);
    struct timespec ts = abs_after_ms(CLOCK_REALTIME, 100);
    CHECK_RC(pthread_cond_timedwait(&g_sh->cv, &g_check, &ts), EPERM);

    set_phase("recursive mutex locked twice: still held during the wait, count kept");
    atomic_store(&g_stage, 0);
    pthread_t t = spawn(recursive_twice_main, NULL);
    wait_flag(&g_stage);
    sleep_ms(100);
    CHECK_RC(pthread_mutex_trylock(&g_recursive), EBUSY);
    join_within(t, 5000, "recursive waiter");
    set_phase("recursive mutex locked twice by the main thread");
    atomic_store(&g_stage, 0);
    t = spawn(recursive_prober, NULL);
    recursive_twice_main(NULL);
    join_within(t, 5000, "recursive prober");

    set_phase("recursive mutex locked once: released and relocked");
    struct waiter w = {.cv = &g_sh->cv, .m = &g_recursive};
    t = spawn(waiter_main, &w);
    await_waiting(&w);
    CHECK_RC(pthread_mutex_lock(&g_recursive), 0);
    w.pred = 1;
    CHECK_RC(pthread_cond_broadcast(&g_sh->cv), 0);
    CHECK_RC(pthread_mutex_unlock(&g_recursive), 0);
    join_within(t, 5000, "recursive waiter");
    CHECK_RC(w.rc, 0);
    CHECK_RC(pthread_mutex_unlock(&g_recursive), EPERM);
}

/* ---- robust mutex ---- */

static void *robust_waiter(void *arg)
{
    int *rc = arg;
    CHECK_RC(pthread_mutex_lock(&g_robust), 0);
    atomic_store(&g_stage, 1);
    *rc = pthread_cond_wait(&g_sh->cv, &g_robust);
    if (*rc == EOWNERDEAD) CHECK_RC(pthread_mutex_consistent(&g_robust), 0);
    CHECK_RC(pthread_mutex_unlock(&g_robust), 0);
    return NULL;
}

static void *robust_dier(void *arg)
{
    (void)arg;
    CHECK_RC(pthread_mutex_lock(&g_robust), 0);
    CHECK_RC(pthread_cond_signal(&g_sh->cv), 0);
    sleep_ms(50);
    return NULL; /* ends holding it */
}

static void *robust_dier_after_stage(void *arg)
{
    wait_flag(&g_stage);
    return robust_dier(arg);
}

static void robust_phase(void)
{
    set_phase("robust private mutex: its holder ends during the wait: EOWNERDEAD");
    atomic_store(&g_stage, 0);
    int rc = -1;
    pthread_t t = spawn(robust_waiter, &rc);
    wait_flag(&g_stage);
    join_within(spawn(robust_dier, NULL), 5000, "robust mutex holder");
    join_within(t, 5000, "robust waiter");
    CHECK_RC(rc, EOWNERDEAD);
    CHECK_RC(pthread_mutex_lock(&g_robust), 0);
    CHECK_RC(pthread_mutex_unlock(&g_robust), 0);

    set_phase("robust private mutex: the main thread waits, the holder ends: EOWNERDEAD");
    atomic_store(&g_stage, 0);
    t = spawn(robust_dier_after_stage, NULL);
    robust_waiter(&rc);
    CHECK_RC(rc, EOWNERDEAD);
    join_within(t, 5000, "robust mutex holder");
}

/* ---- mutexes glibc keeps: priority inheritance, robust process-shared ---- */

static void cancel_case(pthread_mutex_t *m, int hold, const char *what);

static void glibc_mutex_case(pthread_mutex_t *m, const char *what)
{
    set_phase(what);
    struct waiter w = {.cv = &g_sh->cv, .m = m};
    pthread_t t = spawn(waiter_main, &w);
    await_waiting(&w);
    probe_expect(&g_probe, 3000, what);
    CHECK_RC(pthread_mutex_lock(m), 0);
    w.pred = 1;
    CHECK_RC(pthread_cond_signal(&g_sh->cv), 0);
    CHECK_RC(pthread_mutex_unlock(m), 0);
    join_within(t, 5000, what);
    CHECK_RC(w.rc, 0);
}

static void glibc_mutexes_phase(void)
{
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutex_t pi;
    CHECK_RC(pthread_mutexattr_setprotocol(&ma, PTHREAD_PRIO_INHERIT), 0);
    CHECK_RC(pthread_mutex_init(&pi, &ma), 0);
    glibc_mutex_case(&pi, "a thread waiting on a shared condvar with a priority-inheritance mutex");
    cancel_case(&pi, 1, "cancel a waiter on a shared condvar, priority-inheritance mutex held by another thread");
    CHECK_RC(pthread_mutex_destroy(&pi), 0);
    CHECK_RC(pthread_mutexattr_setprotocol(&ma, PTHREAD_PRIO_NONE), 0);
    CHECK_RC(pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST), 0);
    CHECK_RC(pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED), 0);
    CHECK_RC(pthread_mutex_init(&g_sh->robust_shared, &ma), 0);
    glibc_mutex_case(&g_sh->robust_shared, "a thread waiting on a shared condvar with a robust shared mutex");
    pthread_mutexattr_destroy(&ma);
}

/* ---- signals ---- */

static atomic_int g_hits;
static void on_usr1(int sig)
{
    (void)sig;
    atomic_fetch_add(&g_hits, 1);
}

static void signal_phase(void)
{
    set_phase("a handler runs while the waiter waits; the wait goes on");
    on(SIGUSR1, on_usr1, 0);
    struct waiter w = {.cv = &g_sh->cv, .m = &g_check};
    pthread_t t = spawn(waiter_main, &w);
    await_waiting(&w);
    int hits = atomic_load(&g_hits);
    CHECK_RC(pthread_kill(t, SIGUSR1), 0);
    int64_t until = now_ns() + 3000000000LL;
    while (atomic_load(&g_hits) == hits && now_ns() < until) sleep_ms(1);
    CHECK(atomic_load(&g_hits) == hits + 1, "the handler did not run while the thread waited");
    sleep_ms(100);
    CHECK(!atomic_load(&w.returned), "pthread_cond_wait returned after a handler (rc %d)", w.rc);
    CHECK_RC(pthread_mutex_lock(&g_check), 0);
    w.pred = 1;
    CHECK_RC(pthread_cond_broadcast(&g_sh->cv), 0);
    CHECK_RC(pthread_mutex_unlock(&g_check), 0);
    join_within(t, 5000, "waiter after a handler");
    CHECK_RC(w.rc, 0);
}

/* ---- cancellation ---- */

struct cancel_args {
    pthread_mutex_t *m;
    atomic_int waiting;
    atomic_int cleanup_rc; /* the cleanup's unlock: 0 only if it held the mutex */
    atomic_int cleaned;
};

static void cancel_cleanup(void *arg)
{
    struct cancel_args *a = arg;
    atomic_store(&a->cleanup_rc, pthread_mutex_unlock(a->m));
    atomic_store(&a->cleaned, 1);
}

static void *cancel_waiter(void *arg)
{
    struct cancel_args *a = arg;
    CHECK_RC(pthread_mutex_lock(a->m), 0);
    pthread_cleanup_push(cancel_cleanup, a);
    atomic_store(&a->waiting, 1);
    for (;;) pthread_cond_wait(&g_sh->cv, a->m);
    pthread_cleanup_pop(0);
    return NULL;
}

static void cancel_case(pthread_mutex_t *m, int hold, const char *what)
{
    set_phase(what);
    struct cancel_args a = {.m = m, .cleanup_rc = -1};
    pthread_t t = spawn(cancel_waiter, &a);
    wait_flag(&a.waiting);
    CHECK_RC(pthread_mutex_lock(m), 0);
    if (!hold) CHECK_RC(pthread_mutex_unlock(m), 0);
    CHECK_RC(pthread_cancel(t), 0);
    if (hold) {
        sleep_ms(200);
        CHECK(!atomic_load(&a.cleaned), "the cleanup handler ran before the mutex was relocked");
        CHECK_RC(pthread_mutex_unlock(m), 0);
    }
    CHECK(join_within(t, 3000, "cancelled waiter") == PTHREAD_CANCELED, "not PTHREAD_CANCELED");
    CHECK(atomic_load(&a.cleaned), "the cleanup handler did not run");
    CHECK_RC(atomic_load(&a.cleanup_rc), 0);
}

static void cancel_private_phase(void)
{
    cancel_case(&g_check, 0, "cancel a waiter on a shared condvar, private mutex");
    cancel_case(&g_check, 1, "cancel a waiter on a shared condvar, private mutex held by another thread");
}

static void cancel_shared_phase(void)
{
    cancel_case(&g_sh->pshared, 0, "cancel a waiter on a shared condvar, shared mutex");
    cancel_case(&g_sh->pshared, 1, "cancel a waiter on a shared condvar, shared mutex held by another thread");
}

/* The main thread cancelled in the wait: its cleanup holds the mutex. The
 * canceller ends the process, since main does not return. */
static pthread_t g_main_thread;
static struct cancel_args g_main_args = {.m = &g_check, .cleanup_rc = -1};

static void *main_canceller(void *arg)
{
    (void)arg;
    wait_flag(&g_main_args.waiting);
    CHECK_RC(pthread_mutex_lock(&g_check), 0);
    CHECK_RC(pthread_mutex_unlock(&g_check), 0);
    CHECK_RC(pthread_cancel(g_main_thread), 0);
    int64_t until = now_ns() + 3000000000LL;
    while (!atomic_load(&g_main_args.cleaned) && now_ns() < until) sleep_ms(1);
    CHECK(atomic_load(&g_main_args.cleaned), "the main thread's wait did not end on pthread_cancel");
    CHECK_RC(atomic_load(&g_main_args.cleanup_rc), 0);
    printf("ok\n");
    fflush(stdout);
    exit(0);
}

static void cancel_main_phase(void)
{
    set_phase("cancel the main thread waiting on a shared condvar, private mutex");
    g_main_thread = pthread_self();
    spawn(main_canceller, NULL);
    cancel_waiter(&g_main_args);
}

/* ---- barrier and rwlock ---- */

static void *barrier_main(void *arg)
{
    atomic_int *passed = arg;
    int rc = pthread_barrier_wait(&g_sh->barrier);
    CHECK(rc == 0 || rc == PTHREAD_BARRIER_SERIAL_THREAD, "pthread_barrier_wait: %d", rc);
    atomic_store(passed, 1);
    pthread_testcancel();
    return NULL;
}

static void *reader_main(void *arg)
{
    (void)arg;
    CHECK_RC(pthread_rwlock_rdlock(&g_sh->rw), 0);
    CHECK_RC(pthread_rwlock_unlock(&g_sh->rw), 0);
    return NULL;
}

static void barrier_rwlock_phase(void)
{
    set_phase("shared barrier: a waiter lets another thread run");
    atomic_int passed = 0;
    pthread_t t = spawn(barrier_main, &passed);
    sleep_ms(50);
    probe_expect(&g_probe, 3000, "a thread waiting at a shared barrier");
    int rc = pthread_barrier_wait(&g_sh->barrier);
    CHECK(rc == 0 || rc == PTHREAD_BARRIER_SERIAL_THREAD, "pthread_barrier_wait: %d", rc);
    CHECK(join_within(t, 5000, "barrier waiter") == NULL, "a barrier waiter was cancelled");

    set_phase("shared barrier: not a cancellation point");
    passed = 0;
    t = spawn(barrier_main, &passed);
    sleep_ms(50);
    CHECK_RC(pthread_cancel(t), 0);
    sleep_ms(100);
    CHECK(!atomic_load(&passed), "pthread_barrier_wait returned before the barrier opened");
    rc = pthread_barrier_wait(&g_sh->barrier);
    CHECK(rc == 0 || rc == PTHREAD_BARRIER_SERIAL_THREAD, "pthread_barrier_wait: %d", rc);
    CHECK(join_within(t, 5000, "cancelled barrier waiter") == PTHREAD_CANCELED, "not PTHREAD_CANCELED");
    CHECK(atomic_load(&passed), "the cancelled waiter did not pass the barrier first");

    set_phase("shared rwlock: a reader waiting for the writer lets another thread run");
    CHECK_RC(pthread_rwlock_wrlock(&g_sh->rw), 0);
    t = spawn(reader_main, NULL);
    sleep_ms(50);
    probe_expect(&g_probe, 3000, "a thread waiting for a shared rwlock");
    CHECK_RC(pthread_rwlock_unlock(&g_sh->rw), 0);
    join_within(t, 5000, "shared rwlock reader");
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "signaller") == 0) return signaller_main(atoi(argv[2]));
    sig_watchdog(90);
    int fd = memfd_create("t_shared_condvar", 0);
    CHECK(fd >= 0, "memfd_create");
    CHECK(ftruncate(fd, sizeof *g_sh) == 0, "ftruncate");
    g_sh = mmap(NULL, sizeof *g_sh, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(g_sh != MAP_FAILED, "mmap");

    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    CHECK_RC(pthread_condattr_setpshared(&ca, PTHREAD_PROCESS_SHARED), 0);
    CHECK_RC(pthread_cond_init(&g_sh->cv, &ca), 0);
    CHECK_RC(pthread_condattr_setclock(&ca, CLOCK_MONOTONIC), 0);
    CHECK_RC(pthread_cond_init(&g_sh->mono, &ca), 0);
    pthread_condattr_destroy(&ca);
    pthread_barrierattr_t ba;
    pthread_barrierattr_init(&ba);
    CHECK_RC(pthread_barrierattr_setpshared(&ba, PTHREAD_PROCESS_SHARED), 0);
    CHECK_RC(pthread_barrier_init(&g_sh->barrier, &ba, 2), 0);
    pthread_barrierattr_destroy(&ba);
    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
    CHECK_RC(pthread_rwlockattr_setpshared(&ra, PTHREAD_PROCESS_SHARED), 0);
    CHECK_RC(pthread_rwlock_init(&g_sh->rw, &ra), 0);
    pthread_rwlockattr_destroy(&ra);

    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    CHECK_RC(pthread_mutex_init(&g_plain, &ma), 0);
    CHECK_RC(pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ERRORCHECK), 0);
    CHECK_RC(pthread_mutex_init(&g_check, &ma), 0);
    CHECK_RC(pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED), 0);
    CHECK_RC(pthread_mutex_init(&g_sh->pshared, &ma), 0);
    CHECK_RC(pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_PRIVATE), 0);
    CHECK_RC(pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE), 0);
    CHECK_RC(pthread_mutex_init(&g_recursive, &ma), 0);
    CHECK_RC(pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_DEFAULT), 0);
    CHECK_RC(pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST), 0);
    CHECK_RC(pthread_mutex_init(&g_robust, &ma), 0);
    pthread_mutexattr_destroy(&ma);

    pid_t pid = start_signaller(fd);
    probe_start(&g_probe);

    /* One phase alone when named (to check each against a build). */
    static const struct {
        const char *name;
        void (*run)(void);
    } phases[] = {
        {"cross_process", cross_process_phase},   {"handoff", handoff_phase},
        {"timeout", timeout_phase},               {"mutex_kinds", mutex_kinds_phase},
        {"robust", robust_phase},                 {"glibc_mutexes", glibc_mutexes_phase},
        {"signal", signal_phase},
        {"cancel_private", cancel_private_phase}, {"cancel_shared", cancel_shared_phase},
        {"barrier_rwlock", barrier_rwlock_phase},
    };
    int ran = 0;
    for (size_t i = 0; i < sizeof phases / sizeof phases[0]; ++i) {
        if (argc == 2 && strcmp(argv[1], phases[i].name) != 0) continue;
        phases[i].run();
        ran++;
    }
    CHECK(ran > 0 || strcmp(argv[1], "cancel_main") == 0, "no phase named %s", argv[1]);

    atomic_store(&g_sh->cmd, 9);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "signaller status %#x", status);
    probe_stop(&g_probe);
    if (argc == 1 || strcmp(argv[1], "cancel_main") == 0) cancel_main_phase(); /* does not return */
    printf("ok\n");
    return 0;
}
