/* vmkctl network ... : netstacks, port groups, vmk adapters, vmkping. */
#include <stdio.h>
#include <string.h>

#include "handlers.h"

static const char *const if_cols[] = { "name",         "portgroup", "netstack",  "mac",
	                               "mtu",          "enabled",   "ipv4_type", "ipv4_address",
	                               "ipv4_netmask", "tags" };

static int if_row(struct out_doc *out, const Vmk__VmkInterface *i)
{
	int row = out_add_row(out);

	if (row < 0)
		return row;
	size_t r = (size_t)row;
	if (out_set_str(out, r, "name", i->name) < 0 ||
	    out_set_str(out, r, "portgroup", i->portgroup) < 0 ||
	    out_set_str(out, r, "netstack", i->netstack) < 0 ||
	    out_set_str(out, r, "mac", i->mac) < 0 || out_set_int(out, r, "mtu", i->mtu) < 0 ||
	    out_set_bool(out, r, "enabled", i->enabled) < 0 ||
	    out_set_str(out, r, "ipv4_type", i->ipv4_type) < 0 ||
	    out_set_str(out, r, "ipv4_address", i->ipv4_address) < 0 ||
	    out_set_str(out, r, "ipv4_netmask", i->ipv4_netmask) < 0 ||
	    out_set_list(out, r, "tags", (const char *const *)i->tags, i->n_tags) < 0)
		return -1;
	return 0;
}

/* Sends req and shows the VmkInterface it answers with: cols selects the
 * view (all columns, the ipv4 ones or the tags). */
static int call_if(struct vmkctl *v, Vmk__Request *req, struct out_doc *out, const char *type,
                   size_t ncols, const char *const *cols)
{
	Vmk__Response *resp;
	int ret;

	if ((ret = vmkctl_call(v, req, &resp)))
		return ret;
	const Vmk__VmkInterface *i = VMKCTL_BODY(v, resp, VMK__RESPONSE__BODY_INTERFACE, interface);
	if (!i)
		return 1;
	if (out_init(out, type, false, ncols, cols) < 0)
		return vmkctl_error(v, 1, "out of memory");
	int row = out_add_row(out);
	if (row < 0)
		return vmkctl_error(v, 1, "out of memory");
	for (size_t c = 0; c < ncols; c++) {
		const char *k = cols[c];
		int r = 0;
		if (!strcmp(k, "name"))
			r = out_set_str(out, 0, k, i->name);
		else if (!strcmp(k, "portgroup"))
			r = out_set_str(out, 0, k, i->portgroup);
		else if (!strcmp(k, "netstack"))
			r = out_set_str(out, 0, k, i->netstack);
		else if (!strcmp(k, "mac"))
			r = out_set_str(out, 0, k, i->mac);
		else if (!strcmp(k, "mtu"))
			r = out_set_int(out, 0, k, i->mtu);
		else if (!strcmp(k, "enabled"))
			r = out_set_bool(out, 0, k, i->enabled);
		else if (!strcmp(k, "ipv4_type"))
			r = out_set_str(out, 0, k, i->ipv4_type);
		else if (!strcmp(k, "ipv4_address"))
			r = out_set_str(out, 0, k, i->ipv4_address);
		else if (!strcmp(k, "ipv4_netmask"))
			r = out_set_str(out, 0, k, i->ipv4_netmask);
		else if (!strcmp(k, "ipv4_gateway"))
			r = out_set_str(out, 0, k, i->ipv4_gateway);
		else if (!strcmp(k, "tags"))
			r = out_set_list(out, 0, k, (const char *const *)i->tags, i->n_tags);
		if (r < 0)
			return vmkctl_error(v, 1, "out of memory");
	}
	return 0;
}

static int call_empty(struct vmkctl *v, Vmk__Request *req, struct out_doc *out, const char *type,
                      const char *col, const char *name)
{
	const char *const cols[] = { col, "removed" };
	Vmk__Response *resp;
	int ret;

	if ((ret = vmkctl_call(v, req, &resp)))
		return ret;
	if (out_init(out, type, false, 2, cols) < 0 || out_add_row(out) < 0 ||
	    out_set_str(out, 0, col, name) < 0 || out_set_bool(out, 0, "removed", true) < 0)
		return vmkctl_error(v, 1, "out of memory");
	return 0;
}

int cmd_network_netstack_list(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out)
{
	static const char *const cols[] = { "name", "namespace", "interfaces", "source" };
	Vmk__Request req = VMK__REQUEST__INIT;
	Vmk__NetstackListRequest body = VMK__NETSTACK_LIST_REQUEST__INIT;
	Vmk__Response *resp;
	int ret;

	(void)a;
	req.body_case = VMK__REQUEST__BODY_NETSTACK_LIST;
	req.netstack_list = &body;
	if ((ret = vmkctl_call(v, &req, &resp)))
		return ret;
	const Vmk__NetstackListResponse *r =
	        VMKCTL_BODY(v, resp, VMK__RESPONSE__BODY_NETSTACK_LIST, netstack_list);
	if (!r)
		return 1;
	if (out_init(out, "Netstack", true, 4, cols) < 0)
		return vmkctl_error(v, 1, "out of memory");
	for (size_t i = 0; i < r->n_netstacks; i++) {
		const Vmk__Netstack *s = r->netstacks[i];
		int row = out_add_row(out);
		if (row < 0 || out_set_str(out, (size_t)row, "name", s->name) < 0 ||
		    out_set_str(out, (size_t)row, "namespace", s->namespace_) < 0 ||
		    out_set_list(out, (size_t)row, "interfaces", (const char *const *)s->interfaces,
		                 s->n_interfaces) < 0 ||
		    out_set_str(out, (size_t)row, "source", s->source) < 0)
			return vmkctl_error(v, 1, "out of memory");
	}
	return 0;
}

int cmd_network_netstack_add(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out)
{
	static const char *const cols[] = { "name", "namespace", "source" };
	Vmk__Request req = VMK__REQUEST__INIT;
	Vmk__NetstackNameRequest body = VMK__NETSTACK_NAME_REQUEST__INIT;
	Vmk__Response *resp;
	int ret;

	body.name = (char *)args_str(a, "netstack");
	req.body_case = VMK__REQUEST__BODY_NETSTACK_ADD;
	req.netstack_add = &body;
	if ((ret = vmkctl_call(v, &req, &resp)))
		return ret;
	const Vmk__Netstack *s = VMKCTL_BODY(v, resp, VMK__RESPONSE__BODY_NETSTACK, netstack);
	if (!s)
		return 1;
	if (out_init(out, "Netstack", false, 3, cols) < 0 || out_add_row(out) < 0 ||
	    out_set_str(out, 0, "name", s->name) < 0 ||
	    out_set_str(out, 0, "namespace", s->namespace_) < 0 ||
	    out_set_str(out, 0, "source", s->source) < 0)
		return vmkctl_error(v, 1, "out of memory");
	return 0;
}

int cmd_network_netstack_remove(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out)
{
	Vmk__Request req = VMK__REQUEST__INIT;
	Vmk__NetstackNameRequest body = VMK__NETSTACK_NAME_REQUEST__INIT;

	body.name = (char *)args_str(a, "netstack");
	req.body_case = VMK__REQUEST__BODY_NETSTACK_REMOVE;
	req.netstack_remove = &body;
	return call_empty(v, &req, out, "NetstackRemoved", "name", body.name);
}

int cmd_network_portgroup_list(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out)
{
	static const char *const cols[] = { "name",    "vswitch", "vlan_id",
		                            "uplinks", "mtu",     "interfaces" };
	Vmk__Request req = VMK__REQUEST__INIT;
	Vmk__PortgroupListRequest body = VMK__PORTGROUP_LIST_REQUEST__INIT;
	Vmk__Response *resp;
	int ret;

	(void)a;
	req.body_case = VMK__REQUEST__BODY_PORTGROUP_LIST;
	req.portgroup_list = &body;
	if ((ret = vmkctl_call(v, &req, &resp)))
		return ret;
	const Vmk__PortgroupListResponse *r =
	        VMKCTL_BODY(v, resp, VMK__RESPONSE__BODY_PORTGROUP_LIST, portgroup_list);
	if (!r)
		return 1;
	if (out_init(out, "Portgroup", true, 6, cols) < 0)
		return vmkctl_error(v, 1, "out of memory");
	for (size_t i = 0; i < r->n_portgroups; i++) {
		const Vmk__Portgroup *p = r->portgroups[i];
		int row = out_add_row(out);
		size_t k = (size_t)row;
		if (row < 0 || out_set_str(out, k, "name", p->name) < 0 ||
		    out_set_str(out, k, "vswitch", p->vswitch) < 0 ||
		    out_set_int(out, k, "vlan_id", p->vlan_id) < 0 ||
		    out_set_list(out, k, "uplinks", (const char *const *)p->uplinks, p->n_uplinks) <
		            0 ||
		    out_set_int(out, k, "mtu", p->mtu) < 0 ||
		    out_set_list(out, k, "interfaces", (const char *const *)p->interfaces,
		                 p->n_interfaces) < 0)
			return vmkctl_error(v, 1, "out of memory");
	}
	return 0;
}

int cmd_network_interface_list(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out)
{
	Vmk__Request req = VMK__REQUEST__INIT;
	Vmk__InterfaceListRequest body = VMK__INTERFACE_LIST_REQUEST__INIT;
	Vmk__Response *resp;
	int ret;

	(void)a;
	req.body_case = VMK__REQUEST__BODY_INTERFACE_LIST;
	req.interface_list = &body;
	if ((ret = vmkctl_call(v, &req, &resp)))
		return ret;
	const Vmk__InterfaceListResponse *r =
	        VMKCTL_BODY(v, resp, VMK__RESPONSE__BODY_INTERFACE_LIST, interface_list);
	if (!r)
		return 1;
	if (out_init(out, "VmkInterface", true, 10, if_cols) < 0)
		return vmkctl_error(v, 1, "out of memory");
	for (size_t i = 0; i < r->n_interfaces; i++) {
		if (if_row(out, r->interfaces[i]) < 0)
			return vmkctl_error(v, 1, "out of memory");
	}
	return 0;
}

int cmd_network_interface_add(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out)
{
	Vmk__Request req = VMK__REQUEST__INIT;
	Vmk__InterfaceAddRequest body = VMK__INTERFACE_ADD_REQUEST__INIT;

	body.name = (char *)args_str(a, "interface-name");
	body.portgroup = (char *)args_str(a, "portgroup-name");
	body.netstack = args_str(a, "netstack") ? (char *)args_str(a, "netstack") : "";
	body.mtu = (uint32_t)args_int(a, "mtu", 0);
	req.body_case = VMK__REQUEST__BODY_INTERFACE_ADD;
	req.interface_add = &body;
	return call_if(v, &req, out, "VmkInterface", 10, if_cols);
}

int cmd_network_interface_remove(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out)
{
	Vmk__Request req = VMK__REQUEST__INIT;
	Vmk__InterfaceNameRequest body = VMK__INTERFACE_NAME_REQUEST__INIT;

	body.name = (char *)args_str(a, "interface-name");
	req.body_case = VMK__REQUEST__BODY_INTERFACE_REMOVE;
	req.interface_remove = &body;
	return call_empty(v, &req, out, "VmkInterfaceRemoved", "name", body.name);
}

int cmd_network_interface_set(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out)
{
	Vmk__Request req = VMK__REQUEST__INIT;
	Vmk__InterfaceSetRequest body = VMK__INTERFACE_SET_REQUEST__INIT;
	const char *en = args_str(a, "enabled");

	body.name = (char *)args_str(a, "interface-name");
	body.mtu = (uint32_t)args_int(a, "mtu", 0);
	body.enabled = !en ? 0 : strcmp(en, "true") == 0 ? 1 : 2;
	if (!body.mtu && !body.enabled)
		return vmkctl_error(v, 2, "nothing to set: give -m MTU and/or -e true|false");
	req.body_case = VMK__REQUEST__BODY_INTERFACE_SET;
	req.interface_set = &body;
	return call_if(v, &req, out, "VmkInterface", 10, if_cols);
}

static const char *const ipv4_cols[] = { "name", "ipv4_type", "ipv4_address", "ipv4_netmask",
	                                 "ipv4_gateway" };
static const char *const tag_cols[] = { "name", "tags" };

int cmd_network_ipv4_get(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out)
{
	Vmk__Request req = VMK__REQUEST__INIT;
	Vmk__InterfaceNameRequest body = VMK__INTERFACE_NAME_REQUEST__INIT;

	body.name = (char *)args_str(a, "interface-name");
	req.body_case = VMK__REQUEST__BODY_INTERFACE_GET;
	req.interface_get = &body;
	return call_if(v, &req, out, "VmkInterfaceIpv4", 5, ipv4_cols);
}

int cmd_network_ipv4_set(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out)
{
	Vmk__Request req = VMK__REQUEST__INIT;
	Vmk__InterfaceIpv4SetRequest body = VMK__INTERFACE_IPV4_SET_REQUEST__INIT;

	body.name = (char *)args_str(a, "interface-name");
	body.type = (char *)args_str(a, "type");
	body.address = args_str(a, "ipv4") ? (char *)args_str(a, "ipv4") : "";
	body.netmask = args_str(a, "netmask") ? (char *)args_str(a, "netmask") : "";
	body.gateway = args_str(a, "gateway") ? (char *)args_str(a, "gateway") : "";
	if (!strcmp(body.type, "static") && (!body.address[0] || !body.netmask[0]))
		return vmkctl_error(v, 2, "-t static needs -I ADDRESS and -N NETMASK");
	req.body_case = VMK__REQUEST__BODY_INTERFACE_IPV4_SET;
	req.interface_ipv4_set = &body;
	return call_if(v, &req, out, "VmkInterfaceIpv4", 5, ipv4_cols);
}

int cmd_network_tag_get(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out)
{
	Vmk__Request req = VMK__REQUEST__INIT;
	Vmk__InterfaceNameRequest body = VMK__INTERFACE_NAME_REQUEST__INIT;

	body.name = (char *)args_str(a, "interface-name");
	req.body_case = VMK__REQUEST__BODY_INTERFACE_GET;
	req.interface_get = &body;
	return call_if(v, &req, out, "VmkInterfaceTags", 2, tag_cols);
}

static int tag_cmd(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out, bool add)
{
	Vmk__Request req = VMK__REQUEST__INIT;
	Vmk__InterfaceTagRequest body = VMK__INTERFACE_TAG_REQUEST__INIT;

	body.name = (char *)args_str(a, "interface-name");
	body.tag = (char *)args_str(a, "tagname");
	if (add) {
		req.body_case = VMK__REQUEST__BODY_INTERFACE_TAG_ADD;
		req.interface_tag_add = &body;
	} else {
		req.body_case = VMK__REQUEST__BODY_INTERFACE_TAG_REMOVE;
		req.interface_tag_remove = &body;
	}
	return call_if(v, &req, out, "VmkInterfaceTags", 2, tag_cols);
}

int cmd_network_tag_add(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out)
{
	return tag_cmd(v, a, out, true);
}

int cmd_network_tag_remove(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out)
{
	return tag_cmd(v, a, out, false);
}

int cmd_network_diag_ping(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out)
{
	static const char *const cols[] = { "interface",  "netstack", "host",       "size",
		                            "sent",       "received", "rtt_min_us", "rtt_avg_us",
		                            "rtt_max_us", "path_mtu" };
	Vmk__Request req = VMK__REQUEST__INIT;
	Vmk__PingRequest body = VMK__PING_REQUEST__INIT;
	Vmk__Response *resp;
	int ret;

	body.interface = (char *)args_str(a, "interface");
	body.host = (char *)args_str(a, "host");
	body.size = (uint32_t)args_int(a, "size", 0);
	body.count = (uint32_t)args_int(a, "count", 0);
	body.dont_fragment = args_flag(a, "df");
	req.body_case = VMK__REQUEST__BODY_PING;
	req.ping = &body;
	if ((ret = vmkctl_call(v, &req, &resp)))
		return ret;
	const Vmk__PingResponse *p = VMKCTL_BODY(v, resp, VMK__RESPONSE__BODY_PING, ping);
	if (!p)
		return 1;
	if (out_init(out, "PingResult", false, 10, cols) < 0 || out_add_row(out) < 0 ||
	    out_set_str(out, 0, "interface", p->interface) < 0 ||
	    out_set_str(out, 0, "netstack", p->netstack) < 0 ||
	    out_set_str(out, 0, "host", p->host) < 0 || out_set_int(out, 0, "size", p->size) < 0 ||
	    out_set_int(out, 0, "sent", p->sent) < 0 ||
	    out_set_int(out, 0, "received", p->received) < 0 ||
	    out_set_int(out, 0, "rtt_min_us", (int64_t)(p->rtt_min_ms * 1000)) < 0 ||
	    out_set_int(out, 0, "rtt_avg_us", (int64_t)(p->rtt_avg_ms * 1000)) < 0 ||
	    out_set_int(out, 0, "rtt_max_us", (int64_t)(p->rtt_max_ms * 1000)) < 0 ||
	    out_set_int(out, 0, "path_mtu", p->path_mtu) < 0)
		return vmkctl_error(v, 1, "out of memory");
	return 0;
}
