// Sleeping and yielding: a fiber parks on a hub timer instead of blocking
// its OS thread. Outside a fiber, libc.
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>

#include "../runtime/config.h"
#include "../runtime/hub.h"
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

// Parks until the deadline; timers may fire a little early relative to
// the clock we read, and a sleep must never be short, so re-park.
void sleep_until(Fiber* f, Deadline deadline) {
    while (!deadline.passed()) f->hub->park(deadline);
}

}  // namespace

GREENLD_EXPORT int clock_nanosleep(clockid_t clock, int flags, const timespec* req, timespec* rem) {
    Fiber* f = sleeper();
    if (!f || (clock != CLOCK_REALTIME && clock != CLOCK_MONOTONIC && clock != CLOCK_BOOTTIME))
        return next_clock_nanosleep(clock, flags, req, rem);
    if (req->tv_nsec < 0 || req->tv_nsec >= 1000000000 || (!(flags & TIMER_ABSTIME) && req->tv_sec < 0)) return EINVAL;
    Deadline d = (flags & TIMER_ABSTIME)
                     ? Deadline::from_abs(clock == CLOCK_REALTIME ? CLOCK_REALTIME : CLOCK_MONOTONIC, *req)
                     : Deadline::after_ns(int64_t(req->tv_sec) * 1000000000 + req->tv_nsec);
    sleep_until(f, d);
    return 0;
}

GREENLD_EXPORT int nanosleep(const timespec* req, timespec* rem) {
    if (!sleeper()) return next_nanosleep(req, rem);
    int rc = clock_nanosleep(CLOCK_REALTIME, 0, req, rem);
    if (rc) {
        errno = rc;
        return -1;
    }
    return 0;
}

GREENLD_EXPORT int usleep(useconds_t usec) {
    Fiber* f = sleeper();
    if (!f) return next_usleep(usec);
    sleep_until(f, Deadline::after_ns(int64_t(usec) * 1000));
    return 0;
}

GREENLD_EXPORT unsigned int sleep(unsigned int seconds) {
    Fiber* f = sleeper();
    if (!f) return next_sleep(seconds);
    sleep_until(f, Deadline::after_ns(int64_t(seconds) * 1000000000));
    return 0;
}

GREENLD_EXPORT int sched_yield() {
    Fiber* f = sleeper();
    if (!f) return next_sched_yield();
    f->hub->yield();
    return 0;
}
