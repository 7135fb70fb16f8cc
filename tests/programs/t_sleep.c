/* t_sleep: the sleep family sleeps at least as long as asked, concurrently.
 *
 * 1,000 threads each sleep 200 ms at once, through every sleep call there
 * is; each must sleep at least 200 ms and all must be done in well under
 * 3 s (they sleep in parallel). Argument errors: nanosleep sets errno,
 * clock_nanosleep returns the error number instead. Under greenld only:
 * the 1,000 sleepers must not be 1,000 OS threads.
 */
#define _GNU_SOURCE
#include <errno.h>
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

static struct timespec ts_from_ns(int64_t ns) {
    struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
    return ts;
}

/* ---- 1,000 concurrent sleepers */

enum { SLEEPERS = 1000, SLEEP_MS = 200 };
enum { S_USLEEP, S_NANOSLEEP, S_CLOCK_REL_MONO, S_CLOCK_ABS_MONO, S_CLOCK_REL_REAL, S_CLOCK_ABS_REAL, NSLEEPS };
static const char *const sleep_names[NSLEEPS] = {
    "usleep", "nanosleep", "clock_nanosleep(MONOTONIC, relative)", "clock_nanosleep(MONOTONIC, TIMER_ABSTIME)",
    "clock_nanosleep(REALTIME, relative)", "clock_nanosleep(REALTIME, TIMER_ABSTIME)"};

static atomic_int started, finished;

static void *sleeper(void *arg) {
    const int idx = (int)(intptr_t)arg;
    const int kind = idx % NSLEEPS;
    const int64_t ns = (int64_t)SLEEP_MS * 1000000;
    atomic_fetch_add(&started, 1);
    const int64_t t0 = now_ns();
    int rc = 0;
    switch (kind) {
    case S_USLEEP:
        rc = usleep(SLEEP_MS * 1000);
        break;
    case S_NANOSLEEP: {
        struct timespec req = ts_from_ns(ns), rem = {-1, -1};
        rc = nanosleep(&req, &rem);
        break;
    }
    case S_CLOCK_REL_MONO: {
        struct timespec req = ts_from_ns(ns);
        rc = clock_nanosleep(CLOCK_MONOTONIC, 0, &req, NULL);
        break;
    }
    case S_CLOCK_ABS_MONO: {
        struct timespec req = ts_from_ns(t0 + ns);
        rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &req, NULL);
        break;
    }
    case S_CLOCK_REL_REAL: {
        struct timespec req = ts_from_ns(ns);
        rc = clock_nanosleep(CLOCK_REALTIME, 0, &req, NULL);
        break;
    }
    case S_CLOCK_ABS_REAL: {
        /* Measured on the monotonic clock: read it first, so the realtime
         * deadline is at least SLEEP_MS after t0. */
        struct timespec req = ts_from_ns(clock_ns(CLOCK_REALTIME) + ns);
        rc = clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &req, NULL);
        break;
    }
    }
    const int64_t slept = now_ns() - t0;
    CHECK(rc == 0, "thread %d: %s returned %d", idx, sleep_names[kind], rc);
    /* The realtime clock may be slewed relative to the monotonic one by a
     * tiny amount; allow 1 ms there, nothing for the monotonic sleeps. */
    const int64_t slack = (kind == S_CLOCK_REL_REAL || kind == S_CLOCK_ABS_REAL) ? 1000000 : 0;
    CHECK(slept >= ns - slack, "thread %d: %s(%d ms) slept only %lld us", idx, sleep_names[kind], SLEEP_MS,
          (long long)(slept / 1000));
    atomic_fetch_add(&finished, 1);
    return NULL;
}

static void test_concurrent_sleepers(int under_shim) {
    static pthread_t threads[SLEEPERS];
    /* Default attributes: the default stack size is part of what is tested
     * (1,000 native threads reserve 8 GiB of address space, which is fine). */
    const int64_t t0 = now_ns();
    for (int i = 0; i < SLEEPERS; ++i) {
        int rc = pthread_create(&threads[i], NULL, sleeper, (void *)(intptr_t)i);
        CHECK(rc == 0, "pthread_create #%d: %s", i, strerror(rc));
    }
    const int64_t created_ms = (now_ns() - t0) / 1000000;
    /* Let them all get into their sleep, then count OS threads. */
    usleep(20 * 1000);
    const int threads_now = os_thread_count();
    const int asleep = atomic_load(&started) - atomic_load(&finished);
    if (under_shim)
        CHECK(threads_now <= 8, "%d OS threads while %d threads sleep (created in %lld ms): expected <= 8",
              threads_now, asleep, (long long)created_ms);
    for (int i = 0; i < SLEEPERS; ++i) CHECK_EQ(pthread_join(threads[i], NULL), 0);
    const int64_t total_ms = (now_ns() - t0) / 1000000;
    CHECK_EQ(atomic_load(&finished), SLEEPERS);
    CHECK(total_ms < 3000, "%d threads sleeping %d ms each took %lld ms in all: they did not sleep concurrently",
          SLEEPERS, SLEEP_MS, (long long)total_ms);
    printf("  %d sleepers: created in %lld ms, done in %lld ms, %d OS threads (%d asleep) meanwhile\n", SLEEPERS,
           (long long)created_ms, (long long)total_ms, threads_now, asleep);
}

/* ---- sleep(): whole seconds, concurrently */

static void *sleep_one_second(void *arg) {
    (void)arg;
    const int64_t t0 = now_ns();
    unsigned left = sleep(1);
    const int64_t slept = now_ns() - t0;
    CHECK(left == 0, "sleep(1) returned %u", left);
    CHECK(slept >= 1000000000LL, "sleep(1) slept only %lld us", (long long)(slept / 1000));
    return NULL;
}

static void test_sleep_seconds(void) {
    pthread_t t[4];
    const int64_t t0 = now_ns();
    for (int i = 0; i < 4; ++i) CHECK_EQ(pthread_create(&t[i], NULL, sleep_one_second, NULL), 0);
    for (int i = 0; i < 4; ++i) CHECK_EQ(pthread_join(t[i], NULL), 0);
    const int64_t ms = (now_ns() - t0) / 1000000;
    CHECK(ms < 1900, "4 threads in sleep(1) took %lld ms in all", (long long)ms);
}

/* ---- argument errors, and zero-length sleeps */

static void bad_arguments(const char *who) {
    struct timespec bad = {0, 1000000000};
    errno = 0;
    int rc = nanosleep(&bad, NULL);
    CHECK(rc == -1 && errno == EINVAL, "%s: nanosleep(tv_nsec=1e9) returned %d errno %d (%s), expected -1 EINVAL",
          who, rc, errno, strerror(errno));
    bad.tv_nsec = -1;
    errno = 0;
    rc = nanosleep(&bad, NULL);
    CHECK(rc == -1 && errno == EINVAL, "%s: nanosleep(tv_nsec=-1) returned %d errno %d (%s), expected -1 EINVAL",
          who, rc, errno, strerror(errno));
    struct timespec negative = {-1, 0};
    errno = 0;
    rc = nanosleep(&negative, NULL);
    CHECK(rc == -1 && errno == EINVAL, "%s: nanosleep(tv_sec=-1) returned %d errno %d (%s), expected -1 EINVAL",
          who, rc, errno, strerror(errno));

    /* clock_nanosleep returns the error number and leaves errno alone. */
    const clockid_t clocks[] = {CLOCK_MONOTONIC, CLOCK_REALTIME};
    const int flags[] = {0, TIMER_ABSTIME};
    for (int c = 0; c < 2; ++c)
        for (int f = 0; f < 2; ++f) {
            bad.tv_sec = f ? clock_ns(clocks[c]) / 1000000000 + 1 : 0;
            bad.tv_nsec = 1000000000;
            errno = 12345;
            rc = clock_nanosleep(clocks[c], flags[f], &bad, NULL);
            CHECK(rc == EINVAL, "%s: clock_nanosleep(clock %d, flags %d, tv_nsec=1e9) returned %d, expected EINVAL",
                  who, (int)clocks[c], flags[f], rc);
            CHECK(errno == 12345, "%s: clock_nanosleep(clock %d, flags %d) set errno to %d (%s)", who,
                  (int)clocks[c], flags[f], errno, strerror(errno));
        }
    errno = 12345;
    struct timespec ok = {0, 1000};
    rc = clock_nanosleep(CLOCK_THREAD_CPUTIME_ID, 0, &ok, NULL);
    CHECK(rc == EINVAL, "%s: clock_nanosleep(CLOCK_THREAD_CPUTIME_ID) returned %d, expected EINVAL", who, rc);
    CHECK(errno == 12345, "%s: clock_nanosleep(CLOCK_THREAD_CPUTIME_ID) set errno to %d", who, errno);

    /* An absolute time in the past returns at once. */
    const int64_t t0 = now_ns();
    struct timespec past = ts_from_ns(t0 - 1000000000LL);
    CHECK_EQ(clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &past, NULL), 0);
    /* Zero-length sleeps return at once, successfully. */
    struct timespec zero = {0, 0};
    CHECK_EQ(nanosleep(&zero, NULL), 0);
    CHECK_EQ(clock_nanosleep(CLOCK_MONOTONIC, 0, &zero, NULL), 0);
    CHECK_EQ(usleep(0), 0);
    CHECK_EQ(sleep(0), 0);
    CHECK_EQ(sched_yield(), 0);
    const int64_t ms = (now_ns() - t0) / 1000000;
    CHECK(ms < 100, "%s: zero and past-deadline sleeps took %lld ms", who, (long long)ms);
}

static void *bad_arguments_in_thread(void *arg) {
    (void)arg;
    bad_arguments("created thread");
    return NULL;
}

int main(void) {
    const int under_shim = is_shim();
    bad_arguments("main thread");
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, bad_arguments_in_thread, NULL), 0);
    CHECK_EQ(pthread_join(t, NULL), 0);
    test_concurrent_sleepers(under_shim);
    test_sleep_seconds();
    printf("t_sleep: ok (%s)\n", under_shim ? "greenld" : "native");
    return 0;
}
