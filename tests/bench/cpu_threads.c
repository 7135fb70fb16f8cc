/*
 * cpu_threads — two threads the program creates each do the same fixed
 * amount of pure computation (no system call); prints how much CPU time the
 * process used per second of wall time.
 *
 * Usage: cpu_threads [--iterations N]     (per thread, default 300000000)
 *
 * Output, one line on stdout:
 *   threads=2 wall_seconds=W cpu_seconds=C cpu_per_wall=R os_threads=K
 * With both threads running in parallel R is close to 2; on one core (or
 * one hub) close to 1 (less on a loaded machine).  K is the number of
 * distinct kernel thread ids the two threads ran on (gettid): 2 natively,
 * 1 when both are fibers of one hub.  Exit 0 only if both threads computed the expected
 * checksum.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static long g_iterations = 300000000L;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t work(uint64_t x, long n)
{
    for (long i = 0; i < n; i++) { /* xorshift64: nothing the compiler can fold */
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    return x;
}

struct job {
    uint64_t value;
    pid_t tid;
};

static void *worker(void *arg)
{
    struct job *job = arg;
    char link[64] = "";
    ssize_t n = readlink("/proc/thread-self", link, sizeof link - 1);
    const char *slash = n > 0 ? strrchr(link, '/') : NULL;
    job->tid = slash ? (pid_t)atoi(slash + 1) : -1;
    job->value = work(job->value, g_iterations);
    return NULL;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--iterations") == 0 && i + 1 < argc) {
            char *end;
            errno = 0;
            g_iterations = strtol(argv[++i], &end, 10);
            if (errno || *end || g_iterations < 1) {
                fprintf(stderr, "cpu_threads: bad --iterations '%s'\n", argv[i]);
                return 2;
            }
        } else {
            fprintf(stderr, "usage: %s [--iterations N]\n", argv[0]);
            return 2;
        }
    }
    uint64_t expected = work(88172645463325252ULL, g_iterations);
    struct job result[2] = {{88172645463325252ULL, 0}, {88172645463325252ULL, 0}};
    pthread_t t[2];
    double c0 = cpu_s(), w0 = now_s();
    for (int i = 0; i < 2; i++)
        if (pthread_create(&t[i], NULL, worker, &result[i]) != 0) {
            fprintf(stderr, "cpu_threads: pthread_create failed\n");
            return 1;
        }
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    double wall = now_s() - w0, cpu = cpu_s() - c0;
    if (result[0].value != expected || result[1].value != expected || result[0].tid <= 0 || result[1].tid <= 0) {
        fprintf(stderr, "cpu_threads: FAILED: wrong checksum or no /proc/thread-self\n");
        return 1;
    }
    printf("threads=2 wall_seconds=%.3f cpu_seconds=%.3f cpu_per_wall=%.2f os_threads=%d\n", wall, cpu, cpu / wall,
           result[0].tid == result[1].tid ? 1 : 2);
    return 0;
}
