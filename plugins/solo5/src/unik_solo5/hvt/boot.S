/* The guest runtime's entry points: boot and the `syscall` entry (LSTAR).  Everything
 * runs at CPL 3 (see hvt_abi.h and runtime.c). */
    .section .note.GNU-stack, "", @progbits
    .section .text.hvt_boot, "ax", @progbits
    .balign 16

/* hvt_boot(rdi = struct hvt_boot_info *): the ELF's entry point, called by the monitor,
 * which points LSTAR HVT_SYSCALL_OFFSET (16) bytes further, at rt_syscall_entry. */
    .globl hvt_boot
    .type hvt_boot, @function
hvt_boot:
    .byte 0xe9                  /* jmp rel32: a fixed size, so that .org below holds */
    .long hvt_boot_main - . - 4
    .org hvt_boot + 16          /* HVT_SYSCALL_OFFSET */

/* The `syscall` instruction lands here (LSTAR): rcx = return address, r11 = rflags,
 * rax = number, rdi rsi rdx r10 r8 r9 = arguments.  Like Linux, every register but
 * rax, rcx and r11 is preserved, the SSE registers included (libc keeps values in them
 * across system calls).  The way back is popfq and an indirect jump, not `sysretq`
 * (privileged), with the caller's stack untouched (its red zone is left alone). */
    .globl rt_syscall_entry
    .type rt_syscall_entry, @function
rt_syscall_entry:
    mov %rsp, rt_user_rsp(%rip)
    lea rt_kstack_top(%rip), %rsp
    push %rcx
    push %r11
    push %r9
    push %r8
    push %r10
    push %rdx
    push %rsi
    push %rdi
    push %rax
    sub $264, %rsp
    movdqu %xmm0, 0(%rsp)
    movdqu %xmm1, 16(%rsp)
    movdqu %xmm2, 32(%rsp)
    movdqu %xmm3, 48(%rsp)
    movdqu %xmm4, 64(%rsp)
    movdqu %xmm5, 80(%rsp)
    movdqu %xmm6, 96(%rsp)
    movdqu %xmm7, 112(%rsp)
    movdqu %xmm8, 128(%rsp)
    movdqu %xmm9, 144(%rsp)
    movdqu %xmm10, 160(%rsp)
    movdqu %xmm11, 176(%rsp)
    movdqu %xmm12, 192(%rsp)
    movdqu %xmm13, 208(%rsp)
    movdqu %xmm14, 224(%rsp)
    movdqu %xmm15, 240(%rsp)
    lea 264(%rsp), %rdi     /* struct rt_regs: rax rdi rsi rdx r10 r8 r9 */
    call rt_syscall
    movdqu 0(%rsp), %xmm0
    movdqu 16(%rsp), %xmm1
    movdqu 32(%rsp), %xmm2
    movdqu 48(%rsp), %xmm3
    movdqu 64(%rsp), %xmm4
    movdqu 80(%rsp), %xmm5
    movdqu 96(%rsp), %xmm6
    movdqu 112(%rsp), %xmm7
    movdqu 128(%rsp), %xmm8
    movdqu 144(%rsp), %xmm9
    movdqu 160(%rsp), %xmm10
    movdqu 176(%rsp), %xmm11
    movdqu 192(%rsp), %xmm12
    movdqu 208(%rsp), %xmm13
    movdqu 224(%rsp), %xmm14
    movdqu 240(%rsp), %xmm15
    add $272, %rsp          /* and the saved rax: rax is the result */
    pop %rdi
    pop %rsi
    pop %rdx
    pop %r10
    pop %r8
    pop %r9
    popfq                   /* the caller's rflags (saved r11) */
    pop %rcx
    mov rt_user_rsp(%rip), %rsp
    jmp *%rcx

/* rt_enter(rdi = initial stack, rsi = entry): start libc's _start on a Linux process stack. */
    .globl rt_enter
    .type rt_enter, @function
rt_enter:
    mov %rdi, %rsp
    xor %edx, %edx      /* no rtld_fini */
    xor %ebp, %ebp
    jmp *%rsi

hvt_boot_main:
    lea rt_kstack_top(%rip), %rsp
    xor %ebp, %ebp
    call rt_main
1:  jmp 1b

