/*
 * pingpong — two threads the program creates bounce one byte over a
 * socketpair N times; prints the round trips per second.
 *
 * Usage: pingpong [--round-trips N] [--pipes]     (default 20000, socketpair)
 *
 * --pipes: two pipes, one per direction, instead of the socketpair.
 *
 * Both threads are created with pthread_create, so under greenld both are
 * fibers (on one hub or two, per GREENLD_HUBS); natively each hand-off is a
 * kernel wake-up of the other thread.  Plain blocking read/write: the point
 * is what an unmodified program pays.  Output, one line on stdout:
 *   round_trips=N seconds=S.SSSSSS rtps=R
 * Exit 0 only if every byte came back as sent.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long g_round_trips = 20000;
/* The initiator writes to g_init_out and reads g_init_in; the echoer reads
 * g_echo_in and writes g_echo_out. */
static int g_init_out, g_init_in, g_echo_in, g_echo_out;
static int g_failed;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* write(2) or read(2) of exactly one byte, retried on EINTR. */
static int one_byte(int fd, char *byte, int is_write)
{
    ssize_t n;
    do {
        n = is_write ? write(fd, byte, 1) : read(fd, byte, 1);
    } while (n < 0 && errno == EINTR);
    return n == 1 ? 0 : -1;
}

static void *initiator(void *arg)
{
    (void)arg;
    for (long i = 0; i < g_round_trips; i++) {
        char byte = (char)(i & 0x7f);
        if (one_byte(g_init_out, &byte, 1) < 0 || one_byte(g_init_in, &byte, 0) < 0 ||
            byte != (char)((i & 0x7f) ^ 0x55)) {
            g_failed = 1;
            break;
        }
    }
    /* Unblocks the echoer if we stopped early. */
    if (g_init_out == g_init_in)
        shutdown(g_init_out, SHUT_RDWR);
    else
        close(g_init_out);
    return NULL;
}

static void *echoer(void *arg)
{
    (void)arg;
    for (long i = 0; i < g_round_trips; i++) {
        char byte;
        if (one_byte(g_echo_in, &byte, 0) < 0)
            return NULL;
        byte ^= 0x55; /* so an echo of the wrong byte, or no echo, is caught */
        if (one_byte(g_echo_out, &byte, 1) < 0)
            return NULL;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int pipes = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--pipes") == 0) {
            pipes = 1;
        } else if (strcmp(argv[i], "--round-trips") == 0 && i + 1 < argc) {
            char *end;
            g_round_trips = strtol(argv[++i], &end, 10);
            if (*end || g_round_trips < 1) {
                fprintf(stderr, "pingpong: bad --round-trips\n");
                return 2;
            }
        } else {
            fprintf(stderr, "usage: %s [--round-trips N] [--pipes]\n", argv[0]);
            return 2;
        }
    }
    if (pipes) {
        int there[2], back[2];
        if (pipe2(there, O_CLOEXEC) < 0 || pipe2(back, O_CLOEXEC) < 0) {
            perror("pingpong: pipe2");
            return 1;
        }
        g_init_out = there[1], g_echo_in = there[0];
        g_echo_out = back[1], g_init_in = back[0];
    } else {
        int fds[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0) {
            perror("pingpong: socketpair");
            return 1;
        }
        g_init_out = g_init_in = fds[0];
        g_echo_in = g_echo_out = fds[1];
    }
    /* A watchdog: a hang must end the run, not the benchmark script. */
    alarm(120);

    pthread_t a, b;
    double t0 = now_s();
    if (pthread_create(&b, NULL, echoer, NULL) != 0 || pthread_create(&a, NULL, initiator, NULL) != 0) {
        fprintf(stderr, "pingpong: pthread_create failed\n");
        return 1;
    }
    pthread_join(a, NULL);
    double t1 = now_s();
    pthread_join(b, NULL);
    if (g_failed) {
        fprintf(stderr, "pingpong: FAILED: a byte did not come back as sent\n");
        return 1;
    }
    double secs = t1 - t0;
    printf("round_trips=%ld seconds=%.6f rtps=%.0f\n", g_round_trips, secs, (double)g_round_trips / secs);
    return 0;
}
