#include "shared_futex.h"

#include <linux/futex.h>
#include <sys/syscall.h>

#include <cerrno>
#include <climits>
#include <ctime>

#include "cancel.h"
#include "hub.h"
#include "native.h"
#include "pool.h"
#include "signals.h"

namespace greenld {

namespace {

// One kernel wait, bounded by the deadline: 0, -EAGAIN, -ETIMEDOUT, -EINTR.
long kernel_wait(std::atomic<uint32_t>* word, uint32_t expected, Deadline deadline, bool process_private) {
    timespec ts, *tp = nullptr;
    if (!deadline.is_never()) {
        const int64_t r = deadline.remaining_ns();
        if (r == 0) return -ETIMEDOUT;
        ts.tv_sec = time_t(r / 1000000000);
        ts.tv_nsec = long(r % 1000000000);
        tp = &ts;
    }
    const long op = FUTEX_WAIT | (process_private ? FUTEX_PRIVATE_FLAG : 0);
    return native::sys(SYS_futex, reinterpret_cast<long>(word), op, long(expected), reinterpret_cast<long>(tp));
}

struct WaitJob : PoolJob {
    std::atomic<uint32_t>* word;
    uint32_t expected;
    Deadline deadline;
    bool process_private;
    std::atomic<bool> kicked{false};
    long result = 0;
};

void run_wait(PoolJob* j) {
    auto* job = static_cast<WaitJob*>(j);
    // A kick that came before the wait began would find no one to wake.
    job->result = job->kicked.load(std::memory_order_acquire) ? 0 : kernel_wait(job->word, job->expected, job->deadline, job->process_private);
}

void kick_wait(PoolJob* j) {
    auto* job = static_cast<WaitJob*>(j);
    job->kicked.store(true, std::memory_order_release);
    shared_futex_wake(job->word, INT_MAX, job->process_private);
}

}  // namespace

int shared_futex_wait(std::atomic<uint32_t>* word, uint32_t expected, Deadline deadline, bool process_private) {
    Fiber* self = Hub::current_fiber();
    if (!self) {
        const long r = kernel_wait(word, expected, deadline, process_private);
        return r == -ETIMEDOUT ? ETIMEDOUT : r == -EINTR ? EINTR : 0;
    }
    if (word->load(std::memory_order_acquire) != expected) return 0;
    if (deadline.passed()) return ETIMEDOUT;
    // A signal already waiting for this fiber interrupts the wait at once,
    // as the kernel would return EINTR from a wait begun with one pending.
    if (signals::deliver_pending(self)) return EINTR;
    WaitJob job;
    job.kind = JobKind::rendezvous;
    job.run = run_wait;
    job.word = word;
    job.expected = expected;
    job.deadline = deadline;
    job.process_private = process_private;
    const int saved_errno = errno;
    const bool interrupted = BlockingPool::get().run_parked_kickable(&job, kick_wait);
    errno = saved_errno;
    if (interrupted && (self->sig.handler_ran || cancel::delivered(self))) return EINTR;
    if (job.result == -ETIMEDOUT) return ETIMEDOUT;
    return 0;
}

void shared_futex_wake(std::atomic<uint32_t>* word, int count, bool process_private) {
    const long op = FUTEX_WAKE | (process_private ? FUTEX_PRIVATE_FLAG : 0);
    native::sys(SYS_futex, reinterpret_cast<long>(word), op, count);
}

}  // namespace greenld
