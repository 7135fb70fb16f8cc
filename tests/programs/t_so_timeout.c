/*
 * t_so_timeout — SO_RCVTIMEO / SO_SNDTIMEO and MSG_DONTWAIT, as Linux
 * implements them (measured natively on this machine):
 *
 *  - SO_RCVTIMEO 200 ms on an idle TCP socket: recv() and read() return
 *    -1/EAGAIN after the timeout (checked in 180..600 ms), from a created
 *    thread and from main; also recvfrom() on UDP and accept() on a
 *    listener with SO_RCVTIMEO.
 *  - The timeout is a budget for the whole call: recv(MSG_WAITALL) that got
 *    10 of 1000 bytes returns 10 at the timeout.
 *  - Data arriving before the timeout is returned at once; SO_RCVTIMEO set
 *    back to 0 means wait forever again.
 *  - SO_SNDTIMEO 200 ms, small SO_SNDBUF, peer never reads: a 4 MiB send()
 *    returns the partial count it managed after the timeout; the next
 *    send() returns -1/EAGAIN after the timeout (AF_UNIX), or over TCP
 *    -1/EAGAIN or a small partial count (see sndtimeo_case).
 *  - MSG_DONTWAIT on a blocking socket: recv on an empty socket and send
 *    into a full one return -1/EAGAIN at once.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "test_support.h"

/* ---- helpers -------------------------------------------------------------- */

#define TIMEOUT_MS 200
#define LOW_MS 180
#define HIGH_MS 600

static void set_timeout(int fd, int opt, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    CHECK(setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof tv) == 0, "setsockopt(%d, %s, %d ms)", fd,
          opt == SO_RCVTIMEO ? "SO_RCVTIMEO" : "SO_SNDTIMEO", ms);
    struct timeval back;
    socklen_t len = sizeof back;
    CHECK(getsockopt(fd, SOL_SOCKET, opt, &back, &len) == 0, "getsockopt");
    CHECK(back.tv_sec == tv.tv_sec && back.tv_usec == tv.tv_usec, "getsockopt reads back %ld.%06ld s, set %ld.%06ld",
          (long)back.tv_sec, (long)back.tv_usec, (long)tv.tv_sec, (long)tv.tv_usec);
}

static int make_listener(struct sockaddr_in *addr, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0, "socket");
    if (rcvbuf) CHECK(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) == 0, "SO_RCVBUF");
    memset(addr, 0, sizeof *addr);
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof *addr;
    CHECK(bind(fd, (struct sockaddr *)addr, sizeof *addr) == 0, "bind");
    CHECK(getsockname(fd, (struct sockaddr *)addr, &len) == 0, "getsockname");
    CHECK(listen(fd, 8) == 0, "listen");
    return fd;
}

/* client end c (with SO_SNDBUF sndbuf if nonzero), server end s (SO_RCVBUF
 * rcvbuf if nonzero, set on the listener before listen so it applies). */
static void tcp_pair_sized(int *c, int *s, int sndbuf, int rcvbuf)
{
    struct sockaddr_in addr;
    int l = make_listener(&addr, rcvbuf);
    *c = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(*c >= 0, "socket");
    if (sndbuf) CHECK(setsockopt(*c, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf) == 0, "SO_SNDBUF");
    CHECK(connect(*c, (struct sockaddr *)&addr, sizeof addr) == 0, "connect");
    *s = accept(l, NULL, NULL);
    CHECK(*s >= 0, "accept");
    close(l);
}

enum op { OP_RECV, OP_READ, OP_RECV_WAITALL, OP_RECVFROM, OP_ACCEPT, OP_SEND, OP_RECV_DONTWAIT, OP_SEND_DONTWAIT };
static const char *op_name[] = {"recv",         "read", "recv(MSG_WAITALL)", "recvfrom", "accept", "send",
                                "recv(MSG_DONTWAIT)", "send(MSG_DONTWAIT)"};

struct call {
    enum op op;
    int fd;
    size_t len;
    char *buf;
    long ret;
    int err;
    double elapsed;
};

static void *do_call(void *arg)
{
    struct call *c = arg;
    double t0 = now_ms();
    errno = 0;
    switch (c->op) {
    case OP_RECV: c->ret = recv(c->fd, c->buf, c->len, 0); break;
    case OP_READ: c->ret = read(c->fd, c->buf, c->len); break;
    case OP_RECV_WAITALL: c->ret = recv(c->fd, c->buf, c->len, MSG_WAITALL); break;
    case OP_RECVFROM: {
        struct sockaddr_in from;
        socklen_t fl = sizeof from;
        c->ret = recvfrom(c->fd, c->buf, c->len, 0, (struct sockaddr *)&from, &fl);
        break;
    }
    case OP_ACCEPT: c->ret = accept(c->fd, NULL, NULL); break;
    case OP_SEND: c->ret = send(c->fd, c->buf, c->len, 0); break;
    case OP_RECV_DONTWAIT: c->ret = recv(c->fd, c->buf, c->len, MSG_DONTWAIT); break;
    case OP_SEND_DONTWAIT: c->ret = send(c->fd, c->buf, c->len, MSG_DONTWAIT); break;
    }
    c->err = errno;
    c->elapsed = now_ms() - t0;
    return NULL;
}

static char g_buf[1 << 16];

/* Runs the call in a created thread or in main. */
static struct call run(enum op op, int fd, char *buf, size_t len, int in_thread)
{
    struct call c = {op, fd, len, buf ? buf : g_buf, -1, 0, 0};
    if (in_thread)
        join_within(spawn(do_call, &c), 3000, op_name[op]);
    else
        do_call(&c);
    return c;
}

static const char *where(int in_thread) { return in_thread ? "created thread" : "main thread"; }

static void expect_timeout(enum op op, int fd, int in_thread, const char *what)
{
    struct call c = run(op, fd, NULL, sizeof g_buf, in_thread);
    CHECK(c.ret == -1 && (c.err == EAGAIN || c.err == EWOULDBLOCK),
          "%s, %s: %s on an idle fd with a %d ms timeout returned %ld errno %d (%s), expected -1/EAGAIN", what,
          where(in_thread), op_name[op], TIMEOUT_MS, c.ret, c.err, strerror(c.err));
    CHECK(c.elapsed >= LOW_MS && c.elapsed <= HIGH_MS,
          "%s, %s: %s timed out after %.0f ms, expected %d..%d ms", what, where(in_thread), op_name[op], c.elapsed,
          LOW_MS, HIGH_MS);
}

static void expect_eagain_now(enum op op, int fd, char *buf, size_t len, int in_thread, const char *what)
{
    struct call c = run(op, fd, buf, len, in_thread);
    CHECK(c.ret == -1 && (c.err == EAGAIN || c.err == EWOULDBLOCK),
          "%s, %s: %s returned %ld errno %d (%s), expected -1/EAGAIN", what, where(in_thread), op_name[op], c.ret,
          c.err, strerror(c.err));
    CHECK(c.elapsed < 100, "%s, %s: %s took %.0f ms to return EAGAIN, expected at once", what, where(in_thread),
          op_name[op], c.elapsed);
}

/* ---- receive timeouts ---------------------------------------------------- */

struct delayed_send {
    int fd, delay_ms;
    const char *data;
};

static void *delayed_sender(void *arg)
{
    struct delayed_send *d = arg;
    sleep_ms(d->delay_ms);
    size_t n = strlen(d->data);
    CHECK(send(d->fd, d->data, n, 0) == (ssize_t)n, "delayed send");
    return NULL;
}

static void test_rcvtimeo(void)
{
    int c, s;
    tcp_pair(&c, &s);
    set_timeout(s, SO_RCVTIMEO, TIMEOUT_MS);
    for (int in_thread = 1; in_thread >= 0; in_thread--) {
        set_phase("SO_RCVTIMEO on an idle TCP socket");
        expect_timeout(OP_RECV, s, in_thread, "SO_RCVTIMEO");
        expect_timeout(OP_READ, s, in_thread, "SO_RCVTIMEO");

        set_phase("SO_RCVTIMEO with MSG_WAITALL after partial data");
        CHECK(send(c, "0123456789", 10, 0) == 10, "send 10 bytes");
        sleep_ms(20);
        struct call r = run(OP_RECV_WAITALL, s, NULL, 1000, in_thread);
        CHECK(r.ret == 10, "%s: recv(1000, MSG_WAITALL) with 10 bytes available and a %d ms timeout returned %ld errno "
              "%d (%s), expected the partial count 10", where(in_thread), TIMEOUT_MS, r.ret, r.err, strerror(r.err));
        CHECK(memcmp(g_buf, "0123456789", 10) == 0, "MSG_WAITALL partial data differs");
        CHECK(r.elapsed >= LOW_MS && r.elapsed <= HIGH_MS,
              "%s: recv(MSG_WAITALL) returned the partial count after %.0f ms, expected %d..%d ms", where(in_thread),
              r.elapsed, LOW_MS, HIGH_MS);

        set_phase("SO_RCVTIMEO, data arrives before the timeout");
        struct delayed_send d = {c, 80, "early"};
        pthread_t t = spawn(delayed_sender, &d);
        r = run(OP_RECV, s, NULL, 100, in_thread);
        join_within(t, 2000, "delayed sender");
        CHECK(r.ret == 5 && memcmp(g_buf, "early", 5) == 0,
              "%s: recv with data arriving at 80 ms returned %ld errno %d, expected the 5 bytes", where(in_thread),
              r.ret, r.err);
        CHECK(r.elapsed >= 50 && r.elapsed < LOW_MS, "%s: recv returned after %.0f ms, data came at 80 ms",
              where(in_thread), r.elapsed);

        set_phase("MSG_DONTWAIT recv on a blocking socket");
        expect_eagain_now(OP_RECV_DONTWAIT, s, NULL, 100, in_thread, "MSG_DONTWAIT on an empty socket");
    }

    set_phase("SO_RCVTIMEO set back to 0 waits forever");
    set_timeout(s, SO_RCVTIMEO, 0);
    struct delayed_send d = {c, 350, "late"};
    pthread_t t = spawn(delayed_sender, &d);
    struct call r = run(OP_RECV, s, NULL, 100, 1);
    join_within(t, 2000, "delayed sender");
    CHECK(r.ret == 4 && memcmp(g_buf, "late", 4) == 0,
          "recv after SO_RCVTIMEO reset to 0 returned %ld errno %d (%s) after %.0f ms, expected to wait for the data "
          "at 350 ms", r.ret, r.err, strerror(r.err), r.elapsed);
    CHECK(r.elapsed >= 300, "recv after SO_RCVTIMEO reset to 0 returned after %.0f ms, before the data", r.elapsed);
    close(c);
    close(s);

    set_phase("SO_RCVTIMEO on a UDP socket");
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    CHECK(u >= 0, "socket(SOCK_DGRAM)");
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(bind(u, (struct sockaddr *)&addr, sizeof addr) == 0, "bind");
    set_timeout(u, SO_RCVTIMEO, TIMEOUT_MS);
    expect_timeout(OP_RECVFROM, u, 1, "SO_RCVTIMEO on UDP");
    expect_timeout(OP_RECVFROM, u, 0, "SO_RCVTIMEO on UDP");
    close(u);

    set_phase("SO_RCVTIMEO on a listener");
    int l = tcp_listener(&addr, 8);
    set_timeout(l, SO_RCVTIMEO, TIMEOUT_MS);
    expect_timeout(OP_ACCEPT, l, 1, "SO_RCVTIMEO on a listener");
    expect_timeout(OP_ACCEPT, l, 0, "SO_RCVTIMEO on a listener");
    close(l);
}

/* ---- send timeouts --------------------------------------------------------- */

/* A send with SO_SNDTIMEO into a socket whose peer never reads. Over
 * AF_UNIX nothing ever frees the sender's buffer, so once it is full a
 * send() gets nothing through: -1/EAGAIN exactly. Over TCP the receiver
 * can still make room (receive-queue collapsing, window updates), so
 * natively a later send() sometimes gets a few KiB through before the
 * timeout: there a partial count is as valid as -1/EAGAIN, but either must
 * come after about the timeout. */
static void sndtimeo_case(int c, int strict, const char *kind)
{
    char what[128];
    snprintf(what, sizeof what, "SO_SNDTIMEO, peer never reads, %s", kind);
    set_phase(what);
    set_timeout(c, SO_SNDTIMEO, TIMEOUT_MS);
    size_t big = 4u << 20;
    char *data = calloc(1, big);
    CHECK(data, "calloc");
    struct call r = run(OP_SEND, c, data, big, 1);
    CHECK(r.ret > 0 && (size_t)r.ret < big,
          "%s: send(4 MiB) with a %d ms SO_SNDTIMEO returned %ld errno %d (%s), expected a partial count", kind,
          TIMEOUT_MS, r.ret, r.err, strerror(r.err));
    CHECK(r.elapsed >= LOW_MS && r.elapsed <= HIGH_MS, "%s: partial send returned after %.0f ms, expected %d..%d ms",
          kind, r.elapsed, LOW_MS, HIGH_MS);
    for (int in_thread = 1; in_thread >= 0; in_thread--) {
        r = run(OP_SEND, c, data, 65536, in_thread);
        if (strict || r.ret <= 0)
            CHECK(r.ret == -1 && (r.err == EAGAIN || r.err == EWOULDBLOCK),
                  "%s, %s: send(64 KiB) into a full socket with a %d ms SO_SNDTIMEO returned %ld errno %d (%s), "
                  "expected -1/EAGAIN", kind, where(in_thread), TIMEOUT_MS, r.ret, r.err, strerror(r.err));
        else
            CHECK(r.ret < 65536, "%s, %s: send(64 KiB) into a full socket sent everything", kind, where(in_thread));
        CHECK(r.elapsed >= LOW_MS && r.elapsed <= HIGH_MS, "%s, %s: send timed out after %.0f ms, expected %d..%d ms",
              kind, where(in_thread), r.elapsed, LOW_MS, HIGH_MS);
        if (strict) {
            expect_eagain_now(OP_SEND_DONTWAIT, c, data, 65536, in_thread, "MSG_DONTWAIT send into a full socket");
        } else {
            r = run(OP_SEND_DONTWAIT, c, data, 65536, in_thread);
            CHECK((r.ret == -1 && (r.err == EAGAIN || r.err == EWOULDBLOCK)) || (r.ret > 0 && r.ret < 65536),
                  "%s, %s: send(64 KiB, MSG_DONTWAIT) into a full socket returned %ld errno %d (%s)", kind,
                  where(in_thread), r.ret, r.err, strerror(r.err));
            CHECK(r.elapsed < 100, "%s, %s: send(MSG_DONTWAIT) took %.0f ms", kind, where(in_thread), r.elapsed);
        }
    }
    free(data);
}

static void test_sndtimeo(void)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
    int small = 4096;
    CHECK(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small) == 0, "SO_SNDBUF");
    sndtimeo_case(sv[0], 1, "AF_UNIX stream socketpair");
    close(sv[0]);
    close(sv[1]);

    int c, s;
    tcp_pair_sized(&c, &s, 4096, 4096);
    sndtimeo_case(c, 0, "TCP 127.0.0.1, small SO_SNDBUF and SO_RCVBUF");
    close(c);
    close(s);
}

int main(void)
{
    watchdog(25);
    fprintf(stderr, "t_so_timeout: running %s\n", is_shim() ? "under greenld" : "natively");
    test_rcvtimeo();
    test_sndtimeo();
    fprintf(stderr, "t_so_timeout: all checks passed\n");
    return 0;
}
