/* disk: seeded blocks through virtio-blk, flushed, read back and checked.
 *   disk blocks=256 seed=1 passes=1      write, flush, verify each pass
 *   disk verify-only=1 pass=P            only read and check blocks written
 *                                         by pass P (after a migration/restore) */
#include "rt.h"
#include "virtio.h"
#include "workloads.h"

#define BLK_T_IN    0
#define BLK_T_OUT   1
#define BLK_T_FLUSH 4
#define BLOCK       4096u

struct blk_req {
	uint32_t type, reserved;
	uint64_t sector;
};

static uint8_t buf[BLOCK] __attribute__((aligned(4096)));
static struct blk_req hdr __attribute__((aligned(16)));
static volatile uint8_t status;

static uint64_t word(uint64_t seed, uint64_t block, uint64_t pass, uint64_t i)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull ^ block << 20 ^ pass << 40 ^ i;
	x ^= x >> 29;
	x *= 0xbf58476d1ce4e5b9ull;
	return x ^ (x >> 32);
}

static int io(struct virtio_dev *d, uint32_t type, uint64_t block, bool with_data)
{
	void *bufs[3] = { &hdr, buf, (void *)&status };
	uint32_t lens[3] = { sizeof(hdr), BLOCK, 1 };
	uint16_t flags[3] = { 0, type == BLK_T_IN ? VQ_DESC_F_WRITE : 0, VQ_DESC_F_WRITE };

	hdr.type = type;
	hdr.reserved = 0;
	hdr.sector = block * (BLOCK / 512);
	status = 0xff;
	if (!with_data) {
		bufs[1] = (void *)&status;
		lens[1] = 1;
		flags[1] = VQ_DESC_F_WRITE;
	}
	if (virtio_submit(d, 0, bufs, lens, flags, with_data ? 3 : 2, true) < 0)
		return -1;
	return status;
}

int wl_disk(void)
{
	uint64_t blocks = cmdline_u64("blocks", 256), seed = cmdline_u64("seed", 1);
	uint64_t passes = cmdline_u64("passes", 1);
	bool verify_only = cmdline_u64("verify-only", 0) != 0;
	struct virtio_dev d;

	if (!virtio_find(VIRTIO_ID_BLOCK, 1, 0, &d)) {
		puts_("disk: no virtio-blk device\n");
		return 2;
	}
	uint64_t capacity = virtio_cfg32(&d, 0) | (uint64_t)virtio_cfg32(&d, 4) << 32;
	if (blocks * (BLOCK / 512) > capacity) {
		printf_("disk: %lu blocks do not fit in %lu sectors\n", blocks, capacity);
		return 2;
	}
	uint64_t first = verify_only ? cmdline_u64("pass", 1) : 1;
	uint64_t last = verify_only ? first : passes;
	for (uint64_t pass = first; !last || pass <= last; pass++) {
		if (!verify_only) {
			for (uint64_t b = 0; b < blocks; b++) {
				uint64_t *w = (uint64_t *)buf;
				for (unsigned i = 0; i < BLOCK / 8; i++)
					w[i] = word(seed, b, pass, i);
				if (io(&d, BLK_T_OUT, b, true) != 0) {
					printf_("disk: write of block %lu failed\n", b);
					return 3;
				}
			}
			if (io(&d, BLK_T_FLUSH, 0, false) != 0) {
				puts_("disk: flush failed\n");
				return 3;
			}
		}
		for (uint64_t b = 0; b < blocks; b++) {
			if (io(&d, BLK_T_IN, b, true) != 0) {
				printf_("disk: read of block %lu failed\n", b);
				return 3;
			}
			const uint64_t *w = (const uint64_t *)buf;
			for (unsigned i = 0; i < BLOCK / 8; i++) {
				if (w[i] != word(seed, b, pass, i)) {
					printf_("disk CORRUPT block %lu pass %lu\n", b, pass);
					return 1;
				}
			}
		}
		printf_("disk pass %lu OK\n", pass);
	}
	return 0;
}
