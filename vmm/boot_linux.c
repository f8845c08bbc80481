/* Linux x86-64 boot protocol (Documentation/arch/x86/boot.rst): the
 * bzImage's protected-mode kernel is loaded at its preferred address, a
 * zero page (boot_params) carries the setup header, command line, initrd
 * and e820 map, and the vCPU enters the 64-bit entry (load address +
 * 0x200) with identity paging and %rsi = zero page. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "boot.h"
#include "le.h"

#define SETUP_SECTS      0x1f1
#define SETUP_HDR_MAGIC  0x202 /* "HdrS" */
#define SETUP_VERSION    0x206
#define TYPE_OF_LOADER   0x210
#define LOADFLAGS        0x211
#define RAMDISK_IMAGE    0x218
#define RAMDISK_SIZE     0x21c
#define HEAP_END_PTR     0x224
#define CMD_LINE_PTR     0x228
#define INITRD_ADDR_MAX  0x22c
#define KERNEL_ALIGNMENT 0x230
#define RELOCATABLE      0x234
#define XLOADFLAGS       0x236
#define CMDLINE_SIZE     0x238
#define PREF_ADDRESS     0x258
#define INIT_SIZE        0x260
#define E820_ENTRIES     0x1e8
#define E820_TABLE       0x2d0
#define E820_MAX         128

#define LOADED_HIGH   0x01
#define CAN_USE_HEAP  0x80
#define XLF_KERNEL_64 0x01

/* Identity map of the first 4 GiB with 2 MiB pages, and a flat GDT with
 * the selectors the boot protocol names (__BOOT_CS 0x10, __BOOT_DS 0x18). */
static int put_paging(struct vmm_mem *m)
{
	uint64_t *pml4 = vmm_gpa(m, BOOT_PML4_GPA, 6 * 4096);
	uint64_t *gdt = vmm_gpa(m, BOOT_GDT_GPA, 4 * 8);

	if (!pml4 || !gdt)
		return -EFAULT;
	memset(pml4, 0, 6 * 4096);
	uint64_t *pdpt = pml4 + 512, *pd = pml4 + 1024;
	pml4[0] = (BOOT_PML4_GPA + 0x1000) | 0x3;
	for (int i = 0; i < 4; i++)
		pdpt[i] = (BOOT_PML4_GPA + 0x2000 + 0x1000ull * i) | 0x3;
	for (int i = 0; i < 2048; i++)
		pd[i] = ((uint64_t)i << 21) | 0x83;
	gdt[0] = 0;
	gdt[1] = 0;
	gdt[2] = 0x00af9b000000ffffull; /* 0x10: code, 64-bit */
	gdt[3] = 0x00cf93000000ffffull; /* 0x18: data */
	return 0;
}

int vmm_boot_linux(struct vmm_mem *m, const uint8_t *img, size_t len, const uint8_t *initrd,
                   size_t initrd_len, const char *cmdline, struct vmm_boot *out, char *err,
                   size_t errlen)
{
	uint8_t *zp;
	size_t cl = cmdline ? strlen(cmdline) : 0;

	if (len < 0x1000 || le_get32(img + SETUP_HDR_MAGIC) != 0x53726448) {
		snprintf(err, errlen, "not a bzImage (no \"HdrS\" setup header)");
		return -EBADMSG;
	}
	uint16_t version = le_get16(img + SETUP_VERSION);
	if (version < 0x20c || !(le_get16(img + XLOADFLAGS) & XLF_KERNEL_64)) {
		snprintf(err, errlen,
		         "boot protocol %u.%02u without a 64-bit entry: vmk needs a "
		         "64-bit kernel with protocol 2.12 or later",
		         version >> 8, version & 0xff);
		return -ENOEXEC;
	}
	unsigned sects = img[SETUP_SECTS] ? img[SETUP_SECTS] : 4;
	size_t setup_len = ((size_t)sects + 1) * 512;
	if (setup_len >= len) {
		snprintf(err, errlen, "bzImage setup (%zu bytes) is larger than the file",
		         setup_len);
		return -EBADMSG;
	}
	size_t kernel_len = len - setup_len;
	uint64_t init_size = le_get32(img + INIT_SIZE);
	if (init_size < kernel_len)
		init_size = kernel_len;
	uint64_t load = le_get64(img + PREF_ADDRESS);
	uint64_t align = le_get32(img + KERNEL_ALIGNMENT);
	if (!vmm_gpa(m, load, init_size) || load < BOOT_KERNEL_MIN_GPA) {
		if (!img[RELOCATABLE]) {
			snprintf(err, errlen,
			         "the kernel must load at 0x%llx, which does not fit "
			         "in guest RAM",
			         (unsigned long long)load);
			return -E2BIG;
		}
		if (align == 0 || (align & (align - 1)))
			align = 2u << 20;
		load = (BOOT_KERNEL_MIN_GPA + align - 1) & ~(align - 1);
		if (!vmm_gpa(m, load, init_size)) {
			snprintf(err, errlen,
			         "the kernel needs %llu MiB at 0x%llx: give the VM "
			         "more memory",
			         (unsigned long long)(init_size >> 20), (unsigned long long)load);
			return -E2BIG;
		}
	}
	memcpy(vmm_gpa(m, load, kernel_len), img + setup_len, kernel_len);

	uint32_t max_cl = version >= 0x206 ? le_get32(img + CMDLINE_SIZE) : 255;
	if (cl >= BOOT_CMDLINE_MAX || cl > max_cl) {
		snprintf(err, errlen, "the kernel command line has %zu bytes; this kernel takes %u",
		         cl, max_cl < BOOT_CMDLINE_MAX - 1 ? max_cl : BOOT_CMDLINE_MAX - 1);
		return -E2BIG;
	}
	char *cdst = vmm_gpa(m, BOOT_CMDLINE_GPA, cl + 1);
	zp = vmm_gpa(m, BOOT_ZERO_PAGE_GPA, 4096);
	if (!cdst || !zp)
		return -EFAULT;
	memcpy(cdst, cmdline ? cmdline : "", cl);
	cdst[cl] = '\0';

	/* zero page: the setup header as the image has it, then our fields */
	memset(zp, 0, 4096);
	size_t hdr_end = 0x202 + img[0x201];
	if (hdr_end > 0x1000 - 1)
		hdr_end = 0x1000 - 1;
	memcpy(zp + SETUP_SECTS, img + SETUP_SECTS, hdr_end - SETUP_SECTS);
	zp[TYPE_OF_LOADER] = 0xff;
	zp[LOADFLAGS] |= LOADED_HIGH | CAN_USE_HEAP;
	zp[HEAP_END_PTR] = 0x00;
	zp[HEAP_END_PTR + 1] = 0xfe;
	le_put32(zp + CMD_LINE_PTR, (uint32_t)BOOT_CMDLINE_GPA);
	if (initrd && initrd_len) {
		uint64_t max = le_get32(img + INITRD_ADDR_MAX), at;
		int ret = vmm_boot_place_initrd(m, initrd, initrd_len, max ? max + 1 : 0,
		                                load + init_size, &at, err, errlen);
		if (ret < 0)
			return ret;
		le_put32(zp + RAMDISK_IMAGE, (uint32_t)at);
		le_put32(zp + RAMDISK_SIZE, (uint32_t)initrd_len);
	}
	struct vmm_e820 e[E820_MAX];
	unsigned n = vmm_boot_e820(m, e, E820_MAX);
	zp[E820_ENTRIES] = (uint8_t)n;
	for (unsigned i = 0; i < n; i++) {
		uint8_t *ent = zp + E820_TABLE + 20 * i;
		memcpy(ent, &e[i].addr, 8);
		memcpy(ent + 8, &e[i].size, 8);
		le_put32(ent + 16, e[i].type);
	}
	if (put_paging(m) < 0)
		return -EFAULT;
	out->kind = BOOT_LINUX64;
	out->entry = load + 0x200;
	out->arg = BOOT_ZERO_PAGE_GPA;
	return 0;
}
