#include "io.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>

#include <cerrno>
#include <new>

#include "diag.h"
#include "cancel.h"
#include "futex.h"
#include "fd_table.h"
#include "hub.h"
#include "signals.h"

namespace greenld {

struct IoWaiter {
    Fiber* fiber;
    uint32_t generation;
    bool exclusive = false;
    IoWaiter* prev = nullptr;
    IoWaiter* next = nullptr;
    bool linked = false;
};

namespace {

void link(IoWaiterList& l, IoWaiter* w) {
    w->prev = l.tail;
    w->next = nullptr;
    if (l.tail)
        l.tail->next = w;
    else
        l.head = w;
    l.tail = w;
    w->linked = true;
}

void unlink(IoWaiterList& l, IoWaiter* w) {
    if (!w->linked) return;
    if (w->prev)
        w->prev->next = w->next;
    else
        l.head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        l.tail = w->prev;
    w->prev = w->next = nullptr;
    w->linked = false;
}

// Wakes waiters of one direction whose wait began at or before generation
// `upto` (all of them when upto is 0): they resume with `error`.
void wake_list(const IoWaiterList& l, WakeReason reason, int error, uint32_t upto) {
    for (IoWaiter* w = l.head; w; w = w->next) {
        if (upto && int32_t(w->generation - upto) > 0) continue;
        Hub::unpark(w->fiber, reason, error);
    }
}

// A readiness event: every watching waiter, and the oldest exclusive one
// still parked (one already made runnable will look at the fd anyway).
void wake_ready(const IoWaiterList& l) {
    bool exclusive_woken = false;
    for (IoWaiter* w = l.head; w; w = w->next) {
        if (!w->exclusive)
            Hub::unpark(w->fiber, WakeReason::woken, 0);
        else if (!exclusive_woken)
            exclusive_woken = Hub::unpark(w->fiber, WakeReason::woken, 0);
    }
}

void on_ready(struct ev_loop* loop, ev_io* w, int revents) {
    auto* slot = static_cast<IoSlot*>(w->data);
    FdEntry* e = FdTable::get().entry(slot->fd);
    const bool read = (revents & EV_READ) != 0;
    if (e) {
        if (read)
            e->rd_hint.store(ReadHint::ready, std::memory_order_relaxed);
        else
            e->wr_ready.store(true, std::memory_order_relaxed);
    }
    const IoWaiterList& list = read ? slot->readers : slot->writers;
    if (!list.head) {
        // Level-triggered: with nobody waiting it would fire on every poll.
        ev_io_stop(loop, w);
        return;
    }
    wake_ready(list);
}

// The fd number was closed and possibly reused since the watchers were set:
// wake stale waiters and make libev register the fd anew (ev_io_set marks
// it so), since the kernel dropped the old registration with the old file.
void reset_slot(IoSlot* s, uint32_t generation, uint32_t wake_upto) {
    wake_list(s->readers, WakeReason::cancelled, EBADF, wake_upto);
    wake_list(s->writers, WakeReason::cancelled, EBADF, wake_upto);
    struct ev_loop* loop = s->hub->loop();
    ev_io_stop(loop, &s->rd);
    ev_io_stop(loop, &s->wr);
    ev_io_set(&s->rd, s->fd, EV_READ);
    ev_io_set(&s->wr, s->fd, EV_WRITE);
    s->generation = generation;
}

void sync_generation(IoSlot* s, uint32_t generation) {
    if (s->generation != generation) reset_slot(s, generation, generation - 1);
}

struct CancelItem {
    RemoteItem item;
    int fd;
    int error;
    uint32_t generation;              // 0: cancel_wait (every waiter); else close
    std::atomic<uint32_t>* pending;   // close: counts hubs yet to answer
};

void cancel_on_hub(Hub* hub, int fd, int error, uint32_t generation) {
    IoSlot* s = hub->io_slot(fd, false);
    if (!s) return;
    if (generation) {
        // A close: even a waiter that began after the close bumped the
        // generation is on the fd being closed; stop everything before the
        // closer's real close (it waits for us).
        if (int32_t(generation - s->generation) >= 0) reset_slot(s, generation, generation);
        return;
    }
    wake_list(s->readers, WakeReason::cancelled, error, 0);
    wake_list(s->writers, WakeReason::cancelled, error, 0);
}

void run_cancel_item(Hub* hub, RemoteItem* item) {
    auto* c = reinterpret_cast<CancelItem*>(item);
    cancel_on_hub(hub, c->fd, c->error, c->generation);
    if (c->pending) {
        // The closer owns the item (on its stack) and waits for this.
        std::atomic<uint32_t>* pending = c->pending;
        if (pending->fetch_sub(1, std::memory_order_acq_rel) == 1) futex_wake(pending, 1);
    } else {
        delete c;
    }
}

// For a close, the caller must not close the fd before every hub that
// watches it has stopped its watchers: a watcher started but not yet
// registered with epoll would then be registered on a closed fd (libev
// aborts on that EBADF) or, worse, on the next file with that number. So
// close waits for the other hubs' answers (a fiber parks, a native thread
// sleeps; hubs never wait for each other, so this cannot deadlock).
void cancel_everywhere(int fd, int error, uint32_t generation, uint64_t hubs) {
    Runtime& rt = Runtime::get();
    Hub* here = Hub::current();
    const bool closing = generation != 0;
    CancelItem local[Runtime::kMaxHubs];
    std::atomic<uint32_t> pending{0};
    int posted = 0;
    for (int i = 0; i < rt.hub_count() && hubs; ++i) {
        if (!(hubs & (uint64_t(1) << i))) continue;
        Hub* h = rt.hub(i);
        if (h == here) {
            cancel_on_hub(h, fd, error, generation);
            continue;
        }
        CancelItem* c = closing ? &local[posted] : new (std::nothrow) CancelItem{};
        if (!c) {
            diag::message("out of memory: waiters of fd %d on hub %d not woken", fd, i);
            continue;
        }
        *c = CancelItem{{}, fd, error, generation, closing ? &pending : nullptr};
        c->item.run = run_cancel_item;
        if (closing) {
            pending.fetch_add(1, std::memory_order_relaxed);
            ++posted;
        }
        h->post(&c->item);
    }
    for (uint32_t v; closing && (v = pending.load(std::memory_order_acquire)) != 0;) futex_wait(&pending, v);
}

// Native threads waiting in wait_fd (the C API, or a blocking accept on a
// listener we made non-blocking) sleep in ppoll on the fd and on an eventfd
// of their own, so that cancel_wait and close can wake them too.
struct NativeWaiter {
    int fd;
    int wake_fd;
    int error = 0;
    NativeWaiter* next = nullptr;
};

native::Mutex g_native_lock;
NativeWaiter* g_native_waiters = nullptr;

int thread_wake_fd() {
    static thread_local int wake_fd = -1;
    if (wake_fd < 0) wake_fd = int(native::sys(SYS_eventfd2, 0, EFD_CLOEXEC | EFD_NONBLOCK));
    return wake_fd;
}

void cancel_native(int fd, int error) {
    native::LockGuard g(g_native_lock);
    for (NativeWaiter* w = g_native_waiters; w; w = w->next) {
        if (w->fd != fd || w->error) continue;
        w->error = error;
        uint64_t one = 1;
        native::sys(SYS_write, w->wake_fd, reinterpret_cast<long>(&one), sizeof one);
    }
}

int wait_native(int fd, unsigned events, Deadline deadline) {
    NativeWaiter self{fd, thread_wake_fd()};
    if (self.wake_fd >= 0) {
        native::LockGuard g(g_native_lock);
        self.next = g_native_waiters;
        g_native_waiters = &self;
    }
    pollfd p[2] = {{fd, short(((events & kWaitRead) ? POLLIN : 0) | ((events & kWaitWrite) ? POLLOUT : 0)), 0},
                   {self.wake_fd, POLLIN, 0}};
    int result;
    for (;;) {
        timespec ts, *tp = nullptr;
        if (!deadline.is_never()) {
            int64_t r = deadline.remaining_ns();
            ts.tv_sec = r / 1000000000;
            ts.tv_nsec = r % 1000000000;
            tp = &ts;
        }
        long rc = native::sys(SYS_ppoll, reinterpret_cast<long>(p), self.wake_fd >= 0 ? 2 : 1,
                              reinterpret_cast<long>(tp), 0, 8);
        if (rc > 0 && (p[1].revents & POLLIN)) {
            uint64_t v;
            native::sys(SYS_read, self.wake_fd, reinterpret_cast<long>(&v), sizeof v);
        }
        if (rc > 0 && p[0].revents) {
            result = (p[0].revents & POLLNVAL) ? EBADF : 0;
            break;
        }
        native::LockGuard g(g_native_lock);
        if (self.error) {
            result = self.error;
            break;
        }
        if (rc == 0) {
            result = ETIMEDOUT;
            break;
        }
        if (rc < 0 && rc != -EINTR) {
            result = int(-rc);
            break;
        }
    }
    if (self.wake_fd >= 0) {
        native::LockGuard g(g_native_lock);
        for (NativeWaiter** pp = &g_native_waiters; *pp; pp = &(*pp)->next) {
            if (*pp == &self) {
                *pp = self.next;
                break;
            }
        }
        // A cancel that raced our wake-up may have left a count behind.
        if (self.error) {
            uint64_t v;
            native::sys(SYS_read, self.wake_fd, reinterpret_cast<long>(&v), sizeof v);
        }
    }
    return result;
}

}  // namespace

IoSlot* io_slot_create(Hub* hub, int fd) {
    auto* s = new (std::nothrow) IoSlot();
    if (!s) return nullptr;
    s->hub = hub;
    s->fd = fd;
    ev_io_init(&s->rd, on_ready, fd, EV_READ);
    ev_io_init(&s->wr, on_ready, fd, EV_WRITE);
    s->rd.data = s;
    s->wr.data = s;
    if (FdEntry* e = FdTable::get().entry(fd)) s->generation = e->generation.load(std::memory_order_acquire);
    return s;
}

namespace {

// One fd of a wait: the fiber's waiter nodes in that fd's slot.
struct Interest {
    int fd = -1;
    unsigned events = 0;
    FdEntry* entry = nullptr;
    IoSlot* slot = nullptr;
    uint32_t generation = 0;
    IoWaiter rw{nullptr, 0}, ww{nullptr, 0};
};

// Links the fiber into every fd's slot and starts the watchers it needs.
// Returns false if one of the fds was closed meanwhile (the fiber has then
// already been made runnable, so the park returns at once).
bool arm(Hub* hub, Fiber* self, Interest* list, size_t n) {
    struct ev_loop* loop = hub->loop();
    bool ok = true;
    for (size_t i = 0; i < n; ++i) {
        Interest& it = list[i];
        it.generation = it.entry->generation.load(std::memory_order_acquire);
        sync_generation(it.slot, it.generation);
        it.entry->hub_mask.fetch_or(uint64_t(1) << hub->index(), std::memory_order_seq_cst);
        const bool exclusive = (it.events & kWaitExclusive) != 0;
        it.rw = IoWaiter{self, it.generation, exclusive};
        it.ww = IoWaiter{self, it.generation, exclusive};
        if (it.events & kWaitRead) {
            link(it.slot->readers, &it.rw);
            if (!ev_is_active(&it.slot->rd)) ev_io_start(loop, &it.slot->rd);
        }
        if (it.events & kWaitWrite) {
            link(it.slot->writers, &it.ww);
            if (!ev_is_active(&it.slot->wr)) ev_io_start(loop, &it.slot->wr);
        }
        // Pairs with fd_closing (generation bump, then hub_mask exchange):
        // either the closer saw our hub bit and resets this slot before its
        // real close, or we see its bump here and stand down before libev
        // registers a closed fd.
        if (it.entry->generation.load(std::memory_order_seq_cst) != it.generation) {
            Hub::unpark(self, WakeReason::cancelled, EBADF);
            reset_slot(it.slot, it.generation + 1, it.generation);
            ok = false;
        }
    }
    return ok;
}

void disarm(Interest* list, size_t n) {
    for (size_t i = 0; i < n; ++i) {
        unlink(list[i].slot->readers, &list[i].rw);
        unlink(list[i].slot->writers, &list[i].ww);
    }
}

bool prepare(Hub* hub, Interest& it, int fd, unsigned events) {
    it.fd = fd;
    it.events = events;
    it.entry = FdTable::get().entry(fd);
    it.slot = it.entry ? hub->io_slot(fd, true) : nullptr;
    return it.slot != nullptr;
}

}  // namespace

int wait_fd(int fd, unsigned events, Deadline deadline) {
    Fiber* self = Hub::current_fiber();
    if (!self) return wait_native(fd, events, deadline);
    if (deadline.passed()) return ETIMEDOUT;
    Hub* hub = self->hub;
    Interest it;
    if (!prepare(hub, it, fd, events)) return it.entry ? ENOMEM : EBADF;
    hub->prepare_park();
    self->note_wait(WaitKind::fd, fd, events & (kWaitRead | kWaitWrite));
    arm(hub, self, &it, 1);
    WakeReason why = hub->park_prepared(deadline);
    disarm(&it, 1);
    // The safe point: the wait is undone, the handlers may run.
    if (signals::deliver_pending(self)) return EINTR;
    if (why == WakeReason::interrupted && cancel::delivered(self)) return EINTR;  // pthread_cancel
    if (it.entry->generation.load(std::memory_order_acquire) != it.generation) return EBADF;
    switch (why) {
        case WakeReason::timeout: return ETIMEDOUT;
        case WakeReason::cancelled: return self->wake_error;
        default: return 0;
    }
}

int wait_fds(const FdInterest* fds, size_t n, Deadline deadline) {
    Fiber* self = Hub::current_fiber();
    if (!self) return EINVAL;
    if (deadline.passed()) return ETIMEDOUT;
    Hub* hub = self->hub;
    Interest small[8];
    Interest* list = n <= 8 ? small : new (std::nothrow) Interest[n];
    if (!list) return ENOMEM;
    size_t armed = 0;
    for (size_t i = 0; i < n; ++i) {
        if (fds[i].fd < 0 || !fds[i].events) continue;
        if (!prepare(hub, list[armed], fds[i].fd, fds[i].events)) continue;
        ++armed;
    }
    hub->prepare_park();
    self->note_wait(WaitKind::fds, armed ? list[0].fd : -1, unsigned(armed));
    arm(hub, self, list, armed);
    WakeReason why = hub->park_prepared(deadline);
    disarm(list, armed);
    if (list != small) delete[] list;
    if (signals::deliver_pending(self)) return EINTR;
    if (why == WakeReason::interrupted && cancel::delivered(self)) return EINTR;  // pthread_cancel
    return why == WakeReason::timeout ? ETIMEDOUT : 0;
}

void wake_peer_readers(const FdEntry* e) {
    const int peer = e->peer.load(std::memory_order_acquire);
    Hub* hub = Hub::current();
    if (peer < 0 || !hub) return;
    IoSlot* s = hub->io_slot(peer, false);
    if (!s || !s->readers.head) return;
    FdEntry* pe = FdTable::get().entry(peer);
    const uint32_t generation = pe->generation.load(std::memory_order_acquire);
    if (generation != e->peer_generation.load(std::memory_order_relaxed) || generation != s->generation) return;
    pe->rd_hint.store(ReadHint::ready, std::memory_order_relaxed);
    wake_ready(s->readers);
}

void io_lock_for_fork() { g_native_lock.lock(); }

void io_unlock_after_fork(bool child) {
    if (child) g_native_waiters = nullptr;  // they were other threads
    g_native_lock.unlock();
}

void cancel_wait(int fd, int error) {
    cancel_native(fd, error);
    FdEntry* e = FdTable::get().entry(fd);
    if (!e || !Runtime::get().started()) return;
    cancel_everywhere(fd, error, 0, e->hub_mask.load(std::memory_order_acquire));
}

void fd_closing(int fd) {
    FdEntry* e = FdTable::get().entry(fd);
    if (!e) return;
    uint32_t generation = e->generation.fetch_add(1, std::memory_order_seq_cst) + 1;
    if (generation == 0) generation = e->generation.fetch_add(1, std::memory_order_seq_cst) + 1;
    e->kind.store(FdKind::unknown, std::memory_order_release);
    e->share_group.store(0, std::memory_order_release);
    e->peer.store(-1, std::memory_order_release);
    uint64_t hubs = e->hub_mask.exchange(0, std::memory_order_seq_cst);
    if (g_native_waiters) cancel_native(fd, EBADF);
    if (hubs && Runtime::get().started()) cancel_everywhere(fd, EBADF, generation, hubs);
}

}  // namespace greenld
