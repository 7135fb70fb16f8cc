/*
 * t_connect — connect() from threads, and vectored I/O on stream sockets:
 *
 *  1. 100 threads connect() at once (released by a start gate) to a listening
 *     127.0.0.1 port; each exchanges a message with its own server thread.
 *  2. connect() to a port that is bound but not listening (so nobody else
 *     can take it): -1/ECONNREFUSED, from a thread and from main.
 *  3. connect() on a non-blocking socket: -1/EINPROGRESS, then POLLOUT and
 *     SO_ERROR 0; a second connect() on a connected socket: -1/EISCONN.
 *  4. writev with 4 iovecs (1, 100, 4096, 7 bytes) read back with readv
 *     into 3 iovecs of other sizes; writev with 12 iovecs.
 *  5. A large writev (6 MiB in 5 uneven iovecs) to a slow reader thread
 *     returns the full count (a blocking stream write) and arrives complete
 *     and in order.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "test_support.h"

/* ---- part 1: 100 concurrent connects -------------------------------------- */

#define NCONN 100
static int g_listener;
static struct sockaddr_in g_addr;
/* The start gate: every client thread waits here until all NCONN are
 * ready, so the connects really happen at once. */
static struct gate g_gate;

struct msg {
    uint32_t id;
    char text[28];
};

static void *server_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    struct msg m;
    read_exact(fd, &m, sizeof m, "server");
    CHECK(m.id < NCONN && strncmp(m.text, "hello from client", 17) == 0, "server: bad message id %u '%.20s'", m.id,
          m.text);
    struct msg reply = {m.id, ""};
    snprintf(reply.text, sizeof reply.text, "welcome %u", m.id);
    write_exact(fd, &reply, sizeof reply, "server reply");
    char c;
    CHECK(read(fd, &c, 1) == 0, "server %u: expected EOF after the exchange", m.id);
    close(fd);
    return NULL;
}

static void *acceptor(void *arg)
{
    (void)arg;
    pthread_t t[NCONN];
    for (int i = 0; i < NCONN; i++) {
        int fd = accept(g_listener, NULL, NULL);
        CHECK(fd >= 0, "accept #%d returned %d", i, fd);
        t[i] = spawn(server_conn, (void *)(intptr_t)fd);
    }
    for (int i = 0; i < NCONN; i++) join(t[i]);
    return NULL;
}

static void *client(void *arg)
{
    uint32_t id = (uint32_t)(uintptr_t)arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0, "client %u: socket", id);
    gate_wait(&g_gate);
    int rc = connect(fd, (struct sockaddr *)&g_addr, sizeof g_addr);
    CHECK(rc == 0, "client %u: connect to the listening port returned %d", id, rc);
    struct msg m = {id, ""};
    snprintf(m.text, sizeof m.text, "hello from client %u", id);
    write_exact(fd, &m, sizeof m, "client");
    struct msg reply;
    read_exact(fd, &reply, sizeof reply, "client");
    char expect[28];
    snprintf(expect, sizeof expect, "welcome %u", id);
    CHECK(reply.id == id && strcmp(reply.text, expect) == 0, "client %u: reply id %u '%.27s'", id, reply.id,
          reply.text);
    close(fd);
    return NULL;
}

static void test_many_connects(void)
{
    set_phase("100 threads connect at once");
    g_listener = tcp_listener(&g_addr, 256);
    gate_init(&g_gate, NCONN);
    pthread_t acc = spawn(acceptor, NULL);
    pthread_t c[NCONN];
    for (int i = 0; i < NCONN; i++) c[i] = spawn(client, (void *)(uintptr_t)i);
    for (int i = 0; i < NCONN; i++) join(c[i]);
    join(acc);
    gate_destroy(&g_gate);
}

/* ---- part 2: refused; part 3: non-blocking connect, EISCONN ------------------- */

static struct sockaddr_in g_closed_addr;

static void *refused_connect(void *arg)
{
    (void)arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0, "socket");
    errno = 0;
    int rc = connect(fd, (struct sockaddr *)&g_closed_addr, sizeof g_closed_addr);
    int err = errno;
    CHECK(rc == -1 && err == ECONNREFUSED, "connect to a port nobody listens on returned %d errno %d (%s), expected "
          "-1/ECONNREFUSED", rc, err, strerror(err));
    close(fd);
    return NULL;
}

static void *nonblocking_connect(void *arg)
{
    (void)arg;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    CHECK(fd >= 0, "socket");
    errno = 0;
    int rc = connect(fd, (struct sockaddr *)&g_addr, sizeof g_addr);
    int err = errno;
    /* Loopback may complete at once; Linux reports EINPROGRESS anyway. */
    CHECK(rc == -1 && err == EINPROGRESS, "non-blocking connect returned %d errno %d (%s), expected -1/EINPROGRESS",
          rc, err, strerror(err));
    struct pollfd p = {fd, POLLOUT, 0};
    CHECK(poll(&p, 1, 2000) == 1 && (p.revents & POLLOUT), "poll(POLLOUT) after a non-blocking connect: revents %#x",
          p.revents);
    int so_error = -1;
    socklen_t sl = sizeof so_error;
    CHECK(getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &sl) == 0 && so_error == 0, "SO_ERROR = %d", so_error);
    int fl = fcntl(fd, F_GETFL);
    CHECK(fl == (O_RDWR | O_NONBLOCK), "F_GETFL after a non-blocking connect = %#x", fl);
    int s = accept(g_listener, NULL, NULL);
    CHECK(s >= 0, "accept");
    close(s);
    close(fd);
    return NULL;
}

static void *eisconn_connect(void *arg)
{
    (void)arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0, "socket");
    CHECK(connect(fd, (struct sockaddr *)&g_addr, sizeof g_addr) == 0, "connect");
    errno = 0;
    int rc = connect(fd, (struct sockaddr *)&g_addr, sizeof g_addr);
    int err = errno;
    CHECK(rc == -1 && err == EISCONN, "second connect on a connected socket returned %d errno %d (%s), expected "
          "-1/EISCONN", rc, err, strerror(err));
    int fl = fcntl(fd, F_GETFL);
    CHECK(fl == O_RDWR, "F_GETFL after a blocking connect = %#x, expected O_RDWR", fl);
    int s = accept(g_listener, NULL, NULL);
    CHECK(s >= 0, "accept");
    close(s);
    close(fd);
    return NULL;
}

static void test_connect_errors(void)
{
    set_phase("connect to a bound but not listening port");
    int closed = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(closed >= 0, "socket");
    g_closed_addr.sin_family = AF_INET;
    g_closed_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof g_closed_addr;
    CHECK(bind(closed, (struct sockaddr *)&g_closed_addr, sizeof g_closed_addr) == 0, "bind");
    CHECK(getsockname(closed, (struct sockaddr *)&g_closed_addr, &len) == 0, "getsockname");
    join(spawn(refused_connect, NULL));
    refused_connect(NULL);
    close(closed);

    set_phase("non-blocking connect from a thread");
    join(spawn(nonblocking_connect, NULL));
    set_phase("second connect on a connected socket");
    join(spawn(eisconn_connect, NULL));
}

/* ---- part 4/5: readv / writev ----------------------------------------------- */

static unsigned char pattern(size_t i) { return (unsigned char)((i * 2654435761u) >> 13); }

static int g_pair[2];

static void *small_vector_reader(void *arg)
{
    size_t total = (size_t)(uintptr_t)arg;
    unsigned char a[50], b[60], c[5000];
    size_t got = 0;
    unsigned char *flat = malloc(total);
    CHECK(flat, "malloc");
    while (got < total) {
        struct iovec iov[3] = {{a, sizeof a}, {b, sizeof b}, {c, sizeof c}};
        ssize_t n = readv(g_pair[1], iov, 3);
        CHECK(n > 0, "readv returned %zd after %zu of %zu bytes", n, got, total);
        size_t left = (size_t)n;
        for (int v = 0; v < 3 && left; v++) {
            size_t k = left < iov[v].iov_len ? left : iov[v].iov_len;
            memcpy(flat + got, iov[v].iov_base, k);
            got += k;
            left -= k;
        }
    }
    for (size_t i = 0; i < total; i++) CHECK(flat[i] == pattern(i), "readv: byte %zu is %#x", i, flat[i]);
    free(flat);
    return NULL;
}

static void test_small_vectors(void)
{
    set_phase("writev with 4 iovecs, readv with 3");
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, g_pair) == 0, "socketpair");
    size_t sizes[4] = {1, 100, 4096, 7}, total = 0;
    for (int i = 0; i < 4; i++) total += sizes[i];
    unsigned char *src = malloc(total);
    CHECK(src, "malloc");
    for (size_t i = 0; i < total; i++) src[i] = pattern(i);
    pthread_t r = spawn(small_vector_reader, (void *)(uintptr_t)(total * 10));
    for (int rep = 0; rep < 10; rep++) {
        /* Each repetition continues the pattern. */
        unsigned char *chunk = malloc(total);
        CHECK(chunk, "malloc");
        for (size_t i = 0; i < total; i++) chunk[i] = pattern(rep * total + i);
        struct iovec iov[4];
        size_t off = 0;
        for (int i = 0; i < 4; i++) {
            iov[i].iov_base = chunk + off;
            iov[i].iov_len = sizes[i];
            off += sizes[i];
        }
        ssize_t n = writev(g_pair[0], iov, 4);
        CHECK(n == (ssize_t)total, "writev of 4 iovecs (%zu bytes) returned %zd", total, n);
        free(chunk);
    }
    join(r);
    free(src);
    close(g_pair[0]);
    close(g_pair[1]);
}

#define BIG (6u << 20)

struct big_reader_args {
    int fd;
    size_t total;
};

static void *slow_reader(void *arg)
{
    struct big_reader_args *a = arg;
    unsigned char *buf = malloc(16384);
    CHECK(buf, "malloc");
    size_t got = 0;
    long reads = 0;
    for (;;) {
        ssize_t n = read(a->fd, buf, 16384);
        CHECK(n >= 0, "slow reader: read returned %zd after %zu bytes", n, got);
        if (n == 0) break;
        for (ssize_t i = 0; i < n; i++)
            CHECK(buf[i] == pattern(got + (size_t)i), "slow reader: byte %zu is %#x, expected %#x (out of order?)",
                  got + (size_t)i, buf[i], pattern(got + (size_t)i));
        got += (size_t)n;
        if (++reads % 4 == 0) sleep_ms(1);
    }
    CHECK(got == a->total, "slow reader: EOF after %zu bytes, expected %zu", got, a->total);
    free(buf);
    return NULL;
}

static void big_writev(int wfd, int rfd, const char *what)
{
    set_phase(what);
    unsigned char *src = malloc(BIG);
    CHECK(src, "malloc");
    for (size_t i = 0; i < BIG; i++) src[i] = pattern(i);
    struct big_reader_args a = {rfd, BIG};
    pthread_t r = spawn(slow_reader, &a);
    /* 5 uneven iovecs, then 12 small-and-large ones. */
    size_t cuts[5] = {1, 1u << 20, 4097, 1000000, 0};
    size_t used = 0;
    for (int i = 0; i < 4; i++) used += cuts[i];
    cuts[4] = BIG / 2 - used;
    struct iovec iov[12];
    size_t off = 0;
    for (int i = 0; i < 5; i++) {
        iov[i].iov_base = src + off;
        iov[i].iov_len = cuts[i];
        off += cuts[i];
    }
    ssize_t n = writev(wfd, iov, 5);
    CHECK(n == (ssize_t)(BIG / 2), "%s: blocking writev of 5 iovecs (%u bytes) returned %zd", what, BIG / 2, n);
    size_t rest = BIG - off, per = rest / 12;
    for (int i = 0; i < 12; i++) {
        iov[i].iov_base = src + off;
        iov[i].iov_len = i == 11 ? BIG - off : (i % 2 ? per * 2 - 3 : 3);
        off += iov[i].iov_len;
    }
    CHECK(off == BIG, "iovec arithmetic");
    n = writev(wfd, iov, 12);
    CHECK(n == (ssize_t)rest, "%s: blocking writev of 12 iovecs (%zu bytes) returned %zd", what, rest, n);
    CHECK(shutdown(wfd, SHUT_WR) == 0, "shutdown");
    join(r);
    free(src);
}

static void test_big_writev(void)
{
    int c = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(c >= 0, "socket");
    CHECK(connect(c, (struct sockaddr *)&g_addr, sizeof g_addr) == 0, "connect");
    int s = accept(g_listener, NULL, NULL);
    CHECK(s >= 0, "accept");
    big_writev(c, s, "6 MiB writev over TCP to a slow reader thread");
    close(c);
    close(s);
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, g_pair) == 0, "socketpair");
    big_writev(g_pair[0], g_pair[1], "6 MiB writev over an AF_UNIX socketpair to a slow reader thread");
    close(g_pair[0]);
    close(g_pair[1]);
}

int main(void)
{
    watchdog(25);
    fprintf(stderr, "t_connect: running %s\n", is_shim() ? "under greenld" : "natively");
    test_many_connects();
    test_connect_errors();
    test_small_vectors();
    test_big_writev();
    close(g_listener);
    fprintf(stderr, "t_connect: all checks passed\n");
    return 0;
}
