/* vmkctl system ... */
#include "handlers.h"

int cmd_system_version_get(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out)
{
	static const char *const cols[] = { "product",  "version",  "build",
		                            "protocol", "hostname", "kernel" };
	Vmk__Request req = VMK__REQUEST__INIT;
	Vmk__VersionGetRequest body = VMK__VERSION_GET_REQUEST__INIT;
	Vmk__Response *resp;
	int ret;

	(void)a;
	req.body_case = VMK__REQUEST__BODY_VERSION_GET;
	req.version_get = &body;
	if ((ret = vmkctl_call(v, &req, &resp)))
		return ret;
	const Vmk__VersionGetResponse *r =
	        VMKCTL_BODY(v, resp, VMK__RESPONSE__BODY_VERSION_GET, version_get);
	if (!r)
		return 1;
	if (out_init(out, "VersionInfo", false, 6, cols) < 0 || out_add_row(out) < 0)
		return vmkctl_error(v, 1, "out of memory");
	out_set_str(out, 0, "product", r->product);
	out_set_str(out, 0, "version", r->version);
	out_set_str(out, 0, "build", r->build);
	out_set_int(out, 0, "protocol", r->protocol);
	out_set_str(out, 0, "hostname", r->hostname);
	out_set_str(out, 0, "kernel", r->kernel);
	return 0;
}
