/* Disk contents in the state stream, for migrating a VM together with its
 * storage: DISK sections (instance = the device's index in the VM) of at
 * most VMM_DISK_CHUNK bytes: u64 offset, u32 length, u8 flags (1: the
 * range is zero, no data follows), then the data. */
#ifndef VMM_DISKSTATE_H
#define VMM_DISKSTATE_H

#include <stdint.h>

#include "state.h"
#include "vm.h"

#define SEC_DISK        VMM_FOURCC('D', 'I', 'S', 'K')
#define VMM_DISK_CHUNK  (1u << 20)
#define VMM_DISK_F_ZERO 1u

/* Whether the device is a virtio-blk disk (what DISK sections are for). */
int vmm_is_disk(const struct vmm_device *d);
/* Every allocated range of the disk's image (holes are skipped: the
 * destination's image is a fresh sparse file). *bytes += what was sent. */
int vmm_disk_save_all(struct vmm_device *d, uint32_t index, struct vmm_stream *s, uint64_t *bytes);
/* The blocks whose bits are set (vmm_virtio_blk_dirty_harvest). */
int vmm_disk_save_dirty(struct vmm_device *d, uint32_t index, struct vmm_stream *s,
                        const uint64_t *dirty, uint64_t *bytes);
/* Applies a DISK section to the VM's device `index`; -EBADMSG for anything
 * malformed, not a disk, or outside the image. */
int vmm_disk_load(struct vmm_vm *vm, uint32_t index, const uint8_t *p, size_t len, char *err,
                  size_t errlen);

#endif
