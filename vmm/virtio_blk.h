/* virtio-blk (VIRTIO 1.x, 5.2) over a raw, possibly sparse, image file, on
 * the virtio-mmio transport (virtio_mmio.h).
 *
 * Features offered: VIRTIO_BLK_F_SEG_MAX (seg_max 254), VIRTIO_BLK_F_FLUSH,
 * and either VIRTIO_BLK_F_RO (read-only disk) or VIRTIO_BLK_F_DISCARD +
 * VIRTIO_BLK_F_WRITE_ZEROES; plus the transport's VERSION_1 and
 * INDIRECT_DESC. Configuration space (60 bytes): capacity (512-byte
 * sectors, the file size rounded down), seg_max, and the discard /
 * write-zeroes limits: at most VIRTIO_BLK_MAX_DWZ_SECTORS sectors in each
 * of at most VIRTIO_BLK_MAX_DWZ_SEG segments, discard_sector_alignment 8,
 * write_zeroes_may_unmap 1.
 *
 * Requests: IN, OUT (data a multiple of 512 bytes, inside the capacity),
 * FLUSH (fdatasync), GET_ID (the serial, 20 bytes, NUL-padded), DISCARD
 * (punches holes), WRITE_ZEROES (zeroes the range, punching holes when the
 * unmap flag is set). Any other type: VIRTIO_BLK_S_UNSUPP. A request beyond
 * the capacity, a malformed one, a write, discard or write-zeroes on a
 * read-only disk, a failed host I/O: VIRTIO_BLK_S_IOERR. The status byte is
 * written after the data. Any layout of descriptors is accepted (the
 * header may share or span buffers).
 *
 * Every request is served synchronously inside the queue notification
 * (preadv/pwritev straight into / out of guest memory, looping over short
 * transfers), so there is never a request in flight at a save. The saved
 * state is the capacity (a restore onto an image of another size is
 * refused) and the counters. */
#ifndef VMM_VIRTIO_BLK_H
#define VMM_VIRTIO_BLK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "virtio_mmio.h"

#define VIRTIO_ID_BLOCK 2

#define VIRTIO_BLK_T_IN           0
#define VIRTIO_BLK_T_OUT          1
#define VIRTIO_BLK_T_FLUSH        4
#define VIRTIO_BLK_T_GET_ID       8
#define VIRTIO_BLK_T_DISCARD      11
#define VIRTIO_BLK_T_WRITE_ZEROES 13

#define VIRTIO_BLK_S_OK     0
#define VIRTIO_BLK_S_IOERR  1
#define VIRTIO_BLK_S_UNSUPP 2

#define VIRTIO_BLK_F_SEG_MAX      (1ull << 2)
#define VIRTIO_BLK_F_RO           (1ull << 5)
#define VIRTIO_BLK_F_FLUSH        (1ull << 9)
#define VIRTIO_BLK_F_DISCARD      (1ull << 13)
#define VIRTIO_BLK_F_WRITE_ZEROES (1ull << 14)

#define VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP 1u

#define VIRTIO_BLK_ID_BYTES        20
#define VIRTIO_BLK_SEG_MAX         (VMM_VQ_MAX_SIZE - 2)
#define VIRTIO_BLK_MAX_DWZ_SECTORS (1u << 22) /* 2 GiB a segment */
#define VIRTIO_BLK_MAX_DWZ_SEG     32

/* configuration space offsets */
#define VIRTIO_BLK_CFG_CAPACITY         0
#define VIRTIO_BLK_CFG_SEG_MAX          12
#define VIRTIO_BLK_CFG_MAX_DISCARD_SECT 36
#define VIRTIO_BLK_CFG_MAX_DISCARD_SEG  40
#define VIRTIO_BLK_CFG_DISCARD_ALIGN    44
#define VIRTIO_BLK_CFG_MAX_WZ_SECT      48
#define VIRTIO_BLK_CFG_MAX_WZ_SEG       52
#define VIRTIO_BLK_CFG_WZ_MAY_UNMAP     56
#define VIRTIO_BLK_CFG_SIZE             60

/* Storage migration: guest writes are logged per block of this size while
 * logging runs; the destination writes received blocks with write_at. */
#define VMM_BLK_DIRTY_BLOCK (64u << 10)
int vmm_virtio_blk_dirty_start(struct vmm_device *d);
void vmm_virtio_blk_dirty_stop(struct vmm_device *d);
/* Takes the blocks written since the last harvest into out (a bit per
 * block, vmm_virtio_blk_blocks() bits), clearing them; returns how many. */
uint64_t vmm_virtio_blk_dirty_harvest(struct vmm_device *d, uint64_t *out);
uint64_t vmm_virtio_blk_blocks(struct vmm_device *d);
uint64_t vmm_virtio_blk_bytes(struct vmm_device *d);
/* The guest may not write it. */
bool vmm_virtio_blk_readonly(struct vmm_device *d);
/* The image's fd when the disk is one raw image (for SEEK_DATA), else -1. */
int vmm_virtio_blk_raw_fd(struct vmm_device *d);
/* The top layer of its chain holds the grain (vmm_disk_top_has). */
bool vmm_virtio_blk_top_has(struct vmm_device *d, uint64_t off);
/* Reads the disk as the guest sees it (through a snapshot chain). */
int vmm_virtio_blk_read_at(struct vmm_device *d, uint64_t off, void *p, size_t n);
/* n bytes at off into the image (zero: a zeroed, unmapped range). */
int vmm_virtio_blk_write_at(struct vmm_device *d, uint64_t off, const void *p, size_t n, bool zero);

struct vmm_virtio_blk_stats {
	uint64_t reads, writes, flushes, discards, write_zeroes;
	uint64_t read_bytes, written_bytes;
	uint64_t errors; /* requests answered IOERR (or unanswerable) */
	uint64_t unsupp; /* requests answered UNSUPP */
};

/* Opens path (O_RDONLY when readonly, else O_RDWR): a regular file whose
 * size is a multiple of 512 bytes. serial (NULL: none) becomes the GET_ID
 * string, cut to 20 bytes. On error (-errno) err says what, naming the
 * file. */
/* Snapshot: the delta at path (over the current top) takes the writes
 * from now on; the old top is frozen (disk.h). */
int vmm_virtio_blk_snapshot(struct vmm_device *d, const char *delta, char *err, size_t errlen);
/* Consolidation of the top delta into its parent, in two parts: the copy,
 * while the guest runs (its requests go on between grains), then, with the
 * guest paused, _finish copies what it wrote meanwhile and the parent takes
 * the writes again. The caller removes the old top's file. */
int vmm_virtio_blk_consolidate(struct vmm_device *d, char *err, size_t errlen);
int vmm_virtio_blk_consolidate_finish(struct vmm_device *d, char *err, size_t errlen);
/* The file taking the writes. */
const char *vmm_virtio_blk_top(struct vmm_device *d);

int vmm_virtio_blk_create(struct vmm_device **d, struct vmm_bus *bus, uint64_t mmio_base,
                          uint32_t gsi, const char *path, bool readonly, const char *serial,
                          char *err, size_t errlen);
void vmm_virtio_blk_get_stats(struct vmm_device *d, struct vmm_virtio_blk_stats *st);

#endif
