#include "kernel_mutex.h"

#include <linux/futex.h>
#include <sys/syscall.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstdint>

#include "../runtime/fiber.h"
#include "../runtime/hub.h"
#include "../runtime/native.h"
#include "../runtime/pool.h"
#include "../runtime/shared_futex.h"
#include "next.h"
#include "robust_mutex.h"

#ifndef FUTEX_LOCK_PI2
#define FUTEX_LOCK_PI2 13
#endif

namespace greenld::kernel_mutex {

namespace {

next::Symbol<decltype(::pthread_mutex_trylock)> next_trylock{"pthread_mutex_trylock"};
next::Symbol<decltype(::pthread_mutex_unlock)> next_unlock{"pthread_mutex_unlock"};
next::Symbol<decltype(::pthread_create)> next_create{"pthread_create"};
next::Symbol<decltype(::pthread_join)> next_join{"pthread_join"};

// glibc's __kind bits.
constexpr int kTypeMask = 3, kRobust = 16, kPrioInherit = 32, kPrioProtect = 64, kPshared = 128;
static_assert(kernel_protocol(kPrioInherit) && kernel_protocol(kPrioProtect) && kernel_protocol(kRobust | kPshared) &&
              !kernel_protocol(kRobust) && !kernel_protocol(kPshared | kTypeMask));
// glibc's __owner of a robust mutex taken from a dead owner and not yet
// made consistent. glibc's unlock never leaves it there (it makes such a
// mutex unrecoverable), so a PI mutex handed over with it carries the
// owner-died mark from a fiber that ended (leave_owner_died).
constexpr int kOwnerInconsistent = INT_MAX;
// A priority-protection word: the ceiling above, 0 free / 1 locked / 2
// locked with waiters below.
constexpr uint32_t kCeilingMask = 0xfff80000u;

std::atomic<uint32_t>* word_of(pthread_mutex_t* m) {
    return reinterpret_cast<std::atomic<uint32_t>*>(&m->__data.__lock);
}
int kind_of(const pthread_mutex_t* m) { return __atomic_load_n(&m->__data.__kind, __ATOMIC_RELAXED); }

static_assert(offsetof(__pthread_mutex_s, __elision) == offsetof(__pthread_mutex_s, __spins) + 2 &&
                  offsetof(__pthread_mutex_s, __spins) % 4 == 0,
              "the owning fiber's id spans __spins and __elision");
int* owner_slot(pthread_mutex_t* m) { return reinterpret_cast<int*>(&m->__data.__spins); }
int fiber_owner(pthread_mutex_t* m) { return __atomic_load_n(owner_slot(m), __ATOMIC_RELAXED); }
void set_fiber_owner(pthread_mutex_t* m, int id) { __atomic_store_n(owner_slot(m), id, __ATOMIC_RELAXED); }

// glibc makes every futex call on a robust mutex process-wide (the
// kernel's wake for a dead owner is), on the others as pshared says.
bool private_futex(int kind) { return !(kind & (kRobust | kPshared)); }

// glibc's own test of "the calling thread holds it": true for every fiber
// of the hub, which is what the owner slot then tells apart.
bool held_by_thread(pthread_mutex_t* m, int kind, int tid) {
    const uint32_t w = word_of(m)->load(std::memory_order_relaxed);
    if (kind & kPrioProtect)
        return (w & ~kCeilingMask) != 0 && __atomic_load_n(&m->__data.__owner, __ATOMIC_RELAXED) == tid;
    return (w & FUTEX_TID_MASK) == uint32_t(tid);
}

// --- waiting for a priority-inheritance mutex ---------------------------
//
// FUTEX_UNLOCK_PI hands the lock to the first kernel waiter in
// FUTEX_LOCK_PI and wakes no one else; a plain futex wait on the word is
// not woken, and worse, makes that unlock fail (EINVAL, which glibc
// treats as fatal). So a native thread takes the lock through the kernel
// on the fiber's behalf and gives it straight back, and the fiber tries
// again: the release is heard at once; only the kernel's hand-over order
// is lost (the fiber competes again with whoever came meanwhile).
// A robust one that reaches that thread from a dead owner carries the
// owner-died mark, which the kernel passes on only from a thread that ends
// holding the lock (FUTEX_UNLOCK_PI clears it): the thread for a robust
// mutex is therefore a fresh one, which ends holding it in that case, and
// the kernel marks it for the next locker as for any dead owner.
struct PiProbe {
    pthread_mutex_t* m;
    std::atomic<uint32_t>* word;
    bool process_private;
    bool robust;
    Deadline deadline;
    int result = 0;
};

long lock_pi(PiProbe* p) {
    const long flag = p->process_private ? FUTEX_PRIVATE_FLAG : 0;
    timespec ts, *tp = nullptr;
    if (!p->deadline.is_never()) {
        ts.tv_sec = time_t(p->deadline.mono_ns / 1000000000);
        ts.tv_nsec = long(p->deadline.mono_ns % 1000000000);
        tp = &ts;
    }
    const auto word = reinterpret_cast<long>(p->word);
    long r = native::sys(SYS_futex, word, FUTEX_LOCK_PI2 | flag, 0, reinterpret_cast<long>(tp));
    if (r != -ENOSYS) return r;
    // Before Linux 5.14: FUTEX_LOCK_PI's timeout is on CLOCK_REALTIME.
    if (tp) {
        const int64_t at = int64_t(native::realtime_ns()) + p->deadline.remaining_ns();
        ts.tv_sec = time_t(at / 1000000000);
        ts.tv_nsec = long(at % 1000000000);
    }
    return native::sys(SYS_futex, word, FUTEX_LOCK_PI | flag, 0, reinterpret_cast<long>(tp));
}

// A millisecond's pause on a native thread, for the rare retries below.
void nap() {
    timespec ts{0, 1000000};
    native::sys(SYS_nanosleep, reinterpret_cast<long>(&ts), 0);
}

struct RobustHead {  // the kernel's struct robust_list_head
    void* list;
    long futex_offset;
    void* list_op_pending;
};

RobustHead* robust_head() {
    RobustHead* head = nullptr;
    size_t len = 0;
    if (native::sys(SYS_get_robust_list, 0, reinterpret_cast<long>(&head), reinterpret_cast<long>(&len)) != 0)
        return nullptr;
    return head;
}

// On a native thread: 0 once the holder released it (or died), ETIMEDOUT,
// ESRCH when its owner is gone without a robust list (no one will ever
// release it). Sets `end_holding` when the thread must end holding it.
int pi_probe(PiProbe* p, bool* end_holding) {
    for (;;) {
        uint32_t cur = p->word->load(std::memory_order_relaxed);
        if ((cur & FUTEX_TID_MASK) == 0) {
            // Free, or a dead owner's: the fiber's trylock takes it (but the
            // kernel may not have finished with a dead owner: not at once).
            if (cur != 0) nap();
            return 0;
        }
        const long r = lock_pi(p);
        if (r == -ETIMEDOUT) return ETIMEDOUT;
        if (r == -ESRCH) return ESRCH;
        if (r == -EINTR || r == -EAGAIN) continue;
        if (r != 0) {  // an inconsistent word: the fiber's trylock tells what is wrong
            nap();
            return 0;
        }
        cur = p->word->load(std::memory_order_relaxed);
        const bool owner_died = (cur & FUTEX_OWNER_DIED) ||
                                (p->robust && __atomic_load_n(&p->m->__data.__owner, __ATOMIC_RELAXED) == kOwnerInconsistent);
        if (owner_died) {
            if (p->robust && end_holding) {
                *end_holding = true;
                return 0;
            }
            // No thread to end here: keep the mark if no one waits.
            if (!(cur & FUTEX_WAITERS) &&
                p->word->compare_exchange_strong(cur, FUTEX_OWNER_DIED, std::memory_order_release))
                return 0;
        } else if (!(cur & FUTEX_WAITERS) && p->word->compare_exchange_strong(cur, 0, std::memory_order_release)) {
            return 0;
        }
        native::sys(SYS_futex, reinterpret_cast<long>(p->word),
                    FUTEX_UNLOCK_PI | (p->process_private ? FUTEX_PRIVATE_FLAG : 0));
        return 0;
    }
}

void* robust_probe_main(void* arg) {
    auto* p = static_cast<PiProbe*>(arg);
    bool end_holding = false;
    p->result = pi_probe(p, &end_holding);
    if (end_holding) {
        // This thread ends holding it: the kernel's robust-list walk at its
        // exit finds it as the operation in progress (bit 0: PI).
        if (RobustHead* head = robust_head()) {
            auto entry = reinterpret_cast<uintptr_t>(p->word) - uintptr_t(head->futex_offset);
            head->list_op_pending = reinterpret_cast<void*>(entry | 1);
        }
    }
    return nullptr;
}

int pi_wait(pthread_mutex_t* m, int kind, Deadline deadline) {
    PiProbe probe{m, word_of(m), private_futex(kind), (kind & kRobust) != 0, deadline};
    const int rc = offload(JobKind::rendezvous, [&probe]() -> int {
        if (!probe.robust) return pi_probe(&probe, nullptr);
        pthread_t t;
        if (next_create(&t, nullptr, robust_probe_main, &probe) != 0) {
            nap();  // no thread to spare: try again shortly
            return 0;
        }
        next_join(t, nullptr);  // after the kernel's robust-list walk of its exit
        return probe.result;
    });
    if (rc != ESRCH) return rc;
    // Its owner ended without a robust list: glibc waits forever, or until
    // the deadline.
    Hub* hub = Hub::current();
    while (!deadline.passed()) hub->park(deadline);
    return ETIMEDOUT;
}

// Parks the fiber until the holder may have released it: 0 (try again) or
// ETIMEDOUT.
int wait_release(pthread_mutex_t* m, int kind, Deadline deadline) {
    if (kind & kPrioInherit) return pi_wait(m, kind, deadline);
    auto* w = word_of(m);
    uint32_t cur = w->load(std::memory_order_relaxed);
    uint32_t sleeping;
    if (kind & kPrioProtect) {
        if ((cur & ~kCeilingMask) == 0) return 0;
        sleeping = (cur & kCeilingMask) | 2;  // glibc's unlocker wakes one when it swaps a 2 out
    } else {
        if (cur == 0 || (cur & FUTEX_OWNER_DIED)) return 0;
        sleeping = cur | FUTEX_WAITERS;  // the robust unlocker wakes one when it sees this bit
    }
    if (cur != sleeping && !w->compare_exchange_strong(cur, sleeping, std::memory_order_relaxed)) return 0;
    return shared_futex_wait(w, sleeping, deadline, private_futex(kind)) == ETIMEDOUT ? ETIMEDOUT : 0;
}

// A lock taken by a fiber that had waited: other waiters may still sleep
// on the word, so its release must wake one (glibc's lock after a wait
// takes it with the waiters' mark for the same reason; trylock does not).
void keep_waiters_mark(pthread_mutex_t* m, int kind) {
    auto* w = word_of(m);
    if (kind & kPrioInherit) return;  // the kernel keeps its own mark
    if (kind & kPrioProtect) {
        uint32_t cur = w->load(std::memory_order_relaxed);
        while ((cur & ~kCeilingMask) == 1 &&
               !w->compare_exchange_weak(cur, (cur & kCeilingMask) | 2, std::memory_order_relaxed)) {
        }
        return;
    }
    w->fetch_or(FUTEX_WAITERS, std::memory_order_relaxed);
}

// glibc's DEQUEUE_MUTEX on the calling thread's robust list: each entry
// is the address of a mutex's __list.__next (bit 0 set for PI mutexes),
// its __prev and __next point at the neighbours' entries, and the thread's
// head reads as one more node.
__pthread_list_t* node_of(void* entry) {
    return reinterpret_cast<__pthread_list_t*>((reinterpret_cast<uintptr_t>(entry) & ~uintptr_t(1)) -
                                               offsetof(__pthread_list_t, __next));
}

void dequeue(pthread_mutex_t* m) {
    __pthread_list_t* next = m->__data.__list.__next;
    __pthread_list_t* prev = m->__data.__list.__prev;
    node_of(next)->__prev = prev;
    node_of(prev)->__next = next;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);  // off the list before the kernel may read our __next
    m->__data.__list.__prev = nullptr;
    m->__data.__list.__next = nullptr;
}

// What the kernel does for each robust mutex of a thread that ends
// holding it.
void leave_owner_died(pthread_mutex_t* m, RobustHead* head, void* entry) {
    const int kind = kind_of(m);
    head->list_op_pending = entry;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    dequeue(m);
    set_fiber_owner(m, 0);
    auto* w = word_of(m);
    uint32_t cur = w->load(std::memory_order_relaxed);
    if (kind & kPrioInherit) {
        while (!(cur & FUTEX_WAITERS)) {
            if (w->compare_exchange_weak(cur, FUTEX_OWNER_DIED, std::memory_order_release)) goto done;
        }
        // Threads wait in the kernel: FUTEX_UNLOCK_PI hands it to the first
        // but clears the owner-died mark (the kernel passes that only from a
        // thread that ends). The mark goes in __owner instead: a fiber's
        // waiting thread that receives it ends holding it (pi_probe), and
        // the kernel marks it for the next locker. A thread outside greenld
        // that receives it is not told (glibc does not look there).
        __atomic_store_n(&m->__data.__owner, kOwnerInconsistent, __ATOMIC_RELAXED);
        native::sys(SYS_futex, reinterpret_cast<long>(w), FUTEX_UNLOCK_PI);
    } else {
        while (!w->compare_exchange_weak(cur, (cur & FUTEX_WAITERS) | FUTEX_OWNER_DIED, std::memory_order_release)) {
        }
        if (cur & FUTEX_WAITERS) shared_futex_wake(w, 1);
    }
done:
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    head->list_op_pending = nullptr;
}

void acquired(pthread_mutex_t* m, int kind, Fiber* self, bool waited) {
    set_fiber_owner(m, int(self->id));
    if (waited) keep_waiters_mark(m, kind);
    if (kind & kRobust) {
        ++self->kernel_robust_held;
        robust::install();
    }
}

}  // namespace

int lock(Fiber* self, pthread_mutex_t* m, Deadline deadline, bool try_only) {
    const int me = int(self->id);
    const int tid = self->hub->tid();
    const int kind = kind_of(m);
    bool waited = false;
    for (;;) {
        const bool this_thread = held_by_thread(m, kind, tid);
        if (this_thread && fiber_owner(m) != me) {
            // Another fiber of this hub holds it; glibc would take this
            // for a relock by the owner.
            if (try_only) return EBUSY;
        } else {
            // Free, held elsewhere, or relocked by its owner (then glibc's
            // answer is the one: a recursion, EDEADLK, or busy).
            const int rc = next_trylock(m);
            if (rc == 0 || rc == EOWNERDEAD) {
                if (!this_thread) acquired(m, kind, self, waited);
                return rc;
            }
            if (rc == ENOTRECOVERABLE && !this_thread && !(kind & kPrioInherit) && held_by_thread(m, kind, tid)) {
                // glibc's trylock leaves an unrecoverable robust mutex taken
                // (it tests the value it swapped out for its own id); its
                // lock releases it, as here.
                if (word_of(m)->exchange(0, std::memory_order_release) > 1) shared_futex_wake(word_of(m), 1);
            }
            if (rc != EBUSY || try_only) return rc;
            if (this_thread) {
                // A normal mutex locked again by its owner deadlocks, as
                // glibc's does, until the deadline if any.
                while (!deadline.passed()) self->hub->park(deadline);
                return ETIMEDOUT;
            }
        }
        if (wait_release(m, kind, deadline) == ETIMEDOUT) return ETIMEDOUT;
        waited = true;
    }
}

int unlock(Fiber* self, pthread_mutex_t* m) {
    const int me = int(self->id);
    const int tid = self->hub->tid();
    const int kind = kind_of(m), type = kind & kTypeMask;
    const bool this_thread = held_by_thread(m, kind, tid);
    const bool checks_owner = (kind & kRobust) || type == PTHREAD_MUTEX_RECURSIVE || type == PTHREAD_MUTEX_ERRORCHECK;
    // Another fiber of this hub holds it: the EPERM glibc gives another
    // thread. (A normal mutex checks nothing: glibc releases it.)
    if (this_thread && fiber_owner(m) != me && checks_owner) return EPERM;
    const bool releases = this_thread && !(type == PTHREAD_MUTEX_RECURSIVE && m->__data.__count > 1);
    const int owner = fiber_owner(m);
    if (releases) set_fiber_owner(m, 0);  // before the word: then another may take and destroy it
    const int rc = next_unlock(m);
    if (rc != 0) {
        if (releases && held_by_thread(m, kind, tid)) set_fiber_owner(m, owner);
        return rc;
    }
    if (releases && (kind & kRobust) && owner == me && self->kernel_robust_held) --self->kernel_robust_held;
    return 0;
}

void relocked(Fiber* self, pthread_mutex_t* m) {
    if (held_by_thread(m, kind_of(m), self->hub->tid())) set_fiber_owner(m, int(self->id));
}

void release_held(Fiber* f) {
    if (!f->kernel_robust_held) return;
    f->kernel_robust_held = 0;
    RobustHead* head = robust_head();
    Hub* hub = Hub::current();
    if (!head || !hub) return;
    const int tid = hub->tid();
    const auto end = reinterpret_cast<uintptr_t>(&head->list);
    void* entry = head->list;
    while ((reinterpret_cast<uintptr_t>(entry) & ~uintptr_t(1)) != end) {
        __pthread_list_t* node = node_of(entry);
        void* next = node->__next;
        auto* m = reinterpret_cast<pthread_mutex_t*>(reinterpret_cast<char*>(node) -
                                                     offsetof(pthread_mutex_t, __data.__list));
        if (fiber_owner(m) == int(f->id) && held_by_thread(m, kind_of(m), tid)) leave_owner_died(m, head, entry);
        entry = next;
    }
}

}  // namespace greenld::kernel_mutex
