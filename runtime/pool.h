// The blocking-call pool: a few native threads that run, on behalf of a
// fiber, the calls that cannot be made non-blocking (fsync, lock waits, a
// FIFO's open, a wait for any child, a disk read that misses the page
// cache). The fiber parks; a pool thread makes the call and unparks it.
// A native caller makes the call itself: it may block its own thread.
//
// Threads are real pthreads (native::start_thread), never fibers, started
// lazily, with every signal blocked: a signal meant for the program must
// land on one of its own threads. After fork() the child's pool is empty
// and starts again on first use.
//
// Two kinds of job, because one can wait for the other:
//  - io: waits for the kernel and a device only, so it ends on its own.
//    At most GREENLD_POOL_SIZE of them run at once; the rest queue.
//  - rendezvous: waits for another party (a lock's holder, a FIFO's other
//    end, a child process) that may itself need the pool to get there (a
//    lock holder that fsyncs before unlocking). Such a job gets a thread at
//    once, beyond the pool size if need be (threads above the size end
//    when idle), so waiting jobs can never starve the jobs they wait for.
#pragma once

#include <signal.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <type_traits>

#include "hub.h"
#include "native.h"

namespace greenld {

enum class JobKind : uint8_t { io, rendezvous };

struct PoolJob {
    PoolJob* next = nullptr;
    void (*run)(PoolJob*) = nullptr;  // makes the call; errno as the call left it
    JobKind kind = JobKind::io;
    int error = 0;                    // errno: the caller's before, the call's after
    Fiber* waiter = nullptr;
    // Set by the pool thread as its very last touch of the job (which lives
    // on the waiter's stack); the waiter leaves only once it is set.
    std::atomic<uint32_t> done{0};
    // A kickable job's call can be interrupted (kick_with_signal): while
    // it runs, its pool thread accepts signals::kPoolKick, whose handler
    // does nothing but make the call fail with EINTR. `kicked` tells such
    // an EINTR from a stray one, after which the call is simply made again.
    bool kickable = false;
    std::atomic<bool> kicked{false};
    std::atomic<int> runner_tid{0};
};

// The kick for a kickable job: marks it kicked and signals its pool thread
// (if the call is under way; otherwise the job sees `kicked` before it).
void kick_with_signal(PoolJob* job);

// Called by the signal trampoline for signals::kPoolKick on a thread that
// is not a hub: true if it was a pool thread's (our kick: nothing to do;
// a process-directed one: handed back to the process), false otherwise.
bool pool_kick_signal(siginfo_t* info, void* ucontext);

class BlockingPool {
public:
    static BlockingPool& get();

    // Called by a fiber: runs job->run on a pool thread while the fiber
    // parks, then sets errno to what the call left (the caller's errno if
    // the call did not change it). A park interrupted by a signal
    // (WakeReason::interrupted) keeps waiting for the job: the call is
    // already under way in the kernel and its result (a lock taken, a
    // child reaped) must not be lost; the handlers run meanwhile.
    void run_parked(PoolJob* job);
    // As run_parked, for a job that waits for another party and can be cut
    // short: when the park is interrupted (a signal, pthread_cancel) or
    // while the job has not finished, kick(job) is called (again every
    // millisecond) and must make the job's call return soon. The handlers
    // run at once; returns true if the park was interrupted, with
    // FiberSignals::handler_ran/handlers_restart telling what ran, for
    // signals::restarts().
    bool run_parked_kickable(PoolJob* job, void (*kick)(PoolJob*));

    // Starts job->run on a pool thread as a rendezvous job and returns at
    // once, for a caller (fiber or native thread) that must act while the
    // call is under way: nobody is unparked when it ends, and `done` is set
    // as the pool's last touch of the job, which the caller must await
    // before the job goes. False if no pool thread could take it (none
    // exists and none could be started): the job does not run.
    bool start(PoolJob* job);

    // The configured size (GREENLD_POOL_SIZE), read on first use; tests may
    // set it before.
    int size();
    void set_size(int n);
    // For tests and diagnostics.
    int threads();
    int idle_threads();
    std::atomic<uint64_t> offloaded{0};  // calls run on the pool so far

    // fork(): pool.cpp. The child's pool starts empty.
    void lock_for_fork();
    void unlock_after_fork(bool child);

private:
    struct Worker;
    BlockingPool() = default;
    static void* worker_main(void* worker);
    bool enqueue(PoolJob* job);
    void submit(PoolJob* job);
    bool unqueue_locked(PoolJob* job);
    bool start_worker_locked_then_unlock();
    PoolJob* take_locked();

    native::Mutex lock_;
    int size_ = 0;           // 0: not read yet
    int threads_ = 0;        // pool threads alive
    int running_io_ = 0;     // io jobs being run
    int running_rv_ = 0;     // rendezvous jobs being run
    int queued_io_ = 0;
    PoolJob* io_head_ = nullptr;
    PoolJob* io_tail_ = nullptr;
    PoolJob* rv_head_ = nullptr;
    PoolJob* rv_tail_ = nullptr;
    Worker* idle_ = nullptr;  // idle workers, a stack
    int idle_count_ = 0;
    bool start_failed_reported_ = false;
};

// Runs call() on a pool thread when the caller is a fiber (which parks
// meanwhile), directly otherwise; returns its result with errno as the call
// left it.
template <typename Call>
auto offload(JobKind kind, Call&& call) -> decltype(call()) {
    if (!Hub::current_fiber()) return call();
    using Result = decltype(call());
    struct Job : PoolJob {
        std::remove_reference_t<Call>* call;
        Result result{};
    };
    Job job;
    job.kind = kind;
    job.call = &call;
    job.run = [](PoolJob* j) {
        auto* self = static_cast<Job*>(j);
        self->result = (*self->call)();
    };
    BlockingPool::get().run_parked(&job);
    return job.result;
}

}  // namespace greenld
