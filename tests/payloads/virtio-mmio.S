# virtio-mmio: a minimal ring-0 virtio driver for the transport test device at 0xd0000000 (IRQ 5).
#   identification: MagicValue, Version, DeviceID, VendorID                      -> 4 test values
#   negotiation (virtio 1.2 §3.1.1): reset, ACK, DRIVER, DeviceFeatures hi/lo      -> 2 test values
#     FEATURES_OK without VIRTIO_F_VERSION_1 must stay clear                      -> status (expect 0x3)
#     FEATURES_OK with VERSION_1                                                   -> status (expect 0xb)
#   queue 0 (§4.2.3.2): QueueNumMax, QueueNum 8, desc/driver/device addresses, QueueReady, DRIVER_OK
#                                                                                  -> NumMax, status (0xf)
#   one chain (4 readable bytes, 16 writable) made available, QueueNotify(0), `hlt` until the
#   interrupt: IRQ 5 -> IOAPIC pin 5 -> vector 0x30; the handler reads InterruptStatus, acks it, EOIs.
#                                                 -> ISR seen by the handler, used.idx, used id, used len,
#                                                    reply word 0, reply word 1, ISR after ack, config u32
#   exit 0. The handler does not return with `iret` (see irq_handler).
# Interrupt plumbing: the 8259 PICs are masked (OCW1 0xff) so only the IOAPIC delivers; the LAPIC is
# software-enabled through its spurious-vector register; IOAPIC redirection entry 5 = vector 0x30, fixed,
# physical destination APIC 0, edge, active high, unmasked (82093AA datasheet §3.2.4; IOREGSEL 0xfec00000,
# IOWIN 0xfec00010, entry n at registers 0x10+2n / 0x11+2n).
        .include "common.inc"

        .set VIRTIO_BASE, 0xd0000000
        .set IRQ_VECTOR, 0x30
        .set IOAPIC_BASE, 0xfec00000
        .set LAPIC_BASE, 0xfee00000
        .set LAPIC_SVR, 0xf0
        .set LAPIC_EOI, 0xb0
        .set QSIZE, 8

        .section .text.entry, "ax"
        .code32
        .globl pvh_entry
pvh_entry:
        movl $stack0_top, %esp
        call setup_gdt
        call setup_idt
        # our IDT: the 32 exception gates of common.inc plus an interrupt gate for IRQ_VECTOR
        movl $idt, %esi
        movl $big_idt, %edi
        movl $64, %ecx
        rep movsl
        movl $irq_handler, %eax
        movl %eax, %edx
        andl $0xffff, %eax
        orl $(SEL_CODE0 << 16), %eax
        movl %eax, big_idt + IRQ_VECTOR * 8
        andl $0xffff0000, %edx
        orl $0x8e00, %edx
        movl %edx, big_idt + IRQ_VECTOR * 8 + 4
        lidt big_idt_ptr

        movb $0xff, %al                 # mask both 8259s
        outb %al, $0x21
        outb %al, $0xa1
        movl $0x1ff, LAPIC_BASE + LAPIC_SVR      # APIC software enable, spurious vector 0xff
        movl $0x1a, IOAPIC_BASE                  # redirection entry 5, low dword
        movl $IRQ_VECTOR, IOAPIC_BASE + 0x10
        movl $0x1b, IOAPIC_BASE                  # high dword: destination APIC id 0
        movl $0, IOAPIC_BASE + 0x10

        movl $VIRTIO_BASE, %ebx
        REPORT 0x000(%ebx)              # MagicValue
        REPORT 0x004(%ebx)              # Version
        REPORT 0x008(%ebx)              # DeviceID
        REPORT 0x00c(%ebx)              # VendorID

        movl $0, 0x070(%ebx)            # reset
        movl $1, 0x070(%ebx)            # ACKNOWLEDGE
        movl $3, 0x070(%ebx)            # DRIVER
        movl $1, 0x014(%ebx)            # DeviceFeaturesSel = 1
        REPORT 0x010(%ebx)
        movl $0, 0x014(%ebx)
        REPORT 0x010(%ebx)

        movl $0, 0x024(%ebx)            # DriverFeatures: bit 0 only, no VERSION_1
        movl $1, 0x020(%ebx)
        movl $1, 0x024(%ebx)
        movl $0, 0x020(%ebx)
        movl $0xb, 0x070(%ebx)          # FEATURES_OK: must be refused
        REPORT 0x070(%ebx)
        movl $1, 0x020(%ebx)            # DriverFeaturesSel is still 1: accept VERSION_1
        movl $0xb, 0x070(%ebx)
        REPORT 0x070(%ebx)

        movl $0, 0x030(%ebx)            # QueueSel 0
        REPORT 0x034(%ebx)              # QueueNumMax
        movl $QSIZE, 0x038(%ebx)
        movl $vq_desc, 0x080(%ebx)
        movl $0, 0x084(%ebx)
        movl $vq_avail, 0x090(%ebx)
        movl $0, 0x094(%ebx)
        movl $vq_used, 0x0a0(%ebx)
        movl $0, 0x0a4(%ebx)
        movl $1, 0x044(%ebx)            # QueueReady
        movl $0xf, 0x070(%ebx)          # DRIVER_OK
        REPORT 0x070(%ebx)

        # chain: desc 0 = 4 readable bytes -> desc 1 = 16 writable bytes (struct vring_desc, §2.7.5)
        movl $request, vq_desc + 0
        movl $0, vq_desc + 4
        movl $4, vq_desc + 8
        movw $1, vq_desc + 12           # VRING_DESC_F_NEXT
        movw $1, vq_desc + 14
        movl $reply, vq_desc + 16
        movl $0, vq_desc + 20
        movl $16, vq_desc + 24
        movw $2, vq_desc + 28           # VRING_DESC_F_WRITE
        movw $0, vq_desc + 30
        movw $0, vq_avail + 4           # avail.ring[0] = head 0
        movw $1, vq_avail + 2           # avail.idx = 1 (x86 keeps stores in order)
        movl $0, 0x050(%ebx)            # QueueNotify(0): the ioeventfd

wait_irq:
        cli
        cmpl $0, got_irq
        jne have_irq
        sti                             # sti; hlt: no interrupt slips between them
        hlt
        jmp wait_irq
have_irq:
        REPORT irq_isr
        movzwl vq_used + 2, %eax        # used.idx
        REPORT %eax
        REPORT vq_used + 4              # used.ring[0].id
        REPORT vq_used + 8              # used.ring[0].len
        REPORT reply
        REPORT reply + 4
        REPORT 0x060(%ebx)              # InterruptStatus after the ack
        REPORT 0x100(%ebx)              # config space, first u32
        EXIT EXIT_OK

irq_handler:
        pushal
        movl $VIRTIO_BASE, %ebx
        movl 0x060(%ebx), %eax          # InterruptStatus
        movl %eax, irq_isr
        movl %eax, 0x064(%ebx)          # InterruptACK
        movl $0, LAPIC_BASE + LAPIC_EOI
        movl $1, got_irq
        popal
        # No `iret`: on kvm_pvm a 32-bit `iret` with paging off stops the VM with an emulation error
        # (KVM_EXIT_INTERNAL_ERROR), so the handler drops its frame and continues the driver itself
        # (interrupts stay off: the interrupt gate cleared IF).
        movl $stack0_top, %esp
        jmp have_irq

        .data
        .balign 4
got_irq:  .long 0
irq_isr:  .long 0
request:  .ascii "ABCD"
        .balign 16
reply:    .fill 16, 1, 0xee
        .balign 4
        .word 0
big_idt_ptr:
        .word (IRQ_VECTOR + 1) * 8 - 1
        .long big_idt

        .section .stack, "aw"
        .balign 4096
big_idt:  .fill IRQ_VECTOR + 1, 8, 0
        .balign 16
vq_desc:  .fill QSIZE, 16, 0            # 16-byte aligned
vq_avail: .fill 4 + 2 * QSIZE + 2, 1, 0 # flags, idx, ring[QSIZE], used_event
        .balign 4
vq_used:  .fill 4 + 8 * QSIZE + 2, 1, 0 # flags, idx, ring[QSIZE] {id, len}, avail_event
