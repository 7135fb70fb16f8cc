#include "pool.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include <new>

#include "config.h"
#include "diag.h"
#include "signals.h"

#include <ucontext.h>

namespace greenld {

// An idle worker sleeps on its own word, so that a submitter wakes exactly
// the worker it popped from the idle stack: no counting of wake tokens.
struct BlockingPool::Worker {
    std::atomic<uint32_t> wake{0};
    Worker* next_idle = nullptr;
};

namespace {

// Every signal but glibc's two internal ones: SIGCANCEL (32) and SIGSETXID
// (33, which setuid() and friends broadcast to every thread and wait for:
// blocking it would hang them). Kernel sigset layout: bit n-1 is signal n.
constexpr uint64_t kPoolSignalMask = ~uint64_t(0) & ~(uint64_t(1) << 31) & ~(uint64_t(1) << 32);

thread_local bool t_pool_thread = false;
thread_local bool t_kickable = false;

void set_kick_blocked(bool blocked) {
    const uint64_t kick = uint64_t(1) << (signals::kPoolKick - 1);
    native::sys(SYS_rt_sigprocmask, blocked ? SIG_BLOCK : SIG_UNBLOCK, reinterpret_cast<long>(&kick), 0, 8);
}

void run_job(PoolJob* job) {
    errno = job->error;  // a call that succeeds leaves the caller's errno alone
    if (job->kickable) {
        job->runner_tid.store(native::gettid(), std::memory_order_release);
        t_kickable = true;
        set_kick_blocked(false);
        job->run(job);
        const int e = errno;
        set_kick_blocked(true);
        t_kickable = false;
        job->runner_tid.store(0, std::memory_order_release);
        errno = e;
    } else {
        job->run(job);
    }
    job->error = errno;
    // A job started with BlockingPool::start has no fiber to unpark.
    if (Fiber* waiter = job->waiter) Hub::unpark(waiter, WakeReason::woken);
    job->done.store(1, std::memory_order_release);
}

}  // namespace

void kick_with_signal(PoolJob* job) {
    job->kicked.store(true, std::memory_order_release);
    if (const int tid = job->runner_tid.load(std::memory_order_acquire))
        native::sys(SYS_tgkill, native::sys(SYS_getpid), tid, signals::kPoolKick);
}

bool pool_kick_signal(siginfo_t* info, void* ucontext) {
    if (!t_pool_thread) return false;
    if (t_kickable && info->si_code == SI_TKILL && info->si_pid == native::sys(SYS_getpid)) return true;
    // The program's own signal (kill, sigqueue) found the one thread that
    // did not block it: back to the process, and blocked here for the rest
    // of this job, whose call goes on as if never kicked.
    siginfo_t again = *info;
    if (again.si_code >= 0 || again.si_code == SI_TKILL) again.si_code = SI_QUEUE;
    sigaddset(&static_cast<ucontext_t*>(ucontext)->uc_sigmask, signals::kPoolKick);
    if (native::sys(SYS_rt_sigqueueinfo, native::sys(SYS_getpid), signals::kPoolKick, reinterpret_cast<long>(&again)) < 0)
        native::sys(SYS_kill, native::sys(SYS_getpid), signals::kPoolKick);
    return true;
}

BlockingPool& BlockingPool::get() {
    // Never destroyed (workers outlive exit()), and not on the heap: our
    // fork prepare handler runs after the program's, when a malloc such as
    // jemalloc already holds its own locks, and may be the first to ask.
    alignas(BlockingPool) static unsigned char storage[sizeof(BlockingPool)];
    static BlockingPool* pool = new (storage) BlockingPool();
    return *pool;
}

int BlockingPool::size() {
    native::LockGuard g(lock_);
    if (!size_) size_ = config::pool_size();
    return size_;
}

void BlockingPool::set_size(int n) {
    native::LockGuard g(lock_);
    size_ = n > 0 ? n : 1;
}

int BlockingPool::threads() {
    native::LockGuard g(lock_);
    return threads_;
}

int BlockingPool::idle_threads() {
    native::LockGuard g(lock_);
    return idle_count_;
}

void* BlockingPool::worker_main(void* arg) {
    auto* self = static_cast<Worker*>(arg);
    native::sys(SYS_prctl, PR_SET_NAME, reinterpret_cast<long>("greenld-pool"));
    t_pool_thread = true;
    BlockingPool& pool = get();
    pool.lock_.lock();
    for (;;) {
        if (PoolJob* job = pool.take_locked()) {
            const bool io = job->kind == JobKind::io;  // the job is gone once run
            pool.lock_.unlock();
            run_job(job);
            pool.lock_.lock();
            --(io ? pool.running_io_ : pool.running_rv_);
            continue;
        }
        // Threads waiting in rendezvous jobs do not count: the pool keeps
        // `size` threads for io jobs besides them.
        if (pool.threads_ - pool.running_rv_ > pool.size_) {
            --pool.threads_;
            pool.lock_.unlock();
            delete self;
            return nullptr;
        }
        self->wake.store(0, std::memory_order_relaxed);
        self->next_idle = pool.idle_;
        pool.idle_ = self;
        ++pool.idle_count_;
        pool.lock_.unlock();
        while (self->wake.load(std::memory_order_acquire) == 0) native::futex_wait(&self->wake, 0);
        pool.lock_.lock();
    }
}

PoolJob* BlockingPool::take_locked() {
    if (PoolJob* job = rv_head_) {
        rv_head_ = job->next;
        if (!rv_head_) rv_tail_ = nullptr;
        ++running_rv_;
        return job;
    }
    if (PoolJob* job = io_head_; job && running_io_ < size_) {
        io_head_ = job->next;
        if (!io_head_) io_tail_ = nullptr;
        --queued_io_;
        ++running_io_;
        return job;
    }
    return nullptr;
}

// Called with lock_ held and threads_ already counting the new worker;
// returns with lock_ released.
bool BlockingPool::start_worker_locked_then_unlock() {
    lock_.unlock();
    auto* w = new (std::nothrow) Worker();
    int err = ENOMEM;
    bool ok = false;
    if (w) {
        // The new thread inherits this mask; restored here right after.
        uint64_t old = 0;
        native::sys(SYS_rt_sigprocmask, SIG_SETMASK, reinterpret_cast<long>(&kPoolSignalMask),
                    reinterpret_cast<long>(&old), sizeof old);
        ok = native::start_thread(worker_main, w, &err);
        native::sys(SYS_rt_sigprocmask, SIG_SETMASK, reinterpret_cast<long>(&old), 0, sizeof old);
        if (!ok) delete w;
    }
    if (ok) return true;
    native::LockGuard g(lock_);
    --threads_;
    if (!start_failed_reported_) {
        start_failed_reported_ = true;
        diag::message("cannot start a blocking-call pool thread (errno %d); with %d running, blocking calls of "
                      "fibers may wait longer or block their hub",
                      err, threads_);
    }
    return false;
}

// Queues `job` and sees that a worker will take it: an idle one woken, or
// a new one started when the pool is below its size (a rendezvous job
// always gets a thread). False if no thread will ever run it (none is
// running and none could be started): the job is then off the queue again.
bool BlockingPool::enqueue(PoolJob* job) {
    job->next = nullptr;
    lock_.lock();
    if (!size_) size_ = config::pool_size();
    bool needs_thread;
    if (job->kind == JobKind::rendezvous) {
        (rv_tail_ ? rv_tail_->next : rv_head_) = job;
        rv_tail_ = job;
        needs_thread = true;
    } else {
        (io_tail_ ? io_tail_->next : io_head_) = job;
        io_tail_ = job;
        ++queued_io_;
        // Beyond the size, a finishing io job's worker picks it up.
        needs_thread = running_io_ + queued_io_ <= size_;
    }
    if (!needs_thread) {
        lock_.unlock();
        return true;
    }
    if (Worker* w = idle_) {
        idle_ = w->next_idle;
        --idle_count_;
        lock_.unlock();
        w->wake.store(1, std::memory_order_release);
        native::futex_wake(&w->wake, 1);
        return true;
    }
    ++threads_;
    if (start_worker_locked_then_unlock()) return true;
    // No new thread: a running worker takes the job when it is free.
    native::LockGuard g(lock_);
    return !(threads_ == 0 && unqueue_locked(job));
}

void BlockingPool::submit(PoolJob* job) {
    // With no thread at all, the job is made right here, blocking the hub,
    // rather than failing a call libc would have made.
    if (!enqueue(job)) run_job(job);
}

bool BlockingPool::start(PoolJob* job) {
    job->kind = JobKind::rendezvous;
    job->waiter = nullptr;
    job->error = errno;
    offloaded.fetch_add(1, std::memory_order_relaxed);
    // With no thread at all the job cannot run, and the caller must not
    // make it inline: it waits for a step the caller takes while it runs.
    return enqueue(job);
}

bool BlockingPool::unqueue_locked(PoolJob* job) {
    const bool io = job->kind == JobKind::io;
    PoolJob** head = io ? &io_head_ : &rv_head_;
    PoolJob** tail = io ? &io_tail_ : &rv_tail_;
    PoolJob* prev = nullptr;
    for (PoolJob* j = *head; j; prev = j, j = j->next) {
        if (j != job) continue;
        (prev ? prev->next : *head) = j->next;
        if (*tail == j) *tail = prev;
        if (io) --queued_io_;
        return true;
    }
    return false;
}

void BlockingPool::run_parked(PoolJob* job) {
    job->error = errno;
    Hub* hub = Hub::current();
    Fiber* self = Hub::current_fiber();
    job->waiter = self;
    // Parked before the job is visible to a worker, whose unpark may come
    // at once (or from this very fiber, when the job is made inline).
    hub->prepare_park();
    job->waiter->note_wait(WaitKind::offload);
    offloaded.fetch_add(1, std::memory_order_relaxed);
    submit(job);
    WakeReason why = hub->park_prepared(Deadline::never());
    while (!job->done.load(std::memory_order_acquire)) {
        // Woken by the pool an instant before it set `done`: yield until it
        // has. Woken by anything else (a signal): the job still runs and
        // still points at this stack; the handlers run now, as they would
        // while a thread sleeps in the call (and without delivering, every
        // park would end at once), and the fiber waits for the job, polling,
        // since its unpark may already have been spent on the earlier park.
        if (why == WakeReason::woken) {
            hub->yield();
            continue;
        }
        if (why == WakeReason::interrupted) signals::deliver_pending(self);
        why = hub->park(Deadline::after_ns(1000000));
    }
    errno = job->error;
}

bool BlockingPool::run_parked_kickable(PoolJob* job, void (*kick)(PoolJob*)) {
    job->error = errno;
    Hub* hub = Hub::current();
    Fiber* self = Hub::current_fiber();
    job->waiter = self;
    hub->prepare_park();
    // Not a futex wait (the deadlock check counts those): another process
    // or a kernel event may end it.
    self->note_wait(WaitKind::offload);
    submit(job);
    WakeReason why = hub->park_prepared(Deadline::never());
    bool interrupted = false, ran = false, restart = true;
    int kicks = 0;
    // Handlers run as soon as the park is interrupted (a thread's handler
    // runs while it sleeps in the call), and what they were is kept across
    // the parks that follow, which each forget it (Hub::prepare_park).
    auto note_handlers = [&] {
        if (self->sig.handler_ran) {
            ran = true;
            restart = restart && self->sig.handlers_restart;
        }
    };
    while (!job->done.load(std::memory_order_acquire)) {
        if (why == WakeReason::woken) {
            hub->yield();
            note_handlers();
            continue;
        }
        if (why == WakeReason::interrupted) {
            interrupted = true;
            kick(job);
            ++kicks;
            signals::deliver_pending(self);
            note_handlers();
        } else if (why == WakeReason::timeout && interrupted && kicks < 100) {
            kick(job);  // the call may not have begun when the last came
            ++kicks;
        }
        why = hub->park(Deadline::after_ns(1000000));
    }
    self->sig.handler_ran = ran;
    self->sig.handlers_restart = restart;
    errno = job->error;
    return interrupted;
}

void BlockingPool::lock_for_fork() { lock_.lock(); }

void BlockingPool::unlock_after_fork(bool child) {
    if (child) {
        // The workers did not survive the fork, and the jobs queued belong
        // to fibers that did not either.
        threads_ = running_io_ = running_rv_ = queued_io_ = idle_count_ = 0;
        io_head_ = io_tail_ = rv_head_ = rv_tail_ = nullptr;
        idle_ = nullptr;
        start_failed_reported_ = false;
    }
    lock_.unlock();
}

}  // namespace greenld
