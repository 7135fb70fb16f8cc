/*
 * signal_support.h — shared by the t_signal_*.c programs, on top of
 * test_support.h. Their watchdog cannot be test_support's (that one uses
 * SIGALRM and alarm(), which these programs test), so it is a POSIX timer
 * raising SIGXCPU.
 *
 *   sig_watchdog(seconds)     SIGXCPU after `seconds` ends the run (status 2)
 *   on(sig, handler, flags)   sigaction with an empty sa_mask
 *   block(sig) / unblock(sig) pthread_sigmask of the calling thread
 *   itimer_ms(first, every)   setitimer(ITIMER_REAL); 0, 0 disarms
 *   wait_flag(flag)           spin-sleeps until *flag is set
 */
#ifndef GREENLD_SIGNAL_SUPPORT_H
#define GREENLD_SIGNAL_SUPPORT_H

#include "test_support.h"

#include <sys/time.h>

static __attribute__((unused)) void sig_watchdog(unsigned seconds)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = watchdog_fired;
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGXCPU, &sa, NULL) == 0, "sigaction(SIGXCPU)");
    struct sigevent ev;
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_SIGNAL;
    ev.sigev_signo = SIGXCPU;
    timer_t t;
    CHECK(timer_create(CLOCK_MONOTONIC, &ev, &t) == 0, "timer_create");
    struct itimerspec its = {{0, 0}, {(time_t)seconds, 0}};
    CHECK(timer_settime(t, 0, &its, NULL) == 0, "timer_settime");
}

static __attribute__((unused)) void on(int sig, void (*handler)(int), int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = flags;
    CHECK(sigaction(sig, &sa, NULL) == 0, "sigaction(%d)", sig);
}

static __attribute__((unused)) void block(int sig)
{
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, sig);
    CHECK(pthread_sigmask(SIG_BLOCK, &s, NULL) == 0, "pthread_sigmask(SIG_BLOCK, %d)", sig);
}

static __attribute__((unused)) void unblock(int sig)
{
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, sig);
    CHECK(pthread_sigmask(SIG_UNBLOCK, &s, NULL) == 0, "pthread_sigmask(SIG_UNBLOCK, %d)", sig);
}

static __attribute__((unused)) void itimer_ms(int first_ms, int every_ms)
{
    struct itimerval it = {{every_ms / 1000, (every_ms % 1000) * 1000}, {first_ms / 1000, (first_ms % 1000) * 1000}};
    CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0, "setitimer");
}

static __attribute__((unused)) void wait_flag(atomic_int *flag)
{
    while (!atomic_load(flag)) sleep_ms(1);
}

#endif
