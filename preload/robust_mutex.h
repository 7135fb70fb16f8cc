// Robust process-private mutexes (pthread_mutexattr_setrobust): what the
// kernel's robust list does for a thread, done for fibers. The kernel
// cannot know that a fiber ended (its OS thread, the hub, goes on), so a
// fiber keeps its own list of the robust mutexes it holds, and when it ends
// holding some, each is released marked "owner died": the next locker gets
// EOWNERDEAD with the lock, pthread_mutex_consistent repairs it, and an
// unlock without that makes it ENOTRECOVERABLE for everyone, as in glibc.
//
// State kept in the mutex, in fields glibc's robust code would use but ours
// does not otherwise touch: __spins holds the state below, __list links the
// holder's list. Robust mutexes that are also process-shared or
// priority-inheritance keep glibc's protocol (kernel_mutex.h); the exit
// hook installed here releases those too.
#pragma once

#include <pthread.h>

namespace greenld::robust {

enum State : short { kConsistent = 0, kOwnerDied = 1, kNotRecoverable = 2 };

inline State state(const pthread_mutex_t* m) { return State(__atomic_load_n(&m->__data.__spins, __ATOMIC_ACQUIRE)); }
inline void set_state(pthread_mutex_t* m, State s) { __atomic_store_n(&m->__data.__spins, short(s), __ATOMIC_RELEASE); }

// The calling thread took the lock: list it (fibers only).
void link(pthread_mutex_t* m);
// The calling thread is about to release it for good.
void unlink(pthread_mutex_t* m);
// Installs the fiber-exit hook that releases what a dead fiber held.
void install();

}  // namespace greenld::robust
