/* vMotion in hostd (migrate.c): the checks a destination makes. */
#ifndef HOSTD_MIGRATE_H
#define HOSTD_MIGRATE_H

#include <stddef.h>

/* Can this host run a guest that was given CPU model `model` with these
 * CPUID features (lib/cpufeatures.c names)? Uses the accelerator vmx would
 * use here ($VMK_ACCEL, else KVM when /dev/kvm opens, else the software
 * CPU). 0, or -ENOTSUP with err listing what this host lacks (an unknown
 * name counts as lacking). */
int migrate_cpu_check(const char *host, const char *vm, const char *model, char *const *features,
                      size_t n, char *err, size_t errlen);

/* ---- an incoming vmx on this host: a migration's destination, or an FT
 * secondary (ft.c) ---- */
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "hostd.h"
#include "inventory.h"
#include "network.h"
#include "vmstate.h"
#include "vmm/vmcfg.h"

struct incoming_vm {
	char name[VM_NAME_MAX + 1];
	char dir[PATH_MAX];
	char rundir[PATH_MAX];
	char cfgpath[PATH_MAX];
	pid_t monitor;              /* `vmx --monitor`, our child; 0 once reaped */
	int pid;                    /* the vmx, once it listens */
	bool registered_here;       /* registered for this: undone on failure */
	char created_dir[PATH_MAX]; /* storage migration: the new home, removed on failure */
	/* an FT secondary's own copies of the disks (--disk), in disk order */
	const char *disk_files[VMCFG_MAX_DISKS];
	unsigned ndisk_files;
	/* where it waits, and for what */
	char addr[128];
	uint32_t port;
	char token[65];
	char vmk[16];
	char netns[128];
	char note[300];
};

/* DATASTORE:DIR/NAME.vmx, as this host sees it: 0 and real/ds, or a
 * Vmk status with err (hint ends the "does not see datastore" one). */
int incoming_shared_path(struct hostd *h, const char *name, const char *dspath, const char *hint,
                         char *real, size_t reallen, char *ds, size_t dslen, char *err,
                         size_t errlen);
/* Whether this host can run the VM: its CPU features (when n), and its
 * memory. 0 or a Vmk status with err. */
int incoming_admit(struct hostd *h, const char *name, uint32_t memory_mib, const char *model,
                   char *const *features, size_t n, char *err, size_t errlen);
/* Registers the .vmx at real (of datastore ds) if it is not, and puts the
 * VM into state `during`; a registered VM must be powered off. 0 and iv's
 * name and paths, or a Vmk status with err. */
int incoming_register(struct hostd *h, const char *real, const char *ds, const char *name,
                      enum vm_state during, struct incoming_vm *iv, char *err, size_t errlen);
/* Starts the incoming vmx with a fresh one-time token, listening on the
 * vmk tagged `tag` (the Management address when there is none), and
 * waits for its port. 0 and iv's address, port, token..., or a Vmk status
 * with err (the vmx may still run: incoming_undo). */
int incoming_spawn(struct hostd *h, struct incoming_vm *iv, enum net_tag tag, bool ft_secondary,
                   char *err, size_t errlen);
/* Gives up: kills the vmx (if iv->monitor), drops what incoming_register
 * registered, or leaves the VM powered off. */
void incoming_undo(struct hostd *h, struct incoming_vm *iv);

#endif
