/* t_errno: errno is per thread, so it must survive every kind of switch.
 *
 * Under greenld errno lives in the hub's OS-thread TLS; the shim must save
 * and restore it around every park, or a fiber sees the errno of whichever
 * fiber ran on its hub meanwhile. 50 threads each set errno to a value of
 * their own, then block in one of several ways (sleep, yield, pipe read,
 * contended mutex...), then check errno is still theirs; 100 rounds.
 * Other threads make failing syscalls meanwhile, so errno on the hub's OS
 * thread really changes while a thread is parked.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "test_support.h"

enum { K_USLEEP, K_NANOSLEEP, K_CLOCK_NANOSLEEP, K_YIELD, K_PIPE, K_SOCKET, K_MUTEX, K_FAILING_SYSCALL, NKINDS };
/* ROUNDS (~100) is a multiple of NKINDS so that every thread does each kind
 * equally often: the pipe ring needs as many writes as reads. */
enum { NTHREADS = 50, ROUNDS = 13 * NKINDS };
static const char *const kind_names[NKINDS] = {"usleep", "nanosleep", "clock_nanosleep", "sched_yield",
                                               "pipe read", "socket recv", "contended mutex", "failing syscalls"};

static int pipes[NTHREADS][2];
static int sockets[NTHREADS][2]; /* thread i receives on [i][0]; others send on [i][1] */
static pthread_mutex_t contended = PTHREAD_MUTEX_INITIALIZER;

/* Distinct per thread and round, and far from any real errno value. */
static int errno_value(int idx, int round) { return 100000 + idx * 1000 + round; }

#define CHECK_ERRNO(idx, round, what)                                                                \
    do {                                                                                             \
        int want_ = errno_value(idx, round);                                                         \
        if (errno != want_) {                                                                        \
            fprintf(stderr, "%s:%d: thread %d round %d: errno after %s is %d, expected %d\n",        \
                    __FILE__, __LINE__, idx, round, what, errno, want_);                             \
            _exit(1);                                                                                \
        }                                                                                            \
    } while (0)

static void *worker(void *arg) {
    const int idx = (int)(intptr_t)arg;
    for (int round = 0; round < ROUNDS; ++round) {
        /* Each thread goes through the kinds in its own order, so at any
         * moment several kinds of switch are in flight. */
        const int kind = (round + idx) % NKINDS;
        errno = errno_value(idx, round);
        switch (kind) {
        case K_USLEEP:
            CHECK_EQ(usleep(200), 0);
            break;
        case K_NANOSLEEP: {
            struct timespec ts = {0, 150 * 1000};
            CHECK_EQ(nanosleep(&ts, NULL), 0);
            break;
        }
        case K_CLOCK_NANOSLEEP: {
            struct timespec ts = {0, 100 * 1000};
            CHECK_EQ(clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL), 0);
            break;
        }
        case K_YIELD:
            for (int i = 0; i < 5; ++i) CHECK_EQ(sched_yield(), 0);
            break;
        case K_PIPE: {
            /* A token ring: write to the next thread's pipe, then read our
             * own; the read blocks until the previous thread gets here. */
            char c = (char)idx;
            CHECK_EQ(write(pipes[(idx + 1) % NTHREADS][1], &c, 1), 1);
            CHECK_ERRNO(idx, round, "pipe write");
            CHECK_EQ(read(pipes[idx][0], &c, 1), 1);
            CHECK_EQ(c, (char)((idx + NTHREADS - 1) % NTHREADS));
            break;
        }
        case K_SOCKET: {
            /* The same ring over stream sockets: send/recv. */
            char c = (char)idx;
            CHECK_EQ(send(sockets[(idx + 1) % NTHREADS][1], &c, 1, 0), 1);
            CHECK_ERRNO(idx, round, "send");
            CHECK_EQ(recv(sockets[idx][0], &c, 1, 0), 1);
            CHECK_EQ(c, (char)((idx + NTHREADS - 1) % NTHREADS));
            break;
        }
        case K_MUTEX: {
            CHECK_EQ(pthread_mutex_lock(&contended), 0);
            CHECK_ERRNO(idx, round, "pthread_mutex_lock");
            /* Hold it across a park so that others really wait for it. */
            CHECK_EQ(usleep(50), 0);
            CHECK_ERRNO(idx, round, "usleep while holding the mutex");
            CHECK_EQ(pthread_mutex_unlock(&contended), 0);
            break;
        }
        case K_FAILING_SYSCALL: {
            /* Change errno on this OS thread, park, then restore ours. */
            CHECK_EQ(close(-1), -1);
            CHECK_EQ(errno, EBADF);
            CHECK_EQ(sched_yield(), 0);
            CHECK_EQ(errno, EBADF);
            char c;
            CHECK_EQ(read(-1, &c, 1), -1);
            CHECK_EQ(errno, EBADF);
            CHECK_EQ(usleep(100), 0);
            CHECK_EQ(errno, EBADF);
            errno = errno_value(idx, round);
            CHECK_EQ(usleep(100), 0);
            break;
        }
        }
        CHECK_ERRNO(idx, round, kind_names[kind]);
    }
    return NULL;
}

int main(void) {
    const int under_shim = is_shim();
    for (int i = 0; i < NTHREADS; ++i) {
        CHECK_EQ(pipe2(pipes[i], O_CLOEXEC), 0);
        CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sockets[i]), 0);
    }

    errno = 4242;
    pthread_t threads[NTHREADS];
    for (int i = 0; i < NTHREADS; ++i) {
        int rc = pthread_create(&threads[i], NULL, worker, (void *)(intptr_t)i);
        CHECK(rc == 0, "pthread_create #%d: %s", i, strerror(rc));
    }
    /* The native main thread keeps its own errno while the threads run and
     * while it waits for them. */
    CHECK_EQ(errno, 4242);
    for (int i = 0; i < 20; ++i) {
        CHECK_EQ(usleep(500), 0);
        CHECK_EQ(errno, 4242);
    }
    for (int i = 0; i < NTHREADS; ++i) {
        CHECK_EQ(pthread_join(threads[i], NULL), 0);
        CHECK_EQ(errno, 4242);
    }
    for (int i = 0; i < NTHREADS; ++i) {
        close(pipes[i][0]);
        close(pipes[i][1]);
        close(sockets[i][0]);
        close(sockets[i][1]);
    }
    printf("t_errno: ok (%s)\n", under_shim ? "greenld" : "native");
    return 0;
}
