// fork() with hubs running. POSIX keeps only the calling thread in the
// child; here that means: no hub survives, and a fiber that called fork
// goes on in the child as a plain native thread (its stack is intact), so
// the child behaves as a single-threaded native process until it creates
// threads, which start fresh hubs. Runtime locks are all taken across the
// fork so the child never inherits one held by a vanished thread.
#pragma once

namespace greenld {

// Registers the pthread_atfork handlers, once.
void install_fork_handlers();

}  // namespace greenld
