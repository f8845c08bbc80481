/* The state stream format: round trips, and refusal of every corruption. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/testutil.h"

#include "vmm/state.h"

/* header + CPUM + a 100 KiB RAM section + an empty DEVS + END */
static void build(struct membuf *m)
{
	struct vmm_stream s;
	uint8_t *big = malloc(100 << 10);

	for (size_t i = 0; i < (100 << 10); i++)
		big[i] = (uint8_t)(i * 7 + 3);
	membuf_stream(&s, m);
	assert_int_equal(vmm_state_write_header(&s), 0);
	assert_int_equal(vmm_state_write_section(&s, SEC_CPU_MODEL, 0, "host", 4), 0);
	assert_int_equal(vmm_state_write_section(&s, SEC_RAM, 7, big, 100 << 10), 0);
	assert_int_equal(vmm_state_write_section(&s, SEC_DEVICE, 2, NULL, 0), 0);
	assert_int_equal(vmm_state_write_section(&s, SEC_END, 0, NULL, 0), 0);
	assert_int_equal(s.bytes, m->len);
	free(big);
}

/* Reads the whole stream: 0, or the first error. */
static int read_all(struct membuf *m, char *err, size_t errlen, int *sections)
{
	struct vmm_stream s;
	struct sbuf p;
	uint32_t type = 0, inst;
	int ret;

	m->off = 0;
	membuf_stream(&s, m);
	sbuf_init(&p);
	*sections = 0;
	ret = vmm_state_read_header(&s, err, errlen);
	while (ret == 0 && type != SEC_END) {
		ret = vmm_state_read_section(&s, &type, &inst, &p, err, errlen);
		if (ret == 0)
			(*sections)++;
	}
	sbuf_free(&p);
	return ret;
}

static void test_round_trip(void **state)
{
	struct membuf m = { 0 };
	struct vmm_stream s;
	struct sbuf p;
	uint32_t type, inst;
	char err[256];

	(void)state;
	build(&m);
	membuf_stream(&s, &m);
	sbuf_init(&p);
	assert_int_equal(vmm_state_read_header(&s, err, sizeof(err)), 0);
	assert_int_equal(vmm_state_read_section(&s, &type, &inst, &p, err, sizeof(err)), 0);
	assert_int_equal(type, SEC_CPU_MODEL);
	assert_int_equal(p.len, 4);
	assert_memory_equal(p.data, "host", 4);
	assert_int_equal(vmm_state_read_section(&s, &type, &inst, &p, err, sizeof(err)), 0);
	assert_int_equal(type, SEC_RAM);
	assert_int_equal(inst, 7);
	assert_int_equal(p.len, 100 << 10);
	for (size_t i = 0; i < p.len; i += 4093)
		assert_int_equal(p.data[i], (uint8_t)(i * 7 + 3));
	assert_int_equal(vmm_state_read_section(&s, &type, &inst, &p, err, sizeof(err)), 0);
	assert_int_equal(type, SEC_DEVICE);
	assert_int_equal(p.len, 0);
	assert_int_equal(vmm_state_read_section(&s, &type, &inst, &p, err, sizeof(err)), 0);
	assert_int_equal(type, SEC_END);
	assert_int_equal(m.off, m.len);
	sbuf_free(&p);
	free(m.data);
}

/* Every single flipped bit in the header and section framing, and a sample
 * of bits in the payload, is detected. */
static void test_flipped_bits(void **state)
{
	struct membuf m = { 0 };
	char err[256];
	int n;

	(void)state;
	build(&m);
	for (size_t pos = 0; pos < m.len; pos += pos < 100 || pos > m.len - 100 ? 1 : 997) {
		for (int bit = 0; bit < 8; bit += 3) {
			m.data[pos] ^= (uint8_t)(1 << bit);
			int ret = read_all(&m, err, sizeof(err), &n);
			m.data[pos] ^= (uint8_t)(1 << bit);
			if (ret == 0)
				fail_msg("flipped bit %d of byte %zu went unnoticed", bit, pos);
			assert_true(strlen(err) > 10);
		}
	}
	assert_int_equal(read_all(&m, err, sizeof(err), &n), 0);
	assert_int_equal(n, 4);
	free(m.data);
}

static void test_truncated(void **state)
{
	struct membuf m = { 0 };
	char err[256];
	int n;

	(void)state;
	build(&m);
	size_t full = m.len;
	for (size_t len = 0; len < full; len += len < 64 ? 1 : 1021) {
		m.len = len;
		assert_int_not_equal(read_all(&m, err, sizeof(err), &n), 0);
	}
	m.len = full;
	free(m.data);
}

static void test_wrong_version_and_magic(void **state)
{
	struct membuf m = { 0 };
	char err[256];
	int n;

	(void)state;
	build(&m);
	/* a well-formed header of version 2: refused by version, not checksum */
	uint32_t v = 2, crc;
	memcpy(m.data + 8, &v, 4);
	crc = vmm_crc32c(0, m.data, 24);
	memcpy(m.data + 24, &crc, 4);
	assert_int_equal(read_all(&m, err, sizeof(err), &n), -EPROTONOSUPPORT);
	assert_non_null(strstr(err, "version 2 is not supported"));
	memcpy(m.data, "QEMU_VM!", 8);
	assert_int_equal(read_all(&m, err, sizeof(err), &n), -EBADMSG);
	assert_non_null(strstr(err, "magic"));
	free(m.data);
}

static void test_oversized_section(void **state)
{
	struct membuf m = { 0 };
	struct vmm_stream s;
	char err[256];
	int n;

	(void)state;
	membuf_stream(&s, &m);
	assert_int_equal(vmm_state_write_header(&s), 0);
	uint8_t h[16] = { 'R', 'A', 'M', ' ', 0, 0, 0, 0 };
	uint64_t huge = 1ull << 40;
	memcpy(h + 8, &huge, 8);
	membuf_write(&m, h, sizeof(h));
	/* refused by its length before any allocation of 1 TiB */
	assert_int_equal(read_all(&m, err, sizeof(err), &n), -EBADMSG);
	assert_non_null(strstr(err, "claims"));
	assert_int_equal(
	        vmm_state_write_section(&s, SEC_RAM, 0, m.data, VMM_STATE_MAX_SECTION + 1ull),
	        -E2BIG);
	free(m.data);
}

static void test_crc32c_known_value(void **state)
{
	(void)state;
	/* RFC 3720 test vector: 32 bytes of zeros -> 0x8a9136aa */
	uint8_t z[32] = { 0 };
	assert_int_equal(vmm_crc32c(0, z, sizeof(z)), 0x8a9136aa);
	assert_int_equal(vmm_crc32c(0, "123456789", 9), 0xe3069283);
	/* chaining equals one pass */
	assert_int_equal(vmm_crc32c(vmm_crc32c(0, "1234", 4), "56789", 5), 0xe3069283);
	/* large buffers take the three-chain path: the same crc as small pieces */
	size_t big = (1u << 20) + 37;
	uint8_t *b = malloc(big);
	uint64_t x = 88172645463325252ull;
	for (size_t i = 0; i < big; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		b[i] = (uint8_t)x;
	}
	size_t sizes[] = { 16384, 16385, 24583, 65536, 1u << 20, big };
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		uint32_t pieces = 0x1234567u;
		for (size_t o = 0; o < sizes[k]; o += 4000)
			pieces = vmm_crc32c(pieces, b + o,
			                    sizes[k] - o < 4000 ? sizes[k] - o : 4000);
		assert_int_equal(vmm_crc32c(0x1234567u, b, sizes[k]), pieces);
	}
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32c_known_value),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_flipped_bits),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_wrong_version_and_magic),
		cmocka_unit_test(test_oversized_section),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
