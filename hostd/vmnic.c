/* VM NICs on port groups: a persistent tap per NIC on the port group's
 * bridge, created by hostd before the VM's vmx starts (which attaches to it
 * by name) and deleted when the VM ends or leaves the host. */
#include <errno.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "log.h"
#include "netlink.h"
#include "network.h"
#include "util.h"
#include "vmm/virtio_net.h"

void vmnic_tap_name(const char *uuid, unsigned index, char out[IF_NAMESIZE])
{
	/* a hash of the uuid: the same on every host */
	snprintf(out, IF_NAMESIZE, "vmt%08x-%u", util_fnv1a(UTIL_FNV1A_INIT, uuid), index);
}

/* A persistent tap, with the flags vmx attaches with (vmm_tap_open) */
static int tap_create(const char *name, char *err, size_t errlen)
{
	int fd = vmm_tap_open(name, err, errlen), e;

	if (fd < 0)
		return fd;
	if (ioctl(fd, TUNSETPERSIST, 1) < 0) {
		e = errno;
		snprintf(err, errlen, "tap %s: TUNSETPERSIST: %s", name, strerror(e));
		close(fd);
		return -e;
	}
	close(fd);
	return 0;
}

int vmnic_attach(struct hostd *h, const char *portgroup, const char *tap, char *err, size_t errlen)
{
	char bridge[IF_NAMESIZE];
	unsigned mtu;
	struct nl_link l;
	int nl, ret;

	if ((ret = hostd_network_portgroup_bridge(h, portgroup, bridge, &mtu, err, errlen)) < 0)
		return ret;
	if ((nl = nl_open()) < 0) {
		snprintf(err, errlen, "netlink: %s", util_strerror(nl));
		return nl;
	}
	if (nl_link_get(nl, tap, &l) == -ENODEV && (ret = tap_create(tap, err, errlen)) < 0)
		goto out;
	ret = nl_link_set(nl, tap, 1, mtu, bridge, err, errlen);
out:
	nl_close(nl);
	return ret;
}

void vmnic_release(const char *tap)
{
	char err[300];
	int nl = nl_open();

	if (nl < 0)
		return;
	if (nl_link_del(nl, tap, err, sizeof(err)) < 0 && !strstr(err, "No such device"))
		log_warn("VM NIC %s: %s", tap, err);
	nl_close(nl);
}
