/* Split virtqueues (vmm/virtqueue.c) on their own, and the virtio-mmio
 * transport (vmm/virtio_mmio.c) over a small "echo" backend defined here:
 * registers, feature negotiation, queue setup, interrupts, malformed rings
 * (DEVICE_NEEDS_RESET, never a crash), reset, save/restore. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "log.h"
#include "tests/virtio_driver.h"
#include "vmm/virtio_mmio.h"
#include "vmm/virtqueue.h"

#define RAM   (16ull << 20)
#define DESC  0x10000ull /* rings of the bare queue tests */
#define AVAIL 0x11000ull
#define USED  0x12000ull
#define TABLE 0x20000ull /* an indirect table */
#define BUF   0x100000ull

/* ---- bare virtqueue ---- */

struct bare {
	struct vmm_mem mem;
	struct vmm_vq q;
	struct vmm_vq_chain c;
	uint16_t avail_idx;
};

static int bare_setup(void **state)
{
	struct bare *b = calloc(1, sizeof(*b));

	if (!b || vmm_mem_init(&b->mem, RAM, false) < 0)
		return -1;
	b->q = (struct vmm_vq){ .desc = DESC, .avail = AVAIL, .used = USED, .size = 16 };
	b->q.ready = vmm_vq_check(&b->q, &b->mem) == 0;
	*state = b;
	return 0;
}

static int bare_teardown(void **state)
{
	struct bare *b = *state;

	vmm_mem_free(&b->mem);
	free(b);
	return 0;
}

static void *g(struct bare *b, uint64_t gpa)
{
	return vmm_gpa(&b->mem, gpa, 1);
}

static void put_desc(struct bare *b, uint64_t table, unsigned i, uint64_t addr, uint32_t len,
                     uint16_t flags, uint16_t next)
{
	uint8_t *d = vmm_gpa(&b->mem, table + 16ull * i, 16);
	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next, 2);
}

/* makes descriptor `head` available */
static void offer(struct bare *b, uint16_t head)
{
	uint16_t *avail = g(b, AVAIL);
	avail[2 + b->avail_idx % b->q.size] = head;
	avail[1] = ++b->avail_idx;
}

static int pop(struct bare *b, const char **why)
{
	*why = NULL;
	return vmm_vq_pop(&b->q, &b->mem, &b->c, why);
}

static void test_vq_check(void **state)
{
	struct bare *b = *state;
	struct vmm_vq q = b->q;

	assert_int_equal(vmm_vq_check(&q, &b->mem), 0);
	q.size = 256;
	assert_int_equal(vmm_vq_check(&q, &b->mem), 0);
	uint16_t bad_sizes[] = { 0, 3, 12, 512, 1024 };
	for (unsigned i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++) {
		q = b->q;
		q.size = bad_sizes[i];
		assert_int_equal(vmm_vq_check(&q, &b->mem), -EINVAL);
	}
	q = b->q;
	q.desc += 8; /* descriptors 16-byte aligned */
	assert_int_equal(vmm_vq_check(&q, &b->mem), -EINVAL);
	q = b->q;
	q.avail += 1;
	assert_int_equal(vmm_vq_check(&q, &b->mem), -EINVAL);
	q = b->q;
	q.used += 2;
	assert_int_equal(vmm_vq_check(&q, &b->mem), -EINVAL);
	q = b->q;
	q.desc = RAM - 16 * 8; /* 8 of 16 descriptors inside RAM */
	assert_int_equal(vmm_vq_check(&q, &b->mem), -EINVAL);
	q = b->q;
	q.used = RAM - 4;
	assert_int_equal(vmm_vq_check(&q, &b->mem), -EINVAL);
	q = b->q;
	q.avail = 0xfffffffffffffff0ull;
	assert_int_equal(vmm_vq_check(&q, &b->mem), -EINVAL);
}

static void test_vq_pop_push(void **state)
{
	struct bare *b = *state;
	const char *why;
	uint8_t buf[300];

	/* header (readable), zero-length, payload (readable), reply (writable) */
	put_desc(b, DESC, 3, BUF, 16, VIRTQ_DESC_F_NEXT, 7);
	put_desc(b, DESC, 7, 0xdeadbeef0000ull, 0, VIRTQ_DESC_F_NEXT, 2);
	put_desc(b, DESC, 2, BUF + 0x1000, 100, VIRTQ_DESC_F_NEXT, 9);
	put_desc(b, DESC, 9, BUF + 0x2000, 200, VIRTQ_DESC_F_WRITE, 0);
	assert_int_equal(pop(b, &why), 0); /* nothing available yet */
	offer(b, 3);
	for (int i = 0; i < 16; i++)
		((uint8_t *)g(b, BUF))[i] = (uint8_t)i;
	memset(g(b, BUF + 0x1000), 0xab, 100);
	assert_int_equal(pop(b, &why), 1);
	assert_int_equal(b->c.head, 3);
	assert_int_equal(b->c.nr, 2);
	assert_int_equal(b->c.nw, 1);
	assert_int_equal(b->c.rlen, 116);
	assert_int_equal(b->c.wlen, 200);
	/* reads across buffers, short at the end */
	assert_int_equal(vmm_vq_read(&b->c, 10, buf, 10), 10);
	assert_int_equal(buf[5], 15);
	assert_int_equal(buf[6], 0xab);
	assert_int_equal(vmm_vq_read(&b->c, 100, buf, 100), 16);
	assert_int_equal(vmm_vq_write(&b->c, 190, "0123456789abcdef", 16), 10);
	assert_memory_equal(g(b, BUF + 0x2000 + 190), "0123456789", 10);
	assert_int_equal(pop(b, &why), 0);
	assert_int_equal(vmm_vq_push(&b->q, &b->mem, b->c.head, 42), 0);
	uint16_t *used = g(b, USED);
	assert_int_equal(used[1], 1);
	uint32_t *elem = g(b, USED + 4);
	assert_int_equal(elem[0], 3);
	assert_int_equal(elem[1], 42);

	/* indices wrap at 2^16 */
	b->q.last_avail = b->q.used_idx = 0xfffe;
	b->avail_idx = 0xfffe;
	put_desc(b, DESC, 0, BUF, 8, 0, 0);
	for (int i = 0; i < 3; i++)
		offer(b, 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(pop(b, &why), 1);
		assert_int_equal(vmm_vq_push(&b->q, &b->mem, 0, 0), 0);
	}
	assert_int_equal(pop(b, &why), 0);
	assert_int_equal(used[1], 1);
	assert_int_equal(b->q.last_avail, 1);

	/* unpop gives the chain back */
	offer(b, 0);
	assert_int_equal(pop(b, &why), 1);
	vmm_vq_unpop(&b->q);
	assert_int_equal(pop(b, &why), 1);
	assert_int_equal(pop(b, &why), 0);
}

static void test_vq_interrupt_suppression(void **state)
{
	struct bare *b = *state;
	uint16_t *avail = g(b, AVAIL);

	assert_true(vmm_vq_want_irq(&b->q, &b->mem));
	avail[0] = VIRTQ_AVAIL_F_NO_INTERRUPT;
	assert_false(vmm_vq_want_irq(&b->q, &b->mem));
	avail[0] = 0;
	assert_true(vmm_vq_want_irq(&b->q, &b->mem));
}

static void test_vq_indirect(void **state)
{
	struct bare *b = *state;
	const char *why;

	/* a table: header, data (readable), status (writable) */
	put_desc(b, TABLE, 0, BUF, 16, VIRTQ_DESC_F_NEXT, 2);
	put_desc(b, TABLE, 2, BUF + 0x100, 512, VIRTQ_DESC_F_NEXT, 1);
	put_desc(b, TABLE, 1, BUF + 0x1000, 1, VIRTQ_DESC_F_WRITE, 0);
	put_desc(b, DESC, 5, TABLE, 3 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	offer(b, 5);
	/* not negotiated */
	assert_int_equal(pop(b, &why), -EINVAL);
	assert_non_null(strstr(why, "not negotiated"));
	b->q.indirect = true;
	assert_int_equal(pop(b, &why), 1);
	assert_int_equal(b->c.head, 5);
	assert_int_equal(b->c.nr, 2);
	assert_int_equal(b->c.nw, 1);
	assert_int_equal(b->c.rlen, 528);
	assert_int_equal(b->c.wlen, 1);
	assert_ptr_equal(b->c.iov[2].iov_base, g(b, BUF + 0x1000));

	/* a direct descriptor then the table */
	put_desc(b, DESC, 4, BUF + 0x2000, 16, VIRTQ_DESC_F_NEXT, 5);
	offer(b, 4);
	assert_int_equal(pop(b, &why), 1);
	assert_int_equal(b->c.nr, 3);
	assert_int_equal(b->c.rlen, 544);

	/* a table with more entries than the queue, chained: too long; the
	 * same table with a short chain is fine */
	for (unsigned i = 0; i < 32; i++)
		put_desc(b, TABLE, i, BUF, 8, VIRTQ_DESC_F_NEXT, (uint16_t)(i + 1));
	put_desc(b, TABLE, 31, BUF, 8, 0, 0);
	put_desc(b, DESC, 5, TABLE, 32 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	offer(b, 5);
	assert_int_equal(pop(b, &why), -EINVAL);
	assert_non_null(strstr(why, "longer than the queue"));
	put_desc(b, TABLE, 15, BUF, 8, 0, 0); /* 16 entries: as long as the queue */
	assert_int_equal(pop(b, &why), 1);
	assert_int_equal(b->c.nr, 16);

	struct {
		uint64_t addr;
		uint32_t len;
		uint16_t flags;
		const char *why;
	} bad[] = {
		{ TABLE, 20, VIRTQ_DESC_F_INDIRECT, "multiple of 16" },
		{ TABLE, 0, VIRTQ_DESC_F_INDIRECT, "multiple of 16" },
		{ RAM - 32, 64, VIRTQ_DESC_F_INDIRECT, "indirect table outside" },
		{ 1ull << 40, 16, VIRTQ_DESC_F_INDIRECT, "indirect table outside" },
		{ TABLE, 32, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, "with NEXT" },
	};
	offer(b, 5);
	for (unsigned k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		put_desc(b, DESC, 5, bad[k].addr, bad[k].len, bad[k].flags, 6);
		assert_int_equal(pop(b, &why), -EINVAL);
		assert_non_null(strstr(why, bad[k].why));
		assert_int_equal(b->q.last_avail, b->avail_idx - 1); /* nothing taken */
	}
	/* inside the table: nesting, a loop, next out of range, buffer out of RAM */
	put_desc(b, DESC, 5, TABLE, 4 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	put_desc(b, TABLE, 0, BUF, 16, VIRTQ_DESC_F_NEXT, 1);
	put_desc(b, TABLE, 1, TABLE, 32, VIRTQ_DESC_F_INDIRECT, 0);
	assert_int_equal(pop(b, &why), -EINVAL);
	assert_non_null(strstr(why, "inside an indirect table"));
	put_desc(b, TABLE, 1, BUF, 16, VIRTQ_DESC_F_NEXT, 0);
	assert_int_equal(pop(b, &why), -EINVAL);
	assert_non_null(strstr(why, "loop"));
	put_desc(b, TABLE, 1, BUF, 16, VIRTQ_DESC_F_NEXT, 4); /* 4 entries: 0..3 */
	assert_int_equal(pop(b, &why), -EINVAL);
	assert_non_null(strstr(why, "out of range"));
	put_desc(b, TABLE, 1, RAM - 8, 16, 0, 0);
	assert_int_equal(pop(b, &why), -EINVAL);
	assert_non_null(strstr(why, "buffer outside"));
	put_desc(b, TABLE, 1, BUF, 16, 0, 0);
	assert_int_equal(pop(b, &why), 1);
}

static void test_vq_malformed(void **state)
{
	struct bare *b = *state;
	const char *why;
	uint16_t *avail = g(b, AVAIL);

	struct {
		uint64_t addr;
		uint32_t len;
		uint16_t flags, next;
		const char *why;
	} bad[] = {
		{ RAM, 1, 0, 0, "buffer outside" },
		{ RAM - 100, 101, 0, 0, "buffer outside" },
		{ 0xc0000000ull, 16, 0, 0, "buffer outside" },           /* the MMIO hole */
		{ 0xfffffffffffffff0ull, 0x20, 0, 0, "buffer outside" }, /* wraps */
		{ BUF, 16, VIRTQ_DESC_F_NEXT, 16, "out of range" },
		{ BUF, 16, VIRTQ_DESC_F_NEXT, 0xffff, "out of range" },
		{ BUF, 16, VIRTQ_DESC_F_NEXT, 0, "loop" }, /* points at itself */
		{ BUF, 16, VIRTQ_DESC_F_INDIRECT, 0, "not negotiated" },
	};
	offer(b, 0);
	for (unsigned k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		put_desc(b, DESC, 0, bad[k].addr, bad[k].len, bad[k].flags, bad[k].next);
		assert_int_equal(pop(b, &why), -EINVAL);
		assert_non_null(strstr(why, bad[k].why));
	}
	/* a longer loop 0 -> 1 -> 2 -> 0 */
	put_desc(b, DESC, 0, BUF, 16, VIRTQ_DESC_F_NEXT, 1);
	put_desc(b, DESC, 1, BUF, 16, VIRTQ_DESC_F_NEXT, 2);
	put_desc(b, DESC, 2, BUF, 16, VIRTQ_DESC_F_NEXT, 0);
	assert_int_equal(pop(b, &why), -EINVAL);
	/* readable after writable */
	put_desc(b, DESC, 0, BUF, 16, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
	put_desc(b, DESC, 1, BUF, 16, 0, 0);
	assert_int_equal(pop(b, &why), -EINVAL);
	assert_non_null(strstr(why, "readable buffer after"));
	/* a head out of range; an index that ran ahead */
	put_desc(b, DESC, 0, BUF, 16, 0, 0);
	avail[2] = 16;
	assert_int_equal(pop(b, &why), -EINVAL);
	avail[2] = 0;
	avail[1] = 17;
	assert_int_equal(pop(b, &why), -EINVAL);
	assert_non_null(strstr(why, "ahead"));
	avail[1] = 16; /* exactly a ring's worth: fine */
	assert_int_equal(pop(b, &why), 1);

	/* a ring that does not lie in RAM (only a queue that skipped the
	 * ready check can have one): refused, not followed */
	struct vmm_vq q = b->q;
	b->q.avail = RAM - 2;
	assert_int_equal(pop(b, &why), -EINVAL);
	b->q = q;
	b->q.desc = RAM - 16;
	b->q.last_avail = 0;
	avail[1] = 1;
	avail[2] = 3;
	assert_int_equal(pop(b, &why), -EINVAL);
	assert_non_null(strstr(why, "descriptor table outside"));
	b->q = q;
	b->q.used = RAM;
	assert_int_equal(vmm_vq_push(&b->q, &b->mem, 0, 0), -EINVAL);
	b->q = q;
}

/* 256 descriptors of 16 MiB each: a chain of 4 GiB, more than a used
 * length can say. 255 of them are fine. */
static void test_vq_length_overflow(void **state)
{
	struct bare *b = *state;
	const char *why;

	b->q.size = 256;
	assert_int_equal(vmm_vq_check(&b->q, &b->mem), 0);
	for (unsigned i = 0; i < 256; i++)
		put_desc(b, DESC, i, 0, (uint32_t)RAM, VIRTQ_DESC_F_NEXT, (uint16_t)(i + 1));
	put_desc(b, DESC, 255, 0, (uint32_t)RAM, 0, 0);
	offer(b, 0);
	assert_int_equal(pop(b, &why), -EINVAL);
	assert_non_null(strstr(why, "4 GiB"));
	offer(b, 1);
	b->q.last_avail++;
	assert_int_equal(pop(b, &why), 1);
	assert_int_equal(b->c.nr, 255);
	assert_int_equal(b->c.rlen, 255 * (uint32_t)RAM);
}

static uint64_t rnd_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

/* an address near RAM's edges, far beyond it, or anywhere in it */
static uint64_t rnd_addr(void)
{
	switch (rnd() % 6) {
	case 0:
		return RAM - rnd() % 4096;
	case 1:
		return rnd();
	case 2:
		return ~0ull - rnd() % 4096;
	case 3:
		return TABLE + 16 * (rnd() % 8);
	default:
		return rnd() % RAM;
	}
}

/* Random descriptor tables, indirect tables and available rings: whatever
 * vmm_vq_pop() hands out lies inside guest RAM and adds up. */
static void test_vq_random(void **state)
{
	struct bare *b = *state;
	const uint8_t *lo = vmm_gpa(&b->mem, 0, RAM), *hi = lo + RAM;
	unsigned popped = 0, refused = 0;
	const char *why;

	b->q.indirect = true;
	for (int iter = 0; iter < 20000; iter++) {
		uint64_t tables[2] = { DESC, TABLE };
		for (int t = 0; t < 2; t++)
			for (unsigned i = 0; i < 16; i++) {
				uint32_t len =
				        rnd() % 4 ? (uint32_t)(rnd() % 8192) : (uint32_t)rnd();
				if (rnd() % 4 == 0)
					len = 16 * (uint32_t)(rnd() % 12);
				put_desc(b, tables[t], i, rnd_addr(), len, (uint16_t)(rnd() % 8),
				         (uint16_t)(rnd() % 4 ? rnd() % 16 : rnd()));
			}
		uint16_t *avail = g(b, AVAIL);
		for (unsigned i = 0; i < 16; i++)
			avail[2 + i] = (uint16_t)(rnd() % 8 ? rnd() % 16 : rnd());
		avail[1] = (uint16_t)(b->q.last_avail + (rnd() % 8 ? 1 : rnd()));
		int ret = pop(b, &why);
		if (ret < 0) {
			refused++;
			b->q.last_avail = avail[1]; /* skip it, as a reset would */
			continue;
		}
		assert_int_equal(ret, 1);
		popped++;
		assert_true(b->c.nr + b->c.nw <= b->q.size);
		uint64_t r = 0, w = 0;
		for (unsigned i = 0; i < b->c.nr + b->c.nw; i++) {
			const uint8_t *p = b->c.iov[i].iov_base;
			assert_true(b->c.iov[i].iov_len > 0);
			assert_true(p >= lo && p < hi && b->c.iov[i].iov_len <= (size_t)(hi - p));
			*(i < b->c.nr ? &r : &w) += b->c.iov[i].iov_len;
		}
		assert_true(r == b->c.rlen && w == b->c.wlen && r + w <= UINT32_MAX);
		assert_int_equal(vmm_vq_push(&b->q, &b->mem, b->c.head, b->c.wlen), 0);
	}
	assert_true(popped > 1000 && refused > 1000);
}

static void test_iov_slice(void **state)
{
	(void)state;
	uint8_t a[10], c[20];
	struct iovec in[3] = { { a, 10 }, { NULL, 0 }, { c, 20 } }, out[3];

	assert_int_equal(vmm_iov_slice(in, 3, 5, 10, out), 2);
	assert_ptr_equal(out[0].iov_base, a + 5);
	assert_int_equal(out[0].iov_len, 5);
	assert_ptr_equal(out[1].iov_base, c);
	assert_int_equal(out[1].iov_len, 5);
	assert_int_equal(vmm_iov_slice(in, 3, 10, 100, out), 1);
	assert_int_equal(out[0].iov_len, 20);
	assert_int_equal(vmm_iov_slice(in, 3, 30, 1, out), 0);
	assert_int_equal(vmm_iov_slice(in, 3, 0, 0, out), 0);
}

/* ---- the transport over an echo backend ---- */

#define ECHO_ID    42
#define ECHO_FEAT  (1ull << 3)
#define ECHO_MAGIC 0x0badcafeu

struct echo {
	unsigned notifies, resets, destroyed;
	uint32_t scratch;
	uint32_t echoed; /* chains echoed: its saved state */
};

static void echo_config_read(void *be, uint64_t off, uint8_t *data, unsigned size)
{
	struct echo *e = be;
	uint32_t cfg[2] = { ECHO_MAGIC, e->scratch };

	if (off < 8 && size <= 8 - off)
		memcpy(data, (uint8_t *)cfg + off, size);
}

static void echo_config_write(void *be, uint64_t off, const uint8_t *data, unsigned size)
{
	struct echo *e = be;

	if (off == 4 && size == 4)
		memcpy(&e->scratch, data, 4);
}

static uint64_t echo_features(void *be)
{
	(void)be;
	return ECHO_FEAT;
}

/* copies each chain's readable part into its writable part */
static void echo_notify(void *be, struct vmm_virtio *v, unsigned q)
{
	struct echo *e = be;
	struct vmm_vq_chain c;
	uint8_t buf[4096];

	e->notifies++;
	while (vmm_virtio_pop(v, q, &c) == 1) {
		size_t n = vmm_vq_read(&c, 0, buf, sizeof(buf));
		n = vmm_vq_write(&c, 0, buf, n);
		e->echoed++;
		vmm_virtio_push(v, q, &c, (uint32_t)n);
	}
}

static void echo_reset(void *be)
{
	((struct echo *)be)->resets++;
}

static int echo_save(void *be, struct sbuf *out)
{
	sbuf_u32(out, ((struct echo *)be)->echoed);
	return out->err;
}

static int echo_restore(void *be, struct rbuf *in)
{
	uint32_t n = rbuf_u32(in);

	if (rbuf_done(in) < 0)
		return -EBADMSG;
	((struct echo *)be)->echoed = n;
	return 0;
}

static void echo_destroy(void *be)
{
	((struct echo *)be)->destroyed++;
}

static const struct vmm_virtio_backend_ops echo_ops = {
	.name = "virtio-echo",
	.device_id = ECHO_ID,
	.nqueues = 2,
	.features = echo_features,
	.config_read = echo_config_read,
	.config_write = echo_config_write,
	.notify = echo_notify,
	.reset = echo_reset,
	.save = echo_save,
	.restore = echo_restore,
	.destroy = echo_destroy,
};

struct tt {
	struct tdrv t; /* first */
	struct echo e;
	int level;
	unsigned irq_calls;
};

static void irq_set(void *arg, uint32_t gsi, int level)
{
	struct tt *x = arg;

	assert_int_equal(gsi, 9);
	x->level = level;
	x->irq_calls++;
}

static int tt_setup(void **state)
{
	struct tt *x = calloc(1, sizeof(*x));

	if (!x || vmm_mem_init(&x->t.mem, RAM, false) < 0)
		return -1;
	x->t.bus = (struct vmm_bus){ .mem = &x->t.mem, .irq_set = irq_set, .irq_arg = x };
	if (vmm_virtio_create(&x->t.d, &x->t.bus, 0xd0000000, 9, &echo_ops, &x->e) < 0)
		return -1;
	*state = x;
	return 0;
}

static int tt_teardown(void **state)
{
	struct tt *x = *state;

	x->t.d->ops->destroy(x->t.d);
	assert_int_equal(x->e.destroyed, 1);
	vmm_mem_free(&x->t.mem);
	free(x);
	return 0;
}

#define FEAT_LO ((uint32_t)(ECHO_FEAT | VIRTIO_RING_F_INDIRECT_DESC))
#define FEAT_HI 1u /* VERSION_1 */

static uint32_t rd(struct tt *x, uint64_t off)
{
	return tdrv_rd(&x->t, off);
}

static void wr(struct tt *x, uint64_t off, uint32_t v)
{
	tdrv_wr(&x->t, off, v);
}

/* posts one echo chain on queue q: 8 readable bytes at src, 8 writable at
 * dst */
static void post_echo(struct tt *x, unsigned q, uint64_t src, uint64_t dst)
{
	uint64_t a[2] = { src, dst };
	uint32_t l[2] = { 8, 8 };
	uint16_t f[2] = { 0, VIRTQ_DESC_F_WRITE };

	tdrv_post(&x->t, q, a, l, f, 2);
}

static void test_registers(void **state)
{
	struct tt *x = *state;
	uint8_t b8[8];

	assert_string_equal(x->t.d->ops->name, "virtio-echo");
	assert_int_equal(x->t.d->mmio_len, VIRTIO_MMIO_SIZE);
	assert_int_equal(rd(x, VIRTIO_MMIO_MAGIC_VALUE), 0x74726976);
	assert_int_equal(rd(x, VIRTIO_MMIO_VERSION), 2);
	assert_int_equal(rd(x, VIRTIO_MMIO_DEVICE_ID), ECHO_ID);
	assert_int_equal(rd(x, VIRTIO_MMIO_VENDOR_ID), 0x004b4d56);
	wr(x, VIRTIO_MMIO_DEVICE_FEAT_SEL, 0);
	assert_int_equal(rd(x, VIRTIO_MMIO_DEVICE_FEATURES), FEAT_LO);
	wr(x, VIRTIO_MMIO_DEVICE_FEAT_SEL, 1);
	assert_int_equal(rd(x, VIRTIO_MMIO_DEVICE_FEATURES), FEAT_HI);
	wr(x, VIRTIO_MMIO_DEVICE_FEAT_SEL, 2);
	assert_int_equal(rd(x, VIRTIO_MMIO_DEVICE_FEATURES), 0);
	for (uint32_t q = 0; q < 3; q++) {
		wr(x, VIRTIO_MMIO_QUEUE_SEL, q);
		assert_int_equal(rd(x, VIRTIO_MMIO_QUEUE_NUM_MAX), q < 2 ? 256 : 0);
		assert_int_equal(rd(x, VIRTIO_MMIO_QUEUE_READY), 0);
	}
	assert_int_equal(rd(x, VIRTIO_MMIO_SHM_LEN_LOW), 0xffffffff);
	assert_int_equal(rd(x, VIRTIO_MMIO_SHM_LEN_HIGH), 0xffffffff);
	assert_int_equal(rd(x, VIRTIO_MMIO_CONFIG_GENERATION), 0);
	assert_int_equal(rd(x, 0x0f0), 0); /* unknown */
	/* control registers take 32-bit accesses only */
	memset(b8, 0xff, 8);
	x->t.d->ops->mmio(x->t.d, VIRTIO_MMIO_MAGIC_VALUE, false, b8, 2);
	assert_int_equal(b8[0] | b8[1], 0);
	x->t.d->ops->mmio(x->t.d, VIRTIO_MMIO_MAGIC_VALUE + 1, false, b8, 4);
	assert_int_equal(b8[0] | b8[1] | b8[2] | b8[3], 0);
	b8[0] = 1;
	x->t.d->ops->mmio(x->t.d, VIRTIO_MMIO_STATUS, true, b8, 1);
	assert_int_equal(rd(x, VIRTIO_MMIO_STATUS), 0);
	/* the configuration space: any size, zero outside */
	uint32_t v32;
	uint16_t v16;
	uint64_t v64;
	x->t.d->ops->mmio(x->t.d, VIRTIO_MMIO_CONFIG, false, (uint8_t *)&v32, 4);
	assert_int_equal(v32, ECHO_MAGIC);
	x->t.d->ops->mmio(x->t.d, VIRTIO_MMIO_CONFIG + 2, false, (uint8_t *)&v16, 2);
	assert_int_equal(v16, ECHO_MAGIC >> 16);
	x->t.d->ops->mmio(x->t.d, VIRTIO_MMIO_CONFIG + 3, false, b8, 1);
	assert_int_equal(b8[0], ECHO_MAGIC >> 24);
	v32 = 0x11223344;
	x->t.d->ops->mmio(x->t.d, VIRTIO_MMIO_CONFIG + 4, true, (uint8_t *)&v32, 4);
	assert_int_equal(x->e.scratch, 0x11223344);
	x->t.d->ops->mmio(x->t.d, VIRTIO_MMIO_CONFIG, false, (uint8_t *)&v64, 8);
	assert_true(v64 == ((uint64_t)0x11223344 << 32 | ECHO_MAGIC));
	v64 = 1;
	x->t.d->ops->mmio(x->t.d, VIRTIO_MMIO_CONFIG + 8, false, (uint8_t *)&v64, 8);
	assert_true(v64 == 0);
	x->t.d->ops->mmio(x->t.d, VIRTIO_MMIO_SIZE - 4, false, (uint8_t *)&v32, 4);
	assert_int_equal(v32, 0);
	x->t.d->ops->mmio(x->t.d, VIRTIO_MMIO_CONFIG, false, b8, 3);
	assert_int_equal(b8[0] | b8[1] | b8[2], 0);
}

static void test_negotiation(void **state)
{
	struct tt *x = *state;

	/* no VERSION_1: refused */
	assert_false(tdrv_up(&x->t, FEAT_LO, 0, 2, 16));
	assert_int_equal(rd(x, VIRTIO_MMIO_STATUS), 3);
	/* a bit the device does not offer: refused */
	assert_false(tdrv_up(&x->t, FEAT_LO | 1, FEAT_HI, 2, 16));
	assert_false(tdrv_up(&x->t, FEAT_LO, FEAT_HI | 2, 2, 16));
	/* all offered bits, or just VERSION_1 */
	assert_true(tdrv_up(&x->t, FEAT_LO, FEAT_HI, 2, 16));
	assert_int_equal(rd(x, VIRTIO_MMIO_STATUS), 0xf);
	assert_true(vmm_virtio_driver_features(vmm_virtio_of(x->t.d)) ==
	            (ECHO_FEAT | VIRTIO_RING_F_INDIRECT_DESC | VIRTIO_F_VERSION_1));
	/* features are frozen once accepted */
	wr(x, VIRTIO_MMIO_DRIVER_FEAT_SEL, 0);
	wr(x, VIRTIO_MMIO_DRIVER_FEATURES, 0);
	assert_true(vmm_virtio_driver_features(vmm_virtio_of(x->t.d)) & ECHO_FEAT);
	assert_true(tdrv_up(&x->t, 0, FEAT_HI, 2, 16));
	assert_true(vmm_virtio_driver_features(vmm_virtio_of(x->t.d)) == VIRTIO_F_VERSION_1);
	/* the driver cannot set NEEDS_RESET itself */
	wr(x, VIRTIO_MMIO_STATUS, 0xf | VIRTIO_STATUS_NEEDS_RESET);
	assert_int_equal(rd(x, VIRTIO_MMIO_STATUS), 0xf);
}

static void test_queue_setup(void **state)
{
	struct tt *x = *state;
	struct {
		uint32_t num;
		uint64_t desc, avail, used;
	} bad[] = {
		{ 0, TQ_DESC(0), TQ_AVAIL(0), TQ_USED(0) },
		{ 12, TQ_DESC(0), TQ_AVAIL(0), TQ_USED(0) },
		{ 16, TQ_DESC(0) + 8, TQ_AVAIL(0), TQ_USED(0) },
		{ 16, TQ_DESC(0), TQ_AVAIL(0) + 1, TQ_USED(0) },
		{ 16, TQ_DESC(0), TQ_AVAIL(0), TQ_USED(0) + 2 },
		{ 16, RAM - 64, TQ_AVAIL(0), TQ_USED(0) },
		{ 16, TQ_DESC(0), 1ull << 36, TQ_USED(0) },
		{ 16, TQ_DESC(0), TQ_AVAIL(0), 0xc0000000ull },
	};

	for (unsigned k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		assert_true(tdrv_up(&x->t, 0, FEAT_HI, 0, 16));
		wr(x, VIRTIO_MMIO_QUEUE_SEL, 0);
		wr(x, VIRTIO_MMIO_QUEUE_NUM, bad[k].num);
		wr(x, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)bad[k].desc);
		wr(x, VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)(bad[k].desc >> 32));
		wr(x, VIRTIO_MMIO_QUEUE_DRIVER_LOW, (uint32_t)bad[k].avail);
		wr(x, VIRTIO_MMIO_QUEUE_DRIVER_HIGH, (uint32_t)(bad[k].avail >> 32));
		wr(x, VIRTIO_MMIO_QUEUE_DEVICE_LOW, (uint32_t)bad[k].used);
		wr(x, VIRTIO_MMIO_QUEUE_DEVICE_HIGH, (uint32_t)(bad[k].used >> 32));
		wr(x, VIRTIO_MMIO_QUEUE_READY, 1);
		assert_int_equal(rd(x, VIRTIO_MMIO_QUEUE_READY), 0);
		assert_true(rd(x, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET);
		assert_true(rd(x, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_MMIO_INT_CONFIG);
		assert_int_equal(x->level, 1);
	}
	/* QueueNum above the maximum is ignored */
	assert_true(tdrv_up(&x->t, 0, FEAT_HI, 1, 16));
	wr(x, VIRTIO_MMIO_QUEUE_SEL, 1);
	wr(x, VIRTIO_MMIO_QUEUE_NUM, 512);
	wr(x, VIRTIO_MMIO_QUEUE_READY, 1);
	assert_int_equal(rd(x, VIRTIO_MMIO_QUEUE_READY), 0);
	wr(x, VIRTIO_MMIO_STATUS, 0);
	/* a ready queue's registers do not change; read back */
	assert_true(tdrv_up(&x->t, 0, FEAT_HI, 2, 16));
	assert_int_equal(x->level, 0);
	wr(x, VIRTIO_MMIO_QUEUE_SEL, 1);
	wr(x, VIRTIO_MMIO_QUEUE_DESC_LOW, 0x5000);
	wr(x, VIRTIO_MMIO_QUEUE_NUM, 32);
	assert_int_equal(rd(x, VIRTIO_MMIO_QUEUE_DESC_LOW), (uint32_t)TQ_DESC(1));
	assert_int_equal(rd(x, VIRTIO_MMIO_QUEUE_DRIVER_LOW), (uint32_t)TQ_AVAIL(1));
	assert_int_equal(rd(x, VIRTIO_MMIO_QUEUE_DEVICE_LOW), (uint32_t)TQ_USED(1));
	assert_int_equal(rd(x, VIRTIO_MMIO_QUEUE_DEVICE_HIGH), 0);
	assert_int_equal(rd(x, VIRTIO_MMIO_QUEUE_READY), 1);
	/* a queue that does not exist takes nothing */
	wr(x, VIRTIO_MMIO_QUEUE_SEL, 2);
	wr(x, VIRTIO_MMIO_QUEUE_NUM, 16);
	wr(x, VIRTIO_MMIO_QUEUE_READY, 1);
	assert_int_equal(rd(x, VIRTIO_MMIO_QUEUE_READY), 0);
	assert_false(rd(x, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET);
	/* QueueReady 0 stops a queue */
	wr(x, VIRTIO_MMIO_QUEUE_SEL, 1);
	wr(x, VIRTIO_MMIO_QUEUE_READY, 0);
	assert_int_equal(rd(x, VIRTIO_MMIO_QUEUE_READY), 0);
	post_echo(x, 1, BUF, BUF + 8);
	wr(x, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	assert_int_equal(x->e.echoed, 0);
}

static void test_notify_and_interrupts(void **state)
{
	struct tt *x = *state;

	assert_true(tdrv_up(&x->t, 0, FEAT_HI, 2, 16));
	memcpy(tdrv_gpa(&x->t, BUF), "ping-one", 8);
	post_echo(x, 0, BUF, BUF + 0x100);
	assert_int_equal(x->level, 0);
	wr(x, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(tdrv_used_idx(&x->t, 0), 1);
	assert_int_equal(tdrv_used_len(&x->t, 0, 0), 8);
	assert_memory_equal(tdrv_gpa(&x->t, BUF + 0x100), "ping-one", 8);
	assert_int_equal(rd(x, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING);
	assert_int_equal(x->level, 1);
	unsigned calls = x->irq_calls;
	/* more completions: the line stays up, no new call */
	post_echo(x, 1, BUF, BUF + 0x200);
	wr(x, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	assert_int_equal(tdrv_used_idx(&x->t, 1), 1);
	assert_int_equal(x->irq_calls, calls);
	/* acknowledging a bit not set changes nothing; the right one lowers */
	wr(x, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_CONFIG);
	assert_int_equal(x->level, 1);
	wr(x, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING);
	assert_int_equal(rd(x, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	assert_int_equal(x->level, 0);
	/* the driver asks for no interrupts */
	uint16_t *avail = tdrv_gpa(&x->t, TQ_AVAIL(0));
	avail[0] = VIRTQ_AVAIL_F_NO_INTERRUPT;
	post_echo(x, 0, BUF, BUF + 0x100);
	wr(x, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(tdrv_used_idx(&x->t, 0), 2);
	assert_int_equal(rd(x, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	assert_int_equal(x->level, 0);
	avail[0] = 0;
	/* notifications of queues that do not exist are ignored */
	unsigned n = x->e.notifies;
	wr(x, VIRTIO_MMIO_QUEUE_NOTIFY, 2);
	wr(x, VIRTIO_MMIO_QUEUE_NOTIFY, 0xffffffff);
	assert_int_equal(x->e.notifies, n);
}

/* Notifications before DRIVER_OK are dropped; the buffers are taken at the
 * first one after it. */
static void test_driver_ok(void **state)
{
	struct tt *x = *state;

	assert_true(tdrv_up(&x->t, 0, FEAT_HI, 2, 16));
	wr(x, VIRTIO_MMIO_STATUS, 0);
	wr(x, VIRTIO_MMIO_STATUS, 1 | 2);
	wr(x, VIRTIO_MMIO_DRIVER_FEAT_SEL, 1);
	wr(x, VIRTIO_MMIO_DRIVER_FEATURES, 1);
	wr(x, VIRTIO_MMIO_STATUS, 1 | 2 | 8);
	wr(x, VIRTIO_MMIO_QUEUE_SEL, 0);
	wr(x, VIRTIO_MMIO_QUEUE_NUM, 16);
	wr(x, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)TQ_DESC(0));
	wr(x, VIRTIO_MMIO_QUEUE_DRIVER_LOW, (uint32_t)TQ_AVAIL(0));
	wr(x, VIRTIO_MMIO_QUEUE_DEVICE_LOW, (uint32_t)TQ_USED(0));
	wr(x, VIRTIO_MMIO_QUEUE_READY, 1);
	x->t.avail_idx[0] = 0;
	x->t.next_desc[0] = 0;
	memset(tdrv_gpa(&x->t, TQ_USED(0)), 0, 8);
	memset(tdrv_gpa(&x->t, TQ_AVAIL(0)), 0, 8);
	post_echo(x, 0, BUF, BUF + 0x100);
	wr(x, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(x->e.echoed, 0);
	wr(x, VIRTIO_MMIO_STATUS, 0xf);
	assert_int_equal(x->e.echoed, 0);
	wr(x, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(x->e.echoed, 1);
	assert_int_equal(tdrv_used_idx(&x->t, 0), 1);
}

/* The ways a guest can get a ring wrong, through the transport: each sets
 * NEEDS_RESET and raises a configuration interrupt; the queues then stay
 * untouched until a reset. */
static void test_malformed_needs_reset(void **state)
{
	struct tt *x = *state;
	enum {
		OUT_OF_RAM,
		WRAPS,
		OVERFLOW,
		LOOP,
		TOO_LONG,
		NEXT_RANGE,
		IND_OUT,
		HEAD,
		AHEAD,
		NCASES
	};

	for (int k = 0; k < NCASES; k++) {
		uint16_t qsize = k == OVERFLOW ? 256 : 16;
		assert_true(tdrv_up(&x->t, FEAT_LO, FEAT_HI, 2, qsize));
		assert_int_equal(x->level, 0);
		struct tdrv *t = &x->t;
		uint16_t *avail = tdrv_gpa(t, TQ_AVAIL(0));
		unsigned head = 0;
		switch (k) {
		case OUT_OF_RAM:
			tdrv_desc(t, 0, 0, RAM - 4, 8, 0, 0);
			break;
		case WRAPS:
			tdrv_desc(t, 0, 0, ~0ull - 3, 8, 0, 0);
			break;
		case OVERFLOW: /* 256 x 16 MiB */
			for (unsigned i = 0; i < 256; i++)
				tdrv_desc(t, 0, i, 0, (uint32_t)RAM, i < 255 ? 1 : 0,
				          (uint16_t)(i + 1));
			break;
		case LOOP:
			tdrv_desc(t, 0, 0, BUF, 8, 1, 1);
			tdrv_desc(t, 0, 1, BUF, 8, 1, 0);
			break;
		case TOO_LONG: /* an indirect table (at TABLE) of 17 > 16 chained entries */
			for (unsigned i = 0; i < 17; i++)
				tdrv_desc(t, 0, (unsigned)(TABLE - TQ_DESC(0)) / 16 + i, BUF, 8,
				          i < 16 ? 1 : 0, (uint16_t)(i + 1));
			tdrv_desc(t, 0, 0, TABLE, 17 * 16, VIRTQ_DESC_F_INDIRECT, 0);
			break;
		case NEXT_RANGE:
			tdrv_desc(t, 0, 0, BUF, 8, 1, 16);
			break;
		case IND_OUT:
			tdrv_desc(t, 0, 0, RAM - 16, 32, VIRTQ_DESC_F_INDIRECT, 0);
			break;
		case HEAD:
			head = 16;
			break;
		case AHEAD:
			break;
		}
		avail[2] = (uint16_t)head;
		avail[1] = k == AHEAD ? 17 : 1;
		memset(tdrv_gpa(t, BUF), 0x77, 8);
		wr(x, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
		uint32_t st = rd(x, VIRTIO_MMIO_STATUS);
		if (!(st & VIRTIO_STATUS_NEEDS_RESET))
			fail_msg("case %d: no NEEDS_RESET", k);
		assert_int_equal(st & 0xf, 0xf);
		assert_int_equal(rd(x, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_CONFIG);
		assert_int_equal(x->level, 1);
		assert_int_equal(tdrv_used_idx(t, 0), 0);
		/* the device ignores its queues now, the other one too */
		post_echo(x, 1, BUF, BUF + 8);
		wr(x, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
		assert_int_equal(tdrv_used_idx(t, 1), 0);
		/* the driver's status writes keep the bit */
		wr(x, VIRTIO_MMIO_STATUS, 0xf | VIRTIO_STATUS_FAILED);
		assert_int_equal(rd(x, VIRTIO_MMIO_STATUS), 0xcf);
		wr(x, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_CONFIG);
		assert_int_equal(x->level, 0);
		memset(tdrv_gpa(t, TQ_DESC(0)), 0, 0x4000 * 2);
	}
	/* after a reset it all works again */
	assert_true(tdrv_up(&x->t, FEAT_LO, FEAT_HI, 2, 16));
	assert_int_equal(rd(x, VIRTIO_MMIO_STATUS), 0xf);
	post_echo(x, 0, BUF, BUF + 8);
	wr(x, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(tdrv_used_idx(&x->t, 0), 1);
}

static void test_reset(void **state)
{
	struct tt *x = *state;

	assert_true(tdrv_up(&x->t, FEAT_LO, FEAT_HI, 2, 16));
	unsigned resets = x->e.resets;
	post_echo(x, 0, BUF, BUF + 8);
	wr(x, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(x->level, 1);
	wr(x, VIRTIO_MMIO_STATUS, 0);
	assert_int_equal(x->e.resets, resets + 1);
	assert_int_equal(rd(x, VIRTIO_MMIO_STATUS), 0);
	assert_int_equal(rd(x, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	assert_int_equal(x->level, 0);
	assert_true(vmm_virtio_driver_features(vmm_virtio_of(x->t.d)) == 0);
	for (uint32_t q = 0; q < 2; q++) {
		wr(x, VIRTIO_MMIO_QUEUE_SEL, q);
		assert_int_equal(rd(x, VIRTIO_MMIO_QUEUE_READY), 0);
		assert_int_equal(rd(x, VIRTIO_MMIO_QUEUE_DESC_LOW), 0);
	}
	/* nothing runs on a reset device */
	post_echo(x, 0, BUF, BUF + 8);
	wr(x, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(tdrv_used_idx(&x->t, 0), 1);
	/* the VM's reset does the same */
	assert_true(tdrv_up(&x->t, FEAT_LO, FEAT_HI, 2, 16));
	x->t.d->ops->reset(x->t.d);
	assert_int_equal(rd(x, VIRTIO_MMIO_STATUS), 0);
	wr(x, VIRTIO_MMIO_QUEUE_SEL, 0);
	assert_int_equal(rd(x, VIRTIO_MMIO_QUEUE_READY), 0);
}

/* offsets in a saved echo state */
#define S_VERSION  0
#define S_DEVID    1
#define S_NQ       5
#define S_DRVFEAT  6
#define S_STATUS   30
#define S_ISR      31
#define S_Q0       32
#define S_Q_SIZE   0
#define S_Q_READY  2
#define S_Q_DESC   3
#define S_Q_AVAIL  11
#define S_Q_USED   19
#define S_Q_LAST   27
#define S_Q_USEDIX 29
#define S_Q_LEN    31
#define S_BELEN    (S_Q0 + 2 * S_Q_LEN)

static void save(struct vmm_device *d, struct sbuf *s)
{
	sbuf_init(s);
	assert_int_equal(d->ops->save(d, s), 0);
}

static int restore_bytes(struct vmm_device *d, const uint8_t *p, size_t n)
{
	struct rbuf r;

	rbuf_init(&r, p, n);
	return d->ops->restore(d, &r);
}

static void test_save_restore(void **state)
{
	struct tt *x = *state;
	struct sbuf s, s2;
	struct vmm_device *d2;
	struct echo e2 = { 0 };

	assert_true(tdrv_up(&x->t, FEAT_LO, FEAT_HI, 2, 16));
	memcpy(tdrv_gpa(&x->t, BUF), "before-1", 8);
	post_echo(x, 0, BUF, BUF + 0x100);
	wr(x, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	post_echo(x, 1, BUF, BUF + 0x100);
	wr(x, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	assert_int_equal(x->e.echoed, 2);
	/* posted, not notified: lives in guest RAM across the save */
	memcpy(tdrv_gpa(&x->t, BUF + 0x10), "posted-1", 8);
	post_echo(x, 0, BUF + 0x10, BUF + 0x200);
	wr(x, VIRTIO_MMIO_QUEUE_SEL, 1);
	wr(x, VIRTIO_MMIO_DEVICE_FEAT_SEL, 1);
	save(x->t.d, &s);
	assert_int_equal(s.len, S_BELEN + 4 + 4);
	assert_int_equal(s.data[S_STATUS], 0xf);
	assert_int_equal(s.data[S_ISR], VIRTIO_MMIO_INT_VRING);

	/* a fresh device takes it and carries on */
	assert_int_equal(vmm_virtio_create(&d2, &x->t.bus, 0xd0000000, 9, &echo_ops, &e2), 0);
	x->level = 0;
	assert_int_equal(restore_bytes(d2, s.data, s.len), 0);
	assert_int_equal(x->level, 1); /* the line as saved */
	assert_int_equal(e2.echoed, 2);
	x->t.d->ops->destroy(x->t.d);
	x->e.destroyed = 0;
	x->t.d = d2;
	assert_int_equal(rd(x, VIRTIO_MMIO_STATUS), 0xf);
	assert_int_equal(rd(x, VIRTIO_MMIO_QUEUE_READY), 1);           /* queue 1 */
	assert_int_equal(rd(x, VIRTIO_MMIO_DEVICE_FEATURES), FEAT_HI); /* sel 1 */
	wr(x, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(tdrv_used_idx(&x->t, 0), 2);
	assert_memory_equal(tdrv_gpa(&x->t, BUF + 0x200), "posted-1", 8);
	post_echo(x, 1, BUF, BUF + 0x300);
	wr(x, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	assert_int_equal(tdrv_used_idx(&x->t, 1), 2);
	assert_memory_equal(tdrv_gpa(&x->t, BUF + 0x300), "before-1", 8);
	assert_int_equal(e2.echoed, 4);

	/* every truncation, and a byte too many, is refused */
	for (size_t n = 0; n < s.len; n++)
		assert_int_equal(restore_bytes(d2, s.data, n), -EBADMSG);
	uint8_t *longer = malloc(s.len + 1);
	memcpy(longer, s.data, s.len);
	longer[s.len] = 0;
	assert_int_equal(restore_bytes(d2, longer, s.len + 1), -EBADMSG);
	free(longer);

	/* garbage, field by field */
	struct {
		size_t off;
		unsigned width;
		uint64_t val;
	} bad[] = {
		{ S_VERSION, 1, 2 },
		{ S_DEVID, 4, 2 }, /* a virtio-blk state */
		{ S_NQ, 1, 1 },
		{ S_DRVFEAT, 8, VIRTIO_F_VERSION_1 | 1 }, /* not offered */
		{ S_DRVFEAT, 8, ECHO_FEAT },              /* FEATURES_OK, no VERSION_1 */
		{ S_STATUS, 1, 0x1f },
		{ S_ISR, 1, 4 },
		{ S_Q0 + S_Q_SIZE, 2, 12 },
		{ S_Q0 + S_Q_SIZE, 2, 512 },
		{ S_Q0 + S_Q_SIZE, 2, 0 },
		{ S_Q0 + S_Q_READY, 1, 2 },
		{ S_Q0 + S_Q_DESC, 8, RAM - 16 },
		{ S_Q0 + S_Q_DESC, 8, TQ_DESC(0) + 8 },
		{ S_Q0 + S_Q_AVAIL, 8, 1ull << 40 },
		{ S_Q0 + S_Q_USED, 8, 0xc0000000ull },
		{ S_Q0 + S_Q_LAST, 2, 7 }, /* a request in flight */
		{ S_Q0 + S_Q_LEN + S_Q_USEDIX, 2, 9 },
		{ S_BELEN, 4, 3 },
		{ S_BELEN, 4, 5 },
	};
	for (unsigned k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		uint8_t *p = malloc(s.len);
		memcpy(p, s.data, s.len);
		memcpy(p + bad[k].off, &bad[k].val, bad[k].width);
		if (restore_bytes(d2, p, s.len) != -EBADMSG)
			fail_msg("garbage %u restored", k);
		free(p);
	}
	/* a queue that is not ready may hold anything but a size > 256 */
	uint8_t *p = malloc(s.len);
	memcpy(p, s.data, s.len);
	p[S_Q0 + S_Q_READY] = 0;
	uint64_t far = 1ull << 50;
	memcpy(p + S_Q0 + S_Q_DESC, &far, 8);
	p[S_Q0 + S_Q_LAST] = 5;
	assert_int_equal(restore_bytes(d2, p, s.len), 0);
	free(p);
	/* the failures changed nothing: the device holds the last good state */
	save(d2, &s2);
	assert_int_equal(s2.data[S_Q0 + S_Q_READY], 0);
	assert_int_equal(restore_bytes(d2, s.data, s.len), 0);
	sbuf_free(&s2);
	save(d2, &s2);
	assert_int_equal(s2.len, s.len);
	assert_memory_equal(s2.data, s.data, s.len);
	sbuf_free(&s2);
	sbuf_free(&s);
	x->t.d->ops->destroy(x->t.d);
	assert_int_equal(e2.destroyed, 1);
	assert_int_equal(vmm_virtio_create(&x->t.d, &x->t.bus, 0xd0000000, 9, &echo_ops, &x->e), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_vq_check, bare_setup, bare_teardown),
		cmocka_unit_test_setup_teardown(test_vq_pop_push, bare_setup, bare_teardown),
		cmocka_unit_test_setup_teardown(test_vq_interrupt_suppression, bare_setup,
		                                bare_teardown),
		cmocka_unit_test_setup_teardown(test_vq_indirect, bare_setup, bare_teardown),
		cmocka_unit_test_setup_teardown(test_vq_malformed, bare_setup, bare_teardown),
		cmocka_unit_test_setup_teardown(test_vq_length_overflow, bare_setup, bare_teardown),
		cmocka_unit_test_setup_teardown(test_vq_random, bare_setup, bare_teardown),
		cmocka_unit_test(test_iov_slice),
		cmocka_unit_test_setup_teardown(test_registers, tt_setup, tt_teardown),
		cmocka_unit_test_setup_teardown(test_negotiation, tt_setup, tt_teardown),
		cmocka_unit_test_setup_teardown(test_queue_setup, tt_setup, tt_teardown),
		cmocka_unit_test_setup_teardown(test_notify_and_interrupts, tt_setup, tt_teardown),
		cmocka_unit_test_setup_teardown(test_driver_ok, tt_setup, tt_teardown),
		cmocka_unit_test_setup_teardown(test_malformed_needs_reset, tt_setup, tt_teardown),
		cmocka_unit_test_setup_teardown(test_reset, tt_setup, tt_teardown),
		cmocka_unit_test_setup_teardown(test_save_restore, tt_setup, tt_teardown),
	};
	log_set_level(LOG_ERROR); /* the guest-error warnings are expected */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
