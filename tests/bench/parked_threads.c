/*
 * parked_threads — how many threads can one unmodified program keep alive,
 * each parked in a blocking read(2)?
 *
 * Usage: parked_threads [--max N] [--seconds S] [--join]   (defaults 100000, 60)
 *
 * Creates threads with default attributes, one after the other, each of
 * which blocks in read() on the read end of one shared pipe.  Stops at the
 * first pthread_create failure, at N threads, or after S seconds.  Then,
 * with every thread still parked, prints one line on stdout:
 *   threads=T stop=REASON seconds=S.SSS rss_kib=R vm_maps=M
 * REASON is "max" (reached N), "time" (S seconds elapsed) or the strerror
 * text of the failed pthread_create (e.g. "Resource temporarily
 * unavailable").  With --join, closing the pipe's write end then wakes
 * every thread with EOF and the program joins them all (bounded by the same
 * deadline plus 30 s, after which a watchdog ends it) and exits 1 if a
 * thread saw anything other than EOF; without, it exits 0 at once, threads
 * still parked.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int g_pipe[2];
static volatile int g_bad; /* a thread's read returned something other than EOF */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *parked(void *arg)
{
    (void)arg;
    char c;
    ssize_t n;
    do {
        n = read(g_pipe[0], &c, 1);
    } while (n < 0 && errno == EINTR);
    if (n != 0)
        g_bad = 1;
    return NULL;
}

static long status_kib(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t len = strlen(key);
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, len) == 0 && line[len] == ':') {
            v = strtol(line + len + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

static long count_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    long n = 0;
    int c;
    if (!f)
        return -1;
    while ((c = getc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static long parse_arg(const char *name, const char *s, long min, long max)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max) {
        fprintf(stderr, "parked_threads: bad %s '%s' (expected %ld..%ld)\n", name, s, min, max);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    long max = 100000, seconds = 60;
    int join = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--max") == 0 && i + 1 < argc)
            max = parse_arg("--max", argv[++i], 1, 10000000);
        else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
            seconds = parse_arg("--seconds", argv[++i], 1, 3600);
        else if (strcmp(argv[i], "--join") == 0)
            join = 1;
        else {
            fprintf(stderr, "usage: %s [--max N] [--seconds S] [--join]\n", argv[0]);
            return 2;
        }
    }
    if (pipe(g_pipe) < 0) {
        perror("parked_threads: pipe");
        return 1;
    }
    pthread_t *tids = calloc((size_t)max, sizeof *tids);
    if (!tids) {
        fprintf(stderr, "parked_threads: out of memory\n");
        return 1;
    }
    const char *stop = "max";
    double t0 = now_s(), deadline = t0 + (double)seconds;
    long n = 0;
    while (n < max) {
        int rc = pthread_create(&tids[n], NULL, parked, NULL);
        if (rc != 0) {
            stop = strerror(rc);
            break;
        }
        n++;
        if ((n & 255) == 0 && now_s() > deadline) {
            stop = "time";
            break;
        }
    }
    double t1 = now_s();
    /* Give the last threads time to reach their read(). */
    usleep(200 * 1000);
    printf("threads=%ld stop=%s seconds=%.3f rss_kib=%ld vm_maps=%ld\n", n, stop, t1 - t0, status_kib("VmRSS"),
           count_maps());
    fflush(stdout);
    if (!join)
        _exit(0);

    close(g_pipe[1]);
    /* Joining is bounded: a watchdog ends the process if it takes too long. */
    alarm((unsigned)seconds + 30);
    for (long i = 0; i < n; i++)
        pthread_join(tids[i], NULL);
    free(tids);
    return g_bad ? 1 : 0;
}
