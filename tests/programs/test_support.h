/*
 * test_support.h — the scaffolding every tests/programs/t_*.c shares.
 *
 * The programs test libc semantics: each runs natively, under greenld and
 * under greenld with one hub (tests/integration/programs.sh), and must
 * pass all three. They are plain C, so they can also be read as "what a
 * legacy program does". Include this once, first among local headers:
 *
 *   CHECK(cond, fmt, ...)   on failure: file, line, phase, message, errno;
 *                           exit status 1
 *   set_phase("...")        what the program is doing, named in failures
 *                           and in the watchdog's message
 *   watchdog(seconds)       SIGALRM after `seconds` ends the run (status 2)
 *                           naming the phase: a hang fails, never stalls CI
 *   sleep_ms, now_ns, now_ms
 *   spawn, join, join_within
 *   is_shim()               running under greenld (LD_PRELOAD)?
 *   rng_next                xorshift64*
 *   tcp_listener, tcp_pair, unix_pair
 *   ticker_start/ticker_stop/ticker_ticks_during: a thread that ticks
 *                           every millisecond, to prove a blocking call
 *                           in another thread parked only its caller
 */
#ifndef GREENLD_TEST_SUPPORT_H
#define GREENLD_TEST_SUPPORT_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static const char *volatile g_phase = "setup";

static inline void set_phase(const char *phase) { g_phase = phase; }

static void check_failed(const char *file, int line, const char *expr, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 4, 5), unused));
static void check_failed(const char *file, int line, const char *expr, const char *fmt, ...)
{
    int saved = errno;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s:%d: CHECK failed in phase '%s': %s: %s (errno now %d %s)\n", file, line, g_phase, expr,
            msg, saved, strerror(saved));
    _exit(1);
}
#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        if (!(cond)) check_failed(__FILE__, __LINE__, #cond, __VA_ARGS__);    \
    } while (0)

/* Async-signal-safe: raw write(2), so a wrapped write cannot be involved. */
static void watchdog_fired(int sig)
{
    (void)sig;
    const char *p = g_phase;
    static const char pre[] = "TIMEOUT (watchdog) in phase: ";
    syscall(SYS_write, 2, pre, sizeof pre - 1);
    syscall(SYS_write, 2, p, strlen(p));
    syscall(SYS_write, 2, "\n", 1);
    _exit(2);
}

static __attribute__((unused)) void watchdog(unsigned seconds)
{
    signal(SIGALRM, watchdog_fired);
    alarm(seconds);
}

static __attribute__((unused)) int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static __attribute__((unused)) double now_ms(void) { return (double)now_ns() / 1e6; }

static __attribute__((unused)) void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static __attribute__((unused)) pthread_t spawn(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    int rc = pthread_create(&t, NULL, fn, arg);
    CHECK(rc == 0, "pthread_create returned %d", rc);
    return t;
}

static __attribute__((unused)) void *join(pthread_t t)
{
    void *ret = NULL;
    int rc = pthread_join(t, &ret);
    CHECK(rc == 0, "pthread_join returned %d", rc);
    return ret;
}

/* Joins t, failing if it has not ended within ms. */
static __attribute__((unused)) void *join_within(pthread_t t, int ms, const char *what)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    void *ret = NULL;
    int rc = pthread_timedjoin_np(t, &ret, &ts);
    CHECK(rc == 0, "%s: not ended within %d ms (pthread_timedjoin_np returned %d)", what, ms, rc);
    return ret;
}

static __attribute__((unused)) int is_shim(void) { return dlsym(RTLD_DEFAULT, "greenld_is_fiber") != NULL; }

static __attribute__((unused)) uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 2685821657736338717ull;
}

/* A TCP listener on 127.0.0.1, ephemeral port (written to *addr). */
static __attribute__((unused)) int tcp_listener(struct sockaddr_in *addr, int backlog)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(l >= 0, "socket");
    int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    CHECK(bind(l, (struct sockaddr *)&a, sizeof a) == 0, "bind 127.0.0.1:0");
    CHECK(getsockname(l, (struct sockaddr *)&a, &len) == 0, "getsockname");
    CHECK(listen(l, backlog) == 0, "listen");
    if (addr) *addr = a;
    return l;
}

/* A connected TCP pair over loopback: *a the client end, *b the server end. */
static __attribute__((unused)) void tcp_pair(int *a, int *b)
{
    struct sockaddr_in addr;
    int l = tcp_listener(&addr, 4);
    *a = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(*a >= 0, "socket");
    CHECK(connect(*a, (struct sockaddr *)&addr, sizeof addr) == 0, "connect");
    *b = accept(l, NULL, NULL);
    CHECK(*b >= 0, "accept");
    close(l);
}

static __attribute__((unused)) void unix_pair(int sv[2], int type)
{
    CHECK(socketpair(AF_UNIX, type, 0, sv) == 0, "socketpair(AF_UNIX, %d)", type);
}

/* ---- ticker: proof that the other threads kept running ------------------ */

static atomic_long g_ticks;
static atomic_int g_ticker_stop;
static pthread_t g_ticker;

static void *ticker_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&g_ticker_stop)) {
        sleep_ms(1);
        atomic_fetch_add(&g_ticks, 1);
    }
    return NULL;
}

static __attribute__((unused)) void ticker_start(void)
{
    atomic_store(&g_ticker_stop, 0);
    g_ticker = spawn(ticker_main, NULL);
}

static __attribute__((unused)) void ticker_stop(void)
{
    atomic_store(&g_ticker_stop, 1);
    join(g_ticker);
}

static __attribute__((unused)) long ticker_ticks(void) { return atomic_load(&g_ticks); }

/* Fails unless the ticker ticked at least `min` times since `since`
 * (a ticker_ticks() value): the blocking call named `what` did not stop
 * the other threads. With 1 ms ticks, a 200 ms block should see ~200;
 * ask for far fewer so a loaded machine does not fail the test. */
static __attribute__((unused)) void ticker_expect(long since, long min, const char *what)
{
    long n = ticker_ticks() - since;
    CHECK(n >= min, "%s: the ticker thread ticked %ld times meanwhile, expected >= %ld "
                    "(the call blocked other threads)", what, n, min);
}

#endif
