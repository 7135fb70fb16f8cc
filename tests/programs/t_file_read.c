/*
 * t_file_read — reads of regular files from threads return exactly what
 * libc's do, whether the pages are in the page cache or not (under greenld
 * a miss is read on the blocking-call pool, a hit directly):
 *
 *  1. A 4 MiB file, cached: one read() returns all of it; pread, readv,
 *     preadv at offsets; read at EOF returns 0; the file position moves.
 *  2. The same file with its pages dropped (posix_fadvise DONTNEED) past
 *     the first MiB: one 4 MiB read() still returns all 4 MiB (a
 *     non-blocking attempt stops at the first missing page; the rest must
 *     follow), with the right bytes; then with every page dropped.
 *  3. A procfs file (no non-blocking reads there) reads as usual.
 *  4. errno is untouched by successful reads; a bad fd is EBADF.
 */
#include "test_support.h"

#include <fcntl.h>
#include <sys/uio.h>

#define SIZE (4 << 20)
static char g_path[256];
static unsigned char *g_want, *g_got;

static unsigned char byte_at(size_t i) { return (unsigned char)((i * 2654435761u) >> 13); }

static void drop_pages(int fd, off_t from)
{
    /* Dropping only works on clean pages: the file was fsync'ed. */
    CHECK(posix_fadvise(fd, from, 0, POSIX_FADV_DONTNEED) == 0, "posix_fadvise");
}

static void *reader(void *arg)
{
    (void)arg;
    int fd = open(g_path, O_RDONLY);
    CHECK(fd >= 0, "open");

    set_phase("cached reads");
    errno = ERANGE;
    memset(g_got, 0, SIZE);
    CHECK(read(fd, g_got, SIZE) == SIZE, "read 4 MiB");
    CHECK(memcmp(g_got, g_want, SIZE) == 0, "data");
    CHECK(read(fd, g_got, 10) == 0, "read at EOF");
    CHECK(lseek(fd, 0, SEEK_CUR) == SIZE, "position after reading");
    CHECK(pread(fd, g_got, 100, 12345) == 100 && memcmp(g_got, g_want + 12345, 100) == 0, "pread");
    CHECK(pread(fd, g_got, 100, SIZE - 40) == 40, "pread across EOF");
    CHECK(lseek(fd, 1000, SEEK_SET) == 1000, "lseek");
    struct iovec v[3] = {{g_got, 10}, {g_got + 100, 5000}, {g_got + 10000, 3}};
    CHECK(readv(fd, v, 3) == 5013, "readv");
    CHECK(memcmp(g_got, g_want + 1000, 10) == 0 && memcmp(g_got + 100, g_want + 1010, 5000) == 0 &&
              memcmp(g_got + 10000, g_want + 6010, 3) == 0,
          "readv data");
    CHECK(preadv(fd, v, 3, 2000000) == 5013 && memcmp(g_got + 100, g_want + 2000010, 5000) == 0, "preadv");
    CHECK(lseek(fd, 0, SEEK_CUR) == 6013, "pread/preadv must not move the position");
    CHECK(errno == ERANGE, "a successful read changed errno to %d", errno);

    set_phase("partly cached");
    drop_pages(fd, 1 << 20);
    CHECK(lseek(fd, 0, SEEK_SET) == 0, "lseek");
    memset(g_got, 0, SIZE);
    long before = ticker_ticks();
    double t0 = now_ms();
    CHECK(read(fd, g_got, SIZE) == SIZE, "one read of a partly cached file returned short");
    double took = now_ms() - t0;
    CHECK(memcmp(g_got, g_want, SIZE) == 0, "data");
    if (took >= 20) ticker_expect(before, (long)(took / 8), "a read from disk");

    set_phase("not cached");
    drop_pages(fd, 0);
    memset(g_got, 0, SIZE);
    CHECK(pread(fd, g_got, SIZE, 0) == SIZE && memcmp(g_got, g_want, SIZE) == 0, "pread of an uncached file");
    CHECK(errno == ERANGE, "errno changed to %d", errno);
    close(fd);

    set_phase("procfs and errors");
    fd = open("/proc/self/stat", O_RDONLY);
    CHECK(fd >= 0, "open /proc/self/stat");
    char buf[512];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    CHECK(n > 0, "read /proc/self/stat");
    close(fd);
    errno = 0;
    CHECK(read(fd, buf, 1) == -1 && errno == EBADF, "read of a closed fd");
    return NULL;
}

int main(void)
{
    watchdog(30);
    snprintf(g_path, sizeof g_path, "t_file_read.%d.tmp", (int)getpid());
    g_want = malloc(SIZE);
    g_got = malloc(SIZE);
    CHECK(g_want && g_got, "malloc");
    for (size_t i = 0; i < SIZE; i++) g_want[i] = byte_at(i);
    int fd = open(g_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0, "create");
    CHECK(write(fd, g_want, SIZE) == SIZE, "write");
    CHECK(fsync(fd) == 0, "fsync");
    close(fd);
    ticker_start();
    join(spawn(reader, NULL));
    ticker_stop();
    unlink(g_path);
    printf("t_file_read: ok\n");
    return 0;
}
