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
// other processes; a fiber's wait on one runs on the blocking-call pool
// (relayed_cond_wait), with any mutex.
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

// May the caller unlock it? A robust mutex checks its owner whatever its
// type, as glibc's does.
bool may_unlock(pthread_mutex_t* m, const MutexView& v) {
    const int type = v.kind & kTypeMask;
    if ((v.kind & kRobust) || type == PTHREAD_MUTEX_RECURSIVE || type == PTHREAD_MUTEX_ERRORCHECK)
        return owned_by_me(m, v) && v.word->load() != 0;
    return true;
}

// Unlocks a mutex may_unlock() allowed (possibly from another thread on
// the holder's behalf: relayed_cond_wait).
void release(pthread_mutex_t* m) {
    MutexView v = view(m);
    if ((v.kind & kTypeMask) == PTHREAD_MUTEX_RECURSIVE && --*v.count != 0) return;
    int wake = 1;
    if (v.kind & kRobust) {
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
}

int unlock(pthread_mutex_t* m) {
    if (!may_unlock(m, view(m))) return EPERM;
    release(m);
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
// other processes). Its wait must release the program's mutex only once the
// waiter is registered in the condition variable (POSIX's atomicity: a
// thread that takes the mutex after the waiter released it and then signals
// must wake it), and glibc does that step inside its own code. So glibc's
// wait runs on a pool thread with a proxy mutex of ours, and the caller
// releases and relocks its own mutex itself, with our lock code:
//
//  - the proxy is a process-shared normal mutex whose word is preset to 2
//    ("locked, with waiters"): glibc unlocks it right after registering the
//    waiter, and that unlock issues a kernel FUTEX_WAKE on the word, which
//    the caller waits for with shared_futex_wait (a fiber parks meanwhile);
//  - seeing the word 0, the caller releases the program's mutex (our
//    unlock: its waiters, fibers or another process's, are woken the way
//    they sleep) and waits for the pool thread to set the word to
//    kProxyReturned once glibc's wait returned (glibc relocks the proxy on
//    its way out, which nobody else holds);
//  - then it relocks the program's mutex with our lock: a recursive
//    mutex's count is kept as glibc's unlock and relock keep it, a robust
//    one reports EOWNERDEAD. (A mutex glibc keeps is unlocked and relocked
//    with glibc's functions instead.)
// A signal handler for a waiting fiber runs at once and the wait goes on
// (shared_futex_wait returns EINTR; a condition wait never does). A
// pthread_cancel request ends the wait promptly: glibc's futex wait retries
// on EINTR, so the condition variable is broadcast (a spurious wake-up for
// the other waiters, which POSIX allows) once the waiter is registered; the
// mutex is relocked (or was never released) before the CancelPoint acts.
constexpr uint32_t kProxyLocked = 2, kProxyReturned = 3;

void relinquish() {
    if (Hub::current_fiber())
        Hub::current()->yield();
    else
        native::sys(SYS_sched_yield);
}

// A fiber's wait. Returns -1 if no pool thread could run glibc's wait
// (nothing happened).
template <typename Wait>
int relayed_cond_wait(pthread_cond_t* c, pthread_mutex_t* m, Wait& wait) {
    // A mutex glibc handles (robust process-shared, priority protocol) is
    // unlocked and relocked by glibc on the hub's thread, as any locker of
    // it does there. Ours: what unlock() would refuse is refused before
    // glibc registers anything (glibc cancels its registration and returns
    // the same EPERM).
    const bool glibcs = glibc_mutex(m);
    if (!glibcs && !may_unlock(m, view(m))) return EPERM;
    struct Job : PoolJob {
        Wait* wait;
        pthread_mutex_t proxy;
        int result = 0;
    };
    Job job;
    memset(&job.proxy, 0, sizeof job.proxy);
    job.proxy.__data.__kind = kPshared;  // glibc's unlock then wakes without FUTEX_PRIVATE_FLAG, as we wait
    job.proxy.__data.__lock = kProxyLocked;
    job.wait = &wait;
    job.run = [](PoolJob* j) {
        auto* self = static_cast<Job*>(j);
        self->result = (*self->wait)(&self->proxy);
        auto* word = reinterpret_cast<std::atomic<uint32_t>*>(&self->proxy.__data.__lock);
        word->store(kProxyReturned, std::memory_order_release);
        shared_futex_wake(word, INT_MAX);
    };
    auto* word = reinterpret_cast<std::atomic<uint32_t>*>(&job.proxy.__data.__lock);
    if (!BlockingPool::get().start(&job)) return -1;
    Fiber* self = Hub::current_fiber();
    bool released = false, cancelling = false, broadcast = false;
    int unlock_error = 0;
    for (;;) {
        const uint32_t w = word->load(std::memory_order_acquire);
        if (w == kProxyReturned) break;
        if (w == 0 && !released && !cancelling && !unlock_error) {  // registered, glibc waits
            unlock_error = unlock_any(m);
            released = unlock_error == 0;
        }
        // Cancelled, or the unlock failed: glibc's wait must end.
        if (w == 0 && (cancelling || unlock_error) && !broadcast) {
            next_cond_broadcast(c);
            broadcast = true;
        }
        shared_futex_wait(word, w, Deadline::never());
        if (self && cancel_interrupted()) cancelling = true;
    }
    // The pool thread's last touches of the job follow the word.
    while (!job.done.load(std::memory_order_acquire)) relinquish();
    if (unlock_error) return unlock_error;
    if (released) {
        const int lr = lock_any(m, Deadline::never());
        if (lr == EOWNERDEAD || lr == ENOTRECOVERABLE) return lr;
    }
    return job.result;
}

// A native thread's wait (the main thread, a fork child's) is the other
// way round: glibc's wait runs on the calling thread itself, so that
// pthread_cancel acts in it as natively (glibc's own cancellation point),
// and a pool thread waits for the proxy's unlock and releases the program's
// mutex on the waiter's behalf (may_unlock() was checked by the waiter,
// which took a robust one off its own list, if it keeps one: a fork
// child's thread does, as the fiber it was). After glibc's wait, or in a
// cleanup handler when it is cancelled, the waiter sets the proxy word to
// kProxyReturned, which ends the pool thread's wait if it still waits,
// and relocks the program's mutex if the pool thread released it.
struct NativeRelay : PoolJob {
    pthread_mutex_t proxy;
    pthread_mutex_t* mutex;
    bool released = false;
    std::atomic<uint32_t>* word() { return reinterpret_cast<std::atomic<uint32_t>*>(&proxy.__data.__lock); }
};

void release_when_registered(PoolJob* j) {
    auto* r = static_cast<NativeRelay*>(j);
    uint32_t w;
    while ((w = r->word()->load(std::memory_order_acquire)) == kProxyLocked)
        shared_futex_wait(r->word(), kProxyLocked, Deadline::never());
    if (w == 0) {
        release(r->mutex);
        r->released = true;
    }
}

int finish_native_relay(NativeRelay* r) {
    r->word()->store(kProxyReturned, std::memory_order_release);
    shared_futex_wake(r->word(), INT_MAX);
    while (!r->done.load(std::memory_order_acquire)) relinquish();
    if (r->released) return lock(r->mutex, Deadline::never(), false);
    if (r->mutex->__data.__kind & kRobust) robust::link(r->mutex);
    return 0;
}

void finish_native_relay_on_cancel(void* r) { finish_native_relay(static_cast<NativeRelay*>(r)); }

template <typename Wait>
int native_wait_relocking_on_cancel(NativeRelay* r, Wait& wait) {
    int rc;
    pthread_cleanup_push(finish_native_relay_on_cancel, r);
    rc = wait(&r->proxy);
    pthread_cleanup_pop(0);
    return rc;
}

template <typename Wait>
int native_relayed_cond_wait(pthread_mutex_t* m, Wait& wait) {
    if (!may_unlock(m, view(m))) return EPERM;
    NativeRelay r;
    memset(&r.proxy, 0, sizeof r.proxy);
    r.proxy.__data.__kind = kPshared;
    r.proxy.__data.__lock = kProxyLocked;
    r.mutex = m;
    r.run = release_when_registered;
    const bool robust = m->__data.__kind & kRobust;
    if (robust) robust::unlink(m);
    if (!BlockingPool::get().start(&r)) {
        if (robust) robust::link(m);
        return -1;
    }
    const int rc = native_wait_relocking_on_cancel(&r, wait);
    const int lr = finish_native_relay(&r);
    if (lr == EOWNERDEAD || lr == ENOTRECOVERABLE) return lr;
    return rc;
}

// The wait of a process-shared condition variable (glibc's), or of any
// condition variable with a mutex glibc handles. wait(mutex) is glibc's.
// Without a pool thread, glibc's wait on the program's mutex runs right
// here, blocking a fiber's hub.
template <typename Wait>
int glibc_cond_wait(pthread_cond_t* c, pthread_mutex_t* m, Wait wait) {
    if (glibc_mutex(m)) {
        // A fiber's wait parks it (its unlock and relock of the mutex go
        // through kernel_mutex.h); the rest is glibc's alone (and
        // everything when "thread" is not patched).
        if (!config::patched(config::kPatchThread) || !Hub::current_fiber()) return wait(m);
        int rc = relayed_cond_wait(c, m, wait);
        if (rc == -1) {
            rc = wait(m);
            if (Fiber* f = fiber_kernel_mutex(m)) kernel_mutex::relocked(f, m);
        }
        return rc;
    }
    const int rc = Hub::current_fiber() ? relayed_cond_wait(c, m, wait) : native_relayed_cond_wait(m, wait);
    if (rc != -1) return rc;
    // No pool thread: glibc's wait on the program's mutex itself, here
    // (blocking a fiber's hub). glibc checks an error-checking or recursive
    // mutex's __owner against the calling OS thread's id: the mutex is
    // handed over under that id, and taken back.
    MutexView v = view(m);
    const unsigned count = *v.count;
    __atomic_store_n(v.owner, native::gettid(), __ATOMIC_RELAXED);
    const int wrc = wait(m);
    set_owner(m, v);
    if (shared_mutex(v)) --m->__data.__nusers;  // set_owner counted a second lock
    *v.count = count;
    return wrc;
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
    if (glibc_cond(c))
        return glibc_cond_wait(c, m, [&](pthread_mutex_t* mx) { return next_cond_wait(c, mx); });
    return cond_wait(c, m, Deadline::never());
}

GREENLD_EXPORT int pthread_cond_clockwait(pthread_cond_t* c, pthread_mutex_t* m, clockid_t clock,
                                          const timespec* abstime) {
    CancelPoint cancel_point;
    if (glibc_cond(c))
        return glibc_cond_wait(c, m, [&](pthread_mutex_t* mx) { return next_cond_clockwait(c, mx, clock, abstime); });
    if ((clock != CLOCK_REALTIME && clock != CLOCK_MONOTONIC) || !valid_timespec(abstime)) return EINVAL;
    return cond_wait(c, m, Deadline::from_abs(clock, *abstime));
}

GREENLD_EXPORT int pthread_cond_timedwait(pthread_cond_t* c, pthread_mutex_t* m, const timespec* abstime) {
    CancelPoint cancel_point;
    if (glibc_cond(c))
        return glibc_cond_wait(c, m, [&](pthread_mutex_t* mx) { return next_cond_timedwait(c, mx, abstime); });
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
