/* Disk chains: a raw base and copy-on-write deltas (disk.h has the
 * format). */
#include "disk.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "le.h"
#include "state.h"
#include "util.h"
#include "virtqueue.h"

#define SECTOR      512u
#define BITMAP_PAGE 4096u
#define HDR_USED    304u /* bytes before the header's crc */
#define OFF_VERSION 8
#define OFF_SHIFT   12
#define OFF_SIZE    16
#define OFF_BMOFF   24
#define OFF_BMBYTES 32
#define OFF_DATAOFF 40
#define OFF_PARENT  48

struct layer {
	int fd;
	bool delta, writable;
	char path[PATH_MAX];
	uint64_t data_off, bitmap_off, bitmap_bytes;
	uint8_t *bitmap;
	uint8_t *dirty; /* a bit per BITMAP_PAGE of bitmap changed since the last flush */
	bool any_dirty;
};

struct vmm_disk {
	uint64_t size;
	unsigned n;
	struct layer l[DISK_MAX_CHAIN]; /* l[0] the top, l[n - 1] the raw base */
	uint8_t *grain;                 /* a grain's worth of scratch */
	/* a live consolidation: the grains written since it copied them */
	bool merging;
	uint8_t *redo;
};

static uint64_t grains_of(uint64_t size)
{
	return (size + DISK_GRAIN - 1) >> DISK_GRAIN_SHIFT;
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

static bool has(const struct layer *l, uint64_t g)
{
	return !l->delta || (l->bitmap[g >> 3] >> (g & 7) & 1);
}

static void set_bit(struct layer *l, uint64_t g)
{
	l->bitmap[g >> 3] |= (uint8_t)(1u << (g & 7));
	uint64_t page = (g >> 3) / BITMAP_PAGE;
	l->dirty[page >> 3] |= (uint8_t)(1u << (page & 7));
	l->any_dirty = true;
}

static void dir_of(const char *path, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s", path);
	char *slash = strrchr(out, '/');
	if (slash == out)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		snprintf(out, outlen, ".");
}

static void sync_dir(const char *path)
{
	char d[PATH_MAX];
	dir_of(path, d, sizeof(d));
	int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

static int pread_all(int fd, void *buf, size_t n, uint64_t off)
{
	uint8_t *b = buf;
	while (n) {
		ssize_t k = pread(fd, b, n, (off_t)off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0) { /* past the end of a sparse file: zeros */
			memset(b, 0, n);
			return 0;
		}
		b += k;
		off += (uint64_t)k;
		n -= (size_t)k;
	}
	return 0;
}

/* All of iov[0 .. n) from/to fd at off (iov is consumed); reads past the
 * end of the file are zeros. */
static int rw_all(int fd, struct iovec *iov, unsigned n, uint64_t off, bool write)
{
	while (n) {
		ssize_t r = write ? pwritev(fd, iov, (int)n, (off_t)off)
		                  : preadv(fd, iov, (int)n, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0) {
			if (write)
				return -EIO;
			for (unsigned i = 0; i < n; i++)
				memset(iov[i].iov_base, 0, iov[i].iov_len);
			return 0;
		}
		off += (uint64_t)r;
		size_t done = (size_t)r;
		while (done && n) {
			if (done >= iov->iov_len) {
				done -= iov->iov_len;
				iov++;
				n--;
			} else {
				iov->iov_base = (uint8_t *)iov->iov_base + done;
				iov->iov_len -= done;
				done = 0;
			}
		}
	}
	return 0;
}

/* ---- headers ---- */

struct hdr {
	uint64_t size, bitmap_off, bitmap_bytes, data_off;
	char parent[DISK_PARENT_MAX];
};

static void layout(uint64_t size, struct hdr *h)
{
	h->size = size;
	h->bitmap_off = DISK_DELTA_HDR;
	h->bitmap_bytes = (grains_of(size) + 7) / 8;
	h->data_off = align_up(DISK_DELTA_HDR + h->bitmap_bytes, DISK_GRAIN);
}

static void hdr_encode(const struct hdr *h, uint8_t *b)
{
	memset(b, 0, DISK_DELTA_HDR);
	memcpy(b, DISK_DELTA_MAGIC, 8);
	le_put32(b + OFF_VERSION, 1);
	le_put32(b + OFF_SHIFT, DISK_GRAIN_SHIFT);
	le_put64(b + OFF_SIZE, h->size);
	le_put64(b + OFF_BMOFF, h->bitmap_off);
	le_put64(b + OFF_BMBYTES, h->bitmap_bytes);
	le_put64(b + OFF_DATAOFF, h->data_off);
	memcpy(b + OFF_PARENT, h->parent, strnlen(h->parent, DISK_PARENT_MAX - 1));
	le_put32(b + HDR_USED, vmm_crc32c(0, b, HDR_USED));
}

/* 1 for a valid delta header (h filled), 0 for no delta magic, -EBADMSG
 * with err for a damaged or foreign one. */
static int hdr_decode(const uint8_t *b, size_t n, const char *path, struct hdr *h, char *err,
                      size_t errlen)
{
	if (n < DISK_DELTA_HDR || memcmp(b, DISK_DELTA_MAGIC, 8) != 0)
		return 0;
	struct hdr want;
	uint64_t size = le_get64(b + OFF_SIZE);
	const char *why = NULL;
	if (le_get32(b + HDR_USED) != vmm_crc32c(0, b, HDR_USED))
		why = "its header fails its checksum";
	else if (le_get32(b + OFF_VERSION) != 1)
		why = "an unknown delta version";
	else if (le_get32(b + OFF_SHIFT) != DISK_GRAIN_SHIFT)
		why = "an unsupported grain size";
	else if (!size || size % SECTOR || size > DISK_MAX_BYTES)
		why = "a bad disk size";
	else if (!memchr(b + OFF_PARENT, 0, DISK_PARENT_MAX) || !b[OFF_PARENT])
		why = "no parent";
	if (!why) {
		layout(size, &want);
		if (le_get64(b + OFF_BMOFF) != want.bitmap_off ||
		    le_get64(b + OFF_BMBYTES) != want.bitmap_bytes ||
		    le_get64(b + OFF_DATAOFF) != want.data_off)
			why = "an inconsistent layout";
	}
	if (why) {
		snprintf(err, errlen, "%s: a damaged delta disk: %s", path, why);
		return -EBADMSG;
	}
	*h = want;
	snprintf(h->parent, sizeof(h->parent), "%s", (const char *)b + OFF_PARENT);
	return 1;
}

int vmm_delta_header_parse(const uint8_t *b, size_t n, char *parent, size_t parentlen,
                           uint64_t *size, char *err, size_t errlen)
{
	struct hdr h;
	int ret = hdr_decode(b, n, "delta", &h, err, errlen);

	if (ret == 1) {
		snprintf(parent, parentlen, "%s", h.parent);
		*size = h.size;
	}
	return ret;
}

static int read_hdr(int fd, const char *path, struct hdr *h, char *err, size_t errlen)
{
	uint8_t *b = malloc(DISK_DELTA_HDR);
	ssize_t k;

	if (!b)
		return -ENOMEM;
	k = pread(fd, b, DISK_DELTA_HDR, 0);
	int ret = k < 0 ? -errno : hdr_decode(b, (size_t)k, path, h, err, errlen);
	if (k < 0)
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
	free(b);
	return ret;
}

/* ---- opening a chain ---- */

static void layer_close(struct layer *l)
{
	if (l->fd >= 0)
		close(l->fd);
	free(l->bitmap);
	free(l->dirty);
	memset(l, 0, sizeof(*l));
	l->fd = -1;
}

/* Opens one layer; *parent gets a delta's parent path (resolved against
 * its directory), "" for a raw image. */
static int layer_open(struct layer *l, const char *path, bool writable, uint64_t *size,
                      char *parent, size_t parentlen, char *err, size_t errlen)
{
	struct stat st;
	struct hdr h;
	int ret;

	memset(l, 0, sizeof(*l));
	snprintf(l->path, sizeof(l->path), "%s", path);
	l->writable = writable;
	l->fd = util_open_regular(path, writable ? O_RDWR : O_RDONLY, &st);
	if (l->fd < 0) {
		/* a directory: EISDIR from a writable open, as open(2) says */
		ret = l->fd == -EISDIR && !writable ? -EINVAL : l->fd;
		l->fd = -1;
		snprintf(err, errlen, "disk %s: %s", path,
		         ret == -EINVAL ? "not a regular file" : strerror(-ret));
		return ret;
	}
	parent[0] = '\0';
	/* the name says which: a raw image's first bytes are the guest's to
	 * write, and must never make it a delta pointing at other files */
	ret = 0;
	if (vmm_disk_is_delta_name(path)) {
		if ((ret = read_hdr(l->fd, path, &h, err, errlen)) < 0)
			return ret;
		if (ret == 0) {
			snprintf(err, errlen, "disk %s: not a delta disk (no %s header)", path,
			         DISK_DELTA_MAGIC);
			return -EINVAL;
		}
	}
	if (ret == 0) { /* raw */
		if (st.st_size % SECTOR || !st.st_size) {
			snprintf(err, errlen,
			         "disk %s: not a raw image (a regular file of 512-byte sectors)",
			         path);
			return -EINVAL;
		}
		*size = (uint64_t)st.st_size;
		return 0;
	}
	l->delta = true;
	l->data_off = h.data_off;
	l->bitmap_off = h.bitmap_off;
	l->bitmap_bytes = h.bitmap_bytes;
	*size = h.size;
	l->bitmap = malloc(h.bitmap_bytes);
	l->dirty = calloc((h.bitmap_bytes / BITMAP_PAGE + 1 + 7) / 8, 1);
	if (!l->bitmap || !l->dirty) {
		snprintf(err, errlen, "disk %s: out of memory for its bitmap", path);
		return -ENOMEM;
	}
	if ((ret = pread_all(l->fd, l->bitmap, h.bitmap_bytes, h.bitmap_off)) < 0) {
		snprintf(err, errlen, "disk %s: reading its bitmap: %s", path, strerror(-ret));
		return ret;
	}
	if (h.parent[0] == '/') {
		snprintf(parent, parentlen, "%s", h.parent);
	} else {
		char d[PATH_MAX];
		dir_of(path, d, sizeof(d));
		snprintf(parent, parentlen, "%s/%s", d, h.parent);
	}
	return 0;
}

int vmm_disk_open(struct vmm_disk **dp, const char *path, bool readonly, char *err, size_t errlen)
{
	struct vmm_disk *d = calloc(1, sizeof(*d));
	char cur[PATH_MAX], parent[PATH_MAX];
	int ret = 0;

	*dp = NULL;
	if (!d || !(d->grain = malloc(DISK_GRAIN))) {
		free(d);
		snprintf(err, errlen, "disk %s: out of memory", path);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < DISK_MAX_CHAIN; i++)
		d->l[i].fd = -1;
	snprintf(cur, sizeof(cur), "%s", path);
	for (;;) {
		uint64_t size = 0;
		if (d->n == DISK_MAX_CHAIN) {
			snprintf(err, errlen, "disk %s: a chain of more than %d layers", path,
			         DISK_MAX_CHAIN);
			ret = -ELOOP;
			break;
		}
		struct layer *l = &d->l[d->n++];
		ret = layer_open(l, cur, d->n == 1 && !readonly, &size, parent, sizeof(parent), err,
		                 errlen);
		if (ret < 0)
			break;
		if (d->n == 1) {
			d->size = size;
		} else if (size != d->size) {
			snprintf(err, errlen, "disk %s: layer %s has %llu bytes, the disk %llu",
			         path, cur, (unsigned long long)size, (unsigned long long)d->size);
			ret = -EINVAL;
			break;
		}
		if (!parent[0])
			break; /* the raw base */
		snprintf(cur, sizeof(cur), "%s", parent);
	}
	if (ret < 0) {
		vmm_disk_close(d);
		return ret;
	}
	*dp = d;
	return 0;
}

void vmm_disk_close(struct vmm_disk *d)
{
	if (!d)
		return;
	if (d->n && d->l[0].writable)
		vmm_disk_flush(d);
	for (unsigned i = 0; i < d->n; i++)
		layer_close(&d->l[i]);
	free(d->redo);
	free(d->grain);
	free(d);
}

uint64_t vmm_disk_size(const struct vmm_disk *d)
{
	return d->size;
}

unsigned vmm_disk_depth(const struct vmm_disk *d)
{
	return d->n;
}

bool vmm_disk_top_has(const struct vmm_disk *d, uint64_t off)
{
	return off < d->size && has(&d->l[0], off >> DISK_GRAIN_SHIFT);
}

int vmm_disk_raw_fd(const struct vmm_disk *d)
{
	return d->n == 1 && !d->l[0].delta ? d->l[0].fd : -1;
}

const char *vmm_disk_top_path(const struct vmm_disk *d)
{
	return d->l[0].path;
}

/* ---- I/O ---- */

static bool in_range(const struct vmm_disk *d, uint64_t off, uint64_t len)
{
	return off <= d->size && len <= d->size - off;
}

/* The first layer from `from` down that holds grain g. */
static unsigned layer_of(const struct vmm_disk *d, uint64_t g, unsigned from)
{
	unsigned i = from;
	while (i + 1 < d->n && !has(&d->l[i], g))
		i++;
	return i;
}

static uint64_t file_off(const struct layer *l, uint64_t off)
{
	return l->delta ? l->data_off + off : off;
}

/* [off, off + len) of the disk as layers from..n-1 hold it, into iov. */
static int read_from(struct vmm_disk *d, unsigned from, const struct iovec *iov, unsigned n,
                     uint64_t off, uint64_t len)
{
	struct iovec sub[1024];
	uint64_t pos = off, end = off + len;

	if (n > 1024)
		return -EINVAL;
	while (pos < end) {
		uint64_t g = pos >> DISK_GRAIN_SHIFT;
		unsigned li = layer_of(d, g, from);
		uint64_t run = (g + 1) << DISK_GRAIN_SHIFT;
		while (run < end && layer_of(d, run >> DISK_GRAIN_SHIFT, from) == li)
			run += DISK_GRAIN;
		if (run > end)
			run = end;
		unsigned k = vmm_iov_slice(iov, n, pos - off, run - pos, sub);
		int ret = rw_all(d->l[li].fd, sub, k, file_off(&d->l[li], pos), false);
		if (ret < 0)
			return ret;
		pos = run;
	}
	return 0;
}

int vmm_disk_readv(struct vmm_disk *d, struct iovec *iov, unsigned n, uint64_t off)
{
	uint64_t len = 0;

	for (unsigned i = 0; i < n; i++)
		len += iov[i].iov_len;
	if (!in_range(d, off, len))
		return -EINVAL;
	if (d->n == 1)
		return rw_all(d->l[0].fd, iov, n, off, false);
	return read_from(d, 0, iov, n, off, len);
}

int vmm_disk_pread(struct vmm_disk *d, void *buf, size_t n, uint64_t off)
{
	struct iovec io = { buf, n };
	return vmm_disk_readv(d, &io, 1, off);
}

/* One grain's piece [pos, pend) of a write into a delta top. */
static int write_grain(struct vmm_disk *d, const struct iovec *iov, unsigned n, uint64_t skip,
                       uint64_t pos, uint64_t pend)
{
	struct layer *t = &d->l[0];
	uint64_t g = pos >> DISK_GRAIN_SHIFT, gs = g << DISK_GRAIN_SHIFT;
	uint64_t ge = gs + DISK_GRAIN > d->size ? d->size : gs + DISK_GRAIN;
	struct iovec sub[1024];
	int ret;

	if (n > 1024)
		return -EINVAL;
	if (has(t, g) || (pos == gs && pend == ge)) {
		unsigned k = vmm_iov_slice(iov, n, skip, pend - pos, sub);
		if ((ret = rw_all(t->fd, sub, k, t->data_off + pos, true)) < 0)
			return ret;
	} else {
		/* copy on write: the grain as the layers below hold it, then the new bytes */
		struct iovec whole = { d->grain, ge - gs };
		if ((ret = read_from(d, 1, &whole, 1, gs, ge - gs)) < 0)
			return ret;
		uint64_t at = pos - gs, left = pend - pos, s = skip;
		for (unsigned i = 0; i < n && left; i++) {
			if (s >= iov[i].iov_len) {
				s -= iov[i].iov_len;
				continue;
			}
			size_t c = iov[i].iov_len - s < left ? iov[i].iov_len - s : left;
			memcpy(d->grain + at, (uint8_t *)iov[i].iov_base + s, c);
			at += c;
			left -= c;
			s = 0;
		}
		if ((ret = util_pwrite_all(t->fd, d->grain, ge - gs, t->data_off + gs)) < 0)
			return ret;
	}
	if (!has(t, g))
		set_bit(t, g);
	if (d->merging) /* copied into the parent already, maybe: again at the end */
		d->redo[g >> 3] |= (uint8_t)(1u << (g & 7));
	return 0;
}

int vmm_disk_writev(struct vmm_disk *d, struct iovec *iov, unsigned n, uint64_t off)
{
	uint64_t len = 0;

	for (unsigned i = 0; i < n; i++)
		len += iov[i].iov_len;
	if (!d->l[0].writable)
		return -EROFS;
	if (!in_range(d, off, len))
		return -EINVAL;
	if (!d->l[0].delta)
		return rw_all(d->l[0].fd, iov, n, off, true);
	for (uint64_t pos = off, end = off + len; pos < end;) {
		uint64_t pend = ((pos >> DISK_GRAIN_SHIFT) + 1) << DISK_GRAIN_SHIFT;
		if (pend > end)
			pend = end;
		int ret = write_grain(d, iov, n, pos - off, pos, pend);
		if (ret < 0)
			return ret;
		pos = pend;
	}
	return 0;
}

int vmm_disk_pwrite(struct vmm_disk *d, const void *buf, size_t n, uint64_t off)
{
	struct iovec io = { (void *)buf, n };
	return vmm_disk_writev(d, &io, 1, off);
}

static int falloc(int fd, int mode, uint64_t off, uint64_t len)
{
	while (fallocate(fd, mode | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

static int write_zeroes(int fd, uint64_t off, uint64_t len)
{
	static const uint8_t zero[65536];
	while (len) {
		size_t n = len > sizeof(zero) ? sizeof(zero) : (size_t)len;
		int ret = util_pwrite_all(fd, zero, n, off);
		if (ret < 0)
			return ret;
		off += n;
		len -= n;
	}
	return 0;
}

/* Zeros in a file: a hole (unmap) or allocated zeros, whichever the file
 * system does, else written zeros. */
static int zero_range(int fd, uint64_t off, uint64_t len, bool unmap)
{
	int first = unmap ? FALLOC_FL_PUNCH_HOLE : FALLOC_FL_ZERO_RANGE;
	int second = unmap ? FALLOC_FL_ZERO_RANGE : FALLOC_FL_PUNCH_HOLE;
	int ret = falloc(fd, first, off, len);

	if (ret == -EOPNOTSUPP || ret == -EINVAL)
		ret = falloc(fd, second, off, len);
	if (ret == -EOPNOTSUPP || ret == -EINVAL)
		ret = write_zeroes(fd, off, len);
	return ret;
}

int vmm_disk_zero(struct vmm_disk *d, uint64_t off, uint64_t len, bool unmap)
{
	struct layer *t = &d->l[0];

	if (!t->writable)
		return -EROFS;
	if (!in_range(d, off, len))
		return -EINVAL;
	if (!t->delta)
		return zero_range(t->fd, off, len, unmap);
	for (uint64_t pos = off, end = off + len; pos < end;) {
		uint64_t g = pos >> DISK_GRAIN_SHIFT, gs = g << DISK_GRAIN_SHIFT;
		uint64_t ge = gs + DISK_GRAIN > d->size ? d->size : gs + DISK_GRAIN;
		uint64_t pend = ge < end ? ge : end;
		int ret;
		if (pos == gs && pend == ge) { /* a whole grain: a hole here, marked present */
			if ((ret = zero_range(t->fd, t->data_off + gs, ge - gs, true)) < 0)
				return ret;
			if (!has(t, g))
				set_bit(t, g);
			if (d->merging)
				d->redo[g >> 3] |= (uint8_t)(1u << (g & 7));
		} else {
			static const uint8_t zero[DISK_GRAIN];
			struct iovec io = { (void *)zero, pend - pos };
			if ((ret = write_grain(d, &io, 1, 0, pos, pend)) < 0)
				return ret;
		}
		pos = pend;
	}
	return 0;
}

int vmm_disk_discard(struct vmm_disk *d, uint64_t off, uint64_t len)
{
	if (!d->l[0].writable)
		return -EROFS;
	if (!in_range(d, off, len))
		return -EINVAL;
	if (d->l[0].delta)
		return 0; /* a hint; the parent's data must stay visible */
	int ret = falloc(d->l[0].fd, FALLOC_FL_PUNCH_HOLE, off, len);
	return ret == -EOPNOTSUPP ? 0 : ret;
}

static int flush_layer(struct layer *l)
{
	if (fdatasync(l->fd) < 0)
		return -errno;
	if (!l->delta || !l->any_dirty)
		return 0;
	for (uint64_t p = 0; p * BITMAP_PAGE < l->bitmap_bytes; p++) {
		if (!(l->dirty[p >> 3] >> (p & 7) & 1))
			continue;
		uint64_t n = l->bitmap_bytes - p * BITMAP_PAGE;
		if (n > BITMAP_PAGE)
			n = BITMAP_PAGE;
		int ret = util_pwrite_all(l->fd, l->bitmap + p * BITMAP_PAGE, n,
		                          l->bitmap_off + p * BITMAP_PAGE);
		if (ret < 0)
			return ret;
		l->dirty[p >> 3] &= (uint8_t) ~(1u << (p & 7));
	}
	l->any_dirty = false;
	return fdatasync(l->fd) < 0 ? -errno : 0;
}

int vmm_disk_flush(struct vmm_disk *d)
{
	return d->l[0].writable ? flush_layer(&d->l[0]) : 0;
}

/* ---- snapshots and consolidation ---- */

static bool same_file(const char *a, const char *b)
{
	struct stat x, y;
	return stat(a, &x) == 0 && stat(b, &y) == 0 && x.st_dev == y.st_dev && x.st_ino == y.st_ino;
}

int vmm_disk_push(struct vmm_disk *d, const char *path, char *err, size_t errlen)
{
	struct layer nl;
	char parent[PATH_MAX];
	uint64_t size = 0;
	int ret;

	if (d->n == DISK_MAX_CHAIN) {
		snprintf(err, errlen, "disk %s: already %d layers deep", d->l[0].path,
		         DISK_MAX_CHAIN);
		return -ELOOP;
	}
	if ((ret = vmm_disk_flush(d)) < 0) {
		snprintf(err, errlen, "disk %s: flushing: %s", d->l[0].path, strerror(-ret));
		return ret;
	}
	if ((ret = layer_open(&nl, path, true, &size, parent, sizeof(parent), err, errlen)) < 0) {
		layer_close(&nl);
		return ret;
	}
	if (!nl.delta || size != d->size || !same_file(parent, d->l[0].path)) {
		snprintf(err, errlen, "disk %s: not an empty delta of %s", path, d->l[0].path);
		layer_close(&nl);
		return -EINVAL;
	}
	memmove(&d->l[1], &d->l[0], d->n * sizeof(d->l[0]));
	d->l[1].writable = false;
	d->l[0] = nl;
	d->n++;
	return 0;
}

/* Grain g of the top, written into layer 1. */
static int merge_grain(struct vmm_disk *d, uint64_t g)
{
	struct layer *t = &d->l[0], *p = &d->l[1];
	uint64_t gs = g << DISK_GRAIN_SHIFT;
	uint64_t n = gs + DISK_GRAIN > d->size ? d->size - gs : DISK_GRAIN;
	int ret;

	if ((ret = pread_all(t->fd, d->grain, n, t->data_off + gs)) < 0)
		return ret;
	if (util_all_zero(d->grain, n))
		ret = zero_range(p->fd, file_off(p, gs), n, true);
	else
		ret = util_pwrite_all(p->fd, d->grain, n, file_off(p, gs));
	if (ret == 0 && p->delta && !has(p, g))
		set_bit(p, g);
	return ret;
}

/* The chain as the files say now (hostd may have consolidated a frozen
 * layer under us, and re-pointed the top at the layer below it). */
static int reopen(struct vmm_disk *d, char *err, size_t errlen)
{
	struct vmm_disk *fresh;
	int ret = vmm_disk_open(&fresh, d->l[0].path, !d->l[0].writable, err, errlen);

	if (ret < 0)
		return ret;
	for (unsigned i = 0; i < d->n; i++)
		layer_close(&d->l[i]);
	memcpy(d->l, fresh->l, sizeof(d->l));
	d->n = fresh->n;
	fresh->n = 0;
	vmm_disk_close(fresh);
	return 0;
}

int vmm_disk_merge_begin(struct vmm_disk *d, char *err, size_t errlen)
{
	int ret;

	err[0] = '\0';
	if (d->merging) {
		snprintf(err, errlen, "disk %s: a consolidation is under way", d->l[0].path);
		return -EBUSY;
	}
	if ((ret = vmm_disk_flush(d)) < 0 || (ret = reopen(d, err, errlen)) < 0) {
		if (!err[0])
			snprintf(err, errlen, "disk %s: %s", d->l[0].path, strerror(-ret));
		return ret;
	}
	if (!d->l[0].writable) {
		snprintf(err, errlen, "disk %s is open read-only: nothing merges into it",
		         d->l[0].path);
		return -EROFS;
	}
	if (d->n < 2 || !d->l[0].delta) {
		snprintf(err, errlen, "disk %s: no delta to merge", d->l[0].path);
		return -EINVAL;
	}
	struct layer *p = &d->l[1];
	if (!p->writable) {
		int fd = open(p->path, O_RDWR | O_CLOEXEC);
		if (fd < 0) {
			ret = -errno;
			snprintf(err, errlen, "disk %s: %s", p->path, strerror(-ret));
			return ret;
		}
		close(p->fd);
		p->fd = fd;
	}
	if (!(d->redo = calloc((grains_of(d->size) + 7) / 8, 1))) {
		snprintf(err, errlen, "disk %s: out of memory", d->l[0].path);
		return -ENOMEM;
	}
	d->merging = true;
	return 0;
}

uint64_t vmm_disk_grains(const struct vmm_disk *d)
{
	return grains_of(d->size);
}

int vmm_disk_merge_step(struct vmm_disk *d, uint64_t g)
{
	if (!d->merging || g >= grains_of(d->size) || !has(&d->l[0], g))
		return 0;
	d->redo[g >> 3] &= (uint8_t) ~(1u << (g & 7));
	return merge_grain(d, g);
}

void vmm_disk_merge_abort(struct vmm_disk *d)
{
	free(d->redo);
	d->redo = NULL;
	d->merging = false; /* the top still holds everything: nothing is lost */
}

int vmm_disk_merge_finish(struct vmm_disk *d, char *err, size_t errlen)
{
	struct layer *t = &d->l[0], *p = &d->l[1];
	int ret = 0;

	if (!d->merging) {
		snprintf(err, errlen, "disk %s: no consolidation under way", t->path);
		return -EINVAL;
	}
	for (uint64_t g = 0; g < grains_of(d->size) && ret == 0; g++)
		if (d->redo[g >> 3] >> (g & 7) & 1)
			ret = merge_grain(d, g);
	if (ret == 0)
		ret = flush_layer(p);
	if (ret < 0) {
		snprintf(err, errlen, "merging %s into %s: %s", t->path, p->path, strerror(-ret));
		vmm_disk_merge_abort(d);
		return ret;
	}
	vmm_disk_merge_abort(d); /* done: the bookkeeping goes */
	layer_close(&d->l[0]);
	memmove(&d->l[0], &d->l[1], (d->n - 1) * sizeof(d->l[0]));
	d->n--;
	memset(&d->l[d->n], 0, sizeof(d->l[0]));
	d->l[d->n].fd = -1;
	d->l[0].writable = true;
	return 0;
}

int vmm_disk_merge_top(struct vmm_disk *d, char *err, size_t errlen)
{
	int ret = vmm_disk_merge_begin(d, err, errlen);

	for (uint64_t g = 0; ret == 0 && g < grains_of(d->size); g++)
		if ((ret = vmm_disk_merge_step(d, g)) < 0) {
			snprintf(err, errlen, "merging %s: %s", d->l[0].path, strerror(-ret));
			vmm_disk_merge_abort(d);
		}
	return ret < 0 ? ret : vmm_disk_merge_finish(d, err, errlen);
}

/* ---- delta files ---- */

/* to, relative to the directory from_dir (both absolute, resolved). */
static int relative_path(const char *from_dir, const char *to, char *out, size_t outlen)
{
	size_t common = 0, i = 0;

	for (; from_dir[i] && from_dir[i] == to[i]; i++)
		if (from_dir[i] == '/')
			common = i;
	if (!from_dir[i] && to[i] == '/')
		common = i;
	out[0] = '\0';
	size_t used = 0;
	for (const char *p = from_dir + common; *p; p++)
		if (*p == '/' && p[1])
			used += (size_t)snprintf(out + used, used < outlen ? outlen - used : 0,
			                         "../");
	snprintf(out + used, used < outlen ? outlen - used : 0, "%s", to + common + 1);
	return strlen(out) < outlen ? 0 : -ENAMETOOLONG;
}

int vmm_delta_create(const char *path, const char *parent, char *err, size_t errlen)
{
	char dir[PATH_MAX], rdir[PATH_MAX], ppath[PATH_MAX], rparent[PATH_MAX];
	struct vmm_disk *pd;
	struct hdr h;
	int ret;

	dir_of(path, dir, sizeof(dir));
	if (parent[0] == '/')
		snprintf(ppath, sizeof(ppath), "%s", parent);
	else
		snprintf(ppath, sizeof(ppath), "%s/%s", dir, parent);
	if ((ret = vmm_disk_open(&pd, ppath, true, err, errlen)) < 0)
		return ret;
	uint64_t size = vmm_disk_size(pd);
	unsigned depth = vmm_disk_depth(pd);
	vmm_disk_close(pd);
	if (depth >= DISK_MAX_CHAIN) {
		snprintf(err, errlen, "disk %s: already %d layers deep", ppath, DISK_MAX_CHAIN);
		return -ELOOP;
	}
	memset(&h, 0, sizeof(h));
	layout(size, &h);
	if (!realpath(dir, rdir) || !realpath(ppath, rparent) ||
	    relative_path(rdir, rparent, h.parent, sizeof(h.parent)) < 0) {
		snprintf(err, errlen, "delta %s: cannot name its parent %s relative to it", path,
		         ppath);
		return -ENAMETOOLONG;
	}
	uint8_t *b = malloc(DISK_DELTA_HDR);
	if (!b)
		return -ENOMEM;
	hdr_encode(&h, b);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	ret = 0;
	if (fd < 0 || util_pwrite_all(fd, b, DISK_DELTA_HDR, 0) < 0 ||
	    ftruncate(fd, (off_t)(h.data_off + size)) < 0 || fsync(fd) < 0)
		ret = -errno;
	free(b);
	if (fd >= 0)
		close(fd);
	if (ret < 0) {
		snprintf(err, errlen, "delta %s: %s", path, strerror(-ret));
		if (fd >= 0)
			unlink(path);
		return ret;
	}
	sync_dir(path);
	return 0;
}

bool vmm_disk_is_delta_name(const char *path)
{
	size_t l = strlen(path);
	return l > 6 && !strcmp(path + l - 6, ".delta");
}

int vmm_delta_probe(const char *path)
{
	uint8_t b[8];

	if (!vmm_disk_is_delta_name(path))
		return 0;
	int fd =
	        open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY); /* a FIFO: ESPIPE below */
	if (fd < 0)
		return -errno;
	ssize_t k = pread(fd, b, sizeof(b), 0);
	close(fd);
	return k == (ssize_t)sizeof(b) && !memcmp(b, DISK_DELTA_MAGIC, 8);
}

int vmm_delta_info(const char *path, char *parent, size_t parentlen, uint64_t *size,
                   uint64_t *present, char *err, size_t errlen)
{
	struct hdr h;
	int ret = 0, fd = -1;

	if (present) { /* the bitmap too: the whole layer */
		struct layer l;
		char p[PATH_MAX];
		ret = layer_open(&l, path, false, size, p, sizeof(p), err, errlen);
		if (ret == 0 && !l.delta)
			ret = -EINVAL;
		if (ret == 0 && (ret = read_hdr(l.fd, path, &h, err, errlen)) > 0) {
			ret = 0;
			*present = 0;
			for (uint64_t i = 0; i < l.bitmap_bytes; i++)
				*present += (uint64_t)__builtin_popcount(l.bitmap[i]);
		}
		layer_close(&l);
	} else if (!vmm_disk_is_delta_name(path)) {
		ret = -EINVAL;
	} else if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)) < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
	} else if ((ret = read_hdr(fd, path, &h, err, errlen)) > 0) {
		ret = 0;
		*size = h.size;
	} else if (ret == 0) {
		ret = -EINVAL;
	}
	if (fd >= 0)
		close(fd);
	if (ret == -EINVAL)
		snprintf(err, errlen, "%s: not a delta disk", path);
	if (ret == 0)
		snprintf(parent, parentlen, "%s", h.parent);
	return ret;
}

int vmm_delta_merge(const char *child, char *err, size_t errlen)
{
	struct vmm_disk *d;
	int ret = vmm_disk_open(&d, child, false, err, errlen);

	if (ret < 0)
		return ret;
	ret = vmm_disk_merge_top(d, err, errlen);
	vmm_disk_close(d);
	return ret;
}

int vmm_delta_set_parent(const char *path, const char *parent, char *err, size_t errlen)
{
	char dir[PATH_MAX], rdir[PATH_MAX], ppath[PATH_MAX], rparent[PATH_MAX];
	struct hdr h;
	int fd = open(path, O_RDWR | O_CLOEXEC), ret;

	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return ret;
	}
	if ((ret = read_hdr(fd, path, &h, err, errlen)) <= 0) {
		if (ret == 0)
			snprintf(err, errlen, "%s: not a delta disk", path);
		close(fd);
		return ret ? ret : -EINVAL;
	}
	dir_of(path, dir, sizeof(dir));
	if (parent[0] == '/')
		snprintf(ppath, sizeof(ppath), "%s", parent);
	else
		snprintf(ppath, sizeof(ppath), "%s/%s", dir, parent);
	if (!realpath(dir, rdir) || !realpath(ppath, rparent) ||
	    relative_path(rdir, rparent, h.parent, sizeof(h.parent)) < 0) {
		snprintf(err, errlen, "delta %s: cannot name its parent %s", path, ppath);
		close(fd);
		return -ENAMETOOLONG;
	}
	uint8_t *b = malloc(DISK_DELTA_HDR);
	if (!b) {
		close(fd);
		return -ENOMEM;
	}
	hdr_encode(&h, b);
	ret = util_pwrite_all(fd, b, DISK_DELTA_HDR, 0);
	if (ret == 0 && fsync(fd) < 0)
		ret = -errno;
	free(b);
	close(fd);
	if (ret < 0)
		snprintf(err, errlen, "%s: %s", path, strerror(-ret));
	return ret;
}

int vmm_disk_copy_flat(const char *src, const char *dst, uint64_t *copied, char *err, size_t errlen)
{
	char part[PATH_MAX + 8];
	struct vmm_disk *d;
	uint8_t *buf = malloc(1u << 20);
	int ret, fd = -1;

	*copied = 0;
	if (!buf)
		return -ENOMEM;
	if ((ret = vmm_disk_open(&d, src, true, err, errlen)) < 0) {
		free(buf);
		return ret;
	}
	snprintf(part, sizeof(part), "%s.part", dst);
	if ((fd = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644)) < 0 ||
	    ftruncate(fd, (off_t)d->size) < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", part, strerror(errno));
		goto out;
	}
	for (uint64_t off = 0; off < d->size && ret == 0; off += 1u << 20) {
		size_t n = d->size - off < (1u << 20) ? (size_t)(d->size - off) : 1u << 20;
		if ((ret = vmm_disk_pread(d, buf, n, off)) < 0) {
			snprintf(err, errlen, "reading %s at %llu: %s", src,
			         (unsigned long long)off, strerror(-ret));
			break;
		}
		if (util_all_zero(buf, n))
			continue; /* a hole in the copy */
		if ((ret = util_pwrite_all(fd, buf, n, off)) < 0)
			snprintf(err, errlen, "writing %s: %s", part, strerror(-ret));
		*copied += n;
	}
	if (ret == 0 && (fsync(fd) < 0 || rename(part, dst) < 0)) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", dst, strerror(errno));
	}
	if (ret == 0)
		sync_dir(dst);
out:
	if (fd >= 0)
		close(fd);
	if (ret < 0)
		unlink(part);
	vmm_disk_close(d);
	free(buf);
	return ret;
}
