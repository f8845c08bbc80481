/* virtio-mmio transport + virtio-blk, driven by a small driver over a fake
 * guest memory: negotiation, I/O against a sparse image, malformed rings,
 * save/restore in the middle of a stream of requests. */
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

#include "tests/virtio_driver.h"
#include "vmm/virtio_blk.h"

#define DESC  TQ_DESC(0)
#define AVAIL TQ_AVAIL(0)
#define USED  TQ_USED(0)
#define HDR   0x20000ull
#define DATA  0x21000ull
#define STAT  0x30000ull
#define QSZ   16

static int irq_level;
static void irq_set(void *arg, uint32_t gsi, int level)
{
	(void)arg;
	(void)gsi;
	irq_level = level;
}

struct t {
	struct tdrv drv; /* first: a struct t * is a struct tdrv * */
	char img[64];
	uint16_t avail_idx;
};

#define rd(t, off)                         tdrv_rd(&(t)->drv, off)
#define wr(t, off, v)                      tdrv_wr(&(t)->drv, off, v)
#define g(t, gpa)                          tdrv_gpa(&(t)->drv, gpa)
#define desc(t, i, addr, len, flags, next) tdrv_desc(&(t)->drv, 0, i, addr, len, flags, next)

/* blk features (FLUSH, DISCARD) with or without VERSION_1, queue 0 */
static bool bring_up(struct t *t, bool version1, uint16_t qsize)
{
	t->avail_idx = 0;
	return tdrv_up(&t->drv, (1u << 9) | (1u << 13), version1 ? 1 : 0, 1, qsize);
}

/* reset, negotiate (with or without VERSION_1), set up queue 0 */

/* one request: header, data (len bytes at DATA), status; returns status */
static int req(struct t *t, uint32_t type, uint64_t sector, uint32_t len, bool dev_writes)
{
	uint32_t hdr[4] = { type, 0, (uint32_t)sector, (uint32_t)(sector >> 32) };
	memcpy(g(t, HDR), hdr, 16);
	*(uint8_t *)g(t, STAT) = 0xee;
	unsigned base = (t->avail_idx * 3) % QSZ;
	if (len) {
		desc(t, base, HDR, 16, 1, (uint16_t)((base + 1) % QSZ));
		desc(t, (base + 1) % QSZ, DATA, len, (uint16_t)(1 | (dev_writes ? 2 : 0)),
		     (uint16_t)((base + 2) % QSZ));
		desc(t, (base + 2) % QSZ, STAT, 1, 2, 0);
	} else {
		desc(t, base, HDR, 16, 1, (uint16_t)((base + 1) % QSZ));
		desc(t, (base + 1) % QSZ, STAT, 1, 2, 0);
	}
	uint16_t *avail = g(t, AVAIL);
	avail[2 + t->avail_idx % QSZ] = (uint16_t)base;
	avail[1] = ++t->avail_idx;
	wr(t, 0x50, 0);
	uint16_t used_idx = *(uint16_t *)g(t, USED + 2);
	assert_int_equal(used_idx, t->avail_idx);
	return *(uint8_t *)g(t, STAT);
}

static int setup(void **state)
{
	struct t *t = calloc(1, sizeof(*t));
	char err[256];

	snprintf(t->img, sizeof(t->img), "/tmp/vmk-test-blk-XXXXXX");
	int fd = mkstemp(t->img);
	if (fd < 0 || ftruncate(fd, 4 << 20) < 0)
		return -1;
	close(fd);
	if (vmm_mem_init(&t->drv.mem, 16ull << 20, false) < 0)
		return -1;
	t->drv.bus = (struct vmm_bus){ .mem = &t->drv.mem, .irq_set = irq_set };
	if (vmm_virtio_blk_create(&t->drv.d, &t->drv.bus, 0xd0000000, 5, t->img, false,
	                          "vmk-disk-0", err, sizeof(err)) < 0)
		return -1;
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct t *t = *state;
	t->drv.d->ops->destroy(t->drv.d);
	vmm_mem_free(&t->drv.mem);
	unlink(t->img);
	free(t);
	return 0;
}

static void test_negotiation(void **state)
{
	struct t *t = *state;

	assert_int_equal(rd(t, 0x00), 0x74726976);
	assert_int_equal(rd(t, 0x04), 2);
	assert_int_equal(rd(t, 0x08), 2);
	wr(t, 0x14, 1);
	assert_int_equal(rd(t, 0x10) & 1, 1);  /* VERSION_1 offered */
	assert_false(bring_up(t, false, QSZ)); /* refused without VERSION_1 */
	assert_true(bring_up(t, true, QSZ));
	uint32_t cap;
	t->drv.d->ops->mmio(t->drv.d, 0x100, false, (uint8_t *)&cap, 4);
	assert_int_equal(cap, (4 << 20) / 512);
}

static void test_io(void **state)
{
	struct t *t = *state;
	uint8_t *data = g(t, DATA);

	assert_true(bring_up(t, true, QSZ));
	for (int i = 0; i < 8192; i++)
		data[i] = (uint8_t)(i * 13 + 1);
	assert_int_equal(req(t, 1, 8, 8192, false), 0); /* write 16 sectors at 8 */
	assert_int_equal(irq_level, 1);
	wr(t, 0x64, rd(t, 0x60)); /* ack */
	assert_int_equal(irq_level, 0);
	assert_int_equal(req(t, 4, 0, 0, false), 0); /* flush */
	memset(data, 0, 8192);
	assert_int_equal(req(t, 0, 8, 8192, true), 0); /* read back */
	for (int i = 0; i < 8192; i++)
		assert_int_equal(data[i], (uint8_t)(i * 13 + 1));
	/* the image file has it at byte 4096 */
	uint8_t b;
	int fd = open(t->img, O_RDONLY);
	assert_int_equal(pread(fd, &b, 1, 4096 + 5), 1);
	assert_int_equal(b, (uint8_t)(5 * 13 + 1));
	close(fd);
	/* get id */
	assert_int_equal(req(t, 8, 0, 20, true), 0);
	assert_memory_equal(data, "vmk-disk-0", 10);
	/* past the end */
	assert_int_equal(req(t, 0, (4 << 20) / 512 - 1, 1024, true), 1);
	/* unknown type */
	assert_int_equal(req(t, 99, 0, 512, true), 2);
	/* discard: a hole where the data was */
	uint64_t seg[2] = { 8, 16 };
	memcpy(data, seg, 16);
	struct stat st0, st1;
	stat(t->img, &st0);
	assert_int_equal(req(t, 11, 0, 16, false), 0);
	stat(t->img, &st1);
	assert_true(st1.st_blocks < st0.st_blocks);
	assert_int_equal(req(t, 0, 8, 512, true), 0);
	assert_int_equal(data[0], 0);
}

static void test_malformed_rings(void **state)
{
	struct t *t = *state;
	uint16_t *avail;

	/* a buffer outside guest RAM */
	assert_true(bring_up(t, true, QSZ));
	desc(t, 0, 0x7fffffff000ull, 512, 1, 0);
	avail = g(t, AVAIL);
	avail[2] = 0;
	avail[1] = 1;
	wr(t, 0x50, 0);
	assert_true(rd(t, 0x70) & 0x40);
	assert_true(rd(t, 0x60) & 2);
	/* a descriptor loop */
	assert_true(bring_up(t, true, QSZ));
	assert_false(rd(t, 0x70) & 0x40); /* reset cleared it */
	desc(t, 0, HDR, 16, 1, 1);
	desc(t, 1, DATA, 16, 1, 0);
	avail[2] = 0;
	avail[1] = 1;
	wr(t, 0x50, 0);
	assert_true(rd(t, 0x70) & 0x40);
	/* next index out of range */
	assert_true(bring_up(t, true, QSZ));
	desc(t, 0, HDR, 16, 1, 999);
	avail[1] = 1;
	wr(t, 0x50, 0);
	assert_true(rd(t, 0x70) & 0x40);
	/* head out of range, and an avail index far ahead */
	assert_true(bring_up(t, true, QSZ));
	avail[2] = 500;
	avail[1] = 1;
	wr(t, 0x50, 0);
	assert_true(rd(t, 0x70) & 0x40);
	assert_true(bring_up(t, true, QSZ));
	avail[1] = 40000;
	wr(t, 0x50, 0);
	assert_true(rd(t, 0x70) & 0x40);
	/* queue size not a power of two: refused at QueueReady */
	assert_true(bring_up(t, true, 12));
	assert_true(rd(t, 0x70) & 0x40);
	/* after all that a proper reset still works */
	assert_true(bring_up(t, true, QSZ));
	assert_int_equal(req(t, 4, 0, 0, false), 0);
}

static void test_save_restore(void **state)
{
	struct t *t = *state;
	struct vmm_device *d2;
	struct sbuf s;
	struct rbuf r;
	char err[256];
	uint8_t *data = g(t, DATA);

	assert_true(bring_up(t, true, QSZ));
	memset(data, 0x5a, 512);
	assert_int_equal(req(t, 1, 100, 512, false), 0);
	assert_int_equal(req(t, 4, 0, 0, false), 0);
	sbuf_init(&s);
	assert_int_equal(t->drv.d->ops->save(t->drv.d, &s), 0);
	/* a fresh device on the same image continues the same ring */
	assert_int_equal(vmm_virtio_blk_create(&d2, &t->drv.bus, 0xd0000000, 5, t->img, false, "x",
	                                       err, sizeof(err)),
	                 0);
	rbuf_init(&r, s.data, s.len);
	assert_int_equal(d2->ops->restore(d2, &r), 0);
	t->drv.d->ops->destroy(t->drv.d);
	t->drv.d = d2;
	memset(data, 0, 512);
	assert_int_equal(req(t, 0, 100, 512, true), 0);
	assert_int_equal(data[0], 0x5a);
	/* every truncation is refused; a queue pointing outside RAM too */
	for (size_t len = 0; len < s.len; len++) {
		rbuf_init(&r, s.data, len);
		assert_int_not_equal(d2->ops->restore(d2, &r), 0);
	}
	uint64_t far = 1ull << 40;
	memcpy(s.data + 8 + 4 * 6 + 3, &far, 8); /* queue 0 desc address */
	rbuf_init(&r, s.data, s.len);
	assert_int_equal(d2->ops->restore(d2, &r), -EBADMSG);
	sbuf_free(&s);
}

static void test_readonly_and_bad_image(void **state)
{
	struct t *t = *state;
	struct vmm_device *ro;
	char err[256];

	assert_int_equal(vmm_virtio_blk_create(&ro, &t->drv.bus, 0xd0000200, 6, t->img, true, "ro",
	                                       err, sizeof(err)),
	                 0);
	struct vmm_device *save = t->drv.d;
	t->drv.d = ro;
	assert_true(bring_up(t, true, QSZ));
	assert_int_equal(req(t, 1, 0, 512, false), 1); /* write refused */
	assert_int_equal(req(t, 0, 0, 512, true), 0);
	wr(t, 0x14, 0);
	assert_true(rd(t, 0x10) & (1u << 5)); /* VIRTIO_BLK_F_RO */
	ro->ops->destroy(ro);
	t->drv.d = save;
	assert_int_equal(vmm_virtio_blk_create(&ro, &t->drv.bus, 0xd0000200, 6, "/nonexistent.img",
	                                       false, "x", err, sizeof(err)),
	                 -ENOENT);
	assert_non_null(strstr(err, "/nonexistent.img"));
	assert_int_equal(vmm_virtio_blk_create(&ro, &t->drv.bus, 0xd0000200, 6, "/tmp", false, "x",
	                                       err, sizeof(err)),
	                 -EISDIR);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_negotiation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_io, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_rings, setup, teardown),
		cmocka_unit_test_setup_teardown(test_save_restore, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readonly_and_bad_image, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
