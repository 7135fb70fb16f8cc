// poll, ppoll, select, pselect, epoll_wait, epoll_pwait, epoll_pwait2.
//
// In a fiber, the kernel is asked first without waiting; if nothing is
// ready the fiber parks on all the fds at once (wait_fds) until one may be
// ready or the deadline passes, and asks again. The kernel's answer is
// always what the program gets, so results, revents, POLLNVAL, EBADF and
// fd-set contents are exactly libc's. An epoll fd is itself pollable: a
// program running its own epoll loop in a fiber parks on its epoll fd.
//
// A signal handler that runs in the fiber during the wait ends it with
// EINTR (these calls never restart, signal(7)). The signal mask given to
// ppoll/pselect/epoll_pwait is the fiber's mask for the duration.
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/select.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "cooperative.h"
#include "../runtime/signals.h"
#include "cancel.h"
#include "next.h"

using namespace greenld;

extern "C" [[noreturn]] void __chk_fail(void);

namespace {

next::Symbol<decltype(::poll)> next_poll{"poll"};
next::Symbol<decltype(::ppoll)> next_ppoll{"ppoll"};
next::Symbol<decltype(::select)> next_select{"select"};
next::Symbol<decltype(::pselect)> next_pselect{"pselect"};
next::Symbol<decltype(::epoll_wait)> next_epoll_wait{"epoll_wait"};
next::Symbol<decltype(::epoll_pwait)> next_epoll_pwait{"epoll_pwait"};
next::Symbol<int(int, epoll_event*, int, const timespec*, const sigset_t*)> next_epoll_pwait2{"epoll_pwait2"};

bool in_fiber() { return Hub::current_fiber() && config::patched(config::kPatchSelect); }

constexpr short kReadEvents = POLLIN | POLLPRI | POLLRDNORM | POLLRDBAND | POLLRDHUP;
constexpr short kWriteEvents = POLLOUT | POLLWRNORM | POLLWRBAND;

Deadline deadline_ms(int timeout_ms) {
    return timeout_ms < 0 ? Deadline::never() : Deadline::after_ns(int64_t(timeout_ms) * 1000000);
}

Deadline deadline_ts(const timespec* ts) {
    return ts ? Deadline::after_ns(int64_t(ts->tv_sec) * 1000000000 + ts->tv_nsec) : Deadline::never();
}

// Interests for a pollfd array, built once per call.
class Interests {
public:
    void add(int fd, unsigned events) {
        if (fd >= 0 && events) list_.push_back(FdInterest{fd, events});
    }
    // Urgent data (POLLPRI, select's exception set) raises only EPOLLPRI,
    // which libev does not watch: such waits re-ask the kernel every 10 ms.
    void need_priority() { priority_ = true; }
    // Parks until one may be ready, or the deadline passes: 0, ETIMEDOUT
    // or EINTR (a signal handler ran).
    int wait(Deadline deadline) {
        if (priority_) {
            Deadline tick = Deadline::after_ns(10000000);
            if (tick.mono_ns < deadline.mono_ns) deadline = tick;
        }
        return wait_fds(list_.data(), list_.size(), deadline);
    }

private:
    std::vector<FdInterest> list_;
    bool priority_ = false;
};

// The shared loop: `ask` queries the kernel without waiting and returns
// its result (>0 ready, <0 error, 0 nothing); `build` fills the interests.
// The fiber's signal mask replaced by the call's for the duration of the
// wait (ppoll, pselect, epoll_pwait), as the kernel does for the thread.
class SignalMaskDuring {
public:
    explicit SignalMaskDuring(const sigset_t* mask) {
        if (!mask || !(fiber_ = Hub::current_fiber())) return;
        saved_ = fiber_->sig.blocked;
        signals::Mask m;
        memcpy(&m, mask, sizeof m);
        interrupted_ = signals::set_mask(fiber_, m);
    }
    ~SignalMaskDuring() {
        if (fiber_) signals::set_mask(fiber_, saved_);
    }
    SignalMaskDuring(const SignalMaskDuring&) = delete;
    SignalMaskDuring& operator=(const SignalMaskDuring&) = delete;
    // A handler the new mask unblocked already ran: the call fails with EINTR.
    bool interrupted() const { return interrupted_; }

private:
    Fiber* fiber_ = nullptr;
    signals::Mask saved_ = 0;
    bool interrupted_ = false;
};

// A fiber whose polls keep returning at once (events always ready, or a
// zero timeout in a spin) would never give its hub back. Natively the
// kernel preempts a spinning thread; here the other fibers of the hub would
// starve, and the spinner may be waiting for one of them: redis-benchmark's
// threads each poll their own epoll set, where finished clients stay
// writable, until the others have counted their replies. After this many
// such returns in a row on a hub, the fiber yields (its hub then also polls
// its loop at least every kRunBudget runs).
constexpr unsigned kPollsBeforeYield = 64;
thread_local unsigned t_polls_without_parking = 0;

void returned_without_parking() {
    if (++t_polls_without_parking < kPollsBeforeYield) return;
    t_polls_without_parking = 0;
    if (Fiber* f = Hub::current_fiber()) f->hub->yield();
}

template <typename Ask, typename Build>
int cooperative_wait(Deadline deadline, Ask ask, Build build, const sigset_t* mask = nullptr) {
    const int saved_errno = errno;
    SignalMaskDuring masked(mask);
    if (masked.interrupted()) {
        errno = EINTR;
        return -1;
    }
    Interests interests;
    bool built = false;
    // Like the kernel, ask once more after the deadline: what became ready
    // by then is reported rather than a timeout.
    for (;;) {
        int r = ask();
        if (r != 0) {
            if (!built) returned_without_parking();
            return r;
        }
        if (deadline.passed()) {
            if (!built) returned_without_parking();
            break;
        }
        if (!built) {
            build(interests);
            built = true;
        }
        t_polls_without_parking = 0;
        if (interests.wait(deadline) == EINTR) {
            errno = EINTR;
            return -1;
        }
    }
    errno = saved_errno;
    return 0;
}

int poll_fiber(pollfd* fds, nfds_t n, Deadline deadline, const sigset_t* mask = nullptr) {
    return cooperative_wait(
        deadline, [&] { return next_poll(fds, n, 0); },
        [&](Interests& in) {
            for (nfds_t i = 0; i < n; ++i) {
                // events 0 still reports POLLHUP/POLLERR, which come with
                // EPOLLIN readiness.
                unsigned ev = ((fds[i].events & kReadEvents) || !fds[i].events ? kWaitRead : 0) |
                              ((fds[i].events & kWriteEvents) ? kWaitWrite : 0);
                in.add(fds[i].fd, ev);
                if (fds[i].fd >= 0 && (fds[i].events & POLLPRI)) in.need_priority();
            }
        },
        mask);
}

int select_fiber(int nfds, fd_set* r, fd_set* w, fd_set* x, Deadline deadline, const sigset_t* mask = nullptr) {
    fd_set r0, w0, x0;
    if (r) r0 = *r;
    if (w) w0 = *w;
    if (x) x0 = *x;
    int result = cooperative_wait(
        deadline,
        [&] {
            if (r) *r = r0;
            if (w) *w = w0;
            if (x) *x = x0;
            timeval zero{0, 0};
            return next_select(nfds, r, w, x, &zero);
        },
        [&](Interests& in) {
            for (int fd = 0; fd < nfds && fd < FD_SETSIZE; ++fd) {
                unsigned ev = ((r && FD_ISSET(fd, &r0)) || (x && FD_ISSET(fd, &x0)) ? kWaitRead : 0) |
                              (w && FD_ISSET(fd, &w0) ? kWaitWrite : 0);
                in.add(fd, ev);
                if (x && FD_ISSET(fd, &x0)) in.need_priority();
            }
        },
        mask);
    if (result < 0 && errno == EINTR) {
        // Interrupted: the kernel leaves the sets as the program gave them.
        if (r) *r = r0;
        if (w) *w = w0;
        if (x) *x = x0;
    }
    if (result == 0) {
        // Timed out: the kernel writes back empty sets, but only the words
        // covering nfds.
        const size_t words = (size_t(nfds) + 63) / 64;
        for (fd_set* set : {r, w, x})
            if (set) memset(set, 0, words * 8);
    }
    return result;
}

int epoll_fiber(int epfd, epoll_event* events, int max, Deadline deadline, const sigset_t* mask = nullptr) {
    return cooperative_wait(
        deadline, [&] { return next_epoll_wait(epfd, events, max, 0); },
        [&](Interests& in) { in.add(epfd, kWaitRead); }, mask);
}

void remaining_to_timeval(Deadline deadline, timeval* tv) {
    int64_t left = deadline.remaining_ns();
    if (left < 0) return;
    tv->tv_sec = left / 1000000000;
    tv->tv_usec = (left % 1000000000) / 1000;
}

// A zero-timeout poll in a fiber: the kernel's answer, counted as a return
// without parking (errno kept for the caller).
int spun(int result) {
    int e = errno;
    returned_without_parking();
    errno = e;
    return result;
}

bool valid(const timespec* ts) { return !ts || (ts->tv_sec >= 0 && ts->tv_nsec >= 0 && ts->tv_nsec < 1000000000); }

}  // namespace

GREENLD_EXPORT int poll(pollfd* fds, nfds_t n, int timeout) {
    CancelPoint cancel_point;
    if (!in_fiber()) return next_poll(fds, n, timeout);
    if (timeout == 0) return spun(next_poll(fds, n, timeout));
    return poll_fiber(fds, n, deadline_ms(timeout));
}

GREENLD_EXPORT int __poll_chk(pollfd* fds, nfds_t n, int timeout, size_t fdslen) {
    if (fdslen / sizeof(*fds) < n) __chk_fail();
    return poll(fds, n, timeout);
}

GREENLD_EXPORT int ppoll(pollfd* fds, nfds_t n, const timespec* timeout, const sigset_t* mask) {
    CancelPoint cancel_point;
    if (!in_fiber() || !valid(timeout)) return next_ppoll(fds, n, timeout, mask);
    if (timeout && timeout->tv_sec == 0 && timeout->tv_nsec == 0) return spun(next_ppoll(fds, n, timeout, mask));
    return poll_fiber(fds, n, deadline_ts(timeout), mask);
}

GREENLD_EXPORT int __ppoll_chk(pollfd* fds, nfds_t n, const timespec* timeout, const sigset_t* mask,
                               size_t fdslen) {
    if (fdslen / sizeof(*fds) < n) __chk_fail();
    return ppoll(fds, n, timeout, mask);
}

GREENLD_EXPORT int select(int nfds, fd_set* r, fd_set* w, fd_set* x, timeval* timeout) {
    CancelPoint cancel_point;
    if (!in_fiber() || nfds < 0 || nfds > FD_SETSIZE || (timeout && (timeout->tv_sec < 0 || timeout->tv_usec < 0)))
        return next_select(nfds, r, w, x, timeout);
    if (timeout && timeout->tv_sec == 0 && timeout->tv_usec == 0) return spun(next_select(nfds, r, w, x, timeout));
    Deadline deadline = timeout ? Deadline::after_ns(int64_t(timeout->tv_sec) * 1000000000 + timeout->tv_usec * 1000)
                                : Deadline::never();
    int result = select_fiber(nfds, r, w, x, deadline);
    // Linux reports the time not slept in the timeval.
    if (timeout) {
        if (result == 0) {
            timeout->tv_sec = 0;
            timeout->tv_usec = 0;
        } else {
            remaining_to_timeval(deadline, timeout);
        }
    }
    return result;
}

GREENLD_EXPORT int pselect(int nfds, fd_set* r, fd_set* w, fd_set* x, const timespec* timeout,
                           const sigset_t* mask) {
    CancelPoint cancel_point;
    if (!in_fiber() || nfds < 0 || nfds > FD_SETSIZE || !valid(timeout))
        return next_pselect(nfds, r, w, x, timeout, mask);
    if (timeout && timeout->tv_sec == 0 && timeout->tv_nsec == 0)
        return spun(next_pselect(nfds, r, w, x, timeout, mask));
    return select_fiber(nfds, r, w, x, deadline_ts(timeout), mask);
}

GREENLD_EXPORT int epoll_wait(int epfd, epoll_event* events, int max, int timeout) {
    CancelPoint cancel_point;
    if (!in_fiber() || max <= 0) return next_epoll_wait(epfd, events, max, timeout);
    if (timeout == 0) return spun(next_epoll_wait(epfd, events, max, timeout));
    return epoll_fiber(epfd, events, max, deadline_ms(timeout));
}

GREENLD_EXPORT int epoll_pwait(int epfd, epoll_event* events, int max, int timeout, const sigset_t* mask) {
    CancelPoint cancel_point;
    if (!in_fiber() || max <= 0) return next_epoll_pwait(epfd, events, max, timeout, mask);
    if (timeout == 0) return spun(next_epoll_pwait(epfd, events, max, timeout, mask));
    return epoll_fiber(epfd, events, max, deadline_ms(timeout), mask);
}

GREENLD_EXPORT int epoll_pwait2(int epfd, epoll_event* events, int max, const timespec* timeout,
                                const sigset_t* mask) {
    CancelPoint cancel_point;
    if (!in_fiber() || max <= 0 || !valid(timeout)) return next_epoll_pwait2(epfd, events, max, timeout, mask);
    if (timeout && !timeout->tv_sec && !timeout->tv_nsec) return spun(next_epoll_pwait2(epfd, events, max, timeout, mask));
    return epoll_fiber(epfd, events, max, deadline_ts(timeout), mask);
}
