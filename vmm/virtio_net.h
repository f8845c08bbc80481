/* virtio-net (VIRTIO 1.x, 5.1) on the virtio-mmio transport, over a file
 * descriptor that behaves like a tap opened with IFF_TAP | IFF_NO_PI |
 * IFF_VNET_HDR and a vnet header size of 12: every frame read or written
 * carries a struct virtio_net_hdr_v1 (12 bytes) in front. (Tests use a
 * SOCK_DGRAM socketpair carrying the same.)
 *
 * Queues: 0 receive, 1 transmit. Features offered: VIRTIO_NET_F_MAC,
 * VIRTIO_NET_F_STATUS (link always up), plus the transport's VERSION_1
 * and INDIRECT_DESC; no offloads, no mergeable buffers, no control queue.
 * Configuration space (8 bytes): mac[6], status u16 (1: link up).
 *
 * Transmit: on a notification of queue 1, every available chain is one
 * frame (its readable part: header + frame), sent with one writev. Since no
 * offload is negotiated, the header sent is all zeroes whatever the guest
 * put in it. A chain with a writable buffer, or a frame shorter than an
 * Ethernet header (14 bytes) or longer than 64 KiB, is dropped.
 *
 * Receive: vmm_virtio_net_rx(), when the fd is readable (and every
 * notification of queue 0), reads frame after frame, each into the next
 * available chain (its writable part); the header is rewritten for the
 * guest (no offloads, num_buffers 1). Without a chain the frame stays in
 * the fd until the guest posts buffers and notifies. A frame that does not
 * fit its chain is dropped (the chain is reused).
 *
 * Output commit (fault tolerance, replica/): while held, transmitted
 * frames wait in the device (at most VMM_NET_HOLD_MAX bytes; more are
 * dropped, as by a full fd) until released up to a mark; dropped ones are
 * never sent. They are not part of a saved state: a frame held when its
 * copy is lost was never seen outside, as a lost packet.
 *
 * A saved state is the MAC (a restore onto another MAC is refused) and the
 * counters. */
#ifndef VMM_VIRTIO_NET_H
#define VMM_VIRTIO_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "virtio_mmio.h"

#define VIRTIO_ID_NET 1

#define VIRTIO_NET_F_MAC    (1ull << 5)
#define VIRTIO_NET_F_STATUS (1ull << 16)

#define VIRTIO_NET_S_LINK_UP 1
#define VIRTIO_NET_HDR_LEN   12 /* struct virtio_net_hdr_v1 */
#define VIRTIO_NET_CFG_SIZE  8
#define VIRTIO_NET_Q_RX      0
#define VIRTIO_NET_Q_TX      1

struct vmm_virtio_net_stats {
	uint64_t tx_packets, tx_bytes; /* frames sent (bytes without the header) */
	uint64_t tx_dropped;           /* malformed chains, fd full (EAGAIN/ENOBUFS) */
	uint64_t tx_errors;            /* other write errors of the fd */
	uint64_t rx_packets, rx_bytes; /* frames delivered to the guest */
	uint64_t rx_dropped;           /* runts, frames larger than their chain */
	uint64_t rx_errors;            /* read errors, receive chains with readable buffers */
};

/* On success the device owns fd (made non-blocking; closed by destroy); on
 * failure the caller still does. */
int vmm_virtio_net_create(struct vmm_device **d, struct vmm_bus *bus, uint64_t mmio_base,
                          uint32_t gsi, int fd, const uint8_t mac[6]);
/* The fd is readable: deliver frames while the guest has receive buffers;
 * the rest stays in the fd until it posts more. Takes the device's lock
 * (call from any thread). */
void vmm_virtio_net_rx(struct vmm_device *d);
int vmm_virtio_net_fd(struct vmm_device *d);

#define VMM_NET_HOLD_MAX (8u << 20)
/* Holds transmitted frames from now on (on), or sends what is held and
 * holds no more (off). */
void vmm_virtio_net_hold(struct vmm_device *d, bool on);
/* The mark after the last frame held so far: release(mark) sends it. */
uint64_t vmm_virtio_net_held_mark(struct vmm_device *d);
/* Sends the held frames that end at or before upto, in order. */
void vmm_virtio_net_release(struct vmm_device *d, uint64_t upto);
/* Forgets the held frames (this copy stops: they were never sent). */
void vmm_virtio_net_drop(struct vmm_device *d);
/* Announces the NIC's MAC on its network, as after a live migration: a
 * broadcast RARP (QEMU's announce, vMotion's notification) so that bridges
 * move the MAC to this port at once. 0 or -errno. */
int vmm_virtio_net_announce(struct vmm_device *d);
void vmm_virtio_net_get_stats(struct vmm_device *d, struct vmm_virtio_net_stats *st);

/* Opens tap device `name` (created if missing) with IFF_NO_PI |
 * IFF_VNET_HDR, vnet header size 12, non-blocking: an fd for
 * vmm_virtio_net_create. -errno with err set. */
int vmm_tap_open(const char *name, char *err, size_t errlen);

#endif
