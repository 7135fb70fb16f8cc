#include "io.h"

#include <poll.h>
#include <sys/syscall.h>

#include <cerrno>
#include <new>

#include "diag.h"
#include "fd_table.h"
#include "hub.h"

namespace greenld {

struct IoWaiter {
    Fiber* fiber;
    uint32_t generation;
    IoWaiter* prev = nullptr;
    IoWaiter* next = nullptr;
    bool linked = false;
};

namespace {

void link(IoWaiter*& head, IoWaiter* w) {
    w->prev = nullptr;
    w->next = head;
    if (head) head->prev = w;
    head = w;
    w->linked = true;
}

void unlink(IoWaiter*& head, IoWaiter* w) {
    if (!w->linked) return;
    if (w->prev)
        w->prev->next = w->next;
    else
        head = w->next;
    if (w->next) w->next->prev = w->prev;
    w->prev = w->next = nullptr;
    w->linked = false;
}

// Wakes waiters of one direction whose wait began before `generation`
// (all of them when generation is 0): they resume with `error`.
void wake_list(IoWaiter* head, WakeReason reason, int error, uint32_t before_generation) {
    for (IoWaiter* w = head; w; w = w->next) {
        if (before_generation && int32_t(w->generation - before_generation) >= 0) continue;
        Hub::unpark(w->fiber, reason, error);
    }
}

void on_ready(struct ev_loop* loop, ev_io* w, int revents) {
    auto* slot = static_cast<IoSlot*>(w->data);
    FdEntry* e = FdTable::get().entry(slot->fd);
    const bool read = (revents & EV_READ) != 0;
    if (e) (read ? e->rd_ready : e->wr_ready).store(true, std::memory_order_relaxed);
    IoWaiter* list = read ? slot->readers : slot->writers;
    if (!list) {
        // Level-triggered: with nobody waiting it would fire on every poll.
        ev_io_stop(loop, w);
        return;
    }
    wake_list(list, WakeReason::woken, 0, 0);
}

// The fd number was closed and possibly reused since the watchers were set:
// wake stale waiters and make libev register the fd anew (ev_io_set marks
// it so), since the kernel dropped the old registration with the old file.
void sync_generation(IoSlot* s, uint32_t generation) {
    if (s->generation == generation) return;
    wake_list(s->readers, WakeReason::cancelled, EBADF, generation);
    wake_list(s->writers, WakeReason::cancelled, EBADF, generation);
    struct ev_loop* loop = s->hub->loop();
    ev_io_stop(loop, &s->rd);
    ev_io_stop(loop, &s->wr);
    ev_io_set(&s->rd, s->fd, EV_READ);
    ev_io_set(&s->wr, s->fd, EV_WRITE);
    s->generation = generation;
}

struct CancelItem {
    RemoteItem item;
    int fd;
    int error;
    uint32_t generation;  // 0: cancel_wait (every waiter); else close
};

void cancel_on_hub(Hub* hub, int fd, int error, uint32_t generation) {
    IoSlot* s = hub->io_slot(fd, false);
    if (!s) return;
    if (generation) {
        if (int32_t(generation - s->generation) > 0) sync_generation(s, generation);
        return;
    }
    wake_list(s->readers, WakeReason::cancelled, error, 0);
    wake_list(s->writers, WakeReason::cancelled, error, 0);
}

void run_cancel_item(Hub* hub, RemoteItem* item) {
    auto* c = reinterpret_cast<CancelItem*>(item);
    cancel_on_hub(hub, c->fd, c->error, c->generation);
    delete c;
}

void cancel_everywhere(int fd, int error, uint32_t generation, uint64_t hubs) {
    Runtime& rt = Runtime::get();
    Hub* here = Hub::current();
    for (int i = 0; i < rt.hub_count() && hubs; ++i) {
        if (!(hubs & (uint64_t(1) << i))) continue;
        Hub* h = rt.hub(i);
        if (h == here) {
            cancel_on_hub(h, fd, error, generation);
            continue;
        }
        auto* c = new (std::nothrow) CancelItem{{}, fd, error, generation};
        if (!c) {
            diag::message("out of memory: waiters of fd %d on hub %d not woken", fd, i);
            continue;
        }
        c->item.run = run_cancel_item;
        h->post(&c->item);
    }
}

int wait_native(int fd, unsigned events, Deadline deadline) {
    pollfd p{fd, short(((events & kWaitRead) ? POLLIN : 0) | ((events & kWaitWrite) ? POLLOUT : 0)), 0};
    for (;;) {
        timespec ts, *tp = nullptr;
        if (!deadline.is_never()) {
            int64_t r = deadline.remaining_ns();
            ts.tv_sec = r / 1000000000;
            ts.tv_nsec = r % 1000000000;
            tp = &ts;
        }
        long rc = native::sys(SYS_ppoll, reinterpret_cast<long>(&p), 1, reinterpret_cast<long>(tp), 0, 8);
        if (rc > 0) return (p.revents & POLLNVAL) ? EBADF : 0;
        if (rc == 0) return ETIMEDOUT;
        if (rc != -EINTR) return int(-rc);
    }
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

int wait_fd(int fd, unsigned events, Deadline deadline) {
    Fiber* self = Hub::current_fiber();
    if (!self) return wait_native(fd, events, deadline);
    FdEntry* e = FdTable::get().entry(fd);
    if (!e) return EBADF;
    if (deadline.passed()) return ETIMEDOUT;
    Hub* hub = self->hub;
    IoSlot* s = hub->io_slot(fd, true);
    if (!s) return ENOMEM;
    const uint32_t generation = e->generation.load(std::memory_order_acquire);
    sync_generation(s, generation);
    e->hub_mask.fetch_or(uint64_t(1) << hub->index(), std::memory_order_relaxed);

    IoWaiter rw{self, generation}, ww{self, generation};
    struct ev_loop* loop = hub->loop();
    hub->prepare_park();
    if (events & kWaitRead) {
        link(s->readers, &rw);
        if (!ev_is_active(&s->rd)) ev_io_start(loop, &s->rd);
    }
    if (events & kWaitWrite) {
        link(s->writers, &ww);
        if (!ev_is_active(&s->wr)) ev_io_start(loop, &s->wr);
    }
    WakeReason why = hub->park_prepared(deadline);
    unlink(s->readers, &rw);
    unlink(s->writers, &ww);
    if (e->generation.load(std::memory_order_acquire) != generation) return EBADF;
    switch (why) {
        case WakeReason::timeout: return ETIMEDOUT;
        case WakeReason::cancelled: return self->wake_error;
        default: return 0;
    }
}

void cancel_wait(int fd, int error) {
    FdEntry* e = FdTable::get().entry(fd);
    if (!e || !Runtime::get().started()) return;
    cancel_everywhere(fd, error, 0, e->hub_mask.load(std::memory_order_acquire));
}

void fd_closing(int fd) {
    FdEntry* e = FdTable::get().entry(fd);
    if (!e) return;
    uint32_t generation = e->generation.fetch_add(1, std::memory_order_acq_rel) + 1;
    if (generation == 0) generation = e->generation.fetch_add(1, std::memory_order_acq_rel) + 1;
    e->kind.store(FdKind::unknown, std::memory_order_release);
    uint64_t hubs = e->hub_mask.exchange(0, std::memory_order_acq_rel);
    if (hubs && Runtime::get().started()) cancel_everywhere(fd, EBADF, generation, hubs);
}

}  // namespace greenld
