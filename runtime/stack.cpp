#include "stack.h"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "config.h"
#include "diag.h"
#include "native.h"
#include "sanitizer.h"

// Newer than Debian 12's headers (Linux 6.4, 5.14).
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

namespace greenld {

namespace {

// Freed mapped stacks are kept for reuse: mmap + mprotect + munmap are
// three syscalls and two VMAs touched per thread otherwise. Bounded so a
// burst of exits does not pin memory forever.
constexpr size_t kCacheMax = 256;

// 64 stacks per slab: 100,000 fibers of which ~24,000 mapped need ~1,200
// slabs, two mappings each (the slots, a guard page below them). Halved down to 1 when the kernel refuses a large mapping
// (vm.overcommit_memory=2 ignores MAP_NORESERVE).
constexpr uint32_t kSlabSlots = 64;
// The gap below each slab stack: larger than a page, so that a frame of a
// few KiB (a local buffer) still lands in it rather than in the stack below.
constexpr size_t kSlabGap = 64 * 1024;
constexpr uint32_t kNoSlot = ~0u;

struct Pool;

}  // namespace

// A mapping cut into `slots` stacks of one size; slot i is
// [base + i*slot_size, +kSlabGap) gap, then the usable area. Below base, a
// PROT_NONE page: however far an overflow runs through the slots below it
// (unguarded gaps), it faults there, before it reaches another mapping
// (a hub thread's stack, the heap). Free slots are a list threaded through
// their canary words.
struct Slab {
    Pool* pool = nullptr;
    Slab* prev = nullptr;  // in pool->partial: slabs with a free slot
    Slab* next = nullptr;
    bool listed = false;
    bool guarded = false;  // the gaps were write-protected (userfaultfd)...
    uint32_t epoch = 0;    // ...in this address space (StackState::epoch)
    char* base = nullptr;   // slot 0; the mapping starts a page lower
    size_t bytes = 0;       // of the slots (the mapping is a page more)
    size_t slot_size = 0;
    uint32_t slots = 0;
    uint32_t used = 0;
    uint32_t fresh = 0;  // slots [fresh, slots) were never handed out
    uint32_t free_head = kNoSlot;
};

namespace {

// Slabs of one stack size for the fibers of one hub. Slab neighbours are
// then never running at the same time: an overflow through an unguarded
// gap corrupts only parked fibers, and is caught (the canary at switch-out,
// the fault handler) before any of them resumes.
struct Pool {
    size_t usable = 0;
    int hub = 0;
    Slab* partial = nullptr;
    Pool* next = nullptr;
};

struct StackState {
    native::Mutex lock;
    Stack cache[kCacheMax];
    size_t cached = 0;
    size_t mapped = 0;  // mapped stacks in existence, cached ones included
    size_t mapped_limit = 0;
    bool limit_known = false;
    Pool* pools = nullptr;
    size_t slab_slots = 0, slabs = 0, guarded_slabs = 0;
    int uffd = -1;
    bool uffd_tried = false;
    bool uffd_unpopulated = false;  // can write-protect pages never touched
    int uffd_error = 0;             // why there is no uffd
    bool told_slab = false, told_unguarded = false;
    bool guards_disabled = false;
    // Bumped in a forked child, whose mappings lost their userfaultfd
    // registration: slabs of an older epoch are unguarded.
    uint32_t epoch = 0;
};

bool slab_guarded(const StackState& st, const Slab* sl) { return sl->guarded && sl->epoch == st.epoch; }

StackState& state() {
    static StackState s;
    return s;
}

size_t page_size() {
    static const size_t p = size_t(sysconf(_SC_PAGESIZE));
    return p;
}

long uffd_ioctl(int fd, unsigned long req, void* arg) {
    return native::sys(SYS_ioctl, fd, long(req), reinterpret_cast<long>(arg));
}

// vm.max_map_count, read with raw syscalls (open and read are ours).
long max_map_count() {
    char buf[32];
    long n = native::read_file("/proc/sys/vm/max_map_count", buf, sizeof buf);
    long v = n > 0 ? strtol(buf, nullptr, 10) : 0;
    return v > 0 ? v : 65530;
}

size_t mapped_limit_locked(StackState& st) {
    if (!st.limit_known) {
        long v = config::mapped_stacks();
        if (v < 0) {
            long maps = max_map_count();
            v = (maps - maps / 4) / 2;
        }
        st.mapped_limit = size_t(v);
        st.limit_known = true;
    }
    return st.mapped_limit;
}

// Opens the userfaultfd that write-protects slab gaps, once. Faults are
// turned into SIGBUS (UFFD_FEATURE_SIGBUS), so no thread reads it.
int uffd_locked(StackState& st) {
    if (st.uffd_tried) return st.uffd;
    st.uffd_tried = true;
    for (uint64_t unpopulated : {uint64_t(UFFD_FEATURE_WP_UNPOPULATED), uint64_t(0)}) {
        // User-mode-only faults are all a guard needs, and what an
        // unprivileged process may ask for (vm.unprivileged_userfaultfd=0).
        long fd = native::sys(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
        if (fd == -EINVAL) fd = native::sys(SYS_userfaultfd, O_CLOEXEC);  // Linux < 5.11
        if (fd < 0) {
            st.uffd_error = int(-fd);
            return -1;
        }
        uffdio_api api{};
        api.api = UFFD_API;
        api.features = UFFD_FEATURE_SIGBUS | unpopulated;
        long rc = uffd_ioctl(int(fd), UFFDIO_API, &api);
        if (rc == 0) {
            st.uffd = int(fd);
            st.uffd_unpopulated = unpopulated != 0;
            return st.uffd;
        }
        native::sys(SYS_close, fd);
        st.uffd_error = int(-rc);
    }
    return -1;
}

// Write-protects every slot's gap. False (and nothing left protected) if
// the kernel refuses.
bool guard_slab(StackState& st, Slab* sl) {
    if (st.guards_disabled) {
        st.uffd_error = EPERM;
        return false;
    }
    int fd = uffd_locked(st);
    if (fd < 0) return false;
    uffdio_register reg{};
    reg.range.start = reinterpret_cast<uintptr_t>(sl->base);
    reg.range.len = sl->bytes;
    reg.mode = UFFDIO_REGISTER_MODE_WP;
    long rc = uffd_ioctl(fd, UFFDIO_REGISTER, &reg);
    if (rc != 0) {
        st.uffd_error = int(-rc);
        return false;
    }
    for (uint32_t i = 0; i < sl->slots; ++i) {
        char* gap = sl->base + size_t(i) * sl->slot_size;
        // Without WP_UNPOPULATED only present pages can be protected: map
        // the shared zero page there (a read fault costs no memory).
        if (!st.uffd_unpopulated && madvise(gap, kSlabGap, MADV_POPULATE_READ) != 0) {
            for (size_t off = 0; off < kSlabGap; off += page_size())
                (void)*reinterpret_cast<volatile const char*>(gap + off);
        }
        uffdio_writeprotect wp{};
        wp.range.start = reinterpret_cast<uintptr_t>(gap);
        wp.range.len = kSlabGap;
        wp.mode = UFFDIO_WRITEPROTECT_MODE_WP;
        rc = uffd_ioctl(fd, UFFDIO_WRITEPROTECT, &wp);
        if (rc != 0) {
            st.uffd_error = int(-rc);
            uffd_ioctl(fd, UFFDIO_UNREGISTER, &reg.range);
            return false;
        }
    }
    return true;
}

Pool* pool_for_locked(StackState& st, size_t usable, int hub) {
    for (Pool* p = st.pools; p; p = p->next)
        if (p->usable == usable && p->hub == hub) return p;
    Pool* p = new (std::nothrow) Pool();
    if (!p) return nullptr;
    p->usable = usable;
    p->hub = hub;
    p->next = st.pools;
    st.pools = p;
    return p;
}

void link_partial(Slab* sl) {
    Pool* p = sl->pool;
    sl->prev = nullptr;
    sl->next = p->partial;
    if (p->partial) p->partial->prev = sl;
    p->partial = sl;
    sl->listed = true;
}

void unlink_partial(Slab* sl) {
    Pool* p = sl->pool;
    if (sl->prev) sl->prev->next = sl->next;
    else p->partial = sl->next;
    if (sl->next) sl->next->prev = sl->prev;
    sl->prev = sl->next = nullptr;
    sl->listed = false;
}

Slab* slab_create_locked(StackState& st, Pool* pool) {
    const size_t slot_size = kSlabGap + pool->usable, page = page_size();
    void* p = MAP_FAILED;
    uint32_t slots = kSlabSlots;
    for (;; slots /= 4) {
        p = mmap(nullptr, page + slot_size * slots, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
        if (p != MAP_FAILED || slots == 1) break;
    }
    if (p == MAP_FAILED) return nullptr;
    Slab* sl = p != MAP_FAILED && mprotect(p, page, PROT_NONE) == 0 ? new (std::nothrow) Slab() : nullptr;
    if (!sl) {
        munmap(p, page + slot_size * slots);
        return nullptr;
    }
    sl->pool = pool;
    sl->base = static_cast<char*>(p) + page;
    sl->slots = slots;
    sl->slot_size = slot_size;
    sl->bytes = slot_size * slots;
    sl->guarded = guard_slab(st, sl);
    sl->epoch = st.epoch;
    ++st.slabs;
    if (sl->guarded) ++st.guarded_slabs;
    link_partial(sl);
    return sl;
}

void announce_slab_locked(StackState& st, bool guarded) {
    if (!st.told_slab) {
        st.told_slab = true;
        diag::message("%zu fiber stacks have a mapping and guard page each (the budget: GREENLD_MAPPED_STACKS, "
                      "or from vm.max_map_count=%ld); further stacks share mappings of %u",
                      st.mapped_limit, max_map_count(), kSlabSlots);
    }
    if (!guarded && !st.told_unguarded) {
        st.told_unguarded = true;
        diag::message("shared fiber stacks have no guard (userfaultfd write protection unavailable: %s): an overflow "
                      "is detected by the stack canary at the fiber's next switch or exit, not by a fault; raise "
                      "vm.max_map_count to keep guard pages",
                      strerror(st.uffd_error ? st.uffd_error : ENOSYS));
    }
}

bool slab_allocate_locked(StackState& st, size_t usable, int hub, Stack* out) {
    Pool* pool = pool_for_locked(st, usable, hub);
    if (!pool) return false;
    Slab* sl = pool->partial;
    if (!sl) sl = slab_create_locked(st, pool);
    if (!sl) return false;
    uint32_t idx;
    if (sl->free_head != kNoSlot) {
        idx = sl->free_head;
        char* low = sl->base + size_t(idx) * sl->slot_size + kSlabGap;
        sl->free_head = uint32_t(*reinterpret_cast<uint64_t*>(low));
    } else {
        idx = sl->fresh++;
    }
    if (++sl->used == sl->slots) unlink_partial(sl);
    ++st.slab_slots;
    const bool guarded = slab_guarded(st, sl);
    announce_slab_locked(st, guarded);
    out->map = sl->base + size_t(idx) * sl->slot_size;
    out->map_size = sl->slot_size;
    out->usable = usable;
    out->guard = uint32_t(kSlabGap);
    out->low = out->map + kSlabGap;
    out->kind = StackKind::slab;
    out->guarded = guarded;
    out->slab = sl;
    return true;
}

void slab_release_locked(StackState& st, Stack& s) {
    Slab* sl = s.slab;
    const uint32_t idx = uint32_t(size_t(s.map - sl->base) / sl->slot_size);
    *reinterpret_cast<uint64_t*>(s.low) = sl->free_head;
    sl->free_head = idx;
    --sl->used;
    --st.slab_slots;
    if (!sl->listed) link_partial(sl);
    // An empty slab goes back to the kernel unless it is the pool's only
    // one with room (a thread created and joined in a loop keeps reusing it).
    if (sl->used == 0 && (sl->prev || sl->next)) {
        unlink_partial(sl);
        munmap(sl->base - page_size(), page_size() + sl->bytes);  // also ends its userfaultfd registration
        --st.slabs;
        if (slab_guarded(st, sl)) --st.guarded_slabs;
        delete sl;
    }
}

}  // namespace

bool Stack::is_guard_hit(const void* addr) const {
    auto* c = static_cast<const char*>(addr);
    switch (kind) {
        case StackKind::mapped: return c >= map - 65536 && c < low;
        case StackKind::slab: return guarded && c >= map && c < low;
        default: return false;
    }
}

size_t stack_mapped_limit() {
    StackState& st = state();
    native::LockGuard g(st.lock);
    return mapped_limit_locked(st);
}

void stack_set_mapped_limit(size_t n) {
    StackState& st = state();
    native::LockGuard g(st.lock);
    st.mapped_limit = n;
    st.limit_known = true;
}

void stack_set_slab_guards(bool enabled) {
    StackState& st = state();
    native::LockGuard g(st.lock);
    st.guards_disabled = !enabled;
}

StackCounts stack_counts() {
    StackState& st = state();
    native::LockGuard g(st.lock);
    StackCounts c;
    c.mapped = st.mapped;
    c.slab_slots = st.slab_slots;
    c.slabs = st.slabs;
    c.guarded_slabs = st.guarded_slabs;
    return c;
}

bool stack_allocate(size_t usable, Stack* out, int* err, int hub) {
    const size_t page = page_size();
    usable = (usable + page - 1) & ~(page - 1);
    StackState& st = state();
    {
        native::LockGuard g(st.lock);
        for (size_t i = st.cached; i-- > 0;) {
            if (st.cache[i].usable == usable) {
                *out = st.cache[i];
                st.cache[i] = st.cache[--st.cached];
                sanitizer::fresh_stack(out->lo(), out->usable);
                out->write_canary();
                return true;
            }
        }
        if (st.mapped >= mapped_limit_locked(st)) {
            if (!slab_allocate_locked(st, usable, hub, out)) {
                *err = EAGAIN;
                return false;
            }
            sanitizer::fresh_stack(out->lo(), out->usable);
            out->write_canary();
            return true;
        }
        ++st.mapped;  // reserved: the mapping is made outside the lock
    }
    const size_t total = usable + page;
    // MAP_NORESERVE: only touched pages cost memory, as with glibc's thread
    // stacks; a large default size does not count against overcommit.
    void* p = mmap(nullptr, total, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (p != MAP_FAILED && mprotect(p, page, PROT_NONE) != 0) {
        // vm.max_map_count reached: the split would need one more VMA.
        munmap(p, total);
        p = MAP_FAILED;
    }
    if (p == MAP_FAILED) {
        // Out of mappings (the program holds many) or memory: a slab slot
        // needs at most one more mapping, often none.
        native::LockGuard g(st.lock);
        --st.mapped;
        if (!slab_allocate_locked(st, usable, hub, out)) {
            *err = EAGAIN;
            return false;
        }
    } else {
        out->map = static_cast<char*>(p);
        out->map_size = total;
        out->usable = usable;
        out->guard = uint32_t(page);
        out->low = out->map + page;
        out->kind = StackKind::mapped;
        out->guarded = true;
        out->slab = nullptr;
    }
    sanitizer::fresh_stack(out->lo(), out->usable);
    out->write_canary();
    return true;
}

void stack_release(Stack& s) {
    if (!s.owned()) {
        s = Stack{};
        return;
    }
    StackState& st = state();
    {
        native::LockGuard g(st.lock);
        if (s.kind == StackKind::slab) {
            slab_release_locked(st, s);
            s = Stack{};
            return;
        }
        if (st.cached < kCacheMax) {
            st.cache[st.cached++] = s;
            s = Stack{};
            return;
        }
        --st.mapped;
    }
    munmap(s.map, s.map_size);
    s = Stack{};
}

bool stack_gap_intact(const Stack& s) {
    if (s.kind != StackKind::slab || s.guarded) return true;
    // The gap's top page, just under the canary: where a frame that jumped
    // over the canary word lands first. Never written by a correct fiber,
    // so still zero (the shared zero page when never touched).
    const size_t words = page_size() / sizeof(uint64_t);
    auto* w = reinterpret_cast<const volatile uint64_t*>(s.low) - words;
    uint64_t any = 0;
    for (size_t i = 0; i < words; ++i) any |= w[i];
    return any == 0;
}

void stack_lock_for_fork() { state().lock.lock(); }

void stack_unlock_after_fork(bool child) {
    StackState& st = state();
    if (child && st.uffd >= 0) {
        // The child's mappings lost their userfaultfd registration (no
        // UFFD_FEATURE_EVENT_FORK), and this fd belongs to the parent's
        // address space: slabs made from here on get a new one.
        native::sys(SYS_close, st.uffd);
        st.uffd = -1;
        st.uffd_tried = false;
        ++st.epoch;
        st.guarded_slabs = 0;
    }
    st.lock.unlock();
}

Stack stack_adopt(void* addr, size_t size) {
    Stack s;
    s.map = static_cast<char*>(addr);
    s.map_size = size;
    s.usable = size;
    s.guard = 0;
    s.low = s.map;
    s.kind = StackKind::program;
    s.guarded = false;
    s.write_canary();
    return s;
}

}  // namespace greenld
