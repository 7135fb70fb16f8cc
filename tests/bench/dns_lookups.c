/*
 * dns_lookups — N threads the program creates each resolve one distinct
 * name with getaddrinfo() at the same time; prints how long all of them
 * took.  With a DNS server that answers after D ms, threads that really
 * wait concurrently finish in about D; lookups that block their OS thread
 * (a hub, under a shim that does not interpose the resolver) take about
 * D * N / hubs.
 *
 * Usage: dns_lookups [--threads 200] [--domain greenld-bench.test]
 *
 * Thread i resolves "h<i>.<domain>" (IPv4 only).  Output, one line:
 *   lookups=N ok=K seconds=S.SSS slowest=S.SSS
 * Exit 0 only if every lookup gave an address.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

static const char *g_domain = "greenld-bench.test";
static int g_ok;
static double g_slowest;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *lookup(void *arg)
{
    char name[300];
    snprintf(name, sizeof name, "h%ld.%s", (long)(intptr_t)arg, g_domain);
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    double t0 = now_s();
    int rc = getaddrinfo(name, NULL, &hints, &res);
    double took = now_s() - t0;
    pthread_mutex_lock(&g_lock);
    if (rc == 0 && res)
        g_ok++;
    else if (g_ok == 0)
        fprintf(stderr, "dns_lookups: %s: %s\n", name, gai_strerror(rc));
    if (took > g_slowest)
        g_slowest = took;
    pthread_mutex_unlock(&g_lock);
    if (res)
        freeaddrinfo(res);
    return NULL;
}

int main(int argc, char **argv)
{
    long n = 200;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            char *end;
            errno = 0;
            n = strtol(argv[++i], &end, 10);
            if (errno || *end || n < 1 || n > 100000) {
                fprintf(stderr, "dns_lookups: bad --threads '%s' (1..100000)\n", argv[i]);
                return 2;
            }
        } else if (strcmp(argv[i], "--domain") == 0 && i + 1 < argc) {
            g_domain = argv[++i];
        } else {
            fprintf(stderr, "usage: %s [--threads 200] [--domain greenld-bench.test]\n", argv[0]);
            return 2;
        }
    }
    pthread_t *t = calloc((size_t)n, sizeof *t);
    if (!t)
        return 1;
    double t0 = now_s();
    for (long i = 0; i < n; i++)
        if (pthread_create(&t[i], NULL, lookup, (void *)(intptr_t)i) != 0) {
            fprintf(stderr, "dns_lookups: pthread_create failed after %ld threads\n", i);
            return 1;
        }
    for (long i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    printf("lookups=%ld ok=%d seconds=%.3f slowest=%.3f\n", n, g_ok, now_s() - t0, g_slowest);
    free(t);
    return g_ok == n ? 0 : 1;
}
