/* Disk contents in the state stream, for migrating a VM together with its
 * storage: DISK sections (instance = the device's index in the VM) of at
 * most VMM_DISK_CHUNK bytes: u64 offset, u32 length, u8 flags (1: the
 * range is zero, no data follows), then the data. */
#ifndef VMM_DISKSTATE_H
#define VMM_DISKSTATE_H

#include <stdbool.h>
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
/* The write logs of a VM's disks while their contents move (a storage
 * migration, fault tolerance): per disk, the blocks written and not sent
 * yet. */
#define VMM_DISKS_LOG_MAX 16
struct vmm_disks_log {
	unsigned n;
	uint32_t index[VMM_DISKS_LOG_MAX]; /* the devices' indexes in the VM */
	uint64_t *bm[VMM_DISKS_LOG_MAX];   /* not sent yet */
	uint64_t *more[VMM_DISKS_LOG_MAX]; /* a harvest's scratch */
};
/* Starts logging the writes of every disk of the VM (writable_only: but
 * its read-only ones, which a peer opens where they are); -ENOMEM (then
 * _stop undoes what started). */
int vmm_disks_log_start(struct vmm_vm *vm, struct vmm_disks_log *d, bool writable_only);
void vmm_disks_log_stop(struct vmm_vm *vm, struct vmm_disks_log *d);
/* Every disk whole (vmm_disk_save_all). */
int vmm_disks_log_save_all(struct vmm_vm *vm, struct vmm_disks_log *d, struct vmm_stream *s,
                           uint64_t *bytes);
/* Takes the writes logged since the last harvest into what is not sent
 * yet; returns its bytes. */
uint64_t vmm_disks_log_harvest(struct vmm_vm *vm, struct vmm_disks_log *d);
/* Sends what is not sent yet, which is then empty. */
int vmm_disks_log_send(struct vmm_vm *vm, struct vmm_disks_log *d, struct vmm_stream *s,
                       uint64_t *bytes);

/* Checks a DISK section for the VM's device `index` as _load would take
 * it, writing nothing: -EBADMSG with err. */
int vmm_disk_check(struct vmm_vm *vm, uint32_t index, const uint8_t *p, size_t len, char *err,
                   size_t errlen);
/* Applies a DISK section to the VM's device `index`; -EBADMSG for anything
 * malformed, not a disk, or outside the image. */
int vmm_disk_load(struct vmm_vm *vm, uint32_t index, const uint8_t *p, size_t len, char *err,
                  size_t errlen);

#endif
