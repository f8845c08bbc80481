/* net: numbered raw Ethernet frames (ethertype 0x88b5, IEEE local
 * experimental; no IP, no UDP) over virtio-net, polled.
 *
 *   net role=send [count=N] [interval_us=1000] [size=64] [peer=MAC]
 *                 [wait_ms=W] [delay_ms=D]
 *       sends DATA frames numbered 0..N-1 (count=0: forever) with a TSC
 *       stamp, to broadcast or peer=MAC, one every interval_us (after a
 *       stall it goes on with the next number, no burst), then 3 END frames
 *       carrying N. wait_ms=W first waits up to W ms for a receiver's READY
 *       (and, without peer=, sends to that receiver). Frames an echo sends
 *       back are counted, with their round trip time.
 *       Prints "net tx <sent>[ echoed <e> rtt_us avg <a> max <m>]" each
 *       second and once more with " final".
 *   net role=recv [count=N] [timeout_ms=T]
 *       counts DATA frames: "net rx <received> gaps <g> reorder <r>" each
 *       second and a final line (with " final") after N frames, an END or
 *       T ms. gaps: frames missing (so far); reorder: frames that came after
 *       a later one. Announces itself (READY, broadcast) every 100 ms until
 *       the first frame. Status 0 only if something came and nothing was
 *       missing, late or (count=N) short.
 *   net role=echo [count=N] [timeout_ms=T]
 *       sends every DATA frame back to its source (as ECHO: echoes never
 *       echo each other); "net echo <n>" when it changed in a second.
 *
 * size= is the Ethernet frame length without FCS (60..1514). Status 2: no
 * usable virtio-net device or bad options; 3: the device stopped answering. */
#include "rt.h"
#include "virtio.h"
#include "workloads.h"

#define VIRTIO_NET_F_MAC (1ull << 5)

#define NET_HDR   12 /* struct virtio_net_hdr (VERSION_1: with num_buffers) */
#define ETH_HLEN  14
#define ETHERTYPE 0x88b5
#define MAGIC     0x4e4b4d56u /* "VMKN" */
#define FRAME_MIN 60
#define FRAME_MAX 1514
#define BUF_LEN   1536 /* >= NET_HDR + FRAME_MAX: no mergeable buffers */
#define RXBUFS    16

enum { K_DATA = 1, K_ECHO = 2, K_END = 3, K_READY = 4 };

/* After the Ethernet header (byte offsets: frames are byte arrays). */
#define P_MAGIC 0
#define P_KIND  4
#define P_SEQ   8
#define P_TSC   16
#define P_TOTAL 24
#define P_LEN   32

static uint8_t rxbuf[RXBUFS][BUF_LEN] __attribute__((aligned(64)));
static uint8_t txbuf[BUF_LEN] __attribute__((aligned(64)));
static struct virtio_dev nic;
static unsigned nrx;
static uint8_t mac[6];
static const uint8_t broadcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

struct frame {
	const uint8_t *eth; /* Ethernet header */
	uint32_t len;       /* Ethernet frame length */
	unsigned kind;
	uint64_t seq, tsc, total;
};

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static uint64_t ticks_us(uint64_t ticks)
{
	return ticks * 1000 / tsc_khz;
}

static void post_rx(unsigned i)
{
	struct vq_buf b = { rxbuf[i], BUF_LEN, true };

	virtq_add(&nic, 0, &b, 1, rxbuf[i]);
	virtq_kick(&nic, 0);
}

static void post_all_rx(void)
{
	nrx = nic.q[0].size < RXBUFS ? nic.q[0].size : RXBUFS;
	for (unsigned i = 0; i < nrx; i++) {
		struct vq_buf b = { rxbuf[i], BUF_LEN, true };
		virtq_add(&nic, 0, &b, 1, rxbuf[i]);
	}
	virtq_kick(&nic, 0);
}

/* A received frame of ours: true with *f filled, the buffer in *slot (give
 * it back with post_rx). Frames of other protocols go straight back. */
static bool rx(struct frame *f, unsigned *slot)
{
	void *c;
	uint32_t len;

	while (virtq_get(&nic, 0, &c, &len)) {
		uintptr_t off = (uintptr_t)c - (uintptr_t)rxbuf[0];
		unsigned i = (unsigned)(off / BUF_LEN);
		if (!c || i >= nrx)
			continue; /* not one of ours: cannot happen */
		const uint8_t *e = rxbuf[i] + NET_HDR;
		uint32_t magic;
		memcpy(&magic, e + ETH_HLEN + P_MAGIC, 4);
		if (len < NET_HDR + ETH_HLEN + P_LEN || len > BUF_LEN ||
		    e[12] != (ETHERTYPE >> 8) || e[13] != (ETHERTYPE & 0xff) || magic != MAGIC) {
			post_rx(i);
			continue;
		}
		const uint8_t *p = e + ETH_HLEN;
		f->eth = e;
		f->len = len - NET_HDR;
		f->kind = p[P_KIND];
		f->seq = get64(p + P_SEQ);
		f->tsc = get64(p + P_TSC);
		f->total = get64(p + P_TOTAL);
		*slot = i;
		return true;
	}
	return false;
}

/* Sends the frame in txbuf (Ethernet header at txbuf + NET_HDR). */
static void tx_raw(uint32_t len)
{
	struct vq_buf b = { txbuf, NET_HDR + len, false };

	memset(txbuf, 0, NET_HDR);
	virtio_request(&nic, 1, &b, 1);
}

static void tx(const uint8_t dst[6], unsigned kind, uint64_t seq, uint64_t total, uint32_t len)
{
	uint8_t *e = txbuf + NET_HDR, *p = e + ETH_HLEN;

	memcpy(e, dst, 6);
	memcpy(e + 6, mac, 6);
	e[12] = ETHERTYPE >> 8;
	e[13] = ETHERTYPE & 0xff;
	memset(p, 0, len - ETH_HLEN);
	uint32_t magic = MAGIC;
	memcpy(p + P_MAGIC, &magic, 4);
	p[P_KIND] = (uint8_t)kind;
	put64(p + P_SEQ, seq);
	put64(p + P_TOTAL, total);
	for (uint32_t i = P_LEN; i < len - ETH_HLEN; i++)
		p[i] = (uint8_t)(seq + i);
	put64(p + P_TSC, rdtsc()); /* last: as close to the send as it gets */
	tx_raw(len);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* "aa:bb:cc:dd:ee:ff" (or with '-') */
static bool parse_mac(const char *s, uint8_t out[6])
{
	for (int i = 0; i < 6; i++) {
		int h = hexval(s[0]), l = hexval(s[1]);
		if (h < 0 || l < 0)
			return false;
		out[i] = (uint8_t)(h << 4 | l);
		s += 2;
		if (i < 5 && *s != ':' && *s != '-')
			return false;
		if (i < 5)
			s++;
	}
	return *s == 0;
}

/* ---- send ---- */

struct echo_stats {
	uint64_t n, rtt_sum, rtt_max;
};

static void take_echoes(struct echo_stats *es)
{
	struct frame f;
	unsigned slot;

	while (rx(&f, &slot)) {
		if (f.kind == K_ECHO) {
			uint64_t rtt = rdtsc() - f.tsc;
			es->n++;
			es->rtt_sum += rtt;
			if (rtt > es->rtt_max)
				es->rtt_max = rtt;
		}
		post_rx(slot);
	}
}

static void tx_line(uint64_t sent, const struct echo_stats *es, bool final)
{
	printf_("net tx %lu", sent);
	if (es->n)
		printf_(" echoed %lu rtt_us avg %lu max %lu", es->n, ticks_us(es->rtt_sum / es->n),
		        ticks_us(es->rtt_max));
	puts_(final ? " final\n" : "\n");
}

static int do_send(void)
{
	uint64_t count = cmdline_u64("count", 0), interval = cmdline_u64("interval_us", 1000);
	uint64_t size = cmdline_u64("size", 64), wait_ms = cmdline_u64("wait_ms", 0);
	uint8_t peer[6];
	bool have_peer = false;
	struct echo_stats es = { 0, 0, 0 };
	char p[32];

	memcpy(peer, broadcast, 6);
	if (cmdline_get("peer", p, sizeof(p))) {
		if (!parse_mac(p, peer)) {
			printf_("net: peer=%s is not a MAC address\n", p);
			return 2;
		}
		have_peer = true;
	}
	if (size < FRAME_MIN || size > FRAME_MAX) {
		printf_("net: size=%lu outside %u..%u\n", size, FRAME_MIN, FRAME_MAX);
		return 2;
	}
	post_all_rx();
	if (wait_ms) { /* a receiver or echo announces itself */
		uint64_t end = rdtsc() + wait_ms * tsc_khz;
		struct frame f;
		unsigned slot;
		bool found = false;
		while (!found && rdtsc() < end) {
			if (!rx(&f, &slot)) {
				cpu_relax();
				continue;
			}
			if (f.kind == K_READY) {
				found = true;
				if (!have_peer)
					memcpy(peer, f.eth + 6, 6);
			}
			post_rx(slot);
		}
		if (!found) {
			printf_("net: no receiver announced itself in %lu ms\n", wait_ms);
			return 1;
		}
	}
	delay_us(cmdline_u64("delay_ms", 0) * 1000);

	uint64_t step = interval * tsc_khz / 1000, second = 1000 * tsc_khz;
	uint64_t next = rdtsc(), report = next + second, seq;
	for (seq = 0; !count || seq < count; seq++) {
		uint64_t now;
		while ((now = rdtsc()) < next) {
			take_echoes(&es);
			cpu_relax();
		}
		tx(peer, K_DATA, seq, 0, (uint32_t)size);
		take_echoes(&es);
		next += step;
		if (now > next + step) /* stalled: carry on, no burst */
			next = now + step;
		if (now >= report) {
			tx_line(seq + 1, &es, false);
			report = now + second;
		}
	}
	for (int i = 0; i < 3; i++) {
		tx(peer, K_END, seq, seq, FRAME_MIN);
		delay_us(interval < 1000 ? 1000 : interval);
	}
	if (es.n) { /* an echo answers: give the last ones a second */
		uint64_t end = rdtsc() + second;
		while (es.n < seq && rdtsc() < end) {
			take_echoes(&es);
			cpu_relax();
		}
	}
	tx_line(seq, &es, true);
	return 0;
}

/* ---- recv ---- */

#define WINDOW 1024 /* recent sequence numbers remembered (reorder, dups) */

static int do_recv(void)
{
	uint64_t count = cmdline_u64("count", 0), timeout = cmdline_u64("timeout_ms", 0);
	uint64_t got = 0, gaps = 0, reorder = 0, dups = 0, expect = 0;
	uint64_t seen[WINDOW / 64];
	bool started = false, ended = false;
	uint64_t second = 1000 * tsc_khz, start = rdtsc();
	uint64_t report = start + second, announce = start;
	uint64_t end = timeout ? start + timeout * tsc_khz : ~0ull;

	memset(seen, 0, sizeof(seen));
	post_all_rx();
	while (!ended && (!count || got < count)) {
		uint64_t now = rdtsc();
		if (now >= end)
			break;
		if (!started && now >= announce) {
			tx(broadcast, K_READY, 0, 0, FRAME_MIN);
			announce = now + second / 10;
		}
		if (now >= report) {
			printf_("net rx %lu gaps %lu reorder %lu\n", got, gaps, reorder);
			report = now + second;
		}
		struct frame f;
		unsigned slot;
		if (!rx(&f, &slot)) {
			cpu_relax();
			continue;
		}
		uint64_t s = f.seq;
		if (f.kind == K_END) {
			if (f.total > expect) /* the last ones never came */
				gaps += f.total - expect;
			ended = true;
		} else if (f.kind == K_DATA) {
			started = true;
			got++;
			if (s >= expect) {
				for (uint64_t k = expect; k < s && k < expect + WINDOW; k++)
					seen[(k / 64) % (WINDOW / 64)] &= ~(1ull << (k % 64));
				seen[(s / 64) % (WINDOW / 64)] |= 1ull << (s % 64);
				gaps += s - expect;
				expect = s + 1;
			} else if (expect - s > WINDOW) {
				reorder++; /* too old to tell */
			} else if (seen[(s / 64) % (WINDOW / 64)] & (1ull << (s % 64))) {
				dups++;
				got--;
			} else {
				seen[(s / 64) % (WINDOW / 64)] |= 1ull << (s % 64);
				reorder++;
				if (gaps) /* a hole filled late */
					gaps--;
			}
		}
		post_rx(slot);
	}
	printf_("net rx %lu gaps %lu reorder %lu", got, gaps, reorder);
	if (dups)
		printf_(" dup %lu", dups);
	puts_(" final\n");
	bool ok = got && !gaps && !reorder && !dups && (!count || got >= count);
	return ok ? 0 : 1;
}

/* ---- echo ---- */

static int do_echo(void)
{
	uint64_t count = cmdline_u64("count", 0), timeout = cmdline_u64("timeout_ms", 0);
	uint64_t echoed = 0, reported = 0, second = 1000 * tsc_khz, start = rdtsc();
	uint64_t report = start + second, announce = start;
	uint64_t end = timeout ? start + timeout * tsc_khz : ~0ull;
	bool started = false;

	post_all_rx();
	while (!count || echoed < count) {
		uint64_t now = rdtsc();
		if (now >= end)
			break;
		if (!started && now >= announce) {
			tx(broadcast, K_READY, 0, 0, FRAME_MIN);
			announce = now + second / 10;
		}
		if (now >= report) {
			if (echoed != reported)
				printf_("net echo %lu\n", echoed);
			reported = echoed;
			report = now + second;
		}
		struct frame f;
		unsigned slot;
		if (!rx(&f, &slot)) {
			cpu_relax();
			continue;
		}
		if (f.kind == K_DATA && f.len <= FRAME_MAX) {
			started = true;
			uint8_t *e = txbuf + NET_HDR;
			memcpy(e, f.eth, f.len);
			memcpy(e, f.eth + 6, 6); /* back to the source */
			memcpy(e + 6, mac, 6);
			e[ETH_HLEN + P_KIND] = K_ECHO;
			tx_raw(f.len);
			echoed++;
		}
		post_rx(slot);
	}
	printf_("net echo %lu final\n", echoed);
	return 0;
}

int wl_net(void)
{
	char role[16] = "recv";

	int found = virtio_find(VIRTIO_ID_NET, 2, VIRTIO_NET_F_MAC, &nic);
	if (found != 1) {
		puts_("net: no virtio-net device\n");
		return 2;
	}
	if (nic.features & VIRTIO_NET_F_MAC) {
		for (unsigned i = 0; i < 6; i++)
			mac[i] = virtio_cfg8(&nic, i);
	} else { /* locally administered, unicast, from the TSC */
		uint64_t t = rdtsc();
		mac[0] = 0x02;
		for (unsigned i = 1; i < 6; i++)
			mac[i] = (uint8_t)(t >> (8 * i));
	}
	cmdline_get("role", role, sizeof(role));
	if (strncmp(role, "send", sizeof(role)) == 0)
		return do_send();
	if (strncmp(role, "recv", sizeof(role)) == 0)
		return do_recv();
	if (strncmp(role, "echo", sizeof(role)) == 0)
		return do_echo();
	printf_("net: role=%s: send, recv or echo\n", role);
	return 2;
}
