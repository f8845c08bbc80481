/* Cold migration in hostd (relocate.c): a powered-off or suspended VM's
 * files move to another host's datastore over NFC. */
#ifndef HOSTD_RELOCATE_H
#define HOSTD_RELOCATE_H

#include <stddef.h>
#include <stdint.h>

#include "hostd.h"

#define RELOCATE_MAX_FILES 64

struct relocate_file {
	char name[256];
	uint64_t size, allocated;
};

/* The files a cold migration moves out of a VM's directory: its regular
 * files, sorted by name, but not hidden ones (the datastore lock) or
 * *.part leftovers. -E2BIG beyond max. */
int relocate_list_files(const char *dir, struct relocate_file *out, size_t max, size_t *n);

/* VmMigrateRequest with cold set, on the source. */
int hostd_op_vm_relocate(struct hostd_call *call, const Vmk__Request *req);

#endif
