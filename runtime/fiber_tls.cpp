#include "fiber_tls.h"

#include <link.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "config.h"
#include "diag.h"
#include "native.h"

namespace greenld::fiber_tls {

bool g_active = false;

namespace {

Layout g_layout;

// Prefixes of the basenames of modules whose TLS stays per OS thread.
constexpr const char* kExcluded[] = {
    "libc.so.",       // malloc's tcache/arena (a fiber's own tcache would leak at its exit), errno (saved per switch)
    "ld-linux",       // the dynamic loader's own
    "ld64.so.",
    "libstdc++.so.",  // the C++ exception state (saved per switch)
    "libgcc_s.so.",
    "libasan.so.", "libubsan.so.", "libtsan.so.", "liblsan.so.", "libhwasan.so.",  // sanitizer runtimes
    "libgreenld.so", "libnss_greenld.so.",  // the hubs' own state (also caught by address, below)
};

struct Scan {
    Layout* layout;
    const void* self;  // an address inside the module holding this runtime
    int skipped = 0;   // blocks that looked wrong (not at a negative offset)
    std::atomic<uint32_t> done{0};
};

bool holds(const dl_phdr_info* info, const void* addr) {
    const auto a = reinterpret_cast<uintptr_t>(addr);
    for (int i = 0; i < info->dlpi_phnum; ++i) {
        const ElfW(Phdr)& ph = info->dlpi_phdr[i];
        if (ph.p_type != PT_LOAD) continue;
        const uintptr_t lo = info->dlpi_addr + ph.p_vaddr;
        if (a >= lo && a - lo < ph.p_memsz) return true;
    }
    return false;
}

int on_module(dl_phdr_info* info, size_t, void* arg) {
    auto* scan = static_cast<Scan*>(arg);
    // dlpi_tls_data is the calling thread's block. The caller is a thread
    // created for this scan: glibc gave it the static blocks at creation
    // and allocates a dlopen()ed module's dynamic block only on its first
    // access, so a block that exists here is static, at the same offset
    // from the thread pointer in every thread.
    if (!info->dlpi_tls_modid || !info->dlpi_tls_data) return 0;
    const ElfW(Phdr)* tls = nullptr;
    for (int i = 0; i < info->dlpi_phnum; ++i)
        if (info->dlpi_phdr[i].p_type == PT_TLS) tls = &info->dlpi_phdr[i];
    if (!tls || tls->p_memsz == 0) return 0;
    const char* name = info->dlpi_name && *info->dlpi_name ? info->dlpi_name : "(the program)";
    if (holds(info, scan->self) || excluded_module(name)) {
        if (diag::debugging()) diag::debug("fiber TLS: %s keeps its %zu bytes per OS thread", name, size_t(tls->p_memsz));
        return 0;
    }
    const ptrdiff_t offset = static_cast<char*>(info->dlpi_tls_data) - thread_pointer();
    // x86-64 places static TLS below the thread pointer (TLS variant II).
    if (offset >= 0 || size_t(-offset) < tls->p_memsz) {
        ++scan->skipped;
        diag::message("fiber TLS: the TLS block of %s is not below the thread pointer; it stays per OS thread", name);
        return 0;
    }
    const void* init = reinterpret_cast<const void*>(info->dlpi_addr + tls->p_vaddr);
    if (!scan->layout->add(offset, init, tls->p_filesz, tls->p_memsz)) {
        ++scan->skipped;
        diag::message("fiber TLS: cannot copy the TLS block of %s (too many blocks or out of memory); it stays per "
                      "OS thread", name);
        return 0;
    }
    if (diag::debugging())
        diag::debug("fiber TLS: %s: %zu bytes (%zu initialised) at %td from the thread pointer, per fiber", name,
                    size_t(tls->p_memsz), size_t(tls->p_filesz), offset);
    return 0;
}

void* scan_thread(void* arg) {
    auto* scan = static_cast<Scan*>(arg);
    dl_iterate_phdr(on_module, scan);
    scan->done.store(1, std::memory_order_release);
    native::futex_wake(&scan->done, 1);
    return nullptr;
}

}  // namespace

bool excluded_module(const char* name) {
    const char* base = strrchr(name, '/');
    base = base ? base + 1 : name;
    for (const char* prefix : kExcluded)
        if (strncmp(base, prefix, strlen(prefix)) == 0) return true;
    return false;
}

bool Layout::add(ptrdiff_t offset, const void* init, size_t filesz, size_t memsz) {
    if (count_ == kMaxBlocks || filesz > memsz) return false;
    auto* grown = static_cast<unsigned char*>(realloc(template_, bytes_ + memsz));
    if (!grown) return false;
    template_ = grown;
    // Copied now: the module may be unloaded later while fibers still start.
    if (filesz) memcpy(template_ + bytes_, init, filesz);
    memset(template_ + bytes_ + filesz, 0, memsz - filesz);
    blocks_[count_++] = Block{offset, memsz};
    bytes_ += memsz;
    return true;
}

void Layout::init_image(void* image) const { memcpy(image, template_, bytes_); }

void Layout::save(const char* tp, void* image) const {
    auto* out = static_cast<unsigned char*>(image);
    for (int i = 0; i < count_; ++i) {
        memcpy(out, tp + blocks_[i].offset, blocks_[i].size);
        out += blocks_[i].size;
    }
}

void Layout::load(char* tp, const void* image) const {
    auto* in = static_cast<const unsigned char*>(image);
    for (int i = 0; i < count_; ++i) {
        memcpy(tp + blocks_[i].offset, in, blocks_[i].size);
        in += blocks_[i].size;
    }
}

int setup() {
    // Once per process: a fork child starting hubs again keeps the layout.
    static bool done = false;
    if (done) return g_layout.blocks();
    done = true;
    if (!config::fiber_tls()) return 0;
    Scan scan;
    scan.layout = &g_layout;
    scan.self = reinterpret_cast<const void*>(&setup);
    int err = 0;
    if (!native::start_thread(scan_thread, &scan, &err)) {
        diag::message("GREENLD_FIBER_TLS=1: cannot start a thread to find the TLS blocks (errno %d); compiled "
                      "thread-local variables stay per OS thread", err);
        return 0;
    }
    while (scan.done.load(std::memory_order_acquire) == 0) native::futex_wait(&scan.done, 0);
    g_active = g_layout.blocks() > 0;
    diag::info("GREENLD_FIBER_TLS=1: %d TLS blocks (%zu bytes) are per fiber", g_layout.blocks(), g_layout.bytes());
    return g_layout.blocks();
}

const Layout& layout() { return g_layout; }

bool Layout::holds(const char* tp, const void* addr) const {
    const auto* p = static_cast<const char*>(addr);
    for (int i = 0; i < count_; ++i) {
        const char* lo = tp + blocks_[i].offset;
        if (p >= lo && p < lo + blocks_[i].size) return true;
    }
    return false;
}

bool copied(const void* addr) { return g_layout.holds(thread_pointer(), addr); }

void note_futex_in_copied_tls(uint32_t fiber_id, const void* addr) {
    static std::atomic<bool> warned{false};
    if (warned.exchange(true, std::memory_order_relaxed)) return;
    diag::message("fiber %u waits on a futex at %p, inside a compiled thread-local variable copied per fiber "
                  "(GREENLD_FIBER_TLS=1): that address is its hub's, shared by the fibers there, so a wake-up "
                  "written there by another thread can be lost (greenld(7))",
                  fiber_id, addr);
}

void* image_create() {
    void* image = malloc(g_layout.bytes());
    if (image) g_layout.init_image(image);
    return image;
}

void image_destroy(void* image) { free(image); }

}  // namespace greenld::fiber_tls
