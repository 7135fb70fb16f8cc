/*
 * t_file_sync — fsync, fdatasync, syncfs, sync_file_range from a thread
 * behave as libc's (results, errno) and, under greenld, run on the
 * blocking-call pool: a ticker thread keeps ticking while a thread waits
 * for the disk.
 *
 *  1. Errors and errno: fsync/fdatasync of a bad fd is EBADF, of a pipe
 *     EINVAL; a success leaves errno as it was.
 *  2. 64 MiB of dirty data on the disk-backed file system of the current
 *     directory, then fsync: the ticker must tick through it. A flush that
 *     took under 40 ms proves nothing either way and is only checked for
 *     its result.
 *  3. fdatasync on tmpfs (/dev/shm) 200 times: fast, and correct.
 */
#include "test_support.h"

#include <fcntl.h>
#include <sys/stat.h>

static char g_path[256];

static void *errors_thread(void *arg)
{
    (void)arg;
    set_phase("errors");
    errno = 0;
    CHECK(fsync(-1) == -1 && errno == EBADF, "fsync(-1)");
    errno = 0;
    CHECK(fdatasync(1000000) == -1 && errno == EBADF, "fdatasync(bad fd)");
    int p[2];
    CHECK(pipe(p) == 0, "pipe");
    errno = 0;
    CHECK(fsync(p[0]) == -1 && errno == EINVAL, "fsync(pipe)");
    close(p[0]);
    close(p[1]);
    int fd = open(g_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0, "open %s", g_path);
    CHECK(write(fd, "x", 1) == 1, "write");
    errno = ERANGE;
    CHECK(fsync(fd) == 0, "fsync");
    CHECK(errno == ERANGE, "a successful fsync changed errno to %d", errno);
    CHECK(fdatasync(fd) == 0 && errno == ERANGE, "fdatasync");
    CHECK(syncfs(fd) == 0 && errno == ERANGE, "syncfs");
    CHECK(sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                         SYNC_FILE_RANGE_WAIT_AFTER) == 0 && errno == ERANGE,
          "sync_file_range");
    errno = 0;
    CHECK(sync_file_range(fd, -1, 0, 0) == -1 && errno == EINVAL, "sync_file_range with offset -1");
    close(fd);
    return NULL;
}

static void *flush_thread(void *arg)
{
    (void)arg;
    set_phase("fsync of 64 MiB");
    int fd = open(g_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0, "open %s", g_path);
    static char block[1 << 20];
    for (size_t i = 0; i < sizeof block; i++) block[i] = (char)(i * 7);
    for (int i = 0; i < 64; i++) CHECK(write(fd, block, sizeof block) == (ssize_t)sizeof block, "write");
    long before = ticker_ticks();
    double t0 = now_ms();
    CHECK(fsync(fd) == 0, "fsync");
    double took = now_ms() - t0;
    /* Blocking the hub (with one hub, the ticker's) would leave 0 ticks;
     * on a loaded machine a 1 ms tick can take 10 ms or more. */
    if (took >= 40)
        ticker_expect(before, 2, "fsync");
    else
        printf("fsync took %.1f ms: too fast to judge the ticker\n", took);
    close(fd);
    return NULL;
}

static void *tmpfs_thread(void *arg)
{
    (void)arg;
    set_phase("fdatasync on tmpfs");
    char path[64];
    snprintf(path, sizeof path, "/dev/shm/t_file_sync.%d", (int)getpid());
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0, "open %s", path);
    for (int i = 0; i < 200; i++) {
        CHECK(pwrite(fd, &i, sizeof i, 0) == sizeof i, "pwrite");
        CHECK(fdatasync(fd) == 0, "fdatasync");
    }
    close(fd);
    unlink(path);
    return NULL;
}

int main(void)
{
    watchdog(30);
    snprintf(g_path, sizeof g_path, "t_file_sync.%d.tmp", (int)getpid());
    ticker_start();
    join(spawn(errors_thread, NULL));
    join(spawn(flush_thread, NULL));
    join(spawn(tmpfs_thread, NULL));
    ticker_stop();
    unlink(g_path);
    printf("t_file_sync: ok\n");
    return 0;
}
