/*
 * t_epoll_loops — hazard 4: programs that run their own epoll event loops
 * (nginx, redis, memcached's libevent workers) keep working when every loop
 * thread is converted, even when all of them share one OS thread.
 *
 * Part 1, the epoll API from a created thread, as Linux does it (measured
 * on this machine's 6.x kernel; the checks assert exactly this):
 *  - epoll_wait/epoll_pwait(NULL mask)/epoll_pwait2(timespec) return 0
 *    after at least the timeout; epoll_pwait2({0,0}) at once;
 *    epoll_pwait2(NULL) and epoll_wait(-1) wait for an event.
 *  - Level-triggered reports a ready fd again and again; EPOLLET once per
 *    edge; EPOLLONESHOT once until EPOLL_CTL_MOD re-arms it.
 *  - EPOLLHUP is reported even when not asked for (events 0).
 *  - maxevents smaller than the ready list: level-triggered fds are
 *    reported round robin, so successive calls see all of them.
 *  - maxevents <= 0 and a non-epoll fd are EINVAL, a closed fd EBADF,
 *    tv_nsec >= 1e9 EINVAL, all at once even with an infinite timeout.
 *  - An epoll fd is itself pollable (poll, and nested in another epoll set).
 *  - An eventfd written by another thread wakes epoll_wait(-1).
 *
 * Part 2, concurrent event loops. Four created threads each run an event
 * loop of their own (epoll_create1; a non-blocking listening socket, an
 * eventfd and client connections added with EPOLL_CTL_ADD):
 *     loop 0  level-triggered  epoll_wait                  busy timeout -1
 *     loop 1  level-triggered  epoll_pwait(NULL mask)      100 ms, 3 events per call
 *     loop 2  EPOLLET          epoll_pwait2(timespec)      100 ms
 *     loop 3  EPOLLET          epoll_pwait2(NULL timespec) -1
 *     loop 4  level-triggered  epoll_pwait(NULL mask) in the MAIN thread
 *             (native under the shim), -1
 * A loop waits 100 ms whenever it has no connection, its busy timeout
 * otherwise. Level-triggered loops read once per event and turn EPOLLOUT
 * on with EPOLL_CTL_MOD only while output is pending; edge-triggered loops
 * register EPOLLIN|EPOLLOUT|EPOLLET once and read/write until EAGAIN.
 * Each worker loop serves 50 connections: 25 it accepts itself and 25 that
 * a dispatcher thread accepts (blocking accept) and hands over through a
 * queue and the loop's eventfd, memcached style. Eight client threads hold
 * 25 connections each, spread over all four loops, and do 10 rounds of
 * pipelined request/response (a request on every connection, then every
 * response), sizes 1 B to 80 KB so that responses outgrow the socket
 * buffer and need EPOLLOUT. Every response is verified (connection tag,
 * sequence number, the loop that served it, payload). A ninth client
 * drives the main thread's loop the same way at the same time. Because
 * every client round needs an answer from every loop, no loop can finish
 * unless all make progress concurrently.
 *
 * The controller checks, besides the traffic:
 *  - quiet phase (all connections open, no traffic, 200 ms): the -1 loops
 *    never time out, the 100 ms loops do; then a ping through each loop's
 *    eventfd is answered within 80 ms, so the eventfd woke a loop blocked
 *    in epoll_wait(-1).
 *  - idle phase (all connections closed, 400 ms): every loop counts at
 *    least two 100 ms timeouts, none shorter than 100 ms; pings again.
 *  - exact totals per loop: connections accepted/adopted/closed, requests.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "test_support.h"
#include "delayed_action.h"

#define MS(ns) ((double)(ns) / 1e6)

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x | 1;
}

static void epoll_add(int ep, int fd, uint32_t events, uint64_t data)
{
    struct epoll_event ev = {.events = events, .data.u64 = data};
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0, "EPOLL_CTL_ADD fd %d events %#x", fd, events);
}

static void drain1(int fd)
{
    char c;
    CHECK(read(fd, &c, 1) == 1, "read 1 byte from fd %d", fd);
}

/* ---- part 1: the epoll API ---------------------------------------------- */

static void check_timeout_took(int64_t el, int ms, const char *what)
{
    CHECK(el >= (int64_t)ms * 1000000, "%s returned early, after %.3f ms of %d", what, MS(el), ms);
    CHECK(el < (int64_t)ms * 1000000 + 1000000000, "%s returned after %.3f ms of %d", what, MS(el), ms);
}

static void test_api_timeouts(void)
{
    int sv[2];
    unix_pair(sv, SOCK_STREAM);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    CHECK(ep >= 0, "epoll_create1");
    epoll_add(ep, sv[0], EPOLLIN, 7);
    struct epoll_event ev[4];

    int64_t t0 = now_ns();
    int r = epoll_wait(ep, ev, 4, 100);
    int64_t el = now_ns() - t0;
    CHECK(r == 0, "epoll_wait(100 ms), nothing ready: returned %d", r);
    check_timeout_took(el, 100, "epoll_wait(100 ms)");

    t0 = now_ns();
    r = epoll_pwait(ep, ev, 4, 100, NULL);
    el = now_ns() - t0;
    CHECK(r == 0, "epoll_pwait(100 ms, NULL mask): returned %d", r);
    check_timeout_took(el, 100, "epoll_pwait(100 ms, NULL)");

    struct timespec ts = {0, 100000000};
    t0 = now_ns();
    r = epoll_pwait2(ep, ev, 4, &ts, NULL);
    el = now_ns() - t0;
    CHECK(r == 0, "epoll_pwait2({0, 100 ms}): returned %d", r);
    check_timeout_took(el, 100, "epoll_pwait2({0, 100 ms})");
    CHECK(ts.tv_sec == 0 && ts.tv_nsec == 100000000, "epoll_pwait2 changed the timespec");

    ts = (struct timespec){0, 0};
    t0 = now_ns();
    r = epoll_pwait2(ep, ev, 4, &ts, NULL);
    el = now_ns() - t0;
    CHECK(r == 0 && el < 50000000, "epoll_pwait2({0,0}): returned %d after %.1f ms", r, MS(el));
    t0 = now_ns();
    r = epoll_wait(ep, ev, 4, 0);
    el = now_ns() - t0;
    CHECK(r == 0 && el < 50000000, "epoll_wait(0): returned %d after %.1f ms", r, MS(el));

    /* Woken by data: epoll_wait(-1), epoll_pwait(-1, NULL), epoll_pwait2(NULL). */
    for (int api = 0; api < 3; api++) {
        struct delayed d;
        memset(ev, 0, sizeof ev);
        t0 = now_ns();
        start_delayed(&d, 50, ACT_WRITE, sv[1]);
        r = api == 0 ? epoll_wait(ep, ev, 4, -1)
            : api == 1 ? epoll_pwait(ep, ev, 4, -1, NULL)
                       : epoll_pwait2(ep, ev, 4, NULL, NULL);
        int64_t t1 = now_ns();
        join(d.thread);
        CHECK(r == 1 && ev[0].events == EPOLLIN && ev[0].data.u64 == 7,
              "api %d woken by data: returned %d, events %#x data %llu", api, r, ev[0].events,
              (unsigned long long)ev[0].data.u64);
        CHECK(t1 >= d.at_ns && t1 - t0 < 1000000000, "api %d: returned after %.1f ms, write at 50 ms", api,
              MS(t1 - t0));
        drain1(sv[0]);
    }

    /* errno is left alone by a timeout. */
    errno = 1234;
    r = epoll_wait(ep, ev, 4, 10);
    CHECK(r == 0 && errno == 1234, "epoll_wait timeout: returned %d, errno changed to %d", r, errno);
    close(ep);
    close(sv[0]);
    close(sv[1]);
}

static void test_api_triggers(void)
{
    int a[2], b[2], c[2];
    unix_pair(a, SOCK_STREAM);
    unix_pair(b, SOCK_STREAM);
    unix_pair(c, SOCK_STREAM);
    int ep = epoll_create1(0);
    CHECK(ep >= 0, "epoll_create1");
    epoll_add(ep, a[0], EPOLLIN, 1);                  /* level */
    epoll_add(ep, b[0], EPOLLIN | EPOLLET, 2);        /* edge */
    epoll_add(ep, c[0], EPOLLIN | EPOLLONESHOT, 3);   /* one shot */
    struct epoll_event ev[8];

    /* Edge: one report per write, none while nothing new arrives. */
    struct delayed d;
    start_delayed(&d, 50, ACT_WRITE, b[1]);
    int r = epoll_wait(ep, ev, 8, 2000);
    join(d.thread);
    CHECK(r == 1 && ev[0].data.u64 == 2 && ev[0].events == EPOLLIN, "edge: returned %d data %llu events %#x", r,
          (unsigned long long)ev[0].data.u64, ev[0].events);
    int64_t t0 = now_ns();
    r = epoll_wait(ep, ev, 8, 100);
    int64_t el = now_ns() - t0;
    CHECK(r == 0, "edge, no new data: returned %d (data %llu)", r, (unsigned long long)ev[0].data.u64);
    check_timeout_took(el, 100, "edge: epoll_wait(100 ms) without a new edge");
    start_delayed(&d, 30, ACT_WRITE, b[1]);
    r = epoll_wait(ep, ev, 8, 2000);
    join(d.thread);
    CHECK(r == 1 && ev[0].data.u64 == 2, "edge, second write: returned %d data %llu", r,
          (unsigned long long)ev[0].data.u64);
    drain1(b[0]);
    drain1(b[0]);

    /* One shot: one report, then nothing until re-armed. */
    start_delayed(&d, 30, ACT_WRITE, c[1]);
    r = epoll_wait(ep, ev, 8, 2000);
    join(d.thread);
    CHECK(r == 1 && ev[0].data.u64 == 3 && ev[0].events == EPOLLIN, "oneshot: returned %d data %llu events %#x", r,
          (unsigned long long)ev[0].data.u64, ev[0].events);
    t0 = now_ns();
    r = epoll_wait(ep, ev, 8, 100);
    el = now_ns() - t0;
    CHECK(r == 0, "oneshot, still readable but disarmed: returned %d", r);
    check_timeout_took(el, 100, "oneshot: epoll_wait(100 ms) while disarmed");
    struct epoll_event mod = {.events = EPOLLIN | EPOLLONESHOT, .data.u64 = 3};
    CHECK(epoll_ctl(ep, EPOLL_CTL_MOD, c[0], &mod) == 0, "EPOLL_CTL_MOD re-arm");
    r = epoll_wait(ep, ev, 8, 2000);
    CHECK(r == 1 && ev[0].data.u64 == 3, "oneshot re-armed: returned %d data %llu", r,
          (unsigned long long)ev[0].data.u64);
    drain1(c[0]);

    /* Level: reported on every call while readable. */
    start_delayed(&d, 30, ACT_WRITE, a[1]);
    r = epoll_wait(ep, ev, 8, 2000);
    join(d.thread);
    CHECK(r == 1 && ev[0].data.u64 == 1, "level: returned %d data %llu", r, (unsigned long long)ev[0].data.u64);
    for (int i = 0; i < 3; i++) {
        r = epoll_wait(ep, ev, 8, 2000);
        CHECK(r == 1 && ev[0].data.u64 == 1, "level, still readable, call %d: returned %d", i, r);
    }
    drain1(a[0]);

    /* Hang-up is reported even with events 0. */
    int h[2];
    unix_pair(h, SOCK_STREAM);
    epoll_add(ep, h[0], 0, 4);
    start_delayed(&d, 50, ACT_CLOSE, h[1]);
    t0 = now_ns();
    r = epoll_wait(ep, ev, 8, 2000);
    el = now_ns() - t0;
    join(d.thread);
    CHECK(r == 1 && ev[0].data.u64 == 4 && ev[0].events == EPOLLHUP,
          "events 0, peer closed: returned %d data %llu events %#x after %.1f ms", r,
          (unsigned long long)ev[0].data.u64, ev[0].events, MS(el));
    CHECK(el < 1000000000, "EPOLLHUP took %.1f ms", MS(el));
    CHECK(epoll_ctl(ep, EPOLL_CTL_DEL, h[0], NULL) == 0, "EPOLL_CTL_DEL");
    close(h[0]);

    /* maxevents below the number ready: round robin over calls. */
    int many[5][2];
    int ep2 = epoll_create1(0);
    CHECK(ep2 >= 0, "epoll_create1");
    for (int i = 0; i < 5; i++) {
        unix_pair(many[i], SOCK_STREAM);
        epoll_add(ep2, many[i][0], EPOLLIN, 100 + (uint64_t)i);
        CHECK(write(many[i][1], "x", 1) == 1, "write");
    }
    unsigned seen = 0;
    for (int call = 0; call < 3; call++) {
        r = epoll_wait(ep2, ev, 2, -1);
        CHECK(r == 2, "maxevents 2 with 5 ready, call %d: returned %d", call, r);
        for (int i = 0; i < r; i++) {
            CHECK(ev[i].data.u64 >= 100 && ev[i].data.u64 < 105, "bad data %llu", (unsigned long long)ev[i].data.u64);
            seen |= 1u << (ev[i].data.u64 - 100);
        }
    }
    CHECK(seen == 0x1f, "3 calls with maxevents 2 saw fds %#x of 0x1f", seen);
    for (int i = 0; i < 5; i++) {
        close(many[i][0]);
        close(many[i][1]);
    }
    close(ep2);
    close(ep);
    close(a[0]), close(a[1]), close(b[0]), close(b[1]), close(c[0]), close(c[1]);
}

static void test_api_errors(void)
{
    int sv[2];
    unix_pair(sv, SOCK_STREAM);
    int ep = epoll_create1(0);
    CHECK(ep >= 0, "epoll_create1");
    struct epoll_event ev[2];
    int bad = closed_fd();
    struct {
        const char *what;
        int fd, max, err;
    } cases[] = {
        {"maxevents 0", ep, 0, EINVAL},
        {"maxevents -1", ep, -1, EINVAL},
        {"not an epoll fd", sv[0], 2, EINVAL},
        {"closed fd", bad, 2, EBADF},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (int api = 0; api < 3; api++) {
            int64_t t0 = now_ns();
            errno = 0;
            int r = api == 0 ? epoll_wait(cases[i].fd, ev, cases[i].max, -1)
                : api == 1 ? epoll_pwait(cases[i].fd, ev, cases[i].max, -1, NULL)
                           : epoll_pwait2(cases[i].fd, ev, cases[i].max, NULL, NULL);
            int e = errno;
            int64_t el = now_ns() - t0;
            CHECK(r == -1 && e == cases[i].err, "%s, api %d: returned %d errno %d, expected -1 errno %d",
                  cases[i].what, api, r, e, cases[i].err);
            CHECK(el < 50000000, "%s, api %d: took %.1f ms", cases[i].what, api, MS(el));
        }
    }
    struct timespec ts = {0, 1000000000};
    errno = 0;
    int r = epoll_pwait2(ep, ev, 2, &ts, NULL);
    CHECK(r == -1 && errno == EINVAL, "epoll_pwait2(tv_nsec 1e9): returned %d errno %d", r, errno);
    close(ep);
    close(sv[0]);
    close(sv[1]);
}

/* An epoll fd is pollable, and nests in another epoll set; an eventfd
 * written by another thread wakes epoll_wait(-1). */
static void test_api_nesting(void)
{
    int sv[2];
    unix_pair(sv, SOCK_STREAM);
    int inner = epoll_create1(0), outer = epoll_create1(0);
    CHECK(inner >= 0 && outer >= 0, "epoll_create1");
    epoll_add(inner, sv[0], EPOLLIN, 11);
    epoll_add(outer, inner, EPOLLIN, 22);

    struct delayed d;
    struct pollfd p = {inner, POLLIN, 0};
    start_delayed(&d, 50, ACT_WRITE, sv[1]);
    int r = poll(&p, 1, -1);
    int64_t t1 = now_ns();
    join(d.thread);
    CHECK(r == 1 && p.revents == POLLIN, "poll on an epoll fd: returned %d revents %#x", r, p.revents);
    CHECK(t1 >= d.at_ns, "poll on an epoll fd returned before the write");
    drain1(sv[0]);

    struct epoll_event ev[2];
    start_delayed(&d, 50, ACT_WRITE, sv[1]);
    r = epoll_wait(outer, ev, 2, -1);
    t1 = now_ns();
    join(d.thread);
    CHECK(r == 1 && ev[0].data.u64 == 22 && ev[0].events == EPOLLIN, "nested epoll: returned %d data %llu events %#x",
          r, (unsigned long long)ev[0].data.u64, ev[0].events);
    CHECK(t1 >= d.at_ns, "nested epoll returned before the write");
    r = epoll_wait(inner, ev, 2, 0);
    CHECK(r == 1 && ev[0].data.u64 == 11, "inner epoll: returned %d", r);
    drain1(sv[0]);

    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    CHECK(efd >= 0, "eventfd");
    epoll_add(outer, efd, EPOLLIN, 33);
    start_delayed(&d, 50, ACT_EVENTFD, efd);
    r = epoll_wait(outer, ev, 2, -1);
    t1 = now_ns();
    join(d.thread);
    CHECK(r == 1 && ev[0].data.u64 == 33, "eventfd: returned %d data %llu", r, (unsigned long long)ev[0].data.u64);
    CHECK(t1 >= d.at_ns, "eventfd wake-up before the write");
    uint64_t v;
    CHECK(read(efd, &v, 8) == 8 && v == 1, "eventfd read");
    close(efd);
    close(outer);
    close(inner);
    close(sv[0]);
    close(sv[1]);
}

/* ---- part 2: concurrent event loops ------------------------------------- */

#define NWORKERS 4
#define MAIN_LOOP NWORKERS /* index of the main thread's loop */
#define NLOOPS (NWORKERS + 1)
#define CONNS_PER_WORKER 50
#define NCLIENTS 8
#define CONNS_PER_CLIENT (NWORKERS * CONNS_PER_WORKER / NCLIENTS) /* 25 */
#define MAIN_CONNS 25
#define ROUNDS 10
#define NDISPATCHED (NWORKERS * CONNS_PER_WORKER / 2)
#define REQ_MAGIC 0x31514552u /* "REQ1" */
#define RSP_MAGIC 0x31505352u /* "RSP1" */
#define REQ_HDR 16
#define RSP_HDR 20
#define MAX_PAYLOAD 80000

enum api { API_WAIT, API_PWAIT, API_PWAIT2 };
static const char *const api_names[] = {"epoll_wait", "epoll_pwait", "epoll_pwait2"};

struct loop_cfg {
    int et;
    enum api api;
    int busy_timeout_ms;
    int maxevents;
    int direct, dispatched; /* connections it must serve */
};
static const struct loop_cfg g_cfg[NLOOPS] = {
    {0, API_WAIT, -1, 64, 25, 25},
    {0, API_PWAIT, 100, 3, 25, 25},
    {1, API_PWAIT2, 100, 16, 25, 25},
    {1, API_PWAIT2, -1, 64, 25, 25},
    {0, API_PWAIT, -1, 32, MAIN_CONNS, 0},
};

struct conn {
    int fd;
    int tagged;
    uint32_t tag, served;
    uint8_t *in;
    size_t in_len, in_cap;
    uint8_t *out;
    size_t out_len, out_off, out_cap;
    int out_armed; /* level-triggered: EPOLLOUT currently on */
};

#define TAG_LISTENER 1
#define TAG_EVENTFD 2

struct loop {
    int id;
    const struct loop_cfg *cfg;
    int epfd, lfd, efd;
    struct sockaddr_in addr;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int queue[NDISPATCHED];
    int qhead, qtail;
    unsigned ping_req, ping_ack;
    int stop;
    atomic_int open_conns, accepted, adopted, closed_conns, in_wait;
    atomic_long served, timeouts, wakeups, partial_sends;
    pthread_t thread;
};
static struct loop g_loops[NLOOPS];

static const char *loop_kind(const struct loop *L) { return L->cfg->et ? "EPOLLET" : "level"; }

static void set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    CHECK(fl >= 0 && fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0, "fcntl O_NONBLOCK on fd %d", fd);
}

static void loop_setup(struct loop *L, int id)
{
    memset(L, 0, sizeof *L);
    L->id = id;
    L->cfg = &g_cfg[id];
    L->epfd = epoll_create1(EPOLL_CLOEXEC);
    CHECK(L->epfd >= 0, "epoll_create1");
    L->lfd = tcp_listener(&L->addr, 256);
    set_nonblock(L->lfd);
    L->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    CHECK(L->efd >= 0, "eventfd");
    uint32_t et = L->cfg->et ? EPOLLET : 0;
    epoll_add(L->epfd, L->lfd, EPOLLIN | et, TAG_LISTENER);
    epoll_add(L->epfd, L->efd, EPOLLIN | et, TAG_EVENTFD);
    CHECK(pthread_mutex_init(&L->mu, NULL) == 0, "mutex");
    CHECK(pthread_cond_init(&L->cv, NULL) == 0, "cond");
}

static void conn_register(struct loop *L, int fd)
{
    struct conn *c = calloc(1, sizeof *c);
    CHECK(c, "calloc");
    c->fd = fd;
    /* A small send buffer (and small client receive buffers) make large
     * responses outgrow the socket, so EPOLLOUT is needed. */
    int sndbuf = 8192;
    CHECK(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf) == 0, "SO_SNDBUF");
    struct epoll_event ev = {.events = L->cfg->et ? (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET) : EPOLLIN,
                             .data.ptr = c};
    CHECK(epoll_ctl(L->epfd, EPOLL_CTL_ADD, fd, &ev) == 0, "loop %d: EPOLL_CTL_ADD connection fd %d", L->id, fd);
    atomic_fetch_add(&L->open_conns, 1);
}

static void conn_close(struct loop *L, struct conn *c)
{
    CHECK(c->out_off == c->out_len, "loop %d: connection fd %d closed by the client with %zu bytes unsent", L->id,
          c->fd, c->out_len - c->out_off);
    CHECK(c->in_len == 0, "loop %d: connection fd %d closed with %zu bytes of a partial request", L->id, c->fd,
          c->in_len);
    CHECK(c->served == ROUNDS, "loop %d: connection tag %#x closed after %u requests, expected %d", L->id, c->tag,
          c->served, ROUNDS);
    CHECK(epoll_ctl(L->epfd, EPOLL_CTL_DEL, c->fd, NULL) == 0, "loop %d: EPOLL_CTL_DEL fd %d", L->id, c->fd);
    CHECK(close(c->fd) == 0, "loop %d: close", L->id);
    free(c->in);
    free(c->out);
    free(c);
    atomic_fetch_sub(&L->open_conns, 1);
    atomic_fetch_add(&L->closed_conns, 1);
}

static void reserve(uint8_t **buf, size_t *cap, size_t need)
{
    if (*cap >= need) return;
    size_t n = *cap ? *cap : 4096;
    while (n < need) n *= 2;
    *buf = realloc(*buf, n);
    CHECK(*buf, "realloc %zu", n);
    *cap = n;
}

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static uint32_t get32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Turns every complete request in c->in into a response in c->out. */
static void process_requests(struct loop *L, struct conn *c)
{
    size_t off = 0;
    while (c->in_len - off >= REQ_HDR) {
        const uint8_t *h = c->in + off;
        uint32_t magic = get32(h), tag = get32(h + 4), seq = get32(h + 8), len = get32(h + 12);
        CHECK(magic == REQ_MAGIC, "loop %d fd %d: bad request magic %#x at offset %zu", L->id, c->fd, magic, off);
        CHECK(len <= MAX_PAYLOAD, "loop %d: request length %u", L->id, len);
        if (c->in_len - off < REQ_HDR + len) break;
        if (!c->tagged) c->tag = tag, c->tagged = 1;
        CHECK(tag == c->tag, "loop %d fd %d: request for connection %#x on connection %#x (mixed up?)", L->id, c->fd,
              tag, c->tag);
        CHECK(seq == c->served, "loop %d connection %#x: request %u, expected %u", L->id, tag, seq, c->served);
        reserve(&c->out, &c->out_cap, c->out_len + RSP_HDR + len);
        uint8_t *o = c->out + c->out_len;
        put32(o, RSP_MAGIC);
        put32(o + 4, tag);
        put32(o + 8, seq);
        put32(o + 12, len);
        put32(o + 16, (uint32_t)L->id);
        for (uint32_t i = 0; i < len; i++) o[RSP_HDR + i] = h[REQ_HDR + i] ^ 0xA5;
        c->out_len += RSP_HDR + len;
        c->served++;
        atomic_fetch_add(&L->served, 1);
        off += REQ_HDR + len;
    }
    if (off) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
}

static void flush(struct loop *L, struct conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (w > 0) {
            c->out_off += (size_t)w;
            continue;
        }
        CHECK(w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK), "loop %d fd %d: send returned %zd", L->id, c->fd,
              w);
        atomic_fetch_add(&L->partial_sends, 1);
        break;
    }
    int pending = c->out_off < c->out_len;
    if (!pending) c->out_off = c->out_len = 0;
    if (!L->cfg->et && pending != c->out_armed) {
        struct epoll_event ev = {.events = EPOLLIN | (pending ? EPOLLOUT : 0), .data.ptr = c};
        CHECK(epoll_ctl(L->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0, "loop %d: EPOLL_CTL_MOD", L->id);
        c->out_armed = pending;
    }
}

/* Returns 0 if the connection was closed. */
static int conn_readable(struct loop *L, struct conn *c)
{
    for (;;) {
        reserve(&c->in, &c->in_cap, c->in_len + 4096);
        size_t room = L->cfg->et ? c->in_cap - c->in_len : 4096;
        ssize_t r = read(c->fd, c->in + c->in_len, room);
        if (r > 0) {
            c->in_len += (size_t)r;
            process_requests(L, c);
            if (!L->cfg->et) break; /* level-triggered: once per event */
            continue;
        }
        if (r == 0) {
            conn_close(L, c);
            return 0;
        }
        CHECK(errno == EAGAIN || errno == EWOULDBLOCK, "loop %d fd %d: read returned %zd", L->id, c->fd, r);
        CHECK(L->cfg->et, "loop %d (level-triggered) fd %d: EAGAIN right after EPOLLIN", L->id, c->fd);
        break;
    }
    return 1;
}

static void on_listener(struct loop *L)
{
    for (;;) {
        int fd = accept4(L->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            CHECK(errno == EAGAIN || errno == EWOULDBLOCK, "loop %d: accept4", L->id);
            CHECK(L->cfg->et, "loop %d (level-triggered): EAGAIN from accept right after EPOLLIN", L->id);
            return;
        }
        atomic_fetch_add(&L->accepted, 1);
        conn_register(L, fd);
        if (!L->cfg->et) return;
    }
}

static void on_eventfd(struct loop *L)
{
    uint64_t v;
    ssize_t r = read(L->efd, &v, sizeof v);
    CHECK(r == 8 && v > 0, "loop %d: eventfd read returned %zd", L->id, r);
    atomic_fetch_add(&L->wakeups, 1);
    int fds[NDISPATCHED], n = 0;
    pthread_mutex_lock(&L->mu);
    while (L->qhead != L->qtail) fds[n++] = L->queue[L->qhead++];
    if (L->ping_ack != L->ping_req) {
        L->ping_ack = L->ping_req;
        pthread_cond_broadcast(&L->cv);
    }
    pthread_mutex_unlock(&L->mu);
    for (int i = 0; i < n; i++) {
        set_nonblock(fds[i]);
        atomic_fetch_add(&L->adopted, 1);
        conn_register(L, fds[i]);
    }
}

static int loop_wait(struct loop *L, struct epoll_event *evs, int timeout_ms)
{
    switch (L->cfg->api) {
    case API_WAIT: return epoll_wait(L->epfd, evs, L->cfg->maxevents, timeout_ms);
    case API_PWAIT: return epoll_pwait(L->epfd, evs, L->cfg->maxevents, timeout_ms, NULL);
    case API_PWAIT2:
        if (timeout_ms < 0) return epoll_pwait2(L->epfd, evs, L->cfg->maxevents, NULL, NULL);
        struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000};
        return epoll_pwait2(L->epfd, evs, L->cfg->maxevents, &ts, NULL);
    }
    return -1;
}

static void loop_run(struct loop *L)
{
    struct epoll_event *evs = calloc((size_t)L->cfg->maxevents, sizeof *evs);
    CHECK(evs, "calloc");
    for (;;) {
        pthread_mutex_lock(&L->mu);
        int stop = L->stop;
        pthread_mutex_unlock(&L->mu);
        if (stop) break;
        int timeout = atomic_load(&L->open_conns) ? L->cfg->busy_timeout_ms : 100;
        atomic_store(&L->in_wait, 1);
        int64_t t0 = now_ns();
        int n = loop_wait(L, evs, timeout);
        int64_t el = now_ns() - t0;
        atomic_store(&L->in_wait, 0);
        CHECK(n >= 0, "loop %d: %s returned %d", L->id, api_names[L->cfg->api], n);
        CHECK(n <= L->cfg->maxevents, "loop %d: %s returned %d events, maxevents %d", L->id,
              api_names[L->cfg->api], n, L->cfg->maxevents);
        if (n == 0) {
            CHECK(timeout >= 0, "loop %d: %s with an infinite timeout returned 0 after %.1f ms", L->id,
                  api_names[L->cfg->api], MS(el));
            CHECK(el >= (int64_t)timeout * 1000000, "loop %d: %s(%d ms) timed out early, after %.3f ms", L->id,
                  api_names[L->cfg->api], timeout, MS(el));
            CHECK(el < (int64_t)timeout * 1000000 + 1000000000, "loop %d: %s(%d ms) timed out after %.3f ms", L->id,
                  api_names[L->cfg->api], timeout, MS(el));
            atomic_fetch_add(&L->timeouts, 1);
            continue;
        }
        for (int i = 0; i < n; i++) {
            uint32_t e = evs[i].events;
            if (evs[i].data.u64 == TAG_LISTENER) {
                CHECK(e & EPOLLIN, "loop %d: listener events %#x", L->id, e);
                on_listener(L);
            } else if (evs[i].data.u64 == TAG_EVENTFD) {
                CHECK(e == EPOLLIN, "loop %d: eventfd events %#x", L->id, e);
                on_eventfd(L);
            } else {
                struct conn *c = evs[i].data.ptr;
                CHECK(!(e & EPOLLERR), "loop %d fd %d: EPOLLERR (events %#x)", L->id, c->fd, e);
                if ((e & (EPOLLIN | EPOLLHUP | EPOLLRDHUP)) && !conn_readable(L, c)) continue;
                flush(L, c); /* new responses, or room after EPOLLOUT */
            }
        }
    }
    free(evs);
}

static void *loop_main(void *arg)
{
    loop_run(arg);
    return NULL;
}

/* Posts to a loop's command queue and wakes it through its eventfd. */
static void loop_notify(struct loop *L)
{
    uint64_t one = 1;
    CHECK(write(L->efd, &one, sizeof one) == 8, "eventfd write to loop %d", L->id);
}

/* ---- the dispatcher: blocking accept, hand over, memcached style -------- */

static int g_dispatch_lfd;
static struct sockaddr_in g_dispatch_addr;

static void *dispatcher_main(void *arg)
{
    (void)arg;
    for (int n = 0; n < NDISPATCHED; n++) {
        int fd = accept(g_dispatch_lfd, NULL, NULL);
        CHECK(fd >= 0, "dispatcher: accept %d", n);
        struct loop *L = &g_loops[n % NWORKERS];
        pthread_mutex_lock(&L->mu);
        L->queue[L->qtail++] = fd;
        pthread_mutex_unlock(&L->mu);
        loop_notify(L);
    }
    return NULL;
}

/* ---- clients -------------------------------------------------------------- */

static struct gate g_connected, g_go;

struct client {
    int id;
    int nconns;
    int fds[CONNS_PER_CLIENT];
    int want_loop[CONNS_PER_CLIENT]; /* -1: dispatched, any worker */
    int got_loop[CONNS_PER_CLIENT];
    uint32_t tags[CONNS_PER_CLIENT];
    pthread_t thread;
};
static struct client g_clients[NCLIENTS + 1];

static uint32_t req_len(uint32_t tag, uint32_t seq)
{
    uint64_t h = mix(((uint64_t)tag << 32) | seq);
    return ((h >> 1) % 10 == 0) ? 20000 + (uint32_t)(h >> 8) % (MAX_PAYLOAD - 20000) : 1 + (uint32_t)(h >> 8) % 4000;
}

static void fill_payload(uint8_t *p, uint32_t len, uint32_t tag, uint32_t seq)
{
    uint64_t s = mix(((uint64_t)seq << 32) | tag);
    for (uint32_t i = 0; i < len; i += 8) {
        uint64_t v = rng_next(&s);
        memcpy(p + i, &v, len - i < 8 ? len - i : 8);
    }
}

static void send_all(int fd, const uint8_t *p, size_t n, const char *who)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        CHECK(w > 0, "%s: send of %zu bytes returned %zd", who, n, w);
        p += w;
        n -= (size_t)w;
    }
}

static void recv_all(int fd, uint8_t *p, size_t n, const char *who)
{
    while (n > 0) {
        ssize_t r = recv(fd, p, n, 0);
        CHECK(r > 0, "%s: recv with %zu bytes to go returned %zd", who, n, r);
        p += r;
        n -= (size_t)r;
    }
}

static void *client_main(void *arg)
{
    struct client *cl = arg;
    char who[64];
    snprintf(who, sizeof who, "client %d", cl->id);
    for (int j = 0; j < cl->nconns; j++) {
        const struct sockaddr_in *addr;
        if (cl->id == NCLIENTS) {
            cl->want_loop[j] = MAIN_LOOP;
            addr = &g_loops[MAIN_LOOP].addr;
        } else {
            int g = cl->id * CONNS_PER_CLIENT + j;
            cl->want_loop[j] = g % 2 == 0 ? (g / 2) % NWORKERS : -1;
            addr = g % 2 == 0 ? &g_loops[cl->want_loop[j]].addr : &g_dispatch_addr;
        }
        cl->tags[j] = ((uint32_t)cl->id << 8) | (uint32_t)j;
        cl->got_loop[j] = -1;
        cl->fds[j] = socket(AF_INET, SOCK_STREAM, 0);
        CHECK(cl->fds[j] >= 0, "%s: socket", who);
        int rcvbuf = 16384;
        CHECK(setsockopt(cl->fds[j], SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) == 0, "SO_RCVBUF");
        CHECK(connect(cl->fds[j], (const struct sockaddr *)addr, sizeof *addr) == 0, "%s: connect %d", who, j);
    }
    gate_wait(&g_connected);
    gate_wait(&g_go);

    uint8_t *req = malloc(REQ_HDR + MAX_PAYLOAD), *rsp = malloc(RSP_HDR + MAX_PAYLOAD);
    CHECK(req && rsp, "malloc");
    for (uint32_t seq = 0; seq < ROUNDS; seq++) {
        for (int j = 0; j < cl->nconns; j++) {
            uint32_t len = req_len(cl->tags[j], seq);
            put32(req, REQ_MAGIC);
            put32(req + 4, cl->tags[j]);
            put32(req + 8, seq);
            put32(req + 12, len);
            fill_payload(req + REQ_HDR, len, cl->tags[j], seq);
            send_all(cl->fds[j], req, REQ_HDR + len, who);
        }
        for (int j = 0; j < cl->nconns; j++) {
            uint32_t len = req_len(cl->tags[j], seq);
            recv_all(cl->fds[j], rsp, RSP_HDR, who);
            uint32_t magic = get32(rsp), tag = get32(rsp + 4), rseq = get32(rsp + 8), rlen = get32(rsp + 12);
            int loop = (int)get32(rsp + 16);
            CHECK(magic == RSP_MAGIC && tag == cl->tags[j] && rseq == seq && rlen == len,
                  "%s conn %d round %u: response header magic %#x tag %#x seq %u len %u; expected tag %#x len %u",
                  who, j, seq, magic, tag, rseq, rlen, cl->tags[j], len);
            if (cl->want_loop[j] >= 0)
                CHECK(loop == cl->want_loop[j], "%s conn %d: served by loop %d, connected to loop %d", who, j, loop,
                      cl->want_loop[j]);
            else
                CHECK(loop >= 0 && loop < NWORKERS, "%s conn %d: served by loop %d", who, j, loop);
            if (cl->got_loop[j] < 0) cl->got_loop[j] = loop;
            CHECK(loop == cl->got_loop[j], "%s conn %d: served by loop %d, earlier by loop %d", who, j, loop,
                  cl->got_loop[j]);
            recv_all(cl->fds[j], rsp + RSP_HDR, len, who);
            fill_payload(req, len, cl->tags[j], seq);
            for (uint32_t i = 0; i < len; i++)
                CHECK(rsp[RSP_HDR + i] == (req[i] ^ 0xA5), "%s conn %d round %u: payload byte %u is %#x, expected %#x",
                      who, j, seq, i, rsp[RSP_HDR + i], req[i] ^ 0xA5);
        }
    }
    for (int j = 0; j < cl->nconns; j++) CHECK(close(cl->fds[j]) == 0, "%s: close", who);
    free(req);
    free(rsp);
    return NULL;
}

/* ---- the controller --------------------------------------------------------- */

static void wait_open_conns(int want_workers, int want_main, const char *what)
{
    int64_t t0 = now_ns();
    for (;;) {
        int ok = 1;
        for (int i = 0; i < NLOOPS; i++)
            if (atomic_load(&g_loops[i].open_conns) != (i == MAIN_LOOP ? want_main : want_workers)) ok = 0;
        if (ok) return;
        CHECK(now_ns() - t0 < 10000000000, "%s: loops still hold %d %d %d %d %d connections", what,
              atomic_load(&g_loops[0].open_conns), atomic_load(&g_loops[1].open_conns),
              atomic_load(&g_loops[2].open_conns), atomic_load(&g_loops[3].open_conns),
              atomic_load(&g_loops[4].open_conns));
        sleep_ms(5);
    }
}

/* Pings every loop through its eventfd; each must answer within 80 ms
 * (a 100 ms timeout would be too late, and -1 loops have no timeout). */
static void ping_all(const char *when)
{
    unsigned target[NLOOPS];
    int64_t sent[NLOOPS];
    for (int i = 0; i < NLOOPS; i++) {
        struct loop *L = &g_loops[i];
        pthread_mutex_lock(&L->mu);
        target[i] = ++L->ping_req;
        pthread_mutex_unlock(&L->mu);
        sent[i] = now_ns();
        loop_notify(L);
    }
    for (int i = 0; i < NLOOPS; i++) {
        struct loop *L = &g_loops[i];
        pthread_mutex_lock(&L->mu);
        while (L->ping_ack < target[i]) {
            struct timespec abs;
            clock_gettime(CLOCK_REALTIME, &abs);
            abs.tv_sec += 2;
            int rc = pthread_cond_timedwait(&L->cv, &L->mu, &abs);
            CHECK(rc == 0 || (rc == ETIMEDOUT && L->ping_ack >= target[i]),
                  "%s: loop %d (%s, %s) did not answer a ping through its eventfd within 2 s (rc %d)", when, i,
                  loop_kind(L), api_names[L->cfg->api], rc);
        }
        pthread_mutex_unlock(&L->mu);
        int64_t lat = now_ns() - sent[i];
        CHECK(lat < 80000000, "%s: loop %d (%s, %s) answered a ping after %.1f ms", when, i, loop_kind(L),
              api_names[L->cfg->api], MS(lat));
    }
}

static void *controller_main(void *arg)
{
    (void)arg;
    set_phase("loops: connecting");
    gate_wait(&g_connected);
    set_phase("loops: every connection accepted or handed over");
    wait_open_conns(CONNS_PER_WORKER, MAIN_CONNS, "after connect");

    set_phase("loops: quiet phase (connections open, no traffic)");
    long before[NLOOPS];
    for (int i = 0; i < NLOOPS; i++) before[i] = atomic_load(&g_loops[i].timeouts);
    sleep_ms(200);
    for (int i = 0; i < NLOOPS; i++) {
        struct loop *L = &g_loops[i];
        long d = atomic_load(&L->timeouts) - before[i];
        if (L->cfg->busy_timeout_ms < 0)
            CHECK(d == 0, "loop %d (%s, %s, timeout -1) counted %ld timeouts while connections were open", i,
                  loop_kind(L), api_names[L->cfg->api], d);
        else
            CHECK(d >= 1, "loop %d (%s, %s, %d ms) counted no timeout in 200 ms of quiet", i, loop_kind(L),
                  api_names[L->cfg->api], L->cfg->busy_timeout_ms);
    }
    set_phase("loops: ping through the eventfds (quiet)");
    ping_all("quiet phase");

    set_phase("loops: request/response traffic");
    int64_t t0 = now_ns();
    gate_wait(&g_go);
    for (int k = 0; k <= NCLIENTS; k++) join(g_clients[k].thread);
    int64_t traffic = now_ns() - t0;

    set_phase("loops: clients closed, loops closing");
    wait_open_conns(0, 0, "after the clients closed");

    set_phase("loops: idle phase (no connections)");
    for (int i = 0; i < NLOOPS; i++) before[i] = atomic_load(&g_loops[i].timeouts);
    sleep_ms(400);
    for (int i = 0; i < NLOOPS; i++) {
        long d = atomic_load(&g_loops[i].timeouts) - before[i];
        CHECK(d >= 2, "loop %d (%s, %s) counted %ld timeouts of 100 ms in 400 ms idle", i, loop_kind(&g_loops[i]),
              api_names[g_loops[i].cfg->api], d);
    }
    set_phase("loops: ping through the eventfds (idle)");
    ping_all("idle phase");

    set_phase("loops: stopping");
    for (int i = 0; i < NLOOPS; i++) {
        struct loop *L = &g_loops[i];
        pthread_mutex_lock(&L->mu);
        L->stop = 1;
        pthread_mutex_unlock(&L->mu);
        loop_notify(L);
    }
    fprintf(stderr, "  traffic: %d loops, %d connections, %d rounds in %.0f ms\n", NLOOPS,
            NWORKERS * CONNS_PER_WORKER + MAIN_CONNS, ROUNDS, MS(traffic));
    return NULL;
}

/* On a hang, say where each loop is. */
static void put_num(char **p, long v)
{
    char tmp[24];
    int n = 0;
    if (v < 0) *(*p)++ = '-', v = -v;
    do tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10) && n < 23);
    while (n) *(*p)++ = tmp[--n];
}
static void put_str(char **p, const char *s)
{
    while (*s) *(*p)++ = *s++;
}
static void on_alarm(int sig)
{
    (void)sig;
    char buf[1024], *p = buf;
    put_str(&p, "TIMEOUT (watchdog) in phase: ");
    put_str(&p, g_phase);
    put_str(&p, "\n");
    for (int i = 0; i < NLOOPS; i++) {
        struct loop *L = &g_loops[i];
        put_str(&p, "  loop ");
        put_num(&p, i);
        put_str(&p, ": open ");
        put_num(&p, atomic_load(&L->open_conns));
        put_str(&p, " served ");
        put_num(&p, atomic_load(&L->served));
        put_str(&p, " timeouts ");
        put_num(&p, atomic_load(&L->timeouts));
        put_str(&p, " wakeups ");
        put_num(&p, atomic_load(&L->wakeups));
        put_str(&p, atomic_load(&L->in_wait) ? " (in epoll wait)\n" : " (running)\n");
    }
    syscall(SYS_write, 2, buf, (size_t)(p - buf));
    _exit(2);
}

static void test_loops(void)
{
    for (int i = 0; i < NLOOPS; i++) loop_setup(&g_loops[i], i);
    g_dispatch_lfd = tcp_listener(&g_dispatch_addr, 256);
    gate_init(&g_connected, NCLIENTS + 2);
    gate_init(&g_go, NCLIENTS + 2);
    for (int i = 0; i < NWORKERS; i++) g_loops[i].thread = spawn(loop_main, &g_loops[i]);
    pthread_t dispatcher = spawn(dispatcher_main, NULL);
    for (int k = 0; k <= NCLIENTS; k++) {
        g_clients[k].id = k;
        g_clients[k].nconns = k == NCLIENTS ? MAIN_CONNS : CONNS_PER_CLIENT;
        g_clients[k].thread = spawn(client_main, &g_clients[k]);
    }
    pthread_t controller = spawn(controller_main, NULL);

    /* The main thread runs a loop of its own meanwhile. */
    loop_run(&g_loops[MAIN_LOOP]);

    join(controller);
    join(dispatcher);
    for (int i = 0; i < NWORKERS; i++) join(g_loops[i].thread);
    set_phase("loops: totals");
    for (int i = 0; i < NLOOPS; i++) {
        struct loop *L = &g_loops[i];
        int conns = L->cfg->direct + L->cfg->dispatched;
        CHECK(atomic_load(&L->accepted) == L->cfg->direct && atomic_load(&L->adopted) == L->cfg->dispatched,
              "loop %d: accepted %d (expected %d), adopted %d from the dispatcher (expected %d)", i,
              atomic_load(&L->accepted), L->cfg->direct, atomic_load(&L->adopted), L->cfg->dispatched);
        CHECK(atomic_load(&L->closed_conns) == conns, "loop %d: closed %d connections of %d", i,
              atomic_load(&L->closed_conns), conns);
        CHECK(atomic_load(&L->served) == (long)conns * ROUNDS, "loop %d: served %ld requests, expected %d", i,
              atomic_load(&L->served), conns * ROUNDS);
        /* The test is only as good as its EPOLLOUT path. */
        CHECK(atomic_load(&L->partial_sends) > 0, "loop %d never had to wait for EPOLLOUT", i);
        fprintf(stderr, "  loop %d (%s, %s): %ld requests, %ld sends cut short (EPOLLOUT), %ld timeouts, %ld eventfd wake-ups\n",
                i, loop_kind(L), api_names[L->cfg->api], atomic_load(&L->served), atomic_load(&L->partial_sends),
                atomic_load(&L->timeouts), atomic_load(&L->wakeups));
        close(L->epfd);
        close(L->lfd);
        close(L->efd);
    }
    close(g_dispatch_lfd);
}

int main(void)
{
    signal(SIGALRM, on_alarm);
    alarm(30);
    fprintf(stderr, "t_epoll_loops: running %s\n", is_shim() ? "under greenld" : "natively");
    run_in_created_thread("epoll API: timeouts and wake-ups", test_api_timeouts);
    run_in_created_thread("epoll API: level, edge, oneshot, hang-up, maxevents", test_api_triggers);
    run_in_created_thread("epoll API: errors", test_api_errors);
    run_in_created_thread("epoll API: epoll fd in poll and in epoll, eventfd", test_api_nesting);
    set_phase("loops: setup");
    test_loops();
    fprintf(stderr, "t_epoll_loops: all checks passed\n");
    return 0;
}
