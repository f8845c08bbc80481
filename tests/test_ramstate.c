/* RAM sections: round trip through a state stream, zero pages cost a bit,
 * malformed sections are refused before guest memory is touched. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/testutil.h"

#include "vmm/ramstate.h"

/* What most tests here start with: a source a and a destination b of the
 * same size, a stream s into buf, and p for section payloads. */
static void pair_open(struct vmm_mem *a, struct vmm_mem *b, uint64_t bytes, bool memfd,
                      struct vmm_stream *s, struct membuf *buf, struct sbuf *p)
{
	membuf_stream(s, buf);
	sbuf_init(p);
	assert_int_equal(vmm_mem_init(a, bytes, memfd), 0);
	assert_int_equal(vmm_mem_init(b, bytes, memfd), 0);
}

static void pair_close(struct vmm_mem *a, struct vmm_mem *b, struct membuf *buf, struct sbuf *p)
{
	sbuf_free(p);
	free(buf->data);
	vmm_mem_free(a);
	vmm_mem_free(b);
}

static void round_trip(bool use_memfd)
{
	struct vmm_mem a, b;
	struct membuf buf = { 0 };
	struct vmm_stream s;
	struct ram_stats st = { 0 };
	struct sbuf p;
	char err[256];

	pair_open(&a, &b, 16ull << 20, use_memfd, &s, &buf, &p);
	/* every 7th page written; the rest stays zero */
	size_t pages = (16u << 20) / VMM_PAGE_SIZE;
	for (size_t i = 0; i < pages; i += 7)
		memset(a.slots[0].host + i * VMM_PAGE_SIZE + (i % 4000), (int)(i % 251) + 1, 13);
	/* stale data at the destination must be cleared where the source is zero */
	memset(b.slots[0].host, 0xee, 1u << 20);
	assert_int_equal(vmm_ram_save_all(&a, &s, &st), 0);
	assert_int_equal(st.pages, pages);
	assert_int_equal(st.zero_pages, pages - (pages + 6) / 7);
	/* zero pages cost a bit, not 4 KiB */
	assert_true(buf.len < ((pages + 6) / 7 + 64) * VMM_PAGE_SIZE);
	uint32_t type, inst;
	while (buf.off < buf.len) {
		assert_int_equal(vmm_state_read_section(&s, &type, &inst, &p, err, sizeof(err)), 0);
		assert_true(type == SEC_RAM || type == SEC_ZERO);
		if (type == SEC_RAM)
			assert_int_equal(vmm_ram_load(&b, p.data, p.len, err, sizeof(err)), 0);
		else
			assert_int_equal(vmm_ram_zero_load(&b, p.data, p.len, err, sizeof(err)), 0);
	}
	assert_memory_equal(a.slots[0].host, b.slots[0].host, 16u << 20);
	pair_close(&a, &b, &buf, &p);
}

static void test_round_trip(void **state)
{
	(void)state;
	round_trip(true);
	round_trip(false);
}

/* Anonymous memory (vmx's guest RAM): what the guest never touched is found
 * in the page table and goes as ZERO sections, without a page read; the
 * touched pages come back exact. */
static void test_anon_untouched(void **state)
{
	struct vmm_mem a, b;
	struct membuf buf = { 0 };
	struct vmm_stream s;
	struct ram_stats st = { 0 };
	struct sbuf p;
	char err[256];
	uint32_t type, inst, nram = 0, nzero = 0;
	uint64_t bits[(8u << 20) / VMM_PAGE_SIZE / 64];

	(void)state;
	pair_open(&a, &b, 64ull << 20, false, &s, &buf, &p);
	assert_true(a.pagemap_fd >= 0);
	a.slots[0].host[5] = 0x42;
	a.slots[0].host[(33u << 20) + 100] = 0x43;
	a.slots[0].host[(64u << 20) - 1] = 0x44;
	/* the page table knows the written pages and nothing of [8, 16) MiB */
	vmm_mem_anon_data(&a, 0, 0, 1, bits);
	assert_true(bits[0] & 1);
	vmm_mem_anon_data(&a, 0, 33u << 20, 1, bits);
	assert_true(bits[0] & 1);
	vmm_mem_anon_data(&a, 0, 8u << 20, (8u << 20) / VMM_PAGE_SIZE, bits);
	for (size_t w = 0; w < ARRAY_SIZE(bits); w++)
		assert_true(bits[w] == 0);

	assert_int_equal(vmm_ram_save_all(&a, &s, &st), 0);
	assert_int_equal(st.pages, (64u << 20) / VMM_PAGE_SIZE);
	while (buf.off < buf.len) {
		assert_int_equal(vmm_state_read_section(&s, &type, &inst, &p, err, sizeof(err)), 0);
		if (type == SEC_RAM) {
			nram++;
			assert_int_equal(vmm_ram_load(&b, p.data, p.len, err, sizeof(err)), 0);
		} else {
			assert_int_equal(type, SEC_ZERO);
			nzero++;
			assert_int_equal(vmm_ram_zero_load(&b, p.data, p.len, err, sizeof(err)), 0);
		}
	}
	/* at most the 2 MiB huge pages around the three writes were read, as
	 * 1 MiB sections; the rest is a few ZERO sections */
	assert_true(nram <= 6);
	assert_true(nzero >= 2 && nzero <= 4);
	assert_true(buf.len < 5 * VMM_PAGE_SIZE + 4096);
	assert_int_equal(b.slots[0].host[5], 0x42);
	assert_int_equal(b.slots[0].host[(33u << 20) + 100], 0x43);
	assert_int_equal(b.slots[0].host[(64u << 20) - 1], 0x44);
	assert_memory_equal(a.slots[0].host, b.slots[0].host, 64u << 20);
	pair_close(&a, &b, &buf, &p);
}

/* lz4: compressible memory goes as RAMZ, smaller, and comes back exact;
 * incompressible memory stays RAM; corrupt RAMZ is refused */
static void test_compressed(void **state)
{
	struct vmm_mem a, b;
	struct membuf buf = { 0 };
	struct vmm_stream s;
	struct sbuf p;
	char err[256];
	uint32_t type, inst, nz = 0, nr = 0;

	(void)state;
	pair_open(&a, &b, 16ull << 20, false, &s, &buf, &p);
	s.compress = true;
	/* 1 MiB of a text-like pattern, then 1 MiB of pseudo-random bytes */
	for (size_t i = 0; i < (1u << 20); i++)
		a.slots[0].host[i] = (uint8_t)("the quick brown fox "[i % 20]);
	uint64_t x = 88172645463325252ull;
	for (size_t i = 1u << 20; i < (2u << 20); i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		a.slots[0].host[i] = (uint8_t)x;
	}
	assert_int_equal(vmm_ram_save_range(&a, &s, 0, 256, 0, NULL), 0);
	assert_int_equal(vmm_ram_save_range(&a, &s, 1u << 20, 256, 1, NULL), 0);
	assert_true(buf.len < (1u << 20) + (64u << 10)); /* the text shrank */
	while (buf.off < buf.len) {
		assert_int_equal(vmm_state_read_section(&s, &type, &inst, &p, err, sizeof(err)), 0);
		if (type == SEC_RAMZ) {
			nz++;
			assert_int_equal(
			        vmm_ram_load_compressed(&b, p.data, p.len, err, sizeof(err)), 0);
		} else {
			nr++;
			assert_int_equal(type, SEC_RAM);
			assert_int_equal(vmm_ram_load(&b, p.data, p.len, err, sizeof(err)), 0);
		}
	}
	assert_int_equal(nz, 1);
	assert_int_equal(nr, 1);
	assert_memory_equal(a.slots[0].host, b.slots[0].host, 2u << 20);

	/* corrupt: a flipped byte in the lz4 block, a length no section has, short */
	buf.len = buf.off = 0;
	assert_int_equal(vmm_ram_save_range(&a, &s, 0, 256, 0, NULL), 0);
	assert_int_equal(vmm_state_read_section(&s, &type, &inst, &p, err, sizeof(err)), 0);
	assert_int_equal(type, SEC_RAMZ);
	uint8_t *copy = malloc(p.len);
	assert_non_null(copy);
	memcpy(copy, p.data, p.len);
	copy[p.len / 2] ^= 0x5a;
	int r = vmm_ram_load_compressed(&b, copy, p.len, err, sizeof(err));
	assert_true(r == -EBADMSG || r == 0); /* lz4 may decode a flipped literal */
	memcpy(copy, p.data, p.len);
	copy[3] = 0x7f; /* ~2 GiB uncompressed */
	assert_int_equal(vmm_ram_load_compressed(&b, copy, p.len, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "is no RAM section"));
	memcpy(copy, p.data, p.len);
	assert_int_equal(vmm_ram_load_compressed(&b, copy, p.len - 10, err, sizeof(err)), -EBADMSG);
	assert_int_equal(vmm_ram_load_compressed(&b, copy, 3, err, sizeof(err)), -EBADMSG);
	free(copy);
	pair_close(&a, &b, &buf, &p);
}

static void test_malformed(void **state)
{
	struct vmm_mem m;
	struct membuf buf = { 0 };
	struct vmm_stream s;
	membuf_stream(&s, &buf);
	struct sbuf p;
	char err[256];
	uint32_t type, inst;

	(void)state;
	assert_int_equal(vmm_mem_init(&m, 16ull << 20, false), 0);
	memset(m.slots[0].host + 8192, 0x11, 4096);
	assert_int_equal(vmm_ram_save_range(&m, &s, 0, 4, 0, NULL), 0);
	sbuf_init(&p);
	assert_int_equal(vmm_state_read_section(&s, &type, &inst, &p, err, sizeof(err)), 0);
	/* outside guest RAM */
	uint64_t far = 1ull << 40;
	uint8_t *copy = malloc(p.len);
	memcpy(copy, p.data, p.len);
	memcpy(copy, &far, 8);
	assert_int_equal(vmm_ram_load(&m, copy, p.len, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "outside guest RAM"));
	/* a bitmap that claims more pages than the data has: refused, nothing written */
	memcpy(copy, p.data, p.len);
	copy[12] |= 0x01;
	memset(m.slots[0].host, 0x77, 4096);
	assert_int_equal(vmm_ram_load(&m, copy, p.len, err, sizeof(err)), -EBADMSG);
	assert_int_equal(m.slots[0].host[0], 0x77);
	/* every truncation is refused */
	for (size_t len = 0; len < p.len; len += len < 32 ? 1 : 509)
		assert_int_equal(vmm_ram_load(&m, p.data, len, err, sizeof(err)), -EBADMSG);
	/* page count 0, over 256, unaligned address */
	uint32_t bad[] = { 0, 257 };
	for (int i = 0; i < 2; i++) {
		memcpy(copy, p.data, p.len);
		memcpy(copy + 8, &bad[i], 4);
		assert_int_equal(vmm_ram_load(&m, copy, p.len, err, sizeof(err)), -EBADMSG);
	}
	uint64_t odd = 4097;
	memcpy(copy, &odd, 8);
	assert_int_equal(vmm_ram_load(&m, copy, p.len, err, sizeof(err)), -EBADMSG);
	/* and the original applies */
	assert_int_equal(vmm_ram_load(&m, p.data, p.len, err, sizeof(err)), 0);
	assert_int_equal(m.slots[0].host[0], 0);
	assert_int_equal(m.slots[0].host[8192], 0x11);
	free(copy);
	sbuf_free(&p);
	free(buf.data);
	vmm_mem_free(&m);
}

/* vmm_ram_read_section: RAM pages read straight into guest memory, other
 * sections into the payload; a malformed header or bitmap is refused
 * before a page is written, a corrupt page by its checksum. */
static void one_section(struct membuf *buf, struct vmm_stream *s, struct vmm_mem *m, uint64_t gpa,
                        uint32_t npages)
{
	buf->len = buf->off = 0;
	assert_int_equal(vmm_ram_save_range(m, s, gpa, npages, 0, NULL), 0);
}

/* The next section of s, read into m (NULL: no VM yet), is refused, with
 * a message that holds want (when given). */
static void refused(struct vmm_stream *s, struct vmm_mem *m, const char *want)
{
	struct sbuf p;
	char err[256];
	uint32_t type, inst;
	bool loaded;

	sbuf_init(&p);
	assert_int_equal(vmm_ram_read_section(s, m, &type, &inst, &p, &loaded, err, sizeof(err)),
	                 -EBADMSG);
	if (want)
		assert_non_null(strstr(err, want));
	sbuf_free(&p);
}

static void test_direct_read(void **state)
{
	struct vmm_mem a, b;
	struct membuf buf = { 0 };
	struct vmm_stream s;
	struct sbuf p;
	char err[256];
	uint32_t type, inst;
	bool loaded;

	(void)state;
	pair_open(&a, &b, 16ull << 20, false, &s, &buf, &p);
	for (size_t i = 0; i < (2u << 20); i += 4096)
		if (i / 4096 % 3)
			memset(a.slots[0].host + i, (int)(i / 4096 % 250) + 1, 4096);
	memset(b.slots[0].host, 0xee, 2u << 20); /* stale: zero pages clear it */
	uint32_t inst0 = 0;
	uint64_t zp[2] = { 4u << 20, 1u << 20 };
	assert_int_equal(vmm_ram_save_range(&a, &s, 0, 256, inst0++, NULL), 0);
	assert_int_equal(vmm_state_write_section(&s, SEC_ZERO, 0, zp, sizeof(zp)), 0);
	assert_int_equal(vmm_ram_save_range(&a, &s, 1u << 20, 256, inst0++, NULL), 0);
	assert_int_equal(vmm_ram_read_section(&s, &b, &type, &inst, &p, &loaded, err, sizeof(err)),
	                 0);
	assert_true(type == SEC_RAM && loaded && p.len == 0);
	assert_int_equal(vmm_ram_read_section(&s, &b, &type, &inst, &p, &loaded, err, sizeof(err)),
	                 0);
	assert_true(type == SEC_ZERO && !loaded && p.len == sizeof(zp));
	assert_memory_equal(p.data, zp, sizeof(zp));
	assert_int_equal(vmm_ram_read_section(&s, &b, &type, &inst, &p, &loaded, err, sizeof(err)),
	                 0);
	assert_true(type == SEC_RAM && loaded);
	assert_memory_equal(a.slots[0].host, b.slots[0].host, 2u << 20);
	/* without guest memory a RAM section is a payload like any */
	one_section(&buf, &s, &a, 0, 4);
	assert_int_equal(
	        vmm_ram_read_section(&s, NULL, &type, &inst, &p, &loaded, err, sizeof(err)), 0);
	assert_true(type == SEC_RAM && !loaded && p.len == 12 + 1 + 2 * 4096);

	/* [16 header][u64 gpa][u32 n][bitmap][pages][u32 crc] */
	memset(b.slots[0].host, 0x77, 4 * 4096);
	one_section(&buf, &s, &a, 0, 4);
	buf.data[16 + 12] |= 0x01; /* a page more than the data has */
	refused(&s, &b, "does not match its bitmap");
	one_section(&buf, &s, &a, 0, 4);
	buf.data[16 + 12] |= 0x80; /* a bit past the 4 pages */
	refused(&s, &b, NULL);
	one_section(&buf, &s, &a, 0, 4);
	buf.data[16 + 7] = 0x10; /* far outside guest RAM */
	refused(&s, &b, "outside guest RAM");
	one_section(&buf, &s, &a, 0, 4);
	buf.data[16 + 8] = 0; /* no pages */
	refused(&s, &b, NULL);
	for (size_t i = 0; i < 4 * 4096; i++)
		assert_int_equal(b.slots[0].host[i], 0x77); /* none of them wrote a page */
	one_section(&buf, &s, &a, 0, 4);
	buf.data[16 + 13 + 100] ^= 0x01; /* a flipped bit in a page */
	refused(&s, &b, "checksum mismatch");
	one_section(&buf, &s, &a, 0, 4);
	buf.len -= 5; /* truncated */
	assert_true(vmm_ram_read_section(&s, &b, &type, &inst, &p, &loaded, err, sizeof(err)) < 0);
	pair_close(&a, &b, &buf, &p);
}

static void zero_payload(uint8_t p[16], uint64_t gpa, uint64_t n)
{
	for (int i = 0; i < 8; i++) {
		p[i] = (uint8_t)(gpa >> (8 * i));
		p[8 + i] = (uint8_t)(n >> (8 * i));
	}
}

/* ZERO sections: the range reads zero afterwards; bad ranges are refused
 * and leave memory alone. */
static void test_zero_sections(void **state)
{
	struct vmm_mem m;
	uint8_t p[16];
	char err[200];

	(void)state;
	assert_int_equal(vmm_mem_init(&m, 16ull << 20, true), 0);
	memset(m.slots[0].host, 0x5a, 1u << 20);
	zero_payload(p, 4096, 8192);
	assert_int_equal(vmm_ram_zero_load(&m, p, 16, err, sizeof(err)), 0);
	assert_int_equal(m.slots[0].host[4095], 0x5a);
	for (int i = 4096; i < 12288; i++)
		assert_int_equal(m.slots[0].host[i], 0);
	assert_int_equal(m.slots[0].host[12288], 0x5a);
	zero_payload(p, 4097, 4096); /* not page-aligned */
	assert_int_equal(vmm_ram_zero_load(&m, p, 16, err, sizeof(err)), -EBADMSG);
	zero_payload(p, 16ull << 20, 4096); /* past the end of RAM */
	assert_int_equal(vmm_ram_zero_load(&m, p, 16, err, sizeof(err)), -EBADMSG);
	zero_payload(p, 0, 0); /* empty */
	assert_int_equal(vmm_ram_zero_load(&m, p, 16, err, sizeof(err)), -EBADMSG);
	assert_int_equal(vmm_ram_zero_load(&m, p, 15, err, sizeof(err)), -EBADMSG);
	zero_payload(p, 0, ~0ull & ~4095ull); /* overflowing length */
	assert_int_equal(vmm_ram_zero_load(&m, p, 16, err, sizeof(err)), -EBADMSG);
	assert_int_equal(m.slots[0].host[0], 0x5a);
	vmm_mem_free(&m);
}

/* The RAMC and RAMD tests' memories (pair_open's): a's first MiB with
 * data (a pattern from mult) in two pages of every three, the third zero;
 * b's first MiB stale (0xee), so the zero pages must clear it. */
static void direct_fixture(struct vmm_mem *a, struct vmm_mem *b, uint64_t mult)
{
	for (size_t i = 0; i < (1u << 20); i += 4096)
		if (i / 4096 % 3)
			for (size_t k = 0; k < 4096; k += 8)
				memcpy(a->slots[0].host + i + k, &(uint64_t){ i * mult + k + 1 },
				       8);
	memset(b->slots[0].host, 0xee, 1u << 20);
}

/* RAMC (live migration): pages straight from guest memory, a checksum
 * each. A page the guest changed between the checksum and the send
 * arrives damaged: suspect (tracked) until a newer copy of it comes, an
 * error at once where nothing tracks them; the rest of the section is
 * covered by its trailer as any section. */
static void test_page_checksums(void **state)
{
	struct vmm_mem a, b;
	struct membuf buf = { 0 };
	struct vmm_stream s;
	struct sbuf p;
	char err[256];
	uint32_t type, inst;
	uint64_t first;
	bool loaded;

	(void)state;
	pair_open(&a, &b, 16ull << 20, false, &s, &buf, &p);
	s.direct = true;
	s.page_crcs = true;
	direct_fixture(&a, &b, 7919);
	/* the page checksum is crc32c's, three chains or one */
	for (size_t i = 0; i < 8; i++)
		assert_int_equal(vmm_crc32c_page(a.slots[0].host + i * 4096),
		                 vmm_crc32c(0, a.slots[0].host + i * 4096, 4096));

	struct ram_stats st = { 0 };
	assert_int_equal(vmm_ram_save_range(&a, &s, 0, 256, 0, &st), 0);
	/* [16 header][u64 gpa][u32 n][32 bitmap][4 x 170 crcs][170 pages][u32 crc] */
	assert_int_equal(st.zero_pages, 86);
	assert_int_equal(buf.len, 16 + 12 + 32 + 170 * (4 + 4096) + 4);
	assert_int_equal(vmm_ram_read_section(&s, &b, &type, &inst, &p, &loaded, err, sizeof(err)),
	                 0);
	assert_true(type == SEC_RAMC && loaded);
	assert_memory_equal(a.slots[0].host, b.slots[0].host, 1u << 20);

	/* page 1 (the first with data) changed after its checksum */
	size_t page1 = 16 + 12 + 32 + 170 * 4;
	one_section(&buf, &s, &a, 0, 256);
	buf.data[page1 + 100] ^= 0x40;
	refused(&s, &b, "the page at 0x1000 arrived damaged");
	assert_int_equal(vmm_mem_suspect_start(&b), 0);
	buf.off = 0;
	assert_int_equal(vmm_ram_read_section(&s, &b, &type, &inst, &p, &loaded, err, sizeof(err)),
	                 0);
	assert_int_equal(vmm_mem_suspect_count(&b, &first), 1);
	assert_int_equal(first, 0x1000);
	assert_int_equal(atomic_load(&b.suspect_seen), 1);
	/* the newer copy, as RAMC or as RAM, makes it good */
	one_section(&buf, &s, &a, 0x1000, 2);
	assert_int_equal(vmm_ram_read_section(&s, &b, &type, &inst, &p, &loaded, err, sizeof(err)),
	                 0);
	assert_int_equal(vmm_mem_suspect_count(&b, &first), 0);
	assert_memory_equal(a.slots[0].host, b.slots[0].host, 1u << 20);
	one_section(&buf, &s, &a, 0, 4);
	buf.data[page1 + 5] ^= 0x01;
	assert_int_equal(vmm_ram_read_section(&s, &b, &type, &inst, &p, &loaded, err, sizeof(err)),
	                 0);
	assert_int_equal(vmm_mem_suspect_count(&b, &first), 1);
	s.direct = false;
	one_section(&buf, &s, &a, 0, 4);
	assert_int_equal(vmm_ram_read_section(&s, &b, &type, &inst, &p, &loaded, err, sizeof(err)),
	                 0);
	assert_true(type == SEC_RAM);
	assert_int_equal(vmm_mem_suspect_count(&b, &first), 0);
	/* and so does a ZERO section over it */
	s.direct = true;
	one_section(&buf, &s, &a, 0, 4);
	buf.data[page1] ^= 0x01;
	assert_int_equal(vmm_ram_read_section(&s, &b, &type, &inst, &p, &loaded, err, sizeof(err)),
	                 0);
	assert_int_equal(vmm_mem_suspect_count(&b, &first), 1);
	uint8_t zp[16];
	zero_payload(zp, 0, 2 * 4096);
	assert_int_equal(vmm_ram_zero_load(&b, zp, sizeof(zp), err, sizeof(err)), 0);
	assert_int_equal(vmm_mem_suspect_count(&b, &first), 0);

	/* what the trailer covers: the address, bitmap and checksums */
	/* (8 pages, 5 with data: a bitmap of one byte, 5 checksums) the gpa
	 * moved inside guest RAM, two pages swapped in the bitmap, a checksum */
	size_t at[] = { 16 + 2, 16 + 12, 16 + 13 + 2 };
	uint8_t flip[] = { 0x02, 0x03, 0x02 };
	for (size_t i = 0; i < 3; i++) {
		one_section(&buf, &s, &a, 0, 8);
		buf.data[at[i]] ^= flip[i];
		refused(&s, &b, "RAMC/0 is corrupt (checksum mismatch)");
	}
	/* a length that is not the bitmap's, or no guest memory to take it */
	one_section(&buf, &s, &a, 0, 8);
	buf.data[8] += 4;
	refused(&s, &b, "does not match its bitmap");
	one_section(&buf, &s, &a, 0, 8);
	refused(&s, NULL, "a RAMC section before the stream showed its VM");
	pair_close(&a, &b, &buf, &p);
}

/* RAMD (live migration without --verify-pages): pages straight from guest
 * memory, no checksum of their own (a page the guest wrote on the way is
 * in its dirty log: a newer copy follows); the address, bitmap and length
 * are checked and the trailer covers them; its copy of a page clears a
 * suspect mark as any newer copy does. */
static void test_direct_pages(void **state)
{
	struct vmm_mem a, b;
	struct membuf buf = { 0 };
	struct vmm_stream s;
	struct sbuf p;
	char err[256];
	uint32_t type, inst;
	uint64_t first;
	bool loaded;

	(void)state;
	pair_open(&a, &b, 16ull << 20, false, &s, &buf, &p);
	s.direct = true;
	direct_fixture(&a, &b, 104729);

	struct ram_stats st = { 0 };
	assert_int_equal(vmm_ram_save_range(&a, &s, 0, 256, 0, &st), 0);
	/* [16 header][u64 gpa][u32 n][32 bitmap][170 pages][u32 crc] */
	assert_int_equal(st.zero_pages, 86);
	assert_int_equal(st.bytes, buf.len);
	assert_int_equal(buf.len, 16 + 12 + 32 + 170 * 4096 + 4);
	assert_int_equal(vmm_ram_read_section(&s, &b, &type, &inst, &p, &loaded, err, sizeof(err)),
	                 0);
	assert_true(type == SEC_RAMD && loaded);
	assert_memory_equal(a.slots[0].host, b.slots[0].host, 1u << 20);

	/* a suspect page (a damaged RAMC copy) is made good by a RAMD copy */
	s.page_crcs = true;
	one_section(&buf, &s, &a, 0, 4);
	buf.data[16 + 12 + 1 + 3 * 4 + 7] ^= 0x10; /* page 1, after 3 checksums */
	assert_int_equal(vmm_mem_suspect_start(&b), 0);
	assert_int_equal(vmm_ram_read_section(&s, &b, &type, &inst, &p, &loaded, err, sizeof(err)),
	                 0);
	assert_int_equal(vmm_mem_suspect_count(&b, &first), 1);
	s.page_crcs = false;
	one_section(&buf, &s, &a, 0x1000, 1);
	assert_int_equal(vmm_ram_read_section(&s, &b, &type, &inst, &p, &loaded, err, sizeof(err)),
	                 0);
	assert_true(type == SEC_RAMD);
	assert_int_equal(vmm_mem_suspect_count(&b, &first), 0);
	assert_memory_equal(a.slots[0].host, b.slots[0].host, 1u << 20);

	/* the trailer covers the address and the bitmap: the gpa moved
	 * inside guest RAM, two pages swapped in the bitmap */
	size_t at[] = { 16 + 2, 16 + 12 };
	uint8_t flip[] = { 0x02, 0x03 };
	for (size_t i = 0; i < 2; i++) {
		one_section(&buf, &s, &a, 0, 8);
		buf.data[at[i]] ^= flip[i];
		refused(&s, &b, "RAMD/0 is corrupt (checksum mismatch)");
	}
	/* a length that is not the bitmap's (one with checksums' room is not
	 * RAMD's either), or no guest memory to take it */
	one_section(&buf, &s, &a, 0, 8);
	buf.data[8] += 4 * 5;
	refused(&s, &b, "RAMD section at 0x0: its length does not match its bitmap");
	one_section(&buf, &s, &a, 0, 8);
	refused(&s, NULL, "a RAMD section before the stream showed its VM");
	/* --compress wins: RAM or RAMZ */
	s.compress = true;
	one_section(&buf, &s, &a, 0, 8);
	assert_int_equal(vmm_ram_read_section(&s, &b, &type, &inst, &p, &loaded, err, sizeof(err)),
	                 0);
	assert_true(type == SEC_RAM || type == SEC_RAMZ);
	pair_close(&a, &b, &buf, &p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),     cmocka_unit_test(test_anon_untouched),
		cmocka_unit_test(test_zero_sections),  cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_compressed),     cmocka_unit_test(test_direct_read),
		cmocka_unit_test(test_page_checksums), cmocka_unit_test(test_direct_pages),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
