/* A tiny virtio-mmio driver for unit tests of vmm's virtio devices: it
 * writes registers through the device's mmio op and builds split queues in
 * a fake guest memory. Header-only (each test is one program). */
#ifndef VMK_TEST_VIRTIO_DRIVER_H
#define VMK_TEST_VIRTIO_DRIVER_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "vmm/virtio_mmio.h"

#define TQ_SIZE 16

struct tdrv {
	struct vmm_mem mem;
	struct vmm_bus bus;
	struct vmm_device *d;
	uint16_t avail_idx[2];
	unsigned next_desc[2];
};

/* queue q's rings: desc, avail, used at 0x10000 + q * 0x4000 */
#define TQ_DESC(q)  (0x10000ull + (q)*0x4000ull)
#define TQ_AVAIL(q) (TQ_DESC(q) + 0x1000)
#define TQ_USED(q)  (TQ_DESC(q) + 0x2000)

static inline uint32_t tdrv_rd(struct tdrv *t, uint64_t off)
{
	uint32_t v;
	t->d->ops->mmio(t->d, off, false, (uint8_t *)&v, 4);
	return v;
}

static inline void tdrv_wr(struct tdrv *t, uint64_t off, uint32_t v)
{
	t->d->ops->mmio(t->d, off, true, (uint8_t *)&v, 4);
}

static inline void *tdrv_gpa(struct tdrv *t, uint64_t gpa)
{
	return vmm_gpa(&t->mem, gpa, 1);
}

/* reset, negotiate (feature words lo/hi), set up queues 0..nq-1 of size qsize */
static inline bool tdrv_up(struct tdrv *t, uint32_t lo, uint32_t hi, unsigned nq, uint16_t qsize)
{
	tdrv_wr(t, 0x70, 0);
	tdrv_wr(t, 0x70, 1 | 2);
	tdrv_wr(t, 0x24, 0);
	tdrv_wr(t, 0x20, lo);
	tdrv_wr(t, 0x24, 1);
	tdrv_wr(t, 0x20, hi);
	tdrv_wr(t, 0x70, 1 | 2 | 8);
	if (!(tdrv_rd(t, 0x70) & 8))
		return false;
	for (unsigned q = 0; q < nq; q++) {
		tdrv_wr(t, 0x30, q);
		tdrv_wr(t, 0x38, qsize);
		tdrv_wr(t, 0x80, (uint32_t)TQ_DESC(q));
		tdrv_wr(t, 0x84, 0);
		tdrv_wr(t, 0x90, (uint32_t)TQ_AVAIL(q));
		tdrv_wr(t, 0x94, 0);
		tdrv_wr(t, 0xa0, (uint32_t)TQ_USED(q));
		tdrv_wr(t, 0xa4, 0);
		tdrv_wr(t, 0x44, 1);
		t->avail_idx[q] = 0;
		t->next_desc[q] = 0;
	}
	tdrv_wr(t, 0x70, 1 | 2 | 8 | 4);
	return true;
}

static inline void tdrv_desc(struct tdrv *t, unsigned q, unsigned i, uint64_t addr, uint32_t len,
                             uint16_t flags, uint16_t next)
{
	uint8_t *d = tdrv_gpa(t, TQ_DESC(q) + 16 * i);
	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next, 2);
}

/* Posts a chain of n buffers (flags: 2 = device writes) on queue q without
 * notifying; returns the head index. */
static inline uint16_t tdrv_post(struct tdrv *t, unsigned q, const uint64_t *addr,
                                 const uint32_t *len, const uint16_t *flags, unsigned n)
{
	uint16_t head = (uint16_t)(t->next_desc[q] % TQ_SIZE);
	for (unsigned i = 0; i < n; i++) {
		unsigned at = (t->next_desc[q] + i) % TQ_SIZE;
		tdrv_desc(t, q, at, addr[i], len[i], (uint16_t)(flags[i] | (i + 1 < n ? 1 : 0)),
		          (uint16_t)((at + 1) % TQ_SIZE));
	}
	t->next_desc[q] += n;
	uint16_t *avail = tdrv_gpa(t, TQ_AVAIL(q));
	avail[2 + t->avail_idx[q] % TQ_SIZE] = head;
	avail[1] = ++t->avail_idx[q];
	return head;
}

static inline uint16_t tdrv_used_idx(struct tdrv *t, unsigned q)
{
	return *(uint16_t *)tdrv_gpa(t, TQ_USED(q) + 2);
}

/* length the device wrote for used entry k of queue q */
static inline uint32_t tdrv_used_len(struct tdrv *t, unsigned q, unsigned k)
{
	return *(uint32_t *)tdrv_gpa(t, TQ_USED(q) + 4 + 8 * (k % TQ_SIZE) + 4);
}

#endif
