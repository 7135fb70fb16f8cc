// Per-fiber copies of compiled static TLS (GREENLD_FIBER_TLS=1, opt-in).
//
// A compiled `__thread`/`thread_local` variable lives at a fixed offset
// from the OS thread's thread pointer (%fs), so the fibers of a hub share
// it. Switching %fs per fiber is not an option (arch_prctl costs ~4 us,
// wrfsbase is not preserved by the kernel here). Instead each fiber owns an
// image of the static TLS blocks of the program and its libraries, and its
// hub copies images in and out of the OS thread's blocks when it switches
// to a fiber whose image is not the live one (lazily: a fiber that parks
// and resumes with nothing else run in between costs nothing). The address
// of a variable stays what it is for the OS thread: only its contents
// travel.
//
// Not copied: the blocks whose per-thread state must stay per OS thread or
// already travels with the fiber (excluded_module()): libc (malloc's
// tcache and arena; errno, saved at every switch), the dynamic loader,
// libstdc++ (the C++ exception state, saved at every switch), libgcc_s,
// the sanitizer runtimes, and the module holding this runtime (the hub's
// own state). TLS of a library dlopen()ed later is not in static TLS and is
// not copied either; the set is fixed when the first hub starts.
#pragma once

#include <cstddef>
#include <cstdint>

namespace greenld::fiber_tls {

// A module's basename decides exclusion (see above). `name` may be a path.
bool excluded_module(const char* name);

// The copied blocks, as offsets from the thread pointer, and the image a
// new thread starts with (.tdata's init bytes, then .tbss's zeros).
class Layout {
public:
    static constexpr int kMaxBlocks = 64;

    // Adds a block of `memsz` bytes at `offset` from the thread pointer whose
    // first `filesz` bytes start as `init`. False if full or out of memory.
    bool add(ptrdiff_t offset, const void* init, size_t filesz, size_t memsz);
    int blocks() const { return count_; }
    size_t bytes() const { return bytes_; }
    ptrdiff_t offset(int i) const { return blocks_[i].offset; }
    size_t size(int i) const { return blocks_[i].size; }

    void init_image(void* image) const;
    // Copies the blocks at `tp` out into `image` / from `image` into them.
    void save(const char* tp, void* image) const;
    void load(char* tp, const void* image) const;
    // True when `addr` lies in one of the blocks at `tp`.
    bool holds(const char* tp, const void* addr) const;

private:
    struct Block {
        ptrdiff_t offset;
        size_t size;
    };
    Block blocks_[kMaxBlocks] = {};
    int count_ = 0;
    size_t bytes_ = 0;
    // bytes_ bytes, block after block. Never freed: the process-wide layout
    // must outlive exit(), which fibers may still be switched around during.
    unsigned char* template_ = nullptr;
};

// Called once by Runtime::start_hubs, before any fiber exists: reads
// GREENLD_FIBER_TLS and, when it is 1, finds the blocks to copy. Returns
// the number of blocks copied (0: the mechanism stays off).
int setup();

// True when fibers carry TLS images: read on every switch, so a plain
// global that is written once before the first fiber.
extern bool g_active;
inline bool active() { return g_active; }

const Layout& layout();
// True when `addr` lies in a block copied per fiber (at this thread's
// pointer); `layout` blocks only.
bool copied(const void* addr);
// A fiber waits on a futex word inside a copied block: the word's address
// is its hub's, shared by the fibers there, so a wake-up another thread
// writes there may land in another fiber's image. Warned once.
void note_futex_in_copied_tls(uint32_t fiber_id, const void* addr);
// A new fiber's image (malloc'ed), or null when out of memory.
void* image_create();
void image_destroy(void* image);

inline char* thread_pointer() { return static_cast<char*>(__builtin_thread_pointer()); }

}  // namespace greenld::fiber_tls
