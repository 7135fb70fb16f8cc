// pthread_atfork: glibc's pthread_atfork (in libc_nonshared.a, linked into
// every caller) and jemalloc call __register_atfork. Our own handlers take
// the runtime's locks (futex buckets, hub queues) for the fork, so they
// must be the first registered: glibc runs prepare handlers last-registered
// first, and a program's prepare handler that waits for a mutex held by
// another thread needs those locks free for that thread's unlock to wake
// it. Registering ours lazily, when the hubs start, put them after the
// handlers a program (or its malloc) registered at start-up: redis'
// BGSAVE fork then hung in jemalloc's prefork handler.
#include "../runtime/fork.h"
#include "next.h"

using namespace greenld;

namespace {

using RegisterAtfork = int(void (*)(), void (*)(), void (*)(), void*);
next::Symbol<RegisterAtfork> next_register_atfork{"__register_atfork"};

}  // namespace

GREENLD_EXPORT int __register_atfork(void (*prepare)(), void (*parent)(), void (*child)(), void* dso_handle) {
    install_fork_handlers();
    return next_register_atfork(prepare, parent, child, dso_handle);
}
