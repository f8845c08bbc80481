#include "diskstate.h"
#include "disk.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sbuf.h"
#include "util.h"
#include "virtio_blk.h"

int vmm_is_disk(const struct vmm_device *d)
{
	return d && d->ops && d->ops->name && !strcmp(d->ops->name, "virtio-blk");
}

/* [off, off + len) of the image as DISK sections. */
static int save_range(struct vmm_device *d, uint32_t index, struct vmm_stream *s, uint64_t off,
                      uint64_t len, uint8_t *buf, uint64_t *bytes)
{
	struct sbuf b;
	int ret = 0;

	sbuf_init(&b);
	while (len && ret == 0) {
		size_t n = len > VMM_DISK_CHUNK ? VMM_DISK_CHUNK : (size_t)len;
		if ((ret = vmm_virtio_blk_read_at(d, off, buf, n)) < 0)
			break;
		bool zero = util_all_zero(buf, n);
		b.len = 0;
		sbuf_u64(&b, off);
		sbuf_u32(&b, (uint32_t)n);
		sbuf_u8(&b, zero ? VMM_DISK_F_ZERO : 0);
		if (!zero)
			sbuf_put(&b, buf, n);
		if (b.err) {
			ret = b.err;
			break;
		}
		ret = vmm_state_write_section(s, SEC_DISK, index, b.data, b.len);
		if (bytes)
			*bytes += b.len;
		off += n;
		len -= n;
	}
	sbuf_free(&b);
	return ret;
}

int vmm_disk_save_all(struct vmm_device *d, uint32_t index, struct vmm_stream *s, uint64_t *bytes)
{
	int fd = vmm_virtio_blk_raw_fd(d), ret = 0;
	uint64_t size = vmm_virtio_blk_bytes(d);
	uint8_t *buf = malloc(VMM_DISK_CHUNK);

	if (!buf)
		return -ENOMEM;
	/* a snapshot chain: what its top holds (the frozen layers below were
	 * staged at the destination before, as files) */
	for (uint64_t off = 0; fd < 0 && off < size && ret == 0;) {
		uint64_t run = off;
		while (run < size && vmm_virtio_blk_top_has(d, run))
			run += DISK_GRAIN;
		if (run > size)
			run = size;
		if (run > off)
			ret = save_range(d, index, s, off, run - off, buf, bytes);
		off = run + DISK_GRAIN;
	}
	for (uint64_t pos = 0; fd >= 0 && pos < size && ret == 0;) {
		off_t data = lseek(fd, (off_t)pos, SEEK_DATA);
		if (data < 0)
			break; /* holes to the end */
		off_t hole = lseek(fd, data, SEEK_HOLE);
		uint64_t end = hole < 0 || (uint64_t)hole > size ? size : (uint64_t)hole;
		ret = save_range(d, index, s, (uint64_t)data, end - (uint64_t)data, buf, bytes);
		pos = end;
	}
	free(buf);
	return ret;
}

int vmm_disk_save_dirty(struct vmm_device *d, uint32_t index, struct vmm_stream *s,
                        const uint64_t *dirty, uint64_t *bytes)
{
	int ret = 0;
	uint64_t size = vmm_virtio_blk_bytes(d), blocks = vmm_virtio_blk_blocks(d);
	uint8_t *buf = malloc(VMM_DISK_CHUNK);

	if (!buf)
		return -ENOMEM;
	for (uint64_t k = 0; k < blocks && ret == 0; k++) {
		if (!(dirty[k / 64] >> (k % 64) & 1))
			continue;
		uint64_t off = k * VMM_BLK_DIRTY_BLOCK;
		uint64_t n = size - off < VMM_BLK_DIRTY_BLOCK ? size - off : VMM_BLK_DIRTY_BLOCK;
		ret = save_range(d, index, s, off, n, buf, bytes);
	}
	free(buf);
	return ret;
}

/* The parts of a DISK section for device index, checked. */
struct disk_sec {
	uint64_t off;
	uint32_t n;
	bool zero;
	const uint8_t *data;
};

static int parse_disk(struct vmm_vm *vm, uint32_t index, const uint8_t *p, size_t len,
                      struct disk_sec *d, char *err, size_t errlen)
{
	struct rbuf r;

	if (index >= vm->ndevs || !vmm_is_disk(vm->devs[index])) {
		snprintf(err, errlen, "disk data for device %u, which is not a disk here", index);
		return -EBADMSG;
	}
	if (vmm_virtio_blk_readonly(vm->devs[index])) {
		snprintf(err, errlen, "disk data for device %u, which is read-only here", index);
		return -EBADMSG;
	}
	rbuf_init(&r, p, len);
	d->off = rbuf_u64(&r);
	d->n = rbuf_u32(&r);
	uint8_t flags = rbuf_u8(&r);
	d->zero = flags & VMM_DISK_F_ZERO;
	d->data = d->zero ? NULL : p + r.off;
	uint64_t size = vmm_virtio_blk_bytes(vm->devs[index]);
	if (r.err || (flags & ~VMM_DISK_F_ZERO) || !d->n || d->n > VMM_DISK_CHUNK ||
	    (d->zero ? r.len != r.off : r.len - r.off != d->n)) {
		snprintf(err, errlen, "disk %u: a malformed DISK section", index);
		return -EBADMSG;
	}
	if (d->off > size || d->n > size - d->off) {
		snprintf(err, errlen, "disk %u: %u bytes at %llu are beyond its %llu bytes", index,
		         d->n, (unsigned long long)d->off, (unsigned long long)size);
		return -EBADMSG;
	}
	return 0;
}

int vmm_disk_check(struct vmm_vm *vm, uint32_t index, const uint8_t *p, size_t len, char *err,
                   size_t errlen)
{
	struct disk_sec d;

	return parse_disk(vm, index, p, len, &d, err, errlen);
}

int vmm_disk_load(struct vmm_vm *vm, uint32_t index, const uint8_t *p, size_t len, char *err,
                  size_t errlen)
{
	struct disk_sec d;
	int ret = parse_disk(vm, index, p, len, &d, err, errlen);

	if (ret < 0)
		return ret;
	ret = vmm_virtio_blk_write_at(vm->devs[index], d.off, d.data, d.n, d.zero);
	if (ret < 0)
		snprintf(err, errlen, "disk %u: writing %u bytes at %llu: %s", index, d.n,
		         (unsigned long long)d.off, strerror(-ret));
	return ret == -EINVAL ? -EBADMSG : ret;
}

/* ---- the write logs ---- */

static uint64_t log_words(struct vmm_device *dev)
{
	return (vmm_virtio_blk_blocks(dev) + 63) / 64 + 1;
}

int vmm_disks_log_start(struct vmm_vm *vm, struct vmm_disks_log *d, bool writable_only)
{
	memset(d, 0, sizeof(*d));
	for (unsigned i = 0; i < vm->ndevs && d->n < VMM_DISKS_LOG_MAX; i++) {
		if (!vmm_is_disk(vm->devs[i]) ||
		    (writable_only && vmm_virtio_blk_readonly(vm->devs[i])))
			continue;
		uint64_t words = log_words(vm->devs[i]);
		unsigned k = d->n++;
		d->index[k] = i;
		if (!(d->bm[k] = calloc(words, sizeof(uint64_t))) ||
		    !(d->more[k] = calloc(words, sizeof(uint64_t))) ||
		    vmm_virtio_blk_dirty_start(vm->devs[i]) < 0)
			return -ENOMEM;
	}
	return 0;
}

void vmm_disks_log_stop(struct vmm_vm *vm, struct vmm_disks_log *d)
{
	for (unsigned k = 0; k < d->n; k++) {
		vmm_virtio_blk_dirty_stop(vm->devs[d->index[k]]);
		free(d->bm[k]);
		free(d->more[k]);
	}
	memset(d, 0, sizeof(*d));
}

int vmm_disks_log_save_all(struct vmm_vm *vm, struct vmm_disks_log *d, struct vmm_stream *s,
                           uint64_t *bytes)
{
	int ret = 0;

	for (unsigned k = 0; ret == 0 && k < d->n; k++)
		ret = vmm_disk_save_all(vm->devs[d->index[k]], d->index[k], s, bytes);
	return ret;
}

uint64_t vmm_disks_log_harvest(struct vmm_vm *vm, struct vmm_disks_log *d)
{
	uint64_t bytes = 0;

	for (unsigned k = 0; k < d->n; k++) {
		struct vmm_device *dev = vm->devs[d->index[k]];
		uint64_t words = log_words(dev);
		vmm_virtio_blk_dirty_harvest(dev, d->more[k]);
		for (uint64_t w = 0; w < words; w++) {
			d->bm[k][w] |= d->more[k][w];
			bytes += (uint64_t)__builtin_popcountll(d->bm[k][w]) * VMM_BLK_DIRTY_BLOCK;
		}
	}
	return bytes;
}

int vmm_disks_log_send(struct vmm_vm *vm, struct vmm_disks_log *d, struct vmm_stream *s,
                       uint64_t *bytes)
{
	for (unsigned k = 0; k < d->n; k++) {
		struct vmm_device *dev = vm->devs[d->index[k]];
		int ret = vmm_disk_save_dirty(dev, d->index[k], s, d->bm[k], bytes);
		if (ret < 0)
			return ret;
		memset(d->bm[k], 0, log_words(dev) * sizeof(uint64_t));
	}
	return 0;
}
