#include "cpumodel.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

/* The x86-64 micro-architecture levels (as QEMU and the psABI name them). */
static const char *const v2[] = { "cx16",   "lahf_lm", "popcnt", "pni",
	                          "sse4_1", "sse4_2",  "ssse3",  NULL };
static const char *const v3[] = { "avx", "avx2", "bmi1",  "bmi2",  "f16c",
	                          "fma", "abm",  "movbe", "xsave", NULL };
static const char *const v4[] = { "avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl", NULL };
static const char *const base[] = { "fpu",  "tsc",     "msr", "pae",     "cx8", "apic", "sep",
	                            "pge",  "cmov",    "pat", "clflush", "mmx", "fxsr", "sse",
	                            "sse2", "syscall", "nx",  "lm",      NULL };

static const struct cpu_feature *feature(const char *name)
{
	size_t n;
	const struct cpu_feature *f = cpu_features(&n);

	for (size_t i = 0; i < n; i++)
		if (strcmp(f[i].name, name) == 0)
			return &f[i];
	return NULL;
}

static int add(struct vmm_cpumodel *m, const char *const *list)
{
	for (; *list; list++) {
		const struct cpu_feature *f = feature(*list);
		if (!f || m->nfeatures == CPUMODEL_MAX_FEATURES)
			return -EINVAL;
		m->features[m->nfeatures++] = f->name;
	}
	return 0;
}

int vmm_cpumodel_build(struct vmm_cpumodel *m, const char *name, const char *vendor,
                       uint32_t tsc_khz, const struct cpuid_leaf *l, size_t n, char *err,
                       size_t errlen)
{
	size_t nf;
	const struct cpu_feature *f = cpu_features(&nf);
	int level;

	memset(m, 0, sizeof(*m));
	snprintf(m->vendor, sizeof(m->vendor), "%s", vendor);
	m->tsc_khz = tsc_khz;
	if (strlen(name) >= sizeof(m->name)) {
		snprintf(err, errlen, "CPU model name \"%.40s...\" is too long", name);
		return -EINVAL;
	}
	snprintf(m->name, sizeof(m->name), "%s", name);
	if (strcmp(name, "host") == 0) {
		for (size_t i = 0; i < nf && m->nfeatures < CPUMODEL_MAX_FEATURES; i++)
			if (cpu_feature_present(&f[i], l, n))
				m->features[m->nfeatures++] = f[i].name;
		return 0;
	}
	if (strcmp(name, "x86-64-v2") == 0)
		level = 2;
	else if (strcmp(name, "x86-64-v3") == 0)
		level = 3;
	else if (strcmp(name, "x86-64-v4") == 0)
		level = 4;
	else {
		snprintf(err, errlen,
		         "unknown CPU model \"%s\"; use host, x86-64-v2, x86-64-v3 or x86-64-v4",
		         name);
		return -EINVAL;
	}
	add(m, base);
	add(m, v2);
	if (level >= 3)
		add(m, v3);
	if (level >= 4)
		add(m, v4);
	char missing[600];
	if (vmm_cpumodel_missing(m, l, n, missing, sizeof(missing))) {
		snprintf(err, errlen, "CPU model %s needs features this host's KVM lacks: %s", name,
		         missing);
		return -ENOTSUP;
	}
	return 0;
}

static bool in_model(const struct vmm_cpumodel *m, const char *name)
{
	for (size_t i = 0; i < m->nfeatures; i++)
		if (strcmp(m->features[i], name) == 0)
			return true;
	return false;
}

void vmm_cpumodel_filter(const struct vmm_cpumodel *m, struct cpuid_leaf *l, size_t n)
{
	size_t nf;
	const struct cpu_feature *f = cpu_features(&nf);

	for (size_t i = 0; i < nf; i++) {
		if (in_model(m, f[i].name))
			continue;
		for (size_t j = 0; j < n; j++) {
			if (l[j].function != f[i].leaf || l[j].index != f[i].subleaf)
				continue;
			uint32_t *r = f[i].reg == CPUID_EAX   ? &l[j].eax
			              : f[i].reg == CPUID_EBX ? &l[j].ebx
			              : f[i].reg == CPUID_ECX ? &l[j].ecx
			                                      : &l[j].edx;
			*r &= ~(1u << f[i].bit);
		}
	}
}

size_t vmm_cpumodel_missing(const struct vmm_cpumodel *m, const struct cpuid_leaf *l, size_t n,
                            char *out, size_t outlen)
{
	size_t count = 0, used = 0;

	if (outlen)
		out[0] = '\0';
	for (size_t i = 0; i < m->nfeatures; i++) {
		const struct cpu_feature *f = feature(m->features[i]);
		if (f && cpu_feature_present(f, l, n))
			continue;
		count++;
		if (used < outlen) {
			int w = snprintf(out + used, outlen - used, "%s%s", count > 1 ? ", " : "",
			                 m->features[i]);
			used += w > 0 ? (size_t)w : 0;
		}
	}
	return count;
}

static void put_str(struct sbuf *b, const char *s)
{
	size_t n = strlen(s);

	sbuf_u8(b, (uint8_t)n);
	sbuf_put(b, s, n);
}

static int get_str(struct rbuf *r, char *out, size_t outlen)
{
	uint8_t n = rbuf_u8(r);

	if (n >= outlen)
		return -EBADMSG;
	if (rbuf_get(r, out, n) < 0)
		return -EBADMSG;
	out[n] = '\0';
	return 0;
}

void vmm_cpumodel_save(const struct vmm_cpumodel *m, struct sbuf *b)
{
	put_str(b, m->name);
	put_str(b, m->vendor);
	sbuf_u32(b, m->tsc_khz);
	sbuf_u32(b, (uint32_t)m->nfeatures);
	for (size_t i = 0; i < m->nfeatures; i++)
		put_str(b, m->features[i]);
}

int vmm_cpumodel_restore(struct vmm_cpumodel *m, struct rbuf *r)
{
	char name[64];

	memset(m, 0, sizeof(*m));
	if (get_str(r, m->name, sizeof(m->name)) < 0 ||
	    get_str(r, m->vendor, sizeof(m->vendor)) < 0)
		return -EBADMSG;
	m->tsc_khz = rbuf_u32(r);
	uint32_t n = rbuf_u32(r);
	if (n > CPUMODEL_MAX_FEATURES)
		return -EBADMSG;
	for (uint32_t i = 0; i < n; i++) {
		if (get_str(r, name, sizeof(name)) < 0)
			return -EBADMSG;
		const struct cpu_feature *f = feature(name);
		if (!f)
			return -EBADMSG; /* a feature this release does not know */
		m->features[m->nfeatures++] = f->name;
	}
	return rbuf_done(r);
}
