/*
 * t_waitpid — waiting for children from threads: the same results as libc
 * and, under greenld, only the waiting thread waits (a ticker keeps
 * ticking). Each child sleeps 200 ms, then exits with a known status.
 *
 *  1. waitpid(pid): status, and WNOHANG's 0 while the child runs.
 *  2. waitpid(-1) and wait(): the one child is reaped.
 *  3. Two threads, each waiting for its own child with waitpid(pid), the
 *     children ending in the opposite order: each gets its own child
 *     (the wait for one never reaps the other).
 *  4. waitid(P_PID) and waitid(P_ALL) with WEXITED: si_pid, si_status,
 *     si_code; WNOHANG with nothing ready leaves si_pid 0.
 *  5. wait4(pid) fills the rusage; with no children, waitpid is ECHILD.
 */
#include "test_support.h"

#include <sys/resource.h>
#include <sys/wait.h>

static pid_t child(int ms, int code)
{
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        sleep_ms(ms);
        _exit(code);
    }
    return pid;
}

static void *specific_pid(void *arg)
{
    (void)arg;
    set_phase("waitpid(pid)");
    pid_t pid = child(200, 7);
    int status = -1;
    CHECK(waitpid(pid, &status, WNOHANG) == 0, "WNOHANG while the child runs");
    long before = ticker_ticks();
    errno = ERANGE;
    CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
    CHECK(errno == ERANGE, "errno changed to %d", errno);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 7, "status %#x", status);
    ticker_expect(before, 30, "waitpid(pid)");
    return NULL;
}

static void *any_child(void *arg)
{
    (void)arg;
    set_phase("waitpid(-1)");
    pid_t pid = child(200, 8);
    int status = -1;
    long before = ticker_ticks();
    CHECK(waitpid(-1, &status, 0) == pid, "waitpid(-1)");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 8, "status %#x", status);
    ticker_expect(before, 30, "waitpid(-1)");

    set_phase("wait()");
    pid = child(200, 9);
    before = ticker_ticks();
    CHECK(wait(&status) == pid, "wait");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 9, "status %#x", status);
    ticker_expect(before, 30, "wait()");
    return NULL;
}

struct pair_arg {
    pid_t pid;
    int code;
};

static void *wait_own(void *arg)
{
    struct pair_arg *p = arg;
    int status = -1;
    CHECK(waitpid(p->pid, &status, 0) == p->pid, "waitpid(%d)", (int)p->pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == p->code, "status %#x, expected code %d", status, p->code);
    return NULL;
}

static void *waitid_thread(void *arg)
{
    (void)arg;
    set_phase("waitid(P_PID)");
    pid_t pid = child(200, 11);
    siginfo_t si;
    memset(&si, 0xff, sizeof si);
    si.si_pid = 12345;
    CHECK(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG) == 0 && si.si_pid == 0, "WNOHANG: si_pid %d",
          (int)si.si_pid);
    long before = ticker_ticks();
    memset(&si, 0, sizeof si);
    CHECK(waitid(P_PID, (id_t)pid, &si, WEXITED) == 0, "waitid(P_PID)");
    CHECK(si.si_pid == pid && si.si_code == CLD_EXITED && si.si_status == 11, "pid %d code %d status %d",
          (int)si.si_pid, si.si_code, si.si_status);
    ticker_expect(before, 30, "waitid(P_PID)");

    set_phase("waitid(P_ALL)");
    pid = child(200, 12);
    before = ticker_ticks();
    memset(&si, 0, sizeof si);
    CHECK(waitid(P_ALL, 0, &si, WEXITED) == 0, "waitid(P_ALL)");
    CHECK(si.si_pid == pid && si.si_status == 12, "pid %d status %d", (int)si.si_pid, si.si_status);
    ticker_expect(before, 30, "waitid(P_ALL)");
    return NULL;
}

static void *misc_thread(void *arg)
{
    (void)arg;
    set_phase("wait4 and ECHILD");
    pid_t pid = child(50, 13);
    int status = -1;
    struct rusage ru;
    memset(&ru, 0xff, sizeof ru);
    CHECK(wait4(pid, &status, 0, &ru) == pid && WEXITSTATUS(status) == 13, "wait4");
    CHECK(ru.ru_utime.tv_sec >= 0 && ru.ru_utime.tv_sec < 100, "rusage not filled");
    errno = 0;
    CHECK(waitpid(-1, &status, 0) == -1 && errno == ECHILD, "waitpid(-1) without children");
    errno = 0;
    CHECK(waitpid(pid, &status, 0) == -1 && errno == ECHILD, "waitpid of a reaped child");
    return NULL;
}

int main(void)
{
    watchdog(30);
    ticker_start();
    join(spawn(specific_pid, NULL));
    join(spawn(any_child, NULL));

    set_phase("two waiters, two children");
    struct pair_arg a = {child(300, 21), 21}, b = {child(100, 22), 22};
    pthread_t ta = spawn(wait_own, &a), tb = spawn(wait_own, &b);
    join(ta);
    join(tb);

    join(spawn(waitid_thread, NULL));
    join(spawn(misc_thread, NULL));
    ticker_stop();
    printf("t_waitpid: ok\n");
    return 0;
}
