/* The vDSO (vdso.c, built by setup.py into VDSO_SO) inside the runtime's text: page-aligned,
 * readable and executable; the runtime hands its address to glibc as AT_SYSINFO_EHDR. */
    .section .note.GNU-stack, "", @progbits
    .section .text.hvt_vdso, "ax", @progbits
    .balign 4096
    .globl hvt_vdso
hvt_vdso:
    .incbin VDSO_SO
    .balign 4096
