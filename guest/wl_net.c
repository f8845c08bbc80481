/* net: numbered Ethernet frames (ethertype 0x88b5, local experimental) over
 * virtio-net.
 *   net role=send count=N interval_us=U delay_ms=D [peer=MAC]
 *   net role=recv count=N timeout_ms=T      "net rx R gaps G reorder O"
 * recv powers off with status 0 only when all N arrived in order. */
#include "rt.h"
#include "virtio.h"
#include "workloads.h"

#define HDR       12 /* virtio_net_hdr_v1 */
#define ETHERTYPE 0x88b5
#define MAGIC     0x4e4b4d56u /* "VMKN" */
#define RXBUFS    8
#define FRAME     (HDR + 1514)

static uint8_t txbuf[FRAME] __attribute__((aligned(64)));
static uint8_t rxbuf[RXBUFS][FRAME] __attribute__((aligned(64)));

static void post_rx(struct virtio_dev *d, unsigned i)
{
	void *b[1] = { rxbuf[i] };
	uint32_t l[1] = { FRAME };
	uint16_t f[1] = { VQ_DESC_F_WRITE };

	virtio_submit(d, 0, b, l, f, 1, false);
}

static int do_send(struct virtio_dev *d, const uint8_t mac[6])
{
	uint64_t count = cmdline_u64("count", 100), interval = cmdline_u64("interval_us", 1000);
	uint8_t peer[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	char p[32];

	if (cmdline_get("peer", p, sizeof(p))) {
		const char *s = p;
		for (int i = 0; i < 6; i++) {
			peer[i] = (uint8_t)parse_u64(s, &s);
			if (*s == ':')
				s++;
		}
	}
	delay_us(cmdline_u64("delay_ms", 0) * 1000);
	memset(txbuf, 0, sizeof(txbuf));
	uint8_t *e = txbuf + HDR;
	memcpy(e, peer, 6);
	memcpy(e + 6, mac, 6);
	e[12] = ETHERTYPE >> 8;
	e[13] = ETHERTYPE & 0xff;
	for (uint64_t seq = 0; seq < count; seq++) {
		uint32_t magic = MAGIC;
		uint64_t t = rdtsc();
		memcpy(e + 14, &magic, 4);
		memcpy(e + 18, &seq, 8);
		memcpy(e + 26, &t, 8);
		void *b[1] = { txbuf };
		uint32_t l[1] = { HDR + 60 };
		uint16_t f[1] = { 0 };
		if (virtio_submit(d, 1, b, l, f, 1, true) < 0)
			return 3;
		delay_us(interval);
	}
	printf_("net tx %lu\n", count);
	return 0;
}

static int do_recv(struct virtio_dev *d)
{
	uint64_t count = cmdline_u64("count", 100), timeout = cmdline_u64("timeout_ms", 10000);
	uint64_t got = 0, gaps = 0, reorder = 0, expect = 0;
	uint64_t end = rdtsc() + timeout * tsc_khz;

	for (unsigned i = 0; i < RXBUFS; i++)
		post_rx(d, i);
	while (got < count && rdtsc() < end) {
		uint32_t len = 0;
		uint16_t id = 0;
		if (!virtio_poll_used_id(d, 0, &id, &len)) {
			cpu_relax();
			continue;
		}
		/* which buffer: from the completed descriptor's address */
		uint64_t a = d->q[0].desc[id % d->q[0].size].addr;
		unsigned i = (unsigned)((a - (uint64_t)(uintptr_t)rxbuf) / FRAME) % RXBUFS;
		const uint8_t *e = rxbuf[i] + HDR;
		uint32_t magic;
		uint64_t seq;
		memcpy(&magic, e + 14, 4);
		memcpy(&seq, e + 18, 8);
		if (len >= HDR + 26 && e[12] == (ETHERTYPE >> 8) && e[13] == (ETHERTYPE & 0xff) &&
		    magic == MAGIC) {
			got++;
			if (seq > expect)
				gaps += seq - expect;
			else if (seq < expect)
				reorder++;
			if (seq >= expect)
				expect = seq + 1;
		}
		post_rx(d, i);
	}
	printf_("net rx %lu gaps %lu reorder %lu\n", got, gaps, reorder);
	return got == count && gaps == 0 && reorder == 0 ? 0 : 1;
}

int wl_net(void)
{
	struct virtio_dev d;
	char role[16] = "recv";
	uint8_t mac[6];

	if (!virtio_find(VIRTIO_ID_NET, 2, 1u << 5, &d)) {
		puts_("net: no virtio-net device\n");
		return 2;
	}
	for (int i = 0; i < 6; i++)
		mac[i] = virtio_cfg8(&d, (unsigned)i);
	cmdline_get("role", role, sizeof(role));
	if (strncmp(role, "send", 5) == 0)
		return do_send(&d, mac);
	if (strncmp(role, "recv", 5) == 0)
		return do_recv(&d);
	printf_("net: role=%s is not send or recv\n", role);
	return 2;
}
