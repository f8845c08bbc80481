#include "power.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define STATE_VERSION 1

struct power {
	struct vmm_device dev;
	pthread_mutex_t lock;
	void (*cb)(void *arg, int status);
	void *arg;
	bool powered_off;
	uint8_t status;
};

static void power_reset(struct vmm_device *d)
{
	struct power *p = d->priv;

	pthread_mutex_lock(&p->lock);
	p->powered_off = false;
	p->status = 0;
	pthread_mutex_unlock(&p->lock);
}

/* Layout (version 1): version, powered off (0/1), status (u8 each). */
static int power_save(struct vmm_device *d, struct sbuf *out)
{
	struct power *p = d->priv;

	pthread_mutex_lock(&p->lock);
	sbuf_u8(out, STATE_VERSION);
	sbuf_u8(out, p->powered_off);
	sbuf_u8(out, p->status);
	pthread_mutex_unlock(&p->lock);
	return out->err;
}

static int power_restore(struct vmm_device *d, struct rbuf *in)
{
	struct power *p = d->priv;
	uint8_t version = rbuf_u8(in), off = rbuf_u8(in), status = rbuf_u8(in);

	/* a status is only ever recorded with the power-off */
	if (rbuf_done(in) < 0 || version != STATE_VERSION || off > 1 || (!off && status))
		return -EBADMSG;
	pthread_mutex_lock(&p->lock);
	p->powered_off = off;
	p->status = status;
	pthread_mutex_unlock(&p->lock);
	return 0;
}

/* Any write in the 4 ports powers off with its low byte (an outb to 0xf4,
 * as isa-debug-exit takes it, or a wider outw/outl). */
static void power_pio(struct vmm_device *d, uint16_t off, bool write, uint8_t *data, unsigned size)
{
	struct power *p = d->priv;
	uint8_t status;

	(void)off;
	if (!write) {
		memset(data, 0, size);
		return;
	}
	if (!size)
		return;
	status = data[0];
	pthread_mutex_lock(&p->lock);
	p->powered_off = true;
	p->status = status;
	pthread_mutex_unlock(&p->lock);
	/* unlocked: the callback stops the VM, which may wait for vCPUs */
	if (p->cb)
		p->cb(p->arg, status);
}

static void power_destroy(struct vmm_device *d)
{
	struct power *p = d->priv;

	pthread_mutex_destroy(&p->lock);
	free(p);
}

static const struct vmm_device_ops power_ops = {
	.name = "power",
	.reset = power_reset,
	.save = power_save,
	.restore = power_restore,
	.pio = power_pio,
	.destroy = power_destroy,
};

int vmm_power_create(struct vmm_device **dp, struct vmm_bus *bus,
                     void (*on_poweroff)(void *arg, int status), void *arg)
{
	struct power *p = calloc(1, sizeof(*p));
	int ret;

	if (!p)
		return -ENOMEM;
	ret = -pthread_mutex_init(&p->lock, NULL);
	if (ret < 0) {
		free(p);
		return ret;
	}
	p->cb = on_poweroff;
	p->arg = arg;
	p->dev.ops = &power_ops;
	p->dev.pio_base = POWER_PORT;
	p->dev.pio_len = POWER_LEN;
	p->dev.bus = bus;
	p->dev.priv = p;
	*dp = &p->dev;
	return 0;
}

bool vmm_power_get(struct vmm_device *d, int *status)
{
	struct power *p = d->priv;
	bool off;

	pthread_mutex_lock(&p->lock);
	off = p->powered_off;
	if (status)
		*status = p->status;
	pthread_mutex_unlock(&p->lock);
	return off;
}
