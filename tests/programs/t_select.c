/*
 * t_select — select() and pselect() called from created threads (fibers
 * under greenld) behave exactly as on Linux.
 *
 * What native Linux does (measured on this machine's 6.x kernel; the checks
 * assert exactly this, the shim must match it):
 *
 *  - select returns the total number of bits set in the three returned sets
 *    (an fd ready in two sets counts twice), and each returned set holds
 *    exactly the ready fds of the ones asked for. On a timeout it returns 0
 *    with the sets emptied (every fd below nfds cleared).
 *  - On Linux select writes the time not slept back into the timeval: 0
 *    after a timeout, less than given after an early return.
 *    select(0, NULL, NULL, NULL, &tv) sleeps at least tv.
 *  - Only fds below nfds are looked at. With nfds == 0 the kernel copies no
 *    set back at all: the caller's sets are left exactly as they were.
 *  - A set naming an fd that is not open (inside the fd table): -1/EBADF at
 *    once, even next to ready fds, sets left unchanged.
 *  - "Readable" includes end of file and hang-up (a pipe whose writers are
 *    gone, a socket whose peer closed); "writable" includes a pipe whose
 *    readers are gone; "exceptional" is TCP urgent data, which alone does
 *    not make the socket readable.
 *  - A listening socket with a pending connection is readable. O_NONBLOCK
 *    does not change select.
 *  - pselect leaves the caller's timespec alone; tv_nsec >= 1e9 is EINVAL;
 *    nfds < 0 and a negative timeval field are EINVAL.
 *
 * Every test body runs in a created thread; helpers that make fds ready
 * after a delay run in other created threads.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "test_support.h"
#include "delayed_action.h"

#define MS(ns) ((double)(ns) / 1e6)

/* ---- set helpers ---------------------------------------------------------- */

static int64_t tv_us(const struct timeval *tv) { return (int64_t)tv->tv_sec * 1000000 + tv->tv_usec; }

/* Every fd below nfds is in `got` exactly when it is in `want`. */
static void check_set(const char *name, int nfds, const fd_set *got, const fd_set *want, int line)
{
    for (int fd = 0; fd < nfds; fd++) {
        int g = FD_ISSET(fd, got) != 0, w = FD_ISSET(fd, want) != 0;
        if (g != w) check_failed(__FILE__, line, "check_set", "%s set: fd %d is %s, expected %s", name, fd,
                                 g ? "set" : "clear", w ? "set" : "clear");
    }
}
#define CHECK_SET(name, nfds, got, want) check_set(name, nfds, got, want, __LINE__)

static int max_fd(const int *fds, int n)
{
    int m = -1;
    for (int i = 0; i < n; i++)
        if (fds[i] > m) m = fds[i];
    return m;
}

/* ---- the tests ---------------------------------------------------------- */

/* Readable 50 ms later: 1, the fd set, the timeval holds the time not slept. */
static void test_readable_later(void)
{
    int sv[2];
    unix_pair(sv, SOCK_STREAM);
    fd_set rs;
    FD_ZERO(&rs);
    FD_SET(sv[0], &rs);
    struct timeval tv = {2, 0};
    struct delayed d;
    int64_t t0 = now_ns();
    start_delayed(&d, 50, ACT_WRITE, sv[1]);
    int r = select(sv[0] + 1, &rs, NULL, NULL, &tv);
    int64_t t1 = now_ns();
    join(d.thread);
    CHECK(r == 1 && FD_ISSET(sv[0], &rs), "select returned %d, fd %s", r, FD_ISSET(sv[0], &rs) ? "set" : "clear");
    CHECK(t1 >= d.at_ns, "select returned %.1f ms before the write", MS(d.at_ns - t1));
    CHECK(t1 - t0 >= 40000000 && t1 - t0 < 1000000000, "select returned after %.1f ms, data written after 50 ms",
          MS(t1 - t0));
    int64_t left = tv_us(&tv), el_us = (t1 - t0) / 1000;
    CHECK(tv.tv_usec >= 0 && tv.tv_usec < 1000000, "timeval not normalised: %ld.%06ld", (long)tv.tv_sec,
          (long)tv.tv_usec);
    CHECK(left < 2000000 - 25000, "timeval left %lld us of 2 s after sleeping %lld us: not decreased",
          (long long)left, (long long)el_us);
    CHECK(left + el_us >= 2000000 - 1000, "timeval left %lld us of 2 s, but only %lld us passed", (long long)left,
          (long long)el_us);

    /* Already readable: returns at once, nearly all the time left. */
    tv = (struct timeval){2, 0};
    FD_ZERO(&rs);
    FD_SET(sv[0], &rs);
    r = select(sv[0] + 1, &rs, NULL, NULL, &tv);
    CHECK(r == 1 && FD_ISSET(sv[0], &rs), "select on readable fd returned %d", r);
    CHECK(tv_us(&tv) > 2000000 - 50000 && tv_us(&tv) <= 2000000, "immediate select left %lld us of 2 s",
          (long long)tv_us(&tv));
    close(sv[0]);
    close(sv[1]);
}

/* The returned sets hold exactly the ready fds. */
#define NPAIRS 10
static void test_exact_sets(void)
{
    int pairs[NPAIRS][2], fp[2];
    for (int i = 0; i < NPAIRS; i++) unix_pair(pairs[i], SOCK_STREAM);
    full_pipe(fp);
    int all[2 * NPAIRS + 2];
    for (int i = 0; i < NPAIRS; i++) all[2 * i] = pairs[i][0], all[2 * i + 1] = pairs[i][1];
    all[2 * NPAIRS] = fp[0], all[2 * NPAIRS + 1] = fp[1];
    const int nfds = max_fd(all, 2 * NPAIRS + 2) + 1;

    for (int i = 0; i < NPAIRS; i++)
        if (i == 2 || i == 5 || i == 7) CHECK(write(pairs[i][1], "x", 1) == 1, "write");
    fd_set rs, ws, xs, want_r, want_w, empty;
    FD_ZERO(&rs);
    FD_ZERO(&ws);
    FD_ZERO(&xs);
    FD_ZERO(&want_r);
    FD_ZERO(&want_w);
    FD_ZERO(&empty);
    for (int i = 0; i < NPAIRS; i++) FD_SET(pairs[i][0], &rs);
    FD_SET(pairs[2][0], &want_r);
    FD_SET(pairs[5][0], &want_r);
    FD_SET(pairs[7][0], &want_r);
    /* Writable: an idle socket (also in the read set, not readable) and a
     * full pipe (not writable). */
    FD_SET(pairs[0][0], &ws);
    FD_SET(fp[1], &ws);
    FD_SET(pairs[0][0], &want_w);
    /* Exceptional: nothing has urgent data. */
    FD_SET(pairs[1][0], &xs);
    FD_SET(pairs[2][0], &xs);
    struct timeval tv = {1, 0};
    int r = select(nfds, &rs, &ws, &xs, &tv);
    CHECK(r == 4, "select returned %d, expected 3 readable + 1 writable", r);
    CHECK_SET("read", nfds, &rs, &want_r);
    CHECK_SET("write", nfds, &ws, &want_w);
    CHECK_SET("except", nfds, &xs, &empty);

    /* A readable fd in the read and write sets counts twice. */
    FD_ZERO(&rs);
    FD_ZERO(&ws);
    FD_SET(pairs[2][0], &rs);
    FD_SET(pairs[2][0], &ws);
    r = select(nfds, &rs, &ws, NULL, NULL);
    CHECK(r == 2 && FD_ISSET(pairs[2][0], &rs) && FD_ISSET(pairs[2][0], &ws),
          "fd readable and writable in both sets: returned %d", r);
    for (int i = 0; i < NPAIRS; i++)
        if (i == 2 || i == 5 || i == 7) discard_exact(pairs[i][0], 1);

    /* One chosen at random becomes readable later: exactly that one. */
    uint64_t rng = 0x243f6a8885a308d3ull;
    for (int round = 0; round < 4; round++) {
        int k = (int)(rng_next(&rng) % NPAIRS);
        FD_ZERO(&rs);
        FD_ZERO(&want_r);
        for (int i = 0; i < NPAIRS; i++) FD_SET(pairs[i][0], &rs);
        FD_SET(pairs[k][0], &want_r);
        FD_ZERO(&ws);
        FD_SET(fp[1], &ws);
        struct delayed d;
        start_delayed(&d, 30, ACT_WRITE, pairs[k][1]);
        tv = (struct timeval){5, 0};
        r = select(nfds, &rs, &ws, NULL, &tv);
        int64_t t1 = now_ns();
        join(d.thread);
        CHECK(r == 1, "round %d: select returned %d, only pair %d was written", round, r, k);
        CHECK(t1 >= d.at_ns, "round %d: select returned before the write", round);
        CHECK_SET("read", nfds, &rs, &want_r);
        CHECK_SET("write", nfds, &ws, &empty);
        discard_exact(pairs[k][0], 1);
    }
    for (int i = 0; i < 2 * NPAIRS + 2; i++) close(all[i]);
}

/* Nothing ready: 0 after at least the timeout, sets emptied, timeval 0. */
static void test_timeout(void)
{
    int sv[2], fp[2];
    unix_pair(sv, SOCK_STREAM);
    full_pipe(fp);
    int all[4] = {sv[0], sv[1], fp[0], fp[1]};
    const int nfds = max_fd(all, 4) + 1;
    fd_set rs, ws, xs, empty;
    FD_ZERO(&rs);
    FD_ZERO(&ws);
    FD_ZERO(&xs);
    FD_ZERO(&empty);
    FD_SET(sv[0], &rs);
    FD_SET(sv[1], &rs);
    FD_SET(fp[1], &ws);
    FD_SET(sv[0], &xs);
    struct timeval tv = {0, 100000};
    int64_t t0 = now_ns();
    int r = select(nfds, &rs, &ws, &xs, &tv);
    int64_t el = now_ns() - t0;
    CHECK(r == 0, "select returned %d, expected 0 (timeout)", r);
    CHECK_SET("read", nfds, &rs, &empty);
    CHECK_SET("write", nfds, &ws, &empty);
    CHECK_SET("except", nfds, &xs, &empty);
    CHECK(tv.tv_sec == 0 && tv.tv_usec == 0, "timeval after a timeout: %ld.%06ld, expected 0", (long)tv.tv_sec,
          (long)tv.tv_usec);
    CHECK(el >= 100000000 && el < 1000000000, "select(100 ms) took %.3f ms", MS(el));
    for (int i = 0; i < 4; i++) close(all[i]);
}

/* select with no fds is a sleep. */
static void test_sleep(void)
{
    struct timeval tv = {0, 100000};
    int64_t t0 = now_ns();
    int r = select(0, NULL, NULL, NULL, &tv);
    int64_t el = now_ns() - t0;
    CHECK(r == 0, "select(0, NULL, NULL, NULL, 100 ms) returned %d", r);
    CHECK(el >= 100000000 && el < 1000000000, "select(0, NULL, NULL, NULL, 100 ms) slept %.3f ms", MS(el));
    CHECK(tv.tv_sec == 0 && tv.tv_usec == 0, "timeval after the sleep: %ld.%06ld", (long)tv.tv_sec, (long)tv.tv_usec);
    tv = (struct timeval){0, 0};
    t0 = now_ns();
    r = select(0, NULL, NULL, NULL, &tv);
    el = now_ns() - t0;
    CHECK(r == 0 && el < 50000000, "select with a zero timeval returned %d after %.1f ms", r, MS(el));
}

/* nfds limits which fds are looked at. */
static void test_nfds(void)
{
    int lo[2], hi[2];
    unix_pair(lo, SOCK_STREAM);
    unix_pair(hi, SOCK_STREAM);
    int a = hi[0] > hi[1] ? hi[0] : hi[1], b = lo[0];
    int peer = a == hi[0] ? hi[1] : hi[0];
    CHECK(a > b, "fd numbers %d, %d", a, b);
    CHECK(write(peer, "x", 1) == 1, "write");
    fd_set rs;
    FD_ZERO(&rs);
    FD_SET(a, &rs);
    FD_SET(b, &rs);
    struct timeval tv = {0, 50000};
    int64_t t0 = now_ns();
    int r = select(a, &rs, NULL, NULL, &tv); /* a is not below nfds */
    int64_t el = now_ns() - t0;
    CHECK(r == 0, "select(nfds %d) with only fd %d readable returned %d", a, a, r);
    CHECK(!FD_ISSET(b, &rs), "fd %d still set after a timeout", b);
    CHECK(el >= 50000000 && el < 1000000000, "select(50 ms) took %.3f ms", MS(el));
    FD_ZERO(&rs);
    FD_SET(a, &rs);
    FD_SET(b, &rs);
    tv = (struct timeval){1, 0};
    r = select(a + 1, &rs, NULL, NULL, &tv);
    CHECK(r == 1 && FD_ISSET(a, &rs) && !FD_ISSET(b, &rs), "select(nfds %d): returned %d, fd %d %s, fd %d %s", a + 1,
          r, a, FD_ISSET(a, &rs) ? "set" : "clear", b, FD_ISSET(b, &rs) ? "set" : "clear");

    /* nfds 0: no fd is looked at and no set is written back. */
    FD_ZERO(&rs);
    FD_SET(a, &rs);
    FD_SET(b, &rs);
    tv = (struct timeval){0, 50000};
    t0 = now_ns();
    r = select(0, &rs, NULL, NULL, &tv);
    el = now_ns() - t0;
    CHECK(r == 0 && el >= 50000000, "select(nfds 0, 50 ms) returned %d after %.3f ms", r, MS(el));
    CHECK(FD_ISSET(a, &rs) && FD_ISSET(b, &rs), "select(nfds 0) changed the read set: fd %d %s, fd %d %s", a,
          FD_ISSET(a, &rs) ? "set" : "clear", b, FD_ISSET(b, &rs) ? "set" : "clear");
    close(lo[0]);
    close(lo[1]);
    close(hi[0]);
    close(hi[1]);
}

/* A closed fd in any set: -1/EBADF at once, sets untouched. */
static void test_ebadf(void)
{
    int sv[2];
    unix_pair(sv, SOCK_STREAM);
    CHECK(write(sv[1], "x", 1) == 1, "write");
    int bad = closed_fd();
    int nfds = (bad > sv[0] ? bad : sv[0]) + 1;
    for (int which = 0; which < 3; which++) {
        fd_set sets[3];
        for (int i = 0; i < 3; i++) FD_ZERO(&sets[i]);
        FD_SET(bad, &sets[which]);
        FD_SET(sv[0], &sets[0]); /* readable */
        int64_t t0 = now_ns();
        errno = 0;
        int r = select(nfds, &sets[0], &sets[1], &sets[2], NULL);
        int e = errno;
        int64_t el = now_ns() - t0;
        CHECK(r == -1 && e == EBADF, "closed fd %d in set %d: returned %d errno %d, expected -1 EBADF", bad, which, r,
              e);
        CHECK(el < 50000000, "EBADF took %.1f ms", MS(el));
        CHECK(FD_ISSET(bad, &sets[which]) && FD_ISSET(sv[0], &sets[0]), "EBADF: sets were changed");
    }
    close(sv[0]);
    close(sv[1]);
}

static void test_einval(void)
{
    struct timeval tv = {0, 50000};
    errno = 0;
    int r = select(-1, NULL, NULL, NULL, &tv);
    CHECK(r == -1 && errno == EINVAL, "select(nfds -1): returned %d errno %d", r, errno);
    tv = (struct timeval){0, -1};
    errno = 0;
    r = select(0, NULL, NULL, NULL, &tv);
    CHECK(r == -1 && errno == EINVAL, "select(tv_usec -1): returned %d errno %d", r, errno);
    tv = (struct timeval){-1, 0};
    errno = 0;
    r = select(0, NULL, NULL, NULL, &tv);
    CHECK(r == -1 && errno == EINVAL, "select(tv_sec -1): returned %d errno %d", r, errno);
    struct timespec ts = {0, 1000000000};
    errno = 0;
    r = pselect(0, NULL, NULL, NULL, &ts, NULL);
    CHECK(r == -1 && errno == EINVAL, "pselect(tv_nsec 1e9): returned %d errno %d", r, errno);
    /* errno is left alone on success. */
    tv = (struct timeval){0, 10000};
    errno = 1234;
    r = select(0, NULL, NULL, NULL, &tv);
    CHECK(r == 0 && errno == 1234, "select timeout: returned %d, errno changed to %d", r, errno);
}

/* TCP urgent data: exceptional, not readable. */
static void test_except(void)
{
    int a, b;
    tcp_pair(&a, &b);
    fd_set rs, xs;
    FD_ZERO(&rs);
    FD_ZERO(&xs);
    FD_SET(b, &rs);
    FD_SET(b, &xs);
    struct timeval tv = {2, 0};
    struct delayed d;
    int64_t t0 = now_ns();
    start_delayed(&d, 50, ACT_OOB, a);
    int r = select(b + 1, &rs, NULL, &xs, &tv);
    int64_t t1 = now_ns();
    join(d.thread);
    CHECK(r == 1 && FD_ISSET(b, &xs) && !FD_ISSET(b, &rs),
          "urgent data after 50 ms: returned %d after %.1f ms, read %s, except %s (expected 1, clear, set)", r,
          MS(t1 - t0), FD_ISSET(b, &rs) ? "set" : "clear", FD_ISSET(b, &xs) ? "set" : "clear");
    CHECK(t1 - t0 < 1000000000, "select took %.1f ms", MS(t1 - t0));
    char c;
    CHECK(recv(b, &c, 1, MSG_OOB) == 1 && c == '!', "recv(MSG_OOB)");
    /* Ordinary data: readable, not exceptional. */
    FD_ZERO(&rs);
    FD_ZERO(&xs);
    FD_SET(b, &rs);
    FD_SET(b, &xs);
    start_delayed(&d, 50, ACT_WRITE, a);
    r = select(b + 1, &rs, NULL, &xs, NULL);
    join(d.thread);
    CHECK(r == 1 && FD_ISSET(b, &rs) && !FD_ISSET(b, &xs), "ordinary data: returned %d, read %s, except %s", r,
          FD_ISSET(b, &rs) ? "set" : "clear", FD_ISSET(b, &xs) ? "set" : "clear");
    close(a);
    close(b);
}

/* Readable/writable edge conditions: EOF, hang-up, broken pipe, drained
 * pipe, pending connection, O_NONBLOCK. */
static void test_conditions(void)
{
    struct delayed d;
    int pp[2], sv[2];
    fd_set rs, ws;

    CHECK(pipe(pp) == 0, "pipe");
    FD_ZERO(&rs);
    FD_SET(pp[0], &rs);
    start_delayed(&d, 50, ACT_CLOSE, pp[1]);
    int r = select(pp[0] + 1, &rs, NULL, NULL, NULL);
    join(d.thread);
    CHECK(r == 1 && FD_ISSET(pp[0], &rs), "pipe writer closed: returned %d", r);
    close(pp[0]);

    unix_pair(sv, SOCK_STREAM);
    FD_ZERO(&rs);
    FD_SET(sv[0], &rs);
    start_delayed(&d, 50, ACT_CLOSE, sv[1]);
    r = select(sv[0] + 1, &rs, NULL, NULL, NULL);
    join(d.thread);
    CHECK(r == 1 && FD_ISSET(sv[0], &rs), "peer closed: returned %d", r);
    close(sv[0]);

    full_pipe(pp);
    FD_ZERO(&ws);
    FD_SET(pp[1], &ws);
    d.n = 4096;
    start_delayed(&d, 50, ACT_DRAIN, pp[0]);
    r = select(pp[1] + 1, NULL, &ws, NULL, NULL);
    int64_t t1 = now_ns();
    join(d.thread);
    CHECK(r == 1 && FD_ISSET(pp[1], &ws), "drained pipe: returned %d", r);
    CHECK(t1 >= d.at_ns, "drained pipe: select returned before the reader read");
    close(pp[0]);
    close(pp[1]);

    full_pipe(pp);
    FD_ZERO(&ws);
    FD_SET(pp[1], &ws);
    start_delayed(&d, 50, ACT_CLOSE, pp[0]);
    struct timeval tv = {2, 0};
    r = select(pp[1] + 1, NULL, &ws, NULL, &tv);
    join(d.thread);
    CHECK(r == 1 && FD_ISSET(pp[1], &ws), "full pipe, reader closed: returned %d", r);
    close(pp[1]);

    int l = tcp_listener(&d.addr, 16);
    FD_ZERO(&rs);
    FD_SET(l, &rs);
    start_delayed(&d, 50, ACT_CONNECT, -1);
    r = select(l + 1, &rs, NULL, NULL, NULL);
    t1 = now_ns();
    join(d.thread);
    CHECK(r == 1 && FD_ISSET(l, &rs), "pending connection: returned %d", r);
    CHECK(t1 >= d.at_ns, "select returned before connect() was called");
    int c = accept(l, NULL, NULL);
    CHECK(c >= 0, "accept");
    close(c);
    close(d.made_fd);
    close(l);

    unix_pair(sv, SOCK_STREAM | SOCK_NONBLOCK);
    FD_ZERO(&rs);
    FD_SET(sv[0], &rs);
    int64_t t0 = now_ns();
    start_delayed(&d, 50, ACT_WRITE, sv[1]);
    r = select(sv[0] + 1, &rs, NULL, NULL, NULL);
    t1 = now_ns();
    join(d.thread);
    CHECK(r == 1 && FD_ISSET(sv[0], &rs), "non-blocking socket: returned %d", r);
    CHECK(t1 >= d.at_ns && t1 - t0 >= 40000000, "non-blocking socket: select returned after %.1f ms, before the write",
          MS(t1 - t0));
    close(sv[0]);
    close(sv[1]);
}

static void test_pselect(void)
{
    int sv[2];
    unix_pair(sv, SOCK_STREAM);
    fd_set rs;
    FD_ZERO(&rs);
    FD_SET(sv[0], &rs);
    struct timespec ts = {0, 100000000};
    int64_t t0 = now_ns();
    int r = pselect(sv[0] + 1, &rs, NULL, NULL, &ts, NULL);
    int64_t el = now_ns() - t0;
    CHECK(r == 0 && !FD_ISSET(sv[0], &rs), "pselect(100 ms): returned %d", r);
    CHECK(el >= 100000000 && el < 1000000000, "pselect(100 ms) took %.3f ms", MS(el));
    CHECK(ts.tv_sec == 0 && ts.tv_nsec == 100000000, "pselect changed the caller's timespec to %ld.%09ld",
          (long)ts.tv_sec, ts.tv_nsec);

    struct delayed d;
    FD_SET(sv[0], &rs);
    ts = (struct timespec){3, 0};
    t0 = now_ns();
    start_delayed(&d, 50, ACT_WRITE, sv[1]);
    r = pselect(sv[0] + 1, &rs, NULL, NULL, &ts, NULL);
    int64_t t1 = now_ns();
    join(d.thread);
    CHECK(r == 1 && FD_ISSET(sv[0], &rs), "pselect(3 s), data after 50 ms: returned %d", r);
    CHECK(t1 >= d.at_ns && t1 - t0 < 1000000000, "pselect returned after %.1f ms", MS(t1 - t0));
    CHECK(ts.tv_sec == 3 && ts.tv_nsec == 0, "pselect changed the caller's timespec");
    discard_exact(sv[0], 1);

    /* NULL timeout and an (empty) signal mask: waits until data. */
    sigset_t none;
    sigemptyset(&none);
    FD_SET(sv[0], &rs);
    start_delayed(&d, 50, ACT_WRITE, sv[1]);
    r = pselect(sv[0] + 1, &rs, NULL, NULL, NULL, &none);
    t1 = now_ns();
    join(d.thread);
    CHECK(r == 1 && FD_ISSET(sv[0], &rs), "pselect(NULL): returned %d", r);
    CHECK(t1 >= d.at_ns, "pselect(NULL) returned before the write");
    discard_exact(sv[0], 1);

    /* A sleep, and a zero timeout. */
    ts = (struct timespec){0, 100000000};
    t0 = now_ns();
    r = pselect(0, NULL, NULL, NULL, &ts, NULL);
    el = now_ns() - t0;
    CHECK(r == 0 && el >= 100000000 && el < 1000000000, "pselect(0, NULL..., 100 ms): %d after %.3f ms", r, MS(el));
    ts = (struct timespec){0, 0};
    FD_SET(sv[0], &rs);
    t0 = now_ns();
    r = pselect(sv[0] + 1, &rs, NULL, NULL, &ts, NULL);
    el = now_ns() - t0;
    CHECK(r == 0 && !FD_ISSET(sv[0], &rs) && el < 50000000, "pselect({0,0}): %d after %.1f ms", r, MS(el));
    close(sv[0]);
    close(sv[1]);
}

/* Several threads select on one fd; a single write wakes every one. */
#define SAME_FD_SELECTORS 6
static int g_same_fd;
static struct gate g_same_gate;
struct same_result {
    int r, isset;
    int64_t done;
};
static struct same_result g_same[SAME_FD_SELECTORS];

static void *same_fd_selector(void *arg)
{
    struct same_result *res = arg;
    gate_wait(&g_same_gate);
    fd_set rs;
    FD_ZERO(&rs);
    FD_SET(g_same_fd, &rs);
    struct timeval tv = {5, 0};
    res->r = select(g_same_fd + 1, &rs, NULL, NULL, &tv);
    res->isset = FD_ISSET(g_same_fd, &rs) != 0;
    res->done = now_ns();
    return NULL;
}

static void test_same_fd(void)
{
    int sv[2];
    unix_pair(sv, SOCK_STREAM);
    g_same_fd = sv[0];
    gate_init(&g_same_gate, SAME_FD_SELECTORS + 1);
    pthread_t t[SAME_FD_SELECTORS];
    for (int i = 0; i < SAME_FD_SELECTORS; i++) t[i] = spawn(same_fd_selector, &g_same[i]);
    gate_wait(&g_same_gate);
    sleep_ms(80);
    int64_t at = now_ns();
    CHECK(write(sv[1], "x", 1) == 1, "write");
    for (int i = 0; i < SAME_FD_SELECTORS; i++) join(t[i]);
    for (int i = 0; i < SAME_FD_SELECTORS; i++) {
        CHECK(g_same[i].r == 1 && g_same[i].isset, "selector %d: returned %d, fd %s", i, g_same[i].r,
              g_same[i].isset ? "set" : "clear");
        CHECK(g_same[i].done >= at && g_same[i].done - at < 1000000000, "selector %d returned %.1f ms after the write",
              i, MS(g_same[i].done - at));
    }
    gate_destroy(&g_same_gate);
    close(sv[0]);
    close(sv[1]);
}

/* 30 threads select at once with timeouts 15, 30, ... 450 ms: each returns 0
 * at its own time, never early, at most 300 ms late. Even threads watch an
 * idle socket, odd ones pass no sets (a sleep). */
#define STAGGERED 30
static int g_idle_fd;
static struct gate g_stagger_gate;
struct stagger {
    int timeout_ms;
    int r;
    int64_t elapsed;
};
static struct stagger g_stagger[STAGGERED];

static void *staggered_selector(void *arg)
{
    struct stagger *s = arg;
    int idx = (int)(s - g_stagger);
    fd_set rs;
    FD_ZERO(&rs);
    FD_SET(g_idle_fd, &rs);
    struct timeval tv = {s->timeout_ms / 1000, (s->timeout_ms % 1000) * 1000};
    gate_wait(&g_stagger_gate);
    int64_t t0 = now_ns();
    s->r = (idx % 2 == 0) ? select(g_idle_fd + 1, &rs, NULL, NULL, &tv) : select(0, NULL, NULL, NULL, &tv);
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
        g_stagger[i].timeout_ms = 15 * (i + 1);
        t[i] = spawn(staggered_selector, &g_stagger[i]);
    }
    for (int i = 0; i < STAGGERED; i++) join(t[i]);
    for (int i = 0; i < STAGGERED; i++) {
        const struct stagger *s = &g_stagger[i];
        const int64_t want = (int64_t)s->timeout_ms * 1000000;
        const char *what = i % 2 ? "no sets" : "idle socket";
        CHECK(s->r == 0, "thread %d (%s, %d ms): returned %d", i, what, s->timeout_ms, s->r);
        CHECK(s->elapsed >= want, "thread %d (%s): select(%d ms) returned early, after %.3f ms", i, what,
              s->timeout_ms, MS(s->elapsed));
        CHECK(s->elapsed < want + 300000000, "thread %d (%s): select(%d ms) returned late, after %.3f ms", i, what,
              s->timeout_ms, MS(s->elapsed));
    }
    gate_destroy(&g_stagger_gate);
    close(sv[0]);
    close(sv[1]);
}

int main(void)
{
    watchdog(30);
    fprintf(stderr, "t_select: running %s\n", is_shim() ? "under greenld" : "natively");

    set_phase("main thread: select sleep");
    {
        struct timeval tv = {0, 50000};
        int64_t t0 = now_ns();
        int r = select(0, NULL, NULL, NULL, &tv);
        int64_t el = now_ns() - t0;
        CHECK(r == 0 && el >= 50000000, "main: select(50 ms) returned %d after %.3f ms", r, MS(el));
    }

    run_in_created_thread("readable after 50 ms, timeval updated", test_readable_later);
    run_in_created_thread("returned sets hold exactly the ready fds", test_exact_sets);
    run_in_created_thread("timeout 100 ms, nothing ready", test_timeout);
    run_in_created_thread("select as a sleep", test_sleep);
    run_in_created_thread("nfds limits the fds looked at", test_nfds);
    run_in_created_thread("closed fd: EBADF", test_ebadf);
    run_in_created_thread("EINVAL", test_einval);
    run_in_created_thread("exceptional: TCP urgent data", test_except);
    run_in_created_thread("EOF, hang-up, broken pipe, listener, O_NONBLOCK", test_conditions);
    run_in_created_thread("pselect", test_pselect);
    run_in_created_thread("several threads select on one fd", test_same_fd);
    run_in_created_thread("30 threads, staggered timeouts", test_staggered);

    fprintf(stderr, "t_select: all checks passed\n");
    return 0;
}
