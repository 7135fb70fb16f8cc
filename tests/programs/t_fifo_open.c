/*
 * t_fifo_open — open() of a FIFO waits for the other end, as libc's does,
 * and under greenld parks only the calling thread: a ticker keeps ticking,
 * and the reader and the writer may both be threads of this process (one
 * hub: both waits must be off the hub at once).
 *
 *  1. A thread opens the FIFO O_RDONLY; another opens it O_WRONLY 200 ms
 *     later. The reader's open returns only then; data flows.
 *  2. Same with the writer first (open O_WRONLY, then creat()).
 *  3. fopen() of a FIFO (glibc opens inside itself): the reader's fopen
 *     waits for a writer fopen'ed 200 ms later, the writer fprintf()s two
 *     lines 100 ms apart and fgets() parks for the second; freopen() of
 *     a FIFO onto an open stream waits likewise and keeps the FILE and
 *     its fd number. With
 *     one hub the writer is a fiber of the reader's hub: had either fopen
 *     blocked the hub, this would deadlock.
 *  4. Opens that never wait: O_RDWR, O_RDONLY|O_NONBLOCK; O_WRONLY|
 *     O_NONBLOCK with no reader fails with ENXIO. Regular files and
 *     missing paths (ENOENT, and O_CREAT creating) are unaffected.
 */
#include "test_support.h"

#include <fcntl.h>
#include <sys/stat.h>

static char g_fifo[256], g_file[256];
static atomic_int g_other_opened;

static void *late_writer(void *arg)
{
    (void)arg;
    sleep_ms(200);
    int fd = open(g_fifo, O_WRONLY);
    CHECK(fd >= 0, "writer open");
    atomic_store(&g_other_opened, 1);
    CHECK(write(fd, "hello", 5) == 5, "write");
    close(fd);
    return NULL;
}

static void *late_reader(void *arg)
{
    (void)arg;
    sleep_ms(200);
    int fd = open(g_fifo, O_RDONLY);
    CHECK(fd >= 0, "reader open");
    atomic_store(&g_other_opened, 1);
    char buf[16];
    CHECK(read(fd, buf, sizeof buf) == 5 && memcmp(buf, "hello", 5) == 0, "read");
    close(fd);
    return NULL;
}

static void *reader_first(void *arg)
{
    (void)arg;
    set_phase("reader opens first");
    atomic_store(&g_other_opened, 0);
    pthread_t w = spawn(late_writer, NULL);
    long before = ticker_ticks();
    double t0 = now_ms();
    int fd = open(g_fifo, O_RDONLY);
    CHECK(fd >= 0, "open O_RDONLY");
    CHECK(now_ms() - t0 >= 150, "open O_RDONLY of a FIFO returned before any writer");
    ticker_expect(before, 30, "open(FIFO, O_RDONLY)");
    char buf[16];
    CHECK(read(fd, buf, sizeof buf) == 5 && memcmp(buf, "hello", 5) == 0, "read");
    close(fd);
    join(w);
    return NULL;
}

static void *writer_first(void *arg)
{
    (void)arg;
    set_phase("writer opens first (creat)");
    pthread_t r = spawn(late_reader, NULL);
    long before = ticker_ticks();
    double t0 = now_ms();
    int fd = creat(g_fifo, 0600);
    CHECK(fd >= 0, "creat on a FIFO");
    CHECK(now_ms() - t0 >= 150, "creat of a FIFO returned before any reader");
    ticker_expect(before, 30, "creat(FIFO)");
    CHECK(write(fd, "hello", 5) == 5, "write");
    close(fd);
    join(r);
    return NULL;
}

static void *late_stream_writer(void *arg)
{
    (void)arg;
    sleep_ms(200);
    FILE *w = fopen(g_fifo, "w");
    CHECK(w != NULL, "fopen(FIFO, \"w\"): %s", strerror(errno));
    atomic_store(&g_other_opened, 1);
    CHECK(fprintf(w, "first line\n") > 0 && fflush(w) == 0, "fprintf");
    sleep_ms(100);
    CHECK(fprintf(w, "second line\n") > 0, "fprintf");
    CHECK(fclose(w) == 0, "fclose");
    return NULL;
}

static void *stream_reader(void *arg)
{
    (void)arg;
    set_phase("fopen and fgets of a FIFO");
    atomic_store(&g_other_opened, 0);
    pthread_t w = spawn(late_stream_writer, NULL);
    long before = ticker_ticks();
    double t0 = now_ms();
    FILE *r = fopen(g_fifo, "re");
    CHECK(r != NULL, "fopen(FIFO, \"re\"): %s", strerror(errno));
    CHECK(now_ms() - t0 >= 150, "fopen of a FIFO returned before any writer");
    ticker_expect(before, 30, "fopen(FIFO, \"r\")");
    CHECK((fcntl(fileno(r), F_GETFD) & FD_CLOEXEC) != 0, "\"e\" did not set FD_CLOEXEC");
    CHECK((fcntl(fileno(r), F_GETFL) & (O_ACCMODE | O_NONBLOCK)) == O_RDONLY, "flags of fopen's fd");
    char line[64];
    CHECK(fgets(line, sizeof line, r) && strcmp(line, "first line\n") == 0, "first line");
    before = ticker_ticks();
    CHECK(fgets(line, sizeof line, r) && strcmp(line, "second line\n") == 0, "second line");
    ticker_expect(before, 5, "fgets() waiting on a FIFO stream");
    CHECK(fgets(line, sizeof line, r) == NULL && feof(r), "end of file after the writer closed");
    CHECK(fclose(r) == 0, "fclose");
    join(w);

    set_phase("freopen of a FIFO");
    FILE *f = fopen(g_file, "w");
    CHECK(f != NULL, "fopen of a regular file");
    int fd_before = fileno(f);
    w = spawn(late_stream_writer, NULL);
    before = ticker_ticks();
    t0 = now_ms();
    FILE *g = freopen(g_fifo, "r", f);
    CHECK(g == f, "freopen kept the FILE: %s", g ? "other FILE" : strerror(errno));
    CHECK(now_ms() - t0 >= 150, "freopen of a FIFO returned before any writer");
    ticker_expect(before, 30, "freopen(FIFO, \"r\")");
    CHECK(fileno(g) == fd_before, "freopen kept the fd number");
    CHECK(fgets(line, sizeof line, g) && strcmp(line, "first line\n") == 0, "first line after freopen");
    before = ticker_ticks();
    CHECK(fgets(line, sizeof line, g) && strcmp(line, "second line\n") == 0, "second line after freopen");
    ticker_expect(before, 5, "fgets() waiting on a freopen()ed FIFO stream");
    fclose(g);
    join(w);

    set_phase("fopen errors");
    errno = 0;
    CHECK(fopen(g_fifo, "q") == NULL && errno == EINVAL, "fopen mode \"q\": EINVAL (errno %d)", errno);
    errno = 0;
    CHECK(fopen("/nonexistent/x", "r") == NULL && errno == ENOENT, "fopen of a missing path: ENOENT");
    errno = 0;
    CHECK(fopen(g_fifo, "wx") == NULL && errno == EEXIST, "fopen(FIFO, \"wx\"): EEXIST (errno %d)", errno);
    return NULL;
}

static void *never_wait(void *arg)
{
    (void)arg;
    set_phase("opens that never wait");
    int fd = open(g_fifo, O_RDWR);
    CHECK(fd >= 0, "O_RDWR");
    close(fd);
    fd = open(g_fifo, O_RDONLY | O_NONBLOCK);
    CHECK(fd >= 0, "O_RDONLY|O_NONBLOCK");
    CHECK((fcntl(fd, F_GETFL) & O_NONBLOCK) != 0, "O_NONBLOCK not reported");
    close(fd);
    errno = 0;
    CHECK(open(g_fifo, O_WRONLY | O_NONBLOCK) == -1 && errno == ENXIO, "O_WRONLY|O_NONBLOCK without a reader");
    errno = 0;
    CHECK(openat(AT_FDCWD, "/nonexistent/x", O_RDONLY) == -1 && errno == ENOENT, "ENOENT");
    errno = ERANGE;
    fd = open(g_file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0 && errno == ERANGE, "O_CREAT of a new file (errno %d)", errno);
    CHECK(write(fd, "abc", 3) == 3, "write");
    close(fd);
    fd = open(g_file, O_RDONLY);
    char buf[8];
    CHECK(fd >= 0 && read(fd, buf, sizeof buf) == 3, "read back");
    close(fd);
    return NULL;
}

int main(void)
{
    watchdog(30);
    snprintf(g_fifo, sizeof g_fifo, "/tmp/t_fifo_open.%d.fifo", (int)getpid());
    snprintf(g_file, sizeof g_file, "/tmp/t_fifo_open.%d.file", (int)getpid());
    CHECK(mkfifo(g_fifo, 0600) == 0, "mkfifo");
    ticker_start();
    join_within(spawn(reader_first, NULL), 5000, "reader first");
    join_within(spawn(writer_first, NULL), 5000, "writer first");
    join_within(spawn(stream_reader, NULL), 10000, "fopen of a FIFO");
    join(spawn(never_wait, NULL));
    ticker_stop();
    unlink(g_fifo);
    unlink(g_file);
    printf("t_fifo_open: ok\n");
    return 0;
}
