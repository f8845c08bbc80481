#include "ctx.h"

#include <stdarg.h>
#include <stdio.h>

int vmkctl_call(struct vmkctl *v, Vmk__Request *req, Vmk__Response **resp)
{
	return vmkctl_call_in(v, req, &v->a, resp);
}

int vmkctl_call_in(struct vmkctl *v, Vmk__Request *req, struct arena *a, Vmk__Response **resp)
{
	int ret;

	if (!v->connected) {
		ret = vmkctl_conn_open(&v->conn, &v->copts);
		if (ret) {
			snprintf(v->err, sizeof(v->err), "%s", v->conn.err);
			return ret;
		}
		v->connected = true;
	}
	ret = vmkctl_conn_call(&v->conn, req, a, resp);
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
