/* Micro-guest entry (CPL 3): runtime set-up, then the chosen workload.
 * Command line: "<workload> [key=value ...]", e.g. "heartbeat interval_ms=1". */
#include "rt.h"
#include "workloads.h"

static const struct {
	const char *name;
	int (*fn)(void);
} workloads[] = {
	{ "hello", wl_hello }, { "heartbeat", wl_heartbeat }, { "burn", wl_burn },
	{ "dirty", wl_dirty }, { "verify", wl_verify },       { "disk", wl_disk },
	{ "net", wl_net },
};

int guest_main(const struct hvm_start_info *si);

int guest_main(const struct hvm_start_info *si)
{
	char w[32];

	cmdline_init(si);
	mem_init(si);
	if (!cmdline_word(0, w, sizeof(w)) || w[0] == 0)
		memcpy(w, "hello", 6);
	time_init();
	for (unsigned i = 0; i < sizeof(workloads) / sizeof(workloads[0]); i++) {
		if (strlen(w) == strlen(workloads[i].name) &&
		    strncmp(w, workloads[i].name, sizeof(w)) == 0)
			return workloads[i].fn();
	}
	printf_("unknown workload '%s' (command line: %s)\n", w, cmdline());
	return 2;
}
