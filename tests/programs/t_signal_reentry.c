/*
 * t_signal_reentry.c — handlers that send signals, run while the thread
 * they interrupt keeps creating and joining threads (inside greenld, that
 * is its own locks and the malloc it calls under them).
 *
 * A thread loops over pthread_create + pthread_join while the main thread
 * floods the process with SIGUSR1 (kill(): it blocks SIGUSR1 itself, so
 * the looping thread, or the short-lived ones, take them) and the looping
 * thread with SIGUSR2 (pthread_kill). Each SIGUSR1 handler calls
 * pthread_kill(pthread_self(), SIGHUP), async-signal-safe; SIGHUP's and
 * SIGUSR2's handlers count. Natively nothing can go wrong; under greenld a
 * handler run while the interrupted code holds one of the library's locks
 * would take it again from the same thread and hang: the run must end,
 * every handler having run in the thread it was sent to.
 */
#include "signal_support.h"

enum { kFlood = 20000, kBoundSec = 20 };

static atomic_int g_usr1, g_hup, g_usr2;
static atomic_int g_stop;

static void on_usr1(int sig)
{
    (void)sig;
    atomic_fetch_add(&g_usr1, 1);
    pthread_kill(pthread_self(), SIGHUP);
}

static void on_hup(int sig)
{
    (void)sig;
    atomic_fetch_add(&g_hup, 1);
}

static void on_usr2(int sig)
{
    (void)sig;
    atomic_fetch_add(&g_usr2, 1);
}

static void *nothing(void *arg) { return arg; }

static atomic_long g_created;

static void *loop_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&g_stop)) {
        pthread_t t;
        CHECK_RC(pthread_create(&t, NULL, nothing, NULL), 0);
        CHECK_RC(pthread_join(t, NULL), 0);
        atomic_fetch_add(&g_created, 1);
    }
    return NULL;
}

int main(void)
{
    sig_watchdog(kBoundSec + 30);
    on(SIGUSR1, on_usr1, SA_RESTART);
    on(SIGHUP, on_hup, SA_RESTART);
    on(SIGUSR2, on_usr2, SA_RESTART);
    set_phase("start the looping thread");
    pthread_t looper = spawn(loop_main, NULL);
    block(SIGUSR1);
    block(SIGHUP);
    while (atomic_load(&g_created) < 10) sleep_ms(1);

    set_phase("flood while it creates and joins threads");
    const int64_t start = now_ns();
    for (int i = 0; i < kFlood && now_ns() - start < (int64_t)kBoundSec * 1000000000; i++) {
        CHECK(kill(getpid(), SIGUSR1) == 0, "kill");
        CHECK_RC(pthread_kill(looper, SIGUSR2), 0);
        if (i % 64 == 0) sched_yield();
    }
    set_phase("the looping thread goes on after the flood");
    const long before = atomic_load(&g_created);
    const int64_t wait_start = now_ns();
    while (atomic_load(&g_created) < before + 10 && now_ns() - wait_start < 5000000000LL) sleep_ms(1);
    CHECK(atomic_load(&g_created) >= before + 10, "the looping thread stopped creating threads (it hangs)");
    atomic_store(&g_stop, 1);
    join(looper);
    CHECK(atomic_load(&g_usr1) > 0, "no SIGUSR1 handler ran");
    CHECK(atomic_load(&g_usr2) > 0, "no SIGUSR2 handler ran");
    CHECK_EQ(atomic_load(&g_hup), atomic_load(&g_usr1));
    printf("ok: %ld threads created, %d SIGUSR1 (each sending SIGHUP to itself), %d SIGUSR2 handled\n",
           atomic_load(&g_created), atomic_load(&g_usr1), atomic_load(&g_usr2));
    return 0;
}
