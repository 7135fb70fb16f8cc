// pthread_cancel for fibers, the runtime side: the per-fiber request state
// and how a request interrupts a park. (Acting on a request, i.e. unwinding
// the fiber, is preload/cancel.cpp's business: it knows libc's ABI.)
//
// Deferred cancellation, as glibc: a request is acted on only at a
// cancellation point. A wrapper that is one marks the fiber `in_point` for
// its duration (preload/cancel.h's CancelPoint). A request that finds the
// fiber parked inside a cancellation point unparks it with
// WakeReason::interrupted; one that comes while the fiber runs makes its
// next park in the point end at once. Either way the park is marked
// `delivered`; the wait primitives then return EINTR and the wrapper's
// CancelPoint acts when it returns. A cancellation point interrupted once
// parks normally afterwards (pthread_cond_wait must still relock its mutex).
//
// Ordering: the canceller sets kRequested then reads in_point; the fiber
// sets in_point then, before parking, reads the state, with a full fence on
// both sides: one of them sees the other, so a request is never missed by a
// park.
#pragma once

#include <atomic>
#include <cstdint>

namespace greenld {

class Fiber;
enum class WakeReason : uint8_t;

namespace cancel {

// FiberCancel::state bits.
constexpr uint32_t kRequested = 1;  // pthread_cancel was called
constexpr uint32_t kDisabled = 2;   // PTHREAD_CANCEL_DISABLE
constexpr uint32_t kAsync = 4;      // PTHREAD_CANCEL_ASYNCHRONOUS (acted on as deferred)
constexpr uint32_t kActing = 8;     // the fiber is unwinding for a cancel or pthread_exit

struct FiberCancel {
    std::atomic<uint32_t> state{0};
    // Depth of cancellation points the fiber is in; written by the fiber,
    // read by cancellers.
    std::atomic<uint32_t> in_point{0};
    // A park of the current cancellation point was ended by the request.
    bool delivered = false;
    // glibc's pthread_cleanup_push buffers (__pthread_register_cancel) of
    // this fiber, innermost first; glibc keeps them per OS thread.
    void* cleanup_chain = nullptr;
    // The _Unwind_Exception of pthread_exit's forced unwind, while it runs.
    void* unwind_exception = nullptr;
};

// A request is pending and enabled: act at the next cancellation point.
inline bool pending(uint32_t state) { return (state & (kRequested | kDisabled | kActing)) == kRequested; }

// pthread_cancel: records the request and interrupts a park inside a
// cancellation point. Returns the state before the request.
uint32_t request(Fiber* f);

// Hub::park_prepared, before switching out: true if this park must end at
// once with WakeReason::interrupted (and marks it delivered).
bool interrupts_park(Fiber* self);
// Hub::park_prepared, after the switch back.
void park_ended(Fiber* self, WakeReason why);

// Did a cancel request end a park of the current cancellation point? The
// wait primitives return EINTR when it did.
bool delivered(const Fiber* f);

}  // namespace cancel
}  // namespace greenld
