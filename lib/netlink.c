#include "netlink.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>

#include "netns.h"
#include "util.h"

#define NL_REQ_MAX      1024  /* our requests are small */
#define NL_RCV_MAX      32768 /* the kernel sizes dump messages to what we read (max 32 KiB) */
#define NL_RECV_TMO_MS  5000  /* one recv */
#define NL_TXN_TMO_MS   30000 /* one whole request, dumps included */
#define NL_DUMP_TRIES   3     /* a dump interrupted by a concurrent change is retried */
#define NL_KMSG_MAX     160
#define NL_FLUSH_BATCH  64
#define NL_FLUSH_PASSES 16

/* ---- requests ---- */

struct nlreq {
	union {
		struct nlmsghdr h;
		char buf[NL_REQ_MAX];
	};
	bool overflow;
};

/* Starts a request with a zeroed family header of hdrlen bytes (returned). */
static void *req_init(struct nlreq *r, uint16_t type, uint16_t flags, size_t hdrlen)
{
	memset(r, 0, sizeof(*r));
	r->h.nlmsg_len = NLMSG_LENGTH(hdrlen);
	r->h.nlmsg_type = type;
	r->h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
	return NLMSG_DATA(&r->h);
}

/* Appends an attribute; NULL (and r->overflow) when it does not fit. */
static struct rtattr *req_put(struct nlreq *r, uint16_t type, const void *data, size_t len)
{
	size_t off = NLMSG_ALIGN(r->h.nlmsg_len), need = RTA_LENGTH(len);

	if (r->overflow || len > NL_REQ_MAX || off + RTA_ALIGN(need) > sizeof(r->buf)) {
		r->overflow = true;
		return NULL;
	}
	struct rtattr *a = (struct rtattr *)(r->buf + off);
	a->rta_type = type;
	a->rta_len = (unsigned short)need;
	if (len)
		memcpy(RTA_DATA(a), data, len);
	r->h.nlmsg_len = (uint32_t)(off + RTA_ALIGN(need));
	return a;
}

static void req_put_str(struct nlreq *r, uint16_t type, const char *s)
{
	req_put(r, type, s, strlen(s) + 1);
}

static void req_put_u32(struct nlreq *r, uint16_t type, uint32_t v)
{
	req_put(r, type, &v, sizeof(v));
}

/* A nest is an attribute whose length grows to cover what follows it. */
static struct rtattr *req_nest(struct nlreq *r, uint16_t type, const void *hdr, size_t hdrlen)
{
	return req_put(r, type, hdr, hdrlen);
}

static void req_nest_end(struct nlreq *r, struct rtattr *nest)
{
	if (nest && !r->overflow)
		nest->rta_len = (unsigned short)(r->buf + r->h.nlmsg_len - (char *)nest);
}

/* ---- parsing (kernel replies are untrusted: every length is checked) ---- */

/* Indexes the attributes in [data, data+len) by type (last one wins);
 * types above max are ignored. -EBADMSG for a malformed attribute. */
static int attr_parse(const void *data, size_t len, const struct rtattr **tb, unsigned max)
{
	const char *p = data;

	memset(tb, 0, (max + 1) * sizeof(*tb));
	while (len >= sizeof(struct rtattr)) {
		const struct rtattr *a = (const struct rtattr *)p;
		if (a->rta_len < sizeof(struct rtattr) || a->rta_len > len)
			return -EBADMSG;
		unsigned type = a->rta_type & NLA_TYPE_MASK;
		if (type <= max)
			tb[type] = a;
		size_t step = RTA_ALIGN(a->rta_len);
		if (step >= len)
			break;
		p += step;
		len -= step;
	}
	return 0;
}

static size_t attr_len(const struct rtattr *a)
{
	return a->rta_len - RTA_LENGTH(0);
}

static int attr_u32(const struct rtattr *a, uint32_t *v)
{
	if (!a)
		return -ENOENT;
	if (attr_len(a) < sizeof(*v))
		return -EBADMSG;
	memcpy(v, RTA_DATA(a), sizeof(*v));
	return 0;
}

static int attr_in_addr(const struct rtattr *a, struct in_addr *v)
{
	if (!a)
		return -ENOENT;
	if (attr_len(a) != sizeof(*v))
		return -EBADMSG;
	memcpy(v, RTA_DATA(a), sizeof(*v));
	return 0;
}

/* A NUL-terminated string attribute into out; longer than outlen-1:
 * truncated if truncate, else -EBADMSG. Non-printable bytes become '?'. */
static int attr_str(const struct rtattr *a, char *out, size_t outlen, bool truncate)
{
	const char *s = RTA_DATA(a);
	size_t l = attr_len(a);
	const char *nul = memchr(s, '\0', l);

	if (!nul)
		return -EBADMSG;
	l = (size_t)(nul - s);
	if (l >= outlen) {
		if (!truncate)
			return -EBADMSG;
		l = outlen - 1;
	}
	for (size_t i = 0; i < l; i++)
		out[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	out[l] = '\0';
	return 0;
}

/* The extended-ack message of an NLMSG_ERROR or NLMSG_DONE, if any. */
static void parse_extack(const struct nlmsghdr *h, char *kmsg, size_t kmsglen)
{
	const char *payload = NLMSG_DATA(h);
	size_t plen = h->nlmsg_len - NLMSG_HDRLEN, off;
	const struct rtattr *tb[NLMSGERR_ATTR_MAX + 1];

	if (!(h->nlmsg_flags & NLM_F_ACK_TLVS) || !kmsg || !kmsglen)
		return;
	if (h->nlmsg_type == NLMSG_DONE) {
		off = sizeof(int);
	} else {
		const struct nlmsgerr *e = (const struct nlmsgerr *)payload;
		if (plen < sizeof(*e))
			return;
		off = sizeof(*e);
		if (!(h->nlmsg_flags & NLM_F_CAPPED)) {
			/* the whole request is echoed before the TLVs */
			if (e->msg.nlmsg_len < NLMSG_HDRLEN)
				return;
			off += NLMSG_ALIGN(e->msg.nlmsg_len - NLMSG_HDRLEN);
		}
	}
	if (off > plen || attr_parse(payload + off, plen - off, tb, NLMSGERR_ATTR_MAX) < 0 ||
	    !tb[NLMSGERR_ATTR_MSG])
		return;
	if (attr_str(tb[NLMSGERR_ATTR_MSG], kmsg, kmsglen, true) < 0)
		kmsg[0] = '\0';
}

/* ---- transactions ---- */

/* A message of the reply: 0 to go on, < 0 to fail the request (the rest of
 * the reply is still read, so the socket stays in step). */
typedef int (*nl_cb)(const struct nlmsghdr *h, void *arg);

static _Atomic uint32_t nl_seq = 1;

static int nl_send(int nl, struct nlreq *r)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	ssize_t n;

	if (r->overflow)
		return -EMSGSIZE;
	do
		n = sendto(nl, r->buf, r->h.nlmsg_len, 0, (struct sockaddr *)&sa, sizeof(sa));
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == r->h.nlmsg_len ? 0 : -EIO;
}

/* Sends r and reads its answer up to the ack (or NLMSG_DONE of a dump),
 * passing each other message to cb. The kernel's extended-ack text, if
 * any, goes to kmsg. -EINTR when a dump was interrupted (retry it). */
static int nl_talk(int nl, struct nlreq *r, nl_cb cb, void *arg, char *kmsg, size_t kmsglen)
{
	uint32_t seq = atomic_fetch_add(&nl_seq, 1);
	bool dump = (r->h.nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP, done = false, intr = false;
	uint64_t deadline = util_now_ms() + NL_TXN_TMO_MS;
	char *buf = NULL;
	int ret;

	if (kmsg && kmsglen)
		kmsg[0] = '\0';
	r->h.nlmsg_seq = seq;
	ret = nl_send(nl, r);
	if (ret < 0)
		return ret;
	buf = malloc(NL_RCV_MAX);
	if (!buf)
		return -ENOMEM;
	while (!done) {
		struct sockaddr_nl from;
		struct iovec iov = { .iov_base = buf, .iov_len = NL_RCV_MAX };
		struct msghdr mh = { .msg_name = &from,
			             .msg_namelen = sizeof(from),
			             .msg_iov = &iov,
			             .msg_iovlen = 1 };
		ssize_t n;

		if (util_now_ms() > deadline) {
			ret = -ETIMEDOUT;
			goto out;
		}
		n = recvmsg(nl, &mh, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = (errno == EAGAIN || errno == EWOULDBLOCK) ? -ETIMEDOUT : -errno;
			goto out;
		}
		if (mh.msg_flags & MSG_TRUNC) {
			ret = -EMSGSIZE;
			goto out;
		}
		if (mh.msg_namelen != sizeof(from) || from.nl_pid != 0)
			continue; /* not from the kernel */
		for (size_t off = 0; !done && (size_t)n - off >= sizeof(struct nlmsghdr);) {
			const struct nlmsghdr *h = (const struct nlmsghdr *)(buf + off);
			size_t len = h->nlmsg_len;

			if (len < sizeof(*h) || len > (size_t)n - off) {
				ret = -EBADMSG;
				goto out;
			}
			off += NLMSG_ALIGN(len);
			if (off > (size_t)n)
				off = (size_t)n;
			if (h->nlmsg_seq != seq)
				continue; /* a late answer to an earlier request */
			if (h->nlmsg_flags & NLM_F_DUMP_INTR)
				intr = true;
			switch (h->nlmsg_type) {
			case NLMSG_NOOP:
				break;
			case NLMSG_ERROR: {
				const struct nlmsgerr *e = NLMSG_DATA(h);
				if (len < NLMSG_LENGTH(sizeof(e->error))) {
					ret = -EBADMSG;
					goto out;
				}
				if (e->error > 0 || e->error < -4095) {
					ret = -EBADMSG;
					goto out;
				}
				if (e->error < 0) {
					ret = e->error;
					parse_extack(h, kmsg, kmsglen);
				}
				done = true;
				break;
			}
			case NLMSG_DONE:
				if (dump) {
					int derr = 0;
					if (len >= NLMSG_LENGTH(sizeof(derr)))
						memcpy(&derr, NLMSG_DATA(h), sizeof(derr));
					if (derr < 0 && derr >= -4095 && ret == 0) {
						ret = derr;
						parse_extack(h, kmsg, kmsglen);
					}
					done = true;
				}
				break;
			case NLMSG_OVERRUN:
				ret = -ENOBUFS;
				goto out;
			default:
				if (cb && ret == 0) {
					int cr = cb(h, arg);
					if (cr < 0)
						ret = cr;
				}
				break;
			}
		}
	}
	if (ret == 0 && dump && intr)
		ret = -EINTR;
out:
	free(buf);
	return ret;
}

/* A dump: reset(arg) before each try, retried when interrupted. */
static int nl_dump(int nl, struct nlreq *r, nl_cb cb, void (*reset)(void *), void *arg)
{
	int ret = -EINTR;

	for (int i = 0; i < NL_DUMP_TRIES && ret == -EINTR; i++) {
		reset(arg);
		ret = nl_talk(nl, r, cb, arg, NULL, 0);
	}
	return ret;
}

/* What the user can do about a failed request (NULL: nothing to add). */
static const char *nl_hint(uint16_t type, int ret)
{
	switch (-ret) {
	case EPERM:
		return "this needs CAP_NET_ADMIN: run hostd as root";
	case EEXIST:
		return type == RTM_NEWLINK ? "a link with that name already exists in that "
		                             "namespace; delete it or choose another name"
		                           : NULL;
	case ENODEV:
		return "no such interface in this network namespace";
	case EOPNOTSUPP:
		if (type == RTM_NEWLINK)
			return "the kernel lacks that link type (its module: bridge, veth or "
			       "8021q)";
		return type == RTM_SETLINK ? "a master must be a bridge (is it one?)" : NULL;
	case ENETUNREACH:
		return type == RTM_NEWROUTE ? "the gateway is not on a connected subnet; give an "
		                              "interface of this netstack an address in the "
		                              "gateway's subnet first"
		                            : NULL;
	}
	return NULL;
}

/* "OBJ: OP: strerror (kernel: MSG); HINT" into err; returns ret. */
static int nl_fail(char *err, size_t errlen, int ret, const char *obj, uint16_t type,
                   const char *op, const char *kmsg)
{
	const char *hint = nl_hint(type, ret);

	if (err && errlen)
		snprintf(err, errlen, "%s: %s: %s%s%s%s%s%s", obj, op, util_strerror(ret),
		         kmsg && *kmsg ? " (kernel: " : "", kmsg && *kmsg ? kmsg : "",
		         kmsg && *kmsg ? ")" : "", hint ? "; " : "", hint ? hint : "");
	return ret;
}

/* Sends a request that only needs an ack; on failure writes the message. */
static int nl_do(int nl, struct nlreq *r, const char *obj, const char *op, char *err, size_t errlen)
{
	char kmsg[NL_KMSG_MAX];
	uint16_t type = r->h.nlmsg_type;
	int ret = nl_talk(nl, r, NULL, NULL, kmsg, sizeof(kmsg));

	if (ret < 0)
		return nl_fail(err, errlen, ret, obj, type, op, kmsg);
	return 0;
}

/* Kernel interface names: 1..15 bytes, no '/', ':' or white space, not "." or "..". */
static bool valid_ifname(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n >= NL_NAME_MAX || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c == '/' || c == ':' || c <= ' ' || c >= 0x7f)
			return false;
	}
	return true;
}

static int bad_ifname(const char *name, char *err, size_t errlen)
{
	util_set_err(
	        err, errlen,
	        "invalid interface name \"%s\": use 1..15 characters without '/', ':' or spaces",
	        name ? name : "(null)");
	return -EINVAL;
}

/* ---- sockets ---- */

int nl_open_netns(int nsfd)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	struct timeval tv = { .tv_sec = NL_RECV_TMO_MS / 1000,
		              .tv_usec = (NL_RECV_TMO_MS % 1000) * 1000 };
	int one = 1, ret;
	int fd = netns_socket(nsfd, AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);

	if (fd < 0)
		return fd;
	/* both are optional: older kernels just give less detail */
	setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
	setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	return fd;
}

int nl_open(void)
{
	return nl_open_netns(-1);
}

void nl_close(int nl)
{
	if (nl >= 0)
		close(nl);
}

/* ---- links ---- */

/* An RTM_NEWLINK message into l; 1 if it is not a link message. */
static int link_parse(const struct nlmsghdr *h, struct nl_link *l)
{
	const struct rtattr *tb[IFLA_MAX + 1], *info[IFLA_INFO_MAX + 1];
	const struct ifinfomsg *ifi = NLMSG_DATA(h);
	uint32_t v;
	int ret;

	if (h->nlmsg_type != RTM_NEWLINK)
		return 1;
	if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*ifi)))
		return -EBADMSG;
	ret = attr_parse((const char *)ifi + NLMSG_ALIGN(sizeof(*ifi)),
	                 h->nlmsg_len - NLMSG_LENGTH(sizeof(*ifi)), tb, IFLA_MAX);
	if (ret < 0)
		return ret;
	memset(l, 0, sizeof(*l));
	l->ifindex = ifi->ifi_index;
	l->flags = ifi->ifi_flags;
	if (!tb[IFLA_IFNAME] || attr_str(tb[IFLA_IFNAME], l->name, sizeof(l->name), false) < 0)
		return -EBADMSG;
	if (tb[IFLA_MTU]) {
		if (attr_u32(tb[IFLA_MTU], &v) < 0)
			return -EBADMSG;
		l->mtu = v;
	}
	if (tb[IFLA_MASTER]) {
		if (attr_u32(tb[IFLA_MASTER], &v) < 0 || v > INT32_MAX)
			return -EBADMSG;
		l->master = (int)v;
	}
	if (tb[IFLA_ADDRESS] && attr_len(tb[IFLA_ADDRESS]) == sizeof(l->mac))
		memcpy(l->mac, RTA_DATA(tb[IFLA_ADDRESS]), sizeof(l->mac));
	if (tb[IFLA_LINKINFO]) {
		ret = attr_parse(RTA_DATA(tb[IFLA_LINKINFO]), attr_len(tb[IFLA_LINKINFO]), info,
		                 IFLA_INFO_MAX);
		if (ret < 0)
			return ret;
		if (info[IFLA_INFO_KIND] &&
		    attr_str(info[IFLA_INFO_KIND], l->kind, sizeof(l->kind), true) < 0)
			return -EBADMSG;
	}
	return 0;
}

struct link_get {
	struct nl_link *out;
	bool found;
};

static int link_get_cb(const struct nlmsghdr *h, void *arg)
{
	struct link_get *g = arg;
	int ret = link_parse(h, g->out);

	if (ret == 0)
		g->found = true;
	return ret < 0 ? ret : 0;
}

static void req_link_ext_mask(struct nlreq *r)
{
	req_put_u32(r, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
}

int nl_link_get(int nl, const char *name, struct nl_link *out)
{
	struct nlreq r;
	struct link_get g = { .out = out };
	int ret;

	if (!valid_ifname(name))
		return -EINVAL;
	req_init(&r, RTM_GETLINK, 0, sizeof(struct ifinfomsg));
	req_put_str(&r, IFLA_IFNAME, name);
	req_link_ext_mask(&r);
	ret = nl_talk(nl, &r, link_get_cb, &g, NULL, 0);
	if (ret < 0)
		return ret;
	return g.found ? 0 : -EBADMSG;
}

int nl_link_wait_running(int nl, const char *name, unsigned timeout_ms)
{
	uint64_t deadline = util_now_ms() + timeout_ms;
	struct timespec pause = { .tv_nsec = 5 * 1000 * 1000 };
	struct nl_link l;

	for (;;) {
		int ret = nl_link_get(nl, name, &l);
		if (ret < 0)
			return ret;
		if (l.flags & IFF_RUNNING)
			return 0;
		if (util_now_ms() >= deadline)
			return -ETIMEDOUT;
		nanosleep(&pause, NULL);
	}
}

struct link_list {
	struct nl_link *out;
	size_t max, n;
	bool more;
};

static void link_list_reset(void *arg)
{
	struct link_list *ll = arg;

	ll->n = 0;
	ll->more = false;
}

static int link_list_cb(const struct nlmsghdr *h, void *arg)
{
	struct link_list *ll = arg;
	struct nl_link l;
	int ret = link_parse(h, &l);

	if (ret != 0)
		return ret < 0 ? ret : 0;
	if (ll->n < ll->max)
		ll->out[ll->n++] = l;
	else
		ll->more = true;
	return 0;
}

int nl_link_list(int nl, struct nl_link *out, size_t max, size_t *n)
{
	struct nlreq r;
	struct link_list ll = { .out = out, .max = max };
	int ret;

	struct ifinfomsg *ifi = req_init(&r, RTM_GETLINK, NLM_F_DUMP, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	req_link_ext_mask(&r);
	ret = nl_dump(nl, &r, link_list_cb, link_list_reset, &ll);
	*n = ll.n;
	if (ret < 0)
		return ret;
	return ll.more ? -ENOSPC : 0;
}

int nl_link_add_bridge(int nl, const char *name, unsigned mtu, char *err, size_t errlen)
{
	struct nlreq r;

	if (!valid_ifname(name))
		return bad_ifname(name, err, errlen);
	req_init(&r, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, sizeof(struct ifinfomsg));
	req_put_str(&r, IFLA_IFNAME, name);
	if (mtu)
		req_put_u32(&r, IFLA_MTU, mtu);
	struct rtattr *li = req_nest(&r, IFLA_LINKINFO, NULL, 0);
	req_put_str(&r, IFLA_INFO_KIND, "bridge");
	req_nest_end(&r, li);

	char op[64];
	if (mtu)
		snprintf(op, sizeof(op), "RTM_NEWLINK bridge mtu %u", mtu);
	else
		snprintf(op, sizeof(op), "RTM_NEWLINK bridge");
	return nl_do(nl, &r, name, op, err, errlen);
}

int nl_link_add_vlan(int nl, const char *name, const char *parent, unsigned vlan_id, char *err,
                     size_t errlen)
{
	struct nl_link p;
	struct nlreq r;
	int ret;

	if (!valid_ifname(name))
		return bad_ifname(name, err, errlen);
	if (vlan_id < 1 || vlan_id > 4094) {
		util_set_err(err, errlen, "%s: VLAN id %u is outside 1..4094", name, vlan_id);
		return -EINVAL;
	}
	if ((ret = nl_link_get(nl, parent, &p)) < 0) {
		util_set_err(err, errlen, "%s: its parent %s: %s", name, parent, strerror(-ret));
		return ret;
	}
	req_init(&r, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, sizeof(struct ifinfomsg));
	req_put_str(&r, IFLA_IFNAME, name);
	req_put_u32(&r, IFLA_LINK, (uint32_t)p.ifindex);
	struct rtattr *li = req_nest(&r, IFLA_LINKINFO, NULL, 0);
	req_put_str(&r, IFLA_INFO_KIND, "vlan");
	struct rtattr *data = req_nest(&r, IFLA_INFO_DATA, NULL, 0);
	uint16_t id = (uint16_t)vlan_id;
	req_put(&r, IFLA_VLAN_ID, &id, sizeof(id));
	req_nest_end(&r, data);
	req_nest_end(&r, li);

	char op[64];
	snprintf(op, sizeof(op), "RTM_NEWLINK vlan %u on %s", vlan_id, parent);
	return nl_do(nl, &r, name, op, err, errlen);
}

int nl_link_add_veth(int nl, const char *name, const char *peer, int peer_netns_fd, unsigned mtu,
                     char *err, size_t errlen)
{
	struct ifinfomsg peer_ifi = { .ifi_family = AF_UNSPEC };
	struct nlreq r;

	if (!valid_ifname(name))
		return bad_ifname(name, err, errlen);
	if (!valid_ifname(peer))
		return bad_ifname(peer, err, errlen);
	req_init(&r, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, sizeof(struct ifinfomsg));
	req_put_str(&r, IFLA_IFNAME, name);
	if (mtu)
		req_put_u32(&r, IFLA_MTU, mtu);
	struct rtattr *li = req_nest(&r, IFLA_LINKINFO, NULL, 0);
	req_put_str(&r, IFLA_INFO_KIND, "veth");
	struct rtattr *data = req_nest(&r, IFLA_INFO_DATA, NULL, 0);
	/* VETH_INFO_PEER: an ifinfomsg, then the peer's own IFLA_* attributes */
	struct rtattr *pi = req_nest(&r, VETH_INFO_PEER, &peer_ifi, sizeof(peer_ifi));
	req_put_str(&r, IFLA_IFNAME, peer);
	if (mtu)
		req_put_u32(&r, IFLA_MTU, mtu);
	if (peer_netns_fd >= 0)
		req_put_u32(&r, IFLA_NET_NS_FD, (uint32_t)peer_netns_fd);
	req_nest_end(&r, pi);
	req_nest_end(&r, data);
	req_nest_end(&r, li);

	char obj[80], op[64];
	snprintf(obj, sizeof(obj), "%s (veth peer %s)", name, peer);
	if (mtu)
		snprintf(op, sizeof(op), "RTM_NEWLINK veth mtu %u", mtu);
	else
		snprintf(op, sizeof(op), "RTM_NEWLINK veth");
	return nl_do(nl, &r, obj, op, err, errlen);
}

int nl_link_del(int nl, const char *name, char *err, size_t errlen)
{
	struct nlreq r;

	if (!valid_ifname(name))
		return bad_ifname(name, err, errlen);
	req_init(&r, RTM_DELLINK, 0, sizeof(struct ifinfomsg));
	req_put_str(&r, IFLA_IFNAME, name);
	return nl_do(nl, &r, name, "RTM_DELLINK", err, errlen);
}

int nl_link_set_mac(int nl, const char *name, const unsigned char mac[6], char *err, size_t errlen)
{
	struct nlreq r;

	if (!valid_ifname(name))
		return bad_ifname(name, err, errlen);
	if (mac[0] & 1) {
		util_set_err(err, errlen,
		             "%s: %02x:%02x:%02x:%02x:%02x:%02x is a multicast address", name,
		             mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
		return -EINVAL;
	}
	struct ifinfomsg *ifi = req_init(&r, RTM_SETLINK, 0, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	req_put_str(&r, IFLA_IFNAME, name);
	req_put(&r, IFLA_ADDRESS, mac, 6);
	return nl_do(nl, &r, name, "RTM_SETLINK address", err, errlen);
}

int nl_link_set(int nl, const char *name, int up, unsigned mtu, const char *master, char *err,
                size_t errlen)
{
	struct nlreq r;
	char op[96];
	int master_index = 0, ret;

	if (!valid_ifname(name))
		return bad_ifname(name, err, errlen);
	if (up < -1 || up > 1) {
		util_set_err(err, errlen, "%s: invalid up/down request %d (use 1, 0 or -1)", name,
		             up);
		return -EINVAL;
	}
	if (master && *master) {
		struct nl_link br;
		if (!valid_ifname(master))
			return bad_ifname(master, err, errlen);
		ret = nl_link_get(nl, master, &br);
		if (ret == -ENODEV) {
			util_set_err(err, errlen,
			             "%s: cannot add it to bridge %s: there is no link %s in this "
			             "network namespace; create the bridge first",
			             name, master, master);
			return ret;
		}
		if (ret < 0) {
			util_set_err(err, errlen, "%s: cannot look up bridge %s: %s", name, master,
			             util_strerror(ret));
			return ret;
		}
		master_index = br.ifindex;
	}

	struct ifinfomsg *ifi = req_init(&r, RTM_SETLINK, 0, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	if (up >= 0) {
		ifi->ifi_change = IFF_UP;
		ifi->ifi_flags = up ? IFF_UP : 0;
	}
	req_put_str(&r, IFLA_IFNAME, name);
	if (mtu)
		req_put_u32(&r, IFLA_MTU, mtu);
	if (master)
		req_put_u32(&r, IFLA_MASTER, (uint32_t)master_index);

	int o = snprintf(op, sizeof(op), "RTM_SETLINK");
	if (up >= 0)
		o += snprintf(op + o, sizeof(op) - (size_t)o, " %s", up ? "up" : "down");
	if (mtu)
		o += snprintf(op + o, sizeof(op) - (size_t)o, " mtu %u", mtu);
	if (master)
		snprintf(op + o, sizeof(op) - (size_t)o, " %s%s", *master ? "master " : "nomaster",
		         master);
	return nl_do(nl, &r, name, op, err, errlen);
}

int nl_link_set_netns(int nl, const char *name, int netns_fd, char *err, size_t errlen)
{
	struct nlreq r;

	if (!valid_ifname(name))
		return bad_ifname(name, err, errlen);
	if (netns_fd < 0) {
		util_set_err(err, errlen, "%s: cannot move it: invalid namespace fd %d", name,
		             netns_fd);
		return -EBADF;
	}
	req_init(&r, RTM_SETLINK, 0, sizeof(struct ifinfomsg));
	req_put_str(&r, IFLA_IFNAME, name);
	req_put_u32(&r, IFLA_NET_NS_FD, (uint32_t)netns_fd);
	return nl_do(nl, &r, name, "RTM_SETLINK netns", err, errlen);
}

/* ifindex of name, or a message "NAME: ..." */
static int ifindex_of(int nl, const char *name, char *err, size_t errlen)
{
	struct nl_link l;
	int ret;

	if (!valid_ifname(name))
		return bad_ifname(name, err, errlen);
	ret = nl_link_get(nl, name, &l);
	if (ret == -ENODEV)
		util_set_err(err, errlen, "%s: no such interface in this network namespace", name);
	else if (ret < 0)
		util_set_err(err, errlen, "%s: cannot look it up: %s", name, util_strerror(ret));
	return ret < 0 ? ret : l.ifindex;
}

/* ---- IPv4 addresses ---- */

struct addr_ent {
	struct in_addr local, address;
	unsigned prefixlen;
	bool secondary;
};

struct addr_list {
	int ifindex;
	struct addr_ent a[NL_FLUSH_BATCH];
	size_t n;
	bool more;
};

static void addr_list_reset(void *arg)
{
	struct addr_list *al = arg;

	al->n = 0;
	al->more = false;
}

static int addr_list_cb(const struct nlmsghdr *h, void *arg)
{
	const struct rtattr *tb[IFA_MAX + 1];
	struct addr_list *al = arg;
	const struct ifaddrmsg *ifa = NLMSG_DATA(h);
	struct addr_ent e = { 0 };
	int ret;

	if (h->nlmsg_type != RTM_NEWADDR)
		return 0;
	if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*ifa)))
		return -EBADMSG;
	if (ifa->ifa_family != AF_INET || (int)ifa->ifa_index != al->ifindex)
		return 0;
	if (ifa->ifa_prefixlen > 32)
		return -EBADMSG;
	ret = attr_parse((const char *)ifa + NLMSG_ALIGN(sizeof(*ifa)),
	                 h->nlmsg_len - NLMSG_LENGTH(sizeof(*ifa)), tb, IFA_MAX);
	if (ret < 0)
		return ret;
	int rl = attr_in_addr(tb[IFA_LOCAL], &e.local);
	int ra = attr_in_addr(tb[IFA_ADDRESS], &e.address);
	if (rl == -EBADMSG || ra == -EBADMSG || (rl < 0 && ra < 0))
		return -EBADMSG;
	if (rl < 0)
		e.local = e.address;
	if (ra < 0)
		e.address = e.local;
	e.prefixlen = ifa->ifa_prefixlen;
	e.secondary = ifa->ifa_flags & IFA_F_SECONDARY;
	if (al->n < NL_FLUSH_BATCH)
		al->a[al->n++] = e;
	else
		al->more = true;
	return 0;
}

static int addr_dump(int nl, int ifindex, struct addr_list *al)
{
	struct nlreq r;

	al->ifindex = ifindex;
	struct ifaddrmsg *ifa = req_init(&r, RTM_GETADDR, NLM_F_DUMP, sizeof(*ifa));
	ifa->ifa_family = AF_INET;
	ifa->ifa_index = (unsigned)ifindex; /* the kernel may filter; we do anyway */
	return nl_dump(nl, &r, addr_list_cb, addr_list_reset, al);
}

static void fmt_prefix(char *out, size_t outlen, struct in_addr a, unsigned prefixlen)
{
	char s[INET_ADDRSTRLEN];

	inet_ntop(AF_INET, &a, s, sizeof(s));
	snprintf(out, outlen, "%s/%u", s, prefixlen);
}

int nl_addr_replace(int nl, const char *ifname, struct in_addr addr, unsigned prefixlen, char *err,
                    size_t errlen)
{
	struct nlreq r;
	char op[64], pfx[32];
	int ifindex;

	fmt_prefix(pfx, sizeof(pfx), addr, prefixlen);
	if (prefixlen > 32) {
		util_set_err(err, errlen, "%s: invalid prefix length in %s: use 0..32",
		             ifname ? ifname : "", pfx);
		return -EINVAL;
	}
	ifindex = ifindex_of(nl, ifname, err, errlen);
	if (ifindex < 0)
		return ifindex;
	struct ifaddrmsg *ifa =
	        req_init(&r, RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, sizeof(*ifa));
	ifa->ifa_family = AF_INET;
	ifa->ifa_prefixlen = (unsigned char)prefixlen;
	ifa->ifa_scope = RT_SCOPE_UNIVERSE;
	ifa->ifa_index = (unsigned)ifindex;
	req_put(&r, IFA_LOCAL, &addr, sizeof(addr));
	req_put(&r, IFA_ADDRESS, &addr, sizeof(addr));
	if (prefixlen < 31) {
		uint32_t mask = prefixlen ? htonl(~0u << (32 - prefixlen)) : 0;
		struct in_addr brd = { .s_addr = addr.s_addr | ~mask };
		req_put(&r, IFA_BROADCAST, &brd, sizeof(brd));
	}
	snprintf(op, sizeof(op), "RTM_NEWADDR %s", pfx);
	return nl_do(nl, &r, ifname, op, err, errlen);
}

int nl_addr_flush(int nl, const char *ifname, char *err, size_t errlen)
{
	struct addr_list *al = NULL;
	int ifindex, ret = 0;

	ifindex = ifindex_of(nl, ifname, err, errlen);
	if (ifindex < 0)
		return ifindex;
	al = malloc(sizeof(*al));
	if (!al)
		return -ENOMEM;
	for (int pass = 0;; pass++) {
		ret = addr_dump(nl, ifindex, al);
		if (ret < 0) {
			nl_fail(err, errlen, ret, ifname, RTM_GETADDR, "RTM_GETADDR dump", NULL);
			goto out;
		}
		if (al->n == 0)
			break;
		if (pass == NL_FLUSH_PASSES) {
			util_set_err(err, errlen,
			             "%s: IPv4 addresses keep coming back while flushing them; is "
			             "another program adding them?",
			             ifname);
			ret = -EAGAIN;
			goto out;
		}
		/* secondaries first: deleting a primary may take its secondaries along */
		for (int sec = 1; sec >= 0; sec--) {
			for (size_t i = 0; i < al->n; i++) {
				struct nlreq r;
				char op[64], kmsg[NL_KMSG_MAX];
				const struct addr_ent *e = &al->a[i];

				if (e->secondary != (sec == 1))
					continue;
				struct ifaddrmsg *ifa = req_init(&r, RTM_DELADDR, 0, sizeof(*ifa));
				ifa->ifa_family = AF_INET;
				ifa->ifa_prefixlen = (unsigned char)e->prefixlen;
				ifa->ifa_index = (unsigned)ifindex;
				req_put(&r, IFA_LOCAL, &e->local, sizeof(e->local));
				req_put(&r, IFA_ADDRESS, &e->address, sizeof(e->address));
				ret = nl_talk(nl, &r, NULL, NULL, kmsg, sizeof(kmsg));
				if (ret == -EADDRNOTAVAIL)
					ret = 0; /* already gone */
				if (ret < 0) {
					fmt_prefix(op, sizeof(op), e->local, e->prefixlen);
					char full[80];
					snprintf(full, sizeof(full), "RTM_DELADDR %s", op);
					nl_fail(err, errlen, ret, ifname, RTM_DELADDR, full, kmsg);
					goto out;
				}
			}
		}
	}
out:
	free(al);
	return ret;
}

int nl_addr_get(int nl, const char *ifname, struct in_addr *addr, unsigned *prefixlen)
{
	struct addr_list *al = NULL;
	int ifindex, ret;

	ifindex = ifindex_of(nl, ifname, NULL, 0);
	if (ifindex < 0)
		return ifindex;
	al = malloc(sizeof(*al));
	if (!al)
		return -ENOMEM;
	ret = addr_dump(nl, ifindex, al);
	if (ret < 0)
		goto out;
	ret = -ENOENT;
	for (size_t i = 0; i < al->n; i++) {
		/* the first primary; else the first one */
		if (ret == -ENOENT || !al->a[i].secondary) {
			*addr = al->a[i].local;
			*prefixlen = al->a[i].prefixlen;
			ret = 0;
			if (!al->a[i].secondary)
				break;
		}
	}
out:
	free(al);
	return ret;
}

/* ---- IPv4 default route ---- */

static void req_default_route(struct nlreq *r, uint16_t type, uint16_t flags)
{
	struct rtmsg *rt = req_init(r, type, flags, sizeof(*rt));

	rt->rtm_family = AF_INET;
	rt->rtm_dst_len = 0;
	rt->rtm_table = RT_TABLE_MAIN;
	if (type == RTM_NEWROUTE) {
		rt->rtm_protocol = RTPROT_STATIC;
		rt->rtm_scope = RT_SCOPE_UNIVERSE;
		rt->rtm_type = RTN_UNICAST;
	} else {
		rt->rtm_scope = RT_SCOPE_NOWHERE; /* match any */
	}
}

int nl_route_replace_default(int nl, struct in_addr gw, char *err, size_t errlen)
{
	struct nlreq r;
	char obj[48], s[INET_ADDRSTRLEN];

	inet_ntop(AF_INET, &gw, s, sizeof(s));
	snprintf(obj, sizeof(obj), "default via %s", s);
	req_default_route(&r, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE);
	req_put(&r, RTA_GATEWAY, &gw, sizeof(gw));
	return nl_do(nl, &r, obj, "RTM_NEWROUTE", err, errlen);
}

int nl_route_del_default(int nl, char *err, size_t errlen)
{
	struct nlreq r;

	req_default_route(&r, RTM_DELROUTE, 0);
	return nl_do(nl, &r, "default route", "RTM_DELROUTE", err, errlen);
}

struct route_get {
	struct in_addr gw;
	bool found;
};

static void route_get_reset(void *arg)
{
	struct route_get *g = arg;

	g->found = false;
	g->gw.s_addr = 0;
}

static int route_get_cb(const struct nlmsghdr *h, void *arg)
{
	const struct rtattr *tb[RTA_MAX + 1];
	struct route_get *g = arg;
	const struct rtmsg *rt = NLMSG_DATA(h);
	uint32_t table;
	int ret;

	if (h->nlmsg_type != RTM_NEWROUTE || g->found)
		return 0;
	if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*rt)))
		return -EBADMSG;
	if (rt->rtm_family != AF_INET || rt->rtm_dst_len != 0 || rt->rtm_type != RTN_UNICAST)
		return 0;
	ret = attr_parse((const char *)rt + NLMSG_ALIGN(sizeof(*rt)),
	                 h->nlmsg_len - NLMSG_LENGTH(sizeof(*rt)), tb, RTA_MAX);
	if (ret < 0)
		return ret;
	table = rt->rtm_table;
	if (tb[RTA_TABLE] && attr_u32(tb[RTA_TABLE], &table) < 0)
		return -EBADMSG;
	if (table != RT_TABLE_MAIN)
		return 0;
	if (tb[RTA_GATEWAY] && attr_in_addr(tb[RTA_GATEWAY], &g->gw) < 0)
		return -EBADMSG;
	g->found = true;
	return 0;
}

int nl_route_get_default(int nl, struct in_addr *gw)
{
	struct nlreq r;
	struct route_get g = { 0 };
	int ret;

	struct rtmsg *rt = req_init(&r, RTM_GETROUTE, NLM_F_DUMP, sizeof(*rt));
	rt->rtm_family = AF_INET;
	ret = nl_dump(nl, &r, route_get_cb, route_get_reset, &g);
	if (ret < 0)
		return ret;
	if (!g.found)
		return -ENOENT;
	*gw = g.gw;
	return 0;
}
