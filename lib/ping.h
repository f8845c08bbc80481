/* vmkping: ICMP echo from inside a network namespace (a netstack), over a
 * raw ICMP socket (needs CAP_NET_RAW; unprivileged SOCK_DGRAM ICMP is off by
 * net.ipv4.ping_group_range in new namespaces). */
#ifndef VMK_PING_H
#define VMK_PING_H

#include <stdbool.h>
#include <netinet/in.h>

#define PING_SIZE_MAX  (65507u - 8u) /* ICMP payload bytes */
#define PING_COUNT_MAX 10000u

struct ping_opts {
	struct in_addr dst;
	unsigned size;        /* ICMP payload bytes (0: 56); at most PING_SIZE_MAX */
	bool dont_fragment;   /* IP_PMTUDISC_DO; else IP_PMTUDISC_DONT (fragments) */
	unsigned count;       /* echo requests (0: 3); at most PING_COUNT_MAX */
	unsigned interval_ms; /* between requests (0: 200) */
	unsigned timeout_ms;  /* wait for a reply after the last request (0: 1000) */
};

struct ping_result {
	unsigned sent, received; /* requests sent; distinct replies (duplicates not counted) */
	double rtt_min_ms, rtt_avg_ms, rtt_max_ms; /* of the replies; 0 without */
	unsigned path_mtu; /* when a send failed with EMSGSIZE or an ICMP frag-needed came back:
	                      the MTU, else 0 */
	char error[200];   /* empty when at least one reply arrived; else why not */
};

/* Pings o->dst count times from the namespace nsfd (-1: the current one).
 * 0 when at least one reply arrived. Else r->error says why and:
 * -EMSGSIZE (too big for the path MTU with dont_fragment; r->path_mtu),
 * -EHOSTUNREACH (no route, or an ICMP unreachable came back),
 * -ETIMEDOUT (no reply), -EINVAL (bad options), other -errno (socket). */
int ping_run(int nsfd, const struct ping_opts *o, struct ping_result *r);

#endif
