#include "virtio_blk.h"

#include <endian.h>
#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "disk.h"
#include "le.h"
#include "util.h"

#define STATE_VERSION 1
#define SECTOR        512u
#define HDR_LEN       16u /* type, reserved (ioprio), sector */
#define SEG_LEN       16u /* sector, num_sectors, flags */

struct blk {
	struct vmm_disk *disk; /* a raw image, or the top of a snapshot chain */
	bool readonly;
	uint64_t sectors;
	/* storage migration: a bit per VMM_BLK_DIRTY_BLOCK bytes written by the
	 * guest while logging; allocated once, kept until destroy */
	uint64_t *_Atomic dirty;
	uint64_t *dirty_map;
	uint64_t dirty_blocks;
	char serial[VIRTIO_BLK_ID_BYTES]; /* NUL-padded, not terminated at 20 */
	struct vmm_virtio_blk_stats st;
};

static uint64_t blk_features(void *be)
{
	struct blk *b = be;
	uint64_t f = VIRTIO_BLK_F_SEG_MAX | VIRTIO_BLK_F_FLUSH;

	if (b->readonly)
		return f | VIRTIO_BLK_F_RO;
	return f | VIRTIO_BLK_F_DISCARD | VIRTIO_BLK_F_WRITE_ZEROES;
}

static void blk_config_read(void *be, uint64_t off, uint8_t *data, unsigned size)
{
	struct blk *b = be;
	uint8_t cfg[VIRTIO_BLK_CFG_SIZE] = { 0 };
	uint64_t cap = htole64(b->sectors);

	memcpy(cfg + VIRTIO_BLK_CFG_CAPACITY, &cap, 8);
	le_put32(cfg + VIRTIO_BLK_CFG_SEG_MAX, VIRTIO_BLK_SEG_MAX);
	if (!b->readonly) {
		le_put32(cfg + VIRTIO_BLK_CFG_MAX_DISCARD_SECT, VIRTIO_BLK_MAX_DWZ_SECTORS);
		le_put32(cfg + VIRTIO_BLK_CFG_MAX_DISCARD_SEG, VIRTIO_BLK_MAX_DWZ_SEG);
		le_put32(cfg + VIRTIO_BLK_CFG_DISCARD_ALIGN, 8); /* 4 KiB: a file system block */
		le_put32(cfg + VIRTIO_BLK_CFG_MAX_WZ_SECT, VIRTIO_BLK_MAX_DWZ_SECTORS);
		le_put32(cfg + VIRTIO_BLK_CFG_MAX_WZ_SEG, VIRTIO_BLK_MAX_DWZ_SEG);
		cfg[VIRTIO_BLK_CFG_WZ_MAY_UNMAP] = 1;
	}
	if (off < sizeof(cfg) && size <= sizeof(cfg) - off)
		memcpy(data, cfg + off, size);
}

static bool in_range(const struct blk *b, uint64_t sector, uint64_t count)
{
	return sector <= b->sectors && count <= b->sectors - sector;
}

/* IN: the writable part but its last byte (the status); OUT: the readable
 * part after the header. */
static void mark_written(struct blk *b, uint64_t off, uint64_t len)
{
	uint64_t *d = atomic_load_explicit(&b->dirty, memory_order_acquire);

	if (!d || !len)
		return;
	for (uint64_t k = off / VMM_BLK_DIRTY_BLOCK; k <= (off + len - 1) / VMM_BLK_DIRTY_BLOCK;
	     k++)
		if (k < b->dirty_blocks)
			__atomic_fetch_or(&d[k / 64], 1ull << (k % 64), __ATOMIC_SEQ_CST);
}

static uint8_t do_rw(struct blk *b, const struct vmm_vq_chain *c, bool write, uint64_t sector,
                     uint32_t *used)
{
	struct iovec io[VMM_VQ_MAX_SIZE];
	uint64_t len = write ? c->rlen - HDR_LEN : c->wlen - 1u;
	unsigned n = write ? vmm_iov_slice(c->iov, c->nr, HDR_LEN, len, io)
	                   : vmm_iov_slice(c->iov + c->nr, c->nw, 0, len, io);

	if (len % SECTOR || !in_range(b, sector, len / SECTOR))
		return VIRTIO_BLK_S_IOERR;
	if (write && b->readonly)
		return VIRTIO_BLK_S_IOERR;
	if ((write ? vmm_disk_writev(b->disk, io, n, sector * SECTOR)
	           : vmm_disk_readv(b->disk, io, n, sector * SECTOR)) < 0)
		return VIRTIO_BLK_S_IOERR;
	if (write) {
		mark_written(b, sector * SECTOR, len); /* after the data is in the file */
		b->st.writes++;
		b->st.written_bytes += len;
	} else {
		b->st.reads++;
		b->st.read_bytes += len;
		*used = (uint32_t)len;
	}
	return VIRTIO_BLK_S_OK;
}

/* DISCARD / WRITE_ZEROES: the readable part after the header is an array
 * of segments; all are checked before any is carried out. */
static uint8_t do_dwz(struct blk *b, const struct vmm_vq_chain *c, uint32_t type)
{
	uint8_t seg[VIRTIO_BLK_MAX_DWZ_SEG][SEG_LEN];
	uint32_t len = c->rlen - HDR_LEN;
	unsigned nseg = len / SEG_LEN;
	bool discard = type == VIRTIO_BLK_T_DISCARD;

	if (b->readonly || !len || len % SEG_LEN || nseg > VIRTIO_BLK_MAX_DWZ_SEG)
		return VIRTIO_BLK_S_IOERR;
	vmm_vq_read(c, HDR_LEN, seg, len); /* copied once: the guest may change it */
	for (unsigned i = 0; i < nseg; i++) {
		uint64_t sector;
		uint32_t num, flags;
		memcpy(&sector, seg[i], 8);
		memcpy(&num, seg[i] + 8, 4);
		memcpy(&flags, seg[i] + 12, 4);
		sector = le64toh(sector);
		num = le32toh(num);
		flags = le32toh(flags);
		if (flags & ~VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP || (discard && flags))
			return VIRTIO_BLK_S_UNSUPP;
		if (num > VIRTIO_BLK_MAX_DWZ_SECTORS || !in_range(b, sector, num))
			return VIRTIO_BLK_S_IOERR;
	}
	for (unsigned i = 0; i < nseg; i++) {
		uint64_t sector;
		uint32_t num, flags;
		int ret;
		memcpy(&sector, seg[i], 8);
		memcpy(&num, seg[i] + 8, 4);
		memcpy(&flags, seg[i] + 12, 4);
		uint64_t off = le64toh(sector) * SECTOR, n = (uint64_t)le32toh(num) * SECTOR;
		if (!n)
			continue;
		if (discard)
			ret = vmm_disk_discard(b->disk, off, n); /* only a hint */
		else
			ret = vmm_disk_zero(b->disk, off, n,
			                    le32toh(flags) & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
		/* after the file changed, as for a write: marked before, a
		 * harvest in between (a storage migration's pre-copy reads
		 * while the guest runs) would send the old data and clear the
		 * bit, and the zeros would never follow. A discard is marked
		 * too: a raw image reads zeros where it punched, and the copy
		 * must read the same */
		mark_written(b, off, n);
		if (ret < 0)
			return VIRTIO_BLK_S_IOERR;
	}
	if (discard)
		b->st.discards++;
	else
		b->st.write_zeroes++;
	return VIRTIO_BLK_S_OK;
}

static uint8_t do_request(struct blk *b, struct vmm_virtio *v, const struct vmm_vq_chain *c,
                          uint32_t *used)
{
	uint64_t feat = vmm_virtio_driver_features(v);
	uint8_t hdr[HDR_LEN];
	uint32_t type;
	uint64_t sector;

	if (c->rlen < HDR_LEN)
		return VIRTIO_BLK_S_IOERR;
	vmm_vq_read(c, 0, hdr, HDR_LEN);
	memcpy(&type, hdr, 4);
	memcpy(&sector, hdr + 8, 8);
	type = le32toh(type);
	sector = le64toh(sector);
	switch (type) {
	case VIRTIO_BLK_T_IN:
		return do_rw(b, c, false, sector, used);
	case VIRTIO_BLK_T_OUT:
		return do_rw(b, c, true, sector, used);
	case VIRTIO_BLK_T_FLUSH:
		if (!b->readonly && vmm_disk_flush(b->disk) < 0)
			return VIRTIO_BLK_S_IOERR;
		b->st.flushes++;
		return VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_GET_ID: {
		uint32_t n = c->wlen - 1 < VIRTIO_BLK_ID_BYTES ? c->wlen - 1 : VIRTIO_BLK_ID_BYTES;
		*used = (uint32_t)vmm_vq_write(c, 0, b->serial, n);
		return VIRTIO_BLK_S_OK;
	}
	case VIRTIO_BLK_T_DISCARD:
		if (!(feat & VIRTIO_BLK_F_DISCARD))
			return VIRTIO_BLK_S_UNSUPP;
		return do_dwz(b, c, type);
	case VIRTIO_BLK_T_WRITE_ZEROES:
		if (!(feat & VIRTIO_BLK_F_WRITE_ZEROES))
			return VIRTIO_BLK_S_UNSUPP;
		return do_dwz(b, c, type);
	default:
		return VIRTIO_BLK_S_UNSUPP;
	}
}

static void blk_notify(void *be, struct vmm_virtio *v, unsigned q)
{
	struct blk *b = be;
	struct vmm_vq_chain c;

	while (vmm_virtio_pop(v, q, &c) == 1) {
		uint32_t used = 0;
		if (c.wlen < 1) { /* no room for a status: nothing to answer with */
			b->st.errors++;
			vmm_virtio_push(v, q, &c, 0);
			continue;
		}
		uint8_t status = do_request(b, v, &c, &used);
		if (status == VIRTIO_BLK_S_IOERR)
			b->st.errors++;
		else if (status == VIRTIO_BLK_S_UNSUPP)
			b->st.unsupp++;
		if (status != VIRTIO_BLK_S_OK)
			used = 0;
		/* the status byte, the last of the chain, after the data */
		vmm_vq_write(&c, c.wlen - 1u, &status, 1);
		vmm_virtio_push(v, q, &c, used + 1);
	}
}

/* Layout (version 1): version u8, capacity u64, then the counters (u64
 * each, in struct order). */
static int blk_save(void *be, struct sbuf *o)
{
	struct blk *b = be;
	const struct vmm_virtio_blk_stats *s = &b->st;

	sbuf_u8(o, STATE_VERSION);
	sbuf_u64(o, b->sectors);
	sbuf_u64(o, s->reads);
	sbuf_u64(o, s->writes);
	sbuf_u64(o, s->flushes);
	sbuf_u64(o, s->discards);
	sbuf_u64(o, s->write_zeroes);
	sbuf_u64(o, s->read_bytes);
	sbuf_u64(o, s->written_bytes);
	sbuf_u64(o, s->errors);
	sbuf_u64(o, s->unsupp);
	return o->err;
}

static int blk_restore(void *be, struct rbuf *in)
{
	struct blk *b = be;
	struct vmm_virtio_blk_stats s;

	if (rbuf_u8(in) != STATE_VERSION || rbuf_u64(in) != b->sectors)
		return -EBADMSG;
	s.reads = rbuf_u64(in);
	s.writes = rbuf_u64(in);
	s.flushes = rbuf_u64(in);
	s.discards = rbuf_u64(in);
	s.write_zeroes = rbuf_u64(in);
	s.read_bytes = rbuf_u64(in);
	s.written_bytes = rbuf_u64(in);
	s.errors = rbuf_u64(in);
	s.unsupp = rbuf_u64(in);
	if (rbuf_done(in) < 0)
		return -EBADMSG;
	b->st = s;
	return 0;
}

static void blk_destroy(void *be)
{
	struct blk *b = be;

	vmm_disk_close(b->disk);
	free(b->dirty_map);
	free(b);
}

int vmm_virtio_blk_dirty_start(struct vmm_device *d)
{
	struct blk *b = vmm_virtio_backend(d);
	uint64_t bytes = b->sectors * SECTOR;

	if (!b->dirty_map) {
		b->dirty_blocks = (bytes + VMM_BLK_DIRTY_BLOCK - 1) / VMM_BLK_DIRTY_BLOCK;
		b->dirty_map = calloc((b->dirty_blocks + 63) / 64 + 1, sizeof(uint64_t));
		if (!b->dirty_map)
			return -ENOMEM;
	} else {
		memset(b->dirty_map, 0, ((b->dirty_blocks + 63) / 64 + 1) * sizeof(uint64_t));
	}
	atomic_store(&b->dirty, b->dirty_map);
	return 0;
}

void vmm_virtio_blk_dirty_stop(struct vmm_device *d)
{
	struct blk *b = vmm_virtio_backend(d);

	atomic_store(&b->dirty, NULL);
}

uint64_t vmm_virtio_blk_dirty_harvest(struct vmm_device *d, uint64_t *out)
{
	struct blk *b = vmm_virtio_backend(d);
	uint64_t n = 0;

	for (uint64_t w = 0; w < (b->dirty_blocks + 63) / 64; w++) {
		uint64_t v = b->dirty_map
		                     ? __atomic_exchange_n(&b->dirty_map[w], 0, __ATOMIC_SEQ_CST)
		                     : 0;
		out[w] = v;
		n += (uint64_t)__builtin_popcountll(v);
	}
	return n;
}

uint64_t vmm_virtio_blk_blocks(struct vmm_device *d)
{
	struct blk *b = vmm_virtio_backend(d);

	return (b->sectors * SECTOR + VMM_BLK_DIRTY_BLOCK - 1) / VMM_BLK_DIRTY_BLOCK;
}

uint64_t vmm_virtio_blk_bytes(struct vmm_device *d)
{
	return ((struct blk *)vmm_virtio_backend(d))->sectors * SECTOR;
}

bool vmm_virtio_blk_readonly(struct vmm_device *d)
{
	return ((struct blk *)vmm_virtio_backend(d))->readonly;
}

int vmm_virtio_blk_raw_fd(struct vmm_device *d)
{
	return vmm_disk_raw_fd(((struct blk *)vmm_virtio_backend(d))->disk);
}

bool vmm_virtio_blk_top_has(struct vmm_device *d, uint64_t off)
{
	struct vmm_virtio *v = vmm_virtio_of(d);
	struct blk *b = vmm_virtio_backend(d);

	vmm_virtio_lock(v);
	bool has = vmm_disk_top_has(b->disk, off);
	vmm_virtio_unlock(v);
	return has;
}

int vmm_virtio_blk_read_at(struct vmm_device *d, uint64_t off, void *p, size_t n)
{
	struct vmm_virtio *v = vmm_virtio_of(d);
	struct blk *b = vmm_virtio_backend(d);

	vmm_virtio_lock(v);
	int ret = vmm_disk_pread(b->disk, p, n, off);
	vmm_virtio_unlock(v);
	return ret;
}

int vmm_virtio_blk_write_at(struct vmm_device *d, uint64_t off, const void *p, size_t n, bool zero)
{
	struct vmm_virtio *v = vmm_virtio_of(d);
	struct blk *b = vmm_virtio_backend(d);
	int ret;

	if (b->readonly || off > vmm_disk_size(b->disk) || n > vmm_disk_size(b->disk) - off)
		return -EINVAL;
	vmm_virtio_lock(v);
	ret = zero ? vmm_disk_zero(b->disk, off, n, true) : vmm_disk_pwrite(b->disk, p, n, off);
	vmm_virtio_unlock(v);
	return ret;
}

int vmm_virtio_blk_snapshot(struct vmm_device *d, const char *delta, char *err, size_t errlen)
{
	struct vmm_virtio *v = vmm_virtio_of(d);
	struct blk *b = vmm_virtio_backend(d);

	if (b->readonly) {
		snprintf(err, errlen, "disk %s is read-only: it takes no snapshot layer",
		         vmm_disk_top_path(b->disk));
		return -EROFS;
	}
	vmm_virtio_lock(v);
	int ret = vmm_disk_push(b->disk, delta, err, errlen);
	vmm_virtio_unlock(v);
	return ret;
}

int vmm_virtio_blk_consolidate(struct vmm_device *d, char *err, size_t errlen)
{
	struct vmm_virtio *v = vmm_virtio_of(d);
	struct blk *b = vmm_virtio_backend(d);

	vmm_virtio_lock(v);
	int ret = vmm_disk_merge_begin(b->disk, err, errlen);
	uint64_t n = vmm_disk_grains(b->disk);
	vmm_virtio_unlock(v);
	/* grain by grain, the guest's requests in between */
	for (uint64_t g = 0; ret == 0 && g < n; g++) {
		vmm_virtio_lock(v);
		if ((ret = vmm_disk_merge_step(b->disk, g)) < 0) {
			snprintf(err, errlen, "disk %s: merging: %s", vmm_disk_top_path(b->disk),
			         strerror(-ret));
			vmm_disk_merge_abort(b->disk);
		}
		vmm_virtio_unlock(v);
	}
	return ret;
}

int vmm_virtio_blk_consolidate_finish(struct vmm_device *d, char *err, size_t errlen)
{
	struct vmm_virtio *v = vmm_virtio_of(d);
	struct blk *b = vmm_virtio_backend(d);

	vmm_virtio_lock(v);
	int ret = vmm_disk_merge_finish(b->disk, err, errlen);
	vmm_virtio_unlock(v);
	return ret;
}

const char *vmm_virtio_blk_top(struct vmm_device *d)
{
	return vmm_disk_top_path(((struct blk *)vmm_virtio_backend(d))->disk);
}

static const struct vmm_virtio_backend_ops blk_ops = {
	.name = "virtio-blk",
	.device_id = VIRTIO_ID_BLOCK,
	.nqueues = 1,
	.features = blk_features,
	.config_read = blk_config_read,
	.notify = blk_notify,
	.save = blk_save,
	.restore = blk_restore,
	.destroy = blk_destroy,
};

void vmm_virtio_blk_get_stats(struct vmm_device *d, struct vmm_virtio_blk_stats *st)
{
	struct vmm_virtio *v = vmm_virtio_of(d);

	vmm_virtio_lock(v);
	*st = ((struct blk *)vmm_virtio_backend(d))->st;
	vmm_virtio_unlock(v);
}

int vmm_virtio_blk_create(struct vmm_device **d, struct vmm_bus *bus, uint64_t mmio_base,
                          uint32_t gsi, const char *path, bool readonly, const char *serial,
                          char *err, size_t errlen)
{
	struct blk *b = calloc(1, sizeof(*b));
	int ret;

	if (!b) {
		snprintf(err, errlen, "disk %s: %s", path, strerror(ENOMEM));
		return -ENOMEM;
	}
	b->readonly = readonly;
	if ((ret = vmm_disk_open(&b->disk, path, readonly, err, errlen)) < 0) {
		free(b);
		return ret;
	}
	b->sectors = vmm_disk_size(b->disk) / SECTOR;
	if (serial) /* NUL-padded, unterminated at 20 bytes */
		memcpy(b->serial, serial, strnlen(serial, sizeof(b->serial)));
	ret = vmm_virtio_create(d, bus, mmio_base, gsi, &blk_ops, b);
	if (ret == 0)
		return 0;
	snprintf(err, errlen, "disk %s: %s", path, strerror(-ret));
	vmm_disk_close(b->disk);
	free(b);
	return ret;
}
