/* t_condvar: pthread condition variables keep their POSIX/glibc semantics.
 *
 * A producer/consumer queue where every item is consumed exactly once;
 * timedwait/clockwait timeouts on both clocks (and the mutex held on
 * return); broadcast waking 100 waiters; signal without waiters; and the
 * native main thread and created threads waiting on each other.
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

/* ---- producer/consumer */

enum { PRODUCERS = 4, CONSUMERS = 4, ITEMS_PER_PRODUCER = 50000, QUEUE_CAP = 64 };
enum { TOTAL_ITEMS = PRODUCERS * ITEMS_PER_PRODUCER };

static struct {
    pthread_mutex_t m;
    pthread_cond_t not_empty, not_full;
    int items[QUEUE_CAP];
    int head, len;
} q = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, {0}, 0, 0};

static atomic_uchar seen[TOTAL_ITEMS];
static atomic_long consumed_by[CONSUMERS];

static void queue_put(int item) {
    CHECK_RC(pthread_mutex_lock(&q.m), 0);
    while (q.len == QUEUE_CAP) CHECK_RC(pthread_cond_wait(&q.not_full, &q.m), 0);
    q.items[(q.head + q.len) % QUEUE_CAP] = item;
    ++q.len;
    CHECK_RC(pthread_cond_signal(&q.not_empty), 0);
    CHECK_RC(pthread_mutex_unlock(&q.m), 0);
}

static int queue_get(void) {
    CHECK_RC(pthread_mutex_lock(&q.m), 0);
    while (q.len == 0) CHECK_RC(pthread_cond_wait(&q.not_empty, &q.m), 0);
    int item = q.items[q.head];
    q.head = (q.head + 1) % QUEUE_CAP;
    --q.len;
    CHECK_RC(pthread_cond_signal(&q.not_full), 0);
    CHECK_RC(pthread_mutex_unlock(&q.m), 0);
    return item;
}

static void *producer(void *arg) {
    const int p = (int)(intptr_t)arg;
    for (int i = 0; i < ITEMS_PER_PRODUCER; ++i) queue_put(p * ITEMS_PER_PRODUCER + i);
    return NULL;
}

static void *consumer(void *arg) {
    const int c = (int)(intptr_t)arg;
    for (;;) {
        int item = queue_get();
        if (item < 0) return NULL; /* the end marker */
        CHECK(item < TOTAL_ITEMS, "consumer %d got item %d, out of range", c, item);
        unsigned char before = atomic_fetch_add(&seen[item], 1);
        CHECK(before == 0, "item %d consumed twice", item);
        atomic_fetch_add(&consumed_by[c], 1);
    }
}

static void test_producer_consumer(void) {
    pthread_t prod[PRODUCERS], cons[CONSUMERS];
    for (int i = 0; i < CONSUMERS; ++i) cons[i] = spawn(consumer, (void *)(intptr_t)i);
    for (int i = 0; i < PRODUCERS; ++i) prod[i] = spawn(producer, (void *)(intptr_t)i);
    for (int i = 0; i < PRODUCERS; ++i) join(prod[i]);
    /* The native main thread is the last producer: one end marker each. */
    for (int i = 0; i < CONSUMERS; ++i) queue_put(-1);
    for (int i = 0; i < CONSUMERS; ++i) join(cons[i]);
    long total = 0;
    for (int i = 0; i < CONSUMERS; ++i) total += atomic_load(&consumed_by[i]);
    CHECK(total == TOTAL_ITEMS, "consumed %ld items, expected %d", total, TOTAL_ITEMS);
    for (int i = 0; i < TOTAL_ITEMS; ++i) CHECK(atomic_load(&seen[i]) == 1, "item %d consumed %d times", i, seen[i]);
    CHECK_EQ(q.len, 0);
}

/* ---- timeouts */

struct trylock_case {
    pthread_mutex_t *m;
    int want;
};

static void *trylock_expect(void *arg) {
    struct trylock_case *tc = arg;
    int rc = pthread_mutex_trylock(tc->m);
    CHECK(rc == tc->want, "trylock from another thread returned %d (%s), expected %d (%s)", rc, strerror(rc),
          tc->want, strerror(tc->want));
    if (rc == 0) CHECK_RC(pthread_mutex_unlock(tc->m), 0);
    return NULL;
}

/* The caller holds m (an error-checking mutex): prove it. */
static void check_held(pthread_mutex_t *m, const char *what) {
    struct trylock_case tc = {m, EBUSY};
    join(spawn(trylock_expect, &tc));
    int rc = pthread_mutex_lock(m);
    CHECK(rc == EDEADLK, "%s: the mutex is not held by the caller after the wait (relock returned %d, %s)", what,
          rc, strerror(rc));
}

enum { WAIT_TIMEDWAIT, WAIT_CLOCKWAIT_MONO, WAIT_CLOCKWAIT_REAL };

/* Waits 100 ms on cv with nobody signalling: ETIMEDOUT, mutex held. */
static void timeout_case(pthread_cond_t *cv, clockid_t cv_clock, int how, const char *what) {
    pthread_mutexattr_t ma;
    CHECK_RC(pthread_mutexattr_init(&ma), 0);
    CHECK_RC(pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ERRORCHECK), 0);
    pthread_mutex_t m;
    CHECK_RC(pthread_mutex_init(&m, &ma), 0);
    CHECK_RC(pthread_mutex_lock(&m), 0);

    const int64_t t0 = now_ns();
    int rc;
    struct timespec abs;
    switch (how) {
    case WAIT_TIMEDWAIT:
        abs = abs_after_ms(cv_clock, 100);
        rc = pthread_cond_timedwait(cv, &m, &abs);
        break;
    case WAIT_CLOCKWAIT_MONO:
        abs = abs_after_ms(CLOCK_MONOTONIC, 100);
        rc = pthread_cond_clockwait(cv, &m, CLOCK_MONOTONIC, &abs);
        break;
    default:
        abs = abs_after_ms(CLOCK_REALTIME, 100);
        rc = pthread_cond_clockwait(cv, &m, CLOCK_REALTIME, &abs);
        break;
    }
    const int64_t ms = (now_ns() - t0) / 1000000;
    CHECK(rc == ETIMEDOUT, "%s: returned %d (%s), expected ETIMEDOUT", what, rc, strerror(rc));
    /* 99 for the realtime clock: abstime and the measure use different clocks. */
    CHECK(ms >= 99 && ms < 1000, "%s: a 100 ms timeout took %lld ms", what, (long long)ms);
    check_held(&m, what);
    CHECK_RC(pthread_mutex_unlock(&m), 0);
    CHECK_RC(pthread_mutex_unlock(&m), EPERM);

    /* Invalid abstime: EINVAL, the mutex still held. */
    CHECK_RC(pthread_mutex_lock(&m), 0);
    abs = abs_after_ms(cv_clock, 100);
    abs.tv_nsec = 1000000000;
    rc = how == WAIT_TIMEDWAIT ? pthread_cond_timedwait(cv, &m, &abs)
                               : pthread_cond_clockwait(cv, &m, how == WAIT_CLOCKWAIT_MONO ? CLOCK_MONOTONIC
                                                                                           : CLOCK_REALTIME,
                                                        &abs);
    CHECK(rc == EINVAL, "%s with tv_nsec=1e9: returned %d (%s), expected EINVAL", what, rc, strerror(rc));
    CHECK_RC(pthread_mutex_unlock(&m), 0);
    CHECK_RC(pthread_mutex_destroy(&m), 0);
}

static void timeouts(const char *who) {
    char what[128];
    pthread_cond_t cv_default;
    CHECK_RC(pthread_cond_init(&cv_default, NULL), 0);
    snprintf(what, sizeof what, "%s: pthread_cond_timedwait (CLOCK_REALTIME condvar)", who);
    timeout_case(&cv_default, CLOCK_REALTIME, WAIT_TIMEDWAIT, what);
    snprintf(what, sizeof what, "%s: pthread_cond_clockwait(CLOCK_MONOTONIC)", who);
    timeout_case(&cv_default, CLOCK_REALTIME, WAIT_CLOCKWAIT_MONO, what);
    snprintf(what, sizeof what, "%s: pthread_cond_clockwait(CLOCK_REALTIME)", who);
    timeout_case(&cv_default, CLOCK_REALTIME, WAIT_CLOCKWAIT_REAL, what);
    CHECK_RC(pthread_cond_destroy(&cv_default), 0);

    pthread_condattr_t ca;
    CHECK_RC(pthread_condattr_init(&ca), 0);
    CHECK_RC(pthread_condattr_setclock(&ca, CLOCK_MONOTONIC), 0);
    clockid_t clock = -1;
    CHECK_RC(pthread_condattr_getclock(&ca, &clock), 0);
    CHECK_EQ(clock, CLOCK_MONOTONIC);
    pthread_cond_t cv_mono;
    CHECK_RC(pthread_cond_init(&cv_mono, &ca), 0);
    CHECK_RC(pthread_condattr_destroy(&ca), 0);
    snprintf(what, sizeof what, "%s: pthread_cond_timedwait (CLOCK_MONOTONIC condvar)", who);
    timeout_case(&cv_mono, CLOCK_MONOTONIC, WAIT_TIMEDWAIT, what);
    CHECK_RC(pthread_cond_destroy(&cv_mono), 0);
}

static void *timeouts_in_thread(void *arg) {
    (void)arg;
    timeouts("created thread");
    return NULL;
}

/* A monotonic timed wait that is signalled well before its deadline. */
struct early {
    pthread_mutex_t m;
    pthread_cond_t cv;
    int flag;
};

static void *signal_after_50ms(void *arg) {
    struct early *e = arg;
    usleep(50 * 1000);
    CHECK_RC(pthread_mutex_lock(&e->m), 0);
    e->flag = 1;
    CHECK_RC(pthread_cond_signal(&e->cv), 0);
    CHECK_RC(pthread_mutex_unlock(&e->m), 0);
    return NULL;
}

static void test_signalled_before_timeout(void) {
    struct early e = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    pthread_condattr_t ca;
    CHECK_RC(pthread_condattr_init(&ca), 0);
    CHECK_RC(pthread_condattr_setclock(&ca, CLOCK_MONOTONIC), 0);
    CHECK_RC(pthread_cond_init(&e.cv, &ca), 0);
    CHECK_RC(pthread_condattr_destroy(&ca), 0);
    CHECK_RC(pthread_mutex_lock(&e.m), 0);
    pthread_t t = spawn(signal_after_50ms, &e);
    struct timespec abs = abs_after_ms(CLOCK_MONOTONIC, 5000);
    const int64_t t0 = now_ns();
    int rc = 0;
    while (!e.flag && rc == 0) rc = pthread_cond_timedwait(&e.cv, &e.m, &abs);
    const int64_t ms = (now_ns() - t0) / 1000000;
    CHECK(rc == 0 && e.flag, "monotonic timedwait signalled after 50 ms: rc %d (%s), flag %d", rc, strerror(rc),
          e.flag);
    CHECK(ms < 2000, "monotonic timedwait signalled after 50 ms returned after %lld ms", (long long)ms);
    CHECK_RC(pthread_mutex_unlock(&e.m), 0);
    join(t);
}

/* ---- broadcast */

enum { BROADCAST_WAITERS = 100 };

static struct {
    pthread_mutex_t m;
    pthread_cond_t cv;
    int waiting, go, woken;
} bc = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};

static void *broadcast_waiter(void *arg) {
    (void)arg;
    CHECK_RC(pthread_mutex_lock(&bc.m), 0);
    ++bc.waiting;
    while (!bc.go) CHECK_RC(pthread_cond_wait(&bc.cv, &bc.m), 0);
    ++bc.woken;
    CHECK_RC(pthread_mutex_unlock(&bc.m), 0);
    return NULL;
}

static void test_broadcast(void) {
    pthread_t t[BROADCAST_WAITERS];
    for (int i = 0; i < BROADCAST_WAITERS; ++i) t[i] = spawn(broadcast_waiter, NULL);
    /* Once main holds the mutex and sees 100 arrivals, all 100 are inside
     * pthread_cond_wait (each released the mutex only by waiting). */
    const int64_t deadline = now_ns() + 5000000000LL;
    for (;;) {
        CHECK_RC(pthread_mutex_lock(&bc.m), 0);
        if (bc.waiting == BROADCAST_WAITERS) break;
        CHECK_RC(pthread_mutex_unlock(&bc.m), 0);
        CHECK(now_ns() < deadline, "only %d of %d threads reached pthread_cond_wait in 5 s",
              bc.waiting, BROADCAST_WAITERS);
        usleep(1000);
    }
    bc.go = 1;
    CHECK_RC(pthread_cond_broadcast(&bc.cv), 0); /* one broadcast, nothing else */
    CHECK_RC(pthread_mutex_unlock(&bc.m), 0);
    /* Every waiter must wake from that single broadcast. */
    const int64_t wake_deadline = now_ns() + 3000000000LL;
    for (;;) {
        CHECK_RC(pthread_mutex_lock(&bc.m), 0);
        int woken = bc.woken;
        CHECK_RC(pthread_mutex_unlock(&bc.m), 0);
        if (woken == BROADCAST_WAITERS) break;
        CHECK(now_ns() < wake_deadline, "one broadcast woke only %d of %d waiters in 3 s", woken,
              BROADCAST_WAITERS);
        usleep(1000);
    }
    for (int i = 0; i < BROADCAST_WAITERS; ++i) join(t[i]);
}

/* ---- signal and broadcast with no waiters */

static void test_no_waiters(void) {
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
    for (int i = 0; i < 10; ++i) {
        CHECK_RC(pthread_cond_signal(&cv), 0);
        CHECK_RC(pthread_cond_broadcast(&cv), 0);
    }
    /* Those signals are not remembered: a later wait still waits. */
    CHECK_RC(pthread_mutex_lock(&m), 0);
    struct timespec abs = abs_after_ms(CLOCK_REALTIME, 50);
    const int64_t t0 = now_ns();
    int rc = pthread_cond_timedwait(&cv, &m, &abs);
    const int64_t ms = (now_ns() - t0) / 1000000;
    CHECK(rc == ETIMEDOUT, "timedwait after signals with no waiters returned %d (%s), expected ETIMEDOUT", rc,
          strerror(rc));
    CHECK(ms >= 49, "timedwait after signals with no waiters returned after %lld ms, before its 50 ms",
          (long long)ms);
    CHECK_RC(pthread_mutex_unlock(&m), 0);
    CHECK_RC(pthread_cond_destroy(&cv), 0);
    CHECK_RC(pthread_mutex_destroy(&m), 0);
}

/* ---- native main thread and created threads waiting on each other */

struct pingpong {
    pthread_mutex_t m;
    pthread_cond_t cv;
    int turn; /* 0: main's turn, 1: the thread's */
    int rounds;
};

enum { PINGPONG_ROUNDS = 2000 };

static void *pingpong_thread(void *arg) {
    struct pingpong *p = arg;
    for (int i = 0; i < PINGPONG_ROUNDS; ++i) {
        CHECK_RC(pthread_mutex_lock(&p->m), 0);
        while (p->turn != 1) CHECK_RC(pthread_cond_wait(&p->cv, &p->m), 0);
        ++p->rounds;
        p->turn = 0;
        CHECK_RC(pthread_cond_signal(&p->cv), 0);
        CHECK_RC(pthread_mutex_unlock(&p->m), 0);
    }
    return NULL;
}

struct one_shot {
    pthread_mutex_t m;
    pthread_cond_t cv;
    int ready;
};

static void *signal_main_later(void *arg) {
    struct one_shot *o = arg;
    usleep(100 * 1000);
    CHECK_RC(pthread_mutex_lock(&o->m), 0);
    o->ready = 1;
    CHECK_RC(pthread_cond_signal(&o->cv), 0);
    CHECK_RC(pthread_mutex_unlock(&o->m), 0);
    return NULL;
}

static void *wait_for_main(void *arg) {
    struct one_shot *o = arg;
    CHECK_RC(pthread_mutex_lock(&o->m), 0);
    while (!o->ready) CHECK_RC(pthread_cond_wait(&o->cv, &o->m), 0);
    CHECK_RC(pthread_mutex_unlock(&o->m), 0);
    return NULL;
}

static void test_native_and_created(void) {
    /* Main waits; a created thread signals. */
    struct one_shot o = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    pthread_t t = spawn(signal_main_later, &o);
    CHECK_RC(pthread_mutex_lock(&o.m), 0);
    const int64_t t0 = now_ns();
    while (!o.ready) CHECK_RC(pthread_cond_wait(&o.cv, &o.m), 0);
    const int64_t ms = (now_ns() - t0) / 1000000;
    CHECK_RC(pthread_mutex_unlock(&o.m), 0);
    CHECK(ms >= 50 && ms < 2000, "main's wait for a signal sent after 100 ms took %lld ms", (long long)ms);
    join(t);

    /* A created thread waits; main signals. */
    struct one_shot o2 = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    t = spawn(wait_for_main, &o2);
    usleep(100 * 1000);
    CHECK_RC(pthread_mutex_lock(&o2.m), 0);
    o2.ready = 1;
    CHECK_RC(pthread_cond_signal(&o2.cv), 0);
    CHECK_RC(pthread_mutex_unlock(&o2.m), 0);
    join(t);

    /* And back and forth, many times. */
    struct pingpong p = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    t = spawn(pingpong_thread, &p);
    for (int i = 0; i < PINGPONG_ROUNDS; ++i) {
        CHECK_RC(pthread_mutex_lock(&p.m), 0);
        while (p.turn != 0) CHECK_RC(pthread_cond_wait(&p.cv, &p.m), 0);
        CHECK_EQ(p.rounds, i);
        p.turn = 1;
        CHECK_RC(pthread_cond_signal(&p.cv), 0);
        CHECK_RC(pthread_mutex_unlock(&p.m), 0);
    }
    join(t);
    CHECK_EQ(p.rounds, PINGPONG_ROUNDS);
}

int main(void) {
    const int under_shim = is_shim();
    test_producer_consumer();
    timeouts("main thread");
    join(spawn(timeouts_in_thread, NULL));
    test_signalled_before_timeout();
    test_broadcast();
    test_no_waiters();
    test_native_and_created();
    printf("t_condvar: ok (%s)\n", under_shim ? "greenld" : "native");
    return 0;
}
