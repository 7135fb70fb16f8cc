// The opt-in C API declared in greenld.h.
#include "greenld.h"

#include <sched.h>
#include <time.h>

#include <cerrno>

#include "../runtime/hub.h"
#include "../runtime/io.h"
#include "next.h"

using namespace greenld;

GREENLD_EXPORT int greenld_wait(int fd, int events, long timeout_ms) {
    unsigned ev = ((events & GREENLD_READ) ? kWaitRead : 0) | ((events & GREENLD_WRITE) ? kWaitWrite : 0);
    if (!ev) {
        errno = EINVAL;
        return -1;
    }
    if (fd < 0) {
        errno = EBADF;
        return -1;
    }
    Deadline d = timeout_ms < 0 ? Deadline::never() : Deadline::after_ns(int64_t(timeout_ms) * 1000000);
    int rc = wait_fd(fd, ev, d);
    if (rc) {
        errno = rc;
        return -1;
    }
    return 0;
}

GREENLD_EXPORT int greenld_wait_read(int fd, long timeout_ms) { return greenld_wait(fd, GREENLD_READ, timeout_ms); }
GREENLD_EXPORT int greenld_wait_write(int fd, long timeout_ms) { return greenld_wait(fd, GREENLD_WRITE, timeout_ms); }
GREENLD_EXPORT int greenld_wait_readwrite(int fd, long timeout_ms) {
    return greenld_wait(fd, GREENLD_READ | GREENLD_WRITE, timeout_ms);
}

GREENLD_EXPORT void greenld_cancel_wait(int fd, int error) { cancel_wait(fd, error ? error : EBADF); }

GREENLD_EXPORT int greenld_sleep(double seconds) {
    if (!(seconds >= 0)) {  // negative or NaN
        errno = EINVAL;
        return -1;
    }
    if (seconds == 0) {
        greenld_yield();
        return 0;
    }
    // Beyond ~292 years the nanosecond count would overflow: that is forever.
    constexpr double kForever = 9.2e9;
    Deadline d = seconds >= kForever ? Deadline::never() : Deadline::after_ns(int64_t(seconds * 1e9));
    if (Hub::current_fiber()) {
        // Like the native path below, a signal handler does not end the sleep.
        while (!d.passed()) signals::sleep_until(d);
        return 0;
    }
    if (seconds >= kForever) seconds = kForever;
    timespec ts{time_t(seconds), long((seconds - double(time_t(seconds))) * 1e9)};
    while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR) {
    }
    return 0;
}

GREENLD_EXPORT void greenld_yield(void) {
    if (Fiber* f = Hub::current_fiber())
        f->hub->yield();
    else
        sched_yield();
}

GREENLD_EXPORT int greenld_is_fiber(void) { return Hub::current_fiber() != nullptr; }
