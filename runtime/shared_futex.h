// Waits on futex words that other processes may wake: process-shared
// mutexes and semaphores (pthread_mutexattr_setpshared, sem_init with
// pshared, sem_open). Their wakers may be another process's glibc, which
// wakes with a kernel FUTEX_WAKE: the fiber futex (futex.h) cannot hear it.
//
// A fiber cannot sleep in the kernel without stopping its hub, so its
// kernel wait runs as a rendezvous job on the blocking-call pool (pool.h)
// while the fiber parks: the hub goes on, and the wait costs a native
// thread only while it lasts. A signal or pthread_cancel for the fiber
// cuts the kernel wait short by waking the word (every waiter of a futex
// must tolerate a spurious wake-up, glibc's included), so a handler's EINTR
// is seen at once. A native caller waits in the kernel itself.
// `process_private`: the word's wakers use FUTEX_PRIVATE_FLAG (glibc's
// process-private priority-protection mutexes), whose wake-ups reach only
// waits made with that flag too.
#pragma once

#include <atomic>
#include <cstdint>

#include "deadline.h"

namespace greenld {

// 0 when woken (or spuriously, or *word != expected), ETIMEDOUT once the
// deadline passed, EINTR when the fiber's park was interrupted and a
// signal handler ran or pthread_cancel is pending; handlers have run when
// it returns.
int shared_futex_wait(std::atomic<uint32_t>* word, uint32_t expected, Deadline deadline,
                      bool process_private = false);

// Kernel FUTEX_WAKE without the private flag: reaches waiters in every
// process mapping the word.
void shared_futex_wake(std::atomic<uint32_t>* word, int count, bool process_private = false);

}  // namespace greenld
