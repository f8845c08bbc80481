/* vmkctl vm snapshot create|list|revert|remove */
#include <stdio.h>
#include <string.h>

#include "handlers.h"
#include "taskwait.h"

static int snapshot_op(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out,
                       const char *op)
{
	Vmk__Request req = VMK__REQUEST__INIT;
	Vmk__VmSnapshotRequest body = VMK__VM_SNAPSHOT_REQUEST__INIT;
	Vmk__Response *resp;
	int ret;

	body.name = (char *)args_str(a, "name");
	body.op = (char *)op;
	body.snapshot = (char *)(args_str(a, "snapshot") ? args_str(a, "snapshot") : "");
	body.memory = args_flag(a, "memory");
	req.body_case = VMK__REQUEST__BODY_VM_SNAPSHOT;
	req.vm_snapshot = &body;
	if ((ret = vmkctl_call(v, &req, &resp)))
		return ret;
	const Vmk__Task *t = VMKCTL_BODY(v, resp, VMK__RESPONSE__BODY_TASK, task);
	if (!t)
		return 1;
	return vmkctl_task_result(v, a, t, out);
}

int cmd_vm_snapshot_create(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out)
{
	return snapshot_op(v, a, out, "create");
}

int cmd_vm_snapshot_remove(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out)
{
	return snapshot_op(v, a, out, "remove");
}

/* A memory snapshot leaves the VM suspended at its point: it resumes, as
 * the revert of a running VM does on ESXi (--suspended keeps it so). */
int cmd_vm_snapshot_revert(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out)
{
	int ret = snapshot_op(v, a, out, "revert");

	if (ret || args_flag(a, "async") || args_flag(a, "suspended"))
		return ret;
	const Vmk__VmInfo *vm = vmkctl_vm_get(v, args_str(a, "name"), &ret);
	if (!vm || strcmp(vm->state, "suspended") != 0)
		return ret;
	if ((ret = vmkctl_power_on_wait(v, args_str(a, "name")))) {
		char e[sizeof(v->err)];
		snprintf(e, sizeof(e), "%s", v->err);
		snprintf(v->err, sizeof(v->err),
		         "reverted, but resuming from the snapshot failed: %s", e);
	}
	return ret;
}

int cmd_vm_snapshot_list(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out)
{
	static const char *const cols[] = {
		"id", "name", "parent", "created", "memory", "current"
	};
	Vmk__Request req = VMK__REQUEST__INIT;
	Vmk__VmNameRequest body = VMK__VM_NAME_REQUEST__INIT;
	Vmk__Response *resp;
	int ret;

	body.name = (char *)args_str(a, "name");
	req.body_case = VMK__REQUEST__BODY_VM_SNAPSHOT_LIST;
	req.vm_snapshot_list = &body;
	if ((ret = vmkctl_call(v, &req, &resp)))
		return ret;
	const Vmk__VmSnapshotListResponse *r =
	        VMKCTL_BODY(v, resp, VMK__RESPONSE__BODY_VM_SNAPSHOT_LIST, vm_snapshot_list);
	if (!r)
		return 1;
	if (out_init(out, "Snapshot", true, sizeof(cols) / sizeof(cols[0]), cols) < 0)
		return vmkctl_error(v, 1, "out of memory");
	for (size_t i = 0; i < r->n_snapshots; i++) {
		const Vmk__VmSnapshot *s = r->snapshots[i];
		int row = out_add_row(out);
		if (row < 0)
			return vmkctl_error(v, 1, "out of memory");
		out_set_int(out, (size_t)row, "id", s->id);
		out_set_str(out, (size_t)row, "name", s->name);
		out_set_str(out, (size_t)row, "parent", s->parent_name);
		out_set_str(out, (size_t)row, "created", s->created);
		out_set_bool(out, (size_t)row, "memory", s->memory);
		out_set_bool(out, (size_t)row, "current", s->current);
	}
	return 0;
}
