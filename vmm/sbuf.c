#include "sbuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void sbuf_init(struct sbuf *b)
{
	memset(b, 0, sizeof(*b));
}

void sbuf_free(struct sbuf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

int sbuf_reserve(struct sbuf *b, size_t n)
{
	if (b->err)
		return b->err;
	if (n <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < n) {
		if (cap > SIZE_MAX / 2)
			return b->err = -ENOMEM;
		cap *= 2;
	}
	uint8_t *d = realloc(b->data, cap);
	if (!d)
		return b->err = -ENOMEM;
	b->data = d;
	b->cap = cap;
	return 0;
}

void sbuf_put(struct sbuf *b, const void *p, size_t n)
{
	if (b->err || n == 0)
		return;
	if (n > SIZE_MAX - b->len) {
		b->err = -ENOMEM;
		return;
	}
	if (sbuf_reserve(b, b->len + n) < 0)
		return;
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

void sbuf_u8(struct sbuf *b, uint8_t v)
{
	sbuf_put(b, &v, 1);
}

void sbuf_u16(struct sbuf *b, uint16_t v)
{
	uint8_t x[2] = { (uint8_t)v, (uint8_t)(v >> 8) };
	sbuf_put(b, x, 2);
}

void sbuf_u32(struct sbuf *b, uint32_t v)
{
	uint8_t x[4];
	for (int i = 0; i < 4; i++)
		x[i] = (uint8_t)(v >> (8 * i));
	sbuf_put(b, x, 4);
}

void sbuf_u64(struct sbuf *b, uint64_t v)
{
	uint8_t x[8];
	for (int i = 0; i < 8; i++)
		x[i] = (uint8_t)(v >> (8 * i));
	sbuf_put(b, x, 8);
}

void rbuf_init(struct rbuf *r, const void *data, size_t len)
{
	r->data = data;
	r->len = len;
	r->off = 0;
	r->err = 0;
}

int rbuf_get(struct rbuf *r, void *p, size_t n)
{
	if (r->err || n > r->len - r->off) {
		r->err = -EBADMSG;
		memset(p, 0, n);
		return r->err;
	}
	memcpy(p, r->data + r->off, n);
	r->off += n;
	return 0;
}

uint8_t rbuf_u8(struct rbuf *r)
{
	uint8_t v;
	rbuf_get(r, &v, 1);
	return v;
}

uint16_t rbuf_u16(struct rbuf *r)
{
	uint8_t x[2];
	rbuf_get(r, x, 2);
	return (uint16_t)(x[0] | x[1] << 8);
}

uint32_t rbuf_u32(struct rbuf *r)
{
	uint8_t x[4];
	uint32_t v = 0;
	rbuf_get(r, x, 4);
	for (int i = 0; i < 4; i++)
		v |= (uint32_t)x[i] << (8 * i);
	return v;
}

uint64_t rbuf_u64(struct rbuf *r)
{
	uint8_t x[8];
	uint64_t v = 0;
	rbuf_get(r, x, 8);
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)x[i] << (8 * i);
	return v;
}

int rbuf_done(const struct rbuf *r)
{
	return r->err ? r->err : r->off == r->len ? 0 : -EBADMSG;
}
