/*
 * t_udp — datagram and sequenced-packet sockets between threads:
 *
 *  1. UDP on 127.0.0.1: a receiver thread in blocking recvfrom(), a sender
 *     thread in sendto(); 1000 datagrams of varying size (0..9000 bytes),
 *     boundaries preserved, sender address correct. UDP may drop on
 *     overflow, so the sender waits for an ack datagram (sent back by the
 *     receiver, received with a blocking recvfrom) after each window of 8:
 *     at most 8 datagrams (~72 KB) are ever queued, well under SO_RCVBUF.
 *  2. sendmsg()/recvmsg() with iovecs on UDP: 3 send iovecs, 3 receive
 *     iovecs split differently, msg_name filled in, MSG_TRUNC reported when
 *     the receive buffers are too small (and recv(MSG_TRUNC) returning the
 *     real length, a Linux extension for UDP and AF_UNIX datagrams).
 *  3. AF_UNIX SOCK_DGRAM socketpair: 1000 datagrams of varying size, no
 *     acks needed: the sender blocks when the receiver's queue is full
 *     (net.unix.max_dgram_qlen), and the receiver is slow at first so that
 *     it does. recvfrom reports an address length of 0 for the unnamed peer.
 *     Then bound abstract-namespace AF_UNIX datagram sockets: the sender
 *     address is the sender's bound name.
 *  4. SOCK_SEQPACKET socketpair: 1000 messages of varying size (1..20000)
 *     one way while replies go the other way, boundaries preserved, and
 *     recv() returns 0 after the peer closes.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "test_support.h"

/* ---- datagram contents ---------------------------------------------------- */

#define NDGRAMS 1000
#define WINDOW 8

static size_t dgram_len(int i, size_t max) { return (i % 97 == 0) ? 0 : (size_t)((i * 2654435761u) % (max + 1)); }

static void fill(unsigned char *p, int i, size_t n)
{
    for (size_t k = 0; k < n; k++) p[k] = (unsigned char)(i * 31 + k * 7 + 1);
}

static void verify(const char *what, const unsigned char *p, int i, size_t n)
{
    for (size_t k = 0; k < n; k++)
        CHECK(p[k] == (unsigned char)(i * 31 + k * 7 + 1), "%s: datagram %d byte %zu is %#x", what, i, k, p[k]);
}

static int udp_socket(struct sockaddr_in *addr)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    CHECK(fd >= 0, "socket(AF_INET, SOCK_DGRAM)");
    memset(addr, 0, sizeof *addr);
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof *addr;
    CHECK(bind(fd, (struct sockaddr *)addr, sizeof *addr) == 0, "bind 127.0.0.1:0");
    CHECK(getsockname(fd, (struct sockaddr *)addr, &len) == 0, "getsockname");
    /* Room for everything a test ever leaves queued: no drops. */
    int rcvbuf = 1 << 20;
    CHECK(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) == 0, "SO_RCVBUF");
    return fd;
}

/* ---- part 1: UDP with recvfrom/sendto ------------------------------------- */

#define UDP_MAX 9000
static int g_urecv, g_usend;
static struct sockaddr_in g_arecv, g_asend;

static void *udp_receiver(void *arg)
{
    (void)arg;
    unsigned char *buf = malloc(65536);
    CHECK(buf, "malloc");
    for (int i = 0; i < NDGRAMS; i++) {
        struct sockaddr_in from;
        memset(&from, 0xaa, sizeof from);
        socklen_t flen = sizeof from;
        ssize_t n = recvfrom(g_urecv, buf, 65536, 0, (struct sockaddr *)&from, &flen);
        size_t want = dgram_len(i, UDP_MAX);
        CHECK(n == (ssize_t)want, "udp receiver: datagram %d has %zd bytes, expected %zu (lost, merged or split?)", i,
              n, want);
        verify("udp receiver", buf, i, want);
        CHECK(flen == sizeof from && from.sin_family == AF_INET && from.sin_port == g_asend.sin_port &&
                  from.sin_addr.s_addr == g_asend.sin_addr.s_addr,
              "udp receiver: datagram %d from %s:%u (len %u), expected 127.0.0.1:%u", i, inet_ntoa(from.sin_addr),
              ntohs(from.sin_port), flen, ntohs(g_asend.sin_port));
        if (i % WINDOW == WINDOW - 1 || i == NDGRAMS - 1) {
            int ack = i;
            ssize_t s = sendto(g_urecv, &ack, sizeof ack, 0, (struct sockaddr *)&from, flen);
            CHECK(s == (ssize_t)sizeof ack, "udp receiver: ack sendto returned %zd", s);
        }
    }
    free(buf);
    return NULL;
}

static void *udp_sender(void *arg)
{
    (void)arg;
    unsigned char *buf = malloc(UDP_MAX);
    CHECK(buf, "malloc");
    for (int i = 0; i < NDGRAMS; i++) {
        size_t n = dgram_len(i, UDP_MAX);
        fill(buf, i, n);
        ssize_t s = sendto(g_usend, buf, n, 0, (struct sockaddr *)&g_arecv, sizeof g_arecv);
        CHECK(s == (ssize_t)n, "udp sender: sendto of datagram %d (%zu bytes) returned %zd", i, n, s);
        if (i % WINDOW == WINDOW - 1 || i == NDGRAMS - 1) {
            int ack = -1;
            struct sockaddr_in from;
            socklen_t flen = sizeof from;
            ssize_t r = recvfrom(g_usend, &ack, sizeof ack, 0, (struct sockaddr *)&from, &flen);
            CHECK(r == (ssize_t)sizeof ack && ack == i, "udp sender: ack for %d: recvfrom returned %zd, ack %d", i, r,
                  ack);
            CHECK(from.sin_port == g_arecv.sin_port, "udp sender: ack from port %u, expected %u", ntohs(from.sin_port),
                  ntohs(g_arecv.sin_port));
        }
    }
    free(buf);
    return NULL;
}

static void test_udp(void)
{
    set_phase("UDP recvfrom/sendto between threads");
    g_urecv = udp_socket(&g_arecv);
    g_usend = udp_socket(&g_asend);
    pthread_t r = spawn(udp_receiver, NULL);
    pthread_t s = spawn(udp_sender, NULL);
    join(s);
    join(r);
    close(g_urecv);
    close(g_usend);
}

/* ---- part 2: UDP sendmsg/recvmsg with iovecs --------------------------------- */

struct msg_case {
    int count;
    int received; /* atomic: datagrams the receiver has checked */
};

static void *msg_receiver(void *arg)
{
    struct msg_case *mc = arg;
    for (int i = 0; i < mc->count; i++) {
        /* Total payload: 8-byte header + 100*i%1400 body + 4-byte trailer. */
        size_t body = (size_t)(100 * i % 1400);
        size_t total = 8 + body + 4;
        unsigned char a[5], b[700], c[2000];
        memset(a, 0, sizeof a);
        memset(b, 0, sizeof b);
        memset(c, 0, sizeof c);
        struct iovec iov[3] = {{a, sizeof a}, {b, sizeof b}, {c, sizeof c}};
        struct sockaddr_in from;
        struct msghdr m = {0};
        m.msg_name = &from;
        m.msg_namelen = sizeof from;
        m.msg_iov = iov;
        m.msg_iovlen = 3;
        ssize_t n = recvmsg(g_urecv, &m, 0);
        CHECK(n == (ssize_t)total, "recvmsg %d returned %zd, expected %zu", i, n, total);
        CHECK(!(m.msg_flags & MSG_TRUNC), "recvmsg %d: MSG_TRUNC set with room for the datagram", i);
        CHECK(m.msg_namelen == sizeof from && from.sin_port == g_asend.sin_port,
              "recvmsg %d: msg_namelen %u port %u, expected port %u", i, m.msg_namelen, ntohs(from.sin_port),
              ntohs(g_asend.sin_port));
        unsigned char flat[8 + 1400 + 4];
        size_t k = 0;
        for (int v = 0; v < 3 && k < total; v++)
            for (size_t j = 0; j < iov[v].iov_len && k < total; j++) flat[k++] = ((unsigned char *)iov[v].iov_base)[j];
        uint32_t seq;
        memcpy(&seq, flat, 4);
        CHECK(seq == (uint32_t)i && memcmp(flat + 4, "HDR:", 4) == 0, "recvmsg %d: header seq %u", i, seq);
        verify("recvmsg body", flat + 8, i, body);
        CHECK(memcmp(flat + 8 + body, "END!", 4) == 0, "recvmsg %d: trailer", i);
        __atomic_store_n(&mc->received, i + 1, __ATOMIC_RELEASE);
    }
    /* Truncation: a 3000-byte datagram into 5+700 bytes. */
    unsigned char a[5], b[700];
    struct iovec iov[2] = {{a, sizeof a}, {b, sizeof b}};
    struct msghdr m = {0};
    m.msg_iov = iov;
    m.msg_iovlen = 2;
    ssize_t n = recvmsg(g_urecv, &m, 0);
    CHECK(n == 705 && (m.msg_flags & MSG_TRUNC), "recvmsg of a 3000-byte datagram into 705 bytes returned %zd, "
          "msg_flags %#x (expected 705 and MSG_TRUNC)", n, m.msg_flags);
    verify("truncated recvmsg", a, 9999, 5);
    /* recv(MSG_TRUNC) returns the real length of the datagram. */
    n = recv(g_urecv, a, sizeof a, MSG_TRUNC);
    CHECK(n == 3000, "recv(5 bytes, MSG_TRUNC) of a 3000-byte datagram returned %zd, expected 3000", n);
    return NULL;
}

static void test_udp_msg(void)
{
    set_phase("UDP sendmsg/recvmsg with iovecs");
    struct msg_case mc = {200, 0};
    pthread_t r = spawn(msg_receiver, &mc);
    static unsigned char body[1400];
    for (int i = 0; i < mc.count; i++) {
        size_t blen = (size_t)(100 * i % 1400);
        uint32_t seq = (uint32_t)i;
        unsigned char hdr[8];
        memcpy(hdr, &seq, 4);
        memcpy(hdr + 4, "HDR:", 4);
        fill(body, i, blen);
        struct iovec iov[3] = {{hdr, 8}, {body, blen}, {"END!", 4}};
        struct msghdr m = {0};
        m.msg_name = &g_arecv;
        m.msg_namelen = sizeof g_arecv;
        m.msg_iov = iov;
        m.msg_iovlen = 3;
        /* Flow control: never more than WINDOW datagrams queued, so UDP
         * never drops whatever SO_RCVBUF the system allows. */
        while (i - __atomic_load_n(&mc.received, __ATOMIC_ACQUIRE) >= WINDOW) sleep_ms(1);
        ssize_t n = sendmsg(g_usend, &m, 0);
        CHECK(n == (ssize_t)(12 + blen), "sendmsg %d returned %zd", i, n);
    }
    static unsigned char big[3000];
    fill(big, 9999, sizeof big);
    CHECK(sendto(g_usend, big, sizeof big, 0, (struct sockaddr *)&g_arecv, sizeof g_arecv) == 3000, "sendto 3000");
    CHECK(sendto(g_usend, big, sizeof big, 0, (struct sockaddr *)&g_arecv, sizeof g_arecv) == 3000, "sendto 3000");
    join(r);
    close(g_urecv);
    close(g_usend);
}

/* ---- part 3: AF_UNIX datagrams -------------------------------------------- */

#define UNIX_MAX 16000
static int g_unix[2];

static void *unix_receiver(void *arg)
{
    const char *expect_name = arg; /* NULL: unnamed socketpair peer */
    unsigned char *buf = malloc(65536);
    CHECK(buf, "malloc");
    sleep_ms(50); /* the sender fills the queue and blocks */
    for (int i = 0; i < NDGRAMS; i++) {
        struct sockaddr_un from;
        memset(&from, 0x55, sizeof from);
        socklen_t flen = sizeof from;
        ssize_t n = recvfrom(g_unix[1], buf, 65536, 0, (struct sockaddr *)&from, &flen);
        size_t want = dgram_len(i, UNIX_MAX);
        CHECK(n == (ssize_t)want, "unix dgram receiver: datagram %d has %zd bytes, expected %zu", i, n, want);
        verify("unix dgram receiver", buf, i, want);
        if (!expect_name) {
            CHECK(flen == 0, "unix dgram receiver: address length %u for an unnamed socketpair peer, Linux gives 0",
                  flen);
        } else {
            socklen_t elen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(expect_name + 1));
            CHECK(flen == elen && from.sun_family == AF_UNIX &&
                      memcmp(from.sun_path, expect_name, elen - offsetof(struct sockaddr_un, sun_path)) == 0,
                  "unix dgram receiver: datagram %d from an address of length %u, expected the sender's abstract "
                  "name '@%s' (length %u)", i, flen, expect_name + 1, elen);
        }
        if (i % 100 == 0) sleep_ms(2);
    }
    free(buf);
    return NULL;
}

static void *unix_sender(void *arg)
{
    (void)arg;
    unsigned char *buf = malloc(UNIX_MAX);
    CHECK(buf, "malloc");
    for (int i = 0; i < NDGRAMS; i++) {
        size_t n = dgram_len(i, UNIX_MAX);
        fill(buf, i, n);
        ssize_t s = send(g_unix[0], buf, n, 0);
        CHECK(s == (ssize_t)n, "unix dgram sender: send of datagram %d (%zu bytes) returned %zd", i, n, s);
    }
    free(buf);
    return NULL;
}

static socklen_t abstract_addr(struct sockaddr_un *a, const char *name)
{
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    a->sun_path[0] = '\0';
    memcpy(a->sun_path + 1, name, strlen(name));
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name));
}

static void test_unix_dgram(void)
{
    set_phase("AF_UNIX SOCK_DGRAM socketpair");
    CHECK(socketpair(AF_UNIX, SOCK_DGRAM, 0, g_unix) == 0, "socketpair(SOCK_DGRAM)");
    pthread_t r = spawn(unix_receiver, NULL);
    pthread_t s = spawn(unix_sender, NULL);
    join(s);
    join(r);
    close(g_unix[0]);
    close(g_unix[1]);

    set_phase("AF_UNIX SOCK_DGRAM, bound abstract names");
    char rname[64], sname[64];
    snprintf(rname, sizeof rname, "greenld-t_udp-%d-r", (int)getpid());
    snprintf(sname, sizeof sname, "greenld-t_udp-%d-s", (int)getpid());
    struct sockaddr_un ra, sa;
    socklen_t rlen = abstract_addr(&ra, rname), slen = abstract_addr(&sa, sname);
    g_unix[0] = socket(AF_UNIX, SOCK_DGRAM, 0);
    g_unix[1] = socket(AF_UNIX, SOCK_DGRAM, 0);
    CHECK(g_unix[0] >= 0 && g_unix[1] >= 0, "socket(AF_UNIX, SOCK_DGRAM)");
    CHECK(bind(g_unix[1], (struct sockaddr *)&ra, rlen) == 0, "bind receiver");
    CHECK(bind(g_unix[0], (struct sockaddr *)&sa, slen) == 0, "bind sender");
    CHECK(connect(g_unix[0], (struct sockaddr *)&ra, rlen) == 0, "connect sender to receiver");
    static char expect[65];
    expect[0] = '\0';
    memcpy(expect + 1, sname, strlen(sname) + 1);
    r = spawn(unix_receiver, expect);
    s = spawn(unix_sender, NULL);
    join(s);
    join(r);
    close(g_unix[0]);
    close(g_unix[1]);
}

/* ---- part 4: SOCK_SEQPACKET ------------------------------------------------- */

#define SEQ_MAX 20000
static int g_seq[2];

static size_t seq_len(int i) { return (size_t)((i * 40503u) % SEQ_MAX) + 1; }

static void *seq_receiver(void *arg)
{
    (void)arg;
    unsigned char *buf = malloc(SEQ_MAX + 100);
    CHECK(buf, "malloc");
    sleep_ms(30);
    for (int i = 0; i < NDGRAMS; i++) {
        ssize_t n = recv(g_seq[1], buf, SEQ_MAX + 100, 0);
        CHECK(n == (ssize_t)seq_len(i), "seqpacket receiver: message %d has %zd bytes, expected %zu", i, n,
              seq_len(i));
        verify("seqpacket receiver", buf, i, seq_len(i));
        if (i % 10 == 9) {
            uint32_t ack = (uint32_t)i;
            CHECK(send(g_seq[1], &ack, sizeof ack, 0) == sizeof ack, "seqpacket receiver: reply %d", i);
        }
    }
    ssize_t n = recv(g_seq[1], buf, SEQ_MAX, 0);
    CHECK(n == 0, "seqpacket receiver: recv after the peer closed returned %zd, expected 0 (EOF)", n);
    free(buf);
    return NULL;
}

static void *seq_reply_reader(void *arg)
{
    (void)arg;
    for (int k = 0; k < NDGRAMS / 10; k++) {
        uint32_t ack = 0;
        unsigned char buf[16];
        ssize_t n = recv(g_seq[0], buf, sizeof buf, 0);
        CHECK(n == (ssize_t)sizeof ack, "seqpacket reply reader: reply %d has %zd bytes", k, n);
        memcpy(&ack, buf, sizeof ack);
        CHECK(ack == (uint32_t)(k * 10 + 9), "seqpacket reply reader: reply %u, expected %d", ack, k * 10 + 9);
    }
    return NULL;
}

static void test_seqpacket(void)
{
    set_phase("SOCK_SEQPACKET socketpair");
    CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, g_seq) == 0, "socketpair(SOCK_SEQPACKET)");
    pthread_t r = spawn(seq_receiver, NULL);
    pthread_t rr = spawn(seq_reply_reader, NULL);
    unsigned char *buf = malloc(SEQ_MAX);
    CHECK(buf, "malloc");
    for (int i = 0; i < NDGRAMS; i++) { /* the main thread sends */
        size_t n = seq_len(i);
        fill(buf, i, n);
        struct iovec iov[2] = {{buf, n / 2}, {buf + n / 2, n - n / 2}};
        struct msghdr m = {0};
        m.msg_iov = iov;
        m.msg_iovlen = 2;
        ssize_t s = sendmsg(g_seq[0], &m, 0);
        CHECK(s == (ssize_t)n, "seqpacket sendmsg of message %d (%zu bytes) returned %zd", i, n, s);
    }
    join(rr);
    CHECK(shutdown(g_seq[0], SHUT_WR) == 0, "shutdown");
    join(r);
    free(buf);
    close(g_seq[0]);
    close(g_seq[1]);
}

int main(void)
{
    watchdog(25);
    fprintf(stderr, "t_udp: running %s\n", is_shim() ? "under greenld" : "natively");
    test_udp();
    /* The same sockets again, for sendmsg/recvmsg. */
    g_urecv = udp_socket(&g_arecv);
    g_usend = udp_socket(&g_asend);
    test_udp_msg();
    test_unix_dgram();
    test_seqpacket();
    fprintf(stderr, "t_udp: all checks passed\n");
    return 0;
}
