/* VM snapshots in hostd (vmsnap.c): the vm snapshot operations, and the
 * short-lived freeze a clone of a running VM copies its disks under. */
#ifndef HOSTD_VMSNAP_H
#define HOSTD_VMSNAP_H

#include <limits.h>

#include "hostd.h"
#include "inventory.h"
#include "vmm/vmcfg.h"

struct vmsnap_freeze {
	char vm[VM_NAME_MAX + 1];
	char dir[PATH_MAX];
	unsigned n;
	char tops[VMCFG_MAX_DISKS][256];  /* the frozen layers: copy these (files of dir) */
	char temps[VMCFG_MAX_DISKS][256]; /* the deltas the guest writes to meanwhile */
};

/* Freezes a running VM's disks under temporary deltas, holding off other
 * snapshot operations until vmsnap_thaw. 0 or -errno with err. */
int vmsnap_freeze(struct hostd *h, const char *vm, struct vmsnap_freeze *f, char *err,
                  size_t errlen);
/* Merges the temporary deltas back (through the vmx while it runs, else
 * offline), names the frozen layers in the .vmx again, removes the temps. */
int vmsnap_thaw(struct hostd *h, struct vmsnap_freeze *f, char *err, size_t errlen);

#endif
