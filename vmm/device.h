/* Devices of a VM behind one ops table: reset, save, restore, and the port
 * or MMIO accesses a vCPU exit hands them. */
#ifndef VMM_DEVICE_H
#define VMM_DEVICE_H

#include <stdbool.h>
#include <stdint.h>

#include "mem.h"
#include "sbuf.h"

struct vmm_device;

/* What a device may use of its VM. Tests fill these with fakes. */
struct vmm_bus {
	struct vmm_mem *mem;
	/* Raises (level 1) or lowers (0) an interrupt line (GSI). */
	void (*irq_set)(void *arg, uint32_t gsi, int level);
	void *irq_arg;
};

struct vmm_device_ops {
	const char *name; /* state section name, e.g. "uart" */
	void (*reset)(struct vmm_device *d);
	/* Appends the whole device state; restore reads exactly that back. */
	int (*save)(struct vmm_device *d, struct sbuf *out);
	int (*restore)(struct vmm_device *d, struct rbuf *in);
	/* An access of `size` bytes (1, 2, 4, 8) at offset `off` from the
	 * device's base; for reads the device fills data. Unknown offsets read
	 * as zero / ignore writes (as hardware does), never fail the VM. */
	void (*pio)(struct vmm_device *d, uint16_t off, bool write, uint8_t *data, unsigned size);
	void (*mmio)(struct vmm_device *d, uint64_t off, bool write, uint8_t *data, unsigned size);
	void (*destroy)(struct vmm_device *d);
};

struct vmm_device {
	const struct vmm_device_ops *ops;
	uint32_t instance;            /* distinguishes several devices of one kind */
	uint16_t pio_base, pio_len;   /* 0 len: no ports */
	uint64_t mmio_base, mmio_len; /* 0 len: no MMIO */
	uint32_t gsi;                 /* interrupt line, if any */
	struct vmm_bus *bus;
	void *priv;
};

#endif
