// sendfile, splice, tee, vmsplice: in-kernel transfers through pipes.
//
// Pipes stay blocking in the kernel, so every attempt passes
// SPLICE_F_NONBLOCK, which makes the *pipe* sides non-blocking for that call
// only. A socket side ignores it (TCP reads and every socket write follow
// the file's O_NONBLOCK), and sendfile has no flags at all: for those the
// socket is lent kernel O_NONBLOCK for the one attempt (nonblock_loan.h),
// if this process created it; a socket we did not create (inherited, as
// inetd hands one over) gets a readiness wait and then the blocking call on
// the blocking-call pool, where it may sleep on the socket for as long as
// the peer takes, blocking only its fiber. On EAGAIN the fiber parks
// on whichever side would block (poll with a zero timeout tells which).
//
// Regular files never wait (the kernel does not either: page-cache reads
// and writes are not "blocking" in the poll sense).
//
// What the blocking calls return, and the loops below reproduce:
//   splice/tee/vmsplice with a pipe end, sendfile to a pipe: one transfer,
//     as soon as some bytes moved (0 at end of input).
//   splice pipe -> socket: keeps taking from the pipe and sending until
//     `len` bytes went or the pipe runs dry after some bytes went.
//   sendfile to a socket: `count` bytes or up to end of file; a timeout or
//     error after progress returns the progress.
// copy_file_range moves between regular files only, which never wait: it
// stays plain libc.
#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#include "next.h"
#include "nonblock_loan.h"
#include "offload.h"
#include "transfer.h"

using namespace greenld;

namespace {

next::Symbol<decltype(::sendfile)> next_sendfile{"sendfile"};
next::Symbol<decltype(::sendfile64)> next_sendfile64{"sendfile64"};
next::Symbol<decltype(::splice)> next_splice{"splice"};
next::Symbol<decltype(::tee)> next_tee{"tee"};
next::Symbol<decltype(::vmsplice)> next_vmsplice{"vmsplice"};

constexpr size_t kMaxRwCount = 0x7ffff000;  // MAX_RW_COUNT: the kernel's cap on one transfer

long sys_splice(int in, loff_t* off_in, int out, loff_t* off_out, size_t len, unsigned flags) {
    return syscall_result(native::sys(SYS_splice, in, reinterpret_cast<long>(off_in), out,
                                      reinterpret_cast<long>(off_out), long(len), long(flags | SPLICE_F_NONBLOCK)));
}

enum class End { pipe, file, socket, other };

struct EndInfo {
    int fd;
    End what = End::other;
    FdEntry* e = nullptr;
};

EndInfo end_of(int fd) {
    EndInfo info{fd};
    FdEntry* e = FdTable::get().entry(fd);
    if (!e) return info;
    FdKind k = e->kind.load(std::memory_order_acquire);
    if (k == FdKind::unknown) k = FdTable::get().classify(fd, e);
    info.e = e;
    switch (k) {
        case FdKind::pipe: info.what = End::pipe; break;
        case FdKind::stream: info.what = End::socket; break;
        case FdKind::file: info.what = End::file; break;
        case FdKind::pollable: {
            // A FIFO whose reads refused RWF_NOWAIT is recorded as pollable.
            struct stat st;
            if (native::sys(SYS_fstat, fd, reinterpret_cast<long>(&st)) == 0 && S_ISFIFO(st.st_mode))
                info.what = End::pipe;
            break;
        }
        default: break;
    }
    return info;
}

// May this end take part in a cooperative transfer? Not if the program made
// it non-blocking (its EAGAIN is then the answer) or its family is not
// patched.
bool cooperative_end(const EndInfo& x) {
    if (x.what == End::other) return false;
    if (x.what == End::file) return true;
    if (x.e->user_nonblock.load(std::memory_order_relaxed)) return false;
    return config::patched(x.what == End::socket ? config::kPatchSocket : config::kPatchOs);
}

// A side of a transfer that can make it wait.
struct Side {
    int fd = -1;
    unsigned events = 0;
    Deadline deadline = Deadline::never();
};

Side side_of(const EndInfo& x, unsigned events) {
    if (x.what == End::file) return {};
    Side s{x.fd, events};
    if (x.what == End::socket)
        s.deadline = timeout_deadline(events == kWaitRead ? x.e->rcv_timeout_ns : x.e->snd_timeout_ns);
    return s;
}

bool ready_now(const Side& s) {
    if (s.fd < 0) return true;
    pollfd p{s.fd, short(s.events == kWaitRead ? POLLIN : POLLOUT), 0};
    return native::sys(SYS_poll, reinterpret_cast<long>(&p), 1, 0) == 1;  // POLLHUP/POLLERR count: the call will say
}

// After EAGAIN: parks on the first side that is not ready. Returns 0 to
// retry, a wait_fd error, or -1 if both sides look ready (a race: retry).
int wait_blocked_side(const Side& a, const Side& b) {
    for (const Side* s : {&a, &b})
        if (!ready_now(*s)) return wait_fd(s->fd, s->events, s->deadline);
    return -1;
}

// The loop for transfers the blocking call completes as soon as some bytes
// moved: attempt() is the call with the pipe sides non-blocking; blocking()
// is the plain call, used only if EAGAIN keeps coming with both sides ready.
template <typename Attempt, typename Blocking>
long transfer_once(const Side& in, const Side& out, Attempt attempt, Blocking blocking) {
    const int saved_errno = errno;
    int races = 0;
    for (;;) {
        long r = attempt();
        if (r >= 0) {
            errno = saved_errno;
            return r;
        }
        if (errno != EAGAIN) return -1;
        int rc = wait_blocked_side(in, out);
        if (rc < 0 && ++races > 3) {
            errno = saved_errno;
            return blocking();
        }
        if (rc > 0) {
            errno = (rc == ETIMEDOUT) ? EAGAIN : rc;
            return -1;
        }
    }
}

long pipe_bytes(int fd) {
    int n = 0;
    return native::sys(SYS_ioctl, fd, FIONREAD, reinterpret_cast<long>(&n)) == 0 ? n : 0;
}

// splice from a pipe to a stream socket. The blocking call sends all it
// takes from the pipe (sleeping on the socket as needed) and returns once
// `len` went or the pipe is empty after some went.
long splice_pipe_to_socket(const EndInfo& in, const EndInfo& out, size_t len, unsigned flags) {
    const Side pipe_side = side_of(in, kWaitRead), socket_side = side_of(out, kWaitWrite);
    const int saved_errno = errno;
    size_t done = 0;
    bool failed = false;
    int races = 0;
    for (;;) {
        long r;
        {
            NonblockLoan loan(out.fd, out.e);
            if (!loan.active()) {
                // Not ours to flip: wait for room, then the blocking call
                // on the pool (it may sleep on the socket until all went).
                if (done) break;
                if (!waited(wait_fd(out.fd, kWaitWrite, socket_side.deadline))) return -1;
                errno = saved_errno;
                return offload_if_fiber(JobKind::io,
                                        [&] { return long(next_splice(in.fd, nullptr, out.fd, nullptr, len, flags)); });
            }
            r = sys_splice(in.fd, nullptr, out.fd, nullptr, len - done, flags);
        }
        if (r == 0) break;  // no writer left and nothing in the pipe
        if (r > 0) {
            done += size_t(r);
            if (done >= len || pipe_bytes(in.fd) == 0) break;
            continue;  // the socket filled up: the next attempt parks on it
        }
        if (errno != EAGAIN || (done && pipe_bytes(in.fd) == 0)) {
            failed = true;
            break;
        }
        int rc = wait_blocked_side(done ? Side{} : pipe_side, socket_side);
        if (rc < 0 && ++races > 3) rc = wait_fd(out.fd, kWaitWrite, socket_side.deadline);
        if (rc > 0) {
            errno = (rc == ETIMEDOUT) ? EAGAIN : rc;
            failed = true;
            break;
        }
    }
    if (failed && !done) return -1;
    errno = saved_errno;
    return long(done);
}

// sendfile from a regular file to a stream socket: everything up to `count`
// or end of file.
template <typename Sendfile>
long sendfile_to_socket(const EndInfo& out, size_t count, Sendfile real_sendfile) {
    if (count > kMaxRwCount) count = kMaxRwCount;
    const Deadline deadline = timeout_deadline(out.e->snd_timeout_ns);
    const int saved_errno = errno;
    size_t done = 0;
    bool failed = false;
    for (;;) {
        long r;
        {
            NonblockLoan loan(out.fd, out.e);
            if (!loan.active()) {
                if (done) break;
                if (!waited(wait_fd(out.fd, kWaitWrite, deadline))) return -1;
                errno = saved_errno;
                return offload_if_fiber(JobKind::io, [&] { return real_sendfile(count); });
            }
            r = real_sendfile(count - done);
        }
        if (r == 0) break;  // end of file
        if (r > 0) {
            done += size_t(r);
            if (done >= count) break;
            continue;  // a full socket or the end of the file: the next attempt tells
        }
        if (errno != EAGAIN) {
            failed = true;
            break;
        }
        int rc = wait_fd(out.fd, kWaitWrite, deadline);
        if (rc) {
            errno = (rc == ETIMEDOUT) ? EAGAIN : rc;
            failed = true;
            break;
        }
    }
    if (failed && !done) return -1;
    errno = saved_errno;
    return long(done);
}

template <typename Sendfile, typename Offset>
long sendfile_common(int out_fd, int in_fd, Offset* offset, size_t count, Sendfile next) {
    if (!Hub::current_fiber()) return next(out_fd, in_fd, offset, count);
    const EndInfo in = end_of(in_fd), out = end_of(out_fd);
    if (in.what != End::file || !cooperative_end(out)) return next(out_fd, in_fd, offset, count);
    if (out.what == End::pipe) {
        // The kernel's sendfile to a pipe is splice from the file: one
        // transfer into whatever room the pipe has.
        static_assert(sizeof(Offset) == sizeof(loff_t));
        auto* off = reinterpret_cast<loff_t*>(offset);
        return transfer_once(
            Side{}, side_of(out, kWaitWrite), [&] { return sys_splice(in_fd, off, out_fd, nullptr, count, 0); },
            [&] { return long(next(out_fd, in_fd, offset, count)); });
    }
    if (out.what != End::socket) return next(out_fd, in_fd, offset, count);
    return sendfile_to_socket(out, count, [&](size_t n) { return long(next(out_fd, in_fd, offset, n)); });
}

bool in_fiber_without_nonblock(unsigned flags) {
    return Hub::current_fiber() != nullptr && !(flags & SPLICE_F_NONBLOCK);
}

}  // namespace

GREENLD_EXPORT ssize_t sendfile(int out_fd, int in_fd, off_t* offset, size_t count) {
    return sendfile_common(out_fd, in_fd, offset, count,
                           [](int o, int i, off_t* off, size_t n) { return next_sendfile(o, i, off, n); });
}

GREENLD_EXPORT ssize_t sendfile64(int out_fd, int in_fd, off64_t* offset, size_t count) {
    return sendfile_common(out_fd, in_fd, offset, count,
                           [](int o, int i, off64_t* off, size_t n) { return next_sendfile64(o, i, off, n); });
}

GREENLD_EXPORT ssize_t splice(int in_fd, loff_t* off_in, int out_fd, loff_t* off_out, size_t len, unsigned flags) {
    if (!in_fiber_without_nonblock(flags)) return next_splice(in_fd, off_in, out_fd, off_out, len, flags);
    const EndInfo in = end_of(in_fd), out = end_of(out_fd);
    const bool one_pipe = in.what == End::pipe || out.what == End::pipe;
    if (!one_pipe || !cooperative_end(in) || !cooperative_end(out))
        return next_splice(in_fd, off_in, out_fd, off_out, len, flags);
    if (in.what == End::pipe && out.what == End::socket) {
        if (off_in || off_out) return next_splice(in_fd, off_in, out_fd, off_out, len, flags);  // ESPIPE
        return splice_pipe_to_socket(in, out, len, flags);
    }
    auto blocking = [&] { return long(next_splice(in_fd, off_in, out_fd, off_out, len, flags)); };
    if (in.what == End::socket) {
        // TCP reads ignore SPLICE_F_NONBLOCK: lend the socket O_NONBLOCK,
        // or wait until it is readable if it is not ours.
        const Side from = side_of(in, kWaitRead);
        return transfer_once(from, side_of(out, kWaitWrite), [&]() -> long {
            NonblockLoan loan(in_fd, in.e);
            if (loan.active()) return sys_splice(in_fd, off_in, out_fd, off_out, len, flags);
            if (!ready_now(from) && !waited(wait_fd(in_fd, kWaitRead, from.deadline))) return -1;
            return offload_if_fiber(JobKind::io, [&] { return sys_splice(in_fd, off_in, out_fd, off_out, len, flags); });
        }, blocking);
    }
    return transfer_once(side_of(in, kWaitRead), side_of(out, kWaitWrite),
                         [&] { return sys_splice(in_fd, off_in, out_fd, off_out, len, flags); }, blocking);
}

GREENLD_EXPORT ssize_t tee(int in_fd, int out_fd, size_t len, unsigned flags) {
    if (!in_fiber_without_nonblock(flags)) return next_tee(in_fd, out_fd, len, flags);
    const EndInfo in = end_of(in_fd), out = end_of(out_fd);
    if (in.what != End::pipe || out.what != End::pipe || !cooperative_end(in) || !cooperative_end(out))
        return next_tee(in_fd, out_fd, len, flags);
    return transfer_once(
        side_of(in, kWaitRead), side_of(out, kWaitWrite),
        [&] {
            return syscall_result(native::sys(SYS_tee, in_fd, out_fd, long(len), long(flags | SPLICE_F_NONBLOCK)));
        },
        [&] { return long(next_tee(in_fd, out_fd, len, flags)); });
}

GREENLD_EXPORT ssize_t vmsplice(int fd, const iovec* iov, size_t count, unsigned flags) {
    if (!in_fiber_without_nonblock(flags)) return next_vmsplice(fd, iov, count, flags);
    const EndInfo pipe = end_of(fd);
    if (pipe.what != End::pipe || !cooperative_end(pipe)) return next_vmsplice(fd, iov, count, flags);
    // The kernel moves user memory into the pipe if the fd is open for
    // writing, else out of it.
    long mode = native::sys(SYS_fcntl, fd, F_GETFL);
    if (mode < 0) return next_vmsplice(fd, iov, count, flags);
    const bool to_pipe = (mode & O_ACCMODE) != O_RDONLY;
    const Side side = side_of(pipe, to_pipe ? kWaitWrite : kWaitRead);
    return transfer_once(
        to_pipe ? Side{} : side, to_pipe ? side : Side{},
        [&] {
            return syscall_result(native::sys(SYS_vmsplice, fd, reinterpret_cast<long>(iov), long(count),
                                              long(flags | SPLICE_F_NONBLOCK)));
        },
        [&] { return long(next_vmsplice(fd, iov, count, flags)); });
}
