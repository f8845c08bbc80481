/* The network model's files: host.cfg's network group (switches, port
 * groups, the first netstacks and vmk adapters) and <state_dir>/network.cfg
 * (netstacks and vmk adapters as changed at runtime). Lenient: each bad
 * entry is logged as "FILE:LINE: what; fix" and skipped. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "confload.h"
#include "log.h"
#include "network.h"
#include "util.h"

#define NETCONF_MAX_BYTES (1u << 20)

static const char *const tag_names[NET_TAG_COUNT] = {
	"Management",         "VMotion", "vSphereProvisioning", "faultToleranceLogging",
	"vSphereReplication", "VSAN",    "vSphereBackupNFC",    "NVMeTCP",
	"NVMeRDMA",
};

const char *net_tag_name(enum net_tag t)
{
	return (unsigned)t < NET_TAG_COUNT ? tag_names[t] : "?";
}

int net_tag_parse(const char *s, enum net_tag *t)
{
	for (unsigned i = 0; i < NET_TAG_COUNT; i++) {
		if (strcasecmp(s, tag_names[i]) == 0) {
			*t = (enum net_tag)i;
			return 0;
		}
	}
	return -EINVAL;
}

void net_pg_bridge(const char *portgroup, char out[16])
{
	snprintf(out, 16, "vpg%08x", util_fnv1a(UTIL_FNV1A_INIT, portgroup));
}

bool net_valid_vmk_name(const char *s)
{
	size_t n = strlen(s);

	if (n < 4 || n > 8 || strncmp(s, "vmk", 3) != 0)
		return false;
	for (size_t i = 3; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
	}
	return true;
}

/* Linux interface names: 1..15 characters, no '/', ':' or whitespace */
static bool valid_ifname(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 15)
		return false;
	for (; *s; s++) {
		if (*s == '/' || *s == ':' || *s <= ' ' || *s == 0x7f)
			return false;
	}
	return true;
}

/* Port group names: printable, 1..63 characters (spaces allowed, as ESXi's
 * "Management Network"). */
static bool valid_pg_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 63)
		return false;
	for (; *s; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f || *s == '"' || *s == '\\')
			return false;
	}
	return true;
}

struct net_netstack *net_find_stack(struct net_model *m, const char *name)
{
	for (size_t i = 0; i < m->nnetstacks; i++) {
		if (strcmp(m->netstacks[i].name, name) == 0)
			return &m->netstacks[i];
	}
	return NULL;
}

struct net_portgroup *net_find_pg(struct net_model *m, const char *name)
{
	for (size_t i = 0; i < m->nportgroups; i++) {
		if (strcmp(m->portgroups[i].name, name) == 0)
			return &m->portgroups[i];
	}
	return NULL;
}

struct net_vmk *net_find_vmk(struct net_model *m, const char *name)
{
	for (size_t i = 0; i < m->nvmks; i++) {
		if (strcmp(m->vmks[i].name, name) == 0)
			return &m->vmks[i];
	}
	return NULL;
}

#define SKIP(file, s, ...)                                                                         \
	do {                                                                                       \
		char msg_[300];                                                                    \
		snprintf(msg_, sizeof(msg_), __VA_ARGS__);                                         \
		log_warn("%s:%d: %s (entry skipped)", file, config_setting_source_line(s), msg_);  \
	} while (0)

static void load_switches(struct net_model *m, const char *file, config_setting_t *list)
{
	char bridge[16];

	for (int i = 0; list && i < config_setting_length(list); i++) {
		config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
		const char *name = NULL;
		int mtu = 0;
		char why[200];
		if (!config_setting_is_group(g) ||
		    !config_setting_lookup_string(g, "name", &name)) {
			SKIP(file, g,
			     "a switch needs a name: { name = \"vSwitch0\"; uplinks = "
			     "[\"eth1\"]; portgroups = ( ... ); }");
			continue;
		}
		if (!util_valid_name(name, 31, why, sizeof(why))) {
			SKIP(file, g, "switch name \"%s\": %s", name, why);
			continue;
		}
		if (m->nswitches == NET_MAX_SWITCHES) {
			SKIP(file, g, "switch %s: at most %d switches", name, NET_MAX_SWITCHES);
			continue;
		}
		config_setting_lookup_int(g, "mtu", &mtu);
		if (mtu && (mtu < NET_MIN_MTU || mtu > NET_MAX_MTU)) {
			SKIP(file, g, "switch %s: mtu %d is outside %d..%d", name, mtu, NET_MIN_MTU,
			     NET_MAX_MTU);
			continue;
		}
		struct net_switch *sw = &m->switches[m->nswitches];
		memset(sw, 0, sizeof(*sw));
		snprintf(sw->name, sizeof(sw->name), "%s", name);
		sw->mtu = (unsigned)mtu;
		config_setting_t *ul = config_setting_lookup(g, "uplinks");
		for (int j = 0; ul && j < config_setting_length(ul); j++) {
			const char *u = config_setting_get_string_elem(ul, (unsigned)j);
			if (!u || !valid_ifname(u) || sw->nuplinks == NET_MAX_UPLINKS) {
				SKIP(file, ul,
				     "switch %s: uplink %d must be an interface name (at most "
				     "15 characters), at most %d uplinks",
				     name, j, NET_MAX_UPLINKS);
				continue;
			}
			snprintf(sw->uplinks[sw->nuplinks++], 16, "%s", u);
		}
		config_setting_t *pgs = config_setting_lookup(g, "portgroups");
		for (int j = 0; pgs && j < config_setting_length(pgs); j++) {
			config_setting_t *p = config_setting_get_elem(pgs, (unsigned)j);
			const char *pname = NULL, *uplink = "";
			int vlan = 0;
			if (!config_setting_is_group(p) ||
			    !config_setting_lookup_string(p, "name", &pname) ||
			    !valid_pg_name(pname)) {
				SKIP(file, p,
				     "switch %s: a port group needs a name of 1..63 printable "
				     "characters: { name = \"VM Network\"; uplink = \"eth1\"; }",
				     name);
				continue;
			}
			config_setting_lookup_string(p, "uplink", &uplink);
			config_setting_lookup_int(p, "vlan", &vlan);
			bool known = !uplink[0];
			for (size_t k = 0; k < sw->nuplinks; k++)
				known |= strcmp(sw->uplinks[k], uplink) == 0;
			if (!known) {
				SKIP(file, p,
				     "port group \"%s\": uplink %s is not an uplink of switch %s; "
				     "add it to its uplinks",
				     pname, uplink, name);
				continue;
			}
			if (vlan < 0 || vlan > 4094) {
				SKIP(file, p, "port group \"%s\": vlan %d is outside 0..4094",
				     pname, vlan);
				continue;
			}
			if (net_find_pg(m, pname)) {
				SKIP(file, p, "port group \"%s\" is defined twice", pname);
				continue;
			}
			/* an uplink is a port of one bridge: two port groups may share
			 * it only on different VLANs */
			const char *clash = NULL;
			for (size_t k = 0; uplink[0] && k < m->nportgroups; k++)
				if (!strcmp(m->portgroups[k].uplink, uplink) &&
				    m->portgroups[k].vlan == (unsigned)vlan)
					clash = m->portgroups[k].name;
			if (clash) {
				SKIP(file, p,
				     "port group \"%s\": uplink %s (VLAN %d) is port group "
				     "\"%s\"'s already; give one of them another uplink or VLAN",
				     pname, uplink, vlan, clash);
				continue;
			}
			if (m->nportgroups == NET_MAX_PORTGROUPS) {
				SKIP(file, p, "at most %d port groups", NET_MAX_PORTGROUPS);
				continue;
			}
			struct net_portgroup *pg = &m->portgroups[m->nportgroups];
			memset(pg, 0, sizeof(*pg));
			snprintf(pg->name, sizeof(pg->name), "%s", pname);
			snprintf(pg->vswitch, sizeof(pg->vswitch), "%s", name);
			snprintf(pg->uplink, sizeof(pg->uplink), "%s", uplink);
			pg->vlan = (unsigned)vlan;
			net_pg_bridge(pname, bridge);
			memcpy(pg->bridge, bridge, sizeof(pg->bridge));
			m->nportgroups++;
		}
		m->nswitches++;
	}
}

static void add_stack(struct net_model *m, const char *name, bool builtin)
{
	if (net_find_stack(m, name) || m->nnetstacks == NET_MAX_NETSTACKS)
		return;
	struct net_netstack *s = &m->netstacks[m->nnetstacks++];
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->builtin = builtin;
}

static void load_netstacks(struct net_model *m, const char *file, config_setting_t *list)
{
	char why[200];

	for (int i = 0; list && i < config_setting_length(list); i++) {
		const char *name = config_setting_get_string_elem(list, (unsigned)i);
		if (!name || !util_valid_name(name, 31, why, sizeof(why))) {
			SKIP(file, list,
			     "netstack %d: a name of letters, digits, '.', '_', '-' (at most "
			     "31)",
			     i);
			continue;
		}
		if (m->nnetstacks == NET_MAX_NETSTACKS) {
			SKIP(file, list, "netstack %s: at most %d netstacks", name,
			     NET_MAX_NETSTACKS);
			continue;
		}
		add_stack(m, name, false);
	}
}

static int parse_ipv4(const char *s, struct in_addr *a)
{
	return inet_pton(AF_INET, s, a) == 1 ? 0 : -EINVAL;
}

static bool valid_netmask(struct in_addr m)
{
	uint32_t v = ntohl(m.s_addr);
	return v != 0 && (~v & (~v + 1)) == 0; /* contiguous ones */
}

static void load_vmks(struct net_model *m, const char *file, config_setting_t *list)
{
	for (int i = 0; list && i < config_setting_length(list); i++) {
		config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
		const char *name = NULL, *pg = NULL, *stack = NET_DEFAULT_STACK, *ip = NULL,
		           *mask = NULL;
		int mtu = 1500, enabled = 1;
		if (!config_setting_is_group(g) ||
		    !config_setting_lookup_string(g, "name", &name) || !net_valid_vmk_name(name)) {
			SKIP(file, g,
			     "a vmk adapter needs a name vmkN: { name = \"vmk1\"; portgroup "
			     "= \"vMotion\"; netstack = \"vmotion\"; }");
			continue;
		}
		if (net_find_vmk(m, name)) {
			SKIP(file, g, "%s is defined twice", name);
			continue;
		}
		if (!config_setting_lookup_string(g, "portgroup", &pg) || !net_find_pg(m, pg)) {
			SKIP(file, g,
			     "%s: portgroup \"%s\" is not a port group of a switch in host.cfg",
			     name, pg ? pg : "");
			continue;
		}
		config_setting_lookup_string(g, "netstack", &stack);
		if (!net_find_stack(m, stack)) {
			SKIP(file, g, "%s: netstack \"%s\" does not exist; add it to netstacks",
			     name, stack);
			continue;
		}
		config_setting_lookup_int(g, "mtu", &mtu);
		if (mtu < NET_MIN_MTU || mtu > NET_MAX_MTU) {
			SKIP(file, g, "%s: mtu %d is outside %d..%d", name, mtu, NET_MIN_MTU,
			     NET_MAX_MTU);
			continue;
		}
		config_setting_lookup_bool(g, "enabled", &enabled);
		struct net_vmk v = { .mtu = (unsigned)mtu,
			             .enabled = enabled,
			             .line = config_setting_source_line(g) };
		snprintf(v.name, sizeof(v.name), "%s", name);
		snprintf(v.portgroup, sizeof(v.portgroup), "%s", pg);
		snprintf(v.netstack, sizeof(v.netstack), "%s", stack);
		const char *gw = NULL;
		config_setting_lookup_string(g, "gateway", &gw);
		config_setting_lookup_string(g, "ipv4", &ip);
		config_setting_lookup_string(g, "netmask", &mask);
		if (ip || mask) {
			if (!ip || !mask || parse_ipv4(ip, &v.ipv4) < 0 ||
			    parse_ipv4(mask, &v.netmask) < 0 || !valid_netmask(v.netmask)) {
				SKIP(file, g,
				     "%s: ipv4 and netmask must both be given, as dotted quads "
				     "with a contiguous netmask (ipv4 = \"198.18.2.11\"; netmask "
				     "= \"255.255.255.0\";)",
				     name);
				continue;
			}
			v.has_ipv4 = true;
		}
		if (gw && (!v.has_ipv4 || parse_ipv4(gw, &v.gateway) < 0 ||
		           ((v.gateway.s_addr ^ v.ipv4.s_addr) & v.netmask.s_addr) != 0)) {
			SKIP(file, g,
			     "%s: gateway \"%s\" must be an address on the subnet of its "
			     "ipv4/netmask",
			     name, gw);
			continue;
		}
		config_setting_t *tags = config_setting_lookup(g, "tags");
		bool bad = false;
		for (int j = 0; tags && j < config_setting_length(tags); j++) {
			const char *t = config_setting_get_string_elem(tags, (unsigned)j);
			enum net_tag tag;
			if (!t || net_tag_parse(t, &tag) < 0) {
				SKIP(file, tags,
				     "%s: tag \"%s\" is unknown; use Management, VMotion, "
				     "vSphereProvisioning, faultToleranceLogging, ...",
				     name, t ? t : "");
				bad = true;
				break;
			}
			v.tags |= 1u << tag;
		}
		if (bad)
			continue;
		if (m->nvmks == NET_MAX_VMKS) {
			SKIP(file, g, "%s: at most %d vmk adapters", name, NET_MAX_VMKS);
			continue;
		}
		m->vmks[m->nvmks++] = v;
	}
}

void netconf_load(struct net_model *m, const char *host_cfg, const char *runtime_file,
                  const char *host_name)
{
	config_t cfg;
	char err[600];

	memset(m, 0, sizeof(*m));
	snprintf(m->ns_prefix, sizeof(m->ns_prefix), "vmk-%s-", host_name);
	add_stack(m, NET_DEFAULT_STACK, true);
	add_stack(m, "vmotion", true);
	add_stack(m, "vSphereProvisioning", true);
	if (conf_read(&cfg, host_cfg, NETCONF_MAX_BYTES, err, sizeof(err)) < 0) {
		log_warn("%s; the network is not managed", err);
		config_destroy(&cfg);
		return;
	}
	config_setting_t *net = config_lookup(&cfg, "network");
	if (!net) {
		config_destroy(&cfg);
		return;
	}
	m->managed = true;
	const char *prefix;
	char why[200];
	if (config_setting_lookup_string(net, "namespace_prefix", &prefix)) {
		if (util_valid_name(prefix, 40, why, sizeof(why)))
			snprintf(m->ns_prefix, sizeof(m->ns_prefix), "%s", prefix);
		else
			log_warn("%s:%d: network.namespace_prefix \"%s\": %s (using %s)", host_cfg,
			         config_setting_source_line(net), prefix, why, m->ns_prefix);
	}
	load_switches(m, host_cfg, config_setting_lookup(net, "switches"));

	/* netstacks and vmk adapters: network.cfg's when it is there */
	config_t rt;
	int ret = conf_read(&rt, runtime_file, NETCONF_MAX_BYTES, err, sizeof(err));
	if (ret == 0) {
		load_netstacks(m, runtime_file, config_lookup(&rt, "netstacks"));
		load_vmks(m, runtime_file, config_lookup(&rt, "interfaces"));
	} else {
		if (ret != -ENOENT)
			log_warn(
			        "%s; using the netstacks and vmk adapters of %s (fix or remove the "
			        "file)",
			        err, host_cfg);
		load_netstacks(m, host_cfg, config_setting_lookup(net, "netstacks"));
		load_vmks(m, host_cfg, config_setting_lookup(net, "interfaces"));
	}
	config_destroy(&rt);
	config_destroy(&cfg);
}

int netconf_save(const struct net_model *m, const char *runtime_file)
{
	char *buf = NULL, a[INET_ADDRSTRLEN], k[INET_ADDRSTRLEN];
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	int ret;

	if (!f)
		return -ENOMEM;
	fprintf(f, "# written by hostd: netstacks and vmk adapters (network ip ...);\n"
	           "# it replaces those of host.cfg while it exists\n"
	           "netstacks = [");
	bool first = true;
	for (size_t i = 0; i < m->nnetstacks; i++) {
		if (m->netstacks[i].builtin)
			continue;
		fprintf(f, "%s", first ? " " : ", ");
		conf_put_string(f, m->netstacks[i].name);
		first = false;
	}
	fprintf(f, " ];\ninterfaces = (\n");
	for (size_t i = 0; i < m->nvmks; i++) {
		const struct net_vmk *v = &m->vmks[i];
		fprintf(f, "%s  { name = ", i ? ",\n" : "");
		conf_put_string(f, v->name);
		fprintf(f, "; portgroup = ");
		conf_put_string(f, v->portgroup);
		fprintf(f, "; netstack = ");
		conf_put_string(f, v->netstack);
		fprintf(f, "; mtu = %u; enabled = %s;", v->mtu, v->enabled ? "true" : "false");
		if (v->has_ipv4) {
			inet_ntop(AF_INET, &v->ipv4, a, sizeof(a));
			inet_ntop(AF_INET, &v->netmask, k, sizeof(k));
			fprintf(f, " ipv4 = \"%s\"; netmask = \"%s\";", a, k);
			if (v->gateway.s_addr) {
				inet_ntop(AF_INET, &v->gateway, a, sizeof(a));
				fprintf(f, " gateway = \"%s\";", a);
			}
		}
		fprintf(f, " tags = [");
		bool tfirst = true;
		for (unsigned t = 0; t < NET_TAG_COUNT; t++) {
			if (v->tags & (1u << t)) {
				fprintf(f, "%s\"%s\"", tfirst ? " " : ", ", tag_names[t]);
				tfirst = false;
			}
		}
		fprintf(f, " ]; }");
	}
	fprintf(f, "\n);\n");
	if (fclose(f) != 0) {
		free(buf);
		return -ENOMEM;
	}
	ret = util_write_file_atomic(runtime_file, buf, len, 0644);
	free(buf);
	return ret;
}

void netconf_ns_name(const struct net_model *m, const char *netstack, char *out, size_t outlen)
{
	if (strcmp(netstack, NET_DEFAULT_STACK) == 0)
		snprintf(out, outlen, "%s", "");
	else
		snprintf(out, outlen, "%s%s", m->ns_prefix, netstack);
}
