/* virtio-net over a SOCK_DGRAM socketpair standing in for a tap with a
 * 12-byte vnet header, driven through the virtio-mmio registers by the
 * small driver of tests/virtio_driver.h: transmit, receive, receive
 * without buffers (nothing lost), frames that do not fit, malformed rings,
 * reset, save/restore. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"
#include "tests/virtio_driver.h"
#include "vmm/virtio_net.h"

#define RAM  (16ull << 20)
#define BUF  0x100000ull /* transmit frames */
#define RBUF 0x200000ull /* receive buffers, 0x1000 apart */
#define HL   VIRTIO_NET_HDR_LEN
#define QSZ  16
#define RXQ  VIRTIO_NET_Q_RX
#define TXQ  VIRTIO_NET_Q_TX

#define FEAT_LO (uint32_t)(VIRTIO_NET_F_MAC | VIRTIO_NET_F_STATUS | VIRTIO_RING_F_INDIRECT_DESC)

static const uint8_t MAC[6] = { 0x00, 0x50, 0x56, 0x01, 0x02, 0x03 };

struct nt {
	struct tdrv t; /* first */
	int peer;      /* the "host" end of the socketpair */
	int level;
};

static void irq_set(void *arg, uint32_t gsi, int level)
{
	struct nt *n = arg;

	assert_int_equal(gsi, 5);
	n->level = level;
}

static int setup(void **state)
{
	struct nt *n = calloc(1, sizeof(*n));
	int sv[2];

	if (!n || socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) < 0 ||
	    vmm_mem_init(&n->t.mem, RAM, false) < 0)
		return -1;
	n->t.bus = (struct vmm_bus){ .mem = &n->t.mem, .irq_set = irq_set, .irq_arg = n };
	if (vmm_virtio_net_create(&n->t.d, &n->t.bus, 0xd0000000, 5, sv[0], MAC) < 0)
		return -1;
	n->peer = sv[1];
	*state = n;
	return 0;
}

static int teardown(void **state)
{
	struct nt *n = *state;

	n->t.d->ops->destroy(n->t.d);
	close(n->peer);
	vmm_mem_free(&n->t.mem);
	free(n);
	return 0;
}

/* resets and brings the NIC up with fresh (zeroed) rings */
static bool up(struct nt *n, uint32_t lo)
{
	memset(tdrv_gpa(&n->t, TQ_DESC(0)), 0, 0x8000);
	return tdrv_up(&n->t, lo, 1, 2, QSZ);
}

static void notify(struct nt *n, unsigned q)
{
	tdrv_wr(&n->t, VIRTIO_MMIO_QUEUE_NOTIFY, q);
}

/* a receive buffer of len bytes at gpa (one descriptor) */
static void post_rx(struct nt *n, uint64_t gpa, uint32_t len)
{
	uint16_t f = VIRTQ_DESC_F_WRITE;
	tdrv_post(&n->t, RXQ, &gpa, &len, &f, 1);
}

/* a frame of len payload bytes at BUF + off, header in front, in one or
 * two (header, payload) descriptors */
static void post_tx(struct nt *n, uint64_t off, uint32_t len, bool split)
{
	uint64_t a[2] = { BUF + off, BUF + off + HL };
	uint32_t l[2] = { split ? HL : HL + len, len };
	uint16_t f[2] = { 0, 0 };
	tdrv_post(&n->t, TXQ, a, l, f, split ? 2 : 1);
}

/* the host sends a frame: a header with junk in it, then payload */
static void host_send(struct nt *n, const char *payload, size_t len)
{
	uint8_t frame[2048];
	memset(frame, 0, HL);
	frame[0] = 2;  /* DATA_VALID */
	frame[1] = 1;  /* GSO_TCPV4 */
	frame[10] = 7; /* num_buffers */
	memcpy(frame + HL, payload, len);
	assert_int_equal(send(n->peer, frame, HL + len, 0), (ssize_t)(HL + len));
}

static ssize_t host_recv(struct nt *n, uint8_t *buf, size_t len)
{
	return recv(n->peer, buf, len, MSG_DONTWAIT);
}

static struct vmm_virtio_net_stats stats(struct nt *n)
{
	struct vmm_virtio_net_stats st;
	vmm_virtio_net_get_stats(n->t.d, &st);
	return st;
}

static void test_config(void **state)
{
	struct nt *n = *state;
	struct tdrv *t = &n->t;
	uint8_t cfg[10];
	uint16_t status;

	assert_string_equal(t->d->ops->name, "virtio-net");
	assert_int_equal(tdrv_rd(t, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_NET);
	tdrv_wr(t, VIRTIO_MMIO_DEVICE_FEAT_SEL, 0);
	assert_int_equal(tdrv_rd(t, VIRTIO_MMIO_DEVICE_FEATURES), FEAT_LO);
	tdrv_wr(t, VIRTIO_MMIO_DEVICE_FEAT_SEL, 1);
	assert_int_equal(tdrv_rd(t, VIRTIO_MMIO_DEVICE_FEATURES), 1);
	assert_false(tdrv_up(t, FEAT_LO, 0, 2, QSZ)); /* VERSION_1 is required */
	assert_false(up(n, FEAT_LO | 1));             /* CSUM: not offered */
	assert_true(up(n, (uint32_t)VIRTIO_NET_F_MAC));
	for (int i = 0; i < 10; i++)
		t->d->ops->mmio(t->d, VIRTIO_MMIO_CONFIG + (uint64_t)i, false, &cfg[i], 1);
	assert_memory_equal(cfg, MAC, 6);
	t->d->ops->mmio(t->d, VIRTIO_MMIO_CONFIG + 6, false, (uint8_t *)&status, 2);
	assert_int_equal(status, VIRTIO_NET_S_LINK_UP);
	assert_int_equal(cfg[8] | cfg[9], 0);
	for (uint32_t q = 0; q < 3; q++) {
		tdrv_wr(t, VIRTIO_MMIO_QUEUE_SEL, q);
		assert_int_equal(tdrv_rd(t, VIRTIO_MMIO_QUEUE_NUM_MAX), q < 2 ? 256 : 0);
		assert_int_equal(tdrv_rd(t, VIRTIO_MMIO_QUEUE_READY), q < 2);
	}
}

static void test_tx(void **state)
{
	struct nt *n = *state;
	struct tdrv *t = &n->t;
	uint8_t got[256], *b = tdrv_gpa(t, BUF);

	assert_true(up(n, FEAT_LO));
	/* the guest's header has junk in it: no offloads, so it goes out zeroed */
	memset(b, 0xff, HL);
	memcpy(b + HL, "frame-one-payload", 17);
	memset(b + 0x100, 0x11, HL);
	memcpy(b + 0x100 + HL, "frame-two-is-here", 17);
	post_tx(n, 0, 17, true);
	post_tx(n, 0x100, 17, false);
	assert_int_equal(n->level, 0);
	notify(n, TXQ);
	assert_int_equal(tdrv_used_idx(t, TXQ), 2);
	assert_int_equal(tdrv_used_len(t, TXQ, 0), 0);
	assert_int_equal(n->level, 1);
	tdrv_wr(t, VIRTIO_MMIO_INTERRUPT_ACK, tdrv_rd(t, VIRTIO_MMIO_INTERRUPT_STATUS));
	assert_int_equal(n->level, 0);
	static const uint8_t zero[HL];
	assert_int_equal(host_recv(n, got, sizeof(got)), HL + 17);
	assert_memory_equal(got, zero, HL);
	assert_memory_equal(got + HL, "frame-one-payload", 17);
	assert_int_equal(host_recv(n, got, sizeof(got)), HL + 17);
	assert_memory_equal(got, zero, HL);
	assert_memory_equal(got + HL, "frame-two-is-here", 17);
	assert_int_equal(host_recv(n, got, sizeof(got)), -1);

	/* through an indirect table: header, two pieces of payload */
	uint64_t table = BUF + 0x1000;
	unsigned ti = (unsigned)(table - TQ_DESC(TXQ)) / 16;
	tdrv_desc(t, TXQ, ti, BUF, HL, 1, 1);
	tdrv_desc(t, TXQ, ti + 1, BUF + HL, 5, 1, 2);
	tdrv_desc(t, TXQ, ti + 2, BUF + HL + 6, 10, 0, 0);
	uint64_t a = table;
	uint32_t l = 3 * 16;
	uint16_t f = VIRTQ_DESC_F_INDIRECT;
	tdrv_post(t, TXQ, &a, &l, &f, 1);
	notify(n, TXQ);
	assert_int_equal(host_recv(n, got, sizeof(got)), HL + 15);
	assert_memory_equal(got + HL, "frameone-payloa", 15);

	struct vmm_virtio_net_stats st = stats(n);
	assert_true(st.tx_packets == 3 && st.tx_bytes == 17 + 17 + 15);
	assert_true(st.tx_dropped == 0 && st.tx_errors == 0);
}

/* Output commit: held frames go out only when released, in order, up to
 * the mark; dropped ones never; the guest's ring moves on meanwhile. */
static void test_tx_hold(void **state)
{
	struct nt *n = *state;
	struct tdrv *t = &n->t;
	uint8_t got[256], *b = tdrv_gpa(t, BUF);

	assert_true(up(n, FEAT_LO));
	for (int i = 0; i < 4; i++) {
		memset(b + 0x100 * i, 0, HL);
		snprintf((char *)b + 0x100 * i + HL, 32, "held-frame-%d-payload", i);
	}
	vmm_virtio_net_hold(t->d, true);
	uint64_t m0 = vmm_virtio_net_held_mark(t->d);
	post_tx(n, 0, 20, false);
	post_tx(n, 0x100, 20, true);
	notify(n, TXQ);
	assert_int_equal(tdrv_used_idx(t, TXQ), 2); /* the guest's buffers are back */
	uint64_t m2 = vmm_virtio_net_held_mark(t->d);
	assert_true(m2 > m0);
	post_tx(n, 0x200, 20, false);
	notify(n, TXQ);
	uint64_t m3 = vmm_virtio_net_held_mark(t->d);
	assert_int_equal(host_recv(n, got, sizeof(got)), -1); /* nothing out yet */
	vmm_virtio_net_release(t->d, m0);
	assert_int_equal(host_recv(n, got, sizeof(got)), -1);
	vmm_virtio_net_release(t->d, m2);
	assert_int_equal(host_recv(n, got, sizeof(got)), HL + 20);
	assert_memory_equal(got + HL, "held-frame-0-payloa", 19);
	assert_int_equal(host_recv(n, got, sizeof(got)), HL + 20);
	assert_memory_equal(got + HL, "held-frame-1-payloa", 19);
	assert_int_equal(host_recv(n, got, sizeof(got)), -1);
	/* the third is dropped: this copy stopped before it was acknowledged */
	vmm_virtio_net_drop(t->d);
	vmm_virtio_net_release(t->d, m3);
	assert_int_equal(host_recv(n, got, sizeof(got)), -1);
	/* held again, then the hold ends: what waits goes out, the rest at once */
	post_tx(n, 0x300, 20, false);
	notify(n, TXQ);
	assert_int_equal(host_recv(n, got, sizeof(got)), -1);
	vmm_virtio_net_hold(t->d, false);
	assert_int_equal(host_recv(n, got, sizeof(got)), HL + 20);
	assert_memory_equal(got + HL, "held-frame-3-payloa", 19);
	post_tx(n, 0, 20, false);
	notify(n, TXQ);
	assert_int_equal(host_recv(n, got, sizeof(got)), HL + 20);
	assert_memory_equal(got + HL, "held-frame-0-payloa", 19);
	struct vmm_virtio_net_stats st = stats(n);
	assert_true(st.tx_packets == 4 && st.tx_dropped == 0);
}

static void test_tx_dropped(void **state)
{
	struct nt *n = *state;
	struct tdrv *t = &n->t;
	uint8_t got[64];

	assert_true(up(n, FEAT_LO));
	/* a writable buffer in a frame */
	uint64_t a[2] = { BUF, BUF + 0x100 };
	uint32_t l[2] = { HL + 20, 10 };
	uint16_t f[2] = { 0, VIRTQ_DESC_F_WRITE };
	tdrv_post(t, TXQ, a, l, f, 2);
	/* shorter than an Ethernet header, longer than 64 KiB; then one that
	 * is just long enough */
	post_tx(n, 0, 13, false);
	post_tx(n, 0, (64u << 10) + 1, false);
	post_tx(n, 0, 14, true);
	notify(n, TXQ);
	assert_int_equal(tdrv_used_idx(t, TXQ), 4);
	struct vmm_virtio_net_stats st = stats(n);
	assert_true(st.tx_dropped == 3 && st.tx_packets == 1);
	assert_int_equal(host_recv(n, got, sizeof(got)), HL + 14);
	assert_int_equal(host_recv(n, got, sizeof(got)), -1);

	/* the host end stops reading: frames are dropped, nothing blocks */
	for (int i = 0; i < 4096 && stats(n).tx_dropped == 3; i++) {
		post_tx(n, 0, 60, false);
		notify(n, TXQ);
	}
	st = stats(n);
	assert_int_equal(st.tx_dropped, 4);
	assert_int_equal(st.tx_errors, 0);
	assert_false(tdrv_rd(t, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET);
}

static void test_rx(void **state)
{
	struct nt *n = *state;
	struct tdrv *t = &n->t;
	uint8_t *h = tdrv_gpa(t, RBUF), *p = tdrv_gpa(t, RBUF + 0x1000);

	assert_true(up(n, FEAT_LO));
	host_send(n, "a-frame-of-sixty-bytes-from-the-wire-that-is-long-enough....", 60);
	vmm_virtio_net_rx(t->d);
	assert_int_equal(tdrv_used_idx(t, RXQ), 0); /* no buffer yet */
	assert_int_equal(n->level, 0);
	/* a buffer in two pieces: the header, then room for a frame */
	uint64_t a[2] = { RBUF, RBUF + 0x1000 };
	uint32_t l[2] = { HL, 1514 };
	uint16_t f[2] = { VIRTQ_DESC_F_WRITE, VIRTQ_DESC_F_WRITE };
	memset(h, 0xee, HL);
	tdrv_post(t, RXQ, a, l, f, 2);
	notify(n, RXQ);
	assert_int_equal(tdrv_used_idx(t, RXQ), 1);
	assert_int_equal(tdrv_used_len(t, RXQ, 0), HL + 60);
	assert_memory_equal(p, "a-frame-of-sixty-bytes", 22);
	/* the header as a driver without offloads wants it */
	static const uint8_t want[HL] = { [10] = 1 };
	assert_memory_equal(h, want, HL);
	assert_int_equal(n->level, 1);
	assert_int_equal(tdrv_rd(t, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING);
	tdrv_wr(t, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING);
	assert_int_equal(n->level, 0);
	struct vmm_virtio_net_stats st = stats(n);
	assert_true(st.rx_packets == 1 && st.rx_bytes == 60 && st.rx_dropped == 0);
}

static void test_rx_waits_for_buffers(void **state)
{
	struct nt *n = *state;
	struct tdrv *t = &n->t;
	char name[8];

	assert_true(up(n, FEAT_LO));
	for (int i = 1; i <= 3; i++) {
		snprintf(name, sizeof(name), "frame%d", i);
		host_send(n, name, 7);
	}
	/* no receive buffer: nothing is taken from the fd */
	vmm_virtio_net_rx(t->d);
	vmm_virtio_net_rx(t->d);
	assert_int_equal(tdrv_used_idx(t, RXQ), 0);
	/* one buffer: one frame, the others stay */
	post_rx(n, RBUF, 2048);
	vmm_virtio_net_rx(t->d);
	assert_int_equal(tdrv_used_idx(t, RXQ), 1);
	assert_memory_equal((uint8_t *)tdrv_gpa(t, RBUF) + HL, "frame1", 7);
	/* two more, and the driver notifies: they arrive in order */
	post_rx(n, RBUF + 0x1000, 2048);
	post_rx(n, RBUF + 0x2000, 2048);
	notify(n, RXQ);
	assert_int_equal(tdrv_used_idx(t, RXQ), 3);
	assert_memory_equal((uint8_t *)tdrv_gpa(t, RBUF + 0x1000) + HL, "frame2", 7);
	assert_memory_equal((uint8_t *)tdrv_gpa(t, RBUF + 0x2000) + HL, "frame3", 7);
	/* buffers without frames stay posted, for the next frame */
	post_rx(n, RBUF + 0x3000, 2048);
	post_rx(n, RBUF + 0x4000, 2048);
	notify(n, RXQ);
	vmm_virtio_net_rx(t->d);
	assert_int_equal(tdrv_used_idx(t, RXQ), 3);
	host_send(n, "frame4", 7);
	vmm_virtio_net_rx(t->d);
	assert_int_equal(tdrv_used_idx(t, RXQ), 4);
	assert_int_equal(tdrv_used_len(t, RXQ, 3), HL + 7);
	assert_memory_equal((uint8_t *)tdrv_gpa(t, RBUF + 0x3000) + HL, "frame4", 7);
	struct vmm_virtio_net_stats st = stats(n);
	assert_true(st.rx_packets == 4 && st.rx_dropped == 0 && st.rx_errors == 0);
}

static void test_rx_bad_fits(void **state)
{
	struct nt *n = *state;
	struct tdrv *t = &n->t;
	char big[100];

	assert_true(up(n, FEAT_LO));
	memset(big, 'x', sizeof(big));
	host_send(n, big, sizeof(big)); /* does not fit the buffer */
	assert_int_equal(send(n->peer, "runt", 4, 0), 4);
	host_send(n, "small", 6);
	post_rx(n, RBUF, HL + 30);
	vmm_virtio_net_rx(t->d);
	/* the first two are dropped; the buffer takes the third */
	assert_int_equal(tdrv_used_idx(t, RXQ), 1);
	assert_int_equal(tdrv_used_len(t, RXQ, 0), HL + 6);
	assert_memory_equal((uint8_t *)tdrv_gpa(t, RBUF) + HL, "small", 6);
	struct vmm_virtio_net_stats st = stats(n);
	assert_true(st.rx_dropped == 2 && st.rx_packets == 1);

	/* a receive chain the device cannot write, and one too short for a
	 * header: each returned empty; the frame waits for a proper one */
	host_send(n, "kept", 5);
	uint64_t a = RBUF + 0x1000;
	uint32_t l = 2048;
	uint16_t f = 0;
	tdrv_post(t, RXQ, &a, &l, &f, 1);
	post_rx(n, RBUF + 0x2000, HL - 1);
	post_rx(n, RBUF + 0x3000, 2048);
	notify(n, RXQ);
	assert_int_equal(tdrv_used_idx(t, RXQ), 4);
	assert_int_equal(tdrv_used_len(t, RXQ, 1), 0);
	assert_int_equal(tdrv_used_len(t, RXQ, 2), 0);
	assert_int_equal(tdrv_used_len(t, RXQ, 3), HL + 5);
	assert_memory_equal((uint8_t *)tdrv_gpa(t, RBUF + 0x3000) + HL, "kept", 5);
	st = stats(n);
	assert_true(st.rx_errors == 2 && st.rx_packets == 2);
	assert_false(tdrv_rd(t, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET);
}

static void test_malformed_rings(void **state)
{
	struct nt *n = *state;
	struct tdrv *t = &n->t;

	/* a receive buffer outside RAM: the frame is not read */
	assert_true(up(n, FEAT_LO));
	host_send(n, "survivor", 9);
	post_rx(n, RAM - 100, 2048);
	vmm_virtio_net_rx(t->d);
	assert_true(tdrv_rd(t, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET);
	assert_true(tdrv_rd(t, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_MMIO_INT_CONFIG);
	assert_int_equal(n->level, 1);
	assert_int_equal(tdrv_used_idx(t, RXQ), 0);
	/* a transmit loop */
	assert_true(up(n, FEAT_LO));
	assert_int_equal(n->level, 0);
	tdrv_desc(t, TXQ, 0, BUF, HL, 1, 1);
	tdrv_desc(t, TXQ, 1, BUF, 20, 1, 0);
	uint16_t *avail = tdrv_gpa(t, TQ_AVAIL(TXQ));
	avail[2] = 0;
	avail[1] = 1;
	notify(n, TXQ);
	assert_true(tdrv_rd(t, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET);
	uint8_t got[64];
	assert_int_equal(host_recv(n, got, sizeof(got)), -1);
	/* after a reset the frame is still there */
	assert_true(up(n, FEAT_LO));
	post_rx(n, RBUF, 2048);
	vmm_virtio_net_rx(t->d);
	assert_int_equal(tdrv_used_idx(t, RXQ), 1);
	assert_memory_equal((uint8_t *)tdrv_gpa(t, RBUF) + HL, "survivor", 9);
}

static void test_reset(void **state)
{
	struct nt *n = *state;
	struct tdrv *t = &n->t;

	assert_true(up(n, FEAT_LO));
	post_rx(n, RBUF, 2048);
	tdrv_wr(t, VIRTIO_MMIO_STATUS, 0);
	tdrv_wr(t, VIRTIO_MMIO_QUEUE_SEL, RXQ);
	assert_int_equal(tdrv_rd(t, VIRTIO_MMIO_QUEUE_READY), 0);
	host_send(n, "after-reset", 12);
	vmm_virtio_net_rx(t->d);
	notify(n, RXQ);
	assert_int_equal(tdrv_used_idx(t, RXQ), 0); /* the old queue is gone */
	assert_true(up(n, FEAT_LO));
	post_rx(n, RBUF + 0x1000, 2048);
	notify(n, RXQ);
	assert_int_equal(tdrv_used_idx(t, RXQ), 1);
	assert_memory_equal((uint8_t *)tdrv_gpa(t, RBUF + 0x1000) + HL, "after-reset", 12);
}

static int restore_bytes(struct vmm_device *d, const uint8_t *p, size_t len)
{
	struct rbuf r;

	rbuf_init(&r, p, len);
	return d->ops->restore(d, &r);
}

static void test_save_restore(void **state)
{
	struct nt *n = *state;
	struct tdrv *t = &n->t;
	struct vmm_device *d2, *other;
	struct sbuf s;
	int sv[2];
	uint8_t got[64];

	assert_true(up(n, FEAT_LO));
	memset(tdrv_gpa(t, BUF), 0, HL);
	memcpy((uint8_t *)tdrv_gpa(t, BUF) + HL, "before-the-save", 16);
	post_tx(n, 0, 16, false);
	notify(n, TXQ);
	assert_int_equal(host_recv(n, got, sizeof(got)), HL + 16);
	host_send(n, "one", 4);
	post_rx(n, RBUF, 2048);
	vmm_virtio_net_rx(t->d);
	/* receive buffers posted before the save, and a frame not yet sent */
	post_rx(n, RBUF + 0x1000, 2048);
	post_rx(n, RBUF + 0x2000, 2048);
	notify(n, RXQ);
	memcpy((uint8_t *)tdrv_gpa(t, BUF + 0x100) + HL, "queued-over-save", 17);
	post_tx(n, 0x100, 17, true);
	sbuf_init(&s);
	assert_int_equal(t->d->ops->save(t->d, &s), 0);

	/* a fresh device (the tap of the destination) takes over */
	assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(vmm_virtio_net_create(&d2, &t->bus, 0xd0000000, 5, sv[0], MAC), 0);
	assert_int_equal(restore_bytes(d2, s.data, s.len), 0);
	t->d->ops->destroy(t->d);
	t->d = d2;
	close(n->peer);
	n->peer = sv[1];
	host_send(n, "two", 4);
	host_send(n, "three", 6);
	vmm_virtio_net_rx(t->d);
	assert_int_equal(tdrv_used_idx(t, RXQ), 3);
	assert_memory_equal((uint8_t *)tdrv_gpa(t, RBUF + 0x1000) + HL, "two", 4);
	assert_memory_equal((uint8_t *)tdrv_gpa(t, RBUF + 0x2000) + HL, "three", 6);
	notify(n, TXQ);
	assert_int_equal(tdrv_used_idx(t, TXQ), 2);
	assert_int_equal(host_recv(n, got, sizeof(got)), HL + 17);
	assert_memory_equal(got + HL, "queued-over-save", 17);
	struct vmm_virtio_net_stats st = stats(n);
	assert_true(st.tx_packets == 2 && st.rx_packets == 3 && st.rx_bytes == 4 + 4 + 6);

	/* every truncation is refused, so is a byte too many */
	for (size_t len = 0; len < s.len; len++)
		assert_int_equal(restore_bytes(d2, s.data, len), -EBADMSG);
	uint8_t *p = malloc(s.len + 1);
	memcpy(p, s.data, s.len);
	p[s.len] = 0;
	assert_int_equal(restore_bytes(d2, p, s.len + 1), -EBADMSG);
	free(p);
	/* a NIC with another MAC address */
	uint8_t mac2[6] = { 2, 0, 0, 0, 0, 9 };
	int sv2[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv2), 0);
	assert_int_equal(vmm_virtio_net_create(&other, &t->bus, 0xd0000200, 5, sv2[0], mac2), 0);
	assert_int_equal(restore_bytes(other, s.data, s.len), -EBADMSG);
	other->ops->destroy(other);
	close(sv2[1]);
	/* still working */
	post_rx(n, RBUF + 0x3000, 2048);
	host_send(n, "four", 5);
	vmm_virtio_net_rx(t->d);
	assert_int_equal(tdrv_used_idx(t, RXQ), 4);
	sbuf_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_config, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tx, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tx_hold, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tx_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rx, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rx_waits_for_buffers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rx_bad_fits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_rings, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_save_restore, setup, teardown),
	};
	log_set_level(LOG_ERROR); /* the guest-error warnings are expected */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
