/* The software CPU: an interpreter for the x86-64 subset the vmk micro
 * guests execute, used by vmx when /dev/kvm is missing or unusable
 * (`--accel soft`), the way QEMU falls back to TCG.
 *
 * What it implements: 64-bit long mode at any CPL with 4-level paging
 * (4 KiB, 2 MiB and 1 GiB pages, U/S, R/W and NX checks), the 32-bit
 * protected-mode instructions of a PVH entry stub (control registers,
 * EFER, LGDT/LIDT/LTR, far jump into long mode), exceptions delivered
 * through a 64-bit IDT with the TSS stack switch, IRETQ, port I/O with
 * the IOPL check, MMIO to devices, RDTSC, CPUID from a table. The general
 * purpose integer instructions gcc emits for freestanding code built with
 * -mgeneral-regs-only are covered; x87/SSE/AVX, interrupts (no APIC: the
 * micro guests poll), real mode and 16-bit addressing are not. An
 * instruction outside the subset stops the vCPU with SOFTCPU_UNSUPPORTED
 * and its bytes in `why`, never silently.
 *
 * One vCPU per VM (no LOCK atomicity across vCPUs). Guest memory writes
 * can be logged in a dirty bitmap (one bit per 4 KiB guest-physical page),
 * which is what migration and checkpointing harvest. */
#ifndef VMM_SOFTCPU_H
#define VMM_SOFTCPU_H

#include <setjmp.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "cpufeatures.h"
#include "mem.h"
#include "sbuf.h"

#define SOFTCPU_TLB_SIZE  64
#define SOFTCPU_MAX_CPUID 64

enum softcpu_exit {
	SOFTCPU_YIELD,       /* the instruction budget ran out or *stop was set */
	SOFTCPU_HLT,         /* HLT: nothing can wake it (no interrupts) */
	SOFTCPU_SHUTDOWN,    /* triple fault; `why` says what faulted */
	SOFTCPU_UNSUPPORTED, /* an instruction outside the subset; `why` has its bytes */
	SOFTCPU_PAUSE,       /* a pause loop (PAUSE after PAUSE): the guest waits, so the
	                      * host CPU may go to others, as KVM's pause-loop exiting */
};

/* Where port and MMIO accesses go (vm.c: the devices). For reads the
 * callee fills data. */
struct softcpu_io {
	void (*pio)(void *arg, uint16_t port, bool out, uint8_t *data, unsigned size);
	void (*mmio)(void *arg, uint64_t gpa, bool write, uint8_t *data, unsigned size);
	void *arg;
};

struct softcpu_tlb {
	uint64_t vpn;  /* linear page number | 1 (valid) << 63 */
	uint8_t *host; /* the page in host memory; NULL: MMIO */
	uint64_t pa;   /* guest-physical page address */
	bool user, write, exec;
};

struct softcpu {
	/* architectural state (saved and restored) */
	uint64_t r[16], rip, rflags;
	uint64_t cr0, cr2, cr3, cr4, efer;
	uint64_t fs_base, gs_base, kernel_gs_base;
	uint64_t gdt_base, idt_base, tr_base;
	uint32_t gdt_limit, idt_limit, tr_limit;
	uint16_t sel[6]; /* ES CS SS DS FS GS */
	uint16_t tr_sel;
	bool cs_l, cs_db; /* code segment: 64-bit, 32-bit default size */
	uint8_t cpl;
	int64_t tsc_offset; /* guest TSC = host TSC + tsc_offset */

	/* environment */
	struct vmm_mem *mem;
	struct softcpu_io io;
	volatile uint8_t *stop; /* another thread sets *stop: run returns YIELD */
	struct cpuid_leaf cpuid[SOFTCPU_MAX_CPUID];
	unsigned ncpuid;
	/* dirty log: bit per guest-physical 4 KiB page, set atomically on
	 * every write while not NULL (harvested with atomic exchange) */
	uint64_t *_Atomic dirty;
	uint64_t dirty_pages;

	/* statistics */
	uint64_t insns, io_exits, faults;
	uint64_t trace;     /* debugging: print this many instructions to stderr */
	unsigned pause_run; /* PAUSEs since the last pause-loop exit */
	char why[200];

	/* interpreter internals */
	struct softcpu_tlb tlb[SOFTCPU_TLB_SIZE];
	jmp_buf fault_jmp;
	int delivering; /* an exception is being delivered (nested: shutdown) */
	uint8_t fault_vec;
	bool fault_has_err;
	uint8_t fault_ilen; /* INT n / INT3: its length (a trap); 0 for a fault */
	uint8_t sys_cpl;    /* CPL + 1 during an implicit supervisor access */
	uint32_t fault_err;
	uint64_t insn_end; /* softcpu_run's budget: insns stops short of it */
	enum softcpu_exit pending_exit;
	bool exit_now;
};

/* Sets up a powered-on CPU: flat 32-bit protected mode, paging off (the
 * PVH entry state), RIP = entry, RBX = start_info. */
void softcpu_init(struct softcpu *c, struct vmm_mem *mem, const struct softcpu_io *io);
void softcpu_reset_pvh(struct softcpu *c, uint64_t entry, uint64_t start_info);

/* Runs until max_insns have executed, *stop is set, or the CPU halts,
 * shuts down or meets an unsupported instruction. */
enum softcpu_exit softcpu_run(struct softcpu *c, uint64_t max_insns);

/* Guest-visible TSC now. */
uint64_t softcpu_tsc(const struct softcpu *c);
/* Host TSC frequency in kHz, calibrated once against CLOCK_MONOTONIC_RAW. */
uint32_t softcpu_tsc_khz(void);

/* The whole architectural state, versioned; restore validates it (bad
 * control-register or mode combinations are refused) and keeps the
 * guest's TSC running on from where it was saved. */
void softcpu_save(const struct softcpu *c, struct sbuf *b);
int softcpu_restore(struct softcpu *c, struct rbuf *r);

/* Flushes the TLB (after the guest's page tables changed behind it,
 * e.g. a RAM restore). */
void softcpu_flush_tlb(struct softcpu *c);

#endif
