/*
 * t_pool_eintr.c — signals and cancellation interrupt the waits that
 * cannot be made non-blocking, exactly as they interrupt a thread sleeping
 * in the kernel:
 *   - a handler without SA_RESTART makes fcntl(F_SETLKW) (lock held by
 *     another process), lockf(F_LOCK), flock(LOCK_EX) (another open file
 *     description holds it), open() of a FIFO with no writer, and wait()
 *     for a child that has not exited fail with EINTR, and the handler ran
 *     in the waiting thread; a ticker thread kept ticking meanwhile;
 *   - with SA_RESTART the call goes on (parked: the ticker ticks) and
 *     succeeds once the lock is free;
 *   - the classic alarm() timeout around a lock wait in the main thread;
 *   - pthread_cancel of a thread waiting in fcntl(F_SETLKW) (a
 *     cancellation point) ends it while the lock is still held.
 */
#include "signal_support.h"

#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>

static char g_path[64];
static char g_fifo[64];
static atomic_int g_hits;
static pthread_t g_handler_thread;

static void on_usr1(int sig)
{
    (void)sig;
    g_handler_thread = pthread_self();
    atomic_fetch_add(&g_hits, 1);
}

static atomic_int g_alarms;
static void on_alarm(int sig)
{
    (void)sig;
    atomic_fetch_add(&g_alarms, 1);
}

/* A child process that holds a POSIX write lock on the file until killed. */
static pid_t g_holder;
static void hold_posix_lock(void)
{
    int ready[2];
    CHECK_EQ(pipe(ready), 0);
    g_holder = fork();
    CHECK(g_holder >= 0, "fork");
    if (g_holder == 0) {
        int fd = open(g_path, O_RDWR);
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
        if (fd < 0 || fcntl(fd, F_SETLK, &fl) != 0) _exit(1);
        (void)!write(ready[1], "x", 1);
        for (;;) pause();
    }
    char c;
    CHECK_EQ(read(ready[0], &c, 1), 1);
    close(ready[0]);
    close(ready[1]);
}

static void release_posix_lock(void)
{
    kill(g_holder, SIGKILL);
    int st;
    CHECK(waitpid(g_holder, &st, 0) == g_holder, "waitpid(holder)");
}

enum what { F_SETLKW_WAIT, LOCKF_WAIT, FLOCK_WAIT, FIFO_OPEN, WAIT_CHILD };

struct waiter {
    enum what what;
    atomic_int started;
    int rc, err;
    int in_self;
};

static int g_flock_fd = -1;
static pid_t g_sleeper;

static void *waiter_main(void *arg)
{
    struct waiter *w = arg;
    int fd = -1;
    if (w->what != FIFO_OPEN && w->what != WAIT_CHILD) {
        fd = open(g_path, O_RDWR);
        CHECK(fd >= 0, "open(%s)", g_path);
    }
    atomic_store(&w->started, 1);
    errno = 0;
    switch (w->what) {
    case F_SETLKW_WAIT: {
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
        w->rc = fcntl(fd, F_SETLKW, &fl);
        break;
    }
    case LOCKF_WAIT: w->rc = lockf(fd, F_LOCK, 0); break;
    case FLOCK_WAIT: w->rc = flock(fd, LOCK_EX); break;
    case FIFO_OPEN: w->rc = open(g_fifo, O_RDONLY); break;
    case WAIT_CHILD: {
        int st;
        w->rc = wait(&st);
        break;
    }
    }
    w->err = errno;
    w->in_self = pthread_equal(g_handler_thread, pthread_self());
    if (w->rc >= 0 && w->what == FIFO_OPEN) close(w->rc);
    if (fd >= 0) close(fd);
    return NULL;
}

/* Starts a waiter, lets it block for 200 ms, sends it SIGUSR1, and returns
 * once it has finished. */
static void interrupt(struct waiter *w, const char *phase)
{
    set_phase(phase);
    atomic_store(&g_hits, 0);
    long ticks = ticker_ticks();
    pthread_t t = spawn(waiter_main, w);
    while (!atomic_load(&w->started)) sleep_ms(1);
    sleep_ms(200);
    CHECK_RC(pthread_kill(t, SIGUSR1), 0);
    join_within(t, 5000, phase);
    CHECK(atomic_load(&g_hits) == 1, "the handler ran %d times", atomic_load(&g_hits));
    CHECK(w->in_self, "the handler ran in another thread");
    ticker_expect(ticks, 20, phase);
}

static void expect_eintr(enum what what, const char *phase)
{
    struct waiter w = {.what = what, .rc = 0};
    interrupt(&w, phase);
    CHECK(w.rc == -1 && w.err == EINTR, "%s: returned %d errno %d, expected EINTR", phase, w.rc, w.err);
}

static void *cancel_target(void *arg)
{
    (void)arg;
    int fd = open(g_path, O_RDWR);
    CHECK(fd >= 0, "open");
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    fcntl(fd, F_SETLKW, &fl);
    CHECK(0, "fcntl(F_SETLKW) returned in a cancelled thread");
    return NULL;
}

int main(void)
{
    sig_watchdog(60);
    snprintf(g_path, sizeof g_path, "/tmp/greenld_t_pool_eintr_%d", (int)getpid());
    snprintf(g_fifo, sizeof g_fifo, "/tmp/greenld_t_pool_eintr_fifo_%d", (int)getpid());
    int fd = open(g_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0, "create %s", g_path);
    CHECK(mkfifo(g_fifo, 0600) == 0, "mkfifo");
    on(SIGUSR1, on_usr1, 0);
    ticker_start();

    hold_posix_lock();
    expect_eintr(F_SETLKW_WAIT, "fcntl(F_SETLKW) interrupted");
    expect_eintr(LOCKF_WAIT, "lockf(F_LOCK) interrupted");

    set_phase("alarm() timeout around F_SETLKW in the main thread");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGALRM, &sa, NULL) == 0, "sigaction(SIGALRM)");
    alarm(1);
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    errno = 0;
    CHECK(fcntl(fd, F_SETLKW, &fl) == -1 && errno == EINTR, "F_SETLKW after alarm: errno %d", errno);
    CHECK_EQ(atomic_load(&g_alarms), 1);

    set_phase("pthread_cancel in fcntl(F_SETLKW)");
    pthread_t c = spawn(cancel_target, NULL);
    sleep_ms(200);
    CHECK_RC(pthread_cancel(c), 0);
    CHECK(join_within(c, 5000, "cancelled lock waiter") == PTHREAD_CANCELED, "not cancelled");

    set_phase("SA_RESTART: F_SETLKW goes on and gets the lock");
    on(SIGUSR1, on_usr1, SA_RESTART);
    {
        struct waiter w = {.what = F_SETLKW_WAIT, .rc = -2};
        atomic_store(&g_hits, 0);
        pthread_t t = spawn(waiter_main, &w);
        while (!atomic_load(&w.started)) sleep_ms(1);
        sleep_ms(200);
        CHECK_RC(pthread_kill(t, SIGUSR1), 0);
        while (!atomic_load(&g_hits)) sleep_ms(1);
        long ticks = ticker_ticks();
        sleep_ms(300);
        /* The waiter goes on waiting, parked: its hub is not spinning. */
        ticker_expect(ticks, 20, "F_SETLKW waiting on after a SA_RESTART handler");
        release_posix_lock();
        join_within(t, 5000, "restarted F_SETLKW");
        CHECK(w.rc == 0, "F_SETLKW after a SA_RESTART handler: %d errno %d", w.rc, w.err);
    }
    on(SIGUSR1, on_usr1, 0);

    CHECK_EQ(flock(fd, LOCK_EX), 0); /* held through this description */
    g_flock_fd = fd;
    expect_eintr(FLOCK_WAIT, "flock(LOCK_EX) interrupted");
    CHECK_EQ(flock(fd, LOCK_UN), 0);

    expect_eintr(FIFO_OPEN, "open of a FIFO interrupted");

    g_sleeper = fork();
    CHECK(g_sleeper >= 0, "fork");
    if (g_sleeper == 0) {
        sleep(30);
        _exit(0);
    }
    expect_eintr(WAIT_CHILD, "wait() interrupted");
    kill(g_sleeper, SIGKILL);
    int st;
    CHECK(waitpid(g_sleeper, &st, 0) == g_sleeper, "waitpid(sleeper)");

    ticker_stop();
    close(fd);
    unlink(g_path);
    unlink(g_fifo);
    printf("ok\n");
    return 0;
}
