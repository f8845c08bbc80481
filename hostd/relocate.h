/* Cold migration in hostd (relocate.c): a powered-off or suspended VM's
 * files move to another host's datastore over NFC. */
#ifndef HOSTD_RELOCATE_H
#define HOSTD_RELOCATE_H

#include <stddef.h>
#include <stdint.h>

#include "hostd.h"
#include "network.h"
#include "task.h"

#define RELOCATE_MAX_FILES 64
#define RELOCATE_STAGED    ".staged" /* a directory of files staged for a live --storage */

struct relocate_file {
	char name[256];
	uint64_t size, allocated;
};

/* The files a cold migration moves out of a VM's directory: its regular
 * files, sorted by name, but not hidden ones (the datastore lock) or
 * *.part leftovers. -E2BIG beyond max. */
int relocate_list_files(const char *dir, struct relocate_file *out, size_t max, size_t *n);

struct relocate_send_file {
	const char *path;  /* here */
	const char *token; /* of its transfer at the destination */
	uint64_t size;
	const char *label; /* for progress and errors */
};
/* Sends the files in order (the last one commits at the destination),
 * reconnecting after drops, as task t's work: progress from pct_from to
 * pct_to, the transferred_bytes detail, and t's cancel. After a failure the
 * destination is told to give up. 0 or -errno with err; sent and
 * reconnects are set either way. */
int relocate_send_files(struct hostd_task *t, const struct net_route *r,
                        const struct relocate_send_file *f, size_t n, uint64_t max_bps,
                        unsigned pct_from, unsigned pct_to, uint64_t *sent, unsigned *reconnects,
                        char *err, size_t errlen);

/* VmMigrateRequest with cold set, on the source. */
int hostd_op_vm_relocate(struct hostd_call *call, const Vmk__Request *req);

#endif
