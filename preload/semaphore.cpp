// POSIX semaphores, unnamed and named, parking only the calling fiber.
//
// The object keeps glibc 2.36's x86_64 layout (struct new_sem in the 32-byte
// sem_t), field for field:
//
//   offset  glibc field                  ours
//    0      data, low half: the value    the value, and the futex word waiters sleep on
//    4      data, high half: nwaiters    waiters (counted before they re-check)
//    8      private                      0 for a process-private semaphore;
//                                        FUTEX_PRIVATE_FLAG (128) for a shared one
//
// glibc's `private` is the flag it XORs into its futex calls, so the shared
// value is the one with the bit: sem_init(pshared=1) and every sem_open
// semaphore store 128. glibc's algorithm is kept (count yourself as a
// waiter, re-check, sleep on the value word while it is 0; post adds to the
// value, then wakes one if anyone counted), so a semaphore is shared with
// glibc code freely. Only where waiters sleep differs:
//  - a private semaphore: on the fiber futex (runtime/futex.h);
//  - a shared one: on the kernel futex, since its poster may be another
//    process's glibc (runtime/shared_futex.h: a fiber's kernel wait runs on
//    the blocking-call pool while it parks). sem_open, sem_close and
//    sem_unlink stay glibc's: they do not wait.
//
// Versions: x86_64 glibc exports sem_init, sem_wait... at GLIBC_2.2.5 and,
// since the libpthread merge, GLIBC_2.34 (sem_clockwait at 2.30 and 2.34).
// Both versions of each are aliases of one implementation, so our unversioned
// definitions satisfy programs linked against either and the default version
// found by dlsym is the right one to forward to. (The old-layout sem_*@GLIBC_2.0
// exist only on i386.)
#include <semaphore.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <ctime>

#include "../runtime/config.h"
#include "../runtime/futex.h"
#include "../runtime/shared_futex.h"
#include "../runtime/signals.h"
#include "cancel.h"
#include "next.h"

using namespace greenld;

namespace {

next::Symbol<decltype(::sem_init)> next_sem_init{"sem_init"};
next::Symbol<decltype(::sem_destroy)> next_sem_destroy{"sem_destroy"};
next::Symbol<decltype(::sem_wait)> next_sem_wait{"sem_wait"};
next::Symbol<decltype(::sem_trywait)> next_sem_trywait{"sem_trywait"};
next::Symbol<decltype(::sem_timedwait)> next_sem_timedwait{"sem_timedwait"};
next::Symbol<decltype(::sem_clockwait)> next_sem_clockwait{"sem_clockwait"};
next::Symbol<decltype(::sem_post)> next_sem_post{"sem_post"};
next::Symbol<decltype(::sem_getvalue)> next_sem_getvalue{"sem_getvalue"};

constexpr int kGlibcSharedFlag = 128;  // FUTEX_PRIVATE_FLAG, glibc's FUTEX_SHARED

struct SemaphoreWords {
    std::atomic<uint32_t> value;
    std::atomic<uint32_t> waiters;
    int futex_flag;
    int pad;
};
static_assert(sizeof(SemaphoreWords) <= sizeof(sem_t));

SemaphoreWords* words(sem_t* s) { return reinterpret_cast<SemaphoreWords*>(s); }

bool glibc_owned(sem_t*) { return !config::patched(config::kPatchThread); }

bool shared(const SemaphoreWords* w) { return w->futex_flag == kGlibcSharedFlag; }

int fail(int error) {
    errno = error;
    return -1;
}

bool try_take(SemaphoreWords* w) {
    uint32_t v = w->value.load();
    while (v > 0)
        if (w->value.compare_exchange_weak(v, v - 1)) return true;
    return false;
}

// 0, ETIMEDOUT or EINTR (a signal handler ran and signal(7) says the wait
// ends: sem_wait without SA_RESTART, sem_timedwait always). The waiter counts itself before re-checking the value, and
// sem_post adds to the value before reading the count: either the post sees
// a waiter to wake, or the re-check sees the post.
int take(SemaphoreWords* w, Deadline deadline) {
    if (try_take(w)) return 0;
    int rc = 0;
    w->waiters.fetch_add(1);
    while (!try_take(w)) {
        const int r = shared(w) ? shared_futex_wait(&w->value, 0, deadline) : futex_wait(&w->value, 0, deadline);
        if (r == ETIMEDOUT || (r == EINTR && (cancel_interrupted() || !signals::restarts(deadline)))) {
            rc = r;
            break;
        }
    }
    w->waiters.fetch_sub(1);
    return rc;
}

bool valid_timespec(const timespec* ts) { return ts && ts->tv_nsec >= 0 && ts->tv_nsec < 1000000000; }

// glibc checks the timeout before trying, so a bad one is EINVAL even when
// the semaphore has a token to give.
int timed_take(sem_t* s, clockid_t clock, const timespec* abstime) {
    if ((clock != CLOCK_REALTIME && clock != CLOCK_MONOTONIC) || !valid_timespec(abstime)) return fail(EINVAL);
    if (int rc = take(words(s), Deadline::from_abs(clock, *abstime))) return fail(rc);
    return 0;
}

}  // namespace

GREENLD_EXPORT int sem_init(sem_t* s, int pshared, unsigned value) {
    if (!config::patched(config::kPatchThread)) return next_sem_init(s, pshared, value);
    if (value > SEM_VALUE_MAX) return fail(EINVAL);
    SemaphoreWords* w = words(s);
    w->value.store(value, std::memory_order_relaxed);
    w->waiters.store(0, std::memory_order_relaxed);
    w->futex_flag = pshared ? kGlibcSharedFlag : 0;
    return 0;
}

GREENLD_EXPORT int sem_destroy(sem_t* s) {
    if (glibc_owned(s)) return next_sem_destroy(s);
    return 0;
}

GREENLD_EXPORT int sem_wait(sem_t* s) {
    CancelPoint cancel_point;
    if (glibc_owned(s)) return next_sem_wait(s);
    if (int rc = take(words(s), Deadline::never())) return fail(rc);
    return 0;
}

GREENLD_EXPORT int sem_trywait(sem_t* s) {
    if (glibc_owned(s)) return next_sem_trywait(s);
    return try_take(words(s)) ? 0 : fail(EAGAIN);
}

GREENLD_EXPORT int sem_timedwait(sem_t* s, const timespec* abstime) {
    CancelPoint cancel_point;
    if (glibc_owned(s)) return next_sem_timedwait(s, abstime);
    return timed_take(s, CLOCK_REALTIME, abstime);
}

GREENLD_EXPORT int sem_clockwait(sem_t* s, clockid_t clock, const timespec* abstime) {
    CancelPoint cancel_point;
    if (glibc_owned(s)) return next_sem_clockwait(s, clock, abstime);
    return timed_take(s, clock, abstime);
}

GREENLD_EXPORT int sem_post(sem_t* s) {
    if (glibc_owned(s)) return next_sem_post(s);
    SemaphoreWords* w = words(s);
    uint32_t v = w->value.load(std::memory_order_relaxed);
    do {
        if (v >= SEM_VALUE_MAX) return fail(EOVERFLOW);
    } while (!w->value.compare_exchange_weak(v, v + 1));
    // One waiter: the token is one, and a woken waiter that loses it to a
    // barging sem_trywait sleeps again without losing anyone's wake.
    if (w->waiters.load() != 0) {
        if (shared(w))
            shared_futex_wake(&w->value, 1);
        else
            futex_wake(&w->value, 1);
    }
    return 0;
}

GREENLD_EXPORT int sem_getvalue(sem_t* s, int* value) {
    if (glibc_owned(s)) return next_sem_getvalue(s, value);
    *value = int(words(s)->value.load(std::memory_order_relaxed));
    return 0;
}
