#include "cancel.h"

#include "hub.h"

namespace greenld::cancel {

uint32_t request(Fiber* f) {
    const uint32_t before = f->cancel.state.fetch_or(kRequested, std::memory_order_seq_cst);
    if (pending(before | kRequested) && f->cancel.in_point.load(std::memory_order_seq_cst))
        Hub::unpark(f, WakeReason::interrupted);  // false if not parked: its next park sees the request
    return before;
}

bool interrupts_park(Fiber* self) {
    FiberCancel& c = self->cancel;
    if (__builtin_expect(c.in_point.load(std::memory_order_relaxed) == 0, 1) || c.delivered) return false;
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (!pending(c.state.load(std::memory_order_relaxed))) return false;
    c.delivered = true;
    return true;
}

void park_ended(Fiber* self, WakeReason why) {
    FiberCancel& c = self->cancel;
    if (why == WakeReason::interrupted && c.in_point.load(std::memory_order_relaxed) &&
        pending(c.state.load(std::memory_order_acquire)))
        c.delivered = true;
}

bool delivered(const Fiber* f) { return f->cancel.delivered; }

}  // namespace greenld::cancel
