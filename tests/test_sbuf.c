/* State buffers: little-endian round trips of every size, overruns that
 * stick, rbuf_done, growth past 1 MiB and allocation failures. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/sbuf.h"

static void test_round_trip_all_sizes(void **state)
{
	static const uint64_t v64[] = { 0,
		                        1,
		                        0x7f,
		                        0x80,
		                        0xff,
		                        0x100,
		                        0x7fff,
		                        0x8000,
		                        0xffff,
		                        0x12345678,
		                        0x80000000u,
		                        0xffffffffu,
		                        0x0102030405060708ull,
		                        0x8000000000000000ull,
		                        UINT64_MAX };
	const size_t n = sizeof(v64) / sizeof(v64[0]);
	struct sbuf b;
	struct rbuf r;
	uint8_t blob[37], back[37];

	(void)state;
	for (size_t i = 0; i < sizeof(blob); i++)
		blob[i] = (uint8_t)(i * 7 + 1);
	sbuf_init(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	for (size_t i = 0; i < n; i++) {
		sbuf_u8(&b, (uint8_t)v64[i]);
		sbuf_u16(&b, (uint16_t)v64[i]);
		sbuf_u32(&b, (uint32_t)v64[i]);
		sbuf_u64(&b, v64[i]);
		sbuf_put(&b, blob, i); /* 0 .. n-1 bytes */
	}
	sbuf_put(&b, blob, sizeof(blob));
	sbuf_put(&b, NULL, 0); /* nothing */
	assert_int_equal(b.err, 0);
	assert_int_equal(b.len, n * 15 + n * (n - 1) / 2 + sizeof(blob));
	assert_true(b.cap >= b.len);

	rbuf_init(&r, b.data, b.len);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(rbuf_u8(&r), (uint8_t)v64[i]);
		assert_int_equal(rbuf_u16(&r), (uint16_t)v64[i]);
		assert_int_equal(rbuf_u32(&r), (uint32_t)v64[i]);
		assert_true(rbuf_u64(&r) == v64[i]);
		memset(back, 0, sizeof(back));
		assert_int_equal(rbuf_get(&r, back, i), 0);
		assert_memory_equal(back, blob, i);
	}
	assert_int_not_equal(rbuf_done(&r), 0); /* the last blob is unread */
	assert_int_equal(rbuf_get(&r, back, sizeof(back)), 0);
	assert_memory_equal(back, blob, sizeof(blob));
	assert_int_equal(rbuf_get(&r, back, 0), 0); /* 0 bytes at the end is fine */
	assert_int_equal(rbuf_done(&r), 0);
	assert_int_equal(r.err, 0);
	sbuf_free(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, 0);
}

static void test_little_endian_layout(void **state)
{
	static const uint8_t want[] = { 0xa1, 0x02, 0x01, 0x04, 0x03, 0x02, 0x01, 0x08,
		                        0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01 };
	struct sbuf b;
	struct rbuf r;

	(void)state;
	sbuf_init(&b);
	sbuf_u8(&b, 0xa1);
	sbuf_u16(&b, 0x0102);
	sbuf_u32(&b, 0x01020304);
	sbuf_u64(&b, 0x0102030405060708ull);
	assert_int_equal(b.len, sizeof(want));
	assert_memory_equal(b.data, want, sizeof(want));
	sbuf_free(&b);
	/* and readers take bytes, not host words, from any alignment */
	rbuf_init(&r, want + 1, sizeof(want) - 1);
	assert_int_equal(rbuf_u16(&r), 0x0102);
	assert_int_equal(rbuf_u32(&r), 0x01020304);
	assert_true(rbuf_u64(&r) == 0x0102030405060708ull);
	assert_int_equal(rbuf_done(&r), 0);
}

static void test_overrun_sticks(void **state)
{
	static const uint8_t data[7] = { 1, 2, 3, 4, 5, 6, 7 };
	struct rbuf r;
	uint8_t out[8];

	(void)state;
	/* each getter on too few bytes: fails, yields 0, and stays failed */
	rbuf_init(&r, data, 1);
	assert_int_equal(rbuf_u16(&r), 0);
	assert_int_equal(r.err, -EBADMSG);
	assert_int_equal(rbuf_u8(&r), 0); /* the byte that is there is not read */
	assert_int_equal(rbuf_done(&r), -EBADMSG);

	rbuf_init(&r, data, 3);
	assert_int_equal(rbuf_u32(&r), 0);
	assert_int_equal(rbuf_get(&r, out, 0), -EBADMSG);
	assert_int_equal(rbuf_done(&r), -EBADMSG);

	rbuf_init(&r, data, 7);
	assert_int_equal(rbuf_u8(&r), 1);
	assert_true(rbuf_u64(&r) == 0);
	assert_int_equal(r.err, -EBADMSG);
	assert_int_equal(rbuf_u8(&r), 0);
	assert_int_equal(rbuf_u16(&r), 0);
	assert_int_equal(rbuf_u32(&r), 0);
	memset(out, 0xcc, sizeof(out));
	assert_int_equal(rbuf_get(&r, out, 2), -EBADMSG);
	assert_int_equal(out[0], 0); /* a failed get zeroes its output */
	assert_int_equal(out[1], 0);
	assert_int_equal(out[2], 0xcc);
	assert_int_equal(rbuf_done(&r), -EBADMSG);

	/* exactly at the end is not an overrun; one more byte is */
	rbuf_init(&r, data, 7);
	assert_int_equal(rbuf_get(&r, out, 7), 0);
	assert_int_equal(rbuf_done(&r), 0);
	assert_int_equal(rbuf_u8(&r), 0);
	assert_int_equal(rbuf_done(&r), -EBADMSG);

	/* an empty (even NULL) buffer */
	rbuf_init(&r, NULL, 0);
	assert_int_equal(rbuf_done(&r), 0);
	assert_int_equal(rbuf_u8(&r), 0);
	assert_int_equal(rbuf_done(&r), -EBADMSG);

	/* a re-init starts over */
	rbuf_init(&r, data, 2);
	assert_int_equal(rbuf_u16(&r), 0x0201);
	assert_int_equal(rbuf_done(&r), 0);
}

static void test_done_with_leftover(void **state)
{
	static const uint8_t data[9] = { 0 };
	struct rbuf r;

	(void)state;
	for (size_t len = 1; len <= sizeof(data); len++) {
		rbuf_init(&r, data, len);
		assert_int_equal(rbuf_done(&r), -EBADMSG); /* nothing read */
		for (size_t i = 0; i + 1 < len; i++)
			rbuf_u8(&r);
		assert_int_equal(rbuf_done(&r), -EBADMSG); /* one byte left */
		assert_int_equal(r.err, 0);                /* that is not an overrun */
		rbuf_u8(&r);
		assert_int_equal(rbuf_done(&r), 0);
	}
}

static void test_growth_past_1mib(void **state)
{
	const uint32_t n = (3u << 20) / 4 + 123; /* a bit over 3 MiB of u32 */
	struct sbuf b;
	struct rbuf r;

	(void)state;
	sbuf_init(&b);
	for (uint32_t i = 0; i < n; i++)
		sbuf_u32(&b, i * 2654435761u);
	assert_int_equal(b.err, 0);
	assert_int_equal(b.len, (size_t)n * 4);
	assert_true(b.cap >= b.len);
	assert_true(b.cap <= 2 * b.len); /* grows by doubling, not by much more */
	rbuf_init(&r, b.data, b.len);
	for (uint32_t i = 0; i < n; i++)
		if (rbuf_u32(&r) != i * 2654435761u)
			fail_msg("u32 %u differs", i);
	assert_int_equal(rbuf_done(&r), 0);
	sbuf_free(&b);

	/* one put of 2 MiB + 1 into a buffer that has something */
	size_t big = (2u << 20) + 1;
	uint8_t *p = malloc(big);
	assert_non_null(p);
	for (size_t i = 0; i < big; i++)
		p[i] = (uint8_t)(i ^ (i >> 8));
	sbuf_init(&b);
	sbuf_u8(&b, 0x5a);
	sbuf_put(&b, p, big);
	assert_int_equal(b.err, 0);
	assert_int_equal(b.len, big + 1);
	assert_int_equal(b.data[0], 0x5a);
	assert_memory_equal(b.data + 1, p, big);
	/* reserve: no shrinking, and room means no reallocation */
	size_t cap = b.cap;
	assert_int_equal(sbuf_reserve(&b, 10), 0);
	assert_int_equal(b.cap, cap);
	assert_int_equal(sbuf_reserve(&b, cap + 1), 0);
	assert_true(b.cap > cap);
	uint8_t *data = b.data, *fill = calloc(1, b.cap - b.len);
	assert_non_null(fill);
	sbuf_put(&b, fill, b.cap - b.len);
	assert_ptr_equal(b.data, data);
	assert_int_equal(b.len, b.cap);
	free(fill);
	free(p);
	sbuf_free(&b);
}

static void test_enomem_sticks(void **state)
{
	struct sbuf b;
	uint8_t x = 1;

	(void)state;
	/* a size that cannot be had fails without allocating ... */
	sbuf_init(&b);
	sbuf_u32(&b, 0xdeadbeef);
	assert_int_equal(sbuf_reserve(&b, SIZE_MAX), -ENOMEM);
	assert_int_equal(b.err, -ENOMEM);
	assert_int_equal(b.len, 4);
	/* ... and every later put is a no-op that reports it */
	sbuf_u8(&b, 1);
	sbuf_u64(&b, 1);
	sbuf_put(&b, &x, 1);
	assert_int_equal(b.len, 4);
	assert_int_equal(sbuf_reserve(&b, 1), -ENOMEM);
	assert_memory_equal(b.data, "\xef\xbe\xad\xde", 4);
	sbuf_free(&b);
	assert_int_equal(b.err, 0); /* free makes it new */

	/* a length that would wrap size_t is refused before p is read */
	sbuf_init(&b);
	sbuf_u8(&b, 1);
	sbuf_put(&b, &x, SIZE_MAX);
	assert_int_equal(b.err, -ENOMEM);
	assert_int_equal(b.len, 1);
	sbuf_free(&b);
	sbuf_init(&b);
	sbuf_put(&b, &x, SIZE_MAX / 2 + 2);
	assert_int_equal(b.err, -ENOMEM);
	assert_int_equal(b.len, 0);
	sbuf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_all_sizes),
		cmocka_unit_test(test_little_endian_layout),
		cmocka_unit_test(test_overrun_sticks),
		cmocka_unit_test(test_done_with_leftover),
		cmocka_unit_test(test_growth_past_1mib),
		cmocka_unit_test(test_enomem_sticks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
