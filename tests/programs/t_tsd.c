/* t_tsd: pthread keys (thread-specific data) and pthread_once.
 *
 * Values are per thread and survive switches; destructors run at thread
 * exit with the thread's value (and the key already NULL), again while they
 * re-set values, up to PTHREAD_DESTRUCTOR_ITERATIONS rounds; a deleted key's
 * values never show through a new key; pthread_once runs its init once and
 * nobody returns before it completed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "test_support.h"

/* A latch: opens once, built on a mutex and condvar. */
struct latch {
    pthread_mutex_t m;
    pthread_cond_t cv;
    int open;
};
#define LATCH_INIT {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0}
static void latch_wait(struct latch *l) {
    CHECK_EQ(pthread_mutex_lock(&l->m), 0);
    while (!l->open) CHECK_EQ(pthread_cond_wait(&l->cv, &l->m), 0);
    CHECK_EQ(pthread_mutex_unlock(&l->m), 0);
}
static void latch_open(struct latch *l) {
    CHECK_EQ(pthread_mutex_lock(&l->m), 0);
    l->open = 1;
    CHECK_EQ(pthread_cond_broadcast(&l->cv), 0);
    CHECK_EQ(pthread_mutex_unlock(&l->m), 0);
}

/* ---- values are per thread */

enum { VALUE_THREADS = 100, NKEYS = 3 };
static pthread_key_t value_keys[NKEYS];
static struct latch values_set_latch = LATCH_INIT;
static atomic_int values_set;

static void *value_for(int idx, int key) { return (void *)(uintptr_t)(0x10000 + idx * 16 + key); }

static void check_own_values(int idx, const char *after) {
    for (int k = 0; k < NKEYS; ++k) {
        void *v = pthread_getspecific(value_keys[k]);
        CHECK(v == value_for(idx, k), "thread %d key %d after %s: value %p, expected %p", idx, k, after, v,
              value_for(idx, k));
    }
}

static void *value_thread(void *arg) {
    const int idx = (int)(intptr_t)arg;
    for (int k = 0; k < NKEYS; ++k) {
        void *v = pthread_getspecific(value_keys[k]);
        CHECK(v == NULL, "thread %d key %d: a new thread sees %p, expected NULL", idx, k, v);
        CHECK_EQ(pthread_setspecific(value_keys[k], value_for(idx, k)), 0);
    }
    check_own_values(idx, "setspecific");
    /* Wait until all 100 have set theirs, so all values coexist. */
    atomic_fetch_add(&values_set, 1);
    latch_wait(&values_set_latch);
    check_own_values(idx, "waiting on a condvar");
    for (int round = 0; round < 20; ++round) {
        switch (round % 4) {
        case 0: CHECK_EQ(sched_yield(), 0); break;
        case 1: CHECK_EQ(usleep(500), 0); break;
        case 2: {
            struct timespec ts = {0, 200 * 1000};
            CHECK_EQ(nanosleep(&ts, NULL), 0);
            break;
        }
        case 3: {
            int fd[2];
            char c = 'x';
            CHECK_EQ(pipe(fd), 0);
            CHECK_EQ(write(fd[1], &c, 1), 1);
            CHECK_EQ(read(fd[0], &c, 1), 1);
            close(fd[0]);
            close(fd[1]);
            break;
        }
        }
        check_own_values(idx, "a switch");
    }
    return NULL;
}

static void test_values(void) {
    for (int k = 0; k < NKEYS; ++k) CHECK_EQ(pthread_key_create(&value_keys[k], NULL), 0);
    /* The native main thread has values of its own. */
    for (int k = 0; k < NKEYS; ++k) CHECK_EQ(pthread_setspecific(value_keys[k], value_for(VALUE_THREADS, k)), 0);
    pthread_t t[VALUE_THREADS];
    for (int i = 0; i < VALUE_THREADS; ++i) t[i] = spawn(value_thread, (void *)(intptr_t)i);
    while (atomic_load(&values_set) < VALUE_THREADS) usleep(1000);
    check_own_values(VALUE_THREADS, "the threads set theirs");
    latch_open(&values_set_latch);
    for (int i = 0; i < VALUE_THREADS; ++i) join(t[i]);
    check_own_values(VALUE_THREADS, "the threads exited");
    for (int k = 0; k < NKEYS; ++k) CHECK_EQ(pthread_key_delete(value_keys[k]), 0);
}

/* ---- destructors */

enum { DTOR_THREADS = 100 };
static pthread_key_t dtor_key;
static atomic_int dtor_calls;
static atomic_long dtor_value_sum;
static atomic_int dtor_saw_non_null;

static void count_destructor(void *value) {
    atomic_fetch_add(&dtor_calls, 1);
    atomic_fetch_add(&dtor_value_sum, (long)(uintptr_t)value);
    /* POSIX: the value is set to NULL before the destructor is called. */
    if (pthread_getspecific(dtor_key) != NULL) atomic_fetch_add(&dtor_saw_non_null, 1);
}

static void exit_nested(void *value) { pthread_exit(value); }

static void *dtor_thread(void *arg) {
    const int idx = (int)(intptr_t)arg;
    /* Odd threads set no value: their destructor must not run. */
    if (idx % 2 == 0) CHECK_EQ(pthread_setspecific(dtor_key, (void *)(uintptr_t)(idx + 1)), 0);
    usleep(1000);
    /* Half leave by returning, half by pthread_exit. */
    if (idx % 4 < 2) exit_nested(NULL);
    return NULL;
}

static long expected_dtor_sum(void) {
    long sum = 0;
    for (int i = 0; i < DTOR_THREADS; i += 2) sum += i + 1;
    return sum;
}

/* Re-sets its value the first two times: called three times in all, with
 * the values 1, 2, 3. */
static pthread_key_t reset_key;
static atomic_int reset_calls;
static uintptr_t reset_values[8];

static void resetting_destructor(void *value) {
    int n = atomic_fetch_add(&reset_calls, 1);
    if (n < 8) reset_values[n] = (uintptr_t)value;
    if ((uintptr_t)value < 3) CHECK_EQ(pthread_setspecific(reset_key, (void *)((uintptr_t)value + 1)), 0);
}

/* Re-sets its value forever (bounded here at 100): glibc stops after
 * PTHREAD_DESTRUCTOR_ITERATIONS rounds, POSIX allows more. */
static pthread_key_t forever_key;
static atomic_int forever_calls;

static void forever_destructor(void *value) {
    (void)value;
    if (atomic_fetch_add(&forever_calls, 1) + 1 < 100) CHECK_EQ(pthread_setspecific(forever_key, (void *)1), 0);
}

static void *reset_thread(void *arg) {
    (void)arg;
    CHECK_EQ(pthread_setspecific(reset_key, (void *)1), 0);
    return NULL;
}

static void *forever_thread(void *arg) {
    (void)arg;
    CHECK_EQ(pthread_setspecific(forever_key, (void *)1), 0);
    return NULL;
}

static void test_destructors(void) {
    CHECK_EQ(pthread_key_create(&dtor_key, count_destructor), 0);
    pthread_t t[DTOR_THREADS];
    for (int i = 0; i < DTOR_THREADS; ++i) t[i] = spawn(dtor_thread, (void *)(intptr_t)i);
    for (int i = 0; i < DTOR_THREADS; ++i) join(t[i]);
    CHECK(atomic_load(&dtor_calls) == DTOR_THREADS / 2,
          "destructor called %d times for %d threads with a non-NULL value", atomic_load(&dtor_calls),
          DTOR_THREADS / 2);
    CHECK(atomic_load(&dtor_value_sum) == expected_dtor_sum(),
          "destructors got values summing to %ld, expected %ld: not each thread's own value",
          atomic_load(&dtor_value_sum), expected_dtor_sum());
    CHECK(atomic_load(&dtor_saw_non_null) == 0,
          "%d destructor calls saw a non-NULL pthread_getspecific for their key", atomic_load(&dtor_saw_non_null));
    CHECK_EQ(pthread_key_delete(dtor_key), 0);

    CHECK_EQ(pthread_key_create(&reset_key, resetting_destructor), 0);
    join(spawn(reset_thread, NULL));
    CHECK(atomic_load(&reset_calls) == 3,
          "a destructor that re-sets its value twice was called %d times, expected 3", atomic_load(&reset_calls));
    for (int i = 0; i < 3; ++i)
        CHECK(reset_values[i] == (uintptr_t)(i + 1), "destructor call %d got value %lu, expected %d", i + 1,
              (unsigned long)reset_values[i], i + 1);
    CHECK_EQ(pthread_key_delete(reset_key), 0);

    CHECK_EQ(pthread_key_create(&forever_key, forever_destructor), 0);
    join(spawn(forever_thread, NULL));
    const int calls = atomic_load(&forever_calls);
    CHECK(calls >= PTHREAD_DESTRUCTOR_ITERATIONS && calls <= 100,
          "a destructor that always re-sets its value was called %d times, expected at least %d "
          "(PTHREAD_DESTRUCTOR_ITERATIONS) and at most 100",
          calls, PTHREAD_DESTRUCTOR_ITERATIONS);
    CHECK_EQ(pthread_key_delete(forever_key), 0);
}

/* ---- key_delete: a new key never shows old values */

static struct latch key_replaced_latch = LATCH_INIT;
static atomic_int old_key_set;
static pthread_key_t old_key, new_key;

static void *reuse_thread(void *arg) {
    (void)arg;
    CHECK_EQ(pthread_setspecific(old_key, (void *)0xdead), 0);
    atomic_store(&old_key_set, 1);
    latch_wait(&key_replaced_latch);
    void *v = pthread_getspecific(new_key);
    CHECK(v == NULL, "after pthread_key_delete, a new key shows %p in a live thread that set the old one", v);
    return NULL;
}

static void *fresh_thread(void *arg) {
    (void)arg;
    void *v = pthread_getspecific(new_key);
    CHECK(v == NULL, "a new thread sees %p through a new key", v);
    return NULL;
}

static void test_key_reuse(void) {
    CHECK_EQ(pthread_key_create(&old_key, NULL), 0);
    CHECK_EQ(pthread_setspecific(old_key, (void *)0xbeef), 0);
    pthread_t t = spawn(reuse_thread, NULL);
    while (!atomic_load(&old_key_set)) usleep(1000);
    CHECK_EQ(pthread_key_delete(old_key), 0);
    CHECK_EQ(pthread_key_create(&new_key, NULL), 0);
    void *v = pthread_getspecific(new_key);
    CHECK(v == NULL, "after pthread_key_delete, a new key shows %p in main, which set the old one", v);
    latch_open(&key_replaced_latch);
    join(t);
    join(spawn(fresh_thread, NULL));
    CHECK_EQ(pthread_key_delete(new_key), 0);

    /* Many rounds of set, delete, create (glibc hands out the freed slot
     * again): the new key always starts NULL. */
    for (int i = 0; i < 500; ++i) {
        pthread_key_t k;
        CHECK_EQ(pthread_key_create(&k, NULL), 0);
        v = pthread_getspecific(k);
        CHECK(v == NULL, "round %d: a fresh key shows %p", i, v);
        CHECK_EQ(pthread_setspecific(k, (void *)(uintptr_t)(i + 1)), 0);
        CHECK_EQ(pthread_key_delete(k), 0);
    }
}

/* ---- pthread_once */

enum { ONCE_THREADS = 100 };
static pthread_once_t once = PTHREAD_ONCE_INIT;
static atomic_int once_runs, once_done, once_early_returns;
static struct latch once_latch = LATCH_INIT;

static void once_init(void) {
    atomic_fetch_add(&once_runs, 1);
    /* Take long enough that the others pile up behind it. */
    usleep(50 * 1000);
    atomic_store(&once_done, 1);
}

static void call_once(void) {
    CHECK_EQ(pthread_once(&once, once_init), 0);
    if (!atomic_load(&once_done)) atomic_fetch_add(&once_early_returns, 1);
}

static void *once_thread(void *arg) {
    (void)arg;
    latch_wait(&once_latch);
    call_once();
    return NULL;
}

static void test_once(void) {
    pthread_t t[ONCE_THREADS];
    for (int i = 0; i < ONCE_THREADS; ++i) t[i] = spawn(once_thread, NULL);
    usleep(10 * 1000);
    latch_open(&once_latch);
    call_once(); /* the native main thread races them */
    for (int i = 0; i < ONCE_THREADS; ++i) join(t[i]);
    CHECK(atomic_load(&once_runs) == 1, "pthread_once ran its init %d times", atomic_load(&once_runs));
    CHECK(atomic_load(&once_early_returns) == 0, "%d pthread_once callers returned before the init completed",
          atomic_load(&once_early_returns));
    call_once();
    CHECK_EQ(atomic_load(&once_runs), 1);
}

int main(void) {
    const int under_shim = is_shim();
    test_values();
    test_destructors();
    test_key_reuse();
    test_once();
    printf("t_tsd: ok (%s)\n", under_shim ? "greenld" : "native");
    return 0;
}
