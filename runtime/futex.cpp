#include "futex.h"

#include <cerrno>
#include <climits>

#include "fiber_tls.h"
#include "hub.h"
#include "native.h"
#include "signals.h"

namespace greenld {

namespace {

struct FutexWaiter {
    const void* addr;
    Fiber* fiber;                       // null: a native thread
    uint32_t bitset;
    std::atomic<uint32_t> native_word{0};
    FutexWaiter* prev = nullptr;
    FutexWaiter* next = nullptr;
    bool queued = false;
};

struct Bucket {
    native::Mutex lock;
    FutexWaiter* head = nullptr;
    FutexWaiter* tail = nullptr;
} __attribute__((aligned(64)));

constexpr size_t kBuckets = 1024;
Bucket g_buckets[kBuckets];

Bucket& bucket_for(const void* addr) {
    auto a = reinterpret_cast<uintptr_t>(addr);
    a ^= a >> 17;
    a *= 0x9e3779b97f4a7c15ull;
    return g_buckets[(a >> 32) % kBuckets];
}

void enqueue(Bucket& b, FutexWaiter* w) {
    w->prev = b.tail;
    w->next = nullptr;
    if (b.tail)
        b.tail->next = w;
    else
        b.head = w;
    b.tail = w;
    w->queued = true;
}

void dequeue(Bucket& b, FutexWaiter* w) {
    if (w->prev)
        w->prev->next = w->next;
    else
        b.head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        b.tail = w->prev;
    w->prev = w->next = nullptr;
    w->queued = false;
}

// After a timeout or an interruption: still queued means nobody woke us,
// and we leave with `error`. Not queued means a waker took us first: that
// is a wake, and the wake it counted is not lost.
int resolve_unwoken(Bucket& b, FutexWaiter* w, int error) {
    native::LockGuard g(b.lock);
    if (w->queued) {
        dequeue(b, w);
        return error;
    }
    return 0;
}

std::atomic<int> g_native_waiters_forever{0};

}  // namespace

int futex_wait(std::atomic<uint32_t>* addr, uint32_t expected, Deadline deadline, uint32_t bitset) {
    Bucket& b = bucket_for(addr);
    Fiber* self = Hub::current_fiber();
    FutexWaiter w{addr, self, bitset};
    {
        native::LockGuard g(b.lock);
        // Checked under the bucket lock: a waker changes *addr before it
        // takes this lock, so it cannot slip between this check and enqueue.
        if (addr->load(std::memory_order_acquire) != expected) return EAGAIN;
        if (deadline.passed()) return ETIMEDOUT;
        if (self) {
            self->hub->prepare_park();
            self->note_wait(WaitKind::futex, -1, 0, addr);
        }
        enqueue(b, &w);
    }
    if (fiber_tls::active() && self && fiber_tls::copied(addr)) [[unlikely]]
        fiber_tls::note_futex_in_copied_tls(self->id, addr);
    if (self) {
        int rc;
        switch (self->hub->park_prepared(deadline)) {
            case WakeReason::timeout: rc = resolve_unwoken(b, &w, ETIMEDOUT); break;
            case WakeReason::woken: rc = 0; break;  // the waker dequeued us under the lock before unparking
            default: rc = resolve_unwoken(b, &w, EINTR); break;
        }
        // The safe point, once out of the bucket: signal handlers run here.
        signals::deliver_pending(self);
        return rc;
    }
    // A native thread waiting with no deadline counts for the deadlock
    // detector (monitor.cpp): it is as stuck as a parked fiber.
    struct NativeWaitCount {
        bool counted;
        explicit NativeWaitCount(bool forever) : counted(forever) {
            if (counted) g_native_waiters_forever.fetch_add(1, std::memory_order_relaxed);
        }
        ~NativeWaitCount() {
            if (counted) g_native_waiters_forever.fetch_sub(1, std::memory_order_relaxed);
        }
    } count(deadline.is_never());
    for (;;) {
        if (w.native_word.load(std::memory_order_acquire)) return 0;
        int64_t remaining = deadline.remaining_ns();
        if (remaining == 0) return resolve_unwoken(b, &w, ETIMEDOUT);
        native::futex_wait(&w.native_word, 0, remaining);
    }
}

int futex_native_waiters_forever() { return g_native_waiters_forever.load(std::memory_order_relaxed); }

int futex_wake(const void* addr, int count, uint32_t bitset) {
    Bucket& b = bucket_for(addr);
    std::atomic<uint32_t>* native_words[16];
    int n_native = 0, woken = 0;
    {
        native::LockGuard g(b.lock);
        FutexWaiter* w = b.head;
        while (w && woken < count) {
            FutexWaiter* next = w->next;
            if (w->addr == addr && (w->bitset & bitset)) {
                dequeue(b, w);
                ++woken;
                if (w->fiber) {
                    // Under the lock: once we release it the waiter may
                    // resume (after a timeout) and park again elsewhere.
                    Hub::unpark(w->fiber, WakeReason::woken);
                } else {
                    w->native_word.store(1, std::memory_order_release);
                    if (n_native < 16)
                        native_words[n_native++] = &w->native_word;
                    else
                        native::futex_wake(&w->native_word, 1);
                }
            }
            w = next;
        }
    }
    // Kernel wakes after the lock: a waiter that already saw its word set may
    // have returned, and a wake on its stale address is harmless.
    for (int i = 0; i < n_native; ++i) native::futex_wake(native_words[i], 1);
    return woken;
}

void futex_lock_for_fork() {
    for (Bucket& b : g_buckets) b.lock.lock();
}

void futex_unlock_after_fork(bool child) {
    for (Bucket& b : g_buckets) {
        // Waiters of the child's vanished threads would never be woken.
        if (child) b.head = b.tail = nullptr;
        b.lock.unlock();
    }
}

int futex_waiters(const void* addr) {
    Bucket& b = bucket_for(addr);
    native::LockGuard g(b.lock);
    int n = 0;
    for (FutexWaiter* w = b.head; w; w = w->next) n += (w->addr == addr);
    return n;
}

}  // namespace greenld
