// Calls that cannot be made non-blocking run on the blocking-call pool
// (runtime/pool.h) when a fiber makes them, so that only the fiber waits.
// They belong to the `os` family of GREENLD_PATCH: left out, they block
// the hub as plain libc would.
#pragma once

#include "../runtime/config.h"
#include "../runtime/cancel.h"
#include "../runtime/pool.h"
#include "../runtime/signals.h"
#include "cancel.h"

#include <optional>

namespace greenld {

// True when the caller is a fiber whose blocking calls must not block its hub.
inline bool fiber_must_not_block() {
    return Hub::current_fiber() != nullptr && config::patched(config::kPatchOs);
}

// call() on the pool if the caller is a fiber (and `os` is patched), else
// right here; errno as the call left it.
template <typename Call>
auto offload_if_fiber(JobKind kind, Call&& call) -> decltype(call()) {
    if (!fiber_must_not_block()) return call();
    return offload(kind, call);
}

// signal.cpp: makes signals::kPoolKick able to interrupt a pool thread's
// call; false if the program's own disposition of it forbids.
bool ensure_pool_kick();

// For the rendezvous calls that the kernel lets a signal interrupt (a file
// lock wait, a FIFO's open, a wait for children): call() runs on the pool
// while the fiber parks, and a signal or pthread_cancel for the fiber
// interrupts it there, as it would have natively. Then, as signal(7) says:
// with a handler that ran without SA_RESTART (or a cancellation) the call
// fails with EINTR; otherwise (SA_RESTART, an ignored signal) it is made
// again. call() must fail with -1 and errno, as those calls do.
// `cancellation_point`: the call is one (fcntl F_SETLKW, lockf, open,
// wait...; not flock), so pthread_cancel acts on it.
template <typename Call>
auto offload_interruptible(bool cancellation_point, Call&& call) -> decltype(call()) {
    Fiber* self = Hub::current_fiber();
    if (!self) return call();
    std::optional<CancelPoint> point;
    if (cancellation_point) point.emplace();
    using Result = decltype(call());
    const bool kickable = ensure_pool_kick();
    for (;;) {
        struct Job : PoolJob {
            std::remove_reference_t<Call>* call;
            Result result{};
        };
        Job job;
        job.kind = JobKind::rendezvous;
        job.kickable = kickable;
        job.call = &call;
        job.run = [](PoolJob* j) {
            auto* self = static_cast<Job*>(j);
            do {
                if (self->kicked.load(std::memory_order_acquire)) {
                    self->result = Result(-1);
                    errno = EINTR;
                    return;
                }
                self->result = (*self->call)();
            } while (self->result == Result(-1) && errno == EINTR && !self->kicked.load(std::memory_order_acquire));
        };
        if (!kickable) {
            BlockingPool::get().run_parked(&job);
            return job.result;
        }
        BlockingPool::get().run_parked_kickable(&job, kick_with_signal);
        if (!(job.result == Result(-1) && errno == EINTR)) return job.result;
        // Interrupted by our kick; the handlers have run.
        if (cancel::delivered(self) || !signals::restarts(Deadline::never())) return job.result;
    }
}

}  // namespace greenld
