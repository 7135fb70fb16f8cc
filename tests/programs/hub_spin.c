/*
 * hub_spin — hand-offs between two threads, and a mostly idle thread, for
 * tests/integration/hub_spin.sh (the hubs' bounded spin before epoll_wait,
 * Hub::idle in runtime/hub.cpp).
 *
 * Usage: hub_spin socket N | condvar N | idle SECONDS | sleep SECONDS
 *   socket N   two threads bounce one byte over a socketpair N times
 *              (plain blocking read and write, as tests/bench/pingpong);
 *   condvar N  two threads take turns N times through a mutex and a
 *              condition variable;
 *   idle S     for S seconds one thread makes a round trip over a
 *              socketpair with a second one, then sleeps 2 ms, again and
 *              again: short waits alternating with timer waits, the
 *              pattern a spin decided by the last wait alone would pay
 *              for at every sleep;
 *   sleep S    for S seconds one thread sleeps 10 ms at a time while
 *              another is blocked in read() (the sleeps count as the
 *              hand-offs).
 * Prints one line: "hand_offs=N seconds=S vcsw_per_hand_off=V cpu_per_second=C":
 * the process's voluntary context switches (getrusage: every thread, dead
 * or alive; a thread that sleeps in the kernel counts one) per hand-off
 * or round trip, and its CPU time per wall-clock second. Exit 0 only if
 * every byte and turn arrived as sent.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long g_n;
static double g_idle_seconds;
static int g_fds[2];
static int g_failed;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cond = PTHREAD_COND_INITIALIZER;
static int g_turn;
static long g_count;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int one_byte(int fd, char *byte, int is_write)
{
    ssize_t n;
    do {
        n = is_write ? write(fd, byte, 1) : read(fd, byte, 1);
    } while (n < 0 && errno == EINTR);
    return n == 1 ? 0 : -1;
}

/* Sends a byte and checks its echo (the byte xor 0x55). */
static int round_trip(long i)
{
    char byte = (char)(i & 0x7f);
    if (one_byte(g_fds[0], &byte, 1) < 0 || one_byte(g_fds[0], &byte, 0) < 0 ||
        byte != (char)((i & 0x7f) ^ 0x55)) {
        g_failed = 1;
        return -1;
    }
    return 0;
}

static void *initiator(void *arg)
{
    (void)arg;
    for (long i = 0; i < g_n; i++)
        if (round_trip(i) < 0) break;
    g_count = g_n;
    shutdown(g_fds[0], SHUT_RDWR);
    return NULL;
}

static void *idle_initiator(void *arg)
{
    (void)arg;
    const double end = now_s() + g_idle_seconds;
    long i = 0;
    while (now_s() < end) {
        if (round_trip(i++) < 0) break;
        usleep(2000);
    }
    g_count = i;
    shutdown(g_fds[0], SHUT_RDWR);
    return NULL;
}

static void *sleeper(void *arg)
{
    (void)arg;
    const double end = now_s() + g_idle_seconds;
    long i = 0;
    for (; now_s() < end; i++) usleep(10000);
    g_count = i;
    shutdown(g_fds[0], SHUT_RDWR);
    return NULL;
}

static void *echoer(void *arg)
{
    (void)arg;
    char byte;
    while (one_byte(g_fds[1], &byte, 0) == 0) {
        byte ^= 0x55;
        if (one_byte(g_fds[1], &byte, 1) < 0) break;
    }
    return NULL;
}

static void *taker(void *arg)
{
    const int me = (int)(long)arg;
    for (long i = 0; i < g_n; i++) {
        pthread_mutex_lock(&g_lock);
        while (g_turn != me) pthread_cond_wait(&g_cond, &g_lock);
        if (me == 0) g_count++;
        g_turn = !me;
        pthread_cond_signal(&g_cond);
        pthread_mutex_unlock(&g_lock);
    }
    return NULL;
}

static void *nothing(void *arg) { return arg; }

static void start(pthread_t *t, void *(*fn)(void *), void *arg)
{
    int err = pthread_create(t, NULL, fn, arg);
    if (err) {
        fprintf(stderr, "hub_spin: pthread_create: %s\n", strerror(err));
        exit(1);
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: hub_spin socket N | condvar N | idle SECONDS | sleep SECONDS\n");
    exit(2);
}

static double cpu_s(const struct rusage *r)
{
    return (double)r->ru_utime.tv_sec + (double)r->ru_utime.tv_usec / 1e6 + (double)r->ru_stime.tv_sec +
           (double)r->ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
    if (argc != 3) usage();
    char *end;
    const double value = strtod(argv[2], &end);
    if (*end || value <= 0 || value > 1e7) usage();
    const char *mode = argv[1];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, g_fds) != 0) {
        perror("hub_spin: socketpair");
        return 1;
    }
    /* The hubs start with the first thread: a first one, already ended,
     * keeps their start-up out of the counts. */
    pthread_t a, b;
    start(&a, nothing, NULL);
    pthread_join(a, NULL);

    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    const double t0 = now_s();
    if (strcmp(mode, "socket") == 0) {
        g_n = (long)value;
        start(&b, echoer, NULL);
        start(&a, initiator, NULL);
    } else if (strcmp(mode, "condvar") == 0) {
        g_n = (long)value;
        start(&b, taker, (void *)1L);
        start(&a, taker, (void *)0L);
    } else if (strcmp(mode, "idle") == 0) {
        g_idle_seconds = value;
        start(&b, echoer, NULL);
        start(&a, idle_initiator, NULL);
    } else if (strcmp(mode, "sleep") == 0) {
        g_idle_seconds = value;
        start(&b, echoer, NULL); /* blocked in read() until the sleeper ends */
        start(&a, sleeper, NULL);
    } else {
        usage();
    }
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    const double seconds = now_s() - t0;
    getrusage(RUSAGE_SELF, &r1);
    if (g_failed || g_count < 1) {
        fprintf(stderr, "hub_spin: %s: a hand-off went wrong\n", mode);
        return 1;
    }
    printf("hand_offs=%ld seconds=%.6f vcsw_per_hand_off=%.3f cpu_per_second=%.4f\n", g_count, seconds,
           (double)(r1.ru_nvcsw - r0.ru_nvcsw) / (double)g_count, (cpu_s(&r1) - cpu_s(&r0)) / seconds);
    return 0;
}
