/* A polling virtio-mmio (version 2) driver for the micro guests: devices
 * come from "virtio_mmio.device=SIZE@ADDR:IRQ" on the command line (QEMU
 * microvm and vmx both pass that); interrupts stay off. */
#ifndef GUEST_VIRTIO_H
#define GUEST_VIRTIO_H

#include <stdbool.h>
#include <stdint.h>

#define VIRTIO_ID_NET   1
#define VIRTIO_ID_BLOCK 2
#define VQ_SIZE         64

struct vq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};
#define VQ_DESC_F_NEXT  1
#define VQ_DESC_F_WRITE 2

struct virtq {
	uint16_t size, last_used, avail_idx;
	struct vq_desc *desc;
	volatile uint16_t *avail; /* flags, idx, ring[size] */
	volatile uint8_t *used;   /* flags, idx, ring[size] of {u32 id, u32 len} */
};

struct virtio_dev {
	volatile uint8_t *base;
	uint32_t device_id;
	struct virtq q[2];
	unsigned nq;
};

/* Finds the n-th device of the given type and brings it up with nq queues
 * (feature negotiation: VERSION_1 plus `want` bits of the low 32). Prints
 * what is wrong and returns false otherwise. */
bool virtio_find(uint32_t device_id, unsigned nq, uint32_t want, struct virtio_dev *d);

/* Config space (offset 0x100 + off). */
uint32_t virtio_cfg32(struct virtio_dev *d, unsigned off);
uint8_t virtio_cfg8(struct virtio_dev *d, unsigned off);

/* Posts a chain of n buffers (flags per buffer: VQ_DESC_F_WRITE for
 * device-writable), notifies, and (if wait) polls until the device used it.
 * Returns the used length, or -1 on timeout ("virtio: timeout"). */
int virtio_submit(struct virtio_dev *d, unsigned q, void *const *bufs, const uint32_t *lens,
                  const uint16_t *flags, unsigned n, bool wait);
/* Non-blocking: 1 and the used length if a chain completed, 0 if none. */
int virtio_poll_used(struct virtio_dev *d, unsigned q, uint32_t *len);
/* The same, also giving the head descriptor index of the completed chain. */
int virtio_poll_used_id(struct virtio_dev *d, unsigned q, uint16_t *id, uint32_t *len);

#endif
