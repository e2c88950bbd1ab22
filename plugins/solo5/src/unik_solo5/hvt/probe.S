/* unik doctor -t hvt's probe guest: SSE, x87, a system call through LSTAR and back,
 * 10 million loop iterations (milliseconds when KVM runs the guest natively), then the
 * exit hypercall with status 42. */
    .section .note.GNU-stack, "", @progbits
    .text
    .globl _start
_start:
    jmp start
    .org _start + 16            /* LSTAR = entry + HVT_SYSCALL_OFFSET */
handler:
    push %r11
    popfq
    jmp *%rcx
start:
    /* the stack: the top of memory, as the monitor left rsp */
    mov $5, %rax
    movq %rax, %xmm0
    paddd %xmm0, %xmm1
    fninit
    fld1
    fstp %st(0)
    mov $39, %eax
    syscall
    mov $10000000, %rcx
1:  dec %rcx
    jnz 1b
    lea exitarg(%rip), %rax
    mov $0xfe000038, %ebx
    movl %eax, (%rbx)
2:  jmp 2b
    .data
exitarg: .long 42, 0
