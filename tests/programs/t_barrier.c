/* t_barrier: pthread barriers and spinlocks keep their POSIX/glibc semantics.
 *
 * Barriers: 8 threads x 1,000 rounds where nobody leaves a round before
 * everybody arrived and exactly one thread per round is the serial thread;
 * count 0 is EINVAL and count 1 never waits; three threads on a barrier of
 * three (it once hung the hub); the native main thread as one of the
 * parties; destroy and free right after a wait while others may still be
 * leaving; a process-shared barrier (left to glibc).
 * Spinlocks: exact counters under contention, trylock, and a holder that
 * sleeps 20 ms while the others spin on it (a pure spin would never give a
 * single hub back to the sleeping holder).
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

/* pthread_barrier_wait returns 0 or PTHREAD_BARRIER_SERIAL_THREAD; anything
 * else is a failure. Returns 1 for the serial thread. */
static int barrier_wait_checked(pthread_barrier_t *b) {
    int rc = pthread_barrier_wait(b);
    CHECK(rc == 0 || rc == PTHREAD_BARRIER_SERIAL_THREAD, "pthread_barrier_wait returned %d (%s)", rc,
          strerror(rc));
    return rc == PTHREAD_BARRIER_SERIAL_THREAD;
}

/* ---- rounds */

enum { ROUND_THREADS = 8, ROUNDS = 1000 };

static struct {
    pthread_barrier_t b;
    atomic_int arrived[ROUNDS];
    atomic_int serial[ROUNDS];
} rounds;

static void *round_worker(void *arg) {
    (void)arg;
    for (int r = 0; r < ROUNDS; ++r) {
        atomic_fetch_add(&rounds.arrived[r], 1);
        if (barrier_wait_checked(&rounds.b)) atomic_fetch_add(&rounds.serial[r], 1);
        /* Nobody leaves round r before all arrived in it... */
        int n = atomic_load(&rounds.arrived[r]);
        CHECK(n == ROUND_THREADS, "left round %d with %d of %d threads arrived", r, n, ROUND_THREADS);
        /* ...and nobody arrives in round r+1 before all left round r - 1. */
        if (r > 0) {
            int serial = atomic_load(&rounds.serial[r - 1]);
            CHECK(serial == 1, "round %d had %d serial threads", r - 1, serial);
        }
    }
    return NULL;
}

static void test_rounds(void) {
    CHECK_RC(pthread_barrier_init(&rounds.b, NULL, ROUND_THREADS), 0);
    pthread_t t[ROUND_THREADS];
    for (int i = 0; i < ROUND_THREADS; ++i) t[i] = spawn(round_worker, NULL);
    for (int i = 0; i < ROUND_THREADS; ++i) join(t[i]);
    for (int r = 0; r < ROUNDS; ++r) {
        CHECK(atomic_load(&rounds.serial[r]) == 1, "round %d had %d serial threads, expected exactly 1", r,
              atomic_load(&rounds.serial[r]));
        CHECK_EQ(atomic_load(&rounds.arrived[r]), ROUND_THREADS);
    }
    CHECK_RC(pthread_barrier_destroy(&rounds.b), 0);
}

/* ---- argument errors, count 1 */

static void test_counts(void) {
    pthread_barrier_t b;
    CHECK_RC(pthread_barrier_init(&b, NULL, 0), EINVAL);
    CHECK_RC(pthread_barrier_init(&b, NULL, 1), 0);
    for (int i = 0; i < 3; ++i) CHECK_RC(pthread_barrier_wait(&b), PTHREAD_BARRIER_SERIAL_THREAD);
    CHECK_RC(pthread_barrier_destroy(&b), 0);
}

/* ---- three threads on a barrier of three (the original hang) */

static atomic_int three_serial;

static void *three_worker(void *arg) {
    if (barrier_wait_checked(arg)) atomic_fetch_add(&three_serial, 1);
    return NULL;
}

static void test_three(void) {
    pthread_barrier_t b;
    CHECK_RC(pthread_barrier_init(&b, NULL, 3), 0);
    pthread_t t[3];
    for (int i = 0; i < 3; ++i) t[i] = spawn(three_worker, &b);
    for (int i = 0; i < 3; ++i) join(t[i]);
    CHECK_EQ(atomic_load(&three_serial), 1);
    CHECK_RC(pthread_barrier_destroy(&b), 0);
}

/* ---- the native main thread as a party; destroy right after the wait */

enum { MIXED_THREADS = 3, MIXED_ROUNDS = 200 };

struct mixed {
    pthread_barrier_t *b;
    atomic_int serial;
};

static void *mixed_worker(void *arg) {
    struct mixed *m = arg;
    for (int r = 0; r < MIXED_ROUNDS; ++r)
        if (barrier_wait_checked(m->b)) atomic_fetch_add(&m->serial, 1);
    return NULL;
}

static void test_native_and_created(void) {
    pthread_barrier_t b;
    struct mixed m = {&b, 0};
    CHECK_RC(pthread_barrier_init(&b, NULL, MIXED_THREADS + 1), 0);
    pthread_t t[MIXED_THREADS];
    for (int i = 0; i < MIXED_THREADS; ++i) t[i] = spawn(mixed_worker, &m);
    int main_serial = 0;
    for (int r = 0; r < MIXED_ROUNDS; ++r) {
        /* Main arrives first in some rounds and last in others. */
        if (r % 2) usleep(100);
        main_serial += barrier_wait_checked(&b);
    }
    for (int i = 0; i < MIXED_THREADS; ++i) join(t[i]);
    CHECK(main_serial + atomic_load(&m.serial) == MIXED_ROUNDS, "%d serial returns over %d rounds",
          main_serial + atomic_load(&m.serial), MIXED_ROUNDS);
    CHECK_RC(pthread_barrier_destroy(&b), 0);
}

static void *one_wait(void *arg) {
    barrier_wait_checked(arg);
    return NULL;
}

/* The barrier lives on the heap and main frees it as soon as its own wait
 * returns, while the others may still be on their way out: destroy must wait
 * for them (glibc's does). */
static void test_destroy_after_wait(void) {
    enum { PARTIES = 8, REPEATS = 100 };
    for (int i = 0; i < REPEATS; ++i) {
        pthread_barrier_t *b = malloc(sizeof *b);
        CHECK(b != NULL, "malloc");
        CHECK_RC(pthread_barrier_init(b, NULL, PARTIES), 0);
        pthread_t t[PARTIES - 1];
        for (int j = 0; j < PARTIES - 1; ++j) t[j] = spawn(one_wait, b);
        barrier_wait_checked(b);
        CHECK_RC(pthread_barrier_destroy(b), 0);
        memset(b, 0xa5, sizeof *b);
        free(b);
        for (int j = 0; j < PARTIES - 1; ++j) join(t[j]);
    }
}

/* ---- process-shared: glibc's barrier, used by main and one thread */

static void test_process_shared(void) {
    pthread_barrierattr_t a;
    CHECK_RC(pthread_barrierattr_init(&a), 0);
    CHECK_RC(pthread_barrierattr_setpshared(&a, PTHREAD_PROCESS_SHARED), 0);
    pthread_barrier_t b;
    CHECK_RC(pthread_barrier_init(&b, &a, 0), EINVAL);
    CHECK_RC(pthread_barrier_init(&b, &a, 1), 0);
    CHECK_RC(pthread_barrier_wait(&b), PTHREAD_BARRIER_SERIAL_THREAD);
    CHECK_RC(pthread_barrier_destroy(&b), 0);
    /* Two parties, the created thread arriving first: it may block its OS
     * thread in the kernel, and the native main thread releases it. */
    CHECK_RC(pthread_barrier_init(&b, &a, 2), 0);
    pthread_t t = spawn(one_wait, &b);
    usleep(20 * 1000);
    barrier_wait_checked(&b);
    join(t);
    CHECK_RC(pthread_barrier_destroy(&b), 0);
    CHECK_RC(pthread_barrierattr_destroy(&a), 0);
}

/* ---- spinlocks */

enum { SPIN_THREADS = 8, SPIN_ITERS = 100000 };

struct spin_counter {
    pthread_spinlock_t lock;
    long value; /* plain, not atomic: only the spinlock protects it */
};

static void *spin_count_worker(void *arg) {
    struct spin_counter *c = arg;
    for (int i = 0; i < SPIN_ITERS; ++i) {
        CHECK_RC(pthread_spin_lock(&c->lock), 0);
        long v = c->value;
        __asm__ volatile("" ::: "memory");
        c->value = v + 1;
        CHECK_RC(pthread_spin_unlock(&c->lock), 0);
    }
    return NULL;
}

static void test_spin_counting(void) {
    struct spin_counter c = {0, 0};
    CHECK_RC(pthread_spin_init(&c.lock, PTHREAD_PROCESS_PRIVATE), 0);
    pthread_t t[SPIN_THREADS];
    for (int i = 0; i < SPIN_THREADS; ++i) t[i] = spawn(spin_count_worker, &c);
    spin_count_worker(&c); /* the native main thread competes too */
    for (int i = 0; i < SPIN_THREADS; ++i) join(t[i]);
    CHECK(c.value == (long)(SPIN_THREADS + 1) * SPIN_ITERS, "counter %ld, expected %ld", c.value,
          (long)(SPIN_THREADS + 1) * SPIN_ITERS);
    CHECK_RC(pthread_spin_destroy(&c.lock), 0);
}

static void *spin_trylock_busy(void *arg) {
    CHECK_RC(pthread_spin_trylock(arg), EBUSY);
    return NULL;
}

static void test_spin_trylock(void) {
    pthread_spinlock_t s;
    CHECK_RC(pthread_spin_init(&s, PTHREAD_PROCESS_SHARED), 0);
    CHECK_RC(pthread_spin_trylock(&s), 0);
    CHECK_RC(pthread_spin_trylock(&s), EBUSY);
    join(spawn(spin_trylock_busy, (void *)&s));
    CHECK_RC(pthread_spin_unlock(&s), 0);
    CHECK_RC(pthread_spin_lock(&s), 0);
    CHECK_RC(pthread_spin_unlock(&s), 0);
    CHECK_RC(pthread_spin_destroy(&s), 0);
}

/* A holder that sleeps with the lock held while 7 threads and the native
 * main thread spin on it. On one hub the sleeping holder is a parked fiber
 * that only runs again if the spinners give the hub back. */
enum { SLEEPER_SPINNERS = 7, SLEEP_MS = 20, SLEEP_ROUNDS = 5 };

static struct {
    pthread_spinlock_t lock;
    atomic_int held;
    atomic_llong released_ns;
    long inside; /* protected by the spinlock */
    atomic_int got;
} sleepy;

static void *sleepy_holder(void *arg) {
    (void)arg;
    CHECK_RC(pthread_spin_lock(&sleepy.lock), 0);
    sleepy.inside = 1;
    atomic_store(&sleepy.held, 1);
    usleep(SLEEP_MS * 1000);
    sleepy.inside = 0;
    atomic_store(&sleepy.released_ns, now_ns());
    CHECK_RC(pthread_spin_unlock(&sleepy.lock), 0);
    return NULL;
}

static void spin_on_sleeper(const char *who) {
    CHECK_RC(pthread_spin_lock(&sleepy.lock), 0);
    CHECK(sleepy.inside == 0, "%s got the spinlock while the sleeping holder had it", who);
    CHECK(atomic_load(&sleepy.released_ns) != 0, "%s got the spinlock before the holder released it", who);
    CHECK_RC(pthread_spin_unlock(&sleepy.lock), 0);
    atomic_fetch_add(&sleepy.got, 1);
}

static void *sleepy_spinner(void *arg) {
    (void)arg;
    spin_on_sleeper("a created thread");
    return NULL;
}

static void test_spin_holder_sleeps(void) {
    CHECK_RC(pthread_spin_init(&sleepy.lock, PTHREAD_PROCESS_PRIVATE), 0);
    for (int round = 0; round < SLEEP_ROUNDS; ++round) {
        atomic_store(&sleepy.held, 0);
        atomic_store(&sleepy.released_ns, 0);
        atomic_store(&sleepy.got, 0);
        pthread_t holder = spawn(sleepy_holder, NULL);
        while (!atomic_load(&sleepy.held)) usleep(1000);
        int64_t t0 = now_ns();
        pthread_t t[SLEEPER_SPINNERS];
        for (int i = 0; i < SLEEPER_SPINNERS; ++i) t[i] = spawn(sleepy_spinner, NULL);
        spin_on_sleeper("the native main thread");
        for (int i = 0; i < SLEEPER_SPINNERS; ++i) join(t[i]);
        join(holder);
        int64_t ms = (now_ns() - t0) / 1000000;
        CHECK_EQ(atomic_load(&sleepy.got), SLEEPER_SPINNERS + 1);
        CHECK(ms < 1000, "round %d: spinners needed %lld ms for a lock held %d ms", round, (long long)ms, SLEEP_MS);
    }
    CHECK_RC(pthread_spin_destroy(&sleepy.lock), 0);
}

int main(void) {
    const int under_shim = is_shim();
    test_counts();
    test_three();
    test_rounds();
    test_native_and_created();
    test_destroy_after_wait();
    test_process_shared();
    test_spin_trylock();
    test_spin_counting();
    test_spin_holder_sleeps();
    printf("t_barrier: ok (%s)\n", under_shim ? "greenld" : "native");
    return 0;
}
