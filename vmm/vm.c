#include "vm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "kvmcaps.h"
#include "log.h"
#include "snapshot.h"
#include "softcpu.h"
#include "util.h"

#define VCPU_KICK_SIGNAL SIGUSR1
#define TSS_ADDR         0xfffbd000ull
#define IDENTITY_MAP     0xfffbc000ull

static const char *const state_names[] = { "created", "running", "paused", "poweredOff",
	                                   "crashed" };

const char *vmm_run_state_name(enum vmm_run_state s)
{
	return (unsigned)s < ARRAY_SIZE(state_names) ? state_names[s] : "unknown";
}

const char *vmm_accel_name(enum vmm_accel a)
{
	return a == VMM_ACCEL_SOFT ? "soft" : "kvm";
}

int vmm_accel_choose(const char *name, enum vmm_accel *out, char *why, size_t whylen)
{
	if (why && whylen)
		why[0] = '\0';
	if (!name || !strcmp(name, "auto")) {
		int fd = open(KVM_DEVICE, O_RDWR | O_CLOEXEC);
		if (fd >= 0) {
			close(fd);
			*out = VMM_ACCEL_KVM;
		} else {
			*out = VMM_ACCEL_SOFT;
			if (why)
				snprintf(why, whylen, "%s: %s", KVM_DEVICE, strerror(errno));
		}
		return 0;
	}
	if (!strcmp(name, "kvm"))
		*out = VMM_ACCEL_KVM;
	else if (!strcmp(name, "soft"))
		*out = VMM_ACCEL_SOFT;
	else
		return -EINVAL;
	return 0;
}

static void irq_set(void *arg, uint32_t gsi, int level)
{
	struct vmm_vm *vm = arg;
	struct kvm_irq_level l = { .irq = gsi, .level = (uint32_t)level };

	if (vm->accel == VMM_ACCEL_SOFT)
		return; /* no interrupt controller: the micro guests poll */
	if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &l) < 0)
		log_warn("KVM_IRQ_LINE gsi %u: %s", gsi, strerror(errno));
}

static void kick_handler(int sig)
{
	(void)sig; /* only interrupts KVM_RUN */
}

static int vcpu_create(struct vmm_vm *vm, unsigned i, char *err, size_t errlen)
{
	struct vmm_vcpu *c = &vm->vcpus[i];
	int mmap_size;

	c->vm = vm;
	c->index = i;
	c->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)i);
	if (c->fd < 0) {
		snprintf(err, errlen, "KVM_CREATE_VCPU %u: %s", i, strerror(errno));
		return -errno;
	}
	mmap_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (mmap_size < (int)sizeof(struct kvm_run)) {
		snprintf(err, errlen, "KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));
		return -EINVAL;
	}
	c->run_size = (size_t)mmap_size;
	c->run = mmap(NULL, c->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, c->fd, 0);
	if (c->run == MAP_FAILED) {
		c->run = NULL;
		snprintf(err, errlen, "mmap of vCPU %u run area: %s", i, strerror(errno));
		return -errno;
	}
	return 0;
}

static void soft_pio(void *arg, uint16_t port, bool out, uint8_t *data, unsigned size);
static void soft_mmio(void *arg, uint64_t gpa, bool write, uint8_t *data, unsigned size);

static int soft_create(struct vmm_vm *vm, uint64_t ram_bytes, unsigned nvcpus, bool use_memfd,
                       char *err, size_t errlen)
{
	struct vmm_vcpu *c = &vm->vcpus[0];
	int ret;

	if (nvcpus != 1) {
		snprintf(err, errlen,
		         "%u vCPUs: the software CPU runs 1 vCPU (set vcpus = 1, or run the VM on "
		         "a host with KVM)",
		         nvcpus);
		return -EINVAL;
	}
	ret = vmm_mem_init(&vm->mem, ram_bytes, use_memfd);
	if (ret < 0) {
		snprintf(err, errlen, "guest memory of %llu MiB: %s",
		         (unsigned long long)(ram_bytes >> 20), strerror(-ret));
		return ret;
	}
	c->vm = vm;
	c->index = 0;
	c->fd = -1;
	vm->nvcpus = 1; /* from here vmm_vm_destroy frees what is allocated */
	c->run_size = sizeof(struct kvm_run);
	c->run = calloc(1, c->run_size);
	c->soft = malloc(sizeof(*c->soft));
	if (!c->run || !c->soft) {
		snprintf(err, errlen, "out of memory for the software CPU");
		return -ENOMEM;
	}
	struct softcpu_io io = { soft_pio, soft_mmio, c };
	softcpu_init(c->soft, &vm->mem, &io);
	c->soft->stop = &c->run->immediate_exit;
	vm->tsc_khz = softcpu_tsc_khz();
	return 0;
}

int vmm_vm_create(struct vmm_vm *vm, enum vmm_accel accel, uint64_t ram_bytes, unsigned nvcpus,
                  bool use_memfd, char *err, size_t errlen)
{
	int ret;

	memset(vm, 0, sizeof(*vm));
	vm->accel = accel;
	vm->kvm_fd = vm->vm_fd = -1;
	for (unsigned i = 0; i < VMM_MAX_VCPUS; i++)
		vm->vcpus[i].fd = -1;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_cond_init(&vm->cond, NULL);
	atomic_store(&vm->state, VM_CREATED);
	snprintf(vm->cpu_model_name, sizeof(vm->cpu_model_name), "host");
	if (nvcpus == 0 || nvcpus > VMM_MAX_VCPUS) {
		snprintf(err, errlen, "%u vCPUs: use 1 to %d", nvcpus, VMM_MAX_VCPUS);
		return -EINVAL;
	}
	if (accel == VMM_ACCEL_SOFT) {
		ret = soft_create(vm, ram_bytes, nvcpus, use_memfd, err, errlen);
		goto done;
	}
	vm->kvm_fd = open(KVM_DEVICE, O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s (is KVM available on this host?)", KVM_DEVICE,
		         strerror(errno));
		goto fail;
	}
	if (ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
		snprintf(err, errlen, "%s speaks another KVM API version", KVM_DEVICE);
		ret = -ENOTSUP;
		goto fail;
	}
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "KVM_CREATE_VM: %s", strerror(errno));
		goto fail;
	}
	ret = vmm_mem_init(&vm->mem, ram_bytes, use_memfd);
	if (ret < 0) {
		snprintf(err, errlen, "guest memory of %llu MiB: %s",
		         (unsigned long long)(ram_bytes >> 20), strerror(-ret));
		goto fail;
	}
	for (unsigned i = 0; i < vm->mem.nslots; i++) {
		struct kvm_userspace_memory_region r = {
			.slot = i,
			.guest_phys_addr = vm->mem.slots[i].gpa,
			.memory_size = vm->mem.slots[i].size,
			.userspace_addr = (uint64_t)(uintptr_t)vm->mem.slots[i].host,
		};
		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0) {
			ret = -errno;
			snprintf(err, errlen, "KVM_SET_USER_MEMORY_REGION slot %u: %s", i,
			         strerror(errno));
			goto fail;
		}
	}
	/* manual dirty-log protection: needs slots that start on a 64-page
	 * boundary (KVM_CLEAR_DIRTY_LOG works in words of the bitmap) */
	bool aligned = true;
	for (unsigned i = 0; i < vm->mem.nslots; i++)
		aligned &= (vm->mem.slots[i].gpa / VMM_PAGE_SIZE) % 64 == 0;
	/* INITIALLY_SET: starting the log write-protects nothing (on a
	 * shadow-paged host that stalled the guest ~4 ms per GiB); pass 0
	 * re-protects memory chunk by chunk as it sends it */
	struct kvm_enable_cap mc = { .cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
		                     .args = { KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE |
		                               KVM_DIRTY_LOG_INITIALLY_SET } };
	if (aligned &&
	    (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2) & 3) == 3 &&
	    ioctl(vm->vm_fd, KVM_ENABLE_CAP, &mc) == 0)
		vm->dirty_manual = true;
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, TSS_ADDR) < 0 ||
	    ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &(uint64_t){ IDENTITY_MAP }) < 0) {
		ret = -errno;
		snprintf(err, errlen, "KVM_SET_TSS_ADDR: %s", strerror(errno));
		goto fail;
	}
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) {
		ret = -errno;
		snprintf(err, errlen, "KVM_CREATE_IRQCHIP: %s", strerror(errno));
		goto fail;
	}
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
		ret = -errno;
		snprintf(err, errlen, "KVM_CREATE_PIT2: %s", strerror(errno));
		goto fail;
	}
	for (unsigned i = 0; i < nvcpus; i++) {
		if ((ret = vcpu_create(vm, i, err, errlen)) < 0)
			goto fail;
		vm->nvcpus++;
	}
	int khz = ioctl(vm->vcpus[0].fd, KVM_GET_TSC_KHZ, 0);
	vm->tsc_khz = khz > 0 ? (uint32_t)khz : 0;
	ret = 0;
done:
	if (ret < 0)
		goto fail;
	vm->bus.mem = &vm->mem;
	vm->bus.irq_set = irq_set;
	vm->bus.irq_arg = vm;
	struct sigaction sa = { .sa_handler = kick_handler };
	sigaction(VCPU_KICK_SIGNAL, &sa, NULL);
	return 0;
fail:
	vmm_vm_destroy(vm);
	return ret;
}

void vmm_vm_destroy(struct vmm_vm *vm)
{
	vmm_vm_stop(vm, VM_POWERED_OFF, NULL);
	for (unsigned i = 0; i < vm->nvcpus; i++) {
		struct vmm_vcpu *c = &vm->vcpus[i];
		if (c->started)
			pthread_join(c->thread, NULL);
		sbuf_free(&c->presaved);
		if (c->soft) {
			free(c->soft);
			free(c->run);
			c->soft = NULL;
		} else if (c->run) {
			munmap(c->run, c->run_size);
		}
		c->run = NULL;
		if (c->fd >= 0)
			close(c->fd);
	}
	sbuf_free(&vm->presaved_chips);
	for (unsigned i = 0; i < vm->ndevs; i++)
		if (vm->devs[i]->ops->destroy)
			vm->devs[i]->ops->destroy(vm->devs[i]);
	vmm_mem_free(&vm->mem);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	vm->vm_fd = vm->kvm_fd = -1;
	vm->nvcpus = vm->ndevs = 0;
}

int vmm_vm_add_device(struct vmm_vm *vm, struct vmm_device *d)
{
	if (vm->ndevs == VMM_MAX_DEVICES)
		return -ENOSPC;
	d->bus = &vm->bus;
	vm->devs[vm->ndevs++] = d;
	return 0;
}

/* ---- exits ---- */

static struct vmm_device *pio_device(struct vmm_vm *vm, uint16_t port)
{
	for (unsigned i = 0; i < vm->ndevs; i++) {
		struct vmm_device *d = vm->devs[i];
		if (d->pio_len && port >= d->pio_base && port - d->pio_base < d->pio_len)
			return d;
	}
	return NULL;
}

static struct vmm_device *mmio_device(struct vmm_vm *vm, uint64_t addr)
{
	for (unsigned i = 0; i < vm->ndevs; i++) {
		struct vmm_device *d = vm->devs[i];
		if (d->mmio_len && addr >= d->mmio_base && addr - d->mmio_base < d->mmio_len)
			return d;
	}
	return NULL;
}

static void pio_access(struct vmm_vm *vm, uint16_t port, bool out, uint8_t *data, unsigned size)
{
	struct vmm_device *d = pio_device(vm, port);

	if (d)
		d->ops->pio(d, (uint16_t)(port - d->pio_base), out, data, size);
	else if (!out)
		memset(data, 0xff, size); /* nothing there: floating bus */
}

static void mmio_access(struct vmm_vm *vm, uint64_t addr, bool write, uint8_t *data, unsigned size)
{
	struct vmm_device *d = mmio_device(vm, addr);

	if (d)
		d->ops->mmio(d, addr - d->mmio_base, write, data, size);
	else if (!write)
		memset(data, 0xff, size);
}

static void soft_pio(void *arg, uint16_t port, bool out, uint8_t *data, unsigned size)
{
	struct vmm_vcpu *c = arg;

	c->exits++;
	pio_access(c->vm, port, out, data, size);
}

static void soft_mmio(void *arg, uint64_t gpa, bool write, uint8_t *data, unsigned size)
{
	struct vmm_vcpu *c = arg;

	c->exits++;
	mmio_access(c->vm, gpa, write, data, size);
}

static void handle_io(struct vmm_vcpu *c)
{
	struct kvm_run *r = c->run;
	uint8_t *data = (uint8_t *)r + r->io.data_offset;

	/* string I/O (rep outsb) arrives as count elements back to back */
	for (uint32_t i = 0; i < r->io.count; i++, data += r->io.size)
		pio_access(c->vm, r->io.port, r->io.direction == KVM_EXIT_IO_OUT, data, r->io.size);
}

static void handle_mmio(struct vmm_vcpu *c)
{
	struct kvm_run *r = c->run;

	mmio_access(c->vm, r->mmio.phys_addr, r->mmio.is_write, r->mmio.data,
	            r->mmio.len <= sizeof(r->mmio.data) ? r->mmio.len : sizeof(r->mmio.data));
}

void vmm_vm_stop(struct vmm_vm *vm, enum vmm_run_state final, const char *why)
{
	int cur = atomic_load(&vm->state);

	pthread_mutex_lock(&vm->lock);
	if (cur == VM_RUNNING || cur == VM_PAUSED || cur == VM_CREATED) {
		atomic_store(&vm->state, final);
		if (why)
			snprintf(vm->exit_reason, sizeof(vm->exit_reason), "%s", why);
	}
	vm->pause_requested = false;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	for (unsigned i = 0; i < vm->nvcpus; i++) {
		if (vm->vcpus[i].started && vm->vcpus[i].run) {
			vm->vcpus[i].run->immediate_exit = 1;
			pthread_kill(vm->vcpus[i].thread, VCPU_KICK_SIGNAL);
		}
	}
}

/* Parks the calling vCPU while a pause is requested. */
static void park(struct vmm_vcpu *c)
{
	struct vmm_vm *vm = c->vm;

	pthread_mutex_lock(&vm->lock);
	if (vm->pause_requested && c->io_pending) {
		/* KVM finishes an I/O or MMIO exit (RIP past the instruction,
		 * the value read into its register) only in the next KVM_RUN;
		 * with immediate_exit set, that runs no guest instruction.
		 * Without it a state saved during the pause would repeat the
		 * instruction on restore (a UART byte twice). */
		pthread_mutex_unlock(&vm->lock);
		c->run->immediate_exit = 1;
		/* a string I/O or a split MMIO access may need further exits to
		 * finish: serve them until KVM_RUN returns with nothing left */
		for (int i = 0; i < 4096 && ioctl(c->fd, KVM_RUN, 0) == 0; i++) {
			if (c->run->exit_reason == KVM_EXIT_IO)
				handle_io(c);
			else if (c->run->exit_reason == KVM_EXIT_MMIO)
				handle_mmio(c);
			else
				break;
		}
		pthread_mutex_lock(&vm->lock);
	}
	c->io_pending = false;
	if (vm->pause_requested) {
		vm->vcpus_paused++;
		pthread_cond_broadcast(&vm->cond);
		while (vm->pause_requested) {
			int want = VMM_PRESAVE_WANTED;
			/* once every vCPU is out and no device works: until then
			 * another vCPU's IPI or a NIC's interrupt could still land in
			 * this one's LAPIC after it was read (the last to park and
			 * vmm_vm_io_end broadcast) */
			if (vm->vcpus_paused == vm->nvcpus && !vm->io_busy &&
			    atomic_compare_exchange_strong(&c->presave, &want, VMM_PRESAVE_BUSY)) {
				/* counted as paused already: the pauser goes on meanwhile */
				pthread_mutex_unlock(&vm->lock);
				vmm_vcpu_presave(c);
				pthread_mutex_lock(&vm->lock);
				atomic_store(&c->presave, VMM_PRESAVE_DONE);
				pthread_cond_broadcast(&vm->cond);
				continue;
			}
			pthread_cond_wait(&vm->cond, &vm->lock);
		}
		vm->vcpus_paused--;
	}
	c->run->immediate_exit = 0;
	pthread_mutex_unlock(&vm->lock);
}

/* The software CPU's loop: slices of instructions between checks for a
 * pause or stop request (which set run->immediate_exit, as for KVM). */
#define SOFT_SLICE            200000
#define SOFT_PAUSE_NAP_MIN_NS 50000   /* a pause-loop exit naps 50 us ... */
#define SOFT_PAUSE_NAP_MAX_NS 2000000 /* ... doubling while the guest only waits */

static void *soft_vcpu_main(struct vmm_vcpu *c)
{
	struct vmm_vm *vm = c->vm;
	char why[260];
	uint64_t io_seen = 0;
	long nap_ns = SOFT_PAUSE_NAP_MIN_NS;

	for (;;) {
		int st = atomic_load(&vm->state);
		if (st == VM_POWERED_OFF || st == VM_CRASHED)
			break;
		park(c);
		if (atomic_load(&vm->state) != VM_RUNNING)
			continue;
		switch (softcpu_run(c->soft, SOFT_SLICE)) {
		case SOFTCPU_YIELD:
			break;
		case SOFTCPU_HLT:
			vmm_vm_stop(vm, VM_CRASHED, "guest halted with interrupts disabled");
			break;
		case SOFTCPU_SHUTDOWN:
			snprintf(why, sizeof(why), "vCPU %u: %s", c->index, c->soft->why);
			vmm_vm_stop(vm, VM_CRASHED, why);
			break;
		case SOFTCPU_UNSUPPORTED:
			snprintf(why, sizeof(why), "vCPU %u: %s", c->index, c->soft->why);
			vmm_vm_stop(vm, VM_CRASHED, why);
			break;
		case SOFTCPU_PAUSE:
			/* the guest spins waiting (its clock, a device): give the host CPU
			 * away instead of interpreting the spin; the longer it only waits
			 * (no I/O since), the longer the nap, up to 2 ms */
			if (c->soft->io_exits != io_seen) {
				io_seen = c->soft->io_exits;
				nap_ns = SOFT_PAUSE_NAP_MIN_NS;
			} else if (nap_ns < SOFT_PAUSE_NAP_MAX_NS) {
				nap_ns *= 2;
			}
			nanosleep(&(struct timespec){ .tv_nsec = nap_ns }, NULL);
			break;
		}
	}
	return NULL;
}

static void *vcpu_main(void *arg)
{
	struct vmm_vcpu *c = arg;
	struct vmm_vm *vm = c->vm;
	char why[200];

	if (c->soft)
		return soft_vcpu_main(c);
	for (;;) {
		int st = atomic_load(&vm->state);
		if (st == VM_POWERED_OFF || st == VM_CRASHED)
			break;
		park(c);
		if (atomic_load(&vm->state) != VM_RUNNING)
			continue;
		int ret = ioctl(c->fd, KVM_RUN, 0);
		if (ret < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue; /* kicked: pause or stop */
			snprintf(why, sizeof(why), "vCPU %u: KVM_RUN: %s", c->index,
			         strerror(errno));
			vmm_vm_stop(vm, VM_CRASHED, why);
			break;
		}
		c->exits++;
		switch (c->run->exit_reason) {
		case KVM_EXIT_IO:
			handle_io(c);
			c->io_pending = true;
			break;
		case KVM_EXIT_MMIO:
			handle_mmio(c);
			c->io_pending = true;
			break;
		case KVM_EXIT_HLT:
			/* with the in-kernel LAPIC, HLT is handled in KVM; a halted
			 * vCPU with no interrupt source is a dead guest */
			vmm_vm_stop(vm, VM_CRASHED, "guest halted with interrupts disabled");
			break;
		case KVM_EXIT_SHUTDOWN:
			snprintf(why, sizeof(why), "vCPU %u: triple fault (shutdown)", c->index);
			vmm_vm_stop(vm, VM_CRASHED, why);
			break;
		case KVM_EXIT_FAIL_ENTRY:
			snprintf(why, sizeof(why), "vCPU %u: VM entry failed (reason 0x%llx)",
			         c->index,
			         (unsigned long long)
			                 c->run->fail_entry.hardware_entry_failure_reason);
			vmm_vm_stop(vm, VM_CRASHED, why);
			break;
		case KVM_EXIT_INTERNAL_ERROR:
			snprintf(why, sizeof(why),
			         "vCPU %u: KVM internal error %u (emulation failed)", c->index,
			         c->run->internal.suberror);
			vmm_vm_stop(vm, VM_CRASHED, why);
			break;
		case KVM_EXIT_SYSTEM_EVENT:
			vmm_vm_stop(vm, VM_POWERED_OFF, "guest system event (shutdown/reset)");
			break;
		case KVM_EXIT_INTR:
			break;
		default:
			snprintf(why, sizeof(why), "vCPU %u: unhandled exit reason %u", c->index,
			         c->run->exit_reason);
			vmm_vm_stop(vm, VM_CRASHED, why);
		}
	}
	return NULL;
}

static int start(struct vmm_vm *vm, bool paused)
{
	sigset_t set;

	pthread_mutex_lock(&vm->lock);
	int st = atomic_load(&vm->state);
	if (paused && (st == VM_POWERED_OFF || st == VM_CRASHED)) {
		pthread_mutex_unlock(&vm->lock); /* stopped meanwhile: not to be started */
		return -ECANCELED;
	}
	vm->pause_requested = paused;
	atomic_store(&vm->state, paused ? VM_PAUSED : VM_RUNNING);
	pthread_mutex_unlock(&vm->lock);
	/* vCPU threads take the kick signal; others block it */
	sigemptyset(&set);
	sigaddset(&set, VCPU_KICK_SIGNAL);
	for (unsigned i = 0; i < vm->nvcpus; i++) {
		struct vmm_vcpu *c = &vm->vcpus[i];
		if (pthread_create(&c->thread, NULL, vcpu_main, c) != 0) {
			vmm_vm_stop(vm, VM_CRASHED, "cannot start vCPU threads");
			return -EAGAIN;
		}
		c->started = true;
	}
	/* paused: a thread parks as it starts, or runs once resumed if that
	 * comes first; nothing waits for it here */
	return 0;
}

int vmm_vm_start(struct vmm_vm *vm)
{
	return start(vm, false);
}

int vmm_vm_start_paused(struct vmm_vm *vm)
{
	return start(vm, true);
}

void vmm_spin_while(bool (*waiting)(const void *arg), const void *arg)
{
	if (sched_getscheduler(0) != SCHED_OTHER)
		return;
	uint64_t until = util_now_us() + VMM_SPIN_US;
	while (waiting(arg) && util_now_us() < until)
		sched_yield();
}

static bool parking(const void *arg)
{
	const struct vmm_vm *vm = arg;
	return atomic_load(&vm->vcpus_paused) < vm->nvcpus;
}

static void pause_vm(struct vmm_vm *vm, bool saving)
{
	pthread_mutex_lock(&vm->lock);
	int st = atomic_load(&vm->state);
	if (saving && vm->accel == VMM_ACCEL_KVM && (st == VM_RUNNING || st == VM_PAUSED)) {
		for (unsigned i = 0; i < vm->nvcpus; i++)
			atomic_store(&vm->vcpus[i].presave, VMM_PRESAVE_WANTED);
		pthread_cond_broadcast(&vm->cond); /* parked already: read it now */
	}
	if (st == VM_RUNNING) {
		vm->pause_requested = true;
		atomic_store(&vm->state, VM_PAUSED);
		pthread_mutex_unlock(&vm->lock);
		for (unsigned i = 0; i < vm->nvcpus; i++) {
			vm->vcpus[i].run->immediate_exit = 1;
			pthread_kill(vm->vcpus[i].thread, VCPU_KICK_SIGNAL);
		}
		if (saving) /* the caller goes on at once: not a throttle's hold (vm.h) */
			vmm_spin_while(parking, vm);
		pthread_mutex_lock(&vm->lock);
	}
	/* paused here or already: every vCPU parked and no device working
	 * (at once unless another pause is still under way) */
	while ((vm->vcpus_paused < vm->nvcpus || vm->io_busy) &&
	       atomic_load(&vm->state) == VM_PAUSED)
		pthread_cond_wait(&vm->cond, &vm->lock);
	bool paused = atomic_load(&vm->state) == VM_PAUSED;
	pthread_mutex_unlock(&vm->lock);
	/* the VM's own state (interrupt controllers, PIT, kvmclock) read now,
	 * as the vCPUs read theirs, not after the last pages */
	if (saving && paused && vm->accel == VMM_ACCEL_KVM)
		vmm_vm_presave_chips(vm);
}

void vmm_vm_pause(struct vmm_vm *vm)
{
	pause_vm(vm, false);
}

void vmm_vm_pause_saving(struct vmm_vm *vm)
{
	pause_vm(vm, true);
}

bool vmm_vm_io_begin(struct vmm_vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	bool run = atomic_load(&vm->state) == VM_RUNNING;
	if (run)
		vm->io_busy++;
	pthread_mutex_unlock(&vm->lock);
	return run;
}

void vmm_vm_io_end(struct vmm_vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	vm->io_busy--;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
}

void vmm_vm_resume(struct vmm_vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	if (atomic_load(&vm->state) == VM_PAUSED) {
		/* a state read still in progress ends first: none is left to
		 * finish into the next pause */
		for (unsigned i = 0; i < vm->nvcpus; i++) {
			while (atomic_load(&vm->vcpus[i].presave) == VMM_PRESAVE_BUSY)
				pthread_cond_wait(&vm->cond, &vm->lock);
			atomic_store(&vm->vcpus[i].presave, VMM_PRESAVE_NONE);
		}
		vm->presaved_chips.len = 0;
		atomic_store(&vm->state, VM_RUNNING);
		vm->pause_requested = false;
		pthread_cond_broadcast(&vm->cond);
	}
	pthread_mutex_unlock(&vm->lock);
}

enum vmm_run_state vmm_vm_wait(struct vmm_vm *vm)
{
	for (unsigned i = 0; i < vm->nvcpus; i++) {
		if (vm->vcpus[i].started) {
			pthread_join(vm->vcpus[i].thread, NULL);
			vm->vcpus[i].started = false;
		}
	}
	return (enum vmm_run_state)atomic_load(&vm->state);
}

/* ---- dirty logging ---- */

static int kvm_log_flags(struct vmm_vm *vm, uint32_t flags)
{
	for (unsigned i = 0; i < vm->mem.nslots; i++) {
		struct kvm_userspace_memory_region r = {
			.slot = i,
			.flags = flags,
			.guest_phys_addr = vm->mem.slots[i].gpa,
			.memory_size = vm->mem.slots[i].size,
			.userspace_addr = (uint64_t)(uintptr_t)vm->mem.slots[i].host,
		};
		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
			return -errno;
	}
	return 0;
}

int vmm_vm_dirty_start(struct vmm_vm *vm, char *err, size_t errlen)
{
	int ret = vmm_mem_dirty_start(&vm->mem);

	if (ret < 0) {
		snprintf(err, errlen, "dirty log: %s", strerror(-ret));
		return ret;
	}
	if (vm->accel == VMM_ACCEL_SOFT) {
		struct softcpu *c = vm->vcpus[0].soft;
		c->dirty_pages = vm->mem.dirty_pages;
		atomic_store(&c->dirty, vm->mem.dirty_map);
		return 0;
	}
	if ((ret = kvm_log_flags(vm, KVM_MEM_LOG_DIRTY_PAGES)) < 0) {
		vmm_mem_dirty_stop(&vm->mem);
		snprintf(err, errlen, "KVM_MEM_LOG_DIRTY_PAGES: %s", strerror(-ret));
	}
	return ret;
}

uint64_t vmm_vm_dirty_harvest(struct vmm_vm *vm, uint64_t *out)
{
	if (vm->accel == VMM_ACCEL_KVM) {
		/* KVM's per-slot log into the device log, then one harvest */
		for (unsigned i = 0; i < vm->mem.nslots; i++) {
			uint64_t pages = vm->mem.slots[i].size / VMM_PAGE_SIZE;
			uint64_t first = vm->mem.slots[i].gpa / VMM_PAGE_SIZE;
			uint64_t *bm = calloc((pages + 63) / 64, sizeof(uint64_t));
			struct kvm_dirty_log l = { .slot = i, .dirty_bitmap = bm };
			if (!bm || ioctl(vm->vm_fd, KVM_GET_DIRTY_LOG, &l) < 0) {
				/* cannot tell: everything in the slot is dirty */
				vmm_mem_mark_dirty(&vm->mem, vm->mem.slots[i].gpa,
				                   vm->mem.slots[i].size);
				free(bm);
				continue;
			}
			if (first % 64 == 0)
				vmm_mem_merge_dirty(&vm->mem, first, bm, pages);
			else
				for (uint64_t p = 0; p < pages; p++)
					if (bm[p / 64] >> (p % 64) & 1)
						vmm_mem_mark_dirty(&vm->mem,
						                   vm->mem.slots[i].gpa +
						                           p * VMM_PAGE_SIZE,
						                   VMM_PAGE_SIZE);
			free(bm);
		}
	}
	return vmm_mem_dirty_harvest(&vm->mem, out);
}

int vmm_vm_dirty_clear(struct vmm_vm *vm, const uint64_t *bm, uint64_t from, uint64_t to)
{
	if (!vm->dirty_manual || vm->accel != VMM_ACCEL_KVM)
		return 0;
	for (unsigned i = 0; i < vm->mem.nslots; i++) {
		uint64_t first = vm->mem.slots[i].gpa / VMM_PAGE_SIZE;
		uint64_t end = first + vm->mem.slots[i].size / VMM_PAGE_SIZE;
		uint64_t a = from > first ? from : first, b = to < end ? to : end;
		if (a >= b)
			continue;
		a &= ~63ull; /* a word of the bitmap at a time; slots start on one */
		if (b < end)
			b = (b + 63) & ~63ull;
		if (b > end)
			b = end;
		struct kvm_clear_dirty_log c = {
			.slot = i,
			.num_pages = (uint32_t)(b - a),
			.first_page = a - first,
			.dirty_bitmap = (void *)(uintptr_t)(bm + a / 64),
		};
		if (ioctl(vm->vm_fd, KVM_CLEAR_DIRTY_LOG, &c) < 0) {
			int e = errno;
			log_error("KVM_CLEAR_DIRTY_LOG slot %u: %s", i, strerror(e));
			return -e;
		}
	}
	return 0;
}

void vmm_vm_dirty_stop(struct vmm_vm *vm)
{
	if (vm->accel == VMM_ACCEL_SOFT)
		atomic_store(&vm->vcpus[0].soft->dirty, NULL);
	else
		kvm_log_flags(vm, 0);
	vmm_mem_dirty_stop(&vm->mem);
}
