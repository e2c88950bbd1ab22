/* The guest runtime's entry points: boot, the `syscall` entry (LSTAR) and exception stubs.
 * Everything runs at CPL 0 with interrupts off; see runtime.c. */
    .section .note.GNU-stack, "", @progbits
    .text

/* hvt_boot(rdi = struct hvt_boot_info *): the ELF's entry point, called by the monitor. */
    .globl hvt_boot
    .type hvt_boot, @function
hvt_boot:
    lea rt_kstack_top(%rip), %rsp
    xor %ebp, %ebp
    call rt_main
1:  hlt
    jmp 1b

/* rt_enter(rdi = initial stack, rsi = entry): start libc's _start on a Linux process stack. */
    .globl rt_enter
    .type rt_enter, @function
rt_enter:
    mov %rdi, %rsp
    xor %edx, %edx      /* no rtld_fini */
    xor %ebp, %ebp
    jmp *%rsi

/* The `syscall` instruction lands here (LSTAR), still at CPL 0: rcx = return address,
 * r11 = rflags, rax = number, rdi rsi rdx r10 r8 r9 = arguments.  Like Linux, every
 * register but rax, rcx and r11 is preserved, the SSE registers included (libc keeps
 * values in them across system calls).  `sysretq` would return to CPL 3, so the way
 * back is popfq and an indirect jump on the caller's stack (nothing is pushed there:
 * its red zone is left alone). */
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

/* Exception stubs: push (error code or 0, vector) and report; the guest then exits. */
    .macro EXC n, err
exc\n:
    .if \err == 0
    push $0
    .endif
    push $\n
    jmp exc_common
    .endm
    EXC 0,0
    EXC 1,0
    EXC 2,0
    EXC 3,0
    EXC 4,0
    EXC 5,0
    EXC 6,0
    EXC 7,0
    EXC 8,1
    EXC 9,0
    EXC 10,1
    EXC 11,1
    EXC 12,1
    EXC 13,1
    EXC 14,1
    EXC 15,0
    EXC 16,0
    EXC 17,1
    EXC 18,0
    EXC 19,0
    EXC 20,0
exc_common:
    mov %rsp, %rdi          /* vector, error, rip, cs, rflags, rsp, ss */
    and $-16, %rsp
    call rt_exception
2:  hlt
    jmp 2b

    .section .rodata
    .globl rt_exception_stubs
rt_exception_stubs:
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20
    .quad exc\n
    .endr
