#include "ramstate.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lz4.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "le.h"
#include "sbuf.h"

#define PAGE VMM_PAGE_SIZE

/* Whether a page holds anything but zeros: it stops at its first non-zero
 * line (a page with data is then read once more, by its checksum or its
 * copy, mostly from the cache). */
static bool page_has_data(const uint8_t *p)
{
	const uint64_t *w = (const uint64_t *)p;

	for (unsigned i = 0; i < PAGE / 8; i += 8)
		if (w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] | w[i + 6] |
		    w[i + 7])
			return true;
	return false;
}

/* A page the section says is zero, at the destination: cleared only if it
 * is not already (a read maps no page; a write would). */
static void zero_page(uint8_t *p)
{
	if (page_has_data(p))
		memset(p, 0, PAGE);
}

/* A RAMD section, or with crcs a RAMC one: the pages go from guest memory
 * as they are, in one writev. The guest may write a page before the
 * socket's copy of it; the write is in the dirty log, so a newer copy
 * follows. RAMC adds the checksum of what was read of each page, and the
 * destination counts a page that does not match as suspect until the newer
 * copy comes. The trailer covers the rest (address, bitmap, checksums). */
static int save_range_direct(const uint8_t *src, struct vmm_stream *s, uint64_t gpa,
                             uint32_t npages, uint32_t instance, bool crcs, struct ram_stats *st)
{
	uint8_t meta[12 + RAMSTATE_CHUNK_PAGES / 8 + 4 * RAMSTATE_CHUNK_PAGES];
	struct iovec iov[1 + RAMSTATE_CHUNK_PAGES];
	uint32_t bm = (npages + 7) / 8, k = 0;
	int n = 1;
	size_t data = 0;

	le_put64(meta, gpa);
	le_put32(meta + 8, npages);
	memset(meta + 12, 0, bm);
	for (uint32_t i = 0; i < npages; i++) {
		const uint8_t *p = src + (size_t)i * PAGE;
		if (!page_has_data(p)) {
			if (st)
				st->zero_pages++;
			continue;
		}
		meta[12 + i / 8] |= (uint8_t)(1u << (i % 8));
		if (crcs)
			le_put32(meta + 12 + bm + 4 * k, vmm_crc32c_page(p));
		k++;
		if (n > 1 && (const uint8_t *)iov[n - 1].iov_base + iov[n - 1].iov_len == p)
			iov[n - 1].iov_len += PAGE;
		else
			iov[n++] = (struct iovec){ (void *)p, PAGE };
		data += PAGE;
	}
	iov[0] = (struct iovec){ meta, 12 + bm + (crcs ? 4 * (size_t)k : 0) };
	if (st)
		st->pages += npages;
	int ret = vmm_state_write_sectionv(s, crcs ? SEC_RAMC : SEC_RAMD, instance, iov, n, 1);
	if (st && ret == 0)
		st->bytes += iov[0].iov_len + data + 20;
	return ret;
}

/* Copies a page to dst; whether it held anything but zeros. src is a
 * guest page (aligned); dst is anywhere in a section buffer, so it is
 * stored through memcpy (plain moves on x86, no alignment assumed). */
static bool copy_nonzero(uint8_t *restrict dst, const uint8_t *restrict src)
{
	const uint64_t *w = (const uint64_t *)src;
	uint64_t acc = 0;

	for (unsigned i = 0; i < PAGE / 8; i++) {
		uint64_t v = w[i];
		memcpy(dst + 8 * i, &v, 8);
		acc |= v;
	}
	return acc != 0;
}

/* A RAM payload as RAMZ (u32 its length, the lz4 block), or as RAM when
 * that is not smaller. */
static int write_compressed(struct vmm_stream *s, uint32_t instance, const uint8_t *raw, size_t len,
                            struct ram_stats *st)
{
	int bound = LZ4_compressBound((int)len);
	uint8_t *z = bound > 0 ? malloc((size_t)bound + 4) : NULL;
	int ret;

	if (!z)
		return -ENOMEM;
	int n = LZ4_compress_default((const char *)raw, (char *)z + 4, (int)len, bound);
	if (n > 0 && (size_t)n + 4 < len) {
		le_put32(z, (uint32_t)len);
		ret = vmm_state_write_section(s, SEC_RAMZ, instance, z, (size_t)n + 4);
		if (st && ret == 0)
			st->bytes += (uint64_t)n + 24;
	} else {
		ret = vmm_state_write_section(s, SEC_RAM, instance, raw, len);
		if (st && ret == 0)
			st->bytes += len + 20;
	}
	free(z);
	return ret;
}

int vmm_ram_save_range(const struct vmm_mem *m, struct vmm_stream *s, uint64_t gpa, uint32_t npages,
                       uint32_t instance, struct ram_stats *st)
{
	uint8_t bitmap[RAMSTATE_CHUNK_PAGES / 8] = { 0 };
	const uint8_t *src;
	struct sbuf b;
	int ret;

	if (npages == 0 || npages > RAMSTATE_CHUNK_PAGES || gpa % PAGE)
		return -EINVAL;
	src = vmm_gpa(m, gpa, (uint64_t)npages * PAGE);
	if (!src)
		return -EFAULT;
	if (s->direct && !s->compress)
		return save_range_direct(src, s, gpa, npages, instance, s->page_crcs, st);
	sbuf_init(&b);
	sbuf_u64(&b, gpa);
	sbuf_u32(&b, npages);
	size_t bm_at = b.len;
	sbuf_put(&b, bitmap, (npages + 7) / 8);
	/* each page copied while it is checked for zero (one read of it); a
	 * zero page's copy is overwritten by the next */
	if (sbuf_reserve(&b, b.len + (size_t)npages * PAGE) == 0) {
		for (uint32_t i = 0; i < npages; i++) {
			if (!copy_nonzero(b.data + b.len, src + (size_t)i * PAGE)) {
				if (st)
					st->zero_pages++;
				continue;
			}
			b.data[bm_at + i / 8] |= (uint8_t)(1u << (i % 8));
			b.len += PAGE;
		}
	}
	if (st)
		st->pages += npages;
	if (b.err) {
		ret = b.err;
	} else if (s->compress && b.len > 4096) {
		ret = write_compressed(s, instance, b.data, b.len, st);
	} else {
		ret = vmm_state_write_section(s, SEC_RAM, instance, b.data, b.len);
		if (st && ret == 0)
			st->bytes += b.len + 20;
	}
	sbuf_free(&b);
	return ret;
}

int vmm_ram_load_compressed(struct vmm_mem *m, const uint8_t *payload, size_t len, char *err,
                            size_t errlen)
{
	if (len < 4) {
		snprintf(err, errlen, "RAMZ section of %zu bytes: too short", len);
		return -EBADMSG;
	}
	uint32_t raw = le_get32(payload);
	/* at most a full RAM section: its header, bitmap and pages */
	if (raw < 12 || raw > 12 + RAMSTATE_CHUNK_PAGES / 8 + (size_t)RAMSTATE_CHUNK_PAGES * PAGE ||
	    len - 4 > (size_t)INT_MAX) {
		snprintf(err, errlen, "RAMZ section: %u bytes uncompressed is no RAM section", raw);
		return -EBADMSG;
	}
	uint8_t *buf = malloc(raw);
	if (!buf) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	int n = LZ4_decompress_safe((const char *)payload + 4, (char *)buf, (int)(len - 4),
	                            (int)raw);
	int ret;
	if (n != (int)raw) {
		snprintf(err, errlen, "RAMZ section: the lz4 data is corrupt (%d of %u bytes)", n,
		         raw);
		ret = -EBADMSG;
	} else {
		ret = vmm_ram_load(m, buf, raw, err, errlen);
	}
	free(buf);
	return ret;
}

int vmm_ram_save_dirty_range(const struct vmm_mem *m, struct vmm_stream *s, const uint64_t *dirty,
                             uint64_t from, uint64_t to, uint32_t *inst, struct ram_stats *st)
{
	for (uint64_t p = from; p < to;) {
		if (!dirty[p / 64]) {
			p = (p / 64 + 1) * 64;
			continue;
		}
		if (!(dirty[p / 64] >> (p % 64) & 1)) {
			p++;
			continue;
		}
		uint64_t q = p;
		while (q < to && q - p < RAMSTATE_CHUNK_PAGES && (dirty[q / 64] >> (q % 64) & 1))
			q++;
		/* a run never spans two slots: the MMIO hole has no dirty pages,
		 * but a run may end at a slot's end */
		uint64_t gpa = p * PAGE;
		while (!vmm_gpa(m, gpa, (q - p) * PAGE) && q > p + 1)
			q--;
		if (vmm_gpa(m, gpa, (q - p) * PAGE)) {
			int ret = vmm_ram_save_range(m, s, gpa, (uint32_t)(q - p), (*inst)++, st);
			if (ret < 0)
				return ret;
		}
		p = q;
	}
	return 0;
}

/* The pages [from, to) of a slot, in sections. */
static int save_span(const struct vmm_mem *m, struct vmm_stream *s, const struct vmm_mem_slot *sl,
                     uint64_t from, uint64_t to, uint32_t *inst, struct ram_stats *st)
{
	for (uint64_t off = from; off < to; off += (uint64_t)RAMSTATE_CHUNK_PAGES * PAGE) {
		uint64_t left = (to - off) / PAGE;
		uint32_t n = left < RAMSTATE_CHUNK_PAGES ? (uint32_t)left : RAMSTATE_CHUNK_PAGES;
		int ret = vmm_ram_save_range(m, s, sl->gpa + off, n, (*inst)++, st);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* A range the guest never wrote (a hole of the memfd): one ZERO section,
 * found with SEEK_DATA/SEEK_HOLE instead of reading (and faulting in) every
 * page of an idle guest. */
static int save_zero(struct vmm_stream *s, uint64_t gpa, uint64_t len, struct ram_stats *st)
{
	uint8_t p[16];

	le_put64(p, gpa);
	le_put64(p + 8, len);
	if (st) {
		st->pages += len / PAGE;
		st->zero_pages += len / PAGE;
		st->bytes += sizeof(p);
	}
	return vmm_state_write_section(s, SEC_ZERO, 0, p, sizeof(p));
}

/* [lo, hi) of an anonymous slot: what its page table has as RAM sections,
 * the runs it never had as ZERO sections (one per run, however long). */
#define ANON_WINDOW 8192u /* pages of page table read at a time: 32 MiB */
static int save_anon(const struct vmm_mem *m, struct vmm_stream *s, unsigned slot, uint64_t lo,
                     uint64_t hi, uint32_t *inst, struct ram_stats *st)
{
	const struct vmm_mem_slot *sl = &m->slots[slot];
	uint64_t bits[ANON_WINDOW / 64];
	uint64_t zero_from = lo; /* start of the zero run not yet written */
	int ret;

	for (uint64_t w = lo; w < hi; w += (uint64_t)ANON_WINDOW * PAGE) {
		uint64_t left = (hi - w) / PAGE;
		uint32_t n = left < ANON_WINDOW ? (uint32_t)left : ANON_WINDOW;
		vmm_mem_anon_data(m, slot, w, n, bits);
		for (uint32_t i = 0; i < n;) {
			uint64_t rest = bits[i / 64] >> (i % 64);
			if (!rest) {
				i = (i / 64 + 1) * 64;
				continue;
			}
			i += (uint32_t)__builtin_ctzll(rest);
			if (i >= n)
				break;
			uint32_t j = i;
			while (j < n && (bits[j / 64] >> (j % 64) & 1))
				j++;
			uint64_t da = w + (uint64_t)i * PAGE, db = w + (uint64_t)j * PAGE;
			if (da > zero_from &&
			    (ret = save_zero(s, sl->gpa + zero_from, da - zero_from, st)) < 0)
				return ret;
			if ((ret = save_span(m, s, sl, da, db, inst, st)) < 0)
				return ret;
			zero_from = db;
			i = j;
		}
	}
	if (hi > zero_from && (ret = save_zero(s, sl->gpa + zero_from, hi - zero_from, st)) < 0)
		return ret;
	return 0;
}

/* Data ranges go as RAM sections, holes as ZERO sections. */
int vmm_ram_save_all(const struct vmm_mem *m, struct vmm_stream *s, struct ram_stats *st)
{
	uint32_t inst = 0;

	return vmm_ram_save_all_range(m, s, 0, UINT64_MAX, &inst, st);
}

int vmm_ram_save_all_range(const struct vmm_mem *m, struct vmm_stream *s, uint64_t from,
                           uint64_t to, uint32_t *inst, struct ram_stats *st)
{
	int ret;

	for (unsigned i = 0; i < m->nslots; i++) {
		const struct vmm_mem_slot *sl = &m->slots[i];
		/* the part of [from, to) in this slot, as offsets into it */
		uint64_t first = sl->gpa / PAGE, end = first + sl->size / PAGE;
		uint64_t a = from > first ? from : first, b = to < end ? to : end;
		if (a >= b)
			continue;
		uint64_t lo = (a - first) * PAGE, hi = (b - first) * PAGE;
		if (sl->memfd < 0) {
			if ((ret = save_anon(m, s, i, lo, hi, inst, st)) < 0)
				return ret;
			continue;
		}
		for (uint64_t pos = lo; pos < hi;) {
			off_t data = lseek(sl->memfd, (off_t)pos, SEEK_DATA);
			uint64_t da = data < 0 ? hi : (uint64_t)data & ~(uint64_t)(PAGE - 1);
			if (da > hi)
				da = hi;
			if (da > pos && (ret = save_zero(s, sl->gpa + pos, da - pos, st)) < 0)
				return ret;
			if (da >= hi)
				break; /* ENXIO or past the range: holes to its end */
			off_t hole = lseek(sl->memfd, (off_t)da, SEEK_HOLE);
			uint64_t db =
			        hole < 0 ? hi : ((uint64_t)hole + PAGE - 1) & ~(uint64_t)(PAGE - 1);
			if (db > hi)
				db = hi;
			if ((ret = save_span(m, s, sl, da, db, inst, st)) < 0)
				return ret;
			pos = db;
		}
	}
	return 0;
}

/* A RAM section's address and page count: n pages of guest RAM. */
static int head_check(const struct vmm_mem *m, uint64_t gpa, uint32_t n, char *err, size_t errlen)
{
	if (n == 0 || n > RAMSTATE_CHUNK_PAGES || gpa % PAGE) {
		snprintf(err, errlen, "RAM section: bad header (%u pages at 0x%llx)", n,
		         (unsigned long long)gpa);
		return -EBADMSG;
	}
	if (!vmm_gpa(m, gpa, (uint64_t)n * PAGE)) {
		snprintf(err, errlen,
		         "RAM section: [0x%llx, +%u pages) is outside guest RAM (%llu MiB)",
		         (unsigned long long)gpa, n, (unsigned long long)(m->ram_bytes >> 20));
		return -EBADMSG;
	}
	return 0;
}

/* The pages a bitmap of n says have data, or -1 for a bit past n. */
static int64_t bitmap_pages(const uint8_t *bitmap, uint32_t n)
{
	int64_t k = 0;

	for (uint32_t i = 0; i < n; i++)
		k += (bitmap[i / 8] >> (i % 8)) & 1;
	for (uint32_t i = n; i < (n + 7) / 8 * 8; i++)
		if ((bitmap[i / 8] >> (i % 8)) & 1)
			return -1;
	return k;
}

static int bitmap_mismatch(uint64_t gpa, char *err, size_t errlen)
{
	snprintf(err, errlen, "RAM section at 0x%llx: page data does not match its bitmap",
	         (unsigned long long)gpa);
	return -EBADMSG;
}

/* Its bitmap: no bit past the page count, a page of data per bit set. */
static int bitmap_check(const uint8_t *bitmap, uint32_t n, uint64_t data, uint64_t gpa, char *err,
                        size_t errlen)
{
	int64_t k = bitmap_pages(bitmap, n);

	return k >= 0 && data == (uint64_t)k * PAGE ? 0 : bitmap_mismatch(gpa, err, errlen);
}

int vmm_ram_check(const struct vmm_mem *m, const uint8_t *payload, size_t len, char *err,
                  size_t errlen)
{
	struct rbuf r;
	uint8_t bitmap[RAMSTATE_CHUNK_PAGES / 8] = { 0 };

	rbuf_init(&r, payload, len);
	uint64_t gpa = rbuf_u64(&r);
	uint32_t n = rbuf_u32(&r);
	int ret = head_check(m, gpa, r.err ? 0 : n, err, errlen);
	if (ret < 0)
		return ret;
	/* a bitmap cut short matches no data */
	uint64_t data = rbuf_get(&r, bitmap, (n + 7) / 8) < 0 ? UINT64_MAX : len - r.off;
	return bitmap_check(bitmap, n, data, gpa, err, errlen);
}

int vmm_ram_load(struct vmm_mem *m, const uint8_t *payload, size_t len, char *err, size_t errlen)
{
	int ret = vmm_ram_check(m, payload, len, err, errlen);

	if (ret < 0)
		return ret; /* validated in full before touching guest memory */
	uint64_t gpa = le_get64(payload);
	uint32_t n = le_get32(payload + 8);
	uint8_t *dst = vmm_gpa(m, gpa, (uint64_t)n * PAGE);
	const uint8_t *bitmap = payload + 12, *src = payload + 12 + (n + 7) / 8;
	for (uint32_t i = 0; i < n; i++) {
		uint8_t *p = dst + (size_t)i * PAGE;
		if ((bitmap[i / 8] >> (i % 8)) & 1) {
			memcpy(p, src, PAGE);
			src += PAGE;
		} else {
			zero_page(p);
		}
	}
	vmm_mem_suspect_clear(m, gpa, (uint64_t)n * PAGE);
	return 0;
}

/* A RAM, RAMD or RAMC section read straight into guest memory: its
 * address, page count, bitmap and length are checked before a page is
 * written. RAM's trailer covers its pages; RAMD's and RAMC's cover all but
 * the pages (save_range_direct), and RAMC has a checksum of each page,
 * checked after it is written: a mismatch makes the page suspect where m
 * tracks them (a newer copy must come), else fails. A section that turns
 * out corrupt has written guest memory: the caller fails the restore, and
 * a VM that is being restored has not run. Any good copy of a page clears
 * its suspect mark. */
static int read_in_place(struct vmm_stream *s, struct vmm_mem *m, const uint8_t h[16],
                         uint32_t type, uint64_t len, uint32_t inst, char *err, size_t errlen)
{
	uint8_t meta[12 + RAMSTATE_CHUNK_PAGES / 8 + 4 * RAMSTATE_CHUNK_PAGES];
	const char *name = type == SEC_RAM ? "RAM" : type == SEC_RAMC ? "RAMC" : "RAMD";
	const size_t crc_len = type == SEC_RAMC ? 4 : 0; /* a page's checksum */
	uint64_t gpa = 0;
	uint32_t n = 0;
	int ret = 0;

	if (len < 12 || (ret = vmm_state_read_part(s, meta, 12, type, inst, err, errlen)) < 0)
		goto bad;
	gpa = le_get64(meta);
	n = le_get32(meta + 8);
	if ((ret = head_check(m, gpa, n, err, errlen)) < 0)
		return ret;
	uint32_t bm = (n + 7) / 8;
	if (len < 12 + bm && type == SEC_RAM) {
		snprintf(err, errlen, "RAM section: bad header (%u pages at 0x%llx)", n,
		         (unsigned long long)gpa);
		return -EBADMSG;
	}
	if (len < 12 + bm ||
	    (ret = vmm_state_read_part(s, meta + 12, bm, type, inst, err, errlen)) < 0)
		goto bad;
	const uint8_t *bitmap = meta + 12;
	int64_t k = bitmap_pages(bitmap, n);
	if (k < 0)
		return bitmap_mismatch(gpa, err, errlen);
	/* the length: checksums and pages */
	if (len - 12 - bm != (uint64_t)k * (crc_len + PAGE))
		goto bad;
	const uint8_t *crcs = meta + 12 + bm;
	if ((ret = vmm_state_read_part(s, meta + 12 + bm, crc_len * (size_t)k, type, inst, err,
	                               errlen)) < 0)
		return ret;
	uint32_t crc = vmm_crc32c(vmm_crc32c(0, h, 16), meta, 12 + bm + crc_len * (size_t)k);
	uint8_t *dst = vmm_gpa(m, gpa, (uint64_t)n * PAGE);
	uint64_t first = gpa / PAGE;
	for (uint32_t i = 0, c = 0; i < n;) {
		uint32_t j = i;
		bool set = (bitmap[i / 8] >> (i % 8)) & 1;
		while (j < n && (bool)((bitmap[j / 8] >> (j % 8)) & 1) == set)
			j++;
		uint8_t *p = dst + (size_t)i * PAGE;
		size_t run = (size_t)(j - i) * PAGE;
		if (set) {
			if ((ret = vmm_state_read_part(s, p, run, type, inst, err, errlen)) < 0)
				return ret;
			if (type == SEC_RAM)
				crc = vmm_crc32c(crc, p, run);
		} else {
			for (size_t off = 0; off < run; off += PAGE)
				zero_page(p + off);
		}
		for (uint32_t q = i; crc_len && q < j; q++, p += PAGE) {
			bool good = !set || vmm_crc32c_page(p) == le_get32(crcs + 4 * c++);
			if (!good && !m->suspect) {
				snprintf(err, errlen,
				         "RAMC section at 0x%llx: the page at 0x%llx arrived "
				         "damaged (checksum mismatch)",
				         (unsigned long long)gpa,
				         (unsigned long long)((first + q) * PAGE));
				return -EBADMSG;
			}
			vmm_mem_suspect_set(m, first + q, !good);
		}
		i = j;
	}
	if ((ret = vmm_state_read_trailer(s, crc, type, inst, err, errlen)) < 0)
		return ret;
	if (crc_len)
		atomic_fetch_add_explicit(&m->pages_checked, (uint64_t)k, memory_order_relaxed);
	else
		vmm_mem_suspect_clear(m, gpa, (uint64_t)n * PAGE);
	return 0;
bad:
	if (ret < 0)
		return ret;
	snprintf(err, errlen, "%s section at 0x%llx: %s does not match its bitmap", name,
	         (unsigned long long)gpa, type == SEC_RAM ? "page data" : "its length");
	return -EBADMSG;
}

int vmm_ram_read_section(struct vmm_stream *s, struct vmm_mem *m, uint32_t *type, uint32_t *inst,
                         struct sbuf *payload, bool *loaded, char *err, size_t errlen)
{
	uint8_t h[16];
	uint64_t len;
	int ret;

	*loaded = false;
	payload->len = 0;
	payload->err = 0;
	if ((ret = vmm_state_read_head(s, h, type, inst, &len, err, errlen)) < 0)
		return ret;
	bool direct = *type == SEC_RAMC || *type == SEC_RAMD;
	if (m && (direct || *type == SEC_RAM)) {
		ret = read_in_place(s, m, h, *type, len, *inst, err, errlen);
		*loaded = ret == 0;
		return ret;
	}
	if (direct) { /* its pages have nowhere to go */
		snprintf(err, errlen, "a %s section before the stream showed its VM",
		         *type == SEC_RAMC ? "RAMC" : "RAMD");
		return -EBADMSG;
	}
	return vmm_state_read_rest(s, h, *type, *inst, len, payload, err, errlen);
}

/* The slot of a ZERO section's range, or -1. */
static int zero_slot(const struct vmm_mem *m, const uint8_t *payload, size_t len, uint64_t *gpa,
                     uint64_t *n)
{
	*gpa = *n = 0;
	if (len != 16)
		return -1;
	*gpa = le_get64(payload);
	*n = le_get64(payload + 8);
	if (!*n || (*gpa | *n) & (PAGE - 1))
		return -1;
	for (unsigned i = 0; i < m->nslots; i++) {
		const struct vmm_mem_slot *sl = &m->slots[i];
		if (*gpa < sl->gpa || *gpa - sl->gpa > sl->size || *n > sl->size - (*gpa - sl->gpa))
			continue;
		return (int)i;
	}
	return -1;
}

int vmm_ram_zero_check(const struct vmm_mem *m, const uint8_t *payload, size_t len, char *err,
                       size_t errlen)
{
	uint64_t gpa, n;

	if (zero_slot(m, payload, len, &gpa, &n) >= 0)
		return 0;
	snprintf(err, errlen, "ZERO section: a range outside guest RAM or not page-aligned");
	return -EBADMSG;
}

int vmm_ram_zero_load(struct vmm_mem *m, const uint8_t *payload, size_t len, char *err,
                      size_t errlen)
{
	uint64_t gpa, n;
	int i = zero_slot(m, payload, len, &gpa, &n);

	if (i < 0)
		return vmm_ram_zero_check(m, payload, len, err, errlen);
	struct vmm_mem_slot *sl = &m->slots[i];
	uint64_t off = gpa - sl->gpa;
	vmm_mem_suspect_clear(m, gpa, n);
	if (sl->memfd >= 0 && fallocate(sl->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
	                                (off_t)off, (off_t)n) == 0)
		return 0;
	if (madvise(sl->host + off, n, MADV_DONTNEED) == 0 && sl->memfd < 0)
		return 0;
	memset(sl->host + off, 0, n); /* neither worked: the slow way */
	return 0;
}
