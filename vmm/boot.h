/* Boot loaders: put a kernel into guest memory and say how to enter it.
 *
 * Low memory layout written by the loaders (all below 1 MiB):
 *   0x0500  GDT for the Linux 64-bit entry
 *   0x6000  hvm_start_info (PVH), memory map right after it
 *   0x6800  PVH module list (the initrd)
 *   0x7000  boot_params "zero page" (Linux)
 *   0x9000  identity page tables for the Linux 64-bit entry (PML4, PDPT, 4 PDs)
 *   0x20000 command line (2 KiB)
 * Kernels load at or above 1 MiB. */
#ifndef VMM_BOOT_H
#define VMM_BOOT_H

#include <stddef.h>
#include <stdint.h>

#include "mem.h"

#define BOOT_GDT_GPA        0x500ull
#define BOOT_START_INFO_GPA 0x6000ull
#define BOOT_MODLIST_GPA    0x6800ull
#define BOOT_ZERO_PAGE_GPA  0x7000ull
#define BOOT_PML4_GPA       0x9000ull
#define BOOT_CMDLINE_GPA    0x20000ull
#define BOOT_CMDLINE_MAX    2048u
#define BOOT_KERNEL_MIN_GPA 0x100000ull
#define BOOT_IMAGE_MAX      (512u << 20)

enum vmm_boot_kind {
	BOOT_PVH,     /* 32-bit protected mode, paging off, %ebx = start_info */
	BOOT_LINUX64, /* 64-bit mode, identity paging, %rsi = zero page */
};

struct vmm_boot {
	enum vmm_boot_kind kind;
	uint64_t entry;
	uint64_t arg; /* %ebx for PVH, %rsi for Linux */
};

/* PVH: an ELF64 x86-64 image with a XEN_ELFNOTE_PHYS32_ENTRY note; initrd
 * (may be NULL) becomes start_info's module 0. */
int vmm_boot_pvh(struct vmm_mem *m, const uint8_t *img, size_t len, const uint8_t *initrd,
                 size_t initrd_len, const char *cmdline, struct vmm_boot *out, char *err,
                 size_t errlen);

/* Linux bzImage with the 64-bit entry (boot protocol >= 2.12, XLF_KERNEL_64);
 * initrd may be NULL. */
int vmm_boot_linux(struct vmm_mem *m, const uint8_t *img, size_t len, const uint8_t *initrd,
                   size_t initrd_len, const char *cmdline, struct vmm_boot *out, char *err,
                   size_t errlen);

/* Copies the initrd to the top of the first RAM slot, below top (an
 * address limit; 0: none), page-aligned and at or above kernel_end:
 * 0 and its address in *at, or -E2BIG with err (give the VM more memory).
 * Both protocols place it this way. */
int vmm_boot_place_initrd(struct vmm_mem *m, const uint8_t *initrd, size_t len, uint64_t top,
                          uint64_t kernel_end, uint64_t *at, char *err, size_t errlen);

/* Reads kernel (and initrd) files, bounded by BOOT_IMAGE_MAX, detects the
 * format (ELF -> PVH, "HdrS" -> bzImage) and loads it. Errors name the
 * file, what is wrong and what would work. */
int vmm_boot_load(struct vmm_mem *m, const char *kernel, const char *initrd, const char *cmdline,
                  struct vmm_boot *out, char *err, size_t errlen);

/* The memory map both protocols report: e820-style entries. */
struct vmm_e820 {
	uint64_t addr, size;
	uint32_t type;
};
#define E820_TYPE_RAM      1
#define E820_TYPE_RESERVED 2
/* Fills up to max entries; returns how many. */
unsigned vmm_boot_e820(const struct vmm_mem *m, struct vmm_e820 *e, unsigned max);

#endif
