// The blocking-transfer loops shared by the read/write, recv/send and
// accept wrappers: try the call in non-blocking form when the readiness hint
// says it may succeed, park on the fd when it would block, and give the
// program exactly what the blocking call would have.
#pragma once

#include <sys/uio.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>

#include "../runtime/native.h"
#include "cooperative.h"

namespace greenld {

// A raw syscall result, as libc reports it.
inline long syscall_result(long r) {
    if (r < 0 && r > -4096) {
        errno = int(-r);
        return -1;
    }
    return r;
}

inline bool is_socket(FdKind k) { return k == FdKind::stream || k == FdKind::datagram || k == FdKind::listener; }

// The read hint's policy (fd_table.h): whether read_loop tries its call
// before waiting. `ready`: yes; `empty`: no. `filled` (the last read filled
// its buffer): yes, unless such attempts keep finding nothing on this fd (a
// peer that answers only after our next message, as in a request/response
// exchange read with exact-size reads): then it waits first, and every
// kFilledProbe-th time tries anyway, to notice the traffic changing.
constexpr uint8_t kFilledMissesToWait = 2, kFilledMissesMax = 3, kFilledProbe = 16;

inline bool read_first(FdEntry* e, ReadHint hint) {
    if (hint != ReadHint::filled) return hint == ReadHint::ready;
    if (e->rd_filled_misses.load(std::memory_order_relaxed) < kFilledMissesToWait) return true;
    const uint8_t waits = uint8_t(e->rd_filled_waits.load(std::memory_order_relaxed) + 1);
    e->rd_filled_waits.store(waits >= kFilledProbe ? 0 : waits, std::memory_order_relaxed);
    return waits >= kFilledProbe;
}

// What an attempt made in `hint` state teaches: `got` is false for EAGAIN.
inline void note_read(FdEntry* e, ReadHint hint, bool got, long n, size_t want, bool stream) {
    if (hint == ReadHint::filled) {
        const uint8_t m = e->rd_filled_misses.load(std::memory_order_relaxed);
        e->rd_filled_misses.store(got ? 0 : (m < kFilledMissesMax ? uint8_t(m + 1) : m), std::memory_order_relaxed);
    }
    if (!got) {
        e->rd_hint.store(ReadHint::empty, std::memory_order_relaxed);
    } else if (want) {
        // A short stream read took everything queued; a full one, or a
        // datagram, says nothing of what follows.
        e->rd_hint.store(stream && size_t(n) < want ? ReadHint::empty : ReadHint::filled, std::memory_order_relaxed);
    }
}

// Returns as soon as one attempt transfers something (or fails otherwise
// than EAGAIN). `want` (0: unknown, or a peek) lets a short read on a stream
// mark the fd drained. errno is left as the program had it when the call
// succeeds, as glibc does, even if an attempt on the way returned EAGAIN.
// A shutdown(SHUT_RD) by another thread wakes a blocked reader natively
// with `at_shutdown` (0: EOF; accept gets -1/EINVAL), even if the fd is
// closed right after: the reader was already on its way out.
// At a timeout or an interruption that does not restart, the blocking call
// returns whatever is there by then: one last attempt, unless `last_try` is
// false (an attempt that itself waits).
template <typename Attempt>
long read_loop(int fd, FdEntry* e, size_t want, bool stream, Deadline deadline, Attempt attempt,
               int at_shutdown_errno = 0, bool last_try = true) {
    const int saved_errno = errno;
    const uint32_t generation = e->generation.load(std::memory_order_acquire);
    // After a wake-up we always try: the hint is only set by hub watchers,
    // and a native thread's wait does not go through them.
    bool woken = false;
    for (;;) {
        const ReadHint hint = woken ? ReadHint::ready : e->rd_hint.load(std::memory_order_relaxed);
        if (woken || read_first(e, hint)) {
            woken = false;
            long n = attempt();
            if (n >= 0 || errno == EAGAIN) note_read(e, hint, n >= 0, n, want, stream);
            if (n >= 0) {
                errno = saved_errno;
                return n;
            }
            if (errno != EAGAIN) return -1;
        }
        int rc = wait_fd(fd, kWaitRead | kWaitExclusive, deadline);
        if (rc == EBADF && e->shut_for_reading_in(generation)) {
            if (!at_shutdown_errno) {
                errno = saved_errno;
                return 0;
            }
            errno = at_shutdown_errno;
            return -1;
        }
        if (last_try && (rc == ETIMEDOUT || (rc == EINTR && !restarts_after(rc, deadline) && !cancel_interrupted()))) {
            long n = attempt();
            if (n >= 0) {
                note_read(e, ReadHint::ready, true, n, want, stream);
                errno = saved_errno;
                return n;
            }
            if (errno != EAGAIN) return -1;
        }
        if (!waited(rc, deadline)) return -1;
        woken = true;
    }
}

// Transfers all `total` bytes when `all` (a blocking stream write), else
// one successful attempt (datagrams, pipes' atomic writes). attempt(done)
// sends from offset `done`. A failure after progress returns the progress,
// as the kernel does.
template <typename Attempt>
long write_loop(int fd, FdEntry* e, size_t total, bool all, Deadline deadline, Attempt attempt) {
    const int saved_errno = errno;
    size_t done = 0;
    bool woken = false;
    for (;;) {
        if (woken || e->wr_ready.load(std::memory_order_relaxed)) {
            woken = false;
            long n = attempt(done);
            if (n >= 0) {
                if (n > 0 && e->peer.load(std::memory_order_relaxed) >= 0) wake_peer_readers(e);
                done += size_t(n);
                if (!all || done >= total) {
                    errno = saved_errno;
                    return long(done);
                }
                e->wr_ready.store(false, std::memory_order_relaxed);
                continue;
            }
            if (errno != EAGAIN) {
                if (!done) return -1;
                errno = saved_errno;
                return long(done);
            }
            e->wr_ready.store(false, std::memory_order_relaxed);
        }
        int rc = wait_fd(fd, kWaitWrite | kWaitExclusive, deadline);
        if (restarts_after(rc, deadline)) rc = 0;
        if (rc == ETIMEDOUT) {
            // The blocking call sends what fits when its time is up: a wait
            // begun on a stale "would block" must not hide free space.
            long n = attempt(done);
            if (n > 0) {
                done += size_t(n);
                if (e->peer.load(std::memory_order_relaxed) >= 0) wake_peer_readers(e);
            }
            if (n < 0 && errno != EAGAIN && !done) return -1;
        }
        if (rc) {
            if (done) {
                errno = saved_errno;
                return long(done);
            }
            errno = (rc == ETIMEDOUT) ? EAGAIN : rc;
            return -1;
        }
        woken = true;
    }
}

// An iovec array that can be advanced past transferred bytes without
// touching the program's array.
class IovCursor {
public:
    IovCursor(const iovec* iov, int count) {
        count_ = count < 0 ? 0 : count;
        v_ = count_ <= kInline ? inline_ : static_cast<iovec*>(malloc(sizeof(iovec) * size_t(count_)));
        if (!v_) {
            v_ = inline_;
            count_ = 0;
            failed_ = true;
            return;
        }
        if (count_) memcpy(v_, iov, sizeof(iovec) * size_t(count_));
        for (int i = 0; i < count_; ++i) total_ += v_[i].iov_len;
    }
    ~IovCursor() {
        if (v_ != inline_) free(v_);
    }
    IovCursor(const IovCursor&) = delete;
    IovCursor& operator=(const IovCursor&) = delete;

    bool failed() const { return failed_; }
    size_t total() const { return total_; }
    // The array starting `offset` bytes into the original.
    iovec* at(size_t offset, int* count) {
        size_t skip = offset - advanced_;
        while (first_ < count_ && skip >= v_[first_].iov_len) {
            skip -= v_[first_].iov_len;
            advanced_ += v_[first_].iov_len;
            ++first_;
        }
        if (first_ < count_ && skip) {
            v_[first_].iov_base = static_cast<char*>(v_[first_].iov_base) + skip;
            v_[first_].iov_len -= skip;
            advanced_ += skip;
        }
        *count = count_ - first_;
        return v_ + first_;
    }

private:
    static constexpr int kInline = 8;
    iovec inline_[kInline];
    iovec* v_;
    int count_ = 0;
    int first_ = 0;
    size_t total_ = 0;
    size_t advanced_ = 0;
    bool failed_ = false;
};

}  // namespace greenld
