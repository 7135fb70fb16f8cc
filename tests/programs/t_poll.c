/*
 * t_poll — poll() and ppoll() called from created threads (fibers under
 * greenld) behave exactly as on Linux.
 *
 * What native Linux does (measured on this machine's 6.x kernel; the checks
 * assert exactly this, the shim must match it):
 *
 *  - poll returns the number of entries with a non-zero revents; on a
 *    timeout it returns 0 and clears every revents. It never returns before
 *    its timeout (CLOCK_MONOTONIC), and a negative timeout waits forever.
 *  - An entry with a negative fd is ignored: revents 0, events not looked at.
 *  - An entry whose fd is not open reports POLLNVAL at once, whatever its
 *    events, and counts as ready.
 *  - POLLHUP, POLLERR and POLLNVAL are reported even when not asked for
 *    (events == 0 waits for hang-up only).
 *  - AF_UNIX stream peer closed: POLLIN|POLLHUP (|POLLRDHUP if asked);
 *    peer shutdown(SHUT_WR): POLLIN|POLLRDHUP, no POLLHUP.
 *    Pipe whose writers are gone: POLLHUP (no POLLIN when empty); full pipe
 *    whose readers are gone: POLLERR; full pipe: no POLLOUT.
 *  - TCP urgent data (send MSG_OOB) with nothing else queued: POLLPRI only.
 *  - A listening socket with a pending connection: POLLIN.
 *  - poll does not care about O_NONBLOCK; a regular file is always
 *    POLLIN|POLLOUT.
 *  - The same fd twice in the array: each entry reports on its own.
 *  - ppoll does not modify the caller's timespec (glibc passes a copy) and
 *    rejects tv_nsec >= 1e9 with EINVAL; a bad array pointer is EFAULT.
 *  - Any number of threads may poll the same fd; one write wakes them all
 *    (poll does not consume readiness).
 *
 * Every test body runs in a created thread; helpers that make fds ready
 * after a delay run in other created threads. The main thread (native
 * under the shim) only starts them, except for one sanity check of its own.
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
#include <time.h>
#include <unistd.h>

#include "test_support.h"
#include "delayed_action.h"

#define MS(ns) ((double)(ns) / 1e6)

/* ---- the tests ---------------------------------------------------------- */

/* Readable 50 ms later: returns 1, POLLIN, not before the write. */
static void test_readable_later(void)
{
    int sv[2];
    unix_pair(sv, SOCK_STREAM);
    struct pollfd p = {sv[0], POLLIN, 0x7fff};
    int64_t t0 = now_ns();
    struct delayed d;
    start_delayed(&d, 50, ACT_WRITE, sv[1]);
    int r = poll(&p, 1, 5000);
    int64_t t1 = now_ns();
    join(d.thread);
    CHECK(r == 1, "poll returned %d, expected 1", r);
    CHECK(p.revents == POLLIN, "revents %#x, expected POLLIN", p.revents);
    CHECK(t1 - t0 >= 40000000, "poll returned after %.1f ms, the data came after 50 ms", MS(t1 - t0));
    CHECK(t1 >= d.at_ns, "poll returned %.1f ms before the write", MS(d.at_ns - t1));
    CHECK(t1 - t0 < 1000000000, "poll took %.1f ms for data written after 50 ms", MS(t1 - t0));
    close(sv[0]);
    close(sv[1]);
}

/* Nothing ready: 0 after at least the timeout, every revents cleared. */
static void test_timeout(void)
{
    int sv[2], fp[2], idle[2];
    unix_pair(sv, SOCK_STREAM);
    full_pipe(fp);
    CHECK(pipe(idle) == 0, "pipe");
    struct pollfd p[4] = {
        {sv[0], POLLIN | POLLPRI | POLLRDHUP, 0x7fff},
        {fp[1], POLLOUT, 0x7fff},
        {idle[0], POLLIN, 0x7fff},
        {sv[1], POLLIN, 0x7fff},
    };
    int64_t t0 = now_ns();
    int r = poll(p, 4, 100);
    int64_t el = now_ns() - t0;
    CHECK(r == 0, "poll returned %d, expected 0 (timeout)", r);
    for (int i = 0; i < 4; i++) CHECK(p[i].revents == 0, "entry %d: revents %#x after a timeout", i, p[i].revents);
    CHECK(el >= 100000000, "poll(100 ms) returned after %.3f ms", MS(el));
    CHECK(el < 1000000000, "poll(100 ms) returned after %.3f ms", MS(el));
    close(sv[0]);
    close(sv[1]);
    close(fp[0]);
    close(fp[1]);
    close(idle[0]);
    close(idle[1]);
}

/* Timeout 0: an immediate answer either way. */
static void test_timeout_zero(void)
{
    int sv[2];
    unix_pair(sv, SOCK_STREAM);
    struct pollfd p = {sv[0], POLLIN, 0x7fff};
    int64_t t0 = now_ns();
    int r = poll(&p, 1, 0);
    int64_t el = now_ns() - t0;
    CHECK(r == 0 && p.revents == 0, "poll(timeout 0), nothing ready: returned %d revents %#x", r, p.revents);
    CHECK(el < 50000000, "poll(timeout 0) took %.1f ms", MS(el));
    CHECK(write(sv[1], "x", 1) == 1, "write");
    t0 = now_ns();
    r = poll(&p, 1, 0);
    el = now_ns() - t0;
    CHECK(r == 1 && p.revents == POLLIN, "poll(timeout 0), data queued: returned %d revents %#x", r, p.revents);
    CHECK(el < 50000000, "poll(timeout 0) took %.1f ms", MS(el));
    close(sv[0]);
    close(sv[1]);
}

/* Timeout -1: waits for as long as it takes. */
static void test_infinite(void)
{
    int sv[2];
    unix_pair(sv, SOCK_STREAM);
    struct pollfd p = {sv[0], POLLIN, 0};
    struct delayed d;
    int64_t t0 = now_ns();
    start_delayed(&d, 150, ACT_WRITE, sv[1]);
    int r = poll(&p, 1, -1);
    int64_t t1 = now_ns();
    join(d.thread);
    CHECK(r == 1 && p.revents == POLLIN, "poll(-1): returned %d revents %#x", r, p.revents);
    CHECK(t1 >= d.at_ns, "poll(-1) returned %.1f ms before the write", MS(d.at_ns - t1));
    CHECK(t1 - t0 < 1000000000, "poll(-1) took %.1f ms for data written after 150 ms", MS(t1 - t0));
    close(sv[0]);
    close(sv[1]);
}

/* A writable socket: POLLOUT at once; POLLIN|POLLOUT reports only POLLOUT. */
static void test_pollout(void)
{
    int sv[2];
    unix_pair(sv, SOCK_STREAM);
    struct pollfd p = {sv[0], POLLOUT, 0};
    int64_t t0 = now_ns();
    int r = poll(&p, 1, -1);
    int64_t el = now_ns() - t0;
    CHECK(r == 1 && p.revents == POLLOUT, "poll(POLLOUT): returned %d revents %#x", r, p.revents);
    CHECK(el < 50000000, "poll(POLLOUT) on a writable socket took %.1f ms", MS(el));
    p.events = POLLIN | POLLOUT;
    r = poll(&p, 1, 5000);
    CHECK(r == 1 && p.revents == POLLOUT, "poll(POLLIN|POLLOUT): returned %d revents %#x", r, p.revents);
    close(sv[0]);
    close(sv[1]);
}

/* 200 socketpairs; one chosen at random becomes readable: exactly that one
 * is reported. Then two at once. */
#define NPAIRS 200
static void test_many_fds(void)
{
    static int pairs[NPAIRS][2];
    static struct pollfd p[NPAIRS];
    for (int i = 0; i < NPAIRS; i++) unix_pair(pairs[i], SOCK_STREAM);
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    for (int round = 0; round < 4; round++) {
        int k = (int)(rng_next(&rng) % NPAIRS);
        for (int i = 0; i < NPAIRS; i++) p[i] = (struct pollfd){pairs[i][0], POLLIN, 0x7fff};
        struct delayed d;
        start_delayed(&d, 30, ACT_WRITE, pairs[k][1]);
        int r = poll(p, NPAIRS, 5000);
        int64_t t1 = now_ns();
        join(d.thread);
        CHECK(r == 1, "round %d: poll over %d fds returned %d, only pair %d was written", round, NPAIRS, r, k);
        CHECK(t1 >= d.at_ns, "round %d: poll returned before the write", round);
        for (int i = 0; i < NPAIRS; i++)
            CHECK(p[i].revents == (i == k ? POLLIN : 0), "round %d: entry %d (fd %d) revents %#x; pair %d was written",
                  round, i, p[i].fd, p[i].revents, k);
        discard_exact(pairs[k][0], 1);
    }
    int a = 17, b = 183;
    CHECK(write(pairs[a][1], "x", 1) == 1 && write(pairs[b][1], "x", 1) == 1, "write");
    for (int i = 0; i < NPAIRS; i++) p[i] = (struct pollfd){pairs[i][0], POLLIN, 0x7fff};
    int r = poll(p, NPAIRS, -1);
    CHECK(r == 2, "poll over %d fds with 2 readable returned %d", NPAIRS, r);
    for (int i = 0; i < NPAIRS; i++)
        CHECK(p[i].revents == (i == a || i == b ? POLLIN : 0), "entry %d revents %#x", i, p[i].revents);
    for (int i = 0; i < NPAIRS; i++) {
        close(pairs[i][0]);
        close(pairs[i][1]);
    }
}

/* Negative fds are skipped: revents 0 whatever events says. */
static void test_negative_fd(void)
{
    int sv[2];
    unix_pair(sv, SOCK_STREAM);
    struct pollfd p[3] = {{-1, POLLIN, 0x7fff}, {sv[0], POLLIN, 0x7fff}, {-42, POLLOUT, 0x7fff}};
    struct delayed d;
    start_delayed(&d, 30, ACT_WRITE, sv[1]);
    int r = poll(p, 3, 5000);
    join(d.thread);
    CHECK(r == 1, "poll returned %d, expected 1", r);
    CHECK(p[0].revents == 0 && p[2].revents == 0, "negative fds: revents %#x and %#x, expected 0", p[0].revents,
          p[2].revents);
    CHECK(p[1].revents == POLLIN, "revents %#x, expected POLLIN", p[1].revents);

    /* Only negative fds: a sleep. */
    struct pollfd q[2] = {{-1, POLLIN, 0x7fff}, {-3, POLLOUT, 0x7fff}};
    int64_t t0 = now_ns();
    r = poll(q, 2, 100);
    int64_t el = now_ns() - t0;
    CHECK(r == 0 && q[0].revents == 0 && q[1].revents == 0, "poll over negative fds: %d, revents %#x %#x", r,
          q[0].revents, q[1].revents);
    CHECK(el >= 100000000 && el < 1000000000, "poll(100 ms) over negative fds took %.3f ms", MS(el));
    close(sv[0]);
    close(sv[1]);
}

/* An fd that is not open: POLLNVAL at once, even with timeout -1 and even
 * with events 0. */
static void test_closed_fd(void)
{
    int sv[2];
    unix_pair(sv, SOCK_STREAM);
    int bad = closed_fd();
    struct pollfd p[2] = {{sv[0], POLLIN, 0x7fff}, {bad, POLLIN, 0x7fff}};
    int64_t t0 = now_ns();
    int r = poll(p, 2, -1);
    int64_t el = now_ns() - t0;
    CHECK(r == 1, "poll with closed fd %d returned %d, expected 1", bad, r);
    CHECK(p[0].revents == 0 && p[1].revents == POLLNVAL, "revents %#x, %#x; expected 0, POLLNVAL", p[0].revents,
          p[1].revents);
    CHECK(el < 50000000, "POLLNVAL took %.1f ms", MS(el));
    struct pollfd q = {bad, 0, 0};
    r = poll(&q, 1, -1);
    CHECK(r == 1 && q.revents == POLLNVAL, "poll(closed fd, events 0): %d revents %#x", r, q.revents);
    close(sv[0]);
    close(sv[1]);
}

/* Hang-ups and shutdowns. */
static void test_hangup(void)
{
    int sv[2];
    struct delayed d;

    /* Peer closes: POLLIN|POLLHUP|POLLRDHUP. */
    unix_pair(sv, SOCK_STREAM);
    struct pollfd p = {sv[0], POLLIN | POLLRDHUP, 0};
    start_delayed(&d, 50, ACT_CLOSE, sv[1]);
    int r = poll(&p, 1, -1);
    join(d.thread);
    CHECK(r == 1 && p.revents == (POLLIN | POLLHUP | POLLRDHUP), "peer closed: returned %d revents %#x, expected %#x",
          r, p.revents, POLLIN | POLLHUP | POLLRDHUP);
    close(sv[0]);

    /* events 0: waits for the hang-up only. */
    unix_pair(sv, SOCK_STREAM);
    p = (struct pollfd){sv[0], 0, 0};
    int64_t t0 = now_ns();
    start_delayed(&d, 50, ACT_CLOSE, sv[1]);
    r = poll(&p, 1, 2000);
    int64_t t1 = now_ns();
    join(d.thread);
    CHECK(r == 1 && p.revents == POLLHUP, "events 0, peer closed after 50 ms: returned %d revents %#x after %.1f ms",
          r, p.revents, MS(t1 - t0));
    CHECK(t1 - t0 < 1000000000, "events 0: POLLHUP took %.1f ms", MS(t1 - t0));
    close(sv[0]);

    /* Peer shuts down writing: POLLIN|POLLRDHUP, no POLLHUP. */
    unix_pair(sv, SOCK_STREAM);
    p = (struct pollfd){sv[0], POLLIN | POLLRDHUP, 0};
    start_delayed(&d, 50, ACT_SHUT_WR, sv[1]);
    r = poll(&p, 1, -1);
    join(d.thread);
    CHECK(r == 1 && p.revents == (POLLIN | POLLRDHUP), "peer SHUT_WR: returned %d revents %#x", r, p.revents);
    close(sv[0]);
    close(sv[1]);
}

static void test_pipes(void)
{
    int pp[2];
    struct delayed d;

    CHECK(pipe(pp) == 0, "pipe");
    struct pollfd p = {pp[0], POLLIN, 0};
    start_delayed(&d, 50, ACT_WRITE, pp[1]);
    int r = poll(&p, 1, -1);
    join(d.thread);
    CHECK(r == 1 && p.revents == POLLIN, "pipe written: returned %d revents %#x", r, p.revents);
    discard_exact(pp[0], 1);
    /* The writer goes away: POLLHUP, no POLLIN (empty). */
    start_delayed(&d, 50, ACT_CLOSE, pp[1]);
    r = poll(&p, 1, -1);
    join(d.thread);
    CHECK(r == 1 && p.revents == POLLHUP, "pipe writer closed: returned %d revents %#x", r, p.revents);
    close(pp[0]);

    /* A full pipe is not writable until a reader drains it. */
    full_pipe(pp);
    p = (struct pollfd){pp[1], POLLOUT, 0x7fff};
    int64_t t0 = now_ns();
    r = poll(&p, 1, 50);
    int64_t el = now_ns() - t0;
    CHECK(r == 0 && p.revents == 0, "full pipe: returned %d revents %#x", r, p.revents);
    CHECK(el >= 50000000, "poll(50 ms) returned after %.3f ms", MS(el));
    d.n = 4096;
    start_delayed(&d, 50, ACT_DRAIN, pp[0]);
    r = poll(&p, 1, -1);
    join(d.thread);
    CHECK(r == 1 && p.revents == POLLOUT, "drained pipe: returned %d revents %#x", r, p.revents);
    close(pp[0]);
    close(pp[1]);

    /* A full pipe whose reader goes away: POLLERR. */
    full_pipe(pp);
    p = (struct pollfd){pp[1], POLLOUT, 0};
    start_delayed(&d, 50, ACT_CLOSE, pp[0]);
    r = poll(&p, 1, 2000);
    join(d.thread);
    CHECK(r == 1 && p.revents == POLLERR, "full pipe, reader closed: returned %d revents %#x", r, p.revents);
    close(pp[1]);
}

/* TCP urgent data: POLLPRI only. */
static void test_pollpri(void)
{
    int a, b;
    tcp_pair(&a, &b);
    struct pollfd p = {b, POLLIN | POLLPRI, 0};
    struct delayed d;
    int64_t t0 = now_ns();
    start_delayed(&d, 50, ACT_OOB, a);
    int r = poll(&p, 1, 2000);
    int64_t t1 = now_ns();
    join(d.thread);
    CHECK(r == 1 && p.revents == POLLPRI, "urgent data after 50 ms: returned %d revents %#x after %.1f ms", r,
          p.revents, MS(t1 - t0));
    CHECK(t1 - t0 < 1000000000, "POLLPRI took %.1f ms", MS(t1 - t0));
    char c;
    CHECK(recv(b, &c, 1, MSG_OOB) == 1 && c == '!', "recv(MSG_OOB)");
    close(a);
    close(b);
}

/* A listening socket is readable when a connection is pending. */
static void test_listener(void)
{
    struct delayed d;
    int l = tcp_listener(&d.addr, 16);
    struct pollfd p = {l, POLLIN, 0};
    start_delayed(&d, 50, ACT_CONNECT, -1);
    int r = poll(&p, 1, -1);
    int64_t t1 = now_ns();
    join(d.thread);
    CHECK(r == 1 && p.revents == POLLIN, "pending connection: returned %d revents %#x", r, p.revents);
    CHECK(t1 >= d.at_ns, "poll returned before connect() was called");
    int c = accept(l, NULL, NULL);
    CHECK(c >= 0, "accept");
    close(c);
    close(d.made_fd);
    close(l);
}

/* O_NONBLOCK does not change poll; a regular file is always ready; the
 * same fd twice reports twice. */
static void test_fd_kinds(void)
{
    int sv[2];
    struct delayed d;
    unix_pair(sv, SOCK_STREAM | SOCK_NONBLOCK);
    struct pollfd p = {sv[0], POLLIN, 0};
    int64_t t0 = now_ns();
    start_delayed(&d, 50, ACT_WRITE, sv[1]);
    int r = poll(&p, 1, -1);
    int64_t t1 = now_ns();
    join(d.thread);
    CHECK(r == 1 && p.revents == POLLIN, "non-blocking socket: returned %d revents %#x", r, p.revents);
    CHECK(t1 >= d.at_ns && t1 - t0 >= 40000000, "non-blocking socket: poll returned after %.1f ms, before the write",
          MS(t1 - t0));
    discard_exact(sv[0], 1);

    struct pollfd two[2] = {{sv[0], POLLIN, 0}, {sv[0], POLLIN, 0}};
    start_delayed(&d, 50, ACT_WRITE, sv[1]);
    r = poll(two, 2, -1);
    join(d.thread);
    CHECK(r == 2 && two[0].revents == POLLIN && two[1].revents == POLLIN,
          "same fd twice: returned %d revents %#x %#x", r, two[0].revents, two[1].revents);
    close(sv[0]);
    close(sv[1]);

    char path[] = "/tmp/t_poll.XXXXXX";
    int f = mkstemp(path);
    CHECK(f >= 0, "mkstemp");
    unlink(path);
    p = (struct pollfd){f, POLLIN | POLLOUT, 0};
    r = poll(&p, 1, -1);
    CHECK(r == 1 && p.revents == (POLLIN | POLLOUT), "regular file: returned %d revents %#x", r, p.revents);
    close(f);
}

static void test_errors(void)
{
    struct pollfd *volatile bad = (struct pollfd *)8;
    errno = 0;
    int r = poll(bad, 1, 100);
    CHECK(r == -1 && errno == EFAULT, "poll(bad pointer): returned %d errno %d, expected -1 EFAULT", r, errno);
    int sv[2];
    unix_pair(sv, SOCK_STREAM);
    struct pollfd p = {sv[0], POLLIN, 0};
    struct timespec ts = {0, 1000000000};
    errno = 0;
    r = ppoll(&p, 1, &ts, NULL);
    CHECK(r == -1 && errno == EINVAL, "ppoll(tv_nsec 1e9): returned %d errno %d, expected -1 EINVAL", r, errno);
    ts = (struct timespec){-1, 0};
    errno = 0;
    r = ppoll(&p, 1, &ts, NULL);
    CHECK(r == -1 && errno == EINVAL, "ppoll(tv_sec -1): returned %d errno %d, expected -1 EINVAL", r, errno);
    /* errno is left alone on success. */
    errno = 1234;
    r = poll(&p, 1, 20);
    CHECK(r == 0 && errno == 1234, "poll timeout: returned %d, errno changed to %d", r, errno);
    close(sv[0]);
    close(sv[1]);
}

static void test_ppoll(void)
{
    int sv[2];
    unix_pair(sv, SOCK_STREAM);
    struct pollfd p = {sv[0], POLLIN, 0x7fff};
    struct timespec ts = {0, 100000000};
    int64_t t0 = now_ns();
    int r = ppoll(&p, 1, &ts, NULL);
    int64_t el = now_ns() - t0;
    CHECK(r == 0 && p.revents == 0, "ppoll(100 ms): returned %d revents %#x", r, p.revents);
    CHECK(el >= 100000000 && el < 1000000000, "ppoll(100 ms) took %.3f ms", MS(el));
    CHECK(ts.tv_sec == 0 && ts.tv_nsec == 100000000, "ppoll changed the caller's timespec to %ld.%09ld",
          (long)ts.tv_sec, ts.tv_nsec);

    struct delayed d;
    ts = (struct timespec){3, 0};
    t0 = now_ns();
    start_delayed(&d, 50, ACT_WRITE, sv[1]);
    r = ppoll(&p, 1, &ts, NULL);
    int64_t t1 = now_ns();
    join(d.thread);
    CHECK(r == 1 && p.revents == POLLIN, "ppoll(3 s), data after 50 ms: returned %d revents %#x", r, p.revents);
    CHECK(t1 >= d.at_ns && t1 - t0 < 1000000000, "ppoll returned after %.1f ms", MS(t1 - t0));
    CHECK(ts.tv_sec == 3 && ts.tv_nsec == 0, "ppoll changed the caller's timespec");
    discard_exact(sv[0], 1);

    /* NULL timeout with an (empty) signal mask: waits until data. */
    sigset_t none;
    sigemptyset(&none);
    start_delayed(&d, 50, ACT_WRITE, sv[1]);
    r = ppoll(&p, 1, NULL, &none);
    t1 = now_ns();
    join(d.thread);
    CHECK(r == 1 && p.revents == POLLIN, "ppoll(NULL): returned %d revents %#x", r, p.revents);
    CHECK(t1 >= d.at_ns, "ppoll(NULL) returned before the write");
    discard_exact(sv[0], 1);

    ts = (struct timespec){0, 0};
    t0 = now_ns();
    r = ppoll(&p, 1, &ts, NULL);
    el = now_ns() - t0;
    CHECK(r == 0 && p.revents == 0 && el < 50000000, "ppoll({0,0}): returned %d revents %#x after %.1f ms", r,
          p.revents, MS(el));
    close(sv[0]);
    close(sv[1]);
}

/* Several threads poll one fd; a single write wakes every one of them. */
#define SAME_FD_POLLERS 8
static int g_same_fd;
static struct gate g_same_gate;
struct same_result {
    int r;
    short revents;
    int64_t done;
};
static struct same_result g_same[SAME_FD_POLLERS];

static void *same_fd_poller(void *arg)
{
    struct same_result *res = arg;
    gate_wait(&g_same_gate);
    struct pollfd p = {g_same_fd, POLLIN, 0};
    res->r = poll(&p, 1, 5000);
    res->revents = p.revents;
    res->done = now_ns();
    return NULL;
}

static void test_same_fd(void)
{
    int sv[2];
    unix_pair(sv, SOCK_STREAM);
    g_same_fd = sv[0];
    gate_init(&g_same_gate, SAME_FD_POLLERS + 1);
    pthread_t t[SAME_FD_POLLERS];
    for (int i = 0; i < SAME_FD_POLLERS; i++) t[i] = spawn(same_fd_poller, &g_same[i]);
    gate_wait(&g_same_gate);
    sleep_ms(80);
    int64_t at = now_ns();
    CHECK(write(sv[1], "x", 1) == 1, "write");
    for (int i = 0; i < SAME_FD_POLLERS; i++) join(t[i]);
    for (int i = 0; i < SAME_FD_POLLERS; i++) {
        CHECK(g_same[i].r == 1 && g_same[i].revents == POLLIN, "poller %d: returned %d revents %#x", i, g_same[i].r,
              g_same[i].revents);
        CHECK(g_same[i].done >= at, "poller %d returned %.1f ms before the write", i, MS(at - g_same[i].done));
        CHECK(g_same[i].done - at < 1000000000, "poller %d woke %.1f ms after the write", i,
              MS(g_same[i].done - at));
    }
    gate_destroy(&g_same_gate);
    close(sv[0]);
    close(sv[1]);
}

/* 50 threads poll at once with timeouts 10, 20, ... 500 ms: each returns 0
 * at its own time, never early, at most 300 ms late. Even-numbered threads
 * poll an idle socket, odd ones poll no fds at all. */
#define STAGGERED 50
static int g_idle_fd;
static struct gate g_stagger_gate;
struct stagger {
    int timeout_ms;
    int r;
    int64_t elapsed;
};
static struct stagger g_stagger[STAGGERED];

static void *staggered_poller(void *arg)
{
    struct stagger *s = arg;
    int idx = (int)(s - g_stagger);
    struct pollfd p = {g_idle_fd, POLLIN, 0};
    gate_wait(&g_stagger_gate);
    int64_t t0 = now_ns();
    s->r = (idx % 2 == 0) ? poll(&p, 1, s->timeout_ms) : poll(NULL, 0, s->timeout_ms);
    s->elapsed = now_ns() - t0;
    return NULL;
}

static void test_staggered(void)
{
    int sv[2];
    unix_pair(sv, SOCK_STREAM);
    g_idle_fd = sv[0];
    gate_init(&g_stagger_gate, STAGGERED);
    pthread_t t[STAGGERED];
    for (int i = 0; i < STAGGERED; i++) {
        g_stagger[i].timeout_ms = 10 * (i + 1);
        t[i] = spawn(staggered_poller, &g_stagger[i]);
    }
    for (int i = 0; i < STAGGERED; i++) join(t[i]);
    for (int i = 0; i < STAGGERED; i++) {
        const struct stagger *s = &g_stagger[i];
        const int64_t want = (int64_t)s->timeout_ms * 1000000;
        CHECK(s->r == 0, "thread %d (%s, %d ms): returned %d", i, i % 2 ? "no fds" : "idle socket", s->timeout_ms,
              s->r);
        CHECK(s->elapsed >= want, "thread %d (%s): poll(%d ms) returned early, after %.3f ms", i,
              i % 2 ? "no fds" : "idle socket", s->timeout_ms, MS(s->elapsed));
        CHECK(s->elapsed < want + 300000000, "thread %d (%s): poll(%d ms) returned late, after %.3f ms", i,
              i % 2 ? "no fds" : "idle socket", s->timeout_ms, MS(s->elapsed));
    }
    gate_destroy(&g_stagger_gate);
    close(sv[0]);
    close(sv[1]);
}

int main(void)
{
    watchdog(30);
    fprintf(stderr, "t_poll: running %s\n", is_shim() ? "under greenld" : "natively");

    /* The main thread too (native under the shim). */
    set_phase("main thread: poll timeout");
    {
        int sv[2];
        unix_pair(sv, SOCK_STREAM);
        struct pollfd p = {sv[0], POLLIN, 0x7fff};
        int64_t t0 = now_ns();
        int r = poll(&p, 1, 50);
        int64_t el = now_ns() - t0;
        CHECK(r == 0 && p.revents == 0 && el >= 50000000, "main: poll(50 ms) returned %d revents %#x after %.3f ms", r,
              p.revents, MS(el));
        close(sv[0]);
        close(sv[1]);
    }

    run_in_created_thread("readable after 50 ms", test_readable_later);
    run_in_created_thread("timeout 100 ms, nothing ready", test_timeout);
    run_in_created_thread("timeout 0", test_timeout_zero);
    run_in_created_thread("timeout -1 woken by data", test_infinite);
    run_in_created_thread("POLLOUT on a writable socket", test_pollout);
    run_in_created_thread("200 socketpairs, one ready", test_many_fds);
    run_in_created_thread("negative fds ignored", test_negative_fd);
    run_in_created_thread("closed fd: POLLNVAL", test_closed_fd);
    run_in_created_thread("POLLHUP / POLLRDHUP", test_hangup);
    run_in_created_thread("pipes", test_pipes);
    run_in_created_thread("POLLPRI on TCP urgent data", test_pollpri);
    run_in_created_thread("listening socket", test_listener);
    run_in_created_thread("O_NONBLOCK, same fd twice, regular file", test_fd_kinds);
    run_in_created_thread("errors", test_errors);
    run_in_created_thread("ppoll", test_ppoll);
    run_in_created_thread("several threads poll one fd", test_same_fd);
    run_in_created_thread("50 threads, staggered timeouts", test_staggered);

    fprintf(stderr, "t_poll: all checks passed\n");
    return 0;
}
