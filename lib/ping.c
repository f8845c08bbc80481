#include "ping.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <linux/errqueue.h>

#include "netns.h"
#include "util.h"

#ifndef ICMP_FILTER
#define ICMP_FILTER 1 /* <linux/icmp.h>, which clashes with <netinet/ip_icmp.h> */
struct icmp_filter {
	uint32_t data;
};
#endif

#define PING_DEFAULT_SIZE     56
#define PING_DEFAULT_COUNT    3
#define PING_DEFAULT_INTERVAL 200
#define PING_DEFAULT_TIMEOUT  1000
#define PING_MS_MAX           60000 /* interval and timeout */
#define PING_DRAIN_MAX        64    /* packets read per wake-up */
#define ICMP_HDR              8

struct pinger {
	struct ping_opts o; /* with defaults filled in */
	struct ping_result *r;
	char dst[INET_ADDRSTRLEN];
	int fd;
	uint16_t id;
	uint64_t *sent_us; /* by seq - 1; 0: not sent */
	uint8_t *got;      /* by seq - 1 */
	uint8_t *pkt;      /* the request: ICMP header + payload */
	uint8_t *rbuf;
	size_t rbuflen;
	double rtt_sum;
	int send_err; /* first failed sendto(): -errno */
	int icmp_err; /* first ICMP error about our requests: -errno */
	uint8_t icmp_type, icmp_code;
	struct in_addr offender; /* who sent that ICMP error (0: unknown) */
};

static uint16_t inet_cksum(const uint8_t *p, size_t n)
{
	uint32_t sum = 0;

	for (; n > 1; p += 2, n -= 2)
		sum += (uint32_t)p[0] << 8 | p[1];
	if (n)
		sum += (uint32_t)p[0] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return htons((uint16_t)~sum);
}

static void set_error(struct ping_result *r, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void set_error(struct ping_result *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->error, sizeof(r->error), fmt, ap);
	va_end(ap);
}

static void send_one(struct pinger *p, unsigned seq)
{
	size_t len = ICMP_HDR + p->o.size;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr = p->o.dst };
	struct icmphdr *ic = (struct icmphdr *)p->pkt;
	ssize_t n;

	ic->type = ICMP_ECHO;
	ic->code = 0;
	ic->checksum = 0;
	ic->un.echo.id = htons(p->id);
	ic->un.echo.sequence = htons((uint16_t)seq);
	ic->checksum = inet_cksum(p->pkt, len);
	uint64_t t = util_now_us();
	n = sendto(p->fd, p->pkt, len, 0, (struct sockaddr *)&sa, sizeof(sa));
	if (n < 0) {
		if (!p->send_err)
			p->send_err = -errno;
		return;
	}
	p->sent_us[seq - 1] = t ? t : 1;
	p->r->sent++;
}

/* An echo reply in rbuf[0..n) from `from`: counted if it is one of ours. */
static void take_reply(struct pinger *p, size_t n, struct in_addr from)
{
	const uint8_t *b = p->rbuf;
	size_t ihl;

	if (n < sizeof(struct iphdr) || (b[0] >> 4) != 4)
		return;
	ihl = (size_t)(b[0] & 0x0f) * 4;
	if (ihl < sizeof(struct iphdr) || n < ihl + ICMP_HDR)
		return;
	const struct icmphdr *ic = (const struct icmphdr *)(b + ihl);
	if (ic->type != ICMP_ECHOREPLY || ic->code != 0 || ntohs(ic->un.echo.id) != p->id)
		return;
	unsigned seq = ntohs(ic->un.echo.sequence);
	if (seq < 1 || seq > p->o.count || !p->sent_us[seq - 1] || p->got[seq - 1])
		return; /* not ours, or a duplicate */
	if (from.s_addr != p->o.dst.s_addr || n - ihl != ICMP_HDR + p->o.size)
		return;
	double rtt = (double)(util_now_us() - p->sent_us[seq - 1]) / 1000.0;
	p->got[seq - 1] = 1;
	if (p->r->received == 0 || rtt < p->r->rtt_min_ms)
		p->r->rtt_min_ms = rtt;
	if (rtt > p->r->rtt_max_ms)
		p->r->rtt_max_ms = rtt;
	p->rtt_sum += rtt;
	p->r->received++;
}

static void drain_replies(struct pinger *p)
{
	for (int k = 0; k < PING_DRAIN_MAX; k++) {
		struct sockaddr_in from = { 0 };
		struct iovec iov = { .iov_base = p->rbuf, .iov_len = p->rbuflen };
		struct msghdr mh = { .msg_name = &from,
			             .msg_namelen = sizeof(from),
			             .msg_iov = &iov,
			             .msg_iovlen = 1 };
		ssize_t n = recvmsg(p->fd, &mh, MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			/* a pending ICMP error is reported once here too; the error
			 * queue has the details */
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (!p->icmp_err && (errno == EHOSTUNREACH || errno == ENETUNREACH))
				p->icmp_err = -errno;
			continue;
		}
		if (mh.msg_flags & MSG_TRUNC || mh.msg_namelen < sizeof(from))
			continue; /* larger than our replies: not ours */
		take_reply(p, (size_t)n, from.sin_addr);
	}
}

/* An ICMP error about one of our requests (the quoted packet is checked),
 * or a local error of our socket (EMSGSIZE with the MTU). */
static void take_error(struct pinger *p, const struct sock_extended_err *ee, size_t eelen,
                       size_t quoted)
{
	if (ee->ee_origin == SO_EE_ORIGIN_LOCAL) {
		if (ee->ee_errno == EMSGSIZE && ee->ee_info && !p->r->path_mtu)
			p->r->path_mtu = ee->ee_info;
		return;
	}
	if (ee->ee_origin != SO_EE_ORIGIN_ICMP)
		return;
	/* raw sockets see errors about every ICMP socket's packets */
	const struct icmphdr *ic = (const struct icmphdr *)p->rbuf;
	if (quoted < ICMP_HDR || ic->type != ICMP_ECHO || ntohs(ic->un.echo.id) != p->id)
		return;
	if (ee->ee_type == ICMP_DEST_UNREACH && ee->ee_code == ICMP_FRAG_NEEDED) {
		if (ee->ee_info && !p->r->path_mtu)
			p->r->path_mtu = ee->ee_info;
		if (p->icmp_err != -EMSGSIZE) {
			p->icmp_err = -EMSGSIZE;
			p->icmp_type = ee->ee_type;
			p->icmp_code = ee->ee_code;
		}
	} else if (!p->icmp_err) {
		p->icmp_err = ee->ee_errno ? -(int)ee->ee_errno : -EHOSTUNREACH;
		p->icmp_type = ee->ee_type;
		p->icmp_code = ee->ee_code;
	} else {
		return;
	}
	if (eelen >= sizeof(*ee) + sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *off = (const struct sockaddr_in *)SO_EE_OFFENDER(ee);
		if (off->sin_family == AF_INET)
			p->offender = off->sin_addr;
	}
}

static void drain_errors(struct pinger *p)
{
	for (int k = 0; k < PING_DRAIN_MAX; k++) {
		union {
			char buf[CMSG_SPACE(sizeof(struct sock_extended_err) +
			                    sizeof(struct sockaddr_in)) +
			         64];
			struct cmsghdr align;
		} ctl;
		struct sockaddr_in from;
		struct iovec iov = { .iov_base = p->rbuf, .iov_len = p->rbuflen };
		struct msghdr mh = { .msg_name = &from,
			             .msg_namelen = sizeof(from),
			             .msg_iov = &iov,
			             .msg_iovlen = 1,
			             .msg_control = ctl.buf,
			             .msg_controllen = sizeof(ctl.buf) };
		ssize_t n = recvmsg(p->fd, &mh, MSG_ERRQUEUE | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
			if (c->cmsg_level != SOL_IP || c->cmsg_type != IP_RECVERR ||
			    c->cmsg_len < CMSG_LEN(sizeof(struct sock_extended_err)))
				continue;
			take_error(p, (const struct sock_extended_err *)CMSG_DATA(c),
			           c->cmsg_len - CMSG_LEN(0), (size_t)n);
		}
	}
}

static int setup_socket(struct pinger *p, int nsfd)
{
	int pmtu = p->o.dont_fragment ? IP_PMTUDISC_DO : IP_PMTUDISC_DONT, one = 1, ret;
	struct icmp_filter filt = { .data = ~(1u << ICMP_ECHOREPLY) };

	p->fd = netns_socket(nsfd, AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);
	if (p->fd < 0) {
		set_error(p->r, "cannot open a raw ICMP socket in the netstack: %s%s",
		          util_strerror(p->fd),
		          p->fd == -EPERM ? " (this needs CAP_NET_RAW: run hostd as root)" : "");
		return p->fd;
	}
	if (setsockopt(p->fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof(pmtu)) < 0 ||
	    setsockopt(p->fd, IPPROTO_IP, IP_RECVERR, &one, sizeof(one)) < 0 ||
	    setsockopt(p->fd, SOL_RAW, ICMP_FILTER, &filt, sizeof(filt)) < 0) {
		ret = -errno;
		set_error(p->r, "cannot set up the raw ICMP socket: %s", util_strerror(ret));
		return ret;
	}
	return 0;
}

/* The result when no reply came: the most telling reason first. */
static int explain(struct pinger *p)
{
	const struct ping_opts *o = &p->o;
	struct ping_result *r = p->r;
	char off[INET_ADDRSTRLEN] = "";

	if (p->offender.s_addr)
		inet_ntop(AF_INET, &p->offender, off, sizeof(off));
	if (p->send_err == -EMSGSIZE || p->icmp_err == -EMSGSIZE) {
		char what[64];
		if (p->send_err == -EMSGSIZE)
			snprintf(what, sizeof(what), "sendto() failed (%s)",
			         util_strerror(-EMSGSIZE));
		else if (*off)
			snprintf(what, sizeof(what), "%s reports fragmentation needed", off);
		else
			snprintf(what, sizeof(what), "fragmentation needed");
		if (r->path_mtu > 28)
			set_error(r,
			          "%s: %u bytes do not fit the path MTU %u with the don't-fragment "
			          "bit set (at most %u fit)",
			          what, o->size, r->path_mtu, r->path_mtu - 28);
		else
			set_error(r,
			          "%s: %u bytes do not fit the path MTU with the don't-fragment "
			          "bit set",
			          what, o->size);
		return -EMSGSIZE;
	}
	if (p->send_err == -ENETUNREACH || p->send_err == -EHOSTUNREACH) {
		set_error(r,
		          "sendto() failed (%s): no route to %s in this netstack; check its IP "
		          "addresses and default gateway",
		          util_strerror(p->send_err), p->dst);
		return -EHOSTUNREACH;
	}
	if (p->send_err && r->sent == 0) {
		set_error(r, "sendto() failed (%s) for every request to %s",
		          util_strerror(p->send_err), p->dst);
		return p->send_err;
	}
	if (p->icmp_err) {
		if (*off)
			set_error(r, "%s reports %s unreachable (%s; ICMP type %u code %u)", off,
			          p->dst, util_strerror(p->icmp_err), p->icmp_type, p->icmp_code);
		else
			set_error(r, "%s is unreachable (%s)", p->dst, util_strerror(p->icmp_err));
		return -EHOSTUNREACH;
	}
	set_error(r, "no reply from %s within %u ms%s", p->dst, o->timeout_ms,
	          o->dont_fragment ? "; with the don't-fragment bit set, check that the MTU "
	                             "of every hop fits"
	                           : "");
	return -ETIMEDOUT;
}

static int run(struct pinger *p)
{
	const struct ping_opts *o = &p->o;
	uint64_t start = util_now_us(), deadline = 0;
	unsigned next = 0; /* requests sent or tried so far */

	for (;;) {
		uint64_t now = util_now_us(), wake;

		if (next < o->count && now >= start + (uint64_t)next * o->interval_ms * 1000u) {
			send_one(p, next + 1);
			next++;
			if (next == o->count)
				deadline = util_now_us() + (uint64_t)o->timeout_ms * 1000u;
			continue;
		}
		if (next == o->count && (p->r->received == p->r->sent || now >= deadline))
			break;
		wake = next < o->count ? start + (uint64_t)next * o->interval_ms * 1000u : deadline;

		struct pollfd pfd = { .fd = p->fd, .events = POLLIN };
		int ms = wake > now ? (int)((wake - now + 999) / 1000) : 0;
		int n = poll(&pfd, 1, ms);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n > 0 && (pfd.revents & POLLERR))
			drain_errors(p);
		/* also on POLLERR: a pending sk_err without a queued error is only
		 * cleared by a normal recv, else poll() would keep waking us */
		if (n > 0 && (pfd.revents & (POLLIN | POLLERR)))
			drain_replies(p);
	}
	drain_errors(p); /* local errors (EMSGSIZE) are queued without a wake-up we waited for */
	return 0;
}

int ping_run(int nsfd, const struct ping_opts *opts, struct ping_result *r)
{
	struct pinger p = { .r = r, .fd = -1 };
	int ret;

	memset(r, 0, sizeof(*r));
	p.o = *opts;
	if (!p.o.size)
		p.o.size = PING_DEFAULT_SIZE;
	if (!p.o.count)
		p.o.count = PING_DEFAULT_COUNT;
	if (!p.o.interval_ms)
		p.o.interval_ms = PING_DEFAULT_INTERVAL;
	if (!p.o.timeout_ms)
		p.o.timeout_ms = PING_DEFAULT_TIMEOUT;
	inet_ntop(AF_INET, &p.o.dst, p.dst, sizeof(p.dst));
	if (p.o.size > PING_SIZE_MAX) {
		set_error(r,
		          "ping %s: a payload of %u bytes is too large; at most %u bytes fit in "
		          "an IPv4 packet",
		          p.dst, p.o.size, PING_SIZE_MAX);
		return -EINVAL;
	}
	if (p.o.count > PING_COUNT_MAX) {
		set_error(r, "ping %s: count %u is too large; at most %u", p.dst, p.o.count,
		          PING_COUNT_MAX);
		return -EINVAL;
	}
	if (p.o.interval_ms > PING_MS_MAX || p.o.timeout_ms > PING_MS_MAX) {
		set_error(r, "ping %s: interval and timeout must be at most %u ms", p.dst,
		          PING_MS_MAX);
		return -EINVAL;
	}

	p.sent_us = calloc(p.o.count, sizeof(*p.sent_us));
	p.got = calloc(p.o.count, 1);
	p.pkt = calloc(1, ICMP_HDR + p.o.size);
	p.rbuflen = 60 + ICMP_HDR + p.o.size + 64; /* IP header with options, and slack */
	p.rbuf = malloc(p.rbuflen);
	if (!p.sent_us || !p.got || !p.pkt || !p.rbuf) {
		set_error(r, "ping %s: out of memory", p.dst);
		ret = -ENOMEM;
		goto out;
	}
	for (unsigned i = 0; i < p.o.size; i++)
		p.pkt[ICMP_HDR + i] = (uint8_t)(i & 0xff);
	ret = util_random(&p.id, sizeof(p.id));
	if (ret < 0) {
		set_error(r, "ping %s: no random ICMP id: %s", p.dst, util_strerror(ret));
		goto out;
	}
	ret = setup_socket(&p, nsfd);
	if (ret < 0)
		goto out;
	ret = run(&p);
	if (ret < 0) {
		set_error(r, "ping %s: poll() failed: %s", p.dst, util_strerror(ret));
		goto out;
	}
	if (r->received) {
		r->rtt_avg_ms = p.rtt_sum / r->received;
		/* equal round trips: their sum over their count can round a
		 * last bit below the smallest or above the largest */
		if (r->rtt_avg_ms < r->rtt_min_ms)
			r->rtt_avg_ms = r->rtt_min_ms;
		if (r->rtt_avg_ms > r->rtt_max_ms)
			r->rtt_avg_ms = r->rtt_max_ms;
		ret = 0;
	} else {
		ret = explain(&p);
	}
out:
	if (p.fd >= 0)
		close(p.fd);
	free(p.sent_us);
	free(p.got);
	free(p.pkt);
	free(p.rbuf);
	return ret;
}
