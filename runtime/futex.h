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

// Returns 0 when woken (or spuriously), EAGAIN if *addr != expected at the
// time of the call, ETIMEDOUT when the deadline passed.
int futex_wait(std::atomic<uint32_t>* addr, uint32_t expected, Deadline deadline = Deadline::never());

// Wakes up to `count` waiters on addr, oldest first. Returns how many.
int futex_wake(const void* addr, int count);

// fork(): every bucket lock is taken before and released after, so the
// child never inherits one held by a thread that no longer exists.
void futex_lock_for_fork();
void futex_unlock_after_fork(bool child);

// Number of waiters queued on addr (for tests and diagnostics).
int futex_waiters(const void* addr);

}  // namespace greenld
