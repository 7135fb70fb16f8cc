// Sleeping and yielding: a fiber parks on a hub timer instead of blocking
// its OS thread. Outside a fiber, libc.
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>

#include "../runtime/config.h"
#include "../runtime/hub.h"
#include "../runtime/signals.h"
#include "cancel.h"
#include "next.h"

using namespace greenld;

namespace {

next::Symbol<decltype(::nanosleep)> next_nanosleep{"nanosleep"};
next::Symbol<decltype(::clock_nanosleep)> next_clock_nanosleep{"clock_nanosleep"};
next::Symbol<decltype(::sleep)> next_sleep{"sleep"};
next::Symbol<decltype(::usleep)> next_usleep{"usleep"};
next::Symbol<decltype(::sched_yield)> next_sched_yield{"sched_yield"};

Fiber* sleeper() {
    Fiber* f = Hub::current_fiber();
    return f && config::patched(config::kPatchTime) ? f : nullptr;
}

// Parks until the deadline (a sleep is never short: a timer that fires a
// little early re-parks) or until a signal handler ran: 0 or EINTR. Sleeps
// are never restarted (signal(7)).
int sleep_until(Deadline deadline) {
    // signals::sleep_until, plus the end of the sleep on a pthread_cancel
    // request (which runs no handler, so signals::sleep_until would sleep on).
    Fiber* f = Hub::current_fiber();
    f->note_wait(WaitKind::sleep);
    while (!deadline.passed()) {
        const WakeReason why = f->hub->park(deadline);
        if (signals::deliver_pending(f)) return EINTR;
        if (why == WakeReason::interrupted && cancel::delivered(f)) return EINTR;
    }
    return 0;
}

void remaining(Deadline deadline, timespec* rem) {
    if (!rem) return;
    int64_t left = deadline.remaining_ns();
    rem->tv_sec = left / 1000000000;
    rem->tv_nsec = left % 1000000000;
}

}  // namespace

GREENLD_EXPORT int clock_nanosleep(clockid_t clock, int flags, const timespec* req, timespec* rem) {
    CancelPoint cancel_point;
    Fiber* f = sleeper();
    if (!f || (clock != CLOCK_REALTIME && clock != CLOCK_MONOTONIC && clock != CLOCK_BOOTTIME))
        return next_clock_nanosleep(clock, flags, req, rem);
    if (req->tv_nsec < 0 || req->tv_nsec >= 1000000000 || (!(flags & TIMER_ABSTIME) && req->tv_sec < 0)) return EINVAL;
    Deadline d = (flags & TIMER_ABSTIME)
                     ? Deadline::from_abs(clock == CLOCK_REALTIME ? CLOCK_REALTIME : CLOCK_MONOTONIC, *req)
                     : Deadline::after_ns(int64_t(req->tv_sec) * 1000000000 + req->tv_nsec);
    if (sleep_until(d) == EINTR) {
        // The time left is reported for a relative sleep only.
        if (!(flags & TIMER_ABSTIME)) remaining(d, rem);
        return EINTR;
    }
    return 0;
}

GREENLD_EXPORT int nanosleep(const timespec* req, timespec* rem) {
    CancelPoint cancel_point;
    if (!sleeper()) return next_nanosleep(req, rem);
    int rc = clock_nanosleep(CLOCK_REALTIME, 0, req, rem);
    if (rc) {
        errno = rc;
        return -1;
    }
    return 0;
}

GREENLD_EXPORT int usleep(useconds_t usec) {
    CancelPoint cancel_point;
    Fiber* f = sleeper();
    if (!f) return next_usleep(usec);
    if (sleep_until(Deadline::after_ns(int64_t(usec) * 1000)) == EINTR) {
        errno = EINTR;
        return -1;
    }
    return 0;
}

GREENLD_EXPORT unsigned int sleep(unsigned int seconds) {
    CancelPoint cancel_point;
    Fiber* f = sleeper();
    if (!f) return next_sleep(seconds);
    const Deadline d = Deadline::after_ns(int64_t(seconds) * 1000000000);
    if (sleep_until(d) == EINTR) {
        // glibc's sleep: the unslept whole seconds, errno EINTR.
        errno = EINTR;
        return unsigned(d.remaining_ns() / 1000000000);
    }
    return 0;
}

GREENLD_EXPORT int sched_yield() {
    Fiber* f = sleeper();
    if (!f) return next_sched_yield();
    f->hub->yield();
    return 0;
}
