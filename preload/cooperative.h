// What every I/O wrapper decides first: does this call need the shim?
//
// A call is made cooperative when the program believes the fd is blocking
// and either the caller is a fiber (it must park, not block its hub) or the
// kernel flag differs from the program's view (a listener we made
// non-blocking, which a native thread must still see as blocking).
// Everything else goes straight to libc: same return values, same errno.
#pragma once

#include "../runtime/config.h"
#include "../runtime/deadline.h"
#include "../runtime/fd_table.h"
#include "../runtime/hub.h"
#include "../runtime/io.h"

namespace greenld {

inline FdEntry* cooperative_entry(int fd) {
    // The native fast path: a thread-local load and a flag, nothing else.
    const bool in_fiber = Hub::current_fiber() != nullptr;
    if (__builtin_expect(!in_fiber && !FdTable::kernel_nonblock_in_use(), 1)) return nullptr;
    FdEntry* e = FdTable::get().entry(fd);
    if (!e) return nullptr;
    if (!in_fiber && !e->kernel_nonblock.load(std::memory_order_relaxed)) return nullptr;
    FdKind kind = e->kind.load(std::memory_order_acquire);
    if (kind == FdKind::unknown) kind = FdTable::get().classify(fd, e);
    if (kind == FdKind::unknown || kind == FdKind::file) return nullptr;
    if (e->user_nonblock.load(std::memory_order_relaxed)) return nullptr;
    const bool is_socket = kind == FdKind::stream || kind == FdKind::datagram || kind == FdKind::listener;
    if (!config::patched(is_socket ? config::kPatchSocket : config::kPatchOs)) return nullptr;
    return e;
}

// Identity of the caller for lock ownership: a fiber id, or for a native
// thread its tid (fiber ids are above any tid).
inline int lock_owner_id() {
    if (Fiber* f = Hub::identity()) return int(f->id);
    static thread_local int tid = 0;
    if (!tid) tid = native::gettid();
    return tid;
}

inline Deadline timeout_deadline(const std::atomic<int64_t>& timeout_ns) {
    int64_t t = timeout_ns.load(std::memory_order_relaxed);
    return t > 0 ? Deadline::after_ns(t) : Deadline::never();
}

// Turns a wait_fd() result into the errno a blocking call would have
// reported; returns false if the caller must fail with it.
inline bool waited(int rc) {
    if (rc == 0) return true;
    errno = (rc == ETIMEDOUT) ? EAGAIN : rc;  // SO_RCVTIMEO/SO_SNDTIMEO expiry is EAGAIN
    return false;
}

}  // namespace greenld
