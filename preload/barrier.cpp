// pthread barriers on the fiber futex.
//
// The object keeps glibc 2.36's layout (struct pthread_barrier in the 32-byte
// pthread_barrier_t); there is no static initialiser, so only
// pthread_barrier_init writes it:
//
//   offset  glibc field     ours
//    0      in              arrivals in the current round
//    4      current_round   round number, and the futex word waiters sleep on
//    8      count           threads per round
//   12      shared          0 for a process-private barrier; FUTEX_PRIVATE_FLAG
//                           (128) for a process-shared one, which is glibc's
//   16      out             threads still inside pthread_barrier_wait, plus a
//                           bit set by pthread_barrier_destroy while it waits
//                           for them to leave
//
// A round ends when its last thread arrives: that thread resets the arrivals
// before it bumps the round, and the others leave only once they see the
// bump, so no thread of the next round can arrive early. A waiter compares
// the round with the one it read on entry; the round cannot move twice
// without it, since the next round needs its arrival too.
//
// The last arrival returns at once, usually before the others have woken and
// re-read the round; a program commonly destroys (and frees) the barrier
// right then. Destroy therefore waits until every thread has left, as
// glibc's does.
#include <pthread.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdint>

#include "../runtime/config.h"
#include "../runtime/futex.h"
#include "../runtime/hub.h"
#include "../runtime/pool.h"
#include "next.h"

using namespace greenld;

namespace {

next::Symbol<decltype(::pthread_barrier_init)> next_barrier_init{"pthread_barrier_init"};
next::Symbol<decltype(::pthread_barrier_destroy)> next_barrier_destroy{"pthread_barrier_destroy"};
next::Symbol<decltype(::pthread_barrier_wait)> next_barrier_wait{"pthread_barrier_wait"};

constexpr int kGlibcSharedFlag = 128;  // FUTEX_PRIVATE_FLAG, glibc's FUTEX_SHARED
// glibc refuses counts from BARRIER_IN_THRESHOLD up; so do we, to agree.
constexpr unsigned kMaxCount = UINT_MAX / 2 - 1;
constexpr uint32_t kDestroying = 1u << 31;

struct BarrierWords {
    std::atomic<uint32_t> arrived;
    std::atomic<uint32_t> round;
    uint32_t count;
    int futex_flag;
    std::atomic<uint32_t> inside;
};
static_assert(sizeof(BarrierWords) <= sizeof(pthread_barrier_t));

BarrierWords* words(pthread_barrier_t* b) { return reinterpret_cast<BarrierWords*>(b); }

bool glibc_owned(pthread_barrier_t* b) { return words(b)->futex_flag == kGlibcSharedFlag || !config::patched(config::kPatchThread); }

int wait(BarrierWords* b) {
    b->inside.fetch_add(1);
    const uint32_t round = b->round.load();
    int rc = 0;
    if (b->arrived.fetch_add(1) + 1 == b->count) {
        b->arrived.store(0);
        b->round.fetch_add(1);
        futex_wake(&b->round, INT_MAX);
        rc = PTHREAD_BARRIER_SERIAL_THREAD;
    } else {
        while (b->round.load() == round) futex_wait(&b->round, round);
    }
    // The last access to the object: a destroyer may free it as soon as the
    // count drops, and futex_wake only hashes the address.
    if (b->inside.fetch_sub(1) == (kDestroying | 1)) futex_wake(&b->inside, INT_MAX);
    return rc;
}

}  // namespace

GREENLD_EXPORT int pthread_barrier_init(pthread_barrier_t* b, const pthread_barrierattr_t* attr, unsigned count) {
    int shared = PTHREAD_PROCESS_PRIVATE;
    if (attr) pthread_barrierattr_getpshared(attr, &shared);
    if (shared == PTHREAD_PROCESS_SHARED || !config::patched(config::kPatchThread)) return next_barrier_init(b, attr, count);
    if (count == 0 || count > kMaxCount) return EINVAL;
    BarrierWords* w = words(b);
    w->arrived.store(0, std::memory_order_relaxed);
    w->round.store(0, std::memory_order_relaxed);
    w->count = count;
    w->futex_flag = 0;
    w->inside.store(0, std::memory_order_relaxed);
    return 0;
}

GREENLD_EXPORT int pthread_barrier_destroy(pthread_barrier_t* b) {
    if (glibc_owned(b)) return next_barrier_destroy(b);
    BarrierWords* w = words(b);
    uint32_t inside = w->inside.fetch_or(kDestroying) | kDestroying;
    while (inside != kDestroying) {
        futex_wait(&w->inside, inside);
        inside = w->inside.load();
    }
    return 0;
}

GREENLD_EXPORT int pthread_barrier_wait(pthread_barrier_t* b) {
    // A process-shared barrier is glibc's (other processes may use its
    // layout directly): a fiber's wait on it runs on the blocking-call pool
    // while the fiber parks.
    if (glibc_owned(b)) {
        if (Hub::current_fiber() && words(b)->futex_flag == kGlibcSharedFlag)
            return offload(JobKind::rendezvous, [&] { return next_barrier_wait(b); });
        return next_barrier_wait(b);
    }
    return wait(words(b));
}
