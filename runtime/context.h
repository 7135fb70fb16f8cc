// Register context switch between fibers of one OS thread.
//
// A context is just a saved stack pointer: the switch pushes the callee-saved
// registers (plus MXCSR and the x87 control word, which the ABI also makes
// callee-saved) on the current stack, stores the stack pointer, loads the
// other one, pops and jumps. No syscall, no signal mask: that is why this is
// not swapcontext (which costs a sigprocmask syscall per switch).
#pragma once

#include <cstddef>

namespace greenld {

struct Context {
    void* sp = nullptr;
};

extern "C" void greenld_context_switch(Context* from, Context* to);

// Calls fn(arg) on the stack whose highest usable address is `stack_top`,
// then returns on the caller's stack.
extern "C" void greenld_call_on_stack(void (*fn)(void*), void* arg, void* stack_top);

// Enters fn(arg) as the kernel enters a signal handler: the stack pointer
// at `frame`, a signal frame whose first word (the return address) is its
// restorer. Never returns.
extern "C" [[noreturn]] void greenld_enter_signal_frame(void (*fn)(void*), void* arg, void* frame);

// Prepares `ctx` so that switching to it calls entry(arg) on the stack whose
// highest usable address is `stack_top`. entry must never return.
void context_make(Context* ctx, void* stack_top, void (*entry)(void*), void* arg);

}  // namespace greenld
