// fork() with hubs running. POSIX keeps only the calling thread in the
// child; here that means: no hub survives, and a fiber that called fork
// goes on in the child as a plain native thread (its stack is intact), so
// the child behaves as a single-threaded native process until it creates
// threads, which start fresh hubs. Runtime locks are all taken across the
// fork so the child never inherits one held by a vanished thread.
#pragma once

namespace greenld {

// Registers the pthread_atfork handlers, once. glibc runs prepare handlers
// in the reverse order of registration, parent and child handlers in
// order: ours must be registered before any of the program's (the
// preload's __register_atfork calls this first), so that our prepare runs
// after theirs. A program's prepare handler may wait for a mutex another
// thread holds (jemalloc's arena locks); that thread's unlock goes through
// the futex buckets and the hubs' remote queues, which ours locks.
void install_fork_handlers();

}  // namespace greenld
