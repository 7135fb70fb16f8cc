// Socket lifecycle: creation, listen/accept, connect, and the per-socket
// timeouts. Every call that creates an fd records it in the FdTable, from any
// thread, so that a reused fd number never carries a dead file's state.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>

#include "cancel.h"
#include "next.h"
#include "offload.h"
#include "transfer.h"

using namespace greenld;

namespace {

next::Symbol<decltype(::socket)> next_socket{"socket"};
next::Symbol<decltype(::socketpair)> next_socketpair{"socketpair"};
next::Symbol<decltype(::listen)> next_listen{"listen"};
next::Symbol<decltype(::accept)> next_accept{"accept"};
next::Symbol<decltype(::accept4)> next_accept4{"accept4"};
next::Symbol<decltype(::connect)> next_connect{"connect"};
next::Symbol<decltype(::setsockopt)> next_setsockopt{"setsockopt"};
next::Symbol<decltype(::shutdown)> next_shutdown{"shutdown"};

FdKind kind_of_type(int type) {
    return (type & 0xf) == SOCK_STREAM ? FdKind::stream : FdKind::datagram;
}

void record_socket(int fd, int type) {
    FdTable::get().reset(fd, kind_of_type(type), (type & SOCK_NONBLOCK) != 0, true);
}

// A listener that fibers accept on is made non-blocking in the kernel, if
// this process created it: a connection another process (a prefork sibling)
// accepted first must give EAGAIN, not block the hub. Native threads keep
// blocking semantics through cooperative_entry().
void prepare_listener(int fd, FdEntry* e) {
    if (e->kernel_nonblock.load(std::memory_order_relaxed) || !e->owned.load(std::memory_order_relaxed)) return;
    long fl = native::sys(SYS_fcntl, fd, F_GETFL);
    if (fl < 0) return;
    if (native::sys(SYS_fcntl, fd, F_SETFL, fl | O_NONBLOCK) == 0) {
        FdTable::get().note_kernel_nonblock(fd);
        e->kernel_nonblock.store(true, std::memory_order_relaxed);
    }
}

int accept_common(int fd, sockaddr* addr, socklen_t* len, int flags, bool four) {
    FdEntry* e = cooperative_entry(fd);
    if (!e || e->kind.load(std::memory_order_relaxed) != FdKind::listener) {
        int r = four ? next_accept4(fd, addr, len, flags) : next_accept(fd, addr, len);
        if (r >= 0) FdTable::get().reset(r, FdKind::stream, (flags & SOCK_NONBLOCK) != 0, true);
        return r;
    }
    if (Hub::current_fiber()) prepare_listener(fd, e);
    const bool nonblocking_kernel = e->kernel_nonblock.load(std::memory_order_relaxed);
    long r = read_loop(fd, e, 0, false, timeout_deadline(e->rcv_timeout_ns), [&]() -> long {
        auto accept_call = [&] {
            return syscall_result(native::sys(SYS_accept4, fd, reinterpret_cast<long>(addr),
                                              reinterpret_cast<long>(len), flags));
        };
        if (nonblocking_kernel) return accept_call();
        // An inherited listener stays blocking: wait until a connection is
        // there, then accept on the blocking-call pool, where losing it to
        // another process sharing the listener blocks only this fiber.
        if (!waited(wait_fd(fd, kWaitRead, Deadline::never()))) return -1;
        return offload_if_fiber(JobKind::io, accept_call);
    }, EINVAL, nonblocking_kernel);
    if (r >= 0) {
        FdTable::get().reset(int(r), FdKind::stream, (flags & SOCK_NONBLOCK) != 0, true);
        // Wait for readiness before the next accept: should an exec'ed child
        // have put the shared listener back in blocking mode (see
        // process.cpp), accept is then only tried when a connection is there.
        e->rd_hint.store(ReadHint::empty, std::memory_order_relaxed);
    }
    return int(r);
}

int64_t timeval_ns(const void* value, socklen_t len) {
    if (!value || len < sizeof(timeval)) return 0;
    auto* tv = static_cast<const timeval*>(value);
    return int64_t(tv->tv_sec) * 1000000000 + int64_t(tv->tv_usec) * 1000;
}

}  // namespace

GREENLD_EXPORT int socket(int domain, int type, int protocol) {
    int fd = next_socket(domain, type, protocol);
    if (fd >= 0) record_socket(fd, type);
    return fd;
}

GREENLD_EXPORT int socketpair(int domain, int type, int protocol, int sv[2]) {
    int r = next_socketpair(domain, type, protocol, sv);
    if (r == 0) {
        record_socket(sv[0], type);
        record_socket(sv[1], type);
        FdTable::get().link_peer(sv[0], sv[1]);
        FdTable::get().link_peer(sv[1], sv[0]);
    }
    return r;
}

GREENLD_EXPORT int listen(int fd, int backlog) {
    int r = next_listen(fd, backlog);
    if (r == 0) {
        if (FdEntry* e = FdTable::get().entry(fd)) e->kind.store(FdKind::listener, std::memory_order_release);
    }
    return r;
}

GREENLD_EXPORT int accept(int fd, sockaddr* addr, socklen_t* len) {
    CancelPoint cancel_point;
    return accept_common(fd, addr, len, 0, false);
}

GREENLD_EXPORT int accept4(int fd, sockaddr* addr, socklen_t* len, int flags) {
    CancelPoint cancel_point;
    return accept_common(fd, addr, len, flags, true);
}

GREENLD_EXPORT int connect(int fd, const sockaddr* addr, socklen_t len) {
    CancelPoint cancel_point;
    FdEntry* e = Hub::current_fiber() ? cooperative_entry(fd) : nullptr;
    // Only a blocking stream socket we created may be flipped to
    // non-blocking for the duration of the handshake.
    if (!e || e->kind.load(std::memory_order_relaxed) != FdKind::stream || !e->owned.load(std::memory_order_relaxed))
        return next_connect(fd, addr, len);
    long fl = native::sys(SYS_fcntl, fd, F_GETFL);
    if (fl < 0 || native::sys(SYS_fcntl, fd, F_SETFL, fl | O_NONBLOCK) != 0) return next_connect(fd, addr, len);
    long r = native::sys(SYS_connect, fd, reinterpret_cast<long>(addr), len);
    int err = r < 0 ? int(-r) : 0;
    // EALREADY: an earlier connect was interrupted by a signal (EINTR) and
    // its handshake is still running; a blocking connect waits for it.
    if (err == EINPROGRESS || err == EALREADY) {
        // SO_SNDTIMEO bounds a blocking connect; on expiry Linux reports
        // EINPROGRESS and leaves the handshake running. A signal handler
        // ends the wait with EINTR, or under SA_RESTART (without a timeout)
        // the same handshake goes on being waited for.
        const Deadline deadline = timeout_deadline(e->snd_timeout_ns);
        int rc;
        do rc = wait_fd(fd, kWaitWrite, deadline);
        while (restarts_after(rc, deadline));
        if (rc == 0) {
            int so_error = 0;
            socklen_t sl = sizeof so_error;
            native::sys(SYS_getsockopt, fd, SOL_SOCKET, SO_ERROR, reinterpret_cast<long>(&so_error),
                        reinterpret_cast<long>(&sl));
            err = so_error;
            // A completed non-blocking connect leaves the socket "connecting"
            // until connect() is called again; a blocking connect would have
            // finished that transition, so a later connect() sees EISCONN.
            if (!err) native::sys(SYS_connect, fd, reinterpret_cast<long>(addr), len);
        } else {
            err = (rc == ETIMEDOUT) ? EINPROGRESS : rc;
        }
    }
    native::sys(SYS_fcntl, fd, F_SETFL, fl);
    if (err) {
        errno = err;
        return -1;
    }
    return 0;
}

GREENLD_EXPORT int setsockopt(int fd, int level, int name, const void* value, socklen_t len) {
    int r = next_setsockopt(fd, level, name, value, len);
    if (r == 0 && level == SOL_SOCKET && (name == SO_RCVTIMEO || name == SO_SNDTIMEO)) {
        const int64_t ns = timeval_ns(value, len);
        // Socket options belong to the socket: every dup sees them.
        FdTable::get().for_each_sharing(fd, [&](FdEntry* x) {
            (name == SO_RCVTIMEO ? x->rcv_timeout_ns : x->snd_timeout_ns).store(ns, std::memory_order_relaxed);
        });
    }
    return r;
}

GREENLD_EXPORT int shutdown(int fd, int how) {
    int r = next_shutdown(fd, how);
    if (r == 0) {
        if (FdEntry* e = FdTable::get().entry(fd)) {
            uint64_t bits = (how == SHUT_RD || how == SHUT_RDWR ? FdEntry::kShutRead : 0) |
                            (how == SHUT_WR || how == SHUT_RDWR ? FdEntry::kShutWrite : 0);
            uint64_t gen = e->generation.load(std::memory_order_acquire);
            uint64_t old = e->shutdown_mark.load(std::memory_order_relaxed);
            uint64_t mark = (old >> 32) == gen ? old | bits : (gen << 32) | bits;
            e->shutdown_mark.store(mark, std::memory_order_release);
        }
    }
    return r;
}
