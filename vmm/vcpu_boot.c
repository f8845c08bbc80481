/* vCPU set-up for a cold boot: CPUID from what KVM supports (filtered and
 * with the hypervisor leaves), then the register state each boot protocol
 * promises at its entry point. */
#include <errno.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "cpumodel.h"
#include "kvmcaps.h"
#include "softcpu.h"
#include "vm.h"

#define CPUID_NENT 256

/* KVM's paravirtual signature, with the timing leaf 0x40000010 (TSC and bus
 * frequency in kHz, as VMware and KVM define it) so guests need no
 * calibration. */
static void hypervisor_leaves(struct kvm_cpuid2 *c, uint32_t tsc_khz)
{
	for (uint32_t i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];
		if (e->function == 0x40000000) {
			e->eax = 0x40000010;
		}
	}
	if (c->nent < CPUID_NENT) {
		struct kvm_cpuid_entry2 *e = &c->entries[c->nent++];
		memset(e, 0, sizeof(*e));
		e->function = 0x40000010;
		e->eax = tsc_khz;
		e->ebx = 1000000; /* local APIC bus: 1 GHz */
	}
}

/* Applies the VM's CPU model to KVM's leaves: features outside it are
 * cleared so the guest never relies on what another host may lack. */
static int apply_model(struct vmm_vm *vm, struct kvm_cpuid2 *c, char *err, size_t errlen)
{
	struct cpuid_leaf l[CPUID_NENT];
	int ret;

	for (uint32_t i = 0; i < c->nent; i++)
		l[i] = (struct cpuid_leaf){ c->entries[i].function, c->entries[i].index,
			                    c->entries[i].eax,      c->entries[i].ebx,
			                    c->entries[i].ecx,      c->entries[i].edx };
	char vendor[13];
	cpu_host_vendor(vendor);
	ret = vmm_cpumodel_build(&vm->cpumodel, vm->cpu_model_name, vendor, vm->tsc_khz, l, c->nent,
	                         err, errlen);
	if (ret < 0)
		return ret;
	vmm_cpumodel_filter(&vm->cpumodel, l, c->nent);
	for (uint32_t i = 0; i < c->nent; i++) {
		c->entries[i].eax = l[i].eax;
		c->entries[i].ebx = l[i].ebx;
		c->entries[i].ecx = l[i].ecx;
		c->entries[i].edx = l[i].edx;
	}
	return 0;
}

static int set_cpuid(struct vmm_vm *vm, struct vmm_vcpu *v, char *err, size_t errlen)
{
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + CPUID_NENT * sizeof(c->entries[0]));
	int ret = 0;

	if (!c)
		return -ENOMEM;
	c->nent = CPUID_NENT - 1;
	if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) < 0) {
		ret = -errno;
		snprintf(err, errlen, "KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
		goto out;
	}
	if ((ret = apply_model(vm, c, err, errlen)) < 0)
		goto out;
	for (uint32_t i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];
		if (e->function == 1) {
			/* initial APIC id, logical count; hypervisor present */
			e->ebx = (e->ebx & 0x0000ffff) | (v->index << 24) | (vm->nvcpus << 16);
			e->ecx |= 1u << 31;
		}
		if (e->function == 0xb || e->function == 0x1f)
			e->edx = v->index; /* x2APIC id */
	}
	hypervisor_leaves(c, vm->tsc_khz);
	if (ioctl(v->fd, KVM_SET_CPUID2, c) < 0) {
		ret = -errno;
		snprintf(err, errlen, "KVM_SET_CPUID2 on vCPU %u: %s", v->index, strerror(errno));
	}
out:
	free(c);
	return ret;
}

static void flat_seg(struct kvm_segment *s, uint16_t sel, uint8_t type, bool code64)
{
	memset(s, 0, sizeof(*s));
	s->base = 0;
	s->limit = 0xffffffff;
	s->selector = sel;
	s->type = type;
	s->present = 1;
	s->s = 1;
	s->g = 1;
	s->l = code64;
	s->db = !code64;
}

static int set_boot_regs(struct vmm_vcpu *v, const struct vmm_boot *b, char *err, size_t errlen)
{
	struct kvm_sregs sr;
	struct kvm_regs r;
	struct kvm_fpu fpu;

	if (ioctl(v->fd, KVM_GET_SREGS, &sr) < 0) {
		snprintf(err, errlen, "KVM_GET_SREGS: %s", strerror(errno));
		return -errno;
	}
	memset(&r, 0, sizeof(r));
	r.rflags = 0x2;
	r.rip = b->entry;
	if (b->kind == BOOT_PVH) {
		/* 32-bit protected mode, paging off, flat segments, %ebx = start_info */
		flat_seg(&sr.cs, 0x8, 0xb, false);
		flat_seg(&sr.ds, 0x10, 0x3, false);
		sr.cr0 = 0x11; /* PE | ET */
		sr.cr4 = 0;
		sr.efer = 0;
		r.rbx = b->arg;
	} else {
		/* 64-bit mode with the loader's identity map and boot GDT */
		flat_seg(&sr.cs, 0x10, 0xb, true);
		flat_seg(&sr.ds, 0x18, 0x3, false);
		sr.cr3 = BOOT_PML4_GPA;
		sr.cr4 = 0x20;                    /* PAE */
		sr.cr0 = 0x80000011 | 0x2;        /* PG | ET | PE | MP */
		sr.efer = (1u << 8) | (1u << 10); /* LME | LMA */
		sr.gdt.base = BOOT_GDT_GPA;
		sr.gdt.limit = 4 * 8 - 1;
		r.rsi = b->arg;
	}
	sr.es = sr.fs = sr.gs = sr.ss = sr.ds;
	if (ioctl(v->fd, KVM_SET_SREGS, &sr) < 0 || ioctl(v->fd, KVM_SET_REGS, &r) < 0) {
		snprintf(err, errlen, "setting boot registers: %s", strerror(errno));
		return -errno;
	}
	memset(&fpu, 0, sizeof(fpu));
	fpu.fcw = 0x37f;
	fpu.mxcsr = 0x1f80;
	if (ioctl(v->fd, KVM_SET_FPU, &fpu) < 0) {
		snprintf(err, errlen, "KVM_SET_FPU: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

/* What the software CPU implements (softcpu.h), in CPUID terms: the
 * integer x86-64 baseline without x87/SSE, long mode, NX, the TSC, and
 * the hypervisor leaves with the TSC frequency. */
static size_t soft_leaves(struct cpuid_leaf *l, size_t max, uint32_t tsc_khz);

size_t vmm_soft_cpuid_leaves(struct cpuid_leaf *l, size_t max, uint32_t tsc_khz)
{
	return soft_leaves(l, max, tsc_khz);
}

static size_t soft_leaves(struct cpuid_leaf *l, size_t max, uint32_t tsc_khz)
{
	char vendor[13];
	uint32_t sig1 = 0, vend[3];
	size_t n = 0;

	if (max < 6)
		return 0;
	cpu_host_vendor(vendor);
	memcpy(vend, vendor, 12);
	{
		unsigned a, bb, cc, d;
		__asm__("cpuid" : "=a"(a), "=b"(bb), "=c"(cc), "=d"(d) : "a"(1), "c"(0));
		sig1 = a; /* family, model, stepping of the host */
	}
	l[n++] = (struct cpuid_leaf){ 0, 0, 1, vend[0], vend[2], vend[1] };
	l[n++] = (struct cpuid_leaf){ 1,
		                      0,
		                      sig1,
		                      0,
		                      1u << 31, /* hypervisor */
		                      (1u << 4) | (1u << 5) | (1u << 6) | (1u << 8) |
		                              (1u << 15) }; /* tsc msr pae cx8 cmov */
	l[n++] = (struct cpuid_leaf){ 0x40000000,
		                      0,
		                      0x40000010,
		                      0x536b6d56 /* "VmkS" */,
		                      0x43746673 /* "oftC" */,
		                      0x00005550 /* "PU" */ };
	l[n++] = (struct cpuid_leaf){ 0x40000010, 0, tsc_khz, 1000000, 0, 0 };
	l[n++] = (struct cpuid_leaf){ 0x80000000, 0, 0x80000001, 0, 0, 0 };
	l[n++] = (struct cpuid_leaf){ 0x80000001, 0, 0, 0, 0, (1u << 20) | (1u << 29) }; /* nx lm */
	return n;
}

int vmm_vm_supported_leaves(const struct vmm_vm *vm, struct cpuid_leaf *l, size_t max, size_t *n,
                            char *err, size_t errlen)
{
	if (vm->accel == VMM_ACCEL_SOFT) {
		*n = soft_leaves(l, max, vm->tsc_khz);
		return 0;
	}
	return kvm_supported_leaves(l, max, n, err, errlen);
}

static int soft_setup_boot(struct vmm_vm *vm, const struct vmm_boot *b, char *err, size_t errlen)
{
	struct softcpu *c = vm->vcpus[0].soft;
	struct cpuid_leaf l[SOFTCPU_MAX_CPUID];
	char vendor[13];
	size_t n = soft_leaves(l, SOFTCPU_MAX_CPUID, vm->tsc_khz);
	int ret;

	if (b->kind != BOOT_PVH) {
		snprintf(err, errlen,
		         "the software CPU boots PVH ELF guests only; a Linux bzImage needs a host "
		         "with KVM");
		return -ENOTSUP;
	}
	cpu_host_vendor(vendor);
	ret = vmm_cpumodel_build(&vm->cpumodel, vm->cpu_model_name, vendor, vm->tsc_khz, l, n, err,
	                         errlen);
	if (ret < 0)
		return ret;
	vmm_cpumodel_filter(&vm->cpumodel, l, n);
	memcpy(c->cpuid, l, n * sizeof(l[0]));
	c->ncpuid = (unsigned)n;
	softcpu_reset_pvh(c, b->entry, b->arg);
	return 0;
}

int vmm_vm_setup_boot(struct vmm_vm *vm, const struct vmm_boot *b, char *err, size_t errlen)
{
	int ret;

	if (vm->accel == VMM_ACCEL_SOFT)
		return soft_setup_boot(vm, b, err, errlen);

	for (unsigned i = 0; i < vm->nvcpus; i++) {
		if ((ret = set_cpuid(vm, &vm->vcpus[i], err, errlen)) < 0)
			return ret;
		if (i > 0) {
			/* application processors wait for INIT/SIPI from the BSP */
			struct kvm_mp_state mp = { .mp_state = KVM_MP_STATE_UNINITIALIZED };
			ioctl(vm->vcpus[i].fd, KVM_SET_MP_STATE, &mp);
		}
	}
	return set_boot_regs(&vm->vcpus[0], b, err, errlen);
}
