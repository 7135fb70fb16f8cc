/*
 * load_client — a verifying load generator for echo servers.
 *
 * Usage: load_client --port N [--host 127.0.0.1] --conns C --requests R
 *                    [--size 64] [--server-pid PID] [--timeout-sec 60]
 *                    [--pause-file PATH] [--close fin|reset]
 *
 * Opens C connections, then drives all of them concurrently through R
 * sequential request/response round trips each.  Every request carries
 * `size` bytes of a deterministic pattern derived from (connection, request,
 * offset), and the echo must match it byte for byte.
 *
 * It deliberately runs on a single OS thread with nonblocking sockets and
 * epoll, so that the client itself stays cheap and the measurement is
 * dominated by the server under test.
 *
 * With --pause-file, once every connection has completed its first round
 * trip (so the server holds all of them, idle) the client creates PATH, sends
 * nothing until PATH is deleted (bounded by --timeout-sec), then goes on.
 * Once every request is done (and unless the run timed out) it pauses the
 * same way a second time, connections still open, before closing them.
 * Benchmarks use the first pause to measure a server holding C idle
 * connections, and the two together to count the server's syscalls over the
 * remaining C * (R - 1) requests only (no set-up, no closing).
 *
 * --close reset closes every connection with an RST (SO_LINGER 0) instead
 * of a FIN, so that no TIME_WAIT socket keeps its ephemeral port for a
 * minute: back-to-back runs of thousands of connections otherwise exhaust
 * the port range, and connect() slows to a crawl searching it.
 *
 * On exit it prints exactly one line on stdout:
 *   conns=C requests=TOTAL seconds=S.SSS rps=N errors=E mismatches=M server_threads_max=T
 * followed, with --pause-file, by " paused_after=K resumed_seconds=S": the
 * requests completed before the pause, and the time from the end of the
 * pause to the last completion (the steady state, every connection set up).
 * The pause itself is not counted in seconds.
 * and exits 0 only if every request completed with a correct echo.
 * A connection stops at its first failure (its byte stream can no longer be
 * trusted), so errors + mismatches counts failed connections, plus one error
 * if the server's thread count could not be read.  The first failure is
 * described on stderr.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Cap on connects whose handshake is still pending, so a burst of SYNs does
 * not overrun the server's listen backlog. */
#define MAX_CONNECTS_IN_FLIGHT 200
#define IO_CHUNK (64 * 1024)
#define MAX_EVENTS 1024
#define SAMPLE_INTERVAL_NS (100 * 1000 * 1000LL)

enum conn_state {
    CONN_UNOPENED,
    CONN_CONNECTING,
    CONN_READY,   /* connected, waiting for the request phase to start */
    CONN_RUNNING, /* doing round trips */
    CONN_DONE,    /* finished all round trips successfully */
    CONN_FAILED,
};

struct conn {
    int fd;
    enum conn_state state;
    uint32_t req;  /* index of the current request */
    size_t sent;   /* bytes of the current request sent so far */
    size_t recvd;  /* bytes of the current request received and verified */
};

/* Configuration. */
static const char *opt_host = "127.0.0.1";
static long opt_port = -1;
static long opt_conns = -1;
static long opt_requests = -1;
static long opt_size = 64;
static long opt_server_pid = -1;
static long opt_timeout_sec = 60;
static const char *opt_pause_file;
static bool opt_close_reset;

/* Run state. */
static struct conn *conns;
static int epfd = -1;
static long running;            /* connections in CONN_RUNNING */
static long first_rt_or_failed; /* connections past their first round trip, or failed */
static long long completed;     /* round trips completed and verified */
static long errors, mismatches; /* failed connections, by cause (see fail_conn) */
static long threads_max = -1;   /* highest Threads: seen in /proc/PID/status */
static bool sampling_failed;
static bool have_failure;
static char first_failure[512];
static int64_t t_start_ns, t_last_ns;
static bool pause_pending;       /* --pause-file given and the pause not yet over */
static int64_t paused_ns, pause_end_ns;
static long long paused_after = -1;

static unsigned char txbuf[IO_CHUNK], rxbuf[IO_CHUNK];

static void usage(const char *prog)
{
    fprintf(stderr,
            "usage: %s --port N [--host 127.0.0.1] --conns C --requests R\n"
            "          [--size 64] [--server-pid PID] [--timeout-sec 60] [--pause-file PATH]\n"
            "          [--close fin|reset]\n",
            prog);
    exit(2);
}

static long parse_long(const char *prog, const char *s, long min, long max)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        usage(prog);
    return v;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/*
 * The expected byte at `off` of request `req` on connection `conn`.  A
 * splitmix64-style mix, so that a byte echoed to the wrong connection, from
 * the wrong request, or at the wrong offset is (almost surely) detected.
 */
static inline unsigned char pattern_byte(uint32_t conn, uint32_t req, uint64_t off)
{
    uint64_t x = (uint64_t)conn * 0x9E3779B97F4A7C15ULL;
    x ^= ((uint64_t)req + 1) * 0xC2B2AE3D27D4EB4FULL;
    x ^= (off + 1) * 0x165667B19E3779F9ULL;
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ULL;
    x ^= x >> 29;
    return (unsigned char)x;
}

static void record_failure(const char *fmt, ...)
{
    if (have_failure)
        return;
    have_failure = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(first_failure, sizeof first_failure, fmt, ap);
    va_end(ap);
}

/* Stop driving a connection.  Its fd stays open until the end of the run so
 * the server sees the same number of live connections throughout. */
static void fail_conn(uint32_t i, bool is_mismatch)
{
    struct conn *c = &conns[i];
    if (c->state == CONN_RUNNING)
        running--;
    if (c->state != CONN_RUNNING || c->req == 0)
        first_rt_or_failed++;
    if (c->fd >= 0 && c->state != CONN_UNOPENED)
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    c->state = CONN_FAILED;
    if (is_mismatch)
        mismatches++;
    else
        errors++;
}

static void conn_error(uint32_t i, const char *what, int err)
{
    struct conn *c = &conns[i];
    record_failure("error: connection %u request %u offset %zu (sent %zu): %s: %s",
                   i, c->req, c->recvd, c->sent, what, strerror(err));
    fail_conn(i, false);
}

/*
 * Push connection i forward as far as it will go without blocking.  Sockets
 * are registered edge-triggered, so this must only return once every
 * direction it still needs has hit EAGAIN; otherwise a wake-up could be lost.
 */
static void progress(uint32_t i)
{
    struct conn *c = &conns[i];
    const size_t size = (size_t)opt_size;

    for (;;) {
        bool moved = false;

        /* Held after its first round trip until the pause is over; the
         * pause's end calls progress() again (no event would). */
        if (pause_pending && c->req == 1)
            return;

        if (c->sent < size) {
            size_t len = size - c->sent;
            if (len > IO_CHUNK)
                len = IO_CHUNK;
            for (size_t k = 0; k < len; k++)
                txbuf[k] = pattern_byte(i, c->req, c->sent + k);
            ssize_t n = send(c->fd, txbuf, len, MSG_NOSIGNAL);
            if (n > 0) {
                c->sent += (size_t)n;
                moved = true;
            } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                conn_error(i, "send", errno);
                return;
            }
        }

        /* recvd < size always holds here: a finished request is rolled over
         * to the next one immediately below. */
        size_t len = size - c->recvd;
        if (len > IO_CHUNK)
            len = IO_CHUNK;
        ssize_t n = recv(c->fd, rxbuf, len, 0);
        if (n == 0) {
            record_failure("error: connection %u request %u offset %zu (sent %zu): unexpected EOF",
                           i, c->req, c->recvd, c->sent);
            fail_conn(i, false);
            return;
        }
        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR) {
                conn_error(i, "recv", errno);
                return;
            }
        } else {
            for (size_t k = 0; k < (size_t)n; k++) {
                unsigned char want = pattern_byte(i, c->req, c->recvd + k);
                if (rxbuf[k] != want) {
                    record_failure("mismatch: connection %u request %u offset %zu: "
                                   "expected 0x%02x, got 0x%02x",
                                   i, c->req, c->recvd + k, want, rxbuf[k]);
                    fail_conn(i, true);
                    return;
                }
            }
            c->recvd += (size_t)n;
            moved = true;
            if (c->recvd == size) {
                completed++;
                t_last_ns = now_ns();
                c->req++;
                c->sent = c->recvd = 0;
                if (c->req == 1)
                    first_rt_or_failed++;
                if (c->req == (uint32_t)opt_requests) {
                    c->state = CONN_DONE;
                    running--;
                    return;
                }
            }
        }

        if (!moved)
            return;
    }
}

/* Read the "Threads:" line of /proc/PID/status; -1 on failure. */
static long read_server_threads(void)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%ld/status", opt_server_pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long threads = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "Threads:", 8) == 0) {
            threads = strtol(line + 8, NULL, 10);
            break;
        }
    }
    fclose(f);
    return threads;
}

static void sample_threads(void)
{
    if (opt_server_pid < 0 || sampling_failed)
        return;
    long t = read_server_threads();
    if (t < 0) {
        sampling_failed = true;
        errors++;
        record_failure("error: cannot read Threads: from /proc/%ld/status (server gone?)",
                       opt_server_pid);
        return;
    }
    if (t > threads_max)
        threads_max = t;
}

/* Milliseconds until `when`, rounded up so we never spin; at least 0. */
static int ms_until(int64_t when)
{
    int64_t d = when - now_ns();
    if (d <= 0)
        return 0;
    int64_t ms = (d + 999999) / 1000000;
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

/* Creates the pause file and waits, polling, until someone deletes it or
 * the deadline passes. */
static void wait_for_pause_file_removal(int64_t deadline)
{
    FILE *f = fopen(opt_pause_file, "w");
    if (!f || fclose(f) != 0) {
        fprintf(stderr, "load_client: cannot create %s: %s (not pausing)\n", opt_pause_file,
                strerror(errno));
    } else {
        const struct timespec tick = {0, 10 * 1000 * 1000};
        while (access(opt_pause_file, F_OK) == 0 && now_ns() < deadline)
            nanosleep(&tick, NULL);
    }
}

static void pause_until_resumed(int64_t deadline)
{
    int64_t t0 = now_ns();
    paused_after = completed;
    wait_for_pause_file_removal(deadline);
    pause_pending = false;
    pause_end_ns = now_ns();
    paused_ns = pause_end_ns - t0;
}

static void fail_unfinished_on_timeout(void)
{
    for (long i = 0; i < opt_conns; i++) {
        struct conn *c = &conns[i];
        if (c->state == CONN_DONE || c->state == CONN_FAILED)
            continue;
        record_failure("timeout after %ld s: connection %ld request %u offset %zu (sent %zu) "
                       "still %s",
                       opt_timeout_sec, i, c->req, c->recvd, c->sent,
                       c->state == CONN_UNOPENED     ? "unopened"
                       : c->state == CONN_CONNECTING ? "connecting"
                       : c->state == CONN_READY      ? "waiting to start"
                                                     : "waiting for its echo");
        fail_conn((uint32_t)i, false);
    }
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc)
            usage(argv[0]);
        const char *v = argv[++i];
        if (strcmp(a, "--host") == 0)
            opt_host = v;
        else if (strcmp(a, "--port") == 0)
            opt_port = parse_long(argv[0], v, 1, 65535);
        else if (strcmp(a, "--conns") == 0)
            opt_conns = parse_long(argv[0], v, 1, 10 * 1000 * 1000);
        else if (strcmp(a, "--requests") == 0)
            opt_requests = parse_long(argv[0], v, 1, INT32_MAX);
        else if (strcmp(a, "--size") == 0)
            opt_size = parse_long(argv[0], v, 1, LONG_MAX);
        else if (strcmp(a, "--server-pid") == 0)
            opt_server_pid = parse_long(argv[0], v, 1, INT_MAX);
        else if (strcmp(a, "--timeout-sec") == 0)
            opt_timeout_sec = parse_long(argv[0], v, 1, 1000L * 1000 * 1000);
        else if (strcmp(a, "--pause-file") == 0)
            opt_pause_file = v;
        else if (strcmp(a, "--close") == 0 && (strcmp(v, "fin") == 0 || strcmp(v, "reset") == 0))
            opt_close_reset = strcmp(v, "reset") == 0;
        else
            usage(argv[0]);
    }
    if (opt_port < 0 || opt_conns < 0 || opt_requests < 0)
        usage(argv[0]);
    pause_pending = opt_pause_file != NULL;

    signal(SIGPIPE, SIG_IGN); /* belt and braces: we also send with MSG_NOSIGNAL */

    /* One fd per connection: C can be far above the usual soft limit. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            perror("load_client: setrlimit(RLIMIT_NOFILE)");
    }

    struct sockaddr_storage ss;
    socklen_t sslen;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, opt_host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)opt_port);
        sslen = sizeof *sin;
    } else if (inet_pton(AF_INET6, opt_host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)opt_port);
        sslen = sizeof *sin6;
    } else {
        fprintf(stderr, "load_client: --host must be a numeric IPv4/IPv6 address: %s\n", opt_host);
        return 2;
    }

    conns = calloc((size_t)opt_conns, sizeof *conns);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (!conns || epfd < 0) {
        perror("load_client: setup");
        return 1;
    }
    for (long i = 0; i < opt_conns; i++)
        conns[i].fd = -1;

    const int64_t deadline = now_ns() + opt_timeout_sec * 1000000000LL;
    bool timed_out = false;
    struct epoll_event evs[MAX_EVENTS];

    /* ---- Phase 1: connect everything, a bounded batch at a time. ---- */
    long next_open = 0, in_flight = 0;
    while (!timed_out && (next_open < opt_conns || in_flight > 0)) {
        while (next_open < opt_conns && in_flight < MAX_CONNECTS_IN_FLIGHT) {
            uint32_t i = (uint32_t)next_open++;
            struct conn *c = &conns[i];
            c->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (c->fd < 0) {
                conn_error(i, "socket", errno);
                continue;
            }
            /* Small request/response messages: don't let Nagle + delayed ACK
             * add latency when a send is split. */
            int one = 1;
            setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                                     .data.u32 = i};
            if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
                conn_error(i, "epoll_ctl", errno);
                continue;
            }
            if (connect(c->fd, (struct sockaddr *)&ss, sslen) == 0) {
                c->state = CONN_READY;
            } else if (errno == EINPROGRESS) {
                c->state = CONN_CONNECTING;
                in_flight++;
            } else {
                c->state = CONN_CONNECTING; /* so fail_conn deregisters it */
                conn_error(i, "connect", errno);
            }
        }
        if (in_flight == 0)
            continue;

        int n = epoll_wait(epfd, evs, MAX_EVENTS, ms_until(deadline));
        if (n < 0 && errno != EINTR) {
            perror("load_client: epoll_wait");
            return 1;
        }
        for (int k = 0; k < n; k++) {
            uint32_t i = evs[k].data.u32;
            struct conn *c = &conns[i];
            if (c->state != CONN_CONNECTING)
                continue;
            in_flight--;
            int err = 0;
            socklen_t elen = sizeof err;
            if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
                err = errno;
            if (err)
                conn_error(i, "connect", err);
            else
                c->state = CONN_READY;
        }
        if (now_ns() >= deadline)
            timed_out = true;
    }

    /* ---- Phase 2: round trips on every connection concurrently. ---- */
    bool sampling = false;
    int64_t next_sample = 0;
    t_start_ns = t_last_ns = now_ns();
    if (!timed_out) {
        for (long i = 0; i < opt_conns; i++) {
            if (conns[i].state != CONN_READY)
                continue;
            conns[i].state = CONN_RUNNING;
            running++;
        }
        for (long i = 0; i < opt_conns; i++)
            if (conns[i].state == CONN_RUNNING)
                progress((uint32_t)i);
    }

    while (!timed_out && running > 0) {
        if (pause_pending && first_rt_or_failed == opt_conns) {
            pause_until_resumed(deadline);
            for (long i = 0; i < opt_conns; i++)
                if (conns[i].state == CONN_RUNNING)
                    progress((uint32_t)i);
            continue;
        }
        /* Only once every connection has finished a round trip has the
         * server certainly created one thread per connection. */
        if (!sampling && opt_server_pid > 0 && first_rt_or_failed == opt_conns) {
            sampling = true;
            next_sample = now_ns();
        }
        if (sampling && now_ns() >= next_sample) {
            sample_threads();
            next_sample += SAMPLE_INTERVAL_NS;
        }

        int64_t wake = deadline;
        if (sampling && next_sample < wake)
            wake = next_sample;
        int n = epoll_wait(epfd, evs, MAX_EVENTS, ms_until(wake));
        if (n < 0 && errno != EINTR) {
            perror("load_client: epoll_wait");
            return 1;
        }
        for (int k = 0; k < n; k++) {
            uint32_t i = evs[k].data.u32;
            if (conns[i].state == CONN_RUNNING)
                progress(i);
        }
        if (running > 0 && now_ns() >= deadline)
            timed_out = true;
    }

    /* One last look while every connection (and so every server thread) is
     * still alive, in case the run was shorter than a sampling interval.
     * Skipped after a failure: the server may be gone, and that is already
     * reported. */
    if (opt_server_pid > 0 && !have_failure && !timed_out)
        sample_threads();

    /* With --requests 1 every connection is done before the loop could
     * pause; the pause still holds them open. */
    if (pause_pending && !timed_out)
        pause_until_resumed(deadline);
    if (opt_pause_file && !timed_out)
        wait_for_pause_file_removal(deadline);

    if (timed_out)
        fail_unfinished_on_timeout();

    for (long i = 0; i < opt_conns; i++) {
        if (conns[i].fd < 0)
            continue;
        if (opt_close_reset) {
            const struct linger reset = {.l_onoff = 1, .l_linger = 0};
            setsockopt(conns[i].fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
        }
        close(conns[i].fd);
    }

    int64_t busy_ns = t_last_ns - t_start_ns;
    if (paused_ns > 0 && t_last_ns >= pause_end_ns)
        busy_ns -= paused_ns;
    double seconds = (double)busy_ns / 1e9;
    double rps = seconds > 0 ? (double)completed / seconds : 0.0;
    printf("conns=%ld requests=%lld seconds=%.3f rps=%.0f errors=%ld mismatches=%ld "
           "server_threads_max=%ld",
           opt_conns, completed, seconds, rps, errors, mismatches,
           opt_server_pid > 0 ? threads_max : -1L);
    if (opt_pause_file)
        printf(" paused_after=%lld resumed_seconds=%.6f", paused_after,
               t_last_ns > pause_end_ns && pause_end_ns > 0 ? (double)(t_last_ns - pause_end_ns) / 1e9 : 0.0);
    printf("\n");
    fflush(stdout);

    long long expected = (long long)opt_conns * opt_requests;
    if (errors == 0 && mismatches == 0 && completed == expected)
        return 0;
    if (have_failure)
        fprintf(stderr, "load_client: FAILED: %s\n", first_failure);
    fprintf(stderr, "load_client: FAILED: %lld of %lld requests completed, %ld errors, %ld mismatches\n",
            completed, expected, errors, mismatches);
    return 1;
}
