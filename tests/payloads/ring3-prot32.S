# ring3-prot32: ring 3 in 32-bit protected mode with paging off (legal on x86: CPL 3 needs only
# protected mode). Same report as ring3.S (CPL, marker, iterations, TSC delta lo/hi, exit 0).
#   ring 0: own GDT (ring-0/ring-3 flat segments + 32-bit TSS with ESP0/SS0), IDT for exceptions,
#           `ltr`, then `iret` to ring 3 with EFLAGS.IOPL=3 so ring 3 may use `in`/`out`.
# Found on the development machines' software KVM (kvm_pvm), which is why ring3.S uses long mode:
#   - paging off: the first ring-3 step ends KVM_RUN with KVM_EXIT_INTERNAL_ERROR, suberror 1
#     (KVM_INTERNAL_ERROR_EMULATION);
#   - 32-bit paging (4 MiB PSE pages) and PAE paging (2 MiB pages): `mov %eax, %cr0` setting CR0.PG
#     raises #GP (vector 13, error 0) with EFER = 0, CR4 = PSE or PAE. kvm_pvm only runs 64-bit guests.
# tests/kvm/payload-ring3.test.ts runs this variant only where KVM is hardware virtualization.
        .include "common.inc"

        .set LOOP_ITERATIONS, 200000000
        .set LOOP_DONE_MARKER, 0x600df00d

        .section .text.entry, "ax"
        .code32
        .globl pvh_entry
pvh_entry:
        movl $stack0_top, %esp
        call setup_gdt
        call setup_idt
        movw $SEL_TSS, %ax
        ltr %ax
        # iret frame for a privilege change: SS, ESP, EFLAGS, CS, EIP (Intel SDM Vol. 2A IRET).
        pushl $SEL_DATA3
        pushl $stack3_top
        pushl $0x00003002               # IOPL=3, reserved bit 1, IF=0
        pushl $SEL_CODE3
        pushl $ring3_entry
        iret

ring3_entry:
        movw $SEL_DATA3, %ax            # iret nulls DS/ES if their DPL < CPL
        movw %ax, %ds
        movw %ax, %es
        rdtsc
        movl %eax, %esi
        movl %edx, %edi
        movl $LOOP_ITERATIONS, %ecx
2:      decl %ecx
        jnz 2b
        rdtsc
        subl %esi, %eax
        sbbl %edi, %edx
        movl %eax, %esi
        movl %edx, %edi
        movw %cs, %ax
        movzwl %ax, %eax
        andl $3, %eax
        REPORT %eax                     # CPL
        REPORT $LOOP_DONE_MARKER
        REPORT $LOOP_ITERATIONS
        REPORT %esi                     # TSC delta lo
        REPORT %edi                     # TSC delta hi
        EXIT EXIT_OK

        .section .stack, "aw"
        .balign 16
stack3:
        .fill 4096, 1, 0
stack3_top:
