/*
 * t_file_lock — a thread waiting for a file lock that another process
 * holds waits as long as libc's call would and, under greenld, parks only
 * itself: a ticker thread keeps ticking. For each of flock(LOCK_EX),
 * fcntl(F_SETLKW), fcntl(F_OFD_SETLKW) and lockf(F_LOCK):
 *
 *  - a child process opens the file itself, takes the lock, tells us so
 *    through a pipe, holds it 200 ms and exits (which releases it);
 *  - a thread asks for the lock: the try-only form fails (EWOULDBLOCK,
 *    EAGAIN/EACCES), then the waiting form returns 0 after >= 150 ms, with
 *    errno untouched, while the ticker ticked.
 * An uncontended lock is taken at once; unlocking works.
 */
#include "test_support.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/wait.h>

enum kind { K_FLOCK, K_FCNTL, K_OFD, K_LOCKF, K_COUNT };
static const char *const names[K_COUNT] = {"flock", "fcntl F_SETLKW", "fcntl F_OFD_SETLKW", "lockf F_LOCK"};
static char g_path[256];

static int lock_now(int fd, enum kind k, int wait)
{
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    switch (k) {
    case K_FLOCK: return flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB));
    case K_FCNTL: return fcntl(fd, wait ? F_SETLKW : F_SETLK, &fl);
    case K_OFD: return fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl);
    default: return lockf(fd, wait ? F_LOCK : F_TLOCK, 0);
    }
}

static int unlock_now(int fd, enum kind k)
{
    struct flock fl = {.l_type = F_UNLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    switch (k) {
    case K_FLOCK: return flock(fd, LOCK_UN);
    case K_FCNTL: return fcntl(fd, F_SETLK, &fl);
    case K_OFD: return fcntl(fd, F_OFD_SETLK, &fl);
    default: return lockf(fd, F_ULOCK, 0);
    }
}

/* A child that holds the lock for hold_ms; returns its pid once it holds it. */
static pid_t holder(enum kind k, int hold_ms)
{
    int p[2];
    CHECK(pipe(p) == 0, "pipe");
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        int fd = open(g_path, O_RDWR);
        if (fd < 0 || lock_now(fd, k, 1) != 0) _exit(3);
        if (write(p[1], "L", 1) != 1) _exit(4);
        sleep_ms(hold_ms);
        _exit(0);
    }
    close(p[1]);
    char c;
    CHECK(read(p[0], &c, 1) == 1, "the holder of the %s lock did not start", names[k]);
    close(p[0]);
    return pid;
}

static void *waiter_thread(void *arg)
{
    enum kind k = (enum kind)(intptr_t)arg;
    int fd = open(g_path, O_RDWR);
    CHECK(fd >= 0, "open");
    set_phase("uncontended lock");
    CHECK(lock_now(fd, k, 1) == 0, "%s uncontended", names[k]);
    CHECK(unlock_now(fd, k) == 0, "unlock %s", names[k]);

    set_phase("contended lock");
    pid_t pid = holder(k, 200);
    errno = 0;
    CHECK(lock_now(fd, k, 0) == -1 && (errno == EWOULDBLOCK || errno == EAGAIN || errno == EACCES),
          "the try-only %s succeeded while the child held the lock", names[k]);
    long before = ticker_ticks();
    double t0 = now_ms();
    errno = ERANGE;
    CHECK(lock_now(fd, k, 1) == 0, "%s", names[k]);
    double took = now_ms() - t0;
    CHECK(errno == ERANGE, "%s changed errno to %d on success", names[k], errno);
    CHECK(took >= 100, "%s returned after %.0f ms while the child held the lock 200 ms", names[k], took);
    ticker_expect(before, 30, names[k]);
    CHECK(unlock_now(fd, k) == 0, "unlock");
    int status;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "holder status %d", status);
    close(fd);
    return NULL;
}

int main(int argc, char **argv)
{
    /* An argument (0..3) runs one kind only, to check each alone. */
    int only = argc > 1 ? atoi(argv[1]) : -1;
    watchdog(30);
    snprintf(g_path, sizeof g_path, "/tmp/t_file_lock.%d", (int)getpid());
    int fd = open(g_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0, "create %s", g_path);
    close(fd);
    ticker_start();
    for (int k = 0; k < K_COUNT; k++)
        if (only < 0 || only == k) join(spawn(waiter_thread, (void *)(intptr_t)k));
    ticker_stop();
    unlink(g_path);
    printf("t_file_lock: ok\n");
    return 0;
}
