/* Whole-VM save and restore over the state stream (docs/state-format.md):
 * CPUM, CONF, one VCPU per vCPU, IRQC, PIT2, CLCK, one DEVS per device,
 * RAM, END. The VM must be paused (or not yet started, for restore). */
#ifndef VMM_SNAPSHOT_H
#define VMM_SNAPSHOT_H

#include "state.h"
#include "vm.h"

int vmm_vm_save(struct vmm_vm *vm, struct vmm_stream *s, char *err, size_t errlen);

/* The pieces of vmm_vm_save, for migration, which sends RAM while the VM
 * runs: the header with CPUM and CONF (any time), then the vCPUs and
 * devices (paused); the caller sends RAM sections and END. live: a live
 * migration's switchover, whose stream carries a TIME section (state.h)
 * stamped as the first vCPU is read, ahead of its state. */
int vmm_vm_save_begin(struct vmm_vm *vm, struct vmm_stream *s, char *err, size_t errlen);
int vmm_vm_save_machine(struct vmm_vm *vm, struct vmm_stream *s, bool live, char *err,
                        size_t errlen);

/* Reads the vCPU's KVM state into c->presaved (presave_ret, presave_err):
 * what its own thread does as it parks for vmm_vm_pause_saving. */
void vmm_vcpu_presave(struct vmm_vcpu *c);
/* Reads the VM's interrupt controllers, PIT and kvmclock into
 * vm->presaved_chips (left empty on failure): what vmm_vm_pause_saving
 * does once every vCPU is parked. */
void vmm_vm_presave_chips(struct vmm_vm *vm);

/* Restores into a VM created with the same memory size, vCPU count and
 * devices (in the same order). Refuses a stream whose CPU model needs
 * features this host's KVM lacks, naming them. */
int vmm_vm_restore(struct vmm_vm *vm, struct vmm_stream *s, char *err, size_t errlen);

#endif
