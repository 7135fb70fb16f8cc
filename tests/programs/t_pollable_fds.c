/*
 * t_pollable_fds — blocking reads and writes on fds that are neither
 * sockets nor pipes, in threads, while a ticker thread keeps ticking:
 *
 *  1. eventfd: two threads block in read() on one counter; each write(1)
 *     lets exactly one of them through (the other keeps waiting), and each
 *     reads 1. A write that would overflow the counter waits for a read.
 *  2. timerfd: read() waits for a 150 ms timer and returns 1 expiration.
 *  3. pty (openpty, raw mode): a read on the master waits for what the
 *     slave writes 150 ms later, and a read on the slave for the master.
 *  4. MSG_PEEK on TCP: recv(MSG_PEEK) waits for data, and the data is still
 *     there for the recv() that follows.
 *  5. FIFO after open (opened O_RDWR, so open never waits): a read waits for
 *     a writer's data; a write bigger than the FIFO's free room waits for the
 *     reader and then writes everything.
 */
#include "test_support.h"

#include <fcntl.h>
#include <pty.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <termios.h>

struct reader {
    int fd;
    char buf[256];
    size_t want;
    ssize_t got;
    int err;
    int64_t done_ns;
};

static void *reader_main(void *arg)
{
    struct reader *r = arg;
    errno = 0;
    r->got = read(r->fd, r->buf, r->want);
    r->err = errno;
    r->done_ns = now_ns();
    return NULL;
}

/* ---- 1. eventfd ------------------------------------------------------ */

static void phase_eventfd(void)
{
    set_phase("eventfd: two readers, one counter");
    int efd = eventfd(0, 0);
    CHECK(efd >= 0, "eventfd");
    static struct reader r[2];
    pthread_t t[2];
    for (int i = 0; i < 2; ++i) {
        r[i] = (struct reader){.fd = efd, .want = 8};
        t[i] = spawn(reader_main, &r[i]);
    }
    long ticks = ticker_ticks();
    sleep_ms(100);
    ticker_expect(ticks, 20, "two threads in read() of an empty eventfd");
    uint64_t one = 1;
    CHECK(write(efd, &one, 8) == 8, "eventfd write");
    sleep_ms(100);
    int done = (r[0].done_ns != 0) + (r[1].done_ns != 0);
    CHECK(done == 1, "%d readers got through one write(1)", done);
    ticks = ticker_ticks();
    sleep_ms(50);
    ticker_expect(ticks, 10, "the second reader still waiting");
    CHECK(write(efd, &one, 8) == 8, "eventfd write");
    for (int i = 0; i < 2; ++i) {
        join_within(t[i], 3000, "eventfd reader");
        uint64_t v;
        memcpy(&v, r[i].buf, 8);
        CHECK(r[i].got == 8 && v == 1, "reader %d: read %zd, value %llu", i, r[i].got, (unsigned long long)v);
    }

    close(efd);
}

struct writer {
    int fd;
    const void *data;
    size_t n;
    ssize_t put;
    int err;
    int64_t done_ns;
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    errno = 0;
    w->put = write(w->fd, w->data, w->n);
    w->err = errno;
    w->done_ns = now_ns();
    return NULL;
}

static void phase_eventfd_write_waits(void)
{
    set_phase("eventfd: a write that would overflow waits for a read");
    int efd = eventfd(0, 0);
    CHECK(efd >= 0, "eventfd");
    uint64_t big = UINT64_MAX - 1, one = 1;
    CHECK(write(efd, &big, 8) == 8, "fill the counter");
    static struct writer w;
    w = (struct writer){.fd = efd, .data = &one, .n = 8};
    long ticks = ticker_ticks();
    pthread_t t = spawn(writer_main, &w);
    sleep_ms(150);
    CHECK(w.done_ns == 0, "the write did not wait (returned %zd)", w.put);
    ticker_expect(ticks, 30, "write() to a full eventfd");
    uint64_t v;
    CHECK(read(efd, &v, 8) == 8 && v == big, "read the full counter");
    join_within(t, 3000, "eventfd writer");
    CHECK(w.put == 8, "write returned %zd (errno %d)", w.put, w.err);
    CHECK(read(efd, &v, 8) == 8 && v == 1, "the waiting write's value");
    close(efd);
}

/* ---- 2. timerfd ------------------------------------------------------ */

static void phase_timerfd(void)
{
    set_phase("timerfd read waits for expiry");
    int tfd = timerfd_create(CLOCK_MONOTONIC, 0);
    CHECK(tfd >= 0, "timerfd_create");
    struct itimerspec its = {.it_value = {0, 150 * 1000000L}};
    static struct reader r;
    r = (struct reader){.fd = tfd, .want = 8};
    int64_t t0 = now_ns();
    CHECK(timerfd_settime(tfd, 0, &its, NULL) == 0, "timerfd_settime");
    long ticks = ticker_ticks();
    pthread_t t = spawn(reader_main, &r);
    join_within(t, 3000, "timerfd reader");
    uint64_t n;
    memcpy(&n, r.buf, 8);
    CHECK(r.got == 8 && n == 1, "read %zd, expirations %llu", r.got, (unsigned long long)n);
    CHECK(r.done_ns - t0 >= 140 * 1000000LL, "returned after %lld ms", (long long)((r.done_ns - t0) / 1000000));
    ticker_expect(ticks, 30, "read() of a timerfd");
    close(tfd);
}

/* ---- 3. pty ---------------------------------------------------------- */

struct delayed_write {
    int fd;
    int delay_ms;
    const char *data;
    size_t n;
};

static void *delayed_write_main(void *arg)
{
    struct delayed_write *w = arg;
    sleep_ms(w->delay_ms);
    CHECK(write(w->fd, w->data, w->n) == (ssize_t)w->n, "delayed write");
    return NULL;
}

static void pty_read_waits(int from, int to, const char *what)
{
    static const char msg[] = "over the pty";
    static struct reader r;
    r = (struct reader){.fd = from, .want = sizeof msg};
    long ticks = ticker_ticks();
    int64_t t0 = now_ns();
    pthread_t t = spawn(reader_main, &r);
    struct delayed_write w = {to, 150, msg, sizeof msg};
    pthread_t wt = spawn(delayed_write_main, &w);
    join_within(t, 3000, what);
    join_within(wt, 3000, "pty writer");
    CHECK(r.got == (ssize_t)sizeof msg && memcmp(r.buf, msg, sizeof msg) == 0, "%s: read %zd (errno %d)", what,
          r.got, r.err);
    CHECK(r.done_ns - t0 >= 120 * 1000000LL, "%s returned after %lld ms", what,
          (long long)((r.done_ns - t0) / 1000000));
    ticker_expect(ticks, 30, what);
}

static void phase_pty(void)
{
    set_phase("pty reads");
    int master, slave;
    CHECK(openpty(&master, &slave, NULL, NULL, NULL) == 0, "openpty");
    struct termios tio;
    CHECK(tcgetattr(slave, &tio) == 0, "tcgetattr");
    cfmakeraw(&tio);
    CHECK(tcsetattr(slave, TCSANOW, &tio) == 0, "tcsetattr");
    pty_read_waits(master, slave, "read() on the pty master");
    pty_read_waits(slave, master, "read() on the pty slave");
    close(slave);
    close(master);
}

/* ---- 4. MSG_PEEK ----------------------------------------------------- */

struct peeker {
    int fd;
    char peeked[64], got[64];
    ssize_t npeek, nget;
    int64_t done_ns;
};

static void *peeker_main(void *arg)
{
    struct peeker *p = arg;
    p->npeek = recv(p->fd, p->peeked, sizeof p->peeked, MSG_PEEK);
    p->done_ns = now_ns();
    p->nget = recv(p->fd, p->got, sizeof p->got, MSG_DONTWAIT);
    return NULL;
}

static void phase_peek(void)
{
    set_phase("recv(MSG_PEEK) waits, then the data is still there");
    int a, b;
    tcp_pair(&a, &b);
    static struct peeker p;
    p = (struct peeker){.fd = b};
    long ticks = ticker_ticks();
    int64_t t0 = now_ns();
    pthread_t t = spawn(peeker_main, &p);
    static const char msg[] = "peek-a-boo";
    struct delayed_write w = {a, 150, msg, sizeof msg};
    pthread_t wt = spawn(delayed_write_main, &w);
    join_within(t, 3000, "peeker");
    join_within(wt, 3000, "writer");
    CHECK(p.npeek == (ssize_t)sizeof msg && memcmp(p.peeked, msg, sizeof msg) == 0, "peeked %zd", p.npeek);
    CHECK(p.nget == (ssize_t)sizeof msg && memcmp(p.got, msg, sizeof msg) == 0, "then read %zd", p.nget);
    CHECK(p.done_ns - t0 >= 120 * 1000000LL, "MSG_PEEK returned after %lld ms",
          (long long)((p.done_ns - t0) / 1000000));
    ticker_expect(ticks, 30, "recv(MSG_PEEK)");
    close(a);
    close(b);
}

/* ---- 5. FIFO --------------------------------------------------------- */

static void phase_fifo(void)
{
    set_phase("FIFO read waits for data");
    char path[64];
    snprintf(path, sizeof path, "/tmp/t_pollable_fds.%d", (int)getpid());
    unlink(path);
    CHECK(mkfifo(path, 0600) == 0, "mkfifo");
    int rd = open(path, O_RDWR); /* O_RDWR: open never waits for a peer */
    CHECK(rd >= 0, "open O_RDWR");
    int wr = open(path, O_WRONLY); /* a reader exists: does not wait */
    CHECK(wr >= 0, "open O_WRONLY");
    unlink(path);
    static const char msg[] = "through the fifo";
    static struct reader r;
    r = (struct reader){.fd = rd, .want = sizeof msg};
    long ticks = ticker_ticks();
    int64_t t0 = now_ns();
    pthread_t t = spawn(reader_main, &r);
    struct delayed_write w = {wr, 150, msg, sizeof msg};
    pthread_t wt = spawn(delayed_write_main, &w);
    join_within(t, 3000, "FIFO reader");
    join_within(wt, 3000, "FIFO writer");
    CHECK(r.got == (ssize_t)sizeof msg && memcmp(r.buf, msg, sizeof msg) == 0, "FIFO read %zd (errno %d)", r.got,
          r.err);
    CHECK(r.done_ns - t0 >= 120 * 1000000LL, "FIFO read returned after %lld ms",
          (long long)((r.done_ns - t0) / 1000000));
    ticker_expect(ticks, 30, "read() of a FIFO");

    set_phase("FIFO write waits for room");
    int cap = fcntl(wr, F_GETPIPE_SZ);
    CHECK(cap > 0, "F_GETPIPE_SZ");
    static char data[1 << 20];
    for (int i = 0; i < (int)sizeof data; ++i) data[i] = (char)(i * 13 + i / 977);
    size_t total = (size_t)cap * 3; /* more than fits: the write must wait for the reader */
    static struct writer fw;
    fw = (struct writer){.fd = wr, .data = data, .n = total};
    ticks = ticker_ticks();
    pthread_t ft = spawn(writer_main, &fw);
    sleep_ms(150);
    CHECK(fw.done_ns == 0, "the FIFO write did not wait (returned %zd)", fw.put);
    ticker_expect(ticks, 30, "write() to a full FIFO");
    static char back[1 << 20];
    size_t got = 0;
    while (got < total) {
        ssize_t n = read(rd, back + got, total - got);
        CHECK(n > 0, "FIFO read back");
        got += (size_t)n;
    }
    join_within(ft, 3000, "FIFO writer");
    CHECK(fw.put == (ssize_t)total, "FIFO write returned %zd (errno %d)", fw.put, fw.err);
    CHECK(memcmp(back, data, total) == 0, "FIFO data");
    long fl = syscall(SYS_fcntl, wr, F_GETFL);
    CHECK(!(fl & O_NONBLOCK), "the FIFO was made non-blocking in the kernel");
    close(rd);
    close(wr);
}

static void *worker(void *arg)
{
    (void)arg;
    phase_eventfd();
    phase_eventfd_write_waits();
    phase_timerfd();
    phase_pty();
    phase_peek();
    phase_fifo();
    return NULL;
}

int main(void)
{
    watchdog(30);
    ticker_start();
    join_within(spawn(worker, NULL), 25000, "worker");
    ticker_stop();
    printf("t_pollable_fds: ok\n");
    return 0;
}
