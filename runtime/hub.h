// The hub: one per OS thread that runs fibers. It owns a libev loop (timers,
// fd readiness, cross-thread wake-ups) and a run queue. The hub's own code
// runs on the OS thread's native stack; fibers switch to it to park.
//
// park/unpark is the one primitive everything blocking is built on:
//  - park(deadline) suspends the calling fiber until unpark() or the deadline;
//  - unpark(f) from any thread makes f runnable exactly once per park: the
//    state word goes parked -> runnable by compare-and-swap, so a timer and a
//    waker racing for the same park cannot both enqueue it.
#pragma once

#include <ev.h>
#include <pthread.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "deadline.h"
#include "fiber.h"
#include "native.h"

namespace greenld {

struct IoSlot;

// Creation parameters of a fiber.
struct FiberOptions {
    size_t stack_size = 0;          // 0: the configured default
    void* stack_addr = nullptr;     // program-supplied stack (pthread_attr_setstack)
    bool detached = false;
};

class Hub {
public:
    // The hub of this OS thread, or null on a thread that runs no fibers.
    static Hub* current() { return t_hub; }
    // The fiber running on this OS thread; null on the hub's own context
    // and on native threads. Wrappers branch on this and nothing else.
    static Fiber* current_fiber() { return t_fiber; }
    // The thread the program believes this is: the running fiber, or in a
    // fork child, the fiber that called fork() and goes on as the child's
    // native thread (pthread_self, keys and lock ownership keep answering
    // for it, as they do for the forking thread under plain pthreads).
    static Fiber* identity() { return t_fiber ? t_fiber : t_forked_fiber; }

    // --- called by a fiber of this hub ---
    WakeReason park(Deadline deadline = Deadline::never());
    // Two-step park, for waits that publish the fiber somewhere (a futex
    // bucket, an fd's waiter list) where another thread may unpark it before
    // it has switched out: prepare first, publish, then park_prepared.
    void prepare_park();
    WakeReason park_prepared(Deadline deadline);
    void yield();
    [[noreturn]] void exit_current();
    // Called on the hub for every fiber that ends, after its key
    // destructors (robust mutexes it still holds: preload/robust_mutex.cpp).
    static void set_exit_hook(void (*hook)(Fiber*));

    // --- called from any thread ---
    // Makes `f` runnable if it is parked; returns false if it was not (the
    // park already ended). `reason` is what its park() returns.
    static bool unpark(Fiber* f, WakeReason reason = WakeReason::woken, int error = 0);
    // Runs `item->run(hub, item)` on this hub's thread.
    void post(RemoteItem* item);
    // Wakes the hub's loop; async-signal-safe (signals.cpp's trampoline).
    void wake_from_signal();
    // The same, merged with other wake-ups not yet seen by the loop; also
    // async-signal-safe, but not for the trampoline of this hub's thread
    // (the merging flag's owner may be the code it interrupted).
    void wake();

    int index() const { return index_; }
    // The hub's OS thread id: what glibc and the kernel write into a lock
    // word that one of its fibers takes (preload/kernel_mutex.cpp).
    int tid() const { return tid_.load(std::memory_order_relaxed); }
    // The hub's OS thread, for calls that must reach a real thread.
    pthread_t native_handle() const { return native_handle_.load(std::memory_order_acquire); }
    struct ev_loop* loop() const { return loop_; }
    std::atomic<int64_t> fibers_alive{0};
    // Written by the hub thread only (a plain add, no locked instruction);
    // read by the monitor (monitor.h): the blocked-hub check samples
    // `switches`, the dump prints both.
    std::atomic<uint64_t> switches{0};
    std::atomic<uint64_t> parks{0};
    // True while the hub waits in its event loop with nothing to run: the
    // monitor tells an idle hub from a blocked one by it.
    std::atomic<bool> polling{false};

    // Per-fd readiness state of this hub's loop (see io.cpp).
    IoSlot* io_slot(int fd, bool create);

    // Used by io.cpp: queue a fiber woken by this hub's loop.
    void make_runnable_local(Fiber* f);

    // fork(): the child's only thread, if it was a fiber, goes on as a native
    // thread (fork.cpp).
    static void forget_current_for_child() {
        t_hub = nullptr;
        t_forked_fiber = t_fiber;
        t_fiber = nullptr;
    }
    native::Mutex& remote_lock() { return remote_lock_; }

private:
    friend class Runtime;
    explicit Hub(int index);
    static void* thread_main(void* hub);
    void run();
    void switch_to(Fiber* f);
    void switch_out(Fiber* self);
    [[noreturn, gnu::cold, gnu::noinline]] static void report_overwritten_canary(Fiber* self);
    void drain_remote();
    void idle();
    bool spin(uint64_t start_ns);
    void take_wakeup();
    void finish_dead(Fiber* f);
    static void on_wakeup_fd(struct ev_loop*, ev_io* w, int);
    static void on_timer(struct ev_loop*, ev_timer* w, int);
    static void on_deadlock_tick(struct ev_loop*, ev_timer* w, int);

    static thread_local Hub* t_hub;
    static thread_local Fiber* t_fiber;
    static thread_local Fiber* t_forked_fiber;

    int index_;
    std::atomic<pthread_t> native_handle_{0};
    std::atomic<int> tid_{0};
    struct ev_loop* loop_ = nullptr;
    Context ctx_;                    // the hub's own context
    const void* stack_lo_ = nullptr; // the hub thread's native stack (for ASan)
    size_t stack_size_ = 0;
    Fiber* runq_head_ = nullptr;
    Fiber* runq_tail_ = nullptr;
    uint64_t runq_length_ = 0;
    Fiber* dead_ = nullptr;          // fiber that just exited, freed after the switch
    // The fiber whose TLS image is in this thread's blocks (fiber_tls.h);
    // null when none (no fiber ran yet, or it ended).
    Fiber* tls_live_ = nullptr;
    [[gnu::noinline]] void swap_tls(Fiber* f);

    // Cross-thread queue: a lock and an intrusive list; an eventfd wakes the
    // loop. `wake_pending_` merges wake-ups: only the poster that flips it
    // from false writes the eventfd.
    native::Mutex remote_lock_;
    RemoteItem* remote_head_ = nullptr;
    RemoteItem* remote_tail_ = nullptr;
    std::atomic<bool> wake_pending_{false};
    int wakeup_fd_ = -1;
    ev_io wakeup_watcher_;

    // The bounded poll of an idle hub (spin()): a poster that sets
    // wake_pending_ while `spinning_` is set skips the eventfd write, the
    // spinner sees the flag. Both sides use sequentially consistent
    // operations: one of them always sees the other's write.
    std::atomic<bool> spinning_{false};
    uint64_t spin_ns_ = 0;       // GREENLD_SPIN_US; 0: never spin
    bool spin_next_ = false;     // the last idle spell was short and not a timer's
    bool timer_fired_ = false;   // a fiber's timer fired in this idle spell
    uint32_t spin_failures_ = 0; // spins in a row that timed out
    uint32_t spin_skip_ = 0;     // spins still to skip after them

    std::vector<IoSlot*> io_slots_;
    ev_timer deadlock_tick_;         // hub 0 only (monitor.h)
};

// The process-wide side: configuration, the hubs, fiber creation.
class Runtime {
public:
    static Runtime& get();

    // Creates a fiber running start(arg) on the least loaded hub. Returns 0
    // or an errno value (EAGAIN when stacks or threads run out).
    int spawn(void* (*start)(void*), void* arg, const FiberOptions& opts, Fiber** out);
    // Frees a dead fiber whose exit was observed by pthread_join.
    static void reap(Fiber* f);
    // Detaches: the fiber frees itself on exit (or now, if already dead).
    static void detach(Fiber* f);

    int hub_count() const { return hub_count_; }
    Hub* hub(int i) const { return hubs_[i]; }
    bool started() const { return started_.load(std::memory_order_acquire); }
    size_t default_stack_size() const { return default_stack_size_; }

    // Threads of the program still alive (native main + fibers); when the last
    // one leaves through pthread_exit the process exits with status 0, as
    // glibc does.
    std::atomic<int64_t> program_threads{1};
    std::atomic<uint64_t> fibers_created{0};

    static constexpr int kMaxHubs = 64;

    // fork(): see fork.cpp.
    void lock_for_fork();
    void unlock_after_fork();
    void reset_in_child();

private:
    Runtime();
    int start_hubs();
    Hub* choose_hub();

    native::Mutex start_lock_;
    std::atomic<bool> started_{false};
    int hub_count_ = 0;
    Hub* hubs_[kMaxHubs] = {};
    size_t default_stack_size_ = 0;
    std::atomic<uint32_t> next_id_{kFirstFiberId};
    std::atomic<uint32_t> round_robin_{0};
};

}  // namespace greenld
