#include "hub.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>

#include <cxxabi.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <new>

#include "cancel.h"
#include "config.h"
#include "diag.h"
#include "fiber_ids.h"
#include "fiber_tls.h"
#include "futex.h"
#include "io.h"
#include "monitor.h"
#include "pool.h"
#include "sanitizer.h"
#include "signals.h"
#include "fork.h"

namespace greenld {

thread_local Hub* Hub::t_hub = nullptr;
thread_local Fiber* Hub::t_fiber = nullptr;
thread_local Fiber* Hub::t_forked_fiber = nullptr;

namespace {

// C++ exception state lives in the OS thread's TLS like errno: libstdc++'s
// __cxa_eh_globals, the chain of caught exceptions (`throw;`,
// std::current_exception) and the count behind std::uncaught_exceptions().
// A fiber that parks in a catch block or in a destructor run by unwinding
// must find its own when it resumes, so it travels with the fiber as errno
// does. The layout is the Itanium C++ ABI's (libsupc++ unwind-cxx.h).
struct EhGlobals {
    void* caught_exceptions;
    unsigned int uncaught_exceptions;
};
thread_local EhGlobals* t_eh_globals = nullptr;  // the hub thread's, set in run()

void run_fiber_item(Hub* hub, RemoteItem* item) {
    Fiber* f = reinterpret_cast<Fiber*>(reinterpret_cast<char*>(item) - offsetof(Fiber, remote));
    hub->make_runnable_local(f);
}

void fiber_entry(void* arg) {
    sanitizer::finish_switch(nullptr);
    auto* f = static_cast<Fiber*>(arg);
    errno = 0;  // a new thread starts with errno 0, not its hub's last value
    *t_eh_globals = EhGlobals{};  // and with no exception caught or in flight
    signals::fiber_started(f);
    f->result = f->start(f->arg);
    Hub* hub = Hub::current();
    // A fiber that forked goes on in the child as its only, native thread;
    // its return ends the process, as the last thread's would.
    if (!hub) exit(0);
    hub->exit_current();
}

// Between two polls of its loop (without blocking) a hub runs the fibers
// that were runnable when the pass began, and at least this many in a row
// if more keep coming: fibers that keep yielding cannot starve I/O and
// timers, and a fiber woken meanwhile would queue behind the pass anyway.
// Not fewer than a pass: libev's watchers are level-triggered, so a poll
// reports again every fd whose woken fiber has not read it yet, and polls
// every 64 fibers in a queue of N would cost O(N) each (10,000 busy
// connections: most of the hub's time in the kernel's sock_poll).
constexpr uint64_t kRunBudget = 64;

// At most 2^kMaxSpinBackoff - 1 idle spells in a row skip the spin after
// spins that timed out (Hub::idle).
constexpr uint32_t kMaxSpinBackoff = 8;

// Whether the machine's CPUs are all taken: the runnable tasks of the
// whole system (the fourth field of /proc/loadavg, "R/T"; the caller is
// one of them) outnumber the CPUs this process may use (as found when the
// hubs started). Then a spinning hub would only take CPU time from another
// thread, possibly the very one it waits for (two ping-pong programs side
// by side: 4 spinning hubs on 2 CPUs halve each other's rate), and hubs
// sleep at once instead.
// Read at most every kCpusFreeCheckNs (kCpusBusyHoldNs once found busy, so
// that spinners stopping make no flapping), by whichever hub comes first:
// three syscalls per 10 ms while hubs spin; without a readable /proc,
// never busy.
constexpr uint64_t kCpusFreeCheckNs = 10000000, kCpusBusyHoldNs = 20000000;
std::atomic<uint64_t> g_cpus_next_check{0};
std::atomic<bool> g_cpus_busy{false};
std::atomic<int> g_usable_cpus{1};

bool cpus_busy(uint64_t now) {
    uint64_t next = g_cpus_next_check.load(std::memory_order_relaxed);
    if (now < next || !g_cpus_next_check.compare_exchange_strong(next, now + kCpusFreeCheckNs,
                                                                  std::memory_order_relaxed))
        return g_cpus_busy.load(std::memory_order_relaxed);
    bool busy = false;
    char buf[128];
    if (native::read_file("/proc/loadavg", buf, sizeof buf) > 0) {
        // "0.20 0.18 0.12 3/80 11206": the runnable tasks follow the third space.
        const char* p = buf;
        for (int spaces = 0; *p && spaces < 3; ++p)
            if (*p == ' ') ++spaces;
        long running = 0;
        for (; *p >= '0' && *p <= '9'; ++p) running = running * 10 + (*p - '0');
        busy = *p == '/' && running > g_usable_cpus.load(std::memory_order_relaxed);
    }
    g_cpus_busy.store(busy, std::memory_order_relaxed);
    if (busy) g_cpus_next_check.store(now + kCpusBusyHoldNs, std::memory_order_relaxed);
    return busy;
}

}  // namespace

// ---------------------------------------------------------------- Hub

Hub::Hub(int index) : index_(index) {
    loop_ = ev_loop_new(unsigned(EVBACKEND_EPOLL) | unsigned(EVFLAG_NOENV));
    if (!loop_) diag::fatal("cannot create the event loop of hub %d", index);
    wakeup_fd_ = int(native::sys(SYS_eventfd2, 0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (wakeup_fd_ < 0) diag::fatal("cannot create the wake-up eventfd of hub %d: errno %d", index, -wakeup_fd_);
    ev_io_init(&wakeup_watcher_, on_wakeup_fd, wakeup_fd_, EV_READ);
    wakeup_watcher_.data = this;
    ev_io_start(loop_, &wakeup_watcher_);
}

void* Hub::thread_main(void* arg) {
    auto* hub = static_cast<Hub*>(arg);
    t_hub = hub;
    signals::hub_thread_started(hub);
    hub->native_handle_.store(pthread_self(), std::memory_order_release);
    hub->tid_.store(native::gettid(), std::memory_order_relaxed);
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        void* lo = nullptr;
        pthread_attr_getstack(&attr, &lo, &hub->stack_size_);
        hub->stack_lo_ = lo;
        pthread_attr_destroy(&attr);
    }
    diag::install_overflow_reporter();
    if (hub->index_ == 0) {
        ev_timer_init(&hub->deadlock_tick_, on_deadlock_tick, 0.5, 0.5);
        hub->deadlock_tick_.data = hub;
        ev_timer_start(hub->loop_, &hub->deadlock_tick_);
    }
    hub->run();
    return nullptr;
}

void Hub::run() {
    t_eh_globals = static_cast<EhGlobals*>(static_cast<void*>(abi::__cxa_get_globals()));
    for (;;) {
        for (uint64_t budget = runq_length_ > kRunBudget ? runq_length_ : kRunBudget; runq_head_ && budget > 0;
             --budget) {
            Fiber* f = runq_head_;
            runq_head_ = f->runq_next;
            if (!runq_head_) runq_tail_ = nullptr;
            f->runq_next = nullptr;
            --runq_length_;
            switch_to(f);
        }
        if (runq_head_) {
            ev_run(loop_, EVRUN_NOWAIT);
        } else {
            polling.store(true, std::memory_order_relaxed);
            idle();
            polling.store(false, std::memory_order_relaxed);
        }
    }
}

// Nothing to run: wait for an event. A fiber of another hub, or another
// process, that answers within microseconds would find this hub asleep in
// epoll_wait, and each hand-off would cost a kernel wake-up of its thread
// (an inter-processor interrupt, far dearer than a syscall). So when the
// last idle spell was that short, and ended by an event rather than by a
// fiber's timer, the hub first polls without sleeping for up to spin_ns_.
// A spell that outlasts the spin turns spinning off until a wait is short
// again, and backs off the next spins: a hub that waits long, or for its
// timers only, does not spin. Nor does one while every CPU is taken
// (cpus_busy).
void Hub::idle() {
    if (!spin_ns_) {
        ev_run(loop_, EVRUN_ONCE);
        return;
    }
    const uint64_t start = native::monotonic_ns();
    timer_fired_ = false;
    if (spin_next_) {
        if (spin_skip_) {
            --spin_skip_;
        } else if (cpus_busy(start)) {
            // Not a failure of the spin: no back-off.
        } else if (spin(start)) {
            spin_failures_ = 0;
            spin_next_ = !timer_fired_;
            return;
        } else {
            // Timed out: the partner was not running (a loaded machine), or
            // short waits and long ones alternate. The next 2^k - 1 spins
            // that would follow are skipped, k counting such spins in a row.
            if (spin_failures_ < kMaxSpinBackoff) ++spin_failures_;
            spin_skip_ = (1u << spin_failures_) - 1;
        }
    }
    if (!runq_head_) ev_run(loop_, EVRUN_ONCE);
    spin_next_ = !timer_fired_ && native::monotonic_ns() - start < spin_ns_;
}

// Polls the loop (epoll_wait with a zero timeout) and the remote queue until
// a fiber is runnable or spin_ns_ has passed since `start_ns`. True if a
// fiber is runnable.
bool Hub::spin(uint64_t start_ns) {
    const uint64_t until = start_ns + spin_ns_;
    spinning_.store(true, std::memory_order_seq_cst);
    for (;;) {
        if (wake_pending_.load(std::memory_order_relaxed))
            take_wakeup();
        else
            ev_run(loop_, EVRUN_NOWAIT);
        if (runq_head_ || native::monotonic_ns() >= until) break;
        // Not a pause loop: the scheduler tends to put the two threads of
        // a ping-pong on one CPU, where a hub spinning on pause instructions
        // holds off the very thread it waits for until its window ends.
        native::sys(SYS_sched_yield);
    }
    spinning_.store(false, std::memory_order_seq_cst);
    // A poster that saw `spinning_` skipped the eventfd: its item is ours.
    if (wake_pending_.load(std::memory_order_seq_cst)) take_wakeup();
    return runq_head_ != nullptr;
}

void Hub::switch_to(Fiber* f) {
    // Signals owed to it, or left on the hub, before it runs program code
    // (signals.h, "Pokes").
    if (signals::switch_in_owed(index_, f->sig_hint)) [[unlikely]]
        signals::switching_in(this, f);
    t_fiber = f;
    // Lazily: a fiber resumed with nothing else run meanwhile finds its
    // image still live. Off (and free) unless GREENLD_FIBER_TLS=1 found blocks.
    if (fiber_tls::active() && tls_live_ != f) [[unlikely]]
        swap_tls(f);
    f->state.store(FiberState::running, std::memory_order_relaxed);
    // Only this thread writes it: a plain add, no locked instruction; the
    // monitor samples it (monitor.h).
    switches.store(switches.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    void* asan_save = nullptr;
    sanitizer::start_switch(&asan_save, f->stack.lo(), f->stack.usable);
    greenld_context_switch(&ctx_, &f->ctx);
    sanitizer::finish_switch(asan_save);
    t_fiber = nullptr;
    if (dead_) {
        Fiber* d = dead_;
        dead_ = nullptr;
        finish_dead(d);
    }
}

void Hub::swap_tls(Fiber* f) {
    const fiber_tls::Layout& layout = fiber_tls::layout();
    char* tp = fiber_tls::thread_pointer();
    if (tls_live_) layout.save(tp, tls_live_->tls_image);
    layout.load(tp, f->tls_image);
    tls_live_ = f;
}

void Hub::switch_out(Fiber* self) {
    if (!self->stack.canary_intact()) [[unlikely]]
        report_overwritten_canary(self);
    // errno and the C++ exception state live in the OS thread's TLS,
    // shared by the hub's fibers.
    const int saved_errno = errno;
    const EhGlobals saved_eh = *t_eh_globals;
    void* asan_save = nullptr;
    const bool dying = self->state.load(std::memory_order_relaxed) == FiberState::dead;
    sanitizer::start_switch(dying ? nullptr : &asan_save, stack_lo_, stack_size_);
    greenld_context_switch(&self->ctx, &ctx_);
    sanitizer::finish_switch(asan_save);
    *t_eh_globals = saved_eh;
    errno = saved_errno;
}

void Hub::report_overwritten_canary(Fiber* self) {
    diag::fatal("fiber %u overflowed its stack (%zu KiB): the canary at its bottom was overwritten%s; raise the "
                "stack size with GREENLD_STACK_SIZE or greenld --stack-size",
                self->id, self->stack.usable / 1024,
                self->stack.kind == StackKind::slab && !self->stack.guarded
                    ? " (by it, or by a fiber whose shared stack lies above it overflowing through it)"
                    : "");
}

void Hub::prepare_park() {
    Fiber* self = t_fiber;
    self->wake_reason = WakeReason::none;
    self->wake_error = 0;
    self->sig.handler_ran = false;
    self->parked_since = ev_now(loop_);
    parks.store(parks.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    self->state.store(FiberState::parked, std::memory_order_release);
}

WakeReason Hub::park_prepared(Deadline deadline) {
    Fiber* self = t_fiber;
    // A signal reached this fiber while it was runnable: its wait is
    // interrupted before it begins (the unpark that would have ended it
    // found the fiber not parked). Unless a waker already queued it.
    if (__builtin_expect(signals::deliverable(self), 0)) {
        FiberState expected = FiberState::parked;
        if (self->state.compare_exchange_strong(expected, FiberState::running, std::memory_order_acq_rel)) {
            self->wake_reason = WakeReason::interrupted;
            return WakeReason::interrupted;
        }
    }
    // A pthread_cancel request for a fiber inside a cancellation point ends
    // the park at once, like a signal (cancel.h).
    if (__builtin_expect(cancel::interrupts_park(self), 0)) {
        FiberState expected = FiberState::parked;
        if (self->state.compare_exchange_strong(expected, FiberState::running, std::memory_order_acq_rel)) {
            self->wake_reason = WakeReason::interrupted;
            return WakeReason::interrupted;
        }
    }
    const bool timed = !deadline.is_never();
    if (timed) {
        // ev_now() is the time of the last poll and may be stale; a timer set
        // against it could fire early, and a sleep must never be short.
        ev_now_update(loop_);
        double after = double(deadline.remaining_ns()) / 1e9;
        ev_timer_set(&self->timer, after, 0.0);
        ev_timer_start(loop_, &self->timer);
    }
    switch_out(self);
    if (timed) ev_timer_stop(loop_, &self->timer);
    cancel::park_ended(self, self->wake_reason);
    return self->wake_reason;
}

WakeReason Hub::park(Deadline deadline) {
    prepare_park();
    return park_prepared(deadline);
}

void Hub::yield() {
    Fiber* self = t_fiber;
    self->state.store(FiberState::runnable, std::memory_order_relaxed);
    make_runnable_local(self);
    switch_out(self);
    signals::deliver_pending(self);
}

namespace {
std::atomic<void (*)(Fiber*)> g_exit_hook{nullptr};
}

void Hub::set_exit_hook(void (*hook)(Fiber*)) { g_exit_hook.store(hook, std::memory_order_release); }

void Hub::exit_current() {
    Fiber* self = t_fiber;
    self->tsd.run_destructors();
    if (auto hook = g_exit_hook.load(std::memory_order_acquire)) hook(self);
    signals::fiber_exiting(self);
    fiber_ids::remove(self);
    self->state.store(FiberState::dead, std::memory_order_release);
    fibers_alive.fetch_sub(1, std::memory_order_relaxed);
    if (Runtime::get().program_threads.fetch_sub(1, std::memory_order_acq_rel) == 1) exit(0);
    dead_ = self;
    switch_out(self);
    __builtin_unreachable();
}

void Hub::finish_dead(Fiber* f) {
    if (!stack_gap_intact(f->stack))
        diag::fatal("fiber %u overflowed its stack (%zu KiB): the unguarded gap below it was written; raise "
                    "the stack size with GREENLD_STACK_SIZE or greenld --stack-size",
                    f->id, f->stack.usable / 1024);
    stack_release(f->stack);
    if (f->tls_image) {
        // What its image left in the blocks is garbage now: the next fiber's
        // is loaded without saving it.
        if (tls_live_ == f) tls_live_ = nullptr;
        fiber_tls::image_destroy(f->tls_image);
        f->tls_image = nullptr;
    }
    f->exited.store(1, std::memory_order_release);
    futex_wake(&f->exited, INT_MAX);
    // Whoever of the hub and the joiner/detacher comes second frees it.
    if (f->lifecycle.fetch_or(Fiber::kFinished, std::memory_order_acq_rel) & Fiber::kDetached) delete f;
}

bool Hub::unpark(Fiber* f, WakeReason reason, int error) {
    FiberState expected = FiberState::parked;
    if (!f->state.compare_exchange_strong(expected, FiberState::runnable, std::memory_order_acq_rel))
        return false;
    f->wake_reason = reason;
    f->wake_error = error;
    Hub* h = f->hub;
    if (h == t_hub)
        h->make_runnable_local(f);
    else
        h->post(&f->remote);
    return true;
}

void Hub::make_runnable_local(Fiber* f) {
    f->runq_next = nullptr;
    ++runq_length_;
    if (runq_tail_)
        runq_tail_->runq_next = f;
    else
        runq_head_ = f;
    runq_tail_ = f;
}

void Hub::post(RemoteItem* item) {
    item->next = nullptr;
    {
        native::LockGuard g(remote_lock_);
        if (remote_tail_)
            remote_tail_->next = item;
        else
            remote_head_ = item;
        remote_tail_ = item;
    }
    wake();
}

void Hub::wake() {
    if (!wake_pending_.exchange(true, std::memory_order_seq_cst)) {
        // A spinning hub sees the flag without the syscall (spin()).
        if (spinning_.load(std::memory_order_seq_cst)) return;
        uint64_t one = 1;
        native::sys(SYS_write, wakeup_fd_, reinterpret_cast<long>(&one), sizeof one);
    }
}

void Hub::on_wakeup_fd(struct ev_loop*, ev_io* w, int) {
    auto* hub = static_cast<Hub*>(w->data);
    uint64_t v;
    native::sys(SYS_read, hub->wakeup_fd_, reinterpret_cast<long>(&v), sizeof v);
    hub->take_wakeup();
}

void Hub::take_wakeup() {
    // Cleared before draining: a post that lands after the drain must write
    // the eventfd again, or it would sit in the queue until the next event.
    wake_pending_.store(false, std::memory_order_seq_cst);
    drain_remote();
    signals::on_hub_wakeup(this);
}

void Hub::wake_from_signal() {
    // Always written (no wake_pending_ merging): the flag's owner may be the
    // very code this signal interrupted.
    uint64_t one = 1;
    native::sys(SYS_write, wakeup_fd_, reinterpret_cast<long>(&one), sizeof one);
}

void Hub::drain_remote() {
    RemoteItem* list;
    {
        native::LockGuard g(remote_lock_);
        list = remote_head_;
        remote_head_ = remote_tail_ = nullptr;
    }
    while (list) {
        RemoteItem* next = list->next;
        list->run(this, list);
        list = next;
    }
}

void Hub::on_timer(struct ev_loop*, ev_timer* w, int) {
    Fiber* f = static_cast<Fiber*>(w->data);
    f->hub->timer_fired_ = true;
    unpark(f, WakeReason::timeout);
}

void Hub::on_deadlock_tick(struct ev_loop*, ev_timer* w, int) { monitor::deadlock_tick(static_cast<Hub*>(w->data)); }

IoSlot* Hub::io_slot(int fd, bool create) {
    if (fd < 0) return nullptr;
    if (size_t(fd) >= io_slots_.size()) {
        if (!create) return nullptr;
        size_t n = io_slots_.size() ? io_slots_.size() : 64;
        while (n <= size_t(fd)) n *= 2;
        io_slots_.resize(n, nullptr);
    }
    IoSlot*& s = io_slots_[size_t(fd)];
    if (!s && create) s = io_slot_create(this, fd);
    return s;
}

// ---------------------------------------------------------------- Runtime

Runtime& Runtime::get() {
    // Never destroyed (hubs outlive exit()), and not on the heap: our fork
    // prepare handler runs after the program's, when a malloc such as
    // jemalloc already holds its own locks, and may be the first to ask.
    alignas(Runtime) static unsigned char storage[sizeof(Runtime)];
    static Runtime* rt = new (storage) Runtime();
    return *rt;
}

Runtime::Runtime() {}

int Runtime::start_hubs() {
    native::LockGuard g(start_lock_);
    if (started_.load(std::memory_order_relaxed)) return 0;
    install_fork_handlers();
    monitor::hubs_starting();
    default_stack_size_ = config::stack_size();
    fiber_tls::setup();
    int n = config::hubs();
    const uint64_t spin_ns = uint64_t(config::spin_us()) * 1000;
    if (spin_ns) g_usable_cpus.store(native::usable_cpus(), std::memory_order_relaxed);
    for (int i = 0; i < n; ++i) {
        Hub* h = new (std::nothrow) Hub(i);
        if (!h) return EAGAIN;
        h->spin_ns_ = spin_ns;
        int err = 0;
        if (!native::start_thread(Hub::thread_main, h, &err)) {
            if (i == 0) return err;
            diag::message("could start only %d of %d hubs (errno %d)", i, n, err);
            delete h;
            break;
        }
        hubs_[i] = h;
        hub_count_ = i + 1;
    }
    started_.store(true, std::memory_order_release);
    diag::info("started %d hubs; fiber stacks of %zu KiB; blocking-call pool of %d threads", hub_count_,
               default_stack_size_ / 1024, BlockingPool::get().size());
    return 0;
}

Hub* Runtime::choose_hub() {
    // Least loaded hub; the round-robin start breaks ties so that a burst of
    // creations spreads instead of piling on hub 0.
    uint32_t start = round_robin_.fetch_add(1, std::memory_order_relaxed) % uint32_t(hub_count_);
    Hub* best = hubs_[start];
    int64_t best_load = best->fibers_alive.load(std::memory_order_relaxed);
    for (int k = 1; k < hub_count_; ++k) {
        Hub* h = hubs_[(start + uint32_t(k)) % uint32_t(hub_count_)];
        int64_t load = h->fibers_alive.load(std::memory_order_relaxed);
        if (load < best_load) {
            best = h;
            best_load = load;
        }
    }
    return best;
}

int Runtime::spawn(void* (*start)(void*), void* arg, const FiberOptions& opts, Fiber** out) {
    if (!started_.load(std::memory_order_acquire)) {
        int err = start_hubs();
        if (err) return err;
    }
    Fiber* f = new (std::nothrow) Fiber();
    if (!f) return EAGAIN;
    f->hub = choose_hub();
    if (opts.stack_addr) {
        f->stack = stack_adopt(opts.stack_addr, opts.stack_size);
    } else {
        int err = 0;
        if (!stack_allocate(opts.stack_size ? opts.stack_size : default_stack_size_, &f->stack, &err,
                            f->hub->index())) {
            delete f;
            return err;
        }
    }
    if (fiber_tls::active()) {
        f->tls_image = fiber_tls::image_create();
        if (!f->tls_image) {
            stack_release(f->stack);
            delete f;
            return EAGAIN;
        }
    }
    f->id = next_id_.fetch_add(1, std::memory_order_relaxed);
    f->start = start;
    f->arg = arg;
    f->created_ns = native::monotonic_ns();
    if (opts.detached) f->lifecycle.store(Fiber::kDetached, std::memory_order_relaxed);
    ev_init(&f->timer, Hub::on_timer);
    f->timer.data = f;
    f->remote.run = run_fiber_item;
    signals::fiber_spawned(f);
    context_make(&f->ctx, f->stack.top(), fiber_entry, f);
    f->hub->fibers_alive.fetch_add(1, std::memory_order_relaxed);
    program_threads.fetch_add(1, std::memory_order_relaxed);
    fibers_created.fetch_add(1, std::memory_order_relaxed);
    fiber_ids::add(f);
    *out = f;
    if (__builtin_expect(diag::debugging(), 0)) diag::debug("fiber %u created on hub %d", f->id, f->hub->index());
    f->state.store(FiberState::runnable, std::memory_order_release);
    if (f->hub == Hub::current())
        f->hub->make_runnable_local(f);
    else
        f->hub->post(&f->remote);
    return 0;
}

void Runtime::lock_for_fork() {
    start_lock_.lock();
    for (int i = 0; i < hub_count_; ++i) hubs_[i]->remote_lock().lock();
}

void Runtime::unlock_after_fork() {
    for (int i = 0; i < hub_count_; ++i) hubs_[i]->remote_lock().unlock();
    start_lock_.unlock();
}

void Runtime::reset_in_child() {
    // The hubs' threads did not survive the fork; their objects (and the
    // fibers they held) are abandoned, as glibc abandons other threads'
    // stacks. The next pthread_create starts fresh hubs.
    for (int i = 0; i < hub_count_; ++i) hubs_[i] = nullptr;
    hub_count_ = 0;
    started_.store(false, std::memory_order_release);
    program_threads.store(1, std::memory_order_relaxed);
    Hub::forget_current_for_child();
}

void Runtime::reap(Fiber* f) {
    if (f->lifecycle.fetch_or(Fiber::kDetached, std::memory_order_acq_rel) & Fiber::kFinished) delete f;
}

void Runtime::detach(Fiber* f) { reap(f); }

}  // namespace greenld
