/* Disk chains: deltas over a raw base read as the overlay of their layers,
 * take copy-on-write writes of any alignment, survive a reopen, push a
 * snapshot layer, consolidate online (top into parent) and offline (a
 * middle layer), and refuse damaged or looping files with a reason. A
 * random workload is checked against an in-memory model all along. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "util.h"
#include "vmm/disk.h"

#define SIZE ((4u << 20) + 3 * 512u) /* not a whole number of grains */

static char dir[] = "/tmp/vmk-test-disk-XXXXXX";
static char base[128], d1[128], d2[128], d3[128];
static uint8_t model[SIZE], got[SIZE];
static uint64_t rng = 0x2545f4914f6cdd1dull;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void fill(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(next() | 1);
}

static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(dir))
		return -1;
	snprintf(base, sizeof(base), "%s/disk0.img", dir);
	snprintf(d1, sizeof(d1), "%s/disk0-000001.delta", dir);
	snprintf(d2, sizeof(d2), "%s/disk0-000002.delta", dir);
	snprintf(d3, sizeof(d3), "%s/disk0-000003.delta", dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return util_rm_tree(dir);
}

/* a raw base: half data, half hole */
static void make_base(void)
{
	int fd = open(base, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	memset(model, 0, SIZE);
	fill(model, SIZE / 2);
	assert_int_equal(util_pwrite_all(fd, model, SIZE / 2, 0), 0);
	assert_int_equal(ftruncate(fd, SIZE), 0);
	close(fd);
	unlink(d1);
	unlink(d2);
	unlink(d3);
}

static void check(const char *path)
{
	struct vmm_disk *d;
	char err[300];
	assert_int_equal(vmm_disk_open(&d, path, true, err, sizeof(err)), 0);
	assert_int_equal(vmm_disk_size(d), SIZE);
	assert_int_equal(vmm_disk_pread(d, got, SIZE, 0), 0);
	assert_memory_equal(got, model, SIZE);
	vmm_disk_close(d);
}

/* a write of random bytes at a random place and length, into both */
static void random_write(struct vmm_disk *d)
{
	static uint8_t buf[3 * DISK_GRAIN];
	uint64_t len = 1 + next() % sizeof(buf), off = next() % (SIZE - len);
	if (next() % 4 == 0) /* sector aligned, as a guest's */
		off &= ~511ull, len = (len + 511) & ~511ull;
	if (off + len > SIZE)
		len = SIZE - off;
	fill(buf, len);
	assert_int_equal(vmm_disk_pwrite(d, buf, len, off), 0);
	memcpy(model + off, buf, len);
}

static void test_raw(void **state)
{
	struct vmm_disk *d;
	char err[300];

	(void)state;
	make_base();
	assert_int_equal(vmm_delta_probe(base), 0);
	assert_int_equal(vmm_disk_open(&d, base, false, err, sizeof(err)), 0);
	assert_int_equal(vmm_disk_depth(d), 1);
	for (int i = 0; i < 20; i++)
		random_write(d);
	assert_int_equal(vmm_disk_pwrite(d, "x", 1, SIZE), -EINVAL);
	vmm_disk_close(d);
	check(base);
}

static void test_chain(void **state)
{
	struct vmm_disk *d;
	char err[300], parent[300];
	uint64_t size, present;
	struct stat st;

	(void)state;
	make_base();
	assert_int_equal(vmm_delta_create(d1, "disk0.img", err, sizeof(err)), 0);
	assert_int_equal(vmm_delta_probe(d1), 1);
	assert_int_equal(vmm_delta_create(d1, "disk0.img", err, sizeof(err)), -EEXIST);
	check(d1); /* an empty delta reads as its parent */
	uint8_t before[SIZE];
	memcpy(before, model, SIZE);
	assert_int_equal(vmm_disk_open(&d, d1, false, err, sizeof(err)), 0);
	assert_int_equal(vmm_disk_depth(d), 2);
	for (int i = 0; i < 200; i++)
		random_write(d);
	assert_int_equal(vmm_disk_zero(d, 3 * DISK_GRAIN, DISK_GRAIN, true), 0);
	memset(model + 3 * DISK_GRAIN, 0, DISK_GRAIN);
	assert_int_equal(vmm_disk_zero(d, 5 * DISK_GRAIN + 100, 1000, false), 0);
	memset(model + 5 * DISK_GRAIN + 100, 0, 1000);
	assert_int_equal(vmm_disk_discard(d, 0, DISK_GRAIN), 0); /* a hint: nothing changes */
	assert_int_equal(vmm_disk_pread(d, got, SIZE, 0), 0);
	assert_memory_equal(got, model, SIZE);
	vmm_disk_close(d);
	check(d1); /* the bitmap reached the file */
	memcpy(got, model, SIZE);
	memcpy(model, before, SIZE);
	check(base); /* the base never changed */
	memcpy(model, got, SIZE);
	assert_int_equal(
	        vmm_delta_info(d1, parent, sizeof(parent), &size, &present, err, sizeof(err)), 0);
	assert_string_equal(parent, "disk0.img");
	assert_int_equal(size, SIZE);
	/* the header alone, without reading the bitmap */
	parent[0] = '\0';
	size = 0;
	assert_int_equal(vmm_delta_info(d1, parent, sizeof(parent), &size, NULL, err, sizeof(err)),
	                 0);
	assert_string_equal(parent, "disk0.img");
	assert_int_equal(size, SIZE);
	assert_int_equal(
	        vmm_delta_info(base, parent, sizeof(parent), &size, NULL, err, sizeof(err)),
	        -EINVAL);
	assert_true(present > 0 && present <= (SIZE + DISK_GRAIN - 1) / DISK_GRAIN);
	assert_int_equal(stat(d1, &st), 0);
	assert_true((uint64_t)st.st_blocks * 512 <= present * DISK_GRAIN + 2 * DISK_GRAIN);
}

/* Snapshots while open, then consolidation of the top and of a middle. */
static void test_push_and_merge(void **state)
{
	struct vmm_disk *d;
	char err[300];
	static uint8_t s1[SIZE], s2[SIZE];

	(void)state;
	make_base();
	assert_int_equal(vmm_delta_create(d1, base, err, sizeof(err)), 0);
	assert_int_equal(vmm_disk_open(&d, d1, false, err, sizeof(err)), 0);
	for (int i = 0; i < 50; i++)
		random_write(d);
	memcpy(s1, model, SIZE); /* the state d1 freezes */
	assert_int_equal(vmm_delta_create(d2, "disk0-000001.delta", err, sizeof(err)), 0);
	assert_int_equal(vmm_disk_push(d, d2, err, sizeof(err)), 0);
	assert_int_equal(vmm_disk_depth(d), 3);
	assert_string_equal(vmm_disk_top_path(d), d2);
	/* a push of a delta that is not over the top is refused */
	assert_int_equal(vmm_delta_create(d3, base, err, sizeof(err)), 0);
	assert_int_equal(vmm_disk_push(d, d3, err, sizeof(err)), -EINVAL);
	unlink(d3);
	for (int i = 0; i < 50; i++)
		random_write(d);
	memcpy(s2, model, SIZE);
	assert_int_equal(vmm_delta_create(d3, d2, err, sizeof(err)), 0);
	assert_int_equal(vmm_disk_push(d, d3, err, sizeof(err)), 0);
	for (int i = 0; i < 50; i++)
		random_write(d);
	assert_int_equal(vmm_disk_pread(d, got, SIZE, 0), 0);
	assert_memory_equal(got, model, SIZE);
	vmm_disk_close(d);
	check(d3);
	uint8_t now[SIZE];
	memcpy(now, model, SIZE);
	memcpy(model, s1, SIZE);
	check(d1); /* each frozen layer still reads as it was */
	memcpy(model, s2, SIZE);
	check(d2);

	/* offline, under a running VM's open chain: the middle layer d2 goes
	 * into d1, d3 now sits on d1; the open chain still reads the same */
	assert_int_equal(vmm_disk_open(&d, d3, false, err, sizeof(err)), 0);
	assert_int_equal(vmm_delta_merge(d2, err, sizeof(err)), 0);
	assert_int_equal(vmm_delta_set_parent(d3, d1, err, sizeof(err)), 0);
	assert_int_equal(unlink(d2), 0);
	assert_int_equal(vmm_disk_pread(d, got, SIZE, 0), 0);
	assert_memory_equal(got, now, SIZE);
	memcpy(model, now, SIZE);
	check(d3);
	memcpy(model, s2, SIZE);
	check(d1);

	/* online: the top d3 goes into d1 (the chain is read again: d2 is
	 * gone), and d1 takes the writes after */
	assert_int_equal(vmm_disk_merge_top(d, err, sizeof(err)), 0);
	assert_int_equal(vmm_disk_depth(d), 2);
	assert_string_equal(vmm_disk_top_path(d), d1);
	memcpy(model, now, SIZE);
	for (int i = 0; i < 50; i++)
		random_write(d);
	assert_int_equal(vmm_disk_pread(d, got, SIZE, 0), 0);
	assert_memory_equal(got, model, SIZE);
	vmm_disk_close(d);
	unlink(d3);
	check(d1);
	/* and d1 into the raw base: one layer again */
	assert_int_equal(vmm_delta_merge(d1, err, sizeof(err)), 0);
	unlink(d1);
	check(base);
}

static void test_refused(void **state)
{
	struct vmm_disk *d;
	char err[300];
	uint8_t b[64];

	(void)state;
	make_base();
	assert_int_equal(vmm_delta_create(d1, "disk0.img", err, sizeof(err)), 0);
	int fd = open(d1, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, b, 64, 0), 64);
	b[20] ^= 1; /* the size field */
	assert_int_equal(pwrite(fd, b, 64, 0), 64);
	close(fd);
	assert_int_equal(vmm_disk_open(&d, d1, true, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "checksum"));
	assert_non_null(strstr(err, d1));
	unlink(d1);
	/* a missing parent is named */
	assert_int_equal(vmm_delta_create(d1, "disk0.img", err, sizeof(err)), 0);
	assert_int_equal(rename(base, d3), 0);
	assert_int_equal(vmm_disk_open(&d, d1, true, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "disk0.img"));
	assert_int_equal(rename(d3, base), 0);
	/* a delta that is its own parent: a loop, cut at the chain limit */
	assert_int_equal(vmm_delta_set_parent(d1, d1, err, sizeof(err)), 0);
	assert_int_equal(vmm_disk_open(&d, d1, true, err, sizeof(err)), -ELOOP);
	unlink(d1);
	/* a read-only open takes no writes */
	assert_int_equal(vmm_disk_open(&d, base, true, err, sizeof(err)), 0);
	assert_int_equal(vmm_disk_pwrite(d, "x", 1, 0), -EROFS);
	vmm_disk_close(d);
	/* not a disk */
	assert_int_equal(vmm_disk_open(&d, dir, true, err, sizeof(err)), -EINVAL);
	/* a FIFO in a read-only image's place: refused at once (the open
	 * waited for a writer before) */
	char fifo[300];
	snprintf(fifo, sizeof(fifo), "%s/fifo.img", dir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	alarm(10);
	assert_int_equal(vmm_disk_open(&d, fifo, true, err, sizeof(err)), -EINVAL);
	alarm(0);
	assert_non_null(strstr(err, "not a regular file"));
	unlink(fifo);
	/* a raw image whose guest wrote a delta header into it stays raw: its
	 * "parent" is never opened */
	assert_int_equal(vmm_delta_create(d1, "disk0.img", err, sizeof(err)), 0);
	uint8_t hdr[DISK_DELTA_HDR];
	fd = open(d1, O_RDONLY);
	assert_int_equal(pread(fd, hdr, sizeof(hdr), 0), (ssize_t)sizeof(hdr));
	close(fd);
	unlink(d1);
	make_base();
	fd = open(base, O_WRONLY);
	assert_int_equal(pwrite(fd, hdr, sizeof(hdr), 0), (ssize_t)sizeof(hdr));
	close(fd);
	memcpy(model, hdr, sizeof(hdr));
	assert_int_equal(vmm_delta_probe(base), 0);
	assert_int_equal(vmm_disk_open(&d, base, true, err, sizeof(err)), 0);
	assert_int_equal(vmm_disk_depth(d), 1);
	vmm_disk_close(d);
	check(base);
	/* and a .delta without the header is refused */
	fd = open(d2, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	close(fd);
	assert_int_equal(vmm_disk_open(&d, d2, true, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not a delta"));
	unlink(d2);
}

/* A live consolidation: the guest writes between the steps and before the
 * finish; every write reaches the parent that takes over. */
static void test_live_merge(void **state)
{
	struct vmm_disk *d;
	char err[300];

	(void)state;
	make_base();
	assert_int_equal(vmm_delta_create(d1, "disk0.img", err, sizeof(err)), 0);
	assert_int_equal(vmm_disk_open(&d, d1, false, err, sizeof(err)), 0);
	for (int i = 0; i < 40; i++)
		random_write(d);
	assert_int_equal(vmm_disk_merge_begin(d, err, sizeof(err)), 0);
	assert_int_equal(vmm_disk_merge_begin(d, err, sizeof(err)), -EBUSY);
	uint64_t n = vmm_disk_grains(d);
	for (uint64_t g = 0; g < n; g++) {
		assert_int_equal(vmm_disk_merge_step(d, g), 0);
		if (g % 8 == 0)
			random_write(d); /* behind the copy, ahead of it, or both */
	}
	for (int i = 0; i < 10; i++)
		random_write(d);
	assert_int_equal(vmm_disk_merge_finish(d, err, sizeof(err)), 0);
	assert_int_equal(vmm_disk_depth(d), 1);
	assert_int_equal(vmm_disk_pread(d, got, SIZE, 0), 0);
	assert_memory_equal(got, model, SIZE);
	for (int i = 0; i < 10; i++)
		random_write(d); /* the base takes the writes now */
	vmm_disk_close(d);
	unlink(d1);
	check(base);
	/* an abort leaves the chain as it was */
	assert_int_equal(vmm_delta_create(d1, "disk0.img", err, sizeof(err)), 0);
	assert_int_equal(vmm_disk_open(&d, d1, false, err, sizeof(err)), 0);
	random_write(d);
	assert_int_equal(vmm_disk_merge_begin(d, err, sizeof(err)), 0);
	assert_int_equal(vmm_disk_merge_step(d, 0), 0);
	vmm_disk_merge_abort(d);
	assert_int_equal(vmm_disk_depth(d), 2);
	random_write(d);
	vmm_disk_close(d);
	check(d1);
	unlink(d1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_raw),
		cmocka_unit_test(test_chain),
		cmocka_unit_test(test_push_and_merge),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_live_merge),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
