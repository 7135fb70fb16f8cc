/*
 * t_signal_exec_mask.c — a thread's own signal mask where a call takes
 * "the calling thread's mask", and sigpause.
 *   - exec from a thread that blocks SIGUSR1 (other threads do not): the
 *     new program starts with SIGUSR1 blocked, and a SIGUSR1 that was
 *     pending for that thread is still pending there;
 *   - posix_spawn (no POSIX_SPAWN_SETSIGMASK) from such a thread: the child
 *     starts with the spawning thread's mask;
 *   - sigpause(sig) (X/Open) and __sigpause(mask, 0) (BSD) suspend only the
 *     calling thread with the mask they say, return -1/EINTR after the
 *     handler ran, and restore the mask; a ticker thread keeps ticking
 *     meanwhile.
 */
#include "signal_support.h"

/* Deprecated, and still in legacy programs. */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

#include <spawn.h>
#include <sys/wait.h>

extern char **environ;
extern int __sigpause(int sig_or_mask, int is_sig);

static int blocked(int sig)
{
    sigset_t m;
    CHECK(pthread_sigmask(SIG_BLOCK, NULL, &m) == 0, "pthread_sigmask query");
    return sigismember(&m, sig);
}

/* ---- the exec'd / spawned program ---- */

static int check_child(int expect_pending)
{
    set_phase("the new program's mask");
    CHECK(blocked(SIGUSR1), "SIGUSR1 is not blocked in the new program");
    CHECK(!blocked(SIGUSR2), "SIGUSR2 is blocked in the new program");
    sigset_t p;
    CHECK(sigpending(&p) == 0, "sigpending");
    if (expect_pending) CHECK(sigismember(&p, SIGUSR1), "the thread's pending SIGUSR1 was lost across exec");
    return 0;
}

/* ---- sigpause ---- */

static atomic_int g_hits;
static pthread_t g_pauser;
static atomic_int g_paused;

static void on_usr1(int sig)
{
    (void)sig;
    atomic_fetch_add(&g_hits, 1);
}

static void *xpg_pauser(void *arg)
{
    (void)arg;
    block(SIGUSR1);
    atomic_store(&g_paused, 1);
    errno = 0;
    int rc = sigpause(SIGUSR1); /* X/Open: the mask minus SIGUSR1 */
    CHECK(rc == -1 && errno == EINTR, "sigpause returned %d errno %d", rc, errno);
    CHECK(blocked(SIGUSR1), "sigpause did not restore the mask");
    return NULL;
}

static void *bsd_pauser(void *arg)
{
    (void)arg;
    block(SIGUSR1);
    atomic_store(&g_paused, 1);
    errno = 0;
    int rc = __sigpause(1 << (SIGUSR2 - 1), 0); /* BSD: exactly {SIGUSR2} */
    CHECK(rc == -1 && errno == EINTR, "__sigpause returned %d errno %d", rc, errno);
    CHECK(blocked(SIGUSR1), "__sigpause did not restore the mask");
    return NULL;
}

static void pause_phase(const char *phase, void *(*fn)(void *))
{
    set_phase(phase);
    atomic_store(&g_paused, 0);
    int hits = atomic_load(&g_hits);
    long ticks = ticker_ticks();
    g_pauser = spawn(fn, NULL);
    while (!atomic_load(&g_paused)) sleep_ms(1);
    sleep_ms(200);
    CHECK(atomic_load(&g_hits) == hits, "the handler ran before the signal was sent");
    CHECK_RC(pthread_kill(g_pauser, SIGUSR1), 0);
    join_within(g_pauser, 5000, phase);
    CHECK(atomic_load(&g_hits) == hits + 1, "the handler ran %d times", atomic_load(&g_hits) - hits);
    ticker_expect(ticks, 20, phase);
}

/* ---- exec from a thread ---- */

static const char *g_self;

static void *idle_thread(void *arg)
{
    (void)arg;
    for (;;) sleep_ms(1000);
    return NULL;
}

static void *exec_thread(void *arg)
{
    (void)arg;
    block(SIGUSR1);
    unblock(SIGUSR2);
    CHECK_RC(pthread_kill(pthread_self(), SIGUSR1), 0);
    sigset_t p;
    CHECK(sigpending(&p) == 0 && sigismember(&p, SIGUSR1), "SIGUSR1 not pending before exec");
    execl(g_self, g_self, "check-exec", (char *)NULL);
    CHECK(0, "execl");
    return NULL;
}

static void exec_child(void)
{
    /* Threads that do not block SIGUSR1, so that (under greenld) no hub
     * blocks it for every thread it runs. */
    block(SIGUSR2);
    for (int i = 0; i < 8; ++i) spawn(idle_thread, NULL);
    join(spawn(exec_thread, NULL));
    _exit(3);
}

static void *waiter(void *arg)
{
    int status = 0;
    pid_t pid = *(pid_t *)arg;
    CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
    return (void *)(long)status;
}

static void wait_child(pid_t pid, const char *what)
{
    long status = (long)join_within(spawn(waiter, &pid), 20000, what);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: child status %#lx", what, status);
}

static void *spawn_thread(void *arg)
{
    (void)arg;
    block(SIGUSR1);
    unblock(SIGUSR2);
    pid_t pid;
    char *argv[] = {(char *)g_self, "check-spawn", NULL};
    CHECK_RC(posix_spawn(&pid, g_self, NULL, NULL, argv, environ), 0);
    return (void *)(long)pid;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "check-exec") == 0) return check_child(1);
    if (argc > 1 && strcmp(argv[1], "check-spawn") == 0) return check_child(0);
    g_self = "/proc/self/exe";
    static char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    CHECK(n > 0, "readlink");
    self[n] = 0;
    g_self = self;
    sig_watchdog(60);
    on(SIGUSR1, on_usr1, 0);
    ticker_start();

    pause_phase("sigpause(sig), X/Open", xpg_pauser);
    pause_phase("__sigpause(mask, 0), BSD", bsd_pauser);

    set_phase("exec from a thread keeps that thread's mask and pending signals");
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) exec_child();
    wait_child(pid, "exec from a thread");

    set_phase("posix_spawn from a thread gives the child that thread's mask");
    for (int i = 0; i < 4; ++i) spawn(idle_thread, NULL);
    pid = (pid_t)(long)join(spawn(spawn_thread, NULL));
    wait_child(pid, "posix_spawn from a thread");

    ticker_stop();
    printf("ok\n");
    return 0;
}
