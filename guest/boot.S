/* PVH entry of the vmk micro guests.
 *
 * A PVH loader (vmx, QEMU, Firecracker, Cloud Hypervisor) enters at the
 * address of the XEN_ELFNOTE_PHYS32_ENTRY note in 32-bit protected mode,
 * paging off, flat segments, %ebx = physical address of hvm_start_info.
 *
 * CPL 0 code is emulated (slowly) on nested PVM hosts, so this does the
 * least it can at CPL 0: page tables are static (identity map of the first
 * 4 GiB with user-accessible 2 MiB pages), then long mode, GDT/TSS/IDT, and
 * an iretq to CPL 3 with IOPL 3 so the workload can do port I/O (UART,
 * power device) natively. Exceptions land in a CPL 0 handler that prints
 * "EXC <vector>" and powers off with status 0x7f.
 */
#define PTE_P   0x1
#define PTE_RW  0x2
#define PTE_US  0x4
#define PTE_PS  0x80

#define KCODE 0x08
#define KDATA 0x10
#define UCODE 0x18
#define UDATA 0x20
#define TSSSEL 0x28

#define POWER_PORT 0xf4
#define UART_PORT  0x3f8

	.section .note.Xen, "a"
	.balign 4
	.long 4                 /* namesz: "Xen\0" */
	.long 8                 /* descsz */
	.long 18                /* XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz "Xen"
	.balign 4
	.quad pvh_start
	.balign 4

	.section .boot.text, "ax"
	.code32
	.globl pvh_start
pvh_start:
	cli
	mov %ebx, %esi                          /* hvm_start_info, kept for guest_main */
	mov $boot_stack_top, %esp

	mov $pml4, %eax
	mov %eax, %cr3
	mov %cr4, %eax
	or $(1 << 5) | (1 << 9) | (1 << 10), %eax  /* PAE, OSFXSR, OSXMMEXCPT */
	mov %eax, %cr4
	mov $0xc0000080, %ecx                   /* EFER.LME */
	rdmsr
	or $(1 << 8), %eax
	wrmsr
	mov %cr0, %eax
	and $~(1 << 2), %eax                    /* EM off: SSE usable */
	or $(1 << 31) | (1 << 1) | 1, %eax      /* PG, MP, PE */
	mov %eax, %cr0
	lgdt gdt_ptr
	ljmp $KCODE, $long_mode

	.code64
long_mode:
	mov $KDATA, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %ss
	xor %eax, %eax
	mov %ax, %fs
	mov %ax, %gs
	/* descriptor bases split into bit fields cannot be relocated by the
	 * assembler: fill in the TSS's here (LTR reads it); the 32 IDT gates
	 * are filled at CPL 3 (user_entry), where they cost no emulation */
	mov $tss, %rax
	mov %ax, tss_desc + 2
	shr $16, %rax
	mov %al, tss_desc + 4
	mov %ah, tss_desc + 7
	mov $TSSSEL, %ax
	ltr %ax
	lidt idt_ptr

	/* iretq to CPL 3: SS, RSP, RFLAGS (IOPL 3, IF off), CS, RIP */
	mov %esi, %edi
	pushq $(UDATA | 3)
	pushq $user_stack_top
	pushq $0x3002
	pushq $(UCODE | 3)
	pushq $user_entry
	iretq

/* Exceptions: "EXC nn\n" on the UART, then power off with 0x7f. The
 * vector is pushed by the per-vector stubs below. */
exc_common:
	mov (%rsp), %rbx
	mov $UART_PORT, %dx
	mov $'E', %al
	out %al, %dx
	mov $'X', %al
	out %al, %dx
	mov $'C', %al
	out %al, %dx
	mov $' ', %al
	out %al, %dx
	mov %bl, %al
	shr $4, %al
	call hexdigit
	mov %bl, %al
	and $0xf, %al
	call hexdigit
	mov $'\n', %al
	out %al, %dx
	mov $POWER_PORT, %dx
	mov $0x7f, %al
	out %al, %dx
1:	hlt
	jmp 1b
hexdigit:
	add $'0', %al
	cmp $'9', %al
	jbe 2f
	add $('a' - '9' - 1), %al
2:	out %al, %dx
	ret

	.balign 16
exc_stubs:                              /* 32 stubs of 16 bytes: vector = index */
	.set vec, 0
	.rept 32
	.balign 16
	pushq $vec
	jmp exc_common
	.set vec, vec + 1
	.endr

	.section .text
	.globl user_entry
user_entry:
	/* CPL 3 from here on; %rdi = hvm_start_info (physical = virtual). The
	 * IDT's pages are user-writable: fill in its 32 gates' offsets here,
	 * natively, instead of a few hundred emulated CPL 0 instructions (an
	 * exception before this would triple-fault, as none is expected) */
	mov %rdi, %r12
	mov $idt, %rdi
	mov $exc_stubs, %rax
	mov $32, %ecx
1:	mov %ax, (%rdi)
	mov %rax, %rdx
	shr $16, %rdx
	mov %dx, 6(%rdi)
	add $16, %rax
	add $16, %rdi
	dec %ecx
	jnz 1b
	mov %r12, %rdi
	and $~0xf, %rsp
	call guest_main
	mov %eax, %ebx
	mov $POWER_PORT, %dx
	out %al, %dx
3:	jmp 3b

	.section .data
	.balign 16
gdt:
	.quad 0
	.quad 0x00af9a000000ffff        /* 0x08 kernel code 64 */
	.quad 0x00cf92000000ffff        /* 0x10 kernel data */
	.quad 0x00affa000000ffff        /* 0x18 user code 64, DPL 3 */
	.quad 0x00cff2000000ffff        /* 0x20 user data, DPL 3 */
tss_desc:                               /* 0x28: 64-bit TSS (16 bytes), base filled below */
	.word tss_end - tss - 1
	.word 0                         /* base 15:0, 23:16, 31:24 patched at boot */
	.byte 0
	.byte 0x89
	.byte 0
	.byte 0
	.long 0
	.long 0
gdt_end:
gdt_ptr:
	.word gdt_end - gdt - 1
	.quad gdt

	.balign 16
tss:
	.long 0
	.quad exc_stack_top             /* rsp0 */
	.quad 0
	.quad 0
	.quad 0
	.quad exc_stack_top             /* ist1 */
	.fill 6, 8, 0
	.quad 0
	.word 0
	.word iomap - tss
	/* An I/O permission bitmap that allows every port. IOPL 3 grants the
	 * ports on KVM and TCG, but a PVM host runs guest user code at
	 * hardware IOPL 0 and emulates the faulting in/out against the guest
	 * TSS's bitmap: without one, port I/O from CPL 3 is a #GP there. */
iomap:
	.fill 8192, 1, 0
	.byte 0xff
tss_end:

	.balign 16
idt:
	.rept 32
	.word 0                         /* offset 15:0 and 31:16 patched at boot */
	.word KCODE
	.byte 1                         /* IST 1 */
	.byte 0x8e                      /* present, DPL 0, interrupt gate */
	.word 0
	.long 0
	.long 0
	.endr
idt_end:
idt_ptr:
	.word idt_end - idt - 1
	.quad idt

	/* Page tables: PML4 -> PDPT -> 4 PDs of 512 x 2 MiB, all user-accessible. */
	.balign 4096
pml4:
	.quad pdpt + (PTE_P | PTE_RW | PTE_US)
	.fill 511, 8, 0
	.balign 4096
pdpt:
	.quad pd0 + (PTE_P | PTE_RW | PTE_US)
	.quad pd1 + (PTE_P | PTE_RW | PTE_US)
	.quad pd2 + (PTE_P | PTE_RW | PTE_US)
	.quad pd3 + (PTE_P | PTE_RW | PTE_US)
	.fill 508, 8, 0
	.set page, 0
	.macro pd name
	.balign 4096
\name:
	.rept 512
	.quad (page << 21) + (PTE_P | PTE_RW | PTE_US | PTE_PS)
	.set page, page + 1
	.endr
	.endm
	pd pd0
	pd pd1
	pd pd2
	pd pd3

	.section .bss
	.balign 4096
boot_stack:
	.skip 4096
boot_stack_top:
exc_stack:
	.skip 4096
exc_stack_top:
	.globl user_stack_top
user_stack:
	.skip 65536
user_stack_top:
	.section .note.GNU-stack, "", @progbits
