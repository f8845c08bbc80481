#include "ctx.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int vmkctl_call(struct vmkctl *v, Vmk__Request *req, Vmk__Response **resp)
{
	return vmkctl_call_in(v, req, &v->a, resp);
}

int vmkctl_call_in(struct vmkctl *v, Vmk__Request *req, struct arena *a, Vmk__Response **resp)
{
	int ret;

	if (!v->connected) {
		ret = hostconn_open(&v->conn, &v->copts);
		if (ret) {
			snprintf(v->err, sizeof(v->err), "%s", v->conn.err);
			return ret;
		}
		v->connected = true;
	}
	ret = hostconn_call(&v->conn, req, a, resp);
	if (ret)
		snprintf(v->err, sizeof(v->err), "%s", v->conn.err);
	return ret;
}

int vmkctl_error(struct vmkctl *v, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(v->err, sizeof(v->err), fmt, ap);
	va_end(ap);
	return code;
}

void vmkctl_peer_init(struct vmkctl *d, const struct vmkctl *v, const char *server)
{
	memset(d, 0, sizeof(*d));
	d->copts = v->copts;
	d->copts.server = server;
	d->copts.sessionfile = NULL;
	d->fmt = v->fmt;
	arena_init(&d->a, 0);
}

void vmkctl_peer_free(struct vmkctl *d)
{
	if (d->connected)
		hostconn_close(&d->conn);
	d->connected = false;
	arena_free(&d->a);
}

const Vmk__VmInfo *vmkctl_vm_get(struct vmkctl *v, const char *name, int *ret)
{
	Vmk__Request req = VMK__REQUEST__INIT;
	Vmk__VmNameRequest get = VMK__VM_NAME_REQUEST__INIT;
	Vmk__Response *resp;

	get.name = (char *)name;
	req.body_case = VMK__REQUEST__BODY_VM_GET;
	req.vm_get = &get;
	if ((*ret = vmkctl_call(v, &req, &resp)))
		return NULL;
	const Vmk__VmInfo *vm = VMKCTL_BODY(v, resp, VMK__RESPONSE__BODY_VM, vm);
	*ret = vm ? 0 : 1;
	return vm;
}

const char *vmkctl_vm_host(const struct vmkctl *v, const Vmk__VmInfo *vm)
{
	return vm->host && vm->host[0] ? vm->host : v->copts.server;
}

int vmkctl_cancel_quiet(struct vmkctl *v, const char *task_id)
{
	Vmk__Request req = VMK__REQUEST__INIT;
	Vmk__TaskIdRequest body = VMK__TASK_ID_REQUEST__INIT;
	Vmk__Response *resp;

	if (!task_id || !task_id[0])
		return 0;
	body.id = (char *)task_id;
	req.body_case = VMK__REQUEST__BODY_TASK_CANCEL;
	req.task_cancel = &body;
	return vmkctl_call(v, &req, &resp);
}
