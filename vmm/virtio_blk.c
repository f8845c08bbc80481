#include "virtio_blk.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define T_IN           0
#define T_OUT          1
#define T_FLUSH        4
#define T_GET_ID       8
#define T_DISCARD      11
#define T_WRITE_ZEROES 13
#define S_OK           0
#define S_IOERR        1
#define S_UNSUPP       2

#define F_RO           (1ull << 5)
#define F_FLUSH        (1ull << 9)
#define F_DISCARD      (1ull << 13)
#define F_WRITE_ZEROES (1ull << 14)

#define SECTOR 512u
#define ID_LEN 20

struct blk {
	int fd;
	bool readonly;
	uint64_t sectors;
	char serial[ID_LEN + 1];
	uint64_t reads, writes, errors;
};

static void config_read(void *be, uint64_t off, uint8_t *data, unsigned size)
{
	struct blk *b = be;
	uint8_t cfg[64] = { 0 };

	memcpy(cfg, &b->sectors, 8);              /* capacity */
	uint32_t max_discard = 1u << 22, one = 1; /* sectors per discard */
	memcpy(cfg + 36, &max_discard, 4);        /* max_discard_sectors */
	memcpy(cfg + 40, &one, 4);                /* max_discard_seg */
	memcpy(cfg + 44, &one, 4);                /* discard_sector_alignment */
	memcpy(cfg + 48, &max_discard, 4);        /* max_write_zeroes_sectors */
	memcpy(cfg + 52, &one, 4);                /* max_write_zeroes_seg */
	if (off < sizeof(cfg) && size <= sizeof(cfg) - off)
		memcpy(data, cfg + off, size);
	else
		memset(data, 0, size);
}

/* The data buffers of a chain: all but the first (header) and last (status). */
static int rw(struct blk *b, struct vq_chain *c, bool write, uint64_t sector, uint32_t *written)
{
	uint64_t off = sector * SECTOR, total = 0;

	for (unsigned i = 1; i + 1 < c->n; i++) {
		if (c->writable[i] == write)
			return S_IOERR; /* direction does not match the request */
		total += c->iov[i].iov_len;
	}
	if (total % SECTOR || sector > b->sectors || total / SECTOR > b->sectors - sector)
		return S_IOERR;
	if (write && b->readonly)
		return S_IOERR;
	for (unsigned i = 1; i + 1 < c->n; i++) {
		size_t len = c->iov[i].iov_len, done = 0;
		while (done < len) {
			ssize_t n = write ? pwrite(b->fd, (uint8_t *)c->iov[i].iov_base + done,
			                           len - done, (off_t)off)
			                  : pread(b->fd, (uint8_t *)c->iov[i].iov_base + done,
			                          len - done, (off_t)off);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return S_IOERR;
			if (n == 0) { /* past the end of a short file: zeroes */
				memset((uint8_t *)c->iov[i].iov_base + done, 0, len - done);
				n = (ssize_t)(len - done);
			}
			done += (size_t)n;
			off += (uint64_t)n;
		}
		if (!write)
			*written += (uint32_t)len;
	}
	if (write)
		b->writes++;
	else
		b->reads++;
	return S_OK;
}

/* discard / write-zeroes: segments of {u64 sector, u32 num, u32 flags} */
static int punch(struct blk *b, struct vq_chain *c, int mode)
{
	if (b->readonly)
		return S_IOERR;
	for (unsigned i = 1; i + 1 < c->n; i++) {
		if (c->writable[i] || c->iov[i].iov_len % 16)
			return S_IOERR;
		for (size_t k = 0; k < c->iov[i].iov_len; k += 16) {
			uint64_t sector;
			uint32_t num;
			memcpy(&sector, (uint8_t *)c->iov[i].iov_base + k, 8);
			memcpy(&num, (uint8_t *)c->iov[i].iov_base + k + 8, 4);
			if (sector > b->sectors || num > b->sectors - sector)
				return S_IOERR;
			if (fallocate(b->fd, mode, (off_t)(sector * SECTOR), (off_t)num * SECTOR) <
			    0)
				return S_IOERR;
		}
	}
	return S_OK;
}

static void notify(void *be, struct vmm_virtio *v, unsigned q)
{
	struct blk *b = be;
	struct vq_chain c;

	while (vmm_virtio_pop(v, q, &c) == 1) {
		uint8_t status = S_IOERR;
		uint32_t written = 0;
		uint32_t hdr[4];
		/* header (readable, 16 bytes) ... status (writable, 1 byte) */
		if (c.n < 2 || c.writable[0] || c.iov[0].iov_len < 16 || !c.writable[c.n - 1] ||
		    c.iov[c.n - 1].iov_len < 1) {
			b->errors++;
			if (c.n >= 1 && c.writable[c.n - 1] && c.iov[c.n - 1].iov_len >= 1)
				*((uint8_t *)c.iov[c.n - 1].iov_base) = S_IOERR;
			vmm_virtio_push(v, q, &c, 0);
			continue;
		}
		memcpy(hdr, c.iov[0].iov_base, 16);
		uint64_t sector = hdr[2] | (uint64_t)hdr[3] << 32;
		switch (hdr[0]) {
		case T_IN:
			status = (uint8_t)rw(b, &c, false, sector, &written);
			break;
		case T_OUT:
			status = (uint8_t)rw(b, &c, true, sector, &written);
			break;
		case T_FLUSH:
			status = b->readonly || fdatasync(b->fd) == 0 ? S_OK : S_IOERR;
			break;
		case T_GET_ID:
			if (c.n == 3 && c.writable[1] && c.iov[1].iov_len >= ID_LEN) {
				memcpy(c.iov[1].iov_base, b->serial, ID_LEN);
				written = ID_LEN;
				status = S_OK;
			}
			break;
		case T_DISCARD:
			status = (uint8_t)punch(b, &c, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE);
			break;
		case T_WRITE_ZEROES:
			status = (uint8_t)punch(b, &c, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE);
			break;
		default:
			status = S_UNSUPP;
		}
		if (status != S_OK)
			b->errors++;
		*((uint8_t *)c.iov[c.n - 1].iov_base) = status;
		vmm_virtio_push(v, q, &c, written + 1);
	}
}

static void destroy(void *be)
{
	struct blk *b = be;

	close(b->fd);
	free(b);
}

static const struct virtio_backend_ops blk_ops = {
	.device_id = VIRTIO_ID_BLOCK,
	.nqueues = 1,
	.config_read = config_read,
	.notify = notify,
	.destroy = destroy,
};

int vmm_virtio_blk_create(struct vmm_device **d, struct vmm_bus *bus, uint64_t mmio_base,
                          uint32_t gsi, const char *path, bool readonly, const char *serial,
                          char *err, size_t errlen)
{
	struct blk *b = calloc(1, sizeof(*b));
	struct stat st;
	int ret;

	if (!b)
		return -ENOMEM;
	b->readonly = readonly;
	b->fd = open(path, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (b->fd < 0 || fstat(b->fd, &st) < 0) {
		ret = -errno;
		snprintf(err, errlen, "disk %s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode) || st.st_size % SECTOR) {
		snprintf(err, errlen,
		         "disk %s: not a raw image (a regular file of 512-byte sectors)", path);
		ret = -EINVAL;
		goto fail;
	}
	b->sectors = (uint64_t)st.st_size / SECTOR;
	snprintf(b->serial, sizeof(b->serial), "%.20s", serial ? serial : "");
	uint64_t features = F_FLUSH | F_DISCARD | F_WRITE_ZEROES | (readonly ? F_RO : 0);
	ret = vmm_virtio_create(d, bus, mmio_base, gsi, &blk_ops, b, features, "virtio-blk");
	if (ret == 0)
		return 0;
	snprintf(err, errlen, "disk %s: %s", path, strerror(-ret));
fail:
	if (b->fd >= 0)
		close(b->fd);
	free(b);
	return ret;
}
