/*
 * t_stdio_socket — hazard 1: stdio (fdopen + fgets/fprintf/fflush) on
 * sockets keeps working when the threads doing it are fibers.
 *
 *  1. A TCP line protocol over 127.0.0.1: NCLIENTS client threads, each with
 *     its own connection served by its own server thread, exchange NLINES
 *     request/response lines in batches (several lines in one stdio buffer,
 *     lines longer than the stdio buffer, responses echo the payload
 *     reversed). Each side uses one FILE for reading and one, on a dup of
 *     the fd, for writing. The close handshake goes through stdio too:
 *     shutdown(SHUT_WR), fgets() sees EOF, fclose().
 *  2. Ping-pong between two threads, each owning one end of a socketpair
 *     through fdopen.
 *  3. One FILE shared by several writer threads (stdio's per-FILE lock
 *     serialises whole fprintf calls) while a slow reader thread makes the
 *     writers block inside write() with that lock held: lines must arrive
 *     whole, in per-writer order.
 *
 * Passes natively and under LD_PRELOAD=libgreenld.so.
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

/* ---- part 1: many TCP connections, batched line protocol --------------- */

#define NCLIENTS 20
#define NLINES 200
#define BATCH 10
#define MAXPAYLOAD 6000 /* longer than stdio's 4 KiB socket buffer */
#define LINEBUF 8192

static struct sockaddr_in g_addr;
static int g_listener;

static size_t payload_len(int c, int l) { return (size_t)((c * 7919u + l * 104729u) % MAXPAYLOAD) + 1; }

static void make_payload(char *out, int c, int l)
{
    size_t n = payload_len(c, l);
    for (size_t i = 0; i < n; i++) out[i] = (char)('a' + (c * 31 + l * 17 + (int)i) % 26);
    out[n] = '\0';
}

static void *server_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    int wfd = dup(fd);
    CHECK(wfd >= 0, "dup(%d) = %d", fd, wfd);
    FILE *in = fdopen(fd, "r");
    CHECK(in != NULL, "fdopen(%d, \"r\")", fd);
    FILE *out = fdopen(wfd, "w");
    CHECK(out != NULL, "fdopen(%d, \"w\")", wfd);
    char *line = malloc(LINEBUF), *expect = malloc(LINEBUF), *rev = malloc(LINEBUF);
    CHECK(line && expect && rev, "malloc");
    int client = -1, count = 0;
    while (fgets(line, LINEBUF, in)) {
        size_t len = strlen(line);
        CHECK(len > 0 && line[len - 1] == '\n', "server fd %d: line %d not newline-terminated (len %zu)", fd, count,
              len);
        line[--len] = '\0';
        int c, l, off = 0;
        size_t n;
        char flag;
        int got = sscanf(line, "REQ %d %d %zu %c %n", &c, &l, &n, &flag, &off);
        CHECK(got == 4 && off > 0, "server fd %d: cannot parse line %d: '%.60s'", fd, count, line);
        if (client < 0) client = c;
        CHECK(c == client, "server fd %d: client id %d, first line said %d", fd, c, client);
        CHECK(l == count, "server fd %d client %d: got line number %d, expected %d", fd, c, l, count);
        CHECK(n == payload_len(c, l), "server client %d line %d: length field %zu, expected %zu", c, l, n,
              payload_len(c, l));
        make_payload(expect, c, l);
        CHECK(strlen(line + off) == n && memcmp(line + off, expect, n) == 0,
              "server client %d line %d: payload mismatch (got %zu bytes)", c, l, strlen(line + off));
        for (size_t i = 0; i < n; i++) rev[i] = expect[n - 1 - i];
        rev[n] = '\0';
        int w = fprintf(out, "ACK %d %d %zu %s\n", c, l, n, rev);
        CHECK(w > 0, "server client %d line %d: fprintf returned %d", c, l, w);
        if (flag == 'F') CHECK(fflush(out) == 0, "server client %d line %d: fflush", c, l);
        count++;
    }
    CHECK(feof(in) && !ferror(in), "server client %d: fgets stopped without EOF (feof %d ferror %d) after %d lines",
          client, feof(in), ferror(in), count);
    CHECK(count == NLINES, "server client %d: %d lines before EOF, expected %d", client, count, NLINES);
    CHECK(fclose(out) == 0, "server client %d: fclose(out)", client);
    CHECK(fclose(in) == 0, "server client %d: fclose(in)", client);
    free(line);
    free(expect);
    free(rev);
    return NULL;
}

static void *acceptor(void *arg)
{
    (void)arg;
    pthread_t servers[NCLIENTS];
    for (int i = 0; i < NCLIENTS; i++) {
        int fd = accept(g_listener, NULL, NULL);
        CHECK(fd >= 0, "accept #%d returned %d", i, fd);
        servers[i] = spawn(server_conn, (void *)(intptr_t)fd);
    }
    for (int i = 0; i < NCLIENTS; i++) join(servers[i]);
    return NULL;
}

static void *client(void *arg)
{
    int c = (int)(intptr_t)arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0, "client %d: socket", c);
    int rc = connect(fd, (struct sockaddr *)&g_addr, sizeof g_addr);
    CHECK(rc == 0, "client %d: connect returned %d", c, rc);
    int wfd = dup(fd);
    CHECK(wfd >= 0, "client %d: dup", c);
    FILE *in = fdopen(fd, "r");
    FILE *out = fdopen(wfd, "w");
    CHECK(in && out, "client %d: fdopen", c);
    char *payload = malloc(LINEBUF), *line = malloc(LINEBUF);
    CHECK(payload && line, "malloc");
    for (int b = 0; b < NLINES / BATCH; b++) {
        for (int k = 0; k < BATCH; k++) {
            int l = b * BATCH + k;
            make_payload(payload, c, l);
            int w = fprintf(out, "REQ %d %d %zu %c %s\n", c, l, payload_len(c, l), k == BATCH - 1 ? 'F' : 'N',
                            payload);
            CHECK(w > 0, "client %d line %d: fprintf returned %d", c, l, w);
        }
        CHECK(fflush(out) == 0, "client %d batch %d: fflush", c, b);
        for (int k = 0; k < BATCH; k++) {
            int l = b * BATCH + k;
            CHECK(fgets(line, LINEBUF, in) != NULL, "client %d line %d: fgets returned NULL (feof %d ferror %d)", c,
                  l, feof(in), ferror(in));
            size_t len = strlen(line);
            CHECK(len > 0 && line[len - 1] == '\n', "client %d line %d: response not newline-terminated", c, l);
            line[--len] = '\0';
            int rc2, rl, off = 0;
            size_t n;
            int got = sscanf(line, "ACK %d %d %zu %n", &rc2, &rl, &n, &off);
            CHECK(got == 3 && off > 0, "client %d line %d: cannot parse response '%.60s'", c, l, line);
            CHECK(rc2 == c && rl == l, "client %d line %d: response is for client %d line %d", c, l, rc2, rl);
            make_payload(payload, c, l);
            CHECK(n == payload_len(c, l) && strlen(line + off) == n, "client %d line %d: response length %zu/%zu", c,
                  l, n, strlen(line + off));
            for (size_t i = 0; i < n; i++)
                CHECK(line[off + i] == payload[n - 1 - i], "client %d line %d: response byte %zu differs", c, l, i);
        }
    }
    /* Close handshake through stdio: half-close, then the server's fclose
     * makes our fgets see EOF. */
    CHECK(shutdown(wfd, SHUT_WR) == 0, "client %d: shutdown", c);
    CHECK(fgets(line, LINEBUF, in) == NULL, "client %d: data after the last response: '%.60s'", c, line);
    CHECK(feof(in) && !ferror(in), "client %d: expected EOF (feof %d ferror %d)", c, feof(in), ferror(in));
    CHECK(fclose(out) == 0 && fclose(in) == 0, "client %d: fclose", c);
    free(payload);
    free(line);
    return NULL;
}

static void test_tcp_line_protocol(void)
{
    set_phase("tcp line protocol");
    g_listener = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(g_listener >= 0, "socket");
    memset(&g_addr, 0, sizeof g_addr);
    g_addr.sin_family = AF_INET;
    g_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof g_addr;
    CHECK(bind(g_listener, (struct sockaddr *)&g_addr, sizeof g_addr) == 0, "bind 127.0.0.1:0");
    CHECK(getsockname(g_listener, (struct sockaddr *)&g_addr, &len) == 0, "getsockname");
    CHECK(listen(g_listener, 128) == 0, "listen");
    pthread_t acc = spawn(acceptor, NULL);
    pthread_t clients[NCLIENTS];
    for (int c = 0; c < NCLIENTS; c++) clients[c] = spawn(client, (void *)(intptr_t)c);
    for (int c = 0; c < NCLIENTS; c++) join(clients[c]);
    join(acc);
    close(g_listener);
}

/* ---- part 2: ping-pong over a socketpair, one FILE pair per thread ----- */

#define PINGS 1000
static int g_pair[2];

static void *pinger(void *arg)
{
    (void)arg;
    FILE *in = fdopen(g_pair[0], "r");
    FILE *out = fdopen(dup(g_pair[0]), "w");
    CHECK(in && out, "pinger fdopen");
    char line[128];
    for (int i = 0; i < PINGS; i++) {
        CHECK(fprintf(out, "PING %d\n", i) > 0, "pinger fprintf %d", i);
        CHECK(fflush(out) == 0, "pinger fflush %d", i);
        CHECK(fgets(line, sizeof line, in) != NULL, "pinger fgets %d (feof %d ferror %d)", i, feof(in), ferror(in));
        int n = -1;
        CHECK(sscanf(line, "PONG %d", &n) == 1 && n == i, "pinger: expected PONG %d, got '%s'", i, line);
    }
    CHECK(fclose(out) == 0, "pinger fclose(out)");
    CHECK(fclose(in) == 0, "pinger fclose(in)");
    return NULL;
}

static void *ponger(void *arg)
{
    (void)arg;
    FILE *in = fdopen(g_pair[1], "r");
    FILE *out = fdopen(dup(g_pair[1]), "w");
    CHECK(in && out, "ponger fdopen");
    char line[128];
    int i = 0;
    while (fgets(line, sizeof line, in)) {
        int n = -1;
        CHECK(sscanf(line, "PING %d", &n) == 1 && n == i, "ponger: expected PING %d, got '%s'", i, line);
        CHECK(fprintf(out, "PONG %d\n", n) > 0, "ponger fprintf");
        CHECK(fflush(out) == 0, "ponger fflush");
        i++;
    }
    CHECK(feof(in) && !ferror(in), "ponger: fgets stopped without EOF");
    CHECK(i == PINGS, "ponger got %d pings, expected %d", i, PINGS);
    CHECK(fclose(out) == 0 && fclose(in) == 0, "ponger fclose");
    return NULL;
}

static void test_socketpair_pingpong(void)
{
    set_phase("socketpair ping-pong");
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, g_pair) == 0, "socketpair");
    pthread_t a = spawn(pinger, NULL), b = spawn(ponger, NULL);
    join(a);
    join(b);
}

/* ---- part 3: one FILE shared by several writers, slow reader ---------- */

#define SHARED_WRITERS 3
#define SHARED_LINES 300
static FILE *g_shared_out;
static int g_shared_pair[2];

static size_t shared_len(int w, int i) { return (size_t)((w * 3571u + i * 2903u) % 3000u) + 1000; }

static void *shared_writer(void *arg)
{
    int w = (int)(intptr_t)arg;
    char *buf = malloc(4096);
    CHECK(buf, "malloc");
    for (int i = 0; i < SHARED_LINES; i++) {
        size_t n = shared_len(w, i);
        memset(buf, 'A' + w, n);
        buf[n] = '\0';
        int r = fprintf(g_shared_out, "W %d %d %s\n", w, i, buf);
        CHECK(r > 0, "shared writer %d line %d: fprintf returned %d", w, i, r);
        CHECK(fflush(g_shared_out) == 0, "shared writer %d line %d: fflush", w, i);
    }
    free(buf);
    return NULL;
}

static void *shared_reader(void *arg)
{
    (void)arg;
    FILE *in = fdopen(g_shared_pair[1], "r");
    CHECK(in, "shared reader fdopen");
    char *line = malloc(8192);
    CHECK(line, "malloc");
    int next[SHARED_WRITERS] = {0};
    int total = 0;
    while (fgets(line, 8192, in)) {
        size_t len = strlen(line);
        CHECK(len > 0 && line[len - 1] == '\n', "shared reader: line %d not newline-terminated", total);
        line[--len] = '\0';
        int w = -1, i = -1, off = 0;
        CHECK(sscanf(line, "W %d %d %n", &w, &i, &off) == 2 && off > 0, "shared reader: bad line %d '%.40s'", total,
              line);
        CHECK(w >= 0 && w < SHARED_WRITERS, "shared reader: writer id %d", w);
        CHECK(i == next[w], "shared reader: writer %d line %d arrived, expected line %d", w, i, next[w]);
        size_t n = shared_len(w, i);
        CHECK(strlen(line + off) == n, "shared reader: writer %d line %d has %zu payload bytes, expected %zu "
              "(interleaved lines?)", w, i, strlen(line + off), n);
        for (size_t k = 0; k < n; k++)
            CHECK(line[off + k] == 'A' + w, "shared reader: writer %d line %d byte %zu is '%c'", w, i, k,
                  line[off + k]);
        next[w]++;
        total++;
        if (total % 25 == 0) usleep(1000); /* slow: writers fill the socket and block in write() */
    }
    CHECK(feof(in) && !ferror(in), "shared reader: fgets stopped without EOF");
    CHECK(total == SHARED_WRITERS * SHARED_LINES, "shared reader: %d lines, expected %d", total,
          SHARED_WRITERS * SHARED_LINES);
    fclose(in);
    free(line);
    return NULL;
}

static void test_shared_file(void)
{
    set_phase("shared FILE, several writer threads");
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, g_shared_pair) == 0, "socketpair");
    g_shared_out = fdopen(g_shared_pair[0], "w");
    CHECK(g_shared_out, "fdopen");
    pthread_t r = spawn(shared_reader, NULL);
    pthread_t w[SHARED_WRITERS];
    for (int i = 0; i < SHARED_WRITERS; i++) w[i] = spawn(shared_writer, (void *)(intptr_t)i);
    for (int i = 0; i < SHARED_WRITERS; i++) join(w[i]);
    CHECK(fclose(g_shared_out) == 0, "fclose shared FILE");
    join(r);
}

int main(void)
{
    watchdog(20);
    fprintf(stderr, "t_stdio_socket: running %s\n", is_shim() ? "under greenld" : "natively");
    test_tcp_line_protocol();
    test_socketpair_pingpong();
    test_shared_file();
    fprintf(stderr, "t_stdio_socket: all checks passed\n");
    return 0;
}
