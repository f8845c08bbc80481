/* lib/netlink.c and lib/netns.c against the real kernel, inside a private
 * network + mount namespace (root only; skipped otherwise): links, bridges,
 * veth pairs across namespaces, addresses, the default route, named
 * namespaces. Nothing reaches the host: the process's namespaces die with
 * it, and VMK_NETNS_DIR is a private tmpfs. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <cmocka.h>

#include "lib/netlink.h"
#include "lib/netns.h"

#include "netns_sandbox.h"

/* Removes every link but lo and every named namespace: each test starts
 * from an empty network namespace, whatever the previous one left. */
static int cleanup(void **state)
{
	(void)state;
	if (!isolated)
		return 0;
	int nl = nl_open();
	if (nl >= 0) {
		struct nl_link links[64];
		size_t n = 0;
		nl_link_list(nl, links, 64, &n);
		for (size_t i = 0; i < n; i++)
			if (strcmp(links[i].name, "lo") != 0)
				nl_link_del(nl, links[i].name, NULL, 0);
		nl_close(nl);
	}
	DIR *d = opendir(nsdir);
	struct dirent *de;
	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.')
			netns_delete(de->d_name, NULL, 0);
	if (d)
		closedir(d);
	return 0;
}

static ino_t cur_netns(void)
{
	struct stat st;

	assert_int_equal(stat("/proc/thread-self/ns/net", &st), 0);
	return st.st_ino;
}

/* ---- links ---- */

static void test_bridge(void **state)
{
	char err[300];
	struct nl_link l;
	(void)state;
	REQUIRE_ISOLATION();
	int nl = nl_open();
	assert_true(nl >= 0);

	assert_int_equal(nl_link_add_bridge(nl, "br0", 0, err, sizeof(err)), 0);
	assert_int_equal(nl_link_get(nl, "br0", &l), 0);
	assert_string_equal(l.name, "br0");
	assert_string_equal(l.kind, "bridge");
	assert_true(l.ifindex > 0);
	assert_int_equal(l.mtu, 1500);
	assert_int_equal(l.master, 0);
	assert_false(l.flags & IFF_UP);

	assert_int_equal(nl_link_add_bridge(nl, "br9k", 9000, err, sizeof(err)), 0);
	assert_int_equal(nl_link_get(nl, "br9k", &l), 0);
	assert_int_equal(l.mtu, 9000);

	assert_int_equal(nl_link_set(nl, "br0", 1, 0, NULL, err, sizeof(err)), 0);
	assert_int_equal(nl_link_get(nl, "br0", &l), 0);
	assert_true(l.flags & IFF_UP);
	assert_int_equal(nl_link_set(nl, "br0", 0, 0, NULL, err, sizeof(err)), 0);
	assert_int_equal(nl_link_get(nl, "br0", &l), 0);
	assert_false(l.flags & IFF_UP);

	assert_int_equal(nl_link_del(nl, "br0", err, sizeof(err)), 0);
	assert_int_equal(nl_link_get(nl, "br0", &l), -ENODEV);
	nl_close(nl);
}

static void test_duplicate_link(void **state)
{
	char err[300];
	(void)state;
	REQUIRE_ISOLATION();
	int nl = nl_open();
	assert_true(nl >= 0);

	assert_int_equal(nl_link_add_bridge(nl, "vs1", 0, err, sizeof(err)), 0);
	err[0] = '\0';
	assert_int_equal(nl_link_add_bridge(nl, "vs1", 0, err, sizeof(err)), -EEXIST);
	print_message("duplicate bridge: %s\n", err);
	assert_non_null(strstr(err, "vs1: RTM_NEWLINK"));
	assert_non_null(strstr(err, "File exists"));

	assert_int_equal(nl_link_add_veth(nl, "va", "vb", -1, 0, err, sizeof(err)), 0);
	err[0] = '\0';
	assert_int_equal(nl_link_add_veth(nl, "va", "vc", -1, 0, err, sizeof(err)), -EEXIST);
	assert_non_null(strstr(err, "va"));
	/* the peer's name clashing counts too */
	assert_int_equal(nl_link_add_veth(nl, "vd", "vs1", -1, 0, err, sizeof(err)), -EEXIST);
	assert_non_null(strstr(err, "vs1"));
	nl_close(nl);
}

static void test_absent_and_invalid(void **state)
{
	char err[300];
	struct nl_link l;
	struct in_addr a;
	unsigned plen;
	(void)state;
	REQUIRE_ISOLATION();
	int nl = nl_open();
	assert_true(nl >= 0);

	assert_int_equal(nl_link_get(nl, "nosuch0", &l), -ENODEV);
	assert_int_equal(nl_link_del(nl, "nosuch0", err, sizeof(err)), -ENODEV);
	assert_non_null(strstr(err, "nosuch0"));
	assert_int_equal(nl_link_set(nl, "nosuch0", 1, 0, NULL, err, sizeof(err)), -ENODEV);
	assert_non_null(strstr(err, "nosuch0: RTM_SETLINK up"));
	assert_int_equal(nl_addr_get(nl, "nosuch0", &a, &plen), -ENODEV);
	a.s_addr = htonl(0xc6120501);
	assert_int_equal(nl_addr_replace(nl, "nosuch0", a, 24, err, sizeof(err)), -ENODEV);
	assert_non_null(strstr(err, "nosuch0"));
	assert_int_equal(nl_addr_flush(nl, "nosuch0", err, sizeof(err)), -ENODEV);

	assert_int_equal(nl_link_get(nl, "", &l), -EINVAL);
	assert_int_equal(nl_link_get(nl, "sixteen-chars-xx", &l), -EINVAL);
	assert_int_equal(nl_link_get(nl, "a/b", &l), -EINVAL);
	assert_int_equal(nl_link_get(nl, "a b", &l), -EINVAL);
	assert_int_equal(nl_link_add_bridge(nl, "a:b", 0, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "a:b"));
	assert_int_equal(nl_link_add_veth(nl, "ok0", "sixteen-chars-xx", -1, 0, err, sizeof(err)),
	                 -EINVAL);
	assert_non_null(strstr(err, "sixteen-chars-xx"));
	assert_int_equal(nl_link_set(nl, "lo", 2, 0, NULL, err, sizeof(err)), -EINVAL);
	assert_int_equal(nl_link_set_netns(nl, "lo", -1, err, sizeof(err)), -EBADF);
	/* a NULL err is allowed */
	assert_int_equal(nl_link_del(nl, "nosuch0", NULL, 0), -ENODEV);
	nl_close(nl);
}

static void test_bad_mtu(void **state)
{
	char err[300];
	struct nl_link l;
	(void)state;
	REQUIRE_ISOLATION();
	int nl = nl_open();
	assert_true(nl >= 0);

	int ret = nl_link_add_bridge(nl, "brbig", 100000, err, sizeof(err));
	print_message("bridge mtu 100000: %s\n", err);
	assert_int_equal(ret, -EINVAL);
	assert_non_null(strstr(err, "brbig: RTM_NEWLINK bridge mtu 100000: Invalid argument"));
	/* the kernel's extended ack, when it sends one, is quoted */
	if (strstr(err, "(kernel: "))
		assert_non_null(strstr(err, "mtu"));
	assert_int_equal(nl_link_get(nl, "brbig", &l), -ENODEV);

	assert_int_equal(nl_link_add_veth(nl, "ve0", "ve1", -1, 0, err, sizeof(err)), 0);
	ret = nl_link_set(nl, "ve0", -1, 100000, NULL, err, sizeof(err));
	print_message("veth mtu 100000: %s\n", err);
	assert_int_equal(ret, -EINVAL);
	assert_non_null(strstr(err, "ve0: RTM_SETLINK mtu 100000"));
	if (strstr(err, "(kernel: "))
		assert_non_null(strstr(err, "mtu"));
	assert_int_equal(nl_link_get(nl, "ve0", &l), 0);
	assert_int_equal(l.mtu, 1500);
	/* below the minimum too */
	assert_int_equal(nl_link_set(nl, "ve0", -1, 50, NULL, err, sizeof(err)), -EINVAL);
	nl_close(nl);
}

/* an 802.1Q link where the kernel has them (CONFIG_VLAN_8021Q); where it
 * does not, a clear error naming the link and the kernel's reason */
static void test_vlan(void **state)
{
	char err[300] = "";
	struct nl_link l;
	(void)state;
	REQUIRE_ISOLATION();
	int nl = nl_open();
	assert_true(nl >= 0);
	assert_int_equal(nl_link_add_veth(nl, "up0", "up0p", -1, 0, err, sizeof(err)), 0);
	assert_int_equal(nl_link_add_vlan(nl, "up0.5000", "up0", 5000, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "5000 is outside 1..4094"));
	assert_int_equal(nl_link_add_vlan(nl, "x.20", "nosuch", 20, err, sizeof(err)), -ENODEV);
	assert_non_null(strstr(err, "nosuch"));
	int ret = nl_link_add_vlan(nl, "up0.20", "up0", 20, err, sizeof(err));
	if (ret == 0) {
		assert_int_equal(nl_link_get(nl, "up0.20", &l), 0);
		assert_string_equal(l.kind, "vlan");
	} else {
		assert_int_equal(ret, -EOPNOTSUPP);
		assert_non_null(strstr(err, "up0.20: RTM_NEWLINK vlan 20 on up0"));
		print_message("this kernel has no 802.1Q links: %s\n", err);
	}
	nl_close(nl);
}

static void test_veth_peer_in_netns(void **state)
{
	char err[300];
	struct nl_link l, p;
	(void)state;
	REQUIRE_ISOLATION();
	int nl = nl_open();
	assert_true(nl >= 0);

	assert_int_equal(netns_create("ns1", err, sizeof(err)), 0);
	int fd = netns_open("ns1");
	assert_true(fd >= 0);
	assert_int_equal(nl_link_add_veth(nl, "vp-vmk1", "vmk1", fd, 9000, err, sizeof(err)), 0);

	assert_int_equal(nl_link_get(nl, "vp-vmk1", &l), 0);
	assert_string_equal(l.kind, "veth");
	assert_int_equal(l.mtu, 9000);
	assert_int_equal(nl_link_get(nl, "vmk1", &p), -ENODEV);

	int nlns = nl_open_netns(fd);
	assert_true(nlns >= 0);
	assert_int_equal(nl_link_get(nlns, "vmk1", &p), 0);
	assert_string_equal(p.kind, "veth");
	assert_int_equal(p.mtu, 9000);
	assert_int_equal(nl_link_get(nlns, "vp-vmk1", &l), -ENODEV);
	/* netns_create brought lo up */
	assert_int_equal(nl_link_get(nlns, "lo", &l), 0);
	assert_true(l.flags & IFF_UP);
	assert_string_equal(l.kind, "");

	/* the same name may exist in both namespaces */
	assert_int_equal(nl_link_add_veth(nl, "vmk1", "vmk1b", -1, 0, err, sizeof(err)), 0);
	assert_int_equal(nl_link_add_veth(nl, "x0", "vmk1", fd, 0, err, sizeof(err)), -EEXIST);
	assert_non_null(strstr(err, "vmk1"));

	/* deleting one end deletes its peer in the other namespace */
	assert_int_equal(nl_link_del(nl, "vp-vmk1", err, sizeof(err)), 0);
	assert_int_equal(nl_link_get(nlns, "vmk1", &p), -ENODEV);
	nl_close(nlns);
	close(fd);
	nl_close(nl);
}

static void test_enslave(void **state)
{
	char err[300];
	struct nl_link br, l;
	(void)state;
	REQUIRE_ISOLATION();
	int nl = nl_open();
	assert_true(nl >= 0);

	assert_int_equal(netns_create("ns-s", err, sizeof(err)), 0);
	int fd = netns_open("ns-s");
	assert_true(fd >= 0);
	assert_int_equal(nl_link_add_bridge(nl, "vs0", 9000, err, sizeof(err)), 0);
	assert_int_equal(nl_link_add_veth(nl, "vp-vmk0", "vmk0", fd, 0, err, sizeof(err)), 0);
	assert_int_equal(nl_link_get(nl, "vs0", &br), 0);

	assert_int_equal(nl_link_set(nl, "vp-vmk0", 1, 9000, "vs0", err, sizeof(err)), 0);
	assert_int_equal(nl_link_get(nl, "vp-vmk0", &l), 0);
	assert_int_equal(l.master, br.ifindex);
	assert_int_equal(l.mtu, 9000);
	assert_true(l.flags & IFF_UP);
	int nlns = nl_open_netns(fd);
	assert_true(nlns >= 0);
	assert_int_equal(nl_link_set(nlns, "vmk0", 1, 9000, NULL, err, sizeof(err)), 0);
	assert_int_equal(nl_link_get(nlns, "vmk0", &l), 0);
	assert_int_equal(l.mtu, 9000);
	assert_true(l.flags & IFF_UP);
	assert_int_equal(nl_link_wait_running(nlns, "vmk0", 5000), 0);
	assert_int_equal(nl_link_wait_running(nl, "vp-vmk0", 5000), 0);
	/* one end down: the other has no carrier, never runs */
	assert_int_equal(nl_link_set(nlns, "vmk0", 0, 0, NULL, err, sizeof(err)), 0);
	assert_int_equal(nl_link_wait_running(nl, "vp-vmk0", 50), -ETIMEDOUT);
	assert_int_equal(nl_link_wait_running(nl, "nosuch0", 50), -ENODEV);
	nl_close(nlns);

	/* nomaster, then a bridge that does not exist */
	assert_int_equal(nl_link_set(nl, "vp-vmk0", -1, 0, "", err, sizeof(err)), 0);
	assert_int_equal(nl_link_get(nl, "vp-vmk0", &l), 0);
	assert_int_equal(l.master, 0);
	assert_true(l.flags & IFF_UP);
	assert_int_equal(nl_link_set(nl, "vp-vmk0", -1, 0, "nobr", err, sizeof(err)), -ENODEV);
	assert_non_null(strstr(err, "nobr"));
	assert_non_null(strstr(err, "vp-vmk0"));
	/* a port that is not a bridge cannot be a master */
	assert_int_equal(nl_link_add_veth(nl, "va", "vb", -1, 0, err, sizeof(err)), 0);
	assert_true(nl_link_set(nl, "vp-vmk0", -1, 0, "va", err, sizeof(err)) < 0);
	print_message("enslave to a veth: %s\n", err);
	assert_non_null(strstr(err, "master va"));
	close(fd);
	nl_close(nl);
}

static void test_link_list(void **state)
{
	char err[300];
	struct nl_link links[16];
	size_t n = 0;
	bool lo = false, br = false, va = false, vb = false;
	(void)state;
	REQUIRE_ISOLATION();
	int nl = nl_open();
	assert_true(nl >= 0);

	assert_int_equal(nl_link_add_bridge(nl, "lbr", 0, err, sizeof(err)), 0);
	assert_int_equal(nl_link_add_veth(nl, "lva", "lvb", -1, 0, err, sizeof(err)), 0);
	assert_int_equal(nl_link_list(nl, links, 16, &n), 0);
	assert_int_equal(n, 4);
	for (size_t i = 0; i < n; i++) {
		lo |= strcmp(links[i].name, "lo") == 0;
		br |= strcmp(links[i].name, "lbr") == 0 && strcmp(links[i].kind, "bridge") == 0;
		va |= strcmp(links[i].name, "lva") == 0 && strcmp(links[i].kind, "veth") == 0;
		vb |= strcmp(links[i].name, "lvb") == 0 && links[i].mtu == 1500;
	}
	assert_true(lo && br && va && vb);
	assert_int_equal(nl_link_list(nl, links, 2, &n), -ENOSPC);
	assert_int_equal(n, 2);
	/* the socket is still in step after a dump */
	assert_int_equal(nl_link_get(nl, "lbr", &links[0]), 0);
	assert_string_equal(links[0].name, "lbr");
	nl_close(nl);
}

static void test_set_netns(void **state)
{
	char err[300];
	struct nl_link l;
	(void)state;
	REQUIRE_ISOLATION();
	int nl = nl_open();
	assert_true(nl >= 0);

	assert_int_equal(netns_create("ns2", err, sizeof(err)), 0);
	int fd = netns_open("ns2");
	assert_true(fd >= 0);
	assert_int_equal(nl_link_add_veth(nl, "mv0", "mv1", -1, 1400, err, sizeof(err)), 0);
	assert_int_equal(nl_link_set(nl, "mv1", 1, 0, NULL, err, sizeof(err)), 0);
	assert_int_equal(nl_link_set_netns(nl, "mv1", fd, err, sizeof(err)), 0);
	assert_int_equal(nl_link_get(nl, "mv1", &l), -ENODEV);
	int nlns = nl_open_netns(fd);
	assert_true(nlns >= 0);
	assert_int_equal(nl_link_get(nlns, "mv1", &l), 0);
	assert_int_equal(l.mtu, 1400);
	assert_false(l.flags & IFF_UP); /* moving a link takes it down */
	assert_int_equal(nl_link_set_netns(nl, "nosuch0", fd, err, sizeof(err)), -ENODEV);
	assert_non_null(strstr(err, "nosuch0"));
	nl_close(nlns);
	close(fd);
	nl_close(nl);
}

/* ---- addresses and routes ---- */

static struct in_addr ip4(const char *s)
{
	struct in_addr a;

	assert_int_equal(inet_pton(AF_INET, s, &a), 1);
	return a;
}

static void test_addresses(void **state)
{
	char err[300];
	struct in_addr a;
	unsigned plen = 0;
	(void)state;
	REQUIRE_ISOLATION();
	int nl = nl_open();
	assert_true(nl >= 0);

	assert_int_equal(nl_link_add_veth(nl, "ad0", "ad1", -1, 0, err, sizeof(err)), 0);
	assert_int_equal(nl_addr_get(nl, "ad0", &a, &plen), -ENOENT);
	assert_int_equal(nl_addr_flush(nl, "ad0", err, sizeof(err)), 0);

	assert_int_equal(nl_addr_replace(nl, "ad0", ip4("198.18.5.1"), 24, err, sizeof(err)), 0);
	assert_int_equal(nl_addr_get(nl, "ad0", &a, &plen), 0);
	assert_int_equal(a.s_addr, ip4("198.18.5.1").s_addr);
	assert_int_equal(plen, 24);
	/* replace is idempotent */
	assert_int_equal(nl_addr_replace(nl, "ad0", ip4("198.18.5.1"), 24, err, sizeof(err)), 0);

	/* a second subnet and a secondary in the first: the primary stays first */
	assert_int_equal(nl_addr_replace(nl, "ad0", ip4("198.18.6.1"), 24, err, sizeof(err)), 0);
	assert_int_equal(nl_addr_replace(nl, "ad0", ip4("198.18.5.9"), 24, err, sizeof(err)), 0);
	assert_int_equal(nl_addr_replace(nl, "ad0", ip4("10.9.9.9"), 32, err, sizeof(err)), 0);
	assert_int_equal(nl_addr_get(nl, "ad0", &a, &plen), 0);
	assert_int_equal(a.s_addr, ip4("198.18.5.1").s_addr);

	assert_int_equal(nl_addr_flush(nl, "ad0", err, sizeof(err)), 0);
	assert_int_equal(nl_addr_get(nl, "ad0", &a, &plen), -ENOENT);

	/* flush-then-replace moves the interface to a new address */
	assert_int_equal(nl_addr_replace(nl, "ad0", ip4("198.18.5.1"), 24, err, sizeof(err)), 0);
	assert_int_equal(nl_addr_flush(nl, "ad0", err, sizeof(err)), 0);
	assert_int_equal(nl_addr_replace(nl, "ad0", ip4("198.18.8.3"), 16, err, sizeof(err)), 0);
	assert_int_equal(nl_addr_get(nl, "ad0", &a, &plen), 0);
	assert_int_equal(a.s_addr, ip4("198.18.8.3").s_addr);
	assert_int_equal(plen, 16);

	assert_int_equal(nl_addr_replace(nl, "ad0", ip4("198.18.5.1"), 33, err, sizeof(err)),
	                 -EINVAL);
	assert_non_null(strstr(err, "ad0"));
	/* the other end is untouched */
	assert_int_equal(nl_addr_get(nl, "ad1", &a, &plen), -ENOENT);
	nl_close(nl);
}

static void test_default_route(void **state)
{
	char err[300];
	struct in_addr gw;
	(void)state;
	REQUIRE_ISOLATION();
	int nl = nl_open();
	assert_true(nl >= 0);

	assert_int_equal(nl_link_add_veth(nl, "rt0", "rt1", -1, 0, err, sizeof(err)), 0);
	assert_int_equal(nl_link_set(nl, "rt1", 1, 0, NULL, err, sizeof(err)), 0);
	assert_int_equal(nl_link_set(nl, "rt0", 1, 0, NULL, err, sizeof(err)), 0);
	assert_int_equal(nl_addr_replace(nl, "rt0", ip4("198.18.7.2"), 24, err, sizeof(err)), 0);
	assert_int_equal(nl_route_get_default(nl, &gw), -ENOENT);

	err[0] = '\0';
	int ret = nl_route_replace_default(nl, ip4("203.0.113.1"), err, sizeof(err));
	print_message("unreachable gateway: %s\n", err);
	assert_int_equal(ret, -ENETUNREACH);
	assert_non_null(strstr(err, "default via 203.0.113.1: RTM_NEWROUTE"));

	assert_int_equal(nl_route_replace_default(nl, ip4("198.18.7.1"), err, sizeof(err)), 0);
	assert_int_equal(nl_route_get_default(nl, &gw), 0);
	assert_int_equal(gw.s_addr, ip4("198.18.7.1").s_addr);
	/* replace: still one default route, the new gateway */
	assert_int_equal(nl_route_replace_default(nl, ip4("198.18.7.254"), err, sizeof(err)), 0);
	assert_int_equal(nl_route_get_default(nl, &gw), 0);
	assert_int_equal(gw.s_addr, ip4("198.18.7.254").s_addr);

	assert_int_equal(nl_route_del_default(nl, err, sizeof(err)), 0);
	assert_int_equal(nl_route_get_default(nl, &gw), -ENOENT);
	assert_int_equal(nl_route_del_default(nl, err, sizeof(err)), -ESRCH);
	assert_non_null(strstr(err, "default route: RTM_DELROUTE"));
	nl_close(nl);
}

/* ---- named namespaces ---- */

static void test_netns_lifecycle(void **state)
{
	char err[300], path[PATH_MAX];
	(void)state;
	REQUIRE_ISOLATION();
	ino_t mine = cur_netns();

	assert_string_equal(netns_dir(), nsdir);
	assert_false(netns_exists("ns-a"));
	assert_int_equal(netns_create("ns-a", err, sizeof(err)), 0);
	assert_true(netns_exists("ns-a"));
	/* made in another thread: this one is where it was */
	assert_true(cur_netns() == mine);

	int fd = netns_open("ns-a");
	assert_true(fd >= 0);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	assert_true(st.st_ino != mine);
	close(fd);

	err[0] = '\0';
	assert_int_equal(netns_create("ns-a", err, sizeof(err)), -EEXIST);
	print_message("create twice: %s\n", err);
	assert_non_null(strstr(err, "ns-a"));
	assert_non_null(strstr(err, "already exists"));
	assert_true(netns_exists("ns-a")); /* the failed create left it alone */
	fd = netns_open("ns-a");
	assert_true(fd >= 0);
	close(fd);

	assert_int_equal(netns_delete("ns-a", err, sizeof(err)), 0);
	assert_false(netns_exists("ns-a"));
	assert_int_equal(netns_open("ns-a"), -ENOENT);
	err[0] = '\0';
	assert_int_equal(netns_delete("ns-a", err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "ns-a"));

	/* the directory is a shared mount point, as iproute2 makes it */
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[1024];
	bool shared = false;
	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (strstr(line, nsdir) && strstr(line, " shared:"))
			shared = true;
	fclose(f);
	assert_true(shared);

	/* an empty file (an interrupted create) is not a namespace */
	snprintf(path, sizeof(path), "%s/stray", nsdir);
	int sfd = open(path, O_CREAT | O_WRONLY, 0);
	assert_true(sfd >= 0);
	close(sfd);
	assert_true(netns_exists("stray"));
	assert_int_equal(netns_open("stray"), -EINVAL);
	assert_int_equal(netns_delete("stray", err, sizeof(err)), 0);

	/* longest name */
	char longest[NETNS_NAME_MAX + 1];
	memset(longest, 'n', NETNS_NAME_MAX);
	longest[NETNS_NAME_MAX] = '\0';
	assert_int_equal(netns_create(longest, err, sizeof(err)), 0);
	assert_int_equal(netns_delete(longest, err, sizeof(err)), 0);
}

static void test_netns_invalid_names(void **state)
{
	const char *bad[] = { "", ".", "..", "a/b", "../etc", "a b", "tab\t", "nl\n", "x*", "é" };
	char err[300], toolong[NETNS_NAME_MAX + 2];
	(void)state;
	REQUIRE_ISOLATION();

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(netns_create(bad[i], err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "invalid network namespace name"));
		assert_int_equal(netns_delete(bad[i], err, sizeof(err)), -EINVAL);
		assert_int_equal(netns_open(bad[i]), -EINVAL);
		assert_false(netns_exists(bad[i]));
	}
	memset(toolong, 'n', NETNS_NAME_MAX + 1);
	toolong[NETNS_NAME_MAX + 1] = '\0';
	assert_int_equal(netns_create(toolong, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "at most 63"));
	assert_int_equal(netns_create(NULL, err, sizeof(err)), -EINVAL);
	assert_false(netns_valid_name("a/b", NULL, 0));
	assert_true(netns_valid_name("vmk-esx1_v.2", NULL, 0));
	/* nothing was created */
	DIR *d = opendir(nsdir);
	struct dirent *de;
	int n = 0;
	assert_non_null(d);
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	assert_int_equal(n, 0);
}

static int ns_inode_fn(void *arg)
{
	struct stat st;

	if (stat("/proc/thread-self/ns/net", &st) < 0)
		return -errno;
	*(ino_t *)arg = st.st_ino;
	return 42;
}

static void test_netns_socket_call(void **state)
{
	char err[300];
	struct stat st;
	struct nl_link l;
	ino_t mine, seen = 0;
	(void)state;
	REQUIRE_ISOLATION();
	mine = cur_netns();

	assert_int_equal(netns_create("ns-c", err, sizeof(err)), 0);
	int fd = netns_open("ns-c");
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);

	assert_int_equal(netns_call(fd, ns_inode_fn, &seen), 42);
	assert_true(seen == st.st_ino);
	assert_true(cur_netns() == mine);
	assert_int_equal(netns_call(-1, ns_inode_fn, &seen), 42);
	assert_true(seen == mine);

	/* a socket made inside works there after we came back */
	int s = netns_socket(fd, AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(s >= 0);
	assert_true(cur_netns() == mine);
	int nlns = nl_open_netns(fd);
	assert_true(nlns >= 0);
	assert_int_equal(nl_link_set(nlns, "lo", 1, 0, NULL, err, sizeof(err)), 0);
	assert_int_equal(nl_addr_replace(nlns, "lo", (struct in_addr){ htonl(0xc6120909) }, 32, err,
	                                 sizeof(err)),
	                 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0xc6120909) };
	assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0); /* 198.18.9.9 is there */
	close(s);
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(s >= 0);
	assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), -1); /* not here */
	assert_int_equal(errno, EADDRNOTAVAIL);
	close(s);
	s = netns_socket(-1, AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(s >= 0);
	close(s);

	/* not a namespace fd: refused, and we stay where we are */
	int bogus = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	assert_true(bogus >= 0);
	assert_int_equal(netns_socket(bogus, AF_INET, SOCK_DGRAM, 0), -EINVAL);
	assert_int_equal(netns_call(bogus, ns_inode_fn, &seen), -EINVAL);
	assert_true(cur_netns() == mine);
	close(bogus);
	/* the kernel's error for an impossible socket comes back */
	assert_int_equal(netns_socket(fd, 12345, SOCK_DGRAM, 0), -EAFNOSUPPORT);
	assert_true(cur_netns() == mine);

	/* deleting the name does not pull the namespace from under an open fd */
	assert_int_equal(netns_delete("ns-c", err, sizeof(err)), 0);
	assert_int_equal(nl_link_get(nlns, "lo", &l), 0);
	nl_close(nlns);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_bridge, cleanup),
		cmocka_unit_test_teardown(test_duplicate_link, cleanup),
		cmocka_unit_test_teardown(test_absent_and_invalid, cleanup),
		cmocka_unit_test_teardown(test_bad_mtu, cleanup),
		cmocka_unit_test_teardown(test_veth_peer_in_netns, cleanup),
		cmocka_unit_test_teardown(test_vlan, cleanup),
		cmocka_unit_test_teardown(test_enslave, cleanup),
		cmocka_unit_test_teardown(test_link_list, cleanup),
		cmocka_unit_test_teardown(test_set_netns, cleanup),
		cmocka_unit_test_teardown(test_addresses, cleanup),
		cmocka_unit_test_teardown(test_default_route, cleanup),
		cmocka_unit_test_teardown(test_netns_lifecycle, cleanup),
		cmocka_unit_test_teardown(test_netns_invalid_names, cleanup),
		cmocka_unit_test_teardown(test_netns_socket_call, cleanup),
	};
	int ret;

	isolate();
	ret = cmocka_run_group_tests(tests, NULL, NULL);
	unisolate();
	return ret;
}
