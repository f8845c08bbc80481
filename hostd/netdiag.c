/* network diag ping: vmkping, an ICMP echo from inside a vmk adapter's
 * netstack (lib/ping.c), so that the route, ARP table and MTU of that
 * netstack are what is tested. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "dispatch.h"
#include "network.h"
#include "ping.h"
#include "util.h"

#define DIAG_PING_MAX_COUNT 20

int hostd_op_ping(struct hostd_call *call, const Vmk__Request *req)
{
	const Vmk__PingRequest *r = req->ping;
	struct ping_opts o = { .size = r->size ? r->size : 56,
		               .dont_fragment = r->dont_fragment,
		               .count = r->count ? r->count : 3 };
	struct ping_result res;
	char netstack[64];
	int nsfd, ret;

	if (inet_pton(AF_INET, r->host, &o.dst) != 1)
		return hostd_fail(call, VMK__STATUS__STATUS_USAGE,
		                  "-H \"%s\" is not an IPv4 address (vmkping takes an address, "
		                  "such as 198.18.2.12)",
		                  r->host);
	if (o.count > DIAG_PING_MAX_COUNT)
		return hostd_fail(call, VMK__STATUS__STATUS_USAGE,
		                  "-c %u: at most %d echo requests", o.count, DIAG_PING_MAX_COUNT);
	if (o.size > PING_SIZE_MAX)
		return hostd_fail(call, VMK__STATUS__STATUS_USAGE,
		                  "-s %u: an ICMP payload is at most %u bytes", o.size,
		                  PING_SIZE_MAX);
	if (hostd_network_vmk_ns(call->h, r->interface, netstack, sizeof(netstack), &nsfd) < 0)
		return hostd_network_no_vmk(call, r->interface);
	/* bounded: count requests 200 ms apart, then 1 s for the last reply */
	ret = ping_run(nsfd, &o, &res);
	if (nsfd >= 0)
		close(nsfd);

	Vmk__PingResponse *m = arena_alloc(call->a, sizeof(*m));
	if (!m)
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED, "out of memory");
	vmk__ping_response__init(m);
	m->interface = arena_strdup(call->a, r->interface);
	m->netstack = arena_strdup(call->a, netstack);
	m->host = arena_strdup(call->a, r->host);
	m->size = o.size;
	m->sent = res.sent;
	m->received = res.received;
	m->rtt_min_ms = res.rtt_min_ms;
	m->rtt_avg_ms = res.rtt_avg_ms;
	m->rtt_max_ms = res.rtt_max_ms;
	m->path_mtu = res.path_mtu;
	m->error = arena_strdup(call->a, res.error);
	if (!m->interface || !m->netstack || !m->host || !m->error)
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED, "out of memory");
	call->resp->ping = m;
	call->resp->body_case = VMK__RESPONSE__BODY_PING;
	if (ret == 0)
		return VMK__STATUS__STATUS_OK;
	/* the reply carries the details; the message says what failed */
	return hostd_fail(call,
	                  ret == -EINVAL      ? VMK__STATUS__STATUS_USAGE
	                  : ret == -ETIMEDOUT ? VMK__STATUS__STATUS_TIMEOUT
	                                      : VMK__STATUS__STATUS_FAILED,
	                  "%s (from %s, netstack %s)", res.error, r->interface, netstack);
}
