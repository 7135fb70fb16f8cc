/* t_api: the opt-in C API of greenld.h, from fibers and from the native
 * main thread (which must block natively with the same results).
 *
 * The functions are resolved with dlsym so that the binary runs without
 * the shim; natively there is nothing to test and it says "skipped".
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "test_support.h"

#include "greenld.h"

static int (*api_wait)(int, int, long);
static int (*api_wait_read)(int, long);
static int (*api_wait_write)(int, long);
static int (*api_wait_readwrite)(int, long);
static void (*api_cancel_wait)(int, int);
static int (*api_sleep)(double);
static void (*api_yield)(void);
static int (*api_is_fiber)(void);

static void *resolve(const char *name) {
    void *p = dlsym(RTLD_DEFAULT, name);
    CHECK(p != NULL, "greenld_is_fiber is exported but %s is not", name);
    return p;
}

static int64_t ms_since(int64_t t0) { return (now_ns() - t0) / 1000000; }

/* ---- helpers run by another thread */

struct delayed {
    const char *who;
    int fd;
    int delay_ms;
    int error; /* for cancel_wait */
    atomic_int stop;
};

static void *write_later(void *arg) {
    struct delayed *d = arg;
    usleep((useconds_t)d->delay_ms * 1000);
    CHECK_EQ(write(d->fd, "z", 1), 1);
    return NULL;
}

/* cancel_wait only wakes a waiter already waiting: repeat it until the
 * waiter says it returned, so that the test does not depend on timing. */
static void *cancel_until_stopped(void *arg) {
    struct delayed *d = arg;
    usleep((useconds_t)d->delay_ms * 1000);
    const int64_t t0 = now_ns();
    while (!atomic_load(&d->stop)) {
        api_cancel_wait(d->fd, d->error);
        usleep(20 * 1000);
        CHECK(ms_since(t0) < 3000, "%s: the waiter in greenld_wait_read was not woken by 3 s of "
              "greenld_cancel_wait(fd, %d) every 20 ms from another thread", d->who, d->error);
    }
    return NULL;
}

static void *close_later(void *arg) {
    struct delayed *d = arg;
    usleep((useconds_t)d->delay_ms * 1000);
    CHECK_EQ(close(d->fd), 0);
    return NULL;
}

/* ---- the checks, run from a fiber and from the native main thread */

static void api_checks(const char *who, int expect_fiber) {
    CHECK(api_is_fiber() == expect_fiber, "%s: greenld_is_fiber() is %d, expected %d", who, api_is_fiber(),
          expect_fiber);

    int sv[2];
    unix_pair(sv, SOCK_STREAM | SOCK_CLOEXEC);

    /* Timeout on an idle socket. */
    int64_t t0 = now_ns();
    errno = 0;
    int rc = api_wait_read(sv[0], 100);
    int64_t ms = ms_since(t0);
    CHECK(rc == -1 && errno == ETIMEDOUT, "%s: greenld_wait_read(idle, 100 ms) returned %d errno %d (%s), "
          "expected -1 ETIMEDOUT", who, rc, errno, strerror(errno));
    CHECK(ms >= 100 && ms < 1000, "%s: greenld_wait_read(idle, 100 ms) took %lld ms", who, (long long)ms);

    /* Timeout 0 on an idle socket: at once. */
    t0 = now_ns();
    errno = 0;
    rc = api_wait_read(sv[0], 0);
    ms = ms_since(t0);
    CHECK(rc == -1 && errno == ETIMEDOUT, "%s: greenld_wait_read(idle, 0) returned %d errno %d (%s)", who, rc,
          errno, strerror(errno));
    CHECK(ms < 100, "%s: greenld_wait_read(idle, 0) took %lld ms", who, (long long)ms);

    /* Writable socket: at once, with every write-including form. */
    t0 = now_ns();
    CHECK(api_wait_write(sv[0], 1000) == 0, "%s: greenld_wait_write on a writable socket: errno %d (%s)", who,
          errno, strerror(errno));
    CHECK(api_wait_readwrite(sv[0], 1000) == 0, "%s: greenld_wait_readwrite on a writable socket: errno %d (%s)",
          who, errno, strerror(errno));
    CHECK(api_wait(sv[0], GREENLD_WRITE, -1) == 0, "%s: greenld_wait(WRITE, -1) on a writable socket: errno %d",
          who, errno);
    ms = ms_since(t0);
    CHECK(ms < 100, "%s: waits on a writable socket took %lld ms", who, (long long)ms);

    /* Data arrives from another thread. */
    struct delayed d = {who, sv[1], 100, 0, 0};
    pthread_t t = spawn(write_later, &d);
    t0 = now_ns();
    rc = api_wait_read(sv[0], 5000);
    ms = ms_since(t0);
    CHECK(rc == 0, "%s: greenld_wait_read with data arriving after 100 ms returned %d errno %d (%s)", who, rc,
          errno, strerror(errno));
    CHECK(ms >= 50 && ms < 2000, "%s: greenld_wait_read with data arriving after 100 ms took %lld ms", who,
          (long long)ms);
    join(t);
    char c = 0;
    CHECK_EQ(read(sv[0], &c, 1), 1);
    CHECK_EQ(c, 'z');
    /* Already readable: at once. */
    CHECK_EQ(write(sv[1], "y", 1), 1);
    t0 = now_ns();
    CHECK(api_wait_read(sv[0], 1000) == 0, "%s: greenld_wait_read on a readable socket: errno %d", who, errno);
    CHECK(api_wait(sv[0], GREENLD_READ | GREENLD_WRITE, 1000) == 0,
          "%s: greenld_wait(READ|WRITE) on a readable socket: errno %d", who, errno);
    CHECK(ms_since(t0) < 100, "%s: greenld_wait_read on a readable socket took %lld ms", who,
          (long long)ms_since(t0));
    CHECK_EQ(read(sv[0], &c, 1), 1);

    /* cancel_wait from another thread. */
    struct delayed cancel = {who, sv[0], 50, ECONNRESET, 0};
    t = spawn(cancel_until_stopped, &cancel);
    t0 = now_ns();
    errno = 0;
    rc = api_wait_read(sv[0], 5000);
    int err = errno;
    ms = ms_since(t0);
    atomic_store(&cancel.stop, 1);
    join(t);
    CHECK(rc == -1 && err == ECONNRESET, "%s: greenld_wait_read woken by greenld_cancel_wait(fd, ECONNRESET) "
          "returned %d errno %d (%s), expected -1 ECONNRESET (after %lld ms)", who, rc, err, strerror(err),
          (long long)ms);
    CHECK(ms < 4000, "%s: greenld_cancel_wait took %lld ms to wake the waiter", who, (long long)ms);
    /* The socket itself is unharmed by the cancel. */
    CHECK_EQ(write(sv[1], "x", 1), 1);
    CHECK(api_wait_read(sv[0], 1000) == 0, "%s: greenld_wait_read after a cancel_wait: errno %d (%s)", who, errno,
          strerror(errno));
    CHECK_EQ(read(sv[0], &c, 1), 1);
    CHECK_EQ(c, 'x');

    /* cancel_wait(fd, 0) means EBADF. */
    struct delayed cancel0 = {who, sv[0], 50, 0, 0};
    t = spawn(cancel_until_stopped, &cancel0);
    errno = 0;
    rc = api_wait_read(sv[0], 5000);
    err = errno;
    atomic_store(&cancel0.stop, 1);
    join(t);
    CHECK(rc == -1 && err == EBADF, "%s: greenld_wait_read woken by greenld_cancel_wait(fd, 0) returned %d "
          "errno %d (%s), expected -1 EBADF", who, rc, err, strerror(err));

    /* The fd closed by another thread meanwhile: EBADF, promptly. */
    struct delayed closer = {who, sv[0], 100, 0, 0};
    t = spawn(close_later, &closer);
    t0 = now_ns();
    errno = 0;
    rc = api_wait_read(sv[0], 5000);
    err = errno;
    ms = ms_since(t0);
    join(t);
    CHECK(rc == -1 && err == EBADF, "%s: greenld_wait_read on an fd closed by another thread after 100 ms "
          "returned %d errno %d (%s) after %lld ms, expected -1 EBADF", who, rc, err, strerror(err), (long long)ms);
    CHECK(ms < 2000, "%s: greenld_wait_read on a closed fd took %lld ms to notice", who, (long long)ms);
    CHECK_EQ(close(sv[1]), 0);

    /* Sleep and yield. */
    t0 = now_ns();
    CHECK_EQ(api_sleep(0.1), 0);
    ms = ms_since(t0);
    CHECK(ms >= 100 && ms < 1000, "%s: greenld_sleep(0.1) took %lld ms", who, (long long)ms);
    t0 = now_ns();
    CHECK_EQ(api_sleep(0), 0);
    api_yield();
    CHECK(ms_since(t0) < 100, "%s: greenld_sleep(0) and greenld_yield took %lld ms", who, (long long)ms_since(t0));

    /* Bad input: the errors greenld(3) lists. */
    errno = 0;
    CHECK(api_sleep(-1.0) == -1 && errno == EINVAL, "%s: greenld_sleep(-1) errno %d", who, errno);
    errno = 0;
    CHECK(api_sleep(__builtin_nan("")) == -1 && errno == EINVAL, "%s: greenld_sleep(NaN) errno %d", who, errno);
    errno = 0;
    CHECK(api_wait(0, 0, 10) == -1 && errno == EINVAL, "%s: greenld_wait(events 0) errno %d", who, errno);
    errno = 0;
    CHECK(api_wait_read(-1, 10) == -1 && errno == EBADF, "%s: greenld_wait_read(-1) errno %d", who, errno);
}

static void *api_checks_thread(void *arg) {
    (void)arg;
    api_checks("created thread", 1);
    return NULL;
}

/* ---- greenld_yield lets the other threads run */

enum { SPINNERS = 8 };
static atomic_int spinners_arrived;

/* Every spinner waits for all the others by yielding, never blocking: with
 * several fibers on one hub, only yield can let the others in. */
static void *yield_spinner(void *arg) {
    (void)arg;
    atomic_fetch_add(&spinners_arrived, 1);
    const int64_t t0 = now_ns();
    long yields = 0;
    while (atomic_load(&spinners_arrived) < SPINNERS) {
        api_yield();
        ++yields;
        CHECK(ms_since(t0) < 5000, "greenld_yield spinner: only %d of %d threads arrived after 5 s (%ld yields)",
              atomic_load(&spinners_arrived), SPINNERS, yields);
    }
    return NULL;
}

static void test_yield(void) {
    pthread_t t[SPINNERS];
    for (int i = 0; i < SPINNERS; ++i) t[i] = spawn(yield_spinner, NULL);
    for (int i = 0; i < SPINNERS; ++i) join(t[i]);
}

int main(void) {
    api_is_fiber = (int (*)(void))dlsym(RTLD_DEFAULT, "greenld_is_fiber");
    if (!api_is_fiber) {
        printf("t_api: skipped (not running under greenld)\n");
        return 0;
    }
    api_wait = (int (*)(int, int, long))resolve("greenld_wait");
    api_wait_read = (int (*)(int, long))resolve("greenld_wait_read");
    api_wait_write = (int (*)(int, long))resolve("greenld_wait_write");
    api_wait_readwrite = (int (*)(int, long))resolve("greenld_wait_readwrite");
    api_cancel_wait = (void (*)(int, int))resolve("greenld_cancel_wait");
    api_sleep = (int (*)(double))resolve("greenld_sleep");
    api_yield = (void (*)(void))resolve("greenld_yield");

    join(spawn(api_checks_thread, NULL));
    api_checks("main thread", 0);
    test_yield();
    printf("t_api: ok (greenld)\n");
    return 0;
}
