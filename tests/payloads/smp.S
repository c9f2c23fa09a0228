# smp: the BSP starts the second vCPU with INIT + SIPI through its local APIC.
#   BSP: copy a real-mode trampoline to TRAMPOLINE (0x8000, below 1 MiB, 4 KiB aligned as a SIPI
#        vector requires), software-enable the LAPIC (SVR bit 8), send INIT then STARTUP with vector
#        TRAMPOLINE >> 12 to "all excluding self", and wait on ap_flag (re-sending STARTUP once,
#        bounded by the TSC); then report BSP_TAG | own APIC id and exit 0 (0x20 if no AP came).
#   AP:  starts in real mode at CS:IP = 0x0800:0000, loads a GDT, enters 32-bit protected mode,
#        reports AP_TAG | its APIC id (LAPIC ID register 0xfee00020 bits 31:24), bumps ap_flag, halts.
# Intel SDM Vol. 3A §10.6.1 (ICR), §8.4.4.1 (INIT-SIPI-SIPI). The LAPIC is KVM's in-kernel one.
# With KVM's in-kernel irqchip a non-BSP vCPU starts in KVM_MP_STATE_UNINITIALIZED and only runs
# after INIT + SIPI (arch/x86/kvm/x86.c kvm_arch_vcpu_create / kvm_vcpu_deliver_sipi_vector).
        .include "common.inc"

        .set TRAMPOLINE, 0x8000
        .set AP_STACK_TOP, 0x9000       # 4 KiB above the trampoline
        .set LAPIC, 0xfee00000
        .set LAPIC_ID, 0x20
        .set LAPIC_SVR, 0xf0
        .set LAPIC_ICR_LO, 0x300
        .set LAPIC_ICR_HI, 0x310
        .set ICR_INIT, 0x000c4500       # all-excluding-self, level assert, INIT
        .set ICR_STARTUP, 0x000c4600 | (TRAMPOLINE >> 12)
        .set AP_TAG, 0x41500000         # "AP"
        .set BSP_TAG, 0x42530000        # "BS"
        .set EXIT_NO_AP, 0x20
        .set TSC_WAIT_HI, 4             # ~17e9 TSC ticks per wait round

        .section .text.entry, "ax"
        .code32
        .globl pvh_entry
pvh_entry:
        movl $stack0_top, %esp
        call setup_gdt
        call setup_idt
        # Copy the trampoline below 1 MiB.
        movl $tramp_start, %esi
        movl $TRAMPOLINE, %edi
        movl $(tramp_end - tramp_start), %ecx
        cld
        rep movsb
        # Software-enable the LAPIC: SVR bit 8, spurious vector 0xff.
        movl $0x1ff, LAPIC + LAPIC_SVR
        movl $0, LAPIC + LAPIC_ICR_HI
        movl $ICR_INIT, LAPIC + LAPIC_ICR_LO
        movl $ICR_STARTUP, LAPIC + LAPIC_ICR_LO
        call wait_ap
        jnz started
        movl $ICR_STARTUP, LAPIC + LAPIC_ICR_LO   # second SIPI, as the SDM's sequence has
        call wait_ap
        jnz started
        EXIT EXIT_NO_AP
started:
        movl LAPIC + LAPIC_ID, %eax
        shrl $24, %eax
        orl $BSP_TAG, %eax
        REPORT %eax
        EXIT EXIT_OK

# wait_ap: spin until ap_flag != 0 or TSC_WAIT_HI * 2^32 TSC ticks passed. ZF clear = AP started.
wait_ap:
        rdtsc
        movl %edx, %ebx
1:      pause
        cmpl $0, ap_flag
        jnz 2f
        rdtsc
        subl %ebx, %edx
        cmpl $TSC_WAIT_HI, %edx
        jb 1b
        cmpl $0, ap_flag                # ZF set: timed out
2:      ret

# --- Real-mode trampoline, copied to TRAMPOLINE. Addresses inside it are (label - tramp_start)
# offsets from CS base = TRAMPOLINE; absolute ones add TRAMPOLINE.
        .code16
tramp_start:
        cli
        movw %cs, %ax
        movw %ax, %ds
        lgdtl (tramp_gdt_ptr - tramp_start)
        movl %cr0, %eax
        orl $1, %eax                    # CR0.PE
        movl %eax, %cr0
        ljmpl $0x08, $(tramp32 - tramp_start + TRAMPOLINE)
        .code32
tramp32:
        movw $0x10, %ax
        movw %ax, %ds
        movw %ax, %es
        movw %ax, %ss
        movl $AP_STACK_TOP, %esp
        movl LAPIC + LAPIC_ID, %eax
        shrl $24, %eax
        orl $AP_TAG, %eax
        movl $report, %ebx              # absolute call into the image at HIMEM
        call *%ebx
        lock incl ap_flag
1:      hlt
        jmp 1b
        .balign 8
tramp_gdt:
        .quad 0
        .quad 0x00cf9a000000ffff        # 0x08 code
        .quad 0x00cf92000000ffff        # 0x10 data
        .word 0
tramp_gdt_ptr:
        .word 23
        .long tramp_gdt - tramp_start + TRAMPOLINE
tramp_end:

        .data
        .balign 4
ap_flag: .long 0
