/*
 * t_vfork_mask.c — vfork(2) from a thread gives the child that thread's
 * signal mask, and leaves the other threads' signals alone.
 *   - a thread blocking SIGUSR1 (other threads do not) and not SIGUSR2
 *     vforks: the child's kernel mask (rt_sigprocmask, read before
 *     _exit) blocks SIGUSR1 and not SIGUSR2; a child that execs this
 *     program finds the same mask;
 *   - afterwards the thread's own mask is what it was, and a
 *     process-directed SIGUSR1 still reaches the threads that accept it
 *     (the main thread and the vforking one block it): the vfork did not
 *     leave its mask on the OS thread that other threads share under
 *     greenld;
 *   - another thread answers a probe after each vfork.
 */
#include "signal_support.h"

#include <sys/wait.h>

static const char *g_self;
static atomic_int g_hits;
static atomic_int g_accepting;
static atomic_int g_stop;
static atomic_int g_vforked;
/* Written by the vfork child, which shares this memory until it exits. */
static volatile unsigned long long g_child_mask;

static void on_usr1(int sig)
{
    (void)sig;
    atomic_fetch_add(&g_hits, 1);
}

static int blocked(int sig)
{
    sigset_t m;
    CHECK(pthread_sigmask(SIG_BLOCK, NULL, &m) == 0, "pthread_sigmask query");
    return sigismember(&m, sig);
}

static unsigned long long bit(int sig) { return 1ull << (sig - 1); }

/* Threads that accept SIGUSR1, parked in a blocking call. */
static void *acceptor(void *arg)
{
    (void)arg;
    unblock(SIGUSR1);
    atomic_fetch_add(&g_accepting, 1);
    while (!atomic_load(&g_stop)) sleep_ms(5);
    return NULL;
}

static int wait_status(pid_t pid)
{
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
    return status;
}

static void *vforker(void *arg)
{
    struct probe *probe = arg;
    block(SIGUSR1);
    unblock(SIGUSR2);
    for (int round = 0; round < 3; ++round) {
        set_phase("vfork: the child reports its kernel mask");
        g_child_mask = 0;
        pid_t pid = vfork();
        if (pid == 0) {
            unsigned long long m = 0;
            if (syscall(SYS_rt_sigprocmask, SIG_BLOCK, NULL, &m, 8) != 0) _exit(3);
            g_child_mask = m;
            _exit((m & bit(SIGUSR1)) && !(m & bit(SIGUSR2)) ? 0 : 1);
        }
        CHECK(pid > 0, "vfork");
        int status = wait_status(pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "the vfork child's mask %#llx: SIGUSR1 blocked %d (want 1), SIGUSR2 blocked %d (want 0); status %#x",
              g_child_mask, !!(g_child_mask & bit(SIGUSR1)), !!(g_child_mask & bit(SIGUSR2)), status);
        CHECK(blocked(SIGUSR1) && !blocked(SIGUSR2), "the thread's own mask changed across vfork");
        probe_expect(probe, 5000, "after vfork");

        set_phase("vfork + exec: the new program's mask");
        pid = vfork();
        if (pid == 0) {
            execl(g_self, g_self, "check-vfork-exec", (char *)NULL);
            _exit(127);
        }
        CHECK(pid > 0, "vfork");
        status = wait_status(pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the exec'd vfork child: status %#x", status);
        CHECK(blocked(SIGUSR1) && !blocked(SIGUSR2), "the thread's own mask changed across vfork");
        probe_expect(probe, 5000, "after vfork and exec");
    }
    /* Still alive (its mask still counts) while main sends SIGUSR1. */
    atomic_store(&g_vforked, 1);
    while (!atomic_load(&g_stop)) sleep_ms(5);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "check-vfork-exec") == 0) {
        set_phase("the program a vfork child exec'd");
        CHECK(blocked(SIGUSR1), "SIGUSR1 is not blocked in the new program");
        CHECK(!blocked(SIGUSR2), "SIGUSR2 is blocked in the new program");
        return 0;
    }
    static char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    CHECK(n > 0, "readlink");
    self[n] = 0;
    g_self = self;
    sig_watchdog(60);
    on(SIGUSR1, on_usr1, SA_RESTART);
    block(SIGUSR1);
    block(SIGUSR2);

    set_phase("start threads");
    struct probe probe;
    probe_start(&probe);
    pthread_t acceptors[4];
    for (int i = 0; i < 4; ++i) acceptors[i] = spawn(acceptor, NULL);
    while (atomic_load(&g_accepting) < 4) sleep_ms(1);

    pthread_t v = spawn(vforker, &probe);
    wait_flag(&g_vforked);

    set_phase("a process-directed SIGUSR1 still reaches the threads that accept it");
    for (int i = 0; i < 3; ++i) {
        int before = atomic_load(&g_hits);
        CHECK(kill(getpid(), SIGUSR1) == 0, "kill");
        int64_t until = now_ns() + 5000000000LL;
        while (atomic_load(&g_hits) == before && now_ns() < until) sleep_ms(1);
        CHECK(atomic_load(&g_hits) == before + 1, "SIGUSR1 was not handled within 5 s (hits %d, before %d)",
              atomic_load(&g_hits), before);
    }

    atomic_store(&g_stop, 1);
    join_within(v, 5000, "vforker");
    for (int i = 0; i < 4; ++i) join(acceptors[i]);
    probe_stop(&probe);
    printf("ok\n");
    return 0;
}
