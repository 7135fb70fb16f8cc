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
 *   CHECK_EQ(a, b)          CHECK(a == b), both compared and printed as
 *                           long long
 *   CHECK_RC(expr, want)    for calls that return an error number
 *                           (pthread_*): prints both numbers and names
 *   set_phase("...")        what the program is doing, named in failures
 *                           and in the watchdog's message
 *   watchdog(seconds)       SIGALRM after `seconds` ends the run (status 2)
 *                           naming the phase: a hang fails, never stalls CI
 *   sleep_ms, now_ns, now_ms  (CLOCK_MONOTONIC)
 *   clock_ns(clock), abs_after_ms(clock, ms): a clock's time, and an
 *                           absolute deadline for the *timed* calls
 *   spawn, join, join_within
 *   run_in_created_thread(phase, fn): runs fn in a created thread (a
 *                           fiber under greenld) and joins it
 *   gate_init/gate_wait/gate_destroy: a reusable start line for n threads
 *                           on a mutex and a condvar (not on
 *                           pthread_barrier_t, which tests test)
 *   is_shim()               running under greenld (LD_PRELOAD)?
 *   os_thread_count()       the process's OS threads (fibers are not)
 *   rng_next                xorshift64*
 *   tcp_listener, tcp_pair, unix_pair
 *   read_exact(fd, buf, n, what)  reads until n bytes came (short reads
 *                           are legal); discard_exact(fd, n) the same into
 *                           a scratch buffer
 *   write_exact(fd, buf, n, what) ONE write that must write all n bytes:
 *                           what a blocking write on a socket or pipe does
 *   closed_fd()             a number inside the fd table that is not open
 *   pipe_event_init/set/wait/destroy: a one-shot event on a pipe, to
 *                           order threads without the primitive under test
 *   full_pipe(p)            a pipe of one page, filled: not writable
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
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
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

#define CHECK_EQ(a, b)                                                                          \
    do {                                                                                        \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);                         \
        if (check_a_ != check_b_)                                                               \
            check_failed(__FILE__, __LINE__, #a " == " #b, "%lld != %lld", check_a_, check_b_); \
    } while (0)

/* pthread_* return an error number instead of setting errno. */
#define CHECK_RC(expr, want)                                                                    \
    do {                                                                                        \
        int check_got_ = (expr), check_want_ = (want);                                          \
        if (check_got_ != check_want_)                                                          \
            check_failed(__FILE__, __LINE__, #expr, "returned %d (%s), expected %d (%s)",       \
                         check_got_, strerror(check_got_), check_want_, strerror(check_want_)); \
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

static __attribute__((unused)) int64_t clock_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static __attribute__((unused)) int64_t now_ns(void) { return clock_ns(CLOCK_MONOTONIC); }

/* The absolute time `ms` from now on `clock`, as the timed waits take it. */
static __attribute__((unused)) struct timespec abs_after_ms(clockid_t clock, long ms)
{
    int64_t t = clock_ns(clock) + (int64_t)ms * 1000000;
    struct timespec ts = {(time_t)(t / 1000000000), (long)(t % 1000000000)};
    return ts;
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

struct run_body {
    void (*fn)(void);
};

static void *run_body_main(void *arg)
{
    ((struct run_body *)arg)->fn();
    return NULL;
}

/* Runs one test body in a created thread (a fiber under the shim). */
static __attribute__((unused)) void run_in_created_thread(const char *phase, void (*fn)(void))
{
    set_phase(phase);
    struct run_body b = {fn};
    join(spawn(run_body_main, &b));
}

/* A start line for `parties` threads, reusable round after round. */
struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int waiting, parties;
    unsigned generation;
};

static __attribute__((unused)) void gate_init(struct gate *g, int parties)
{
    CHECK(pthread_mutex_init(&g->mu, NULL) == 0, "pthread_mutex_init");
    CHECK(pthread_cond_init(&g->cv, NULL) == 0, "pthread_cond_init");
    g->waiting = 0;
    g->parties = parties;
    g->generation = 0;
}

static __attribute__((unused)) void gate_wait(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    unsigned gen = g->generation;
    if (++g->waiting == g->parties) {
        g->waiting = 0;
        g->generation++;
        pthread_cond_broadcast(&g->cv);
    } else {
        while (gen == g->generation) pthread_cond_wait(&g->cv, &g->mu);
    }
    pthread_mutex_unlock(&g->mu);
}

static __attribute__((unused)) void gate_destroy(struct gate *g)
{
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
}

static __attribute__((unused)) int is_shim(void) { return dlsym(RTLD_DEFAULT, "greenld_is_fiber") != NULL; }

/* The Threads: line of /proc/self/status. */
static __attribute__((unused)) int os_thread_count(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    CHECK(f != NULL, "fopen /proc/self/status: %s", strerror(errno));
    char line[256];
    int n = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %d", &n) == 1) break;
    fclose(f);
    CHECK(n > 0, "no Threads: line in /proc/self/status");
    return n;
}

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

static __attribute__((unused)) void read_exact(int fd, void *buf, size_t n, const char *what)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        CHECK(r > 0, "%s: read(%d) returned %zd after %zu of %zu bytes", what, fd, r, got, n);
        got += (size_t)r;
    }
}

static __attribute__((unused)) void discard_exact(int fd, size_t n)
{
    char buf[4096];
    while (n > 0) {
        ssize_t r = read(fd, buf, n < sizeof buf ? n : sizeof buf);
        CHECK(r > 0, "read(%d) returned %zd with %zu bytes to go", fd, r, n);
        n -= (size_t)r;
    }
}

/* One call on purpose: a blocking write to a socket or pipe writes all. */
static __attribute__((unused)) void write_exact(int fd, const void *buf, size_t n, const char *what)
{
    ssize_t r = write(fd, buf, n);
    CHECK(r == (ssize_t)n, "%s: blocking write of %zu bytes to fd %d returned %zd", what, n, fd, r);
}

/* A number that is certainly not an open fd but lies inside the fd table
 * (the kernel ignores select bits beyond the table, poll does not). */
static __attribute__((unused)) int closed_fd(void)
{
    int fd = dup(0);
    CHECK(fd >= 0, "dup");
    CHECK(close(fd) == 0, "close");
    return fd;
}

/* A pipe whose capacity is one page, filled: not writable. */
static __attribute__((unused)) void full_pipe(int p[2])
{
    CHECK(pipe(p) == 0, "pipe");
    CHECK(fcntl(p[1], F_SETPIPE_SZ, 4096) == 4096, "F_SETPIPE_SZ 4096");
    char page[4096];
    memset(page, 'p', sizeof page);
    CHECK(write(p[1], page, sizeof page) == (ssize_t)sizeof page, "fill the pipe");
}

struct pipe_event {
    int fd[2];
};

static __attribute__((unused)) void pipe_event_init(struct pipe_event *e) { CHECK_EQ(pipe2(e->fd, O_CLOEXEC), 0); }
static __attribute__((unused)) void pipe_event_set(struct pipe_event *e) { CHECK_EQ(write(e->fd[1], "x", 1), 1); }

static __attribute__((unused)) void pipe_event_wait(struct pipe_event *e)
{
    char c;
    CHECK_EQ(read(e->fd[0], &c, 1), 1);
}

static __attribute__((unused)) void pipe_event_destroy(struct pipe_event *e)
{
    close(e->fd[0]);
    close(e->fd[1]);
}

/* ---- probe: proof that another thread can run, without timing ----------- */

/* A thread that answers each ping. probe_expect() fails unless it answers
 * within `ms`: when a blocking call wrongly holds the OS thread the probe
 * runs on (with GREENLD_HUBS=1, every thread's), and only the caller's
 * next step would release it, the probe never answers. Deterministic
 * where counting ticks depends on the machine's load. */
struct probe {
    int ping[2], pong[2];
    pthread_t thread;
};

static void *probe_main(void *arg)
{
    struct probe *p = arg;
    char c;
    while (read(p->ping[0], &c, 1) == 1 && c != 'q') CHECK(write(p->pong[1], &c, 1) == 1, "probe answer");
    return NULL;
}

static __attribute__((unused)) void probe_start(struct probe *p)
{
    CHECK(pipe(p->ping) == 0 && pipe(p->pong) == 0, "probe pipes");
    p->thread = spawn(probe_main, p);
}

static __attribute__((unused)) void probe_expect(struct probe *p, int ms, const char *what)
{
    CHECK(write(p->ping[1], "p", 1) == 1, "probe ping");
    struct pollfd pfd = {p->pong[0], POLLIN, 0};
    int r = poll(&pfd, 1, ms);
    CHECK(r == 1, "%s: another thread did not run within %d ms (the call blocked it)", what, ms);
    char c;
    CHECK(read(p->pong[0], &c, 1) == 1, "probe pong");
}

static __attribute__((unused)) void probe_stop(struct probe *p)
{
    CHECK(write(p->ping[1], "q", 1) == 1, "probe quit");
    join(p->thread);
    close(p->ping[0]);
    close(p->ping[1]);
    close(p->pong[0]);
    close(p->pong[1]);
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
