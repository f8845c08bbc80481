/* vmx's side of the datastore ownership lock (lib/vmlock.h): the vmx that
 * runs a VM holds its lease itself, so the lock stays with the running VM
 * whatever happens to hostd, and a vmx that cannot renew stops its guest
 * before another host may start it. */
#ifndef VMM_LEASE_H
#define VMM_LEASE_H

#include <pthread.h>
#include <stdbool.h>

#include "vm.h"
#include "vmlock.h"

struct vmx_lease {
	struct vmlock lk;
	struct vmm_vm *vm;
	pthread_t thread;
	bool running;
	pthread_mutex_t m;
	pthread_cond_t cv;
	bool stop;
};

/* Takes the lock of the VM in dir for host/addr and this process. A live
 * holder (one whose lease is renewed while we watch, or this host's with
 * its file lock held) fails at once with -EBUSY and err naming it; an
 * unchanged lease is watched for up to its lease time, then taken over
 * (the host that held it is dead). */
int vmx_lease_take(struct vmx_lease *l, const char *dir, const char *host, const char *addr,
                   char *err, size_t errlen);
/* Takes the lock at once whoever holds it (vmlock_seize): for the FT
 * secondary that won the generation record, which proves the primary
 * stops; the primary's renewal then finds its lease lost. */
int vmx_lease_seize(struct vmx_lease *l, const char *dir, const char *host, const char *addr,
                    char *err, size_t errlen);
/* Renews in a thread; if the lease is lost the VM is stopped (crashed,
 * with the reason). */
int vmx_lease_start(struct vmx_lease *l, struct vmm_vm *vm);
/* Stops renewing and releases the lock (if still ours). */
void vmx_lease_end(struct vmx_lease *l);

#endif
