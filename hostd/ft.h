/* Fault tolerance in hostd (ft.c). The secondary's host prepares an FT
 * secondary vmx for a VM of a shared datastore (registered here in state
 * ftSecondary) and hands out a one-time token; the primary's host tells
 * the VM's vmx to protect it (replica/, a vm.ft.enable task follows it
 * until the first checkpoint is acknowledged). The supervisor (vmrun.c)
 * calls in here: a secondary whose vmx took the datastore lock went live
 * and is the VM's primary now; one whose vmx ended is dropped; a primary
 * whose vmx ended while the generation record names another host failed
 * over, and the VM is no longer this host's. */
#ifndef HOSTD_FT_H
#define HOSTD_FT_H

#include <stdbool.h>

#include "hostd.h"
#include "vmk.pb-c.h"

struct vm;

int hostd_op_vm_ft_prepare(struct hostd_call *call, const Vmk__Request *req);
int hostd_op_vm_ft_enable(struct hostd_call *call, const Vmk__Request *req);
/* status, disable, failover-test */
int hostd_op_vm_ft(struct hostd_call *call, const Vmk__Request *req);

/* -EBUSY with err ("cannot <what> VM x: it is protected ...") when v is a
 * protected primary: live migration, suspend and snapshots wait until
 * protection ends. Lock held. */
int hostd_ft_refuse(const struct vm *v, const char *what, char *err, size_t errlen);

/* ---- for the supervisor and hostd's start (vmrun.c); inventory lock held
 * unless said ---- */

/* Reads <rundir>/ft.info into v's FT fields (hostd's start). */
void hostd_ft_load(struct vm *v);
/* Follows the VMs in state ftSecondary (takes the lock itself, and reads
 * their files on the datastore without it): one whose vmx took the lock
 * went live and is the VM's primary here now; one whose vmx ended goes. */
void hostd_ft_watch(struct hostd *h);
/* A protected primary whose vmx is gone: true while the generation record
 * may still change hands (a killed primary's secondary needs its detection
 * time to win it): the caller waits before it records the exit. */
bool hostd_ft_settling(struct hostd *h, struct vm *v);
/* A primary's vmx ended: true when the record names another host, which
 * runs the VM now: v is dropped from the inventory here (with an event). */
bool hostd_ft_failed_over(struct hostd *h, struct vm *v);
/* Brings the FT fields of protected primaries up to date with their vmx
 * (a secondary lost, protection ended); takes the lock itself. */
void hostd_ft_poll(struct hostd *h);
/* Primaries protected with --secondary auto that need a secondary (they
 * failed over here, or lost theirs) get one from the other hosts of the
 * cluster (ft_reprotect.c; nothing without a cluster section); takes the
 * lock itself. */
void hostd_ft_reprotect(struct hostd *h);
/* Forgets v's FT role (its vmx ended, or protection ended). */
void hostd_ft_clear(struct vm *v);

#endif
