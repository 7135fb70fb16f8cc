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
#include "cancel.h"
#include "../runtime/signals.h"

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

// signal(7), the one rule for a wait that a signal handler interrupted
// (wait_fd/wait_fds/futex_wait returned EINTR): the blocking call goes on
// waiting if every handler that ran had SA_RESTART and no timeout bounds
// the call (`deadline` from SO_RCVTIMEO/SO_SNDTIMEO; a call that has none
// passes Deadline::never()). Calls that never restart (poll, select,
// epoll_wait, sleeps, sigtimedwait, sem_timedwait) fail with EINTR without
// asking.
// A wait pthread_cancel interrupted never restarts (cancel.h).
inline bool restarts_after(int rc, Deadline deadline) {
    return rc == EINTR && !cancel_interrupted() && signals::restarts(deadline);
}

// Turns a wait_fd() result into the errno a blocking call would have
// reported; returns false if the caller must fail with it. `deadline` is
// the call's timeout, if any (see restarts_after).
inline bool waited(int rc, Deadline deadline = Deadline::never()) {
    if (rc == 0 || restarts_after(rc, deadline)) return true;
    errno = (rc == ETIMEDOUT) ? EAGAIN : rc;  // SO_RCVTIMEO/SO_SNDTIMEO expiry is EAGAIN
    return false;
}

}  // namespace greenld
