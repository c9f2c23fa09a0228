# uart: program COM1's 8250 minimally (8N1, divisor 1, FIFOs on) and print
# "Hello from the UART\n" through the THR, polling LSR.THRE (0x3fd bit 5) before each byte.
# Exit 0; exit 0x10 if THRE never came up (the poll is bounded).
# 8250 registers: Linux include/uapi/linux/serial_reg.h (UART_LCR 3, UART_LSR 5, UART_LSR_THRE 0x20).
        .include "common.inc"

        .set EXIT_THRE_TIMEOUT, 0x10
        .set POLL_LIMIT, 1000000

        .section .text.entry, "ax"
        .code32
        .globl pvh_entry
pvh_entry:
        movl $stack0_top, %esp
        movw $COM1 + 1, %dx             # IER = 0: no interrupts
        xorb %al, %al
        outb %al, %dx
        movw $COM1 + 3, %dx             # LCR: DLAB=1
        movb $0x80, %al
        outb %al, %dx
        movw $COM1 + 0, %dx             # DLL = 1 (115200 baud)
        movb $1, %al
        outb %al, %dx
        movw $COM1 + 1, %dx             # DLM = 0
        xorb %al, %al
        outb %al, %dx
        movw $COM1 + 3, %dx             # LCR: 8 data bits, no parity, 1 stop, DLAB=0
        movb $0x03, %al
        outb %al, %dx
        movw $COM1 + 2, %dx             # FCR: enable + clear FIFOs
        movb $0x07, %al
        outb %al, %dx
        movw $COM1 + 4, %dx             # MCR: DTR | RTS
        movb $0x03, %al
        outb %al, %dx

        movl $message, %esi
next:   lodsb
        testb %al, %al
        jz done
        movb %al, %bl
        movl $POLL_LIMIT, %ecx
        movw $COM1 + 5, %dx             # LSR
poll:   inb %dx, %al
        testb $0x20, %al                # THRE
        jnz ready
        decl %ecx
        jnz poll
        EXIT EXIT_THRE_TIMEOUT
ready:  movw $COM1, %dx                 # THR
        movb %bl, %al
        outb %al, %dx
        jmp next
done:   EXIT EXIT_OK

        .section .rodata
message: .asciz "Hello from the UART\n"
