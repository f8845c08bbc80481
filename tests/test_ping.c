/* lib/ping.c (vmkping) between two netstacks joined by a bridge, inside a
 * private network + mount namespace (root only; skipped otherwise):
 *
 *   netstack nsA: vmkA 198.18.2.11/24 ─ veth ─ vp-a ┐
 *                                                   ├ bridge vs0 (this test's namespace)
 *   netstack nsB: vmkB 198.18.2.12/24 ─ veth ─ vp-b ┘
 *
 * MTU 9000 everywhere unless a test lowers one. Nothing reaches the host. */
#include <dirent.h>
#include <errno.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <cmocka.h>

#include "lib/netlink.h"
#include "lib/netns.h"
#include "lib/ping.h"

#include "netns_sandbox.h"

/* ---- the topology ---- */

struct topo {
	int nl, nsa, nsb, nla, nlb; /* netlink here, in nsA, in nsB; namespace fds */
};

static struct topo topo = { -1, -1, -1, -1, -1 };

static struct in_addr ip4(const char *s)
{
	struct in_addr a;

	assert_int_equal(inet_pton(AF_INET, s, &a), 1);
	return a;
}

#define CHECK(call)                                                                                \
	do {                                                                                       \
		if ((call) < 0) {                                                                  \
			print_error("%s: %s\n", #call, err);                                       \
			return -1;                                                                 \
		}                                                                                  \
	} while (0)

/* Undoes whatever setup (or a failed test) left. */
static int teardown(void **state)
{
	struct topo *t = *state;

	if (!isolated)
		return 0;
	if (t->nl >= 0) {
		nl_link_del(t->nl, "vp-a", NULL, 0);
		nl_link_del(t->nl, "vp-b", NULL, 0);
		nl_link_del(t->nl, "vs0", NULL, 0);
	}
	for (int *fd = &t->nl; fd <= &t->nlb; fd++) {
		if (*fd >= 0)
			close(*fd);
		*fd = -1;
	}
	netns_delete("nsA", NULL, 0);
	netns_delete("nsB", NULL, 0);
	netns_delete("nsC", NULL, 0);
	return 0;
}

static int setup(void **state)
{
	struct topo *t = &topo;
	char err[300] = "";

	*state = t;
	if (!isolated)
		return 0;
	teardown(state); /* a failed setup is not torn down by cmocka */
	t->nl = nl_open();
	if (t->nl < 0)
		return -1;
	CHECK(nl_link_set(t->nl, "lo", 1, 0, NULL, err, sizeof(err)));
	CHECK(nl_link_add_bridge(t->nl, "vs0", 9000, err, sizeof(err)));
	CHECK(nl_link_set(t->nl, "vs0", 1, 0, NULL, err, sizeof(err)));
	CHECK(netns_create("nsA", err, sizeof(err)));
	CHECK(netns_create("nsB", err, sizeof(err)));
	CHECK(t->nsa = netns_open("nsA"));
	CHECK(t->nsb = netns_open("nsB"));
	CHECK(t->nla = nl_open_netns(t->nsa));
	CHECK(t->nlb = nl_open_netns(t->nsb));
	CHECK(nl_link_add_veth(t->nl, "vp-a", "vmkA", t->nsa, 9000, err, sizeof(err)));
	CHECK(nl_link_add_veth(t->nl, "vp-b", "vmkB", t->nsb, 9000, err, sizeof(err)));
	CHECK(nl_link_set(t->nl, "vp-a", 1, 9000, "vs0", err, sizeof(err)));
	CHECK(nl_link_set(t->nl, "vp-b", 1, 9000, "vs0", err, sizeof(err)));
	CHECK(nl_link_set(t->nla, "vmkA", 1, 9000, NULL, err, sizeof(err)));
	CHECK(nl_link_set(t->nlb, "vmkB", 1, 9000, NULL, err, sizeof(err)));
	CHECK(nl_addr_replace(t->nla, "vmkA", ip4("198.18.2.11"), 24, err, sizeof(err)));
	CHECK(nl_addr_replace(t->nlb, "vmkB", ip4("198.18.2.12"), 24, err, sizeof(err)));
	/* else the first ARP request may be dropped, and answered 1 s later */
	CHECK(nl_link_wait_running(t->nl, "vp-a", 5000));
	CHECK(nl_link_wait_running(t->nl, "vp-b", 5000));
	CHECK(nl_link_wait_running(t->nla, "vmkA", 5000));
	CHECK(nl_link_wait_running(t->nlb, "vmkB", 5000));
	return 0;
}

static struct ping_opts opts(const char *dst, unsigned size, bool df)
{
	struct ping_opts o = { .dst = ip4(dst),
		               .size = size,
		               .dont_fragment = df,
		               .count = 3,
		               .interval_ms = 20,
		               .timeout_ms = 1000 };
	return o;
}

static void expect_replies(int nsfd, const struct ping_opts *o)
{
	struct ping_result r;
	unsigned count = o->count ? o->count : 3; /* 0: the default */
	int ret = ping_run(nsfd, o, &r);

	if (ret != 0)
		print_error("ping: %s\n", r.error);
	assert_int_equal(ret, 0);
	assert_int_equal(r.sent, count);
	assert_int_equal(r.received, count);
	assert_string_equal(r.error, "");
	assert_int_equal(r.path_mtu, 0);
	assert_true(r.rtt_min_ms >= 0);
	assert_true(r.rtt_min_ms <= r.rtt_avg_ms && r.rtt_avg_ms <= r.rtt_max_ms);
}

/* ---- tests ---- */

static void test_ping_default_size(void **state)
{
	struct topo *t = *state;
	REQUIRE_ISOLATION();
	struct ping_opts o = opts("198.18.2.12", 56, false);

	expect_replies(t->nsa, &o);
	o = (struct ping_opts){ .dst = ip4("198.18.2.11") }; /* all defaults: 56 bytes, 3 times */
	expect_replies(t->nsb, &o);
}

static void test_ping_jumbo_dont_fragment(void **state)
{
	struct topo *t = *state;
	REQUIRE_ISOLATION();
	struct ping_opts o = opts("198.18.2.12", 8972, true); /* 8972 + 8 + 20 = 9000 */

	expect_replies(t->nsa, &o);
	/* one byte more does not fit, and says so */
	struct ping_result r;
	o.size = 8973;
	assert_int_equal(ping_run(t->nsa, &o, &r), -EMSGSIZE);
	assert_int_equal(r.path_mtu, 9000);
	assert_non_null(strstr(r.error, "MTU 9000"));
	/* without DF the sender fragments */
	o.dont_fragment = false;
	expect_replies(t->nsa, &o);
}

static void test_ping_local_mtu_1500(void **state)
{
	struct topo *t = *state;
	struct ping_result r;
	char err[300];
	REQUIRE_ISOLATION();

	assert_int_equal(nl_link_set(t->nla, "vmkA", -1, 1500, NULL, err, sizeof(err)), 0);
	struct ping_opts o = opts("198.18.2.12", 8972, true);
	assert_int_equal(ping_run(t->nsa, &o, &r), -EMSGSIZE);
	print_message("vmkping -d -s 8972 over MTU 1500: %s\n", r.error);
	assert_int_equal(r.path_mtu, 1500);
	assert_non_null(strstr(r.error, "MTU 1500"));
	assert_non_null(strstr(r.error, "8972 bytes"));
	assert_non_null(strstr(r.error, "don't-fragment"));
	assert_int_equal(r.sent, 0);
	assert_int_equal(r.received, 0);
	/* what fits still works */
	o.size = 1472;
	expect_replies(t->nsa, &o);
}

/* A smaller MTU further along (the peer's side) is an L2 black hole: the
 * veth drops the frame, nobody sends an ICMP error. */
static void test_ping_remote_mtu_1500(void **state)
{
	struct topo *t = *state;
	struct ping_result r;
	char err[300];
	REQUIRE_ISOLATION();

	assert_int_equal(nl_link_set(t->nlb, "vmkB", -1, 1500, NULL, err, sizeof(err)), 0);
	struct ping_opts o = opts("198.18.2.12", 8972, true);
	o.count = 1;
	o.timeout_ms = 300;
	assert_int_equal(ping_run(t->nsa, &o, &r), -ETIMEDOUT);
	print_message("MTU 1500 on the far side: %s\n", r.error);
	assert_int_equal(r.sent, 1);
	assert_int_equal(r.received, 0);
	assert_int_equal(r.path_mtu, 0);
	assert_non_null(strstr(r.error, "no reply from 198.18.2.12 within 300 ms"));
	/* fragmenting at the sender does not help: it fragments to its own MTU */
	o.dont_fragment = false;
	assert_int_equal(ping_run(t->nsa, &o, &r), -ETIMEDOUT);
	/* small packets pass */
	o = opts("198.18.2.12", 56, true);
	expect_replies(t->nsa, &o);
}

static void test_ping_no_route(void **state)
{
	struct topo *t = *state;
	struct ping_result r;
	REQUIRE_ISOLATION();
	struct ping_opts o = opts("203.0.113.5", 56, false);

	assert_int_equal(ping_run(t->nsa, &o, &r), -EHOSTUNREACH);
	print_message("no route: %s\n", r.error);
	assert_non_null(strstr(r.error, "203.0.113.5"));
	assert_non_null(strstr(r.error, "Network is unreachable"));
	assert_int_equal(r.sent, 0);
}

/* nsA reaches 203.0.113.5 (a local address of nsB) through its default
 * gateway nsB. */
static void test_ping_via_default_route(void **state)
{
	struct topo *t = *state;
	char err[300];
	REQUIRE_ISOLATION();

	assert_int_equal(nl_addr_replace(t->nlb, "lo", ip4("203.0.113.5"), 32, err, sizeof(err)),
	                 0);
	assert_int_equal(nl_route_replace_default(t->nla, ip4("198.18.2.12"), err, sizeof(err)), 0);
	struct ping_opts o = opts("203.0.113.5", 56, false);
	expect_replies(t->nsa, &o);
}

/* Nobody answers ARP for .99: the sender's own stack reports the host
 * unreachable once neighbour resolution gives up (about 3 s). */
static void test_ping_host_unreachable(void **state)
{
	struct topo *t = *state;
	struct ping_result r;
	REQUIRE_ISOLATION();
	struct ping_opts o = opts("198.18.2.99", 56, false);

	o.count = 1;
	o.timeout_ms = 10000;
	assert_int_equal(ping_run(t->nsa, &o, &r), -EHOSTUNREACH);
	print_message("unreachable host: %s\n", r.error);
	assert_non_null(strstr(r.error, "198.18.2.99"));
	assert_non_null(strstr(r.error, "unreachable"));
	assert_int_equal(r.received, 0);
}

static int enable_forwarding(void *arg)
{
	(void)arg;
	/* /proc/sys/net is the namespace of the thread that opens it */
	FILE *f = fopen("/proc/sys/net/ipv4/ip_forward", "w");
	if (!f)
		return -errno;
	int ok = fputs("1\n", f) >= 0;
	return fclose(f) == 0 && ok ? 0 : -EIO;
}

/* nsB routes between the MTU 9000 segment and an MTU 1500 link to nsC: it
 * answers a DF packet that does not fit with ICMP "fragmentation needed",
 * which reaches ping through IP_RECVERR. */
static void test_ping_router_frag_needed(void **state)
{
	struct topo *t = *state;
	struct ping_result r;
	char err[300];
	REQUIRE_ISOLATION();

	assert_int_equal(netns_create("nsC", err, sizeof(err)), 0);
	int nsc = netns_open("nsC");
	assert_true(nsc >= 0);
	int nlc = nl_open_netns(nsc);
	assert_true(nlc >= 0);
	assert_int_equal(nl_link_add_veth(t->nlb, "rB", "rC", nsc, 1500, err, sizeof(err)), 0);
	assert_int_equal(nl_link_set(t->nlb, "rB", 1, 0, NULL, err, sizeof(err)), 0);
	assert_int_equal(nl_link_set(nlc, "rC", 1, 0, NULL, err, sizeof(err)), 0);
	assert_int_equal(nl_addr_replace(t->nlb, "rB", ip4("198.18.3.1"), 24, err, sizeof(err)), 0);
	assert_int_equal(nl_addr_replace(nlc, "rC", ip4("198.18.3.2"), 24, err, sizeof(err)), 0);
	assert_int_equal(netns_call(t->nsb, enable_forwarding, NULL), 0);
	assert_int_equal(nl_route_replace_default(t->nla, ip4("198.18.2.12"), err, sizeof(err)), 0);
	assert_int_equal(nl_route_replace_default(nlc, ip4("198.18.3.1"), err, sizeof(err)), 0);
	assert_int_equal(nl_link_wait_running(t->nlb, "rB", 5000), 0);
	assert_int_equal(nl_link_wait_running(nlc, "rC", 5000), 0);

	struct ping_opts o = opts("198.18.3.2", 56, true);
	expect_replies(t->nsa, &o); /* routed both ways */

	o = opts("198.18.3.2", 8972, true);
	o.count = 1;
	assert_int_equal(ping_run(t->nsa, &o, &r), -EMSGSIZE);
	print_message("frag needed from the router: %s\n", r.error);
	assert_int_equal(r.sent, 1);
	assert_int_equal(r.path_mtu, 1500);
	assert_non_null(strstr(r.error, "198.18.2.12 reports fragmentation needed"));
	assert_non_null(strstr(r.error, "MTU 1500"));

	/* the kernel remembers the path MTU: now the send itself fails */
	assert_int_equal(ping_run(t->nsa, &o, &r), -EMSGSIZE);
	print_message("second try: %s\n", r.error);
	assert_int_equal(r.sent, 0);
	assert_int_equal(r.path_mtu, 1500);
	assert_non_null(strstr(r.error, "sendto() failed"));

	/* without DF the sender fragments to the learned MTU, and it works */
	o.dont_fragment = false;
	expect_replies(t->nsa, &o);

	nl_close(nlc);
	close(nsc);
	netns_delete("nsC", NULL, 0);
}

static void test_ping_current_ns(void **state)
{
	REQUIRE_ISOLATION();
	(void)state;
	struct ping_opts o = opts("127.0.0.1", 56, true);

	expect_replies(-1, &o);
}

static void test_ping_bad_options(void **state)
{
	struct topo *t = *state;
	struct ping_result r;
	REQUIRE_ISOLATION();
	struct ping_opts o = opts("198.18.2.12", PING_SIZE_MAX + 1, false);

	assert_int_equal(ping_run(t->nsa, &o, &r), -EINVAL);
	assert_non_null(strstr(r.error, "65500 bytes is too large"));
	assert_non_null(strstr(r.error, "65499"));
	o = opts("198.18.2.12", 56, false);
	o.count = PING_COUNT_MAX + 1;
	assert_int_equal(ping_run(t->nsa, &o, &r), -EINVAL);
	o = opts("198.18.2.12", 56, false);
	o.timeout_ms = 3600000;
	assert_int_equal(ping_run(t->nsa, &o, &r), -EINVAL);
	/* the largest payload: fragmented, and answered */
	o = opts("198.18.2.12", PING_SIZE_MAX, false);
	o.count = 1;
	expect_replies(t->nsa, &o);
}

struct job {
	int nsfd;
	struct ping_opts o;
	struct ping_result r;
	int ret;
};

static void *ping_thread(void *arg)
{
	struct job *j = arg;

	j->ret = ping_run(j->nsfd, &j->o, &j->r);
	return NULL;
}

/* Raw sockets see every ICMP packet: concurrent pings count only their own
 * replies, and the calling threads stay in their namespace. */
static void test_ping_concurrent(void **state)
{
	struct topo *t = *state;
	pthread_t th[4];
	struct job jobs[4];
	REQUIRE_ISOLATION();

	for (int i = 0; i < 4; i++) {
		jobs[i].nsfd = i % 2 ? t->nsb : t->nsa;
		jobs[i].o = opts(i % 2 ? "198.18.2.11" : "198.18.2.12", 56 + (unsigned)i, false);
		jobs[i].o.count = 5;
		jobs[i].o.interval_ms = 5;
		assert_int_equal(pthread_create(&th[i], NULL, ping_thread, &jobs[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(jobs[i].ret, 0);
		assert_int_equal(jobs[i].r.sent, 5);
		assert_int_equal(jobs[i].r.received, 5);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ping_default_size, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ping_jumbo_dont_fragment, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ping_local_mtu_1500, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ping_remote_mtu_1500, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ping_no_route, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ping_via_default_route, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ping_host_unreachable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ping_router_frag_needed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ping_current_ns, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ping_bad_options, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ping_concurrent, setup, teardown),
	};
	int ret;

	isolate();
	ret = cmocka_run_group_tests(tests, NULL, NULL);
	unisolate();
	return ret;
}
