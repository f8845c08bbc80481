#include "virtio_net.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#define Q_RX     0
#define Q_TX     1
#define F_MAC    (1ull << 5)
#define F_STATUS (1ull << 16)

struct net {
	struct vmm_device *dev;
	int fd;
	uint8_t mac[6];
	uint64_t tx_frames, rx_frames, tx_errors, rx_errors;
};

static void config_read(void *be, uint64_t off, uint8_t *data, unsigned size)
{
	struct net *n = be;
	uint8_t cfg[8] = { 0 };

	memcpy(cfg, n->mac, 6);
	cfg[6] = 1; /* VIRTIO_NET_S_LINK_UP */
	if (off < sizeof(cfg) && size <= sizeof(cfg) - off)
		memcpy(data, cfg + off, size);
	else
		memset(data, 0, size);
}

static void tx(struct net *n, struct vmm_virtio *v)
{
	struct vq_chain c;

	while (vmm_virtio_pop(v, Q_TX, &c) == 1) {
		bool ok = c.n > 0;
		for (unsigned i = 0; i < c.n; i++)
			ok &= !c.writable[i];
		/* one frame per chain, vnet header included */
		if (ok && writev(n->fd, c.iov, (int)c.n) < 0)
			ok = false;
		if (ok)
			n->tx_frames++;
		else
			n->tx_errors++;
		vmm_virtio_push(v, Q_TX, &c, 0);
	}
}

static void rx(struct net *n, struct vmm_virtio *v)
{
	struct vq_chain c;
	struct pollfd p = { .fd = n->fd, .events = POLLIN };

	/* only take a buffer when a frame is there, so none is lost */
	while (poll(&p, 1, 0) == 1 && (p.revents & POLLIN)) {
		if (vmm_virtio_pop(v, Q_RX, &c) != 1)
			return; /* no buffer: the frame waits in the fd */
		bool ok = c.n > 0;
		for (unsigned i = 0; i < c.n; i++)
			ok &= c.writable[i];
		ssize_t got = ok ? readv(n->fd, c.iov, (int)c.n) : -1;
		if (got < 0) {
			n->rx_errors++;
			got = 0;
		} else {
			n->rx_frames++;
		}
		vmm_virtio_push(v, Q_RX, &c, (uint32_t)got);
	}
}

static void notify(void *be, struct vmm_virtio *v, unsigned q)
{
	struct net *n = be;

	/* the transport lock is held */
	if (q == Q_TX)
		tx(n, v);
	else
		rx(n, v); /* new receive buffers: deliver what waits */
}

void vmm_virtio_net_rx(struct vmm_device *d)
{
	struct vmm_virtio *v = vmm_virtio_of(d);

	vmm_virtio_lock(v);
	rx(vmm_virtio_backend(d), v);
	vmm_virtio_unlock(v);
}

int vmm_virtio_net_fd(struct vmm_device *d)
{
	return ((struct net *)vmm_virtio_backend(d))->fd;
}

static void destroy(void *be)
{
	struct net *n = be;

	close(n->fd);
	free(n);
}

static const struct virtio_backend_ops net_ops = {
	.device_id = VIRTIO_ID_NET,
	.nqueues = 2,
	.config_read = config_read,
	.notify = notify,
	.destroy = destroy,
};

int vmm_virtio_net_create(struct vmm_device **d, struct vmm_bus *bus, uint64_t mmio_base,
                          uint32_t gsi, int fd, const uint8_t mac[6])
{
	struct net *n = calloc(1, sizeof(*n));
	int ret;

	if (!n)
		return -ENOMEM;
	n->fd = fd;
	memcpy(n->mac, mac, 6);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	ret = vmm_virtio_create(d, bus, mmio_base, gsi, &net_ops, n, F_MAC | F_STATUS,
	                        "virtio-net");
	if (ret < 0) {
		free(n);
		return ret;
	}
	n->dev = *d;
	return 0;
}

int vmm_tap_open(const char *name, char *err, size_t errlen)
{
	struct ifreq ifr;
	int fd, hdr = 12;

	if (strlen(name) >= IFNAMSIZ) {
		snprintf(err, errlen, "tap name %s is longer than %d characters", name,
		         IFNAMSIZ - 1);
		return -EINVAL;
	}
	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		snprintf(err, errlen, "/dev/net/tun: %s", strerror(errno));
		return -errno;
	}
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0 || ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0) {
		int e = errno;
		snprintf(err, errlen, "tap %s: %s", name, strerror(e));
		close(fd);
		return -e;
	}
	return fd;
}
