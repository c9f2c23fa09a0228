# reset: ask the i8042 to pulse the CPU reset line (command 0xFE on port 0x64), the way Linux's
# reboot=k does (arch/x86/kernel/reboot.c). The VM must end with a 'reset' exit; if execution
# continues, exit with EXIT_NOT_REACHED so the test sees a debug-exit instead of hanging.
        .include "common.inc"

        .section .text.entry, "ax"
        .code32
        .globl pvh_entry
pvh_entry:
        movb $0xfe, %al
        outb %al, $0x64
        EXIT EXIT_NOT_REACHED
