/* disk: seeded blocks through virtio-blk, flushed, read back and checked.
 *
 *   disk [blocks=256] [block=4096] [seed=1] [passes=1]
 *       every pass writes blocks 0..N-1 with content f(seed, block, pass),
 *       flushes, reads them all back and checks each: "disk pass <n> OK"
 *       per pass (passes=0: forever).
 *   disk verify-only=1 [pass=1] [blocks=] [block=] [seed=]
 *       only reads and checks what pass P of an earlier boot wrote (a disk
 *       after a migration, a snapshot restore, a copy).
 *
 * A block: a header (magic, seed, block index, pass), a seeded pattern,
 * and a checksum of all that in its last 8 bytes. A mismatch prints
 * "disk CORRUPT block <i> pass <p>: <why>" and powers off with status 1;
 * why tells a stale but intact block ("holds pass 1": a lost write), a
 * misplaced one, one never written, and damage ("bad checksum").
 * Status 2: no usable virtio-blk device or bad options; 3: I/O error or
 * timeout. */
#include "rt.h"
#include "virtio.h"
#include "workloads.h"

#define BLK_T_IN    0
#define BLK_T_OUT   1
#define BLK_T_FLUSH 4
#define BLK_S_OK    0

#define VIRTIO_BLK_F_RO    (1ull << 5)
#define VIRTIO_BLK_F_FLUSH (1ull << 9)

#define MAX_BLOCK  65536u
#define DISK_MAGIC 0x4b5349444b4d56ull /* "VMKDISK" */

struct blk_req {
	uint32_t type, reserved;
	uint64_t sector;
};

static uint64_t buf[MAX_BLOCK / 8] __attribute__((aligned(4096)));
static struct blk_req hdr __attribute__((aligned(16)));
static volatile uint8_t blk_status;

static inline uint64_t mix(uint64_t x)
{
	x ^= x >> 31;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 29;
	x *= 0x94d049bb133111ebull;
	return x ^ (x >> 32);
}

static uint64_t pattern(uint64_t seed, uint64_t block, uint64_t pass, uint64_t i)
{
	return mix(seed * 0x9e3779b97f4a7c15ull ^ block << 24 ^ pass << 48 ^ i);
}

static uint64_t checksum(const uint64_t *w, unsigned n)
{
	uint64_t h = 0x6a09e667f3bcc908ull;
	for (unsigned i = 0; i < n; i++)
		h = mix(h ^ w[i]) + i;
	return h;
}

static void fill(uint64_t *w, unsigned words, uint64_t seed, uint64_t block, uint64_t pass)
{
	w[0] = DISK_MAGIC;
	w[1] = seed;
	w[2] = block;
	w[3] = pass;
	for (unsigned i = 4; i < words - 1; i++)
		w[i] = pattern(seed, block, pass, i);
	w[words - 1] = checksum(w, words - 1);
}

/* NULL if the block is what (seed, block, pass) wrote, else why not (and
 * for a stale or misplaced block, the pass or block it holds in *held). */
static const char *check(const uint64_t *w, unsigned words, uint64_t seed, uint64_t block,
                         uint64_t pass, uint64_t *held)
{
	bool intact = w[words - 1] == checksum(w, words - 1);

	if (w[0] != DISK_MAGIC)
		return intact ? "no block header" : "never written or overwritten";
	if (!intact)
		return "bad checksum";
	if (w[1] != seed)
		return "another seed";
	if (w[2] != block) {
		*held = w[2];
		return "holds block";
	}
	if (w[3] != pass) {
		*held = w[3];
		return "holds pass";
	}
	for (unsigned i = 4; i < words - 1; i++)
		if (w[i] != pattern(seed, block, pass, i))
			return "wrong pattern"; /* intact checksum of the wrong data */
	return NULL;
}

/* One request: header, data (absent for a flush), status. */
static int io(struct virtio_dev *d, uint32_t type, uint64_t sector, uint32_t len)
{
	struct vq_buf b[3];
	unsigned n = 0;

	hdr.type = type;
	hdr.reserved = 0;
	hdr.sector = sector;
	blk_status = 0xff;
	b[n++] = (struct vq_buf){ &hdr, sizeof(hdr), false };
	if (len)
		b[n++] = (struct vq_buf){ buf, len, type == BLK_T_IN };
	b[n++] = (struct vq_buf){ (void *)&blk_status, 1, true };
	virtio_request(d, 0, b, n);
	return blk_status;
}

int wl_disk(void)
{
	uint64_t blocks = cmdline_u64("blocks", 256), block = cmdline_u64("block", 4096);
	uint64_t seed = cmdline_u64("seed", 1), passes = cmdline_u64("passes", 1);
	bool verify_only = cmdline_u64("verify-only", 0) != 0;
	struct virtio_dev d;

	if (block < 512 || block > MAX_BLOCK || block % 512) {
		printf_("disk: block=%lu: a multiple of 512 up to %u\n", block, MAX_BLOCK);
		return 2;
	}
	if (virtio_find(VIRTIO_ID_BLOCK, 1, VIRTIO_BLK_F_FLUSH, &d) != 1) {
		puts_("disk: no virtio-blk device\n");
		return 2;
	}
	uint64_t capacity = virtio_cfg64(&d, 0); /* 512-byte sectors */
	uint64_t spb = block / 512;
	unsigned words = (unsigned)(block / 8);
	if (!blocks || blocks > capacity / spb) {
		printf_("disk: blocks=%lu of %lu bytes do not fit in %lu sectors\n", blocks, block,
		        capacity);
		return 2;
	}
	if (!verify_only && (d.offered & VIRTIO_BLK_F_RO)) {
		puts_("disk: the device is read-only (verify-only=1 reads)\n");
		return 2;
	}
	bool flush = d.features & VIRTIO_BLK_F_FLUSH;
	uint64_t first = verify_only ? cmdline_u64("pass", 1) : 1;
	uint64_t last = verify_only ? first : passes;

	for (uint64_t pass = first; !last || pass <= last; pass++) {
		if (!verify_only) {
			for (uint64_t b = 0; b < blocks; b++) {
				fill(buf, words, seed, b, pass);
				int s = io(&d, BLK_T_OUT, b * spb, (uint32_t)block);
				if (s != BLK_S_OK) {
					printf_("disk: write of block %lu failed: status %d\n", b,
					        s);
					return 3;
				}
			}
			if (flush) {
				int s = io(&d, BLK_T_FLUSH, 0, 0);
				if (s != BLK_S_OK) {
					printf_("disk: flush failed: status %d\n", s);
					return 3;
				}
			}
		}
		for (uint64_t b = 0; b < blocks; b++) {
			memset(buf, 0, block); /* a read that returns nothing shows */
			int s = io(&d, BLK_T_IN, b * spb, (uint32_t)block);
			if (s != BLK_S_OK) {
				printf_("disk: read of block %lu failed: status %d\n", b, s);
				return 3;
			}
			uint64_t held = ~0ull;
			const char *why = check(buf, words, seed, b, pass, &held);
			if (why) {
				printf_("disk CORRUPT block %lu pass %lu: %s", b, pass, why);
				if (held != ~0ull)
					printf_(" %lu", held);
				putc_('\n');
				return 1;
			}
		}
		printf_("disk pass %lu OK\n", pass);
	}
	return 0;
}
