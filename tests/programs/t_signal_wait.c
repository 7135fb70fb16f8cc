/*
 * t_signal_wait.c — waiting for signals in a thread, the classic daemon
 * pattern: the main thread blocks the signals before it creates any thread
 * (so every thread inherits the mask) and one thread waits for them.
 *   - sigwait, sigwaitinfo (si_code SI_USER and si_pid for kill(),
 *     SI_TKILL for pthread_kill, SI_QUEUE and si_value for sigqueue),
 *     sigtimedwait timing out with EAGAIN;
 *   - sigpending in a thread shows a signal pending for the process;
 *   - sigsuspend and pause in a thread return -1/EINTR after the handler
 *     ran there, and sigsuspend restores the mask;
 *   - read() of a signalfd in a thread returns the signal.
 * Meanwhile a ticker thread keeps ticking: each wait parked only its thread.
 */
#include "signal_support.h"

#include <sys/signalfd.h>

static atomic_int g_ready;
static atomic_int g_hits;
static pthread_t g_handler_thread;

static void on_signal(int sig)
{
    (void)sig;
    g_handler_thread = pthread_self();
    atomic_fetch_add(&g_hits, 1);
}

static sigset_t set_of(int sig)
{
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, sig);
    return s;
}

static void *sigwait_thread(void *arg)
{
    (void)arg;
    sigset_t s = set_of(SIGUSR1);
    int sig = 0;
    atomic_store(&g_ready, 1);
    int rc = sigwait(&s, &sig);
    CHECK(rc == 0 && sig == SIGUSR1, "sigwait returned %d, signal %d", rc, sig);
    return NULL;
}

static siginfo_t g_info;

static void *sigwaitinfo_thread(void *arg)
{
    int sig = *(int *)arg;
    sigset_t s = set_of(sig);
    memset(&g_info, 0, sizeof g_info);
    atomic_store(&g_ready, 1);
    int r = sigwaitinfo(&s, &g_info);
    CHECK(r == sig && g_info.si_signo == sig, "sigwaitinfo returned %d (si_signo %d)", r, g_info.si_signo);
    return NULL;
}

static void *sigtimedwait_thread(void *arg)
{
    (void)arg;
    sigset_t s = set_of(SIGUSR1);
    struct timespec ts = {0, 200 * 1000000L};
    int64_t t0 = now_ns();
    errno = 0;
    int r = sigtimedwait(&s, NULL, &ts);
    int64_t waited = (now_ns() - t0) / 1000000;
    CHECK(r == -1 && errno == EAGAIN, "sigtimedwait returned %d, expected -1/EAGAIN", r);
    CHECK(waited >= 190 && waited < 2000, "sigtimedwait(200 ms) waited %lld ms", (long long)waited);
    return NULL;
}

static void *sigpending_thread(void *arg)
{
    (void)arg;
    sigset_t p;
    CHECK(sigpending(&p) == 0, "sigpending");
    CHECK(sigismember(&p, SIGUSR2), "a signal pending for the process is not in sigpending");
    sigset_t s = set_of(SIGUSR2);
    int sig = 0;
    CHECK(sigwait(&s, &sig) == 0 && sig == SIGUSR2, "sigwait on a pending signal");
    CHECK(sigpending(&p) == 0 && !sigismember(&p, SIGUSR2), "still pending after sigwait");
    return NULL;
}

static void *sigsuspend_thread(void *arg)
{
    (void)arg;
    int hits = atomic_load(&g_hits);
    sigset_t wait_mask;
    pthread_sigmask(SIG_BLOCK, NULL, &wait_mask);
    sigdelset(&wait_mask, SIGUSR1);
    atomic_store(&g_ready, 1);
    errno = 0;
    int r = sigsuspend(&wait_mask);
    CHECK(r == -1 && errno == EINTR, "sigsuspend returned %d, errno %d", r, errno);
    CHECK(atomic_load(&g_hits) == hits + 1, "sigsuspend returned without the handler");
    CHECK(pthread_equal(g_handler_thread, pthread_self()), "the handler ran in another thread");
    sigset_t now;
    pthread_sigmask(SIG_BLOCK, NULL, &now);
    CHECK(sigismember(&now, SIGUSR1), "sigsuspend did not restore the mask");
    return NULL;
}

static void *pause_thread(void *arg)
{
    (void)arg;
    int hits = atomic_load(&g_hits);
    unblock(SIGUSR1);
    atomic_store(&g_ready, 1);
    errno = 0;
    int r = pause();
    CHECK(r == -1 && errno == EINTR, "pause returned %d, errno %d", r, errno);
    CHECK(atomic_load(&g_hits) == hits + 1, "pause returned without the handler");
    CHECK(pthread_equal(g_handler_thread, pthread_self()), "the handler ran in another thread");
    return NULL;
}

static void *signalfd_thread(void *arg)
{
    (void)arg;
    sigset_t s = set_of(SIGTERM);
    int fd = signalfd(-1, &s, SFD_CLOEXEC);
    CHECK(fd >= 0, "signalfd");
    atomic_store(&g_ready, 1);
    struct signalfd_siginfo ssi;
    ssize_t n = read(fd, &ssi, sizeof ssi);
    CHECK(n == sizeof ssi && ssi.ssi_signo == SIGTERM, "read(signalfd) returned %zd, signal %u", n,
          n > 0 ? ssi.ssi_signo : 0);
    CHECK(ssi.ssi_pid == (uint32_t)getpid(), "ssi_pid %u", ssi.ssi_pid);
    close(fd);
    return NULL;
}

/* Starts `fn`, waits until it is about to wait, lets it park, then runs
 * `send` and expects it to end soon. */
static pthread_t g_t;

static void start(const char *phase, void *(*fn)(void *), void *arg)
{
    set_phase(phase);
    atomic_store(&g_ready, 0);
    g_t = spawn(fn, arg);
    wait_flag(&g_ready);
    sleep_ms(100);
}

static void finish(long ticks)
{
    join_within(g_t, 5000, "waiter");
    ticker_expect(ticks, 20, "waiting thread");
}

int main(void)
{
    sig_watchdog(30);
    sigset_t all;
    sigemptyset(&all);
    sigaddset(&all, SIGUSR1);
    sigaddset(&all, SIGUSR2);
    sigaddset(&all, SIGTERM);
    CHECK(pthread_sigmask(SIG_BLOCK, &all, NULL) == 0, "block in main");
    on(SIGUSR1, on_signal, 0);
    ticker_start();
    long ticks;

    ticks = ticker_ticks();
    start("sigwait, kill()", sigwait_thread, NULL);
    CHECK(kill(getpid(), SIGUSR1) == 0, "kill");
    finish(ticks);

    int sig = SIGUSR2;
    ticks = ticker_ticks();
    start("sigwaitinfo, kill()", sigwaitinfo_thread, &sig);
    CHECK(kill(getpid(), SIGUSR2) == 0, "kill");
    finish(ticks);
    CHECK(g_info.si_code == SI_USER && g_info.si_pid == getpid(), "kill(): si_code %d si_pid %d", g_info.si_code,
          g_info.si_pid);

    ticks = ticker_ticks();
    start("sigwaitinfo, pthread_kill()", sigwaitinfo_thread, &sig);
    CHECK(pthread_kill(g_t, SIGUSR2) == 0, "pthread_kill");
    finish(ticks);
    /* SI_TKILL, or SI_USER on newer kernels: what the main thread (always
     * native) gets from a pthread_kill to itself. */
    siginfo_t ref;
    sigset_t s2;
    sigemptyset(&s2);
    sigaddset(&s2, SIGUSR2);
    CHECK(pthread_kill(pthread_self(), SIGUSR2) == 0 && sigwaitinfo(&s2, &ref) == SIGUSR2, "reference pthread_kill");
    CHECK(g_info.si_code == ref.si_code && g_info.si_pid == getpid(), "pthread_kill(): si_code %d (expected %d) si_pid %d",
          g_info.si_code, ref.si_code, g_info.si_pid);

    ticks = ticker_ticks();
    start("sigwaitinfo, sigqueue()", sigwaitinfo_thread, &sig);
    union sigval v = {.sival_int = 42};
    CHECK(sigqueue(getpid(), SIGUSR2, v) == 0, "sigqueue");
    finish(ticks);
    CHECK(g_info.si_code == SI_QUEUE && g_info.si_value.sival_int == 42, "sigqueue(): si_code %d value %d",
          g_info.si_code, g_info.si_value.sival_int);

    ticks = ticker_ticks();
    set_phase("sigtimedwait timeout");
    join_within(spawn(sigtimedwait_thread, NULL), 5000, "sigtimedwait");
    ticker_expect(ticks, 20, "sigtimedwait");

    set_phase("sigpending in a thread");
    CHECK(kill(getpid(), SIGUSR2) == 0, "kill");
    join_within(spawn(sigpending_thread, NULL), 5000, "sigpending");

    ticks = ticker_ticks();
    start("sigsuspend, pthread_kill()", sigsuspend_thread, NULL);
    CHECK(pthread_kill(g_t, SIGUSR1) == 0, "pthread_kill");
    finish(ticks);

    /* Every other thread blocks SIGUSR1: the kernel can only pick it. */
    ticks = ticker_ticks();
    start("sigsuspend, kill()", sigsuspend_thread, NULL);
    CHECK(kill(getpid(), SIGUSR1) == 0, "kill");
    finish(ticks);

    ticks = ticker_ticks();
    start("pause, pthread_kill()", pause_thread, NULL);
    CHECK(pthread_kill(g_t, SIGUSR1) == 0, "pthread_kill");
    finish(ticks);

    ticks = ticker_ticks();
    start("signalfd read in a thread", signalfd_thread, NULL);
    CHECK(kill(getpid(), SIGTERM) == 0, "kill");
    finish(ticks);

    ticker_stop();
    puts("ok");
    return 0;
}
