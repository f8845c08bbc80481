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

int vmm_disk_load(struct vmm_vm *vm, uint32_t index, const uint8_t *p, size_t len, char *err,
                  size_t errlen)
{
	struct rbuf r;

	if (index >= vm->ndevs || !vmm_is_disk(vm->devs[index])) {
		snprintf(err, errlen, "disk data for device %u, which is not a disk here", index);
		return -EBADMSG;
	}
	rbuf_init(&r, p, len);
	uint64_t off = rbuf_u64(&r);
	uint32_t n = rbuf_u32(&r);
	uint8_t flags = rbuf_u8(&r);
	bool zero = flags & VMM_DISK_F_ZERO;
	if (r.err || (flags & ~VMM_DISK_F_ZERO) || !n || n > VMM_DISK_CHUNK ||
	    (zero ? r.len != r.off : r.len - r.off != n)) {
		snprintf(err, errlen, "disk %u: a malformed DISK section", index);
		return -EBADMSG;
	}
	int ret = vmm_virtio_blk_write_at(vm->devs[index], off, zero ? NULL : p + r.off, n, zero);
	if (ret < 0)
		snprintf(err, errlen, "disk %u: writing %u bytes at %llu: %s", index, n,
		         (unsigned long long)off, strerror(-ret));
	return ret == -EINVAL ? -EBADMSG : ret;
}
