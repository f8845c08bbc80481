/* Polling virtio-mmio (version 2) driver: see virtio.h. */
#include "virtio.h"

#include "rt.h"

/* virtio-mmio registers (VIRTIO 1.x, 4.2.2) */
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
#define R_CONFIG_GEN   0x0fc
#define R_CONFIG       0x100

#define MMIO_MAGIC 0x74726976u /* "virt" */

#define S_ACK         1
#define S_DRIVER      2
#define S_DRIVER_OK   4
#define S_FEATURES_OK 8
#define S_NEEDS_RESET 0x40
#define S_FAILED      0x80

#define AVAIL_F_NO_INTERRUPT 1
#define USED_F_NO_NOTIFY     1

/* Queue memory: a page per queue (descriptors at 0, available ring at
 * 1 KiB, used ring at 2 KiB: room for VQ_MAX entries each). */
#define VQ_PAGES (VIRTIO_MAX_DEV * VIRTIO_MAX_Q)
static uint8_t vq_mem[VQ_PAGES][4096] __attribute__((aligned(4096)));
static unsigned vq_pages_used;

/* Devices already brought up (by address). */
static uint64_t claimed[VIRTIO_MAX_DEV];
static unsigned nclaimed;

_Static_assert(sizeof(struct vq_desc) * VQ_MAX <= 1024, "descriptor table fits");
_Static_assert(sizeof(struct vq_avail) + 2 <= 1024, "available ring fits");
_Static_assert(sizeof(struct vq_used) + 2 <= 2048, "used ring fits");

static inline void wr32(struct virtio_dev *d, unsigned off, uint32_t v)
{
	*(volatile uint32_t *)(d->base + off) = v;
}

static inline uint32_t rd32(struct virtio_dev *d, unsigned off)
{
	return *(volatile uint32_t *)(d->base + off);
}

static inline void mb(void)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

static const char *dev_name(uint32_t id)
{
	return id == VIRTIO_ID_NET ? "virtio-net" : id == VIRTIO_ID_BLOCK ? "virtio-blk" : "virtio";
}

/* ---- command line: virtio_mmio.device=SIZE@ADDR:IRQ[:ID] ---- */

static uint64_t parse_size(const char *s, const char **end)
{
	uint64_t v = parse_u64(s, &s);

	switch (*s) {
	case 'k':
	case 'K':
		v <<= 10;
		s++;
		break;
	case 'm':
	case 'M':
		v <<= 20;
		s++;
		break;
	case 'g':
	case 'G':
		v <<= 30;
		s++;
		break;
	}
	*end = s;
	return v;
}

/* The n-th well-formed entry of the command line: false past the last. */
static bool mmio_entry(int n, uint64_t *addr, uint64_t *size, uint32_t *irq)
{
	static const char key[] = "virtio_mmio.device=";
	const size_t kl = sizeof(key) - 1;
	char w[128];

	for (int i = 0; cmdline_word(i, w, sizeof(w)); i++) {
		if (strncmp(w, key, kl) != 0)
			continue;
		const char *p = w + kl;
		*size = parse_size(p, &p);
		if (*p != '@' || *size < R_CONFIG) {
			printf_("virtio: ignoring malformed %s\n", w);
			continue;
		}
		*addr = parse_u64(p + 1, &p);
		*irq = *p == ':' ? (uint32_t)parse_u64(p + 1, &p) : 0;
		if (!*addr || *addr + *size > (4ull << 30) || (*addr & 3)) {
			printf_("virtio: ignoring %s (outside the first 4 GiB)\n", w);
			continue;
		}
		if (n-- == 0)
			return true;
	}
	return false;
}

/* ---- configuration space ---- */

uint8_t virtio_cfg8(struct virtio_dev *d, unsigned off)
{
	uint32_t g;
	uint8_t v;

	do {
		g = rd32(d, R_CONFIG_GEN);
		v = d->base[R_CONFIG + off];
	} while (rd32(d, R_CONFIG_GEN) != g);
	return v;
}

uint32_t virtio_cfg32(struct virtio_dev *d, unsigned off)
{
	uint32_t g, v;

	do {
		g = rd32(d, R_CONFIG_GEN);
		v = rd32(d, R_CONFIG + off);
	} while (rd32(d, R_CONFIG_GEN) != g);
	return v;
}

uint64_t virtio_cfg64(struct virtio_dev *d, unsigned off)
{
	uint32_t g, lo, hi;

	do {
		g = rd32(d, R_CONFIG_GEN);
		lo = rd32(d, R_CONFIG + off);
		hi = rd32(d, R_CONFIG + off + 4);
	} while (rd32(d, R_CONFIG_GEN) != g);
	return (uint64_t)hi << 32 | lo;
}

/* ---- bring-up ---- */

static bool fail(struct virtio_dev *d, const char *why)
{
	printf_("virtio: %s at 0x%lx: %s\n", dev_name(d->device_id), d->addr, why);
	wr32(d, R_STATUS, rd32(d, R_STATUS) | S_FAILED);
	return false;
}

static bool setup_queue(struct virtio_dev *d, unsigned i)
{
	struct virtq *q = &d->q[i];

	wr32(d, R_QUEUE_SEL, i);
	if (rd32(d, R_QUEUE_READY))
		return fail(d, "queue already live after reset");
	uint32_t max = rd32(d, R_QUEUE_MAX);
	if (max == 0)
		return fail(d, "queue not available");
	if (vq_pages_used == VQ_PAGES)
		return fail(d, "out of queue memory");
	/* a split queue's size is a power of two */
	uint16_t size = VQ_MAX;
	while (size > max)
		size >>= 1;
	uint8_t *m = vq_mem[vq_pages_used++];
	memset(m, 0, 4096);
	q->size = size;
	q->desc = (struct vq_desc *)m;
	q->avail = (volatile struct vq_avail *)(m + 1024);
	q->used = (volatile struct vq_used *)(m + 2048);
	q->avail->flags = AVAIL_F_NO_INTERRUPT; /* we poll */
	q->last_used = q->avail_idx = 0;
	for (uint16_t j = 0; j < size; j++) {
		q->desc[j].next = (uint16_t)(j + 1);
		q->cookie[j] = NULL;
	}
	q->free_head = 0;
	q->num_free = size;

	uint64_t desc = (uint64_t)(uintptr_t)m, avail = desc + 1024, used = desc + 2048;
	wr32(d, R_QUEUE_NUM, size);
	wr32(d, R_DESC_LO, (uint32_t)desc);
	wr32(d, R_DESC_HI, (uint32_t)(desc >> 32));
	wr32(d, R_AVAIL_LO, (uint32_t)avail);
	wr32(d, R_AVAIL_HI, (uint32_t)(avail >> 32));
	wr32(d, R_USED_LO, (uint32_t)used);
	wr32(d, R_USED_HI, (uint32_t)(used >> 32));
	wr32(d, R_QUEUE_READY, 1);
	if (rd32(d, R_QUEUE_READY) != 1)
		return fail(d, "queue refused");
	return true;
}

static bool bring_up(struct virtio_dev *d, unsigned nq, uint64_t want)
{
	/* reset, and wait for it to take */
	wr32(d, R_STATUS, 0);
	for (unsigned i = 0; rd32(d, R_STATUS) != 0; i++) {
		if (i == 1000000)
			return fail(d, "does not reset");
		cpu_relax();
	}
	wr32(d, R_STATUS, S_ACK);
	wr32(d, R_STATUS, S_ACK | S_DRIVER);

	wr32(d, R_DEV_FEAT_SEL, 0);
	uint64_t lo = rd32(d, R_DEV_FEAT);
	wr32(d, R_DEV_FEAT_SEL, 1);
	d->offered = lo | (uint64_t)rd32(d, R_DEV_FEAT) << 32;
	if (!(d->offered & VIRTIO_F_VERSION_1))
		return fail(d, "device does not offer VIRTIO_F_VERSION_1");
	d->features = (d->offered & want) | VIRTIO_F_VERSION_1;
	wr32(d, R_DRV_FEAT_SEL, 0);
	wr32(d, R_DRV_FEAT, (uint32_t)d->features);
	wr32(d, R_DRV_FEAT_SEL, 1);
	wr32(d, R_DRV_FEAT, (uint32_t)(d->features >> 32));
	wr32(d, R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
	if (!(rd32(d, R_STATUS) & S_FEATURES_OK))
		return fail(d, "features refused (FEATURES_OK not kept)");

	if (nq > VIRTIO_MAX_Q)
		return fail(d, "too many queues asked for");
	for (unsigned i = 0; i < nq; i++)
		if (!setup_queue(d, i))
			return false;
	d->nq = nq;
	wr32(d, R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	if (rd32(d, R_STATUS) & S_NEEDS_RESET)
		return fail(d, "device needs reset after DRIVER_OK");
	return true;
}

int virtio_find(uint32_t device_id, unsigned nq, uint64_t want, struct virtio_dev *d)
{
	uint64_t addr, size;
	uint32_t irq;
	int ret = 0;

	memset(d, 0, sizeof(*d));
	for (int n = 0; mmio_entry(n, &addr, &size, &irq); n++) {
		bool taken = false;
		for (unsigned i = 0; i < nclaimed; i++)
			taken |= claimed[i] == addr;
		if (taken)
			continue;
		d->base = (volatile uint8_t *)(uintptr_t)addr;
		d->addr = addr;
		d->size = size;
		d->irq = irq;
		if (rd32(d, R_MAGIC) != MMIO_MAGIC || rd32(d, R_DEVICE_ID) != device_id)
			continue; /* not virtio, an empty slot (id 0), or another type */
		d->device_id = device_id;
		uint32_t version = rd32(d, R_VERSION);
		if (version != 2) {
			printf_("virtio: %s at 0x%lx is a %s virtio-mmio device (version %u): "
			        "only modern (version 2) is supported\n",
			        dev_name(device_id), addr, version == 1 ? "legacy" : "unknown",
			        version);
			ret = -1;
			continue;
		}
		if (nclaimed == VIRTIO_MAX_DEV || !bring_up(d, nq, want)) {
			ret = -1;
			continue;
		}
		claimed[nclaimed++] = addr;
		return 1;
	}
	return ret;
}

/* ---- queues ---- */

int virtq_add(struct virtio_dev *d, unsigned qi, const struct vq_buf *bufs, unsigned n,
              void *cookie)
{
	struct virtq *q = &d->q[qi];

	if (n == 0 || n > q->num_free)
		return -1;
	uint16_t head = q->free_head, i = head, last = head;
	for (unsigned k = 0; k < n; k++) {
		struct vq_desc *e = &q->desc[i];
		e->addr = (uint64_t)(uintptr_t)bufs[k].addr;
		e->len = bufs[k].len;
		e->flags = (uint16_t)((bufs[k].write ? VQ_DESC_F_WRITE : 0) |
		                      (k + 1 < n ? VQ_DESC_F_NEXT : 0));
		last = i;
		i = e->next;
	}
	q->free_head = q->desc[last].next;
	q->num_free = (uint16_t)(q->num_free - n);
	q->cookie[head] = cookie;
	q->avail->ring[q->avail_idx % q->size] = head;
	mb(); /* the entry before the index */
	q->avail_idx++;
	q->avail->idx = q->avail_idx;
	return head;
}

void virtq_kick(struct virtio_dev *d, unsigned qi)
{
	mb(); /* the available index out before reading the device's flag */
	if (!(d->q[qi].used->flags & USED_F_NO_NOTIFY))
		wr32(d, R_QUEUE_NOTIFY, qi);
}

bool virtq_get(struct virtio_dev *d, unsigned qi, void **cookie, uint32_t *len)
{
	struct virtq *q = &d->q[qi];

	if (q->used->idx == q->last_used)
		return false;
	mb(); /* the index before the entry */
	volatile struct vq_used_elem *e = &q->used->ring[q->last_used % q->size];
	uint16_t head = (uint16_t)(e->id % q->size);
	uint32_t l = e->len;
	q->last_used++;
	if (cookie)
		*cookie = q->cookie[head];
	if (len)
		*len = l;
	q->cookie[head] = NULL;
	/* the chain back on the free list */
	uint16_t i = head, n = 1;
	while ((q->desc[i].flags & VQ_DESC_F_NEXT) && n < q->size) {
		i = q->desc[i].next % q->size;
		n++;
	}
	q->desc[i].next = q->free_head;
	q->free_head = head;
	q->num_free = (uint16_t)(q->num_free + n);
	return true;
}

uint32_t virtio_request(struct virtio_dev *d, unsigned qi, const struct vq_buf *bufs, unsigned n)
{
	static char mine; /* the cookie of synchronous requests */
	void *c;
	uint32_t len;

	if (virtq_add(d, qi, bufs, n, &mine) < 0) {
		printf_("virtio: %s queue %u full\n", dev_name(d->device_id), qi);
		poweroff(VIRTIO_TIMEOUT_STATUS);
	}
	virtq_kick(d, qi);
	/* A deadline in TSC time, but also a minimum number of polls: a VM
	 * paused (or migrated) mid-request sees its TSC jump, not its loop. */
	uint64_t start = rdtsc(), limit = VIRTIO_TIMEOUT_MS * tsc_khz;
	for (uint64_t polls = 0;; polls++) {
		while (virtq_get(d, qi, &c, &len))
			if (c == &mine)
				return len;
		if ((polls & 0xffff) == 0xffff && (rd32(d, R_STATUS) & S_NEEDS_RESET)) {
			printf_("virtio: %s at 0x%lx needs a reset (it found a bad ring)\n",
			        dev_name(d->device_id), d->addr);
			poweroff(VIRTIO_TIMEOUT_STATUS);
		}
		if (polls >= 100000 && rdtsc() - start > limit)
			break;
		cpu_relax();
	}
	printf_("virtio: timeout: %s at 0x%lx queue %u did not answer in %u ms (status 0x%x)\n",
	        dev_name(d->device_id), d->addr, qi, VIRTIO_TIMEOUT_MS, rd32(d, R_STATUS));
	poweroff(VIRTIO_TIMEOUT_STATUS);
}
