/*
 * t_signal_storm.c — a signal storm: SIGALRM every millisecond
 * (setitimer ITIMER_REAL 1 ms) for 1.5 s, handled without SA_RESTART by
 * whichever thread the kernel picks (the main thread blocks it), while 50
 * threads play socketpair ping-pong with loops that retry on EINTR and on
 * short transfers, as careful programs do. Every byte must arrive intact,
 * nothing may hang, handlers must have run, and a ticker keeps ticking.
 */
#include "signal_support.h"

#define PAIRS 25
#define MSG 64

static atomic_long g_hits;
static atomic_int g_stop;
static atomic_long g_round_trips;

static void on_alarm(int sig)
{
    (void)sig;
    atomic_fetch_add(&g_hits, 1);
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        CHECK(w > 0, "write returned %zd", w);
        p += w;
        n -= (size_t)w;
    }
}

/* 0 at EOF before the first byte, else n. */
static size_t read_all(int fd, char *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        CHECK(r >= 0, "read returned %zd", r);
        if (r == 0) {
            CHECK(got == 0, "EOF in the middle of a message");
            return 0;
        }
        got += (size_t)r;
    }
    return got;
}

static void fill(char *m, uint64_t seed)
{
    for (int i = 0; i < MSG; ++i) m[i] = (char)rng_next(&seed);
}

static void *pinger(void *arg)
{
    int fd = (int)(intptr_t)arg;
    unblock(SIGALRM);
    char out[MSG], back[MSG];
    for (uint64_t k = 1; !atomic_load(&g_stop); ++k) {
        fill(out, k * 7919 + (uint64_t)fd);
        write_all(fd, out, MSG);
        CHECK(read_all(fd, back, MSG) == MSG, "the echo ended early");
        CHECK(memcmp(out, back, MSG) == 0, "round trip %llu came back altered", (unsigned long long)k);
        atomic_fetch_add(&g_round_trips, 1);
    }
    CHECK(shutdown(fd, SHUT_WR) == 0, "shutdown");
    return NULL;
}

static void *echoer(void *arg)
{
    int fd = (int)(intptr_t)arg;
    unblock(SIGALRM);
    char m[MSG];
    while (read_all(fd, m, MSG) == MSG) write_all(fd, m, MSG);
    return NULL;
}

int main(void)
{
    sig_watchdog(40);
    on(SIGALRM, on_alarm, 0);
    block(SIGALRM); /* inherited by the threads; the workers unblock it */
    ticker_start();

    set_phase("ping-pong under a SIGALRM storm");
    pthread_t t[2 * PAIRS];
    int fds[PAIRS][2];
    for (int i = 0; i < PAIRS; ++i) {
        unix_pair(fds[i], SOCK_STREAM);
        t[2 * i] = spawn(pinger, (void *)(intptr_t)fds[i][0]);
        t[2 * i + 1] = spawn(echoer, (void *)(intptr_t)fds[i][1]);
    }
    long ticks = ticker_ticks();
    itimer_ms(1, 1);
    sleep_ms(1500);
    itimer_ms(0, 0);
    ticker_expect(ticks, 100, "the storm");
    atomic_store(&g_stop, 1);
    for (int i = 0; i < 2 * PAIRS; ++i) join_within(t[i], 10000, "a ping-pong thread");
    for (int i = 0; i < PAIRS; ++i) {
        close(fds[i][0]);
        close(fds[i][1]);
    }
    long hits = atomic_load(&g_hits);
    long trips = atomic_load(&g_round_trips);
    printf("ok: %ld SIGALRM handled, %ld round trips\n", hits, trips);
    CHECK(hits >= 100, "only %ld SIGALRM handlers ran in 1.5 s at 1 kHz", hits);
    CHECK(trips >= 1000, "only %ld round trips in 1.5 s", trips);
    ticker_stop();
    return 0;
}
