/* libFuzzer target: a VM's .vmx, which anyone who can write a datastore
 * controls, and which hostd reads when it registers, clones, snapshots or
 * migrates the VM. vmcfg_load must take it whole and valid or refuse it
 * with "FILE:LINE: ..." and never crash or leak (ASan, UBSan); what it
 * takes must be within its bounds; a clone's text (vmcfg_clone_text) and a
 * text with new disk paths (vmcfg_set_disk_paths) of a loadable .vmx must
 * load again, with the new name and the new paths.
 *   make fuzz FUZZ_SECONDS=60 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "fuzz/fuzzutil.h"
#include "util.h"
#include "vmm/vmcfg.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__lsan_default_suppressions(void);

/* libconfig 1.5's own leaks on malformed text (as in fuzz_netconf) */
const char *__lsan_default_suppressions(void)
{
	return "leak:strbuf_append\nleak:libconfig_yylex\n";
}

static char path[96], path2[96];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level(LOG_ERROR);
	const char *dir = fuzz_tmpdir("vmcfg");
	snprintf(path, sizeof(path), "%s/vm.vmx", dir);
	snprintf(path2, sizeof(path2), "%s/again.vmx", dir);
	return 0;
}

static void check_bounds(const struct vmcfg *c)
{
	if (c->memory_mib < VMCFG_MIN_MIB || c->memory_mib > VMCFG_MAX_MIB || c->vcpus < 1 ||
	    c->vcpus > VMCFG_MAX_VCPUS || c->ndisks > VMCFG_MAX_DISKS ||
	    c->nnics > VMCFG_MAX_NICS || !c->name || !c->uuid || strlen(c->uuid) != 36 ||
	    !c->kernel || !c->cmdline || strlen(c->cmdline) > 2047 || !c->serial_log ||
	    !c->cpu_model)
		abort();
	for (unsigned i = 0; i < c->ndisks; i++)
		if (!c->disks[i].path || c->disks[i].path[0] != '/')
			abort();
	for (unsigned i = 0; i < c->nnics; i++)
		if (!c->nics[i].portgroup || !c->nics[i].tap || (c->nics[i].mac[0] & 1))
			abort();
}

/* text written to again.vmx and loaded: it must load */
static void load_again(const char *text, size_t len, struct vmcfg *c)
{
	char err[1024];

	if (util_write_file_atomic(path2, text, len, 0644) < 0)
		abort();
	if (vmcfg_load(path2, c, err, sizeof(err)) < 0) {
		fprintf(stderr, "an edit of a loadable .vmx does not load: %s\n", err);
		abort();
	}
	check_bounds(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vmcfg c, c2;
	char err[1024];

	if (util_write_file_atomic(path, data, size, 0644) < 0)
		abort();
	if (vmcfg_load(path, &c, err, sizeof(err)) < 0) {
		if (strncmp(err, path, strlen(path)) != 0) /* every message names the file */
			abort();
		return 0;
	}
	check_bounds(&c);
	/* the text as hostd has it: the file's bytes up to a NUL */
	char *text = strndup((const char *)data, size);
	char *out = NULL;
	size_t olen = 0;
	if (!text)
		abort();
	if (vmcfg_clone_text(text, "clone", "564d0000-1111-4222-8333-444455556666", &out, &olen,
	                     err, sizeof(err)) < 0)
		abort();
	load_again(out, olen, &c2);
	if (strcmp(c2.name, "clone") != 0 || c2.ndisks != c.ndisks || c2.nnics != c.nnics)
		abort();
	vmcfg_free(&c2);
	free(out);

	const char *paths[VMCFG_MAX_DISKS];
	char names[VMCFG_MAX_DISKS][32];
	for (unsigned i = 0; i < c.ndisks; i++) {
		snprintf(names[i], sizeof(names[i]), "/copy/disk%u.img", i);
		paths[i] = names[i];
	}
	if (c.ndisks) {
		if (vmcfg_set_disk_paths(text, paths, c.ndisks, &out, &olen, err, sizeof(err)) < 0)
			abort();
		load_again(out, olen, &c2);
		for (unsigned i = 0; i < c.ndisks; i++)
			if (strcmp(c2.disks[i].path, paths[i]) != 0)
				abort();
		vmcfg_free(&c2);
		free(out);
	}
	free(text);
	vmcfg_free(&c);
	return 0;
}
