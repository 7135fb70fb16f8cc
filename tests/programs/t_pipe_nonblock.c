/*
 * t_pipe_nonblock — the shim must never set O_NONBLOCK on a pipe's file
 * description: the description is shared with whoever else holds the pipe
 * (a shell pipeline, a parent, a child after exec), and they would meet
 * surprise EAGAINs. The kernel's flags are read with the raw syscall
 * syscall(SYS_fcntl, fd, F_GETFL), which no wrapper can dress up.
 *
 *  1. pipe(): 4 writer threads write 1 MiB each through it, in records of
 *     random size <= PIPE_BUF (each write() is atomic), while 1 slow reader
 *     thread reads and checks per-writer sequence numbers and contents. A
 *     monitor thread, the writers and main check both ends' kernel flags
 *     (and fcntl's view) during and after: never O_NONBLOCK.
 *  2. stdout to a pipe: the program re-executes itself with its stdout the
 *     write end of a pipe whose reader (the parent's main thread) is slow.
 *     In the child, several threads and main write(1, record) while a
 *     monitor checks the kernel flags of fd 1; the child starts by checking
 *     that it inherited a blocking stdout. The parent checks the shared
 *     description's flags too, and that every record arrived.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test_support.h"

/* ---- flag checks ------------------------------------------------------------ */

/* The kernel's view (raw syscall) and the program's view (fcntl, maybe
 * wrapped) must both say "blocking". */
static void check_blocking(int fd, const char *where)
{
    long raw = syscall(SYS_fcntl, fd, F_GETFL);
    CHECK(raw >= 0, "%s: raw fcntl(%d, F_GETFL) failed", where, fd);
    CHECK(!(raw & O_NONBLOCK), "%s: kernel file flags of fd %d are %#lx: O_NONBLOCK is set on the pipe", where, fd,
          raw);
    int fl = fcntl(fd, F_GETFL);
    CHECK(fl >= 0 && !(fl & O_NONBLOCK), "%s: fcntl(%d, F_GETFL) = %#x shows O_NONBLOCK", where, fd, fl);
}

/* ---- record format ---------------------------------------------------------- */

#define MAGIC 0x7069706bu
struct rec_header {
    uint32_t magic;
    uint16_t writer;
    uint16_t len; /* whole record, header included, <= PIPE_BUF */
    uint32_t seq;
};
#define HDR ((int)sizeof(struct rec_header))

static unsigned char payload_byte(unsigned w, uint32_t seq, size_t i) { return (unsigned char)(w * 131 + seq * 7 + i); }

/* The sizes writer w uses, deterministic. */
static size_t rec_len(uint64_t *rng) { return (size_t)(rng_next(rng) % (PIPE_BUF - HDR + 1)) + HDR; }

static size_t build_record(unsigned char *buf, unsigned w, uint32_t seq, size_t len)
{
    struct rec_header h = {MAGIC, (uint16_t)w, (uint16_t)len, seq};
    memcpy(buf, &h, HDR);
    for (size_t i = HDR; i < len; i++) buf[i] = payload_byte(w, seq, i);
    return len;
}

/* Consumes whole records from buf[0..*n); checks them; returns records. */
struct verifier {
    const char *name;
    int nwriters;
    uint32_t next_seq[8];
    size_t bytes[8];
};

static long verify_records(struct verifier *v, unsigned char *buf, size_t *n)
{
    size_t off = 0;
    long count = 0;
    while (*n - off >= (size_t)HDR) {
        struct rec_header h;
        memcpy(&h, buf + off, HDR);
        CHECK(h.magic == MAGIC, "%s: bad magic %#x at a record boundary (a write was split or interleaved)", v->name,
              h.magic);
        CHECK(h.writer < v->nwriters, "%s: writer id %u", v->name, h.writer);
        CHECK(h.len >= HDR && h.len <= PIPE_BUF, "%s: record length %u", v->name, h.len);
        if (*n - off < h.len) break;
        CHECK(h.seq == v->next_seq[h.writer], "%s: writer %u record %u arrived, expected %u", v->name, h.writer, h.seq,
              v->next_seq[h.writer]);
        for (size_t i = HDR; i < h.len; i++)
            CHECK(buf[off + i] == payload_byte(h.writer, h.seq, i), "%s: writer %u record %u byte %zu differs",
                  v->name, h.writer, h.seq, i);
        v->next_seq[h.writer]++;
        v->bytes[h.writer] += h.len;
        off += h.len;
        count++;
    }
    memmove(buf, buf + off, *n - off);
    *n -= off;
    return count;
}

/* ---- part 1: threads writing through one pipe ------------------------------ */

#define NWRITERS 4
#define PER_WRITER (1u << 20)
static int g_pipe[2];
static int g_done; /* atomic */
static uint32_t g_records[NWRITERS];

static void *pipe_writer(void *arg)
{
    unsigned w = (unsigned)(uintptr_t)arg;
    uint64_t rng = 0x9e3779b97f4a7c15ull * (w + 1);
    unsigned char buf[PIPE_BUF];
    size_t sent = 0;
    uint32_t seq = 0;
    while (sent < PER_WRITER) {
        size_t len = build_record(buf, w, seq, rec_len(&rng));
        ssize_t n = write(g_pipe[1], buf, len);
        CHECK(n == (ssize_t)len, "writer %u: write of a %zu-byte record (<= PIPE_BUF) returned %zd", w, len, n);
        sent += len;
        seq++;
        if (seq % 64 == 0) check_blocking(g_pipe[1], "writer thread, during the transfer");
    }
    g_records[w] = seq;
    return NULL;
}

static void *pipe_reader(void *arg)
{
    (void)arg;
    struct verifier v = {"pipe reader", NWRITERS, {0}, {0}};
    size_t cap = 64 * 1024, n = 0;
    unsigned char *buf = malloc(cap);
    CHECK(buf, "malloc");
    sleep_ms(50); /* let the writers fill the pipe and block */
    long reads = 0;
    for (;;) {
        size_t want = 512 + (size_t)(reads * 7919 % 16384);
        if (want > cap - n) want = cap - n;
        ssize_t r = read(g_pipe[0], buf + n, want);
        CHECK(r >= 0, "pipe reader: read returned %zd", r);
        if (r == 0) break;
        n += (size_t)r;
        verify_records(&v, buf, &n);
        if (++reads % 32 == 0) sleep_ms(1);
    }
    CHECK(n == 0, "pipe reader: %zu stray bytes at EOF", n);
    for (int w = 0; w < NWRITERS; w++) {
        CHECK(v.bytes[w] >= PER_WRITER, "pipe reader: writer %d delivered %zu bytes, expected >= %u", w, v.bytes[w],
              PER_WRITER);
        CHECK(v.next_seq[w] == g_records[w], "pipe reader: writer %d: %u records read, %u written", w, v.next_seq[w],
              g_records[w]);
    }
    free(buf);
    return NULL;
}

static void *flag_monitor(void *arg)
{
    const int *fds = arg;
    long rounds = 0;
    while (!__atomic_load_n(&g_done, __ATOMIC_ACQUIRE)) {
        check_blocking(fds[0], "monitor thread, pipe read end");
        check_blocking(fds[1], "monitor thread, pipe write end");
        rounds++;
        usleep(500);
    }
    return (void *)(intptr_t)rounds;
}

static void test_pipe_threads(void)
{
    set_phase("4 writer threads, 1 reader thread on one pipe");
    CHECK(pipe(g_pipe) == 0, "pipe");
    check_blocking(g_pipe[0], "new pipe read end");
    check_blocking(g_pipe[1], "new pipe write end");
    __atomic_store_n(&g_done, 0, __ATOMIC_RELEASE);
    pthread_t mon = spawn(flag_monitor, g_pipe);
    pthread_t r = spawn(pipe_reader, NULL);
    pthread_t w[NWRITERS];
    for (int i = 0; i < NWRITERS; i++) w[i] = spawn(pipe_writer, (void *)(uintptr_t)i);
    for (int i = 0; i < 20; i++) {
        check_blocking(g_pipe[0], "main thread, during the transfer, read end");
        check_blocking(g_pipe[1], "main thread, during the transfer, write end");
        sleep_ms(2);
    }
    for (int i = 0; i < NWRITERS; i++) join(w[i]);
    /* Stop the monitor before the write end goes away. */
    __atomic_store_n(&g_done, 1, __ATOMIC_RELEASE);
    join(mon);
    check_blocking(g_pipe[1], "after the writers finished, write end");
    check_blocking(g_pipe[0], "after the writers finished, read end");
    CHECK(close(g_pipe[1]) == 0, "close write end");
    join(r);
    check_blocking(g_pipe[0], "after the transfer, read end");
    close(g_pipe[0]);
}

/* ---- part 2: stdout is a pipe to a slow reader (re-exec) ----------------- */

#define CHILD_WRITERS 4 /* threads; main writes too */
#define CHILD_PER_WRITER (256u * 1024)
#define CHILD_ARG "--stdout-child"

static int g_child_done; /* atomic */

static void *stdout_writer(void *arg)
{
    unsigned w = (unsigned)(uintptr_t)arg;
    uint64_t rng = 0x243f6a8885a308d3ull * (w + 1);
    unsigned char buf[PIPE_BUF];
    size_t sent = 0;
    uint32_t seq = 0;
    while (sent < CHILD_PER_WRITER) {
        size_t len = build_record(buf, w, seq, rec_len(&rng));
        ssize_t n = write(1, buf, len);
        CHECK(n == (ssize_t)len, "child writer %u: write(1, %zu bytes) returned %zd", w, len, n);
        sent += len;
        seq++;
        if (seq % 32 == 0) check_blocking(1, "child writer thread, stdout");
    }
    return NULL;
}

static void *stdout_monitor(void *arg)
{
    (void)arg;
    while (!__atomic_load_n(&g_child_done, __ATOMIC_ACQUIRE)) {
        check_blocking(1, "child monitor thread, stdout");
        usleep(500);
    }
    return NULL;
}

static int child_main(void)
{
    set_phase("child: threads writing to stdout (a pipe)");
    check_blocking(1, "child at start, inherited stdout");
    pthread_t mon = spawn(stdout_monitor, NULL);
    pthread_t t[CHILD_WRITERS];
    for (int i = 0; i < CHILD_WRITERS; i++) t[i] = spawn(stdout_writer, (void *)(uintptr_t)i);
    stdout_writer((void *)(uintptr_t)CHILD_WRITERS);
    for (int i = 0; i < CHILD_WRITERS; i++) join(t[i]);
    __atomic_store_n(&g_child_done, 1, __ATOMIC_RELEASE);
    join(mon);
    check_blocking(1, "child at exit, stdout");
    return 0;
}

static void test_stdout_pipe(void)
{
    set_phase("parent: stdout of a re-executed child is a pipe");
    int p[2];
    CHECK(pipe(p) == 0, "pipe");
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        if (dup2(p[1], 1) != 1) _exit(120);
        close(p[0]);
        close(p[1]);
        execl("/proc/self/exe", "t_pipe_nonblock", CHILD_ARG, (char *)NULL);
        _exit(121);
    }
    /* Keep our copy of the write end: it shares the child's description,
     * so its flags are the ones the child's stdout has. */
    struct verifier v = {"parent reading the child's stdout", CHILD_WRITERS + 1, {0}, {0}};
    size_t cap = 64 * 1024, n = 0;
    unsigned char *buf = malloc(cap);
    CHECK(buf, "malloc");
    size_t total = 0;
    long reads = 0;
    int child_exited = 0, status = 0;
    for (;;) {
        int all = 1;
        for (int w = 0; w <= CHILD_WRITERS; w++)
            if (v.bytes[w] < CHILD_PER_WRITER) all = 0;
        if (all && child_exited) break;
        check_blocking(p[1], "parent, the child's stdout description");
        check_blocking(p[0], "parent, read end");
        struct pollfd pfd = {p[0], POLLIN, 0};
        int pr = poll(&pfd, 1, 200);
        CHECK(pr >= 0, "poll");
        if (pr == 0) {
            if (!child_exited) {
                pid_t r = waitpid(pid, &status, WNOHANG);
                CHECK(r >= 0, "waitpid");
                if (r == pid) {
                    child_exited = 1;
                    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                          "child (threads writing to stdout) failed: status %#x (exit %d, signal %d)", status,
                          WIFEXITED(status) ? WEXITSTATUS(status) : -1, WIFSIGNALED(status) ? WTERMSIG(status) : 0);
                }
            }
            if (child_exited && !all)
                CHECK(0, "the child exited but only %zu bytes arrived through its stdout", total);
            continue;
        }
        size_t want = 4096;
        if (want > cap - n) want = cap - n;
        ssize_t r = read(p[0], buf + n, want);
        CHECK(r > 0, "read from the child's stdout returned %zd", r);
        n += (size_t)r;
        total += (size_t)r;
        verify_records(&v, buf, &n);
        if (++reads % 8 == 0) sleep_ms(1); /* slow reader: the child's writers block */
    }
    CHECK(n == 0, "%zu stray bytes after the last record", n);
    check_blocking(p[1], "parent after the child exited");
    close(p[0]);
    close(p[1]);
    free(buf);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], CHILD_ARG) == 0) {
        watchdog(20);
        return child_main();
    }
    watchdog(25);
    fprintf(stderr, "t_pipe_nonblock: running %s\n", is_shim() ? "under greenld" : "natively");
    test_stdout_pipe();
    test_pipe_threads();
    fprintf(stderr, "t_pipe_nonblock: all checks passed\n");
    return 0;
}
