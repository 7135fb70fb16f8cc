// read/write, readv/writev, recv*/send*: the byte-moving calls.
//
// Sockets and pipes stay in blocking mode in the kernel (stdio and other
// glibc-internal I/O on them bypasses these wrappers and must not meet a
// surprise EAGAIN). Each cooperative attempt is made non-blocking per call
// instead: MSG_DONTWAIT for sockets, RWF_NOWAIT for pipes and for reads of
// eventfd/timerfd/signalfd and the character devices that honour it. Other
// pollable fds (ttys, FIFOs, whose files refuse RWF_NOWAIT) are waited on
// first, then read on the blocking-call pool (a lost race with another
// reader blocks a pool thread, not the hub) or written for real.
#include <limits.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "file_read.h"
#include "offload.h"
#include "cancel.h"
#include "next.h"
#include "transfer.h"

using namespace greenld;

namespace {

next::Symbol<decltype(::read)> next_read{"read"};
next::Symbol<decltype(::write)> next_write{"write"};
next::Symbol<decltype(::readv)> next_readv{"readv"};
next::Symbol<decltype(::writev)> next_writev{"writev"};
next::Symbol<decltype(::recv)> next_recv{"recv"};
next::Symbol<decltype(::recvfrom)> next_recvfrom{"recvfrom"};
next::Symbol<decltype(::recvmsg)> next_recvmsg{"recvmsg"};
next::Symbol<decltype(::send)> next_send{"send"};
next::Symbol<decltype(::sendto)> next_sendto{"sendto"};
next::Symbol<decltype(::sendmsg)> next_sendmsg{"sendmsg"};

long sys_recvfrom(int fd, void* buf, size_t n, int flags, sockaddr* addr, socklen_t* len) {
    return syscall_result(native::sys(SYS_recvfrom, fd, reinterpret_cast<long>(buf), long(n), flags | MSG_DONTWAIT,
                                      reinterpret_cast<long>(addr), reinterpret_cast<long>(len)));
}

long sys_sendto(int fd, const void* buf, size_t n, int flags, const sockaddr* addr, socklen_t len) {
    return syscall_result(native::sys(SYS_sendto, fd, reinterpret_cast<long>(buf), long(n), flags | MSG_DONTWAIT,
                                      reinterpret_cast<long>(addr), long(len)));
}

long sys_recvmsg(int fd, msghdr* msg, int flags) {
    return syscall_result(native::sys(SYS_recvmsg, fd, reinterpret_cast<long>(msg), flags | MSG_DONTWAIT));
}

long sys_sendmsg(int fd, const msghdr* msg, int flags) {
    return syscall_result(native::sys(SYS_sendmsg, fd, reinterpret_cast<long>(msg), flags | MSG_DONTWAIT));
}

long sys_preadv2(int fd, const iovec* iov, int count) {
    return syscall_result(native::sys(SYS_preadv2, fd, reinterpret_cast<long>(iov), count, -1, -1, RWF_NOWAIT));
}

long sys_pwritev2(int fd, const iovec* iov, int count) {
    return syscall_result(native::sys(SYS_pwritev2, fd, reinterpret_cast<long>(iov), count, -1, -1, RWF_NOWAIT));
}

// The kind we recorded was wrong (an fd closed behind our back by
// glibc-internal code and reused): learn the truth for next time.
void reclassify(int fd, FdEntry* e) {
    e->kind.store(FdKind::unknown, std::memory_order_relaxed);
    FdTable::get().classify(fd, e);
}

bool pipe_nowait_unsupported(FdEntry* e) {
    if (errno != EOPNOTSUPP) return false;
    e->kind.store(FdKind::pollable, std::memory_order_relaxed);
    return true;
}

bool wait_readable(int fd) { return waited(wait_fd(fd, kWaitRead, Deadline::never())); }

ssize_t vector_read(int fd, FdEntry* e, const iovec* iov, int count) {
    const int saved_errno = errno;
    FdKind kind = e->kind.load(std::memory_order_relaxed);
    size_t want = 0;
    for (int i = 0; i < count; ++i) want += iov[i].iov_len;
    if (kind == FdKind::stream || kind == FdKind::datagram) {
        msghdr msg{};
        msg.msg_iov = const_cast<iovec*>(iov);
        msg.msg_iovlen = size_t(count);
        long n = read_loop(fd, e, want, kind == FdKind::stream, timeout_deadline(e->rcv_timeout_ns),
                           [&] { return sys_recvmsg(fd, &msg, 0); });
        if (n < 0 && errno == ENOTSOCK) {
            reclassify(fd, e);
            errno = saved_errno;
            return next_readv(fd, iov, count);
        }
        return n;
    }
    if (kind == FdKind::pipe) {
        long n = read_loop(fd, e, want, true, Deadline::never(), [&] { return sys_preadv2(fd, iov, count); });
        if (n >= 0 || !pipe_nowait_unsupported(e)) return n;
    } else if (kind == FdKind::pollable && e->read_nowait.load(std::memory_order_relaxed)) {
        // eventfd, timerfd...: a read that cannot be satisfied fails with
        // EAGAIN instead of blocking, so two fibers reading one counter
        // never leave the loser blocking its hub.
        long n = read_loop(fd, e, want, false, Deadline::never(), [&] { return sys_preadv2(fd, iov, count); });
        if (n >= 0 || errno != EOPNOTSUPP) return n;
        e->read_nowait.store(false, std::memory_order_relaxed);
    }
    // No per-call non-blocking read (ttys, FIFOs): wait until readable, then
    // read on the blocking-call pool. Another reader of the file (a process
    // sharing the FIFO or terminal) may take the data first: the read then
    // blocks a pool thread and this fiber, as it would block this thread
    // natively, never the hub.
    errno = saved_errno;
    if (kind != FdKind::listener && !wait_readable(fd)) return -1;
    if (e->kind.load(std::memory_order_relaxed) != FdKind::pollable) return next_readv(fd, iov, count);
    return offload_if_fiber(JobKind::io, [&] { return next_readv(fd, iov, count); });
}

// Waits until `fd` (a pollable fd with no per-call non-blocking write: a
// tty, a FIFO, an eventfd) takes data, then writes at most PIPE_BUF bytes:
// a FIFO reporting POLLOUT has a free buffer and takes that much whole, and
// a tty reporting POLLOUT has room for it in practice. Loops until all is
// written, as a blocking write does, unless a write comes back short (an
// eventfd takes 8 bytes of any longer buffer, and says so).
ssize_t pollable_write(int fd, FdEntry* e, IovCursor& cursor) {
    const size_t total = cursor.total();
    if (total == 0) {
        int left = 0;
        iovec* v = cursor.at(0, &left);
        return next_writev(fd, v, left);
    }
    const int saved_errno = errno;
    size_t done = 0;
    for (;;) {
        pollfd p{fd, POLLOUT, 0};
        const bool writable = e->wr_ready.load(std::memory_order_relaxed) &&
                              native::sys(SYS_poll, reinterpret_cast<long>(&p), 1, 0) == 1;
        if (!writable) {
            e->wr_ready.store(false, std::memory_order_relaxed);
            int rc = wait_fd(fd, kWaitWrite, Deadline::never());
            if (restarts_after(rc, Deadline::never())) rc = 0;
            if (rc) {
                if (done) break;
                errno = rc;
                return -1;
            }
        }
        int left = 0;
        iovec* v = cursor.at(done, &left);
        const size_t chunk = total - done < PIPE_BUF ? total - done : PIPE_BUF;
        int used = 0;
        size_t sum = 0;
        while (used < left && sum < chunk) sum += v[used++].iov_len;
        const size_t last_len = v[used - 1].iov_len;
        v[used - 1].iov_len -= sum - chunk;
        long n = next_writev(fd, v, used);
        v[used - 1].iov_len = last_len;
        if (n < 0) {
            if (done) break;
            return -1;
        }
        done += size_t(n);
        if (done >= total || size_t(n) < chunk) break;
    }
    errno = saved_errno;
    return long(done);
}

ssize_t vector_write(int fd, FdEntry* e, const iovec* iov, int count) {
    const int saved_errno = errno;
    FdKind kind = e->kind.load(std::memory_order_relaxed);
    IovCursor cursor(iov, count);
    if (cursor.failed()) return next_writev(fd, iov, count);
    if (kind == FdKind::stream || kind == FdKind::datagram) {
        long n = write_loop(fd, e, cursor.total(), kind == FdKind::stream, timeout_deadline(e->snd_timeout_ns),
                            [&](size_t done) {
                                msghdr msg{};
                                int left = 0;
                                msg.msg_iov = cursor.at(done, &left);
                                msg.msg_iovlen = size_t(left);
                                return sys_sendmsg(fd, &msg, 0);
                            });
        if (n < 0 && errno == ENOTSOCK) {
            reclassify(fd, e);
            return next_writev(fd, iov, count);
        }
        return n;
    }
    if (kind == FdKind::pipe) {
        long n = write_loop(fd, e, cursor.total(), true, Deadline::never(), [&](size_t done) {
            int left = 0;
            iovec* v = cursor.at(done, &left);
            return sys_pwritev2(fd, v, left);
        });
        if (n >= 0 || !pipe_nowait_unsupported(e)) return n;
        errno = saved_errno;
    }
    if (e->kind.load(std::memory_order_relaxed) == FdKind::pollable) return pollable_write(fd, e, cursor);
    return next_writev(fd, iov, count);
}

bool socket_entry(FdEntry* e) { return e && is_socket(e->kind.load(std::memory_order_relaxed)); }

}  // namespace

GREENLD_EXPORT ssize_t read(int fd, void* buf, size_t n) {
    CancelPoint cancel_point;
    FdEntry* e = cooperative_entry(fd);
    if (!e) {
        if (FdEntry* file = regular_file_entry(fd)) {
            iovec v{buf, n};
            return read_regular_file(fd, file, &v, 1, -1);
        }
        return next_read(fd, buf, n);
    }
    FdKind kind = e->kind.load(std::memory_order_relaxed);
    if (kind == FdKind::stream || kind == FdKind::datagram) {
        long r = read_loop(fd, e, n, kind == FdKind::stream, timeout_deadline(e->rcv_timeout_ns),
                           [&] { return sys_recvfrom(fd, buf, n, 0, nullptr, nullptr); });
        if (r < 0 && errno == ENOTSOCK) {
            reclassify(fd, e);
            return next_read(fd, buf, n);
        }
        return r;
    }
    iovec v{buf, n};
    return vector_read(fd, e, &v, 1);
}

GREENLD_EXPORT ssize_t write(int fd, const void* buf, size_t n) {
    CancelPoint cancel_point;
    FdEntry* e = cooperative_entry(fd);
    if (!e) return next_write(fd, buf, n);
    FdKind kind = e->kind.load(std::memory_order_relaxed);
    if (kind == FdKind::stream || kind == FdKind::datagram) {
        long r = write_loop(fd, e, n, kind == FdKind::stream, timeout_deadline(e->snd_timeout_ns), [&](size_t done) {
            return sys_sendto(fd, static_cast<const char*>(buf) + done, n - done, 0, nullptr, 0);
        });
        if (r < 0 && errno == ENOTSOCK) {
            reclassify(fd, e);
            return next_write(fd, buf, n);
        }
        return r;
    }
    iovec v{const_cast<void*>(buf), n};
    return vector_write(fd, e, &v, 1);
}

GREENLD_EXPORT ssize_t readv(int fd, const iovec* iov, int count) {
    CancelPoint cancel_point;
    FdEntry* e = cooperative_entry(fd);
    if (!e) {
        FdEntry* file = count >= 0 && count <= IOV_MAX ? regular_file_entry(fd) : nullptr;
        if (file) return read_regular_file(fd, file, iov, count, -1);
    }
    if (!e || count < 0 || count > IOV_MAX) return next_readv(fd, iov, count);
    return vector_read(fd, e, iov, count);
}

GREENLD_EXPORT ssize_t writev(int fd, const iovec* iov, int count) {
    CancelPoint cancel_point;
    FdEntry* e = cooperative_entry(fd);
    if (!e || count < 0 || count > IOV_MAX) return next_writev(fd, iov, count);
    return vector_write(fd, e, iov, count);
}

GREENLD_EXPORT ssize_t recvfrom(int fd, void* buf, size_t n, int flags, sockaddr* addr, socklen_t* addrlen) {
    CancelPoint cancel_point;
    FdEntry* e = (flags & MSG_DONTWAIT) ? nullptr : cooperative_entry(fd);
    if (!socket_entry(e)) return next_recvfrom(fd, buf, n, flags, addr, addrlen);
    const bool stream = e->kind.load(std::memory_order_relaxed) == FdKind::stream;
    const Deadline deadline = timeout_deadline(e->rcv_timeout_ns);
    auto* p = static_cast<char*>(buf);
    if (!(flags & MSG_WAITALL) || !stream || (flags & MSG_PEEK)) {
        return read_loop(fd, e, (flags & MSG_PEEK) ? 0 : n, stream, deadline,
                         [&] { return sys_recvfrom(fd, p, n, flags, addr, addrlen); });
    }
    // MSG_WAITALL: the blocking call returns only with n bytes, at EOF, on
    // an error or at the receive timeout, with whatever it has by then.
    size_t got = 0;
    const int once = flags & ~MSG_WAITALL;
    while (got < n) {
        long r = read_loop(fd, e, n - got, true, deadline,
                           [&] { return sys_recvfrom(fd, p + got, n - got, once, addr, addrlen); });
        if (r < 0) return got ? long(got) : -1;
        if (r == 0) break;
        got += size_t(r);
    }
    return long(got);
}

GREENLD_EXPORT ssize_t recv(int fd, void* buf, size_t n, int flags) {
    CancelPoint cancel_point;
    return recvfrom(fd, buf, n, flags, nullptr, nullptr);
}

GREENLD_EXPORT ssize_t recvmsg(int fd, msghdr* msg, int flags) {
    CancelPoint cancel_point;
    FdEntry* e = (flags & MSG_DONTWAIT) ? nullptr : cooperative_entry(fd);
    if (!socket_entry(e)) return next_recvmsg(fd, msg, flags);
    const bool stream = e->kind.load(std::memory_order_relaxed) == FdKind::stream;
    size_t want = 0;
    for (size_t i = 0; i < msg->msg_iovlen; ++i) want += msg->msg_iov[i].iov_len;
    return read_loop(fd, e, (flags & MSG_PEEK) ? 0 : want, stream, timeout_deadline(e->rcv_timeout_ns),
                     [&] { return sys_recvmsg(fd, msg, flags); });
}

GREENLD_EXPORT ssize_t sendto(int fd, const void* buf, size_t n, int flags, const sockaddr* addr, socklen_t len) {
    CancelPoint cancel_point;
    FdEntry* e = (flags & MSG_DONTWAIT) ? nullptr : cooperative_entry(fd);
    if (!socket_entry(e)) return next_sendto(fd, buf, n, flags, addr, len);
    const bool stream = e->kind.load(std::memory_order_relaxed) == FdKind::stream;
    return write_loop(fd, e, n, stream, timeout_deadline(e->snd_timeout_ns), [&](size_t done) {
        return sys_sendto(fd, static_cast<const char*>(buf) + done, n - done, flags, addr, len);
    });
}

GREENLD_EXPORT ssize_t send(int fd, const void* buf, size_t n, int flags) {
    CancelPoint cancel_point;
    return sendto(fd, buf, n, flags, nullptr, 0);
}

GREENLD_EXPORT ssize_t sendmsg(int fd, const msghdr* msg, int flags) {
    CancelPoint cancel_point;
    FdEntry* e = (flags & MSG_DONTWAIT) ? nullptr : cooperative_entry(fd);
    if (!socket_entry(e)) return next_sendmsg(fd, msg, flags);
    const bool stream = e->kind.load(std::memory_order_relaxed) == FdKind::stream;
    IovCursor cursor(msg->msg_iov, int(msg->msg_iovlen));
    if (cursor.failed()) return next_sendmsg(fd, msg, flags);
    return write_loop(fd, e, cursor.total(), stream, timeout_deadline(e->snd_timeout_ns), [&](size_t done) {
        msghdr part = *msg;
        int left = 0;
        part.msg_iov = cursor.at(done, &left);
        part.msg_iovlen = size_t(left);
        // Ancillary data (SCM_RIGHTS...) goes with the first byte only.
        if (done) {
            part.msg_control = nullptr;
            part.msg_controllen = 0;
        }
        return sys_sendmsg(fd, &part, flags);
    });
}

// _FORTIFY_SOURCE variants: glibc's check, then the cooperative call
// (glibc's own would go to the kernel directly).
extern "C" [[noreturn]] void __chk_fail(void);

GREENLD_EXPORT ssize_t __read_chk(int fd, void* buf, size_t n, size_t buflen) {
    if (n > buflen) __chk_fail();
    return read(fd, buf, n);
}

GREENLD_EXPORT ssize_t __recv_chk(int fd, void* buf, size_t n, size_t buflen, int flags) {
    if (n > buflen) __chk_fail();
    return recv(fd, buf, n, flags);
}

GREENLD_EXPORT ssize_t __recvfrom_chk(int fd, void* buf, size_t n, size_t buflen, int flags, sockaddr* addr,
                                      socklen_t* addrlen) {
    if (n > buflen) __chk_fail();
    return recvfrom(fd, buf, n, flags, addr, addrlen);
}
