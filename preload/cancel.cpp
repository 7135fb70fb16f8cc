// pthread_cancel, pthread_exit and cleanup handlers for fibers.
//
// glibc keeps all of this in its thread descriptor, i.e. per OS thread, and
// a hub's OS thread runs many fibers; for fibers it lives in the Fiber
// instead (runtime/cancel.h: request state; cancel.h: cancellation points).
//
// Exit is a forced unwind of the fiber's stack, as glibc's pthread_exit:
// _Unwind_ForcedUnwind runs every C++ destructor and catch(...) on the way
// (and the cleanup handlers C++ and -fexceptions C code push, which are
// destructors). Cleanup handlers of C code compiled without exceptions are
// glibc's pthread_cleanup_push macro: a setjmp buffer on the pushing frame,
// chained by __pthread_register_cancel. We keep that chain per fiber and,
// when the unwind reaches the frame holding the innermost buffer, longjmp
// into it: the macro runs the handler and calls __pthread_unwind_next, which
// resumes the unwind. The unwind ends at the fiber's entry trampoline (its
// CFI marks the end of the stack); the fiber's pthread key destructors then
// run and it ends, its join result PTHREAD_CANCELED or pthread_exit's value.
//
// Cancel type: PTHREAD_CANCEL_ASYNCHRONOUS is recorded and reported, and a
// request is acted on at once where glibc would (the fiber cancelling
// itself, or switching to asynchronous with a request pending); a request
// from elsewhere is acted on at the target's next cancellation point, as a
// deferred one: a fiber cannot be preempted in the middle of its code.
// Cancellation points: the cooperative wrappers that declare a CancelPoint;
// a call that reaches glibc's own implementation (not made cooperative)
// does not see fiber requests.
#include <pthread.h>
#include <setjmp.h>
#include <unwind.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "../runtime/config.h"
#include "../runtime/diag.h"
#include "cancel.h"
#include "next.h"

using namespace greenld;

namespace {

next::Symbol<decltype(::pthread_cancel)> next_cancel{"pthread_cancel"};
next::Symbol<decltype(::pthread_setcancelstate)> next_setcancelstate{"pthread_setcancelstate"};
next::Symbol<decltype(::pthread_setcanceltype)> next_setcanceltype{"pthread_setcanceltype"};
next::Symbol<decltype(::pthread_testcancel)> next_testcancel{"pthread_testcancel"};
next::Symbol<void(__pthread_unwind_buf_t*)> next_register_cancel{"__pthread_register_cancel"};
next::Symbol<void(__pthread_unwind_buf_t*)> next_unregister_cancel{"__pthread_unregister_cancel"};
next::Symbol<void(__pthread_unwind_buf_t*)> next_register_cancel_defer{"__pthread_register_cancel_defer"};
next::Symbol<void(__pthread_unwind_buf_t*)> next_unregister_cancel_restore{"__pthread_unregister_cancel_restore"};
next::Symbol<void(__pthread_unwind_buf_t*)> next_unwind_next{"__pthread_unwind_next"};

// The buffer's private words (glibc's priv.data): the next outer buffer and
// the cancel type saved by the _defer variant.
__pthread_unwind_buf_t* outer_of(__pthread_unwind_buf_t* b) { return static_cast<__pthread_unwind_buf_t*>(b->__pad[0]); }
void set_outer(__pthread_unwind_buf_t* b, __pthread_unwind_buf_t* outer) { b->__pad[0] = outer; }
bool saved_async(__pthread_unwind_buf_t* b) { return b->__pad[1] != nullptr; }
void save_async(__pthread_unwind_buf_t* b, bool async) { b->__pad[1] = async ? b : nullptr; }

Fiber* current_fiber() { return config::patched(config::kPatchThread) ? Hub::current_fiber() : nullptr; }

[[noreturn]] void end_fiber(Fiber* f) {
    free(f->cancel.unwind_exception);
    f->cancel.unwind_exception = nullptr;
    f->hub->exit_current();
}

// Called for each frame of the unwind, before that frame's cleanups.
_Unwind_Reason_Code exit_stop(int, _Unwind_Action actions, _Unwind_Exception_Class, _Unwind_Exception*,
                              _Unwind_Context* context, void* arg) {
    auto* f = static_cast<Fiber*>(arg);
    auto* buf = static_cast<__pthread_unwind_buf_t*>(f->cancel.cleanup_chain);
    const bool end = actions & _UA_END_OF_STACK;
    // The buffer lives in the frame that pushed it: once the unwind reaches
    // a frame whose CFA lies above the buffer, that frame is the pusher.
    if (buf && (end || reinterpret_cast<uintptr_t>(buf) < _Unwind_GetCFA(context)))
        longjmp(reinterpret_cast<__jmp_buf_tag*>(buf->__cancel_jmp_buf), 1);
    if (end) end_fiber(f);
    return _URC_NO_REASON;
}

// A C++ catch(...) that swallowed the unwind instead of rethrowing.
void exit_unwind_swallowed(_Unwind_Reason_Code, _Unwind_Exception*) {
    diag::fatal("a thread's exit (pthread_exit or pthread_cancel) was caught and not rethrown");
}

[[noreturn]] void unwind(Fiber* f) {
    auto* exc = static_cast<_Unwind_Exception*>(f->cancel.unwind_exception);
    if (!exc) {
        exc = static_cast<_Unwind_Exception*>(aligned_alloc(16, (sizeof(_Unwind_Exception) + 15) & ~size_t(15)));
        if (!exc) {
            diag::message("no memory to unwind fiber %u's stack on exit; its destructors do not run", f->id);
            end_fiber(f);
        }
        memset(exc, 0, sizeof *exc);
        memcpy(&exc->exception_class, "GRNLDEXT", 8);
        exc->exception_cleanup = exit_unwind_swallowed;
        f->cancel.unwind_exception = exc;
    }
    _Unwind_ForcedUnwind(exc, exit_stop, f);
    // Only when a frame has no unwind information.
    diag::message("fiber %u's stack could not be unwound on exit; destructors and cleanup handlers skipped", f->id);
    end_fiber(f);
}

}  // namespace

namespace greenld {

void fiber_exit(Fiber* self, void* result) {
    self->result = result;
    // Exiting: no request is acted on from now on (cleanup handlers may
    // call cancellation points).
    self->cancel.state.fetch_or(cancel::kActing, std::memory_order_relaxed);
    unwind(self);
}

void act_on_cancel(Fiber* self) { fiber_exit(self, PTHREAD_CANCELED); }

}  // namespace greenld

GREENLD_EXPORT int pthread_cancel(pthread_t t) {
    Fiber* f = Fiber::from_handle(reinterpret_cast<void*>(t));
    if (!f) return next_cancel(t);
    if (f->state.load(std::memory_order_acquire) == FiberState::dead) return 0;  // as glibc 2.34+: exited, not joined
    const uint32_t before = cancel::request(f);
    // A thread cancelling itself asynchronously ends at once.
    if (f == Hub::current_fiber() && (before & cancel::kAsync) && cancel::pending(before | cancel::kRequested))
        act_on_cancel(f);
    return 0;
}

GREENLD_EXPORT int pthread_setcancelstate(int state, int* old) {
    Fiber* f = current_fiber();
    if (!f) return next_setcancelstate(state, old);
    if (state != PTHREAD_CANCEL_ENABLE && state != PTHREAD_CANCEL_DISABLE) return EINVAL;
    std::atomic<uint32_t>& s = f->cancel.state;
    const uint32_t before = state == PTHREAD_CANCEL_DISABLE ? s.fetch_or(cancel::kDisabled)
                                                            : s.fetch_and(~cancel::kDisabled);
    if (old) *old = (before & cancel::kDisabled) ? PTHREAD_CANCEL_DISABLE : PTHREAD_CANCEL_ENABLE;
    const uint32_t now = s.load(std::memory_order_relaxed);
    if ((now & cancel::kAsync) && cancel::pending(now)) act_on_cancel(f);
    return 0;
}

GREENLD_EXPORT int pthread_setcanceltype(int type, int* old) {
    Fiber* f = current_fiber();
    if (!f) return next_setcanceltype(type, old);
    if (type != PTHREAD_CANCEL_DEFERRED && type != PTHREAD_CANCEL_ASYNCHRONOUS) return EINVAL;
    std::atomic<uint32_t>& s = f->cancel.state;
    const uint32_t before = type == PTHREAD_CANCEL_ASYNCHRONOUS ? s.fetch_or(cancel::kAsync)
                                                                : s.fetch_and(~cancel::kAsync);
    if (old) *old = (before & cancel::kAsync) ? PTHREAD_CANCEL_ASYNCHRONOUS : PTHREAD_CANCEL_DEFERRED;
    const uint32_t now = s.load(std::memory_order_relaxed);
    if ((now & cancel::kAsync) && cancel::pending(now)) act_on_cancel(f);
    return 0;
}

GREENLD_EXPORT void pthread_testcancel() {
    Fiber* f = current_fiber();
    if (!f) return next_testcancel();
    if (cancel::pending(f->cancel.state.load(std::memory_order_acquire))) act_on_cancel(f);
}

// ---- pthread_cleanup_push/pop of C code without exceptions (glibc's macros)

GREENLD_EXPORT void __pthread_register_cancel(__pthread_unwind_buf_t* buf) {
    Fiber* f = current_fiber();
    if (!f) return next_register_cancel(buf);
    set_outer(buf, static_cast<__pthread_unwind_buf_t*>(f->cancel.cleanup_chain));
    f->cancel.cleanup_chain = buf;
}

GREENLD_EXPORT void __pthread_unregister_cancel(__pthread_unwind_buf_t* buf) {
    Fiber* f = current_fiber();
    if (!f) return next_unregister_cancel(buf);
    f->cancel.cleanup_chain = outer_of(buf);
}

// pthread_cleanup_push_defer_np: also switches to deferred cancellation
// until the matching pop, which restores the previous type.
GREENLD_EXPORT void __pthread_register_cancel_defer(__pthread_unwind_buf_t* buf) {
    Fiber* f = current_fiber();
    if (!f) return next_register_cancel_defer(buf);
    const uint32_t before = f->cancel.state.fetch_and(~cancel::kAsync);
    save_async(buf, before & cancel::kAsync);
    __pthread_register_cancel(buf);
}

GREENLD_EXPORT void __pthread_unregister_cancel_restore(__pthread_unwind_buf_t* buf) {
    Fiber* f = current_fiber();
    if (!f) return next_unregister_cancel_restore(buf);
    __pthread_unregister_cancel(buf);
    if (saved_async(buf)) pthread_setcanceltype(PTHREAD_CANCEL_ASYNCHRONOUS, nullptr);
}

// The handler of the innermost buffer ran: go on unwinding past its frame.
GREENLD_EXPORT void __pthread_unwind_next(__pthread_unwind_buf_t* buf) {
    Fiber* f = current_fiber();
    if (!f) {
        next_unwind_next(buf);
        __builtin_unreachable();
    }
    f->cancel.cleanup_chain = outer_of(buf);
    unwind(f);
}
