/* vmkctl vm ... */
#include <stdlib.h>
#include <string.h>

#include "handlers.h"

static const char *const list_cols[] = {
	"name", "state", "host", "vcpus", "memory_mib", "ft_role"
};
static const char *const get_cols[] = { "name",       "state",      "host",         "vcpus",
	                                "memory_mib", "ft_role",    "uuid",         "datastore",
	                                "path",       "kernel",     "cmdline",      "disks",
	                                "nics",       "error",      "events",       "pid",
	                                "uptime_ms",  "serial_log", "state_reason", "lock_owner" };

static int vm_row(struct out_doc *out, const Vmk__VmInfo *v, bool full)
{
	int r = out_add_row(out);

	if (r < 0)
		return r;
	size_t row = (size_t)r;
	out_set_str(out, row, "name", v->name);
	out_set_str(out, row, "state", v->state);
	out_set_str(out, row, "host", v->host);
	out_set_int(out, row, "vcpus", v->vcpus);
	out_set_int(out, row, "memory_mib", v->memory_mib);
	out_set_str(out, row, "ft_role", v->ft_role);
	if (!full)
		return 0;
	out_set_str(out, row, "uuid", v->uuid);
	out_set_str(out, row, "datastore", v->datastore);
	out_set_str(out, row, "path", v->path);
	out_set_str(out, row, "kernel", v->kernel);
	out_set_str(out, row, "cmdline", v->cmdline);
	out_set_list(out, row, "disks", (const char *const *)v->disks, v->n_disks);
	out_set_list(out, row, "nics", (const char *const *)v->nics, v->n_nics);
	if (v->error && v->error[0])
		out_set_str(out, row, "error", v->error);
	out_set_list(out, row, "events", (const char *const *)v->events, v->n_events);
	out_set_int(out, row, "pid", v->pid);
	out_set_int(out, row, "uptime_ms", (int64_t)v->uptime_ms);
	out_set_str(out, row, "serial_log", v->serial_log);
	out_set_str(out, row, "state_reason", v->state_reason);
	out_set_str(out, row, "lock_owner", v->lock_owner);
	return 0;
}

int cmd_vm_list(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out)
{
	Vmk__Request req = VMK__REQUEST__INIT;
	Vmk__VmListRequest body = VMK__VM_LIST_REQUEST__INIT;
	Vmk__Response *resp;
	int ret;

	(void)a;
	req.body_case = VMK__REQUEST__BODY_VM_LIST;
	req.vm_list = &body;
	if ((ret = vmkctl_call(v, &req, &resp)))
		return ret;
	const Vmk__VmListResponse *r = VMKCTL_BODY(v, resp, VMK__RESPONSE__BODY_VM_LIST, vm_list);
	if (!r)
		return 1;
	if (out_init(out, "VirtualMachine", true, sizeof(list_cols) / sizeof(list_cols[0]),
	             list_cols) < 0)
		return vmkctl_error(v, 1, "out of memory");
	for (size_t i = 0; i < r->n_vms; i++)
		if (vm_row(out, r->vms[i], false) < 0)
			return vmkctl_error(v, 1, "out of memory");
	return 0;
}

/* vm get and vm create answer with one VM */
static int one_vm(struct vmkctl *v, Vmk__Request *req, struct out_doc *out)
{
	Vmk__Response *resp;
	int ret;

	if ((ret = vmkctl_call(v, req, &resp)))
		return ret;
	const Vmk__VmInfo *vm = VMKCTL_BODY(v, resp, VMK__RESPONSE__BODY_VM, vm);
	if (!vm)
		return 1;
	if (out_init(out, "VirtualMachine", false, sizeof(get_cols) / sizeof(get_cols[0]),
	             get_cols) < 0 ||
	    vm_row(out, vm, true) < 0)
		return vmkctl_error(v, 1, "out of memory");
	return 0;
}

int cmd_vm_get(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out)
{
	Vmk__Request req = VMK__REQUEST__INIT;
	Vmk__VmNameRequest body = VMK__VM_NAME_REQUEST__INIT;

	body.name = (char *)args_str(a, "name");
	req.body_case = VMK__REQUEST__BODY_VM_GET;
	req.vm_get = &body;
	return one_vm(v, &req, out);
}

int cmd_vm_create(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out)
{
	Vmk__Request req = VMK__REQUEST__INIT;
	Vmk__VmCreateRequest body = VMK__VM_CREATE_REQUEST__INIT;
	uint32_t disks[16];
	char *nics[16];

	body.name = (char *)args_str(a, "name");
	body.memory_mib = (uint32_t)args_int(a, "memory", 0);
	body.vcpus = (uint32_t)args_int(a, "vcpus", 1);
	body.kernel = (char *)args_str(a, "kernel");
	body.cmdline = (char *)(args_str(a, "cmdline") ? args_str(a, "cmdline") : "");
	body.datastore = (char *)(args_str(a, "datastore") ? args_str(a, "datastore") : "");
	for (int i = 0; i < VMKCTL_MAX_OPTS && a->cmd->opts[i].name; i++) {
		if (strcmp(a->cmd->opts[i].name, "disk") == 0)
			for (size_t k = 0; k < a->nvals[i]; k++)
				disks[body.n_disk_mib++] =
				        (uint32_t)strtoul(a->vals[i][k], NULL, 10);
		if (strcmp(a->cmd->opts[i].name, "nic") == 0)
			for (size_t k = 0; k < a->nvals[i]; k++)
				nics[body.n_nics++] = (char *)a->vals[i][k];
	}
	body.disk_mib = disks;
	body.nics = nics;
	req.body_case = VMK__REQUEST__BODY_VM_CREATE;
	req.vm_create = &body;
	return one_vm(v, &req, out);
}

int cmd_vm_destroy(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out)
{
	static const char *const cols[] = { "name", "destroyed" };
	Vmk__Request req = VMK__REQUEST__INIT;
	Vmk__VmNameRequest body = VMK__VM_NAME_REQUEST__INIT;
	Vmk__Response *resp;
	int ret;

	body.name = (char *)args_str(a, "name");
	req.body_case = VMK__REQUEST__BODY_VM_DESTROY;
	req.vm_destroy = &body;
	if ((ret = vmkctl_call(v, &req, &resp)))
		return ret;
	if (out_init(out, "VirtualMachineDestroyed", false, 2, cols) < 0 || out_add_row(out) < 0)
		return vmkctl_error(v, 1, "out of memory");
	out_set_str(out, 0, "name", body.name);
	out_set_bool(out, 0, "destroyed", true);
	return 0;
}

int cmd_vm_register(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out)
{
	Vmk__Request req = VMK__REQUEST__INIT;
	Vmk__VmRegisterRequest body = VMK__VM_REGISTER_REQUEST__INIT;

	body.path = (char *)args_str(a, "path");
	req.body_case = VMK__REQUEST__BODY_VM_REGISTER;
	req.vm_register = &body;
	return one_vm(v, &req, out);
}

int cmd_vm_unregister(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out)
{
	static const char *const cols[] = { "name", "unregistered" };
	Vmk__Request req = VMK__REQUEST__INIT;
	Vmk__VmNameRequest body = VMK__VM_NAME_REQUEST__INIT;
	Vmk__Response *resp;
	int ret;

	body.name = (char *)args_str(a, "name");
	req.body_case = VMK__REQUEST__BODY_VM_UNREGISTER;
	req.vm_unregister = &body;
	if ((ret = vmkctl_call(v, &req, &resp)))
		return ret;
	if (out_init(out, "VirtualMachineUnregistered", false, 2, cols) < 0 || out_add_row(out) < 0)
		return vmkctl_error(v, 1, "out of memory");
	out_set_str(out, 0, "name", body.name);
	out_set_bool(out, 0, "unregistered", true);
	return 0;
}
