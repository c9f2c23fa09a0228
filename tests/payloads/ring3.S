# ring3: enter long mode, drop to 64-bit ring 3 and run a tight loop there.
#   ring 0 (32-bit, from the PVH entry): identity-map the low 1 GiB with 2 MiB pages (U/S=1 at every
#           level), CR4.PAE, CR3, EFER.LME, CR0.PG, a 64-bit GDT, far jump to 64-bit code;
#   ring 0 (64-bit): 64-bit TSS (RSP0) + `ltr`, an IDT for exceptions (#GP emulates port writes),
#           `iretq` to ring 3 (RFLAGS.IOPL=3);
#   ring 3: rdtsc; `dec ecx; jnz` LOOP_ITERATIONS times; rdtsc; then on the test value port:
#           CPL (cs & 3, computed in ring 3), LOOP_DONE_MARKER, LOOP_ITERATIONS, TSC delta lo,
#           TSC delta hi; then exit 0 on the debug exit port, all with `out` from ring 3.
# Ring 3 and port I/O: ring 3 uses `out` directly with RFLAGS.IOPL=3. On kvm_pvm that `out` raises
# #GP (error 0) anyway (the guest's IOPL does not reach the hardware), so gp_handler emulates the
# write in ring 0 and resumes; on hardware KVM the `out` goes straight out. (Also found on kvm_pvm:
# `int $0x80` through a DPL-3 gate raises #UD, and `syscall` to a lower-half LSTAR arrives with
# CS = 0x23, i.e. still at CPL 3, so neither is a way into ring 0 there.)
# Intel SDM Vol. 3A §9.8.5 (initializing IA-32e mode), §4.5 (4-level paging), §7.7 (64-bit TSS).
        .include "common.inc"
        .include "long-mode.inc"

        .set LOOP_ITERATIONS, 200000000
        .set LOOP_DONE_MARKER, 0x600df00d
        .set MSR_EFER, 0xc0000080
        .set EFER_LME, 1 << 8
        # 64-bit GDT selectors
        .set SEL64_CODE0, 0x08
        .set SEL64_DATA0, 0x10
        .set SEL64_DATA3, 0x18 | 3
        .set SEL64_CODE3, 0x20 | 3
        .set SEL64_TSS,   0x28

        .section .text.entry, "ax"
        .code32
        .globl pvh_entry
pvh_entry:
        movl $stack0_top, %esp
        # PD: 512 x 2 MiB pages, P|RW|US|PS = 0x87 (SDM Table 4-17)
        movl $pd, %edi
        movl $0x87, %eax
        movl $512, %ecx
1:      movl %eax, (%edi)
        addl $0x200000, %eax
        addl $8, %edi
        decl %ecx
        jnz 1b
        movl $pdpt + 0x7, pml4          # P|RW|US
        movl $pd + 0x7, pdpt
        ENTER_LONG_MODE

        .code64
long_entry:
        movw $SEL64_DATA0, %ax
        movw %ax, %ds
        movw %ax, %es
        movw %ax, %ss
        movl $stack0_top, %esp
        # 64-bit TSS descriptor (SDM Figure 7-4): limit 103, type 0x9, P=1; base 63:32 = 0 here.
        movl $tss64, %eax
        shll $16, %eax
        orl $103, %eax
        movl %eax, gdt64_tss
        movl $tss64, %eax
        movl %eax, %edx
        shrl $16, %edx
        andl $0xff, %edx
        andl $0xff000000, %eax
        orl %edx, %eax
        orl $0x00008900, %eax
        movl %eax, gdt64_tss + 4
        movw $SEL64_TSS, %ax
        ltr %ax
        # IDT: 32 interrupt gates (16 bytes each, SDM Figure 6-8), handler addresses below 4 GiB.
        xorl %ecx, %ecx
2:      movl exc64_stubs(,%ecx,4), %eax
        movl %eax, %edx
        andl $0xffff, %eax
        orl $(SEL64_CODE0 << 16), %eax
        movl %ecx, %ebx
        shll $4, %ebx
        movl %eax, idt64(%ebx)
        andl $0xffff0000, %edx
        orl $0x8e00, %edx
        movl %edx, idt64+4(%ebx)
        incl %ecx
        cmpl $32, %ecx
        jne 2b
        # #GP gets its own handler: it emulates ring 3's port writes when the hypervisor ignores IOPL.
        movl $gp_handler, %eax
        movl %eax, %edx
        andl $0xffff, %eax
        orl $(SEL64_CODE0 << 16), %eax
        movl %eax, idt64 + 13 * 16
        andl $0xffff0000, %edx
        orl $0x8e00, %edx
        movl %edx, idt64 + 13 * 16 + 4
        lidt idt64_ptr
        # iretq frame: SS, RSP, RFLAGS, CS, RIP
        pushq $SEL64_DATA3
        pushq $stack3_top
        pushq $0x3002                   # IOPL=3, reserved bit 1, IF=0
        pushq $SEL64_CODE3
        pushq $ring3_entry
        iretq

ring3_entry:
        rdtsc
        movl %eax, %esi
        movl %edx, %edi
        movl $LOOP_ITERATIONS, %ecx
3:      decl %ecx
        jnz 3b
        rdtsc
        subl %esi, %eax
        sbbl %edi, %edx
        movl %eax, %esi
        movl %edx, %edi
        movw %cs, %ax
        movzwl %ax, %eax
        andl $3, %eax
        call report64                   # CPL
        movl $LOOP_DONE_MARKER, %eax
        call report64
        movl $LOOP_ITERATIONS, %eax
        call report64
        movl %esi, %eax                 # TSC delta lo
        call report64
        movl %edi, %eax                 # TSC delta hi
        call report64
        movb $EXIT_OK, %al
        outb %al, $PORT_DEBUG_EXIT
4:      jmp 4b


# gp_handler: port writes from ring 3 (long-mode.inc)
gp_handler:
        GP_PORT_HANDLER

# report64: the 64-bit twin of common.inc's report (%eax -> port 0xea, hex on 0xe9).
report64:
        pushq %rax
        pushq %rbx
        pushq %rcx
        pushq %rdx
        movw $PORT_TESTVAL, %dx
        outl %eax, %dx
        movl %eax, %ebx
        movw $PORT_DEBUGCON, %dx
        movl $8, %ecx
1:      roll $4, %ebx
        movl %ebx, %eax
        andl $0xf, %eax
        movb hexdigits(%eax), %al
        outb %al, %dx
        decl %ecx
        jnz 1b
        movb $'\n', %al
        outb %al, %dx
        popq %rdx
        popq %rcx
        popq %rbx
        popq %rax
        ret

        # Vectors that push an error code: 8, 10-14, 17, 21, 29, 30 (SDM Table 6-1).
        .irp n, 0,1,2,3,4,5,6,7,9,15,16,18,19,20,22,23,24,25,26,27,28,31
exc64_\n: pushq $0
        pushq $\n
        jmp exc64_common
        .endr
        .irp n, 8,10,11,12,13,14,17,21,29,30
exc64_\n: pushq $\n
        jmp exc64_common
        .endr
exc64_common:
        popq %rax
        orl $0xe0000000, %eax
        call report64
        popq %rax                       # error code
        call report64
        popq %rax                       # RIP
        call report64
        popq %rax                       # CS
        call report64
        popq %rax                       # RFLAGS
        call report64
        movb $EXIT_EXCEPTION, %al
        outb %al, $PORT_DEBUG_EXIT
5:      jmp 5b

        .section .rodata
        .balign 4
exc64_stubs:
        .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
        .long exc64_\n
        .endr

        .data
        .balign 8
gdt64:
        .quad 0                         # 0x00 null
        .quad 0x00af9a000000ffff        # 0x08 ring-0 code, L=1
        .quad 0x00cf92000000ffff        # 0x10 ring-0 data
        .quad 0x00cff2000000ffff        # 0x18 ring-3 data, DPL 3
        .quad 0x00affa000000ffff        # 0x20 ring-3 code, L=1, DPL 3
gdt64_tss:
        .quad 0                         # 0x28 64-bit TSS (16 bytes), filled in at run time
        .quad 0
gdt64_end:
        .balign 4
        .word 0
gdt64_ptr:
        .word gdt64_end - gdt64 - 1
        .long gdt64

        .balign 4
        .word 0
idt64_ptr:
        .word 32 * 16 - 1
        .quad idt64

        # 64-bit TSS (SDM Figure 7-11): RSP0 at offset 4; I/O map base past the limit (no bitmap).
        .balign 16
tss64:
        .long 0
        .quad stack0_top                # RSP0
        .fill 22, 4, 0                  # 0x0c..0x63: RSP1, RSP2, reserved, IST1-7, reserved
        .word 0
        .word 104                       # I/O map base = limit + 1

        .section .stack, "aw"
        .balign 4096
pml4:   .fill 512, 8, 0
pdpt:   .fill 512, 8, 0
pd:     .fill 512, 8, 0
idt64:  .fill 32, 16, 0
        .balign 16
stack3: .fill 4096, 1, 0
stack3_top:
