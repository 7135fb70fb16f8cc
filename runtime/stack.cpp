#include "stack.h"

#include <sys/mman.h>
#include <unistd.h>
#include <cerrno>

#include "native.h"
#include "sanitizer.h"

namespace greenld {

namespace {

// Freed stacks are kept for reuse: mmap + mprotect + munmap are three
// syscalls and two VMAs touched per thread otherwise. Bounded so a burst of
// exits does not pin memory forever.
constexpr size_t kCacheMax = 256;

struct StackCache {
    native::Mutex lock;
    Stack items[kCacheMax];
    size_t count = 0;
};

StackCache& cache() {
    static StackCache c;
    return c;
}

size_t page_size() {
    static const size_t p = size_t(sysconf(_SC_PAGESIZE));
    return p;
}

}  // namespace

size_t Stack::guard_size() { return page_size(); }

bool Stack::is_guard_hit(const void* addr) const {
    if (!owned) return false;
    auto* c = static_cast<const char*>(addr);
    // A frame larger than the guard can land below the mapping: accept a
    // fault up to 64 KiB under it as ours too.
    return c >= map - 65536 && c < lo();
}

bool stack_allocate(size_t usable, Stack* out, int* err) {
    const size_t page = page_size();
    usable = (usable + page - 1) & ~(page - 1);
    {
        StackCache& c = cache();
        native::LockGuard g(c.lock);
        for (size_t i = c.count; i-- > 0;) {
            if (c.items[i].usable == usable) {
                *out = c.items[i];
                c.items[i] = c.items[--c.count];
                sanitizer::fresh_stack(out->lo(), out->usable);
                out->write_canary();
                return true;
            }
        }
    }
    const size_t total = usable + Stack::guard_size();
    // MAP_NORESERVE: only touched pages cost memory, as with glibc's thread
    // stacks; a large default size does not count against overcommit.
    void* p = mmap(nullptr, total, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (p == MAP_FAILED) {
        *err = EAGAIN;
        return false;
    }
    if (mprotect(p, Stack::guard_size(), PROT_NONE) != 0) {
        // vm.max_map_count reached: the split would need one more VMA.
        munmap(p, total);
        *err = EAGAIN;
        return false;
    }
    out->map = static_cast<char*>(p);
    out->map_size = total;
    out->usable = usable;
    out->owned = true;
    sanitizer::fresh_stack(out->lo(), out->usable);
    out->write_canary();
    return true;
}

void stack_release(Stack& s) {
    if (!s.owned || !s.map) {
        s = Stack{};
        return;
    }
    {
        StackCache& c = cache();
        native::LockGuard g(c.lock);
        if (c.count < kCacheMax) {
            c.items[c.count++] = s;
            s = Stack{};
            return;
        }
    }
    munmap(s.map, s.map_size);
    s = Stack{};
}

void stack_lock_for_fork() { cache().lock.lock(); }
void stack_unlock_after_fork() { cache().lock.unlock(); }

Stack stack_adopt(void* addr, size_t size) {
    Stack s;
    // No guard: lo() must equal map, so map is set one guard below addr
    // arithmetically only for lo(); contains() and release use owned=false.
    s.map = static_cast<char*>(addr) - Stack::guard_size();
    s.map_size = size + Stack::guard_size();
    s.usable = size;
    s.owned = false;
    s.write_canary();
    return s;
}

}  // namespace greenld
