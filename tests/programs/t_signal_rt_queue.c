/*
 * t_signal_rt_queue — real-time signals queue, standard signals do not
 * (signal(7)): N sends of a blocked real-time signal to a thread are N
 * deliveries, in order, each with its own si_value; N sends of a blocked
 * standard signal are one. Under greenld the thread is a fiber whose
 * pending signals the library keeps, and must keep the same way.
 *
 *  1. pthread_sigqueue() of SIGRTMIN with values 0..9 to a thread that
 *     blocks it; the thread takes them with sigwaitinfo(): 10, in order,
 *     with their values; then nothing is left pending.
 *  2. Same, delivered to a SA_SIGINFO handler when the thread unblocks.
 *  3. With handlers that block each other: standard signals first, then
 *     real-time ones, lowest number first, each queue in order.
 *  4. SIGUSR1 sent 5 times while blocked: one delivery.
 */
#include "test_support.h"

#include <signal.h>

#define N 10

static int g_rt;
static volatile int g_got[64], g_got_n;

static void on_rt(int sig, siginfo_t *info, void *uc)
{
    (void)uc;
    if (g_got_n < 64) g_got[g_got_n++] = sig * 1000 + info->si_value.sival_int;
}

static struct gate g_sent;

static void block(int sig, int how)
{
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, sig);
    CHECK_RC(pthread_sigmask(how, &s, NULL), 0);
}

static void *receiver_wait(void *arg)
{
    (void)arg;
    set_phase("sigwaitinfo takes each queued real-time signal");
    block(g_rt, SIG_BLOCK);
    gate_wait(&g_sent); /* ready */
    gate_wait(&g_sent); /* sent */
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, g_rt);
    for (int i = 0; i < N; i++) {
        siginfo_t info;
        int sig = sigwaitinfo(&s, &info);
        CHECK(sig == g_rt, "sigwaitinfo returned %d", sig);
        CHECK(info.si_code == SI_QUEUE && info.si_value.sival_int == i,
              "signal %d of %d: si_code %d, value %d (a queued real-time signal was lost or reordered)", i + 1, N,
              info.si_code, info.si_value.sival_int);
    }
    sigset_t pending;
    CHECK_RC(sigpending(&pending), 0);
    CHECK(!sigismember(&pending, g_rt), "still pending after its %d deliveries", N);
    return NULL;
}

static void *receiver_handler(void *arg)
{
    (void)arg;
    set_phase("a handler runs once per queued real-time signal, lower numbers first");
    block(g_rt, SIG_BLOCK);
    block(g_rt + 1, SIG_BLOCK);
    block(SIGUSR1, SIG_BLOCK);
    gate_wait(&g_sent);
    gate_wait(&g_sent);
    g_got_n = 0;
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, g_rt);
    sigaddset(&s, g_rt + 1);
    sigaddset(&s, SIGUSR1);
    CHECK_RC(pthread_sigmask(SIG_UNBLOCK, &s, NULL), 0);
    /* Every handler has run by the return of the unblocking call. */
    int expected[2 * N + 1], k = 0;
    /* signal(7): standard signals first, then real-time ones, lowest number first. */
    expected[k++] = SIGUSR1 * 1000 + 99;
    for (int i = 0; i < N; i++) expected[k++] = g_rt * 1000 + i;
    for (int i = 0; i < N; i++) expected[k++] = (g_rt + 1) * 1000 + 100 + i;
    CHECK(g_got_n == k, "%d handler runs, expected %d (SIGUSR1 once, %d of each real-time signal)", g_got_n, k, N);
    for (int i = 0; i < k; i++)
        CHECK(g_got[i] == expected[i], "delivery %d: signal %d value %d, expected signal %d value %d", i,
              g_got[i] / 1000, g_got[i] % 1000, expected[i] / 1000, expected[i] % 1000);
    return NULL;
}

int main(void)
{
    watchdog(20);
    g_rt = SIGRTMIN;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_rt;
    sa.sa_flags = SA_SIGINFO;
    /* Each handler blocks all three: one delivery at a time, in the
     * kernel's order (otherwise their frames nest, last set up first). */
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, g_rt);
    sigaddset(&sa.sa_mask, g_rt + 1);
    sigaddset(&sa.sa_mask, SIGUSR1);
    CHECK_RC(sigaction(g_rt, &sa, NULL), 0);
    CHECK_RC(sigaction(g_rt + 1, &sa, NULL), 0);
    CHECK_RC(sigaction(SIGUSR1, &sa, NULL), 0);

    gate_init(&g_sent, 2);
    pthread_t t = spawn(receiver_wait, NULL);
    gate_wait(&g_sent);
    for (int i = 0; i < N; i++) CHECK_RC(pthread_sigqueue(t, g_rt, (union sigval){.sival_int = i}), 0);
    gate_wait(&g_sent);
    join_within(t, 5000, "sigwaitinfo receiver");

    t = spawn(receiver_handler, NULL);
    gate_wait(&g_sent);
    for (int i = 0; i < N; i++) CHECK_RC(pthread_sigqueue(t, g_rt + 1, (union sigval){.sival_int = 100 + i}), 0);
    for (int i = 0; i < N; i++) CHECK_RC(pthread_sigqueue(t, g_rt, (union sigval){.sival_int = i}), 0);
    for (int i = 0; i < 5; i++) CHECK_RC(pthread_sigqueue(t, SIGUSR1, (union sigval){.sival_int = 99}), 0);
    gate_wait(&g_sent);
    join_within(t, 5000, "handler receiver");
    gate_destroy(&g_sent);
    printf("t_signal_rt_queue: ok\n");
    return 0;
}
