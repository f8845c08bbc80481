/* Guest memory: sizes accepted and refused, the split around the 32-bit
 * MMIO hole, memfd backing, and the bounds vmm_gpa() enforces. Large sizes
 * are only reserved (MAP_NORESERVE, sparse memfds): the tests touch a few
 * pages. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "vmm/mem.h"

#define MiB (1ull << 20)
#define GiB (1ull << 30)

static void check_one_slot(uint64_t bytes, bool use_memfd)
{
	struct vmm_mem m;
	uint8_t *p;

	assert_int_equal(vmm_mem_init(&m, bytes, use_memfd), 0);
	assert_int_equal(m.nslots, 1);
	assert_true(m.ram_bytes == bytes);
	assert_true(m.slots[0].gpa == 0);
	assert_true(m.slots[0].size == bytes);
	assert_non_null(m.slots[0].host);
	if (use_memfd) {
		struct stat st;
		assert_true(m.slots[0].memfd >= 0);
		assert_int_equal(fstat(m.slots[0].memfd, &st), 0);
		assert_true((uint64_t)st.st_size == bytes);
	} else {
		assert_int_equal(m.slots[0].memfd, -1);
	}
	/* the first and the last page are there, zeroed, writable */
	p = vmm_gpa(&m, 0, VMM_PAGE_SIZE);
	assert_ptr_equal(p, m.slots[0].host);
	assert_int_equal(p[0], 0);
	p[0] = 0x11;
	p = vmm_gpa(&m, bytes - 1, 1);
	assert_ptr_equal(p, m.slots[0].host + bytes - 1);
	assert_int_equal(*p, 0);
	*p = 0x22;
	if (use_memfd) { /* the memfd is what backs the mapping */
		uint8_t b = 0;
		assert_int_equal(pread(m.slots[0].memfd, &b, 1, (off_t)(bytes - 1)), 1);
		assert_int_equal(b, 0x22);
		assert_int_equal(pread(m.slots[0].memfd, &b, 1, 0), 1);
		assert_int_equal(b, 0x11);
	}
	assert_null(vmm_gpa(&m, bytes, 1));
	vmm_mem_free(&m);
	assert_int_equal(m.nslots, 0);
	vmm_mem_free(&m); /* twice is harmless */
}

static void test_small_sizes(void **state)
{
	(void)state;
	check_one_slot(16 * MiB, false);
	check_one_slot(16 * MiB, true);
	check_one_slot(64 * MiB, false);
	check_one_slot(64 * MiB, true);
	check_one_slot(16 * MiB + VMM_PAGE_SIZE, false); /* any page multiple */
}

static void test_bad_sizes(void **state)
{
	static const uint64_t bad[] = {
		0,
		VMM_PAGE_SIZE,
		15 * MiB,
		16 * MiB - VMM_PAGE_SIZE,
		16 * MiB + 1, /* not page aligned */
		16 * MiB + 2048,
		64 * MiB - 1,
		64 * GiB + VMM_PAGE_SIZE,
		65 * GiB,
		1ull << 63,
		UINT64_MAX,
	};
	struct vmm_mem m;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		for (int memfd = 0; memfd <= 1; memfd++) {
			memset(&m, 0xab, sizeof(m));
			assert_int_equal(vmm_mem_init(&m, bad[i], memfd), -EINVAL);
			assert_int_equal(m.nslots, 0); /* left empty: free is safe */
			vmm_mem_free(&m);
		}
	}
}

/* 4 GiB: 3 GiB below the hole at 0, 1 GiB above it at 4 GiB */
static void check_split(bool use_memfd)
{
	struct vmm_mem m;
	const struct vmm_mem_slot *lo = &m.slots[0], *hi = &m.slots[1];
	uint8_t *p;

	assert_int_equal(vmm_mem_init(&m, 4 * GiB, use_memfd), 0);
	assert_int_equal(m.nslots, 2);
	assert_true(m.ram_bytes == 4 * GiB);
	assert_true(lo->gpa == 0);
	assert_true(lo->size == VMM_MMIO_HOLE_START);
	assert_true(hi->gpa == 4 * GiB);
	assert_true(hi->size == 4 * GiB - VMM_MMIO_HOLE_START);
	assert_true((lo->memfd >= 0) == use_memfd);
	assert_true((hi->memfd >= 0) == use_memfd);

	/* inside */
	assert_ptr_equal(vmm_gpa(&m, 0, 1), lo->host);
	assert_ptr_equal(vmm_gpa(&m, 0, lo->size), lo->host);
	assert_ptr_equal(vmm_gpa(&m, 0x1000, 0x2000), lo->host + 0x1000);
	assert_ptr_equal(vmm_gpa(&m, lo->size - 1, 1), lo->host + lo->size - 1);
	assert_ptr_equal(vmm_gpa(&m, 4 * GiB, 1), hi->host);
	assert_ptr_equal(vmm_gpa(&m, 4 * GiB, hi->size), hi->host);
	assert_ptr_equal(vmm_gpa(&m, 5 * GiB - 8, 8), hi->host + hi->size - 8);
	/* straddling a slot's end, in the hole, past the end */
	assert_null(vmm_gpa(&m, lo->size - 1, 2));
	assert_null(vmm_gpa(&m, 0, lo->size + 1));
	assert_null(vmm_gpa(&m, VMM_MMIO_HOLE_START, 1));
	assert_null(vmm_gpa(&m, 0xfee00000, 4)); /* the local APIC */
	assert_null(vmm_gpa(&m, 4 * GiB - 1, 1));
	assert_null(vmm_gpa(&m, 4 * GiB - 1, 2)); /* from the hole into RAM */
	assert_null(vmm_gpa(&m, 5 * GiB - 8, 9));
	assert_null(vmm_gpa(&m, 5 * GiB, 1));
	assert_null(vmm_gpa(&m, 64 * GiB, 1));
	/* lengths that wrap gpa + len around */
	assert_null(vmm_gpa(&m, 0, UINT64_MAX));
	assert_null(vmm_gpa(&m, 0x1000, UINT64_MAX - 0xfff));
	assert_null(vmm_gpa(&m, 0x1000, UINT64_MAX));
	assert_null(vmm_gpa(&m, 4 * GiB + 16, UINT64_MAX - 8));
	assert_null(vmm_gpa(&m, UINT64_MAX, 1));
	assert_null(vmm_gpa(&m, UINT64_MAX, UINT64_MAX));
	assert_null(vmm_gpa(&m, UINT64_MAX - 0xfff, 0x1000));

	/* the two slots are distinct memory */
	p = vmm_gpa(&m, 4 * GiB, 1);
	*p = 0x44;
	p = vmm_gpa(&m, 0, 1);
	assert_int_equal(*p, 0);
	p = vmm_gpa(&m, lo->size - 1, 1);
	*p = 0x33;
	assert_int_equal(*(uint8_t *)vmm_gpa(&m, 4 * GiB, 1), 0x44);
	vmm_mem_free(&m);
	assert_int_equal(m.nslots, 0);
	assert_null(vmm_gpa(&m, 0, 1)); /* nothing after free */
}

static void test_split_around_hole(void **state)
{
	(void)state;
	check_split(false);
	check_split(true);
}

static void test_hole_edges(void **state)
{
	struct vmm_mem m;

	(void)state;
	/* exactly up to the hole: one slot */
	assert_int_equal(vmm_mem_init(&m, VMM_MMIO_HOLE_START, false), 0);
	assert_int_equal(m.nslots, 1);
	assert_true(m.slots[0].size == VMM_MMIO_HOLE_START);
	vmm_mem_free(&m);
	/* one page more: that page lands at 4 GiB */
	assert_int_equal(vmm_mem_init(&m, VMM_MMIO_HOLE_START + VMM_PAGE_SIZE, false), 0);
	assert_int_equal(m.nslots, 2);
	assert_true(m.slots[1].gpa == 4 * GiB);
	assert_true(m.slots[1].size == VMM_PAGE_SIZE);
	assert_non_null(vmm_gpa(&m, 4 * GiB + VMM_PAGE_SIZE - 1, 1));
	assert_null(vmm_gpa(&m, 4 * GiB + VMM_PAGE_SIZE, 1));
	vmm_mem_free(&m);
}

/* The largest size; only reserved, so it works without 64 GiB unless the
 * host forbids overcommit (vm.overcommit_memory=2): then skipped. */
/* KVM's per-slot log merged into the device log, word by word */
static void test_merge_dirty(void **state)
{
	struct vmm_mem m;
	uint64_t bm[4] = { 0x1, 0, 0x8000000000000000ull, 0x3 }, out[64] = { 0 };

	(void)state;
	assert_int_equal(vmm_mem_init(&m, 16 * MiB, false), 0); /* 4096 pages */
	vmm_mem_merge_dirty(&m, 128, bm, 256);                  /* no log yet: nothing */
	assert_int_equal(vmm_mem_dirty_start(&m), 0);
	vmm_mem_mark_dirty(&m, 129 * VMM_PAGE_SIZE, 1);
	vmm_mem_merge_dirty(&m, 128, bm, 256);
	vmm_mem_merge_dirty(&m, 4032, bm, 256); /* past the end: only what fits */
	assert_int_equal(vmm_mem_dirty_harvest(&m, out), 1 + 1 + 1 + 2 + 1);
	assert_true(out[2] == 0x3); /* pages 128 and 129 (marked) */
	assert_true(out[4] == 0x8000000000000000ull);
	assert_true(out[5] == 0x3);
	assert_true(out[63] == 0x1); /* page 4032 */
	assert_int_equal(vmm_mem_dirty_harvest(&m, out), 0);
	vmm_mem_dirty_stop(&m);
	vmm_mem_free(&m);
}

static void test_largest(void **state)
{
	struct vmm_mem m;
	int ret;

	(void)state;
	ret = vmm_mem_init(&m, 64 * GiB, true);
	if (ret == -ENOMEM) {
		skip();
		return;
	}
	assert_int_equal(ret, 0);
	assert_int_equal(m.nslots, 2);
	assert_true(m.slots[1].gpa == 4 * GiB);
	assert_true(m.slots[1].size == 64 * GiB - VMM_MMIO_HOLE_START);
	uint8_t *p = vmm_gpa(&m, 4 * GiB + m.slots[1].size - 1, 1);
	assert_non_null(p);
	*p = 1;
	assert_null(vmm_gpa(&m, 4 * GiB + m.slots[1].size, 1));
	vmm_mem_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_small_sizes),       cmocka_unit_test(test_bad_sizes),
		cmocka_unit_test(test_split_around_hole), cmocka_unit_test(test_hole_edges),
		cmocka_unit_test(test_largest),           cmocka_unit_test(test_merge_dirty),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
