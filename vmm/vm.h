/* One KVM virtual machine: memory, in-kernel irqchip and PIT, vCPU
 * threads, and the devices that vCPU exits are dispatched to. */
#ifndef VMM_VM_H
#define VMM_VM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "boot.h"
#include "cpumodel.h"
#include "device.h"
#include "mem.h"
#include "sbuf.h"

#define VMM_MAX_VCPUS   64
#define VMM_MAX_DEVICES 16

/* What runs the vCPUs: KVM, or the software CPU (softcpu.h) where KVM is
 * missing, as QEMU falls back to TCG. */
enum vmm_accel {
	VMM_ACCEL_KVM,
	VMM_ACCEL_SOFT,
};

enum vmm_run_state {
	VM_CREATED,
	VM_RUNNING,
	VM_PAUSED,
	VM_POWERED_OFF, /* the guest powered off (status in power_status) */
	VM_CRASHED,     /* triple fault, failed entry, internal error: see exit_reason */
};

struct vmm_vm;
struct softcpu;

/* A wait for the vCPU threads (parking, reading their state) first looks
 * for them this long, yielding its core each time, and then sleeps: these
 * waits take tens of us, and a sleeper waits as long again for the
 * scheduler to wake it (30-70 us under nested KVM, traced). */
#define VMM_SPIN_US 200
/* Returns once waiting(arg) is false or VMM_SPIN_US have passed; at once
 * for a real-time caller (an FT epoch), whose yield would not give its
 * core to a vCPU thread on it. Only for a pause that is followed by work
 * (vmm_vm_pause_saving), not by a sleep: a thread that yielded its way
 * through the pause was woken late from the sleep after it by the
 * scheduler, behind the vCPU thread it had let run, and auto-converge's
 * 50 us run windows at 99 % became 2 ms (the guest dirtied on at 60 of
 * its 64 MiB/s and never converged). */
void vmm_spin_while(bool (*waiting)(const void *arg), const void *arg);

/* A vCPU's state read by its own thread as it parks (vmm_vm_pause_saving) */
enum vmm_presave {
	VMM_PRESAVE_NONE,
	VMM_PRESAVE_WANTED, /* asked for; the vCPU's thread, or whoever saves first, takes it */
	VMM_PRESAVE_BUSY,   /* the vCPU's thread is reading it */
	VMM_PRESAVE_DONE,   /* in presaved, for this pause */
};

struct vmm_vcpu {
	struct vmm_vm *vm;
	unsigned index;
	int fd;
	struct kvm_run *run;
	size_t run_size;
	struct softcpu *soft; /* VMM_ACCEL_SOFT: the interpreter; run is plain memory */
	pthread_t thread;
	bool started;
	bool io_pending; /* a KVM I/O or MMIO exit KVM completes on the next KVM_RUN */
	uint64_t exits;  /* counted, for stats and tuning */
	/* vmm_vm_pause_saving (KVM): the thread reads its own vCPU's state
	 * (a dozen ioctls, ~0.1 ms here) as it parks, while the pauser goes
	 * on with the dirty log and the last pages; vmm_vm_save_machine
	 * then writes it. Under vm->lock, except the read itself (BUSY). */
	_Atomic int presave; /* enum vmm_presave */
	struct sbuf presaved;
	int presave_ret;          /* 0, or -errno with presave_err */
	uint64_t presave_wall_ns; /* CLOCK_REALTIME as the read began (the TIME section) */
	char presave_err[160];
};

struct vmm_vm {
	enum vmm_accel accel;
	int kvm_fd, vm_fd;
	struct vmm_mem mem;
	struct vmm_bus bus;
	struct vmm_vcpu vcpus[VMM_MAX_VCPUS];
	unsigned nvcpus;
	struct vmm_device *devs[VMM_MAX_DEVICES];
	unsigned ndevs;
	uint32_t tsc_khz;
	/* KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 with INITIALLY_SET: starting the
	 * log protects nothing (every page counts as dirty), a harvest
	 * (KVM_GET_DIRTY_LOG) re-protects nothing; vmm_vm_dirty_clear
	 * re-protects pages chunk by chunk, just before they are read for
	 * sending, so a page the guest rewrites meanwhile is sent once. The
	 * first pass must clear every page it sends (a harvest before it
	 * would report all of memory). */
	bool dirty_manual;
	/* A live migration's TIME section (state.h): the source's
	 * CLOCK_REALTIME in ns as it read the vCPUs' state, 0 when the stream
	 * had none (a state file). The guest's TSC runs on at the source
	 * while paused; restored from a stream with it, the TSC is set that
	 * much further as the state took to arrive (as the KVM documentation
	 * describes for migrating the TSC), so the guest's clock loses no
	 * time to the switchover. A state file keeps the TSC it was saved
	 * with. */
	uint64_t src_realtime_ns;
	char cpu_model_name[32];      /* from the .vmx; "host" by default */
	struct vmm_cpumodel cpumodel; /* what the guest was given (state section CPUM) */

	pthread_mutex_t lock;
	pthread_cond_t cond;
	_Atomic int state; /* enum vmm_run_state */
	bool pause_requested;
	_Atomic unsigned vcpus_paused; /* vCPU threads parked outside KVM_RUN */
	/* vmm_vm_pause_saving (KVM): the interrupt controllers, PIT and
	 * kvmclock, read by the pauser as the vCPUs read theirs (snapshot.c
	 * vmm_vm_presave_chips); empty when not read for this pause */
	struct sbuf presaved_chips;
	unsigned io_busy; /* device work outside the vCPUs (a NIC's receive) */
	int power_status;
	char exit_reason[256];
};

/* Creates the VM with ram_bytes of memory (memfd-backed when use_memfd) and
 * nvcpus vCPUs. KVM: opens /dev/kvm, with in-kernel irqchip and PIT; errors
 * name what KVM refused. Soft: one vCPU, no interrupt controller. */
int vmm_vm_create(struct vmm_vm *vm, enum vmm_accel accel, uint64_t ram_bytes, unsigned nvcpus,
                  bool use_memfd, char *err, size_t errlen);
const char *vmm_accel_name(enum vmm_accel a);
/* "kvm", "soft" or "auto" (KVM when /dev/kvm opens, else soft; *why then
 * says why KVM was not used). -EINVAL for another name. */
int vmm_accel_choose(const char *name, enum vmm_accel *out, char *why, size_t whylen);

/* The CPUID leaves the accelerator can give a guest (KVM's supported set,
 * or the software CPU's), before the CPU model filters them. */
/* The leaves the software CPU offers (before a CPU model filters them). */
size_t vmm_soft_cpuid_leaves(struct cpuid_leaf *l, size_t max, uint32_t tsc_khz);
int vmm_vm_supported_leaves(const struct vmm_vm *vm, struct cpuid_leaf *l, size_t max, size_t *n,
                            char *err, size_t errlen);
void vmm_vm_destroy(struct vmm_vm *vm);

/* Takes ownership of d (destroyed with the VM). */
int vmm_vm_add_device(struct vmm_vm *vm, struct vmm_device *d);

/* Sets CPUID (host-supported, filtered to vm->cpu_model_name) and the boot
 * vCPU's registers for
 * the entry protocol in b; other vCPUs wait for INIT/SIPI. */
int vmm_vm_setup_boot(struct vmm_vm *vm, const struct vmm_boot *b, char *err, size_t errlen);

/* Starts the vCPU threads. */
int vmm_vm_start(struct vmm_vm *vm);
/* Starts them parked, as if paused (a migration's destination, before the
 * hand-over): vmm_vm_resume runs the guest without a thread to create.
 * Returns without waiting for them to park. */
int vmm_vm_start_paused(struct vmm_vm *vm);
/* Pause: every vCPU leaves KVM_RUN and parks; returns when all are parked. */
void vmm_vm_pause(struct vmm_vm *vm);
/* The same, and each KVM vCPU's thread then reads its state for
 * vmm_vm_save_machine while the caller goes on (a switchover, a
 * checkpoint: the dirty log and the last pages meanwhile). Also on a VM
 * paused already. */
void vmm_vm_pause_saving(struct vmm_vm *vm);
/* Resumes a paused VM (after any vCPU state read in progress is done). */
void vmm_vm_resume(struct vmm_vm *vm);
/* Device work that writes guest memory or device state from a thread of
 * its own (a NIC's receive): it runs between begin and end, which returns
 * false while the VM is not running. A pause returns only once no such
 * work runs, so a state saved while paused is whole. */
bool vmm_vm_io_begin(struct vmm_vm *vm);
void vmm_vm_io_end(struct vmm_vm *vm);
/* Waits until the VM powers off or crashes; returns the final state. */
enum vmm_run_state vmm_vm_wait(struct vmm_vm *vm);
/* Asks the vCPUs to stop (power off from the host side). */
void vmm_vm_stop(struct vmm_vm *vm, enum vmm_run_state final, const char *why);

const char *vmm_run_state_name(enum vmm_run_state s);

/* Dirty logging of guest RAM for migration: start (every page counts as
 * clean), harvest (bits of the pages written since the last harvest into
 * out: vm->mem.dirty_pages bits, cleared), stop. Guest writes come from
 * KVM's log (KVM_GET_DIRTY_LOG) or the software CPU; device writes are
 * logged by the virtqueues. */
int vmm_vm_dirty_start(struct vmm_vm *vm, char *err, size_t errlen);
uint64_t vmm_vm_dirty_harvest(struct vmm_vm *vm, uint64_t *out);
/* Re-arms the log for the pages set in bm in [from, to) (page numbers,
 * from a multiple of 64): their next write is logged again. Call it right
 * before reading them for sending. A no-op unless vm->dirty_manual (then
 * the harvest re-armed them already). -errno when KVM refused: the pages'
 * next writes might go unlogged, so the migration must fail. */
int vmm_vm_dirty_clear(struct vmm_vm *vm, const uint64_t *bm, uint64_t from, uint64_t to);
void vmm_vm_dirty_stop(struct vmm_vm *vm);

#endif
