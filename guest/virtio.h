/* A polling virtio-mmio (version 2, VIRTIO 1.x) driver for the micro guests.
 *
 * Devices come from the command line, Linux's syntax, every occurrence:
 *   virtio_mmio.device=SIZE@ADDR:IRQ[:ID]    SIZE: 512, 4K, 0x1000, 1M ...
 * (QEMU microvm with acpi=off and vmx both append one per device). The
 * registers are plain volatile loads and stores at CPL 3 (the identity map
 * covers them, user-accessible). Interrupts stay off: the driver asks the
 * device not to interrupt and polls the used rings.
 *
 * One split virtqueue per queue, min(QueueNumMax, 64) entries, in a static
 * page each. Legacy (version 1) transports are refused. */
#ifndef GUEST_VIRTIO_H
#define GUEST_VIRTIO_H

#include <stdbool.h>
#include <stdint.h>

#define VIRTIO_ID_NET   1
#define VIRTIO_ID_BLOCK 2

#define VIRTIO_F_VERSION_1 (1ull << 32)

#define VQ_MAX         64 /* entries per queue (at most) */
#define VIRTIO_MAX_Q   2  /* queues per device */
#define VIRTIO_MAX_DEV 8  /* devices on the command line */

/* Status 3: the device never answered a request ("virtio: timeout"). */
#define VIRTIO_TIMEOUT_STATUS 3
#define VIRTIO_TIMEOUT_MS     5000

struct vq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};
#define VQ_DESC_F_NEXT  1
#define VQ_DESC_F_WRITE 2

struct vq_avail {
	uint16_t flags, idx;
	uint16_t ring[VQ_MAX];
};

struct vq_used_elem {
	uint32_t id, len;
};

struct vq_used {
	uint16_t flags, idx;
	struct vq_used_elem ring[VQ_MAX];
};

struct virtq {
	uint16_t size, num_free, free_head, last_used, avail_idx;
	struct vq_desc *desc;
	volatile struct vq_avail *avail;
	volatile struct vq_used *used;
	void *cookie[VQ_MAX]; /* per head descriptor, handed back on completion */
};

struct virtio_dev {
	volatile uint8_t *base;
	uint64_t addr, size;
	uint32_t irq, device_id;
	uint64_t offered;  /* the device's feature bits */
	uint64_t features; /* negotiated */
	unsigned nq;
	struct virtq q[VIRTIO_MAX_Q];
};

/* One buffer of a chain: device-writable (write) or device-readable. */
struct vq_buf {
	void *addr;
	uint32_t len;
	bool write;
};

/* Brings up the next unclaimed device of this type with nq queues.
 * Negotiates VIRTIO_F_VERSION_1 (required) plus whatever of `want` the
 * device offers. 1: ready; 0: no such device; -1: one is there but unusable
 * (legacy transport, features refused, no queue...: printed "virtio: ..."). */
int virtio_find(uint32_t device_id, unsigned nq, uint64_t want, struct virtio_dev *d);

/* Device configuration space (generation-checked; natural-width accesses). */
uint8_t virtio_cfg8(struct virtio_dev *d, unsigned off);
uint32_t virtio_cfg32(struct virtio_dev *d, unsigned off);
uint64_t virtio_cfg64(struct virtio_dev *d, unsigned off);

/* Puts a chain of n buffers on queue q (not yet notified). Returns its head
 * descriptor, or -1 if the queue has fewer than n free descriptors. */
int virtq_add(struct virtio_dev *d, unsigned q, const struct vq_buf *bufs, unsigned n,
              void *cookie);
/* Notifies the device about queue q (unless it said it does not need it). */
void virtq_kick(struct virtio_dev *d, unsigned q);
/* Takes one completed chain off the used ring: true with its cookie and the
 * length the device wrote; false if none. Never blocks. */
bool virtq_get(struct virtio_dev *d, unsigned q, void **cookie, uint32_t *len);

/* Synchronous request: add, kick, poll until this chain comes back. Returns
 * the used length. A device that does not answer within VIRTIO_TIMEOUT_MS
 * gets "virtio: timeout ..." on the console and powers the guest off with
 * status 3 (VIRTIO_TIMEOUT_STATUS). */
uint32_t virtio_request(struct virtio_dev *d, unsigned q, const struct vq_buf *bufs, unsigned n);

#endif
