#include "snapshot.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kvmcaps.h"
#include "log.h"
#include "diskstate.h"
#include "ramstate.h"
#include "softcpu.h"
#include "uart.h"
#include "util.h"

#define MAX_MSRS 256

/* A KVM ioctl whose argument struct is saved/restored as raw bytes. The
 * structs are KVM's ABI (stable across kernels of one architecture); the
 * stream is refused on a different vmx release by its version anyway. */
struct kvm_blob {
	const char *name;
	unsigned long get, set;
	size_t size;
};

static const struct kvm_blob vcpu_blobs[] = {
	{ "regs", KVM_GET_REGS, KVM_SET_REGS, sizeof(struct kvm_regs) },
	{ "sregs", KVM_GET_SREGS, KVM_SET_SREGS, sizeof(struct kvm_sregs) },
	{ "xsave", KVM_GET_XSAVE, KVM_SET_XSAVE, sizeof(struct kvm_xsave) },
	{ "xcrs", KVM_GET_XCRS, KVM_SET_XCRS, sizeof(struct kvm_xcrs) },
	{ "lapic", KVM_GET_LAPIC, KVM_SET_LAPIC, sizeof(struct kvm_lapic_state) },
	{ "mp_state", KVM_GET_MP_STATE, KVM_SET_MP_STATE, sizeof(struct kvm_mp_state) },
	{ "debugregs", KVM_GET_DEBUGREGS, KVM_SET_DEBUGREGS, sizeof(struct kvm_debugregs) },
	/* events last: it carries pending exceptions/NMIs that the others must not clobber */
	{ "events", KVM_GET_VCPU_EVENTS, KVM_SET_VCPU_EVENTS, sizeof(struct kvm_vcpu_events) },
};

static int msr_list(struct vmm_vm *vm, uint32_t *idx, uint32_t *n)
{
	struct kvm_msr_list *l = calloc(1, sizeof(*l) + MAX_MSRS * sizeof(uint32_t));
	int ret = 0;

	if (!l)
		return -ENOMEM;
	l->nmsrs = MAX_MSRS;
	if (ioctl(vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, l) < 0) {
		ret = -errno;
	} else {
		*n = l->nmsrs;
		memcpy(idx, l->indices, l->nmsrs * sizeof(uint32_t));
	}
	free(l);
	return ret;
}

static int save_vcpu(struct vmm_vm *vm, struct vmm_vcpu *c, struct sbuf *b, char *err,
                     size_t errlen)
{
	uint8_t buf[8192];
	uint32_t idx[MAX_MSRS], n = 0;

	for (size_t i = 0; i < ARRAY_SIZE(vcpu_blobs); i++) {
		const struct kvm_blob *k = &vcpu_blobs[i];
		memset(buf, 0, k->size);
		if (ioctl(c->fd, k->get, buf) < 0) {
			snprintf(err, errlen, "vCPU %u: get %s: %s", c->index, k->name,
			         strerror(errno));
			return -errno;
		}
		sbuf_u32(b, (uint32_t)k->size);
		sbuf_put(b, buf, k->size);
	}
	if (msr_list(vm, idx, &n) < 0) {
		snprintf(err, errlen, "KVM_GET_MSR_INDEX_LIST: %s", strerror(errno));
		return -errno;
	}
	struct kvm_msrs *m = calloc(1, sizeof(*m) + n * sizeof(struct kvm_msr_entry));
	struct kvm_msr_entry *keep = calloc(n ? n : 1, sizeof(*keep));
	uint32_t nkeep = 0;
	if (!m || !keep) {
		free(m);
		free(keep);
		return -ENOMEM;
	}
	/* KVM_GET_MSRS stops at the first MSR it cannot read (one the CPU model
	 * lacks): keep what it read, skip that one, and go on with the rest */
	for (uint32_t from = 0; from < n;) {
		m->nmsrs = n - from;
		for (uint32_t i = from; i < n; i++)
			m->entries[i - from] = (struct kvm_msr_entry){ .index = idx[i] };
		int got = ioctl(c->fd, KVM_GET_MSRS, m);
		if (got < 0)
			got = 0;
		for (int i = 0; i < got; i++)
			keep[nkeep++] = m->entries[i];
		from += (uint32_t)got + 1;
	}
	sbuf_u32(b, nkeep);
	for (uint32_t i = 0; i < nkeep; i++) {
		sbuf_u32(b, keep[i].index);
		sbuf_u64(b, keep[i].data);
	}
	free(m);
	free(keep);
	return b->err;
}

void vmm_vcpu_presave(struct vmm_vcpu *c)
{
	c->presaved.len = 0;
	c->presaved.err = 0;
	c->presave_err[0] = '\0';
	c->presave_wall_ns = util_wall_ns();
	c->presave_ret = save_vcpu(c->vm, c, &c->presaved, c->presave_err, sizeof(c->presave_err));
}

/* The VM's own KVM state, read in one go: the interrupt controllers, the
 * PIT and kvmclock, with the wall clock as kvmclock was read. */
struct chips {
	struct kvm_irqchip ic[3];
	struct kvm_pit_state2 pit;
	uint64_t clock, clock_wall_ns;
};

static int read_chips(struct vmm_vm *vm, struct chips *k, char *err, size_t errlen)
{
	struct kvm_clock_data clk;

	memset(k, 0, sizeof(*k));
	for (uint32_t chip = 0; chip < 3; chip++) {
		k->ic[chip].chip_id = chip;
		if (ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &k->ic[chip]) < 0) {
			snprintf(err, errlen, "KVM_GET_IRQCHIP %u: %s", chip, strerror(errno));
			return -errno;
		}
	}
	memset(&clk, 0, sizeof(clk));
	if (ioctl(vm->vm_fd, KVM_GET_PIT2, &k->pit) < 0 ||
	    ioctl(vm->vm_fd, KVM_GET_CLOCK, &clk) < 0) {
		snprintf(err, errlen, "KVM_GET_PIT2/KVM_GET_CLOCK: %s", strerror(errno));
		return -errno;
	}
	k->clock_wall_ns = util_wall_ns();
	k->clock = clk.clock;
	return 0;
}

void vmm_vm_presave_chips(struct vmm_vm *vm)
{
	struct chips k;
	char err[200];

	vm->presaved_chips.len = 0;
	vm->presaved_chips.err = 0;
	if (read_chips(vm, &k, err, sizeof(err)) == 0)
		sbuf_put(&vm->presaved_chips, &k, sizeof(k));
	/* else: vmm_vm_save_machine reads them again, and reports that */
}

static bool presaving(const void *arg)
{
	const struct vmm_vcpu *c = arg;
	return atomic_load(&c->presave) == VMM_PRESAVE_BUSY;
}

/* The vCPU's state its thread read for this pause (vmm_vm_pause_saving),
 * waiting for a read in progress; false when none was asked for, or its
 * thread has not taken it (then nobody will: the caller reads it). */
static bool presaved(struct vmm_vcpu *c)
{
	struct vmm_vm *vm = c->vm;
	int want = VMM_PRESAVE_WANTED;

	vmm_spin_while(presaving, c);
	pthread_mutex_lock(&vm->lock);
	atomic_compare_exchange_strong(&c->presave, &want, VMM_PRESAVE_NONE);
	while (atomic_load(&c->presave) == VMM_PRESAVE_BUSY)
		pthread_cond_wait(&vm->cond, &vm->lock);
	bool done = atomic_load(&c->presave) == VMM_PRESAVE_DONE;
	pthread_mutex_unlock(&vm->lock);
	return done;
}

/* Past this, the two hosts' clocks disagree rather than the state took
 * that long (a switchover waits at most MIGRATE_ACK_TIMEOUT_MS for each
 * answer): the guest's TSC then stands still across it, as from a file. */
#define TSC_CATCH_UP_MAX_NS (60ull * 1000000000ull)
#define MSR_IA32_TSC        0x10

/* The ns the state spent on its way from the source, until now (vm.h:
 * src_realtime_ns); 0 without a TIME section, or when the two hosts'
 * clocks disagree. say: log it (once a restore). */
static uint64_t time_on_the_way(const struct vmm_vm *vm, bool say)
{
	if (!vm->src_realtime_ns)
		return 0;
	uint64_t now = util_wall_ns();
	if (now <= vm->src_realtime_ns) {
		if (say)
			log_warn("the source's clock is ahead of this host's: the guest's clock is "
			         "restored as it was read (synchronise the hosts' clocks)");
		return 0;
	}
	uint64_t lost = now - vm->src_realtime_ns;
	if (lost > TSC_CATCH_UP_MAX_NS) {
		if (say)
			log_warn("the source's clock is %llu s behind this host's: the guest's "
			         "clock is restored as it was read (synchronise the hosts' clocks)",
			         (unsigned long long)(lost / 1000000000ull));
		return 0;
	}
	if (say)
		log_info("the guest's TSC set on by %llu us: the time its state took to arrive",
		         (unsigned long long)(lost / 1000));
	return lost;
}

/* The same in guest TSC cycles. */
static uint64_t tsc_catch_up(const struct vmm_vm *vm, bool say)
{
	return time_on_the_way(vm, say) / 1000 * vm->tsc_khz / 1000;
}

static int restore_vcpu(struct vmm_vcpu *c, struct rbuf *r, char *err, size_t errlen)
{
	uint8_t buf[8192];

	for (size_t i = 0; i < ARRAY_SIZE(vcpu_blobs); i++) {
		const struct kvm_blob *k = &vcpu_blobs[i];
		if (rbuf_u32(r) != k->size || rbuf_get(r, buf, k->size) < 0) {
			snprintf(err, errlen, "vCPU %u: %s state has the wrong size", c->index,
			         k->name);
			return -EBADMSG;
		}
		if (ioctl(c->fd, k->set, buf) < 0) {
			snprintf(err, errlen, "vCPU %u: set %s: %s", c->index, k->name,
			         strerror(errno));
			return -errno;
		}
	}
	uint32_t n = rbuf_u32(r);
	if (n > MAX_MSRS) {
		snprintf(err, errlen, "vCPU %u: %u MSRs (at most %d)", c->index, n, MAX_MSRS);
		return -EBADMSG;
	}
	struct kvm_msrs *m = calloc(1, sizeof(*m) + n * sizeof(struct kvm_msr_entry));
	if (!m)
		return -ENOMEM;
	m->nmsrs = n;
	uint64_t catch_up = tsc_catch_up(c->vm, c->index == 0);
	for (uint32_t i = 0; i < n; i++) {
		m->entries[i].index = rbuf_u32(r);
		m->entries[i].data = rbuf_u64(r);
		if (m->entries[i].index == MSR_IA32_TSC)
			m->entries[i].data += catch_up;
	}
	int set = r->err ? -1 : ioctl(c->fd, KVM_SET_MSRS, m);
	uint32_t refused = set >= 0 && (uint32_t)set < n ? m->entries[set].index : 0;
	free(m);
	if (rbuf_done(r) < 0) {
		snprintf(err, errlen, "vCPU %u: malformed state", c->index);
		return -EBADMSG;
	}
	if (set != (int)n) {
		snprintf(err, errlen,
		         "vCPU %u: KVM here refused MSR 0x%x (%d of %u restored): a CPU feature "
		         "this host lacks?",
		         c->index, refused, set, n);
		return -EINVAL;
	}
	return 0;
}

static int put_section(struct vmm_stream *s, uint32_t type, uint32_t inst, struct sbuf *b)
{
	int ret = b->err ? b->err : vmm_state_write_section(s, type, inst, b->data, b->len);

	b->len = 0;
	return ret;
}

int vmm_vm_save_begin(struct vmm_vm *vm, struct vmm_stream *s, char *err, size_t errlen)
{
	struct sbuf b;
	int ret;

	sbuf_init(&b);
	if ((ret = vmm_state_write_header(s)) < 0)
		goto io;
	vmm_cpumodel_save(&vm->cpumodel, &b);
	if ((ret = put_section(s, SEC_CPU_MODEL, 0, &b)) < 0)
		goto io;
	sbuf_u32(&b, vm->nvcpus);
	sbuf_u32(&b, vm->mem.nslots);
	for (unsigned i = 0; i < vm->mem.nslots; i++) {
		sbuf_u64(&b, vm->mem.slots[i].gpa);
		sbuf_u64(&b, vm->mem.slots[i].size);
	}
	if ((ret = put_section(s, SEC_CONFIG, 0, &b)) < 0)
		goto io;
	sbuf_free(&b);
	return 0;
io:
	snprintf(err, errlen, "writing the state stream: %s", strerror(-ret));
	sbuf_free(&b);
	return ret;
}

int vmm_vm_save_machine(struct vmm_vm *vm, struct vmm_stream *s, bool live, char *err,
                        size_t errlen)
{
	struct sbuf b;
	int ret;
	/* the clock as the first vCPU is read (here, or by its own thread
	 * after vmm_vm_pause_saving), written once its state is in memory: a
	 * TIME write that waited for the socket (the final pages ahead of
	 * it) would otherwise count that wait as time on the way */
	uint64_t t = util_wall_ns();

	sbuf_init(&b);
	if (vm->accel == VMM_ACCEL_SOFT) {
		softcpu_save(vm->vcpus[0].soft, &b);
		if ((live && (ret = vmm_state_write_section(s, SEC_TIME, 0, &t, 8)) < 0) ||
		    (ret = put_section(s, SEC_SOFTCPU, 0, &b)) < 0)
			goto io;
		goto devices;
	}
	for (unsigned i = 0; i < vm->nvcpus; i++) {
		struct vmm_vcpu *c = &vm->vcpus[i];
		if (presaved(c)) {
			if ((ret = c->presave_ret) < 0) {
				snprintf(err, errlen, "%s", c->presave_err);
				goto out;
			}
			sbuf_put(&b, c->presaved.data, c->presaved.len);
			if (i == 0)
				t = c->presave_wall_ns;
		} else if ((ret = save_vcpu(vm, c, &b, err, errlen)) < 0) {
			goto out;
		}
		if ((i == 0 && live &&
		     (ret = vmm_state_write_section(s, SEC_TIME, 0, &t, 8)) < 0) ||
		    (ret = put_section(s, SEC_VCPU, i, &b)) < 0)
			goto io;
	}
	struct chips k;
	if (vm->presaved_chips.len == sizeof(k) && !vm->presaved_chips.err)
		memcpy(&k, vm->presaved_chips.data, sizeof(k));
	else if ((ret = read_chips(vm, &k, err, errlen)) < 0)
		goto out;
	for (uint32_t chip = 0; chip < 3; chip++)
		sbuf_put(&b, &k.ic[chip], sizeof(k.ic[chip]));
	if ((ret = put_section(s, SEC_IRQCHIP, 0, &b)) < 0)
		goto io;
	sbuf_put(&b, &k.pit, sizeof(k.pit));
	if ((ret = put_section(s, SEC_PIT, 0, &b)) < 0)
		goto io;
	/* with TIME, kvmclock as it was at t: the destination sets it on
	 * from t, and a clock read later would count that stretch twice */
	if (live)
		k.clock = k.clock + t - k.clock_wall_ns;
	sbuf_u64(&b, k.clock);
	if ((ret = put_section(s, SEC_CLOCK, 0, &b)) < 0)
		goto io;
devices:
	for (unsigned i = 0; i < vm->ndevs; i++) {
		struct vmm_device *d = vm->devs[i];
		size_t nl = strlen(d->ops->name);
		sbuf_u8(&b, (uint8_t)nl);
		sbuf_put(&b, d->ops->name, nl);
		if (d->ops->save && (ret = d->ops->save(d, &b)) < 0) {
			snprintf(err, errlen, "device %s: save failed: %s", d->ops->name,
			         strerror(-ret));
			goto out;
		}
		if ((ret = put_section(s, SEC_DEVICE, i, &b)) < 0)
			goto io;
	}
	ret = 0;
	goto out;
io:
	snprintf(err, errlen, "writing the state stream: %s", strerror(-ret));
out:
	sbuf_free(&b);
	return ret;
}

int vmm_vm_save(struct vmm_vm *vm, struct vmm_stream *s, char *err, size_t errlen)
{
	int ret;

	if ((ret = vmm_vm_save_begin(vm, s, err, errlen)) < 0 ||
	    (ret = vmm_vm_save_machine(vm, s, false, err, errlen)) < 0)
		return ret;
	if ((ret = vmm_ram_save_all(&vm->mem, s, NULL)) < 0 ||
	    (ret = vmm_state_write_section(s, SEC_END, 0, NULL, 0)) < 0) {
		snprintf(err, errlen, "writing the state stream: %s", strerror(-ret));
		return ret;
	}
	return 0;
}

static int check_cpu(struct vmm_vm *vm, struct rbuf *r, char *err, size_t errlen)
{
	struct vmm_cpumodel need;
	struct cpuid_leaf l[256];
	size_t n = 0;
	char why[300], missing[600];

	if (vmm_cpumodel_restore(&need, r) < 0) {
		snprintf(err, errlen, "the CPU model record of the stream is malformed");
		return -EBADMSG;
	}
	if (vmm_vm_supported_leaves(vm, l, ARRAY_SIZE(l), &n, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "%s", why);
		return -ENODEV;
	}
	if (vmm_cpumodel_missing(&need, l, n, missing, sizeof(missing))) {
		snprintf(err, errlen,
		         "this host cannot run the VM's CPU model %s: %s here lacks %s", need.name,
		         vm->accel == VMM_ACCEL_SOFT ? "the software CPU" : "KVM", missing);
		return -ENOTSUP;
	}
	vm->cpumodel = need;
	return 0;
}

/* The sections only a KVM VM has: vCPU registers, irqchip, PIT, kvmclock. */
static int restore_kvm_section(struct vmm_vm *vm, uint32_t type, uint32_t inst, struct rbuf *rp,
                               char *err, size_t errlen)
{
	struct rbuf r = *rp;
	int ret = 0;

	switch (type) {
	case SEC_VCPU:
		if (inst >= vm->nvcpus) {
			snprintf(err, errlen, "state for vCPU %u of a %u-vCPU VM", inst,
			         vm->nvcpus);
			ret = -EBADMSG;
			break;
		}
		ret = restore_vcpu(&vm->vcpus[inst], &r, err, errlen);
		break;
	case SEC_IRQCHIP:
		ret = 0;
		for (uint32_t chip = 0; ret == 0 && chip < 3; chip++) {
			struct kvm_irqchip ic;
			if (rbuf_get(&r, &ic, sizeof(ic)) < 0 || ic.chip_id != chip)
				ret = -EBADMSG;
			else if (ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &ic) < 0)
				ret = -errno;
		}
		if (ret == 0)
			ret = rbuf_done(&r);
		if (ret)
			snprintf(err, errlen, "interrupt controller state: %s", strerror(-ret));
		break;
	case SEC_PIT: {
		struct kvm_pit_state2 pit;
		ret = rbuf_get(&r, &pit, sizeof(pit)) < 0 || rbuf_done(&r) < 0 ? -EBADMSG
		      : ioctl(vm->vm_fd, KVM_SET_PIT2, &pit) < 0               ? -errno
		                                                               : 0;
		if (ret)
			snprintf(err, errlen, "PIT state: %s", strerror(-ret));
		break;
	}
	case SEC_CLOCK: {
		struct kvm_clock_data clk;
		memset(&clk, 0, sizeof(clk));
		/* kvmclock too runs on at the source while the VM is paused */
		clk.clock = rbuf_u64(&r) + time_on_the_way(vm, false);
		ret = rbuf_done(&r) < 0                           ? -EBADMSG
		      : ioctl(vm->vm_fd, KVM_SET_CLOCK, &clk) < 0 ? -errno
		                                                  : 0;
		if (ret)
			snprintf(err, errlen, "kvmclock: %s", strerror(-ret));
		break;
	}
	}
	return ret;
}

int vmm_vm_restore(struct vmm_vm *vm, struct vmm_stream *s, char *err, size_t errlen)
{
	struct sbuf p;
	struct rbuf r;
	uint32_t type = 0, inst = 0, expect = SEC_CPU_MODEL;
	int ret;

	sbuf_init(&p);
	if ((ret = vmm_state_read_header(s, err, errlen)) < 0)
		return ret;
	while (type != SEC_END) {
		/* RAM pages straight into guest memory, once the stream has
		 * shown it is of a VM like this one */
		bool loaded;
		if ((ret = vmm_ram_read_section(s, expect == SEC_CPU_MODEL ? NULL : &vm->mem, &type,
		                                &inst, &p, &loaded, err, errlen)) < 0)
			goto out;
		rbuf_init(&r, p.data, p.len);
		if (expect == SEC_CPU_MODEL && type != SEC_CPU_MODEL) {
			snprintf(err, errlen,
			         "the stream does not start with its CPU model record");
			ret = -EBADMSG;
			goto out;
		}
		expect = 0;
		switch (type) {
		case SEC_CPU_MODEL:
			ret = check_cpu(vm, &r, err, errlen);
			break;
		case SEC_CONFIG: {
			uint32_t nv = rbuf_u32(&r), ns = rbuf_u32(&r);
			ret = 0;
			if (nv != vm->nvcpus || ns != vm->mem.nslots)
				ret = -EINVAL;
			for (uint32_t i = 0; ret == 0 && i < ns; i++)
				if (rbuf_u64(&r) != vm->mem.slots[i].gpa ||
				    rbuf_u64(&r) != vm->mem.slots[i].size)
					ret = -EINVAL;
			if (ret == 0 && rbuf_done(&r) < 0)
				ret = -EBADMSG;
			if (ret)
				snprintf(err, errlen,
				         "the stream is of a VM with another memory size "
				         "or vCPU count (%u vCPUs)",
				         nv);
			break;
		}
		case SEC_SOFTCPU:
			if (vm->accel != VMM_ACCEL_SOFT) {
				snprintf(err, errlen,
				         "the stream is of a VM on the software CPU: restore it "
				         "with "
				         "vmx --accel soft");
				ret = -ENOTSUP;
				break;
			}
			ret = softcpu_restore(vm->vcpus[0].soft, &r);
			if (ret == 0)
				vm->vcpus[0].soft->tsc_offset += (int64_t)tsc_catch_up(vm, true);
			if (ret)
				snprintf(err, errlen, "software CPU state: %s",
				         ret == -EPROTONOSUPPORT ? "from a newer vmx"
				                                 : "malformed or impossible");
			break;
		case SEC_TIME: { /* before the vCPUs; live migration only */
			uint64_t t = rbuf_u64(&r);
			if (rbuf_done(&r) < 0) {
				snprintf(err, errlen, "malformed TIME section");
				ret = -EBADMSG;
				break;
			}
			if (!s->sync)
				break; /* not a migration stream: the clock stays as saved */
			vm->src_realtime_ns = t;
			/* tests: the vCPUs' state arrives this much later, as
			 * over a slow link (the guest's clock must not lose it) */
			util_test_delay("VMX_TEST_STATE_DELAY_MS", "the vCPUs' state");
			break;
		}
		case SEC_VCPU:
		case SEC_IRQCHIP:
		case SEC_PIT:
		case SEC_CLOCK:
			if (vm->accel == VMM_ACCEL_SOFT) {
				snprintf(err, errlen,
				         "the stream is of a VM on KVM: restore it on a host with "
				         "KVM");
				ret = -ENOTSUP;
				break;
			}
			ret = restore_kvm_section(vm, type, inst, &r, err, errlen);
			break;
		case SEC_DEVICE: {
			char name[64];
			uint8_t nl = rbuf_u8(&r);
			if (inst >= vm->ndevs || nl >= sizeof(name) || rbuf_get(&r, name, nl) < 0) {
				snprintf(err, errlen, "state for unknown device %u", inst);
				ret = -EBADMSG;
				break;
			}
			name[nl] = '\0';
			struct vmm_device *d = vm->devs[inst];
			if (strcmp(name, d->ops->name) != 0) {
				snprintf(err, errlen,
				         "device %u is a %s here but a %s in the stream", inst,
				         d->ops->name, name);
				ret = -EBADMSG;
				break;
			}
			struct rbuf rest;
			rbuf_init(&rest, r.data + r.off, r.len - r.off);
			ret = d->ops->restore ? d->ops->restore(d, &rest) : 0;
			if (ret)
				snprintf(err, errlen, "device %s: its state is malformed", name);
			break;
		}
		case SEC_RAM:
		case SEC_RAMC: /* RAMC and RAMD are always loaded as they are read */
		case SEC_RAMD:
			ret = loaded ? 0 : vmm_ram_load(&vm->mem, p.data, p.len, err, errlen);
			break;
		case SEC_ZERO:
			ret = vmm_ram_zero_load(&vm->mem, p.data, p.len, err, errlen);
			break;
		case SEC_RAMZ:
			ret = vmm_ram_load_compressed(&vm->mem, p.data, p.len, err, errlen);
			break;
		case SEC_DISK:
			ret = vmm_disk_load(vm, inst, p.data, p.len, err, errlen);
			break;
		case SEC_SLOG: {
			/* the log of the VM's previous home, in order, before the guest
			 * writes more (its directory moved with its storage) */
			ret = 0;
			for (unsigned i = 0; i < vm->ndevs; i++) {
				if (strcmp(vm->devs[i]->ops->name, "uart") != 0)
					continue;
				int fd = vmm_uart_log_fd(vm->devs[i]);
				for (size_t done = 0; fd >= 0 && done < p.len;) {
					ssize_t k = write(fd, p.data + done, p.len - done);
					if (k < 0 && errno == EINTR)
						continue;
					if (k <= 0) {
						ret = -EIO;
						break;
					}
					done += (size_t)k;
				}
			}
			if (ret)
				snprintf(err, errlen, "writing the moved serial log: %s",
				         strerror(EIO));
			break;
		}
		case SEC_END:
			ret = 0;
			break;
		case SEC_SYNC:
			if (s->sync && p.len == 4) {
				uint32_t pass;
				memcpy(&pass, p.data, 4);
				if ((ret = s->sync(s->sync_arg, pass)) < 0)
					snprintf(err, errlen, "the other streams failed at pass %u",
					         pass);
				break;
			}
			__attribute__((fallthrough)); /* not a migration stream */
		default: {
			char fc[5];
			vmm_fourcc_str(type, fc);
			snprintf(err, errlen,
			         "unknown state section %s: the stream is from a newer vmx", fc);
			ret = -EPROTONOSUPPORT;
		}
		}
		if (ret < 0)
			goto out;
	}
	ret = 0;
out:
	sbuf_free(&p);
	return ret;
}
