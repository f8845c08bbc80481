/* Inside the inventory: the VM records that inventory.c (registration),
 * vmrun.c (power operations, supervision) and vmproc.c (processes,
 * console) share. Everything here is guarded by hostd_inventory.lock. */
#ifndef HOSTD_INVENTORY_INT_H
#define HOSTD_INVENTORY_INT_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "inventory.h"
#include "vmm/vmcfg.h"
#include "vmstate.h"

struct vm {
	char name[VM_NAME_MAX + 1];
	char path[PATH_MAX]; /* .vmx */
	char datastore[64];
	bool valid;
	char error[300];
	struct vmcfg cfg;      /* when valid */
	char dir[PATH_MAX];    /* the VM's directory (of the .vmx) */
	char rundir[PATH_MAX]; /* this host's: vmx.sock, vmx.exit (<state_dir>/run/<name>) */

	/* runtime: what hostd knows of the VM's vmx */
	enum vm_state state;
	int pid;                  /* the vmx running it; 0 when none */
	int monitor_pid;          /* its monitor, when hostd started it (our child) */
	uint64_t gone_ms;         /* when the supervisor first found its vmx gone, 0 */
	uint64_t started_ms;      /* wall clock of the last power on */
	bool expect_exit;         /* hostd asked it to stop: its exit is no crash */
	uint64_t staged_until_ms; /* a live --storage migration staged its frozen files:
	                           * no snapshot operation until then (or its end) */
	char reason[300];         /* why it is in its state (a crash, the last exit) */

	/* fault tolerance (ft.c), kept in <rundir>/ft.info too */
	char ft_role[12];     /* "primary", "secondary", "" not protected */
	char ft_peer[128];    /* the other host */
	char ft_network[300]; /* "vmk3 ADDR -> esx2 vmk3 ADDR:PORT" */
	char ft_note[400];    /* fallbacks to Management */
	uint32_t ft_epoch_ms;
	uint32_t ft_detect_ms;  /* 0: the default for its epochs */
	bool ft_registered;     /* secondary: registered for FT here, dropped when it ends */
	bool ft_starting;       /* primary: a vm.ft.enable task runs; secondary: its vmx starts */
	uint64_t ft_generation; /* primary: of the record, when protection began */
	char ft_disks_dir[PATH_MAX]; /* secondary: where its copies of the disks are */
	bool ft_auto;                /* --secondary auto: a lost secondary is replaced by itself */
	uint64_t ft_retry_ms;        /* re-protect: not before (util_now_ms), in memory only */
	uint64_t ft_claim;           /* bumped by every enable, re-protect and disable: a
	                              * re-protect's claim holds while it is unchanged */
};

struct hostd_inventory {
	pthread_mutex_t lock;
	const struct hostd_config *hcfg;
	struct hostd_datastores *ds;
	char file[PATH_MAX];
	size_t n;
	struct vm *vms[INVENTORY_MAX];
};

/* Lock held for all of these. */
struct vm *inv_find(struct hostd_inventory *inv, const char *name);
/* Adds the .vmx at path (of datastore ds, or "") and loads it; NULL when
 * the inventory is full. */
struct vm *inv_add(struct hostd_inventory *inv, const char *path, const char *ds);
void inv_drop(struct hostd_inventory *inv, struct vm *v);
/* Reads v's .vmx again (after hostd rewrote it); an error marks it invalid. */
void inv_reload(struct vm *v);
/* Persists the registered VMs and their last known power state. */
int inv_save(struct hostd_inventory *inv);

#endif
