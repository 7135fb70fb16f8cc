/*
 * kernel_mutex_support.h — what t_robust_shared.c and t_prio_mutex.c share:
 * mutexes of a given kind in memory shared with fork()ed children, a
 * thread that locks one and reports, and the checks every kind must pass
 * between threads of one process (which under greenld with GREENLD_HUBS=1
 * are fibers of one OS thread, the harshest case: glibc alone cannot tell
 * them apart, and a wait that blocks the OS thread blocks them all).
 * Include after test_support.h.
 */
#ifndef GREENLD_KERNEL_MUTEX_SUPPORT_H
#define GREENLD_KERNEL_MUTEX_SUPPORT_H

#include <sys/mman.h>
#include <sys/wait.h>

struct kind {
    int type;     /* PTHREAD_MUTEX_NORMAL, _RECURSIVE, _ERRORCHECK */
    int robust;   /* PTHREAD_MUTEX_ROBUST or _STALLED */
    int pshared;  /* PTHREAD_PROCESS_SHARED or _PRIVATE */
    int protocol; /* PTHREAD_PRIO_NONE, _INHERIT, _PROTECT */
};

static __attribute__((unused)) void kind_init(pthread_mutex_t *m, struct kind k)
{
    pthread_mutexattr_t a;
    CHECK_RC(pthread_mutexattr_init(&a), 0);
    CHECK_RC(pthread_mutexattr_settype(&a, k.type), 0);
    CHECK_RC(pthread_mutexattr_setrobust(&a, k.robust), 0);
    CHECK_RC(pthread_mutexattr_setpshared(&a, k.pshared), 0);
    CHECK_RC(pthread_mutexattr_setprotocol(&a, k.protocol), 0);
    if (k.protocol == PTHREAD_PRIO_PROTECT) CHECK_RC(pthread_mutexattr_setprioceiling(&a, 1), 0);
    CHECK_RC(pthread_mutex_init(m, &a), 0);
    pthread_mutexattr_destroy(&a);
}

/* Memory a fork()ed child shares. */
static __attribute__((unused)) void *shared_page(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(p != MAP_FAILED, "mmap shared");
    memset(p, 0, size);
    return p;
}

static __attribute__((unused)) int wait_exit(pid_t pid)
{
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
    CHECK(WIFEXITED(status), "child died of signal %d", WTERMSIG(status));
    return WEXITSTATUS(status);
}

/* Run first by every thread below (the priority-protection tests make
 * their threads real-time). */
static void (*g_thread_setup)(void);
static __attribute__((unused)) void thread_setup(void)
{
    if (g_thread_setup) g_thread_setup();
}

/* A thread that locks (or with timeout_ms, clocklocks on CLOCK_MONOTONIC)
 * and reports what it got; holding it, it makes it consistent if told the
 * owner died, then unlocks unless `keep`. */
struct locker {
    pthread_mutex_t *m;
    int timeout_ms;
    int keep;
    atomic_int started;
    atomic_int done;
    int rc;
    int64_t waited_ns;
};

static __attribute__((unused)) void *locker_main(void *arg)
{
    struct locker *l = arg;
    thread_setup();
    atomic_store(&l->started, 1);
    int64_t t0 = now_ns();
    if (l->timeout_ms != 0) {
        struct timespec at = abs_after_ms(CLOCK_MONOTONIC, l->timeout_ms);
        l->rc = pthread_mutex_clocklock(l->m, CLOCK_MONOTONIC, &at);
    } else {
        l->rc = pthread_mutex_lock(l->m);
    }
    l->waited_ns = now_ns() - t0;
    atomic_store(&l->done, 1);
    if (l->rc == EOWNERDEAD) CHECK_RC(pthread_mutex_consistent(l->m), 0);
    if ((l->rc == 0 || l->rc == EOWNERDEAD) && !l->keep) CHECK_RC(pthread_mutex_unlock(l->m), 0);
    return NULL;
}

static __attribute__((unused)) void wait_started(struct locker *l)
{
    while (!atomic_load(&l->started)) sleep_ms(1);
    sleep_ms(30); /* into its wait */
}

/* A robust shared mutex `m` (in memory shared with children) whose owner
 * process exits while a thread of ours waits for it: a child locks it and
 * waits until the thread waits; the thread gets it with EOWNERDEAD, and
 * another thread kept running meanwhile. `child_holds` and `parent_waits`
 * live in the shared memory too. The waiter holds `m` on return. */
static __attribute__((unused)) void check_owner_process_dies(pthread_mutex_t *m, atomic_int *child_holds,
                                                             atomic_int *parent_waits)
{
    atomic_store(child_holds, 0);
    atomic_store(parent_waits, 0);
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        CHECK_RC(pthread_mutex_lock(m), 0);
        atomic_store(child_holds, 1);
        while (!atomic_load(parent_waits)) sleep_ms(1);
        sleep_ms(100);
        _exit(0);
    }
    while (!atomic_load(child_holds)) sleep_ms(1);
    struct probe p;
    probe_start(&p);
    struct locker l = {.m = m};
    pthread_t t = spawn(locker_main, &l);
    wait_started(&l);
    atomic_store(parent_waits, 1);
    probe_expect(&p, 3000, "a thread waits for a process that dies");
    join_within(t, 5000, "the waiter after the owner process died");
    CHECK_RC(l.rc, EOWNERDEAD);
    CHECK_EQ(wait_exit(pid), 0);
    probe_stop(&p);
}

/* A shared mutex `m` (in memory shared with children) that a child process
 * holds for 300 ms: a thread of ours waits for it while another thread
 * keeps running, and gets it only after the child's unlock. `child_holds`
 * lives in the shared memory too. */
static __attribute__((unused)) void check_held_by_other_process(pthread_mutex_t *m, atomic_int *child_holds,
                                                                const char *what)
{
    set_phase(what);
    atomic_store(child_holds, 0);
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        CHECK_RC(pthread_mutex_lock(m), 0);
        atomic_store(child_holds, 1);
        sleep_ms(300);
        CHECK_RC(pthread_mutex_unlock(m), 0);
        _exit(0);
    }
    while (!atomic_load(child_holds)) sleep_ms(1);
    struct probe p;
    probe_start(&p);
    struct locker l = {.m = m};
    pthread_t t = spawn(locker_main, &l);
    wait_started(&l);
    probe_expect(&p, 3000, what);
    join_within(t, 5000, what);
    CHECK_RC(l.rc, 0);
    CHECK(l.waited_ns > 100000000, "%s: the waiter got it %lld ms in", what, (long long)(l.waited_ns / 1000000));
    CHECK_EQ(wait_exit(pid), 0);
    probe_stop(&p);
}

/* While this thread holds m, another thread of the process waits for it:
 * the others keep running (the probe answers), the waiter does not get it
 * before the unlock, and gets it after. */
static __attribute__((unused)) void check_contended(pthread_mutex_t *m, const char *what)
{
    set_phase(what);
    struct probe p;
    probe_start(&p);
    CHECK_RC(pthread_mutex_lock(m), 0);
    struct locker l = {.m = m};
    pthread_t t = spawn(locker_main, &l);
    wait_started(&l);
    probe_expect(&p, 3000, what);
    CHECK(!atomic_load(&l.done), "%s: the waiter took it while held (rc %d)", what, l.rc);
    CHECK_RC(pthread_mutex_unlock(m), 0);
    join_within(t, 5000, what);
    CHECK_RC(l.rc, 0);
    probe_stop(&p);
}

/* A timed lock of a mutex another thread holds: ETIMEDOUT after its
 * timeout, others running meanwhile. */
static __attribute__((unused)) void check_timeout(pthread_mutex_t *m, const char *what)
{
    set_phase(what);
    struct probe p;
    probe_start(&p);
    CHECK_RC(pthread_mutex_lock(m), 0);
    struct locker l = {.m = m, .timeout_ms = 300};
    pthread_t t = spawn(locker_main, &l);
    wait_started(&l);
    probe_expect(&p, 3000, what);
    join_within(t, 5000, what);
    CHECK_RC(l.rc, ETIMEDOUT);
    CHECK(l.waited_ns >= 250000000, "%s: timed out after %lld ms", what, (long long)(l.waited_ns / 1000000));
    struct locker late = {.m = m, .timeout_ms = -10}; /* a deadline already past */
    join_within(spawn(locker_main, &late), 5000, what);
    CHECK_RC(late.rc, ETIMEDOUT);
    CHECK_RC(pthread_mutex_unlock(m), 0);
    probe_stop(&p);
}

/* Ownership is per thread, not per OS thread: recursion and the error
 * checks between two threads of the process. */
struct other_op {
    pthread_mutex_t *m;
    int trylock_rc, unlock_rc, timed_rc;
};

static __attribute__((unused)) void *other_ops(void *arg)
{
    struct other_op *o = arg;
    thread_setup();
    o->trylock_rc = pthread_mutex_trylock(o->m);
    o->unlock_rc = pthread_mutex_unlock(o->m);
    struct timespec at = abs_after_ms(CLOCK_REALTIME, 50);
    o->timed_rc = pthread_mutex_timedlock(o->m, &at);
    return NULL;
}

static __attribute__((unused)) void check_ownership(pthread_mutex_t *recursive, pthread_mutex_t *errorcheck,
                                                    const char *what)
{
    set_phase(what);
    CHECK_RC(pthread_mutex_lock(recursive), 0);
    CHECK_RC(pthread_mutex_lock(recursive), 0);
    CHECK_RC(pthread_mutex_trylock(recursive), 0);
    struct other_op o = {.m = recursive};
    join_within(spawn(other_ops, &o), 5000, what);
    CHECK_RC(o.trylock_rc, EBUSY);
    CHECK_RC(o.unlock_rc, EPERM);
    CHECK_RC(o.timed_rc, ETIMEDOUT);
    for (int i = 0; i < 3; ++i) CHECK_RC(pthread_mutex_unlock(recursive), 0);
    CHECK_RC(pthread_mutex_unlock(recursive), EPERM);

    CHECK_RC(pthread_mutex_lock(errorcheck), 0);
    CHECK_RC(pthread_mutex_lock(errorcheck), EDEADLK);
    o = (struct other_op){.m = errorcheck};
    join_within(spawn(other_ops, &o), 5000, what);
    CHECK_RC(o.trylock_rc, EBUSY);
    CHECK_RC(o.unlock_rc, EPERM);
    CHECK_RC(o.timed_rc, ETIMEDOUT);
    CHECK_RC(pthread_mutex_unlock(errorcheck), 0);
    CHECK_RC(pthread_mutex_unlock(errorcheck), EPERM);
}

/* A process-private condition variable waited on with m: the signal
 * from another thread wakes the waiter, which holds m again. */
struct cond_wait_arg {
    pthread_mutex_t *m;
    pthread_cond_t cv;
    int flag;
    int rc;
};

static __attribute__((unused)) void *cond_waiter(void *arg)
{
    struct cond_wait_arg *c = arg;
    thread_setup();
    CHECK_RC(pthread_mutex_lock(c->m), 0);
    while (!c->flag && c->rc == 0) c->rc = pthread_cond_wait(&c->cv, c->m);
    CHECK_RC(pthread_mutex_unlock(c->m), 0);
    return NULL;
}

static __attribute__((unused)) void check_condvar(pthread_mutex_t *m, const char *what)
{
    set_phase(what);
    struct cond_wait_arg c = {.m = m};
    CHECK_RC(pthread_cond_init(&c.cv, NULL), 0);
    pthread_t t = spawn(cond_waiter, &c);
    sleep_ms(50);
    CHECK_RC(pthread_mutex_lock(m), 0);
    c.flag = 1;
    CHECK_RC(pthread_cond_signal(&c.cv), 0);
    CHECK_RC(pthread_mutex_unlock(m), 0);
    join_within(t, 5000, what);
    CHECK_RC(c.rc, 0);
    CHECK_RC(pthread_mutex_trylock(m), 0);
    CHECK_RC(pthread_mutex_unlock(m), 0);
    pthread_cond_destroy(&c.cv);
}

/* Two processes, `threads` threads each, add under the lock: nothing lost. */
struct counter_page {
    pthread_mutex_t m;
    long counter;
};

static struct counter_page *g_counter;
enum { kCounterRounds = 200 };

static __attribute__((unused)) void *count_main(void *arg)
{
    (void)arg;
    thread_setup();
    for (int i = 0; i < kCounterRounds; ++i) {
        CHECK_RC(pthread_mutex_lock(&g_counter->m), 0);
        long v = g_counter->counter;
        if (i % 16 == 0) sched_yield();
        g_counter->counter = v + 1;
        CHECK_RC(pthread_mutex_unlock(&g_counter->m), 0);
    }
    return NULL;
}

static __attribute__((unused)) void check_counter(struct kind k, int threads, const char *what)
{
    set_phase(what);
    g_counter = shared_page(sizeof *g_counter);
    kind_init(&g_counter->m, k);
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    pthread_t t[8];
    for (int i = 0; i < threads; ++i) t[i] = spawn(count_main, NULL);
    for (int i = 0; i < threads; ++i) join_within(t[i], 20000, what);
    if (pid == 0) _exit(0);
    CHECK_EQ(wait_exit(pid), 0);
    CHECK_EQ(g_counter->counter, 2L * threads * kCounterRounds);
}

#endif
