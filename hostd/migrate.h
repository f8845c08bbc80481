/* vMotion in hostd (migrate.c): the checks a destination makes. */
#ifndef HOSTD_MIGRATE_H
#define HOSTD_MIGRATE_H

#include <stddef.h>

/* Can this host run a guest that was given CPU model `model` with these
 * CPUID features (lib/cpufeatures.c names)? Uses the accelerator vmx would
 * use here ($VMK_ACCEL, else KVM when /dev/kvm opens, else the software
 * CPU). 0, or -ENOTSUP with err listing what this host lacks (an unknown
 * name counts as lacking). */
int migrate_cpu_check(const char *host, const char *vm, const char *model, char *const *features,
                      size_t n, char *err, size_t errlen);

#endif
