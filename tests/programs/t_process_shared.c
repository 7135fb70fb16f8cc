/*
 * t_process_shared.c — process-shared mutexes and semaphores, and named
 * semaphores, between forked processes, with several threads contending
 * in each; a waiting thread parks only itself (a ticker keeps ticking).
 *   - a PTHREAD_PROCESS_SHARED mutex: 2 processes x 4 threads increment a
 *     shared counter under it; no increment is lost; while one process
 *     holds it for 300 ms, the other's waiting threads let its ticker run;
 *   - error checking across processes: the child of the thread that holds
 *     an error-checking shared mutex does not own it (trylock EBUSY,
 *     unlock EPERM), even with the same thread identity;
 *   - sem_init(pshared=1): posts from the other process wake sem_wait;
 *     sem_timedwait and sem_clockwait time out with ETIMEDOUT; a handler
 *     without SA_RESTART makes sem_wait fail with EINTR, one with
 *     SA_RESTART lets it go on waiting;
 *   - a process-shared condition variable: threads of both processes wait on
 *     it (with the shared mutex) and a broadcast from the other process
 *     wakes them; a process-shared barrier across the two processes;
 *   - a process-shared read-write lock: readers and a writer of this process
 *     wait for the other process's writer and reader; EDEADLK for its own
 *     writer; clockwrlock times out;
 *   - sem_open: a named semaphore posted by another process wakes
 *     sem_wait and sem_clockwait in this one; sem_timedwait times out.
 */
#include "signal_support.h"

#include <semaphore.h>
#include <sys/mman.h>
#include <sys/wait.h>

struct shared {
    pthread_mutex_t lock;
    pthread_mutex_t check; /* error checking */
    long counter;
    sem_t to_parent;
    sem_t to_child;
    sem_t never;
    atomic_int child_holds;
    pthread_cond_t cv; /* process-shared */
    int go;
    int woken;
    pthread_barrier_t barrier; /* process-shared, 4 threads: 2 per process */
    pthread_rwlock_t rw;       /* process-shared */
    atomic_int child_stage;
};

static struct shared *g_sh;

enum { kThreads = 4, kRounds = 300 };

static void *incrementer(void *arg)
{
    (void)arg;
    for (int i = 0; i < kRounds; ++i) {
        CHECK_RC(pthread_mutex_lock(&g_sh->lock), 0);
        long v = g_sh->counter;
        if (i % 16 == 0) sched_yield(); /* let others pile up on the lock */
        g_sh->counter = v + 1;
        CHECK_RC(pthread_mutex_unlock(&g_sh->lock), 0);
    }
    return NULL;
}

static void run_incrementers(void)
{
    pthread_t t[kThreads];
    for (int i = 0; i < kThreads; ++i) t[i] = spawn(incrementer, NULL);
    for (int i = 0; i < kThreads; ++i) join_within(t[i], 30000, "incrementer");
}

static int wait_child(pid_t pid)
{
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* ---- the mutex ---- */

static void mutex_phase(void)
{
    set_phase("shared mutex: counter under contention from two processes");
    g_sh->counter = 0;
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        run_incrementers();
        _exit(0);
    }
    run_incrementers();
    CHECK_EQ(wait_child(pid), 0);
    CHECK_EQ(g_sh->counter, 2L * kThreads * kRounds);

    set_phase("shared mutex held by another process: waiters park");
    atomic_store(&g_sh->child_holds, 0);
    pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        CHECK_RC(pthread_mutex_lock(&g_sh->lock), 0);
        atomic_store(&g_sh->child_holds, 1);
        sleep_ms(300);
        CHECK_RC(pthread_mutex_unlock(&g_sh->lock), 0);
        _exit(0);
    }
    while (!atomic_load(&g_sh->child_holds)) sleep_ms(1);
    long ticks = ticker_ticks();
    int64_t t0 = now_ns();
    g_sh->counter = 0;
    run_incrementers();
    CHECK(now_ns() - t0 > 200000000LL, "the lock was taken while the other process held it");
    CHECK_EQ(g_sh->counter, (long)kThreads * kRounds);
    ticker_expect(ticks, 20, "threads waiting for a shared mutex");
    CHECK_EQ(wait_child(pid), 0);
}

static void *check_holder(void *arg)
{
    (void)arg;
    CHECK_RC(pthread_mutex_lock(&g_sh->check), 0);
    CHECK_RC(pthread_mutex_lock(&g_sh->check), EDEADLK);
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        CHECK_RC(pthread_mutex_trylock(&g_sh->check), EBUSY);
        CHECK_RC(pthread_mutex_unlock(&g_sh->check), EPERM);
        _exit(0);
    }
    CHECK_EQ(wait_child(pid), 0);
    CHECK_RC(pthread_mutex_unlock(&g_sh->check), 0);
    return NULL;
}

/* ---- condition variable and barrier ---- */

static void *cond_waiter(void *arg)
{
    (void)arg;
    CHECK_RC(pthread_mutex_lock(&g_sh->lock), 0);
    while (!g_sh->go) CHECK_RC(pthread_cond_wait(&g_sh->cv, &g_sh->lock), 0);
    g_sh->woken++;
    CHECK_RC(pthread_mutex_unlock(&g_sh->lock), 0);
    return NULL;
}

static void *barrier_waiter(void *arg)
{
    (void)arg;
    int rc = pthread_barrier_wait(&g_sh->barrier);
    CHECK(rc == 0 || rc == PTHREAD_BARRIER_SERIAL_THREAD, "pthread_barrier_wait: %d", rc);
    return (void *)(long)(rc == PTHREAD_BARRIER_SERIAL_THREAD);
}

static void cond_phase(void)
{
    set_phase("shared condition variable: a broadcast from another process");
    g_sh->go = 0;
    g_sh->woken = 0;
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        pthread_t t[2];
        for (int i = 0; i < 2; ++i) t[i] = spawn(cond_waiter, NULL);
        sleep_ms(300);
        CHECK_RC(pthread_mutex_lock(&g_sh->lock), 0);
        g_sh->go = 1;
        CHECK_RC(pthread_cond_broadcast(&g_sh->cv), 0);
        CHECK_RC(pthread_mutex_unlock(&g_sh->lock), 0);
        for (int i = 0; i < 2; ++i) join_within(t[i], 5000, "child cond waiter");
        _exit(0);
    }
    long ticks = ticker_ticks();
    pthread_t t[2];
    for (int i = 0; i < 2; ++i) t[i] = spawn(cond_waiter, NULL);
    for (int i = 0; i < 2; ++i) join_within(t[i], 5000, "cond waiter");
    ticker_expect(ticks, 20, "pthread_cond_wait on a shared condition variable");
    CHECK_EQ(wait_child(pid), 0);
    CHECK_EQ(g_sh->woken, 4);

    set_phase("shared barrier across two processes");
    pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        sleep_ms(300);
        pthread_t b[2];
        long serial = 0;
        for (int i = 0; i < 2; ++i) b[i] = spawn(barrier_waiter, NULL);
        for (int i = 0; i < 2; ++i) serial += (long)join_within(b[i], 5000, "child barrier waiter");
        _exit((int)serial);
    }
    ticks = ticker_ticks();
    pthread_t b[2];
    long serial = 0;
    for (int i = 0; i < 2; ++i) b[i] = spawn(barrier_waiter, NULL);
    for (int i = 0; i < 2; ++i) serial += (long)join_within(b[i], 5000, "barrier waiter");
    ticker_expect(ticks, 20, "pthread_barrier_wait on a shared barrier");
    serial += wait_child(pid);
    CHECK(serial == 1, "%ld threads were told PTHREAD_BARRIER_SERIAL_THREAD", serial);
}

/* ---- read-write lock ---- */

static void *rw_reader(void *arg)
{
    (void)arg;
    CHECK_RC(pthread_rwlock_rdlock(&g_sh->rw), 0);
    CHECK_RC(pthread_rwlock_unlock(&g_sh->rw), 0);
    return NULL;
}

static void *rw_writer(void *arg)
{
    (void)arg;
    CHECK_RC(pthread_rwlock_wrlock(&g_sh->rw), 0);
    CHECK_RC(pthread_rwlock_rdlock(&g_sh->rw), EDEADLK);
    CHECK_RC(pthread_rwlock_wrlock(&g_sh->rw), EDEADLK);
    CHECK_RC(pthread_rwlock_trywrlock(&g_sh->rw), EBUSY);
    CHECK_RC(pthread_rwlock_unlock(&g_sh->rw), 0);
    return NULL;
}

static void *rw_timed_writer(void *arg)
{
    (void)arg;
    struct timespec ts = abs_after_ms(CLOCK_MONOTONIC, 150);
    CHECK_RC(pthread_rwlock_clockwrlock(&g_sh->rw, CLOCK_MONOTONIC, &ts), ETIMEDOUT);
    return NULL;
}

static void rwlock_phase(void)
{
    set_phase("shared rwlock: readers wait for another process's writer");
    atomic_store(&g_sh->child_stage, 0);
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        CHECK_RC(pthread_rwlock_wrlock(&g_sh->rw), 0);
        atomic_store(&g_sh->child_stage, 1);
        sleep_ms(300);
        CHECK_RC(pthread_rwlock_unlock(&g_sh->rw), 0);
        CHECK_RC(pthread_rwlock_rdlock(&g_sh->rw), 0);
        atomic_store(&g_sh->child_stage, 2);
        sleep_ms(300);
        CHECK_RC(pthread_rwlock_unlock(&g_sh->rw), 0);
        _exit(0);
    }
    while (atomic_load(&g_sh->child_stage) != 1) sleep_ms(1);
    long ticks = ticker_ticks();
    pthread_t r[2];
    for (int i = 0; i < 2; ++i) r[i] = spawn(rw_reader, NULL);
    for (int i = 0; i < 2; ++i) join_within(r[i], 5000, "shared rwlock reader");
    ticker_expect(ticks, 20, "readers waiting for a shared rwlock");

    set_phase("shared rwlock: a writer waits for another process's reader");
    while (atomic_load(&g_sh->child_stage) != 2) sleep_ms(1);
    ticks = ticker_ticks();
    join_within(spawn(rw_timed_writer, NULL), 5000, "timed writer");
    ticker_expect(ticks, 20, "a writer timing out on a shared rwlock");
    join_within(spawn(rw_writer, NULL), 5000, "shared rwlock writer");
    CHECK_EQ(wait_child(pid), 0);
}

/* ---- semaphores ---- */

static atomic_int g_hits;
static void on_usr1(int sig)
{
    (void)sig;
    atomic_fetch_add(&g_hits, 1);
}

struct sem_wait_args {
    sem_t *sem;
    int rc, err;
    atomic_int started;
};

static void *sem_waiter(void *arg)
{
    struct sem_wait_args *a = arg;
    atomic_store(&a->started, 1);
    errno = 0;
    a->rc = sem_wait(a->sem);
    a->err = errno;
    return NULL;
}

static void semaphore_phase(void)
{
    set_phase("shared semaphore: ping-pong with another process");
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        for (int i = 0; i < 200; ++i) {
            CHECK(sem_wait(&g_sh->to_child) == 0, "child sem_wait");
            CHECK(sem_post(&g_sh->to_parent) == 0, "child sem_post");
        }
        sleep_ms(300);
        CHECK(sem_post(&g_sh->to_parent) == 0, "child late sem_post");
        _exit(0);
    }
    for (int i = 0; i < 200; ++i) {
        CHECK(sem_post(&g_sh->to_child) == 0, "sem_post");
        CHECK(sem_wait(&g_sh->to_parent) == 0, "sem_wait");
    }
    set_phase("shared semaphore: a thread waits for a post 300 ms later");
    long ticks = ticker_ticks();
    struct sem_wait_args a = {.sem = &g_sh->to_parent};
    join_within(spawn(sem_waiter, &a), 5000, "sem_wait");
    CHECK(a.rc == 0, "sem_wait: %d errno %d", a.rc, a.err);
    ticker_expect(ticks, 20, "sem_wait on a shared semaphore");
    CHECK_EQ(wait_child(pid), 0);

    set_phase("shared semaphore: sem_timedwait and sem_clockwait time out");
    ticks = ticker_ticks();
    struct timespec ts = abs_after_ms(CLOCK_REALTIME, 150);
    errno = 0;
    CHECK(sem_timedwait(&g_sh->never, &ts) == -1 && errno == ETIMEDOUT, "sem_timedwait: errno %d", errno);
    ts = abs_after_ms(CLOCK_MONOTONIC, 150);
    errno = 0;
    CHECK(sem_clockwait(&g_sh->never, CLOCK_MONOTONIC, &ts) == -1 && errno == ETIMEDOUT,
          "sem_clockwait: errno %d", errno);
    ticker_expect(ticks, 20, "sem_timedwait on a shared semaphore");

    set_phase("shared semaphore: a handler without SA_RESTART interrupts sem_wait");
    on(SIGUSR1, on_usr1, 0);
    struct sem_wait_args b = {.sem = &g_sh->never};
    pthread_t t = spawn(sem_waiter, &b);
    while (!atomic_load(&b.started)) sleep_ms(1);
    sleep_ms(100);
    CHECK_RC(pthread_kill(t, SIGUSR1), 0);
    join_within(t, 5000, "interrupted sem_wait");
    CHECK(b.rc == -1 && b.err == EINTR, "sem_wait: %d errno %d, expected EINTR", b.rc, b.err);

    set_phase("shared semaphore: a SA_RESTART handler lets sem_wait go on");
    on(SIGUSR1, on_usr1, SA_RESTART);
    int hits = atomic_load(&g_hits);
    struct sem_wait_args c = {.sem = &g_sh->never};
    t = spawn(sem_waiter, &c);
    while (!atomic_load(&c.started)) sleep_ms(1);
    sleep_ms(100);
    CHECK_RC(pthread_kill(t, SIGUSR1), 0);
    while (atomic_load(&g_hits) == hits) sleep_ms(1);
    sleep_ms(100);
    CHECK(sem_post(&g_sh->never) == 0, "sem_post");
    join_within(t, 5000, "restarted sem_wait");
    CHECK(c.rc == 0, "sem_wait after a SA_RESTART handler: %d errno %d", c.rc, c.err);
}

static void named_phase(void)
{
    set_phase("named semaphore posted by another process");
    char name[64];
    snprintf(name, sizeof name, "/greenld_t_process_shared_%d", (int)getpid());
    sem_t *s = sem_open(name, O_CREAT | O_EXCL, 0600, 0);
    CHECK(s != SEM_FAILED, "sem_open(%s)", name);
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        sem_t *c = sem_open(name, 0);
        CHECK(c != SEM_FAILED, "child sem_open");
        sleep_ms(300);
        CHECK(sem_post(c) == 0, "child sem_post");
        sleep_ms(300);
        CHECK(sem_post(c) == 0, "child sem_post");
        _exit(0);
    }
    long ticks = ticker_ticks();
    struct sem_wait_args a = {.sem = s};
    join_within(spawn(sem_waiter, &a), 5000, "sem_wait on a named semaphore");
    CHECK(a.rc == 0, "sem_wait: %d errno %d", a.rc, a.err);
    ticker_expect(ticks, 20, "sem_wait on a named semaphore");
    struct timespec ts = abs_after_ms(CLOCK_MONOTONIC, 5000);
    CHECK(sem_clockwait(s, CLOCK_MONOTONIC, &ts) == 0, "sem_clockwait on a named semaphore");
    CHECK_EQ(wait_child(pid), 0);
    ticks = ticker_ticks();
    ts = abs_after_ms(CLOCK_REALTIME, 150);
    errno = 0;
    CHECK(sem_timedwait(s, &ts) == -1 && errno == ETIMEDOUT, "sem_timedwait on a named semaphore: errno %d", errno);
    ticker_expect(ticks, 20, "sem_timedwait on a named semaphore");
    CHECK(sem_close(s) == 0, "sem_close");
    CHECK(sem_unlink(name) == 0, "sem_unlink");
}

int main(void)
{
    sig_watchdog(90);
    g_sh = mmap(NULL, sizeof *g_sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(g_sh != MAP_FAILED, "mmap");
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    CHECK_RC(pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED), 0);
    CHECK_RC(pthread_mutex_init(&g_sh->lock, &ma), 0);
    CHECK_RC(pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ERRORCHECK), 0);
    CHECK_RC(pthread_mutex_init(&g_sh->check, &ma), 0);
    pthread_mutexattr_destroy(&ma);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    CHECK_RC(pthread_condattr_setpshared(&ca, PTHREAD_PROCESS_SHARED), 0);
    CHECK_RC(pthread_cond_init(&g_sh->cv, &ca), 0);
    pthread_condattr_destroy(&ca);
    pthread_barrierattr_t ba;
    pthread_barrierattr_init(&ba);
    CHECK_RC(pthread_barrierattr_setpshared(&ba, PTHREAD_PROCESS_SHARED), 0);
    CHECK_RC(pthread_barrier_init(&g_sh->barrier, &ba, 4), 0);
    pthread_barrierattr_destroy(&ba);
    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
    CHECK_RC(pthread_rwlockattr_setpshared(&ra, PTHREAD_PROCESS_SHARED), 0);
    CHECK_RC(pthread_rwlock_init(&g_sh->rw, &ra), 0);
    pthread_rwlockattr_destroy(&ra);
    CHECK(sem_init(&g_sh->to_parent, 1, 0) == 0, "sem_init");
    CHECK(sem_init(&g_sh->to_child, 1, 0) == 0, "sem_init");
    CHECK(sem_init(&g_sh->never, 1, 0) == 0, "sem_init");
    ticker_start();

    mutex_phase();
    set_phase("error checking across processes");
    join_within(spawn(check_holder, NULL), 10000, "check_holder");
    cond_phase();
    rwlock_phase();
    semaphore_phase();
    named_phase();

    ticker_stop();
    CHECK_RC(pthread_mutex_destroy(&g_sh->lock), 0);
    CHECK_RC(pthread_mutex_destroy(&g_sh->check), 0);
    printf("ok\n");
    return 0;
}
