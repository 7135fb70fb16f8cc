// Mutexes whose lock word follows the kernel's protocol, taken by fibers:
// robust process-shared mutexes (the kernel's robust list marks a dead
// owner's "owner died" and wakes a waiter), priority-inheritance mutexes,
// private or shared (the kernel's PI futexes hand them over), and
// priority-protection ones (glibc raises the thread to the ceiling).
//
// glibc's own code keeps taking and releasing them, so that the kernel's
// cleanup of a dying thread, other processes using glibc, and native
// threads of this one keep agreeing on the word. What is added is for
// fibers, which share their hub's OS thread id, the id glibc and the kernel
// know an owner by:
//  - a fiber never sleeps in glibc: it takes the lock with glibc's trylock
//    and, when busy, parks until a release (see kernel_mutex.cpp);
//  - the owning fiber is recorded next to glibc's owner (in __spins and
//    __elision, which these kinds never use), so that recursion, EDEADLK
//    and EPERM apply per fiber, as between native threads;
//  - a fiber that ends holding a robust one leaves it "owner died" for the
//    next locker, as the kernel does for a thread that ends.
// Native threads call glibc directly.
#pragma once

#include <pthread.h>

#include "../runtime/deadline.h"

namespace greenld {
class Fiber;
}

namespace greenld::kernel_mutex {

// glibc's __kind: is it one of the kinds above? (Bits: 16 robust, 32
// priority inheritance, 64 priority protection, 128 process-shared.)
constexpr bool kernel_protocol(int kind) { return (kind & (32 | 64)) || (kind & (16 | 128)) == (16 | 128); }

// For the calling fiber, `self`. lock: 0, EOWNERDEAD, ENOTRECOVERABLE, EDEADLK,
// EAGAIN, EINVAL (a priority ceiling below the thread's priority), EBUSY
// when try_only, ETIMEDOUT once `deadline` passed.
int lock(Fiber* self, pthread_mutex_t* m, Deadline deadline, bool try_only);
int unlock(Fiber* self, pthread_mutex_t* m);
// glibc's condition variable wait relocked it for the calling fiber.
void relocked(Fiber* self, pthread_mutex_t* m);

// The fiber ends: the robust ones it holds are left "owner died".
void release_held(Fiber* f);

}  // namespace greenld::kernel_mutex
