/* Byte buffers for device and CPU state: little-endian writers that grow,
 * readers that never read past the end (every getter fails with -EBADMSG
 * once the buffer is exhausted, and stays failed). */
#ifndef VMM_SBUF_H
#define VMM_SBUF_H

#include <stddef.h>
#include <stdint.h>

struct sbuf { /* writer */
	uint8_t *data;
	size_t len, cap;
	int err; /* first error (-ENOMEM); puts after it are no-ops */
};

struct rbuf { /* reader over borrowed bytes */
	const uint8_t *data;
	size_t len, off;
	int err; /* -EBADMSG after an overrun */
};

void sbuf_init(struct sbuf *b);
void sbuf_free(struct sbuf *b);
void sbuf_put(struct sbuf *b, const void *p, size_t n);
/* Makes room for n bytes in total (cap >= n); 0 or -ENOMEM. */
int sbuf_reserve(struct sbuf *b, size_t n);
void sbuf_u8(struct sbuf *b, uint8_t v);
void sbuf_u16(struct sbuf *b, uint16_t v);
void sbuf_u32(struct sbuf *b, uint32_t v);
void sbuf_u64(struct sbuf *b, uint64_t v);

void rbuf_init(struct rbuf *r, const void *data, size_t len);
int rbuf_get(struct rbuf *r, void *p, size_t n);
uint8_t rbuf_u8(struct rbuf *r);
uint16_t rbuf_u16(struct rbuf *r);
uint32_t rbuf_u32(struct rbuf *r);
uint64_t rbuf_u64(struct rbuf *r);
/* 0 if everything was read without overrun and nothing is left over;
 * -EBADMSG otherwise (a restore must consume exactly what save wrote). */
int rbuf_done(const struct rbuf *r);

#endif
