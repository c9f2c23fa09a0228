# virtio-drv-entry: the ring-0 part of the virtio driver payloads (virtio-drv-*.c run in ring 3).
#   ring 0 (32-bit, PVH entry): identity-map the low 4 GiB with 2 MiB pages, U/S=1 at every level (so ring 3
#           reaches guest RAM *and* the virtio-mmio window at 0xd0000000), CR4.PAE, CR3, EFER.LME, CR0.PG,
#           a 64-bit GDT, far jump to 64-bit code (Intel SDM Vol. 3A §9.8.5, §4.5);
#   ring 0 (64-bit): 64-bit TSS (RSP0) + `ltr`; an IDT with the 32 exception vectors (a #GP from ring 3 on a
#           port write is emulated: kvm_pvm raises #GP for ring-3 `out` whatever IOPL says, see ring3.S) and
#           interrupt gates for vectors IRQ_VECTOR0 + n (n < NIRQ); 8259 PICs masked (OCW1 0xff); LAPIC software
#           enabled (SVR); IOAPIC redirection entries for GSI VIRTIO_IRQ0 + n -> vector IRQ_VECTOR0 + n, fixed,
#           physical destination APIC 0, edge, active high, unmasked (82093AA datasheet §3.2.4);
#           then `iretq` to ring 3 with IF=1 and IOPL=3;
#   ring 3: `call driver_main` (C, the device driver); its return value goes out on the debug exit port.
# The interrupt handler is the only ring-0 code that runs later: it counts the interrupt in irq_counts[n]
# (read by the ring-3 driver), writes the LAPIC EOI and returns with `iretq`. The driver itself reads and
# acknowledges InterruptStatus from ring 3.
        .include "common.inc"
        .include "long-mode.inc"

        .set MSR_EFER, 0xc0000080
        .set EFER_LME, 1 << 8
        .set SEL64_CODE0, 0x08
        .set SEL64_DATA0, 0x10
        .set SEL64_DATA3, 0x18 | 3
        .set SEL64_CODE3, 0x20 | 3
        .set SEL64_TSS,   0x28
        .set IOAPIC_BASE, 0xfec00000
        .set LAPIC_BASE, 0xfee00000
        .set LAPIC_SVR, 0xf0
        .set LAPIC_EOI, 0xb0
        .set IRQ_VECTOR0, 0x30
        .set VIRTIO_IRQ0, 5               # src/vmm/device-manager.ts VIRTIO_FIRST_IRQ
        .set NIRQ, 4
        .set IDT_ENTRIES, IRQ_VECTOR0 + NIRQ

        .section .text.entry, "ax"
        .code32
        .globl pvh_entry
pvh_entry:
        movl $stack0_top, %esp
        # 4 PDs x 512 x 2 MiB pages, P|RW|US|PS = 0x87 (SDM Table 4-17): 0 .. 4 GiB
        movl $pds, %edi
        movl $0x87, %eax
        xorl %edx, %edx
        movl $2048, %ecx
1:      movl %eax, (%edi)
        movl %edx, 4(%edi)
        addl $0x200000, %eax
        adcl $0, %edx
        addl $8, %edi
        decl %ecx
        jnz 1b
        movl $pdpt + 0x7, pml4          # P|RW|US
        movl $pds + 0x0000 + 0x7, pdpt + 0
        movl $pds + 0x1000 + 0x7, pdpt + 8
        movl $pds + 0x2000 + 0x7, pdpt + 16
        movl $pds + 0x3000 + 0x7, pdpt + 24
        ENTER_LONG_MODE

        .code64
long_entry:
        movw $SEL64_DATA0, %ax
        movw %ax, %ds
        movw %ax, %es
        movw %ax, %ss
        movq $stack0_top, %rsp
        # 64-bit TSS descriptor (SDM Figure 7-4): limit 103, type 0x9, P=1; base below 4 GiB.
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
        # IDT: 16-byte interrupt gates (SDM Figure 6-8), DPL 0, handlers below 4 GiB
        xorl %ecx, %ecx
2:      movl vec_stubs(,%ecx,4), %eax
        testl %eax, %eax
        jz 3f
        movl %eax, %edx
        andl $0xffff, %eax
        orl $(SEL64_CODE0 << 16), %eax
        movl %ecx, %ebx
        shll $4, %ebx
        movl %eax, idt64(%ebx)
        andl $0xffff0000, %edx
        orl $0x8e00, %edx
        movl %edx, idt64+4(%ebx)
3:      incl %ecx
        cmpl $IDT_ENTRIES, %ecx
        jne 2b
        lidt idt64_ptr

        movb $0xff, %al                 # mask both 8259s: only the IOAPIC delivers
        outb %al, $0x21
        outb %al, $0xa1
        movl $LAPIC_BASE, %edi                  # (above 2 GiB: no absolute 32-bit disp in 64-bit mode)
        movl $0x1ff, LAPIC_SVR(%rdi)            # APIC software enable, spurious vector 0xff
        movl $IOAPIC_BASE, %edi
        xorl %ecx, %ecx
4:      leal 0x10 + 2 * VIRTIO_IRQ0(,%ecx,2), %eax
        movl %eax, (%rdi)                       # IOREGSEL: redirection entry, low dword
        leal IRQ_VECTOR0(%ecx), %eax
        movl %eax, 0x10(%rdi)                   # IOWIN: vector, fixed, physical, edge, high, unmasked
        leal 0x11 + 2 * VIRTIO_IRQ0(,%ecx,2), %eax
        movl %eax, (%rdi)
        movl $0, 0x10(%rdi)                     # destination APIC id 0
        incl %ecx
        cmpl $NIRQ, %ecx
        jne 4b

        # iretq frame: SS, RSP, RFLAGS, CS, RIP
        pushq $SEL64_DATA3
        pushq $stack3_top
        pushq $0x3202                   # IOPL=3, reserved bit 1, IF=1
        pushq $SEL64_CODE3
        pushq $ring3_entry
        iretq

ring3_entry:
        call driver_main
        outb %al, $PORT_DEBUG_EXIT      # E6 ib: emulated by gp_handler on kvm_pvm
5:      jmp 5b

# irq_n: interrupt from GSI VIRTIO_IRQ0 + n. Counts it and EOIs; the driver in ring 3 does the rest.
        .irp n, 0,1,2,3
irq_\n: pushq %rax
        movl $\n, %eax
        jmp irq_common
        .endr
irq_common:
        lock incl irq_counts(,%rax,4)
        movl $LAPIC_BASE, %eax
        movl $0, LAPIC_EOI(%rax)
        popq %rax
        iretq


# gp_handler: port writes from ring 3 (long-mode.inc)
gp_handler:
        GP_PORT_HANDLER

# report64: %eax -> test value port (ring 0 only: used by the exception report)
report64:
        pushq %rdx
        movw $PORT_TESTVAL, %dx
        outl %eax, %dx
        popq %rdx
        ret

        # Vectors that push an error code: 8, 10-14, 17, 21, 29, 30 (SDM Table 6-1).
        .irp n, 0,1,2,3,4,5,6,7,9,15,16,18,19,20,22,23,24,25,26,27,28,31
exc64_\n: pushq $0
        pushq $\n
        jmp exc64_common
        .endr
        .irp n, 8,10,11,12,14,17,21,29,30
exc64_\n: pushq $\n
        jmp exc64_common
        .endr
# Reports 0xE00000vv, error code, RIP (low 32 bits), CS, CR2 (low 32 bits); exits EXIT_EXCEPTION.
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
        movq %cr2, %rax
        call report64
        movb $EXIT_EXCEPTION, %al
        outb %al, $PORT_DEBUG_EXIT
6:      jmp 6b

        .section .rodata
        .balign 4
vec_stubs:
        .long exc64_0, exc64_1, exc64_2, exc64_3, exc64_4, exc64_5, exc64_6, exc64_7
        .long exc64_8, exc64_9, exc64_10, exc64_11, exc64_12, gp_handler, exc64_14, exc64_15
        .long exc64_16, exc64_17, exc64_18, exc64_19, exc64_20, exc64_21, exc64_22, exc64_23
        .long exc64_24, exc64_25, exc64_26, exc64_27, exc64_28, exc64_29, exc64_30, exc64_31
        .fill IRQ_VECTOR0 - 32, 4, 0
        .long irq_0, irq_1, irq_2, irq_3

        .data
        .balign 8
        .globl irq_counts
irq_counts:
        .fill NIRQ, 4, 0
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
        .word IDT_ENTRIES * 16 - 1
        .quad idt64

        # 64-bit TSS (SDM Figure 7-11): RSP0 at offset 4; I/O map base past the limit (no bitmap).
        .balign 16
tss64:
        .long 0
        .quad stack0_top                # RSP0
        .fill 22, 4, 0
        .word 0
        .word 104

        .section .stack, "aw"
        .balign 4096
pml4:   .fill 512, 8, 0
pdpt:   .fill 512, 8, 0
pds:    .fill 4 * 512, 8, 0
idt64:  .fill IDT_ENTRIES * 16, 1, 0  # (.fill clamps sizes above 8)
        .balign 16
stack3: .fill 65536, 1, 0
stack3_top:
