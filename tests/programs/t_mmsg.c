/*
 * t_mmsg — recvmmsg() and sendmmsg() in threads, with the kernel's exact
 * results (every phase also runs natively and must give the same answers):
 *
 *  1. recvmmsg(vlen 4, no flags, no timeout) on connected UDP waits for the
 *     first datagram and then for each next one until all 4 are in; the
 *     sender (main) sends 1, then 3 more 150 ms later. The ticker thread
 *     keeps ticking while the receiver is parked.
 *  2. MSG_WAITFORONE: returns as soon as one datagram is in (1 of 4), and a
 *     second call takes the 3 that came later.
 *  3. The timeout argument is checked only after each datagram arrives (the
 *     kernel's documented quirk): with 1 datagram queued and a 50 ms
 *     timeout, recvmmsg waits past the timeout for a second one (sent 200
 *     ms later), then stops at 2 of 4 and writes back {0, 0}. A long timeout
 *     gets all 4 and a remaining time below the one given. An invalid
 *     timeout (tv_nsec = 2e9) fails with EINVAL.
 *  4. SO_RCVTIMEO bounds each wait: nothing queued gives -1/EAGAIN after
 *     ~100 ms; 1 queued of vlen 3 gives 1 after ~100 ms.
 *  5. MSG_DONTWAIT per call: -1/EAGAIN when nothing is queued.
 *  6. sendmmsg on an AF_UNIX datagram socketpair with a small SO_SNDBUF: 200
 *     messages of 1000 bytes do not fit; the blocking call sends them all
 *     while a reader starts draining 200 ms later (the sender parks, the
 *     ticker ticks). With MSG_DONTWAIT the kernel's partial count: k of 200
 *     (0 < k < 200) when it fills, then -1/EAGAIN when already full. With
 *     SO_SNDTIMEO 100 ms and no reader: k > 0 of 200 after ~100 ms.
 *  7. sendmmsg on TCP: 3 messages of 1 MiB each (far beyond the socket
 *     buffers) are sent whole, msg_len = 1 MiB each, while a slow reader
 *     thread checks every byte.
 */
#include "test_support.h"

#include <sys/uio.h>
#include <sys/un.h>

#define MSG_SZ 64

static void udp_pair(int *a, int *b)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct sockaddr_in sb = sa;
    socklen_t len = sizeof sa;
    *a = socket(AF_INET, SOCK_DGRAM, 0);
    *b = socket(AF_INET, SOCK_DGRAM, 0);
    CHECK(*a >= 0 && *b >= 0, "socket(UDP)");
    CHECK(bind(*a, (struct sockaddr *)&sa, sizeof sa) == 0, "bind a");
    CHECK(bind(*b, (struct sockaddr *)&sb, sizeof sb) == 0, "bind b");
    CHECK(getsockname(*a, (struct sockaddr *)&sa, &len) == 0, "getsockname a");
    len = sizeof sb;
    CHECK(getsockname(*b, (struct sockaddr *)&sb, &len) == 0, "getsockname b");
    CHECK(connect(*a, (struct sockaddr *)&sb, sizeof sb) == 0, "connect a");
    CHECK(connect(*b, (struct sockaddr *)&sa, sizeof sa) == 0, "connect b");
}

static void send_numbered(int fd, int first, int n)
{
    for (int i = first; i < first + n; ++i) {
        char m[MSG_SZ];
        memset(m, 'a' + i % 26, sizeof m);
        m[0] = (char)i;
        CHECK(send(fd, m, sizeof m, 0) == (ssize_t)sizeof m, "send datagram %d", i);
    }
}

/* ---- receivers -------------------------------------------------------- */

struct rx {
    int fd;
    unsigned vlen;
    int flags;
    struct timespec *timeout;
    int result;
    int err;
    int64_t elapsed_ms;
    char bufs[8][MSG_SZ];
    struct mmsghdr vec[8];
    struct iovec iov[8];
};

static void rx_prepare(struct rx *r, int fd, unsigned vlen, int flags, struct timespec *timeout)
{
    memset(r, 0, sizeof *r);
    r->fd = fd;
    r->vlen = vlen;
    r->flags = flags;
    r->timeout = timeout;
    for (int i = 0; i < 8; ++i) {
        r->iov[i].iov_base = r->bufs[i];
        r->iov[i].iov_len = MSG_SZ;
        r->vec[i].msg_hdr.msg_iov = &r->iov[i];
        r->vec[i].msg_hdr.msg_iovlen = 1;
    }
}

static void *rx_main(void *arg)
{
    struct rx *r = arg;
    int64_t t0 = now_ns();
    errno = 0;
    r->result = recvmmsg(r->fd, r->vec, r->vlen, r->flags, r->timeout);
    r->err = errno;
    r->elapsed_ms = (now_ns() - t0) / 1000000;
    return NULL;
}

static void rx_check(struct rx *r, int first, int n)
{
    CHECK(r->result == n, "recvmmsg returned %d, expected %d (errno %d)", r->result, n, r->err);
    for (int i = 0; i < n; ++i) {
        CHECK(r->vec[i].msg_len == MSG_SZ, "entry %d: msg_len %u", i, r->vec[i].msg_len);
        CHECK(r->bufs[i][0] == (char)(first + i), "entry %d holds datagram %d, expected %d", i, r->bufs[i][0],
              first + i);
        CHECK(r->bufs[i][1] == 'a' + (first + i) % 26, "entry %d: contents", i);
    }
}

static void phase_recv_all(int a, int b)
{
    set_phase("recvmmsg waits for all of vlen");
    static struct rx r;
    rx_prepare(&r, b, 4, 0, NULL);
    long ticks = ticker_ticks();
    pthread_t t = spawn(rx_main, &r);
    send_numbered(a, 0, 1);
    sleep_ms(150);
    CHECK(r.result == 0 && r.elapsed_ms == 0, "recvmmsg returned early (%d) with 1 of 4", r.result);
    ticker_expect(ticks, 20, "recvmmsg waiting for datagrams 2..4");
    send_numbered(a, 1, 3);
    join_within(t, 3000, "receiver");
    rx_check(&r, 0, 4);
    CHECK(r.elapsed_ms >= 120, "returned after %lld ms", (long long)r.elapsed_ms);
}

static void phase_waitforone(int a, int b)
{
    set_phase("MSG_WAITFORONE");
    static struct rx r;
    rx_prepare(&r, b, 4, MSG_WAITFORONE, NULL);
    long ticks = ticker_ticks();
    pthread_t t = spawn(rx_main, &r);
    sleep_ms(100);
    ticker_expect(ticks, 20, "recvmmsg(MSG_WAITFORONE) waiting for the first datagram");
    send_numbered(a, 10, 1);
    join_within(t, 3000, "receiver");
    rx_check(&r, 10, 1);
    send_numbered(a, 11, 3);
    sleep_ms(20);
    rx_prepare(&r, b, 4, MSG_WAITFORONE, NULL);
    t = spawn(rx_main, &r);
    join_within(t, 3000, "receiver");
    rx_check(&r, 11, 3);
}

static void phase_timeout(int a, int b)
{
    set_phase("recvmmsg timeout checked after each datagram");
    static struct rx r;
    struct timespec ts = {0, 50 * 1000000L};
    rx_prepare(&r, b, 4, 0, &ts);
    send_numbered(a, 20, 1);
    long ticks = ticker_ticks();
    pthread_t t = spawn(rx_main, &r);
    sleep_ms(200);
    CHECK(r.result == 0 && r.elapsed_ms == 0, "recvmmsg returned at its timeout (%d); the kernel waits on",
          r.result);
    ticker_expect(ticks, 40, "recvmmsg waiting past its timeout");
    send_numbered(a, 21, 3);
    join_within(t, 3000, "receiver");
    rx_check(&r, 20, 2);
    CHECK(ts.tv_sec == 0 && ts.tv_nsec == 0, "timeout written back as {%ld, %ld}, expected {0, 0}",
          (long)ts.tv_sec, ts.tv_nsec);
    /* The 2 left over, then all 4 within a long timeout. */
    rx_prepare(&r, b, 2, MSG_DONTWAIT, NULL);
    rx_main(&r);
    rx_check(&r, 22, 2);

    set_phase("recvmmsg with a long timeout");
    struct timespec longer = {5, 0};
    rx_prepare(&r, b, 4, 0, &longer);
    t = spawn(rx_main, &r);
    sleep_ms(50);
    send_numbered(a, 30, 4);
    join_within(t, 3000, "receiver");
    rx_check(&r, 30, 4);
    CHECK(longer.tv_sec <= 5 && (longer.tv_sec < 5 || longer.tv_nsec == 0) && longer.tv_sec >= 3,
          "remaining time written back: {%ld, %ld}", (long)longer.tv_sec, longer.tv_nsec);

    set_phase("recvmmsg invalid timeout");
    struct timespec bad = {0, 2000000000L};
    rx_prepare(&r, b, 4, 0, &bad);
    t = spawn(rx_main, &r);
    join_within(t, 3000, "receiver");
    CHECK(r.result == -1 && r.err == EINVAL, "invalid timeout: %d errno %d", r.result, r.err);
}

static void phase_rcvtimeo(int a, int b)
{
    set_phase("recvmmsg with SO_RCVTIMEO");
    struct timeval tv = {0, 100000};
    CHECK(setsockopt(b, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0, "SO_RCVTIMEO");
    static struct rx r;
    rx_prepare(&r, b, 4, 0, NULL);
    long ticks = ticker_ticks();
    pthread_t t = spawn(rx_main, &r);
    join_within(t, 3000, "receiver");
    CHECK(r.result == -1 && r.err == EAGAIN, "nothing queued: %d errno %d", r.result, r.err);
    CHECK(r.elapsed_ms >= 80 && r.elapsed_ms < 1000, "timed out after %lld ms", (long long)r.elapsed_ms);
    ticker_expect(ticks, 20, "recvmmsg waiting under SO_RCVTIMEO");

    send_numbered(a, 40, 1);
    rx_prepare(&r, b, 3, 0, NULL);
    t = spawn(rx_main, &r);
    join_within(t, 3000, "receiver");
    rx_check(&r, 40, 1);
    CHECK(r.elapsed_ms >= 80, "returned 1 after %lld ms; the kernel waits SO_RCVTIMEO for the next",
          (long long)r.elapsed_ms);
    tv.tv_usec = 0;
    CHECK(setsockopt(b, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0, "SO_RCVTIMEO off");

    set_phase("recvmmsg MSG_DONTWAIT");
    rx_prepare(&r, b, 4, MSG_DONTWAIT, NULL);
    t = spawn(rx_main, &r);
    join_within(t, 3000, "receiver");
    CHECK(r.result == -1 && r.err == EAGAIN, "MSG_DONTWAIT, nothing queued: %d errno %d", r.result, r.err);
}

/* ---- senders ---------------------------------------------------------- */

#define TX_N 200
#define TX_SZ 1000

struct tx {
    int fd;
    int flags;
    int result;
    int err;
    int64_t elapsed_ms;
    struct mmsghdr vec[TX_N];
    struct iovec iov[TX_N];
    char data[TX_N][TX_SZ];
};

static void tx_prepare(struct tx *t, int fd, int flags)
{
    memset(t, 0, sizeof *t);
    t->fd = fd;
    t->flags = flags;
    for (int i = 0; i < TX_N; ++i) {
        memset(t->data[i], 'A' + i % 26, TX_SZ);
        memcpy(t->data[i], &i, sizeof i);
        t->iov[i].iov_base = t->data[i];
        t->iov[i].iov_len = TX_SZ;
        t->vec[i].msg_hdr.msg_iov = &t->iov[i];
        t->vec[i].msg_hdr.msg_iovlen = 1;
    }
}

static void *tx_main(void *arg)
{
    struct tx *t = arg;
    int64_t t0 = now_ns();
    errno = 0;
    t->result = sendmmsg(t->fd, t->vec, TX_N, t->flags);
    t->err = errno;
    t->elapsed_ms = (now_ns() - t0) / 1000000;
    return NULL;
}

/* Reads datagrams in order until `n` were seen; returns how many. */
static int drain_numbered(int fd, int expect_first, int n)
{
    char buf[TX_SZ + 1];
    for (int i = 0; i < n; ++i) {
        ssize_t got = recv(fd, buf, sizeof buf, 0);
        CHECK(got == TX_SZ, "datagram %d: %zd bytes", i, got);
        int seq;
        memcpy(&seq, buf, sizeof seq);
        CHECK(seq == expect_first + i, "datagram %d has number %d", expect_first + i, seq);
    }
    return n;
}

static int drain_all_now(int fd)
{
    char buf[TX_SZ + 1];
    int n = 0;
    while (recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0) ++n;
    return n;
}

static void phase_sendmmsg_unix(void)
{
    set_phase("sendmmsg blocks until all are sent");
    int sv[2];
    unix_pair(sv, SOCK_DGRAM);
    int small = 16384;
    CHECK(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small) == 0, "SO_SNDBUF");
    static struct tx t;
    tx_prepare(&t, sv[0], 0);
    long ticks = ticker_ticks();
    pthread_t th = spawn(tx_main, &t);
    sleep_ms(200);
    CHECK(t.result == 0 && t.elapsed_ms == 0, "sendmmsg returned (%d) although the buffer is full", t.result);
    ticker_expect(ticks, 40, "sendmmsg parked on a full socket buffer");
    drain_numbered(sv[1], 0, TX_N);
    join_within(th, 3000, "sender");
    CHECK(t.result == TX_N, "sendmmsg returned %d (errno %d), expected %d", t.result, t.err, TX_N);
    for (int i = 0; i < TX_N; ++i) CHECK(t.vec[i].msg_len == TX_SZ, "msg_len[%d] = %u", i, t.vec[i].msg_len);

    set_phase("sendmmsg MSG_DONTWAIT partial count");
    tx_prepare(&t, sv[0], MSG_DONTWAIT);
    th = spawn(tx_main, &t);
    join_within(th, 3000, "sender");
    CHECK(t.result > 0 && t.result < TX_N, "MSG_DONTWAIT into a small buffer: %d (errno %d)", t.result, t.err);
    int sent = t.result;
    tx_prepare(&t, sv[0], MSG_DONTWAIT);
    th = spawn(tx_main, &t);
    join_within(th, 3000, "sender");
    CHECK(t.result == -1 && t.err == EAGAIN, "MSG_DONTWAIT into a full buffer: %d errno %d", t.result, t.err);
    CHECK(drain_all_now(sv[1]) == sent, "the receiver got other than %d", sent);

    set_phase("sendmmsg with SO_SNDTIMEO");
    struct timeval tv = {0, 100000};
    CHECK(setsockopt(sv[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) == 0, "SO_SNDTIMEO");
    tx_prepare(&t, sv[0], 0);
    ticks = ticker_ticks();
    th = spawn(tx_main, &t);
    join_within(th, 3000, "sender");
    CHECK(t.result > 0 && t.result < TX_N, "SO_SNDTIMEO: %d (errno %d)", t.result, t.err);
    CHECK(t.elapsed_ms >= 80 && t.elapsed_ms < 1000, "returned after %lld ms", (long long)t.elapsed_ms);
    ticker_expect(ticks, 20, "sendmmsg under SO_SNDTIMEO");
    CHECK(drain_all_now(sv[1]) == t.result, "the receiver got other than %d", t.result);
    close(sv[0]);
    close(sv[1]);
}

/* ---- TCP: messages larger than the socket buffers -------------------- */

#define BIG (1 << 20)
#define BIG_N 3

struct big_rx {
    int fd;
    long got;
};

static void *big_reader(void *arg)
{
    struct big_rx *r = arg;
    static char buf[65536];
    sleep_ms(100);
    while (r->got < (long)BIG * BIG_N) {
        ssize_t n = read(r->fd, buf, sizeof buf);
        CHECK(n > 0, "read from the TCP peer");
        for (ssize_t i = 0; i < n; ++i) {
            long pos = r->got + i;
            char want = (char)('a' + (pos / BIG) * 7 + (pos % 251));
            CHECK(buf[i] == want, "byte %ld: %d, expected %d", pos, buf[i], want);
        }
        r->got += n;
    }
    return NULL;
}

static void phase_sendmmsg_tcp(void)
{
    set_phase("sendmmsg on TCP with 1 MiB messages");
    int a, b;
    tcp_pair(&a, &b);
    static char data[BIG_N][BIG];
    struct mmsghdr vec[BIG_N];
    struct iovec iov[BIG_N][2];
    memset(vec, 0, sizeof vec);
    for (int m = 0; m < BIG_N; ++m) {
        for (long i = 0; i < BIG; ++i) data[m][i] = (char)('a' + m * 7 + ((long)m * BIG + i) % 251);
        /* Two iovecs per message, split unevenly. */
        iov[m][0] = (struct iovec){data[m], 1000};
        iov[m][1] = (struct iovec){data[m] + 1000, BIG - 1000};
        vec[m].msg_hdr.msg_iov = iov[m];
        vec[m].msg_hdr.msg_iovlen = 2;
    }
    struct big_rx r = {b, 0};
    long ticks = ticker_ticks();
    pthread_t reader = spawn(big_reader, &r);
    int n = sendmmsg(a, vec, BIG_N, 0);
    CHECK(n == BIG_N, "sendmmsg returned %d", n);
    for (int m = 0; m < BIG_N; ++m) CHECK(vec[m].msg_len == BIG, "msg_len[%d] = %u", m, vec[m].msg_len);
    join_within(reader, 5000, "reader");
    CHECK(r.got == (long)BIG * BIG_N, "reader got %ld bytes", r.got);
    ticker_expect(ticks, 20, "sendmmsg on TCP");
    close(a);
    close(b);
}

static void *tcp_phase_main(void *arg)
{
    (void)arg;
    phase_sendmmsg_tcp();
    return NULL;
}

int main(void)
{
    watchdog(30);
    ticker_start();
    int a, b;
    udp_pair(&a, &b);
    phase_recv_all(a, b);
    phase_waitforone(a, b);
    phase_timeout(a, b);
    phase_rcvtimeo(a, b);
    phase_sendmmsg_unix();
    /* The TCP sender must be a thread too (a fiber under greenld). */
    join_within(spawn(tcp_phase_main, NULL), 10000, "TCP phase");
    ticker_stop();
    close(a);
    close(b);
    printf("t_mmsg: ok\n");
    return 0;
}
