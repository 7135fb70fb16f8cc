// Waiting for fd readiness: gevent's wait_read/wait_write/wait_readwrite/
// wait/cancel_wait, on libev io watchers of the waiting fiber's hub.
//
// Each hub keeps one IoSlot per fd it has waited on: a read and a write
// watcher (level-triggered, as libev gives them) and the fibers waiting in
// each direction, oldest first. A watcher stays started while fibers keep
// waiting on it and is stopped only when it fires with nobody waiting, so
// the common request/response pattern waits without an epoll_ctl per wait
// (and libev removes a stopped fd from epoll lazily, only if it fires).
// Readiness seen by a watcher is also recorded in the FdTable hints
// (rd_hint/wr_ready), which let wrappers skip a system call that would only
// return EAGAIN: being level-triggered, a wait on an fd that is already
// ready ends at the next poll, so a stale hint costs a poll, never a hang.
//
// A readiness event wakes every waiter that only watches (poll, select,
// the C API) but only the oldest *exclusive* one (a read, write or accept
// that will consume it), as the kernel wakes one of several threads blocked
// in accept() or read(): if that one leaves the fd ready (it read part of
// the data, or was interrupted), the watcher fires again at the next poll
// and wakes the next.
#pragma once

#include <ev.h>

#include <cstddef>
#include <cstdint>

#include "deadline.h"

namespace greenld {

class Hub;
struct FdEntry;
struct IoWaiter;

// kWaitExclusive (wait_fd only): the caller consumes the readiness it
// waits for (see above).
constexpr unsigned kWaitRead = 1, kWaitWrite = 2, kWaitExclusive = 4;

struct IoWaiterList {
    IoWaiter* head = nullptr;  // the oldest
    IoWaiter* tail = nullptr;
};

struct IoSlot {
    Hub* hub = nullptr;
    int fd = -1;
    uint32_t generation = 0;  // FdTable generation the watchers were set for
    ev_io rd;
    ev_io wr;
    IoWaiterList readers;
    IoWaiterList writers;
};

IoSlot* io_slot_create(Hub* hub, int fd);

// Parks the calling fiber until `fd` is ready for `events` (kWaitRead and/or
// kWaitWrite), the deadline passes, or the wait is cancelled. Returns 0
// (ready: the caller retries its call, which may still find EAGAIN if
// another waiter got there first), ETIMEDOUT, EBADF (the fd was closed
// meanwhile), the errno given to cancel_wait, or EINTR: a signal handler
// ran in the fiber (signals::restarts() says if the call goes on). Outside
// a fiber it blocks the OS thread in ppoll with the same contract (a
// handler there is the kernel's business: the wait goes on).
int wait_fd(int fd, unsigned events, Deadline deadline);

// A fiber's wait for the first of several fds (poll, select, epoll_wait):
// returns 0 when one of them may be ready or was closed or cancelled (the
// caller asks the kernel which), ETIMEDOUT at the deadline, EINTR if a
// signal handler ran. Fibers only.
struct FdInterest {
    int fd;
    unsigned events;  // kWaitRead | kWaitWrite; 0 or fd < 0: ignored
};
int wait_fds(const FdInterest* fds, size_t n, Deadline deadline);

// Data was just written to the fd whose entry is `e`: if its other end
// (FdEntry::peer) has readers parked on the calling fiber's own hub, they
// are woken now, as its watcher would at the hub's next poll. The hub then
// goes from fiber to fiber without an epoll_wait: a hand-off between two
// fibers of one hub costs the write and the read, and no more. Readers on
// other hubs are left to the kernel's wake-up of their hub (a wake from
// here would only add a system call to it). A wake-up that finds nothing
// (another process read first) parks again, as any stale readiness does.
void wake_peer_readers(const FdEntry* e);

// Wakes every fiber waiting on `fd`, in any hub, with `error`.
void cancel_wait(int fd, int error);

void io_lock_for_fork();
void io_unlock_after_fork(bool child);

// The program is closing `fd` (close, dup2 over it): bump its generation
// and wake its waiters with EBADF. Call before the real close.
void fd_closing(int fd);

}  // namespace greenld
