/* vmkctl vm migrate: live and cold migration, orchestrated here as
 * vCenter would: the destination prepares (and hands out one-time
 * tokens), the source migrates, both with the user's own rights on each
 * host. */
#include <stdio.h>
#include <string.h>

#include "handlers.h"
#include "taskwait.h"

static int unregister_on(struct vmkctl *d, const char *name)
{
	Vmk__Request req = VMK__REQUEST__INIT;
	Vmk__VmNameRequest body = VMK__VM_NAME_REQUEST__INIT;
	Vmk__Response *resp;

	body.name = (char *)name;
	req.body_case = VMK__REQUEST__BODY_VM_UNREGISTER;
	req.vm_unregister = &body;
	return vmkctl_call(d, &req, &resp);
}

/* Cold migration: the destination prepares a transfer per file of the VM's
 * directory (or, on a shared datastore, registers the VM at once); the
 * source sends them over NFC and lets the VM go once the destination has
 * registered it. */
static int migrate_cold(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out,
                        const Vmk__VmInfo *vm, const char *source, struct vmkctl *d)
{
	const char *name = vm->name, *dest = d->copts.server;
	const char *ds =
	        args_str(a, "datastore") ? args_str(a, "datastore") : args_str(a, "storage");
	Vmk__Response *resp;
	int ret;

	if (strcmp(vm->state, "poweredOff") != 0 && strcmp(vm->state, "suspended") != 0)
		return vmkctl_error(v, 5,
		                    "VM %s is %s: --cold moves a powered-off or suspended VM; "
		                    "migrate it live without --cold, or power it off first",
		                    name, vm->state);
	if (!ds)
		ds = vm->datastore;
	if (!ds || !ds[0])
		return vmkctl_error(v, 2, "VM %s is on no datastore: give --datastore DS", name);
	Vmk__Request preq = VMK__REQUEST__INIT;
	Vmk__VmRelocatePrepareRequest prep = VMK__VM_RELOCATE_PREPARE_REQUEST__INIT;
	prep.name = (char *)name;
	prep.datastore = (char *)ds;
	prep.source_host = (char *)(source ? source : "");
	prep.vmx_text = vm->vmx_text;
	prep.files = vm->files;
	prep.n_files = vm->n_files;
	prep.source_datastore_path = vm->datastore_path;
	prep.uuid = vm->uuid;
	preq.body_case = VMK__REQUEST__BODY_VM_RELOCATE_PREPARE;
	preq.vm_relocate_prepare = &prep;
	if ((ret = vmkctl_call(d, &preq, &resp))) {
		snprintf(v->err, sizeof(v->err), "destination %s: %s", dest, d->err);
		return ret;
	}
	const Vmk__VmRelocatePrepareResponse *pr =
	        VMKCTL_BODY(d, resp, VMK__RESPONSE__BODY_VM_RELOCATE_PREPARE, vm_relocate_prepare);
	if (!pr)
		return vmkctl_error(v, 1, "destination %s: %s", dest, d->err);
	if (!pr->shared && pr->n_tokens != vm->n_files)
		return vmkctl_error(v, 1, "destination %s: %zu tokens for %zu files", dest,
		                    pr->n_tokens, vm->n_files);
	char recv_task[64];
	snprintf(recv_task, sizeof(recv_task), "%s", pr->task_id ? pr->task_id : "");

	Vmk__Request mreq = VMK__REQUEST__INIT;
	Vmk__VmMigrateRequest mig = VMK__VM_MIGRATE_REQUEST__INIT;
	char **files = arena_calloc(&v->a, vm->n_files + 1, sizeof(char *));
	if (!files)
		return vmkctl_error(v, 1, "out of memory");
	for (size_t i = 0; i < vm->n_files; i++)
		files[i] = vm->files[i]->name;
	mig.name = (char *)name;
	mig.dest_host = (char *)dest;
	mig.cold = true;
	mig.shared = pr->shared;
	if (!pr->shared) {
		mig.dest_address = pr->address;
		mig.dest_port = pr->port;
		mig.dest_interface = pr->interface;
		mig.dest_note = pr->note;
		mig.files = files;
		mig.n_files = vm->n_files;
		mig.file_tokens = pr->tokens;
		mig.n_file_tokens = pr->n_tokens;
	}
	mig.max_bandwidth_mibps = (uint32_t)args_int(a, "max-bandwidth", 0);
	mreq.body_case = VMK__REQUEST__BODY_VM_MIGRATE;
	mreq.vm_migrate = &mig;
	ret = vmkctl_call(v, &mreq, &resp);
	const Vmk__Task *t = ret ? NULL : VMKCTL_BODY(v, resp, VMK__RESPONSE__BODY_TASK, task);
	if (!t) {
		/* nothing will come: the destination lets go of what it prepared */
		if (pr->shared)
			unregister_on(d, name);
		else
			vmkctl_cancel_quiet(d, recv_task);
		return ret ? ret : 1;
	}
	ret = vmkctl_task_result(v, a, t, out);
	if (pr->shared && ret != 0 && !args_flag(a, "async"))
		unregister_on(d, name); /* it stays where it was, and only there */
	if (!pr->shared && !args_flag(a, "async"))
		ret = vmkctl_settle_peer(v, d, recv_task, ret, true, "migrated");
	return ret;
}

static bool has_snapshots(const Vmk__VmInfo *vm)
{
	for (size_t i = 0; i < vm->n_disk_parents; i++)
		if (vm->disk_parents[i][0])
			return true;
	return false;
}

/* A live migration with --storage of a VM with snapshots: its frozen files
 * (snapshot layers, the tree, memory files) go first, over NFC, into the
 * VM's new directory; the migration then streams what the disks' tops
 * hold, over them. */
static int stage_frozen(struct vmkctl *v, const Vmk__VmInfo *vm, const char *source,
                        struct vmkctl *d, const char *storage, uint32_t max_bw)
{
	Vmk__VmFile **files = arena_calloc(&v->a, vm->n_files + 1, sizeof(*files));
	char **names = arena_calloc(&v->a, vm->n_files + 1, sizeof(char *));
	char vmxname[300];
	size_t n = 0;
	Vmk__Response *resp;
	int ret;

	if (!files || !names)
		return vmkctl_error(v, 1, "out of memory");
	snprintf(vmxname, sizeof(vmxname), "%s.vmx", vm->name);
	for (size_t i = 0; i < vm->n_files; i++) {
		const char *f = vm->files[i]->name;
		bool live =
		        !strcmp(f, vmxname) || !strcmp(f, "serial.log") || !strcmp(f, "vmx.log");
		for (size_t k = 0; k < vm->n_disks; k++) {
			const char *b = strrchr(vm->disks[k], '/');
			live |= b && !strcmp(b + 1, f);
		}
		if (!live) {
			names[n] = vm->files[i]->name;
			files[n++] = vm->files[i];
		}
	}
	Vmk__Request preq = VMK__REQUEST__INIT;
	Vmk__VmRelocatePrepareRequest prep = VMK__VM_RELOCATE_PREPARE_REQUEST__INIT;
	prep.name = vm->name;
	prep.datastore = (char *)storage;
	prep.source_host = (char *)(source ? source : "");
	prep.vmx_text = "";
	prep.files = files;
	prep.n_files = n;
	prep.staging = true;
	preq.body_case = VMK__REQUEST__BODY_VM_RELOCATE_PREPARE;
	preq.vm_relocate_prepare = &prep;
	if ((ret = vmkctl_call(d, &preq, &resp)))
		return vmkctl_error(v, ret, "destination %s: staging the snapshot layers: %s",
		                    d->copts.server, d->err);
	const Vmk__VmRelocatePrepareResponse *pr =
	        VMKCTL_BODY(d, resp, VMK__RESPONSE__BODY_VM_RELOCATE_PREPARE, vm_relocate_prepare);
	if (!pr || pr->n_tokens != n)
		return vmkctl_error(v, 1, "destination %s: an unexpected answer to the staging",
		                    d->copts.server);
	char recv_task[64];
	snprintf(recv_task, sizeof(recv_task), "%s", pr->task_id);
	Vmk__Request mreq = VMK__REQUEST__INIT;
	Vmk__VmMigrateRequest mig = VMK__VM_MIGRATE_REQUEST__INIT;
	mig.name = vm->name;
	mig.dest_host = (char *)d->copts.server;
	mig.cold = true;
	mig.staging = true;
	mig.dest_address = pr->address;
	mig.dest_port = pr->port;
	mig.dest_interface = pr->interface;
	mig.dest_note = pr->note;
	mig.files = names;
	mig.n_files = n;
	mig.file_tokens = pr->tokens;
	mig.n_file_tokens = pr->n_tokens;
	mig.max_bandwidth_mibps = max_bw;
	mreq.body_case = VMK__REQUEST__BODY_VM_MIGRATE;
	mreq.vm_migrate = &mig;
	struct vmkctl_wait_opts o = { .timeout_ms = 0 };
	ret = vmkctl_call(v, &mreq, &resp);
	const Vmk__Task *t = ret ? NULL : VMKCTL_BODY(v, resp, VMK__RESPONSE__BODY_TASK, task);
	if (t)
		ret = vmkctl_task_wait(v, t->id, &o, NULL);
	if (!t || ret) {
		vmkctl_cancel_quiet(d, recv_task);
		return ret ? ret : 1;
	}
	o.timeout_ms = 60000;
	if ((ret = vmkctl_task_wait(d, recv_task, &o, NULL)))
		return vmkctl_error(v, ret, "destination %s: staging the snapshot layers: %s",
		                    d->copts.server, d->err);
	return 0;
}

int cmd_vm_migrate(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out)
{
	const char *name = args_str(a, "name"), *dest = args_str(a, "dest");
	Vmk__Response *resp;
	int ret;

	/* where the VM is, from the source */
	const Vmk__VmInfo *vm = vmkctl_vm_get(v, name, &ret);
	if (!vm)
		return ret;
	const char *source = vmkctl_vm_host(v, vm);
	if (source && !strcmp(source, dest))
		return vmkctl_error(v, 2, "VM %s is on %s already: --dest names another host", name,
		                    dest);
	const char *storage = args_str(a, "storage");
	if (args_flag(a, "cold") && args_flag(a, "verify-pages"))
		return vmkctl_error(v, 2,
		                    "--verify-pages goes with a live migration; a cold migration "
		                    "checks every file it copies already");
	if (args_flag(a, "cold")) {
		struct vmkctl cd;
		vmkctl_peer_init(&cd, v, dest);
		ret = migrate_cold(v, a, out, vm, source, &cd);
		vmkctl_peer_free(&cd);
		return ret;
	}
	if (args_str(a, "datastore"))
		return vmkctl_error(v, 2,
		                    "--datastore goes with --cold; a live migration moves "
		                    "its storage with --storage DATASTORE");
	if (!storage && (!vm->datastore_path || !vm->datastore_path[0]))
		return vmkctl_error(
		        v, 5,
		        "VM %s is not in a datastore of its host: only VMs on datastores "
		        "migrate",
		        name);
	if (strcmp(vm->state, "poweredOn") != 0)
		return vmkctl_error(
		        v, 5,
		        "cannot live-migrate VM %s: it is %s; only a running VM moves live "
		        "(--cold moves a powered-off or suspended one)",
		        name, vm->state);

	/* the destination: prepare */
	struct vmkctl d;
	vmkctl_peer_init(&d, v, dest);
	if (storage && has_snapshots(vm) &&
	    (ret = stage_frozen(v, vm, source, &d, storage,
	                        (uint32_t)args_int(a, "max-bandwidth", 0))) != 0)
		goto out;
	Vmk__Request preq = VMK__REQUEST__INIT;
	Vmk__VmMigratePrepareRequest prep = VMK__VM_MIGRATE_PREPARE_REQUEST__INIT;
	prep.name = (char *)name;
	prep.datastore_path = vm->datastore_path;
	prep.memory_mib = vm->memory_mib;
	prep.source_host = (char *)(source ? source : "");
	prep.cpu_model = vm->cpu_model;
	prep.cpu_features = vm->cpu_features;
	prep.n_cpu_features = vm->n_cpu_features;
	if (storage) {
		prep.storage_datastore = (char *)storage;
		prep.vmx_text = vm->vmx_text;
		prep.disk_bytes = vm->disk_bytes;
		prep.n_disk_bytes = vm->n_disk_bytes;
		if (has_snapshots(vm)) {
			prep.disk_parents = vm->disk_parents;
			prep.n_disk_parents = vm->n_disk_parents;
		}
	}
	preq.body_case = VMK__REQUEST__BODY_VM_MIGRATE_PREPARE;
	preq.vm_migrate_prepare = &prep;
	if ((ret = vmkctl_call(&d, &preq, &resp))) {
		snprintf(v->err, sizeof(v->err), "destination %s: %s", dest, d.err);
		goto out;
	}
	const Vmk__VmMigratePrepareResponse *pr =
	        VMKCTL_BODY(&d, resp, VMK__RESPONSE__BODY_VM_MIGRATE_PREPARE, vm_migrate_prepare);
	if (!pr) {
		ret = vmkctl_error(v, 1, "destination %s: %s", dest, d.err);
		goto out;
	}
	char recv_task[64];
	snprintf(recv_task, sizeof(recv_task), "%s", pr->task_id);

	/* the source: migrate */
	Vmk__Request mreq = VMK__REQUEST__INIT;
	Vmk__VmMigrateRequest mig = VMK__VM_MIGRATE_REQUEST__INIT;
	mig.name = (char *)name;
	mig.dest_host = (char *)dest;
	mig.dest_address = pr->address;
	mig.dest_port = pr->port;
	mig.token = pr->token;
	mig.dest_interface = pr->interface;
	mig.dest_note = pr->note;
	mig.downtime_ms = (uint32_t)args_int(a, "downtime-ms", 0);
	mig.max_bandwidth_mibps = (uint32_t)args_int(a, "max-bandwidth", 0);
	mig.converge_timeout_s = (uint32_t)args_int(a, "converge-timeout", 0);
	mig.streams = (uint32_t)args_int(a, "streams", 0);
	mig.compress = args_flag(a, "compress");
	mig.verify_pages = args_flag(a, "verify-pages");
	mig.storage = storage != NULL;
	mreq.body_case = VMK__REQUEST__BODY_VM_MIGRATE;
	mreq.vm_migrate = &mig;
	if ((ret = vmkctl_call(v, &mreq, &resp))) {
		vmkctl_cancel_quiet(&d, recv_task); /* nobody will come: stop its incoming vmx */
		goto out;
	}
	const Vmk__Task *t = VMKCTL_BODY(v, resp, VMK__RESPONSE__BODY_TASK, task);
	if (!t) {
		vmkctl_cancel_quiet(&d, recv_task);
		ret = 1;
		goto out;
	}
	ret = vmkctl_task_result(v, a, t, out);
	if (!args_flag(a, "async")) /* the destination runs it, or cleans up (its vmx ends) */
		ret = vmkctl_settle_peer(v, &d, recv_task, ret, false, "migrated");
out:
	vmkctl_peer_free(&d);
	return ret;
}
