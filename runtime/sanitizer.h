// AddressSanitizer needs to be told about fiber stacks: which memory is a
// stack, and when execution moves to another one. Without ASan these
// compile to nothing.
#pragma once

#include <cstddef>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define GREENLD_ASAN 1
#endif

namespace greenld::sanitizer {

// A stack handed out again may carry poison from frames of its last life.
inline void fresh_stack(void* lo, size_t size) {
#ifdef GREENLD_ASAN
    __asan_unpoison_memory_region(lo, size);
#else
    (void)lo;
    (void)size;
#endif
}

// Around each switch: start before leaving a stack (naming the one we go
// to), finish after arriving. A dying fiber passes null for `save` so ASan
// drops its fake stack.
inline void start_switch(void** save, const void* to_lo, size_t to_size) {
#ifdef GREENLD_ASAN
    __sanitizer_start_switch_fiber(save, to_lo, to_size);
#else
    (void)save;
    (void)to_lo;
    (void)to_size;
#endif
}

inline void finish_switch(void* save) {
#ifdef GREENLD_ASAN
    __sanitizer_finish_switch_fiber(save, nullptr, nullptr);
#else
    (void)save;
#endif
}

}  // namespace greenld::sanitizer
