#include "fd_table.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <new>

#include "native.h"

namespace greenld {

constinit FdTable FdTable::table_;
constinit std::atomic<bool> FdTable::kernel_nonblock_in_use_{false};

FdEntry* FdTable::entry(int fd) {
    if (fd < 0 || fd >= kMaxFds) return nullptr;
    std::atomic<FdEntry*>& slot = chunks_[fd / kChunk];
    FdEntry* chunk = slot.load(std::memory_order_acquire);
    if (!chunk) {
        auto* fresh = new (std::nothrow) FdEntry[kChunk];
        if (!fresh) return nullptr;
        if (slot.compare_exchange_strong(chunk, fresh, std::memory_order_acq_rel)) {
            chunk = fresh;
        } else {
            delete[] fresh;
        }
    }
    return &chunk[fd % kChunk];
}

void FdTable::reset(int fd, FdKind kind, bool user_nonblock, bool owned) {
    FdEntry* e = entry(fd);
    if (!e) return;
    e->generation.fetch_add(1, std::memory_order_acq_rel);
    e->user_nonblock.store(user_nonblock, std::memory_order_relaxed);
    e->kernel_nonblock.store(false, std::memory_order_relaxed);
    e->owned.store(owned, std::memory_order_relaxed);
    e->rd_hint.store(ReadHint::ready, std::memory_order_relaxed);
    e->rd_filled_misses.store(0, std::memory_order_relaxed);
    e->rd_filled_waits.store(0, std::memory_order_relaxed);
    e->wr_ready.store(true, std::memory_order_relaxed);
    e->read_nowait.store(false, std::memory_order_relaxed);
    e->rcv_timeout_ns.store(0, std::memory_order_relaxed);
    e->snd_timeout_ns.store(0, std::memory_order_relaxed);
    e->shutdown_mark.store(0, std::memory_order_relaxed);
    e->share_group.store(0, std::memory_order_relaxed);
    e->file_nowait_unsupported.store(false, std::memory_order_relaxed);
    e->peer.store(-1, std::memory_order_relaxed);
    e->kind.store(kind, std::memory_order_release);
}

void FdTable::link_peer(int writer, int reader) {
    FdEntry* w = entry(writer);
    FdEntry* r = entry(reader);
    if (!w || !r) return;
    w->peer_generation.store(r->generation.load(std::memory_order_acquire), std::memory_order_relaxed);
    w->peer.store(reader, std::memory_order_release);
}

FdKind FdTable::classify(int fd, FdEntry* e) {
    struct stat st;
    if (native::sys(SYS_fstat, fd, reinterpret_cast<long>(&st)) != 0) return FdKind::unknown;
    FdKind kind;
    if (S_ISSOCK(st.st_mode)) {
        int type = 0, listening = 0;
        socklen_t len = sizeof type;
        native::sys(SYS_getsockopt, fd, SOL_SOCKET, SO_TYPE, reinterpret_cast<long>(&type),
                    reinterpret_cast<long>(&len));
        len = sizeof listening;
        native::sys(SYS_getsockopt, fd, SOL_SOCKET, SO_ACCEPTCONN, reinterpret_cast<long>(&listening),
                    reinterpret_cast<long>(&len));
        kind = listening ? FdKind::listener : (type == SOCK_STREAM ? FdKind::stream : FdKind::datagram);
    } else if (S_ISFIFO(st.st_mode)) {
        kind = FdKind::pipe;
    } else if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode) || S_ISBLK(st.st_mode)) {
        kind = FdKind::file;
    } else {
        kind = FdKind::pollable;
    }
    // No file type: an anonymous inode (eventfd, timerfd, signalfd...), whose
    // read_iter honours IOCB_NOWAIT; so do some character devices
    // (/dev/urandom, /dev/zero), while ttys refuse it: the first read tries.
    e->read_nowait.store(kind == FdKind::pollable && ((st.st_mode & S_IFMT) == 0 || S_ISCHR(st.st_mode)),
                         std::memory_order_relaxed);
    long fl = native::sys(SYS_fcntl, fd, F_GETFL);
    // An fd we did not create: whatever O_NONBLOCK it has was set by this
    // program or whoever handed it over, so it is the program's view too.
    e->user_nonblock.store(fl >= 0 && (fl & O_NONBLOCK), std::memory_order_relaxed);
    e->kernel_nonblock.store(false, std::memory_order_relaxed);
    e->file_nowait_unsupported.store(false, std::memory_order_relaxed);
    e->kind.store(kind, std::memory_order_release);
    return kind;
}

void FdTable::duplicate(int from, int to) {
    FdEntry* src = entry(from);
    FdEntry* dst = entry(to);
    if (!src || !dst) return;
    reset(to, src->kind.load(std::memory_order_acquire), src->user_nonblock.load(std::memory_order_relaxed),
          src->owned.load(std::memory_order_relaxed));
    dst->kernel_nonblock.store(src->kernel_nonblock.load(std::memory_order_relaxed), std::memory_order_relaxed);
    // SO_RCVTIMEO/SO_SNDTIMEO belong to the socket, which the copy shares.
    dst->rcv_timeout_ns.store(src->rcv_timeout_ns.load(std::memory_order_relaxed), std::memory_order_relaxed);
    dst->snd_timeout_ns.store(src->snd_timeout_ns.load(std::memory_order_relaxed), std::memory_order_relaxed);
    // A write through the copy still arrives at the same other end.
    dst->peer_generation.store(src->peer_generation.load(std::memory_order_relaxed), std::memory_order_relaxed);
    dst->peer.store(src->peer.load(std::memory_order_acquire), std::memory_order_release);
    uint32_t g = src->share_group.load(std::memory_order_acquire);
    if (!g) {
        g = next_group_.fetch_add(1, std::memory_order_relaxed);
        src->share_group.store(g, std::memory_order_release);
    }
    dst->share_group.store(g, std::memory_order_release);
    for (int top = max_shared_fd_.load(std::memory_order_relaxed), want = from > to ? from : to; top < want;)
        if (max_shared_fd_.compare_exchange_weak(top, want, std::memory_order_acq_rel)) break;
}

}  // namespace greenld
