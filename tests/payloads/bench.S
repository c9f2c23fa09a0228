# bench: the boot benchmark's guest (bench/boot.ts). First instructions: raw "B\n" to COM1's THR
# (no UART setup: both our 8250 and QEMU's accept THR writes at reset state), then the boot timer
# magic 123 to port 0x440, then exit 0 on the debug exit port. Nothing else, so the measured time
# is the VMM's time to first guest instruction.
        .include "common.inc"

        .section .text.entry, "ax"
        .code32
        .globl pvh_entry
pvh_entry:
        movw $COM1, %dx
        movb $'B', %al
        outb %al, %dx
        movb $'\n', %al
        outb %al, %dx
        BOOT_TIMER
        EXIT EXIT_OK
