/* VM snapshots in hostd (vmsnap.c): the vm snapshot operations, and the
 * short-lived freeze a clone of a running VM copies its disks under. */
#ifndef HOSTD_VMSNAP_H
#define HOSTD_VMSNAP_H

#include <limits.h>

#include "hostd.h"
#include "task.h"
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

/* For a linked clone whose directory is clone_dir: a snapshot of vm named
 * clone-<dir name> whose frozen layers (absolute paths into layers[]) the
 * clone's deltas will sit on; the snapshot records the clone, and refuses
 * removal (and its layers consolidation) while that directory exists. 0,
 * or a Vmk status with err. */
int vmsnap_link(struct hostd *h, struct hostd_task *t, const char *vm, const char *clone_dir,
                char layers[][PATH_MAX], unsigned *n, char *err, size_t errlen);
/* After a linked clone failed (its directory removed): the snapshot made
 * for it is removed again. */
int vmsnap_unlink_failed(struct hostd *h, struct hostd_task *t, const char *vm,
                         const char *clone_dir, char *err, size_t errlen);
/* A VM's tree as it arrives on another host: the linked clones it recorded
 * are not there (they stayed by the old copy), so none pins it. */
int vmsnap_clear_clones(const char *dir, const char *vm);
/* 1 when a linked clone of one of the VM's snapshots exists (who names
 * it): the VM's files must stay where they are. */
int vmsnap_pinned(const char *dir, const char *vm, char *who, size_t wholen);

#endif
