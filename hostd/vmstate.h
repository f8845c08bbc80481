/* The power states of a VM and which operations each allows: one table,
 * so every handler refuses the same way (exit 5 naming the state). */
#ifndef HOSTD_VMSTATE_H
#define HOSTD_VMSTATE_H

#include <stddef.h>

enum vm_state {
	VMS_POWERED_OFF,
	VMS_POWERING_ON,
	VMS_POWERED_ON,
	VMS_POWERING_OFF,
	VMS_SUSPENDING,
	VMS_SUSPENDED,
	VMS_RESETTING,
	VMS_CRASHED,
	VMS_MIGRATING,
	VMS_INVALID,
	VMS_CLONING,      /* its files are being copied into a clone */
	VMS_SNAPSHOTTING, /* a snapshot operation changes its disks */
	VMS_FT_SECONDARY, /* an FT secondary copy of a VM that runs on another host */
	VMS_COUNT
};

enum vm_op {
	VMOP_POWER_ON,
	VMOP_POWER_OFF,
	VMOP_RESET,
	VMOP_SUSPEND,
	VMOP_RESUME,
	VMOP_DESTROY,
	VMOP_UNREGISTER,
	VMOP_KILL,
	VMOP_MIGRATE,
	VMOP_CLONE,
	VMOP_COUNT
};

const char *vm_state_name(enum vm_state s);
/* -1 for an unknown name */
int vm_state_parse(const char *name);
const char *vm_op_name(enum vm_op op);

/* 0 when op may start in state s; else -EBUSY with err saying why, naming
 * the VM and its state and what to do instead. */
int vm_state_check(enum vm_state s, enum vm_op op, const char *vm, char *err, size_t errlen);

/* The state a VM is in while op runs (poweringOn, ...). */
enum vm_state vm_state_during(enum vm_op op);

/* A state in which a vmx runs (or is being started or stopped). */
int vm_state_has_vmx(enum vm_state s);

#endif
