# pvh-state: report the machine state a PVH loader hands over, on the test value port (0xea),
# in this order (tests/kvm/payload-pvh-state.test.ts decodes it):
#   ebx, start_info.magic, .version, .flags, .nr_modules,
#   .cmdline_paddr (lo, hi), .memmap_paddr (lo, hi), .memmap_entries,
#   per memmap entry (at most MAX_ENTRIES): addr lo, addr hi, size lo, size hi, type
#   cr0, eflags, cs, ds, ss, es, first 4 bytes of the command line (0 if cmdline_paddr is 0)
# then exits with status 0.
# PVH: include/xen/interface/hvm/start_info.h (struct hvm_start_info, hvm_memmap_table_entry);
# entry state from arch/x86/platform/pvh/head.S.
        .include "common.inc"

        .set MAX_ENTRIES, 32

        .section .text.entry, "ax"
        .code32
        .globl pvh_entry
pvh_entry:
        movl %ebx, %ebp                 # keep start_info before anything else touches ebx
        # Capture the entry state before setting up a stack (pushf needs one; do it after).
        movl %cr0, %edi
        movw %cs, %ax
        movw %ax, entry_cs
        movw %ds, %ax
        movw %ax, entry_ds
        movw %ss, %ax
        movw %ax, entry_ss
        movw %es, %ax
        movw %ax, entry_es
        movl $stack0_top, %esp
        pushfl
        popl %eax
        movl %eax, entry_eflags

        REPORT %ebp                     # ebx
        REPORT 0(%ebp)                  # magic 0x336ec578
        REPORT 4(%ebp)                  # version
        REPORT 8(%ebp)                  # flags
        REPORT 12(%ebp)                 # nr_modules
        REPORT 24(%ebp)                 # cmdline_paddr lo
        REPORT 28(%ebp)                 # cmdline_paddr hi
        REPORT 40(%ebp)                 # memmap_paddr lo
        REPORT 44(%ebp)                 # memmap_paddr hi
        REPORT 48(%ebp)                 # memmap_entries

        # Entries are 24 bytes: addr u64, size u64, type u32, reserved u32. Only a 32-bit
        # memmap_paddr is reachable with paging off; a count above MAX_ENTRIES is clamped.
        movl 40(%ebp), %esi
        movl 48(%ebp), %ecx
        cmpl $MAX_ENTRIES, %ecx
        jbe 1f
        movl $MAX_ENTRIES, %ecx
1:      testl %ecx, %ecx
        jz 3f
2:      REPORT 0(%esi)
        REPORT 4(%esi)
        REPORT 8(%esi)
        REPORT 12(%esi)
        REPORT 16(%esi)
        addl $24, %esi
        decl %ecx
        jnz 2b
3:
        REPORT %edi                     # cr0
        REPORT entry_eflags
        movzwl entry_cs, %eax
        REPORT %eax
        movzwl entry_ds, %eax
        REPORT %eax
        movzwl entry_ss, %eax
        REPORT %eax
        movzwl entry_es, %eax
        REPORT %eax
        movl 24(%ebp), %esi             # cmdline_paddr lo
        xorl %eax, %eax
        testl %esi, %esi
        jz 4f
        movl (%esi), %eax
4:      REPORT %eax
        EXIT EXIT_OK

        .data
        .balign 4
entry_eflags: .long 0
entry_cs: .word 0
entry_ds: .word 0
entry_ss: .word 0
entry_es: .word 0
