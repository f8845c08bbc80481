#include "vmstate.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

static const char *const state_names[VMS_COUNT] = {
	[VMS_POWERED_OFF] = "poweredOff",   [VMS_POWERING_ON] = "poweringOn",
	[VMS_POWERED_ON] = "poweredOn",     [VMS_POWERING_OFF] = "poweringOff",
	[VMS_SUSPENDING] = "suspending",    [VMS_SUSPENDED] = "suspended",
	[VMS_RESETTING] = "resetting",      [VMS_CRASHED] = "crashed",
	[VMS_MIGRATING] = "migrating",      [VMS_INVALID] = "invalid",
	[VMS_CLONING] = "cloning",          [VMS_SNAPSHOTTING] = "snapshotting",
	[VMS_FT_SECONDARY] = "ftSecondary",
};

static const char *const op_names[VMOP_COUNT] = {
	[VMOP_POWER_ON] = "power on",     [VMOP_POWER_OFF] = "power off",
	[VMOP_RESET] = "reset",           [VMOP_SUSPEND] = "suspend",
	[VMOP_RESUME] = "resume",         [VMOP_DESTROY] = "destroy",
	[VMOP_UNREGISTER] = "unregister", [VMOP_KILL] = "process kill",
	[VMOP_MIGRATE] = "migrate",       [VMOP_CLONE] = "clone",
};

/* Y: allowed. Otherwise the hint after "VM x is <state>: " */
#define Y    NULL
#define BUSY "another operation is under way; wait for it (task list) and try again"
#define FT_SEC                                                                                     \
	"it is the fault tolerance secondary of a VM that runs on another host; manage the VM "    \
	"there (vm ft disable there ends its protection)"
static const char *const table[VMS_COUNT][VMOP_COUNT] = {
	[VMS_POWERED_OFF] = {
		[VMOP_POWER_ON] = Y, [VMOP_POWER_OFF] = "it is already off",
		[VMOP_RESET] = "power it on instead", [VMOP_SUSPEND] = "it is not running",
		[VMOP_RESUME] = "only a suspended VM resumes; power it on",
		[VMOP_DESTROY] = Y, [VMOP_UNREGISTER] = Y, [VMOP_KILL] = "it has no vmx process",
		[VMOP_MIGRATE] = Y, [VMOP_CLONE] = Y,
	},
	[VMS_POWERED_ON] = {
		[VMOP_POWER_ON] = "it is already running", [VMOP_POWER_OFF] = Y, [VMOP_RESET] = Y,
		[VMOP_SUSPEND] = Y, [VMOP_RESUME] = "it is running, not suspended",
		[VMOP_DESTROY] = "power it off first", [VMOP_UNREGISTER] = "power it off first",
		[VMOP_KILL] = Y, [VMOP_MIGRATE] = Y, [VMOP_CLONE] = Y,
	},
	[VMS_SUSPENDED] = {
		[VMOP_POWER_ON] = Y, [VMOP_POWER_OFF] = Y,
		[VMOP_RESET] = "resume it (vm power resume) or power it off",
		[VMOP_SUSPEND] = "it is already suspended", [VMOP_RESUME] = Y,
		[VMOP_DESTROY] = "power it off first (that discards the suspended state)",
		[VMOP_UNREGISTER] = Y, [VMOP_KILL] = "it has no vmx process",
		[VMOP_MIGRATE] = Y, [VMOP_CLONE] = Y,
	},
	[VMS_CRASHED] = {
		[VMOP_POWER_ON] = Y, [VMOP_POWER_OFF] = Y, [VMOP_RESET] = Y,
		[VMOP_SUSPEND] = "it is not running", [VMOP_RESUME] = "it is not suspended; power it on",
		[VMOP_DESTROY] = Y, [VMOP_UNREGISTER] = Y, [VMOP_KILL] = "it has no vmx process",
		[VMOP_MIGRATE] = "power it on or off first", [VMOP_CLONE] = Y,
	},
	[VMS_FT_SECONDARY] = {
		[VMOP_POWER_ON] = FT_SEC, [VMOP_POWER_OFF] = FT_SEC, [VMOP_RESET] = FT_SEC,
		[VMOP_SUSPEND] = FT_SEC, [VMOP_RESUME] = FT_SEC, [VMOP_DESTROY] = FT_SEC,
		[VMOP_UNREGISTER] = FT_SEC, [VMOP_KILL] = FT_SEC, [VMOP_MIGRATE] = FT_SEC,
		[VMOP_CLONE] = FT_SEC,
	},
	[VMS_INVALID] = {
		[VMOP_POWER_ON] = "its .vmx cannot be read (vm get shows why); fix it, then unregister and register it again",
		[VMOP_POWER_OFF] = "it is not running", [VMOP_RESET] = "it is not running",
		[VMOP_SUSPEND] = "it is not running", [VMOP_RESUME] = "it is not suspended",
		[VMOP_DESTROY] = Y, [VMOP_UNREGISTER] = Y, [VMOP_KILL] = "it has no vmx process",
		[VMOP_MIGRATE] = "its .vmx cannot be read", [VMOP_CLONE] = "its .vmx cannot be read",
	},
};

const char *vm_state_name(enum vm_state s)
{
	return (unsigned)s < VMS_COUNT ? state_names[s] : "unknown";
}

int vm_state_parse(const char *name)
{
	for (int i = 0; i < VMS_COUNT; i++)
		if (!strcmp(state_names[i], name))
			return i;
	return -1;
}

const char *vm_op_name(enum vm_op op)
{
	return (unsigned)op < VMOP_COUNT ? op_names[op] : "operation";
}

static int transient(enum vm_state s)
{
	return s == VMS_POWERING_ON || s == VMS_POWERING_OFF || s == VMS_SUSPENDING ||
	       s == VMS_RESETTING || s == VMS_MIGRATING || s == VMS_CLONING ||
	       s == VMS_SNAPSHOTTING;
}

int vm_state_check(enum vm_state s, enum vm_op op, const char *vm, char *err, size_t errlen)
{
	const char *why;

	if ((unsigned)s >= VMS_COUNT || (unsigned)op >= VMOP_COUNT) {
		snprintf(err, errlen, "VM %s: internal error: state %d, operation %d", vm, s, op);
		return -EINVAL;
	}
	if (transient(s)) {
		/* a stuck start or stop can still be killed */
		if (op == VMOP_KILL && s != VMS_MIGRATING && s != VMS_CLONING)
			return 0;
		why = BUSY;
	} else {
		why = table[s][op];
		if (!why)
			return 0;
	}
	snprintf(err, errlen, "cannot %s VM %s: it is %s: %s", vm_op_name(op), vm, vm_state_name(s),
	         why);
	return -EBUSY;
}

enum vm_state vm_state_during(enum vm_op op)
{
	switch (op) {
	case VMOP_POWER_ON:
	case VMOP_RESUME:
		return VMS_POWERING_ON;
	case VMOP_POWER_OFF:
	case VMOP_KILL:
		return VMS_POWERING_OFF;
	case VMOP_SUSPEND:
		return VMS_SUSPENDING;
	case VMOP_RESET:
		return VMS_RESETTING;
	case VMOP_MIGRATE:
		return VMS_MIGRATING;
	default:
		return VMS_POWERED_OFF;
	}
}

int vm_state_has_vmx(enum vm_state s)
{
	return s == VMS_POWERED_ON || s == VMS_FT_SECONDARY || transient(s);
}
