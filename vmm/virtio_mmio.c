#include "virtio_mmio.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define R_MAGIC        0x000
#define R_VERSION      0x004
#define R_DEVICE_ID    0x008
#define R_VENDOR_ID    0x00c
#define R_DEV_FEAT     0x010
#define R_DEV_FEAT_SEL 0x014
#define R_DRV_FEAT     0x020
#define R_DRV_FEAT_SEL 0x024
#define R_QUEUE_SEL    0x030
#define R_QUEUE_MAX    0x034
#define R_QUEUE_NUM    0x038
#define R_QUEUE_READY  0x044
#define R_QUEUE_NOTIFY 0x050
#define R_ISR          0x060
#define R_ISR_ACK      0x064
#define R_STATUS       0x070
#define R_DESC_LO      0x080
#define R_DESC_HI      0x084
#define R_AVAIL_LO     0x090
#define R_AVAIL_HI     0x094
#define R_USED_LO      0x0a0
#define R_USED_HI      0x0a4
#define R_CONFIG_GEN   0x0fc
#define R_CONFIG       0x100

#define S_FEATURES_OK   8
#define DESC_F_NEXT     1
#define DESC_F_WRITE    2
#define DESC_F_INDIRECT 4

struct vq {
	uint16_t num;
	bool ready;
	uint64_t desc, avail, used;
	uint16_t last_avail, used_idx;
};

struct vmm_virtio {
	struct vmm_device dev;
	pthread_mutex_t lock;
	const struct virtio_backend_ops *ops;
	void *be;
	char name[16];
	uint64_t dev_features, drv_features;
	uint32_t dev_feat_sel, drv_feat_sel, queue_sel, status, isr, config_gen;
	int irq_level;
	struct vq q[VIRTIO_MAX_QUEUES];
};

static void update_irq(struct vmm_virtio *v)
{
	int level = v->isr != 0;

	if (level != v->irq_level) {
		v->irq_level = level;
		if (v->dev.bus && v->dev.bus->irq_set)
			v->dev.bus->irq_set(v->dev.bus->irq_arg, v->dev.gsi, level);
	}
}

static void needs_reset(struct vmm_virtio *v, const char *why)
{
	if (!(v->status & VIRTIO_STATUS_NEEDS_RESET))
		log_warn("%s: guest driver error: %s; the device needs a reset", v->name, why);
	v->status |= VIRTIO_STATUS_NEEDS_RESET;
	v->isr |= 2;
	update_irq(v);
}

static void reset(struct vmm_virtio *v)
{
	v->status = v->isr = 0;
	v->drv_features = 0;
	v->dev_feat_sel = v->drv_feat_sel = v->queue_sel = 0;
	memset(v->q, 0, sizeof(v->q));
	if (v->ops->reset)
		v->ops->reset(v->be);
	update_irq(v);
}

uint64_t vmm_virtio_driver_features(const struct vmm_virtio *v)
{
	return v->drv_features;
}

void vmm_virtio_lock(struct vmm_virtio *v)
{
	pthread_mutex_lock(&v->lock);
}

void vmm_virtio_unlock(struct vmm_virtio *v)
{
	pthread_mutex_unlock(&v->lock);
}

struct vmm_virtio *vmm_virtio_of(struct vmm_device *d)
{
	return d->priv;
}

void *vmm_virtio_backend(struct vmm_device *d)
{
	return ((struct vmm_virtio *)d->priv)->be;
}

static uint16_t rd16(struct vmm_mem *m, uint64_t gpa, bool *ok)
{
	uint16_t *p = vmm_gpa(m, gpa, 2);

	if (!p) {
		*ok = false;
		return 0;
	}
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

int vmm_virtio_pop(struct vmm_virtio *v, unsigned qi, struct vq_chain *c)
{
	struct vmm_mem *m = v->dev.bus->mem;
	struct vq *q = &v->q[qi];
	bool ok = true;

	if (qi >= v->ops->nqueues || !q->ready || (v->status & VIRTIO_STATUS_NEEDS_RESET))
		return 0;
	uint16_t avail_idx = rd16(m, q->avail + 2, &ok);
	if (!ok) {
		needs_reset(v, "available ring outside guest memory");
		return -1;
	}
	if (avail_idx == q->last_avail)
		return 0;
	if ((uint16_t)(avail_idx - q->last_avail) > q->num) {
		needs_reset(v, "available index ran ahead of the queue size");
		return -1;
	}
	uint16_t head = rd16(m, q->avail + 4 + 2ull * (q->last_avail % q->num), &ok);
	if (!ok || head >= q->num) {
		needs_reset(v, "available ring entry out of range");
		return -1;
	}
	c->head = head;
	c->n = 0;
	uint16_t i = head;
	for (unsigned steps = 0;; steps++) {
		struct {
			uint64_t addr;
			uint32_t len;
			uint16_t flags, next;
		} d;
		void *dp = vmm_gpa(m, q->desc + 16ull * i, 16);
		if (!dp) {
			needs_reset(v, "descriptor table outside guest memory");
			return -1;
		}
		memcpy(&d, dp, 16);
		if (steps >= q->num || c->n == VIRTIO_MAX_CHAIN) {
			needs_reset(v, "descriptor chain loops or is too long");
			return -1;
		}
		if (d.flags & DESC_F_INDIRECT) {
			needs_reset(v, "indirect descriptor (not negotiated)");
			return -1;
		}
		void *buf = d.len ? vmm_gpa(m, d.addr, d.len) : NULL;
		if (d.len && !buf) {
			needs_reset(v, "buffer outside guest memory");
			return -1;
		}
		c->iov[c->n].iov_base = buf;
		c->iov[c->n].iov_len = d.len;
		c->writable[c->n] = d.flags & DESC_F_WRITE;
		c->n++;
		if (!(d.flags & DESC_F_NEXT))
			break;
		if (d.next >= q->num) {
			needs_reset(v, "descriptor next index out of range");
			return -1;
		}
		i = d.next;
	}
	q->last_avail++;
	return 1;
}

void vmm_virtio_push(struct vmm_virtio *v, unsigned qi, const struct vq_chain *c, uint32_t len)
{
	struct vmm_mem *m = v->dev.bus->mem;
	struct vq *q = &v->q[qi];
	uint32_t *e = vmm_gpa(m, q->used + 4 + 8ull * (q->used_idx % q->num), 8);
	uint16_t *idx = vmm_gpa(m, q->used + 2, 2);

	if (!e || !idx) {
		needs_reset(v, "used ring outside guest memory");
		return;
	}
	e[0] = c->head;
	e[1] = len;
	q->used_idx++;
	__atomic_store_n(idx, q->used_idx, __ATOMIC_RELEASE);
	v->isr |= 1;
	update_irq(v);
}

/* A ready queue must have a power-of-two size and rings inside RAM. */
static bool queue_valid(struct vmm_mem *m, const struct vq *q)
{
	if (!q->num || q->num > VIRTIO_QUEUE_MAX || (q->num & (q->num - 1)))
		return false;
	return vmm_gpa(m, q->desc, 16ull * q->num) && vmm_gpa(m, q->avail, 6 + 2ull * q->num) &&
	       vmm_gpa(m, q->used, 6 + 8ull * q->num);
}

static void mmio_locked(struct vmm_device *d, uint64_t off, bool write, uint8_t *data,
                        unsigned size);

static void mmio(struct vmm_device *d, uint64_t off, bool write, uint8_t *data, unsigned size)
{
	struct vmm_virtio *v = d->priv;

	pthread_mutex_lock(&v->lock);
	mmio_locked(d, off, write, data, size);
	pthread_mutex_unlock(&v->lock);
}

static void mmio_locked(struct vmm_device *d, uint64_t off, bool write, uint8_t *data,
                        unsigned size)
{
	struct vmm_virtio *v = d->priv;
	struct vq *q = &v->q[v->queue_sel < VIRTIO_MAX_QUEUES ? v->queue_sel : 0];
	bool qok = v->queue_sel < v->ops->nqueues;
	uint32_t val = 0;

	if (off >= R_CONFIG) {
		if (!write && v->ops->config_read)
			v->ops->config_read(v->be, off - R_CONFIG, data, size);
		else if (!write)
			memset(data, 0, size);
		return; /* config writes: no writable fields offered */
	}
	if (size != 4) { /* registers are 32-bit */
		if (!write)
			memset(data, 0, size);
		return;
	}
	memcpy(&val, data, 4);
	if (!write) {
		switch (off) {
		case R_MAGIC:
			val = 0x74726976;
			break;
		case R_VERSION:
			val = 2;
			break;
		case R_DEVICE_ID:
			val = v->ops->device_id;
			break;
		case R_VENDOR_ID:
			val = 0x004b4d56;
			break; /* "VMK" */
		case R_DEV_FEAT:
			val = v->dev_feat_sel < 2
			              ? (uint32_t)(v->dev_features >> (32 * v->dev_feat_sel))
			              : 0;
			break;
		case R_QUEUE_MAX:
			val = qok ? VIRTIO_QUEUE_MAX : 0;
			break;
		case R_QUEUE_READY:
			val = qok && q->ready;
			break;
		case R_ISR:
			val = v->isr;
			break;
		case R_STATUS:
			val = v->status;
			break;
		case R_CONFIG_GEN:
			val = v->config_gen;
			break;
		default:
			val = 0;
		}
		memcpy(data, &val, 4);
		return;
	}
	switch (off) {
	case R_DEV_FEAT_SEL:
		v->dev_feat_sel = val;
		break;
	case R_DRV_FEAT_SEL:
		v->drv_feat_sel = val;
		break;
	case R_DRV_FEAT:
		if (v->drv_feat_sel < 2 && !(v->status & S_FEATURES_OK)) {
			unsigned sh = 32 * v->drv_feat_sel;
			v->drv_features =
			        (v->drv_features & ~(0xffffffffull << sh)) | ((uint64_t)val << sh);
		}
		break;
	case R_QUEUE_SEL:
		v->queue_sel = val;
		break;
	case R_QUEUE_NUM:
		if (qok && !q->ready)
			q->num = (uint16_t)(val <= VIRTIO_QUEUE_MAX ? val : 0);
		break;
	case R_DESC_LO:
		if (qok && !q->ready)
			q->desc = (q->desc & ~0xffffffffull) | val;
		break;
	case R_DESC_HI:
		if (qok && !q->ready)
			q->desc = (q->desc & 0xffffffffull) | (uint64_t)val << 32;
		break;
	case R_AVAIL_LO:
		if (qok && !q->ready)
			q->avail = (q->avail & ~0xffffffffull) | val;
		break;
	case R_AVAIL_HI:
		if (qok && !q->ready)
			q->avail = (q->avail & 0xffffffffull) | (uint64_t)val << 32;
		break;
	case R_USED_LO:
		if (qok && !q->ready)
			q->used = (q->used & ~0xffffffffull) | val;
		break;
	case R_USED_HI:
		if (qok && !q->ready)
			q->used = (q->used & 0xffffffffull) | (uint64_t)val << 32;
		break;
	case R_QUEUE_READY:
		if (!qok)
			break;
		if (val == 1 && !queue_valid(v->dev.bus->mem, q)) {
			needs_reset(v,
			            "queue size not a power of two or rings outside guest memory");
			break;
		}
		q->ready = val == 1;
		break;
	case R_QUEUE_NOTIFY:
		if (val < v->ops->nqueues && v->q[val].ready && (v->status & 4) &&
		    !(v->status & VIRTIO_STATUS_NEEDS_RESET))
			v->ops->notify(v->be, v, val);
		break;
	case R_ISR_ACK:
		v->isr &= ~val;
		update_irq(v);
		break;
	case R_STATUS:
		if (val == 0) {
			reset(v);
			break;
		}
		/* FEATURES_OK only with VERSION_1 and nothing the device lacks */
		if ((val & S_FEATURES_OK) && !(v->status & S_FEATURES_OK) &&
		    (!(v->drv_features & VIRTIO_F_VERSION_1) ||
		     (v->drv_features & ~v->dev_features)))
			val &= ~(uint32_t)S_FEATURES_OK;
		v->status = val | (v->status & VIRTIO_STATUS_NEEDS_RESET);
		break;
	default:
		break;
	}
}

static void dev_reset(struct vmm_device *d)
{
	reset(d->priv);
}

static int dev_save(struct vmm_device *d, struct sbuf *o)
{
	struct vmm_virtio *v = d->priv;

	sbuf_u64(o, v->drv_features);
	sbuf_u32(o, v->dev_feat_sel);
	sbuf_u32(o, v->drv_feat_sel);
	sbuf_u32(o, v->queue_sel);
	sbuf_u32(o, v->status);
	sbuf_u32(o, v->isr);
	sbuf_u32(o, v->config_gen);
	for (unsigned i = 0; i < VIRTIO_MAX_QUEUES; i++) {
		const struct vq *q = &v->q[i];
		sbuf_u16(o, q->num);
		sbuf_u8(o, q->ready);
		sbuf_u64(o, q->desc);
		sbuf_u64(o, q->avail);
		sbuf_u64(o, q->used);
		sbuf_u16(o, q->last_avail);
		sbuf_u16(o, q->used_idx);
	}
	if (v->ops->save)
		v->ops->save(v->be, o);
	return o->err;
}

static int dev_restore(struct vmm_device *d, struct rbuf *in)
{
	struct vmm_virtio *v = d->priv;
	struct vmm_virtio n = *v;

	n.drv_features = rbuf_u64(in);
	n.dev_feat_sel = rbuf_u32(in);
	n.drv_feat_sel = rbuf_u32(in);
	n.queue_sel = rbuf_u32(in);
	n.status = rbuf_u32(in);
	n.isr = rbuf_u32(in);
	n.config_gen = rbuf_u32(in);
	if (n.drv_features & ~n.dev_features || n.isr > 3 || n.status > 0xff)
		return -EBADMSG;
	for (unsigned i = 0; i < VIRTIO_MAX_QUEUES; i++) {
		struct vq *q = &n.q[i];
		q->num = rbuf_u16(in);
		uint8_t ready = rbuf_u8(in);
		q->desc = rbuf_u64(in);
		q->avail = rbuf_u64(in);
		q->used = rbuf_u64(in);
		q->last_avail = rbuf_u16(in);
		q->used_idx = rbuf_u16(in);
		if (in->err || ready > 1 || (ready && !queue_valid(v->dev.bus->mem, q)))
			return -EBADMSG;
		q->ready = ready;
	}
	if (in->err)
		return -EBADMSG;
	if (v->ops->restore) {
		int ret = v->ops->restore(v->be, in);
		if (ret < 0)
			return ret;
	}
	if (rbuf_done(in) < 0)
		return -EBADMSG;
	n.irq_level = v->irq_level;
	n.lock = v->lock; /* the live mutex, not a copy's */
	*v = n;
	update_irq(v);
	return 0;
}

static void dev_destroy(struct vmm_device *d)
{
	struct vmm_virtio *v = d->priv;

	if (v->ops->destroy)
		v->ops->destroy(v->be);
	pthread_mutex_destroy(&v->lock);
	free(v);
}

int vmm_virtio_create(struct vmm_device **dp, struct vmm_bus *bus, uint64_t mmio_base, uint32_t gsi,
                      const struct virtio_backend_ops *ops, void *be, uint64_t features,
                      const char *name)
{
	static const struct vmm_device_ops dev_ops = {
		.name = "virtio-mmio",
		.reset = dev_reset,
		.save = dev_save,
		.restore = dev_restore,
		.mmio = mmio,
		.destroy = dev_destroy,
	};
	struct vmm_virtio *v = calloc(1, sizeof(*v));

	if (!v)
		return -ENOMEM;
	pthread_mutex_init(&v->lock, NULL);
	v->ops = ops;
	v->be = be;
	v->dev_features = features | VIRTIO_F_VERSION_1;
	snprintf(v->name, sizeof(v->name), "%s", name);
	v->dev.ops = &dev_ops;
	v->dev.mmio_base = mmio_base;
	v->dev.mmio_len = VIRTIO_MMIO_SIZE;
	v->dev.gsi = gsi;
	v->dev.bus = bus;
	v->dev.priv = v;
	*dp = &v->dev;
	return 0;
}
