# boot-timer: its first act writes the magic byte 123 to the boot timer port 0x440 (the VMM
# timestamps the first such write), then exits 0.
        .include "common.inc"

        .section .text.entry, "ax"
        .code32
        .globl pvh_entry
pvh_entry:
        BOOT_TIMER
        EXIT EXIT_OK
