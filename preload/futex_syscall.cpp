// syscall() from the program. SYS_futex: std::atomic::wait, std::future,
// Rust's and hand-written locks call the kernel futex through libc's
// syscall(); a fiber must not sleep in the kernel (its hub would stop), so
// its waits go to the fiber futex. SYS_gettid answers as gettid() does;
// SYS_tgkill, SYS_tkill and SYS_rt_tgsigqueueinfo naming a fiber's id go
// to that fiber (signal_send.cpp).
// Every other number goes to libc's syscall() unchanged, which sets errno
// as it always does.
//
// Who waits where, and why every wake reaches everyone:
//  - a fiber waits on the fiber futex (runtime/futex.h), parking only itself;
//  - a native thread waits in the kernel, exactly as without greenld (so
//    wakes that never pass through here, from another process on shared
//    memory or from code issuing the system call itself, still reach it);
//  - a wake, from anyone, first wakes fiber futex waiters, then passes what
//    is left of its count to the kernel. The total is what it returns.
// A fiber waiting on a shared (non-FUTEX_PRIVATE_FLAG) futex may be woken
// by another process through the kernel only: it re-reads the word at a
// growing interval (1 ms up to 50 ms) and returns 0 when it changed, a
// wake-up any futex user must accept.
//
// Results and errno are the kernel's: EAGAIN when *addr != val, ETIMEDOUT,
// EINVAL for a bad timespec, a zero bitset or a misaligned address, ENOSYS
// for an unknown operation or FUTEX_CLOCK_REALTIME where the kernel refuses
// it, EINTR when a signal or pthread_cancel interrupts a fiber's wait.
// Not reproduced: EFAULT (we read the word; a bad address faults).
//
// FUTEX_REQUEUE/FUTEX_CMP_REQUEUE: fiber waiters are woken instead of moved
// to the second futex (a spurious wake-up every futex user tolerates; the
// return value still counts woken + requeued); kernel waiters get the real
// requeue with what is left of the counts. The priority-inheritance
// operations (LOCK_PI, LOCK_PI2, TRYLOCK_PI, UNLOCK_PI, WAIT_REQUEUE_PI,
// CMP_REQUEUE_PI) go to the kernel unchanged: the word holds kernel thread
// ids and the kernel must own it. A fiber that blocks in one blocks its hub,
// and fibers of one hub share a thread id (greenld(7)).
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdarg>
#include <cstdint>
#include <ctime>

#include "../runtime/config.h"
#include "../runtime/futex.h"
#include "../runtime/hub.h"
#include "../runtime/native.h"
#include "next.h"
#include "signal_send.h"

using namespace greenld;

namespace {

next::Symbol<decltype(::syscall)> next_syscall{"syscall"};

struct FutexCall {
    uint32_t* addr;
    int op;  // operation and flags, as passed
    uint32_t val;
    const timespec* timeout;  // also val2 (a count) for requeue and wake_op
    uint32_t* addr2;
    uint32_t val3;

    int cmd() const { return op & FUTEX_CMD_MASK; }
    bool is_private() const { return op & FUTEX_PRIVATE_FLAG; }
    bool realtime() const { return op & FUTEX_CLOCK_REALTIME; }
    uint32_t val2() const { return uint32_t(reinterpret_cast<uintptr_t>(timeout)); }
};

long fail(int error) {
    errno = error;
    return -1;
}

bool misaligned(const void* p) { return reinterpret_cast<uintptr_t>(p) & 3; }

bool fibers_exist() { return Runtime::get().started(); }

// The kernel's own wake, for native threads sleeping in it. Returns how
// many it woke (0 if it refused: a lot waiter already counted is the answer).
int kernel_wake(uint32_t* addr, int op_flags, int count, uint32_t bitset) {
    if (count <= 0) return 0;
    long r = bitset == FUTEX_BITSET_MATCH_ANY
                 ? native::sys(SYS_futex, reinterpret_cast<long>(addr), FUTEX_WAKE | op_flags, count)
                 : native::sys(SYS_futex, reinterpret_cast<long>(addr), FUTEX_WAKE_BITSET | op_flags, count, 0, 0,
                               long(bitset));
    return r > 0 ? int(r) : 0;
}

// Fiber futex first, then the kernel with the rest of the count.
int wake_everyone(uint32_t* addr, int op_flags, int count, uint32_t bitset) {
    // The kernel wakes one waiter for a count of 0 or less.
    if (count <= 0) count = 1;
    int woken = fibers_exist() ? futex_wake(addr, count, bitset) : 0;
    return woken + kernel_wake(addr, op_flags, count - woken, bitset);
}

constexpr int64_t kSharedPollFirstNs = 1000000, kSharedPollMaxNs = 50000000;

long fiber_wait(const FutexCall& c, Deadline deadline, uint32_t bitset) {
    auto* word = reinterpret_cast<std::atomic<uint32_t>*>(c.addr);
    int rc;
    if (c.is_private()) {
        rc = futex_wait(word, c.val, deadline, bitset);
    } else {
        int64_t interval = kSharedPollFirstNs;
        for (;;) {
            Deadline slice = Deadline::after_ns(interval);
            if (deadline.mono_ns < slice.mono_ns) slice = deadline;
            rc = futex_wait(word, c.val, slice, bitset);
            if (rc != ETIMEDOUT || deadline.passed()) break;
            if (word->load(std::memory_order_acquire) != c.val) {
                rc = 0;
                break;
            }
            if (interval < kSharedPollMaxNs) interval *= 2;
        }
    }
    return rc ? fail(rc) : 0;
}

bool valid_timeout(const timespec* ts) { return ts->tv_sec >= 0 && ts->tv_nsec >= 0 && ts->tv_nsec < 1000000000; }

long futex_wait_call(const FutexCall& c, uint32_t bitset, bool absolute) {
    // The kernel copies and checks the timeout before anything else.
    if (c.timeout && !valid_timeout(c.timeout)) return fail(EINVAL);
    if (!bitset) return fail(EINVAL);
    if (misaligned(c.addr)) return fail(EINVAL);
    Deadline deadline = Deadline::never();
    if (c.timeout) {
        deadline = absolute ? Deadline::from_abs(c.realtime() ? CLOCK_REALTIME : CLOCK_MONOTONIC, *c.timeout)
                            : Deadline::after_ns(int64_t(c.timeout->tv_sec) * 1000000000 + c.timeout->tv_nsec);
    }
    return fiber_wait(c, deadline, bitset);
}

bool wake_op_compare(int cmp, uint32_t old, int cmparg, bool* ok) {
    const int o = int(old);
    *ok = true;
    switch (cmp) {
        case FUTEX_OP_CMP_EQ: return o == cmparg;
        case FUTEX_OP_CMP_NE: return o != cmparg;
        case FUTEX_OP_CMP_LT: return o < cmparg;
        case FUTEX_OP_CMP_LE: return o <= cmparg;
        case FUTEX_OP_CMP_GT: return o > cmparg;
        case FUTEX_OP_CMP_GE: return o >= cmparg;
        default: *ok = false; return false;
    }
}

// FUTEX_WAKE_OP: *addr2 = *addr2 OP oparg (atomically), wake val waiters
// on addr, and val2 on addr2 if the old value compared true.
long futex_wake_op(const FutexCall& c) {
    if (misaligned(c.addr) || misaligned(c.addr2)) return fail(EINVAL);
    const int op = int((c.val3 >> 28) & 15), cmp = int((c.val3 >> 24) & 15);
    int oparg = int(c.val3 << 8) >> 20;
    const int cmparg = int(c.val3 << 20) >> 20;
    if (op & FUTEX_OP_OPARG_SHIFT) {
        oparg &= 31;  // the kernel masks an out-of-range shift the same way
        oparg = int(1u << oparg);
    }
    auto* word2 = reinterpret_cast<std::atomic<uint32_t>*>(c.addr2);
    uint32_t old = word2->load(std::memory_order_relaxed), next;
    do {
        switch (op & 7) {
            case FUTEX_OP_SET: next = uint32_t(oparg); break;
            case FUTEX_OP_ADD: next = old + uint32_t(oparg); break;
            case FUTEX_OP_OR: next = old | uint32_t(oparg); break;
            case FUTEX_OP_ANDN: next = old & ~uint32_t(oparg); break;
            case FUTEX_OP_XOR: next = old ^ uint32_t(oparg); break;
            default: return fail(ENOSYS);
        }
    } while (!word2->compare_exchange_weak(old, next, std::memory_order_seq_cst));
    const int flags = c.op & FUTEX_PRIVATE_FLAG;
    int woken = wake_everyone(c.addr, flags, int(c.val), FUTEX_BITSET_MATCH_ANY);
    bool cmp_ok = false;
    const bool take_second = wake_op_compare(cmp, old, cmparg, &cmp_ok);
    if (!cmp_ok) return fail(ENOSYS);
    if (take_second) woken += wake_everyone(c.addr2, flags, int(c.val2()), FUTEX_BITSET_MATCH_ANY);
    return woken;
}

long futex_requeue(const FutexCall& c) {
    if (misaligned(c.addr) || misaligned(c.addr2)) return fail(EINVAL);
    const int nr_wake = int(c.val), nr_requeue = int(c.val2());
    if (nr_wake < 0 || nr_requeue < 0) return fail(EINVAL);
    if (c.cmd() == FUTEX_CMP_REQUEUE &&
        reinterpret_cast<std::atomic<uint32_t>*>(c.addr)->load(std::memory_order_seq_cst) != c.val3)
        return fail(EAGAIN);
    const int64_t budget = int64_t(nr_wake) + nr_requeue;
    int woken = fibers_exist() ? futex_wake(c.addr, int(budget > INT_MAX ? INT_MAX : budget)) : 0;
    const int kernel_wake_n = nr_wake > woken ? nr_wake - woken : 0;
    const int used_of_requeue = woken > nr_wake ? woken - nr_wake : 0;
    const int kernel_requeue_n = nr_requeue - used_of_requeue;
    long r = native::sys(SYS_futex, reinterpret_cast<long>(c.addr), c.op, kernel_wake_n, long(kernel_requeue_n),
                         reinterpret_cast<long>(c.addr2), long(c.val3));
    if (r < 0) return woken ? woken : fail(int(-r));
    return woken + r;
}

// Returns the call's result, with *handled false for operations that go to
// the kernel unchanged.
long futex_call(const FutexCall& c, bool* handled) {
    *handled = true;
    const int cmd = c.cmd();
    if (c.realtime() && cmd != FUTEX_WAIT && cmd != FUTEX_WAIT_BITSET && cmd != FUTEX_WAIT_REQUEUE_PI &&
        cmd != FUTEX_LOCK_PI2)
        return fail(ENOSYS);
    const int flags = c.op & FUTEX_PRIVATE_FLAG;
    switch (cmd) {
        case FUTEX_WAIT: return futex_wait_call(c, FUTEX_BITSET_MATCH_ANY, false);
        case FUTEX_WAIT_BITSET: return futex_wait_call(c, c.val3, true);
        case FUTEX_WAKE:
            if (misaligned(c.addr)) return fail(EINVAL);
            return wake_everyone(c.addr, flags, int(c.val), FUTEX_BITSET_MATCH_ANY);
        case FUTEX_WAKE_BITSET:
            if (!c.val3 || misaligned(c.addr)) return fail(EINVAL);
            return wake_everyone(c.addr, flags, int(c.val), c.val3);
        case FUTEX_WAKE_OP: return futex_wake_op(c);
        case FUTEX_REQUEUE:
        case FUTEX_CMP_REQUEUE: return futex_requeue(c);
        default: *handled = false; return 0;
    }
}

bool is_wait(int op) {
    const int cmd = op & FUTEX_CMD_MASK;
    return cmd == FUTEX_WAIT || cmd == FUTEX_WAIT_BITSET;
}

}  // namespace

GREENLD_EXPORT long syscall(long number, ...) {
    va_list ap;
    va_start(ap, number);
    // Six arguments whatever the number, as libc's syscall() reads them.
    long a1 = va_arg(ap, long), a2 = va_arg(ap, long), a3 = va_arg(ap, long), a4 = va_arg(ap, long),
         a5 = va_arg(ap, long), a6 = va_arg(ap, long);
    va_end(ap);
    // A converted thread's id is its fiber's (gettid(), thread.cpp): the
    // raw system call must agree with the libc function.
    if (number == SYS_gettid && Hub::current_fiber()) return ::gettid();
    // ... and a signal sent to that id must reach the fiber (signal_send.cpp).
    if (number == SYS_tgkill || number == SYS_tkill || number == SYS_rt_tgsigqueueinfo) {
        bool handled = false;
        long r = signal_send::thread_signal_syscall(number, a1, a2, a3, a4, &handled);
        if (handled) return r;
    }
    if (number != SYS_futex || !config::patched(config::kPatchThread))
        return next_syscall(number, a1, a2, a3, a4, a5, a6);
    FutexCall c{reinterpret_cast<uint32_t*>(a1), int(a2), uint32_t(a3), reinterpret_cast<const timespec*>(a4),
                reinterpret_cast<uint32_t*>(a5), uint32_t(a6)};
    Fiber* self = Hub::current_fiber();
    // A native thread sleeps in the kernel, as it would without us.
    if (!self && is_wait(c.op)) return next_syscall(number, a1, a2, a3, a4, a5, a6);
    const int saved_errno = errno;
    bool handled = false;
    long r = futex_call(c, &handled);
    if (!handled) return next_syscall(number, a1, a2, a3, a4, a5, a6);
    if (r >= 0) errno = saved_errno;
    return r;
}
