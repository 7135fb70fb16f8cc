// pthread read-write locks on the fiber futex.
//
// The object keeps glibc 2.36's x86_64 layout (struct __pthread_rwlock_arch_t,
// 56 bytes). PTHREAD_RWLOCK_INITIALIZER and PTHREAD_RWLOCK_WRITER_NONRECURSIVE_
// INITIALIZER_NP zero every field but __flags, so zero must mean "free, nobody
// waiting" in every word we use:
//
//   offset  glibc field       ours
//    0      __readers         state: bit 31 write-locked, bits 0-30 readers holding
//    4      __writers         writers waiting (counted before they re-check)
//    8      __wrphase_futex   readers' wake sequence: the futex word readers sleep on
//   12      __writers_futex   writers' wake sequence: the futex word writers sleep on
//   16      __pad3            readers waiting (counted before they re-check)
//   24      __cur_writer      lock_owner_id() of the writer, for EDEADLK (glibc: its tid)
//   28      __shared          non-zero: process-shared; glibc's init sets 1 and the
//                             object is glibc's from then on
//   48      __flags           the kind, written by glibc's initialisers and by ours
//
// Readers and writers sleep on separate words so that a release wakes the kind
// it means to: with writer preference, a writer's unlock hands over to one
// waiting writer without waking every reader only to put them back to sleep.
//
// Waking is by the usual announce-then-recheck handshake: a waiter counts
// itself, reads the wake sequence, re-checks the state, then sleeps on the
// sequence; a releaser changes the state, then reads the counts and bumps the
// sequence if someone waits. All of it is seq_cst, so either the releaser sees
// the count or the waiter's re-check sees the release.
//
// Process-shared locks keep glibc's code and layout (another process may
// use them directly, and cannot reach our futex); a fiber that must wait
// for one waits on the blocking-call pool (shared_lock below).
#include <pthread.h>
#include <sys/syscall.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>
#include <ctime>

#include "../runtime/config.h"
#include "../runtime/futex.h"
#include "../runtime/hub.h"
#include "../runtime/native.h"
#include "../runtime/pool.h"
#include "cooperative.h"
#include "next.h"

using namespace greenld;

namespace {

next::Symbol<decltype(::pthread_rwlock_init)> next_rwlock_init{"pthread_rwlock_init"};
next::Symbol<decltype(::pthread_rwlock_destroy)> next_rwlock_destroy{"pthread_rwlock_destroy"};
next::Symbol<decltype(::pthread_rwlock_rdlock)> next_rwlock_rdlock{"pthread_rwlock_rdlock"};
next::Symbol<decltype(::pthread_rwlock_tryrdlock)> next_rwlock_tryrdlock{"pthread_rwlock_tryrdlock"};
next::Symbol<decltype(::pthread_rwlock_timedrdlock)> next_rwlock_timedrdlock{"pthread_rwlock_timedrdlock"};
next::Symbol<decltype(::pthread_rwlock_clockrdlock)> next_rwlock_clockrdlock{"pthread_rwlock_clockrdlock"};
next::Symbol<decltype(::pthread_rwlock_wrlock)> next_rwlock_wrlock{"pthread_rwlock_wrlock"};
next::Symbol<decltype(::pthread_rwlock_trywrlock)> next_rwlock_trywrlock{"pthread_rwlock_trywrlock"};
next::Symbol<decltype(::pthread_rwlock_timedwrlock)> next_rwlock_timedwrlock{"pthread_rwlock_timedwrlock"};
next::Symbol<decltype(::pthread_rwlock_clockwrlock)> next_rwlock_clockwrlock{"pthread_rwlock_clockwrlock"};
next::Symbol<decltype(::pthread_rwlock_unlock)> next_rwlock_unlock{"pthread_rwlock_unlock"};

constexpr uint32_t kWriteLocked = 1u << 31;
constexpr uint32_t kReaderMask = kWriteLocked - 1;

std::atomic<uint32_t>* as_atomic(unsigned* word) { return reinterpret_cast<std::atomic<uint32_t>*>(word); }

struct RwlockView {
    std::atomic<uint32_t>* state;
    std::atomic<uint32_t>* writers_waiting;
    std::atomic<uint32_t>* reader_seq;
    std::atomic<uint32_t>* writer_seq;
    std::atomic<uint32_t>* readers_waiting;
    int* cur_writer;
    // glibc honours writer preference only for the non-recursive kind:
    // PTHREAD_RWLOCK_PREFER_WRITER_NP behaves as PREFER_READER_NP, because a
    // reader that re-enters while a writer waits would deadlock.
    bool prefer_writer;
};

RwlockView view(pthread_rwlock_t* l) {
    auto& d = l->__data;
    return {as_atomic(&d.__readers),       as_atomic(&d.__writers), as_atomic(&d.__wrphase_futex),
            as_atomic(&d.__writers_futex), as_atomic(&d.__pad3),    &d.__cur_writer,
            d.__flags == PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP};
}

// glibc's: process-shared locks, and every lock when GREENLD_PATCH leaves out
// "thread".
bool glibc_owned(const pthread_rwlock_t* l) { return l->__data.__shared != 0 || !config::patched(config::kPatchThread); }

bool held_for_writing_by_caller(const RwlockView& v) {
    return __atomic_load_n(v.cur_writer, __ATOMIC_RELAXED) == lock_owner_id();
}

// 0, EBUSY (a writer holds it, or with writer preference one waits for it)
// or EAGAIN (the reader count is full, as glibc reports it).
int try_read(const RwlockView& v) {
    uint32_t s = v.state->load();
    for (;;) {
        if (s & kWriteLocked) return EBUSY;
        if (v.prefer_writer && v.writers_waiting->load() != 0) return EBUSY;
        if ((s & kReaderMask) == kReaderMask) return EAGAIN;
        if (v.state->compare_exchange_weak(s, s + 1)) return 0;
    }
}

bool try_write(const RwlockView& v) {
    uint32_t free_state = 0;
    return v.state->compare_exchange_strong(free_state, kWriteLocked);
}

void wake_readers(const RwlockView& v) {
    if (v.readers_waiting->load() == 0) return;
    v.reader_seq->fetch_add(1);
    futex_wake(v.reader_seq, INT_MAX);
}

// One writer: only one can win, and whoever wins wakes the next on unlock.
// Returns whether any writer was waiting.
bool wake_writer(const RwlockView& v) {
    if (v.writers_waiting->load() == 0) return false;
    v.writer_seq->fetch_add(1);
    futex_wake(v.writer_seq, 1);
    return true;
}

int read_lock(const RwlockView& v, Deadline deadline) {
    int rc = try_read(v);
    if (rc != EBUSY) return rc;
    // Counted once for the whole wait, not per sleep: a releaser that saw
    // the count bumps the sequence, and a sleep on the old value returns.
    v.readers_waiting->fetch_add(1);
    for (;;) {
        const uint32_t seq = v.reader_seq->load();
        rc = try_read(v);
        if (rc != EBUSY) break;
        if (futex_wait(v.reader_seq, seq, deadline) == ETIMEDOUT) {
            rc = ETIMEDOUT;
            break;
        }
    }
    v.readers_waiting->fetch_sub(1);
    return rc;
}

int write_lock(const RwlockView& v, Deadline deadline) {
    int rc = 0;
    if (!try_write(v)) {
        // Counted for the whole wait: with writer preference, new readers
        // queue behind us, and a count that dipped to zero between sleeps
        // would let them through and wake them for nothing.
        v.writers_waiting->fetch_add(1);
        for (;;) {
            const uint32_t seq = v.writer_seq->load();
            if (try_write(v)) break;
            if (futex_wait(v.writer_seq, seq, deadline) == ETIMEDOUT) {
                rc = ETIMEDOUT;
                break;
            }
        }
        // Readers held back by writer preference are let in by the last
        // writer to stop waiting. One that got the lock needs not: its
        // unlock wakes them.
        if (v.writers_waiting->fetch_sub(1) == 1 && rc != 0 && v.prefer_writer) wake_readers(v);
    }
    if (rc == 0) __atomic_store_n(v.cur_writer, lock_owner_id(), __ATOMIC_RELAXED);
    return rc;
}

int unlock(const RwlockView& v) {
    uint32_t s = v.state->load();
    if (s & kWriteLocked) {
        __atomic_store_n(v.cur_writer, 0, __ATOMIC_RELAXED);
        v.state->exchange(0);
        if (v.prefer_writer) {
            // Readers wait for the last waiting writer, who wakes them.
            if (!wake_writer(v)) wake_readers(v);
        } else {
            // Both: whichever kind loses the race sleeps again, and a reader
            // that timed out cannot strand a writer that was never woken.
            wake_readers(v);
            wake_writer(v);
        }
        return 0;
    }
    for (;;) {
        // Unlocking an unheld lock is undefined; glibc corrupts its count.
        // We refuse and keep the state intact.
        if ((s & kReaderMask) == 0) return EPERM;
        if (v.state->compare_exchange_weak(s, s - 1)) break;
    }
    if ((s & kReaderMask) == 1) wake_writer(v);
    return 0;
}

bool valid_clock(clockid_t clock) { return clock == CLOCK_REALTIME || clock == CLOCK_MONOTONIC; }
bool valid_timespec(const timespec* ts) { return ts && ts->tv_nsec >= 0 && ts->tv_nsec < 1000000000; }

// glibc 2.36 checks the clock and the timeout before anything else, so a bad
// one is EINVAL even when the lock is free (unlike its mutexes).
int timed_read_lock(pthread_rwlock_t* l, clockid_t clock, const timespec* abstime) {
    if (!valid_clock(clock) || !valid_timespec(abstime)) return EINVAL;
    RwlockView v = view(l);
    if (held_for_writing_by_caller(v)) return EDEADLK;
    return read_lock(v, Deadline::from_abs(clock, *abstime));
}

int timed_write_lock(pthread_rwlock_t* l, clockid_t clock, const timespec* abstime) {
    if (!valid_clock(clock) || !valid_timespec(abstime)) return EINVAL;
    RwlockView v = view(l);
    if (held_for_writing_by_caller(v)) return EDEADLK;
    return write_lock(v, Deadline::from_abs(clock, *abstime));
}

// ---- process-shared locks: glibc's, with the waits on the pool ----
//
// A fiber tries in place first; a lock it must wait for is taken by glibc on
// a pool thread while the fiber parks. glibc records the writer by OS thread
// id (__cur_writer, which its unlock compares with the caller's to tell a
// write unlock from a read unlock), so once a pool thread has the write
// lock the record moves to the fiber's hub thread, where the fiber will
// unlock. Which fiber of which process holds it for writing, for EDEADLK,
// is kept in __pad3/__pad4, which glibc does not use.

bool shared_for_fiber(const pthread_rwlock_t* l) {
    return l->__data.__shared != 0 && config::patched(config::kPatchThread) && Hub::current_fiber();
}

unsigned this_pid() { return unsigned(native::sys(SYS_getpid)); }

bool shared_writer_is_caller(const pthread_rwlock_t* l) {
    return __atomic_load_n(&l->__data.__pad3, __ATOMIC_RELAXED) == unsigned(lock_owner_id()) &&
           __atomic_load_n(&l->__data.__pad4, __ATOMIC_RELAXED) == this_pid();
}

void record_shared_writer(pthread_rwlock_t* l) {
    __atomic_store_n(&l->__data.__cur_writer, native::gettid(), __ATOMIC_RELAXED);
    __atomic_store_n(&l->__data.__pad4, this_pid(), __ATOMIC_RELAXED);
    __atomic_store_n(&l->__data.__pad3, unsigned(lock_owner_id()), __ATOMIC_RELAXED);
}

template <typename Try, typename Wait>
int shared_lock(pthread_rwlock_t* l, bool write, Try try_now, Wait wait) {
    if (shared_writer_is_caller(l)) return EDEADLK;
    int rc = try_now();
    if (rc == EBUSY) rc = offload(JobKind::rendezvous, wait);
    if (rc == 0 && write) record_shared_writer(l);
    return rc;
}

}  // namespace

GREENLD_EXPORT int pthread_rwlock_init(pthread_rwlock_t* l, const pthread_rwlockattr_t* attr) {
    int kind = PTHREAD_RWLOCK_DEFAULT_NP, shared = PTHREAD_PROCESS_PRIVATE;
    if (attr) {
        pthread_rwlockattr_getkind_np(attr, &kind);
        pthread_rwlockattr_getpshared(attr, &shared);
    }
    if (shared == PTHREAD_PROCESS_SHARED || !config::patched(config::kPatchThread)) return next_rwlock_init(l, attr);
    memset(l, 0, sizeof *l);
    l->__data.__flags = unsigned(kind);
    return 0;
}

GREENLD_EXPORT int pthread_rwlock_destroy(pthread_rwlock_t* l) {
    if (glibc_owned(l)) return next_rwlock_destroy(l);
    return 0;
}

GREENLD_EXPORT int pthread_rwlock_rdlock(pthread_rwlock_t* l) {
    if (shared_for_fiber(l))
        return shared_lock(l, false, [&] { return next_rwlock_tryrdlock(l); }, [&] { return next_rwlock_rdlock(l); });
    if (glibc_owned(l)) return next_rwlock_rdlock(l);
    RwlockView v = view(l);
    if (held_for_writing_by_caller(v)) return EDEADLK;
    return read_lock(v, Deadline::never());
}

GREENLD_EXPORT int pthread_rwlock_tryrdlock(pthread_rwlock_t* l) {
    if (glibc_owned(l)) return next_rwlock_tryrdlock(l);
    return try_read(view(l));
}

GREENLD_EXPORT int pthread_rwlock_clockrdlock(pthread_rwlock_t* l, clockid_t clock, const timespec* abstime) {
    if (shared_for_fiber(l))
        return shared_lock(l, false, [&] { return next_rwlock_tryrdlock(l); },
                           [&] { return next_rwlock_clockrdlock(l, clock, abstime); });
    if (glibc_owned(l)) return next_rwlock_clockrdlock(l, clock, abstime);
    return timed_read_lock(l, clock, abstime);
}

GREENLD_EXPORT int pthread_rwlock_timedrdlock(pthread_rwlock_t* l, const timespec* abstime) {
    if (shared_for_fiber(l))
        return shared_lock(l, false, [&] { return next_rwlock_tryrdlock(l); },
                           [&] { return next_rwlock_timedrdlock(l, abstime); });
    if (glibc_owned(l)) return next_rwlock_timedrdlock(l, abstime);
    return timed_read_lock(l, CLOCK_REALTIME, abstime);
}

GREENLD_EXPORT int pthread_rwlock_wrlock(pthread_rwlock_t* l) {
    if (shared_for_fiber(l))
        return shared_lock(l, true, [&] { return next_rwlock_trywrlock(l); }, [&] { return next_rwlock_wrlock(l); });
    if (glibc_owned(l)) return next_rwlock_wrlock(l);
    RwlockView v = view(l);
    if (held_for_writing_by_caller(v)) return EDEADLK;
    return write_lock(v, Deadline::never());
}

GREENLD_EXPORT int pthread_rwlock_trywrlock(pthread_rwlock_t* l) {
    if (shared_for_fiber(l)) {
        const int rc = next_rwlock_trywrlock(l);
        if (rc == 0) record_shared_writer(l);
        return rc;
    }
    if (glibc_owned(l)) return next_rwlock_trywrlock(l);
    RwlockView v = view(l);
    if (!try_write(v)) return EBUSY;
    __atomic_store_n(v.cur_writer, lock_owner_id(), __ATOMIC_RELAXED);
    return 0;
}

GREENLD_EXPORT int pthread_rwlock_clockwrlock(pthread_rwlock_t* l, clockid_t clock, const timespec* abstime) {
    if (shared_for_fiber(l))
        return shared_lock(l, true, [&] { return next_rwlock_trywrlock(l); },
                           [&] { return next_rwlock_clockwrlock(l, clock, abstime); });
    if (glibc_owned(l)) return next_rwlock_clockwrlock(l, clock, abstime);
    return timed_write_lock(l, clock, abstime);
}

GREENLD_EXPORT int pthread_rwlock_timedwrlock(pthread_rwlock_t* l, const timespec* abstime) {
    if (shared_for_fiber(l))
        return shared_lock(l, true, [&] { return next_rwlock_trywrlock(l); },
                           [&] { return next_rwlock_timedwrlock(l, abstime); });
    if (glibc_owned(l)) return next_rwlock_timedwrlock(l, abstime);
    return timed_write_lock(l, CLOCK_REALTIME, abstime);
}

GREENLD_EXPORT int pthread_rwlock_unlock(pthread_rwlock_t* l) {
    if (shared_for_fiber(l) && shared_writer_is_caller(l)) {
        __atomic_store_n(&l->__data.__pad3, 0u, __ATOMIC_RELAXED);
        __atomic_store_n(&l->__data.__pad4, 0u, __ATOMIC_RELAXED);
    }
    if (glibc_owned(l)) return next_rwlock_unlock(l);
    return unlock(view(l));
}
