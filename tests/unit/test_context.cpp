#include <sys/mman.h>

#include <cstdint>
#include <cstdlib>

#include "context.h"
#include "sanitizer.h"
#include "support.h"

using namespace greenld;

namespace {

Context g_main, g_other;
int g_counter = 0;

void pingpong_entry(void*) {
    for (;;) {
        ++g_counter;
        greenld_context_switch(&g_other, &g_main);
    }
}

uint32_t g_other_mxcsr = 0;

void mxcsr_entry(void*) {
    // Round toward zero in this context only.
    uint32_t m;
    __asm__ volatile("stmxcsr %0" : "=m"(m));
    m = (m & ~0x6000u) | 0x6000u;
    __asm__ volatile("ldmxcsr %0" : : "m"(m));
    for (;;) {
        __asm__ volatile("stmxcsr %0" : "=m"(g_other_mxcsr));
        greenld_context_switch(&g_other, &g_main);
    }
}

}  // namespace

TEST_CASE("context switch runs a new context and comes back, many times") {
    const size_t size = 64 * 1024;
    void* mem = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(mem != MAP_FAILED);
    sanitizer::fresh_stack(mem, size);
    g_counter = 0;
    context_make(&g_other, static_cast<char*>(mem) + size, pingpong_entry, nullptr);
    for (int i = 0; i < 10000; ++i) greenld_context_switch(&g_main, &g_other);
    CHECK(g_counter == 10000);
    munmap(mem, size);
}

TEST_CASE("context switch keeps each context's MXCSR (floating-point control state)") {
    const size_t size = 64 * 1024;
    void* mem = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(mem != MAP_FAILED);
    sanitizer::fresh_stack(mem, size);
    uint32_t before;
    __asm__ volatile("stmxcsr %0" : "=m"(before));
    context_make(&g_other, static_cast<char*>(mem) + size, mxcsr_entry, nullptr);
    greenld_context_switch(&g_main, &g_other);
    uint32_t after;
    __asm__ volatile("stmxcsr %0" : "=m"(after));
    CHECK(after == before);
    CHECK((g_other_mxcsr & 0x6000u) == 0x6000u);
    greenld_context_switch(&g_main, &g_other);
    CHECK((g_other_mxcsr & 0x6000u) == 0x6000u);
    __asm__ volatile("stmxcsr %0" : "=m"(after));
    CHECK(after == before);
    munmap(mem, size);
}

TEST_CASE("a new context starts with a 16-byte aligned stack (SysV ABI)") {
    static uintptr_t seen_sp;
    const size_t size = 64 * 1024;
    void* mem = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(mem != MAP_FAILED);
    sanitizer::fresh_stack(mem, size);
    // Misaligned top on purpose: context_make must align it.
    context_make(
        &g_other, static_cast<char*>(mem) + size - 8,
        [](void*) {
            alignas(16) volatile char probe[16];
            seen_sp = reinterpret_cast<uintptr_t>(&probe[0]);
            greenld_context_switch(&g_other, &g_main);
            abort();
        },
        nullptr);
    greenld_context_switch(&g_main, &g_other);
    CHECK(seen_sp % 16 == 0);
    munmap(mem, size);
}
