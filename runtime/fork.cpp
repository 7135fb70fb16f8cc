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

void install_fork_handlers() {
    static std::atomic<bool> installed{false};
    if (!installed.exchange(true)) pthread_atfork(prepare, parent, child);
}

}  // namespace greenld
