#include "power.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct power {
	struct vmm_device dev;
	void (*cb)(void *arg, int status);
	void *arg;
	bool powered_off;
	uint8_t status;
};

static void power_reset(struct vmm_device *d)
{
	struct power *p = d->priv;

	p->powered_off = false;
	p->status = 0;
}

static int power_save(struct vmm_device *d, struct sbuf *out)
{
	struct power *p = d->priv;

	sbuf_u8(out, p->powered_off);
	sbuf_u8(out, p->status);
	return out->err;
}

static int power_restore(struct vmm_device *d, struct rbuf *in)
{
	struct power *p = d->priv;
	uint8_t off = rbuf_u8(in), status = rbuf_u8(in);

	if (rbuf_done(in) < 0 || off > 1)
		return -EBADMSG;
	p->powered_off = off;
	p->status = status;
	return 0;
}

static void power_pio(struct vmm_device *d, uint16_t off, bool write, uint8_t *data, unsigned size)
{
	struct power *p = d->priv;

	(void)off;
	if (!write) {
		memset(data, 0, size);
		return;
	}
	p->powered_off = true;
	p->status = data[0];
	if (p->cb)
		p->cb(p->arg, p->status);
}

static void power_destroy(struct vmm_device *d)
{
	free(d->priv);
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

	if (!p)
		return -ENOMEM;
	p->cb = on_poweroff;
	p->arg = arg;
	p->dev.ops = &power_ops;
	p->dev.pio_base = POWER_PORT;
	p->dev.pio_len = 4;
	p->dev.bus = bus;
	p->dev.priv = p;
	*dp = &p->dev;
	return 0;
}
