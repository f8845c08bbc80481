/* libFuzzer target: hostd's network files. host.cfg's network group and
 * <state_dir>/network.cfg (which anyone who can write hostd's state
 * directory controls) go through netconf_load: whatever they hold, every
 * entry is either taken whole and valid or skipped with a warning, the
 * model stays within its bounds, and nothing crashes or leaks (ASan,
 * UBSan). The input is the runtime file; host.cfg is a fixed, valid one.
 *   make fuzz FUZZ_SECONDS=60 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hostd/network.h"
#include "log.h"
#include "fuzz/fuzzutil.h"
#include "util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__lsan_default_suppressions(void);

/* libconfig 1.5 (Debian 12) leaks its string buffer when a file ends
 * inside a string (64 bytes in strbuf_append), and a byte its lexer
 * callocs on some malformed input (libconfig_yylex): nothing of ours, and
 * hostd reads these files once at start */
const char *__lsan_default_suppressions(void)
{
	return "leak:strbuf_append\nleak:libconfig_yylex\n";
}

static char host_cfg[96], runtime[96];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level(LOG_ERROR); /* the skipped entries are the point */
	const char *dir = fuzz_tmpdir("netconf");
	snprintf(host_cfg, sizeof(host_cfg), "%s/host.cfg", dir);
	snprintf(runtime, sizeof(runtime), "%s/network.cfg", dir);
	FILE *f = fopen(host_cfg, "w");
	if (!f)
		abort();
	fputs("host = { name = \"esx1\"; };\n"
	      "network = { switches = ( { name = \"vSwitch0\"; uplinks = [ \"eth1\", \"eth2\" ];\n"
	      "  portgroups = ( { name = \"Management Network\"; uplink = \"eth1\"; },\n"
	      "                 { name = \"vMotion\"; uplink = \"eth2\"; vlan = 20; } ); } ); };\n",
	      f);
	fclose(f);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct net_model m;
	FILE *f = fopen(runtime, "w");

	if (!f)
		abort();
	fwrite(data, 1, size, f);
	fclose(f);
	netconf_load(&m, host_cfg, runtime, "esx1");
	if (m.nnetstacks > NET_MAX_NETSTACKS || m.nvmks > NET_MAX_VMKS ||
	    m.nportgroups > NET_MAX_PORTGROUPS)
		abort();
	for (size_t i = 0; i < m.nvmks; i++) {
		const struct net_vmk *v = &m.vmks[i];
		if (!net_valid_vmk_name(v->name) || v->mtu < NET_MIN_MTU || v->mtu > NET_MAX_MTU ||
		    !net_find_pg(&m, v->portgroup) || !net_find_stack(&m, v->netstack) ||
		    v->tags >= (1u << NET_TAG_COUNT))
			abort();
		if (v->has_ipv4 && v->netmask.s_addr == 0)
			abort();
	}
	/* what it loaded saves and loads back the same */
	if (netconf_save(&m, runtime) == 0) {
		static struct net_model m2;
		netconf_load(&m2, host_cfg, runtime, "esx1");
		if (m2.nvmks != m.nvmks || m2.nnetstacks != m.nnetstacks)
			abort();
	}
	return 0;
}
