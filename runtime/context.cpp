#include "context.h"

#include <cstdint>

extern "C" void greenld_context_trampoline();

namespace greenld {

#if defined(__x86_64__)
void context_make(Context* ctx, void* stack_top, void (*entry)(void*), void* arg) {
    // The trampoline is entered by a jmp with sp = top of the frame; it then
    // `call`s entry, so that sp must be 16-byte aligned (SysV ABI).
    auto top = reinterpret_cast<uintptr_t>(stack_top) & ~uintptr_t(15);
    auto* frame = reinterpret_cast<uint64_t*>(top) - 8;
    uint32_t mxcsr;
    uint16_t fpucw;
    // A new thread inherits its creator's floating-point control state.
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(fpucw));
    frame[0] = uint64_t(mxcsr) | (uint64_t(fpucw) << 32);
    frame[1] = 0;                                      // r15
    frame[2] = 0;                                      // r14
    frame[3] = reinterpret_cast<uint64_t>(arg);        // r13
    frame[4] = reinterpret_cast<uint64_t>(entry);      // r12
    frame[5] = 0;                                      // rbx
    frame[6] = 0;                                      // rbp
    frame[7] = reinterpret_cast<uint64_t>(&greenld_context_trampoline);
    ctx->sp = frame;
}
#else
#error "greenld: context_make not written for this architecture yet"
#endif

}  // namespace greenld
