#include "nonblock_loan.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/syscall.h>

#include "../runtime/native.h"

namespace greenld {

namespace {

// Loans out at once, process-wide: one per fiber inside sendfile/splice on
// a socket, so a small table does. When it is full a call goes without a
// loan (its caller then waits for readiness and makes the blocking call).
struct Loan {
    int fd = -1;
    uint32_t generation = 0;
    uint32_t count = 0;
};
constexpr int kMaxLoans = 64;
native::Mutex g_lock;
Loan g_loans[kMaxLoans];

Loan* find(int fd, uint32_t generation) {
    for (Loan& l : g_loans)
        if (l.count && l.fd == fd && l.generation == generation) return &l;
    return nullptr;
}

// A fork() while another thread holds g_lock would leave the child's copy
// locked for ever: hold it across the fork, as the runtime does its locks.
__attribute__((constructor)) void hold_loans_across_fork() {
    pthread_atfork([] { g_lock.lock(); }, [] { g_lock.unlock(); }, [] { g_lock.unlock(); });
}

Loan* free_slot() {
    for (Loan& l : g_loans)
        if (!l.count) return &l;
    return nullptr;
}

}  // namespace

NonblockLoan::NonblockLoan(int fd, FdEntry* e) : fd_(fd), entry_(e) {
    if (!e->owned.load(std::memory_order_relaxed)) return;
    generation_ = e->generation.load(std::memory_order_acquire);
    native::LockGuard guard(g_lock);
    if (Loan* l = find(fd, generation_)) {
        ++l->count;
        active_ = counted_ = true;
        return;
    }
    long fl = native::sys(SYS_fcntl, fd, F_GETFL);
    if (fl < 0) return;
    if (e->kernel_nonblock.load(std::memory_order_relaxed) || (fl & O_NONBLOCK)) {
        active_ = true;  // non-blocking already (a listener of ours): nothing to give back
        return;
    }
    Loan* l = free_slot();
    if (!l) return;
    // Marked before the flag flips: a native thread that sees the entry
    // blocking must not meet a non-blocking kernel.
    FdTable::get().note_kernel_nonblock(fd);
    e->kernel_nonblock.store(true, std::memory_order_seq_cst);
    if (native::sys(SYS_fcntl, fd, F_SETFL, fl | O_NONBLOCK) != 0) {
        e->kernel_nonblock.store(false, std::memory_order_relaxed);
        return;
    }
    *l = Loan{fd, generation_, 1};
    active_ = counted_ = true;
}

NonblockLoan::~NonblockLoan() {
    if (!counted_) return;
    native::LockGuard guard(g_lock);
    Loan* l = find(fd_, generation_);
    if (!l || --l->count) return;
    // Closed (and maybe reused) meanwhile: the new file is none of ours.
    if (entry_->generation.load(std::memory_order_acquire) != generation_) return;
    if (!entry_->user_nonblock.load(std::memory_order_relaxed)) {
        long fl = native::sys(SYS_fcntl, fd_, F_GETFL);
        if (fl >= 0) native::sys(SYS_fcntl, fd_, F_SETFL, fl & ~long(O_NONBLOCK));
    }
    entry_->kernel_nonblock.store(false, std::memory_order_seq_cst);
}

}  // namespace greenld
