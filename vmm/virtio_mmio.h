/* virtio-mmio transport, version 2 only ("modern", VIRTIO 1.x 4.2.2), with
 * split virtqueues (virtqueue.h), and the small ops table a device backend
 * (virtio_blk.c, virtio_net.c) plugs into.
 *
 * What a guest driver sees:
 *   0x000 MagicValue 0x74726976 ("virt")   0x004 Version 2
 *   0x008 DeviceID (backend)               0x00c VendorID 0x004b4d56 ("VMK")
 *   0x010 DeviceFeatures, 0x014 DeviceFeaturesSel (0: bits 0-31, 1: 32-63)
 *   0x020 DriverFeatures, 0x024 DriverFeaturesSel
 *   0x030 QueueSel, 0x034 QueueNumMax (256; 0 for a queue that does not
 *   exist), 0x038 QueueNum, 0x044 QueueReady, 0x050 QueueNotify
 *   0x060 InterruptStatus (1: used buffer, 2: configuration change),
 *   0x064 InterruptACK, 0x070 Status
 *   0x080/0x084 QueueDesc, 0x090/0x094 QueueDriver, 0x0a0/0x0a4 QueueDevice
 *   0x0b0/0x0b4 SHMLen: all ones (no shared memory regions)
 *   0x0fc ConfigGeneration (0: the configuration never changes)
 *   0x100 device configuration space (the backend's)
 * Registers below 0x100 take 32-bit accesses only (others read 0 and are
 * ignored); the configuration space takes 1, 2, 4 and 8 bytes.
 *
 * Features: the transport offers VIRTIO_F_VERSION_1 (required: a driver
 * that does not accept it gets FEATURES_OK refused, as does one accepting a
 * bit not offered) and VIRTIO_RING_F_INDIRECT_DESC, on top of the
 * backend's. Not offered: EVENT_IDX, packed rings, NOTIFICATION_DATA,
 * ACCESS_PLATFORM, RING_RESET.
 *
 * Queues: QueueReady 1 is refused (reads back 0, and the device sets
 * DEVICE_NEEDS_RESET) unless QueueNum is a power of two <= 256, the three
 * parts are aligned (16, 2, 4) and lie inside guest RAM. Queue registers
 * are ignored while the queue is ready. Notifications are acted on only
 * while the status has FEATURES_OK and DRIVER_OK (earlier ones are
 * dropped: the driver notifies again, and network receive looks at its
 * queue whenever a frame arrives).
 *
 * Errors: any malformed ring or descriptor chain from the guest sets
 * DEVICE_NEEDS_RESET (0x40) in Status and raises a configuration
 * interrupt; the device then ignores its queues until the driver resets it
 * (Status 0). Never a crash, never an access outside guest RAM.
 *
 * Interrupt: level-triggered on the device's GSI, asserted while
 * InterruptStatus != 0. A used buffer sets bit 0 unless the driver set
 * VIRTQ_AVAIL_F_NO_INTERRUPT.
 *
 * Threads: register accesses, save, restore, reset and the backends'
 * callbacks run under the transport's lock; work a backend starts from
 * another thread (network receive) takes it with vmm_virtio_lock().
 *
 * Save/restore: every request completes synchronously inside the
 * notification that started it (or the receive call that filled it), so
 * a saved state has no request in flight: per queue, last_avail_idx ==
 * used_idx, and restore refuses a state where they differ. Descriptor
 * chains the driver posted but did not notify stay in guest RAM and are
 * taken after the restore, at the next notification. The state section
 * is named after the backend ("virtio-blk", "virtio-net") and carries its
 * device ID: a state restores only into the same kind of device. */
#ifndef VMM_VIRTIO_MMIO_H
#define VMM_VIRTIO_MMIO_H

#include <stdbool.h>
#include <stdint.h>

#include "device.h"
#include "virtqueue.h"

#define VIRTIO_MMIO_SIZE   0x200
#define VIRTIO_MMIO_MAGIC  0x74726976u
#define VIRTIO_MMIO_VENDOR 0x004b4d56u
#define VIRTIO_MAX_QUEUES  2

/* register offsets */
#define VIRTIO_MMIO_MAGIC_VALUE       0x000
#define VIRTIO_MMIO_VERSION           0x004
#define VIRTIO_MMIO_DEVICE_ID         0x008
#define VIRTIO_MMIO_VENDOR_ID         0x00c
#define VIRTIO_MMIO_DEVICE_FEATURES   0x010
#define VIRTIO_MMIO_DEVICE_FEAT_SEL   0x014
#define VIRTIO_MMIO_DRIVER_FEATURES   0x020
#define VIRTIO_MMIO_DRIVER_FEAT_SEL   0x024
#define VIRTIO_MMIO_QUEUE_SEL         0x030
#define VIRTIO_MMIO_QUEUE_NUM_MAX     0x034
#define VIRTIO_MMIO_QUEUE_NUM         0x038
#define VIRTIO_MMIO_QUEUE_READY       0x044
#define VIRTIO_MMIO_QUEUE_NOTIFY      0x050
#define VIRTIO_MMIO_INTERRUPT_STATUS  0x060
#define VIRTIO_MMIO_INTERRUPT_ACK     0x064
#define VIRTIO_MMIO_STATUS            0x070
#define VIRTIO_MMIO_QUEUE_DESC_LOW    0x080
#define VIRTIO_MMIO_QUEUE_DESC_HIGH   0x084
#define VIRTIO_MMIO_QUEUE_DRIVER_LOW  0x090
#define VIRTIO_MMIO_QUEUE_DRIVER_HIGH 0x094
#define VIRTIO_MMIO_QUEUE_DEVICE_LOW  0x0a0
#define VIRTIO_MMIO_QUEUE_DEVICE_HIGH 0x0a4
#define VIRTIO_MMIO_SHM_SEL           0x0ac
#define VIRTIO_MMIO_SHM_LEN_LOW       0x0b0
#define VIRTIO_MMIO_SHM_LEN_HIGH      0x0b4
#define VIRTIO_MMIO_SHM_BASE_LOW      0x0b8
#define VIRTIO_MMIO_SHM_BASE_HIGH     0x0bc
#define VIRTIO_MMIO_CONFIG_GENERATION 0x0fc
#define VIRTIO_MMIO_CONFIG            0x100

/* device status */
#define VIRTIO_STATUS_ACKNOWLEDGE 0x01
#define VIRTIO_STATUS_DRIVER      0x02
#define VIRTIO_STATUS_DRIVER_OK   0x04
#define VIRTIO_STATUS_FEATURES_OK 0x08
#define VIRTIO_STATUS_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED      0x80

/* InterruptStatus */
#define VIRTIO_MMIO_INT_VRING  0x1
#define VIRTIO_MMIO_INT_CONFIG 0x2

/* transport feature bits */
#define VIRTIO_RING_F_INDIRECT_DESC (1ull << 28)
#define VIRTIO_F_VERSION_1          (1ull << 32)

struct vmm_virtio;

/* A backend: `be` is its own state. Every callback runs under the
 * transport's lock. */
struct vmm_virtio_backend_ops {
	const char *name; /* the state section's name and for log messages, e.g. "virtio-blk" */
	uint32_t device_id;
	unsigned nqueues; /* 1 .. VIRTIO_MAX_QUEUES */
	/* The device's own feature bits (the transport adds its own). */
	uint64_t (*features)(void *be);
	/* Configuration space accesses (off from 0x100, size 1/2/4/8). Reads
	 * outside the space are zero; config_write may be NULL (read-only). */
	void (*config_read)(void *be, uint64_t off, uint8_t *data, unsigned size);
	void (*config_write)(void *be, uint64_t off, const uint8_t *data, unsigned size);
	/* The driver notified queue q (ready, device live): take its chains
	 * with vmm_virtio_pop(), complete each with vmm_virtio_push(). */
	void (*notify)(void *be, struct vmm_virtio *v, unsigned q);
	/* Device reset (Status 0 or VM reset); may be NULL. */
	void (*reset)(void *be);
	/* The backend's state; restore must validate everything before it
	 * changes anything, and consume `in` exactly (rbuf_done() == 0), else
	 * -EBADMSG. */
	int (*save)(void *be, struct sbuf *out);
	int (*restore)(void *be, struct rbuf *in);
	void (*destroy)(void *be);
};

/* Creates the transport at mmio_base (VIRTIO_MMIO_SIZE bytes) interrupting
 * on gsi, over backend be. On success the device owns be (its destroy
 * calls ops->destroy); on failure (-ENOMEM, -EINVAL) the caller keeps it. */
int vmm_virtio_create(struct vmm_device **d, struct vmm_bus *bus, uint64_t mmio_base, uint32_t gsi,
                      const struct vmm_virtio_backend_ops *ops, void *be);

/* For backends, under the lock: the next available chain of queue q (1),
 * none (0), or a malformed ring (-EINVAL: the device now needs a reset and
 * takes nothing more from any queue). */
int vmm_virtio_pop(struct vmm_virtio *v, unsigned q, struct vmm_vq_chain *c);
/* Gives back the chain just popped, unused. */
void vmm_virtio_unpop(struct vmm_virtio *v, unsigned q);
/* Completes chain c with len bytes written into it; interrupts the guest
 * unless it asked not to be. */
void vmm_virtio_push(struct vmm_virtio *v, unsigned q, const struct vmm_vq_chain *c, uint32_t len);
/* Is queue q ready and the device live (FEATURES_OK, DRIVER_OK, not
 * NEEDS_RESET)? */
bool vmm_virtio_queue_live(const struct vmm_virtio *v, unsigned q);
uint64_t vmm_virtio_driver_features(const struct vmm_virtio *v);
/* Sets DEVICE_NEEDS_RESET and raises a configuration interrupt (why: for
 * the log). */
void vmm_virtio_needs_reset(struct vmm_virtio *v, const char *why);

void vmm_virtio_lock(struct vmm_virtio *v);
void vmm_virtio_unlock(struct vmm_virtio *v);
/* The transport of a device made by vmm_virtio_create, and its backend. */
struct vmm_virtio *vmm_virtio_of(struct vmm_device *d);
void *vmm_virtio_backend(struct vmm_device *d);

#endif
