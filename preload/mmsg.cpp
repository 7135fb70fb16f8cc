// recvmmsg/sendmmsg: several datagrams per call.
//
// Each attempt is the kernel's own call with MSG_DONTWAIT added (the kernel
// then fills as many entries as it can without blocking); the fiber parks
// where the blocking call would have slept inside the kernel's loop, and the
// loop around the attempts reproduces what the blocking call would return:
//
// recvmmsg (net/socket.c do_recvmmsg) waits for the first datagram, then,
//   unless MSG_WAITFORONE, keeps waiting for each next one until vlen are
//   in, an error stops it (returned by the next call), a datagram carries
//   MSG_OOB, or the timeout has expired -- checked only after a datagram
//   arrives, never while waiting (a documented kernel bug that programs
//   live with). The remaining time is written back when datagrams > 0.
// sendmmsg sends every message, blocking as needed; it fails only if none
//   was sent, else returns how many were. On a stream socket a message cut
//   short by a full buffer is finished first, as a blocking sendmsg would.
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>

#include "next.h"
#include "transfer.h"

using namespace greenld;

namespace {

next::Symbol<decltype(::recvmmsg)> next_recvmmsg{"recvmmsg"};
next::Symbol<decltype(::sendmmsg)> next_sendmmsg{"sendmmsg"};

constexpr unsigned kMaxVlen = 1024;  // UIO_MAXIOV: the kernel silently clamps vlen to it
constexpr int64_t kNsPerSec = 1000000000;

long sys_recvmmsg(int fd, mmsghdr* vec, unsigned vlen, int flags, timespec* timeout) {
    return syscall_result(native::sys(SYS_recvmmsg, fd, reinterpret_cast<long>(vec), long(vlen), flags | MSG_DONTWAIT,
                                      reinterpret_cast<long>(timeout)));
}

long sys_sendmmsg(int fd, mmsghdr* vec, unsigned vlen, int flags) {
    return syscall_result(
        native::sys(SYS_sendmmsg, fd, reinterpret_cast<long>(vec), long(vlen), flags | MSG_DONTWAIT));
}

long sys_sendmsg(int fd, const msghdr* msg, int flags) {
    return syscall_result(native::sys(SYS_sendmsg, fd, reinterpret_cast<long>(msg), flags | MSG_DONTWAIT));
}

bool socket_entry(FdEntry* e) {
    FdKind k = e ? e->kind.load(std::memory_order_relaxed) : FdKind::unknown;
    return k == FdKind::stream || k == FdKind::datagram;
}

// An error the kernel parked on the socket (sk_err) while a blocking
// recvmmsg would have been waiting: it ends that call with what it has, and
// the next call reports the error. poll sees it without consuming it.
bool error_pending(int fd) {
    pollfd p{fd, POLLIN, 0};
    return native::sys(SYS_poll, reinterpret_cast<long>(&p), 1, 0) == 1 && (p.revents & POLLERR);
}

// The recvmmsg timeout as the kernel keeps it: an end time on the monotonic
// clock fixed at entry (a zero timeout means "already over").
struct MmsgTimeout {
    timespec* user = nullptr;
    int64_t end_ns = 0;

    int64_t left_ns() const { return end_ns - int64_t(native::monotonic_ns()); }
    bool expired() const { return user && left_ns() <= 0; }
    // What this attempt gives the kernel: the time left, or zero once it is
    // over (the kernel then stops after one datagram, as the original call
    // would have on finding its time up).
    timespec* for_attempt(timespec* buf) const {
        if (!user) return nullptr;
        int64_t left = left_ns();
        if (left < 0) left = 0;
        *buf = timespec{time_t(left / kNsPerSec), long(left % kNsPerSec)};
        return buf;
    }
    void write_back() const {
        if (!user) return;
        int64_t left = left_ns();
        if (left < 0) left = 0;
        *user = timespec{time_t(left / kNsPerSec), long(left % kNsPerSec)};
    }
};

// Finishes a stream message the kernel sent only `sent` bytes of.
size_t finish_stream_message(int fd, FdEntry* e, mmsghdr& m, size_t sent, int flags, Deadline deadline) {
    IovCursor cursor(m.msg_hdr.msg_iov, int(m.msg_hdr.msg_iovlen));
    if (cursor.failed() || sent >= cursor.total()) return sent;
    long more = write_loop(fd, e, cursor.total() - sent, true, deadline, [&](size_t done) {
        msghdr part = m.msg_hdr;
        int left = 0;
        part.msg_iov = cursor.at(sent + done, &left);
        part.msg_iovlen = size_t(left);
        part.msg_control = nullptr;  // ancillary data went with the first byte
        part.msg_controllen = 0;
        return sys_sendmsg(fd, &part, flags);
    });
    return more > 0 ? sent + size_t(more) : sent;
}

size_t message_bytes(const msghdr& h) {
    size_t n = 0;
    for (size_t i = 0; i < h.msg_iovlen; ++i) n += h.msg_iov[i].iov_len;
    return n;
}

}  // namespace

GREENLD_EXPORT int recvmmsg(int fd, mmsghdr* vec, unsigned vlen, int flags, timespec* timeout) {
    FdEntry* e = (flags & MSG_DONTWAIT) ? nullptr : cooperative_entry(fd);
    if (!socket_entry(e)) return next_recvmmsg(fd, vec, vlen, flags, timeout);
    if (vlen > kMaxVlen) vlen = kMaxVlen;
    MmsgTimeout limit;
    if (timeout) {
        // The kernel's own checks of the timeout (EFAULT, EINVAL) and its
        // pending-error check come first; vlen 0 receives nothing.
        if (sys_recvmmsg(fd, nullptr, 0, flags, timeout) < 0) return -1;
        limit.user = timeout;
        int64_t now = int64_t(native::monotonic_ns());
        int64_t span = timeout->tv_sec > (INT64_MAX - now) / kNsPerSec - 1
                           ? INT64_MAX - now
                           : int64_t(timeout->tv_sec) * kNsPerSec + timeout->tv_nsec;
        // A zero timeout is "over" from the start, as the kernel keeps it.
        limit.end_ns = span ? now + span : 0;
    }
    const int saved_errno = errno;
    unsigned done = 0;
    timespec slice;
    auto attempt = [&] { return sys_recvmmsg(fd, vec + done, vlen - done, flags, limit.for_attempt(&slice)); };
    // The first datagram: waited for like any blocking receive.
    long r = read_loop(fd, e, 0, false, timeout_deadline(e->rcv_timeout_ns), attempt);
    if (r <= 0) return int(r);
    for (;;) {
        done += unsigned(r);
        if (done >= vlen || (flags & MSG_WAITFORONE) || limit.expired() ||
            (vec[done - 1].msg_hdr.msg_flags & MSG_OOB))
            break;
        // The kernel stopped short: the next datagram is not there yet (or
        // an error is pending). The blocking call sleeps for it, bounded by
        // SO_RCVTIMEO afresh for each datagram, not by `timeout`.
        e->rd_hint.store(ReadHint::empty, std::memory_order_relaxed);
        if (error_pending(fd)) break;
        r = -1;
        while (r < 0) {
            if (wait_fd(fd, kWaitRead, timeout_deadline(e->rcv_timeout_ns)) != 0 || error_pending(fd)) break;
            r = attempt();
            if (r < 0 && errno != EAGAIN) break;
        }
        if (r <= 0) break;
    }
    limit.write_back();
    errno = saved_errno;
    return int(done);
}

GREENLD_EXPORT int sendmmsg(int fd, mmsghdr* vec, unsigned vlen, int flags) {
    FdEntry* e = (flags & MSG_DONTWAIT) ? nullptr : cooperative_entry(fd);
    if (!socket_entry(e)) return next_sendmmsg(fd, vec, vlen, flags);
    if (vlen > kMaxVlen) vlen = kMaxVlen;
    const bool stream = e->kind.load(std::memory_order_relaxed) == FdKind::stream;
    const Deadline deadline = timeout_deadline(e->snd_timeout_ns);
    const int saved_errno = errno;
    unsigned done = 0;
    bool woken = false;
    for (;;) {
        if (woken || e->wr_ready.load(std::memory_order_relaxed)) {
            woken = false;
            long r = sys_sendmmsg(fd, vec + done, vlen - done, flags);
            if (r == 0) break;  // vlen 0
            if (r > 0) {
                done += unsigned(r);
                mmsghdr& last = vec[done - 1];
                if (stream && last.msg_len < message_bytes(last.msg_hdr)) {
                    last.msg_len = unsigned(finish_stream_message(fd, e, last, last.msg_len, flags, deadline));
                    if (last.msg_len < message_bytes(last.msg_hdr)) break;  // timeout or error: stop here
                }
                if (done >= vlen) break;
                // Fewer than asked: the next message would block, or failed;
                // the next attempt tells which.
                continue;
            }
            if (errno != EAGAIN) {
                if (done) break;
                return -1;
            }
            e->wr_ready.store(false, std::memory_order_relaxed);
        }
        int rc = wait_fd(fd, kWaitWrite, deadline);
        if (rc) {
            if (done) break;
            errno = (rc == ETIMEDOUT) ? EAGAIN : rc;
            return -1;
        }
        woken = true;
    }
    errno = saved_errno;
    return int(done);
}
