/*
 * herd_readers — R threads blocked in read() on one stream socket; the main
 * thread writes B single bytes, one at a time, each after the previous one
 * was taken (a reader acknowledges it on a second socket) and G microseconds
 * more (every reader back in read()). Natively the
 * kernel wakes one reader per byte; tests/integration/syscall_counts.sh
 * counts, under greenld, the reads that found nothing (woken for a byte
 * another reader took): the thundering herd a wake-all would cause.
 *
 * Usage: herd_readers [--readers R] [--bytes B] [--gap-us G]   (8, 500, 1000)
 * Prints "readers=R bytes=B"; exit 0 only if every byte was read once.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int g_data[2], g_ack[2];
static atomic_long g_read;

static void *reader(void *arg)
{
    (void)arg;
    char c;
    for (;;) {
        ssize_t n = read(g_data[0], &c, 1);
        if (n <= 0) return NULL;
        atomic_fetch_add(&g_read, 1);
        if (write(g_ack[1], &c, 1) != 1) return NULL;
    }
}

static long arg_value(const char *s, const char *name)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || v < 1 || v > 1000000) {
        fprintf(stderr, "herd_readers: bad %s: '%s'\n", name, s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    long readers = 8, bytes = 500, gap_us = 1000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--readers") == 0 && i + 1 < argc)
            readers = arg_value(argv[++i], "--readers");
        else if (strcmp(argv[i], "--bytes") == 0 && i + 1 < argc)
            bytes = arg_value(argv[++i], "--bytes");
        else if (strcmp(argv[i], "--gap-us") == 0 && i + 1 < argc)
            gap_us = arg_value(argv[++i], "--gap-us");
        else {
            fprintf(stderr, "usage: %s [--readers R] [--bytes B] [--gap-us G]\n", argv[0]);
            return 2;
        }
    }
    if (readers > 1000) {
        fprintf(stderr, "herd_readers: bad --readers: at most 1000\n");
        return 2;
    }
    alarm(60);
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, g_data) || socketpair(AF_UNIX, SOCK_STREAM, 0, g_ack)) {
        perror("herd_readers: socketpair");
        return 1;
    }
    pthread_t t[1000];
    for (long i = 0; i < readers; i++)
        if (pthread_create(&t[i], NULL, reader, NULL)) {
            fprintf(stderr, "herd_readers: pthread_create failed\n");
            return 1;
        }
    usleep(100000); /* every reader blocked */
    for (long i = 0; i < bytes; i++) {
        char c = 'b', a;
        if (write(g_data[1], &c, 1) != 1 || read(g_ack[0], &a, 1) != 1) {
            perror("herd_readers: byte");
            return 1;
        }
        usleep((useconds_t)gap_us);
    }
    shutdown(g_data[1], SHUT_WR);
    for (long i = 0; i < readers; i++) pthread_join(t[i], NULL);
    if (atomic_load(&g_read) != bytes) {
        fprintf(stderr, "herd_readers: FAILED: %ld bytes read of %ld\n", (long)atomic_load(&g_read), bytes);
        return 1;
    }
    printf("readers=%ld bytes=%ld\n", readers, bytes);
    return 0;
}
