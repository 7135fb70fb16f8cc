/* __sigsetjmp (what the sigsetjmp macro calls): glibc saves the signal mask
 * with its internal sigprocmask, which reads the hub thread's kernel mask,
 * not the fiber's. greenld_sigsetjmp_prepare (sigsetjmp.cpp) first records
 * the fiber's mask in the buffer and returns glibc's __sigsetjmp, which is
 * then jumped to with the caller's registers, stack and return address
 * untouched: it saves the caller's context, as if called directly (a C
 * wrapper cannot: its own frame would be the one saved, and gone when a
 * longjmp lands). */
    .text
/* setjmp the function (the <setjmp.h> macro is _setjmp): BSD semantics,
 * the mask saved, as glibc's __sigsetjmp(env, 1). */
    .globl setjmp
    .type setjmp, @function
setjmp:
    .cfi_startproc
    movl $1, %esi
    jmp __sigsetjmp_body
    .cfi_endproc
    .size setjmp, .-setjmp

    .globl __sigsetjmp
    .type __sigsetjmp, @function
__sigsetjmp:
    .cfi_startproc
__sigsetjmp_body:
    pushq %rdi
    .cfi_adjust_cfa_offset 8
    pushq %rsi
    .cfi_adjust_cfa_offset 8
    subq $8, %rsp
    .cfi_adjust_cfa_offset 8
    call greenld_sigsetjmp_prepare
    addq $8, %rsp
    .cfi_adjust_cfa_offset -8
    popq %rsi
    .cfi_adjust_cfa_offset -8
    popq %rdi
    .cfi_adjust_cfa_offset -8
    jmpq *%rax
    .cfi_endproc
    .size __sigsetjmp, .-__sigsetjmp

    .section .note.GNU-stack,"",@progbits
