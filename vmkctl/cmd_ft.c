/* vmkctl vm ft: fault tolerance. enable is orchestrated here as vCenter
 * would: the secondary's host prepares an FT secondary vmx (and a one-time
 * token), the primary's host starts protecting the VM, both with the
 * user's own rights on each host. status, disable and failover-test are
 * one call to the host the command names. */
#include <stdio.h>
#include <string.h>

#include "handlers.h"
#include "taskwait.h"

static const char *const ft_cols[] = {
	"vm",         "state",        "primary",      "secondary",
	"epoch_ms",   "detect_ms",    "checkpoints",  "last_checkpoint_ms",
	"lag_ms",     "role",         "network",      "note",
	"generation", "pause_us_p50", "pause_us_p99", "output_us_p99",
	"stretched",  "bytes",        "error",
};

static void set_str_or_null(struct out_doc *out, const char *col, const char *s)
{
	out_set_str(out, 0, col, s && s[0] ? s : NULL);
}

static int ft_doc(struct vmkctl *v, struct out_doc *out, const Vmk__VmFtStatus *s)
{
	if (out_init(out, "FaultTolerance", false, sizeof(ft_cols) / sizeof(ft_cols[0]), ft_cols) <
	            0 ||
	    out_add_row(out) < 0)
		return vmkctl_error(v, 1, "out of memory");
	out_set_str(out, 0, "vm", s->vm);
	out_set_str(out, 0, "state", s->state);
	set_str_or_null(out, "primary", s->primary);
	set_str_or_null(out, "secondary", s->secondary);
	out_set_int(out, 0, "epoch_ms", s->epoch_ms);
	out_set_int(out, 0, "detect_ms", s->detect_ms);
	out_set_int(out, 0, "checkpoints", (int64_t)s->checkpoints);
	out_set_int(out, 0, "last_checkpoint_ms", (int64_t)s->last_checkpoint_ms);
	out_set_int(out, 0, "lag_ms", (int64_t)s->lag_ms);
	set_str_or_null(out, "role", s->role);
	set_str_or_null(out, "network", s->network);
	set_str_or_null(out, "note", s->note);
	out_set_int(out, 0, "generation", (int64_t)s->generation);
	out_set_int(out, 0, "pause_us_p50", (int64_t)s->pause_us_p50);
	out_set_int(out, 0, "pause_us_p99", (int64_t)s->pause_us_p99);
	out_set_int(out, 0, "output_us_p99", (int64_t)s->output_us_p99);
	out_set_int(out, 0, "stretched", (int64_t)s->stretched);
	out_set_int(out, 0, "bytes", (int64_t)s->bytes);
	set_str_or_null(out, "error", s->error);
	return 0;
}

/* One vm ft call (op) to v: the status it answers, or NULL with *ret. */
static const Vmk__VmFtStatus *ft_request(struct vmkctl *v, const char *name, const char *op,
                                         int *ret)
{
	Vmk__Request req = VMK__REQUEST__INIT;
	Vmk__VmFtRequest body = VMK__VM_FT_REQUEST__INIT;
	Vmk__Response *resp;

	body.name = (char *)name;
	body.op = (char *)op;
	req.body_case = VMK__REQUEST__BODY_VM_FT;
	req.vm_ft = &body;
	if ((*ret = vmkctl_call(v, &req, &resp)))
		return NULL;
	const Vmk__VmFtStatus *s =
	        VMKCTL_BODY(v, resp, VMK__RESPONSE__BODY_VM_FT_STATUS, vm_ft_status);
	*ret = s ? 0 : 1;
	return s;
}

/* The same, its status into out (may be NULL). */
static int ft_call(struct vmkctl *v, const char *name, const char *op, struct out_doc *out)
{
	int ret;
	const Vmk__VmFtStatus *s = ft_request(v, name, op, &ret);

	return s && out ? ft_doc(v, out, s) : ret;
}

int cmd_vm_ft_status(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out)
{
	return ft_call(v, args_str(a, "name"), "status", out);
}

int cmd_vm_ft_disable(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out)
{
	return ft_call(v, args_str(a, "name"), "disable", out);
}

int cmd_vm_ft_failover_test(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out)
{
	return ft_call(v, args_str(a, "name"), "failover-test", out);
}

int cmd_vm_ft_enable(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out)
{
	const char *name = args_str(a, "name"), *sec = args_str(a, "secondary");
	Vmk__Response *resp;
	int ret;

	static const char no_lab[] = "--secondary auto picks a host of the lab (--lab DIR); "
	                             "without one, name the secondary's host";
	bool any = !strcmp(sec, "auto");
	if (any && !v->copts.lab)
		return vmkctl_error(v, 2, "%s", no_lab);
	const Vmk__VmInfo *vm = vmkctl_vm_get(v, name, &ret);
	if (!vm)
		return ret;
	const char *primary = vmkctl_vm_host(v, vm);
	if (primary && !strcmp(primary, sec) && !any)
		return vmkctl_error(v, 2,
		                    "VM %s runs on %s: --secondary names another host, which sees "
		                    "its datastore",
		                    name, sec);
	if (!strcmp(vm->ft_role, "primary")) {
		/* one that needs a secondary (it failed over, or lost its own) gets one */
		const Vmk__VmFtStatus *st = ft_request(v, name, "status", &ret);
		if (!st)
			return ret;
		if (!strcmp(st->state, "protected") || !strcmp(st->state, "starting"))
			return vmkctl_error(v, 5,
			                    "VM %s is protected already (its secondary is on %s): "
			                    "vm ft disable first",
			                    name, st->secondary);
	}
	if (strcmp(vm->state, "poweredOn") != 0)
		return vmkctl_error(v, 5,
		                    "VM %s is %s: fault tolerance protects a running VM; power it "
		                    "on first",
		                    name, vm->state);
	if (!vm->datastore_path || !vm->datastore_path[0])
		return vmkctl_error(v, 5,
		                    "VM %s is not on a datastore: fault tolerance needs a shared "
		                    "datastore for its generation record",
		                    name);

	/* the secondary's host: prepare; with auto, the first host of the lab
	 * (other than the primary's) that can hold it */
	char hosts[16][128];
	size_t nh = 0;
	if (any) {
		if (hostconn_lab_hosts(v->copts.lab, hosts, 16, &nh) < 0 || nh < 2)
			return vmkctl_error(v, 2, "%s", no_lab);
	} else {
		snprintf(hosts[0], sizeof(hosts[0]), "%s", sec);
		nh = 1;
	}
	Vmk__Request preq = VMK__REQUEST__INIT;
	Vmk__VmFtPrepareRequest prep = VMK__VM_FT_PREPARE_REQUEST__INIT;
	prep.name = (char *)name;
	prep.datastore_path = vm->datastore_path;
	prep.memory_mib = vm->memory_mib;
	prep.primary_host = (char *)(primary ? primary : "");
	prep.cpu_model = vm->cpu_model;
	prep.cpu_features = vm->cpu_features;
	prep.n_cpu_features = vm->n_cpu_features;
	prep.reprotect = any; /* auto: a lost secondary is replaced without being asked */
	prep.epoch_ms = (uint32_t)args_int(a, "epoch-ms", 0);
	prep.detect_ms = (uint32_t)args_int(a, "detect-ms", 0);
	const char *sds = args_str(a, "secondary-datastore");
	prep.disks_datastore = (char *)(sds ? sds : "");
	preq.body_case = VMK__REQUEST__BODY_VM_FT_PREPARE;
	preq.vm_ft_prepare = &prep;
	struct vmkctl d;
	const Vmk__VmFtPrepareResponse *pr = NULL;
	char why[sizeof(v->err)] = "";
	for (size_t i = 0; i < nh && !pr; i++) {
		if (primary && !strcmp(hosts[i], primary))
			continue;
		sec = hosts[i];
		vmkctl_peer_init(&d, v, sec);
		if ((ret = vmkctl_call(&d, &preq, &resp)) == 0)
			pr = VMKCTL_BODY(&d, resp, VMK__RESPONSE__BODY_VM_FT_PREPARE,
			                 vm_ft_prepare);
		if (!pr) {
			size_t l = strlen(why);
			snprintf(why + l, sizeof(why) - l, "%s%s: %s", l ? "; " : "", sec, d.err);
			vmkctl_peer_free(&d);
		}
	}
	if (!pr)
		return vmkctl_error(
		        v, ret ? ret : 1, "%s%s",
		        any ? "no host of the lab can hold the secondary: " : "secondary ", why);

	/* the primary's host: protect */
	Vmk__Request ereq = VMK__REQUEST__INIT;
	Vmk__VmFtEnableRequest en = VMK__VM_FT_ENABLE_REQUEST__INIT;
	en.name = (char *)name;
	en.secondary_host = (char *)sec;
	en.address = pr->address;
	en.port = pr->port;
	en.token = pr->token;
	en.interface = pr->interface;
	en.note = pr->note;
	en.epoch_ms = (uint32_t)args_int(a, "epoch-ms", 0);
	en.detect_ms = (uint32_t)args_int(a, "detect-ms", 0);
	en.reprotect = any;
	ereq.body_case = VMK__REQUEST__BODY_VM_FT_ENABLE;
	ereq.vm_ft_enable = &en;
	ret = vmkctl_call(v, &ereq, &resp);
	const Vmk__Task *t = ret ? NULL : VMKCTL_BODY(v, resp, VMK__RESPONSE__BODY_TASK, task);
	if (!t) {
		ft_call(&d, name, "disable", NULL); /* nobody will come: its copy goes */
		ret = ret ? ret : 1;
		goto out;
	}
	if (args_flag(a, "async")) {
		ret = vmkctl_task_result(v, a, t, out);
		goto out;
	}
	struct vmkctl_wait_opts o;
	vmkctl_wait_opts_from_args(a, &o);
	if ((ret = vmkctl_task_wait(v, t->id, &o, NULL)) != 0) {
		if (ret != 6) /* failed or cancelled: the secondary's copy goes too */
			ft_call(&d, name, "disable", NULL);
		goto out;
	}
	ret = ft_call(v, name, "status", out);
out:
	vmkctl_peer_free(&d);
	return ret;
}
