/* A minimal rtnetlink (NETLINK_ROUTE) client: links, IPv4 addresses and the
 * IPv4 default route, over raw netlink sockets (no libnl, no `ip`).
 *
 * Every request carries NLM_F_ACK and waits for the kernel's answer; kernel
 * replies are treated as untrusted input (bounded buffers, every attribute
 * length checked). A netlink socket works in the network namespace it was
 * created in, whatever namespace the thread is in later: nl_open_netns()
 * opens one inside another namespace.
 *
 * Functions return 0 or -errno. Those with err/errlen write a message that
 * names the object, the operation and the kernel's reason, e.g.
 * "vmk1: RTM_NEWLINK: File exists (...)"; the kernel's extended-ack text is
 * appended when it sent one ("kernel: mtu greater than device maximum").
 * err may be NULL (errlen 0). A socket is used by one thread at a time. */
#ifndef VMK_NETLINK_H
#define VMK_NETLINK_H

#include <stddef.h>
#include <netinet/in.h>

#define NL_NAME_MAX 16 /* IFNAMSIZ: names are 1..15 characters */

struct nl_link {
	int ifindex;
	char name[NL_NAME_MAX];
	char kind[16]; /* "veth", "bridge", ... ; "" without IFLA_LINKINFO (lo, ...) */
	unsigned mtu;
	unsigned flags;       /* IFF_* (IFF_UP, IFF_RUNNING, IFF_LOWER_UP, ...) */
	unsigned char mac[6]; /* zero unless the link has a 6-byte address */
	int master;           /* ifindex of the bridge it is enslaved to, or 0 */
};

/* A NETLINK_ROUTE socket (SOCK_CLOEXEC) of the calling thread's current
 * network namespace, with extended acks enabled. Ownership: the caller
 * closes it with nl_close(). -errno. */
int nl_open(void);
/* The same, created inside the namespace nsfd (see netns_socket(); -1 =
 * the current one). The socket keeps working in that namespace. */
int nl_open_netns(int nsfd);
void nl_close(int nl);

/* ip link add NAME [mtu MTU] type bridge. mtu 0 = kernel default. */
int nl_link_add_bridge(int nl, const char *name, unsigned mtu, char *err, size_t errlen);
/* ip link add NAME [mtu MTU] type veth peer PEER [netns FD]: NAME is made in
 * the socket's namespace, PEER in peer_netns_fd (-1: the same namespace).
 * mtu (0 = default) applies to both ends. */
int nl_link_add_veth(int nl, const char *name, const char *peer, int peer_netns_fd, unsigned mtu,
                     char *err, size_t errlen);
/* ip link del NAME. -ENODEV when absent (deleting one end of a veth
 * deletes both). */
/* An 802.1Q link `name` on `parent` with VLAN id 1..4094 (tagged frames of
 * that id on the parent arrive on it untagged, and the other way). */
int nl_link_add_vlan(int nl, const char *name, const char *parent, unsigned vlan_id, char *err,
                     size_t errlen);
int nl_link_del(int nl, const char *name, char *err, size_t errlen);
/* ip link set NAME [up|down] [mtu MTU] [master BR|nomaster], one request.
 * up: 1 up, 0 down, -1 unchanged; mtu 0 unchanged; master NULL unchanged,
 * "" release from its bridge, else the bridge's name (-ENODEV with a
 * message when that bridge is absent). -ENODEV when NAME is absent. */
int nl_link_set(int nl, const char *name, int up, unsigned mtu, const char *master, char *err,
                size_t errlen);
/* ip link set NAME netns FD. The link is down afterwards (kernel rule). */
/* Sets a link's Ethernet address (unicast). */
int nl_link_set_mac(int nl, const char *name, const unsigned char mac[6], char *err, size_t errlen);
int nl_link_set_netns(int nl, const char *name, int netns_fd, char *err, size_t errlen);
/* -ENODEV when absent, -EINVAL for a bad name, -EBADMSG for a malformed
 * reply. */
int nl_link_get(int nl, const char *name, struct nl_link *out);
/* Waits (polling, at most timeout_ms) until NAME is IFF_RUNNING: the kernel
 * finishes bringing a link up asynchronously (linkwatch), and until then
 * it silently drops what is sent on it, such as the first ARP request of a
 * vmkping right after the adapter was made. -ETIMEDOUT (e.g. the link or
 * its veth peer is down, or has no carrier), -ENODEV. */
int nl_link_wait_running(int nl, const char *name, unsigned timeout_ms);
/* All links of the socket's namespace: stores up to max in out and sets *n
 * to the number stored. -ENOSPC (after reading the whole dump, *n == max)
 * when there were more. */
int nl_link_list(int nl, struct nl_link *out, size_t max, size_t *n);

/* ip addr replace ADDR/PREFIXLEN brd + dev IFNAME: adds the IPv4 address or
 * updates it if present, with its broadcast address (none for /31, /32).
 * Other addresses of IFNAME stay: call nl_addr_flush() first to make it
 * the only one. */
int nl_addr_replace(int nl, const char *ifname, struct in_addr addr, unsigned prefixlen, char *err,
                    size_t errlen);
/* Removes every IPv4 address of IFNAME (absent ones are fine). */
int nl_addr_flush(int nl, const char *ifname, char *err, size_t errlen);
/* The first IPv4 address of IFNAME (its primary address); -ENOENT if none,
 * -ENODEV if IFNAME is absent. */
int nl_addr_get(int nl, const char *ifname, struct in_addr *addr, unsigned *prefixlen);

/* ip route replace default via GW (main table, protocol static). The
 * gateway must be reachable on a connected subnet: -ENETUNREACH otherwise. */
int nl_route_replace_default(int nl, struct in_addr gw, char *err, size_t errlen);
/* The gateway of the main table's IPv4 default route; -ENOENT if none. */
int nl_route_get_default(int nl, struct in_addr *gw);
/* ip route del default (main table); -ESRCH when there is none. */
int nl_route_del_default(int nl, char *err, size_t errlen);

#endif
