/* VMkernel networking at run time: the kernel objects of the model of
 * network.h (bridges, namespaces, veth pairs, addresses) and the
 * `network ip ...` operations. One lock covers the model and the kernel
 * changes made for it; a change is applied to the kernel first, then
 * persisted, and undone if either fails, so the model, network.cfg and
 * the kernel agree after every call. */
#include "network.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <net/if.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dispatch.h"
#include "hostd.h"
#include "log.h"
#include "netlink.h"
#include "netns.h"
#include "util.h"

#define RUNTIME_FILE "network.cfg"

struct hostd_network {
	pthread_mutex_t lock;
	struct net_model m;
	char runtime_file[PATH_MAX];
	char host[64]; /* this host's name (vmk MACs) */
};

static const struct net_switch *find_switch(const struct net_model *m, const char *name)
{
	for (size_t i = 0; i < m->nswitches; i++) {
		if (strcmp(m->switches[i].name, name) == 0)
			return &m->switches[i];
	}
	return NULL;
}

static unsigned prefix_len(struct in_addr mask)
{
	return (unsigned)__builtin_popcount(mask.s_addr);
}

/* *fd: the netstack's namespace, -1 for defaultTcpipStack (hostd's own).
 * -errno if it is missing. */
static int stack_fd(const struct net_model *m, const char *netstack, int *fd)
{
	char ns[128];

	*fd = -1;
	netconf_ns_name(m, netstack, ns, sizeof(ns));
	if (!ns[0])
		return 0;
	int ret = netns_open(ns);
	if (ret < 0)
		return ret;
	*fd = ret;
	return 0;
}

static void peer_name(const char *vmk, char *out)
{
	snprintf(out, IF_NAMESIZE, "vp-%s", vmk);
}

/* The MTU a vmk on pg may have: its uplink's (or the switch's), or the
 * maximum for an internal port group. *what names the limit. */
static unsigned pg_mtu_limit(const struct net_model *m, int nl, const struct net_portgroup *pg,
                             char *what, size_t whatlen)
{
	const struct net_switch *sw = find_switch(m, pg->vswitch);
	struct nl_link l;

	if (pg->uplink[0] && nl_link_get(nl, pg->uplink, &l) == 0) {
		snprintf(what, whatlen, "uplink %s of port group \"%s\"", pg->uplink, pg->name);
		return l.mtu;
	}
	if (sw && sw->mtu) {
		snprintf(what, whatlen, "switch %s", sw->name);
		return sw->mtu;
	}
	snprintf(what, whatlen, "the maximum");
	return NET_MAX_MTU;
}

static int ensure_stack(const struct net_model *m, const char *netstack, char *err, size_t errlen)
{
	char ns[128];

	netconf_ns_name(m, netstack, ns, sizeof(ns));
	if (!ns[0] || netns_exists(ns))
		return 0;
	return netns_create(ns, err, errlen);
}

static void apply_portgroups(struct hostd_network *n)
{
	char err[300];
	int nl = nl_open();

	if (nl < 0) {
		log_error("network: netlink: %s", util_strerror(nl));
		return;
	}
	for (size_t i = 0; i < n->m.nportgroups; i++) {
		const struct net_portgroup *pg = &n->m.portgroups[i];
		const struct net_switch *sw = find_switch(&n->m, pg->vswitch);
		struct nl_link l;
		if (nl_link_get(nl, pg->bridge, &l) == -ENODEV &&
		    nl_link_add_bridge(nl, pg->bridge, 0, err, sizeof(err)) < 0) {
			log_error("port group \"%s\": %s", pg->name, err);
			continue;
		}
		if (nl_link_set(nl, pg->bridge, 1, 0, NULL, err, sizeof(err)) < 0)
			log_error("port group \"%s\": %s", pg->name, err);
		if (!pg->uplink[0])
			continue;
		if (nl_link_get(nl, pg->uplink, &l) < 0) {
			log_error(
			        "port group \"%s\": uplink %s of switch %s does not exist on this "
			        "host; fix the switch's uplinks in host.cfg",
			        pg->name, pg->uplink, pg->vswitch);
			continue;
		}
		if (!pg->vlan) {
			if (nl_link_set(nl, pg->uplink, 1, sw ? sw->mtu : 0, pg->bridge, err,
			                sizeof(err)) < 0)
				log_error("port group \"%s\": uplink %s: %s", pg->name, pg->uplink,
				          err);
			continue;
		}
		/* a VLAN port group: the uplink's 802.1Q link of that id on the
		 * bridge (frames leave tagged, arrive untagged) */
		char vl[IF_NAMESIZE];
		if (snprintf(vl, sizeof(vl), "%s.%u", pg->uplink, pg->vlan) >= (int)sizeof(vl))
			snprintf(vl, sizeof(vl), "%s.v", pg->bridge);
		if (nl_link_set(nl, pg->uplink, 1, sw ? sw->mtu : 0, NULL, err, sizeof(err)) < 0 ||
		    (nl_link_get(nl, vl, &l) == -ENODEV &&
		     nl_link_add_vlan(nl, vl, pg->uplink, pg->vlan, err, sizeof(err)) < 0) ||
		    nl_link_set(nl, vl, 1, 0, pg->bridge, err, sizeof(err)) < 0)
			log_error("port group \"%s\" (VLAN %u on %s): %s", pg->name, pg->vlan,
			          pg->uplink, err);
	}
	nl_close(nl);
}

/* Creates (or finds from an earlier run) the kernel side of v and sets its
 * MTU, state and address. */
static int vmk_apply(struct hostd_network *n, const struct net_vmk *v, char *err, size_t errlen)
{
	const struct net_portgroup *pg = net_find_pg(&n->m, v->portgroup);
	char peer[IF_NAMESIZE];
	struct nl_link l;
	int nsfd = -1, nl = -1, nlns = -1, ret;

	if (!pg) {
		snprintf(err, errlen, "%s: port group \"%s\" does not exist", v->name,
		         v->portgroup);
		return -ENOENT;
	}
	if ((ret = ensure_stack(&n->m, v->netstack, err, errlen)) < 0)
		return ret;
	if ((ret = stack_fd(&n->m, v->netstack, &nsfd)) < 0) {
		snprintf(err, errlen, "%s: netstack %s: %s", v->name, v->netstack,
		         util_strerror(ret));
		return ret;
	}
	peer_name(v->name, peer);
	if ((nl = nl_open()) < 0 || (nlns = nl_open_netns(nsfd)) < 0) {
		ret = nl < 0 ? nl : nlns;
		snprintf(err, errlen, "%s: netlink: %s", v->name, util_strerror(ret));
		goto out;
	}
	bool have_peer = nl_link_get(nl, peer, &l) == 0;
	bool have_vmk = nl_link_get(nlns, v->name, &l) == 0;
	if (have_peer != have_vmk) { /* half of an earlier pair: start over */
		if (have_peer)
			nl_link_del(nl, peer, err, errlen);
		if (have_vmk)
			nl_link_del(nlns, v->name, err, errlen);
		have_peer = have_vmk = false;
	}
	if (!have_peer) {
		if ((ret = nl_link_add_veth(nl, peer, v->name, nsfd, v->mtu, err, errlen)) < 0)
			goto out;
		/* 00:50:56 (VMware's OUI, as ESXi's vmk adapters) and a hash of
		 * the host and adapter names: the same MAC after a rebuild */
		unsigned char mac[6] = { 0x00, 0x50, 0x56 };
		uint32_t hsh = util_fnv1a(util_fnv1a(UTIL_FNV1A_INIT, n->host), v->name);
		mac[3] = 0x40 | ((hsh >> 16) & 0x3f); /* 0x40..0x7f: not VM MACs (0x00..0x3f) */
		mac[4] = (uint8_t)(hsh >> 8);
		mac[5] = (uint8_t)hsh;
		if ((ret = nl_link_set_mac(nlns, v->name, mac, err, errlen)) < 0)
			goto out;
	}
	if ((ret = nl_link_set(nl, peer, 1, v->mtu, pg->bridge, err, errlen)) < 0 ||
	    (ret = nl_link_set(nlns, v->name, v->enabled ? 1 : 0, v->mtu, NULL, err, errlen)) < 0)
		goto out;
	if ((ret = nl_addr_flush(nlns, v->name, err, errlen)) < 0)
		goto out;
	if (v->has_ipv4 && (ret = nl_addr_replace(nlns, v->name, v->ipv4, prefix_len(v->netmask),
	                                          err, errlen)) < 0)
		goto out;
	/* its netstack's default gateway (the one of defaultTcpipStack is the
	 * host's: only set when a vmk there has one) */
	if (v->has_ipv4 && v->gateway.s_addr && v->enabled &&
	    (ret = nl_route_replace_default(nlns, v->gateway, err, errlen)) < 0)
		goto out;
	/* the kernel finishes bringing a veth up a moment later; what is sent
	 * before (the first ARP request) is lost and retried only after 1 s */
	if (v->enabled)
		nl_link_wait_running(nlns, v->name, 1000);
out:
	if (nl >= 0)
		nl_close(nl);
	if (nlns >= 0)
		nl_close(nlns);
	if (nsfd >= 0)
		close(nsfd);
	return ret;
}

static void vmk_destroy(const struct net_vmk *v)
{
	char peer[IF_NAMESIZE], err[300];
	int nl = nl_open();

	if (nl < 0)
		return;
	peer_name(v->name, peer);
	/* deleting one end of a veth pair deletes both */
	if (nl_link_del(nl, peer, err, sizeof(err)) < 0)
		log_warn("%s: %s", v->name, err);
	nl_close(nl);
}

int hostd_network_init(struct hostd *h, char *err, size_t errlen)
{
	struct hostd_network *n = calloc(1, sizeof(*n));
	char why[300];

	(void)err;
	(void)errlen;
	if (!n)
		return -ENOMEM;
	pthread_mutex_init(&n->lock, NULL);
	snprintf(n->runtime_file, sizeof(n->runtime_file), "%s/%s", h->cfg.state_dir, RUNTIME_FILE);
	snprintf(n->host, sizeof(n->host), "%s", h->cfg.name);
	netconf_load(&n->m, h->cfg.path, n->runtime_file, h->cfg.name);
	h->network = n;
	if (!n->m.managed) {
		log_info("network: host.cfg has no network group; hostd leaves the host's network "
		         "alone");
		return 0;
	}
	apply_portgroups(n);
	for (size_t i = 0; i < n->m.nnetstacks; i++) {
		if (ensure_stack(&n->m, n->m.netstacks[i].name, why, sizeof(why)) < 0)
			log_error("netstack %s: %s", n->m.netstacks[i].name, why);
	}
	for (size_t i = 0; i < n->m.nvmks; i++) {
		if (vmk_apply(n, &n->m.vmks[i], why, sizeof(why)) < 0)
			log_error("%s (line %d of its file): %s", n->m.vmks[i].name,
			          n->m.vmks[i].line, why);
	}
	bool mgmt = false;
	for (size_t i = 0; i < n->m.nvmks; i++)
		mgmt |= (n->m.vmks[i].tags & (1u << NET_TAG_MANAGEMENT)) != 0;
	if (!mgmt)
		log_warn("network: no vmk adapter is tagged Management; tag one (network ip "
		         "interface tag add -t Management)");
	/* vmkctl reaches hostd on a Management vmk: say so when host.listen
	 * names another address */
	char host[64] = "";
	const char *l = strstr(h->cfg.listen, "://");
	snprintf(host, sizeof(host), "%s", l ? l + 3 : h->cfg.listen);
	char *colon = strrchr(host, ':');
	if (colon)
		*colon = '\0';
	struct in_addr la;
	bool on_mgmt = inet_pton(AF_INET, host, &la) != 1 || la.s_addr == INADDR_ANY;
	for (size_t i = 0; i < n->m.nvmks && !on_mgmt; i++) {
		const struct net_vmk *v = &n->m.vmks[i];
		on_mgmt = (v->tags & (1u << NET_TAG_MANAGEMENT)) && v->has_ipv4 &&
		          v->ipv4.s_addr == la.s_addr &&
		          strcmp(v->netstack, NET_DEFAULT_STACK) == 0;
	}
	if (!on_mgmt)
		log_warn("network: host.listen %s is not the address of a Management vmk adapter "
		         "in defaultTcpipStack; vmkctl may not reach this host there",
		         h->cfg.listen);
	log_info("network: %zu port groups, %zu netstacks, %zu vmk adapters", n->m.nportgroups,
	         n->m.nnetstacks, n->m.nvmks);
	return 0;
}

void hostd_network_free(struct hostd_network *n)
{
	if (!n)
		return;
	pthread_mutex_destroy(&n->lock);
	free(n);
}

void hostd_mgmt_address(const struct hostd *h, char *out, size_t outlen)
{
	const char *l = strstr(h->cfg.listen, "://");
	snprintf(out, outlen, "%s", l ? l + 3 : h->cfg.listen);
	char *colon = strrchr(out, ':');
	if (colon)
		*colon = '\0';
	if (!strcmp(out, "0.0.0.0") || !strcmp(out, "*") || !out[0])
		snprintf(out, outlen, "127.0.0.1");
}

int hostd_network_traffic(struct hostd *h, enum net_tag tag, char *addr, size_t addrlen, char *ns,
                          size_t nslen, char *vmk, size_t vmklen, char *note, size_t notelen)
{
	struct hostd_network *n = h->network;
	const struct net_vmk *best = NULL;
	int ret = -ENOENT;

	note[0] = 0;
	if (!n || !n->m.managed)
		return -ENOENT;
	pthread_mutex_lock(&n->lock);
	for (int pass = 0; pass < 2 && !best; pass++) {
		enum net_tag t = pass == 0 ? tag : NET_TAG_MANAGEMENT;
		for (size_t i = 0; i < n->m.nvmks && !best; i++) {
			const struct net_vmk *v = &n->m.vmks[i];
			if ((v->tags & (1u << t)) && v->enabled && v->has_ipv4)
				best = v;
		}
		if (best && pass == 1)
			snprintf(note, notelen, "%s: no %s vmk, using Management %s", h->cfg.name,
			         net_tag_name(tag), best->name);
	}
	if (best) {
		char a[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &best->ipv4, a, sizeof(a));
		snprintf(addr, addrlen, "%s", a);
		netconf_ns_name(&n->m, best->netstack, ns, nslen);
		snprintf(vmk, vmklen, "%s", best->name);
		ret = 0;
	}
	pthread_mutex_unlock(&n->lock);
	return ret;
}

/* ---- messages ---- */

static Vmk__VmkInterface *vmk_message(struct hostd_call *call, struct hostd_network *n,
                                      const struct net_vmk *v)
{
	Vmk__VmkInterface *m = arena_alloc(call->a, sizeof(*m));
	char a[INET_ADDRSTRLEN] = "", k[INET_ADDRSTRLEN] = "", mac[18] = "";
	struct nl_link l;
	size_t nt = 0;

	if (!m)
		return NULL;
	vmk__vmk_interface__init(m);
	int nsfd;
	int nl = stack_fd(&n->m, v->netstack, &nsfd) == 0 ? nl_open_netns(nsfd) : -ENOENT;
	if (nl >= 0 && nl_link_get(nl, v->name, &l) == 0)
		snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", l.mac[0], l.mac[1],
		         l.mac[2], l.mac[3], l.mac[4], l.mac[5]);
	if (nl >= 0)
		nl_close(nl);
	if (nsfd >= 0)
		close(nsfd);
	if (v->has_ipv4) {
		inet_ntop(AF_INET, &v->ipv4, a, sizeof(a));
		inet_ntop(AF_INET, &v->netmask, k, sizeof(k));
	}
	m->name = arena_strdup(call->a, v->name);
	m->portgroup = arena_strdup(call->a, v->portgroup);
	m->netstack = arena_strdup(call->a, v->netstack);
	m->mac = arena_strdup(call->a, mac);
	m->mtu = v->mtu;
	m->enabled = v->enabled;
	m->ipv4_type = v->has_ipv4 ? "static" : "none";
	m->ipv4_address = arena_strdup(call->a, a);
	m->ipv4_netmask = arena_strdup(call->a, k);
	char g[INET_ADDRSTRLEN] = "";
	if (v->has_ipv4 && v->gateway.s_addr)
		inet_ntop(AF_INET, &v->gateway, g, sizeof(g));
	m->ipv4_gateway = arena_strdup(call->a, g);
	m->tags = arena_calloc(call->a, NET_TAG_COUNT, sizeof(*m->tags));
	if (!m->tags || !m->name || !m->portgroup || !m->netstack || !m->mac || !m->ipv4_address ||
	    !m->ipv4_netmask)
		return NULL;
	for (unsigned t = 0; t < NET_TAG_COUNT; t++) {
		if (v->tags & (1u << t))
			m->tags[nt++] = (char *)net_tag_name((enum net_tag)t);
	}
	m->n_tags = nt;
	return m;
}

static int reply_vmk(struct hostd_call *call, struct hostd_network *n, const struct net_vmk *v)
{
	call->resp->interface = vmk_message(call, n, v);
	if (!call->resp->interface)
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED, "out of memory");
	call->resp->body_case = VMK__RESPONSE__BODY_INTERFACE;
	return VMK__STATUS__STATUS_OK;
}

int hostd_network_no_vmk(struct hostd_call *call, const char *name)
{
	return hostd_fail(call, VMK__STATUS__STATUS_NOT_FOUND,
	                  "no vmk adapter named \"%s\"; see network ip interface list", name);
}

/* The vmk adapter named name, or NULL with *status the failure; lock held. */
static struct net_vmk *vmk_or_fail(struct hostd_call *call, struct hostd_network *n,
                                   const char *name, int *status)
{
	struct net_vmk *v = net_find_vmk(&n->m, name);

	if (!v)
		*status = hostd_network_no_vmk(call, name);
	return v;
}

/* The common preamble of the changing operations: a managed network. */
static struct hostd_network *managed(struct hostd_call *call, int *status)
{
	struct hostd_network *n = call->h->network;

	if (!n || !n->m.managed) {
		*status = hostd_fail(call, VMK__STATUS__STATUS_FAILED,
		                     "hostd does not manage the network of host %s: add a network "
		                     "group with switches to %s and restart hostd",
		                     call->h->cfg.name, call->h->cfg.path);
		return NULL;
	}
	return n;
}

/* Persists the model; on failure the caller undoes its change. */
static int save(struct hostd_call *call, struct hostd_network *n, const char *what)
{
	int ret = netconf_save(&n->m, n->runtime_file);

	if (ret < 0)
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED, "%s: cannot write %s: %s", what,
		                  n->runtime_file, util_strerror(ret));
	return VMK__STATUS__STATUS_OK;
}

/* The names of the vmk adapters in a netstack (by_stack) or on a port
 * group, allocated in the call's arena. */
static char **vmk_names(struct hostd_call *call, const struct net_model *m, bool by_stack,
                        const char *value, size_t *count)
{
	char **v = arena_calloc(call->a, m->nvmks + 1, sizeof(*v));

	*count = 0;
	for (size_t j = 0; v && j < m->nvmks; j++) {
		const char *k = by_stack ? m->vmks[j].netstack : m->vmks[j].portgroup;
		if (strcmp(k, value) == 0)
			v[(*count)++] = arena_strdup(call->a, m->vmks[j].name);
	}
	return v;
}

/* ---- netstacks ---- */

int hostd_op_netstack_list(struct hostd_call *call, const Vmk__Request *req)
{
	struct hostd_network *n = call->h->network;
	Vmk__NetstackListResponse *r = arena_alloc(call->a, sizeof(*r));
	char ns[128];
	if (!n)
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED,
		                  "the network is not initialised");

	(void)req;
	if (!r)
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED, "out of memory");
	vmk__netstack_list_response__init(r);
	pthread_mutex_lock(&n->lock);
	r->netstacks = arena_calloc(call->a, n->m.nnetstacks + 1, sizeof(*r->netstacks));
	for (size_t i = 0; r->netstacks && i < n->m.nnetstacks; i++) {
		const struct net_netstack *s = &n->m.netstacks[i];
		Vmk__Netstack *m = arena_alloc(call->a, sizeof(*m));
		if (!m)
			break;
		vmk__netstack__init(m);
		netconf_ns_name(&n->m, s->name, ns, sizeof(ns));
		m->name = arena_strdup(call->a, s->name);
		m->namespace_ = arena_strdup(call->a, ns);
		m->source = s->builtin ? "builtin" : "runtime";
		m->interfaces = vmk_names(call, &n->m, true, s->name, &m->n_interfaces);
		r->netstacks[r->n_netstacks++] = m;
	}
	pthread_mutex_unlock(&n->lock);
	if (!r->netstacks || r->n_netstacks != n->m.nnetstacks)
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED, "out of memory");
	call->resp->netstack_list = r;
	call->resp->body_case = VMK__RESPONSE__BODY_NETSTACK_LIST;
	return VMK__STATUS__STATUS_OK;
}

int hostd_op_netstack_add(struct hostd_call *call, const Vmk__Request *req)
{
	const char *name = req->netstack_add->name;
	char why[300], ns[128];
	int status = VMK__STATUS__STATUS_OK, ret;
	struct hostd_network *n = managed(call, &status);

	if (!n)
		return status;
	if (!util_valid_name(name, 31, why, sizeof(why)))
		return hostd_fail(call, VMK__STATUS__STATUS_USAGE, "netstack name \"%s\": %s", name,
		                  why);
	pthread_mutex_lock(&n->lock);
	if (net_find_stack(&n->m, name)) {
		status = hostd_fail(call, VMK__STATUS__STATUS_CONFLICT,
		                    "netstack %s already exists; see network ip netstack list",
		                    name);
		goto out;
	}
	if (n->m.nnetstacks == NET_MAX_NETSTACKS) {
		status = hostd_fail(call, VMK__STATUS__STATUS_CONFLICT,
		                    "this host has %d netstacks, the most it supports; remove one "
		                    "first",
		                    NET_MAX_NETSTACKS);
		goto out;
	}
	netconf_ns_name(&n->m, name, ns, sizeof(ns));
	if (netns_exists(ns)) {
		status = hostd_fail(call, VMK__STATUS__STATUS_CONFLICT,
		                    "netstack %s: the namespace %s exists already (left by someone "
		                    "else?); delete it with ip netns del %s or pick another name",
		                    name, ns, ns);
		goto out;
	}
	if ((ret = netns_create(ns, why, sizeof(why))) < 0) {
		status = hostd_fail(call, VMK__STATUS__STATUS_FAILED, "netstack %s: %s", name, why);
		goto out;
	}
	struct net_netstack *s = &n->m.netstacks[n->m.nnetstacks++];
	memset(s, 0, sizeof(*s));
	snprintf(s->name, sizeof(s->name), "%s", name);
	if ((status = save(call, n, name)) != VMK__STATUS__STATUS_OK) {
		n->m.nnetstacks--;
		netns_delete(ns, why, sizeof(why));
		goto out;
	}
	Vmk__Netstack *m = arena_alloc(call->a, sizeof(*m));
	if (m) {
		vmk__netstack__init(m);
		m->name = arena_strdup(call->a, name);
		m->namespace_ = arena_strdup(call->a, ns);
		m->source = "runtime";
		call->resp->netstack = m;
		call->resp->body_case = VMK__RESPONSE__BODY_NETSTACK;
	}
	log_info("netstack %s added (namespace %s) by %s", name, ns, call->user);
out:
	pthread_mutex_unlock(&n->lock);
	return status;
}

int hostd_op_netstack_remove(struct hostd_call *call, const Vmk__Request *req)
{
	const char *name = req->netstack_remove->name;
	char why[300], ns[128], users[200] = "";
	int status = VMK__STATUS__STATUS_OK;
	struct hostd_network *n = managed(call, &status);

	if (!n)
		return status;
	pthread_mutex_lock(&n->lock);
	struct net_netstack *s = net_find_stack(&n->m, name);
	if (!s) {
		status = hostd_fail(call, VMK__STATUS__STATUS_NOT_FOUND,
		                    "no netstack named \"%s\"; see network ip netstack list", name);
		goto out;
	}
	if (s->builtin) {
		status = hostd_fail(call, VMK__STATUS__STATUS_CONFLICT,
		                    "netstack %s is built in and cannot be removed", name);
		goto out;
	}
	for (size_t i = 0; i < n->m.nvmks; i++) {
		if (strcmp(n->m.vmks[i].netstack, name) == 0)
			snprintf(users + strlen(users), sizeof(users) - strlen(users), "%s%s",
			         users[0] ? ", " : "", n->m.vmks[i].name);
	}
	if (users[0]) {
		status =
		        hostd_fail(call, VMK__STATUS__STATUS_CONFLICT,
		                   "netstack %s has interfaces (%s); remove them first (network ip "
		                   "interface remove -i ...)",
		                   name, users);
		goto out;
	}
	struct net_netstack saved = *s;
	size_t idx = (size_t)(s - n->m.netstacks);
	memmove(s, s + 1, (n->m.nnetstacks - idx - 1) * sizeof(*s));
	n->m.nnetstacks--;
	if ((status = save(call, n, name)) != VMK__STATUS__STATUS_OK) {
		memmove(&n->m.netstacks[idx + 1], &n->m.netstacks[idx],
		        (n->m.nnetstacks - idx) * sizeof(*s));
		n->m.netstacks[idx] = saved;
		n->m.nnetstacks++;
		goto out;
	}
	netconf_ns_name(&n->m, name, ns, sizeof(ns));
	if (netns_delete(ns, why, sizeof(why)) < 0)
		log_warn("netstack %s removed, but: %s", name, why);
	call->resp->body_case = VMK__RESPONSE__BODY_EMPTY;
	log_info("netstack %s removed by %s", name, call->user);
out:
	pthread_mutex_unlock(&n->lock);
	return status;
}

/* ---- port groups ---- */

int hostd_op_portgroup_list(struct hostd_call *call, const Vmk__Request *req)
{
	struct hostd_network *n = call->h->network;
	Vmk__PortgroupListResponse *r = arena_alloc(call->a, sizeof(*r));
	int nl = n ? nl_open() : -1;
	if (!n)
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED,
		                  "the network is not initialised");

	(void)req;
	if (!r) {
		if (nl >= 0)
			nl_close(nl);
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED, "out of memory");
	}
	vmk__portgroup_list_response__init(r);
	pthread_mutex_lock(&n->lock);
	r->portgroups = arena_calloc(call->a, n->m.nportgroups + 1, sizeof(*r->portgroups));
	for (size_t i = 0; r->portgroups && i < n->m.nportgroups; i++) {
		const struct net_portgroup *pg = &n->m.portgroups[i];
		Vmk__Portgroup *m = arena_alloc(call->a, sizeof(*m));
		struct nl_link l;
		if (!m)
			break;
		vmk__portgroup__init(m);
		m->name = arena_strdup(call->a, pg->name);
		m->vswitch = arena_strdup(call->a, pg->vswitch);
		m->vlan_id = pg->vlan;
		if (pg->uplink[0]) {
			m->uplinks = arena_calloc(call->a, 1, sizeof(*m->uplinks));
			if (m->uplinks) {
				m->uplinks[0] = arena_strdup(call->a, pg->uplink);
				m->n_uplinks = 1;
			}
			if (nl >= 0 && nl_link_get(nl, pg->uplink, &l) == 0)
				m->mtu = l.mtu;
		}
		m->interfaces = vmk_names(call, &n->m, false, pg->name, &m->n_interfaces);
		r->portgroups[r->n_portgroups++] = m;
	}
	pthread_mutex_unlock(&n->lock);
	if (nl >= 0)
		nl_close(nl);
	if (!r->portgroups || r->n_portgroups != n->m.nportgroups)
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED, "out of memory");
	call->resp->portgroup_list = r;
	call->resp->body_case = VMK__RESPONSE__BODY_PORTGROUP_LIST;
	return VMK__STATUS__STATUS_OK;
}

/* ---- vmk adapters ---- */

int hostd_op_interface_list(struct hostd_call *call, const Vmk__Request *req)
{
	struct hostd_network *n = call->h->network;
	Vmk__InterfaceListResponse *r = arena_alloc(call->a, sizeof(*r));
	if (!n)
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED,
		                  "the network is not initialised");

	(void)req;
	if (!r)
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED, "out of memory");
	vmk__interface_list_response__init(r);
	pthread_mutex_lock(&n->lock);
	r->interfaces = arena_calloc(call->a, n->m.nvmks + 1, sizeof(*r->interfaces));
	for (size_t i = 0; r->interfaces && i < n->m.nvmks; i++) {
		Vmk__VmkInterface *m = vmk_message(call, n, &n->m.vmks[i]);
		if (!m)
			break;
		r->interfaces[r->n_interfaces++] = m;
	}
	pthread_mutex_unlock(&n->lock);
	if (!r->interfaces || r->n_interfaces != n->m.nvmks)
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED, "out of memory");
	call->resp->interface_list = r;
	call->resp->body_case = VMK__RESPONSE__BODY_INTERFACE_LIST;
	return VMK__STATUS__STATUS_OK;
}

int hostd_op_interface_get(struct hostd_call *call, const Vmk__Request *req)
{
	struct hostd_network *n = call->h->network;
	const char *name = req->interface_get->name;
	int status;
	if (!n)
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED,
		                  "the network is not initialised");

	pthread_mutex_lock(&n->lock);
	const struct net_vmk *v = vmk_or_fail(call, n, name, &status);
	if (v)
		status = reply_vmk(call, n, v);
	pthread_mutex_unlock(&n->lock);
	return status;
}

/* MTU checks shared by add and set; lock held. */
static int check_mtu(struct hostd_call *call, struct hostd_network *n, const char *vmk,
                     const struct net_portgroup *pg, unsigned mtu)
{
	char what[128];

	if (mtu < NET_MIN_MTU || mtu > NET_MAX_MTU)
		return hostd_fail(call, VMK__STATUS__STATUS_USAGE,
		                  "%s: MTU %u is outside %d..%d; pick an MTU in that range", vmk,
		                  mtu, NET_MIN_MTU, NET_MAX_MTU);
	int nl = nl_open();
	unsigned limit = nl >= 0 ? pg_mtu_limit(&n->m, nl, pg, what, sizeof(what)) : NET_MAX_MTU;
	if (nl >= 0)
		nl_close(nl);
	if (mtu > limit)
		return hostd_fail(
		        call, VMK__STATUS__STATUS_USAGE,
		        "%s: MTU %u exceeds the MTU %u of %s; use -m %u or less, or raise "
		        "the uplink's MTU",
		        vmk, mtu, limit, what, limit);
	return VMK__STATUS__STATUS_OK;
}

int hostd_op_interface_add(struct hostd_call *call, const Vmk__Request *req)
{
	const Vmk__InterfaceAddRequest *r = req->interface_add;
	const char *stack = r->netstack[0] ? r->netstack : NET_DEFAULT_STACK;
	unsigned mtu = r->mtu ? r->mtu : 1500;
	char why[300];
	int status = VMK__STATUS__STATUS_OK;
	struct hostd_network *n = managed(call, &status);

	if (!n)
		return status;
	if (!net_valid_vmk_name(r->name))
		return hostd_fail(call, VMK__STATUS__STATUS_USAGE,
		                  "interface name \"%s\": use vmk followed by a number (vmk1)",
		                  r->name);
	pthread_mutex_lock(&n->lock);
	const struct net_portgroup *pg = net_find_pg(&n->m, r->portgroup);
	if (net_find_vmk(&n->m, r->name)) {
		status = hostd_fail(call, VMK__STATUS__STATUS_CONFLICT,
		                    "%s already exists; pick another name or remove it first",
		                    r->name);
	} else if (!pg) {
		status = hostd_fail(call, VMK__STATUS__STATUS_NOT_FOUND,
		                    "%s: no port group named \"%s\"; see network vswitch standard "
		                    "portgroup list",
		                    r->name, r->portgroup);
	} else if (!net_find_stack(&n->m, stack)) {
		status = hostd_fail(call, VMK__STATUS__STATUS_NOT_FOUND,
		                    "%s: no netstack named \"%s\"; add it with network ip netstack "
		                    "add -N %s",
		                    r->name, stack, stack);
	} else if (n->m.nvmks == NET_MAX_VMKS) {
		status = hostd_fail(call, VMK__STATUS__STATUS_CONFLICT,
		                    "this host has %d vmk adapters, the most it supports",
		                    NET_MAX_VMKS);
	} else {
		status = check_mtu(call, n, r->name, pg, mtu);
	}
	if (status != VMK__STATUS__STATUS_OK)
		goto out;
	struct net_vmk *v = &n->m.vmks[n->m.nvmks];
	memset(v, 0, sizeof(*v));
	snprintf(v->name, sizeof(v->name), "%s", r->name);
	snprintf(v->portgroup, sizeof(v->portgroup), "%s", pg->name);
	snprintf(v->netstack, sizeof(v->netstack), "%s", stack);
	v->mtu = mtu;
	v->enabled = true;
	if (vmk_apply(n, v, why, sizeof(why)) < 0) {
		vmk_destroy(v);
		status = hostd_fail(call, VMK__STATUS__STATUS_FAILED, "%s not added: %s", r->name,
		                    why);
		goto out;
	}
	n->m.nvmks++;
	if ((status = save(call, n, r->name)) != VMK__STATUS__STATUS_OK) {
		n->m.nvmks--;
		vmk_destroy(v);
		goto out;
	}
	status = reply_vmk(call, n, v);
	log_info("%s added on port group \"%s\", netstack %s, MTU %u by %s", v->name, pg->name,
	         stack, mtu, call->user);
out:
	pthread_mutex_unlock(&n->lock);
	return status;
}

static int management_count(const struct net_model *m)
{
	int c = 0;

	for (size_t i = 0; i < m->nvmks; i++)
		c += (m->vmks[i].tags & (1u << NET_TAG_MANAGEMENT)) != 0;
	return c;
}

int hostd_op_interface_remove(struct hostd_call *call, const Vmk__Request *req)
{
	const char *name = req->interface_remove->name;
	int status = VMK__STATUS__STATUS_OK;
	struct hostd_network *n = managed(call, &status);

	if (!n)
		return status;
	pthread_mutex_lock(&n->lock);
	struct net_vmk *v = vmk_or_fail(call, n, name, &status);
	if (!v)
		goto out;
	if ((v->tags & (1u << NET_TAG_MANAGEMENT)) && management_count(&n->m) == 1) {
		status = hostd_fail(
		        call, VMK__STATUS__STATUS_CONFLICT,
		        "%s carries the host's last Management tag: removing it would cut "
		        "the host off; tag another adapter Management first",
		        name);
		goto out;
	}
	struct net_vmk saved = *v;
	size_t idx = (size_t)(v - n->m.vmks);
	memmove(v, v + 1, (n->m.nvmks - idx - 1) * sizeof(*v));
	n->m.nvmks--;
	if ((status = save(call, n, name)) != VMK__STATUS__STATUS_OK) {
		memmove(&n->m.vmks[idx + 1], &n->m.vmks[idx], (n->m.nvmks - idx) * sizeof(*v));
		n->m.vmks[idx] = saved;
		n->m.nvmks++;
		goto out;
	}
	vmk_destroy(&saved);
	call->resp->body_case = VMK__RESPONSE__BODY_EMPTY;
	log_info("%s removed by %s", name, call->user);
out:
	pthread_mutex_unlock(&n->lock);
	return status;
}

/* Applies a changed copy of v, persists it, or restores v; lock held. */
static int change_vmk(struct hostd_call *call, struct hostd_network *n, struct net_vmk *v,
                      const struct net_vmk *changed)
{
	struct net_vmk old = *v;
	char why[300];
	int status;

	*v = *changed;
	if (vmk_apply(n, v, why, sizeof(why)) < 0) {
		*v = old;
		vmk_apply(n, v, why, sizeof(why));
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED, "%s unchanged: %s", v->name,
		                  why);
	}
	if ((status = save(call, n, v->name)) != VMK__STATUS__STATUS_OK) {
		*v = old;
		vmk_apply(n, v, why, sizeof(why));
		return status;
	}
	return reply_vmk(call, n, v);
}

int hostd_op_interface_set(struct hostd_call *call, const Vmk__Request *req)
{
	const Vmk__InterfaceSetRequest *r = req->interface_set;
	int status = VMK__STATUS__STATUS_OK;
	struct hostd_network *n = managed(call, &status);

	if (!n)
		return status;
	if (r->enabled > 2)
		return hostd_fail(call, VMK__STATUS__STATUS_USAGE,
		                  "%s: enabled must be 0 (unchanged), 1 or 2", r->name);
	pthread_mutex_lock(&n->lock);
	struct net_vmk *v = vmk_or_fail(call, n, r->name, &status);
	if (!v)
		goto out;
	struct net_vmk c = *v;
	if (r->mtu) {
		status = check_mtu(call, n, r->name, net_find_pg(&n->m, v->portgroup), r->mtu);
		if (status != VMK__STATUS__STATUS_OK)
			goto out;
		c.mtu = r->mtu;
	}
	if (r->enabled)
		c.enabled = r->enabled == 1;
	status = change_vmk(call, n, v, &c);
	if (status == VMK__STATUS__STATUS_OK)
		log_info("%s set: MTU %u, %s by %s", v->name, v->mtu,
		         v->enabled ? "enabled" : "disabled", call->user);
out:
	pthread_mutex_unlock(&n->lock);
	return status;
}

int hostd_op_interface_ipv4_set(struct hostd_call *call, const Vmk__Request *req)
{
	const Vmk__InterfaceIpv4SetRequest *r = req->interface_ipv4_set;
	struct in_addr ip = { 0 }, mask = { 0 }, gw = { 0 };
	int status = VMK__STATUS__STATUS_OK;
	struct hostd_network *n = managed(call, &status);

	if (!n)
		return status;
	bool none = strcmp(r->type, "none") == 0;
	if (none && r->gateway[0])
		return hostd_fail(call, VMK__STATUS__STATUS_USAGE,
		                  "%s: a gateway needs an address: use -t static -I ADDRESS -N "
		                  "NETMASK -g GATEWAY",
		                  r->name);
	if (!none && strcmp(r->type, "static") != 0)
		return hostd_fail(call, VMK__STATUS__STATUS_USAGE,
		                  "%s: -t %s is not supported; use -t static (with -I ADDRESS -N "
		                  "NETMASK) or -t none",
		                  r->name, r->type);
	if (!none) {
		if (inet_pton(AF_INET, r->address, &ip) != 1 || ip.s_addr == 0 ||
		    (ntohl(ip.s_addr) >> 28) >= 14 || (ntohl(ip.s_addr) >> 24) == 127)
			return hostd_fail(call, VMK__STATUS__STATUS_USAGE,
			                  "%s: \"%s\" is not a usable IPv4 address; give a unicast "
			                  "address such as 198.18.2.11",
			                  r->name, r->address);
		uint32_t mv = 0;
		if (inet_pton(AF_INET, r->netmask, &mask) == 1)
			mv = ntohl(mask.s_addr);
		if (mv == 0 || (~mv & (~mv + 1)) != 0 || mv == 0xffffffffu)
			return hostd_fail(
			        call, VMK__STATUS__STATUS_USAGE,
			        "%s: \"%s\" is not a valid netmask; give contiguous ones such "
			        "as 255.255.255.0",
			        r->name, r->netmask);
		uint32_t host = ntohl(ip.s_addr) & ~mv;
		if (host == 0 || host == ~mv)
			return hostd_fail(
			        call, VMK__STATUS__STATUS_USAGE,
			        "%s: %s is the network or broadcast address of its subnet "
			        "with netmask %s; pick a host address",
			        r->name, r->address, r->netmask);
		if (r->gateway[0]) {
			uint32_t g = 0;
			if (inet_pton(AF_INET, r->gateway, &gw) == 1)
				g = ntohl(gw.s_addr);
			if ((g & mv) != (ntohl(ip.s_addr) & mv) || (g & ~mv) == 0 ||
			    (g & ~mv) == ~mv || gw.s_addr == ip.s_addr)
				return hostd_fail(
				        call, VMK__STATUS__STATUS_USAGE,
				        "%s: gateway \"%s\" is not another host address of "
				        "%s/%s; the gateway must be on the adapter's subnet",
				        r->name, r->gateway, r->address, r->netmask);
		}
	}
	pthread_mutex_lock(&n->lock);
	struct net_vmk *v = vmk_or_fail(call, n, r->name, &status);
	if (!v)
		goto out;
	for (size_t i = 0; !none && i < n->m.nvmks; i++) {
		const struct net_vmk *o = &n->m.vmks[i];
		if (o != v && o->has_ipv4 && o->ipv4.s_addr == ip.s_addr &&
		    strcmp(o->netstack, v->netstack) == 0) {
			status = hostd_fail(call, VMK__STATUS__STATUS_CONFLICT,
			                    "%s: %s is already the address of %s in netstack %s",
			                    r->name, r->address, o->name, o->netstack);
			goto out;
		}
	}
	struct net_vmk c = *v;
	c.has_ipv4 = !none;
	c.ipv4 = ip;
	c.netmask = mask;
	c.gateway = gw;
	status = change_vmk(call, n, v, &c);
	if (status == VMK__STATUS__STATUS_OK)
		log_info("%s: IPv4 %s %s/%s by %s", v->name, r->type, r->address, r->netmask,
		         call->user);
out:
	pthread_mutex_unlock(&n->lock);
	return status;
}

static int tag_op(struct hostd_call *call, const Vmk__InterfaceTagRequest *r, bool add)
{
	enum net_tag tag;
	int status = VMK__STATUS__STATUS_OK;
	struct hostd_network *n = managed(call, &status);

	if (!n)
		return status;
	if (net_tag_parse(r->tag, &tag) < 0)
		return hostd_fail(call, VMK__STATUS__STATUS_USAGE,
		                  "tag \"%s\" is unknown; use Management, VMotion, "
		                  "vSphereProvisioning, faultToleranceLogging, vSphereReplication, "
		                  "VSAN, vSphereBackupNFC, NVMeTCP or NVMeRDMA",
		                  r->tag);
	pthread_mutex_lock(&n->lock);
	struct net_vmk *v = vmk_or_fail(call, n, r->name, &status);
	if (!v)
		goto out;
	unsigned bit = 1u << tag;
	if (add && tag == NET_TAG_FT) {
		for (size_t i = 0; i < n->m.nvmks; i++) {
			if (&n->m.vmks[i] != v && (n->m.vmks[i].tags & bit)) {
				status = hostd_fail(
				        call, VMK__STATUS__STATUS_CONFLICT,
				        "%s already carries faultToleranceLogging; a host has "
				        "at most one FT logging adapter (remove the tag there "
				        "first)",
				        n->m.vmks[i].name);
				goto out;
			}
		}
	}
	if (!add && tag == NET_TAG_MANAGEMENT && (v->tags & bit) && management_count(&n->m) == 1) {
		status =
		        hostd_fail(call, VMK__STATUS__STATUS_CONFLICT,
		                   "%s carries the host's last Management tag; tag another adapter "
		                   "Management first",
		                   v->name);
		goto out;
	}
	unsigned old = v->tags;
	v->tags = add ? v->tags | bit : v->tags & ~bit;
	if (v->tags != old && (status = save(call, n, v->name)) != VMK__STATUS__STATUS_OK) {
		v->tags = old;
		goto out;
	}
	status = reply_vmk(call, n, v);
	if (v->tags != old)
		log_info("%s: tag %s %s by %s", v->name, net_tag_name(tag),
		         add ? "added" : "removed", call->user);
out:
	pthread_mutex_unlock(&n->lock);
	return status;
}

int hostd_op_interface_tag_add(struct hostd_call *call, const Vmk__Request *req)
{
	return tag_op(call, req->interface_tag_add, true);
}

int hostd_op_interface_tag_remove(struct hostd_call *call, const Vmk__Request *req)
{
	return tag_op(call, req->interface_tag_remove, false);
}

bool hostd_network_managed(struct hostd *h)
{
	return h->network && h->network->m.managed;
}

int hostd_network_portgroup_bridge(struct hostd *h, const char *portgroup, char *bridge,
                                   unsigned *mtu, char *err, size_t errlen)
{
	struct hostd_network *n = h->network;
	char what[128], names[300] = "";
	int ret = 0;

	if (!n || !n->m.managed) {
		snprintf(err, errlen,
		         "host %s does not manage its network (no network group in %s): a NIC "
		         "on port group \"%s\" needs one",
		         h->cfg.name, h->cfg.path, portgroup);
		return -EOPNOTSUPP;
	}
	pthread_mutex_lock(&n->lock);
	const struct net_portgroup *pg = net_find_pg(&n->m, portgroup);
	if (!pg) {
		for (size_t i = 0; i < n->m.nportgroups; i++)
			snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s\"%s\"",
			         i ? ", " : "", n->m.portgroups[i].name);
		snprintf(err, errlen, "host %s has no port group \"%s\" (it has %s)", h->cfg.name,
		         portgroup, names[0] ? names : "none");
		ret = -ENOENT;
	} else {
		int nl = nl_open();
		snprintf(bridge, IF_NAMESIZE, "%s", pg->bridge);
		*mtu = nl >= 0 ? pg_mtu_limit(&n->m, nl, pg, what, sizeof(what)) : 1500;
		if (*mtu > 9000 || !pg->uplink[0])
			*mtu = 1500;
		if (nl >= 0)
			nl_close(nl);
	}
	pthread_mutex_unlock(&n->lock);
	return ret;
}

int hostd_network_vmk_ns(struct hostd *h, const char *vmk, char *netstack, size_t stacklen,
                         int *nsfd)
{
	struct hostd_network *n = h->network;
	int ret = -ENOENT;

	*nsfd = -1;
	if (!n)
		return -ENOENT;
	pthread_mutex_lock(&n->lock);
	const struct net_vmk *v = net_find_vmk(&n->m, vmk);
	if (v) {
		snprintf(netstack, stacklen, "%s", v->netstack);
		ret = stack_fd(&n->m, v->netstack, nsfd);
	}
	pthread_mutex_unlock(&n->lock);
	return ret;
}

void hostd_network_route(struct hostd *h, enum net_tag tag, const char *label, const char *dest,
                         const char *addr, uint32_t port, const char *dest_interface,
                         const char *dest_note, struct net_route *r)
{
	char src_addr[64] = "", src_vmk[16] = "", note[300] = "";

	memset(r, 0, sizeof(*r));
	snprintf(r->host, sizeof(r->host), "%s", addr);
	r->port = (uint16_t)port;
	if (dest_note[0] || !dest_interface[0])
		tag = NET_TAG_MANAGEMENT;
	if (hostd_network_traffic(h, tag, src_addr, sizeof(src_addr), r->netns, sizeof(r->netns),
	                          src_vmk, sizeof(src_vmk), note, sizeof(note)) < 0)
		hostd_mgmt_address(h, src_addr, sizeof(src_addr));
	else if (tag == NET_TAG_MANAGEMENT)
		snprintf(note, sizeof(note), "%s: Management %s too", h->cfg.name, src_vmk);
	snprintf(r->stream, sizeof(r->stream), "%s%s%s%s -> %s %s%s%s:%u", label, src_vmk,
	         src_vmk[0] ? " " : "", src_addr, dest, dest_interface,
	         dest_interface[0] ? " " : "", addr, port);
	snprintf(r->notes, sizeof(r->notes), "%s%s%s", dest_note,
	         note[0] && dest_note[0] ? "; " : "", note);
}
