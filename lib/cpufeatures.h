/* Named CPUID feature flags that matter when a VM moves between hosts:
 * a guest that saw a flag on one host must find it on the next. The same
 * table serves `hardware cpu get`, CPU models and migration checks. */
#ifndef VMK_CPUFEATURES_H
#define VMK_CPUFEATURES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum cpuid_reg { CPUID_EAX, CPUID_EBX, CPUID_ECX, CPUID_EDX };

struct cpu_feature {
	const char *name; /* Linux /proc/cpuinfo spelling */
	uint32_t leaf, subleaf;
	enum cpuid_reg reg;
	uint8_t bit;
};

/* Same layout as struct kvm_cpuid_entry2's first fields. */
struct cpuid_leaf {
	uint32_t function, index;
	uint32_t eax, ebx, ecx, edx;
};

const struct cpu_feature *cpu_features(size_t *n);

/* Whether f is set in the given CPUID leaves. */
bool cpu_feature_present(const struct cpu_feature *f, const struct cpuid_leaf *l, size_t n);

/* Clears the named features (comma-separated, the table's names) in the
 * leaves: a lab host that stands for older hardware ($VMK_CPU_HIDE).
 * Returns how many names it knew. */
size_t cpu_features_hide(const char *names, struct cpuid_leaf *l, size_t n);

/* The host's own CPUID leaves that the table refers to, via the cpuid
 * instruction. Returns how many were written (at most max). */
size_t cpu_host_leaves(struct cpuid_leaf *out, size_t max);

/* "GenuineIntel" / "AuthenticAMD" ..., from leaf 0. */
void cpu_host_vendor(char out[13]);

#endif
