// Fiber stacks: one mmap each, the lowest page PROT_NONE (the guard a
// runaway recursion hits), and a canary word just above the guard that every
// switch checks, for frames large enough to jump over the guard.
#pragma once

#include <cstddef>
#include <cstdint>

namespace greenld {

struct Stack {
    char* map = nullptr;      // start of the mapping (the guard page)
    size_t map_size = 0;      // guard + usable
    size_t usable = 0;        // bytes the fiber may use
    bool owned = true;        // false: memory supplied by the program (pthread_attr_setstack)

    char* lo() const { return map + guard_size(); }
    char* top() const { return map + map_size; }
    bool contains(const void* p) const {
        auto* c = static_cast<const char*>(p);
        return c >= map && c < map + map_size;
    }
    // True if `addr` is in the guard page or just below the usable area:
    // where an overflowing frame faults.
    bool is_guard_hit(const void* addr) const;

    static size_t guard_size();
    static constexpr uint64_t canary_value = 0x67726e6c64c0ffeeull;
    void write_canary() { *reinterpret_cast<uint64_t*>(lo()) = canary_value; }
    bool canary_intact() const { return *reinterpret_cast<const uint64_t*>(lo()) == canary_value; }
};

// Allocates a stack of at least `usable` bytes (rounded up to pages). Reuses
// a cached stack of the same size when there is one. Returns false with
// errno-style *err (EAGAIN, as pthread_create reports lack of resources).
bool stack_allocate(size_t usable, Stack* out, int* err);
void stack_release(Stack& s);

void stack_lock_for_fork();
void stack_unlock_after_fork();

// A stack the program provided with pthread_attr_setstack: no guard, no
// unmapping; the canary is still written at its low end.
Stack stack_adopt(void* addr, size_t size);

}  // namespace greenld
