/* What this host's KVM offers, asked without creating a VM. */
#ifndef VMK_KVMCAPS_H
#define VMK_KVMCAPS_H

#include <stddef.h>

#include "cpufeatures.h"

#define KVM_DEVICE "/dev/kvm"

/* The CPUID leaves KVM can present to a guest (KVM_GET_SUPPORTED_CPUID).
 * 0 with *n set, or -errno and err saying why KVM is not usable here. */
int kvm_supported_leaves(struct cpuid_leaf *out, size_t max, size_t *n, char *err, size_t errlen);

#endif
