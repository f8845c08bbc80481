/* virtio-blk over a raw (sparse) image file: read, write, flush, get-id,
 * discard and write-zeroes (hole punching). */
#ifndef VMM_VIRTIO_BLK_H
#define VMM_VIRTIO_BLK_H

#include <stdbool.h>

#include "virtio_mmio.h"

#define VIRTIO_ID_BLOCK 2

/* Opens path (read-only when readonly) and creates the device. Errors name
 * the file. */
int vmm_virtio_blk_create(struct vmm_device **d, struct vmm_bus *bus, uint64_t mmio_base,
                          uint32_t gsi, const char *path, bool readonly, const char *serial,
                          char *err, size_t errlen);

#endif
