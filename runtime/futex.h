// The fiber futex: an address-keyed parking lot, the one mechanism every
// pthread synchronisation object is built on (as glibc builds them on the
// kernel futex). A waiter is a fiber (it parks on its hub) or a native
// thread (it sleeps on a kernel futex word of its own); wakers do not care
// which, and any of them may run on any OS thread.
//
// Like the kernel's, a wait that times out while a wake dequeues it counts as
// woken: whoever removes the waiter from its bucket decides, so a wake is
// never lost to a concurrent timeout.
#pragma once

#include <atomic>
#include <cstdint>

#include "deadline.h"

namespace greenld {

// A waiter's bitset and a wake's bitset must share a bit for the wake to
// take that waiter (the kernel's FUTEX_WAIT_BITSET/FUTEX_WAKE_BITSET).
constexpr uint32_t kFutexBitsetAny = ~0u;

// Returns 0 when woken (or spuriously), EAGAIN if *addr != expected at the
// time of the call, ETIMEDOUT when the deadline passed, EINTR when a fiber's
// park was interrupted (signal, pthread_cancel: WakeReason::interrupted) and
// no wake took it first.
int futex_wait(std::atomic<uint32_t>* addr, uint32_t expected, Deadline deadline = Deadline::never(),
               uint32_t bitset = kFutexBitsetAny);

// Wakes up to `count` waiters on addr whose bitset meets `bitset`, oldest
// first. Returns how many.
int futex_wake(const void* addr, int count, uint32_t bitset = kFutexBitsetAny);

// fork(): every bucket lock is taken before and released after, so the
// child never inherits one held by a thread that no longer exists.
void futex_lock_for_fork();
void futex_unlock_after_fork(bool child);

// Number of waiters queued on addr (for tests and diagnostics).
int futex_waiters(const void* addr);

// Native threads (not fibers) waiting on the fiber futex with no deadline.
int futex_native_waiters_forever();

}  // namespace greenld
