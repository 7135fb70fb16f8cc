// pthread mutexes and condition variables on the fiber futex.
//
// The objects keep glibc's layout where the program can see it: static
// initialisers (PTHREAD_MUTEX_INITIALIZER, PTHREAD_RECURSIVE_MUTEX_
// INITIALIZER_NP...) write __kind, which we read. Mutex: __lock is the futex
// word (0 free, 1 locked, 2 locked with waiters), __owner the owner id (a
// fiber id or a native tid), __count the recursion depth.
// Process-shared mutexes keep glibc's protocol on __lock (0 free, 1 locked,
// 2 locked with waiters; the unlocker that swaps a 2 out wakes one), so a
// process using glibc directly can share them; their waiters sleep on the
// kernel futex (runtime/shared_futex.h) since the unlocker may be another
// process. Their __owner is a thread id only within one process, so the
// owner's pid is kept next to it (in __list, unused by non-robust mutexes)
// for the recursive and error-checking tests.
// Robust process-private mutexes are ours too (robust_mutex.h: a fiber that
// ends holding one leaves it "owner died").
// Robust process-shared and priority-protocol mutexes keep glibc's code and
// the kernel's protocol (robust lists, PI futexes); a fiber takes them
// through kernel_mutex.h, which parks only the fiber. Process-shared
// condition variables are left to glibc, for glibc's condvar layout in
// other processes (they block the hub's OS thread while they wait, except
// with a process-shared mutex of ours: glibc_cond_wait).
#include <pthread.h>
#include <sys/syscall.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>

#include "../runtime/futex.h"
#include "../runtime/hub.h"
#include "../runtime/native.h"
#include "../runtime/pool.h"
#include "../runtime/shared_futex.h"
#include "cooperative.h"
#include "cancel.h"
#include "kernel_mutex.h"
#include "next.h"
#include "robust_mutex.h"

using namespace greenld;

namespace {

next::Symbol<decltype(::pthread_mutex_init)> next_mutex_init{"pthread_mutex_init"};
next::Symbol<decltype(::pthread_mutex_lock)> next_mutex_lock{"pthread_mutex_lock"};
next::Symbol<decltype(::pthread_mutex_trylock)> next_mutex_trylock{"pthread_mutex_trylock"};
next::Symbol<decltype(::pthread_mutex_timedlock)> next_mutex_timedlock{"pthread_mutex_timedlock"};
next::Symbol<decltype(::pthread_mutex_clocklock)> next_mutex_clocklock{"pthread_mutex_clocklock"};
next::Symbol<decltype(::pthread_mutex_unlock)> next_mutex_unlock{"pthread_mutex_unlock"};
next::Symbol<decltype(::pthread_mutex_destroy)> next_mutex_destroy{"pthread_mutex_destroy"};
next::Symbol<decltype(::pthread_mutex_consistent)> next_mutex_consistent{"pthread_mutex_consistent"};
next::Symbol<decltype(::pthread_cond_init)> next_cond_init{"pthread_cond_init"};
next::Symbol<decltype(::pthread_cond_wait)> next_cond_wait{"pthread_cond_wait"};
next::Symbol<decltype(::pthread_cond_timedwait)> next_cond_timedwait{"pthread_cond_timedwait"};
next::Symbol<decltype(::pthread_cond_clockwait)> next_cond_clockwait{"pthread_cond_clockwait"};
next::Symbol<decltype(::pthread_cond_signal)> next_cond_signal{"pthread_cond_signal"};
next::Symbol<decltype(::pthread_cond_broadcast)> next_cond_broadcast{"pthread_cond_broadcast"};
next::Symbol<decltype(::pthread_cond_destroy)> next_cond_destroy{"pthread_cond_destroy"};

// glibc's __kind bits.
constexpr int kTypeMask = 3;  // normal(timed) 0, recursive 1, errorcheck 2, adaptive 3
constexpr int kRobust = 16, kPrioInherit = 32, kPrioProtect = 64, kPshared = 128;
constexpr int kPriority = kPrioInherit | kPrioProtect;

struct MutexView {
    std::atomic<uint32_t>* word;
    unsigned* count;
    int* owner;
    int kind;
};

MutexView view(pthread_mutex_t* m) {
    return {reinterpret_cast<std::atomic<uint32_t>*>(&m->__data.__lock), &m->__data.__count, &m->__data.__owner,
            m->__data.__kind};
}

int self_id() { return lock_owner_id(); }

bool shared_mutex(const MutexView& v) { return v.kind & kPshared; }

long this_pid() { return native::sys(SYS_getpid); }

// The owner's pid of a process-shared mutex (see the top of the file).
long* owner_pid(pthread_mutex_t* m) { return reinterpret_cast<long*>(&m->__data.__list.__prev); }

bool owned_by_me(pthread_mutex_t* m, const MutexView& v) {
    if (__atomic_load_n(v.owner, __ATOMIC_RELAXED) != self_id()) return false;
    return !shared_mutex(v) || __atomic_load_n(owner_pid(m), __ATOMIC_RELAXED) == this_pid();
}

int acquire(std::atomic<uint32_t>* word, Deadline deadline, bool shared = false) {
    uint32_t c = 0;
    if (word->compare_exchange_strong(c, 1, std::memory_order_acquire)) return 0;
    // Mark contended, then sleep until the holder's unlock wakes us.
    while (word->exchange(2, std::memory_order_acquire) != 0) {
        const int rc = shared ? shared_futex_wait(word, 2, deadline) : futex_wait(word, 2, deadline);
        if (rc == ETIMEDOUT) {
            c = 0;
            if (word->compare_exchange_strong(c, 2, std::memory_order_acquire)) return 0;
            return ETIMEDOUT;
        }
    }
    return 0;
}

// The lock is held: record who holds it.
void set_owner(pthread_mutex_t* m, const MutexView& v) {
    __atomic_store_n(v.owner, self_id(), __ATOMIC_RELAXED);
    *v.count = 1;
    if (shared_mutex(v)) {
        const int type = v.kind & kTypeMask;
        if (type == PTHREAD_MUTEX_RECURSIVE || type == PTHREAD_MUTEX_ERRORCHECK)
            __atomic_store_n(owner_pid(m), this_pid(), __ATOMIC_RELAXED);
        ++m->__data.__nusers;  // as glibc counts, for its pthread_mutex_destroy
    }
}

// Releases the lock word of a mutex we hold or just took.
void release_word(const MutexView& v, int wake) {
    const bool contended = v.word->exchange(0, std::memory_order_release) == 2;
    if (!contended && wake == 1) return;
    if (shared_mutex(v))
        shared_futex_wake(v.word, wake);
    else
        futex_wake(v.word, wake);
}

int lock(pthread_mutex_t* m, Deadline deadline, bool try_only) {
    MutexView v = view(m);
    const int type = v.kind & kTypeMask;
    const bool robust = v.kind & kRobust;
    if (robust && robust::state(m) == robust::kNotRecoverable) return ENOTRECOVERABLE;
    if (type == PTHREAD_MUTEX_RECURSIVE || type == PTHREAD_MUTEX_ERRORCHECK) {
        if (owned_by_me(m, v)) {
            if (type == PTHREAD_MUTEX_ERRORCHECK) return try_only ? EBUSY : EDEADLK;
            if (*v.count == UINT_MAX) return EAGAIN;
            ++*v.count;
            return 0;
        }
    }
    if (try_only) {
        uint32_t c = 0;
        if (!v.word->compare_exchange_strong(c, 1, std::memory_order_acquire)) return EBUSY;
    } else if (int rc = acquire(v.word, deadline, shared_mutex(v))) {
        return rc;
    }
    if (robust) {
        const robust::State st = robust::state(m);
        if (st == robust::kNotRecoverable) {
            // Made unrecoverable while we waited: everyone is told so.
            release_word(v, INT_MAX);
            return ENOTRECOVERABLE;
        }
        set_owner(m, v);
        robust::link(m);
        if (st == robust::kOwnerDied) return EOWNERDEAD;
        return 0;
    }
    set_owner(m, v);
    return 0;
}

int unlock(pthread_mutex_t* m) {
    MutexView v = view(m);
    const int type = v.kind & kTypeMask;
    const bool robust = v.kind & kRobust;
    // A robust mutex checks its owner whatever its type, as glibc's does.
    if (robust || type == PTHREAD_MUTEX_RECURSIVE || type == PTHREAD_MUTEX_ERRORCHECK) {
        if (!owned_by_me(m, v) || v.word->load() == 0) return EPERM;
        if (type == PTHREAD_MUTEX_RECURSIVE && --*v.count != 0) return 0;
    }
    int wake = 1;
    if (robust) {
        robust::unlink(m);
        // Unlocked without pthread_mutex_consistent after EOWNERDEAD.
        if (robust::state(m) == robust::kOwnerDied) {
            robust::set_state(m, robust::kNotRecoverable);
            wake = INT_MAX;
        }
    }
    __atomic_store_n(v.owner, 0, __ATOMIC_RELAXED);
    *v.count = 0;
    if (shared_mutex(v)) --m->__data.__nusers;
    release_word(v, wake);
    return 0;
}

bool valid_timespec(const timespec* ts) { return ts && ts->tv_nsec >= 0 && ts->tv_nsec < 1000000000; }

// Objects glibc must handle: those shared with other processes or the
// kernel, and all of them when GREENLD_PATCH leaves out "thread".
bool glibc_mutex(const pthread_mutex_t* m) {
    const int kind = m->__data.__kind;
    return (kind & kPriority) || ((kind & kRobust) && (kind & kPshared)) || !config::patched(config::kPatchThread);
}

// The calling fiber, on one of glibc's mutexes that follow the kernel's
// protocol; null otherwise.
Fiber* fiber_kernel_mutex(const pthread_mutex_t* m) {
    Fiber* f = Hub::current_fiber();
    return f && kernel_mutex::kernel_protocol(m->__data.__kind) && config::patched(config::kPatchThread) ? f : nullptr;
}

// Any mutex, from a condition variable of ours.
int lock_any(pthread_mutex_t* m, Deadline deadline) {
    if (glibc_mutex(m)) {
        if (Fiber* f = fiber_kernel_mutex(m)) return kernel_mutex::lock(f, m, deadline, false);
        return next_mutex_lock(m);
    }
    return lock(m, deadline, false);
}

int unlock_any(pthread_mutex_t* m) {
    if (glibc_mutex(m)) {
        if (Fiber* f = fiber_kernel_mutex(m)) return kernel_mutex::unlock(f, m);
        return next_mutex_unlock(m);
    }
    return unlock(m);
}

// Condition variable: a sequence word at offset 0 (bumped by every signal),
// a waiter count at offset 4, and glibc's __wrefs flags word (bit 1:
// CLOCK_MONOTONIC, bit 0: process-shared), which pthread_cond_init and the
// static initialiser agree on.
struct CondView {
    std::atomic<uint32_t>* seq;
    std::atomic<uint32_t>* waiters;
    unsigned flags;
};

CondView view(pthread_cond_t* c) {
    auto* words = reinterpret_cast<std::atomic<uint32_t>*>(c);
    return {&words[0], &words[1], c->__data.__wrefs};
}

// glibc: bit 0 process-shared, bit 1 CLOCK_MONOTONIC; waiter references count in steps of 8.
constexpr unsigned kCondShared = 1, kCondMonotonic = 2;

bool glibc_cond(const pthread_cond_t* c) {
    return (c->__data.__wrefs & kCondShared) || !config::patched(config::kPatchThread);
}

int cond_wait(pthread_cond_t* c, pthread_mutex_t* m, Deadline deadline) {
    CondView v = view(c);
    const uint32_t seq = v.seq->load(std::memory_order_seq_cst);
    v.waiters->fetch_add(1, std::memory_order_seq_cst);
    if (int rc = unlock_any(m)) {
        v.waiters->fetch_sub(1, std::memory_order_relaxed);
        return rc;
    }
    int rc = futex_wait(v.seq, seq, deadline);
    v.waiters->fetch_sub(1, std::memory_order_relaxed);
    // Relock whatever happened, as POSIX requires, even after a timeout. A
    // robust mutex whose owner died meanwhile reports it (EOWNERDEAD, held).
    const int lr = lock_any(m, Deadline::never());
    if (lr == EOWNERDEAD || lr == ENOTRECOVERABLE) return lr;
    return rc == ETIMEDOUT ? ETIMEDOUT : 0;
}

// A process-shared condition variable is glibc's (its layout is shared with
// other processes); its wait unlocks and relocks a mutex of ours with
// glibc's own code (the same word protocol), which checks an error-checking
// or recursive mutex's __owner against the calling OS thread's id: the
// mutex is handed over under that id, and taken back. With a process-shared
// mutex (kernel wakes, as glibc's) a fiber's whole wait runs on the
// blocking-call pool while it parks: signal handlers run meanwhile and the
// wait goes on, as glibc's does. Otherwise it blocks the hub's thread.
template <typename Wait>
int glibc_cond_wait(pthread_mutex_t* m, Wait wait) {
    if (glibc_mutex(m)) {
        const int rc = wait();
        if (Fiber* f = fiber_kernel_mutex(m)) kernel_mutex::relocked(f, m);
        return rc;
    }
    MutexView v = view(m);
    const unsigned count = *v.count;
    int rc;
    if (shared_mutex(v) && Hub::current_fiber()) {
        rc = offload(JobKind::rendezvous, [&] {
            __atomic_store_n(v.owner, native::gettid(), __ATOMIC_RELAXED);
            return wait();
        });
    } else {
        __atomic_store_n(v.owner, native::gettid(), __ATOMIC_RELAXED);
        rc = wait();
    }
    set_owner(m, v);
    if (shared_mutex(v)) --m->__data.__nusers;  // set_owner counted a second lock
    *v.count = count;
    return rc;
}

int cond_wake(pthread_cond_t* c, int count) {
    CondView v = view(c);
    if (v.waiters->load(std::memory_order_seq_cst) == 0) return 0;
    v.seq->fetch_add(1, std::memory_order_seq_cst);
    futex_wake(v.seq, count);
    return 0;
}

}  // namespace

GREENLD_EXPORT int pthread_mutex_init(pthread_mutex_t* m, const pthread_mutexattr_t* attr) {
    int type = PTHREAD_MUTEX_DEFAULT, robust = PTHREAD_MUTEX_STALLED, shared = PTHREAD_PROCESS_PRIVATE,
        protocol = PTHREAD_PRIO_NONE;
    if (attr) {
        pthread_mutexattr_gettype(attr, &type);
        pthread_mutexattr_getrobust(attr, &robust);
        pthread_mutexattr_getpshared(attr, &shared);
        pthread_mutexattr_getprotocol(attr, &protocol);
    }
    const bool is_robust = robust == PTHREAD_MUTEX_ROBUST, is_shared = shared == PTHREAD_PROCESS_SHARED;
    if ((is_robust && is_shared) || protocol != PTHREAD_PRIO_NONE || !config::patched(config::kPatchThread))
        return next_mutex_init(m, attr);
    memset(m, 0, sizeof *m);
    m->__data.__kind = (type & kTypeMask) | (is_shared ? kPshared : 0) | (is_robust ? kRobust : 0);
    if (is_robust) robust::install();
    return 0;
}

GREENLD_EXPORT int pthread_mutex_lock(pthread_mutex_t* m) {
    if (glibc_mutex(m)) {
        if (Fiber* f = fiber_kernel_mutex(m)) return kernel_mutex::lock(f, m, Deadline::never(), false);
        return next_mutex_lock(m);
    }
    return lock(m, Deadline::never(), false);
}

GREENLD_EXPORT int pthread_mutex_trylock(pthread_mutex_t* m) {
    if (glibc_mutex(m)) {
        if (Fiber* f = fiber_kernel_mutex(m)) return kernel_mutex::lock(f, m, Deadline::never(), true);
        return next_mutex_trylock(m);
    }
    return lock(m, Deadline::never(), true);
}

GREENLD_EXPORT int pthread_mutex_clocklock(pthread_mutex_t* m, clockid_t clock, const timespec* abstime) {
    Fiber* kernel = nullptr;
    if (glibc_mutex(m) && !(kernel = fiber_kernel_mutex(m))) return next_mutex_clocklock(m, clock, abstime);
    if (clock != CLOCK_REALTIME && clock != CLOCK_MONOTONIC) return EINVAL;
    // Like glibc: an uncontended lock succeeds even with a bad timeout.
    if (kernel) {
        const int rc = kernel_mutex::lock(kernel, m, Deadline::never(), true);
        if (rc != EBUSY) return rc;  // taken, or glibc's verdict (EDEADLK, EOWNERDEAD...)
        if (!valid_timespec(abstime)) return EINVAL;
        return kernel_mutex::lock(kernel, m, Deadline::from_abs(clock, *abstime), false);
    }
    if (lock(m, Deadline::never(), true) == 0) return 0;
    if (!valid_timespec(abstime)) return EINVAL;
    return lock(m, Deadline::from_abs(clock, *abstime), false);
}

GREENLD_EXPORT int pthread_mutex_timedlock(pthread_mutex_t* m, const timespec* abstime) {
    if (glibc_mutex(m) && !fiber_kernel_mutex(m)) return next_mutex_timedlock(m, abstime);
    return pthread_mutex_clocklock(m, CLOCK_REALTIME, abstime);
}

GREENLD_EXPORT int pthread_mutex_unlock(pthread_mutex_t* m) {
    if (glibc_mutex(m)) {
        if (Fiber* f = fiber_kernel_mutex(m)) return kernel_mutex::unlock(f, m);
        return next_mutex_unlock(m);
    }
    return unlock(m);
}

GREENLD_EXPORT int pthread_mutex_consistent(pthread_mutex_t* m) {
    if (glibc_mutex(m)) return next_mutex_consistent(m);
    MutexView v = view(m);
    // As glibc: EINVAL unless robust and inconsistent (it does not ask who
    // holds it).
    if (!(v.kind & kRobust) || robust::state(m) != robust::kOwnerDied) return EINVAL;
    robust::set_state(m, robust::kConsistent);
    return 0;
}

GREENLD_EXPORT int pthread_mutex_destroy(pthread_mutex_t* m) {
    if (glibc_mutex(m)) return next_mutex_destroy(m);
    return 0;
}

GREENLD_EXPORT int pthread_cond_init(pthread_cond_t* c, const pthread_condattr_t* attr) {
    int shared = PTHREAD_PROCESS_PRIVATE;
    clockid_t clock = CLOCK_REALTIME;
    if (attr) {
        pthread_condattr_getpshared(attr, &shared);
        pthread_condattr_getclock(attr, &clock);
    }
    if (shared == PTHREAD_PROCESS_SHARED || !config::patched(config::kPatchThread)) return next_cond_init(c, attr);
    memset(c, 0, sizeof *c);
    c->__data.__wrefs = (clock == CLOCK_MONOTONIC) ? kCondMonotonic : 0;
    return 0;
}

GREENLD_EXPORT int pthread_cond_wait(pthread_cond_t* c, pthread_mutex_t* m) {
    CancelPoint cancel_point;
    if (glibc_cond(c)) return glibc_cond_wait(m, [&] { return next_cond_wait(c, m); });
    return cond_wait(c, m, Deadline::never());
}

GREENLD_EXPORT int pthread_cond_clockwait(pthread_cond_t* c, pthread_mutex_t* m, clockid_t clock,
                                          const timespec* abstime) {
    CancelPoint cancel_point;
    if (glibc_cond(c)) return glibc_cond_wait(m, [&] { return next_cond_clockwait(c, m, clock, abstime); });
    if ((clock != CLOCK_REALTIME && clock != CLOCK_MONOTONIC) || !valid_timespec(abstime)) return EINVAL;
    return cond_wait(c, m, Deadline::from_abs(clock, *abstime));
}

GREENLD_EXPORT int pthread_cond_timedwait(pthread_cond_t* c, pthread_mutex_t* m, const timespec* abstime) {
    CancelPoint cancel_point;
    if (glibc_cond(c)) return glibc_cond_wait(m, [&] { return next_cond_timedwait(c, m, abstime); });
    const clockid_t clock = (c->__data.__wrefs & kCondMonotonic) ? CLOCK_MONOTONIC : CLOCK_REALTIME;
    if (!valid_timespec(abstime)) return EINVAL;
    return cond_wait(c, m, Deadline::from_abs(clock, *abstime));
}

GREENLD_EXPORT int pthread_cond_signal(pthread_cond_t* c) {
    if (glibc_cond(c)) return next_cond_signal(c);
    return cond_wake(c, 1);
}

GREENLD_EXPORT int pthread_cond_broadcast(pthread_cond_t* c) {
    if (glibc_cond(c)) return next_cond_broadcast(c);
    return cond_wake(c, INT_MAX);
}

GREENLD_EXPORT int pthread_cond_destroy(pthread_cond_t* c) {
    if (glibc_cond(c)) return next_cond_destroy(c);
    return 0;
}
