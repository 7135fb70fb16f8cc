/*
 * bench_park — what a park/unpark hand-over costs: two threads pass a token
 * back and forth N times through two semaphores, and the time per round
 * trip (two hand-overs) is printed in nanoseconds. Under greenld with one
 * hub both threads are fibers of one OS thread, so each hand-over is a
 * sem_post that unparks, a sem_wait that parks, and a switch:
 *
 *   GREENLD_HUBS=1 LD_PRELOAD=build/libgreenld.so build/tests/bench_park 1000000
 *
 * Used to check that the monitor (GREENLD_MAX_BLOCKING_TIME) and the
 * per-park bookkeeping of the fiber dump cost nothing measurable.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static sem_t g_ping, g_pong;
static long g_rounds;

static void *pong(void *arg)
{
    for (long i = 0; i < g_rounds; ++i) {
        sem_wait(&g_ping);
        sem_post(&g_pong);
    }
    return arg;
}

static void *ping(void *arg)
{
    for (long i = 0; i < g_rounds; ++i) {
        sem_post(&g_ping);
        sem_wait(&g_pong);
    }
    return arg;
}

int main(int argc, char **argv)
{
    g_rounds = argc > 1 ? atol(argv[1]) : 1000000;
    if (g_rounds <= 0 || g_rounds > 100000000) {
        fprintf(stderr, "usage: bench_park [ROUNDS (1..100000000)]\n");
        return 2;
    }
    sem_init(&g_ping, 0, 0);
    sem_init(&g_pong, 0, 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pthread_t a, b;
    if (pthread_create(&b, NULL, pong, NULL) != 0 || pthread_create(&a, NULL, ping, NULL) != 0) return 1;
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ns = (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);
    printf("%.1f ns per round trip (%ld rounds)\n", ns / (double)g_rounds, g_rounds);
    return 0;
}
