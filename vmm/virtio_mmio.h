/* virtio-mmio transport (version 2, VIRTIO 1.x) with split virtqueues, and
 * the backend interface devices (blk, net) plug into. Every descriptor,
 * ring and buffer address from the guest goes through vmm_gpa(); a
 * malformed ring sets DEVICE_NEEDS_RESET and raises a config interrupt,
 * never crashes vmx. Requests complete synchronously in notify, so a saved
 * state has no request in flight. */
#ifndef VMM_VIRTIO_MMIO_H
#define VMM_VIRTIO_MMIO_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "device.h"

#define VIRTIO_MMIO_SIZE          0x200
#define VIRTIO_MAX_QUEUES         2
#define VIRTIO_QUEUE_MAX          256
#define VIRTIO_MAX_CHAIN          64
#define VIRTIO_F_VERSION_1        (1ull << 32)
#define VIRTIO_STATUS_NEEDS_RESET 0x40

struct vmm_virtio;

/* One descriptor chain taken from the available ring. */
struct vq_chain {
	uint16_t head;
	unsigned n; /* buffers */
	struct iovec iov[VIRTIO_MAX_CHAIN];
	bool writable[VIRTIO_MAX_CHAIN];
};

struct virtio_backend_ops {
	uint32_t device_id;
	unsigned nqueues;
	void (*config_read)(void *be, uint64_t off, uint8_t *data, unsigned size);
	void (*notify)(void *be, struct vmm_virtio *v, unsigned queue);
	void (*reset)(void *be);
	int (*save)(void *be, struct sbuf *out);
	int (*restore)(void *be, struct rbuf *in);
	void (*destroy)(void *be);
};

/* Creates the transport at mmio_base with interrupt gsi over backend be
 * (ownership of be passes to the device). features: the device's own
 * feature bits; VERSION_1 is added and required. */
int vmm_virtio_create(struct vmm_device **d, struct vmm_bus *bus, uint64_t mmio_base, uint32_t gsi,
                      const struct virtio_backend_ops *ops, void *be, uint64_t features,
                      const char *name);

/* For backends: next available chain of queue q (1), none (0), or a
 * malformed ring (-1: the device now needs a reset). */
int vmm_virtio_pop(struct vmm_virtio *v, unsigned q, struct vq_chain *c);
/* Returns the chain with `len` bytes written by the device; interrupts. */
void vmm_virtio_push(struct vmm_virtio *v, unsigned q, const struct vq_chain *c, uint32_t len);
uint64_t vmm_virtio_driver_features(const struct vmm_virtio *v);
/* Register accesses (and the notify handlers they run) hold the transport's
 * lock; work started from another thread (network receive) takes it with
 * these. */
void vmm_virtio_lock(struct vmm_virtio *v);
void vmm_virtio_unlock(struct vmm_virtio *v);
/* The transport of a device made by vmm_virtio_create, and its backend. */
struct vmm_virtio *vmm_virtio_of(struct vmm_device *d);
void *vmm_virtio_backend(struct vmm_device *d);

#endif
