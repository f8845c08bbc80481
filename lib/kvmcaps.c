#include "kvmcaps.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "util.h"

int kvm_supported_leaves(struct cpuid_leaf *out, size_t max, size_t *n, char *err, size_t errlen)
{
	const unsigned nent = 256;
	struct kvm_cpuid2 *c = NULL;
	int fd, ret, ver;

	fd = open(KVM_DEVICE, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s%s", KVM_DEVICE, util_strerror(ret),
		         ret == -ENOENT || ret == -ENODEV
		                 ? " (no KVM on this host: load kvm_intel/kvm_amd or enable "
		                   "nested virtualization)"
		                 : "");
		return ret;
	}
	ver = ioctl(fd, KVM_GET_API_VERSION, 0);
	if (ver != KVM_API_VERSION) {
		snprintf(err, errlen, "%s: API version %d, expected %d", KVM_DEVICE, ver,
		         KVM_API_VERSION);
		ret = -ENOTSUP;
		goto out;
	}
	c = calloc(1, sizeof(*c) + nent * sizeof(c->entries[0]));
	if (!c) {
		ret = -ENOMEM;
		goto out;
	}
	c->nent = nent;
	if (ioctl(fd, KVM_GET_SUPPORTED_CPUID, c) < 0) {
		ret = -errno;
		snprintf(err, errlen, "KVM_GET_SUPPORTED_CPUID: %s", util_strerror(ret));
		goto out;
	}
	*n = 0;
	for (unsigned i = 0; i < c->nent && *n < max; i++) {
		struct cpuid_leaf *l = &out[(*n)++];
		l->function = c->entries[i].function;
		l->index = c->entries[i].index;
		l->eax = c->entries[i].eax;
		l->ebx = c->entries[i].ebx;
		l->ecx = c->entries[i].ecx;
		l->edx = c->entries[i].edx;
	}
	ret = 0;
out:
	free(c);
	close(fd);
	return ret;
}
