/* vMotion in hostd. The destination prepares (checks, registers the VM if
 * it must, starts an incoming vmx with a one-time token and follows it in
 * a vm.migrate.receive task); the source runs the vm.migrate task, which
 * drives its vmx's migration engine (migrate/migrate.h) and reports its
 * progress. vmkctl, as vCenter would, asks both hosts with the user's own
 * rights on each. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "datastore.h"
#include "dispatch.h"
#include "events.h"
#include "ft.h"
#include "inventory_int.h"
#include "kvmcaps.h"
#include "log.h"
#include "migrate.h"
#include "network.h"
#include "relocate.h"
#include "task.h"
#include "util.h"
#include "vmm/control.h"
#include "vmm/disk.h"
#include "vmm/cpumodel.h"
#include "vmm/vm.h"
#include "vmm/vmcfg.h"
#include "vmrun.h"

#define RECEIVE_TIMEOUT_MS (10 * 60 * 1000)
#define MEM_RESERVE_MIB    64

static pthread_mutex_t slots_m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t slots_cv = PTHREAD_COND_INITIALIZER;
static unsigned slots_used;

static uint64_t mem_available_mib(void)
{
	FILE *f = fopen("/proc/meminfo", "re");
	char line[200];
	unsigned long long kib = 0;

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %llu kB", &kib) == 1)
			break;
	if (f)
		fclose(f);
	return kib / 1024;
}

/* ---- destination: prepare and receive ---- */

int migrate_cpu_check(const char *host, const char *vm, const char *model, char *const *features,
                      size_t n, char *err, size_t errlen)
{
	struct cpuid_leaf l[256];
	struct vmm_cpumodel need = { 0 };
	enum vmm_accel accel;
	char why[300], missing[700];
	size_t nl = 0;

	if (vmm_accel_choose(getenv("VMK_ACCEL"), &accel, NULL, 0) < 0)
		accel = VMM_ACCEL_SOFT;
	if (accel == VMM_ACCEL_SOFT)
		nl = vmm_soft_cpuid_leaves(l, 256, 0);
	else if (kvm_supported_leaves(l, 256, &nl, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "host %s cannot tell its CPU features: %s", host, why);
		return -ENODEV;
	}
	/* a lab host that stands for older hardware claims to lack these */
	cpu_features_hide(getenv("VMK_CPU_HIDE"), l, nl);
	snprintf(need.name, sizeof(need.name), "%s", model && model[0] ? model : "?");
	for (size_t i = 0; i < n && need.nfeatures < CPUMODEL_MAX_FEATURES; i++)
		need.features[need.nfeatures++] = features[i];
	if (vmm_cpumodel_missing(&need, l, nl, missing, sizeof(missing))) {
		snprintf(err, errlen,
		         "host %s cannot run VM %s: its guest has CPU model %s, and %s here lacks "
		         "%s",
		         host, vm, need.name, accel == VMM_ACCEL_SOFT ? "the software CPU" : "KVM",
		         missing);
		return -ENOTSUP;
	}
	return 0;
}

/* Removes a VM directory hostd made or gave up (its own files only). */
static void migrate_remove_dir(const char *dir)
{
	int ret = dir[0] ? util_rm_tree(dir) : 0;

	if (ret < 0)
		log_warn("removing %s: %s", dir, strerror(-ret));
}

/* Storage migration: <storage_datastore>/<name>/ with the .vmx the source
 * sent and fresh sparse disks of the sizes it gave. 0, or the exit status
 * with err. */
static int storage_home(struct hostd *h, const Vmk__VmMigratePrepareRequest *p, char *real,
                        size_t reallen, char *ds, size_t dslen, char *err, size_t errlen)
{
	char root[PATH_MAX], dir[PATH_MAX + 100], vmx[PATH_MAX + 200];
	struct vmcfg c;
	char cerr[400] = "";

	if (hostd_datastore_path(h->datastores, p->storage_datastore, root, sizeof(root)) < 0) {
		snprintf(err, errlen,
		         "host %s has no datastore named %s (see storage datastore list)",
		         h->cfg.name, p->storage_datastore);
		return VMK__STATUS__STATUS_NOT_FOUND;
	}
	if (!p->vmx_text[0] || strlen(p->vmx_text) > (1u << 20) || strchr(p->name, '/') ||
	    !strcmp(p->name, "..") || !strcmp(p->name, ".") || !p->name[0]) {
		snprintf(err, errlen, "storage migration of %s: no usable .vmx was sent", p->name);
		return VMK__STATUS__STATUS_USAGE;
	}
	snprintf(ds, dslen, "%s", p->storage_datastore);
	snprintf(dir, sizeof(dir), "%s/%s", root, p->name);
	/* a VM with snapshots: its frozen layers were staged here first */
	char mark[PATH_MAX + 120];
	snprintf(mark, sizeof(mark), "%s/%s", dir, RELOCATE_STAGED);
	bool staged = p->n_disk_parents && access(mark, F_OK) == 0;
	if (staged)
		unlink(mark);
	if (!staged && mkdir(dir, 0755) < 0) {
		int e = errno;
		snprintf(err, errlen, "host %s: %s: %s%s", h->cfg.name, dir, strerror(e),
		         e == EEXIST ? " (a VM directory of that name is there already)" : "");
		return e == EEXIST ? VMK__STATUS__STATUS_CONFLICT : VMK__STATUS__STATUS_FAILED;
	}
	snprintf(vmx, sizeof(vmx), "%s/%s.vmx", dir, p->name);
	if (util_write_file_atomic(vmx, p->vmx_text, strlen(p->vmx_text), 0644) < 0 ||
	    vmcfg_load(vmx, &c, cerr, sizeof(cerr)) < 0) {
		snprintf(err, errlen, "host %s: the VM's .vmx does not load here: %s", h->cfg.name,
		         cerr);
		migrate_remove_dir(dir);
		return VMK__STATUS__STATUS_FAILED;
	}
	int status = 0;
	if (c.ndisks != p->n_disk_bytes) {
		snprintf(err, errlen, "storage migration: %u disks in the .vmx, %zu sizes sent",
		         c.ndisks, p->n_disk_bytes);
		status = VMK__STATUS__STATUS_USAGE;
	}
	for (unsigned i = 0; !status && i < c.ndisks; i++) {
		/* only the VM's own directory moves */
		size_t dl = strlen(dir);
		if (strncmp(c.disks[i].path, dir, dl) != 0 || c.disks[i].path[dl] != '/' ||
		    strstr(c.disks[i].path + dl, "/..")) {
			snprintf(err, errlen,
			         "VM %s has disk %s outside its directory: storage migration moves "
			         "only the VM's own directory",
			         p->name, c.disks[i].path);
			status = VMK__STATUS__STATUS_USAGE;
			break;
		}
		if (vmm_disk_is_delta_name(c.disks[i].path)) {
			/* its top: a fresh delta over the staged layer, the stream fills it */
			const char *parent = i < p->n_disk_parents ? p->disk_parents[i] : "";
			if (!staged || !parent[0] || strchr(parent, '/')) {
				snprintf(
				        err, errlen,
				        "VM %s has snapshots (disk %s is a delta) and its frozen "
				        "layers "
				        "were not staged here first: migrate it with a vmkctl that "
				        "stages them, or --cold",
				        p->name, c.disks[i].path);
				status = VMK__STATUS__STATUS_CONFLICT;
				break;
			}
			if (vmm_delta_create(c.disks[i].path, parent, cerr, sizeof(cerr)) < 0) {
				snprintf(err, errlen, "host %s: %s", h->cfg.name, cerr);
				status = VMK__STATUS__STATUS_FAILED;
				break;
			}
			continue;
		}
		int fd = open(c.disks[i].path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0 || ftruncate(fd, (off_t)p->disk_bytes[i]) < 0) {
			snprintf(err, errlen, "host %s: creating %s: %s", h->cfg.name,
			         c.disks[i].path, strerror(errno));
			status = VMK__STATUS__STATUS_FAILED;
		}
		if (fd >= 0)
			close(fd);
	}
	vmcfg_free(&c);
	if (status) {
		migrate_remove_dir(dir);
		return status;
	}
	snprintf(real, reallen, "%s", vmx);
	return 0;
}

/* ---- an incoming vmx on this host (a migration's, or an FT secondary) ---- */

int incoming_shared_path(struct hostd *h, const char *name, const char *dspath, const char *hint,
                         char *real, size_t reallen, char *ds, size_t dslen, char *err,
                         size_t errlen)
{
	const char *colon = strchr(dspath, ':');
	char root[PATH_MAX], path[PATH_MAX + 80], r[PATH_MAX];

	if (!colon || colon == dspath || (size_t)(colon - dspath) >= dslen ||
	    strstr(colon + 1, "..")) {
		snprintf(err, errlen, "datastore path \"%s\": expected DATASTORE:DIR/NAME.vmx",
		         dspath);
		return VMK__STATUS__STATUS_USAGE;
	}
	snprintf(ds, dslen, "%.*s", (int)(colon - dspath), dspath);
	if (hostd_datastore_path(h->datastores, ds, root, sizeof(root)) < 0) {
		snprintf(err, errlen,
		         "host %s does not see datastore %s, where VM %s lives: add it "
		         "(storage datastore add)%s",
		         h->cfg.name, ds, name, hint);
		return VMK__STATUS__STATUS_NOT_FOUND;
	}
	snprintf(path, sizeof(path), "%s/%s", root, colon + 1);
	if (!realpath(path, r)) {
		snprintf(err, errlen,
		         "host %s: %s on datastore %s: %s (is it the same shared datastore?)",
		         h->cfg.name, colon + 1, ds, strerror(errno));
		return VMK__STATUS__STATUS_NOT_FOUND;
	}
	snprintf(real, reallen, "%s", r);
	return 0;
}

int incoming_admit(struct hostd *h, const char *name, uint32_t memory_mib, const char *model,
                   char *const *features, size_t n, char *err, size_t errlen)
{
	if (n && migrate_cpu_check(h->cfg.name, name, model, features, n, err, errlen) < 0)
		return VMK__STATUS__STATUS_CONFLICT;
	uint64_t avail = mem_available_mib();
	if (avail < (uint64_t)memory_mib + MEM_RESERVE_MIB) {
		snprintf(err, errlen,
		         "host %s has %" PRIu64 " MiB of memory available, VM %s needs %u MiB "
		         "(+%u reserved)",
		         h->cfg.name, avail, name, memory_mib, MEM_RESERVE_MIB);
		return VMK__STATUS__STATUS_CONFLICT;
	}
	return 0;
}

int incoming_register(struct hostd *h, const char *real, const char *ds, const char *name,
                      enum vm_state during, struct incoming_vm *iv, char *err, size_t errlen)
{
	struct hostd_inventory *inv = h->inventory;
	struct vm *v = NULL;
	char why[400];

	pthread_mutex_lock(&inv->lock);
	for (size_t i = 0; i < inv->n; i++)
		if (!strcmp(inv->vms[i]->path, real))
			v = inv->vms[i];
	if (v) {
		if (vm_state_check(v->state, VMOP_MIGRATE, v->name, why, sizeof(why)) < 0 ||
		    v->state != VMS_POWERED_OFF) {
			snprintf(err, errlen,
			         "host %s has VM %s registered and it is %s: it cannot run it "
			         "too",
			         h->cfg.name, v->name, vm_state_name(v->state));
			pthread_mutex_unlock(&inv->lock);
			return VMK__STATUS__STATUS_CONFLICT;
		}
	} else {
		struct vm *other = inv_find(inv, name);
		if (other) {
			snprintf(err, errlen,
			         "host %s already has another VM named %s (%s): unregister or "
			         "rename one",
			         h->cfg.name, name, other->path);
			pthread_mutex_unlock(&inv->lock);
			return VMK__STATUS__STATUS_CONFLICT;
		}
		if (!(v = inv_add(inv, real, ds)) || !v->valid) {
			snprintf(err, errlen, "host %s cannot read %s: %s", h->cfg.name, real,
			         v ? v->error : "the inventory is full");
			if (v)
				inv_drop(inv, v);
			pthread_mutex_unlock(&inv->lock);
			return VMK__STATUS__STATUS_FAILED;
		}
		iv->registered_here = true;
	}
	v->state = during;
	/* an FT secondary: the supervisor leaves it alone until it has a vmx */
	v->ft_starting = during == VMS_FT_SECONDARY;
	snprintf(iv->name, sizeof(iv->name), "%s", v->name);
	snprintf(iv->dir, sizeof(iv->dir), "%s", v->dir);
	snprintf(iv->rundir, sizeof(iv->rundir), "%s", v->rundir);
	snprintf(iv->cfgpath, sizeof(iv->cfgpath), "%s", v->path);
	inv_save(inv);
	pthread_mutex_unlock(&inv->lock);
	return 0;
}

void incoming_undo(struct hostd *h, struct incoming_vm *iv)
{
	struct hostd_inventory *inv = h->inventory;

	if (iv->monitor > 0) {
		kill(-iv->monitor, SIGKILL);
		waitpid(iv->monitor, NULL, 0);
		iv->monitor = 0;
	}
	pthread_mutex_lock(&inv->lock);
	struct vm *v = inv_find(inv, iv->name);
	if (v)
		vmrun_release_nics(h, v); /* the incoming vmx's taps */
	if (v && iv->registered_here) {
		inv_drop(inv, v);
		inv_save(inv);
		pthread_mutex_unlock(&inv->lock);
		migrate_remove_dir(iv->created_dir);
		return;
	}
	if (v) {
		v->state = VMS_POWERED_OFF;
		v->pid = 0;
		v->monitor_pid = 0;
		v->ft_starting = false;
	}
	inv_save(inv);
	pthread_mutex_unlock(&inv->lock);
}

int incoming_spawn(struct hostd *h, struct incoming_vm *iv, enum net_tag tag, bool ft_secondary,
                   char *err, size_t errlen)
{
	char tokfile[PATH_MAX + 16], tl[70], why[400];
	uint8_t rnd[32];

	/* the one-time token, for this vmx only */
	if (util_random(rnd, sizeof(rnd)) < 0) {
		snprintf(err, errlen, "no randomness for the token");
		return VMK__STATUS__STATUS_FAILED;
	}
	util_hex(rnd, sizeof(rnd), iv->token);
	util_mkdir_p(iv->rundir, 0700);
	snprintf(tokfile, sizeof(tokfile), "%s/migrate.token", iv->rundir);
	int tn = snprintf(tl, sizeof(tl), "%s\n", iv->token);
	if (util_write_file_atomic(tokfile, tl, (size_t)tn, 0600) < 0) {
		snprintf(err, errlen, "cannot write %s", tokfile);
		return VMK__STATUS__STATUS_FAILED;
	}
	/* the stream arrives on the vmk tagged for it, in its netstack */
	if (hostd_network_traffic(h, tag, iv->addr, sizeof(iv->addr), iv->netns, sizeof(iv->netns),
	                          iv->vmk, sizeof(iv->vmk), iv->note, sizeof(iv->note)) < 0)
		hostd_mgmt_address(h, iv->addr, sizeof(iv->addr));
	if (iv->note[0])
		log_info("vm %s: incoming vmx: %s", iv->name, iv->note);
	struct vmrun_incoming in = { .addr = iv->addr,
		                     .token_file = tokfile,
		                     .netns = iv->netns[0] ? iv->netns : NULL,
		                     .ft_secondary = ft_secondary,
		                     .disks = iv->disk_files,
		                     .ndisks = iv->ndisk_files };
	if (vmrun_spawn(h, iv->cfgpath, iv->dir, iv->rundir, NULL, &in, &iv->monitor, why,
	                sizeof(why)) < 0) {
		unlink(tokfile);
		snprintf(err, errlen, "host %s: %s", h->cfg.name, why);
		return VMK__STATUS__STATUS_FAILED;
	}
	/* its port, once it listens */
	for (int i = 0; i < 200 && !iv->port; i++) {
		char state[32];
		int st;
		if (vmrun_vmx_status(iv->rundir, &iv->pid, state, sizeof(state), NULL, &iv->port) ==
		            0 &&
		    iv->port)
			break;
		if (waitpid(iv->monitor, &st, WNOHANG) == iv->monitor) {
			iv->monitor = 0;
			break;
		}
		usleep(50 * 1000);
	}
	unlink(tokfile);
	if (!iv->port) {
		vmrun_last_error(iv->dir, why, sizeof(why));
		snprintf(err, errlen, "host %s: the incoming vmx did not come up: %s", h->cfg.name,
		         why[0] ? why : "see vmx.log in the VM's directory");
		return VMK__STATUS__STATUS_FAILED;
	}
	return 0;
}

/* ---- destination of a migration ---- */

struct recv_job {
	struct hostd *h;
	struct incoming_vm iv;
	char source[128];
};

/* The VM runs here now. */
static void recv_done(struct recv_job *j, int pid)
{
	struct hostd_inventory *inv = j->h->inventory;

	pthread_mutex_lock(&inv->lock);
	struct vm *v = inv_find(inv, j->iv.name);
	if (v) {
		v->state = VMS_POWERED_ON;
		v->pid = pid;
		v->monitor_pid = j->iv.monitor;
		v->started_ms = util_wall_ms();
		v->expect_exit = false;
		snprintf(v->reason, sizeof(v->reason), "migrated here from %s", j->source);
	}
	inv_save(inv);
	pthread_mutex_unlock(&inv->lock);
}

static void *recv_worker(struct hostd_task *t, void *arg)
{
	struct recv_job *j = arg;
	char err[400];
	uint64_t deadline = util_now_ms() + RECEIVE_TIMEOUT_MS;

	task_progress(t, 10, "waiting for the source");
	for (;;) {
		char state[32];
		int pid = 0, st;
		uint32_t port = 0;
		if (vmrun_vmx_status(j->iv.rundir, &pid, state, sizeof(state), NULL, &port) == 0 &&
		    !strcmp(state, "running") && vmrun_vmx_is_ours(j->h, j->iv.dir, pid)) {
			recv_done(j, pid);
			hostd_event(j->h, j->iv.name, "-", "migrated here from %s (vmx pid %d)",
			            j->source, pid);
			task_finish(t, 0, "VM %s runs here, migrated from %s", j->iv.name,
			            j->source);
			break;
		}
		if (waitpid(j->iv.monitor, &st, WNOHANG) == j->iv.monitor) {
			j->iv.monitor = 0;
			vmrun_last_error(j->iv.dir, err, sizeof(err));
			incoming_undo(j->h, &j->iv);
			task_finish(t, VMK__STATUS__STATUS_FAILED,
			            "VM %s was not received from %s: %s", j->iv.name, j->source,
			            err[0] ? err : "the incoming vmx ended (see vmx.log)");
			break;
		}
		if (task_cancelled(t) || util_now_ms() > deadline) {
			bool c = task_cancelled(t);
			incoming_undo(j->h, &j->iv);
			task_finish(t,
			            c ? VMK__STATUS__STATUS_CANCELLED : VMK__STATUS__STATUS_TIMEOUT,
			            "VM %s: receiving it %s", j->iv.name,
			            c ? "was cancelled" : "timed out");
			break;
		}
		usleep(50 * 1000);
	}
	free(j);
	return NULL;
}

int hostd_op_vm_migrate_prepare(struct hostd_call *call, const Vmk__Request *req)
{
	struct hostd *h = call->h;
	struct hostd_inventory *inv = h->inventory;
	const Vmk__VmMigratePrepareRequest *p = req->vm_migrate_prepare;
	char ds[64], real[PATH_MAX], err[400];
	int ret;

	if (p->storage_datastore[0]) {
		/* storage migration: the VM gets a new home here, once the checks
		 * that need no directory have passed (nothing is left behind) */
		pthread_mutex_lock(&inv->lock);
		struct vm *other = inv_find(inv, p->name);
		pthread_mutex_unlock(&inv->lock);
		if (other)
			return hostd_fail(
			        call, VMK__STATUS__STATUS_CONFLICT,
			        "host %s already has a VM named %s: unregister or rename one",
			        h->cfg.name, p->name);
		if (mem_available_mib() < (uint64_t)p->memory_mib + MEM_RESERVE_MIB)
			return hostd_fail(
			        call, VMK__STATUS__STATUS_CONFLICT,
			        "host %s has not enough memory available for VM %s (%u MiB)",
			        h->cfg.name, p->name, p->memory_mib);
		ret = storage_home(h, p, real, sizeof(real), ds, sizeof(ds), err, sizeof(err));
		if (ret)
			return hostd_fail(call, ret, "%s", err);
	} else if ((ret = incoming_shared_path(h, p->name, p->datastore_path,
	                                       " or migrate with its storage (--storage DATASTORE)",
	                                       real, sizeof(real), ds, sizeof(ds), err,
	                                       sizeof(err)))) {
		return hostd_fail(call, ret, "%s", err);
	}
	if ((ret = incoming_admit(h, p->name, p->memory_mib, p->cpu_model, p->cpu_features,
	                          p->n_cpu_features, err, sizeof(err)))) {
		if (p->storage_datastore[0]) {
			char made[PATH_MAX];
			snprintf(made, sizeof(made), "%s", real);
			if (strrchr(made, '/'))
				*strrchr(made, '/') = '\0';
			migrate_remove_dir(made);
		}
		return hostd_fail(call, ret, "%s", err);
	}
	struct recv_job *j = calloc(1, sizeof(*j));
	if (!j)
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED, "out of memory");
	j->h = h;
	snprintf(j->source, sizeof(j->source), "%s", p->source_host[0] ? p->source_host : "?");
	if ((ret = incoming_register(h, real, ds, p->name, VMS_MIGRATING, &j->iv, err,
	                             sizeof(err)))) {
		free(j);
		return hostd_fail(call, ret, "%s", err);
	}
	if (p->storage_datastore[0] && j->iv.registered_here)
		snprintf(j->iv.created_dir, sizeof(j->iv.created_dir), "%s", j->iv.dir);
	if ((ret = incoming_spawn(h, &j->iv, NET_TAG_VMOTION, false, err, sizeof(err)))) {
		incoming_undo(h, &j->iv);
		free(j);
		return hostd_fail(call, ret, "%s", err);
	}
	/* the answer, before the task owns j */
	Vmk__VmMigratePrepareResponse *r = arena_alloc(call->a, sizeof(*r));
	if (r) {
		vmk__vm_migrate_prepare_response__init(r);
		r->address = arena_strdup(call->a, j->iv.addr);
		r->port = j->iv.port;
		r->token = arena_strdup(call->a, j->iv.token);
		r->interface = arena_strdup(call->a, j->iv.vmk);
		r->netstack = arena_strdup(call->a, j->iv.netns);
		r->note = arena_strdup(call->a, j->iv.note);
	}
	if (!r || !r->address || !r->token || !r->interface || !r->netstack || !r->note) {
		incoming_undo(h, &j->iv);
		free(j);
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED, "out of memory");
	}
	char name[VM_NAME_MAX + 1];
	snprintf(name, sizeof(name), "%s", j->iv.name);
	struct hostd_task *t =
	        task_start(h->tasks, "vm.migrate.receive", name, call->user, recv_worker, j);
	if (!t) {
		incoming_undo(h, &j->iv);
		free(j);
		return hostd_fail(call, VMK__STATUS__STATUS_CONFLICT,
		                  "host %s: cannot start a task", h->cfg.name);
	}
	r->task_id = arena_strdup(call->a, task_id(t));
	task_put(t);
	call->resp->body_case = VMK__RESPONSE__BODY_VM_MIGRATE_PREPARE;
	call->resp->vm_migrate_prepare = r;
	return VMK__STATUS__STATUS_OK;
}

/* ---- source: the vm.migrate task ---- */

struct send_job {
	struct hostd *h;
	char name[VM_NAME_MAX + 1];
	char rundir[PATH_MAX];
	char dest[128];
	char user[TASK_USER_MAX];
	Vmx__MigrateSendRequest ms;
	char token[65];
	char dir[PATH_MAX];     /* the VM's directory here (removed after a storage migration) */
	struct net_route route; /* from this host's vMotion vmk to the destination's */
};

static void *send_worker(struct hostd_task *t, void *arg)
{
	struct send_job *j = arg;
	struct hostd_inventory *inv = j->h->inventory;
	Vmx__Request rq = VMX__REQUEST__INIT;
	Vmx__Empty e = VMX__EMPTY__INIT;
	Vmx__Response *rs = NULL;
	char err[400], phase[32] = "", error[400] = "";
	uint64_t total = 0, down = 0, bytes = 0;
	uint32_t iters = 0;
	bool ok = false;

	task_set_detail(t, "vm", j->name);
	task_set_detail(t, "source", j->h->cfg.name);
	task_set_detail(t, "destination", j->dest);
	task_set_detail(t, "kind", "live");
	task_set_detail(t, "stream", j->route.stream);
	if (j->route.notes[0])
		task_set_detail(t, "network_note", j->route.notes);
	/* at most host.max_migrations at once; the rest wait their turn */
	unsigned limit = j->h->cfg.max_migrations ? j->h->cfg.max_migrations : 4;
	pthread_mutex_lock(&slots_m);
	if (slots_used >= limit) {
		task_progress(t, 0, "queued: other migrations run");
	}
	while (slots_used >= limit && !task_cancelled(t)) {
		struct timespec ts;
		util_deadline(&ts, 1000); /* and look at the cancel flag now and then */
		pthread_cond_timedwait(&slots_cv, &slots_m, &ts);
	}
	slots_used++;
	pthread_mutex_unlock(&slots_m);

	rq.body_case = VMX__REQUEST__BODY_MIGRATE_SEND;
	rq.migrate_send = &j->ms;
	if (task_cancelled(t)) {
		snprintf(error, sizeof(error), "cancelled before it began");
		snprintf(phase, sizeof(phase), "cancelled");
		goto end;
	}
	if (vmrun_vmx_call(j->rundir, &rq, &rs, 10000, err, sizeof(err)) < 0 || rs->status != 0) {
		snprintf(error, sizeof(error), "the VM's vmx did not start the migration: %s",
		         rs ? rs->error : err);
		snprintf(phase, sizeof(phase), "failed");
		if (rs)
			vmx__response__free_unpacked(rs, NULL);
		goto end;
	}
	vmx__response__free_unpacked(rs, NULL);
	bool cancel_sent = false;
	for (;;) {
		usleep(100 * 1000);
		if (task_cancelled(t) && !cancel_sent) {
			Vmx__Request c = VMX__REQUEST__INIT;
			c.body_case = VMX__REQUEST__BODY_MIGRATE_CANCEL;
			c.migrate_cancel = &e;
			if (vmrun_vmx_call(j->rundir, &c, &rs, 5000, err, sizeof(err)) == 0)
				vmx__response__free_unpacked(rs, NULL);
			cancel_sent = true;
		}
		Vmx__Request q = VMX__REQUEST__INIT;
		q.body_case = VMX__REQUEST__BODY_MIGRATE_STATUS;
		q.migrate_status = &e;
		if (vmrun_vmx_call(j->rundir, &q, &rs, 5000, err, sizeof(err)) < 0) {
			snprintf(error, sizeof(error), "the VM's vmx stopped answering: %s", err);
			snprintf(phase, sizeof(phase), "failed");
			break;
		}
		const Vmx__MigrateInfo *mi = rs->migrate_info;
		if (!mi) {
			vmx__response__free_unpacked(rs, NULL);
			continue;
		}
		snprintf(phase, sizeof(phase), "%s", mi->phase);
		total = mi->total_ms;
		down = mi->downtime_ms;
		bytes = mi->transferred;
		iters = mi->iteration;
		snprintf(error, sizeof(error), "%s", mi->error);
		task_set_detail_u64(t, "iteration", mi->iteration);
		task_set_detail_u64(t, "remaining_mib", mi->remaining_bytes >> 20);
		task_set_detail_u64(t, "dirty_rate_mibps", mi->dirty_rate >> 20);
		task_set_detail_u64(t, "bandwidth_mibps", mi->bandwidth >> 20);
		task_set_detail_u64(t, "expected_downtime_ms", mi->expected_downtime_ms);
		task_set_detail_u64(t, "throttle_pct", mi->throttle_pct);
		task_set_detail_u64(t, "transferred_bytes", mi->transferred);
		unsigned pct = !strcmp(mi->phase, "precopy")
		                       ? 20 + (mi->iteration > 8 ? 60 : mi->iteration * 7)
		               : !strcmp(mi->phase, "switchover") ? 85
		               : !strcmp(mi->phase, "handover")   ? 95
		                                                  : 10;
		char ph[96];
		snprintf(ph, sizeof(ph), "%s, pass %u, %" PRIu64 " MiB left", mi->phase,
		         mi->iteration, mi->remaining_bytes >> 20);
		task_progress(t, pct, ph);
		vmx__response__free_unpacked(rs, NULL);
		if (!strcmp(phase, "done") || !strcmp(phase, "failed") ||
		    !strcmp(phase, "cancelled"))
			break;
	}
	ok = !strcmp(phase, "done");
end:
	pthread_mutex_lock(&slots_m);
	slots_used--;
	pthread_cond_broadcast(&slots_cv);
	pthread_mutex_unlock(&slots_m);
	task_set_detail_u64(t, "total_ms", total);
	task_set_detail_u64(t, "downtime_ms", down);
	task_set_detail_u64(t, "transferred_bytes", bytes);
	task_set_detail_u64(t, "iterations", iters);
	pthread_mutex_lock(&inv->lock);
	struct vm *v = inv_find(inv, j->name);
	if (v && ok) {
		/* the destination holds the lock and runs it: let our vmx go and
		 * give up the registration (the files stay where they are) */
		v->expect_exit = true;
		pthread_mutex_unlock(&inv->lock);
		Vmx__Request po = VMX__REQUEST__INIT;
		Vmx__PowerOffRequest pr = VMX__POWER_OFF_REQUEST__INIT;
		po.body_case = VMX__REQUEST__BODY_POWER_OFF;
		po.power_off = &pr;
		if (vmrun_vmx_call(j->rundir, &po, &rs, 5000, err, sizeof(err)) == 0)
			vmx__response__free_unpacked(rs, NULL);
		int pid = 0, monitor = 0;
		pthread_mutex_lock(&inv->lock);
		if ((v = inv_find(inv, j->name))) {
			pid = v->pid;
			monitor = v->monitor_pid;
		}
		pthread_mutex_unlock(&inv->lock);
		for (int i = 0; i < 200 && vmrun_pid_alive(pid); i++)
			usleep(25 * 1000);
		if (monitor)
			waitpid(monitor, NULL, 0); /* it ends right after its vmx */
		pthread_mutex_lock(&inv->lock);
		if ((v = inv_find(inv, j->name))) {
			inv_drop(inv, v);
			inv_save(inv);
		}
		pthread_mutex_unlock(&inv->lock);
		if (j->ms.storage)
			migrate_remove_dir(j->dir); /* its disks live on at the destination */
		hostd_event(j->h, j->name, j->user,
		            "migrated to %s%s (downtime %" PRIu64 " ms, %" PRIu64
		            " bytes, %u passes)",
		            j->dest, j->ms.storage ? " with its storage" : "", down, bytes, iters);
		task_finish(t, 0,
		            "VM %s migrated to %s in %" PRIu64 " ms (downtime %" PRIu64 " ms)",
		            j->name, j->dest, total, down);
	} else {
		if (v) {
			v->state = VMS_POWERED_ON; /* it never stopped running here */
			v->staged_until_ms = 0;    /* what was staged for it is of no use now */
			inv_save(inv);
		}
		pthread_mutex_unlock(&inv->lock);
		bool cancelled = !strcmp(phase, "cancelled");
		hostd_event(j->h, j->name, j->user, "migration to %s %s: %s", j->dest,
		            cancelled ? "cancelled" : "failed", error);
		task_finish(t,
		            cancelled ? VMK__STATUS__STATUS_CANCELLED : VMK__STATUS__STATUS_FAILED,
		            "VM %s: migration to %s %s: %s; it keeps running on %s", j->name,
		            j->dest, cancelled ? "cancelled" : "failed", error, j->h->cfg.name);
	}
	free(j);
	return NULL;
}

int hostd_op_vm_migrate(struct hostd_call *call, const Vmk__Request *req)
{
	struct hostd_inventory *inv = call->h->inventory;
	const Vmk__VmMigrateRequest *m = req->vm_migrate;
	char why[400];

	if (m->cold)
		return hostd_op_vm_relocate(call, req);
	if (m->streams > 8)
		return hostd_fail(call, VMK__STATUS__STATUS_USAGE,
		                  "--streams %u: at most 8 parallel connections", m->streams);
	if (!m->dest_address[0] || !m->dest_port || m->dest_port > 65535 ||
	    strlen(m->token) != 64 || strlen(m->dest_address) > 255)
		return hostd_fail(
		        call, VMK__STATUS__STATUS_USAGE,
		        "vm migrate needs the destination's address, port and token (from "
		        "its prepare)");
	struct send_job *j = calloc(1, sizeof(*j));
	if (!j)
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED, "out of memory");
	pthread_mutex_lock(&inv->lock);
	struct vm *v = inv_find(inv, m->name);
	if (!v) {
		pthread_mutex_unlock(&inv->lock);
		free(j);
		return hostd_fail(call, VMK__STATUS__STATUS_NOT_FOUND,
		                  "no VM named \"%s\" on this host; see vm list", m->name);
	}
	if (v->state != VMS_POWERED_ON) {
		pthread_mutex_unlock(&inv->lock);
		free(j);
		if (vm_state_check(v->state, VMOP_MIGRATE, v->name, why, sizeof(why)) == 0)
			snprintf(
			        why, sizeof(why),
			        "cannot live-migrate VM %s: it is %s; only a running VM moves live",
			        m->name, vm_state_name(v->state));
		return hostd_fail(call, VMK__STATUS__STATUS_CONFLICT, "%s", why);
	}
	if (hostd_ft_refuse(v, "live-migrate", why, sizeof(why)) < 0) {
		pthread_mutex_unlock(&inv->lock);
		free(j);
		return hostd_fail(call, VMK__STATUS__STATUS_CONFLICT, "%s", why);
	}
	v->state = VMS_MIGRATING; /* from here the state keeps snapshots off */
	v->staged_until_ms = 0;
	j->h = call->h;
	snprintf(j->name, sizeof(j->name), "%s", v->name);
	snprintf(j->rundir, sizeof(j->rundir), "%s", v->rundir);
	snprintf(j->dir, sizeof(j->dir), "%s", v->dir);
	inv_save(inv);
	pthread_mutex_unlock(&inv->lock);
	snprintf(j->dest, sizeof(j->dest), "%s", m->dest_host[0] ? m->dest_host : m->dest_address);
	snprintf(j->user, sizeof(j->user), "%s", call->user);
	snprintf(j->token, sizeof(j->token), "%s", m->token);
	/* the stream leaves from this host's VMotion-tagged vmk, in its netstack */
	hostd_network_route(call->h, NET_TAG_VMOTION, "", j->dest, m->dest_address, m->dest_port,
	                    m->dest_interface, m->dest_note, &j->route);
	vmx__migrate_send_request__init(&j->ms);
	j->ms.host = j->route.host;
	j->ms.port = m->dest_port;
	j->ms.token = j->token;
	j->ms.downtime_ms = m->downtime_ms;
	j->ms.max_bandwidth_mibps = m->max_bandwidth_mibps;
	j->ms.converge_timeout_s = m->converge_timeout_s;
	j->ms.streams = m->streams;
	j->ms.compress = m->compress;
	j->ms.verify_pages = m->verify_pages;
	j->ms.storage = m->storage;
	j->ms.netns = j->route.netns;
	int status = hostd_task_start_reply(call, "vm.migrate", j->name, send_worker, j);
	if (status != VMK__STATUS__STATUS_OK) {
		pthread_mutex_lock(&inv->lock);
		if ((v = inv_find(inv, j->name))) {
			v->state = VMS_POWERED_ON;
			inv_save(inv);
		}
		pthread_mutex_unlock(&inv->lock);
		free(j);
	}
	return status;
}
