/*
 * t_system — system() from a thread returns the shell's status exactly as
 * libc does and, under greenld, waits in that thread only: a ticker keeps
 * ticking through system("sleep 0.2; exit 3").
 */
#include "test_support.h"

#include <sys/wait.h>

static void *system_thread(void *arg)
{
    (void)arg;
    set_phase("system(sleep 0.2; exit 3)");
    long before = ticker_ticks();
    double t0 = now_ms();
    errno = ERANGE;
    int status = system("sleep 0.2; exit 3");
    CHECK(errno == ERANGE, "errno changed to %d", errno);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 3, "status %#x", status);
    CHECK(now_ms() - t0 >= 150, "system returned before the command ended");
    ticker_expect(before, 30, "system()");

    set_phase("system(NULL) and a signal death");
    CHECK(system(NULL) != 0, "system(NULL): no shell?");
    status = system("kill -TERM $$");
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM, "status %#x", status);
    status = system("exit 0");
    CHECK(status == 0, "status %#x", status);
    return NULL;
}

int main(void)
{
    watchdog(30);
    ticker_start();
    join(spawn(system_thread, NULL));
    ticker_stop();
    printf("t_system: ok\n");
    return 0;
}
