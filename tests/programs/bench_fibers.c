/*
 * bench_fibers — what switching and creating threads (fibers under greenld)
 * cost, to compare builds of the runtime:
 *
 *   yield      2 threads each calling sched_yield() N times: ns per yield
 *              (under greenld with one hub: fiber -> hub -> fiber, two
 *              context switches and the stack canary check), the mean and
 *              the best of batches of 1,000 (the best resists a busy machine)
 *   spawn      N times pthread_create + pthread_join of a thread that
 *              returns at once: us per thread (a cached stack each time)
 *   burst      N threads created, then all joined: us per thread (stacks
 *              freshly mapped)
 *
 *   GREENLD_HUBS=1 LD_PRELOAD=build/libgreenld.so build/tests/bench_fibers [N]
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static long g_n = 1000000;

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

enum { BATCH = 1000 };
static double g_best_batch_ns = 1e300;

/* The first thread times its batches; each of its yields lets the other
 * thread yield once, so a batch is 2 * BATCH yields. */
static void *yielder(void *arg) {
    const int timed = arg != NULL;
    for (long i = 0; i < g_n; i += BATCH) {
        double t0 = timed ? now_ns() : 0;
        for (long j = 0; j < BATCH; ++j) sched_yield();
        if (timed) {
            double dt = now_ns() - t0;
            if (dt < g_best_batch_ns) g_best_batch_ns = dt;
        }
    }
    return NULL;
}

static void *nothing(void *arg) { return arg; }

int main(int argc, char **argv) {
    if (argc > 1) g_n = atol(argv[1]);
    if (g_n < 1) {
        fprintf(stderr, "usage: bench_fibers [N]\n");
        return 2;
    }
    pthread_t a, b;
    double t0 = now_ns();
    static int timed_marker;
    if (pthread_create(&a, NULL, yielder, &timed_marker) || pthread_create(&b, NULL, yielder, NULL)) return 1;
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    double yield_ns = (now_ns() - t0) / (2.0 * (double)g_n);

    long spawns = g_n / 50 > 0 ? g_n / 50 : 1;
    t0 = now_ns();
    for (long i = 0; i < spawns; ++i) {
        pthread_t t;
        if (pthread_create(&t, NULL, nothing, NULL)) return 1;
        pthread_join(t, NULL);
    }
    double spawn_us = (now_ns() - t0) / 1e3 / (double)spawns;

    pthread_t *ts = calloc((size_t)spawns, sizeof *ts);
    if (!ts) return 1;
    t0 = now_ns();
    for (long i = 0; i < spawns; ++i)
        if (pthread_create(&ts[i], NULL, nothing, NULL)) return 1;
    for (long i = 0; i < spawns; ++i) pthread_join(ts[i], NULL);
    double burst_us = (now_ns() - t0) / 1e3 / (double)spawns;
    free(ts);
    printf("yield %.1f ns (best batch %.1f ns)  spawn %.2f us  burst %.2f us  (N=%ld, %ld threads)\n", yield_ns,
           g_best_batch_ns / (2.0 * BATCH), spawn_us, burst_us,
           g_n, spawns);
    return 0;
}
