/* A VM's disk as a chain of layers: a raw base image, and over it the
 * copy-on-write delta files of snapshots and linked clones ("VMKDLTA1").
 * The top layer takes the writes; a read goes to the highest layer that
 * holds the grain. A raw image alone is a chain of one (reads and writes
 * go straight to it).
 *
 * A delta file:
 *   0       header (DISK_DELTA_HDR bytes):
 *             "VMKDLTA1" u32 version (1) u32 grain_shift (16: 64 KiB)
 *             u64 size (the disk's bytes) u64 bitmap_off u64 bitmap_bytes
 *             u64 data_off char parent[256] (NUL-terminated: the parent's
 *             path relative to this file's directory) u32 crc32c of the
 *             bytes before it
 *   bitmap_off  one bit per grain (bit i of byte i/8: grain i is here)
 *   data_off    grain i at data_off + i * grain, so the file is as sparse
 *             as what was written
 * Little-endian. Whether a file is a delta is decided by its name
 * (*.delta), never by its content: the first bytes of a raw image are the
 * guest's, and a guest must not make its disk a delta whose parent is some
 * other file of the host. A grain's bit is set in memory once its data is written,
 * and reaches the file at the next flush after the data is synced: after a
 * crash, what was not flushed reads as the parent's (the guest only counts
 * on flushed writes).
 *
 * Not thread-safe: the caller serializes (virtio-blk does, per device). */
#ifndef VMM_DISK_H
#define VMM_DISK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define DISK_DELTA_MAGIC "VMKDLTA1"
#define DISK_DELTA_HDR   4096u
#define DISK_GRAIN_SHIFT 16u
#define DISK_GRAIN       (1u << DISK_GRAIN_SHIFT)
#define DISK_MAX_CHAIN   32
#define DISK_PARENT_MAX  256
#define DISK_MAX_BYTES   (16ull << 40)

struct vmm_disk;

/* Opens path (raw, or a delta and its parents) with the top writable
 * unless readonly. Errors name the file and what is wrong with it. */
int vmm_disk_open(struct vmm_disk **d, const char *path, bool readonly, char *err, size_t errlen);
/* Flushes and closes. */
void vmm_disk_close(struct vmm_disk *d);

uint64_t vmm_disk_size(const struct vmm_disk *d);
/* Layers in the chain (1: a raw image alone). */
unsigned vmm_disk_depth(const struct vmm_disk *d);
/* The top layer's file. */
const char *vmm_disk_top_path(const struct vmm_disk *d);

/* iov is consumed. 0 or -errno; ranges beyond the size are -EINVAL. */
int vmm_disk_readv(struct vmm_disk *d, struct iovec *iov, unsigned n, uint64_t off);
int vmm_disk_writev(struct vmm_disk *d, struct iovec *iov, unsigned n, uint64_t off);
int vmm_disk_pread(struct vmm_disk *d, void *buf, size_t n, uint64_t off);
int vmm_disk_pwrite(struct vmm_disk *d, const void *buf, size_t n, uint64_t off);
/* Zeros [off, off + len): holes where the layer allows (unmap). */
int vmm_disk_zero(struct vmm_disk *d, uint64_t off, uint64_t len, bool unmap);
/* A hint: a raw image punches the hole; a delta ignores it. */
int vmm_disk_discard(struct vmm_disk *d, uint64_t off, uint64_t len);
/* The top layer holds the grain at off (a raw top holds everything): what
 * a storage migration of a chain sends, the layers below being staged. */
bool vmm_disk_top_has(const struct vmm_disk *d, uint64_t off);
/* The fd of a disk that is one raw image (for SEEK_DATA), else -1. */
int vmm_disk_raw_fd(const struct vmm_disk *d);
/* Data, then the bitmap of a delta top, on stable storage. */
int vmm_disk_flush(struct vmm_disk *d);

/* Snapshot: the top is flushed and frozen, and the delta at path, whose
 * parent must be the top, becomes the new top. */
int vmm_disk_push(struct vmm_disk *d, const char *path, char *err, size_t errlen);
/* Consolidation of the top into its parent: every grain of the top is
 * written into the parent, which becomes the top. The old top's file is
 * closed but left for the caller to remove once its configuration names
 * the parent (a crash in between must find a chain that opens). */
int vmm_disk_merge_top(struct vmm_disk *d, char *err, size_t errlen);

/* The same in steps, for a running guest: begin (the chain read afresh,
 * the parent opened for writing), then merge_step(g) for every grain g <
 * vmm_disk_grains() while the guest runs, each under the caller's lock,
 * then merge_finish with the guest paused: it copies again what the guest
 * wrote since, and switches. A write between begin and finish marks its
 * grains for that. abort gives up (the top still holds everything). */
int vmm_disk_merge_begin(struct vmm_disk *d, char *err, size_t errlen);
uint64_t vmm_disk_grains(const struct vmm_disk *d);
int vmm_disk_merge_step(struct vmm_disk *d, uint64_t g);
int vmm_disk_merge_finish(struct vmm_disk *d, char *err, size_t errlen);
void vmm_disk_merge_abort(struct vmm_disk *d);

/* ---- delta files, for hostd ---- */

/* An empty delta at path over parent (a path relative to path's
 * directory, or absolute, which is stored relative). Created exclusively,
 * synced. */
int vmm_delta_create(const char *path, const char *parent, char *err, size_t errlen);
/* Named as a delta (*.delta). */
bool vmm_disk_is_delta_name(const char *path);
/* 1 for a delta (by name, with its magic), 0 for anything else (a raw
 * image), -errno. */
int vmm_delta_probe(const char *path);
/* A delta's recorded parent (as stored: relative to its directory), its
 * disk size and, when present is not NULL, how many of its grains are
 * present (that reads its bitmap; without, only its header is read). */
int vmm_delta_info(const char *path, char *parent, size_t parentlen, uint64_t *size,
                   uint64_t *present, char *err, size_t errlen);
/* Offline consolidation: the delta at child is merged into its parent
 * (opened for writing); the caller re-points the deltas that had child as
 * parent (vmm_delta_set_parent), then removes child. */
int vmm_delta_merge(const char *child, char *err, size_t errlen);
/* A flat raw copy of the disk at src as its chain reads (a clone of a VM
 * with snapshots): zero chunks stay holes; dst + ".part" until synced and
 * renamed. copied: the data bytes written. */
int vmm_disk_copy_flat(const char *src, const char *dst, uint64_t *copied, char *err,
                       size_t errlen);
/* The header of a delta in b: 1 (parent and size set), 0 when b has no
 * delta magic, -EBADMSG with err for a damaged one (for fuzzing, and for
 * tools that look at a file before opening it). */
int vmm_delta_header_parse(const uint8_t *b, size_t n, char *parent, size_t parentlen,
                           uint64_t *size, char *err, size_t errlen);
/* Rewrites a delta's recorded parent. */
int vmm_delta_set_parent(const char *path, const char *parent, char *err, size_t errlen);

#endif
