// sigsetjmp and the longjmp family in a fiber: the mask saved and restored
// is the fiber's. glibc reads and sets the OS thread's kernel mask with its
// own internal sigprocmask, which on a hub is the hub's (runtime/signals.h),
// so a handler that siglongjmps out would leave the fiber with the mask the
// handler ran with, and the hub's kernel mask overwritten.
//
// The fiber's mask goes into words of the buffer's sigset_t that glibc
// never writes (the kernel's mask is 64 bits of glibc's 1024), with a tag
// naming the buffer, so that a buffer last saved outside a fiber, copied or
// reused is not mistaken for one. glibc still saves its own word and
// __mask_was_saved; the longjmp wrappers set the fiber's mask and overwrite
// that word with the hub's current kernel mask, so that glibc's restore
// changes nothing there.
#include <setjmp.h>

#include <cstdint>
#include <cstring>

#include "../runtime/config.h"
#include "../runtime/hub.h"
#include "../runtime/signals.h"
#include "next.h"

using namespace greenld;

extern "C" int __sigsetjmp(struct __jmp_buf_tag env[1], int savemask);
extern "C" [[noreturn]] void __longjmp_chk(struct __jmp_buf_tag env[1], int val);

namespace {

next::Symbol<int(struct __jmp_buf_tag*, int)> next___sigsetjmp{"__sigsetjmp"};
next::Symbol<void(struct __jmp_buf_tag*, int)> next_longjmp{"longjmp"};
next::Symbol<void(struct __jmp_buf_tag*, int)> next_siglongjmp{"siglongjmp"};
next::Symbol<void(struct __jmp_buf_tag*, int)> next__longjmp{"_longjmp"};
next::Symbol<void(struct __jmp_buf_tag*, int)> next___longjmp_chk{"__longjmp_chk"};

constexpr uint64_t kTag = 0x6b6d6a67736c6467ull;  // "gdlsgjmk"
enum : int { kKernelWord = 0, kFiberMaskWord = 1, kTagWord = 2 };

uint64_t tag_of(const struct __jmp_buf_tag* env) { return kTag ^ reinterpret_cast<uintptr_t>(env); }

// As signal.cpp's: a fiber, with signals patched, and not a vfork child.
Fiber* fiber() {
    Fiber* f = Hub::current_fiber();
    if (!f || !config::patched(config::kPatchSignal) || !config::patched(config::kPatchThread) ||
        signals::in_memory_sharing_child())
        return nullptr;
    return f;
}

uint64_t word(const struct __jmp_buf_tag* env, int i) {
    uint64_t w;
    memcpy(&w, reinterpret_cast<const char*>(&env->__saved_mask) + i * sizeof w, sizeof w);
    return w;
}

void set_word(struct __jmp_buf_tag* env, int i, uint64_t w) {
    memcpy(reinterpret_cast<char*>(&env->__saved_mask) + i * sizeof w, &w, sizeof w);
}

// Before glibc's longjmp: the fiber's saved mask, if this buffer has one.
// glibc then sets the hub's kernel mask to what the runtime keeps for it
// (a jump out of a handler the kernel ran leaves the kernel mask of the
// handler, which sigreturn would have undone).
void restore_fiber_mask(struct __jmp_buf_tag* env) {
    if (!env->__mask_was_saved || word(env, kTagWord) != tag_of(env)) return;
    Fiber* f = fiber();
    if (!f) return;
    signals::set_mask(f, word(env, kFiberMaskWord));
    set_word(env, kKernelWord, signals::hub_thread_mask());
}

}  // namespace

extern "C" __attribute__((visibility("hidden"))) void* greenld_sigsetjmp_prepare(struct __jmp_buf_tag* env,
                                                                                  int savemask) {
    // Only a buffer whose mask is saved has the room: pthread_cleanup_push
    // passes a smaller one with savemask 0.
    if (savemask) {
        Fiber* f = fiber();
        set_word(env, kFiberMaskWord, f ? f->sig.blocked : 0);
        set_word(env, kTagWord, f ? tag_of(env) : 0);
    }
    return reinterpret_cast<void*>(next___sigsetjmp.get());
}

GREENLD_EXPORT [[noreturn]] void longjmp(struct __jmp_buf_tag env[1], int val) {
    restore_fiber_mask(env);
    next_longjmp(env, val);
    __builtin_unreachable();
}

GREENLD_EXPORT [[noreturn]] void siglongjmp(struct __jmp_buf_tag env[1], int val) {
    restore_fiber_mask(env);
    next_siglongjmp(env, val);
    __builtin_unreachable();
}

GREENLD_EXPORT [[noreturn]] void _longjmp(struct __jmp_buf_tag env[1], int val) {
    restore_fiber_mask(env);
    next__longjmp(env, val);
    __builtin_unreachable();
}

// The fortified longjmp checks that it does not jump into a frame below
// the current one unless it leaves the alternate signal stack, which it
// asks the kernel for: the hub's, not the fiber's (signals.h). From a
// fiber the jump is glibc's plain longjmp, without that check.
GREENLD_EXPORT [[noreturn]] void __longjmp_chk(struct __jmp_buf_tag env[1], int val) {
    restore_fiber_mask(env);
    if (fiber()) next_longjmp(env, val);
    next___longjmp_chk(env, val);
    __builtin_unreachable();
}
