#include "virtio.h"

#include "rt.h"

#define R_MAGIC        0x000
#define R_VERSION      0x004
#define R_DEVICE_ID    0x008
#define R_DEV_FEAT     0x010
#define R_DEV_FEAT_SEL 0x014
#define R_DRV_FEAT     0x020
#define R_DRV_FEAT_SEL 0x024
#define R_QUEUE_SEL    0x030
#define R_QUEUE_MAX    0x034
#define R_QUEUE_NUM    0x038
#define R_QUEUE_READY  0x044
#define R_QUEUE_NOTIFY 0x050
#define R_STATUS       0x070
#define R_DESC_LO      0x080
#define R_DESC_HI      0x084
#define R_AVAIL_LO     0x090
#define R_AVAIL_HI     0x094
#define R_USED_LO      0x0a0
#define R_USED_HI      0x0a4
#define R_CONFIG       0x100

#define S_ACK         1
#define S_DRIVER      2
#define S_DRIVER_OK   4
#define S_FEATURES_OK 8

/* Queue memory: two queues for up to two devices, page aligned. */
static uint8_t vq_mem[4][4096] __attribute__((aligned(4096)));
static unsigned vq_used_slots;

static inline void wr32(struct virtio_dev *d, unsigned off, uint32_t v)
{
	*(volatile uint32_t *)(d->base + off) = v;
}

static inline uint32_t rd32(struct virtio_dev *d, unsigned off)
{
	return *(volatile uint32_t *)(d->base + off);
}

static inline void barrier(void)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

uint32_t virtio_cfg32(struct virtio_dev *d, unsigned off)
{
	return rd32(d, R_CONFIG + off);
}

uint8_t virtio_cfg8(struct virtio_dev *d, unsigned off)
{
	return d->base[R_CONFIG + off];
}

/* n-th "virtio_mmio.device=SIZE@ADDR:IRQ" of the command line: ADDR. */
static uint64_t mmio_addr(int n)
{
	char w[128];
	const char *key = "virtio_mmio.device=";
	size_t kl = strlen(key);

	for (int i = 0; cmdline_word(i, w, sizeof(w)); i++) {
		if (strncmp(w, key, kl) != 0 || n-- > 0)
			continue;
		const char *p = w + kl;
		while (*p && *p != '@')
			p++;
		return *p ? parse_u64(p + 1, 0) : 0;
	}
	return 0;
}

static bool setup_queue(struct virtio_dev *d, unsigned i)
{
	struct virtq *q = &d->q[i];

	wr32(d, R_QUEUE_SEL, i);
	uint32_t max = rd32(d, R_QUEUE_MAX);
	if (max == 0 || vq_used_slots == 4) {
		puts_("virtio: no queue\n");
		return false;
	}
	q->size = max < VQ_SIZE ? (uint16_t)max : VQ_SIZE;
	uint8_t *m = vq_mem[vq_used_slots++];
	memset(m, 0, 4096);
	/* 64 descriptors (1 KiB), avail ring at 1 KiB, used ring at 2 KiB */
	q->desc = (struct vq_desc *)m;
	q->avail = (volatile uint16_t *)(m + 1024);
	q->used = m + 2048;
	q->last_used = q->avail_idx = 0;
	wr32(d, R_QUEUE_NUM, q->size);
	uint64_t a = (uint64_t)(uintptr_t)m;
	wr32(d, R_DESC_LO, (uint32_t)a);
	wr32(d, R_DESC_HI, (uint32_t)(a >> 32));
	wr32(d, R_AVAIL_LO, (uint32_t)(a + 1024));
	wr32(d, R_AVAIL_HI, (uint32_t)((a + 1024) >> 32));
	wr32(d, R_USED_LO, (uint32_t)(a + 2048));
	wr32(d, R_USED_HI, (uint32_t)((a + 2048) >> 32));
	wr32(d, R_QUEUE_READY, 1);
	return true;
}

bool virtio_find(uint32_t device_id, unsigned nq, uint32_t want, struct virtio_dev *d)
{
	for (int n = 0;; n++) {
		uint64_t a = mmio_addr(n);
		if (!a)
			return false;
		d->base = (volatile uint8_t *)(uintptr_t)a;
		if (rd32(d, R_MAGIC) != 0x74726976 || rd32(d, R_DEVICE_ID) != device_id)
			continue;
		if (rd32(d, R_VERSION) != 2) {
			puts_("virtio: legacy (version 1) device: use modern virtio-mmio\n");
			return false;
		}
		wr32(d, R_STATUS, 0);
		wr32(d, R_STATUS, S_ACK | S_DRIVER);
		wr32(d, R_DEV_FEAT_SEL, 1);
		if (!(rd32(d, R_DEV_FEAT) & 1)) { /* VIRTIO_F_VERSION_1 */
			puts_("virtio: device without VERSION_1\n");
			return false;
		}
		wr32(d, R_DEV_FEAT_SEL, 0);
		uint32_t lo = rd32(d, R_DEV_FEAT) & want;
		wr32(d, R_DRV_FEAT_SEL, 0);
		wr32(d, R_DRV_FEAT, lo);
		wr32(d, R_DRV_FEAT_SEL, 1);
		wr32(d, R_DRV_FEAT, 1);
		wr32(d, R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
		if (!(rd32(d, R_STATUS) & S_FEATURES_OK)) {
			puts_("virtio: features refused\n");
			return false;
		}
		for (unsigned i = 0; i < nq; i++)
			if (!setup_queue(d, i))
				return false;
		d->nq = nq;
		d->device_id = device_id;
		wr32(d, R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
		return true;
	}
}

int virtio_poll_used(struct virtio_dev *d, unsigned qi, uint32_t *len)
{
	uint16_t id;

	return virtio_poll_used_id(d, qi, &id, len);
}

int virtio_poll_used_id(struct virtio_dev *d, unsigned qi, uint16_t *id, uint32_t *len)
{
	struct virtq *q = &d->q[qi];
	uint16_t idx = *(volatile uint16_t *)(q->used + 2);

	if (idx == q->last_used)
		return 0;
	barrier();
	volatile uint32_t *e = (volatile uint32_t *)(q->used + 4 + 8 * (q->last_used % q->size));
	*id = (uint16_t)e[0];
	if (len)
		*len = e[1];
	q->last_used++;
	return 1;
}

int virtio_submit(struct virtio_dev *d, unsigned qi, void *const *bufs, const uint32_t *lens,
                  const uint16_t *flags, unsigned n, bool wait)
{
	struct virtq *q = &d->q[qi];
	/* one chain in flight per queue at a time when waiting: descriptors 0..n-1
	 * of a slot chosen by the avail index */
	uint16_t head = (uint16_t)((q->avail_idx * 4) % q->size);

	for (unsigned i = 0; i < n; i++) {
		struct vq_desc *dd = &q->desc[(head + i) % q->size];
		dd->addr = (uint64_t)(uintptr_t)bufs[i];
		dd->len = lens[i];
		dd->flags = (uint16_t)(flags[i] | (i + 1 < n ? VQ_DESC_F_NEXT : 0));
		dd->next = (uint16_t)((head + i + 1) % q->size);
	}
	q->avail[2 + q->avail_idx % q->size] = head;
	barrier();
	q->avail_idx++;
	q->avail[1] = q->avail_idx;
	barrier();
	wr32(d, R_QUEUE_NOTIFY, qi);
	if (!wait)
		return 0;
	uint32_t len = 0;
	for (uint64_t spins = 0; spins < 2000000000ull; spins++) {
		if (virtio_poll_used(d, qi, &len))
			return (int)len;
		cpu_relax();
	}
	puts_("virtio: timeout\n");
	return -1;
}
