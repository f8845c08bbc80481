/* vmkctl vm clone: a full clone of a VM (running or not), on its host or
 * on another (--dest), orchestrated here as a cold migration is: the
 * destination prepares a transfer per file, the source sends its disks
 * and the clone's .vmx. */
#include <stdio.h>
#include <string.h>

#include "handlers.h"
#include "taskwait.h"

/* The clone's files at the destination: its disks, flat, as disk<N>.img
 * (of the sizes the guest sees), then NEW.vmx. */
static Vmk__VmFile **clone_files(struct vmkctl *v, const Vmk__VmInfo *vm, const char *new_name,
                                 size_t *n)
{
	Vmk__VmFile **f = arena_calloc(&v->a, vm->n_disks + 2, sizeof(*f));
	uint64_t data = 0; /* the most the disks can hold: all the VM's allocated bytes */

	*n = 0;
	if (!f || vm->n_disk_bytes != vm->n_disks)
		return NULL;
	for (size_t k = 0; k < vm->n_files; k++)
		data += vm->files[k]->allocated;
	for (size_t i = 0; i < vm->n_disks; i++) {
		Vmk__VmFile *e = arena_alloc(&v->a, sizeof(*e));
		if (!e)
			return NULL;
		vmk__vm_file__init(e);
		e->name = arena_printf(&v->a, "disk%zu.img", i);
		e->size = vm->disk_bytes[i];
		e->allocated = data < e->size ? data : e->size;
		f[(*n)++] = e;
	}
	Vmk__VmFile *x = arena_alloc(&v->a, sizeof(*x));
	if (!x)
		return NULL;
	vmk__vm_file__init(x);
	x->name = arena_printf(&v->a, "%s.vmx", new_name);
	x->size = x->allocated = strlen(vm->vmx_text ? vm->vmx_text : "") + 256;
	f[(*n)++] = x;
	return f;
}

static int clone_to(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out,
                    const Vmk__VmInfo *vm, const char *source, struct vmkctl *d)
{
	const char *new_name = args_str(a, "name");
	const char *ds = args_str(a, "datastore") ? args_str(a, "datastore") : vm->datastore;
	Vmk__Response *resp;
	size_t nf = 0;
	int ret;

	Vmk__VmFile **files = clone_files(v, vm, new_name, &nf);
	if (!files)
		return vmkctl_error(v, 1, "out of memory (or an unexpected answer from %s)",
		                    source);
	Vmk__Request preq = VMK__REQUEST__INIT;
	Vmk__VmRelocatePrepareRequest prep = VMK__VM_RELOCATE_PREPARE_REQUEST__INIT;
	prep.name = (char *)new_name;
	prep.datastore = (char *)(ds ? ds : "");
	prep.source_host = (char *)(source ? source : "");
	prep.vmx_text = vm->vmx_text;
	prep.files = files;
	prep.n_files = nf;
	preq.body_case = VMK__REQUEST__BODY_VM_RELOCATE_PREPARE;
	preq.vm_relocate_prepare = &prep;
	if ((ret = vmkctl_call(d, &preq, &resp)))
		return vmkctl_error(v, ret, "destination %s: %s", d->copts.server, d->err);
	const Vmk__VmRelocatePrepareResponse *pr =
	        VMKCTL_BODY(d, resp, VMK__RESPONSE__BODY_VM_RELOCATE_PREPARE, vm_relocate_prepare);
	if (!pr || pr->shared || pr->n_tokens != nf) {
		if (pr)
			vmkctl_cancel_quiet(d, pr->task_id);
		return vmkctl_error(v, 1, "destination %s: %s", d->copts.server,
		                    pr ? "an unexpected answer to the clone's prepare" : d->err);
	}
	char recv_task[64];
	snprintf(recv_task, sizeof(recv_task), "%s", pr->task_id);
	char **names = arena_calloc(&v->a, nf + 1, sizeof(char *));
	if (!names) {
		vmkctl_cancel_quiet(d, recv_task);
		return vmkctl_error(v, 1, "out of memory");
	}
	for (size_t i = 0; i < nf; i++)
		names[i] = files[i]->name;
	Vmk__Request req = VMK__REQUEST__INIT;
	Vmk__VmCloneRequest body = VMK__VM_CLONE_REQUEST__INIT;
	body.name = vm->name;
	body.new_name = (char *)new_name;
	body.dest_host = (char *)d->copts.server;
	body.dest_address = pr->address;
	body.dest_port = pr->port;
	body.files = names;
	body.n_files = nf;
	body.file_tokens = pr->tokens;
	body.n_file_tokens = pr->n_tokens;
	body.dest_interface = pr->interface;
	body.dest_note = pr->note;
	body.max_bandwidth_mibps = (uint32_t)args_int(a, "max-bandwidth", 0);
	req.body_case = VMK__REQUEST__BODY_VM_CLONE;
	req.vm_clone = &body;
	ret = vmkctl_call(v, &req, &resp);
	const Vmk__Task *t = ret ? NULL : VMKCTL_BODY(v, resp, VMK__RESPONSE__BODY_TASK, task);
	if (!t) {
		vmkctl_cancel_quiet(d, recv_task);
		return ret ? ret : 1;
	}
	ret = vmkctl_task_result(v, a, t, out);
	if (!args_flag(a, "async"))
		ret = vmkctl_settle_peer(v, d, recv_task, ret, true, "cloned");
	return ret;
}

int cmd_vm_clone(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out)
{
	const char *name = args_str(a, "vm"), *dest = args_str(a, "dest");
	Vmk__Response *resp;
	int ret;

	if (args_flag(a, "powered-on") && args_flag(a, "async"))
		return vmkctl_error(v, 2, "--powered-on waits for the clone: drop --async");
	const Vmk__VmInfo *vm = vmkctl_vm_get(v, name, &ret);
	if (!vm)
		return ret;
	const char *source = vmkctl_vm_host(v, vm);
	if (dest && source && strcmp(source, dest) != 0 && args_flag(a, "linked"))
		return vmkctl_error(v, 2,
		                    "--linked: a linked clone's disks sit on its source's, so it "
		                    "stays on %s; drop --dest, or make a full clone",
		                    source);
	if (dest && source && strcmp(source, dest) != 0) {
		struct vmkctl d;
		vmkctl_peer_init(&d, v, dest);
		ret = clone_to(v, a, out, vm, source, &d);
		if (ret == 0 && args_flag(a, "powered-on") &&
		    (ret = vmkctl_power_on_wait(&d, args_str(a, "name"))))
			snprintf(v->err, sizeof(v->err),
			         "cloned, but powering it on on %s failed: %s", dest, d.err);
		vmkctl_peer_free(&d);
		return ret;
	}
	Vmk__Request creq = VMK__REQUEST__INIT;
	Vmk__VmCloneRequest body = VMK__VM_CLONE_REQUEST__INIT;
	body.name = (char *)name;
	body.new_name = (char *)args_str(a, "name");
	body.datastore = (char *)(args_str(a, "datastore") ? args_str(a, "datastore") : "");
	body.linked = args_flag(a, "linked");
	creq.body_case = VMK__REQUEST__BODY_VM_CLONE;
	creq.vm_clone = &body;
	if ((ret = vmkctl_call(v, &creq, &resp)))
		return ret;
	const Vmk__Task *t = VMKCTL_BODY(v, resp, VMK__RESPONSE__BODY_TASK, task);
	if (!t)
		return 1;
	ret = vmkctl_task_result(v, a, t, out);
	if (ret == 0 && args_flag(a, "powered-on") &&
	    (ret = vmkctl_power_on_wait(v, args_str(a, "name")))) {
		char e[sizeof(v->err)];
		snprintf(e, sizeof(e), "%s", v->err);
		snprintf(v->err, sizeof(v->err), "cloned, but powering it on failed: %s", e);
	}
	return ret;
}
