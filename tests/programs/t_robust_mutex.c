/*
 * t_robust_mutex.c — robust process-private mutexes when their owner thread
 * ends holding them.
 *   - the next locker gets EOWNERDEAD and holds the mutex; after
 *     pthread_mutex_consistent it is an ordinary mutex again; consistent on
 *     a consistent mutex is EINVAL;
 *   - unlocked without pthread_mutex_consistent, it is ENOTRECOVERABLE for
 *     every later lock, trylock, and for the threads already waiting;
 *   - a thread waiting in pthread_mutex_lock while the owner sleeps and then
 *     ends gets EOWNERDEAD, and a ticker thread kept ticking meanwhile;
 *   - error checking: relock EDEADLK, unlock by another thread EPERM;
 *     recursive: an owner that ends holding it twice leaves it EOWNERDEAD
 *     with a count of one;
 *   - pthread_cond_wait relocking a robust mutex whose owner ended reports
 *     EOWNERDEAD.
 */
#include "test_support.h"

static pthread_mutex_t g_m;

static void robust_init(pthread_mutex_t *m, int type)
{
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    CHECK_RC(pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST), 0);
    CHECK_RC(pthread_mutexattr_settype(&a, type), 0);
    CHECK_RC(pthread_mutex_init(m, &a), 0);
    pthread_mutexattr_destroy(&a);
}

struct hold {
    pthread_mutex_t *m;
    int times;
    int sleep_ms_before_exit;
    atomic_int locked;
};

static void *lock_and_die(void *arg)
{
    struct hold *h = arg;
    for (int i = 0; i < h->times; ++i) CHECK_RC(pthread_mutex_lock(h->m), 0);
    atomic_store(&h->locked, 1);
    if (h->sleep_ms_before_exit) sleep_ms(h->sleep_ms_before_exit);
    return NULL; /* ends holding it */
}

static void owner_dies(pthread_mutex_t *m, int times)
{
    struct hold h = {m, times, 0, 0};
    join(spawn(lock_and_die, &h));
}

struct locker {
    pthread_mutex_t *m;
    int rc;
    int unlock_inconsistent; /* unlock without making it consistent */
    atomic_int started;
};

static void *locker_main(void *arg)
{
    struct locker *l = arg;
    atomic_store(&l->started, 1);
    l->rc = pthread_mutex_lock(l->m);
    if (l->rc == EOWNERDEAD && l->unlock_inconsistent) CHECK_RC(pthread_mutex_unlock(l->m), 0);
    return NULL;
}

/* ---- cond_wait ---- */

static pthread_mutex_t g_cm;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static atomic_int g_cwaiting;

static void *cond_waiter(void *arg)
{
    (void)arg;
    CHECK_RC(pthread_mutex_lock(&g_cm), 0);
    atomic_store(&g_cwaiting, 1);
    int rc = pthread_cond_wait(&g_cv, &g_cm);
    return (void *)(long)rc;
}

static void *signal_and_die(void *arg)
{
    (void)arg;
    CHECK_RC(pthread_mutex_lock(&g_cm), 0);
    CHECK_RC(pthread_cond_signal(&g_cv), 0);
    return NULL; /* ends holding the mutex the waiter must relock */
}

static void *errorcheck_other(void *arg)
{
    CHECK_RC(pthread_mutex_unlock((pthread_mutex_t *)arg), EPERM);
    return NULL;
}

int main(void)
{
    watchdog(60);
    ticker_start();

    set_phase("EOWNERDEAD, then consistent");
    robust_init(&g_m, PTHREAD_MUTEX_NORMAL);
    owner_dies(&g_m, 1);
    CHECK_RC(pthread_mutex_lock(&g_m), EOWNERDEAD);
    CHECK_RC(pthread_mutex_consistent(&g_m), 0);
    CHECK_RC(pthread_mutex_unlock(&g_m), 0);
    CHECK_RC(pthread_mutex_lock(&g_m), 0);
    CHECK_RC(pthread_mutex_consistent(&g_m), EINVAL);
    CHECK_RC(pthread_mutex_unlock(&g_m), 0);

    set_phase("trylock sees EOWNERDEAD too");
    owner_dies(&g_m, 1);
    CHECK_RC(pthread_mutex_trylock(&g_m), EOWNERDEAD);

    set_phase("unlocked inconsistent: ENOTRECOVERABLE");
    CHECK_RC(pthread_mutex_unlock(&g_m), 0);
    CHECK_RC(pthread_mutex_lock(&g_m), ENOTRECOVERABLE);
    CHECK_RC(pthread_mutex_trylock(&g_m), ENOTRECOVERABLE);
    CHECK_RC(pthread_mutex_destroy(&g_m), 0);

    set_phase("a waiter gets EOWNERDEAD when the sleeping owner ends");
    robust_init(&g_m, PTHREAD_MUTEX_NORMAL);
    struct hold h = {&g_m, 1, 300, 0};
    pthread_t owner = spawn(lock_and_die, &h);
    while (!atomic_load(&h.locked)) sleep_ms(1);
    long ticks = ticker_ticks();
    struct locker l = {&g_m, -1, 0, 0};
    pthread_t w = spawn(locker_main, &l);
    join_within(w, 5000, "robust waiter");
    CHECK_RC(l.rc, EOWNERDEAD);
    ticker_expect(ticks, 20, "waiting for a robust mutex");
    join(owner);
    /* The waiter ended holding it in turn. */
    CHECK_RC(pthread_mutex_lock(&g_m), EOWNERDEAD);
    CHECK_RC(pthread_mutex_consistent(&g_m), 0);
    CHECK_RC(pthread_mutex_unlock(&g_m), 0);

    set_phase("waiters queued when it becomes unrecoverable");
    struct hold h2 = {&g_m, 1, 300, 0};
    owner = spawn(lock_and_die, &h2);
    while (!atomic_load(&h2.locked)) sleep_ms(1);
    /* Two: glibc 2.36 wakes only one waiter past the first ENOTRECOVERABLE. */
    struct locker ls[2];
    pthread_t ws[2];
    for (int i = 0; i < 2; ++i) {
        ls[i] = (struct locker){&g_m, -1, 1, 0};
        ws[i] = spawn(locker_main, &ls[i]);
    }
    for (int i = 0; i < 2; ++i) join_within(ws[i], 5000, "queued robust waiter");
    join(owner);
    int dead = 0, unrecoverable = 0;
    for (int i = 0; i < 2; ++i) {
        dead += ls[i].rc == EOWNERDEAD;
        unrecoverable += ls[i].rc == ENOTRECOVERABLE;
    }
    CHECK(dead == 1 && unrecoverable == 1, "EOWNERDEAD %d times, ENOTRECOVERABLE %d times", dead, unrecoverable);

    set_phase("error checking robust mutex");
    robust_init(&g_m, PTHREAD_MUTEX_ERRORCHECK);
    CHECK_RC(pthread_mutex_lock(&g_m), 0);
    CHECK_RC(pthread_mutex_lock(&g_m), EDEADLK);
    join(spawn(errorcheck_other, &g_m));
    CHECK_RC(pthread_mutex_unlock(&g_m), 0);
    CHECK_RC(pthread_mutex_unlock(&g_m), EPERM);

    set_phase("recursive robust mutex held twice by a dead owner");
    robust_init(&g_m, PTHREAD_MUTEX_RECURSIVE);
    owner_dies(&g_m, 2);
    CHECK_RC(pthread_mutex_lock(&g_m), EOWNERDEAD);
    CHECK_RC(pthread_mutex_consistent(&g_m), 0);
    CHECK_RC(pthread_mutex_unlock(&g_m), 0);
    CHECK_RC(pthread_mutex_trylock(&g_m), 0);
    CHECK_RC(pthread_mutex_unlock(&g_m), 0);

    set_phase("pthread_cond_wait relocks a robust mutex whose owner ended");
    robust_init(&g_cm, PTHREAD_MUTEX_NORMAL);
    pthread_t cw = spawn(cond_waiter, NULL);
    while (!atomic_load(&g_cwaiting)) sleep_ms(1);
    sleep_ms(50);
    join(spawn(signal_and_die, NULL));
    long rc = (long)join_within(cw, 5000, "cond waiter");
    CHECK_RC((int)rc, EOWNERDEAD);
    /* The waiter ended holding it, still inconsistent. */
    CHECK_RC(pthread_mutex_lock(&g_cm), EOWNERDEAD);
    CHECK_RC(pthread_mutex_consistent(&g_cm), 0);
    CHECK_RC(pthread_mutex_unlock(&g_cm), 0);

    ticker_stop();
    printf("ok\n");
    return 0;
}
