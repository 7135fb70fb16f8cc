// Per-fd state, indexed by fd number, shared by all hubs.
//
// The shim never changes the O_NONBLOCK flag of a file description it did
// not create, and the program must always read back the flag it set: so the
// table keeps the program's view (user_nonblock) apart from what the kernel
// has (kernel_nonblock, set only on listening sockets this process created).
// Cooperative I/O on blocking-mode fds uses per-call non-blocking flags
// instead (MSG_DONTWAIT, RWF_NOWAIT).
//
// `generation` is bumped whenever the fd number is closed or re-created.
// A waiter remembers the generation it started with; waking into a newer
// one means its fd was closed under it (EBADF), and never that it may read
// from whatever file now has that number.
#pragma once

#include <atomic>
#include <cstdint>

namespace greenld {

enum class FdKind : uint8_t {
    unknown = 0,   // not classified yet
    stream,        // SOCK_STREAM socket
    datagram,      // SOCK_DGRAM / SOCK_SEQPACKET / SOCK_RAW socket
    listener,      // socket after listen()
    pipe,          // pipe or FIFO: RWF_NOWAIT works per call
    pollable,      // tty, char device, eventfd, timerfd...: wait, then the real call
    file,          // regular file, directory, block device: never waits
};

// What the last look at an fd said about reading it.
enum class ReadHint : uint8_t {
    empty = 0,   // the last attempt found nothing (EAGAIN, a short stream read), no readiness reported since
    filled = 1,  // the last read filled the caller's buffer: more may be queued, or not
    ready = 2,   // a watcher reported readiness since the last attempt, or a new fd
};

struct FdEntry {
    std::atomic<FdKind> kind{FdKind::unknown};
    std::atomic<bool> user_nonblock{false};    // O_NONBLOCK as the program set it
    std::atomic<bool> kernel_nonblock{false};  // we set O_NONBLOCK (listeners we own)
    std::atomic<bool> owned{false};            // created by this process through us
    // Readiness hints: they choose between trying a call first and waiting
    // first, nothing else. A wait is level-triggered (io.h), so waiting on an
    // fd that is in fact ready costs one loop poll, never a hang or a wrong
    // result; and a wrapper tries its call once more before it reports a
    // timeout or an interruption (transfer.h), so a stale "would block" never
    // turns into an EAGAIN or EINTR while data is there.
    std::atomic<ReadHint> rd_hint{ReadHint::ready};
    // Attempts in the `filled` state that found nothing (saturating at 3),
    // and the waits that state has had since the last attempt (transfer.h).
    std::atomic<uint8_t> rd_filled_misses{0};
    std::atomic<uint8_t> rd_filled_waits{0};
    std::atomic<bool> wr_ready{true};          // false: the last write would have blocked
    // A pollable fd whose reads honour RWF_NOWAIT (eventfd, timerfd,
    // signalfd: anonymous inodes), so a read never has to wait first.
    std::atomic<bool> read_nowait{false};
    std::atomic<uint32_t> generation{0};
    std::atomic<int64_t> rcv_timeout_ns{0};    // SO_RCVTIMEO, 0 = none
    std::atomic<int64_t> snd_timeout_ns{0};    // SO_SNDTIMEO
    std::atomic<uint64_t> hub_mask{0};         // hubs whose loop watches this fd
    // A regular file whose filesystem refuses RWF_NOWAIT (procfs, sysfs...):
    // its reads are made directly, with no page-cache probe (file_read.cpp).
    std::atomic<bool> file_nowait_unsupported{false};
    // Non-zero when dup() & co. made this fd share its file description
    // (and so its O_NONBLOCK and socket options) with other fd numbers.
    std::atomic<uint32_t> share_group{0};
    // shutdown() seen on this fd: (generation << 32) | kShutRead/kShutWrite.
    // A waiter woken by the close that follows a shutdown must report what
    // the shutdown gave a blocked call natively (EOF), not EBADF.
    std::atomic<uint64_t> shutdown_mark{0};
    static constexpr uint64_t kShutRead = 1, kShutWrite = 2;
    // The fd that data written here arrives at, when both ends were made in
    // this process (socketpair, pipe's write end; -1: none or unknown), and
    // the generation it had then: a write wakes that end's readers on the
    // writer's own hub without waiting for the hub's next poll (io.h,
    // wake_peer_readers). Only a shortcut: the wait stays registered.
    std::atomic<int32_t> peer{-1};
    std::atomic<uint32_t> peer_generation{0};

    bool shut_for_reading_in(uint32_t generation) const {
        uint64_t m = shutdown_mark.load(std::memory_order_acquire);
        return (m & kShutRead) && uint32_t(m >> 32) == generation;
    }
};

class FdTable {
public:
    static constexpr int kMaxFds = 1 << 20;
    static FdTable& get() { return table_; }

    // True once any fd has been made non-blocking in the kernel behind the
    // program's back: until then a native thread's I/O call needs no table
    // lookup at all.
    static bool kernel_nonblock_in_use() { return kernel_nonblock_in_use_.load(std::memory_order_relaxed); }
    void note_kernel_nonblock(int fd) {
        kernel_nonblock_in_use_.store(true, std::memory_order_relaxed);
        for (int top = max_kernel_nonblock_fd_.load(std::memory_order_relaxed); top < fd;)
            if (max_kernel_nonblock_fd_.compare_exchange_weak(top, fd, std::memory_order_acq_rel)) break;
    }
    // Calls fn(fd, entry) for every fd we made non-blocking in the kernel
    // although the program believes it blocking (before exec, a child must
    // get the blocking fd its program believes in).
    template <typename Fn>
    void for_each_kernel_nonblock(Fn fn) {
        int top = max_kernel_nonblock_fd_.load(std::memory_order_acquire);
        for (int fd = 0; fd <= top; ++fd) {
            FdEntry* e = entry(fd);
            if (e && e->kernel_nonblock.load(std::memory_order_relaxed) &&
                !e->user_nonblock.load(std::memory_order_relaxed))
                fn(fd, e);
        }
    }

    // Null for negative or absurdly large fds.
    FdEntry* entry(int fd);

    // The fd number now names a new file (socket(), accept(), pipe(), open(),
    // dup2() target...): forget everything about the old one.
    void reset(int fd, FdKind kind, bool user_nonblock, bool owned);
    // Classifies an fd first seen here (inherited, or created by a call we
    // do not interpose) with fstat/getsockopt/F_GETFL.
    FdKind classify(int fd, FdEntry* e);
    // Records that data written to `writer` is read from `reader` (both
    // just reset() by their creation).
    void link_peer(int writer, int reader);
    // Copies the program-visible state of `from` to `to` (dup family). The
    // copy shares the file description, so it shares O_NONBLOCK.
    void duplicate(int from, int to);
    // Calls fn(entry) for fd and every fd that shares its file description
    // through a dup we saw. Rare (F_SETFL, FIONBIO, SO_*TIMEO on a dup'd
    // fd), so a scan of the dup'd range is fine.
    template <typename Fn>
    void for_each_sharing(int fd, Fn fn) {
        FdEntry* e = entry(fd);
        if (!e) return;
        uint32_t g = e->share_group.load(std::memory_order_acquire);
        if (!g) {
            fn(e);
            return;
        }
        int top = max_shared_fd_.load(std::memory_order_acquire);
        for (int i = 0; i <= top; ++i) {
            FdEntry* x = entry(i);
            if (x && x->share_group.load(std::memory_order_relaxed) == g) fn(x);
        }
    }
    void forget_sharing(int fd) {
        if (FdEntry* e = entry(fd)) e->share_group.store(0, std::memory_order_release);
    }

    constexpr FdTable() = default;

private:
    static constexpr int kChunk = 4096;
    std::atomic<FdEntry*> chunks_[kMaxFds / kChunk] = {};
    // Constant-initialised: usable by calls that arrive before constructors.
    static FdTable table_;
    static std::atomic<bool> kernel_nonblock_in_use_;
    std::atomic<uint32_t> next_group_{1};
    std::atomic<int> max_shared_fd_{-1};
    std::atomic<int> max_kernel_nonblock_fd_{-1};
};

}  // namespace greenld
