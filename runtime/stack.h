// Fiber stacks. Every stack has a canary word at its low end that every
// switch-out checks, and, below it, a guard a runaway recursion hits:
//
// - mapped: one mmap each, its lowest page PROT_NONE. Two entries against
//   vm.max_map_count (65,530 by default), so only a budget of them: about
//   24,000 at the default (stack_mapped_limit()).
// - slab: beyond that budget, 64 stacks share one mapping (two entries
//   with the PROT_NONE page below the lowest slot). A
//   slot is a 64 KiB gap and the usable area above it; the gaps are
//   write-protected with userfaultfd (UFFD_FEATURE_SIGBUS: a write faults
//   like a guard page, with no mapping split). Where userfaultfd is
//   unavailable the gap is unprotected: the canary and a check of the gap
//   when the stack is freed are then the only detection, which the library
//   announces once on stderr.
// - program: memory given with pthread_attr_setstack; no guard.
#pragma once

#include <cstddef>
#include <cstdint>

namespace greenld {

struct Slab;

enum class StackKind : uint8_t { none, mapped, slab, program };

struct Stack {
    char* map = nullptr;      // start of the stack's region: the guard, then the usable area
    size_t map_size = 0;      // guard + usable
    size_t usable = 0;        // bytes the fiber may use
    char* low = nullptr;      // map + guard: the lowest usable byte, where the canary lives
    uint32_t guard = 0;       // bytes between map and low
    StackKind kind = StackKind::none;
    bool guarded = false;     // a write to the guard faults (false: program stack, unprotected slab gap)
    Slab* slab = nullptr;     // kind == slab: the mapping this slot belongs to

    char* lo() const { return low; }
    char* top() const { return low + usable; }
    bool owned() const { return kind == StackKind::mapped || kind == StackKind::slab; }
    // True if `p` lies in the stack's region (guard or usable area).
    bool contains(const void* p) const {
        auto* c = static_cast<const char*>(p);
        return c >= map && c < map + map_size;
    }
    // True if `addr` is where an overflowing frame of this stack faults: in
    // its guard, or (mapped stacks) up to 64 KiB below the mapping, for a
    // frame larger than the guard page.
    bool is_guard_hit(const void* addr) const;

    static constexpr uint64_t canary_value = 0x67726e6c64c0ffeeull;
    void write_canary() { *reinterpret_cast<uint64_t*>(low) = canary_value; }
    bool canary_intact() const { return *reinterpret_cast<const uint64_t*>(low) == canary_value; }
};

// Allocates a stack of at least `usable` bytes (rounded up to pages): a
// mapped stack while fewer than stack_mapped_limit() exist, else a slab
// slot. Reuses a freed stack of the same size when there is one. Returns
// false with errno-style *err (EAGAIN, as pthread_create reports lack of
// resources). `hub`: the index of the hub the fiber will run on; slab
// slots are shared only by fibers of one hub.
bool stack_allocate(size_t usable, Stack* out, int* err, int hub = 0);
// Frees a stack of a dead fiber (kept for reuse when it can be).
void stack_release(Stack& s);
// False if an unguarded slab stack's gap, below its canary, was written: an
// overflow whose frames jumped over the canary word. Checked when a fiber
// dies (a page of reads: too slow for every switch).
bool stack_gap_intact(const Stack& s);

// How many mapped stacks may exist at once: GREENLD_MAPPED_STACKS, else
// derived from /proc/sys/vm/max_map_count (half of three quarters of it:
// a quarter is left to the program's own mappings and to the slabs).
size_t stack_mapped_limit();
void stack_set_mapped_limit(size_t n);  // tests
// Tests: false makes slabs created from now on unguarded, as where
// userfaultfd is unavailable.
void stack_set_slab_guards(bool enabled);

struct StackCounts {
    size_t mapped = 0;      // mapped stacks in existence (in use or cached)
    size_t slab_slots = 0;  // slab slots in use
    size_t slabs = 0;       // slab mappings
    size_t guarded_slabs = 0;
};
StackCounts stack_counts();

void stack_lock_for_fork();
void stack_unlock_after_fork(bool child);

// A stack the program provided with pthread_attr_setstack: no guard, no
// unmapping; the canary is still written at its low end.
Stack stack_adopt(void* addr, size_t size);

}  // namespace greenld
