/* Running VMs: hostd starts each VM's vmx through `vmx --monitor` in its
 * own session (so the VM outlives hostd), holds nothing but its pid, and
 * finds it again through the control socket in the VM's directory after a
 * restart. A supervisor thread notices a vmx that ended and records why
 * (vmx.exit, written by the monitor). The power operations run as tasks.
 * The state table is vmstate.h. */
#ifndef HOSTD_VMRUN_H
#define HOSTD_VMRUN_H

#include <stdint.h>

#include "hostd.h"
#include "vmstate.h"
#include "vmx.pb-c.h"

#define VMRUN_START_TIMEOUT_MS 30000 /* a vmx that is not running by then is killed */
#define VMRUN_STOP_TIMEOUT_MS  10000 /* then SIGKILL */
#define VMRUN_SUSPEND_FILE_EXT ".vmss"
/* <dir>/<name>.vmss: where a suspended VM's state is. */
void vmrun_suspend_path(const char *dir, const char *name, char *out, size_t outlen);

/* Re-attaches to every VM of the inventory whose vmx still runs, marks the
 * ones whose vmx ended while hostd was down (crashed, with how it ended),
 * and starts the supervisor. */
int hostd_vmrun_start(struct hostd *h);
/* Stops the supervisor; the VMs keep running. */
void hostd_vmrun_stop(struct hostd *h);
/* Stops the supervisor only (it starts tasks: before the task table goes);
 * hostd_vmrun_stop frees the rest. */
void hostd_vmrun_halt(struct hostd *h);

/* The vmx binary hostd starts: $VMK_VMX, else `vmx` beside hostd. */
const char *hostd_vmx_path(void);

/* The last "vmx: ..." line of a VM's vmx.log (the reason a start failed or
 * a guest crashed), into out; "" when none. */
void vmrun_last_error(const char *dir, char *out, size_t outlen);

/* <state_dir>/run/<name>: where this host's vmx of a VM keeps vmx.sock and
 * vmx.exit (the VM's directory may be shared with other hosts). */
void vmrun_dir(const struct hostd *h, const char *name, char *out, size_t outlen);

/* ---- for the other VM operations (migrate.c) ---- */
#include <stdbool.h>
#include <sys/types.h>

/* An incoming vmx: it receives a migration (or, ft_secondary, keeps an FT
 * secondary copy) on addr, for the token in token_file, listening inside
 * the network namespace netns when it is not NULL. */
struct vmrun_incoming {
	const char *addr;
	const char *token_file;
	const char *netns;
	bool ft_secondary;
	const char *const *disks; /* its own disk files (an FT secondary's), ndisks of them */
	unsigned ndisks;
};
/* Starts `vmx --monitor` for a VM (restore: from a suspend file; in: an
 * incoming vmx). */
int vmrun_spawn(struct hostd *h, const char *cfgpath, const char *dir, const char *rundir,
                const char *restore, const struct vmrun_incoming *in, pid_t *monitor, char *err,
                size_t errlen);
/* Deletes the taps of a VM's NICs (it stopped running here, or never
 * started); lock of the inventory held or not, it touches no state. */
struct vm;
void vmrun_release_nics(struct hostd *h, const struct vm *v);
/* One control call to the vmx whose socket is in rundir (version set). */
/* Powers a running VM off at once, outside a power task (a snapshot
 * revert, which has it snapshotting): its vmx stopped, the VM then in
 * state `after` with reason. -EBUSY when no vmx runs it. */
int vmrun_power_off_now(struct hostd *h, const char *name, const char *reason, enum vm_state after);

int vmrun_vmx_call(const char *rundir, Vmx__Request *rq, Vmx__Response **rs, int timeout_ms,
                   char *err, size_t errlen);
/* The vmx's status through its control socket in rundir; -errno if none. */
int vmrun_vmx_status(const char *rundir, int *pid, char *state, size_t statelen,
                     uint64_t *uptime_ms, uint32_t *incoming_port);
/* The vmx with that pid holds the VM's datastore lock for this host. */
bool vmrun_vmx_is_ours(struct hostd *h, const char *vmdir, int pid);
bool vmrun_pid_alive(int pid);
/* The running guest's CPU model and features (its vmx's status), in a. */
int vmrun_vmx_cpu(const char *rundir, struct arena *a, char **model, char ***features, size_t *n);

int hostd_op_vm_power(struct hostd_call *call, const Vmk__Request *req);

#endif
