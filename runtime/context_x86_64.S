/* greenld_context_switch(Context* from %rdi, Context* to %rsi)
 *
 * Frame left on a suspended stack, from its saved sp upwards:
 *   [0]  MXCSR (4 bytes) | x87 control word (2 bytes) | pad
 *   [8]  r15  [16] r14  [24] r13  [32] r12  [40] rbx  [48] rbp
 *   [56] resume address
 * The resume address is popped and jumped to rather than `ret`urned to: a
 * `ret` into another stack always mispredicts the return-stack buffer.
 */
    .text
    .globl greenld_context_switch
    .hidden greenld_context_switch
    .type greenld_context_switch, @function
greenld_context_switch:
    .cfi_startproc
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq (%rsi), %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    popq %rcx
    jmpq *%rcx
    /* The monitor (monitor.cpp) tells a thread stopped mid-switch, whose
     * saved stack pointers are not all current, by its pc. */
    .globl greenld_context_switch_end
    .hidden greenld_context_switch_end
greenld_context_switch_end:
    .cfi_endproc
    .size greenld_context_switch, .-greenld_context_switch

/* First code a new fiber runs: context_make put entry in r12 and its
 * argument in r13. The CFI marks the end of the stack for unwinders
 * (libunwind backtraces, C++ exceptions, gdb). */
    .globl greenld_context_trampoline
    .hidden greenld_context_trampoline
    .type greenld_context_trampoline, @function
greenld_context_trampoline:
    .cfi_startproc
    .cfi_undefined rip
    movq %r13, %rdi
    callq *%r12
    ud2
    .cfi_endproc
    .size greenld_context_trampoline, .-greenld_context_trampoline

/* greenld_call_on_stack(void (*fn)(void*) %rdi, void* arg %rsi,
 *                       void* stack_top %rdx)
 * Calls fn(arg) with the stack pointer at stack_top (rounded down to 16
 * bytes) and returns on the caller's stack: a signal handler run on a
 * fiber's own alternate stack (signals.cpp). The CFI follows %rbp, so
 * unwinders walk from the handler back to the caller. */
    .globl greenld_call_on_stack
    .hidden greenld_call_on_stack
    .type greenld_call_on_stack, @function
greenld_call_on_stack:
    .cfi_startproc
    pushq %rbp
    .cfi_adjust_cfa_offset 8
    .cfi_offset %rbp, -16
    movq %rsp, %rbp
    .cfi_def_cfa_register %rbp
    andq $-16, %rdx
    movq %rdx, %rsp
    movq %rdi, %rax
    movq %rsi, %rdi
    callq *%rax
    movq %rbp, %rsp
    .cfi_def_cfa_register %rsp
    popq %rbp
    .cfi_adjust_cfa_offset -8
    ret
    .cfi_endproc
    .size greenld_call_on_stack, .-greenld_call_on_stack

/* greenld_enter_signal_frame(void (*fn)(void*) %rdi, void* arg %rsi,
 *                            void* frame %rdx)
 * Jumps to fn(arg) with the stack pointer at frame, as the kernel enters a
 * handler: fn returns to the frame's restorer (rt_sigreturn), whose CFI
 * lets unwinders go on into the interrupted code. */
    .globl greenld_enter_signal_frame
    .hidden greenld_enter_signal_frame
    .type greenld_enter_signal_frame, @function
greenld_enter_signal_frame:
    .cfi_startproc
    movq %rdx, %rsp
    movq %rdi, %rax
    movq %rsi, %rdi
    jmpq *%rax
    .cfi_endproc
    .size greenld_enter_signal_frame, .-greenld_enter_signal_frame

    .section .note.GNU-stack,"",@progbits
