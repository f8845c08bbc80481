/* hostd/netconf.c: the network group of host.cfg and network.cfg. Bad
 * entries are skipped (and logged with FILE:LINE) while the rest loads;
 * network.cfg replaces host.cfg's netstacks and adapters; save and load
 * round-trip. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "hostd/network.h"
#include "log.h"
#include "util.h"

static char dir[64], host_cfg[128], runtime[128], logfile[128];

static void write_file(const char *path, const char *text)
{
	assert_int_equal(util_write_file_atomic(path, text, strlen(text), 0644), 0);
}

static bool log_has(const char *needle)
{
	char *text = NULL;
	bool found;

	assert_int_equal(util_read_file(logfile, 1u << 20, &text, NULL), 0);
	found = strstr(text, needle) != NULL;
	free(text);
	return found;
}

static const struct net_vmk *vmk(const struct net_model *m, const char *name)
{
	for (size_t i = 0; i < m->nvmks; i++)
		if (strcmp(m->vmks[i].name, name) == 0)
			return &m->vmks[i];
	return NULL;
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/vmk-test-netconf.XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(host_cfg, sizeof(host_cfg), "%s/host.cfg", dir);
	snprintf(runtime, sizeof(runtime), "%s/network.cfg", dir);
	snprintf(logfile, sizeof(logfile), "%s/log", dir);
	assert_int_equal(log_set_file(logfile), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	log_set_file(NULL);
	util_rm_tree(dir);
	return 0;
}

static const char *const good =
        "host = { name = \"esx1\"; };\n"
        "network = {\n"
        "  switches = ( { name = \"vSwitch0\"; uplinks = [ \"eth1\", \"eth2\" ];\n"
        "    portgroups = ( { name = \"Management Network\"; uplink = \"eth1\"; },\n"
        "                   { name = \"vMotion\"; uplink = \"eth2\"; vlan = 20; } ); } );\n"
        "  netstacks = [ \"backup\" ];\n"
        "  interfaces = (\n"
        "    { name = \"vmk0\"; portgroup = \"Management Network\"; ipv4 = \"198.18.0.11\";\n"
        "      netmask = \"255.255.255.0\"; gateway = \"198.18.0.1\"; tags = [ \"Management\" ]; "
        "},\n"
        "    { name = \"vmk1\"; portgroup = \"vMotion\"; netstack = \"vmotion\"; mtu = 9000;\n"
        "      tags = [ \"VMotion\", \"faultToleranceLogging\" ]; }\n"
        "  );\n"
        "};\n";

static void test_good(void **state)
{
	struct net_model m;
	char ns[128];

	(void)state;
	write_file(host_cfg, good);
	netconf_load(&m, host_cfg, runtime, "esx1");
	assert_true(m.managed);
	assert_int_equal(m.nswitches, 1);
	assert_int_equal(m.switches[0].nuplinks, 2);
	assert_int_equal(m.nportgroups, 2);
	assert_string_equal(m.portgroups[1].name, "vMotion");
	assert_string_equal(m.portgroups[1].uplink, "eth2");
	char br[16];
	net_pg_bridge("vMotion", br);
	assert_string_equal(m.portgroups[1].bridge, br); /* by name, not position */
	assert_int_equal(strlen(br), 11);
	assert_int_equal(m.portgroups[1].vlan, 20);
	assert_int_equal(m.nnetstacks, 4); /* three built in, backup */
	assert_int_equal(m.nvmks, 2);
	const struct net_vmk *v0 = vmk(&m, "vmk0"), *v1 = vmk(&m, "vmk1");
	assert_non_null(v0);
	assert_non_null(v1);
	assert_string_equal(v0->netstack, NET_DEFAULT_STACK);
	assert_int_equal(v0->mtu, 1500);
	assert_true(v0->has_ipv4);
	assert_int_equal(v0->tags, 1u << NET_TAG_MANAGEMENT);
	assert_int_equal(ntohl(v0->gateway.s_addr), 0xc6120001u); /* 198.18.0.1 */
	assert_int_equal(v1->mtu, 9000);
	assert_false(v1->has_ipv4);
	assert_int_equal(v1->tags, (1u << NET_TAG_VMOTION) | (1u << NET_TAG_FT));
	netconf_ns_name(&m, "vmotion", ns, sizeof(ns));
	assert_string_equal(ns, "vmk-esx1-vmotion");
	netconf_ns_name(&m, NET_DEFAULT_STACK, ns, sizeof(ns));
	assert_string_equal(ns, "");
}

static void test_unmanaged(void **state)
{
	struct net_model m;

	(void)state;
	write_file(host_cfg, "host = { name = \"esx1\"; };\n");
	netconf_load(&m, host_cfg, runtime, "esx1");
	assert_false(m.managed);
	assert_int_equal(m.nnetstacks, 3);
	assert_int_equal(m.nvmks, 0);
}

/* each bad entry is skipped with its line; the good ones load */
static void test_bad_entries(void **state)
{
	struct net_model m;

	(void)state;
	write_file(host_cfg,
	           "host = { name = \"esx1\"; };\n"
	           "network = {\n"
	           "  switches = ( { name = \"vSwitch0\"; uplinks = [ \"eth1\" ];\n"
	           "    portgroups = ( { name = \"PG\"; uplink = \"eth1\"; },\n"
	           "                   { name = \"Bad\"; uplink = \"eth9\"; },\n"
	           "                   { name = \"PG\"; }, { name = \"PG2\"; uplink = \"eth1\"; } "
	           "); } );\n"
	           "  interfaces = (\n"
	           "    { name = \"vmk0\"; portgroup = \"PG\"; tags = [ \"Management\" ]; },\n"
	           "    { name = \"vmk0\"; portgroup = \"PG\"; },\n"
	           "    { name = \"eth0\"; portgroup = \"PG\"; },\n"
	           "    { name = \"vmk2\"; portgroup = \"Nowhere\"; },\n"
	           "    { name = \"vmk3\"; portgroup = \"PG\"; netstack = \"nosuch\"; },\n"
	           "    { name = \"vmk4\"; portgroup = \"PG\"; mtu = 100000; },\n"
	           "    { name = \"vmk5\"; portgroup = \"PG\"; ipv4 = \"198.18.0.300\"; netmask = "
	           "\"255.255.255.0\"; },\n"
	           "    { name = \"vmk6\"; portgroup = \"PG\"; ipv4 = \"198.18.0.6\"; netmask = "
	           "\"255.0.255.0\"; },\n"
	           "    { name = \"vmk7\"; portgroup = \"PG\"; tags = [ \"Bogus\" ]; },\n"
	           "    { name = \"vmk9\"; portgroup = \"PG\"; ipv4 = \"198.18.0.9\"; netmask = "
	           "\"255.255.255.0\"; gateway = \"198.18.5.1\"; },\n"
	           "    { name = \"vmk8\"; portgroup = \"PG\"; mtu = 9000; }\n"
	           "  );\n"
	           "};\n");
	netconf_load(&m, host_cfg, runtime, "esx1");
	assert_true(m.managed);
	assert_int_equal(m.nportgroups, 1);
	assert_int_equal(m.nvmks, 2);
	assert_non_null(vmk(&m, "vmk0"));
	assert_non_null(vmk(&m, "vmk8"));
	assert_true(
	        log_has("host.cfg:5: port group \"Bad\": uplink eth9 is not an uplink of switch "
	                "vSwitch0"));
	assert_true(log_has("host.cfg:6: port group \"PG\" is defined twice"));
	assert_true(log_has("host.cfg:6: port group \"PG2\": uplink eth1 (VLAN 0) is port group "
	                    "\"PG\"'s already"));
	assert_true(log_has("host.cfg:9: vmk0 is defined twice"));
	assert_true(log_has("host.cfg:10: a vmk adapter needs a name vmkN"));
	assert_true(log_has("host.cfg:11: vmk2: portgroup \"Nowhere\""));
	assert_true(log_has("host.cfg:12: vmk3: netstack \"nosuch\" does not exist"));
	assert_true(log_has("host.cfg:13: vmk4: mtu 100000 is outside 576..9000"));
	assert_true(log_has("host.cfg:14: vmk5: ipv4 and netmask"));
	assert_true(log_has("host.cfg:15: vmk6: ipv4 and netmask"));
	assert_true(log_has("vmk7: tag \"Bogus\" is unknown"));
	assert_true(log_has(
	        "host.cfg:17: vmk9: gateway \"198.18.5.1\" must be an address on the subnet"));
}

/* network.cfg replaces host.cfg's adapters; save then load gives the same */
static void test_runtime_round_trip(void **state)
{
	struct net_model m, m2;

	(void)state;
	write_file(host_cfg, good);
	netconf_load(&m, host_cfg, runtime, "esx1");
	struct net_vmk *v1 = &m.vmks[1];
	v1->enabled = false;
	v1->has_ipv4 = true;
	inet_pton(AF_INET, "198.18.2.11", &v1->ipv4);
	inet_pton(AF_INET, "255.255.255.0", &v1->netmask);
	assert_int_equal(netconf_save(&m, runtime), 0);
	netconf_load(&m2, host_cfg, runtime, "esx1");
	assert_int_equal(m2.nnetstacks, m.nnetstacks);
	assert_int_equal(m2.nvmks, 2);
	for (size_t i = 0; i < 2; i++) {
		assert_string_equal(m2.vmks[i].name, m.vmks[i].name);
		assert_string_equal(m2.vmks[i].portgroup, m.vmks[i].portgroup);
		assert_string_equal(m2.vmks[i].netstack, m.vmks[i].netstack);
		assert_int_equal(m2.vmks[i].mtu, m.vmks[i].mtu);
		assert_int_equal(m2.vmks[i].enabled, m.vmks[i].enabled);
		assert_int_equal(m2.vmks[i].has_ipv4, m.vmks[i].has_ipv4);
		assert_int_equal(m2.vmks[i].ipv4.s_addr, m.vmks[i].ipv4.s_addr);
		assert_int_equal(m2.vmks[i].netmask.s_addr, m.vmks[i].netmask.s_addr);
		assert_int_equal(m2.vmks[i].tags, m.vmks[i].tags);
		assert_int_equal(m2.vmks[i].gateway.s_addr, m.vmks[i].gateway.s_addr);
	}
	/* a broken network.cfg: host.cfg's adapters, and a warning */
	write_file(runtime, "interfaces = ( { name = ");
	netconf_load(&m2, host_cfg, runtime, "esx1");
	assert_int_equal(m2.nvmks, 2);
	assert_true(m2.vmks[1].enabled);
	assert_true(log_has("using the netstacks and vmk adapters of"));
	unlink(runtime);
}

static void test_tags_and_names(void **state)
{
	enum net_tag t;

	(void)state;
	for (unsigned i = 0; i < NET_TAG_COUNT; i++) {
		assert_int_equal(net_tag_parse(net_tag_name((enum net_tag)i), &t), 0);
		assert_int_equal(t, i);
	}
	assert_int_equal(net_tag_parse("vmotion", &t), 0); /* case as esxcli takes it */
	assert_int_equal(t, NET_TAG_VMOTION);
	assert_int_equal(net_tag_parse("Bogus", &t), -EINVAL);
	assert_true(net_valid_vmk_name("vmk0"));
	assert_true(net_valid_vmk_name("vmk12345"));
	assert_false(net_valid_vmk_name("vmk"));
	assert_false(net_valid_vmk_name("vmk123456"));
	assert_false(net_valid_vmk_name("vmkx"));
	assert_false(net_valid_vmk_name("eth0"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),           cmocka_unit_test(test_unmanaged),
		cmocka_unit_test(test_bad_entries),    cmocka_unit_test(test_runtime_round_trip),
		cmocka_unit_test(test_tags_and_names),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
