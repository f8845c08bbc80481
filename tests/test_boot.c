/* Boot loaders: the real micro-guest ELF, synthetic bzImages, and broken
 * images of every kind (each a clear error, never a crash). */
#include <elf.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "util.h"
#include "vmm/boot.h"

struct hvm_start_info {
	uint32_t magic, version, flags, nr_modules;
	uint64_t modlist_paddr, cmdline_paddr, rsdp_paddr, memmap_paddr;
	uint32_t memmap_entries, reserved;
};

static char *guest_elf(size_t *len)
{
	const char *b = getenv("VMK_BUILD");
	char path[512];
	char *img = NULL;

	snprintf(path, sizeof(path), "%s/guest/vmk-guest.elf", b ? b : "build");
	if (util_read_file(path, 16u << 20, &img, len) < 0)
		fail_msg("cannot read %s (build it first)", path);
	return img;
}

static int setup(void **state)
{
	struct vmm_mem *m = calloc(1, sizeof(*m));

	if (!m || vmm_mem_init(m, 64ull << 20, false) < 0)
		return -1;
	*state = m;
	return 0;
}

static int teardown(void **state)
{
	vmm_mem_free(*state);
	free(*state);
	return 0;
}

static void test_pvh_guest(void **state)
{
	struct vmm_mem *m = *state;
	struct vmm_boot b;
	char err[256];
	size_t len;
	char *img = guest_elf(&len);

	assert_int_equal(vmm_boot_pvh(m, (uint8_t *)img, len, NULL, 0, "heartbeat interval_ms=1",
	                              &b, err, sizeof(err)),
	                 0);
	assert_int_equal(b.kind, BOOT_PVH);
	assert_int_equal(b.entry, 0x100000); /* pvh_start is the first byte of .boot.text */
	assert_int_equal(b.arg, BOOT_START_INFO_GPA);
	struct hvm_start_info *si = vmm_gpa(m, b.arg, sizeof(*si));
	assert_int_equal(si->magic, 0x336ec578);
	assert_int_equal(si->version, 1);
	assert_string_equal((char *)vmm_gpa(m, si->cmdline_paddr, 1), "heartbeat interval_ms=1");
	assert_int_equal(si->memmap_entries, 3);
	uint64_t *mm = vmm_gpa(m, si->memmap_paddr, 3 * 24);
	assert_int_equal(mm[6], 0x100000); /* third entry: RAM from 1 MiB */
	assert_int_equal(mm[7], (64ull << 20) - 0x100000);
	/* the image's first bytes landed at 1 MiB */
	Elf64_Ehdr *eh = (Elf64_Ehdr *)img;
	Elf64_Phdr *ph = (Elf64_Phdr *)(img + eh->e_phoff);
	assert_memory_equal(vmm_gpa(m, ph[0].p_paddr, 16), img + ph[0].p_offset, 16);
	free(img);
}

/* An initrd with PVH: module 0 of start_info, page-aligned at the top of
 * RAM and clear of the kernel; one too large for the RAM left is refused. */
static void test_pvh_initrd(void **state)
{
	struct vmm_mem *m = *state;
	struct vmm_boot b;
	char err[256];
	size_t len, rdlen = 3 * 4096 + 5;
	char *img = guest_elf(&len);
	uint8_t *rd = malloc(rdlen);

	assert_non_null(rd);
	for (size_t i = 0; i < rdlen; i++)
		rd[i] = (uint8_t)(i * 7 + 1);
	assert_int_equal(vmm_boot_pvh(m, (uint8_t *)img, len, rd, rdlen, "", &b, err, sizeof(err)),
	                 0);
	struct hvm_start_info *si = vmm_gpa(m, b.arg, sizeof(*si));
	assert_int_equal(si->nr_modules, 1);
	uint64_t *ml = vmm_gpa(m, si->modlist_paddr, 32);
	assert_non_null(ml);
	assert_int_equal(ml[0] & 0xfff, 0);                 /* paddr: page-aligned */
	assert_true(ml[0] + rdlen <= 64ull << 20);          /* within RAM */
	assert_true(ml[0] >= (64ull << 20) - rdlen - 4096); /* at its top */
	assert_int_equal(ml[1], rdlen);
	assert_int_equal(ml[2], 0); /* no module command line */
	assert_memory_equal(vmm_gpa(m, ml[0], rdlen), rd, rdlen);
	/* the memory map still follows start_info, untouched */
	assert_int_equal(si->memmap_entries, 3);
	free(rd);
	/* 63 MiB of initrd cannot sit above a kernel at 1 MiB in 64 MiB */
	rdlen = 63ull << 20;
	rd = calloc(1, rdlen);
	assert_non_null(rd);
	assert_int_equal(vmm_boot_pvh(m, (uint8_t *)img, len, rd, rdlen, "", &b, err, sizeof(err)),
	                 -E2BIG);
	assert_non_null(strstr(err, "give the VM more memory"));
	free(rd);
	free(img);
}

static void test_pvh_truncated(void **state)
{
	struct vmm_mem *m = *state;
	struct vmm_boot b;
	char err[256];
	size_t len;
	char *img = guest_elf(&len);

	/* every prefix that cuts into headers, notes or segments is refused;
	 * one that only loses the symbol tables after them still loads */
	Elf64_Ehdr *eh = (Elf64_Ehdr *)img;
	Elf64_Phdr *ph = (Elf64_Phdr *)(img + eh->e_phoff);
	size_t need = 0;
	for (int i = 0; i < eh->e_phnum; i++)
		if (ph[i].p_offset + ph[i].p_filesz > need)
			need = ph[i].p_offset + ph[i].p_filesz;
	assert_int_equal(vmm_boot_pvh(m, (uint8_t *)img, need, NULL, 0, "", &b, err, sizeof(err)),
	                 0);
	for (size_t n = 0; n < need; n += n < 512 ? 1 : 509) {
		int ret = vmm_boot_pvh(m, (uint8_t *)img, n, NULL, 0, "", &b, err, sizeof(err));
		assert_int_not_equal(ret, 0);
		assert_true(strlen(err) > 5);
	}
	free(img);
}

/* Rewrites the PVH note type so the image has none. */
static void test_pvh_no_note(void **state)
{
	struct vmm_mem *m = *state;
	struct vmm_boot b;
	char err[256];
	size_t len;
	char *img = guest_elf(&len);
	Elf64_Ehdr *eh = (Elf64_Ehdr *)img;
	Elf64_Phdr *ph = (Elf64_Phdr *)(img + eh->e_phoff);
	bool found = false;

	for (int i = 0; i < eh->e_phnum; i++) {
		if (ph[i].p_type == PT_NOTE) {
			Elf64_Nhdr *nh = (Elf64_Nhdr *)(img + ph[i].p_offset);
			assert_int_equal(nh->n_type, 18);
			nh->n_type = 17;
			found = true;
		}
	}
	assert_true(found);
	assert_int_equal(vmm_boot_pvh(m, (uint8_t *)img, len, NULL, 0, "", &b, err, sizeof(err)),
	                 -ENOEXEC);
	assert_non_null(strstr(err, "CONFIG_PVH"));
	free(img);
}

static void test_pvh_bad_headers(void **state)
{
	struct vmm_mem *m = *state;
	struct vmm_boot b;
	char err[256];
	size_t len;
	char *img = guest_elf(&len);
	Elf64_Ehdr *eh = (Elf64_Ehdr *)img;
	Elf64_Phdr *ph = (Elf64_Phdr *)(img + eh->e_phoff);
	Elf64_Ehdr save = *eh;

	eh->e_ident[EI_CLASS] = ELFCLASS32;
	assert_int_equal(vmm_boot_pvh(m, (uint8_t *)img, len, NULL, 0, "", &b, err, sizeof(err)),
	                 -EBADMSG);
	assert_non_null(strstr(err, "ELF64"));
	*eh = save;
	eh->e_phnum = 60000;
	assert_int_equal(vmm_boot_pvh(m, (uint8_t *)img, len, NULL, 0, "", &b, err, sizeof(err)),
	                 -EBADMSG);
	*eh = save;
	eh->e_phoff = ~0ull - 8;
	assert_int_equal(vmm_boot_pvh(m, (uint8_t *)img, len, NULL, 0, "", &b, err, sizeof(err)),
	                 -EBADMSG);
	*eh = save;
	/* a segment that would land past the end of guest RAM */
	Elf64_Phdr sp = ph[0];
	ph[0].p_paddr = 63ull << 20;
	ph[0].p_memsz = 8ull << 20;
	assert_int_equal(vmm_boot_pvh(m, (uint8_t *)img, len, NULL, 0, "", &b, err, sizeof(err)),
	                 -E2BIG);
	assert_non_null(strstr(err, "does not fit in guest RAM"));
	ph[0] = sp;
	/* file size larger than memory size */
	ph[0].p_filesz = ph[0].p_memsz + 1;
	assert_int_equal(vmm_boot_pvh(m, (uint8_t *)img, len, NULL, 0, "", &b, err, sizeof(err)),
	                 -EBADMSG);
	ph[0] = sp;
	/* overflowing offset */
	ph[0].p_offset = ~0ull - 4;
	assert_int_equal(vmm_boot_pvh(m, (uint8_t *)img, len, NULL, 0, "", &b, err, sizeof(err)),
	                 -EBADMSG);
	ph[0] = sp;
	/* a segment in low memory would overwrite start_info and page tables */
	ph[0].p_paddr = 0x5000;
	assert_int_equal(vmm_boot_pvh(m, (uint8_t *)img, len, NULL, 0, "", &b, err, sizeof(err)),
	                 -EBADMSG);
	ph[0] = sp;
	/* command line too long */
	char *cl = malloc(BOOT_CMDLINE_MAX + 10);
	memset(cl, 'x', BOOT_CMDLINE_MAX + 9);
	cl[BOOT_CMDLINE_MAX + 9] = '\0';
	assert_int_equal(vmm_boot_pvh(m, (uint8_t *)img, len, NULL, 0, cl, &b, err, sizeof(err)),
	                 -E2BIG);
	free(cl);
	free(img);
}

/* A synthetic bzImage: 1 setup sector + boot sector, then the kernel. */
static uint8_t *bzimage(size_t *len, uint16_t version, uint64_t pref)
{
	size_t klen = 8192;
	uint8_t *b = calloc(1, 1024 + klen);

	b[0x1f1] = 1;    /* setup_sects */
	b[0x201] = 0x66; /* header end = 0x202 + 0x66 */
	memcpy(b + 0x202, "HdrS", 4);
	memcpy(b + 0x206, &version, 2);
	uint32_t align = 2u << 20, init = 1u << 20, clsize = 2047;
	memcpy(b + 0x230, &align, 4);
	b[0x234] = 1; /* relocatable */
	uint16_t xlf = 1;
	memcpy(b + 0x236, &xlf, 2);
	memcpy(b + 0x238, &clsize, 4);
	memcpy(b + 0x258, &pref, 8);
	memcpy(b + 0x260, &init, 4);
	memcpy(b + 1024, "KERNEL!", 8);
	*len = 1024 + klen;
	return b;
}

static void test_linux(void **state)
{
	struct vmm_mem *m = *state;
	struct vmm_boot b;
	char err[256];
	size_t len;
	uint8_t *img = bzimage(&len, 0x20f, 16ull << 20);
	uint8_t rd[5000];

	memset(rd, 0xab, sizeof(rd));
	assert_int_equal(
	        vmm_boot_linux(m, img, len, rd, sizeof(rd), "console=ttyS0", &b, err, sizeof(err)),
	        0);
	assert_int_equal(b.kind, BOOT_LINUX64);
	assert_int_equal(b.entry, (16ull << 20) + 0x200);
	assert_memory_equal(vmm_gpa(m, 16ull << 20, 8), "KERNEL!", 8);
	uint8_t *zp = vmm_gpa(m, BOOT_ZERO_PAGE_GPA, 4096);
	assert_int_equal(zp[0x210], 0xff);
	uint32_t v;
	memcpy(&v, zp + 0x228, 4);
	assert_int_equal(v, BOOT_CMDLINE_GPA);
	assert_string_equal((char *)vmm_gpa(m, v, 1), "console=ttyS0");
	assert_int_equal(zp[0x1e8], 3); /* e820 entries */
	memcpy(&v, zp + 0x218, 4);
	assert_true(v >= (17ull << 20));
	assert_int_equal(*(uint8_t *)vmm_gpa(m, v, 1), 0xab);
	uint64_t *pml4 = vmm_gpa(m, BOOT_PML4_GPA, 8);
	assert_int_equal(pml4[0] & ~0xfffull, BOOT_PML4_GPA + 0x1000);
	free(img);
}

static void test_linux_relocates_and_refuses(void **state)
{
	struct vmm_mem small;
	struct vmm_boot b;
	char err[256];
	size_t len;

	(void)state;
	assert_int_equal(vmm_mem_init(&small, 16ull << 20, false), 0);
	/* preferred address 16 MiB is past a 16 MiB VM: relocated to 2 MiB */
	uint8_t *img = bzimage(&len, 0x20f, 16ull << 20);
	assert_int_equal(vmm_boot_linux(&small, img, len, NULL, 0, "", &b, err, sizeof(err)), 0);
	assert_int_equal(b.entry, (2ull << 20) + 0x200);
	free(img);
	/* protocol 2.11: no 64-bit entry */
	img = bzimage(&len, 0x20b, 16ull << 20);
	assert_int_equal(vmm_boot_linux(&small, img, len, NULL, 0, "", &b, err, sizeof(err)),
	                 -ENOEXEC);
	assert_non_null(strstr(err, "2.12"));
	free(img);
	/* setup larger than the file */
	img = bzimage(&len, 0x20f, 16ull << 20);
	img[0x1f1] = 200;
	assert_int_equal(vmm_boot_linux(&small, img, len, NULL, 0, "", &b, err, sizeof(err)),
	                 -EBADMSG);
	free(img);
	vmm_mem_free(&small);
}

static void test_load_detects(void **state)
{
	struct vmm_mem *m = *state;
	struct vmm_boot b;
	char err[512], path[] = "/tmp/vmk-test-boot-XXXXXX";
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, "garbage, not a kernel", 21), 21);
	close(fd);
	assert_int_equal(vmm_boot_load(m, path, NULL, "", &b, err, sizeof(err)), -ENOEXEC);
	assert_non_null(strstr(err, "neither a PVH ELF nor a Linux bzImage"));
	assert_non_null(strstr(err, path));
	unlink(path);
	assert_int_equal(vmm_boot_load(m, "/nonexistent/kernel", NULL, "", &b, err, sizeof(err)),
	                 -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/kernel"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pvh_guest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pvh_initrd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pvh_truncated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pvh_no_note, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pvh_bad_headers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_linux, setup, teardown),
		cmocka_unit_test(test_linux_relocates_and_refuses),
		cmocka_unit_test_setup_teardown(test_load_detects, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
