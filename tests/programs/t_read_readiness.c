/*
 * t_read_readiness — a blocking read returns data whenever data is there,
 * whatever the shim remembers of the fd's earlier reads (its readiness
 * hints decide only whether it tries the call or waits first).
 *
 *  1. Stale "empty": a short read drained the socket; data then arrives
 *     before the next read: that read returns it at once, also with an
 *     SO_RCVTIMEO of 1 us (a wait begun on the stale hint times out at once:
 *     the data must still come back, not EAGAIN); with nothing there, the
 *     same read fails with EAGAIN. The same over a pipe, without timeout.
 *  2. Learned "wait first": 300 one-byte round trips (a read that fills its
 *     buffer, then nothing until the peer answers), then the peer sends two
 *     bytes at once: two 1 us-timeout reads of one byte both get theirs.
 *  3. The program's own O_NONBLOCK (fcntl on a dup, FIONBIO, SOCK_NONBLOCK):
 *     EAGAIN exactly when nothing is queued, the data when it is, blocking
 *     again once the flag is cleared.
 *  4. dup and reuse: data written to a dup'd fd's socket is read through
 *     either number; a closed fd number reused by a new socket that already
 *     holds data reads it at once.
 *  5. Eight threads reading one byte at a time from one socket (spread over
 *     hubs under greenld) while a writer sends 6,000 bytes in bursts: every
 *     byte reaches exactly one reader, and the writer's shutdown gives every
 *     reader EOF. Six threads in accept() on one listener: 60 connections,
 *     each accepted once, then one stop connection each.
 *  6. A thread in poll() and a thread in read() on one fd: one byte wakes
 *     both (the poller sees POLLIN, the reader gets the byte).
 *  7. A write wakes the reader of its pipe's other end directly (io.h,
 *     wake_peer_readers), while another process also waits in read() on
 *     that pipe: whichever of them the kernel gives a byte, the thread's
 *     read returns one byte (a wake-up that finds the byte taken waits
 *     again), 20 times over.
 */
#define _GNU_SOURCE
#include <sys/ioctl.h>
#include <sys/wait.h>

#include "test_support.h"

static const int64_t kPromptNs = 2000000000; /* "at once", with room for a loaded machine */

static void set_rcvtimeo_us(int fd, long us)
{
    struct timeval tv = {us / 1000000, us % 1000000};
    CHECK_EQ(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
}

/* ---- 1. stale "empty" -------------------------------------------------- */

static void stale_empty(void)
{
    int sv[2];
    char buf[64];
    set_phase("stale empty: a short read drains the socket");
    unix_pair(sv, SOCK_STREAM);
    write_exact(sv[1], "ab", 2, "ab");
    CHECK_EQ(read(sv[0], buf, sizeof buf), 2);
    set_phase("stale empty: data arrived before the next read");
    write_exact(sv[1], "cd", 2, "cd");
    int64_t t0 = now_ns();
    CHECK_EQ(read(sv[0], buf, sizeof buf), 2);
    CHECK(memcmp(buf, "cd", 2) == 0, "got %.2s", buf);
    CHECK(now_ns() - t0 < kPromptNs, "read waited %lld ns for queued data", (long long)(now_ns() - t0));
    set_phase("stale empty: 1 us SO_RCVTIMEO, data queued");
    set_rcvtimeo_us(sv[0], 1);
    write_exact(sv[1], "ef", 2, "ef");
    CHECK_EQ(recv(sv[0], buf, sizeof buf, 0), 2);
    CHECK(memcmp(buf, "ef", 2) == 0, "got %.2s", buf);
    write_exact(sv[1], "gh", 2, "gh");
    CHECK_EQ(read(sv[0], buf, sizeof buf), 2);
    set_phase("stale empty: 1 us SO_RCVTIMEO, nothing queued");
    errno = 0;
    CHECK_EQ(read(sv[0], buf, sizeof buf), -1);
    CHECK(errno == EAGAIN, "errno %d, want EAGAIN", errno);
    set_phase("stale empty: then data again");
    write_exact(sv[1], "ij", 2, "ij");
    CHECK_EQ(read(sv[0], buf, sizeof buf), 2);
    close(sv[0]);
    close(sv[1]);

    set_phase("stale empty: a pipe");
    int p[2];
    CHECK_EQ(pipe(p), 0);
    write_exact(p[1], "kl", 2, "kl");
    CHECK_EQ(read(p[0], buf, sizeof buf), 2);
    write_exact(p[1], "mn", 2, "mn");
    t0 = now_ns();
    CHECK_EQ(read(p[0], buf, sizeof buf), 2);
    CHECK(now_ns() - t0 < kPromptNs, "pipe read waited for queued data");
    close(p[0]);
    close(p[1]);
}

/* ---- 2. learned "wait first" ------------------------------------------- */

enum { kRoundTrips = 300 };
static int g_pp[2];
static struct pipe_event g_two_sent;

static void *one_byte_echoer(void *arg)
{
    (void)arg;
    char c;
    for (int i = 0; i < kRoundTrips; i++) {
        read_exact(g_pp[1], &c, 1, "echoer: ping");
        c ^= 0x55;
        write_exact(g_pp[1], &c, 1, "echoer: pong");
    }
    read_exact(g_pp[1], &c, 1, "echoer: go");
    write_exact(g_pp[1], "xy", 2, "echoer: two bytes");
    pipe_event_set(&g_two_sent);
    return NULL;
}

static void *one_byte_initiator(void *arg)
{
    (void)arg;
    for (int i = 0; i < kRoundTrips; i++) {
        char c = (char)(i & 0x7f);
        write_exact(g_pp[0], &c, 1, "initiator: ping");
        read_exact(g_pp[0], &c, 1, "initiator: pong");
        CHECK_EQ(c, (char)((i & 0x7f) ^ 0x55));
    }
    write_exact(g_pp[0], "g", 1, "initiator: go");
    pipe_event_wait(&g_two_sent);
    set_phase("learned wait-first: two queued bytes, read one at a time with a 1 us timeout");
    set_rcvtimeo_us(g_pp[0], 1);
    char c = 0;
    CHECK_EQ(read(g_pp[0], &c, 1), 1);
    CHECK_EQ(c, 'x');
    CHECK_EQ(recv(g_pp[0], &c, 1, 0), 1);
    CHECK_EQ(c, 'y');
    errno = 0;
    CHECK_EQ(read(g_pp[0], &c, 1), -1);
    CHECK(errno == EAGAIN, "errno %d, want EAGAIN", errno);
    return NULL;
}

static void learned_wait_first(void)
{
    set_phase("learned wait-first: one-byte round trips");
    unix_pair(g_pp, SOCK_STREAM);
    pipe_event_init(&g_two_sent);
    pthread_t e = spawn(one_byte_echoer, NULL), i = spawn(one_byte_initiator, NULL);
    join_within(i, 30000, "initiator");
    join_within(e, 30000, "echoer");
    pipe_event_destroy(&g_two_sent);
    close(g_pp[0]);
    close(g_pp[1]);
}

/* ---- 3. the program's own O_NONBLOCK ----------------------------------- */

static int g_late_fd;
static void *late_writer(void *arg)
{
    (void)arg;
    sleep_ms(50);
    write_exact(g_late_fd, "L", 1, "late writer");
    return NULL;
}

static void program_nonblock(void)
{
    int sv[2];
    char buf[16];
    set_phase("own O_NONBLOCK: a blocking read first (the shim waits, then drains)");
    unix_pair(sv, SOCK_STREAM);
    g_late_fd = sv[1];
    pthread_t w = spawn(late_writer, NULL);
    CHECK_EQ(read(sv[0], buf, sizeof buf), 1);
    join(w);
    set_phase("own O_NONBLOCK: set through a dup with fcntl");
    int d = dup(sv[0]);
    CHECK(d >= 0, "dup");
    CHECK_EQ(fcntl(d, F_SETFL, fcntl(d, F_GETFL) | O_NONBLOCK), 0);
    CHECK(fcntl(sv[0], F_GETFL) & O_NONBLOCK, "the flag is the file description's");
    errno = 0;
    CHECK_EQ(read(sv[0], buf, sizeof buf), -1);
    CHECK(errno == EAGAIN, "errno %d, want EAGAIN", errno);
    write_exact(sv[1], "n", 1, "n");
    CHECK_EQ(read(sv[0], buf, sizeof buf), 1);
    errno = 0;
    CHECK_EQ(recv(d, buf, sizeof buf, 0), -1);
    CHECK(errno == EAGAIN, "errno %d, want EAGAIN", errno);
    write_exact(sv[1], "mm", 2, "mm");
    CHECK_EQ(recv(d, buf, 1, 0), 1);
    CHECK_EQ(read(sv[0], buf, sizeof buf), 1);
    set_phase("own O_NONBLOCK: cleared with FIONBIO: blocking again");
    int off = 0;
    CHECK_EQ(ioctl(d, FIONBIO, &off), 0);
    w = spawn(late_writer, NULL);
    CHECK_EQ(read(sv[0], buf, sizeof buf), 1);
    CHECK_EQ(buf[0], 'L');
    join(w);
    close(d);
    close(sv[0]);
    close(sv[1]);

    set_phase("own O_NONBLOCK: SOCK_NONBLOCK at creation");
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    errno = 0;
    CHECK_EQ(read(sv[0], buf, sizeof buf), -1);
    CHECK(errno == EAGAIN, "errno %d, want EAGAIN", errno);
    write_exact(sv[1], "s", 1, "s");
    CHECK_EQ(read(sv[0], buf, sizeof buf), 1);
    errno = 0;
    CHECK_EQ(read(sv[0], buf, sizeof buf), -1);
    CHECK(errno == EAGAIN, "errno %d, want EAGAIN", errno);
    close(sv[0]);
    close(sv[1]);
}

/* ---- 4. dup and reuse -------------------------------------------------- */

static void dup_and_reuse(void)
{
    int sv[2];
    char buf[16];
    set_phase("dup: drain through one number, data through the other");
    unix_pair(sv, SOCK_STREAM);
    int d = dup(sv[0]);
    CHECK(d >= 0, "dup");
    write_exact(sv[1], "a", 1, "a");
    CHECK_EQ(read(sv[0], buf, sizeof buf), 1);
    write_exact(sv[1], "b", 1, "b");
    CHECK_EQ(read(d, buf, sizeof buf), 1);
    write_exact(sv[1], "c", 1, "c");
    CHECK_EQ(read(sv[0], buf, sizeof buf), 1);
    CHECK_EQ(buf[0], 'c');
    close(d);

    set_phase("reuse: a drained fd number, closed, reused by a socket with data queued");
    int old = sv[0];
    close(sv[0]);
    int nv[2];
    unix_pair(nv, SOCK_STREAM);
    int reader = nv[0] == old ? nv[0] : nv[1] == old ? nv[1] : nv[0];
    int writer = reader == nv[0] ? nv[1] : nv[0];
    write_exact(writer, "r", 1, "r");
    int64_t t0 = now_ns();
    CHECK_EQ(read(reader, buf, sizeof buf), 1);
    CHECK_EQ(buf[0], 'r');
    CHECK(now_ns() - t0 < kPromptNs, "read on the reused number waited");
    close(nv[0]);
    close(nv[1]);
    close(sv[1]);
}

/* ---- 5. many readers, many acceptors ---------------------------------- */

enum { kReaders = 8, kBytes = 6000, kAcceptors = 6, kConns = 60 };
static int g_shared[2];
static atomic_long g_got;

static void *byte_reader(void *arg)
{
    (void)arg;
    char c;
    for (;;) {
        ssize_t n = read(g_shared[0], &c, 1);
        if (n == 0) return NULL;
        CHECK_EQ(n, 1);
        atomic_fetch_add(&g_got, 1);
    }
}

static int g_listener;
static atomic_long g_accepted;
static void *acceptor(void *arg)
{
    (void)arg;
    for (;;) {
        int c = accept(g_listener, NULL, NULL);
        CHECK(c >= 0, "accept");
        char b;
        read_exact(c, &b, 1, "acceptor: first byte");
        close(c);
        if (b == 'q') return NULL;
        atomic_fetch_add(&g_accepted, 1);
    }
}

static void many_waiters(void)
{
    set_phase("8 readers of one socket, 6000 bytes in bursts");
    unix_pair(g_shared, SOCK_STREAM);
    pthread_t r[kReaders];
    for (int i = 0; i < kReaders; i++) r[i] = spawn(byte_reader, NULL);
    uint64_t seed = 42;
    char burst[16];
    memset(burst, 'z', sizeof burst);
    for (int sent = 0; sent < kBytes;) {
        int n = 1 + (int)(rng_next(&seed) % sizeof burst);
        if (n > kBytes - sent) n = kBytes - sent;
        write_exact(g_shared[1], burst, (size_t)n, "burst");
        sent += n;
        if (rng_next(&seed) % 8 == 0) sleep_ms(1);
    }
    for (int tries = 0; atomic_load(&g_got) < kBytes && tries < 10000; tries++) sleep_ms(1);
    CHECK_EQ(atomic_load(&g_got), kBytes);
    set_phase("8 readers of one socket: shutdown gives every reader EOF");
    CHECK_EQ(shutdown(g_shared[1], SHUT_WR), 0);
    for (int i = 0; i < kReaders; i++) join_within(r[i], 10000, "reader at EOF");
    close(g_shared[0]);
    close(g_shared[1]);

    set_phase("6 threads in accept() on one listener");
    struct sockaddr_in addr;
    g_listener = tcp_listener(&addr, 128);
    pthread_t a[kAcceptors];
    for (int i = 0; i < kAcceptors; i++) a[i] = spawn(acceptor, NULL);
    for (int i = 0; i < kConns + kAcceptors; i++) {
        int c = socket(AF_INET, SOCK_STREAM, 0);
        CHECK(c >= 0, "socket");
        CHECK_EQ(connect(c, (struct sockaddr *)&addr, sizeof addr), 0);
        write_exact(c, i < kConns ? "c" : "q", 1, "client byte");
        char b;
        CHECK_EQ(read(c, &b, 1), 0); /* the acceptor's close */
        close(c);
    }
    for (int i = 0; i < kAcceptors; i++) join_within(a[i], 10000, "acceptor");
    CHECK_EQ(atomic_load(&g_accepted), kConns);
    close(g_listener);
}

/* ---- 6. a poller and a reader on one fd -------------------------------- */

static int g_pr[2];
static atomic_int g_polled;
static void *poller(void *arg)
{
    (void)arg;
    struct pollfd p = {g_pr[0], POLLIN, 0};
    int r = poll(&p, 1, 10000);
    CHECK_EQ(r, 1);
    CHECK(p.revents & POLLIN, "revents %#x", p.revents);
    atomic_store(&g_polled, 1);
    return NULL;
}
static void *reader(void *arg)
{
    (void)arg;
    char c;
    CHECK_EQ(read(g_pr[0], &c, 1), 1);
    return NULL;
}

static void poller_and_reader(void)
{
    set_phase("a poller and a reader on one fd, one byte");
    unix_pair(g_pr, SOCK_STREAM);
    pthread_t p = spawn(poller, NULL), r = spawn(reader, NULL);
    sleep_ms(100); /* both wait */
    int64_t t0 = now_ns();
    write_exact(g_pr[1], "12", 2, "two bytes"); /* the reader takes one, the poller still sees the other */
    join_within(r, 5000, "reader");
    join_within(p, 5000, "poller");
    CHECK(atomic_load(&g_polled), "poller");
    CHECK(now_ns() - t0 < kPromptNs, "took %lld ns", (long long)(now_ns() - t0));
    close(g_pr[0]);
    close(g_pr[1]);
}

/* ---- 7. the writer's wake-up, and another process reading first ------- */

static int g_shared_pipe[2];

static void *pipe_byte_reader(void *arg)
{
    char *got = arg;
    CHECK_EQ(read(g_shared_pipe[0], got, 1), 1);
    return NULL;
}

static void wake_raced_by_other_process(void)
{
    set_phase("a direct wake-up raced by another process's read");
    for (int round = 0; round < 20; round++) {
        CHECK_EQ(pipe2(g_shared_pipe, O_CLOEXEC), 0);
        pid_t child = fork();
        CHECK(child >= 0, "fork");
        if (child == 0) {
            char c;
            _exit(read(g_shared_pipe[0], &c, 1) == 1 ? (unsigned char)c : 1);
        }
        char got = 0;
        pthread_t r = spawn(pipe_byte_reader, &got);
        sleep_ms(20); /* both wait */
        write_exact(g_shared_pipe[1], "A", 1, "first byte");
        sleep_ms(20);
        write_exact(g_shared_pipe[1], "B", 1, "second byte");
        join_within(r, 5000, "thread reader");
        int status;
        CHECK_EQ(waitpid(child, &status, 0), child);
        CHECK(WIFEXITED(status), "child status %#x", status);
        const char other = (char)WEXITSTATUS(status);
        CHECK((got == 'A' && other == 'B') || (got == 'B' && other == 'A'), "round %d: thread got %#x, process %#x",
              round, got, other);
        close(g_shared_pipe[0]);
        close(g_shared_pipe[1]);
    }
}

static void run_all(void)
{
    stale_empty();
    learned_wait_first();
    program_nonblock();
    dup_and_reuse();
    many_waiters();
    poller_and_reader();
    wake_raced_by_other_process();
}

int main(void)
{
    watchdog(60);
    run_in_created_thread("readiness", run_all);
    printf("t_read_readiness: ok\n");
    return 0;
}
