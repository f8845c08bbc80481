#include "virtio_mmio.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define STATE_VERSION 1

/* Status bits a driver may set (NEEDS_RESET is the device's). */
#define STATUS_DRIVER_BITS                                                                         \
	(VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK |              \
	 VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_FAILED)
#define STATUS_LIVE (VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK)

#define TRANSPORT_FEATURES (VIRTIO_F_VERSION_1 | VIRTIO_RING_F_INDIRECT_DESC)

/* The registers a save carries (and a restore validates as a whole). */
struct regs {
	uint64_t drv_features;
	uint32_t dev_feat_sel, drv_feat_sel, queue_sel, config_gen;
	uint8_t status, isr;
	struct vmm_vq q[VIRTIO_MAX_QUEUES];
};

struct vmm_virtio {
	struct vmm_device dev;
	struct vmm_device_ops dev_ops; /* named after the backend */
	pthread_mutex_t lock;
	const struct vmm_virtio_backend_ops *ops;
	void *be;
	uint64_t dev_features;
	struct regs r;
	int irq_level;
};

static void set_irq(struct vmm_virtio *v, bool force)
{
	int level = v->r.isr != 0;

	if (level == v->irq_level && !force)
		return;
	v->irq_level = level;
	if (v->dev.bus && v->dev.bus->irq_set)
		v->dev.bus->irq_set(v->dev.bus->irq_arg, v->dev.gsi, level);
}

void vmm_virtio_needs_reset(struct vmm_virtio *v, const char *why)
{
	if (!(v->r.status & VIRTIO_STATUS_NEEDS_RESET))
		log_warn("%s at 0x%llx: guest driver error: %s; the device needs a reset",
		         v->ops->name, (unsigned long long)v->dev.mmio_base, why);
	v->r.status |= VIRTIO_STATUS_NEEDS_RESET;
	v->r.isr |= VIRTIO_MMIO_INT_CONFIG;
	set_irq(v, false);
}

static void reset_locked(struct vmm_virtio *v)
{
	memset(&v->r, 0, sizeof(v->r));
	if (v->ops->reset)
		v->ops->reset(v->be);
	set_irq(v, false);
}

bool vmm_virtio_queue_live(const struct vmm_virtio *v, unsigned q)
{
	return q < v->ops->nqueues && v->r.q[q].ready &&
	       (v->r.status & (STATUS_LIVE | VIRTIO_STATUS_NEEDS_RESET)) == STATUS_LIVE;
}

int vmm_virtio_pop(struct vmm_virtio *v, unsigned q, struct vmm_vq_chain *c)
{
	const char *why = "?";
	int ret;

	if (!vmm_virtio_queue_live(v, q))
		return 0;
	v->r.q[q].indirect = v->r.drv_features & VIRTIO_RING_F_INDIRECT_DESC;
	ret = vmm_vq_pop(&v->r.q[q], v->dev.bus->mem, c, &why);
	if (ret < 0)
		vmm_virtio_needs_reset(v, why);
	return ret;
}

void vmm_virtio_unpop(struct vmm_virtio *v, unsigned q)
{
	vmm_vq_unpop(&v->r.q[q]);
}

void vmm_virtio_push(struct vmm_virtio *v, unsigned q, const struct vmm_vq_chain *c, uint32_t len)
{
	struct vmm_vq *vq = &v->r.q[q];

	/* what the device wrote into guest memory goes into the dirty log
	 * before the guest can see it used (migration must not miss it) */
	for (unsigned i = c->nr; i < c->nr + c->nw; i++) /* all of it: len may not say where */
		vmm_mem_mark_dirty(v->dev.bus->mem, c->gpa[i], c->iov[i].iov_len);
	if (vmm_vq_push(vq, v->dev.bus->mem, c->head, len) < 0) {
		vmm_virtio_needs_reset(v, "used ring outside guest memory");
		return;
	}
	if (vmm_vq_want_irq(vq, v->dev.bus->mem)) {
		v->r.isr |= VIRTIO_MMIO_INT_VRING;
		set_irq(v, false);
	}
}

uint64_t vmm_virtio_driver_features(const struct vmm_virtio *v)
{
	return v->r.drv_features;
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

static void set_lo(uint64_t *x, uint32_t val)
{
	*x = (*x & ~0xffffffffull) | val;
}

static void set_hi(uint64_t *x, uint32_t val)
{
	*x = (*x & 0xffffffffull) | (uint64_t)val << 32;
}

static void notify_queue(struct vmm_virtio *v, unsigned q)
{
	if (vmm_virtio_queue_live(v, q) && v->ops->notify)
		v->ops->notify(v->be, v, q);
}

static void write_status(struct vmm_virtio *v, uint32_t val)
{
	uint8_t old = v->r.status, s = (uint8_t)(val & STATUS_DRIVER_BITS);

	if (val == 0) {
		reset_locked(v);
		return;
	}
	/* FEATURES_OK only with VERSION_1 and nothing the device lacks */
	if ((s & VIRTIO_STATUS_FEATURES_OK) && !(old & VIRTIO_STATUS_FEATURES_OK) &&
	    (!(v->r.drv_features & VIRTIO_F_VERSION_1) || (v->r.drv_features & ~v->dev_features)))
		s &= (uint8_t)~VIRTIO_STATUS_FEATURES_OK;
	v->r.status = (uint8_t)(s | (old & VIRTIO_STATUS_NEEDS_RESET));
}

static void write_queue_ready(struct vmm_virtio *v, struct vmm_vq *q, uint32_t val)
{
	if (val == 0) {
		q->ready = false;
		return;
	}
	if (q->ready)
		return;
	if (vmm_vq_check(q, v->dev.bus->mem) < 0) {
		vmm_virtio_needs_reset(v, "queue size not a power of two <= 256, or rings "
		                          "misaligned or outside guest memory");
		return;
	}
	q->last_avail = q->used_idx = 0;
	q->ready = true;
}

static uint32_t read_reg(struct vmm_virtio *v, uint64_t off)
{
	bool qok = v->r.queue_sel < v->ops->nqueues;
	const struct vmm_vq *q = qok ? &v->r.q[v->r.queue_sel] : NULL;

	switch (off) {
	case VIRTIO_MMIO_MAGIC_VALUE:
		return VIRTIO_MMIO_MAGIC;
	case VIRTIO_MMIO_VERSION:
		return 2;
	case VIRTIO_MMIO_DEVICE_ID:
		return v->ops->device_id;
	case VIRTIO_MMIO_VENDOR_ID:
		return VIRTIO_MMIO_VENDOR;
	case VIRTIO_MMIO_DEVICE_FEATURES:
		if (v->r.dev_feat_sel > 1)
			return 0;
		return (uint32_t)(v->dev_features >> (32 * v->r.dev_feat_sel));
	case VIRTIO_MMIO_QUEUE_NUM_MAX:
		return qok ? VMM_VQ_MAX_SIZE : 0;
	case VIRTIO_MMIO_QUEUE_READY:
		return qok && q->ready;
	case VIRTIO_MMIO_INTERRUPT_STATUS:
		return v->r.isr;
	case VIRTIO_MMIO_STATUS:
		return v->r.status;
	case VIRTIO_MMIO_QUEUE_DESC_LOW:
		return qok ? (uint32_t)q->desc : 0;
	case VIRTIO_MMIO_QUEUE_DESC_HIGH:
		return qok ? (uint32_t)(q->desc >> 32) : 0;
	case VIRTIO_MMIO_QUEUE_DRIVER_LOW:
		return qok ? (uint32_t)q->avail : 0;
	case VIRTIO_MMIO_QUEUE_DRIVER_HIGH:
		return qok ? (uint32_t)(q->avail >> 32) : 0;
	case VIRTIO_MMIO_QUEUE_DEVICE_LOW:
		return qok ? (uint32_t)q->used : 0;
	case VIRTIO_MMIO_QUEUE_DEVICE_HIGH:
		return qok ? (uint32_t)(q->used >> 32) : 0;
	case VIRTIO_MMIO_SHM_LEN_LOW:
	case VIRTIO_MMIO_SHM_LEN_HIGH:
	case VIRTIO_MMIO_SHM_BASE_LOW:
	case VIRTIO_MMIO_SHM_BASE_HIGH:
		return 0xffffffff; /* no such region */
	case VIRTIO_MMIO_CONFIG_GENERATION:
		return v->r.config_gen;
	default:
		return 0;
	}
}

static void write_reg(struct vmm_virtio *v, uint64_t off, uint32_t val)
{
	bool qok = v->r.queue_sel < v->ops->nqueues;
	struct vmm_vq *q = qok ? &v->r.q[v->r.queue_sel] : NULL;
	bool qw = qok && !q->ready; /* queue registers writable */

	switch (off) {
	case VIRTIO_MMIO_DEVICE_FEAT_SEL:
		v->r.dev_feat_sel = val;
		break;
	case VIRTIO_MMIO_DRIVER_FEAT_SEL:
		v->r.drv_feat_sel = val;
		break;
	case VIRTIO_MMIO_DRIVER_FEATURES:
		if (v->r.drv_feat_sel > 1 || (v->r.status & VIRTIO_STATUS_FEATURES_OK))
			break;
		if (v->r.drv_feat_sel)
			set_hi(&v->r.drv_features, val);
		else
			set_lo(&v->r.drv_features, val);
		break;
	case VIRTIO_MMIO_QUEUE_SEL:
		v->r.queue_sel = val;
		break;
	case VIRTIO_MMIO_QUEUE_NUM:
		if (qw && val <= VMM_VQ_MAX_SIZE)
			q->size = (uint16_t)val;
		break;
	case VIRTIO_MMIO_QUEUE_READY:
		if (qok)
			write_queue_ready(v, q, val);
		break;
	case VIRTIO_MMIO_QUEUE_NOTIFY:
		notify_queue(v, val & 0xffff);
		break;
	case VIRTIO_MMIO_INTERRUPT_ACK:
		v->r.isr &= (uint8_t)~val;
		set_irq(v, false);
		break;
	case VIRTIO_MMIO_STATUS:
		write_status(v, val);
		break;
	case VIRTIO_MMIO_QUEUE_DESC_LOW:
		if (qw)
			set_lo(&q->desc, val);
		break;
	case VIRTIO_MMIO_QUEUE_DESC_HIGH:
		if (qw)
			set_hi(&q->desc, val);
		break;
	case VIRTIO_MMIO_QUEUE_DRIVER_LOW:
		if (qw)
			set_lo(&q->avail, val);
		break;
	case VIRTIO_MMIO_QUEUE_DRIVER_HIGH:
		if (qw)
			set_hi(&q->avail, val);
		break;
	case VIRTIO_MMIO_QUEUE_DEVICE_LOW:
		if (qw)
			set_lo(&q->used, val);
		break;
	case VIRTIO_MMIO_QUEUE_DEVICE_HIGH:
		if (qw)
			set_hi(&q->used, val);
		break;
	default:
		break; /* read-only or unknown: ignored */
	}
}

static void dev_mmio(struct vmm_device *d, uint64_t off, bool write, uint8_t *data, unsigned size)
{
	struct vmm_virtio *v = d->priv;
	uint32_t val;

	pthread_mutex_lock(&v->lock);
	if (off >= VIRTIO_MMIO_CONFIG) {
		if (size != 1 && size != 2 && size != 4 && size != 8) {
			if (!write)
				memset(data, 0, size);
		} else if (!write) {
			memset(data, 0, size);
			if (v->ops->config_read)
				v->ops->config_read(v->be, off - VIRTIO_MMIO_CONFIG, data, size);
		} else if (v->ops->config_write) {
			v->ops->config_write(v->be, off - VIRTIO_MMIO_CONFIG, data, size);
		}
	} else if (size != 4 || off % 4) {
		if (!write)
			memset(data, 0, size);
	} else if (!write) {
		val = read_reg(v, off);
		memcpy(data, &val, 4);
	} else {
		memcpy(&val, data, 4);
		write_reg(v, off, val);
	}
	pthread_mutex_unlock(&v->lock);
}

static void dev_reset(struct vmm_device *d)
{
	struct vmm_virtio *v = d->priv;

	pthread_mutex_lock(&v->lock);
	reset_locked(v);
	pthread_mutex_unlock(&v->lock);
}

/* Layout (version 1): version u8, device id u32, queues u8; driver
 * features u64; device and driver feature selectors, queue selector,
 * config generation (u32 each); status, interrupt status (u8); per queue:
 * size u16, ready u8, desc, driver, device (u64), last_avail_idx, used_idx
 * (u16); the backend's state as length u32 and bytes. */
static int dev_save(struct vmm_device *d, struct sbuf *o)
{
	struct vmm_virtio *v = d->priv;
	struct sbuf be;
	int ret = 0;

	sbuf_init(&be);
	pthread_mutex_lock(&v->lock);
	sbuf_u8(o, STATE_VERSION);
	sbuf_u32(o, v->ops->device_id);
	sbuf_u8(o, (uint8_t)v->ops->nqueues);
	sbuf_u64(o, v->r.drv_features);
	sbuf_u32(o, v->r.dev_feat_sel);
	sbuf_u32(o, v->r.drv_feat_sel);
	sbuf_u32(o, v->r.queue_sel);
	sbuf_u32(o, v->r.config_gen);
	sbuf_u8(o, v->r.status);
	sbuf_u8(o, v->r.isr);
	for (unsigned i = 0; i < v->ops->nqueues; i++) {
		const struct vmm_vq *q = &v->r.q[i];
		sbuf_u16(o, q->size);
		sbuf_u8(o, q->ready);
		sbuf_u64(o, q->desc);
		sbuf_u64(o, q->avail);
		sbuf_u64(o, q->used);
		sbuf_u16(o, q->last_avail);
		sbuf_u16(o, q->used_idx);
	}
	if (v->ops->save)
		ret = v->ops->save(v->be, &be);
	pthread_mutex_unlock(&v->lock);
	if (ret == 0 && be.err)
		ret = be.err;
	if (ret == 0 && be.len > UINT32_MAX)
		ret = -EOVERFLOW;
	if (ret == 0) {
		sbuf_u32(o, (uint32_t)be.len);
		sbuf_put(o, be.data, be.len);
		ret = o->err;
	}
	sbuf_free(&be);
	return ret;
}

static int check_regs(const struct vmm_virtio *v, const struct regs *r)
{
	if (r->drv_features & ~v->dev_features)
		return -EBADMSG;
	if (r->status & ~(STATUS_DRIVER_BITS | VIRTIO_STATUS_NEEDS_RESET))
		return -EBADMSG;
	if ((r->status & VIRTIO_STATUS_FEATURES_OK) && !(r->drv_features & VIRTIO_F_VERSION_1))
		return -EBADMSG;
	if (r->isr & ~(VIRTIO_MMIO_INT_VRING | VIRTIO_MMIO_INT_CONFIG))
		return -EBADMSG;
	for (unsigned i = 0; i < v->ops->nqueues; i++) {
		const struct vmm_vq *q = &r->q[i];
		if (q->size > VMM_VQ_MAX_SIZE)
			return -EBADMSG;
		if (!q->ready)
			continue;
		if (vmm_vq_check(q, v->dev.bus->mem) < 0)
			return -EBADMSG;
		/* requests complete synchronously: none in flight */
		if (q->last_avail != q->used_idx)
			return -EBADMSG;
	}
	return 0;
}

static int dev_restore(struct vmm_device *d, struct rbuf *in)
{
	struct vmm_virtio *v = d->priv;
	struct regs r;
	struct rbuf be;
	int ret;

	memset(&r, 0, sizeof(r));
	if (rbuf_u8(in) != STATE_VERSION || rbuf_u32(in) != v->ops->device_id ||
	    rbuf_u8(in) != v->ops->nqueues)
		return -EBADMSG;
	r.drv_features = rbuf_u64(in);
	r.dev_feat_sel = rbuf_u32(in);
	r.drv_feat_sel = rbuf_u32(in);
	r.queue_sel = rbuf_u32(in);
	r.config_gen = rbuf_u32(in);
	r.status = rbuf_u8(in);
	r.isr = rbuf_u8(in);
	for (unsigned i = 0; i < v->ops->nqueues; i++) {
		struct vmm_vq *q = &r.q[i];
		q->size = rbuf_u16(in);
		uint8_t ready = rbuf_u8(in);
		q->desc = rbuf_u64(in);
		q->avail = rbuf_u64(in);
		q->used = rbuf_u64(in);
		q->last_avail = rbuf_u16(in);
		q->used_idx = rbuf_u16(in);
		if (ready > 1)
			return -EBADMSG;
		q->ready = ready;
	}
	uint32_t be_len = rbuf_u32(in);
	if (in->err || be_len != in->len - in->off)
		return -EBADMSG;
	rbuf_init(&be, in->data + in->off, be_len);
	in->off += be_len;
	if (rbuf_done(in) < 0)
		return -EBADMSG;

	pthread_mutex_lock(&v->lock);
	ret = check_regs(v, &r);
	if (ret == 0 && v->ops->restore)
		ret = v->ops->restore(v->be, &be);
	else if (ret == 0 && be_len)
		ret = -EBADMSG; /* state for a backend that keeps none */
	if (ret == 0) {
		v->r = r;
		set_irq(v, true); /* the line as the state has it */
	}
	pthread_mutex_unlock(&v->lock);
	return ret < 0 ? ret : 0;
}

static void dev_destroy(struct vmm_device *d)
{
	struct vmm_virtio *v = d->priv;

	if (v->ops->destroy)
		v->ops->destroy(v->be);
	pthread_mutex_destroy(&v->lock);
	free(v);
}

int vmm_virtio_create(struct vmm_device **d, struct vmm_bus *bus, uint64_t mmio_base, uint32_t gsi,
                      const struct vmm_virtio_backend_ops *ops, void *be)
{
	struct vmm_virtio *v;
	int ret;

	if (!ops || !ops->nqueues || ops->nqueues > VIRTIO_MAX_QUEUES || !bus || !bus->mem)
		return -EINVAL;
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	ret = -pthread_mutex_init(&v->lock, NULL);
	if (ret < 0) {
		free(v);
		return ret;
	}
	v->ops = ops;
	v->be = be;
	v->dev_features = (ops->features ? ops->features(be) : 0) | TRANSPORT_FEATURES;
	v->dev_ops = (struct vmm_device_ops){
		.name = ops->name,
		.reset = dev_reset,
		.save = dev_save,
		.restore = dev_restore,
		.mmio = dev_mmio,
		.destroy = dev_destroy,
	};
	v->dev.ops = &v->dev_ops;
	v->dev.mmio_base = mmio_base;
	v->dev.mmio_len = VIRTIO_MMIO_SIZE;
	v->dev.gsi = gsi;
	v->dev.bus = bus;
	v->dev.priv = v;
	*d = &v->dev;
	return 0;
}
