/* `vmx --monitor`: the process hostd starts for a VM. It forks the vmx
 * that runs the VM and waits for it, so however that vmx ends (powered
 * off, crashed, killed with SIGKILL) its status lands in <dir>/vmx.exit
 * (in the run directory: hostd's, per host) and a lock lease it left in
 * the VM's directory is released, even while hostd is down.
 * hostd reads the file when it finds the VM gone (also after its own
 * restart). Like podman's conmon for a container. */
#ifndef VMM_MONITOR_H
#define VMM_MONITOR_H

#define VMX_EXIT_FILE "vmx.exit"
/* vmx's exit status when fault tolerance let the other copy run the VM */
#define VMX_EXIT_FT_LOST 107

/* Returns 0 in the child, which goes on to run the VM. The parent waits
 * for it and exits with its status (128 + signal when killed); it never
 * returns. -errno if the fork fails. */
int vmx_monitor_fork(const char *run_dir, const char *vm_dir, const char *lock_host);

/* What <run_dir>/vmx.exit says: *pid of the vmx, and either *exit_code >= 0
 * or *signal > 0; *when_ms is wall-clock. -ENOENT, or -EBADMSG. */
int vmx_exit_read(const char *dir, int *pid, int *exit_code, int *signal, long long *when_ms);

#endif
