/*
 * bench_blocking — what a call that cannot be made non-blocking costs a
 * thread (a fiber under greenld), per call, in microseconds:
 *
 *   fdatasync  N fdatasync calls on a tmpfs file (/dev/shm): under greenld
 *              each is a round trip to the blocking-call pool.
 *   pread      N pread calls of 4 KiB from a cached 4 MiB file (page-cache
 *              hits: RWF_NOWAIT succeeds, no round trip).
 *   read       the same file read sequentially with read(fd, buf, 64 KiB),
 *              N/16 times (each pass ends with a short read and EOF).
 *   open       N open+close of a regular file (a fiber's open does one
 *              fstatat to rule out a FIFO).
 *
 * Compare runs with and without the shim's os family:
 *   LD_PRELOAD=build/libgreenld.so build/tests/bench_blocking
 *   LD_PRELOAD=build/libgreenld.so GREENLD_PATCH=thread,socket,time,select,dns,signal build/tests/bench_blocking
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int g_n = 2000;

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void *bench(void *arg)
{
    (void)arg;
    char path[64];
    snprintf(path, sizeof path, "/dev/shm/bench_blocking.%d", (int)getpid());
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) return (void *)1;
    static char buf[1 << 16];
    memset(buf, 'x', sizeof buf);
    for (int i = 0; i < 64; i++)
        if (write(fd, buf, sizeof buf) != (ssize_t)sizeof buf) return (void *)1;

    double t0 = now_us();
    for (int i = 0; i < g_n; i++)
        if (fdatasync(fd) != 0) return (void *)1;
    printf("fdatasync %8.2f us/call\n", (now_us() - t0) / g_n);

    t0 = now_us();
    for (int i = 0; i < g_n; i++)
        if (pread(fd, buf, 4096, (off_t)(i % 1024) * 4096) != 4096) return (void *)1;
    printf("pread     %8.2f us/call\n", (now_us() - t0) / g_n);

    int calls = 0;
    t0 = now_us();
    for (int pass = 0; pass < g_n / 16; pass++) {
        lseek(fd, 0, SEEK_SET);
        ssize_t n;
        while ((n = read(fd, buf, sizeof buf)) > 0) calls++;
        calls++;
        if (n < 0) return (void *)1;
    }
    printf("read      %8.2f us/call (64 KiB)\n", (now_us() - t0) / calls);
    close(fd);

    t0 = now_us();
    for (int i = 0; i < g_n; i++) {
        int f = open(path, O_RDONLY);
        if (f < 0) return (void *)1;
        close(f);
    }
    printf("open      %8.2f us/call (+close)\n", (now_us() - t0) / g_n);
    unlink(path);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc > 1) g_n = atoi(argv[1]);
    pthread_t t;
    void *r;
    if (pthread_create(&t, NULL, bench, NULL) != 0 || pthread_join(t, &r) != 0 || r) {
        fprintf(stderr, "bench_blocking failed\n");
        return 1;
    }
    return 0;
}
