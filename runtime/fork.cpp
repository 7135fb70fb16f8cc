#include "fork.h"

#include <pthread.h>

#include <atomic>

#include "fiber_ids.h"
#include "futex.h"
#include "hub.h"
#include "io.h"
#include "signals.h"
#include "pool.h"
#include "resolver.h"
#include "stack.h"

namespace greenld {

namespace {

// One fixed order, the same as the nesting elsewhere: a futex bucket may be
// held while posting to a hub's remote queue, never the reverse.
void prepare() {
    futex_lock_for_fork();
    Runtime::get().lock_for_fork();
    fiber_ids::lock_for_fork();
    stack_lock_for_fork();
    io_lock_for_fork();
    resolver::lock_for_fork();
    BlockingPool::get().lock_for_fork();  // a leaf: held with no other lock
}

void parent() {
    BlockingPool::get().unlock_after_fork(false);
    resolver::unlock_after_fork(false);
    io_unlock_after_fork(false);
    stack_unlock_after_fork(false);
    fiber_ids::unlock_after_fork(false);
    Runtime::get().unlock_after_fork();
    futex_unlock_after_fork(false);
}

void child() {
    BlockingPool::get().unlock_after_fork(true);
    resolver::unlock_after_fork(true);
    io_unlock_after_fork(true);
    stack_unlock_after_fork(true);
    fiber_ids::unlock_after_fork(true);
    Runtime::get().unlock_after_fork();
    futex_unlock_after_fork(true);
    signals::reset_in_child(Hub::current_fiber());
    Runtime::get().reset_in_child();
}

}  // namespace

// Our pthread_atfork call comes back through the program-facing
// __register_atfork wrapper, which calls this first: the thread that is
// registering returns at once; any other thread waits until the handlers
// are in glibc's list, so that nobody's handlers get in before ours.
void install_fork_handlers() {
    enum : int { none, registering, done };
    static std::atomic<int> state{none};
    static thread_local bool registering_here = false;
    if (state.load(std::memory_order_acquire) == done || registering_here) return;
    int expected = none;
    if (state.compare_exchange_strong(expected, registering, std::memory_order_acq_rel)) {
        registering_here = true;
        pthread_atfork(prepare, parent, child);
        registering_here = false;
        state.store(done, std::memory_order_release);
        return;
    }
    while (state.load(std::memory_order_acquire) != done) __builtin_ia32_pause();
}

}  // namespace greenld
