/* VMkernel networking: virtual switches and port groups, TCP/IP stacks
 * (netstacks) and vmk adapters, as on an ESXi host.
 *
 * - A netstack is a network namespace: defaultTcpipStack is hostd's own,
 *   every other one is /run/netns/<prefix><netstack> (created by hostd;
 *   `ip netns exec` works on it).
 * - A port group is a Linux bridge of its own, joined to the uplink of its
 *   switch that it names (the active uplink of ESXi's teaming policy).
 * - A vmk adapter is a veth pair: vmkN in its netstack, vp-vmkN on the
 *   port group's bridge.
 *
 * Switches and port groups come from host.cfg's `network` group; netstacks
 * and vmk adapters too, until they are changed at runtime: then
 * <state_dir>/network.cfg holds them and replaces host.cfg's. A bad entry
 * in either is logged with FILE:LINE and the fix, and the rest comes up. */
#ifndef HOSTD_NETWORK_H
#define HOSTD_NETWORK_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>

#define NET_MAX_SWITCHES   8
#define NET_MAX_UPLINKS    8
#define NET_MAX_PORTGROUPS 32
#define NET_MAX_NETSTACKS  16
#define NET_MAX_VMKS       32
#define NET_MIN_MTU        576
#define NET_MAX_MTU        9000

#define NET_DEFAULT_STACK "defaultTcpipStack"

enum net_tag {
	NET_TAG_MANAGEMENT,
	NET_TAG_VMOTION,
	NET_TAG_PROVISIONING,
	NET_TAG_FT,
	NET_TAG_REPLICATION,
	NET_TAG_VSAN,
	NET_TAG_BACKUP_NFC,
	NET_TAG_NVME_TCP,
	NET_TAG_NVME_RDMA,
	NET_TAG_COUNT
};

struct net_switch {
	char name[32];
	unsigned mtu; /* 0: leave the uplinks' MTU */
	char uplinks[NET_MAX_UPLINKS][16];
	size_t nuplinks;
};

struct net_portgroup {
	char name[64];
	char vswitch[32];
	char uplink[16]; /* "" none: an internal port group */
	unsigned vlan;
	char bridge[16]; /* its Linux bridge in hostd's namespace */
};

struct net_netstack {
	char name[32];
	bool builtin;
};

struct net_vmk {
	char name[16];
	char portgroup[64];
	char netstack[32];
	unsigned mtu;
	bool enabled;
	bool has_ipv4;
	struct in_addr ipv4, netmask;
	struct in_addr gateway; /* 0: none; else its netstack's default route */
	unsigned tags;          /* 1 << enum net_tag */
	int line;               /* where it came from, for messages */
};

/* The configured model (netconf.c reads and writes it). */
struct net_model {
	bool managed; /* host.cfg has a network group: hostd owns the network */
	char ns_prefix[64];
	struct net_switch switches[NET_MAX_SWITCHES];
	size_t nswitches;
	struct net_portgroup portgroups[NET_MAX_PORTGROUPS];
	size_t nportgroups;
	struct net_netstack netstacks[NET_MAX_NETSTACKS];
	size_t nnetstacks;
	struct net_vmk vmks[NET_MAX_VMKS];
	size_t nvmks;
};

struct hostd;
struct hostd_network;

/* Lookups by name in a model; NULL when absent. */
struct net_netstack *net_find_stack(struct net_model *m, const char *name);
struct net_portgroup *net_find_pg(struct net_model *m, const char *name);
struct net_vmk *net_find_vmk(struct net_model *m, const char *name);

const char *net_tag_name(enum net_tag t);
int net_tag_parse(const char *s, enum net_tag *t);
/* The Linux bridge of a port group: "vpg" and a hash of its name, so that
 * a port group keeps its bridge when others come or go. */
void net_pg_bridge(const char *portgroup, char out[16]);
/* "vmk" followed by 1..5 digits */
bool net_valid_vmk_name(const char *s);

/* netconf.c: host.cfg's network group, then <state_dir>/network.cfg over
 * it. Never fails on a bad entry (logged and skipped). */
void netconf_load(struct net_model *m, const char *host_cfg, const char *runtime_file,
                  const char *host_name);
/* Writes the netstacks and vmk adapters to runtime_file (atomically). */
int netconf_save(const struct net_model *m, const char *runtime_file);
/* The namespace of a netstack ("" for defaultTcpipStack). */
void netconf_ns_name(const struct net_model *m, const char *netstack, char *out, size_t outlen);

/* Brings the switches, netstacks and vmk adapters up (reusing what exists
 * from an earlier run). Problems are logged; never fatal. */
int hostd_network_init(struct hostd *h, char *err, size_t errlen);
void hostd_network_free(struct hostd_network *n);

/* Where traffic of a kind goes: the enabled vmk with the tag and an IPv4
 * address, else the Management one (note says so). addr gets its address,
 * ns the netstack's namespace name ("" for hostd's own), vmk its name.
 * -ENOENT when hostd does not manage the network or no vmk qualifies
 * (callers then use the management address of host.cfg). */
int hostd_network_traffic(struct hostd *h, enum net_tag tag, char *addr, size_t addrlen, char *ns,
                          size_t nslen, char *vmk, size_t vmklen, char *note, size_t notelen);
/* The address of host.cfg's listen (127.0.0.1 for a wildcard): where
 * traffic goes when hostd_network_traffic has no vmk for it. */
void hostd_mgmt_address(const struct hostd *h, char *out, size_t outlen);

/* How this host reaches a peer's stream (a migration's, an NFC copy's, FT
 * checkpoints): from its own vmk tagged `tag`, or from the Management one
 * when the peer fell back to its own (dest_note set, or no dest_interface). */
struct net_route {
	char host[256]; /* the peer's address */
	uint16_t port;
	char netns[128];  /* this host's netstack namespace, "" hostd's own */
	char stream[300]; /* "<label>vmk1 198.18.2.11 -> esx2 vmk1 198.18.2.12:PORT" */
	char notes[700];  /* fallbacks to Management, on either side */
};
void hostd_network_route(struct hostd *h, enum net_tag tag, const char *label, const char *dest,
                         const char *addr, uint32_t port, const char *dest_interface,
                         const char *dest_note, struct net_route *r);

/* hostd manages the host's network (host.cfg has a network group). */
bool hostd_network_managed(struct hostd *h);

/* The bridge of a port group and the MTU its members get (the uplink's).
 * -ENOENT (err says which port groups exist), or -EOPNOTSUPP when hostd
 * does not manage the network. */
int hostd_network_portgroup_bridge(struct hostd *h, const char *portgroup, char *bridge,
                                   unsigned *mtu, char *err, size_t errlen);

/* vmnic.c: a VM NIC is a persistent tap on its port group's bridge, named
 * from the VM's uuid and the NIC's index (at most 15 characters). */
void vmnic_tap_name(const char *uuid, unsigned index, char out[16]);
int vmnic_attach(struct hostd *h, const char *portgroup, const char *tap, char *err, size_t errlen);
void vmnic_release(const char *tap);

/* Fails the call: there is no vmk adapter named name (NOT_FOUND, with the
 * command that lists them). */
struct hostd_call;
int hostd_network_no_vmk(struct hostd_call *call, const char *name);

/* The netstack of vmk adapter vmk and an fd of its namespace (*nsfd = -1
 * for defaultTcpipStack; else the caller closes it). -ENOENT if unknown. */
int hostd_network_vmk_ns(struct hostd *h, const char *vmk, char *netstack, size_t stacklen,
                         int *nsfd);

#endif
