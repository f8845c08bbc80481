#include "state.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cpuid.h>

/* ---- crc32c (Castagnoli): SSE4.2 instruction when present, table else ---- */

static uint32_t crc_table[256];

static void crc_table_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
		crc_table[i] = c;
	}
}

static uint32_t crc_sw(uint32_t crc, const uint8_t *p, size_t n)
{
	while (n--)
		crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return crc;
}

__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc, const uint8_t *p, size_t n)
{
	uint64_t c = crc;

	while (n >= 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		c = __builtin_ia32_crc32di(c, v);
		p += 8;
		n -= 8;
	}
	while (n--)
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
	return (uint32_t)c;
}

/* Multiplication modulo the (reflected) polynomial, and x^(8 * n) mod P:
 * what moves a crc state past n zero bytes (as zlib's crc32_combine). */
static uint32_t multmodp(uint32_t a, uint32_t b)
{
	uint32_t m = 1u << 31, p = 0;

	for (;;) {
		if (a & m) {
			p ^= b;
			if ((a & (m - 1)) == 0)
				break;
		}
		m >>= 1;
		b = b & 1 ? (b >> 1) ^ 0x82f63b78u : b >> 1;
	}
	return p;
}

static uint32_t x8nmodp(uint64_t n)
{
	uint32_t p = 1u << 31, x2k = 1u << 30; /* x^0, x^1 */

	for (int k = 0; k < 3; k++) /* x^8 */
		x2k = multmodp(x2k, x2k);
	while (n) {
		if (n & 1)
			p = multmodp(x2k, p);
		x2k = multmodp(x2k, x2k);
		n >>= 1;
	}
	return p;
}

/* Large buffers: three independent crc32 chains at once (the
 * instruction's latency is three times its throughput), joined by
 * shifting the first two states past the bytes after them. */
__attribute__((target("sse4.2"))) static uint32_t crc_hw3(uint32_t crc, const uint8_t *p, size_t n)
{
	size_t l = n / 3 / 8 * 8;
	const uint8_t *a = p, *b = p + l, *c = p + 2 * l;
	uint64_t s0 = crc, s1 = 0, s2 = 0;

	for (size_t i = 0; i < l; i += 8) {
		uint64_t va, vb, vc;
		memcpy(&va, a + i, 8);
		memcpy(&vb, b + i, 8);
		memcpy(&vc, c + i, 8);
		s0 = __builtin_ia32_crc32di(s0, va);
		s1 = __builtin_ia32_crc32di(s1, vb);
		s2 = __builtin_ia32_crc32di(s2, vc);
	}
	uint32_t shift = x8nmodp(l);
	uint32_t st = multmodp(shift, (uint32_t)s0) ^ (uint32_t)s1;
	st = multmodp(shift, st) ^ (uint32_t)s2;
	return crc_hw(st, p + 3 * l, n - 3 * l);
}

__attribute__((target("sse4.2"))) static uint32_t crc_hw3_page(const uint8_t *p)
{
	enum { L = 4096 / 3 / 8 * 8 }; /* 1360 bytes a chain, 16 left */
	static _Atomic uint32_t shift;
	uint64_t s0 = 0xffffffffu, s1 = 0, s2 = 0;
	uint32_t sh = atomic_load_explicit(&shift, memory_order_relaxed);

	if (!sh) {
		sh = x8nmodp(L);
		atomic_store_explicit(&shift, sh, memory_order_relaxed);
	}
	for (size_t i = 0; i < L; i += 8) {
		uint64_t va, vb, vc;
		memcpy(&va, p + i, 8);
		memcpy(&vb, p + L + i, 8);
		memcpy(&vc, p + 2 * L + i, 8);
		s0 = __builtin_ia32_crc32di(s0, va);
		s1 = __builtin_ia32_crc32di(s1, vb);
		s2 = __builtin_ia32_crc32di(s2, vc);
	}
	uint32_t st = multmodp(sh, (uint32_t)s0) ^ (uint32_t)s1;
	st = multmodp(sh, st) ^ (uint32_t)s2;
	return ~crc_hw(st, p + 3 * L, 4096 - 3 * L);
}

/* Whether the CPU has the crc32 instruction (SSE4.2); the table for the
 * software fallback is built on the first call. */
static bool have_hw_crc(void)
{
	static int have_hw = -1;

	if (have_hw < 0) {
		unsigned a, b, c, d;
		crc_table_init();
		have_hw = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_SSE4_2);
	}
	return have_hw;
}

uint32_t vmm_crc32c_page(const void *p)
{
	return have_hw_crc() ? crc_hw3_page(p) : vmm_crc32c(0, p, 4096);
}

uint32_t vmm_crc32c(uint32_t crc, const void *p, size_t n)
{
	bool hw = have_hw_crc();

	crc = ~crc;
	crc = !hw ? crc_sw(crc, p, n) : n >= 16384 ? crc_hw3(crc, p, n) : crc_hw(crc, p, n);
	return ~crc;
}

/* ---- fd streams ---- */

static int fd_write(void *arg, const void *p, size_t n)
{
	int fd = *(int *)arg;
	const uint8_t *b = p;

	while (n) {
		ssize_t w = write(fd, b, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

static int fd_read(void *arg, void *p, size_t n)
{
	int fd = *(int *)arg;
	uint8_t *b = p;

	while (n) {
		ssize_t r = read(fd, b, n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -EPIPE;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

void vmm_stream_fd(struct vmm_stream *s, int *fd)
{
	memset(s, 0, sizeof(*s)); /* no sync answer, no writev, plain RAM sections */
	s->write = fd_write;
	s->read = fd_read;
	s->arg = fd;
}

static int sbuf_write(void *arg, const void *p, size_t n)
{
	struct sbuf *b = arg;

	sbuf_put(b, p, n);
	return b->err;
}

static int rbuf_read(void *arg, void *p, size_t n)
{
	return rbuf_get(arg, p, n) < 0 ? -EPIPE : 0;
}

void vmm_stream_sbuf(struct vmm_stream *s, struct sbuf *b)
{
	memset(s, 0, sizeof(*s));
	s->write = sbuf_write;
	s->arg = b;
}

void vmm_stream_rbuf(struct vmm_stream *s, struct rbuf *r)
{
	memset(s, 0, sizeof(*s));
	s->read = rbuf_read;
	s->arg = r;
}

static int put(struct vmm_stream *s, const void *p, size_t n)
{
	int ret = s->write(s->arg, p, n);
	if (ret == 0)
		s->bytes += n;
	return ret;
}

static int get(struct vmm_stream *s, void *p, size_t n)
{
	int ret = s->read(s->arg, p, n);
	if (ret == 0)
		s->bytes += n;
	return ret;
}

void vmm_fourcc_str(uint32_t t, char out[5])
{
	for (int i = 0; i < 4; i++) {
		char c = (char)(t >> (8 * i));
		out[i] = c >= 0x20 && c < 0x7f ? c : '?';
	}
	out[4] = '\0';
}

/* ---- header ---- */

#define HDR_LEN 28

int vmm_state_write_header(struct vmm_stream *s)
{
	struct sbuf b;
	int ret;

	sbuf_init(&b);
	sbuf_put(&b, VMM_STATE_MAGIC, 8);
	sbuf_u32(&b, VMM_STATE_VERSION);
	sbuf_u32(&b, 0);
	sbuf_u64(&b, 0);
	sbuf_u32(&b, vmm_crc32c(0, b.data, b.len));
	ret = b.err ? b.err : put(s, b.data, b.len);
	sbuf_free(&b);
	return ret;
}

int vmm_state_read_header(struct vmm_stream *s, char *err, size_t errlen)
{
	uint8_t h[HDR_LEN];
	struct rbuf r;
	int ret;

	ret = get(s, h, sizeof(h));
	if (ret < 0) {
		snprintf(err, errlen, "state stream: cannot read the header: %s",
		         ret == -EPIPE ? "stream ends early" : strerror(-ret));
		return ret;
	}
	if (memcmp(h, VMM_STATE_MAGIC, 8) != 0) {
		snprintf(err, errlen, "not a vmk state stream (no VMKSTATE magic)");
		return -EBADMSG;
	}
	rbuf_init(&r, h + 8, sizeof(h) - 8);
	uint32_t version = rbuf_u32(&r);
	uint32_t flags = rbuf_u32(&r);
	rbuf_u64(&r);
	uint32_t crc = rbuf_u32(&r);
	if (crc != vmm_crc32c(0, h, HDR_LEN - 4)) {
		snprintf(err, errlen, "state stream header is corrupt (checksum mismatch)");
		return -EBADMSG;
	}
	if (version != VMM_STATE_VERSION) {
		snprintf(err, errlen,
		         "state stream version %u is not supported (this vmx reads version %u); "
		         "use a vmx of the same release",
		         version, VMM_STATE_VERSION);
		return -EPROTONOSUPPORT;
	}
	if (flags != 0) {
		snprintf(err, errlen, "state stream uses flags 0x%x this vmx does not know", flags);
		return -EPROTONOSUPPORT;
	}
	return 0;
}

/* ---- sections ---- */

int vmm_state_write_sectionv(struct vmm_stream *s, uint32_t type, uint32_t instance,
                             const struct iovec *iov, int n, int checked)
{
	uint8_t h[16], t[4];
	uint64_t len = 0;
	uint32_t crc;
	int ret;

	for (int i = 0; i < n; i++)
		len += iov[i].iov_len;
	if (len > VMM_STATE_MAX_SECTION || n < 0 || n > VMM_STATE_MAX_IOV || checked > n)
		return -E2BIG;
	memcpy(h, &type, 4);
	memcpy(h + 4, &instance, 4);
	memcpy(h + 8, &len, 8);
	crc = vmm_crc32c(0, h, sizeof(h));
	for (int i = 0; i < checked; i++)
		crc = vmm_crc32c(crc, iov[i].iov_base, iov[i].iov_len);
	memcpy(t, &crc, 4);
	if (!s->writev) {
		if ((ret = put(s, h, sizeof(h))) < 0)
			return ret;
		for (int i = 0; i < n; i++)
			if (iov[i].iov_len && (ret = put(s, iov[i].iov_base, iov[i].iov_len)) < 0)
				return ret;
		return put(s, t, 4);
	}
	/* header, payload and trailer in one call */
	struct iovec all[VMM_STATE_MAX_IOV + 2];
	all[0] = (struct iovec){ h, sizeof(h) };
	memcpy(all + 1, iov, (size_t)n * sizeof(*iov));
	all[n + 1] = (struct iovec){ t, 4 };
	if ((ret = s->writev(s->arg, all, n + 2)) < 0)
		return ret;
	s->bytes += len + 20;
	return 0;
}

/* One payload: the trailer covers all of it. */
int vmm_state_write_section(struct vmm_stream *s, uint32_t type, uint32_t instance,
                            const void *payload, size_t len)
{
	struct iovec iov = { (void *)payload, len };

	return vmm_state_write_sectionv(s, type, instance, &iov, 1, 1); /* -E2BIG there */
}

int vmm_state_read_head(struct vmm_stream *s, uint8_t h[16], uint32_t *type, uint32_t *instance,
                        uint64_t *len, char *err, size_t errlen)
{
	char name[5];
	int ret = get(s, h, 16);

	if (ret < 0) {
		snprintf(err, errlen, "state stream ends before its END section (%s)",
		         ret == -EPIPE ? "truncated" : strerror(-ret));
		return ret;
	}
	memcpy(type, h, 4);
	memcpy(instance, h + 4, 4);
	memcpy(len, h + 8, 8);
	if (*len > VMM_STATE_MAX_SECTION) {
		vmm_fourcc_str(*type, name);
		snprintf(err, errlen, "state section %s/%u claims %llu bytes (limit %u): corrupt",
		         name, *instance, (unsigned long long)*len, VMM_STATE_MAX_SECTION);
		return -EBADMSG;
	}
	return 0;
}

int vmm_state_read_part(struct vmm_stream *s, void *p, size_t n, uint32_t type, uint32_t instance,
                        char *err, size_t errlen)
{
	char name[5];
	int ret = n ? get(s, p, n) : 0;

	if (ret < 0) {
		vmm_fourcc_str(type, name);
		snprintf(err, errlen, "state section %s/%u is truncated", name, instance);
	}
	return ret;
}

int vmm_state_read_trailer(struct vmm_stream *s, uint32_t crc, uint32_t type, uint32_t instance,
                           char *err, size_t errlen)
{
	uint8_t t[4];
	uint32_t want;
	char name[5];
	int ret;

	if ((ret = vmm_state_read_part(s, t, 4, type, instance, err, errlen)) < 0)
		return ret;
	memcpy(&want, t, 4);
	if (crc != want) {
		vmm_fourcc_str(type, name);
		snprintf(err, errlen, "state section %s/%u is corrupt (checksum mismatch)", name,
		         instance);
		return -EBADMSG;
	}
	return 0;
}

int vmm_state_read_section(struct vmm_stream *s, uint32_t *type, uint32_t *instance,
                           struct sbuf *payload, char *err, size_t errlen)
{
	uint8_t h[16];
	uint64_t len;
	int ret;

	payload->len = 0;
	payload->err = 0;
	if ((ret = vmm_state_read_head(s, h, type, instance, &len, err, errlen)) < 0)
		return ret;
	return vmm_state_read_rest(s, h, *type, *instance, len, payload, err, errlen);
}

int vmm_state_read_rest(struct vmm_stream *s, const uint8_t h[16], uint32_t type, uint32_t instance,
                        uint64_t len, struct sbuf *payload, char *err, size_t errlen)
{
	int ret;

	if ((ret = sbuf_reserve(payload, (size_t)len)) < 0)
		return ret;
	payload->len = (size_t)len;
	if ((ret = vmm_state_read_part(s, payload->data, (size_t)len, type, instance, err,
	                               errlen)) < 0)
		return ret;
	uint32_t crc = vmm_crc32c(vmm_crc32c(0, h, 16), payload->data, (size_t)len);
	return vmm_state_read_trailer(s, crc, type, instance, err, errlen);
}
