/* virtio-blk over a sparse temporary image, driven through the virtio-mmio
 * registers by the small driver of tests/virtio_driver.h over a fake guest
 * memory: negotiation, I/O in several descriptor layouts, flush, get-id,
 * discard and write-zeroes, errors, read-only disks, malformed rings,
 * reset, save/restore in the middle of a stream of requests; the write
 * log of a storage migration or FT and the DISK sections it sends. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"
#include "tests/virtio_driver.h"
#include "vmm/diskstate.h"
#include "vmm/virtio_blk.h"
#include "vmm/virtio_net.h"

#define RAM      (16ull << 20)
#define IMG_SIZE (8u << 20)
#define CAPACITY (IMG_SIZE / 512)
#define HDR      0x20000ull /* request header */
#define HDR2     0x20100ull
#define STAT     0x21000ull /* status byte */
#define STAT2    0x21100ull
#define TABLE    0x22000ull  /* an indirect table */
#define DATA     0x100000ull /* 4 MiB */
#define DATA2    0x600000ull /* 4 MiB */
#define QSZ      16

/* features a full driver accepts (low word), VERSION_1 (high word) */
#define FEAT_LO                                                                                    \
	(uint32_t)(VIRTIO_BLK_F_SEG_MAX | VIRTIO_BLK_F_FLUSH | VIRTIO_BLK_F_DISCARD |              \
	           VIRTIO_BLK_F_WRITE_ZEROES | VIRTIO_RING_F_INDIRECT_DESC)

struct bt {
	struct tdrv drv; /* first */
	char img[64];
	int level; /* the interrupt line */
	int fd;    /* the image, for checks */
};

static void irq_set(void *arg, uint32_t gsi, int level)
{
	struct bt *t = arg;

	assert_int_equal(gsi, 5);
	t->level = level;
}

static uint32_t rd(struct bt *t, uint64_t off)
{
	return tdrv_rd(&t->drv, off);
}

static void wr(struct bt *t, uint64_t off, uint32_t v)
{
	tdrv_wr(&t->drv, off, v);
}

static void *g(struct bt *t, uint64_t gpa)
{
	return tdrv_gpa(&t->drv, gpa);
}

/* resets and brings the disk up with fresh (zeroed) rings */
static bool up(struct bt *t, uint32_t lo)
{
	memset(g(t, TQ_DESC(0)), 0, 0x4000);
	return tdrv_up(&t->drv, lo, 1, 1, QSZ);
}

static int make_image(char *path, size_t pathlen, off_t size)
{
	snprintf(path, pathlen, "/tmp/vmk-test-blk-XXXXXX");
	int fd = mkstemp(path);
	if (fd < 0 || ftruncate(fd, size) < 0)
		return -1;
	return fd;
}

static int setup(void **state)
{
	struct bt *t = calloc(1, sizeof(*t));
	char err[256];

	if (!t || (t->fd = make_image(t->img, sizeof(t->img), IMG_SIZE)) < 0)
		return -1;
	if (vmm_mem_init(&t->drv.mem, RAM, false) < 0)
		return -1;
	t->drv.bus = (struct vmm_bus){ .mem = &t->drv.mem, .irq_set = irq_set, .irq_arg = t };
	if (vmm_virtio_blk_create(&t->drv.d, &t->drv.bus, 0xd0000000, 5, t->img, false,
	                          "vmk-disk-0", err, sizeof(err)) < 0)
		return -1;
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct bt *t = *state;

	t->drv.d->ops->destroy(t->drv.d);
	vmm_mem_free(&t->drv.mem);
	close(t->fd);
	unlink(t->img);
	free(t);
	return 0;
}

struct seg {
	uint64_t gpa;
	uint32_t len;
};

/* Posts (does not notify) a request: header at hdr, data buffers, status at
 * st. */
static void post(struct bt *t, uint32_t type, uint64_t sector, const struct seg *data, unsigned n,
                 bool dev_writes, uint64_t hdr, uint64_t st)
{
	uint64_t a[QSZ];
	uint32_t l[QSZ];
	uint16_t f[QSZ];
	uint32_t h[4] = { type, 0, (uint32_t)sector, (uint32_t)(sector >> 32) };

	assert_true(n + 2 <= QSZ);
	memcpy(g(t, hdr), h, 16);
	*(uint8_t *)g(t, st) = 0xee;
	a[0] = hdr;
	l[0] = 16;
	f[0] = 0;
	for (unsigned i = 0; i < n; i++) {
		a[1 + i] = data[i].gpa;
		l[1 + i] = data[i].len;
		f[1 + i] = dev_writes ? VIRTQ_DESC_F_WRITE : 0;
	}
	a[n + 1] = st;
	l[n + 1] = 1;
	f[n + 1] = VIRTQ_DESC_F_WRITE;
	tdrv_post(&t->drv, 0, a, l, f, n + 2);
}

static uint32_t last_used_len(struct bt *t)
{
	return tdrv_used_len(&t->drv, 0, (uint16_t)(tdrv_used_idx(&t->drv, 0) - 1));
}

/* notifies, checks that exactly `n` more requests completed */
static void kick(struct bt *t, unsigned n)
{
	uint16_t before = tdrv_used_idx(&t->drv, 0);

	wr(t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal((uint16_t)(tdrv_used_idx(&t->drv, 0) - before), n);
}

/* one request with its data in n buffers; returns the status */
static int reqv(struct bt *t, uint32_t type, uint64_t sector, const struct seg *data, unsigned n,
                bool dev_writes)
{
	post(t, type, sector, data, n, dev_writes, HDR, STAT);
	kick(t, 1);
	return *(uint8_t *)g(t, STAT);
}

static int req(struct bt *t, uint32_t type, uint64_t sector, uint64_t gpa, uint32_t len,
               bool dev_writes)
{
	struct seg s = { gpa, len };
	return reqv(t, type, sector, &s, len ? 1 : 0, dev_writes);
}

static void pattern(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 131 + seed + (i >> 9));
}

static uint32_t cfg32(struct bt *t, unsigned off)
{
	uint32_t v;
	t->drv.d->ops->mmio(t->drv.d, VIRTIO_MMIO_CONFIG + off, false, (uint8_t *)&v, 4);
	return v;
}

static void test_negotiation(void **state)
{
	struct bt *t = *state;

	assert_string_equal(t->drv.d->ops->name, "virtio-blk");
	assert_int_equal(rd(t, VIRTIO_MMIO_MAGIC_VALUE), VIRTIO_MMIO_MAGIC);
	assert_int_equal(rd(t, VIRTIO_MMIO_VERSION), 2);
	assert_int_equal(rd(t, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_BLOCK);
	wr(t, VIRTIO_MMIO_DEVICE_FEAT_SEL, 0);
	assert_int_equal(rd(t, VIRTIO_MMIO_DEVICE_FEATURES), FEAT_LO);
	wr(t, VIRTIO_MMIO_DEVICE_FEAT_SEL, 1);
	assert_int_equal(rd(t, VIRTIO_MMIO_DEVICE_FEATURES), 1);
	assert_false(tdrv_up(&t->drv, FEAT_LO, 0, 1, QSZ)); /* no VERSION_1: refused */
	assert_false(rd(t, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK);
	assert_false(up(t, FEAT_LO | (uint32_t)VIRTIO_BLK_F_RO)); /* not offered */
	assert_true(up(t, FEAT_LO));
	wr(t, VIRTIO_MMIO_QUEUE_SEL, 0);
	assert_int_equal(rd(t, VIRTIO_MMIO_QUEUE_NUM_MAX), 256);
	wr(t, VIRTIO_MMIO_QUEUE_SEL, 1);
	assert_int_equal(rd(t, VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
	/* configuration space */
	uint64_t cap;
	t->drv.d->ops->mmio(t->drv.d, VIRTIO_MMIO_CONFIG, false, (uint8_t *)&cap, 8);
	assert_true(cap == CAPACITY);
	assert_int_equal(cfg32(t, VIRTIO_BLK_CFG_CAPACITY), CAPACITY);
	assert_int_equal(cfg32(t, VIRTIO_BLK_CFG_CAPACITY + 4), 0);
	assert_int_equal(cfg32(t, VIRTIO_BLK_CFG_SEG_MAX), 254);
	assert_int_equal(cfg32(t, VIRTIO_BLK_CFG_MAX_DISCARD_SECT), VIRTIO_BLK_MAX_DWZ_SECTORS);
	assert_int_equal(cfg32(t, VIRTIO_BLK_CFG_MAX_DISCARD_SEG), VIRTIO_BLK_MAX_DWZ_SEG);
	assert_int_equal(cfg32(t, VIRTIO_BLK_CFG_DISCARD_ALIGN), 8);
	assert_int_equal(cfg32(t, VIRTIO_BLK_CFG_MAX_WZ_SECT), VIRTIO_BLK_MAX_DWZ_SECTORS);
	assert_int_equal(cfg32(t, VIRTIO_BLK_CFG_MAX_WZ_SEG), VIRTIO_BLK_MAX_DWZ_SEG);
	uint8_t unmap;
	t->drv.d->ops->mmio(t->drv.d, VIRTIO_MMIO_CONFIG + VIRTIO_BLK_CFG_WZ_MAY_UNMAP, false,
	                    &unmap, 1);
	assert_int_equal(unmap, 1);
	assert_int_equal(cfg32(t, VIRTIO_BLK_CFG_SIZE), 0);
}

static void test_write_read(void **state)
{
	struct bt *t = *state;
	uint8_t *data = g(t, DATA), *back = g(t, DATA2), file[8192];

	assert_true(up(t, FEAT_LO));
	pattern(data, 8192, 1);
	/* 16 sectors at sector 8 from three buffers */
	struct seg w[3] = { { DATA, 4096 }, { DATA + 4096, 2048 }, { DATA + 6144, 2048 } };
	assert_int_equal(t->level, 0);
	assert_int_equal(reqv(t, VIRTIO_BLK_T_OUT, 8, w, 3, false), VIRTIO_BLK_S_OK);
	assert_int_equal(last_used_len(t), 1);
	assert_int_equal(t->level, 1);
	assert_int_equal(rd(t, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING);
	wr(t, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING);
	assert_int_equal(t->level, 0);
	assert_int_equal(req(t, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false), VIRTIO_BLK_S_OK);
	/* in the file at byte 4096 */
	assert_int_equal(pread(t->fd, file, 8192, 4096), 8192);
	assert_memory_equal(file, data, 8192);
	/* read back into two buffers */
	memset(back, 0, 8192);
	struct seg r[2] = { { DATA2, 1024 }, { DATA2 + 1024, 7168 } };
	assert_int_equal(reqv(t, VIRTIO_BLK_T_IN, 8, r, 2, true), VIRTIO_BLK_S_OK);
	assert_int_equal(last_used_len(t), 8192 + 1);
	assert_memory_equal(back, data, 8192);

	/* any layout: the header in two pieces, data and status in one buffer */
	uint32_t h[4] = { VIRTIO_BLK_T_IN, 0, 9, 0 };
	memcpy(g(t, HDR), h, 16);
	memset(back, 0xee, 513);
	uint64_t a[3] = { HDR, HDR + 8, DATA2 };
	uint32_t l[3] = { 8, 8, 513 };
	uint16_t f[3] = { 0, 0, VIRTQ_DESC_F_WRITE };
	tdrv_post(&t->drv, 0, a, l, f, 3);
	kick(t, 1);
	assert_int_equal(back[512], VIRTIO_BLK_S_OK);
	assert_memory_equal(back, data + 512, 512);
	assert_int_equal(last_used_len(t), 513);

	/* the whole request in an indirect table */
	h[0] = VIRTIO_BLK_T_OUT;
	h[2] = 40;
	memcpy(g(t, HDR), h, 16);
	*(uint8_t *)g(t, STAT) = 0xee;
	unsigned ti = (unsigned)(TABLE - TQ_DESC(0)) / 16;
	tdrv_desc(&t->drv, 0, ti + 0, HDR, 16, 1, 2);
	tdrv_desc(&t->drv, 0, ti + 2, DATA, 1024, 1, 1);
	tdrv_desc(&t->drv, 0, ti + 1, STAT, 1, 2, 0);
	a[0] = TABLE;
	l[0] = 3 * 16;
	f[0] = VIRTQ_DESC_F_INDIRECT;
	tdrv_post(&t->drv, 0, a, l, f, 1);
	kick(t, 1);
	assert_int_equal(*(uint8_t *)g(t, STAT), VIRTIO_BLK_S_OK);
	assert_int_equal(pread(t->fd, file, 1024, 40 * 512), 1024);
	assert_memory_equal(file, data, 1024);

	struct vmm_virtio_blk_stats st;
	vmm_virtio_blk_get_stats(t->drv.d, &st);
	assert_true(st.writes == 2 && st.reads == 2 && st.flushes == 1 && st.errors == 0);
	assert_true(st.written_bytes == 8192 + 1024 && st.read_bytes == 8192 + 512);
}

/* 4 MiB in four 1 MiB buffers, read back in one */
static void test_large_request(void **state)
{
	struct bt *t = *state;
	uint8_t *data = g(t, DATA), *back = g(t, DATA2);

	assert_true(up(t, FEAT_LO));
	pattern(data, 4u << 20, 7);
	struct seg w[4];
	for (unsigned i = 0; i < 4; i++)
		w[i] = (struct seg){ DATA + (i << 20), 1u << 20 };
	assert_int_equal(reqv(t, VIRTIO_BLK_T_OUT, 1000, w, 4, false), VIRTIO_BLK_S_OK);
	memset(back, 0, 4u << 20);
	assert_int_equal(req(t, VIRTIO_BLK_T_IN, 1000, DATA2, 4u << 20, true), VIRTIO_BLK_S_OK);
	assert_int_equal(last_used_len(t), (4u << 20) + 1);
	assert_memory_equal(back, data, 4u << 20);
	/* the last sectors of the disk */
	assert_int_equal(req(t, VIRTIO_BLK_T_IN, CAPACITY - 8, DATA2, 4096, true), VIRTIO_BLK_S_OK);
}

static void test_get_id(void **state)
{
	struct bt *t = *state;
	uint8_t *id = g(t, DATA);
	char err[256];

	assert_true(up(t, FEAT_LO));
	memset(id, 0xee, 32);
	assert_int_equal(req(t, VIRTIO_BLK_T_GET_ID, 0, DATA, 20, true), VIRTIO_BLK_S_OK);
	assert_int_equal(last_used_len(t), 21);
	assert_memory_equal(id, "vmk-disk-0\0\0\0\0\0\0\0\0\0\0", 20);
	assert_int_equal(id[20], 0xee);
	memset(id, 0xee, 32);
	assert_int_equal(req(t, VIRTIO_BLK_T_GET_ID, 0, DATA, 4, true), VIRTIO_BLK_S_OK);
	assert_int_equal(last_used_len(t), 5);
	assert_memory_equal(id, "vmk-\xee", 5);
	/* a serial of more than 20 bytes is cut, not terminated */
	struct vmm_device *d2;
	assert_int_equal(vmm_virtio_blk_create(&d2, &t->drv.bus, 0xd0000200, 5, t->img, false,
	                                       "0123456789abcdefghijKLMNOP", err, sizeof(err)),
	                 0);
	t->drv.d->ops->destroy(t->drv.d);
	t->drv.d = d2;
	assert_true(up(t, FEAT_LO));
	memset(id, 0xee, 32);
	assert_int_equal(req(t, VIRTIO_BLK_T_GET_ID, 0, DATA, 32, true), VIRTIO_BLK_S_OK);
	assert_int_equal(last_used_len(t), 21);
	assert_memory_equal(id, "0123456789abcdefghij\xee", 21);
}

/* segments {sector, num_sectors | flags << 32} */
static int dwz(struct bt *t, uint32_t type, const uint64_t (*segs)[2], unsigned n)
{
	uint8_t *p = g(t, DATA2);
	for (unsigned i = 0; i < n; i++) {
		uint32_t num = (uint32_t)segs[i][1], flags = (uint32_t)(segs[i][1] >> 32);
		memcpy(p + 16 * i, &segs[i][0], 8);
		memcpy(p + 16 * i + 8, &num, 4);
		memcpy(p + 16 * i + 12, &flags, 4);
	}
	return req(t, type, 0, DATA2, 16 * n, false);
}

#define UNMAP (1ull << 32)

static bool zeroes(struct bt *t, uint64_t sector, unsigned count)
{
	uint8_t buf[512];
	for (unsigned i = 0; i < count; i++) {
		assert_int_equal(pread(t->fd, buf, 512, (off_t)(sector + i) * 512), 512);
		for (unsigned k = 0; k < 512; k++)
			if (buf[k])
				return false;
	}
	return true;
}

static void test_discard_write_zeroes(void **state)
{
	struct bt *t = *state;
	struct stat st0, st1;

	assert_true(up(t, FEAT_LO));
	/* 1 MiB of data at sector 0 */
	memset(g(t, DATA), 0x5a, 1u << 20);
	assert_int_equal(req(t, VIRTIO_BLK_T_OUT, 0, DATA, 1u << 20, false), VIRTIO_BLK_S_OK);
	assert_int_equal(req(t, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false), VIRTIO_BLK_S_OK);
	assert_int_equal(fstat(t->fd, &st0), 0);
	assert_int_equal(lseek(t->fd, 0, SEEK_DATA), 0);

	/* discard the first 512 KiB: a hole, reading as zeroes */
	uint64_t d1[1][2] = { { 0, 1024 } };
	assert_int_equal(dwz(t, VIRTIO_BLK_T_DISCARD, d1, 1), VIRTIO_BLK_S_OK);
	assert_int_equal(fstat(t->fd, &st1), 0);
	assert_true(st1.st_blocks < st0.st_blocks);
	assert_int_equal(lseek(t->fd, 0, SEEK_HOLE), 0);
	assert_int_equal(lseek(t->fd, 0, SEEK_DATA), 512 * 1024);
	assert_true(zeroes(t, 0, 8));
	assert_false(zeroes(t, 1024, 1));
	assert_int_equal(req(t, VIRTIO_BLK_T_IN, 1000, DATA2, 512, true), VIRTIO_BLK_S_OK);
	assert_int_equal(((uint8_t *)g(t, DATA2))[100], 0);

	/* write zeroes: keeps the rest; with unmap it punches a hole */
	uint64_t z1[1][2] = { { 1024, 8 } };
	assert_int_equal(dwz(t, VIRTIO_BLK_T_WRITE_ZEROES, z1, 1), VIRTIO_BLK_S_OK);
	assert_true(zeroes(t, 1024, 8));
	assert_false(zeroes(t, 1032, 1));
	uint64_t z2[1][2] = { { 1040, 16 | UNMAP } };
	assert_int_equal(dwz(t, VIRTIO_BLK_T_WRITE_ZEROES, z2, 1), VIRTIO_BLK_S_OK);
	assert_true(zeroes(t, 1040, 16));
	assert_int_equal(lseek(t->fd, 1040 * 512, SEEK_HOLE), 1040 * 512);
	assert_false(zeroes(t, 1056, 1));

	/* two segments */
	uint64_t two[2][2] = { { 1100, 8 }, { 1200, 8 } };
	assert_int_equal(dwz(t, VIRTIO_BLK_T_DISCARD, two, 2), VIRTIO_BLK_S_OK);
	assert_true(zeroes(t, 1100, 8) && zeroes(t, 1200, 8));
	assert_false(zeroes(t, 1108, 1));

	/* refused as a whole: nothing of it is done */
	uint64_t oor[2][2] = { { 1300, 8 }, { CAPACITY - 4, 8 } };
	assert_int_equal(dwz(t, VIRTIO_BLK_T_DISCARD, oor, 2), VIRTIO_BLK_S_IOERR);
	assert_int_equal(dwz(t, VIRTIO_BLK_T_WRITE_ZEROES, oor, 2), VIRTIO_BLK_S_IOERR);
	assert_false(zeroes(t, 1300, 1));
	uint64_t unmap[2][2] = { { 1300, 8 }, { 1400, 8 | UNMAP } };
	assert_int_equal(dwz(t, VIRTIO_BLK_T_DISCARD, unmap, 2), VIRTIO_BLK_S_UNSUPP);
	uint64_t flags[1][2] = { { 1300, 8 | (2ull << 32) } };
	assert_int_equal(dwz(t, VIRTIO_BLK_T_WRITE_ZEROES, flags, 1), VIRTIO_BLK_S_UNSUPP);
	uint64_t big[1][2] = { { 0, VIRTIO_BLK_MAX_DWZ_SECTORS + 1 } };
	assert_int_equal(dwz(t, VIRTIO_BLK_T_DISCARD, big, 1), VIRTIO_BLK_S_IOERR);
	uint64_t many[VIRTIO_BLK_MAX_DWZ_SEG + 1][2];
	for (unsigned i = 0; i <= VIRTIO_BLK_MAX_DWZ_SEG; i++) {
		many[i][0] = 1300;
		many[i][1] = 1;
	}
	assert_int_equal(dwz(t, VIRTIO_BLK_T_DISCARD, many, VIRTIO_BLK_MAX_DWZ_SEG + 1),
	                 VIRTIO_BLK_S_IOERR);
	assert_int_equal(req(t, VIRTIO_BLK_T_DISCARD, 0, DATA2, 15, false), VIRTIO_BLK_S_IOERR);
	assert_int_equal(req(t, VIRTIO_BLK_T_DISCARD, 0, 0, 0, false), VIRTIO_BLK_S_IOERR);
	assert_false(zeroes(t, 1300, 1));
	/* the limit itself is fine */
	assert_int_equal(dwz(t, VIRTIO_BLK_T_DISCARD, many, VIRTIO_BLK_MAX_DWZ_SEG),
	                 VIRTIO_BLK_S_OK);
	assert_true(zeroes(t, 1300, 1));

	/* a driver that did not negotiate them */
	assert_true(up(t, (uint32_t)VIRTIO_BLK_F_FLUSH));
	assert_int_equal(dwz(t, VIRTIO_BLK_T_DISCARD, d1, 1), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(dwz(t, VIRTIO_BLK_T_WRITE_ZEROES, z1, 1), VIRTIO_BLK_S_UNSUPP);
}

static void test_errors(void **state)
{
	struct bt *t = *state;
	uint8_t last[512];

	assert_true(up(t, FEAT_LO));
	memset(g(t, DATA), 0x33, 4096);
	/* beyond the end, partly or far (sector * 512 overflows) */
	assert_int_equal(req(t, VIRTIO_BLK_T_OUT, CAPACITY - 1, DATA, 1024, false),
	                 VIRTIO_BLK_S_IOERR);
	assert_int_equal(last_used_len(t), 1);
	assert_int_equal(pread(t->fd, last, 512, IMG_SIZE - 512), 512);
	assert_int_equal(last[0], 0); /* nothing written */
	assert_int_equal(req(t, VIRTIO_BLK_T_IN, CAPACITY, DATA, 512, true), VIRTIO_BLK_S_IOERR);
	assert_int_equal(last_used_len(t), 1);
	assert_int_equal(req(t, VIRTIO_BLK_T_IN, 1ull << 62, DATA, 512, true), VIRTIO_BLK_S_IOERR);
	assert_int_equal(req(t, VIRTIO_BLK_T_OUT, ~0ull, DATA, 512, false), VIRTIO_BLK_S_IOERR);
	/* not whole sectors */
	assert_int_equal(req(t, VIRTIO_BLK_T_IN, 0, DATA, 100, true), VIRTIO_BLK_S_IOERR);
	assert_int_equal(req(t, VIRTIO_BLK_T_OUT, 0, DATA, 513, false), VIRTIO_BLK_S_IOERR);
	/* unknown types */
	assert_int_equal(req(t, 99, 0, DATA, 512, true), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(req(t, 10 /* GET_LIFETIME */, 0, DATA, 16, true), VIRTIO_BLK_S_UNSUPP);
	/* a header of 8 bytes */
	uint64_t a[2] = { HDR, STAT };
	uint32_t l[2] = { 8, 1 };
	uint16_t f[2] = { 0, VIRTQ_DESC_F_WRITE };
	*(uint8_t *)g(t, STAT) = 0xee;
	tdrv_post(&t->drv, 0, a, l, f, 2);
	kick(t, 1);
	assert_int_equal(*(uint8_t *)g(t, STAT), VIRTIO_BLK_S_IOERR);
	/* no status byte: completed without an answer, nothing else happens */
	uint32_t h[4] = { VIRTIO_BLK_T_OUT, 0, 0, 0 };
	memcpy(g(t, HDR), h, 16);
	a[1] = DATA;
	l[0] = 16;
	l[1] = 512;
	f[1] = 0;
	tdrv_post(&t->drv, 0, a, l, f, 2);
	kick(t, 1);
	assert_int_equal(last_used_len(t), 0);
	assert_int_equal(pread(t->fd, last, 512, 0), 512);
	assert_int_equal(last[0], 0);
	assert_false(rd(t, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET);

	struct vmm_virtio_blk_stats st;
	vmm_virtio_blk_get_stats(t->drv.d, &st);
	assert_true(st.errors == 8 && st.unsupp == 2 && st.reads == 0 && st.writes == 0);
	/* and it goes on working */
	assert_int_equal(req(t, VIRTIO_BLK_T_OUT, CAPACITY - 8, DATA, 4096, false),
	                 VIRTIO_BLK_S_OK);
}

static void test_readonly(void **state)
{
	struct bt *t = *state;
	struct vmm_device *ro;
	char err[256];
	uint8_t b[512];

	assert_int_equal(pwrite(t->fd, "original", 8, 0), 8);
	assert_int_equal(vmm_virtio_blk_create(&ro, &t->drv.bus, 0xd0000000, 5, t->img, true, "ro",
	                                       err, sizeof(err)),
	                 0);
	t->drv.d->ops->destroy(t->drv.d);
	t->drv.d = ro;
	wr(t, VIRTIO_MMIO_DEVICE_FEAT_SEL, 0);
	uint32_t lo = rd(t, VIRTIO_MMIO_DEVICE_FEATURES);
	assert_int_equal(lo, (uint32_t)(VIRTIO_BLK_F_SEG_MAX | VIRTIO_BLK_F_FLUSH |
	                                VIRTIO_BLK_F_RO | VIRTIO_RING_F_INDIRECT_DESC));
	assert_false(up(t, FEAT_LO)); /* discard is not offered */
	assert_true(up(t, lo));
	assert_int_equal(cfg32(t, VIRTIO_BLK_CFG_MAX_DISCARD_SECT), 0);
	memset(g(t, DATA), 0x44, 512);
	assert_int_equal(req(t, VIRTIO_BLK_T_OUT, 0, DATA, 512, false), VIRTIO_BLK_S_IOERR);
	assert_int_equal(req(t, VIRTIO_BLK_T_DISCARD, 0, DATA, 16, false), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(req(t, VIRTIO_BLK_T_WRITE_ZEROES, 0, DATA, 16, false),
	                 VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(req(t, VIRTIO_BLK_T_IN, 0, DATA2, 512, true), VIRTIO_BLK_S_OK);
	assert_memory_equal(g(t, DATA2), "original", 8);
	assert_int_equal(req(t, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false), VIRTIO_BLK_S_OK);
	assert_int_equal(pread(t->fd, b, 512, 0), 512);
	assert_memory_equal(b, "original", 8);
}

/* A few malformed rings through the disk (test_virtqueue has them all):
 * NEEDS_RESET, a configuration interrupt, no I/O. */
static void test_malformed_rings(void **state)
{
	struct bt *t = *state;
	struct tdrv *d = &t->drv;
	uint8_t b[512];
	unsigned tab = (unsigned)(TABLE - TQ_DESC(0)) / 16;

	for (int k = 0; k < 6; k++) {
		assert_true(up(t, FEAT_LO));
		uint32_t h[4] = { VIRTIO_BLK_T_OUT, 0, 0, 0 };
		memcpy(g(t, HDR), h, 16);
		memset(g(t, DATA), 0x99, 512);
		tdrv_desc(d, 0, 0, HDR, 16, 1, 1);
		tdrv_desc(d, 0, 1, DATA, 512, 1, 2);
		tdrv_desc(d, 0, 2, STAT, 1, 2, 0);
		switch (k) {
		case 0: /* data outside RAM */
			tdrv_desc(d, 0, 1, RAM - 256, 512, 1, 2);
			break;
		case 1: /* address + length wraps */
			tdrv_desc(d, 0, 1, ~0ull - 255, 512, 1, 2);
			break;
		case 2: /* a loop */
			tdrv_desc(d, 0, 1, DATA, 512, 1, 0);
			break;
		case 3: /* next out of range */
			tdrv_desc(d, 0, 2, STAT, 1, 3, QSZ);
			break;
		case 4: /* an indirect table outside RAM */
			tdrv_desc(d, 0, 0, RAM - 16, 48, VIRTQ_DESC_F_INDIRECT, 0);
			break;
		case 5: /* an indirect chain longer than the queue */
			for (unsigned i = 0; i < QSZ + 1; i++)
				tdrv_desc(d, 0, tab + i, HDR, 16, 1, (uint16_t)(i + 1));
			tdrv_desc(d, 0, tab + QSZ, STAT, 1, 2, 0);
			tdrv_desc(d, 0, 0, TABLE, (QSZ + 1) * 16, VIRTQ_DESC_F_INDIRECT, 0);
			break;
		}
		uint16_t *avail = g(t, TQ_AVAIL(0));
		avail[2] = 0;
		avail[1] = 1;
		wr(t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
		assert_true(rd(t, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET);
		assert_true(rd(t, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_MMIO_INT_CONFIG);
		assert_int_equal(t->level, 1);
		assert_int_equal(tdrv_used_idx(d, 0), 0);
	}
	assert_int_equal(pread(t->fd, b, 512, 0), 512);
	assert_int_equal(b[0], 0);
	assert_true(up(t, FEAT_LO));
	assert_int_equal(t->level, 0);
	assert_int_equal(req(t, VIRTIO_BLK_T_OUT, 0, DATA, 512, false), VIRTIO_BLK_S_OK);
}

static void test_reset(void **state)
{
	struct bt *t = *state;
	uint8_t b[512];

	assert_true(up(t, FEAT_LO));
	assert_int_equal(req(t, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false), VIRTIO_BLK_S_OK);
	wr(t, VIRTIO_MMIO_STATUS, 0);
	assert_int_equal(rd(t, VIRTIO_MMIO_STATUS), 0);
	assert_int_equal(rd(t, VIRTIO_MMIO_QUEUE_READY), 0);
	assert_int_equal(t->level, 0);
	/* the old ring is dead: a request on it is not served */
	memset(g(t, DATA), 0x12, 512);
	post(t, VIRTIO_BLK_T_OUT, 0, &(struct seg){ DATA, 512 }, 1, false, HDR, STAT);
	wr(t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(tdrv_used_idx(&t->drv, 0), 1);
	assert_int_equal(pread(t->fd, b, 512, 0), 512);
	assert_int_equal(b[0], 0);
}

static int restore_bytes(struct vmm_device *d, const uint8_t *p, size_t n)
{
	struct rbuf r;

	rbuf_init(&r, p, n);
	return d->ops->restore(d, &r);
}

#define S_Q0_DESC 35 /* offset of queue 0's descriptor address in a saved state */

static void test_save_restore(void **state)
{
	struct bt *t = *state;
	struct vmm_device *d2;
	struct sbuf s;
	char err[256];
	uint8_t b[512];

	assert_true(up(t, FEAT_LO));
	memset(g(t, DATA), 0x5a, 512);
	assert_int_equal(req(t, VIRTIO_BLK_T_OUT, 100, DATA, 512, false), VIRTIO_BLK_S_OK);
	assert_int_equal(req(t, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false), VIRTIO_BLK_S_OK);
	/* two requests posted, not yet notified, when the state is saved */
	memset(g(t, DATA + 4096), 0x6b, 512);
	post(t, VIRTIO_BLK_T_OUT, 200, &(struct seg){ DATA + 4096, 512 }, 1, false, HDR, STAT);
	memset(g(t, DATA2), 0, 512);
	post(t, VIRTIO_BLK_T_IN, 100, &(struct seg){ DATA2, 512 }, 1, true, HDR2, STAT2);
	sbuf_init(&s);
	assert_int_equal(t->drv.d->ops->save(t->drv.d, &s), 0);

	/* a fresh device on the same image carries on with the same ring */
	assert_int_equal(vmm_virtio_blk_create(&d2, &t->drv.bus, 0xd0000000, 5, t->img, false,
	                                       "vmk-disk-0", err, sizeof(err)),
	                 0);
	assert_int_equal(restore_bytes(d2, s.data, s.len), 0);
	t->drv.d->ops->destroy(t->drv.d);
	t->drv.d = d2;
	assert_int_equal(t->level, 1); /* the interrupt of the flush is still pending */
	kick(t, 2);
	assert_int_equal(*(uint8_t *)g(t, STAT), VIRTIO_BLK_S_OK);
	assert_int_equal(*(uint8_t *)g(t, STAT2), VIRTIO_BLK_S_OK);
	assert_int_equal(((uint8_t *)g(t, DATA2))[511], 0x5a);
	assert_int_equal(pread(t->fd, b, 512, 200 * 512), 512);
	assert_int_equal(b[0], 0x6b);
	assert_int_equal(req(t, VIRTIO_BLK_T_IN, 200, DATA2, 512, true), VIRTIO_BLK_S_OK);
	assert_int_equal(((uint8_t *)g(t, DATA2))[0], 0x6b);
	struct vmm_virtio_blk_stats st;
	vmm_virtio_blk_get_stats(d2, &st);
	assert_true(st.writes == 2 && st.reads == 2 && st.flushes == 1); /* counters moved too */

	/* every truncation is refused, so is a byte too many */
	for (size_t len = 0; len < s.len; len++)
		assert_int_equal(restore_bytes(d2, s.data, len), -EBADMSG);
	uint8_t *p = malloc(s.len + 1);
	memcpy(p, s.data, s.len);
	p[s.len] = 0;
	assert_int_equal(restore_bytes(d2, p, s.len + 1), -EBADMSG);
	/* a queue outside guest memory */
	uint64_t far = 1ull << 40;
	memcpy(p + S_Q0_DESC, &far, 8);
	assert_int_equal(restore_bytes(d2, p, s.len), -EBADMSG);
	free(p);
	/* a disk of another size */
	char img2[64];
	int fd2 = make_image(img2, sizeof(img2), 1 << 20);
	struct vmm_device *small;
	assert_true(fd2 >= 0);
	assert_int_equal(vmm_virtio_blk_create(&small, &t->drv.bus, 0xd0000000, 5, img2, false, "x",
	                                       err, sizeof(err)),
	                 0);
	assert_int_equal(restore_bytes(small, s.data, s.len), -EBADMSG);
	small->ops->destroy(small);
	close(fd2);
	unlink(img2);
	/* a network card */
	int sv[2];
	struct vmm_device *nic;
	uint8_t mac[6] = { 2, 0, 0, 0, 0, 1 };
	assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(vmm_virtio_net_create(&nic, &t->drv.bus, 0xd0000200, 6, sv[0], mac), 0);
	assert_string_not_equal(nic->ops->name, d2->ops->name);
	assert_int_equal(restore_bytes(nic, s.data, s.len), -EBADMSG);
	nic->ops->destroy(nic);
	close(sv[1]);
	/* none of that changed the device */
	assert_int_equal(req(t, VIRTIO_BLK_T_IN, 100, DATA2, 512, true), VIRTIO_BLK_S_OK);
	assert_int_equal(((uint8_t *)g(t, DATA2))[0], 0x5a);
	sbuf_free(&s);
}

static void test_bad_image(void **state)
{
	struct bt *t = *state;
	struct vmm_device *d;
	char err[256], odd[64];

	assert_int_equal(vmm_virtio_blk_create(&d, &t->drv.bus, 0xd0000200, 6, "/nonexistent.img",
	                                       false, "x", err, sizeof(err)),
	                 -ENOENT);
	assert_non_null(strstr(err, "/nonexistent.img"));
	assert_int_equal(vmm_virtio_blk_create(&d, &t->drv.bus, 0xd0000200, 6, "/tmp", false, "x",
	                                       err, sizeof(err)),
	                 -EISDIR);
	int fd = make_image(odd, sizeof(odd), 1000);
	assert_true(fd >= 0);
	assert_int_equal(vmm_virtio_blk_create(&d, &t->drv.bus, 0xd0000200, 6, odd, true, "x", err,
	                                       sizeof(err)),
	                 -EINVAL);
	assert_non_null(strstr(err, odd));
	close(fd);
	unlink(odd);
}

/* The sections of a stream in s, each checked, then applied to vm. */
static int apply_all(struct vmm_vm *vm, struct sbuf *s, unsigned *n)
{
	struct rbuf r;
	struct vmm_stream in;
	struct sbuf p;
	uint32_t type, inst;
	char err[256];
	int ret = 0;

	*n = 0;
	sbuf_init(&p);
	rbuf_init(&r, s->data, s->len);
	vmm_stream_rbuf(&in, &r);
	while (ret == 0 && r.off < r.len) {
		if ((ret = vmm_state_read_section(&in, &type, &inst, &p, err, sizeof(err))) < 0)
			break;
		assert_int_equal(type, SEC_DISK);
		if ((ret = vmm_disk_check(vm, inst, p.data, p.len, err, sizeof(err))) == 0)
			ret = vmm_disk_load(vm, inst, p.data, p.len, err, sizeof(err));
		++*n;
	}
	sbuf_free(&p);
	return ret;
}

static void test_disks_log(void **state)
{
	struct bt *t = *state;
	struct vmm_vm src = { 0 }, dst = { 0 };
	struct vmm_disks_log log;
	struct vmm_device *d2;
	struct vmm_stream out;
	struct sbuf s;
	char err[256], img2[64];
	uint8_t b[512];
	unsigned n;

	assert_true(up(t, FEAT_LO));
	src.devs[0] = t->drv.d;
	src.ndevs = 1;
	int fd2 = make_image(img2, sizeof(img2), IMG_SIZE);
	assert_true(fd2 >= 0);
	assert_int_equal(vmm_virtio_blk_create(&d2, &t->drv.bus, 0xd0000200, 6, img2, false, "y",
	                                       err, sizeof(err)),
	                 0);
	dst.devs[0] = d2;
	dst.ndevs = 1;
	assert_int_equal(vmm_disks_log_start(&src, &log, true), 0);
	assert_int_equal(log.n, 1);
	/* a guest write lands in one 64 KiB block: its whole block is sent */
	pattern(g(t, DATA), 512, 7);
	assert_int_equal(req(t, VIRTIO_BLK_T_OUT, 300, DATA, 512, false), VIRTIO_BLK_S_OK);
	assert_int_equal(vmm_disks_log_harvest(&src, &log), VMM_BLK_DIRTY_BLOCK);
	sbuf_init(&s);
	vmm_stream_sbuf(&out, &s);
	assert_int_equal(vmm_disks_log_send(&src, &log, &out, NULL), 0);
	assert_int_equal(apply_all(&dst, &s, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(pread(fd2, b, 512, 300 * 512), 512);
	assert_memory_equal(b, g(t, DATA), 512);
	/* sent: nothing is left until the guest writes again */
	s.len = 0;
	assert_int_equal(vmm_disks_log_harvest(&src, &log), 0);
	assert_int_equal(vmm_disks_log_send(&src, &log, &out, NULL), 0);
	assert_int_equal(s.len, 0);
	/* what a check refuses, load refuses too, and nothing is written */
	pattern(g(t, DATA), 512, 9);
	assert_int_equal(req(t, VIRTIO_BLK_T_OUT, 0, DATA, 512, false), VIRTIO_BLK_S_OK);
	vmm_disks_log_harvest(&src, &log);
	assert_int_equal(vmm_disks_log_send(&src, &log, &out, NULL), 0);
	struct sbuf bad;
	sbuf_init(&bad);
	sbuf_u64(&bad, IMG_SIZE - 512); /* 1 KiB at 512 bytes before the end */
	sbuf_u32(&bad, 1024);
	sbuf_u8(&bad, 0);
	uint8_t zeros[1024] = { 0 };
	sbuf_put(&bad, zeros, sizeof(zeros));
	assert_int_equal(vmm_disk_check(&dst, 0, bad.data, bad.len, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "beyond"));
	assert_int_equal(vmm_disk_load(&dst, 0, bad.data, bad.len, err, sizeof(err)), -EBADMSG);
	assert_int_equal(vmm_disk_check(&dst, 1, bad.data, bad.len, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "not a disk"));
	assert_int_equal(vmm_disk_check(&dst, 0, bad.data, 10, err, sizeof(err)), -EBADMSG);
	sbuf_free(&bad);
	assert_int_equal(apply_all(&dst, &s, &n), 0);
	assert_int_equal(pread(fd2, b, 512, 0), 512);
	assert_memory_equal(b, g(t, DATA), 512);
	/* write-zeroes and discards change what the image reads: logged too */
	uint64_t z[1][2] = { { 4096, 8 } }, dsc[1][2] = { { 8192, 8 } };
	assert_int_equal(dwz(t, VIRTIO_BLK_T_WRITE_ZEROES, z, 1), VIRTIO_BLK_S_OK);
	assert_int_equal(dwz(t, VIRTIO_BLK_T_DISCARD, dsc, 1), VIRTIO_BLK_S_OK);
	assert_int_equal(vmm_disks_log_harvest(&src, &log), 2 * VMM_BLK_DIRTY_BLOCK);
	assert_int_equal(vmm_disks_log_send(&src, &log, &out, NULL), 0);
	vmm_disks_log_stop(&src, &log);
	/* stopped: writes are no longer logged */
	assert_int_equal(req(t, VIRTIO_BLK_T_OUT, 0, DATA, 512, false), VIRTIO_BLK_S_OK);
	assert_int_equal(vmm_disks_log_start(&src, &log, true), 0);
	assert_int_equal(vmm_disks_log_harvest(&src, &log), 0);
	vmm_disks_log_stop(&src, &log);
	sbuf_free(&s);
	d2->ops->destroy(d2);
	close(fd2);
	unlink(img2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_negotiation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_large_request, setup, teardown),
		cmocka_unit_test_setup_teardown(test_get_id, setup, teardown),
		cmocka_unit_test_setup_teardown(test_discard_write_zeroes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readonly, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_rings, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_save_restore, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_image, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disks_log, setup, teardown),
	};
	log_set_level(LOG_ERROR); /* the guest-error warnings are expected */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
