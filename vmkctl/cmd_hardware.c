/* vmkctl hardware ... */
#include "handlers.h"

int cmd_hardware_cpu_get(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out)
{
	static const char *const cols[] = { "model",    "vendor",      "packages",      "cores",
		                            "threads",  "mhz",         "kvm_available", "kvm_error",
		                            "features", "kvm_features" };
	Vmk__Request req = VMK__REQUEST__INIT;
	Vmk__CpuGetRequest body = VMK__CPU_GET_REQUEST__INIT;
	Vmk__Response *resp;
	int ret;

	(void)a;
	req.body_case = VMK__REQUEST__BODY_CPU_GET;
	req.cpu_get = &body;
	if ((ret = vmkctl_call(v, &req, &resp)))
		return ret;
	const Vmk__CpuGetResponse *r = VMKCTL_BODY(v, resp, VMK__RESPONSE__BODY_CPU_GET, cpu_get);
	if (!r)
		return 1;
	if (out_init(out, "CPUInfo", false, 10, cols) < 0 || out_add_row(out) < 0)
		return vmkctl_error(v, 1, "out of memory");
	out_set_str(out, 0, "model", r->model);
	out_set_str(out, 0, "vendor", r->vendor);
	out_set_int(out, 0, "packages", r->packages);
	out_set_int(out, 0, "cores", r->cores);
	out_set_int(out, 0, "threads", r->threads);
	out_set_int(out, 0, "mhz", r->mhz);
	out_set_bool(out, 0, "kvm_available", r->kvm_available);
	if (r->kvm_error && r->kvm_error[0])
		out_set_str(out, 0, "kvm_error", r->kvm_error);
	out_set_list(out, 0, "features", (const char *const *)r->features, r->n_features);
	out_set_list(out, 0, "kvm_features", (const char *const *)r->kvm_features,
	             r->n_kvm_features);
	return 0;
}

int cmd_hardware_memory_get(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out)
{
	static const char *const cols[] = { "total_bytes", "available_bytes", "hugepage_bytes",
		                            "hugepages_total", "hugepages_free" };
	Vmk__Request req = VMK__REQUEST__INIT;
	Vmk__MemoryGetRequest body = VMK__MEMORY_GET_REQUEST__INIT;
	Vmk__Response *resp;
	int ret;

	(void)a;
	req.body_case = VMK__REQUEST__BODY_MEMORY_GET;
	req.memory_get = &body;
	if ((ret = vmkctl_call(v, &req, &resp)))
		return ret;
	const Vmk__MemoryGetResponse *r =
	        VMKCTL_BODY(v, resp, VMK__RESPONSE__BODY_MEMORY_GET, memory_get);
	if (!r)
		return 1;
	if (out_init(out, "MemoryInfo", false, 5, cols) < 0 || out_add_row(out) < 0)
		return vmkctl_error(v, 1, "out of memory");
	out_set_int(out, 0, "total_bytes", (int64_t)r->total_bytes);
	out_set_int(out, 0, "available_bytes", (int64_t)r->available_bytes);
	out_set_int(out, 0, "hugepage_bytes", (int64_t)r->hugepage_bytes);
	out_set_int(out, 0, "hugepages_total", (int64_t)r->hugepages_total);
	out_set_int(out, 0, "hugepages_free", (int64_t)r->hugepages_free);
	return 0;
}
