/*
 * t_two_readers — hazard 3: several threads on one stream socket.
 *
 *  1. Two reader threads read one stream socket while a writer thread sends
 *     4 MiB of 8-byte records (a sequence number each) in random-sized,
 *     record-aligned chunks. Each reader reads exactly one record per call
 *     with recv(MSG_WAITALL). Every record must reach exactly one reader,
 *     and each reader must see strictly increasing sequence numbers (the
 *     stream is ordered and a reader's next call starts after its previous
 *     one returned).
 *
 *     Why AF_UNIX and record-aligned chunks: Linux releases the socket lock
 *     while a MSG_WAITALL reader sleeps for the rest of its bytes, so if
 *     the receive queue could ever end in the middle of a record, the other
 *     reader could take the record's tail and natively split a record. An
 *     AF_UNIX stream socket queues each send() as skbs whose sizes are
 *     multiples of 8 when every send() length is (skb payloads are capped
 *     at (sndbuf/2 - 64) and at 3776 + 32768 bytes, both multiples of 8
 *     with the SO_SNDBUF set below),
 *     so the queue always holds whole records and no reader ever sleeps in
 *     the middle of one. TCP segments by MSS, which gives no such promise.
 *
 *  2. Full duplex: on each end of a connected socket, one thread reads
 *     while another thread writes the same fd; 8 MiB each way, random
 *     write/read sizes, every byte compared and an FNV-1a checksum of each
 *     direction compared. Over TCP 127.0.0.1 and over an AF_UNIX socketpair.
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
#include <time.h>
#include <unistd.h>

#include "test_support.h"

static uint64_t fnv1a(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}
#define FNV_INIT 14695981039346656037ull

/* ---- part 1: two readers, record framing -------------------------------- */

#define NREC ((4u << 20) / 8)
static int g_rec_pair[2];
static uint8_t *g_seen[2];

static void *record_writer(void *arg)
{
    (void)arg;
    uint64_t *recs = malloc(NREC * sizeof *recs);
    CHECK(recs, "malloc");
    for (uint64_t i = 0; i < NREC; i++) recs[i] = i;
    uint64_t rng = 0x1234567887654321ull;
    size_t off = 0, total = NREC * 8;
    while (off < total) {
        size_t chunk = (size_t)(rng_next(&rng) % 8192 + 1) * 8; /* 8 B .. 64 KiB, record-aligned */
        if (chunk > total - off) chunk = total - off;
        ssize_t n = send(g_rec_pair[0], (char *)recs + off, chunk, 0);
        CHECK(n == (ssize_t)chunk, "blocking send of %zu bytes at offset %zu returned %zd", chunk, off, n);
        off += chunk;
    }
    CHECK(shutdown(g_rec_pair[0], SHUT_WR) == 0, "shutdown(SHUT_WR)");
    free(recs);
    return NULL;
}

static void *record_reader(void *arg)
{
    int id = (int)(intptr_t)arg;
    uint8_t *seen = g_seen[id];
    long count = 0;
    int64_t last = -1;
    for (;;) {
        uint64_t rec;
        ssize_t n = recv(g_rec_pair[1], &rec, sizeof rec, MSG_WAITALL);
        if (n == 0) break;
        CHECK(n == 8, "reader %d: recv(8, MSG_WAITALL) returned %zd after %ld records (last seq %lld)", id, n, count,
              (long long)last);
        CHECK(rec < NREC, "reader %d: record %ld holds %llu, not a sequence number below %u (split record?)", id,
              count, (unsigned long long)rec, NREC);
        CHECK((int64_t)rec > last, "reader %d: sequence went from %lld to %llu", id, (long long)last,
              (unsigned long long)rec);
        last = (int64_t)rec;
        seen[rec]++;
        count++;
    }
    return (void *)(intptr_t)count;
}

static void test_two_readers(void)
{
    set_phase("two readers on one AF_UNIX stream socket");
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, g_rec_pair) == 0, "socketpair");
    /* A known send buffer (the kernel doubles it: 128 KiB), whatever
     * net.core.wmem_default is: skb payloads of at most 65472 bytes. */
    int sndbuf = 65536;
    CHECK(setsockopt(g_rec_pair[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf) == 0, "SO_SNDBUF");
    g_seen[0] = calloc(NREC, 1);
    g_seen[1] = calloc(NREC, 1);
    CHECK(g_seen[0] && g_seen[1], "calloc");
    pthread_t r0 = spawn(record_reader, (void *)0), r1 = spawn(record_reader, (void *)1);
    pthread_t w = spawn(record_writer, NULL);
    join(w);
    long c0 = (long)(intptr_t)join(r0), c1 = (long)(intptr_t)join(r1);
    for (uint32_t i = 0; i < NREC; i++) {
        int total = g_seen[0][i] + g_seen[1][i];
        CHECK(total == 1, "record %u received %d times (reader 0: %d, reader 1: %d)", i, total, g_seen[0][i],
              g_seen[1][i]);
    }
    CHECK(c0 + c1 == (long)NREC, "readers got %ld + %ld records, expected %u", c0, c1, NREC);
    fprintf(stderr, "  two readers: reader 0 got %ld records, reader 1 got %ld\n", c0, c1);
    free(g_seen[0]);
    free(g_seen[1]);
    close(g_rec_pair[0]);
    close(g_rec_pair[1]);
}

/* ---- part 2: full duplex, reader and writer threads on one fd ---------- */

#define DUPLEX_BYTES (8u << 20)

struct direction {
    const char *name;
    int wfd, rfd;
    unsigned char *data; /* what the writer sends */
    uint64_t sent_sum;
    uint64_t recv_sum;
    uint64_t seed;
};

static void *duplex_writer(void *arg)
{
    struct direction *d = arg;
    uint64_t rng = d->seed ^ 0xabcdef;
    size_t off = 0;
    while (off < DUPLEX_BYTES) {
        size_t chunk = (size_t)(rng_next(&rng) % (128 * 1024)) + 1;
        if (chunk > DUPLEX_BYTES - off) chunk = DUPLEX_BYTES - off;
        ssize_t n = write(d->wfd, d->data + off, chunk);
        CHECK(n == (ssize_t)chunk, "%s: blocking write of %zu bytes at offset %zu returned %zd", d->name, chunk, off,
              n);
        off += chunk;
    }
    CHECK(shutdown(d->wfd, SHUT_WR) == 0, "%s: shutdown(SHUT_WR)", d->name);
    return NULL;
}

static void *duplex_reader(void *arg)
{
    struct direction *d = arg;
    uint64_t rng = d->seed ^ 0x5555;
    unsigned char *buf = malloc(128 * 1024);
    CHECK(buf, "malloc");
    size_t off = 0;
    uint64_t sum = FNV_INIT;
    for (;;) {
        size_t want = (size_t)(rng_next(&rng) % (128 * 1024)) + 1;
        ssize_t n = read(d->rfd, buf, want);
        CHECK(n >= 0, "%s: read(%zu) at offset %zu returned %zd", d->name, want, off, n);
        if (n == 0) break;
        CHECK(off + (size_t)n <= DUPLEX_BYTES, "%s: received more than the %u bytes sent", d->name, DUPLEX_BYTES);
        if (memcmp(buf, d->data + off, (size_t)n) != 0) {
            size_t i = 0;
            while (buf[i] == d->data[off + i]) i++;
            CHECK(0, "%s: byte %zu differs: got 0x%02x, sent 0x%02x", d->name, off + i, buf[i], d->data[off + i]);
        }
        sum = fnv1a(sum, buf, (size_t)n);
        off += (size_t)n;
    }
    CHECK(off == DUPLEX_BYTES, "%s: EOF after %zu bytes, expected %u", d->name, off, DUPLEX_BYTES);
    d->recv_sum = sum;
    free(buf);
    return NULL;
}

static void full_duplex(const char *what, int a, int b)
{
    struct direction dirs[2] = {
        {"a->b", a, b, NULL, 0, 0, 0x1111},
        {"b->a", b, a, NULL, 0, 0, 0x2222},
    };
    for (int i = 0; i < 2; i++) {
        dirs[i].data = malloc(DUPLEX_BYTES);
        CHECK(dirs[i].data, "malloc");
        uint64_t rng = dirs[i].seed;
        for (size_t k = 0; k < DUPLEX_BYTES; k += 8) {
            uint64_t v = rng_next(&rng);
            memcpy(dirs[i].data + k, &v, 8);
        }
        dirs[i].sent_sum = fnv1a(FNV_INIT, dirs[i].data, DUPLEX_BYTES);
    }
    set_phase(what);
    pthread_t t[4];
    /* On each fd: one thread reads while another writes. */
    t[0] = spawn(duplex_reader, &dirs[0]); /* reads b */
    t[1] = spawn(duplex_writer, &dirs[1]); /* writes b */
    t[2] = spawn(duplex_reader, &dirs[1]); /* reads a */
    t[3] = spawn(duplex_writer, &dirs[0]); /* writes a */
    for (int i = 0; i < 4; i++) join(t[i]);
    for (int i = 0; i < 2; i++) {
        CHECK(dirs[i].recv_sum == dirs[i].sent_sum, "%s %s: checksum of received data %016llx != sent %016llx", what,
              dirs[i].name, (unsigned long long)dirs[i].recv_sum, (unsigned long long)dirs[i].sent_sum);
        free(dirs[i].data);
    }
}

static void test_full_duplex(void)
{
    int a, b;
    tcp_pair(&a, &b);
    full_duplex("full duplex over TCP 127.0.0.1", a, b);
    close(a);
    close(b);
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
    full_duplex("full duplex over an AF_UNIX socketpair", sv[0], sv[1]);
    close(sv[0]);
    close(sv[1]);
}

int main(void)
{
    watchdog(25);
    fprintf(stderr, "t_two_readers: running %s\n", is_shim() ? "under greenld" : "natively");
    test_two_readers();
    test_full_duplex();
    fprintf(stderr, "t_two_readers: all checks passed\n");
    return 0;
}
