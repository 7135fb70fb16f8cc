/*
 * t_sendfile_splice — sendfile, splice, tee and vmsplice in threads, with
 * blocking sockets and pipes (the kernel's flags are checked with the raw
 * syscall: blocking before and after every call):
 *
 *  1. sendfile of a 4 MiB regular file to a TCP socket whose reader starts
 *     200 ms late: returns 4 MiB, the file offset moved by 4 MiB, every byte
 *     arrives; the ticker ticks while the sender waits for room. With an
 *     offset pointer: the pointer moves, the file offset does not. Past the
 *     end of the file: the bytes up to the end. With SO_SNDTIMEO 100 ms and
 *     no reader: a partial count after ~100 ms. sendfile64 likewise.
 *  2. sendfile to a full pipe: waits for the reader, then one transfer of
 *     at most the pipe's room, in file order.
 *  3. splice: file -> pipe (waits for room), pipe -> file (waits for data),
 *     TCP socket -> pipe (waits for data, returns what came), pipe -> TCP
 *     socket with the socket's buffers full (waits, then returns all that
 *     was in the pipe), and SPLICE_F_NONBLOCK per call gives EAGAIN.
 *  4. tee waits for data in its input pipe and leaves it there.
 *  5. vmsplice into a full pipe waits for the reader.
 */
#include "test_support.h"

#include <fcntl.h>
#include <sys/sendfile.h>
#include <sys/uio.h>

#define FILE_SZ (4 << 20)

static int g_file;
static int g_pipe_cap;

static char file_byte(long pos) { return (char)(pos * 7 + pos / 4093); }

static int make_file(void)
{
    char path[] = "/tmp/t_sendfile_splice.XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    unlink(path);
    static char buf[65536];
    for (long off = 0; off < FILE_SZ; off += sizeof buf) {
        for (long i = 0; i < (long)sizeof buf; ++i) buf[i] = file_byte(off + i);
        CHECK(pwrite(fd, buf, sizeof buf, off) == (ssize_t)sizeof buf, "pwrite");
    }
    return fd;
}

static void check_kernel_blocking(int fd, const char *what)
{
    long fl = syscall(SYS_fcntl, fd, F_GETFL);
    CHECK(fl >= 0 && !(fl & O_NONBLOCK), "%s: the kernel's O_NONBLOCK is set (flags %lx)", what, fl);
    CHECK(!(fcntl(fd, F_GETFL) & O_NONBLOCK), "%s: fcntl reports O_NONBLOCK", what);
}

/* Reads `n` bytes and checks they are the file's bytes from `pos`. */
static void read_file_bytes(int fd, long pos, long n)
{
    static char buf[65536];
    while (n > 0) {
        ssize_t got = read(fd, buf, n < (long)sizeof buf ? (size_t)n : sizeof buf);
        CHECK(got > 0, "read %ld more bytes", n);
        for (ssize_t i = 0; i < got; ++i)
            CHECK(buf[i] == file_byte(pos + i), "byte %ld: %d, expected %d", pos + i, buf[i], file_byte(pos + i));
        pos += got;
        n -= got;
    }
}

struct late_reader {
    int fd;
    int delay_ms;
    long pos, n;
};

static void *late_reader_main(void *arg)
{
    struct late_reader *r = arg;
    sleep_ms(r->delay_ms);
    read_file_bytes(r->fd, r->pos, r->n);
    return NULL;
}

struct call {
    long result;
    int err;
    int64_t elapsed_ms;
};

#define TIMED(c, expr)                                      \
    do {                                                    \
        int64_t t0_ = now_ns();                             \
        errno = 0;                                          \
        (c)->result = (long)(expr);                         \
        (c)->err = errno;                                   \
        (c)->elapsed_ms = (now_ns() - t0_) / 1000000;       \
    } while (0)

/* ---- 1. sendfile to TCP ---------------------------------------------- */

static void phase_sendfile_tcp(void)
{
    int a, b;
    tcp_pair(&a, &b);
    set_phase("sendfile 4 MiB to TCP with a late reader");
    CHECK(lseek(g_file, 0, SEEK_SET) == 0, "lseek");
    struct late_reader r = {b, 200, 0, FILE_SZ};
    pthread_t t = spawn(late_reader_main, &r);
    long ticks = ticker_ticks();
    struct call c;
    TIMED(&c, sendfile(a, g_file, NULL, FILE_SZ));
    CHECK(c.result == FILE_SZ, "sendfile returned %ld (errno %d)", c.result, c.err);
    CHECK(c.err == 0, "errno changed to %d on success", c.err);
    CHECK(c.elapsed_ms >= 150, "sendfile returned after %lld ms, before the reader started",
          (long long)c.elapsed_ms);
    ticker_expect(ticks, 40, "sendfile waiting for socket room");
    join_within(t, 5000, "reader");
    CHECK(lseek(g_file, 0, SEEK_CUR) == FILE_SZ, "file offset after sendfile");
    check_kernel_blocking(a, "TCP socket after sendfile");

    set_phase("sendfile with an offset pointer");
    CHECK(lseek(g_file, 123, SEEK_SET) == 123, "lseek");
    off_t off = 1000;
    struct late_reader r2 = {b, 100, 1000, 1 << 20};
    t = spawn(late_reader_main, &r2);
    TIMED(&c, sendfile(a, g_file, &off, 1 << 20));
    CHECK(c.result == 1 << 20, "sendfile returned %ld (errno %d)", c.result, c.err);
    CHECK(off == 1000 + (1 << 20), "offset now %lld", (long long)off);
    CHECK(lseek(g_file, 0, SEEK_CUR) == 123, "file offset moved");
    join_within(t, 5000, "reader");

    set_phase("sendfile64 past the end of the file");
    off64_t off64 = FILE_SZ - 5000;
    struct late_reader r3 = {b, 50, FILE_SZ - 5000, 5000};
    t = spawn(late_reader_main, &r3);
    TIMED(&c, sendfile64(a, g_file, &off64, 1 << 20));
    CHECK(c.result == 5000, "sendfile64 returned %ld (errno %d)", c.result, c.err);
    CHECK(off64 == FILE_SZ, "offset now %lld", (long long)off64);
    join_within(t, 5000, "reader");

    close(a);
    close(b);

    set_phase("sendfile with SO_SNDTIMEO and no reader");
    /* Fixed, small buffers: autotuning could otherwise make room for all
     * 4 MiB on loopback. */
    tcp_pair(&a, &b);
    int small = 65536;
    CHECK(setsockopt(a, SOL_SOCKET, SO_SNDBUF, &small, sizeof small) == 0, "SO_SNDBUF");
    CHECK(setsockopt(b, SOL_SOCKET, SO_RCVBUF, &small, sizeof small) == 0, "SO_RCVBUF");
    struct timeval tv = {0, 100000};
    CHECK(setsockopt(a, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) == 0, "SO_SNDTIMEO");
    off = 0;
    ticks = ticker_ticks();
    TIMED(&c, sendfile(a, g_file, &off, FILE_SZ));
    CHECK(c.result > 0 && c.result < FILE_SZ, "sendfile returned %ld (errno %d)", c.result, c.err);
    CHECK(off == c.result, "offset %lld after %ld bytes", (long long)off, c.result);
    CHECK(c.elapsed_ms >= 80 && c.elapsed_ms < 2000, "returned after %lld ms", (long long)c.elapsed_ms);
    ticker_expect(ticks, 20, "sendfile under SO_SNDTIMEO");
    check_kernel_blocking(a, "TCP socket after a timed-out sendfile");
    read_file_bytes(b, 0, c.result);
    close(a);
    close(b);
}

/* ---- 2. sendfile to a pipe ------------------------------------------ */

static void fill_pipe(int w)
{
    static char junk[1 << 20];
    memset(junk, 'j', sizeof junk);
    CHECK(write(w, junk, (size_t)g_pipe_cap) == g_pipe_cap, "fill the pipe");
}

static void drain_junk(int r, long n)
{
    static char buf[65536];
    while (n > 0) {
        ssize_t got = read(r, buf, n < (long)sizeof buf ? (size_t)n : sizeof buf);
        CHECK(got > 0, "drain");
        for (ssize_t i = 0; i < got; ++i) CHECK(buf[i] == 'j', "junk byte");
        n -= got;
    }
}

struct junk_drainer {
    int fd;
    int delay_ms;
    long n;
};

static void *junk_drainer_main(void *arg)
{
    struct junk_drainer *d = arg;
    sleep_ms(d->delay_ms);
    drain_junk(d->fd, d->n);
    return NULL;
}

static void phase_sendfile_pipe(void)
{
    set_phase("sendfile to a full pipe");
    int p[2];
    CHECK(pipe(p) == 0, "pipe");
    fill_pipe(p[1]);
    struct junk_drainer d = {p[0], 150, g_pipe_cap};
    pthread_t t = spawn(junk_drainer_main, &d);
    off_t off = 4096;
    long ticks = ticker_ticks();
    struct call c;
    TIMED(&c, sendfile(p[1], g_file, &off, 1 << 20));
    CHECK(c.result > 0 && c.result <= g_pipe_cap, "sendfile returned %ld (errno %d)", c.result, c.err);
    CHECK(c.elapsed_ms >= 100, "returned after %lld ms, before the pipe had room", (long long)c.elapsed_ms);
    CHECK(off == 4096 + c.result, "offset");
    ticker_expect(ticks, 30, "sendfile waiting for pipe room");
    join_within(t, 3000, "drainer");
    read_file_bytes(p[0], 4096, c.result);
    check_kernel_blocking(p[1], "pipe after sendfile");
    close(p[0]);
    close(p[1]);
}

/* ---- 3. splice ------------------------------------------------------- */

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

static void phase_splice(void)
{
    int p[2];
    CHECK(pipe(p) == 0, "pipe");
    struct call c;

    set_phase("splice file -> full pipe");
    fill_pipe(p[1]);
    struct junk_drainer d = {p[0], 150, g_pipe_cap};
    pthread_t t = spawn(junk_drainer_main, &d);
    loff_t off = 8192;
    long ticks = ticker_ticks();
    TIMED(&c, splice(g_file, &off, p[1], NULL, 100000, 0));
    CHECK(c.result > 0 && c.result <= 100000, "splice returned %ld (errno %d)", c.result, c.err);
    CHECK(c.elapsed_ms >= 100, "returned after %lld ms", (long long)c.elapsed_ms);
    ticker_expect(ticks, 30, "splice waiting for pipe room");
    join_within(t, 3000, "drainer");
    read_file_bytes(p[0], 8192, c.result);

    set_phase("splice SPLICE_F_NONBLOCK from an empty pipe");
    char out_path[] = "/tmp/t_splice_out.XXXXXX";
    int out = mkstemp(out_path);
    CHECK(out >= 0, "mkstemp");
    unlink(out_path);
    TIMED(&c, splice(p[0], NULL, out, NULL, 4096, SPLICE_F_NONBLOCK));
    CHECK(c.result == -1 && c.err == EAGAIN, "SPLICE_F_NONBLOCK: %ld errno %d", c.result, c.err);

    set_phase("splice empty pipe -> file");
    static const char msg[] = "hello through a pipe into a file";
    struct delayed_write w = {p[1], 150, msg, sizeof msg};
    t = spawn(delayed_write_main, &w);
    ticks = ticker_ticks();
    TIMED(&c, splice(p[0], NULL, out, NULL, 4096, 0));
    CHECK(c.result == (long)sizeof msg, "splice returned %ld (errno %d)", c.result, c.err);
    CHECK(c.elapsed_ms >= 100, "returned after %lld ms", (long long)c.elapsed_ms);
    ticker_expect(ticks, 30, "splice waiting for pipe data");
    join_within(t, 3000, "writer");
    char back[sizeof msg];
    CHECK(pread(out, back, sizeof back, 0) == (ssize_t)sizeof back && memcmp(back, msg, sizeof msg) == 0,
          "file contents");
    close(out);

    set_phase("splice TCP -> pipe");
    int a, b;
    tcp_pair(&a, &b);
    w = (struct delayed_write){a, 150, msg, sizeof msg};
    t = spawn(delayed_write_main, &w);
    ticks = ticker_ticks();
    TIMED(&c, splice(b, NULL, p[1], NULL, 65536, 0));
    CHECK(c.result == (long)sizeof msg, "splice returned %ld (errno %d)", c.result, c.err);
    CHECK(c.elapsed_ms >= 100, "returned after %lld ms", (long long)c.elapsed_ms);
    ticker_expect(ticks, 30, "splice waiting for socket data");
    join_within(t, 3000, "writer");
    check_kernel_blocking(b, "TCP socket after splice from it");
    CHECK(read(p[0], back, sizeof back) == (ssize_t)sizeof back && memcmp(back, msg, sizeof msg) == 0,
          "pipe contents");

    set_phase("splice pipe -> TCP with full socket buffers");
    /* Fill a's send buffer and b's receive buffer. */
    static char junk[65536];
    memset(junk, 'j', sizeof junk);
    long stuffed = 0;
    for (;;) {
        ssize_t n = send(a, junk, sizeof junk, MSG_DONTWAIT);
        if (n < 0) break;
        stuffed += n;
    }
    CHECK(errno == EAGAIN && stuffed > 0, "stuffing the socket");
    off = 0;
    TIMED(&c, splice(g_file, &off, p[1], NULL, 60000, 0));
    CHECK(c.result == 60000, "file -> pipe: %ld", c.result);
    struct junk_drainer jd = {b, 200, stuffed};
    t = spawn(junk_drainer_main, &jd);
    ticks = ticker_ticks();
    TIMED(&c, splice(p[0], NULL, a, NULL, 1 << 20, 0));
    CHECK(c.result == 60000, "pipe -> socket returned %ld (errno %d), expected all 60000 in the pipe", c.result,
          c.err);
    CHECK(c.elapsed_ms >= 150, "returned after %lld ms", (long long)c.elapsed_ms);
    ticker_expect(ticks, 40, "splice waiting for socket room");
    join_within(t, 5000, "drainer");
    read_file_bytes(b, 0, 60000);
    check_kernel_blocking(a, "TCP socket after splice to it");
    check_kernel_blocking(p[0], "pipe after splice");
    close(a);
    close(b);

    /* ---- 4. tee ---- */
    set_phase("tee waits for input");
    int q[2];
    CHECK(pipe(q) == 0, "pipe");
    w = (struct delayed_write){p[1], 150, msg, sizeof msg};
    t = spawn(delayed_write_main, &w);
    ticks = ticker_ticks();
    TIMED(&c, tee(p[0], q[1], 4096, 0));
    CHECK(c.result == (long)sizeof msg, "tee returned %ld (errno %d)", c.result, c.err);
    CHECK(c.elapsed_ms >= 100, "returned after %lld ms", (long long)c.elapsed_ms);
    ticker_expect(ticks, 30, "tee waiting for data");
    join_within(t, 3000, "writer");
    CHECK(read(q[0], back, sizeof back) == (ssize_t)sizeof back && memcmp(back, msg, sizeof msg) == 0, "tee copy");
    CHECK(read(p[0], back, sizeof back) == (ssize_t)sizeof back && memcmp(back, msg, sizeof msg) == 0,
          "tee left the input in place");
    TIMED(&c, tee(p[0], q[1], 4096, SPLICE_F_NONBLOCK));
    CHECK(c.result == -1 && c.err == EAGAIN, "tee SPLICE_F_NONBLOCK: %ld errno %d", c.result, c.err);
    close(q[0]);
    close(q[1]);

    /* ---- 5. vmsplice ---- */
    set_phase("vmsplice into a full pipe");
    fill_pipe(p[1]);
    struct junk_drainer d2 = {p[0], 150, g_pipe_cap};
    t = spawn(junk_drainer_main, &d2);
    static char page[4096] __attribute__((aligned(4096)));
    memcpy(page, msg, sizeof msg);
    struct iovec v = {page, sizeof msg};
    ticks = ticker_ticks();
    TIMED(&c, vmsplice(p[1], &v, 1, 0));
    CHECK(c.result == (long)sizeof msg, "vmsplice returned %ld (errno %d)", c.result, c.err);
    CHECK(c.elapsed_ms >= 100, "returned after %lld ms", (long long)c.elapsed_ms);
    ticker_expect(ticks, 30, "vmsplice waiting for pipe room");
    join_within(t, 3000, "drainer");
    CHECK(read(p[0], back, sizeof back) == (ssize_t)sizeof back && memcmp(back, msg, sizeof msg) == 0,
          "vmspliced data");
    close(p[0]);
    close(p[1]);
}

static void *worker(void *arg)
{
    (void)arg;
    phase_sendfile_tcp();
    phase_sendfile_pipe();
    phase_splice();
    return NULL;
}

int main(void)
{
    watchdog(40);
    g_file = make_file();
    int p[2];
    CHECK(pipe(p) == 0, "pipe");
    g_pipe_cap = fcntl(p[0], F_GETPIPE_SZ);
    CHECK(g_pipe_cap > 0, "F_GETPIPE_SZ");
    close(p[0]);
    close(p[1]);
    ticker_start();
    /* The calls run in a thread: a fiber under greenld. */
    join_within(spawn(worker, NULL), 30000, "worker");
    ticker_stop();
    close(g_file);
    printf("t_sendfile_splice: ok\n");
    return 0;
}
