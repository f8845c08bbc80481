/* virtio-net over a socketpair standing in for a tap with a vnet header:
 * transmit, receive, receive without buffers (nothing lost), save/restore. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/virtio_driver.h"
#include "vmm/virtio_net.h"

#define BUF    0x30000ull
#define HDRLEN 12

struct nt {
	struct tdrv t;
	int peer; /* the "host" end */
};

static int setup(void **state)
{
	struct nt *n = calloc(1, sizeof(*n));
	int sv[2];
	uint8_t mac[6] = { 0x00, 0x50, 0x56, 0x01, 0x02, 0x03 };

	if (!n || socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) < 0 ||
	    vmm_mem_init(&n->t.mem, 16ull << 20, false) < 0)
		return -1;
	n->t.bus = (struct vmm_bus){ .mem = &n->t.mem };
	if (vmm_virtio_net_create(&n->t.d, &n->t.bus, 0xd0000000, 5, sv[0], mac) < 0)
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

static void test_mac_and_tx(void **state)
{
	struct nt *n = *state;
	struct tdrv *t = &n->t;
	uint8_t cfg[8];

	assert_int_equal(tdrv_rd(t, 0x08), 1);
	assert_true(tdrv_up(t, (1u << 5) | (1u << 16), 1, 2, TQ_SIZE));
	for (int i = 0; i < 8; i++)
		t->d->ops->mmio(t->d, 0x100 + (uint64_t)i, false, &cfg[i], 1);
	assert_memory_equal(cfg, "\x00\x50\x56\x01\x02\x03", 6);
	assert_int_equal(cfg[6] & 1, 1); /* link up */
	/* transmit two frames, header and payload in separate buffers */
	uint8_t *b = tdrv_gpa(t, BUF);
	memset(b, 0, HDRLEN);
	memcpy(b + 0x100, "frame-one-payload", 17);
	uint64_t a[2] = { BUF, BUF + 0x100 };
	uint32_t l[2] = { HDRLEN, 17 };
	uint16_t f[2] = { 0, 0 };
	tdrv_post(t, 1, a, l, f, 2);
	tdrv_post(t, 1, a, l, f, 2);
	tdrv_wr(t, 0x50, 1);
	assert_int_equal(tdrv_used_idx(t, 1), 2);
	uint8_t got[64];
	assert_int_equal(recv(n->peer, got, sizeof(got), MSG_DONTWAIT), HDRLEN + 17);
	assert_memory_equal(got + HDRLEN, "frame-one-payload", 17);
	assert_int_equal(recv(n->peer, got, sizeof(got), MSG_DONTWAIT), HDRLEN + 17);
}

static void test_rx_waits_for_buffers(void **state)
{
	struct nt *n = *state;
	struct tdrv *t = &n->t;
	uint8_t frame[HDRLEN + 20] = { 0 };

	assert_true(tdrv_up(t, (1u << 5), 1, 2, TQ_SIZE));
	memcpy(frame + HDRLEN, "hello-from-the-wire", 20);
	assert_int_equal(send(n->peer, frame, sizeof(frame), 0), (ssize_t)sizeof(frame));
	assert_int_equal(send(n->peer, frame, sizeof(frame), 0), (ssize_t)sizeof(frame));
	/* no receive buffer yet: nothing is taken from the fd */
	vmm_virtio_net_rx(t->d);
	assert_int_equal(tdrv_used_idx(t, 0), 0);
	/* one buffer: one frame delivered, the other stays */
	uint64_t a = BUF;
	uint32_t l = 1514 + HDRLEN;
	uint16_t fl = 2;
	tdrv_post(t, 0, &a, &l, &fl, 1);
	tdrv_wr(t, 0x50, 0); /* the driver notifies the receive queue */
	assert_int_equal(tdrv_used_idx(t, 0), 1);
	assert_int_equal(tdrv_used_len(t, 0, 0), sizeof(frame));
	assert_memory_equal((uint8_t *)tdrv_gpa(t, BUF) + HDRLEN, "hello-from-the-wire", 20);
	a = BUF + 0x1000;
	tdrv_post(t, 0, &a, &l, &fl, 1);
	tdrv_wr(t, 0x50, 0);
	assert_int_equal(tdrv_used_idx(t, 0), 2);
	/* nothing left: further buffers stay posted */
	vmm_virtio_net_rx(t->d);
	assert_int_equal(tdrv_used_idx(t, 0), 2);
}

static void test_save_restore(void **state)
{
	struct nt *n = *state;
	struct tdrv *t = &n->t;
	struct sbuf s;
	struct rbuf r;
	int sv[2];
	uint8_t mac[6] = { 2, 0, 0, 0, 0, 9 };
	struct vmm_device *d2;

	assert_true(tdrv_up(t, (1u << 5), 1, 2, TQ_SIZE));
	uint64_t a = BUF;
	uint32_t l = 1600;
	uint16_t fl = 2;
	tdrv_post(t, 0, &a, &l, &fl, 1); /* a receive buffer posted before the save */
	tdrv_wr(t, 0x50, 0);
	sbuf_init(&s);
	assert_int_equal(t->d->ops->save(t->d, &s), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(vmm_virtio_net_create(&d2, &t->bus, 0xd0000000, 5, sv[0], mac), 0);
	rbuf_init(&r, s.data, s.len);
	assert_int_equal(d2->ops->restore(d2, &r), 0);
	t->d->ops->destroy(t->d);
	t->d = d2;
	close(n->peer);
	n->peer = sv[1];
	/* the buffer posted before the save receives a frame after the restore */
	uint8_t frame[HDRLEN + 4] = { 0 };
	memcpy(frame + HDRLEN, "abc", 4);
	assert_int_equal(send(n->peer, frame, sizeof(frame), 0), (ssize_t)sizeof(frame));
	vmm_virtio_net_rx(t->d);
	assert_int_equal(tdrv_used_idx(t, 0), 1);
	assert_string_equal((char *)tdrv_gpa(t, BUF) + HDRLEN, "abc");
	sbuf_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_mac_and_tx, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rx_waits_for_buffers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_save_restore, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
