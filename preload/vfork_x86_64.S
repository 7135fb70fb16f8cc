/* vfork(2) and __vfork: the child starts with the calling fiber's signal
 * mask, as a thread's vfork child starts with that thread's.
 *
 * The child runs on the caller's stack until it execs or exits, and only
 * then does the parent return: whatever the child's code (the caller's,
 * after its return) writes below the caller's stack pointer is gone for
 * the parent. So no C frame may live across the system call: as glibc's
 * vfork does, the return address is popped into %rdi (which the system
 * call preserves, in parent and child alike) and pushed back after it.
 *
 * Before the call, greenld_vfork_prepare sets the hub thread's kernel mask
 * to the fiber's (per-fiber masks are virtual: runtime/signals.h). After
 * it, the child (0) returns at once, with that mask; the parent (a pid or
 * -errno) goes through greenld_vfork_parent, which gives the hub its own
 * mask back, runs the handlers of signals that arrived meanwhile and sets
 * errno. Both are no-ops outside a fiber and in a vfork child.
 */
#include <sys/syscall.h>

    .text
    .globl vfork
    .type vfork, @function
    .globl __vfork
    .type __vfork, @function
vfork:
__vfork:
    .cfi_startproc
    subq $8, %rsp
    .cfi_adjust_cfa_offset 8
    call greenld_vfork_prepare
    addq $8, %rsp
    .cfi_adjust_cfa_offset -8
    popq %rdi
    .cfi_adjust_cfa_offset -8
    .cfi_register %rip, %rdi
    movl $SYS_vfork, %eax
    syscall
    pushq %rdi
    .cfi_adjust_cfa_offset 8
    .cfi_offset %rip, -8
    testq %rax, %rax
    jz 1f
    movq %rax, %rdi
    subq $8, %rsp
    .cfi_adjust_cfa_offset 8
    call greenld_vfork_parent
    addq $8, %rsp
    .cfi_adjust_cfa_offset -8
1:
    ret
    .cfi_endproc
    .size vfork, .-vfork
    .size __vfork, .-__vfork

    .section .note.GNU-stack,"",@progbits
