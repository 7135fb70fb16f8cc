/*
 * t_pool_size — GREENLD_POOL_SIZE bounds the blocking-call pool, and a
 * call that waits for another party never starves it.
 *
 * The program runs itself again as "work" with GREENLD_POOL_SIZE=1 and
 * GREENLD_HUBS=1: a child process holds a flock 400 ms while one thread
 * waits for it, and four threads make 50 fdatasync calls each at once.
 * All the fdatasyncs must be done while the flock wait goes on (the wait
 * does not take the pool's only place), the lock is then had, a ticker
 * ticks throughout, and under greenld the process never has more than 4
 * OS threads (main, the hub, one pool thread for the fdatasyncs, one for
 * the flock wait): four threads of the pool size would make 7.
 *
 * Then it runs itself with GREENLD_POOL_SIZE=abc and =0: under greenld
 * exactly one "greenld: GREENLD_POOL_SIZE='abc' is not an integer in
 * 1..256; using 4" on stderr, and the work still succeeds.
 */
#include "test_support.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/wait.h>

static char g_lock_path[256];
static atomic_int g_syncs_done, g_lock_had, g_max_threads;

static int os_threads(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    CHECK(f != NULL, "fopen /proc/self/status");
    char line[256];
    int n = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %d", &n) == 1) break;
    fclose(f);
    return n;
}

static void *syncer(void *arg)
{
    char path[128];
    snprintf(path, sizeof path, "/dev/shm/t_pool_size.%d.%d", (int)getpid(), (int)(intptr_t)arg);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0, "open %s", path);
    for (int i = 0; i < 50; i++) {
        CHECK(pwrite(fd, &i, sizeof i, 0) == sizeof i, "pwrite");
        CHECK(fdatasync(fd) == 0, "fdatasync");
    }
    close(fd);
    unlink(path);
    atomic_fetch_add(&g_syncs_done, 1);
    return NULL;
}

static void *locker(void *arg)
{
    (void)arg;
    int fd = open(g_lock_path, O_RDWR);
    CHECK(fd >= 0, "open");
    CHECK(flock(fd, LOCK_EX) == 0, "flock");
    CHECK(atomic_load(&g_syncs_done) == 4, "the fdatasyncs waited for the flock wait to end (%d of 4 done)",
          atomic_load(&g_syncs_done));
    atomic_store(&g_lock_had, 1);
    close(fd);
    return NULL;
}

static int work(void)
{
    watchdog(20);
    set_phase("work");
    snprintf(g_lock_path, sizeof g_lock_path, "/tmp/t_pool_size.%d", (int)getpid());
    int fd = open(g_lock_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0, "create");
    close(fd);
    int p[2];
    CHECK(pipe(p) == 0, "pipe");
    pid_t holder = fork();
    CHECK(holder >= 0, "fork");
    if (holder == 0) {
        int lfd = open(g_lock_path, O_RDWR);
        if (lfd < 0 || flock(lfd, LOCK_EX) != 0 || write(p[1], "L", 1) != 1) _exit(3);
        sleep_ms(400);
        _exit(0);
    }
    char c;
    CHECK(read(p[0], &c, 1) == 1, "holder did not start");
    ticker_start();
    long before = ticker_ticks();
    pthread_t l = spawn(locker, NULL);
    sleep_ms(20);
    pthread_t s[4];
    for (int i = 0; i < 4; i++) s[i] = spawn(syncer, (void *)(intptr_t)i);
    while (!atomic_load(&g_lock_had)) {
        int n = os_threads();
        if (n > atomic_load(&g_max_threads)) atomic_store(&g_max_threads, n);
        sleep_ms(2);
    }
    join(l);
    for (int i = 0; i < 4; i++) join(s[i]);
    ticker_expect(before, 50, "flock + fdatasync with a pool of 1");
    ticker_stop();
    int status;
    CHECK(waitpid(holder, &status, 0) == holder && WIFEXITED(status) && WEXITSTATUS(status) == 0, "holder");
    unlink(g_lock_path);
    const char *size = getenv("GREENLD_POOL_SIZE");
    if (is_shim() && size && strcmp(size, "1") == 0)
        CHECK(atomic_load(&g_max_threads) <= 4, "%d OS threads with a pool of 1", atomic_load(&g_max_threads));
    return 0;
}

/* Runs this program as "work" with GREENLD_POOL_SIZE=size; returns its
 * stderr (static buffer) and checks it succeeded. */
static const char *run_work(const char *size)
{
    static char err[4096];
    int p[2];
    CHECK(pipe(p) == 0, "pipe");
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        dup2(p[1], 2);
        close(p[0]);
        close(p[1]);
        setenv("GREENLD_POOL_SIZE", size, 1);
        setenv("GREENLD_HUBS", "1", 1);
        execl("/proc/self/exe", "t_pool_size", "work", (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    size_t len = 0;
    ssize_t n;
    while ((n = read(p[0], err + len, sizeof err - 1 - len)) > 0) len += (size_t)n;
    err[len] = 0;
    close(p[0]);
    int status;
    CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "work with GREENLD_POOL_SIZE=%s: status %#x, stderr: %s",
          size, status, err);
    return err;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++) n++;
    return n;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "work") == 0) return work();
    watchdog(60);
    set_phase("GREENLD_POOL_SIZE=1");
    run_work("1");
    static const char *const bad[] = {"abc", "0"};
    for (int i = 0; i < 2; i++) {
        set_phase("a bad GREENLD_POOL_SIZE");
        const char *err = run_work(bad[i]);
        char want[128];
        snprintf(want, sizeof want, "greenld: GREENLD_POOL_SIZE='%s' is not an integer in 1..256; using 4", bad[i]);
        int n = count(err, want);
        CHECK(n == (is_shim() ? 1 : 0), "'%s' reported %d times; stderr: %s", want, n, err);
    }
    printf("t_pool_size: ok\n");
    return 0;
}
