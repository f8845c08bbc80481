#include "virtio_net.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define STATE_VERSION 1
#define HDR           VIRTIO_NET_HDR_LEN
#define MIN_FRAME     14          /* transmit: an Ethernet header at least */
#define MAX_FRAME     (64u << 10) /* transmit: frame bytes after the header */

struct net {
	int fd;
	bool is_socket; /* recvmsg can tell a truncated frame */
	uint8_t mac[6];
	struct vmm_virtio_net_stats st;
	/* output commit (fault tolerance): transmitted frames wait here, each
	 * as [u32 length][header + frame], until released */
	bool hold;
	uint8_t *held;
	size_t held_len, held_cap;
	uint64_t held_base; /* the mark of held[0]: bytes ever held before it */
};

static uint64_t net_features(void *be)
{
	(void)be;
	return VIRTIO_NET_F_MAC | VIRTIO_NET_F_STATUS;
}

static void net_config_read(void *be, uint64_t off, uint8_t *data, unsigned size)
{
	struct net *n = be;
	uint8_t cfg[VIRTIO_NET_CFG_SIZE] = { 0 };
	uint16_t status = htole16(VIRTIO_NET_S_LINK_UP);

	memcpy(cfg, n->mac, 6);
	memcpy(cfg + 6, &status, 2);
	if (off < sizeof(cfg) && size <= sizeof(cfg) - off)
		memcpy(data, cfg + off, size);
}

/* Keeps one frame (header + frame, as written to the fd) for later: false
 * when the hold is full (the frame is dropped, as a full fd would). */
static bool hold_frame(struct net *n, const struct iovec *io, unsigned k, size_t len)
{
	uint32_t l = (uint32_t)len;

	if (n->held_len + 4 + len > VMM_NET_HOLD_MAX)
		return false;
	if (n->held_len + 4 + len > n->held_cap) {
		size_t cap = n->held_cap ? n->held_cap : 64 << 10;
		while (cap < n->held_len + 4 + len)
			cap *= 2;
		uint8_t *p = realloc(n->held, cap);
		if (!p)
			return false;
		n->held = p;
		n->held_cap = cap;
	}
	memcpy(n->held + n->held_len, &l, 4);
	n->held_len += 4;
	for (unsigned i = 0; i < k; i++) {
		memcpy(n->held + n->held_len, io[i].iov_base, io[i].iov_len);
		n->held_len += io[i].iov_len;
	}
	return true;
}

/* Writes the held frames that end at or before mark `upto`. */
static void release_held(struct net *n, uint64_t upto)
{
	size_t off = 0;

	while (off + 4 <= n->held_len) {
		uint32_t l;
		memcpy(&l, n->held + off, 4);
		if (n->held_base + off + 4 + l > upto)
			break;
		ssize_t r;
		do
			r = write(n->fd, n->held + off + 4, l);
		while (r < 0 && errno == EINTR);
		if (r >= 0) {
			n->st.tx_packets++;
			n->st.tx_bytes += l - HDR;
		} else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
			n->st.tx_dropped++;
		} else {
			n->st.tx_errors++;
		}
		off += 4 + l;
	}
	memmove(n->held, n->held + off, n->held_len - off);
	n->held_len -= off;
	n->held_base += off;
}

static void tx(struct net *n, struct vmm_virtio *v)
{
	uint8_t hdr[HDR] = { 0 }; /* no offloads: nothing for the host to do */
	struct iovec io[VMM_VQ_MAX_SIZE + 1];
	struct vmm_vq_chain c;

	while (vmm_virtio_pop(v, VIRTIO_NET_Q_TX, &c) == 1) {
		if (c.nw || c.rlen < HDR + MIN_FRAME || c.rlen - HDR > MAX_FRAME) {
			n->st.tx_dropped++;
			vmm_virtio_push(v, VIRTIO_NET_Q_TX, &c, 0);
			continue;
		}
		io[0].iov_base = hdr;
		io[0].iov_len = HDR;
		unsigned k = vmm_iov_slice(c.iov, c.nr, HDR, c.rlen - HDR, io + 1);
		if (n->hold) {
			if (!hold_frame(n, io, k + 1, c.rlen))
				n->st.tx_dropped++;
			vmm_virtio_push(v, VIRTIO_NET_Q_TX, &c, 0);
			continue;
		}
		ssize_t r;
		do
			r = writev(n->fd, io, (int)k + 1);
		while (r < 0 && errno == EINTR);
		if (r >= 0) {
			n->st.tx_packets++;
			n->st.tx_bytes += c.rlen - HDR;
		} else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
			n->st.tx_dropped++;
		} else {
			n->st.tx_errors++;
		}
		vmm_virtio_push(v, VIRTIO_NET_Q_TX, &c, 0);
	}
}

/* One frame into the writable buffers w[0 .. nw) (room: bytes in all): its
 * length, -EMSGSIZE if it did not fit (and is gone), or -errno. */
static ssize_t read_frame(struct net *n, struct iovec *w, unsigned nw, size_t room)
{
	ssize_t r;

	if (n->is_socket) {
		struct msghdr mh = { .msg_iov = w, .msg_iovlen = nw };
		do
			r = recvmsg(n->fd, &mh, MSG_DONTWAIT);
		while (r < 0 && errno == EINTR);
		if (r >= 0 && (mh.msg_flags & MSG_TRUNC))
			return -EMSGSIZE;
	} else {
		do
			r = readv(n->fd, w, (int)nw);
		while (r < 0 && errno == EINTR);
		/* a tap cuts a frame that does not fit and returns its full
		 * length (or EFAULT) */
		if ((r < 0 && errno == EFAULT) || (r > 0 && (size_t)r > room))
			return -EMSGSIZE;
	}
	return r < 0 ? -errno : r;
}

static void rx(struct net *n, struct vmm_virtio *v)
{
	struct vmm_vq_chain c;

	/* bounded by the chains the guest posted: each frame takes one */
	while (vmm_virtio_pop(v, VIRTIO_NET_Q_RX, &c) == 1) {
		if (c.nr || c.wlen < HDR) { /* not a receive buffer: returned empty */
			n->st.rx_errors++;
			vmm_virtio_push(v, VIRTIO_NET_Q_RX, &c, 0);
			continue;
		}
		ssize_t r = read_frame(n, c.iov + c.nr, c.nw, c.wlen);
		if (r == -EAGAIN || r == -EWOULDBLOCK) {
			vmm_virtio_unpop(v, VIRTIO_NET_Q_RX); /* nothing waits */
			return;
		}
		if (r == -EMSGSIZE || (r >= 0 && r < HDR)) {
			n->st.rx_dropped++;
			vmm_virtio_unpop(v, VIRTIO_NET_Q_RX); /* the chain takes the next one */
			if (r == 0)
				return; /* an empty datagram, or end of file: do not spin */
			continue;
		}
		if (r < 0) {
			n->st.rx_errors++;
			vmm_virtio_unpop(v, VIRTIO_NET_Q_RX);
			return;
		}
		/* the header for a driver without offloads: flags and GSO clear,
		 * num_buffers 1 */
		uint8_t hdr[HDR] = { 0 };
		uint16_t one = htole16(1);
		memcpy(hdr + 10, &one, 2);
		vmm_vq_write(&c, 0, hdr, HDR);
		n->st.rx_packets++;
		n->st.rx_bytes += (uint64_t)r - HDR;
		vmm_virtio_push(v, VIRTIO_NET_Q_RX, &c, (uint32_t)r);
	}
}

static void net_notify(void *be, struct vmm_virtio *v, unsigned q)
{
	struct net *n = be;

	if (q == VIRTIO_NET_Q_TX)
		tx(n, v);
	else
		rx(n, v); /* new receive buffers: deliver what waits */
}

/* Layout (version 1): version u8, mac[6], the counters (u64 each, in
 * struct order). */
static int net_save(void *be, struct sbuf *o)
{
	struct net *n = be;
	const struct vmm_virtio_net_stats *s = &n->st;

	sbuf_u8(o, STATE_VERSION);
	sbuf_put(o, n->mac, 6);
	sbuf_u64(o, s->tx_packets);
	sbuf_u64(o, s->tx_bytes);
	sbuf_u64(o, s->tx_dropped);
	sbuf_u64(o, s->tx_errors);
	sbuf_u64(o, s->rx_packets);
	sbuf_u64(o, s->rx_bytes);
	sbuf_u64(o, s->rx_dropped);
	sbuf_u64(o, s->rx_errors);
	return o->err;
}

static int net_restore(void *be, struct rbuf *in)
{
	struct net *n = be;
	struct vmm_virtio_net_stats s;
	uint8_t mac[6];

	if (rbuf_u8(in) != STATE_VERSION || rbuf_get(in, mac, 6) < 0 || memcmp(mac, n->mac, 6) != 0)
		return -EBADMSG;
	s.tx_packets = rbuf_u64(in);
	s.tx_bytes = rbuf_u64(in);
	s.tx_dropped = rbuf_u64(in);
	s.tx_errors = rbuf_u64(in);
	s.rx_packets = rbuf_u64(in);
	s.rx_bytes = rbuf_u64(in);
	s.rx_dropped = rbuf_u64(in);
	s.rx_errors = rbuf_u64(in);
	if (rbuf_done(in) < 0)
		return -EBADMSG;
	n->st = s;
	return 0;
}

static void net_destroy(void *be)
{
	struct net *n = be;

	close(n->fd);
	free(n->held);
	free(n);
}

static const struct vmm_virtio_backend_ops net_ops = {
	.name = "virtio-net",
	.device_id = VIRTIO_ID_NET,
	.nqueues = 2,
	.features = net_features,
	.config_read = net_config_read,
	.notify = net_notify,
	.save = net_save,
	.restore = net_restore,
	.destroy = net_destroy,
};

void vmm_virtio_net_rx(struct vmm_device *d)
{
	struct vmm_virtio *v = vmm_virtio_of(d);

	vmm_virtio_lock(v);
	rx(vmm_virtio_backend(d), v);
	vmm_virtio_unlock(v);
}

void vmm_virtio_net_hold(struct vmm_device *d, bool on)
{
	struct vmm_virtio *v = vmm_virtio_of(d);
	struct net *n = vmm_virtio_backend(d);

	vmm_virtio_lock(v);
	if (!on)
		release_held(n, UINT64_MAX);
	n->hold = on;
	vmm_virtio_unlock(v);
}

uint64_t vmm_virtio_net_held_mark(struct vmm_device *d)
{
	struct vmm_virtio *v = vmm_virtio_of(d);
	struct net *n = vmm_virtio_backend(d);

	vmm_virtio_lock(v);
	uint64_t mark = n->held_base + n->held_len;
	vmm_virtio_unlock(v);
	return mark;
}

void vmm_virtio_net_release(struct vmm_device *d, uint64_t upto)
{
	struct vmm_virtio *v = vmm_virtio_of(d);

	vmm_virtio_lock(v);
	release_held(vmm_virtio_backend(d), upto);
	vmm_virtio_unlock(v);
}

void vmm_virtio_net_drop(struct vmm_device *d)
{
	struct vmm_virtio *v = vmm_virtio_of(d);
	struct net *n = vmm_virtio_backend(d);

	vmm_virtio_lock(v);
	n->held_base += n->held_len;
	n->held_len = 0;
	vmm_virtio_unlock(v);
}

int vmm_virtio_net_fd(struct vmm_device *d)
{
	return ((struct net *)vmm_virtio_backend(d))->fd;
}

void vmm_virtio_net_get_stats(struct vmm_device *d, struct vmm_virtio_net_stats *st)
{
	struct vmm_virtio *v = vmm_virtio_of(d);

	vmm_virtio_lock(v);
	*st = ((struct net *)vmm_virtio_backend(d))->st;
	vmm_virtio_unlock(v);
}

int vmm_virtio_net_create(struct vmm_device **d, struct vmm_bus *bus, uint64_t mmio_base,
                          uint32_t gsi, int fd, const uint8_t mac[6])
{
	struct net *n;
	struct stat st;
	int fl, ret;

	if (fd < 0 || fstat(fd, &st) < 0 || (fl = fcntl(fd, F_GETFL)) < 0 ||
	    fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return fd < 0 ? -EBADF : -errno;
	n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->fd = fd;
	n->is_socket = S_ISSOCK(st.st_mode);
	memcpy(n->mac, mac, 6);
	ret = vmm_virtio_create(d, bus, mmio_base, gsi, &net_ops, n);
	if (ret < 0)
		free(n);
	return ret;
}

int vmm_virtio_net_announce(struct vmm_device *d)
{
	struct net *n = vmm_virtio_backend(d);
	uint8_t f[HDR + 60] = { 0 }, *e = f + HDR; /* a zero vnet header, then the frame */
	static const uint8_t rarp[] = { 0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x03 };

	memset(e, 0xff, 6); /* to everyone */
	memcpy(e + 6, n->mac, 6);
	e[12] = 0x80, e[13] = 0x35;         /* RARP */
	memcpy(e + 14, rarp, sizeof(rarp)); /* Ethernet, IPv4, reverse request */
	memcpy(e + 22, n->mac, 6);          /* sender and target hardware: the MAC */
	memcpy(e + 32, n->mac, 6);
	return write(n->fd, f, sizeof(f)) == (ssize_t)sizeof(f) ? 0 : -errno;
}

int vmm_tap_open(const char *name, char *err, size_t errlen)
{
	struct ifreq ifr;
	int fd, hdr = VIRTIO_NET_HDR_LEN, e;

	if (strlen(name) >= IFNAMSIZ) {
		snprintf(err, errlen, "tap name %s is longer than %d characters", name,
		         IFNAMSIZ - 1);
		return -EINVAL;
	}
	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		e = errno;
		snprintf(err, errlen, "/dev/net/tun: %s", strerror(e));
		return -e;
	}
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0 || ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0) {
		e = errno;
		snprintf(err, errlen, "tap %s: %s", name, strerror(e));
		close(fd);
		return -e;
	}
	return fd;
}
