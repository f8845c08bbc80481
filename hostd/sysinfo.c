/* system version get, hardware cpu get, hardware memory get. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "cpufeatures.h"
#include "dispatch.h"
#include "kvmcaps.h"
#include "rpc.h"
#include "util.h"

#define PROC_MAX (8u << 20)

int hostd_op_version_get(struct hostd_call *call, const Vmk__Request *req)
{
	Vmk__VersionGetResponse *v = arena_alloc(call->a, sizeof(*v));
	struct utsname u;

	(void)req;
	if (!v)
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED, "out of memory");
	vmk__version_get_response__init(v);
	uname(&u);
	v->product = HOSTD_PRODUCT;
	v->version = HOSTD_VERSION;
	v->build = arena_strdup(call->a, __DATE__ " " __TIME__);
	v->protocol = RPC_PROTOCOL_VERSION;
	v->hostname = call->h->cfg.name;
	v->kernel = arena_printf(call->a, "%s %s", u.sysname, u.release);
	call->resp->body_case = VMK__RESPONSE__BODY_VERSION_GET;
	call->resp->version_get = v;
	return VMK__STATUS__STATUS_OK;
}

/* Value of the first "key<spaces>: value" line of a /proc file, or NULL. */
static const char *proc_value(const char *text, const char *key, char *out, size_t outlen)
{
	size_t kl = strlen(key);

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (strncmp(p, key, kl) != 0 || (p[kl] != ' ' && p[kl] != '\t' && p[kl] != ':'))
			continue;
		const char *c = strchr(p, ':');
		const char *e = strchr(p, '\n');
		if (!c || (e && c > e))
			continue;
		c++;
		while (*c == ' ' || *c == '\t')
			c++;
		size_t n = e ? (size_t)(e - c) : strlen(c);
		if (n >= outlen)
			n = outlen - 1;
		memcpy(out, c, n);
		out[n] = '\0';
		return out;
	}
	return NULL;
}

static char **feature_names(struct arena *a, const struct cpuid_leaf *l, size_t nl, size_t *n)
{
	size_t nf;
	const struct cpu_feature *f = cpu_features(&nf);
	char **names = arena_calloc(a, nf, sizeof(*names));

	*n = 0;
	if (!names)
		return NULL;
	for (size_t i = 0; i < nf; i++) {
		if (cpu_feature_present(&f[i], l, nl))
			names[(*n)++] = (char *)f[i].name;
	}
	return names;
}

int hostd_op_cpu_get(struct hostd_call *call, const Vmk__Request *req)
{
	Vmk__CpuGetResponse *c = arena_alloc(call->a, sizeof(*c));
	struct cpuid_leaf host[8], kvm[256];
	char *text = NULL, buf[256], vendor[13], err[256];
	size_t nkvm = 0;
	int ret;

	(void)req;
	if (!c)
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED, "out of memory");
	vmk__cpu_get_response__init(c);
	ret = util_read_file("/proc/cpuinfo", PROC_MAX, &text, NULL);
	if (ret < 0)
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED, "/proc/cpuinfo: %s",
		                  util_strerror(ret));
	c->model = arena_strdup(call->a,
	                        proc_value(text, "model name", buf, sizeof(buf)) ? buf : "unknown");
	c->mhz = proc_value(text, "cpu MHz", buf, sizeof(buf)) ? (uint32_t)atof(buf) : 0;
	/* packages: distinct physical ids; cores: "cpu cores" per package */
	uint32_t maxpkg = 0, cores = 0;
	for (const char *p = strstr(text, "physical id"); p; p = strstr(p + 1, "physical id")) {
		const char *colon = strchr(p, ':');
		if (colon && (uint32_t)atoi(colon + 1) + 1 > maxpkg)
			maxpkg = (uint32_t)atoi(colon + 1) + 1;
	}
	if (proc_value(text, "cpu cores", buf, sizeof(buf)))
		cores = (uint32_t)atoi(buf);
	free(text);
	c->threads = (uint32_t)sysconf(_SC_NPROCESSORS_ONLN);
	c->packages = maxpkg ? maxpkg : 1;
	c->cores = cores ? cores * c->packages : c->threads;
	cpu_host_vendor(vendor);
	c->vendor = arena_strdup(call->a, vendor);

	size_t nhost = cpu_host_leaves(host, ARRAY_SIZE(host));
	c->features = feature_names(call->a, host, nhost, &c->n_features);
	ret = kvm_supported_leaves(kvm, ARRAY_SIZE(kvm), &nkvm, err, sizeof(err));
	c->kvm_available = ret == 0;
	c->kvm_error = ret == 0 ? "" : arena_strdup(call->a, err);
	if (ret == 0)
		c->kvm_features = feature_names(call->a, kvm, nkvm, &c->n_kvm_features);
	call->resp->body_case = VMK__RESPONSE__BODY_CPU_GET;
	call->resp->cpu_get = c;
	return VMK__STATUS__STATUS_OK;
}

static uint64_t meminfo_kib(const char *text, const char *key)
{
	char buf[64];

	return proc_value(text, key, buf, sizeof(buf)) ? strtoull(buf, NULL, 10) : 0;
}

int hostd_op_memory_get(struct hostd_call *call, const Vmk__Request *req)
{
	Vmk__MemoryGetResponse *m = arena_alloc(call->a, sizeof(*m));
	char *text = NULL;
	int ret;

	(void)req;
	if (!m)
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED, "out of memory");
	vmk__memory_get_response__init(m);
	ret = util_read_file("/proc/meminfo", PROC_MAX, &text, NULL);
	if (ret < 0)
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED, "/proc/meminfo: %s",
		                  util_strerror(ret));
	m->total_bytes = meminfo_kib(text, "MemTotal") * 1024;
	m->available_bytes = meminfo_kib(text, "MemAvailable") * 1024;
	m->hugepage_bytes = meminfo_kib(text, "Hugepagesize") * 1024;
	m->hugepages_total = meminfo_kib(text, "HugePages_Total");
	m->hugepages_free = meminfo_kib(text, "HugePages_Free");
	free(text);
	call->resp->body_case = VMK__RESPONSE__BODY_MEMORY_GET;
	call->resp->memory_get = m;
	return VMK__STATUS__STATUS_OK;
}
