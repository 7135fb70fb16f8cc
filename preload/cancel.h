// Cancellation points and thread exit for fibers (pthread_cancel,
// pthread_exit, pthread_cleanup_push): see cancel.cpp.
#pragma once

#include "../runtime/cancel.h"
#include "../runtime/hub.h"

namespace greenld {

// Ends the calling fiber as pthread_exit(result) does: unwinds its stack
// (C++ destructors, pthread_cleanup_push handlers, innermost first), runs
// its pthread key destructors, and ends it.
[[noreturn]] void fiber_exit(Fiber* self, void* result);

// Acts on the calling fiber's pending cancel request: pthread_exit(PTHREAD_CANCELED).
[[noreturn]] void act_on_cancel(Fiber* self);

// Did pthread_cancel interrupt the calling fiber's current wait? Such a
// wait (EINTR from a runtime wait) is never restarted, whatever SA_RESTART
// says: the CancelPoint acts when the wrapper returns.
inline bool cancel_interrupted() {
    Fiber* f = Hub::current_fiber();
    return f && cancel::delivered(f) && cancel::pending(f->cancel.state.load(std::memory_order_relaxed));
}

// Declared first in every wrapper that POSIX makes a cancellation point
// (read, write, poll, nanosleep, pthread_cond_wait, pthread_join, sem_wait,
// ...). On entry a pending request is acted on; inside, a request
// interrupts the wrapper's wait (the wait returns EINTR, the wrapper
// returns); on the way out the wrapper acts if its wait was interrupted by
// the request. A call that completed (data read, a wake-up consumed) keeps
// its result and the request waits for the next cancellation point, as in
// glibc. Costs native threads one thread-local load.
class CancelPoint {
public:
    CancelPoint() : self_(Hub::current_fiber()) {
        if (!self_) return;
        cancel::FiberCancel& c = self_->cancel;
        if (__builtin_expect(cancel::pending(c.state.load(std::memory_order_relaxed)), 0)) act_on_cancel(self_);
        const uint32_t depth = c.in_point.load(std::memory_order_relaxed);
        if (depth == 0) c.delivered = false;
        c.in_point.store(depth + 1, std::memory_order_relaxed);
    }
    ~CancelPoint() {
        if (!self_) return;
        cancel::FiberCancel& c = self_->cancel;
        c.in_point.store(c.in_point.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
        if (__builtin_expect(c.delivered, 0) && cancel::pending(c.state.load(std::memory_order_relaxed)))
            act_on_cancel(self_);
    }
    CancelPoint(const CancelPoint&) = delete;
    CancelPoint& operator=(const CancelPoint&) = delete;

private:
    Fiber* self_;
};

}  // namespace greenld
