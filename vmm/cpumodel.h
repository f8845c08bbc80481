/* CPU models: the named set of CPUID features a VM is given, recorded in
 * its state stream (section CPUM) so a destination can check, before it
 * accepts the VM, that its KVM offers every one of them. */
#ifndef VMM_CPUMODEL_H
#define VMM_CPUMODEL_H

#include <stddef.h>
#include <stdint.h>

#include "cpufeatures.h"
#include "sbuf.h"

#define CPUMODEL_MAX_FEATURES 128

struct vmm_cpumodel {
	char name[32]; /* "host", "x86-64-v2", "x86-64-v3", "x86-64-v4" */
	char vendor[13];
	uint32_t tsc_khz;
	size_t nfeatures;
	const char *features[CPUMODEL_MAX_FEATURES]; /* names from cpu_features() */
};

/* The model `name` on a host whose KVM offers leaves l[0..n): "host" takes
 * every known feature KVM offers; a named baseline takes its list and fails
 * with -ENOTSUP (missing names in err) if KVM lacks part of it. */
int vmm_cpumodel_build(struct vmm_cpumodel *m, const char *name, const char *vendor,
                       uint32_t tsc_khz, const struct cpuid_leaf *l, size_t n, char *err,
                       size_t errlen);

/* Clears, in the leaves a guest will get, every known feature bit that is
 * not in the model (so a guest never sees what a destination may lack). */
void vmm_cpumodel_filter(const struct vmm_cpumodel *m, struct cpuid_leaf *l, size_t n);

/* Features of m that the leaves lack: their count, and a ", " list in out. */
size_t vmm_cpumodel_missing(const struct vmm_cpumodel *m, const struct cpuid_leaf *l, size_t n,
                            char *out, size_t outlen);

void vmm_cpumodel_save(const struct vmm_cpumodel *m, struct sbuf *b);
/* Validates: known feature names only, bounded counts and lengths. */
int vmm_cpumodel_restore(struct vmm_cpumodel *m, struct rbuf *r);

#endif
