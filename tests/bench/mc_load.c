/*
 * mc_load — a verifying load client for memcached's text protocol.
 *
 * Usage: mc_load --port N [--host 127.0.0.1] [--conns 50] [--requests 2000]
 *                [--size 32] [--timeout-sec 60]
 *
 * Opens C connections and drives all of them concurrently from one thread
 * (nonblocking sockets, epoll), each through R sequential requests that
 * alternate "set" of a key the connection owns and "get" of that key; every
 * reply must be exactly the expected bytes (STORED, or the VALUE block with
 * the value just set).  Prints one line on stdout:
 *   conns=C requests=TOTAL seconds=S.SSS rps=N errors=E
 * and exits 0 only if every request got the right reply in time.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SIZE 4096
#define MSG_MAX (MAX_SIZE + 128)

struct conn {
    int fd;
    long req; /* index of the current request */
    char out[MSG_MAX];
    size_t out_len, sent;
    char want[MSG_MAX];
    size_t want_len, got;
};

static long opt_port = -1, opt_conns = 50, opt_requests = 2000, opt_size = 32, opt_timeout = 60;
static const char *opt_host = "127.0.0.1";

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(const char *prog)
{
    fprintf(stderr,
            "usage: %s --port N [--host 127.0.0.1] [--conns 50] [--requests 2000] [--size 32] "
            "[--timeout-sec 60]\n",
            prog);
    exit(2);
}

static long parse_arg(const char *name, const char *s, long min, long max)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max) {
        fprintf(stderr, "mc_load: bad %s '%s' (expected %ld..%ld)\n", name, s, min, max);
        exit(2);
    }
    return v;
}

/* Builds request c->req of connection `index` and the reply it must get. */
static void prepare(struct conn *c, long index)
{
    char key[64], value[MAX_SIZE + 1];
    snprintf(key, sizeof key, "k%ld.%ld", index, (c->req / 2) % 16);
    for (long i = 0; i < opt_size; i++)
        value[i] = (char)('a' + (index * 7 + c->req / 2 + i) % 26);
    value[opt_size] = 0;
    if (c->req % 2 == 0) {
        c->out_len = (size_t)snprintf(c->out, sizeof c->out, "set %s 0 0 %ld\r\n%s\r\n", key, opt_size, value);
        c->want_len = (size_t)snprintf(c->want, sizeof c->want, "STORED\r\n");
    } else {
        c->out_len = (size_t)snprintf(c->out, sizeof c->out, "get %s\r\n", key);
        c->want_len =
            (size_t)snprintf(c->want, sizeof c->want, "VALUE %s 0 %ld\r\n%s\r\nEND\r\n", key, opt_size, value);
    }
    c->sent = c->got = 0;
}

/* Sends what is left of the request; -1 on a socket error. */
static int flush_out(struct conn *c)
{
    while (c->sent < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->sent, c->out_len - c->sent, MSG_NOSIGNAL);
        if (n < 0)
            return errno == EAGAIN || errno == EINTR ? 0 : -1;
        c->sent += (size_t)n;
    }
    return 0;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc)
            usage(argv[0]);
        const char *a = argv[i], *v = argv[i + 1];
        if (strcmp(a, "--port") == 0)
            opt_port = parse_arg(a, v, 1, 65535);
        else if (strcmp(a, "--host") == 0)
            opt_host = v;
        else if (strcmp(a, "--conns") == 0)
            opt_conns = parse_arg(a, v, 1, 10000);
        else if (strcmp(a, "--requests") == 0)
            opt_requests = parse_arg(a, v, 1, 100000000);
        else if (strcmp(a, "--size") == 0)
            opt_size = parse_arg(a, v, 1, MAX_SIZE);
        else if (strcmp(a, "--timeout-sec") == 0)
            opt_timeout = parse_arg(a, v, 1, 3600);
        else
            usage(argv[0]);
    }
    if (opt_port < 0)
        usage(argv[0]);

    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt_port)};
    if (inet_pton(AF_INET, opt_host, &sa.sin_addr) != 1) {
        fprintf(stderr, "mc_load: bad --host '%s' (an IPv4 address)\n", opt_host);
        return 2;
    }
    struct conn *conns = calloc((size_t)opt_conns, sizeof *conns);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (!conns || ep < 0) {
        perror("mc_load: setup");
        return 1;
    }
    for (long i = 0; i < opt_conns; i++) {
        struct conn *c = &conns[i];
        int one = 1;
        c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
            fprintf(stderr, "mc_load: connect %s:%ld: %s\n", opt_host, opt_port, strerror(errno));
            return 1;
        }
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (fcntl(c->fd, F_SETFL, O_NONBLOCK) < 0) {
            perror("mc_load: fcntl");
            return 1;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
            perror("mc_load: epoll_ctl");
            return 1;
        }
    }

    long long completed = 0, total = (long long)opt_conns * opt_requests;
    long running = opt_conns, errors = 0;
    double t0 = now_s(), deadline = t0 + (double)opt_timeout;
    for (long i = 0; i < opt_conns; i++) {
        prepare(&conns[i], i);
        if (flush_out(&conns[i]) < 0) {
            fprintf(stderr, "mc_load: send: %s\n", strerror(errno));
            return 1;
        }
    }
    struct epoll_event evs[256];
    char buf[MSG_MAX];
    while (running > 0) {
        if (now_s() > deadline) {
            fprintf(stderr, "mc_load: timed out after %ld s with %lld of %lld requests done\n", opt_timeout,
                    completed, total);
            errors += running;
            break;
        }
        int n = epoll_wait(ep, evs, 256, 1000);
        if (n < 0 && errno != EINTR) {
            perror("mc_load: epoll_wait");
            return 1;
        }
        for (int k = 0; k < n; k++) {
            long i = (long)evs[k].data.u64;
            struct conn *c = &conns[i];
            if (c->fd < 0)
                continue;
            for (;;) {
                ssize_t r = recv(c->fd, buf, c->want_len - c->got, 0);
                if (r < 0 && (errno == EAGAIN || errno == EINTR))
                    break;
                if (r <= 0 || memcmp(buf, c->want + c->got, (size_t)r) != 0) {
                    if (errors++ == 0)
                        fprintf(stderr, "mc_load: connection %ld request %ld: %s\n", i, c->req,
                                r < 0 ? strerror(errno) : r == 0 ? "closed by the server" : "wrong reply");
                    close(c->fd);
                    c->fd = -1;
                    running--;
                    break;
                }
                c->got += (size_t)r;
                if (c->got < c->want_len)
                    continue;
                completed++;
                if (++c->req == opt_requests) {
                    close(c->fd);
                    c->fd = -1;
                    running--;
                    break;
                }
                prepare(c, i);
                if (flush_out(c) < 0) {
                    if (errors++ == 0)
                        fprintf(stderr, "mc_load: connection %ld: send: %s\n", i, strerror(errno));
                    close(c->fd);
                    c->fd = -1;
                    running--;
                    break;
                }
            }
        }
    }
    double secs = now_s() - t0;
    printf("conns=%ld requests=%lld seconds=%.3f rps=%.0f errors=%ld\n", opt_conns, completed, secs,
           secs > 0 ? (double)completed / secs : 0.0, errors);
    return errors == 0 && completed == total ? 0 : 1;
}
