/* vmx: one VM per process (DESIGN.md). `vmx --config DIR/NAME.vmx` boots it
 * in the foreground; `--check` validates the configuration and loads the
 * kernel into scratch memory without KVM.
 *
 * Exit status: the guest's power-off status (0..99) when it powers off;
 * 101 bad configuration or kernel, 102 KVM or host failure, 103 the guest
 * crashed (triple fault, failed entry, ...), 104 stopped by a signal. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "boot.h"
#include "control.h"
#include "disk.h"
#include "log.h"
#include "power.h"
#include "snapshot.h"
#include "uart.h"
#include "virtio_blk.h"
#include "virtio_net.h"
#include "util.h"
#include "lease.h"
#include "migrate/migrate.h"
#include "replica/replica.h"
#include "monitor.h"
#include "netns.h"
#include "vm.h"
#include "vmcfg.h"

#define EXIT_CONFIG   101
#define EXIT_HOST     102
#define EXIT_CRASHED  103
#define EXIT_SIGNAL   104
#define EXIT_LOCKED   105
#define EXIT_INCOMING 106
#define EXIT_FT_LOST  VMX_EXIT_FT_LOST /* fault tolerance: the other copy runs the VM now */

#define VIRTIO_MMIO_BASE 0xd0000000ull /* in the 32-bit MMIO hole */
#define VIRTIO_GSI_BASE  5

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: vmx --config DIR/NAME.vmx [--check | --restore STATE]\n"
	        "  -c, --config FILE   the VM's configuration (libconfig .vmx)\n"
	        "      --check         validate it and load the kernel without KVM, then exit\n"
	        "      --restore FILE  start from a state saved through the control socket\n"
	        "      --accel A       kvm, soft (the software CPU) or auto (default: KVM when\n"
	        "                      /dev/kvm opens, else soft; also $VMK_ACCEL)\n"
	        "      --lock-host ID  hold the VM's datastore lock as host ID while it runs\n"
	        "      --lock-addr A   the address the lock names (for other hosts' messages)\n"
	        "      --monitor       run the VM in a child and record how it ended in vmx.exit\n"
	        "      --incoming ADDR receive the VM from a migration source on ADDR (a port\n"
	        "                      the kernel picks, shown by --control status)\n"
	        "      --incoming-token-file F  the token the source must present\n"
	        "      --ft-secondary  with --incoming: be the fault-tolerance secondary, kept\n"
	        "                      by the primary's checkpoints, live once it is lost\n"
	        "      --netns NAME    listen for it inside the network namespace NAME (the\n"
	        "                      vMotion netstack, /run/netns/NAME)\n"
	        "      --tap NAME      the tap of the next NIC (instead of the .vmx's; hostd\n"
	        "                      makes one per NIC on its port group)\n"
	        "      --disk FILE     the file of the next disk (instead of the .vmx's): an FT\n"
	        "                      secondary's own copy, which the .vmx names once it is live\n"
	        "      --run-dir DIR   where vmx.sock and vmx.exit go (default: the VM's "
	        "directory;\n"
	        "                      hostd uses a directory of its own: the VM's may be shared)\n"
	        "  -h, --help          this help\n"
	        "       vmx --control DIR/vmx.sock status|stats|pause|resume|power-off|save PATH\n"
	        "                      drive a running VM through its control socket\n"
	        "exit status: the guest's power-off status (0..99); 101 bad configuration or\n"
	        "kernel, 102 KVM/host failure, 103 guest crashed, 104 stopped by a signal,\n"
	        "105 the VM's datastore lock is held by another host, 106 an incoming migration\n"
	        "failed (the VM runs on at its source), 107 fault tolerance: the secondary won\n"
	        "the generation record and runs the VM\n");
}

static void on_poweroff(void *arg, int status)
{
	struct vmm_vm *vm = arg;
	char why[64];

	snprintf(why, sizeof(why), "guest powered off with status %d", status);
	vm->power_status = status;
	vmm_vm_stop(vm, VM_POWERED_OFF, why);
}

static struct vmm_vm *signal_vm;

/* ---- the control socket's view of the VM ---- */

struct vmx_ctx {
	struct vmm_vm *vm;
	const struct vmcfg *cfg;
	uint64_t start_ms;
	struct vmx_lease *lease; /* NULL: no datastore lock held */
	struct migrate_src mig;
	struct ft_primary ft;      /* fault tolerance, as the primary */
	struct ft_standby standby; /* as the secondary (--ft-secondary) */
	bool secondary;
	uint16_t incoming_port; /* --incoming: where the source connects */
	atomic_bool released;   /* hostd said it has what it needs (power off) */
};

static int ctl_status(void *arg, Vmx__StatusInfo *o)
{
	struct vmx_ctx *x = arg;

	o->name = x->cfg->name;
	/* parked before the hand-over, an incoming VM is not yet a paused
	 * one: hostd takes "paused" for a VM that runs here */
	enum vmm_run_state st =
	        x->incoming_port ? VM_CREATED : (enum vmm_run_state)atomic_load(&x->vm->state);
	o->state = (char *)vmm_run_state_name(st);
	o->pid = (int32_t)getpid();
	o->uptime_ms = util_now_ms() - x->start_ms;
	o->exit_reason = x->vm->exit_reason;
	o->power_status = x->vm->power_status;
	o->incoming_port = x->incoming_port;
	o->cpu_model = x->vm->cpumodel.name;
	o->n_cpu_features = x->vm->cpumodel.nfeatures;
	o->cpu_features = (char **)x->vm->cpumodel.features;
	static char *tops[VMCFG_MAX_DISKS];
	unsigned nd = 0;
	for (unsigned i = 0; i < x->vm->ndevs && nd < VMCFG_MAX_DISKS; i++)
		if (strcmp(x->vm->devs[i]->ops->name, "virtio-blk") == 0)
			tops[nd++] = (char *)vmm_virtio_blk_top(x->vm->devs[i]);
	o->disk_tops = tops;
	o->n_disk_tops = nd;
	return 0;
}

/* Fault tolerance owns the VM's pauses, its dirty log and its disks while
 * it protects it: other operations wait for ft-stop. */
static bool ft_busy(struct vmx_ctx *x, const char **why)
{
	if (!ft_primary_active(&x->ft))
		return false;
	*why = "fault tolerance protects this VM: stop it first (ft-stop)";
	return true;
}

/* An incoming VM: its state arrives, or it waits parked for the hand-over
 * (exactly one host runs it): nothing may run, save or change it here. */
static bool incoming_busy(struct vmx_ctx *x, const char **why)
{
	if (!x->incoming_port)
		return false;
	*why = "the VM is still arriving by migration: it runs here once the source hands it "
	       "over";
	return true;
}

static bool migrating(struct vmx_ctx *x)
{
	struct migrate_progress pr;

	migrate_src_progress(&x->mig, &pr);
	return pr.phase != MIG_IDLE && pr.phase != MIG_DONE && pr.phase != MIG_FAILED &&
	       pr.phase != MIG_CANCELLED;
}

/* The namespace of the netstack a stream leaves from: an fd, -1 for vmx's
 * own ("" asked), or -2 with *why set. */
static int open_netstack(const char *netns, const char **why)
{
	static __thread char err[300];
	int fd;

	if (!netns[0])
		return -1;
	if ((fd = netns_open(netns)) < 0) {
		snprintf(err, sizeof(err), "netstack namespace %s: %s", netns, strerror(-fd));
		*why = err;
		return -2;
	}
	return fd;
}

static int ctl_migrate_send(void *arg, const Vmx__MigrateSendRequest *r, const char **why)
{
	struct vmx_ctx *x = arg;
	struct migrate_params p = { .nsfd = -1 };
	static char err[300];

	if (atomic_load(&x->vm->state) != VM_RUNNING) {
		*why = "the VM is not running";
		return 5;
	}
	if (ft_busy(x, why))
		return 5;
	if ((p.nsfd = open_netstack(r->netns, why)) == -2)
		return 4;
	snprintf(p.host, sizeof(p.host), "%s", r->host);
	p.port = (uint16_t)r->port;
	snprintf(p.token, sizeof(p.token), "%s", r->token);
	p.downtime_ms = r->downtime_ms;
	p.max_bandwidth = r->max_bandwidth_mibps;
	p.converge_timeout = r->converge_timeout_s;
	p.streams = r->streams;
	p.compress = r->compress;
	p.verify_pages = r->verify_pages;
	p.storage = r->storage;
	snprintf(p.serial_log, sizeof(p.serial_log), "%s", x->cfg->serial_log);
	if (migrate_src_start(&x->mig, x->vm, x->lease, &p, err, sizeof(err)) < 0) {
		if (p.nsfd >= 0)
			close(p.nsfd);
		*why = err;
		return 5;
	}
	return 0;
}

static int ctl_migrate_status(void *arg, Vmx__MigrateInfo *o)
{
	struct vmx_ctx *x = arg;
	static __thread struct migrate_progress pr;

	migrate_src_progress(&x->mig, &pr);
	o->phase = (char *)migrate_phase_name(pr.phase);
	o->iteration = pr.iteration;
	o->remaining_bytes = pr.remaining_bytes;
	o->dirty_rate = pr.dirty_rate;
	o->bandwidth = pr.bandwidth;
	o->expected_downtime_ms = pr.expected_downtime_ms;
	o->transferred = pr.transferred;
	o->throttle_pct = pr.throttle_pct;
	o->total_ms = pr.total_ms;
	o->downtime_ms = pr.downtime_ms;
	o->error = pr.error;
	return 0;
}

static int ctl_migrate_cancel(void *arg, const char **why)
{
	struct vmx_ctx *x = arg;

	(void)why;
	migrate_src_cancel(&x->mig);
	return 0;
}

static int ctl_pause(void *arg, const char **why)
{
	struct vmx_ctx *x = arg;
	if (ft_busy(x, why))
		return 5;

	if (atomic_load(&x->vm->state) != VM_RUNNING) {
		*why = "the VM is not running";
		return 5;
	}
	vmm_vm_pause(x->vm);
	return 0;
}

static int ctl_resume(void *arg, const char **why)
{
	struct vmx_ctx *x = arg;
	if (ft_busy(x, why) || incoming_busy(x, why))
		return 5;

	if (atomic_load(&x->vm->state) != VM_PAUSED) {
		*why = "the VM is not paused";
		return 5;
	}
	vmm_vm_resume(x->vm);
	return 0;
}

static int ctl_power_off(void *arg, int hard, const char **why)
{
	struct vmx_ctx *x = arg;

	(void)hard;
	(void)why;
	atomic_store(&x->released, true); /* after a migration: hostd has read the result */
	vmm_vm_stop(x->vm, VM_POWERED_OFF, "powered off by hostd");
	return 0;
}

static int ctl_stats(void *arg, Vmx__StatsInfo *o)
{
	struct vmx_ctx *x = arg;

	for (unsigned i = 0; i < x->vm->nvcpus; i++)
		o->exits += x->vm->vcpus[i].exits;
	o->ram_bytes = x->vm->mem.ram_bytes;
	o->vcpus = x->vm->nvcpus;
	return 0;
}

/* Pauses the VM and writes its state to path (via path.tmp + rename); the
 * VM stays paused: hostd resumes it or powers it off. */
static int ctl_save(void *arg, const char *path, const char **why)
{
	struct vmx_ctx *x = arg;
	static char msg[700];
	char tmp[4200];
	int st = atomic_load(&x->vm->state), fd, ret;
	if (ft_busy(x, why) || incoming_busy(x, why))
		return 5;

	if (st != VM_RUNNING && st != VM_PAUSED) {
		*why = "the VM is not running";
		return 5;
	}
	vmm_vm_pause(x->vm);
	for (unsigned i = 0; i < x->vm->ndevs; i++)
		if (strcmp(x->vm->devs[i]->ops->name, "uart") == 0)
			vmm_uart_flush(x->vm->devs[i]);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		snprintf(msg, sizeof(msg), "cannot write %s: %s", tmp, strerror(errno));
		*why = msg;
		return 1;
	}
	struct vmm_stream s;
	vmm_stream_fd(&s, &fd);
	ret = vmm_vm_save(x->vm, &s, msg, sizeof(msg));
	if (ret == 0 && (fsync(fd) < 0 || rename(tmp, path) < 0)) {
		snprintf(msg, sizeof(msg), "%s: %s", path, strerror(errno));
		ret = -errno;
	}
	close(fd);
	if (ret < 0) {
		unlink(tmp);
		*why = msg;
		return 1;
	}
	log_info("state saved to %s (%llu bytes)", path, (unsigned long long)s.bytes);
	return 0;
}

/* The VM's disks (virtio-blk devices), in configuration order. */
static unsigned disks_of(struct vmx_ctx *x, struct vmm_device **out, unsigned max)
{
	unsigned n = 0;
	for (unsigned i = 0; i < x->vm->ndevs && n < max; i++)
		if (strcmp(x->vm->devs[i]->ops->name, "virtio-blk") == 0)
			out[n++] = x->vm->devs[i];
	return n;
}

static int ctl_disk_snapshot(void *arg, const Vmx__DiskSnapshotRequest *r, const char **why)
{
	struct vmx_ctx *x = arg;
	static char msg[700];
	struct vmm_device *disks[VMCFG_MAX_DISKS];
	unsigned n = disks_of(x, disks, VMCFG_MAX_DISKS), done = 0;
	int st = atomic_load(&x->vm->state), status = 0;
	if (ft_busy(x, why) || incoming_busy(x, why))
		return 5;

	if (st != VM_RUNNING && st != VM_PAUSED) {
		*why = "the VM is not running";
		return 5;
	}
	if (r->n_deltas != n) {
		snprintf(msg, sizeof(msg), "%zu deltas for %u disks: one per disk (\"\" skips one)",
		         r->n_deltas, n);
		*why = msg;
		return 2;
	}
	vmm_vm_pause(x->vm); /* no request in flight while the chains change */
	for (; done < n && status == 0; done++)
		if (r->deltas[done][0] &&
		    vmm_virtio_blk_snapshot(disks[done], r->deltas[done], msg, sizeof(msg)) < 0)
			status = 1;
	if (status) { /* undo: the layers added so far are empty */
		char e2[300];
		for (unsigned i = 0; i + 1 < done; i++)
			if (r->deltas[i][0] &&
			    (vmm_virtio_blk_consolidate(disks[i], e2, sizeof(e2)) < 0 ||
			     vmm_virtio_blk_consolidate_finish(disks[i], e2, sizeof(e2)) < 0))
				log_error("undoing the snapshot of disk %u: %s", i, e2);
		*why = msg;
	} else {
		log_info("disk snapshot: %u disks on new layers", n);
	}
	if (st == VM_RUNNING)
		vmm_vm_resume(x->vm);
	return status;
}

static int ctl_disk_consolidate(void *arg, const Vmx__DiskConsolidateRequest *r, const char **why)
{
	struct vmx_ctx *x = arg;
	static char msg[700];
	struct vmm_device *disks[VMCFG_MAX_DISKS];
	unsigned n = disks_of(x, disks, VMCFG_MAX_DISKS);
	int st = atomic_load(&x->vm->state), status = 0;
	if (ft_busy(x, why) || incoming_busy(x, why))
		return 5;

	if (st != VM_RUNNING && st != VM_PAUSED) {
		*why = "the VM is not running";
		return 5;
	}
	for (size_t i = 0; i < r->n_disks; i++)
		if (r->disks[i] >= n) {
			snprintf(msg, sizeof(msg), "disk %u: the VM has %u disks", r->disks[i], n);
			*why = msg;
			return 2;
		}
	/* the copy while the guest runs; the pause only for what it wrote since
	 * (the disks copied before a failure are finished all the same) */
	size_t copied = 0;
	for (; copied < r->n_disks && status == 0; copied++)
		if (vmm_virtio_blk_consolidate(disks[r->disks[copied]], msg, sizeof(msg)) < 0)
			status = 1;
	if (status)
		copied--;
	vmm_vm_pause(x->vm);
	for (size_t i = 0; i < copied; i++) {
		char e2[300];
		if (vmm_virtio_blk_consolidate_finish(disks[r->disks[i]], e2, sizeof(e2)) < 0 &&
		    !status) {
			snprintf(msg, sizeof(msg), "%s", e2);
			status = 1;
		}
	}
	if (status)
		*why = msg;
	if (st == VM_RUNNING)
		vmm_vm_resume(x->vm);
	return status;
}

static const char *lock_host; /* --lock-host (below) */

/* <dir>/<name>.ftgen: the FT generation record, on the VM's datastore */
static void ft_gen_path(const struct vmcfg *c, char *out, size_t len)
{
	snprintf(out, len, "%s/%s.ftgen", c->dir, c->name);
}

static void ft_owner(char *out, size_t len)
{
	if (lock_host) {
		snprintf(out, len, "%s", lock_host);
	} else if (gethostname(out, len) < 0) {
		snprintf(out, len, "?");
	}
	out[len - 1] = '\0';
}

static int ctl_ft_start(void *arg, const Vmx__FtStartRequest *r, const char **why)
{
	struct vmx_ctx *x = arg;
	struct ft_params p = { .nsfd = -1 };
	static char err[300];

	if (atomic_load(&x->vm->state) != VM_RUNNING) {
		*why = "the VM is not running";
		return 5;
	}
	if (migrating(x)) {
		*why = "the VM is being migrated";
		return 5;
	}
	/* the disks' writes travel with the epochs to the secondary's own
	 * copies; a snapshot chain's frozen layers are not there */
	struct vmm_device *disks[VMCFG_MAX_DISKS];
	unsigned nd = disks_of(x, disks, VMCFG_MAX_DISKS);
	for (unsigned i = 0; i < nd; i++)
		if (vmm_disk_is_delta_name(vmm_virtio_blk_top(disks[i]))) {
			snprintf(err, sizeof(err),
			         "disk %u is on a snapshot layer (%s): fault tolerance copies "
			         "whole disks; remove the VM's snapshots first",
			         i, vmm_virtio_blk_top(disks[i]));
			*why = err;
			return 5;
		}
	if ((p.nsfd = open_netstack(r->netns, why)) == -2)
		return 4;
	snprintf(p.host, sizeof(p.host), "%s", r->host);
	p.port = (uint16_t)r->port;
	snprintf(p.token, sizeof(p.token), "%s", r->token);
	p.epoch_ms = r->epoch_ms;
	p.detect_ms = r->detect_ms;
	ft_gen_path(x->cfg, p.gen_path, sizeof(p.gen_path));
	ft_owner(p.owner, sizeof(p.owner));
	int ret = ft_primary_start(&x->ft, x->vm, &p, err, sizeof(err));
	if (ret < 0) {
		if (p.nsfd >= 0)
			close(p.nsfd);
		*why = err;
		return ret == -EINVAL ? 2 : 5;
	}
	return 0;
}

static int ctl_ft_status(void *arg, Vmx__FtInfo *o)
{
	struct vmx_ctx *x = arg;
	static __thread struct ft_stats st;

	if (x->secondary) {
		/* a copy kept for a primary: what it applied */
		pthread_mutex_lock(&x->standby.m);
		bool standby = !x->standby.live;
		uint64_t applied = x->standby.applied, at = x->standby.applied_ms;
		uint64_t gen = x->standby.generation;
		uint32_t detect = x->standby.detect_ms;
		pthread_mutex_unlock(&x->standby.m);
		if (standby) {
			o->phase = "standby";
			o->epoch = o->acked = applied;
			o->generation = gen;
			o->detect_ms = detect;
			uint64_t now = util_now_ms();
			o->last_ack_age_ms = at && now > at ? now - at : 0;
			o->error = "";
			return 0;
		}
	}
	ft_primary_status(&x->ft, &st);
	o->phase = (char *)ft_phase_name(st.phase);
	o->epoch = st.epoch;
	o->acked = st.acked;
	o->generation = st.generation;
	o->bytes = st.bytes;
	o->pause_us_last = st.pause_us_last;
	o->pause_us_max = st.pause_us_max;
	o->stretched = st.stretched;
	o->error = st.error;
	o->pause_us_p50 = st.pause_us_p50;
	o->pause_us_p99 = st.pause_us_p99;
	o->output_us_p50 = st.output_us_p50;
	o->output_us_p99 = st.output_us_p99;
	o->protected_ms = st.protected_ms;
	o->last_ack_age_ms = st.last_ack_age_ms;
	o->lag_ms = st.lag_ms;
	o->detect_ms = st.detect_ms;
	return 0;
}

static int ctl_ft_stop(void *arg, const char **why)
{
	struct vmx_ctx *x = arg;

	/* a secondary stops only if it has not decided to go live; once it
	 * has, it is a primary (and may protect the VM in turn) */
	if (x->secondary && ft_standby_abandon(&x->standby) == 0)
		return 0;
	if (x->secondary && !ft_primary_active(&x->ft)) {
		*why = "this secondary has taken over and runs the VM";
		return 5;
	}
	ft_primary_stop(&x->ft);
	return 0;
}

static const struct vmm_control_ops control_ops = {
	.status = ctl_status,
	.pause = ctl_pause,
	.resume = ctl_resume,
	.power_off = ctl_power_off,
	.stats = ctl_stats,
	.save = ctl_save,
	.migrate_send = ctl_migrate_send,
	.migrate_status = ctl_migrate_status,
	.migrate_cancel = ctl_migrate_cancel,
	.ft_start = ctl_ft_start,
	.ft_status = ctl_ft_status,
	.ft_stop = ctl_ft_stop,
	.disk_snapshot = ctl_disk_snapshot,
	.disk_consolidate = ctl_disk_consolidate,
};

static void *signal_thread(void *arg)
{
	sigset_t *set = arg;
	int sig = 0;

	sigwait(set, &sig);
	if (signal_vm) {
		char why[64];
		snprintf(why, sizeof(why), "stopped by signal %d", sig);
		signal_vm->power_status = -sig;
		vmm_vm_stop(signal_vm, VM_POWERED_OFF, why);
	}
	return NULL;
}

static char *guest_cmdline(const struct vmcfg *c);

/* --check: everything that does not need KVM. */
static int check(const struct vmcfg *c)
{
	struct vmm_mem m;
	struct vmm_boot b;
	char err[600];
	int ret;

	ret = vmm_mem_init(&m, (uint64_t)c->memory_mib << 20, false);
	if (ret < 0) {
		fprintf(stderr, "vmx: %s: %u MiB of guest memory: %s\n", c->path, c->memory_mib,
		        strerror(-ret));
		return EXIT_HOST;
	}
	char *cl = guest_cmdline(c);
	ret = cl ? vmm_boot_load(&m, c->kernel, c->initrd, cl, &b, err, sizeof(err)) : -ENOMEM;
	free(cl);
	if (ret < 0) {
		vmm_mem_free(&m);
		fprintf(stderr, "vmx: %s\n", err);
		return EXIT_CONFIG;
	}
	/* the disks open as they would for a boot */
	struct vmm_bus bus = { .mem = &m };
	for (unsigned i = 0; i < c->ndisks; i++) {
		struct vmm_device *d;
		if (vmm_virtio_blk_create(&d, &bus, VIRTIO_MMIO_BASE, VIRTIO_GSI_BASE,
		                          c->disks[i].path, c->disks[i].readonly, "", err,
		                          sizeof(err)) < 0) {
			vmm_mem_free(&m);
			fprintf(stderr, "vmx: %s\n", err);
			return EXIT_CONFIG;
		}
		d->ops->destroy(d);
	}
	vmm_mem_free(&m);
	printf("vm %s: %u MiB, %u vCPUs, %s entry 0x%llx, %u disks, %u nics\n", c->name,
	       c->memory_mib, c->vcpus, b.kind == BOOT_PVH ? "PVH" : "Linux 64-bit",
	       (unsigned long long)b.entry, c->ndisks, c->nnics);
	return 0;
}

static const char *restore_path; /* --restore: start from a saved state */
static const char *accel_name;   /* --accel */
static const char *lock_host;    /* --lock-host */
static const char *lock_addr;    /* --lock-addr */
static const char *run_dir;    /* --run-dir: control socket and exit file (default: the VM's dir) */
static const char *incoming;   /* --incoming ADDR: receive the VM from a migration source */
static const char *token_file; /* --incoming-token-file: the 64-hex token the source must show */
static bool ft_secondary;      /* --ft-secondary: --incoming takes FT checkpoints instead */
static const char *incoming_netns;           /* --netns: the netstack (namespace) to listen in */
static const char *nic_taps[VMCFG_MAX_NICS]; /* --tap, in NIC order: replace the .vmx's taps */
static unsigned nnic_taps;
/* --disk, in disk order: replace the .vmx's files (an FT secondary's own
 * copies); the .vmx names them once that secondary runs the VM */
static const char *disk_files[VMCFG_MAX_DISKS];
static unsigned ndisk_files;
#define INCOMING_WAIT_MS 120000

/* The guest's command line: the configured one plus, per virtio-mmio
 * device, "virtio_mmio.device=512@ADDR:GSI" (Linux's syntax, which the
 * micro guests read too). malloc'd. */
static char *guest_cmdline(const struct vmcfg *c)
{
	size_t cap = strlen(c->cmdline) + 64 * (c->ndisks + c->nnics + 1);
	char *s = malloc(cap);

	if (!s)
		return NULL;
	int n = snprintf(s, cap, "%s", c->cmdline);
	for (unsigned i = 0; i < c->ndisks + c->nnics; i++)
		n += snprintf(s + n, cap - (size_t)n, " virtio_mmio.device=512@0x%llx:%u",
		              (unsigned long long)(VIRTIO_MMIO_BASE + VIRTIO_MMIO_SIZE * i),
		              VIRTIO_GSI_BASE + i);
	return s;
}

/* NICs follow the disks in the MMIO window. Each is a tap named in the
 * .vmx (networking attaches taps to port groups). */
static int add_nics(struct vmm_vm *vm, const struct vmcfg *c, struct vmm_device **nics, char *err,
                    size_t errlen)
{
	for (unsigned i = 0; i < c->nnics; i++) {
		unsigned slot = c->ndisks + i;
		const char *tap = i < nnic_taps ? nic_taps[i] : c->nics[i].tap;
		if (!tap[0]) {
			snprintf(err, errlen,
			         "nics[%u] (port group %s) has no tap device to attach to", i,
			         c->nics[i].portgroup);
			return -EINVAL;
		}
		int fd = vmm_tap_open(tap, err, errlen);
		if (fd < 0)
			return fd;
		int ret = vmm_virtio_net_create(&nics[i], &vm->bus,
		                                VIRTIO_MMIO_BASE + VIRTIO_MMIO_SIZE * slot,
		                                VIRTIO_GSI_BASE + slot, fd, c->nics[i].mac);
		if (ret < 0) {
			close(fd);
			return ret;
		}
		if ((ret = vmm_vm_add_device(vm, nics[i])) < 0) {
			nics[i]->ops->destroy(nics[i]);
			snprintf(err, errlen, "too many devices");
			return ret;
		}
	}
	return 0;
}

struct rx_loop {
	struct vmm_vm *vm;
	struct vmm_device *nics[VMCFG_MAX_NICS];
	unsigned n;
};

/* Delivers received frames while the VM runs (vCPUs do transmit). */
static void *rx_main(void *arg)
{
	struct rx_loop *l = arg;
	struct pollfd p[VMCFG_MAX_NICS];

	for (unsigned i = 0; i < l->n; i++)
		p[i] = (struct pollfd){ .fd = vmm_virtio_net_fd(l->nics[i]), .events = POLLIN };
	for (;;) {
		int st = atomic_load(&l->vm->state);
		if (st == VM_POWERED_OFF || st == VM_CRASHED)
			break;
		if (poll(p, l->n, 100) <= 0)
			continue;
		/* never while paused: a state being saved (a migration's last
		 * pass, an FT epoch) must not miss a frame its rings show */
		if (!vmm_vm_io_begin(l->vm)) {
			usleep(1000);
			continue;
		}
		for (unsigned i = 0; i < l->n; i++)
			if (p[i].revents & POLLIN)
				vmm_virtio_net_rx(l->nics[i]);
		vmm_vm_io_end(l->vm);
		/* a frame with no guest buffer stays readable: do not spin on it */
		usleep(200);
	}
	return NULL;
}

/* An FT secondary that went live runs on its own copies of the disks
 * (--disk): the .vmx names them from now on, as a later power on must not
 * find the former primary's, which lack the writes since the failover. */
static void name_own_disks(const struct vmcfg *c)
{
	const char *paths[VMCFG_MAX_DISKS];
	char *text = NULL, *out = NULL;
	size_t tl = 0, ol = 0, dl = strlen(c->dir);
	char err[300] = "";
	int ret;

	if (!ndisk_files)
		return;
	for (unsigned i = 0; i < c->ndisks; i++) {
		const char *p = c->disks[i].path;
		/* relative when in the VM's directory, which may move */
		paths[i] = util_path_in(p, c->dir) ? p + dl + 1 : p;
	}
	/* a few tries: a datastore that hiccups must not leave the .vmx
	 * naming disks that lack the writes from now on */
	for (int k = 0; k < 5; k++) {
		if (k)
			usleep(100 * 1000);
		free(text);
		free(out);
		text = out = NULL;
		if ((ret = util_read_file(c->path, 1u << 20, &text, &tl)) < 0)
			snprintf(err, sizeof(err), "reading it: %s", strerror(-ret));
		else if ((ret = vmcfg_set_disk_paths(text, paths, c->ndisks, &out, &ol, err,
		                                     sizeof(err))) == 0 &&
		         (ret = util_write_file_atomic(c->path, out, ol, 0644)) < 0)
			snprintf(err, sizeof(err), "writing it: %s", strerror(-ret));
		if (ret == 0 || ret == -EINVAL)
			break;
	}
	if (ret < 0)
		log_error("vm %s: FT: %s still names the former primary's disks (%s): power it "
		          "on only with this copy's (%s...)",
		          c->name, c->path, err, paths[0]);
	else
		log_info("vm %s: FT: %s names this copy's disks now", c->name, c->path);
	free(text);
	free(out);
}

static int add_disks(struct vmm_vm *vm, const struct vmcfg *c, char *err, size_t errlen)
{
	for (unsigned i = 0; i < c->ndisks; i++) {
		struct vmm_device *d;
		char serial[24];
		snprintf(serial, sizeof(serial), "vmk-%.8s-%u", c->uuid, i);
		int ret = vmm_virtio_blk_create(
		        &d, &vm->bus, VIRTIO_MMIO_BASE + VIRTIO_MMIO_SIZE * i, VIRTIO_GSI_BASE + i,
		        c->disks[i].path, c->disks[i].readonly, serial, err, errlen);
		if (ret < 0)
			return ret;
		if ((ret = vmm_vm_add_device(vm, d)) < 0) {
			d->ops->destroy(d);
			snprintf(err, errlen, "too many devices");
			return ret;
		}
	}
	return 0;
}

/* An incoming VM's vCPU threads, parked from when its state is loaded
 * until the hand-over: the guest then resumes without a thread to create. */
static int start_parked(struct vmm_vm *vm, bool *parked, char *err, size_t errlen)
{
	int ret = vmm_vm_start_paused(vm);
	if (ret < 0) {
		snprintf(err, errlen, "%s",
		         ret == -ECANCELED ? "the vmx was stopped during the hand-over"
		                           : "cannot start vCPU threads");
		return ret;
	}
	*parked = true;
	return 0;
}

static int run(const struct vmcfg *c)
{
	struct vmm_vm *vm = calloc(1, sizeof(*vm));
	struct vmm_device *uart = NULL, *power = NULL;
	struct vmm_control *control = NULL;
	char *cmdline = NULL;
	struct rx_loop rxl = { 0 };
	pthread_t rx_thread;
	bool rx_started = false, no_control = false;
	struct vmm_boot b;
	char err[600];
	int rc = EXIT_HOST, ret, logfd;
	struct vmx_lease lease = { 0 };
	struct vmx_ctx *ctx = NULL;

	if (!vm)
		return EXIT_HOST;
	/* the control socket goes there once the vCPUs run: a directory that
	 * cannot take it is refused before the guest starts */
	const char *rd = run_dir ? run_dir : c->dir;
	struct stat rst;
	const char *rd_bad = NULL;
	if (stat(rd, &rst) < 0)
		rd_bad = strerror(errno);
	else if (!S_ISDIR(rst.st_mode))
		rd_bad = "not a directory";
	else if (access(rd, W_OK | X_OK) < 0)
		rd_bad = strerror(errno);
	if (rd_bad) {
		fprintf(stderr, "vmx: %s %s: %s (vmx.sock goes there: %s)\n",
		        run_dir ? "--run-dir" : "the VM's directory", rd, rd_bad,
		        run_dir ? "create it, or name another"
		                : "make it writable, or use --run-dir");
		free(vm);
		return EXIT_HOST;
	}
	/* O_NONBLOCK: a FIFO without a reader fails at once (ENXIO) instead
	 * of holding the VM's start; writes block again afterwards */
	logfd = open(c->serial_log,
	             O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK | O_NOCTTY, 0644);
	if (logfd < 0) {
		fprintf(stderr, "vmx: serial log %s: %s%s\n", c->serial_log, strerror(errno),
		        errno == ENXIO ? " (a FIFO nobody reads: start its reader first)" : "");
		free(vm);
		return EXIT_HOST;
	}
	fcntl(logfd, F_SETFL, O_APPEND);
	enum vmm_accel accel;
	char why[200];
	if (vmm_accel_choose(accel_name, &accel, why, sizeof(why)) < 0) {
		fprintf(stderr, "vmx: --accel %s: use kvm, soft or auto\n", accel_name);
		close(logfd);
		free(vm);
		return EXIT_CONFIG;
	}
	if (why[0])
		log_info("no KVM (%s): running on the software CPU", why);
	if (lock_host && !incoming) {
		ret = vmx_lease_take(&lease, c->dir, lock_host, lock_addr ? lock_addr : lock_host,
		                     err, sizeof(err));
		if (ret < 0) {
			fprintf(stderr, "vmx: %s: %s\n", c->name, err);
			close(logfd);
			free(vm);
			return ret == -EBUSY ? EXIT_LOCKED : EXIT_HOST;
		}
	}
	ret = vmm_vm_create(vm, accel, (uint64_t)c->memory_mib << 20, c->vcpus, false, err,
	                    sizeof(err));
	if (ret < 0) {
		fprintf(stderr, "vmx: %s: %s\n", c->name, err);
		goto out;
	}
	cmdline = guest_cmdline(c);
	ret = cmdline ? vmm_boot_load(&vm->mem, c->kernel, c->initrd, cmdline, &b, err, sizeof(err))
	              : -ENOMEM;
	if (ret < 0) {
		fprintf(stderr, "vmx: %s\n", err);
		rc = EXIT_CONFIG;
		goto out;
	}
	if ((ret = vmm_uart_create(&uart, &vm->bus, logfd)) < 0 ||
	    (ret = vmm_vm_add_device(vm, uart)) < 0 ||
	    (ret = vmm_power_create(&power, &vm->bus, on_poweroff, vm)) < 0 ||
	    (ret = vmm_vm_add_device(vm, power)) < 0) {
		fprintf(stderr, "vmx: devices: %s\n", strerror(-ret));
		goto out;
	}
	uart = power = NULL; /* owned by the VM now */
	if (add_disks(vm, c, err, sizeof(err)) < 0 ||
	    add_nics(vm, c, rxl.nics, err, sizeof(err)) < 0) {
		fprintf(stderr, "vmx: %s\n", err);
		rc = EXIT_CONFIG;
		goto out;
	}
	rxl.vm = vm;
	rxl.n = c->nnics;
	snprintf(vm->cpu_model_name, sizeof(vm->cpu_model_name), "%s", c->cpu_model);
	if (vmm_vm_setup_boot(vm, &b, err, sizeof(err)) < 0) {
		fprintf(stderr, "vmx: %s\n", err);
		goto out;
	}
	if (restore_path) {
		/* the boot above set CPUID; the state stream overwrites the rest */
		int sfd = open(restore_path, O_RDONLY | O_CLOEXEC);
		struct vmm_stream s;
		if (sfd < 0) {
			fprintf(stderr, "vmx: %s: %s\n", restore_path, strerror(errno));
			rc = EXIT_CONFIG;
			goto out;
		}
		vmm_stream_fd(&s, &sfd);
		ret = vmm_vm_restore(vm, &s, err, sizeof(err));
		close(sfd);
		if (ret < 0) {
			fprintf(stderr, "vmx: restore from %s: %s\n", restore_path, err);
			rc = EXIT_CONFIG;
			goto out;
		}
		log_info("restored from %s", restore_path);
	}
	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		goto out;
	*ctx = (struct vmx_ctx){
		.vm = vm, .cfg = c, .start_ms = util_now_ms(), .secondary = ft_secondary
	};
	pthread_mutex_init(&ctx->mig.m, NULL);
	pthread_mutex_init(&ctx->ft.m, NULL);
	ft_standby_init(&ctx->standby);
	ctx->mig.fd = -1;
	ctx->ft.fd = -1;
	for (unsigned k = 0; k < MIGRATE_MAX_STREAMS; k++)
		ctx->mig.xfd[k] = -1;
	ctx->lease = lock_host ? &lease : NULL;
	int lfd = -1, conn = -1;
	bool parked = false; /* vCPU threads started paused (start_parked) */
	char token[MIGRATE_TOKEN_HEX + 2] = "";
	if (incoming) {
		/* listen first: the port goes out through the control socket */
		FILE *tf = token_file ? fopen(token_file, "re") : NULL;
		if (!tf || !fgets(token, sizeof(token), tf) || strlen(token) < MIGRATE_TOKEN_HEX) {
			fprintf(stderr,
			        "vmx: --incoming needs --incoming-token-file with a 64-digit "
			        "token\n");
			if (tf)
				fclose(tf);
			rc = EXIT_CONFIG;
			goto out;
		}
		fclose(tf);
		token[MIGRATE_TOKEN_HEX] = '\0';
		uint16_t port = 0;
		int nsfd = -1;
		if (incoming_netns && (nsfd = netns_open(incoming_netns)) < 0) {
			fprintf(stderr, "vmx: --netns %s: %s\n", incoming_netns, strerror(-nsfd));
			rc = EXIT_CONFIG;
			goto out;
		}
		ret = migrate_listen(nsfd, incoming, &port, &lfd, err, sizeof(err));
		if (nsfd >= 0)
			close(nsfd);
		if (ret < 0) {
			fprintf(stderr, "vmx: %s\n", err);
			goto out;
		}
		ctx->incoming_port = port;
	}
	char sock[300];
	snprintf(sock, sizeof(sock), "%s/vmx.sock", rd);
	/* an incoming VM needs its socket at once (hostd reads the port
	 * there); any other starts its vCPUs first: the socket and its
	 * thread are time to first instruction otherwise */
	if (incoming &&
	    vmm_control_start(&control, sock, &control_ops, ctx, err, sizeof(err)) < 0) {
		fprintf(stderr, "vmx: %s\n", err);
		if (lfd >= 0)
			close(lfd);
		goto out;
	}
	signal_vm = vm;
	if (incoming) {
		log_info("vm %s: waiting for the migration source on %s:%u", c->name, incoming,
		         ctx->incoming_port);
		if (ft_secondary) {
			/* a copy kept by the primary's checkpoints; it runs only
			 * once the primary is lost and this side won the record */
			char gp[4200], owner[128];
			ft_gen_path(c, gp, sizeof(gp));
			ft_owner(owner, sizeof(owner));
			ret = ft_secondary_run(lfd, token, vm, gp, owner, INCOMING_WAIT_MS,
			                       &ctx->standby, err, sizeof(err));
			lfd = -1;
			if (ret < 0) {
				fprintf(stderr, "vmx: FT secondary: %s\n", err);
				rc = ret == -ECANCELED ? 0 : EXIT_INCOMING;
				goto out;
			}
			name_own_disks(c);
			/* frames this host's taps queued meanwhile were the
			 * primary's to take: not delivered twice */
			for (unsigned i = 0; i < rxl.n; i++) {
				char junk[2048];
				int fd = vmm_virtio_net_fd(rxl.nics[i]);
				for (int k = 0; k < 4096 && read(fd, junk, sizeof(junk)) > 0; k++)
					;
			}
		} else if (migrate_dst_receive(lfd, token, vm, INCOMING_WAIT_MS, &conn, err,
		                               sizeof(err)) < 0 ||
		           start_parked(vm, &parked, err, sizeof(err)) < 0 ||
		           migrate_dst_wait_handover(conn, err, sizeof(err)) < 0) {
			fprintf(stderr, "vmx: incoming migration: %s\n", err);
			rc = EXIT_INCOMING;
			goto out;
		}
		/* the source let go: this host takes the lock, then runs the VM.
		 * An FT secondary that won the record takes it from the primary,
		 * which stops (and whose renewal would stop it) */
		if (lock_host) {
			const char *la = lock_addr ? lock_addr : lock_host;
			ret = ft_secondary ? vmx_lease_seize(&lease, c->dir, lock_host, la, err,
			                                     sizeof(err))
			                   : vmx_lease_take(&lease, c->dir, lock_host, la, err,
			                                    sizeof(err));
			if (ret < 0) {
				fprintf(stderr, "vmx: after the hand-over: %s\n", err);
				close(conn);
				rc = ret == -EBUSY ? EXIT_LOCKED : EXIT_HOST;
				goto out;
			}
		}
		ctx->incoming_port = 0;
	}
	log_info("vm %s: %u MiB, %u vCPUs, %s, TSC %u kHz, entry 0x%llx", c->name, c->memory_mib,
	         c->vcpus, vmm_accel_name(vm->accel), vm->tsc_khz, (unsigned long long)b.entry);
	if (lock_host && vmx_lease_start(&lease, vm) < 0) {
		fprintf(stderr, "vmx: cannot start the lock renewal thread\n");
		goto out;
	}
	if (parked) {
		vmm_vm_resume(vm);
	} else if (vmm_vm_start(vm) < 0) {
		fprintf(stderr, "vmx: cannot start vCPU threads\n");
		if (conn >= 0)
			close(conn);
		goto out;
	}
	if (!incoming &&
	    vmm_control_start(&control, sock, &control_ops, ctx, err, sizeof(err)) < 0) {
		/* unreachable for hostd: stop the guest rather than run it blind */
		fprintf(stderr, "vmx: %s\n", err);
		vmm_vm_stop(vm, VM_POWERED_OFF, "no control socket");
		no_control = true;
	}
	if (incoming && ft_secondary) {
		/* gone live: the switches learn the MACs here */
		for (unsigned k = 0; k < 3; k++)
			for (unsigned i = 0; i < rxl.n; i++)
				if (vmm_virtio_net_announce(rxl.nics[i]) < 0 && k == 0)
					log_warn("vm %s: NIC %u: announcing its MAC: %s", c->name,
					         i, strerror(errno));
	}
	int now_st = atomic_load(&vm->state);
	if (conn >= 0 && (now_st == VM_POWERED_OFF || now_st == VM_CRASHED)) {
		/* stopped during the hand-over (a signal): the source let go, so
		 * the VM stays stopped, as asked; no "G" tells it otherwise */
		log_warn("vm %s: stopped during the hand-over (%s): it does not run on either host",
		         c->name, vm->exit_reason);
		close(conn);
		conn = -1;
	}
	if (conn >= 0) {
		migrate_dst_running(conn);
		/* the switches still send the VM's frames to the source's port:
		 * announce its MACs from here (three times, as a lost frame would
		 * leave the VM unreachable until it sends something itself) */
		for (unsigned k = 0; k < 3; k++)
			for (unsigned i = 0; i < rxl.n; i++)
				if (vmm_virtio_net_announce(rxl.nics[i]) < 0 && k == 0)
					log_warn("vm %s: NIC %u: announcing its MAC: %s", c->name,
					         i, strerror(errno));
		log_info("vm %s: running here after the migration%s", c->name,
		         rxl.n ? " (MACs announced)" : "");
	}
	if (rxl.n && pthread_create(&rx_thread, NULL, rx_main, &rxl) == 0)
		rx_started = true;
	enum vmm_run_state st = vmm_vm_wait(vm);
	if (rx_started)
		pthread_join(rx_thread, NULL);
	migrate_src_join(&ctx->mig);
	struct migrate_progress mp;
	migrate_src_progress(&ctx->mig, &mp);
	/* migrated away: stay reachable until hostd has read the result
	 * (migrate_status), which it confirms with a power off; 10 s at most */
	for (int i = 0; mp.phase == MIG_DONE && i < 200 && !atomic_load(&ctx->released); i++)
		usleep(50 * 1000);
	/* a line the guest had not finished goes on at the destination, which
	 * got it in the UART's state: written here too (the UART writes out a
	 * partial line when it is destroyed), it would appear twice in the log */
	for (unsigned i = 0; i < vm->ndevs; i++)
		if (strcmp(vm->devs[i]->ops->name, "uart") == 0) {
			if (mp.phase == MIG_DONE)
				vmm_uart_discard(vm->devs[i]);
			else
				vmm_uart_flush(vm->devs[i]);
		}
	uint64_t exits = 0;
	for (unsigned i = 0; i < vm->nvcpus; i++)
		exits += vm->vcpus[i].exits;
	log_info("vm %s: %s: %s (%llu exits)", c->name, vmm_run_state_name(st), vm->exit_reason,
	         (unsigned long long)exits);
	if (no_control) {
		rc = EXIT_HOST; /* the host's fault, not the guest's */
	} else if (st == VM_CRASHED) {
		fprintf(stderr, "vmx: %s crashed: %s\n", c->name, vm->exit_reason);
		rc = EXIT_CRASHED;
	} else if (ctx && ft_primary_lost(&ctx->ft)) {
		rc = EXIT_FT_LOST; /* not the guest's power off: hostd must not read it so */
	} else if (vm->power_status < 0) {
		rc = EXIT_SIGNAL;
	} else {
		rc = vm->power_status > 99 ? 99 : vm->power_status;
	}
out:
	signal_vm = NULL;
	vmm_control_stop(control);
	if (ctx) {
		ft_primary_stop(&ctx->ft);
		migrate_src_join(&ctx->mig);
		free(ctx);
	}
	if (lock_host)
		vmx_lease_end(&lease); /* after the VM stopped: never two hosts running it */
	if (uart)
		uart->ops->destroy(uart);
	if (power)
		power->ops->destroy(power);
	vmm_vm_destroy(vm);
	free(vm);
	free(cmdline);
	close(logfd);
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check", no_argument, NULL, 'k' },
		{ "restore", required_argument, NULL, 'r' },
		{ "control", required_argument, NULL, 'C' },
		{ "accel", required_argument, NULL, 'a' },
		{ "lock-host", required_argument, NULL, 'L' },
		{ "lock-addr", required_argument, NULL, 'A' },
		{ "monitor", no_argument, NULL, 'M' },
		{ "run-dir", required_argument, NULL, 'R' },
		{ "incoming", required_argument, NULL, 'I' },
		{ "incoming-token-file", required_argument, NULL, 'T' },
		{ "ft-secondary", no_argument, NULL, 'F' },
		{ "netns", required_argument, NULL, 'N' },
		{ "tap", required_argument, NULL, 'P' },
		{ "disk", required_argument, NULL, 'D' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cfgpath = NULL;
	bool only_check = false, monitor = false;

	accel_name = getenv("VMK_ACCEL");
	struct vmcfg c;
	char err[700];
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			cfgpath = optarg;
			break;
		case 'k':
			only_check = true;
			break;
		case 'r':
			restore_path = optarg;
			break;
		case 'a':
			accel_name = optarg;
			break;
		case 'L':
			lock_host = optarg;
			break;
		case 'A':
			lock_addr = optarg;
			break;
		case 'M':
			monitor = true;
			break;
		case 'R':
			run_dir = optarg;
			break;
		case 'I':
			incoming = optarg;
			break;
		case 'N':
			incoming_netns = optarg;
			break;
		case 'P':
			if (nnic_taps == VMCFG_MAX_NICS) {
				fprintf(stderr, "vmx: at most %d --tap options\n", VMCFG_MAX_NICS);
				return EXIT_CONFIG;
			}
			nic_taps[nnic_taps++] = optarg;
			break;
		case 'D':
			if (ndisk_files == VMCFG_MAX_DISKS) {
				fprintf(stderr, "vmx: at most %d --disk options\n",
				        VMCFG_MAX_DISKS);
				return EXIT_CONFIG;
			}
			disk_files[ndisk_files++] = optarg;
			break;
		case 'T':
			token_file = optarg;
			break;
		case 'F':
			ft_secondary = true;
			break;
		case 'C':
			return vmm_control_cli(optarg, argc - optind, argv + optind, stdout);
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (ft_secondary && !incoming) {
		fprintf(stderr, "vmx: --ft-secondary needs --incoming ADDR and its token file\n");
		return 2;
	}
	if (!cfgpath || optind < argc) {
		fprintf(stderr, "vmx: %s\n", cfgpath ? "unexpected argument" : "no --config given");
		usage(stderr);
		return 2;
	}
	if (vmcfg_load(cfgpath, &c, err, sizeof(err)) < 0) {
		fprintf(stderr, "vmx: %s\n", err);
		return EXIT_CONFIG;
	}
	if (ndisk_files && ndisk_files != c.ndisks) {
		fprintf(stderr, "vmx: %u --disk options for the %u disks of %s: one per disk\n",
		        ndisk_files, c.ndisks, cfgpath);
		vmcfg_free(&c);
		return 2;
	}
	for (unsigned i = 0; ft_secondary && !ndisk_files && i < c.ndisks; i++)
		if (!c.disks[i].readonly) {
			fprintf(stderr,
			        "vmx: an FT secondary needs its own copy of each writable disk "
			        "(--disk FILE per disk): disk %u, %s, is the primary's\n",
			        i, c.disks[i].path);
			vmcfg_free(&c);
			return 2;
		}
	for (unsigned i = 0; i < ndisk_files; i++) {
		char *dup = strdup(disk_files[i]);
		if (!dup) {
			vmcfg_free(&c);
			return EXIT_HOST;
		}
		free(c.disks[i].path);
		c.disks[i].path = dup;
	}
	char tag[120];
	snprintf(tag, sizeof(tag), "vmx[%s]", c.name);
	log_set_tag(tag);
	if (only_check) {
		rc = check(&c);
	} else {
		if (monitor && vmx_monitor_fork(run_dir ? run_dir : c.dir, c.dir, lock_host) < 0) {
			fprintf(stderr, "vmx: fork: %s\n", strerror(errno));
			vmcfg_free(&c);
			return EXIT_HOST;
		}
		sigset_t set;
		pthread_t t;
		sigemptyset(&set);
		sigaddset(&set, SIGTERM);
		sigaddset(&set, SIGINT);
		sigaddset(&set, SIGHUP);
		pthread_sigmask(SIG_BLOCK, &set, NULL);
		signal(SIGPIPE, SIG_IGN);
		pthread_create(&t, NULL, signal_thread, &set);
		pthread_detach(t);
		rc = run(&c);
	}
	vmcfg_free(&c);
	return rc;
}
