/* t_mutex: pthread mutexes keep their POSIX/glibc semantics.
 *
 * Mutual exclusion under contention (default and statically initialised
 * mutexes), recursive and error-checking types and their error codes,
 * trylock, timedlock/clocklock timeouts and EINVAL, and a mutex shared
 * between the native main thread and a created thread in both directions.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "test_support.h"

/* ---- mutual exclusion under contention */

enum { COUNT_THREADS = 8, COUNT_ITERS = 100000 };

struct counter {
    pthread_mutex_t *m;
    long value; /* plain, not atomic: only the mutex protects it */
};

static void *count_worker(void *arg) {
    struct counter *c = arg;
    for (int i = 0; i < COUNT_ITERS; ++i) {
        CHECK_RC(pthread_mutex_lock(c->m), 0);
        long v = c->value;
        /* Widen the window a lost update needs. */
        __asm__ volatile("" ::: "memory");
        c->value = v + 1;
        CHECK_RC(pthread_mutex_unlock(c->m), 0);
    }
    return NULL;
}

static void count_with(pthread_mutex_t *m, const char *what) {
    struct counter c = {m, 0};
    pthread_t t[COUNT_THREADS];
    for (int i = 0; i < COUNT_THREADS; ++i) t[i] = spawn(count_worker, &c);
    /* The native main thread competes too. */
    count_worker(&c);
    for (int i = 0; i < COUNT_THREADS; ++i) join(t[i]);
    CHECK(c.value == (long)(COUNT_THREADS + 1) * COUNT_ITERS, "%s: counter %ld, expected %ld", what, c.value,
          (long)(COUNT_THREADS + 1) * COUNT_ITERS);
}

static pthread_mutex_t static_mutex = PTHREAD_MUTEX_INITIALIZER;

static void test_counting(void) {
    pthread_mutex_t m;
    CHECK_RC(pthread_mutex_init(&m, NULL), 0);
    count_with(&m, "pthread_mutex_init(NULL) mutex");
    CHECK_RC(pthread_mutex_destroy(&m), 0);
    count_with(&static_mutex, "PTHREAD_MUTEX_INITIALIZER mutex");
}

/* ---- recursive */

struct trylock_case {
    pthread_mutex_t *m;
    int want;
};

static void *trylock_expect(void *arg) {
    struct trylock_case *tc = arg;
    int rc = pthread_mutex_trylock(tc->m);
    CHECK_RC(rc, tc->want);
    if (rc == 0) CHECK_RC(pthread_mutex_unlock(tc->m), 0);
    return NULL;
}

/* Runs trylock in a new thread and checks its result. */
static void trylock_from_other_thread(pthread_mutex_t *m, int want) {
    struct trylock_case tc = {m, want};
    join(spawn(trylock_expect, &tc));
}

static void exercise_recursive(pthread_mutex_t *m, const char *what) {
    for (int i = 0; i < 3; ++i) CHECK(pthread_mutex_lock(m) == 0, "%s: lock #%d", what, i + 1);
    CHECK(pthread_mutex_trylock(m) == 0, "%s: trylock by the owner", what);
    trylock_from_other_thread(m, EBUSY);
    for (int i = 0; i < 4; ++i) {
        int rc = pthread_mutex_unlock(m);
        CHECK(rc == 0, "%s: unlock #%d returned %s", what, i + 1, strerror(rc));
        if (i < 3) trylock_from_other_thread(m, EBUSY); /* still held */
    }
    trylock_from_other_thread(m, 0); /* released: another thread gets it */
    int rc = pthread_mutex_unlock(m);
    CHECK(rc == EPERM, "%s: unlock of an unlocked recursive mutex returned %d (%s), expected EPERM", what, rc,
          strerror(rc));
}

static void *recursive_in_thread(void *arg) {
    exercise_recursive(arg, "recursive mutex in a created thread");
    return NULL;
}

static pthread_mutex_t static_recursive = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;

static void test_recursive(void) {
    pthread_mutexattr_t a;
    CHECK_RC(pthread_mutexattr_init(&a), 0);
    CHECK_RC(pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE), 0);
    pthread_mutex_t m;
    CHECK_RC(pthread_mutex_init(&m, &a), 0);
    CHECK_RC(pthread_mutexattr_destroy(&a), 0);
    exercise_recursive(&m, "recursive mutex (attr) in main");
    join(spawn(recursive_in_thread, &m));
    CHECK_RC(pthread_mutex_destroy(&m), 0);
    exercise_recursive(&static_recursive, "PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP in main");
    join(spawn(recursive_in_thread, &static_recursive));
}

/* ---- error checking */

static void *unlock_expect_eperm(void *arg) {
    CHECK_RC(pthread_mutex_unlock(arg), EPERM);
    return NULL;
}

static void exercise_errorcheck(pthread_mutex_t *m) {
    CHECK_RC(pthread_mutex_lock(m), 0);
    CHECK_RC(pthread_mutex_lock(m), EDEADLK);
    CHECK_RC(pthread_mutex_trylock(m), EBUSY);
    join(spawn(unlock_expect_eperm, m)); /* not the owner */
    trylock_from_other_thread(m, EBUSY); /* that failed unlock released nothing */
    CHECK_RC(pthread_mutex_unlock(m), 0);
    CHECK_RC(pthread_mutex_unlock(m), EPERM); /* not locked */
    join(spawn(unlock_expect_eperm, m));     /* not locked, from another thread */
    trylock_from_other_thread(m, 0);
}

static void *errorcheck_in_thread(void *arg) {
    exercise_errorcheck(arg);
    return NULL;
}

static pthread_mutex_t static_errorcheck = PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP;

static void test_errorcheck(void) {
    pthread_mutexattr_t a;
    CHECK_RC(pthread_mutexattr_init(&a), 0);
    CHECK_RC(pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK), 0);
    pthread_mutex_t m;
    CHECK_RC(pthread_mutex_init(&m, &a), 0);
    CHECK_RC(pthread_mutexattr_destroy(&a), 0);
    exercise_errorcheck(&m);
    join(spawn(errorcheck_in_thread, &m));
    CHECK_RC(pthread_mutex_destroy(&m), 0);
    exercise_errorcheck(&static_errorcheck);
    join(spawn(errorcheck_in_thread, &static_errorcheck));
}

/* ---- trylock, timedlock, clocklock */

struct holder {
    pthread_mutex_t *m;
    struct pipe_event locked, release;
};

/* Locks m, says so, and keeps it until told to release it. */
static void *hold_until_released(void *arg) {
    struct holder *h = arg;
    CHECK_RC(pthread_mutex_lock(h->m), 0);
    pipe_event_set(&h->locked);
    pipe_event_wait(&h->release);
    CHECK_RC(pthread_mutex_unlock(h->m), 0);
    return NULL;
}

static pthread_t start_holder(struct holder *h, pthread_mutex_t *m) {
    h->m = m;
    pipe_event_init(&h->locked);
    pipe_event_init(&h->release);
    pthread_t t = spawn(hold_until_released, h);
    pipe_event_wait(&h->locked);
    return t;
}

static void stop_holder(struct holder *h, pthread_t t) {
    pipe_event_set(&h->release);
    join(t);
    pipe_event_destroy(&h->locked);
    pipe_event_destroy(&h->release);
}

/* Times out on a mutex another thread holds, in every way there is. */
static void timeouts_on(pthread_mutex_t *m, const char *who) {
    CHECK(pthread_mutex_trylock(m) == EBUSY, "%s: trylock on a mutex held by another thread", who);

    int64_t t0 = now_ns();
    struct timespec abs = abs_after_ms(CLOCK_REALTIME, 100);
    int rc = pthread_mutex_timedlock(m, &abs);
    int64_t ms = (now_ns() - t0) / 1000000;
    CHECK(rc == ETIMEDOUT, "%s: pthread_mutex_timedlock returned %d (%s), expected ETIMEDOUT", who, rc, strerror(rc));
    CHECK(ms >= 99 && ms < 1000, "%s: pthread_mutex_timedlock(+100 ms) took %lld ms", who, (long long)ms);

    t0 = now_ns();
    abs = abs_after_ms(CLOCK_MONOTONIC, 100);
    rc = pthread_mutex_clocklock(m, CLOCK_MONOTONIC, &abs);
    ms = (now_ns() - t0) / 1000000;
    CHECK(rc == ETIMEDOUT, "%s: pthread_mutex_clocklock(MONOTONIC) returned %d (%s), expected ETIMEDOUT", who, rc,
          strerror(rc));
    CHECK(ms >= 100 && ms < 1000, "%s: pthread_mutex_clocklock(MONOTONIC, +100 ms) took %lld ms", who,
          (long long)ms);

    t0 = now_ns();
    abs = abs_after_ms(CLOCK_REALTIME, 100);
    rc = pthread_mutex_clocklock(m, CLOCK_REALTIME, &abs);
    ms = (now_ns() - t0) / 1000000;
    CHECK(rc == ETIMEDOUT, "%s: pthread_mutex_clocklock(REALTIME) returned %d (%s), expected ETIMEDOUT", who, rc,
          strerror(rc));
    CHECK(ms >= 99 && ms < 1000, "%s: pthread_mutex_clocklock(REALTIME, +100 ms) took %lld ms", who, (long long)ms);

    /* An abstime in the past times out at once. */
    t0 = now_ns();
    abs = abs_after_ms(CLOCK_REALTIME, -1000);
    rc = pthread_mutex_timedlock(m, &abs);
    ms = (now_ns() - t0) / 1000000;
    CHECK(rc == ETIMEDOUT, "%s: timedlock with a past abstime returned %d (%s)", who, rc, strerror(rc));
    CHECK(ms < 100, "%s: timedlock with a past abstime took %lld ms", who, (long long)ms);

    /* Contended, so the timeout matters: a bad tv_nsec is EINVAL. */
    struct timespec bad = abs_after_ms(CLOCK_REALTIME, 100);
    bad.tv_nsec = 1000000000;
    rc = pthread_mutex_timedlock(m, &bad);
    CHECK(rc == EINVAL, "%s: timedlock with tv_nsec=1e9 returned %d (%s), expected EINVAL", who, rc, strerror(rc));
    bad.tv_nsec = -1;
    rc = pthread_mutex_timedlock(m, &bad);
    CHECK(rc == EINVAL, "%s: timedlock with tv_nsec=-1 returned %d (%s), expected EINVAL", who, rc, strerror(rc));
    bad = abs_after_ms(CLOCK_MONOTONIC, 100);
    bad.tv_nsec = 1000000000;
    rc = pthread_mutex_clocklock(m, CLOCK_MONOTONIC, &bad);
    CHECK(rc == EINVAL, "%s: clocklock with tv_nsec=1e9 returned %d (%s), expected EINVAL", who, rc, strerror(rc));
}

static void *timeouts_in_thread(void *arg) {
    timeouts_on(arg, "created thread");
    return NULL;
}

static void test_timeouts(void) {
    pthread_mutex_t m;
    CHECK_RC(pthread_mutex_init(&m, NULL), 0);
    struct holder h;
    pthread_t t = start_holder(&h, &m);
    timeouts_on(&m, "main thread");
    join(spawn(timeouts_in_thread, &m));
    stop_holder(&h, t);

    /* Released: every kind of lock now succeeds at once. */
    struct timespec abs = abs_after_ms(CLOCK_REALTIME, 100);
    CHECK_RC(pthread_mutex_timedlock(&m, &abs), 0);
    CHECK_RC(pthread_mutex_unlock(&m), 0);
    abs = abs_after_ms(CLOCK_MONOTONIC, 100);
    CHECK_RC(pthread_mutex_clocklock(&m, CLOCK_MONOTONIC, &abs), 0);
    CHECK_RC(pthread_mutex_unlock(&m), 0);
    CHECK_RC(pthread_mutex_trylock(&m), 0);
    CHECK_RC(pthread_mutex_unlock(&m), 0);

    /* A timed lock that the holder releases in time succeeds, late. */
    t = start_holder(&h, &m);
    int64_t t0 = now_ns();
    pipe_event_set(&h.release);
    abs = abs_after_ms(CLOCK_REALTIME, 5000);
    CHECK_RC(pthread_mutex_timedlock(&m, &abs), 0);
    CHECK((now_ns() - t0) < 2000000000LL, "timedlock released in time waited too long");
    CHECK_RC(pthread_mutex_unlock(&m), 0);
    join(t);
    pipe_event_destroy(&h.locked);
    pipe_event_destroy(&h.release);
    CHECK_RC(pthread_mutex_destroy(&m), 0);
}

/* ---- native main thread and created thread on one mutex */

struct handoff {
    pthread_mutex_t m;
    struct pipe_event locked;
    atomic_int released; /* set by the holder just before it unlocks */
    atomic_int acquired; /* set by the waiter once it has the lock */
};

static void *fiber_holds(void *arg) {
    struct handoff *h = arg;
    CHECK_RC(pthread_mutex_lock(&h->m), 0);
    pipe_event_set(&h->locked);
    usleep(100 * 1000);
    atomic_store(&h->released, 1);
    CHECK_RC(pthread_mutex_unlock(&h->m), 0);
    return NULL;
}

static void *fiber_waits(void *arg) {
    struct handoff *h = arg;
    pipe_event_set(&h->locked); /* "I am about to lock" */
    CHECK_RC(pthread_mutex_lock(&h->m), 0);
    CHECK(atomic_load(&h->released), "created thread got a mutex main still held");
    atomic_store(&h->acquired, 1);
    CHECK_RC(pthread_mutex_unlock(&h->m), 0);
    return NULL;
}

static void test_native_and_created(void) {
    struct handoff h;
    CHECK_RC(pthread_mutex_init(&h.m, NULL), 0);
    pipe_event_init(&h.locked);

    /* A created thread holds it; the native main thread blocks on it. */
    atomic_store(&h.released, 0);
    pthread_t t = spawn(fiber_holds, &h);
    pipe_event_wait(&h.locked);
    int64_t t0 = now_ns();
    CHECK_RC(pthread_mutex_lock(&h.m), 0);
    int64_t ms = (now_ns() - t0) / 1000000;
    CHECK(atomic_load(&h.released), "main got a mutex the created thread still held");
    CHECK(ms >= 50, "main waited only %lld ms for a mutex held for 100 ms", (long long)ms);
    CHECK_RC(pthread_mutex_unlock(&h.m), 0);
    join(t);

    /* The native main thread holds it; a created thread blocks on it. */
    atomic_store(&h.released, 0);
    atomic_store(&h.acquired, 0);
    CHECK_RC(pthread_mutex_lock(&h.m), 0);
    t = spawn(fiber_waits, &h);
    pipe_event_wait(&h.locked);
    usleep(100 * 1000);
    CHECK(!atomic_load(&h.acquired), "created thread got a mutex main holds");
    atomic_store(&h.released, 1);
    CHECK_RC(pthread_mutex_unlock(&h.m), 0);
    join(t);
    CHECK(atomic_load(&h.acquired), "created thread never got the mutex");

    /* Both at once, many times: main and 8 threads hand it around. */
    count_with(&h.m, "mutex shared by main and created threads");

    pipe_event_destroy(&h.locked);
    CHECK_RC(pthread_mutex_destroy(&h.m), 0);
}

int main(void) {
    const int under_shim = is_shim();
    test_counting();
    test_recursive();
    test_errorcheck();
    test_timeouts();
    test_native_and_created();
    printf("t_mutex: ok (%s)\n", under_shim ? "greenld" : "native");
    return 0;
}
