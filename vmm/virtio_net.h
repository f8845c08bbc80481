/* virtio-net over a file descriptor that behaves like a tap opened with
 * IFF_TAP | IFF_NO_PI | IFF_VNET_HDR and a 12-byte vnet header (what
 * virtio 1.x uses): every frame carries a virtio_net_hdr_v1 in front. */
#ifndef VMM_VIRTIO_NET_H
#define VMM_VIRTIO_NET_H

#include <stdint.h>

#include "virtio_mmio.h"

#define VIRTIO_ID_NET 1

/* Takes ownership of fd (non-blocking). */
int vmm_virtio_net_create(struct vmm_device **d, struct vmm_bus *bus, uint64_t mmio_base,
                          uint32_t gsi, int fd, const uint8_t mac[6]);
/* The fd is readable: deliver frames while the guest has receive buffers;
 * the rest stays in the fd until the guest posts more. */
void vmm_virtio_net_rx(struct vmm_device *d);
int vmm_virtio_net_fd(struct vmm_device *d);

/* Opens tap device `name` (created if missing) for vmm_virtio_net_create. */
int vmm_tap_open(const char *name, char *err, size_t errlen);

#endif
