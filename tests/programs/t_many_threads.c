/* t_many_threads: 2,000 threads blocked in read() at once.
 *
 * Each thread blocks in read() on its own socketpair until main writes to
 * all of them, then echoes the byte back and exits; all are joined. Under
 * greenld only: those 2,000 blocked threads are at most 8 OS threads.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "test_support.h"

enum { NTHREADS = 2000, STACK_SIZE = 64 * 1024 };

static int socks[NTHREADS][2]; /* main uses [i][0], thread i uses [i][1] */
static atomic_int about_to_read, echoed;

static void *echo_once(void *arg) {
    const int idx = (int)(intptr_t)arg;
    unsigned char c = 0;
    atomic_fetch_add(&about_to_read, 1);
    ssize_t n = read(socks[idx][1], &c, 1);
    CHECK(n == 1, "thread %d: read returned %zd (%s)", idx, n, n < 0 ? strerror(errno) : "EOF");
    CHECK(c == (unsigned char)(idx * 7), "thread %d: read byte %u, expected %u", idx, c,
          (unsigned char)(idx * 7));
    c = (unsigned char)~c;
    n = write(socks[idx][1], &c, 1);
    CHECK(n == 1, "thread %d: write returned %zd (%s)", idx, n, n < 0 ? strerror(errno) : "");
    atomic_fetch_add(&echoed, 1);
    return (void *)(intptr_t)(idx + 1);
}

int main(void) {
    const int under_shim = is_shim();

    /* 4,000 sockets: make sure the soft limit allows them. */
    struct rlimit rl;
    CHECK_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < 2 * NTHREADS + 64) {
        CHECK(rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= 2 * NTHREADS + 64,
              "RLIMIT_NOFILE hard limit %llu is too low for %d sockets", (unsigned long long)rl.rlim_max,
              2 * NTHREADS);
        rl.rlim_cur = 2 * NTHREADS + 64;
        CHECK_EQ(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    for (int i = 0; i < NTHREADS; ++i) {
        int rc = socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, socks[i]);
        CHECK(rc == 0, "socketpair #%d: %s", i, strerror(errno));
    }

    const int64_t t0 = now_ns() / 1000000;
    pthread_attr_t attr;
    CHECK_EQ(pthread_attr_init(&attr), 0);
    CHECK_EQ(pthread_attr_setstacksize(&attr, STACK_SIZE), 0);
    static pthread_t threads[NTHREADS];
    for (int i = 0; i < NTHREADS; ++i) {
        int rc = pthread_create(&threads[i], &attr, echo_once, (void *)(intptr_t)i);
        CHECK(rc == 0, "pthread_create #%d: %s", i, strerror(rc));
    }
    CHECK_EQ(pthread_attr_destroy(&attr), 0);
    const int64_t created = now_ns() / 1000000 - t0;

    /* Wait until all have reached their read(), then give the last ones a
     * moment to block in it. */
    while (atomic_load(&about_to_read) < NTHREADS) {
        CHECK(now_ns() / 1000000 - t0 < 10000, "only %d of %d threads reached read() in 10 s",
              atomic_load(&about_to_read), NTHREADS);
        usleep(1000);
    }
    usleep(50 * 1000);
    CHECK(atomic_load(&echoed) == 0, "%d threads got past a read() nobody had written for",
          atomic_load(&echoed));
    const int os_threads = os_thread_count();
    if (under_shim)
        CHECK(os_threads <= 8, "%d OS threads while %d threads are blocked in read(): expected <= 8", os_threads,
              NTHREADS);

    for (int i = 0; i < NTHREADS; ++i) {
        unsigned char c = (unsigned char)(i * 7);
        CHECK_EQ(write(socks[i][0], &c, 1), 1);
    }
    for (int i = 0; i < NTHREADS; ++i) {
        unsigned char c = 0;
        ssize_t n = read(socks[i][0], &c, 1);
        CHECK(n == 1, "echo from thread %d: read returned %zd (%s)", i, n, n < 0 ? strerror(errno) : "EOF");
        CHECK(c == (unsigned char)~(unsigned char)(i * 7), "echo from thread %d: byte %u, expected %u", i, c,
              (unsigned char)~(unsigned char)(i * 7));
    }
    for (int i = 0; i < NTHREADS; ++i) {
        void *result = NULL;
        CHECK_EQ(pthread_join(threads[i], &result), 0);
        CHECK(result == (void *)(intptr_t)(i + 1), "thread %d returned %p", i, result);
    }
    CHECK_EQ(atomic_load(&echoed), NTHREADS);
    for (int i = 0; i < NTHREADS; ++i) {
        close(socks[i][0]);
        close(socks[i][1]);
    }
    const int64_t total = now_ns() / 1000000 - t0;
    CHECK(total < 10000, "2,000 echo threads took %lld ms", (long long)total);
    printf("t_many_threads: ok (%s): created in %lld ms, %d OS threads while blocked, %lld ms in all\n",
           under_shim ? "greenld" : "native", (long long)created, os_threads, (long long)total);
    return 0;
}
