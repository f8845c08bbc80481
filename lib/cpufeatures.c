#include "cpufeatures.h"

#include <cpuid.h>
#include <string.h>

#include "util.h"

#define F(n, l, s, r, b)                                                                           \
	{                                                                                          \
		n, l, s, CPUID_##r, b                                                              \
	}

static const struct cpu_feature features[] = {
	F("fpu", 1, 0, EDX, 0),
	F("tsc", 1, 0, EDX, 4),
	F("msr", 1, 0, EDX, 5),
	F("pae", 1, 0, EDX, 6),
	F("cx8", 1, 0, EDX, 8),
	F("apic", 1, 0, EDX, 9),
	F("sep", 1, 0, EDX, 11),
	F("pge", 1, 0, EDX, 13),
	F("cmov", 1, 0, EDX, 15),
	F("pat", 1, 0, EDX, 16),
	F("clflush", 1, 0, EDX, 19),
	F("mmx", 1, 0, EDX, 23),
	F("fxsr", 1, 0, EDX, 24),
	F("sse", 1, 0, EDX, 25),
	F("sse2", 1, 0, EDX, 26),
	F("pni", 1, 0, ECX, 0),
	F("pclmulqdq", 1, 0, ECX, 1),
	F("ssse3", 1, 0, ECX, 9),
	F("fma", 1, 0, ECX, 12),
	F("cx16", 1, 0, ECX, 13),
	F("sse4_1", 1, 0, ECX, 19),
	F("sse4_2", 1, 0, ECX, 20),
	F("x2apic", 1, 0, ECX, 21),
	F("movbe", 1, 0, ECX, 22),
	F("popcnt", 1, 0, ECX, 23),
	F("tsc_deadline_timer", 1, 0, ECX, 24),
	F("aes", 1, 0, ECX, 25),
	F("xsave", 1, 0, ECX, 26),
	F("avx", 1, 0, ECX, 28),
	F("f16c", 1, 0, ECX, 29),
	F("rdrand", 1, 0, ECX, 30),
	F("fsgsbase", 7, 0, EBX, 0),
	F("bmi1", 7, 0, EBX, 3),
	F("hle", 7, 0, EBX, 4),
	F("avx2", 7, 0, EBX, 5),
	F("smep", 7, 0, EBX, 7),
	F("bmi2", 7, 0, EBX, 8),
	F("erms", 7, 0, EBX, 9),
	F("invpcid", 7, 0, EBX, 10),
	F("rtm", 7, 0, EBX, 11),
	F("avx512f", 7, 0, EBX, 16),
	F("avx512dq", 7, 0, EBX, 17),
	F("rdseed", 7, 0, EBX, 18),
	F("adx", 7, 0, EBX, 19),
	F("smap", 7, 0, EBX, 20),
	F("avx512ifma", 7, 0, EBX, 21),
	F("clflushopt", 7, 0, EBX, 23),
	F("clwb", 7, 0, EBX, 24),
	F("avx512cd", 7, 0, EBX, 28),
	F("sha_ni", 7, 0, EBX, 29),
	F("avx512bw", 7, 0, EBX, 30),
	F("avx512vl", 7, 0, EBX, 31),
	F("avx512vbmi", 7, 0, ECX, 1),
	F("umip", 7, 0, ECX, 2),
	F("pku", 7, 0, ECX, 3),
	F("avx512_vbmi2", 7, 0, ECX, 6),
	F("gfni", 7, 0, ECX, 8),
	F("vaes", 7, 0, ECX, 9),
	F("vpclmulqdq", 7, 0, ECX, 10),
	F("avx512_vnni", 7, 0, ECX, 11),
	F("avx512_bitalg", 7, 0, ECX, 12),
	F("avx512_vpopcntdq", 7, 0, ECX, 14),
	F("rdpid", 7, 0, ECX, 22),
	F("movdiri", 7, 0, ECX, 27),
	F("movdir64b", 7, 0, ECX, 28),
	F("fsrm", 7, 0, EDX, 4),
	F("avx512_vp2intersect", 7, 0, EDX, 8),
	F("md_clear", 7, 0, EDX, 10),
	F("serialize", 7, 0, EDX, 14),
	F("arch_capabilities", 7, 0, EDX, 29),
	F("ssbd", 7, 0, EDX, 31),
	F("avx_vnni", 7, 1, EAX, 4),
	F("avx512_bf16", 7, 1, EAX, 5),
	F("xsaveopt", 0xd, 1, EAX, 0),
	F("xsavec", 0xd, 1, EAX, 1),
	F("xgetbv1", 0xd, 1, EAX, 2),
	F("xsaves", 0xd, 1, EAX, 3),
	F("lahf_lm", 0x80000001, 0, ECX, 0),
	F("abm", 0x80000001, 0, ECX, 5),
	F("sse4a", 0x80000001, 0, ECX, 6),
	F("misalignsse", 0x80000001, 0, ECX, 7),
	F("3dnowprefetch", 0x80000001, 0, ECX, 8),
	F("xop", 0x80000001, 0, ECX, 11),
	F("fma4", 0x80000001, 0, ECX, 16),
	F("tbm", 0x80000001, 0, ECX, 21),
	F("syscall", 0x80000001, 0, EDX, 11),
	F("nx", 0x80000001, 0, EDX, 20),
	F("pdpe1gb", 0x80000001, 0, EDX, 26),
	F("rdtscp", 0x80000001, 0, EDX, 27),
	F("lm", 0x80000001, 0, EDX, 29),
};

const struct cpu_feature *cpu_features(size_t *n)
{
	*n = ARRAY_SIZE(features);
	return features;
}

bool cpu_feature_present(const struct cpu_feature *f, const struct cpuid_leaf *l, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (l[i].function != f->leaf || l[i].index != f->subleaf)
			continue;
		uint32_t r = f->reg == CPUID_EAX   ? l[i].eax
		             : f->reg == CPUID_EBX ? l[i].ebx
		             : f->reg == CPUID_ECX ? l[i].ecx
		                                   : l[i].edx;
		return (r >> f->bit) & 1;
	}
	return false;
}

size_t cpu_host_leaves(struct cpuid_leaf *out, size_t max)
{
	static const uint32_t want[][2] = {
		{ 1, 0 }, { 7, 0 }, { 7, 1 }, { 0xd, 1 }, { 0x80000001, 0 }
	};
	unsigned int maxstd = __get_cpuid_max(0, NULL), maxext = __get_cpuid_max(0x80000000, NULL);
	size_t n = 0;

	for (size_t i = 0; i < ARRAY_SIZE(want) && n < max; i++) {
		uint32_t leaf = want[i][0], sub = want[i][1];
		if ((leaf < 0x80000000 && leaf > maxstd) || (leaf >= 0x80000000 && leaf > maxext))
			continue;
		struct cpuid_leaf *e = &out[n++];
		e->function = leaf;
		e->index = sub;
		__cpuid_count(leaf, sub, e->eax, e->ebx, e->ecx, e->edx);
	}
	return n;
}

void cpu_host_vendor(char out[13])
{
	unsigned int a, b, c, d;

	__cpuid(0, a, b, c, d);
	(void)a;
	memcpy(out, &b, 4);
	memcpy(out + 4, &d, 4);
	memcpy(out + 8, &c, 4);
	out[12] = '\0';
}

size_t cpu_features_hide(const char *names, struct cpuid_leaf *l, size_t n)
{
	size_t nf, known = 0;
	const struct cpu_feature *t = cpu_features(&nf);

	for (const char *p = names; p && *p;) {
		size_t len = strcspn(p, ",");
		for (size_t i = 0; i < nf; i++) {
			if (strlen(t[i].name) != len || strncmp(t[i].name, p, len) != 0)
				continue;
			known++;
			for (size_t k = 0; k < n; k++) {
				if (l[k].function != t[i].leaf || l[k].index != t[i].subleaf)
					continue;
				uint32_t *r = t[i].reg == CPUID_EAX   ? &l[k].eax
				              : t[i].reg == CPUID_EBX ? &l[k].ebx
				              : t[i].reg == CPUID_ECX ? &l[k].ecx
				                                      : &l[k].edx;
				*r &= ~(1u << t[i].bit);
			}
		}
		p += len;
		if (*p == ',')
			p++;
	}
	return known;
}
