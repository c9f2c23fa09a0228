# ring3: drop from ring 0 to ring 3 and run a tight loop there.
#   ring 0: own GDT (ring-0/ring-3 flat segments + 32-bit TSS with ESP0/SS0), IDT for exceptions,
#           `ltr`, then `iret` to ring 3 with EFLAGS.IOPL=3 so ring 3 may use `in`/`out`.
#   ring 3: rdtsc; `dec ecx; jnz` LOOP_ITERATIONS times; rdtsc; then on the test value port:
#           CPL (cs & 3), LOOP_DONE_MARKER, LOOP_ITERATIONS, TSC delta lo, TSC delta hi;
#           exit 0 on the debug exit port (from ring 3).
# Keep ring-0 code short: on the development machines' software KVM (kvm_pvm) guest ring 0 is
# emulated (~2000x slower) while ring 3 runs natively.
#
# Paging: with PAGING defined (ring3-paging.S) the payload first enables 32-bit paging with
# identity-mapped 4 MiB PSE pages (U/S=1, R/W=1) covering the low 1 GiB, for hypervisors that cannot run
# ring 3 with paging off. The default build leaves paging off (legal on x86: CPL 3 needs only
# protected mode).
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
.ifdef PAGING
        # PAE paging (Intel SDM Vol. 3A §4.4): a 4-entry PDPT, each entry a page directory of 512
        # 2 MiB pages. Only PDPT[0] (the low 1 GiB) is filled to keep ring-0 work small.
        # PDE: P|RW|US|PS = 0x87; PDPTE: P only (RW/US are reserved in PAE PDPTEs).
        movl $page_dir, %edi
        movl $0x00000087, %eax
        movl $512, %ecx
1:      movl %eax, (%edi)
        movl $0, 4(%edi)
        addl $0x200000, %eax
        addl $8, %edi
        decl %ecx
        jnz 1b
        movl $page_dir + 1, pdpt
        movl %cr4, %eax
        orl $0x20, %eax                 # CR4.PAE
        movl %eax, %cr4
        movl $pdpt, %eax
        movl %eax, %cr3
        movl %cr0, %eax
        orl $0x80000000, %eax           # CR0.PG
        movl %eax, %cr0
.endif
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
.ifdef PAGING
        .balign 4096
page_dir:
        .fill 512, 8, 0
pdpt:
        .fill 4, 8, 0
.endif
