/* Cold migration in hostd, as vSphere's relocate of a powered-off VM.
 *
 * The destination prepares: it checks the .vmx that will come, the VM's
 * name and the room on its datastore, makes the VM's directory, and offers
 * one NFC transfer per file on its NFC service (nfcsvc.h), each with its
 * own token. Its vm.relocate.receive task waits for them. The .vmx comes
 * last and its transfer commits: when every other file is complete, synced
 * and of the announced size, the VM is registered there, and only then
 * does the source hear DONE. The source's vm.migrate task sends the files
 * from its provisioning netstack and, after that DONE, unregisters the VM
 * and deletes its directory. Any failure before leaves the VM registered
 * and untouched on the source and removes what the destination made.
 *
 * A VM on a datastore that both hosts share (marked shared, with the same
 * .vmx of the same uuid at the same path) is not copied: the destination
 * registers it and the source lets it go. */
#include "relocate.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "datastore.h"
#include "dispatch.h"
#include "events.h"
#include "inventory_int.h"
#include "log.h"
#include "migrate/nfc.h"
#include "netns.h"
#include "network.h"
#include "nfcsvc.h"
#include "task.h"
#include "util.h"
#include "vmlock.h"
#include "vmrun.h"
#include "vmsnap.h"
#include "vmm/disk.h"

#define RECEIVE_IDLE_MS  (5 * 60 * 1000) /* a receive with no progress this long ends */
#define RESUME_WINDOW_MS (60 * 1000)     /* a sender keeps reconnecting this long */
#define SPACE_MARGIN     (16ull << 20)
#define STAGED_HOLD_MS   (2 * 60 * 1000) /* staged layers wait this long for the migration */

/* ---- the files of a VM ---- */

static bool file_name_ok(const char *n)
{
	size_t l = strlen(n);
	return l && l < 256 && n[0] != '.' && !strchr(n, '/') &&
	       !(l >= 5 && !strcmp(n + l - 5, ".part"));
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct relocate_file *)a)->name,
	              ((const struct relocate_file *)b)->name);
}

int relocate_list_files(const char *dir, struct relocate_file *out, size_t max, size_t *n)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int ret = 0;

	*n = 0;
	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		struct stat st;
		if (!file_name_ok(e->d_name) || fstatat(dirfd(d), e->d_name, &st, 0) < 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		if (*n == max) {
			ret = -E2BIG;
			break;
		}
		struct relocate_file *f = &out[(*n)++];
		snprintf(f->name, sizeof(f->name), "%s", e->d_name);
		f->size = (uint64_t)st.st_size;
		f->allocated = (uint64_t)st.st_blocks * 512;
	}
	closedir(d);
	qsort(out, *n, sizeof(*out), by_name);
	return ret;
}

/* ---- the destination ---- */

struct relo_recv {
	struct hostd *h;
	char name[VM_NAME_MAX + 1];
	char ds[64];
	char dir[PATH_MAX];
	char vmx[PATH_MAX + 300];
	char source[128];
	size_t n, vmx_index;
	struct nfc_xfer *x;
	uint64_t *sizes;
	bool offered;
	bool staging; /* files for a live migration with --storage: no .vmx, kept */
	atomic_bool committed;
};

/* Every layer of every disk of c is a file of the VM's own directory dir
 * (not a linked clone's base elsewhere, not some other file of the host);
 * else why names the first that is not. */
static bool chains_inside(const char *dir, const struct vmcfg *c, char *why, size_t whylen)
{
	size_t dl = strlen(dir);
	for (unsigned i = 0; i < c->ndisks; i++) {
		char cur[PATH_MAX];
		if (strncmp(c->disks[i].path, dir, dl) != 0 || c->disks[i].path[dl] != '/' ||
		    strchr(c->disks[i].path + dl + 1, '/')) {
			snprintf(why, whylen, "disk %s is outside its directory", c->disks[i].path);
			return false;
		}
		snprintf(cur, sizeof(cur), "%s", c->disks[i].path);
		for (int depth = 0; depth < DISK_MAX_CHAIN && vmm_disk_is_delta_name(cur);
		     depth++) {
			char parent[300], e[200];
			uint64_t size;
			if (vmm_delta_info(cur, parent, sizeof(parent), &size, NULL, e, sizeof(e)) <
			    0) {
				snprintf(why, whylen, "%s", e);
				return false;
			}
			if (strchr(parent, '/')) {
				snprintf(why, whylen, "disk %u sits on %s", i, parent);
				return false;
			}
			snprintf(cur, sizeof(cur), "%s/%s", dir, parent);
		}
	}
	return true;
}

/* The .vmx arrived (complete, checked, in place): everything must be here;
 * then the VM is registered. Runs on the NFC connection's thread. */
static int commit_register(struct nfc_xfer *vx, void *arg, char *err, size_t errlen)
{
	struct relo_recv *r = arg;
	struct hostd_inventory *inv = r->h->inventory;

	for (size_t i = 0; i < r->n; i++) {
		struct nfc_xfer *x = &r->x[i];
		struct stat st;
		if (x == vx)
			continue;
		pthread_mutex_lock(&x->m);
		bool done = x->done;
		pthread_mutex_unlock(&x->m);
		if (!done) {
			snprintf(err, errlen, "%s has not arrived: the .vmx comes last",
			         strrchr(x->path, '/') + 1);
			return -EPROTO;
		}
		if (stat(x->path, &st) < 0 || (uint64_t)st.st_size != r->sizes[i]) {
			snprintf(err, errlen, "%s has %lld bytes here, %" PRIu64 " were announced",
			         strrchr(x->path, '/') + 1, (long long)st.st_size, r->sizes[i]);
			return -EPROTO;
		}
	}
	/* what came is what was announced: disks and their layers all in here */
	struct vmcfg c;
	char cerr[400], why[400];
	if (vmcfg_load(r->vmx, &c, cerr, sizeof(cerr)) < 0) {
		snprintf(err, errlen, "the .vmx that came does not load: %s", cerr);
		return -EINVAL;
	}
	bool inside = chains_inside(r->dir, &c, why, sizeof(why));
	vmcfg_free(&c);
	if (!inside) {
		snprintf(err, errlen, "VM %s as it came: %s", r->name, why);
		return -EINVAL;
	}
	vmsnap_clear_clones(r->dir, r->name); /* its linked clones stayed behind */
	pthread_mutex_lock(&inv->lock);
	if (inv_find(inv, r->name)) {
		pthread_mutex_unlock(&inv->lock);
		snprintf(err, errlen, "host %s registered another VM named %s meanwhile",
		         r->h->cfg.name, r->name);
		return -EEXIST;
	}
	struct vm *v = inv_add(inv, r->vmx, r->ds);
	if (!v || !v->valid || strcmp(v->name, r->name) != 0) {
		snprintf(err, errlen, "host %s cannot register %s: %s", r->h->cfg.name, r->vmx,
		         !v          ? "the inventory is full"
		         : !v->valid ? v->error
		                     : "the .vmx that came names another VM");
		if (v)
			inv_drop(inv, v);
		pthread_mutex_unlock(&inv->lock);
		return -EINVAL;
	}
	char ss[PATH_MAX + 300];
	vmrun_suspend_path(r->dir, r->name, ss, sizeof(ss));
	bool suspended = access(ss, F_OK) == 0;
	v->state = suspended ? VMS_SUSPENDED : VMS_POWERED_OFF;
	snprintf(v->reason, sizeof(v->reason), "cold-migrated here from %s", r->source);
	inv_save(inv);
	pthread_mutex_unlock(&inv->lock);
	atomic_store(&r->committed, true);
	hostd_event(r->h, r->name, "-", "cold-migrated here from %s (%s, into %s)", r->source,
	            suspended ? "suspended" : "powered off", r->dir);
	return 0;
}

static void recv_free(struct relo_recv *r)
{
	for (size_t i = 0; i < r->n; i++) {
		if (r->offered)
			hostd_nfc_withdraw(r->h, &r->x[i]);
		nfc_xfer_destroy(&r->x[i]);
	}
	free(r->x);
	free(r->sizes);
	free(r);
}

/* Withdraws the transfers; removes the directory unless the VM arrived. */
static bool recv_end(struct relo_recv *r)
{
	for (size_t i = 0; r->offered && i < r->n; i++)
		hostd_nfc_withdraw(r->h, &r->x[i]);
	r->offered = false;
	bool arrived = atomic_load(&r->committed);
	if (!arrived) {
		int ret = util_rm_tree(r->dir);
		if (ret < 0)
			log_warn("removing %s: %s", r->dir, strerror(-ret));
	}
	return arrived;
}

/* A transfer that failed in a way no reconnection mends: the sender gave
 * up, a chunk was damaged, the disk here failed, the commit failed. */
static bool failed_for_good(int e)
{
	return e < 0 && e != -ECONNRESET && e != -EPIPE && e != -ETIMEDOUT && e != -ECONNABORTED &&
	       e != -ENOTCONN && e != -EHOSTUNREACH && e != -ENETUNREACH;
}

static void *recv_worker(struct hostd_task *t, void *arg)
{
	char failure[400] = "";
	struct relo_recv *r = arg;
	uint64_t last = 0, idle_since = util_now_ms(), total = 0;

	for (size_t i = 0; i < r->n; i++)
		total += r->sizes[i];
	task_set_detail(t, "vm", r->name);
	task_set_detail(t, "source", r->source);
	task_set_detail(t, "kind", "cold");
	task_progress(t, 5, "waiting for the source");
	for (;;) {
		if (atomic_load(&r->committed))
			break;
		uint64_t got = 0, at = 0;
		bool all = true;
		for (size_t i = 0; i < r->n; i++) {
			pthread_mutex_lock(&r->x[i].m);
			got += r->x[i].received;
			at += r->x[i].done ? r->sizes[i] : r->x[i].verified;
			all &= r->x[i].done;
			if (!r->x[i].busy && !failure[0] && failed_for_good(r->x[i].error))
				snprintf(failure, sizeof(failure), "%s: %s",
				         strrchr(r->x[i].path, '/') + 1, r->x[i].why);
			pthread_mutex_unlock(&r->x[i].m);
		}
		if (failure[0])
			break;
		if (r->staging && all) {
			/* staged: the live migration's prepare takes the directory on */
			char mark[PATH_MAX + 16];
			snprintf(mark, sizeof(mark), "%s/%s", r->dir, RELOCATE_STAGED);
			if (util_write_file_atomic(mark, "staged\n", 7, 0644) == 0)
				atomic_store(&r->committed, true);
			else
				snprintf(failure, sizeof(failure), "cannot write %s", mark);
			continue;
		}
		uint64_t now = util_now_ms();
		if (got != last) {
			last = got;
			idle_since = now;
			char b[32];
			snprintf(b, sizeof(b), "%" PRIu64, got);
			task_set_detail(t, "received_bytes", b);
			task_progress(t, 5 + (unsigned)(total ? at * 90 / total : 0), "receiving");
		}
		if (task_cancelled(t) || now - idle_since > RECEIVE_IDLE_MS)
			break;
		usleep(100 * 1000);
	}
	bool cancelled = task_cancelled(t);
	/* a commit under way ends first: the sender must hear its DONE */
	for (int i = 0; i < 100 && r->vmx_index < r->n; i++) {
		pthread_mutex_lock(&r->x[r->vmx_index].m);
		bool busy = r->x[r->vmx_index].busy;
		pthread_mutex_unlock(&r->x[r->vmx_index].m);
		if (!busy || !atomic_load(&r->committed))
			break;
		usleep(100 * 1000);
	}
	if (recv_end(r))
		task_finish(t, 0, "VM %s arrived from %s: %zu files in %s", r->name, r->source,
		            r->n, r->dir);
	else if (failure[0])
		task_finish(t, VMK__STATUS__STATUS_FAILED,
		            "VM %s was not received from %s: %s; %s removed", r->name, r->source,
		            failure, r->dir);
	else
		task_finish(t,
		            cancelled ? VMK__STATUS__STATUS_CANCELLED : VMK__STATUS__STATUS_TIMEOUT,
		            "VM %s: receiving it from %s %s; %s removed", r->name, r->source,
		            cancelled ? "was cancelled" : "stalled for 5 minutes", r->dir);
	recv_free(r);
	return NULL;
}

/* The .vmx that will come, loaded from a scratch copy in dir: its disks
 * must be files of the VM's own directory. 0 or a status with err. */
static int check_vmx(const char *dir, const char *name, const char *text, char *err, size_t errlen)
{
	char tmp[PATH_MAX + 300], cerr[400] = "";
	struct vmcfg c;
	int status = 0;

	snprintf(tmp, sizeof(tmp), "%s/.%s.vmx.check", dir, name);
	if (util_write_file_atomic(tmp, text, strlen(text), 0600) < 0) {
		snprintf(err, errlen, "cannot write in %s: %s", dir, strerror(errno));
		return VMK__STATUS__STATUS_FAILED;
	}
	if (vmcfg_load(tmp, &c, cerr, sizeof(cerr)) < 0) {
		unlink(tmp);
		snprintf(err, errlen, "the VM's .vmx does not load here: %s", cerr);
		return VMK__STATUS__STATUS_FAILED;
	}
	unlink(tmp);
	size_t dl = strlen(dir);
	for (unsigned i = 0; i < c.ndisks; i++)
		if (strncmp(c.disks[i].path, dir, dl) != 0 || c.disks[i].path[dl] != '/' ||
		    strchr(c.disks[i].path + dl + 1, '/')) {
			snprintf(err, errlen,
			         "VM %s has disk %s outside its directory: a cold migration moves "
			         "only the VM's own directory",
			         name, c.disks[i].path);
			status = VMK__STATUS__STATUS_USAGE;
			break;
		}
	vmcfg_free(&c);
	return status;
}

/* The shared case: the VM's .vmx, of the same uuid, is on this host's
 * datastore of that name, which is marked shared. 1 with real set, 0. */
static int sees_shared(struct hostd *h, const Vmk__VmRelocatePrepareRequest *p, char *real,
                       size_t reallen)
{
	const char *colon = strchr(p->source_datastore_path, ':');
	char ds[64], root[PATH_MAX], path[PATH_MAX + 300], r[PATH_MAX], cerr[200];
	struct vmcfg c;

	if (!colon || (size_t)(colon - p->source_datastore_path) >= sizeof(ds) || !p->uuid[0] ||
	    strstr(colon + 1, ".."))
		return 0;
	snprintf(ds, sizeof(ds), "%.*s", (int)(colon - p->source_datastore_path),
	         p->source_datastore_path);
	if (strcmp(ds, p->datastore) != 0 || !hostd_datastore_shared(h->datastores, ds) ||
	    hostd_datastore_path(h->datastores, ds, root, sizeof(root)) < 0)
		return 0;
	snprintf(path, sizeof(path), "%s/%s", root, colon + 1);
	if (!realpath(path, r) || vmcfg_load(r, &c, cerr, sizeof(cerr)) < 0)
		return 0;
	int same = c.uuid && !strcmp(c.uuid, p->uuid);
	vmcfg_free(&c);
	if (same)
		snprintf(real, reallen, "%s", r);
	return same;
}

static int prepare_shared(struct hostd_call *call, const Vmk__VmRelocatePrepareRequest *p,
                          const char *real)
{
	struct hostd *h = call->h;
	struct hostd_inventory *inv = h->inventory;
	int status = VMK__STATUS__STATUS_OK;

	pthread_mutex_lock(&inv->lock);
	struct vm *v = inv_add(inv, real, p->datastore);
	if (!v || !v->valid) {
		status = hostd_fail(call, VMK__STATUS__STATUS_FAILED,
		                    "host %s cannot register %s: %s", h->cfg.name, real,
		                    v ? v->error : "the inventory is full");
		if (v)
			inv_drop(inv, v);
	} else {
		char ss[PATH_MAX + 300];
		vmrun_suspend_path(v->dir, v->name, ss, sizeof(ss));
		v->state = access(ss, F_OK) == 0 ? VMS_SUSPENDED : VMS_POWERED_OFF;
		snprintf(v->reason, sizeof(v->reason),
		         "cold-migrated here from %s (shared datastore)", p->source_host);
		inv_save(inv);
	}
	pthread_mutex_unlock(&inv->lock);
	if (status)
		return status;
	hostd_event(h, p->name, call->user,
	            "registered from shared datastore %s for a cold migration from %s",
	            p->datastore, p->source_host);
	Vmk__VmRelocatePrepareResponse *r = arena_alloc(call->a, sizeof(*r));
	if (!r)
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED, "out of memory");
	vmk__vm_relocate_prepare_response__init(r);
	r->shared = true;
	r->datastore_path = p->source_datastore_path;
	call->resp->body_case = VMK__RESPONSE__BODY_VM_RELOCATE_PREPARE;
	call->resp->vm_relocate_prepare = r;
	return VMK__STATUS__STATUS_OK;
}

int hostd_op_vm_relocate_prepare(struct hostd_call *call, const Vmk__Request *req)
{
	struct hostd *h = call->h;
	struct hostd_inventory *inv = h->inventory;
	const Vmk__VmRelocatePrepareRequest *p = req->vm_relocate_prepare;
	char why[256], root[PATH_MAX], err[600], real[PATH_MAX];
	int status;

	if (!util_valid_name(p->name, VM_NAME_MAX, why, sizeof(why)))
		return hostd_fail(call, VMK__STATUS__STATUS_USAGE, "VM name \"%.100s\": %s",
		                  p->name, why);
	if (hostd_datastore_path(h->datastores, p->datastore, root, sizeof(root)) < 0)
		return hostd_fail(
		        call, VMK__STATUS__STATUS_NOT_FOUND,
		        "host %s has no datastore named \"%s\" (see storage datastore list "
		        "there; --datastore picks one)",
		        h->cfg.name, p->datastore);
	pthread_mutex_lock(&inv->lock);
	struct vm *other = inv_find(inv, p->name);
	pthread_mutex_unlock(&inv->lock);
	if (other)
		return hostd_fail(call, VMK__STATUS__STATUS_CONFLICT,
		                  "host %s already has a VM named %s: unregister or rename one",
		                  h->cfg.name, p->name);
	if (!p->staging && sees_shared(h, p, real, sizeof(real)))
		return prepare_shared(call, p, real);

	/* what will come */
	char vmxname[VM_NAME_MAX + 8];
	size_t vmx_index = SIZE_MAX;
	uint64_t need = SPACE_MARGIN;
	snprintf(vmxname, sizeof(vmxname), "%s.vmx", p->name);
	if (p->n_files < 1 || p->n_files > RELOCATE_MAX_FILES || (!p->staging && !p->vmx_text[0]) ||
	    strlen(p->vmx_text) > (1u << 20))
		return hostd_fail(call, VMK__STATUS__STATUS_USAGE,
		                  "a cold migration sends 1 to %d files and the .vmx",
		                  RELOCATE_MAX_FILES);
	for (size_t i = 0; i < p->n_files; i++) {
		const Vmk__VmFile *f = p->files[i];
		if (!file_name_ok(f->name) || f->size > (16ull << 40))
			return hostd_fail(call, VMK__STATUS__STATUS_USAGE,
			                  "file \"%.100s\": not a file name this host takes",
			                  f->name);
		for (size_t k = 0; k < i; k++)
			if (!strcmp(p->files[k]->name, f->name))
				return hostd_fail(call, VMK__STATUS__STATUS_USAGE,
				                  "file %s is named twice", f->name);
		if (!strcmp(f->name, vmxname))
			vmx_index = i;
		need += f->allocated < f->size ? f->allocated : f->size;
	}
	if (vmx_index == SIZE_MAX && !p->staging)
		return hostd_fail(call, VMK__STATUS__STATUS_USAGE,
		                  "the files of VM %s do not include %s", p->name, vmxname);
	if (vmx_index != SIZE_MAX && p->staging)
		return hostd_fail(call, VMK__STATUS__STATUS_USAGE,
		                  "staged files of VM %s include %s: the live migration brings it",
		                  p->name, vmxname);
	struct statvfs sv;
	if (statvfs(root, &sv) == 0 && (uint64_t)sv.f_bavail * sv.f_frsize < need)
		return hostd_fail(call, VMK__STATUS__STATUS_CONFLICT,
		                  "datastore %s of host %s has %" PRIu64
		                  " MiB free, VM %s needs %" PRIu64
		                  " MiB: free space there or pick "
		                  "another with --datastore",
		                  p->datastore, h->cfg.name,
		                  (uint64_t)sv.f_bavail * sv.f_frsize >> 20, p->name, need >> 20);

	struct relo_recv *r = calloc(1, sizeof(*r));
	if (!r || !(r->x = calloc(p->n_files, sizeof(*r->x))) ||
	    !(r->sizes = calloc(p->n_files, sizeof(*r->sizes)))) {
		if (r) {
			free(r->x);
			free(r);
		}
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED, "out of memory");
	}
	r->h = h;
	snprintf(r->name, sizeof(r->name), "%s", p->name);
	snprintf(r->ds, sizeof(r->ds), "%s", p->datastore);
	snprintf(r->source, sizeof(r->source), "%s", p->source_host[0] ? p->source_host : "?");
	snprintf(r->dir, sizeof(r->dir), "%s/%s", root, p->name);
	snprintf(r->vmx, sizeof(r->vmx), "%s/%s", r->dir, vmxname);
	r->vmx_index = vmx_index;
	r->staging = p->staging;
	char mark[PATH_MAX + 16];
	snprintf(mark, sizeof(mark), "%s/%s", r->dir, RELOCATE_STAGED);
	if (p->staging && access(mark, F_OK) == 0)
		util_rm_tree(r->dir); /* what an earlier attempt staged and never used */
	if (mkdir(r->dir, 0755) < 0) {
		int e = errno;
		free(r->x);
		free(r->sizes);
		free(r);
		return hostd_fail(
		        call,
		        e == EEXIST ? VMK__STATUS__STATUS_CONFLICT : VMK__STATUS__STATUS_FAILED,
		        "host %s: %s/%s: %s%s", h->cfg.name, root, p->name, strerror(e),
		        e == EEXIST ? " (a VM directory of that name is there already)" : "");
	}
	if (!p->staging &&
	    (status = check_vmx(r->dir, r->name, p->vmx_text, err, sizeof(err))) != 0) {
		recv_end(r);
		recv_free(r);
		return hostd_fail(call, status, "host %s: %s", h->cfg.name, err);
	}
	for (size_t i = 0; i < p->n_files; i++) {
		char tok[NFC_TOKEN_HEX + 1], path[PATH_MAX + 300];
		uint8_t rnd[NFC_TOKEN_HEX / 2];
		if (util_random(rnd, sizeof(rnd)) < 0) {
			recv_end(r);
			recv_free(r);
			return hostd_fail(call, VMK__STATUS__STATUS_FAILED,
			                  "no randomness for a token");
		}
		util_hex(rnd, sizeof(rnd), tok);
		snprintf(path, sizeof(path), "%s/%s", r->dir, p->files[i]->name);
		nfc_xfer_init(&r->x[i], tok, path);
		r->sizes[i] = p->files[i]->size;
		r->n++;
	}
	if (!p->staging) {
		r->x[vmx_index].commit = commit_register;
		r->x[vmx_index].commit_arg = r;
	}

	struct nfc_endpoint e;
	if (hostd_nfc_endpoint(h, &e, err, sizeof(err)) < 0) {
		recv_end(r);
		recv_free(r);
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED, "host %s: %s", h->cfg.name,
		                  err);
	}
	r->offered = true;
	for (size_t i = 0; i < r->n; i++)
		if (hostd_nfc_offer(h, &r->x[i]) < 0) {
			recv_end(r);
			recv_free(r);
			return hostd_fail(call, VMK__STATUS__STATUS_CONFLICT,
			                  "host %s: too many NFC transfers at once; try again",
			                  h->cfg.name);
		}
	Vmk__VmRelocatePrepareResponse *resp = arena_alloc(call->a, sizeof(*resp));
	char **tokens = arena_calloc(call->a, r->n + 1, sizeof(char *));
	for (size_t i = 0; tokens && i < r->n; i++)
		tokens[i] = arena_strdup(call->a, r->x[i].token);
	if (!resp || !tokens) {
		recv_end(r);
		recv_free(r);
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED, "out of memory");
	}
	vmk__vm_relocate_prepare_response__init(resp);
	resp->address = arena_strdup(call->a, e.addr);
	resp->port = e.port;
	resp->tokens = tokens;
	resp->n_tokens = r->n;
	resp->interface = arena_strdup(call->a, e.vmk);
	resp->netstack = arena_strdup(call->a, e.netstack);
	resp->note = arena_strdup(call->a, e.note);
	resp->datastore_path = arena_printf(call->a, "%s:%s/%s", r->ds, r->name, vmxname);
	if (e.note[0])
		log_info("vm %s: incoming cold migration: %s", r->name, e.note);
	struct hostd_task *t =
	        task_start(h->tasks, "vm.relocate.receive", r->name, call->user, recv_worker, r);
	if (!t) {
		recv_end(r);
		recv_free(r);
		return hostd_fail(call, VMK__STATUS__STATUS_CONFLICT,
		                  "host %s: cannot start a task", h->cfg.name);
	}
	resp->task_id = arena_strdup(call->a, task_id(t));
	task_put(t);
	call->resp->body_case = VMK__RESPONSE__BODY_VM_RELOCATE_PREPARE;
	call->resp->vm_relocate_prepare = resp;
	return VMK__STATUS__STATUS_OK;
}

/* ---- the source: sending files ---- */

struct copier {
	const struct net_route *r;
	const struct relocate_send_file *f;
	size_t n;
	uint64_t max_bps;
	struct nfc_progress *prog;
	atomic_size_t current;
	atomic_bool cancel, finished;
	int result;
	char err[600];
};

static void *copier_main(void *arg)
{
	struct copier *c = arg;
	int nsfd = -1;

	c->result = 0;
	if (c->r->netns[0] && (nsfd = netns_open(c->r->netns)) < 0) {
		c->result = nsfd;
		snprintf(c->err, sizeof(c->err), "netstack %s: %s", c->r->netns, strerror(-nsfd));
	}
	for (size_t i = 0; c->result == 0 && i < c->n; i++) {
		char e[500];
		atomic_store(&c->current, i);
		c->prog[i].max_bps = c->max_bps;
		c->result = nfc_send_path(nsfd, c->r->host, c->r->port, c->f[i].path, c->f[i].token,
		                          &c->prog[i], NULL, &c->cancel, RESUME_WINDOW_MS, e,
		                          sizeof(e));
		if (c->result < 0) {
			char e2[300];
			snprintf(c->err, sizeof(c->err), "%s: %s", c->f[i].label, e);
			/* the destination stops waiting and removes what it has */
			int a = nfc_abort(nsfd, c->r->host, c->r->port, c->f[i].token, e2,
			                  sizeof(e2));
			if (a == -EALREADY)
				c->result = 0; /* it had the whole file: only its DONE was lost */
			else if (a < 0)
				log_info("nfc: telling %s the copy ended: %s", c->r->host, e2);
		}
	}
	if (nsfd >= 0)
		close(nsfd);
	atomic_store(&c->finished, true);
	return NULL;
}

int relocate_send_files(struct hostd_task *t, const struct net_route *r,
                        const struct relocate_send_file *f, size_t n, uint64_t max_bps,
                        unsigned pct_from, unsigned pct_to, uint64_t *sent, unsigned *reconnects,
                        char *err, size_t errlen)
{
	struct copier c = { .r = r, .f = f, .n = n, .max_bps = max_bps };
	uint64_t total = 0;
	pthread_t th;

	*sent = 0;
	*reconnects = 0;
	if (!n)
		return 0;
	if (!(c.prog = calloc(n, sizeof(*c.prog)))) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		total += f[i].size;
	if (pthread_create(&th, NULL, copier_main, &c) != 0) {
		free(c.prog);
		snprintf(err, errlen, "cannot start the copy");
		return -EAGAIN;
	}
	while (!atomic_load(&c.finished)) {
		usleep(100 * 1000);
		if (task_cancelled(t))
			atomic_store(&c.cancel, true);
		size_t cur = atomic_load(&c.current);
		uint64_t at = 0, s = 0;
		for (size_t i = 0; i < n; i++) {
			s += atomic_load(&c.prog[i].sent_all);
			at += i < cur ? f[i].size : i == cur ? atomic_load(&c.prog[i].offset) : 0;
		}
		task_set_detail_u64(t, "transferred_bytes", s);
		char ph[300];
		snprintf(ph, sizeof(ph), "copying %s (%zu of %zu)", f[cur].label, cur + 1, n);
		task_progress(
		        t, pct_from + (unsigned)(total ? at * (pct_to - pct_from) / total : 0), ph);
	}
	pthread_join(th, NULL);
	for (size_t i = 0; i < n; i++) {
		*sent += atomic_load(&c.prog[i].sent_all);
		*reconnects += (unsigned)atomic_load(&c.prog[i].resumes);
	}
	free(c.prog);
	if (c.result < 0)
		snprintf(err, errlen, "%s", c.err);
	return c.result;
}

/* ---- the source of a cold migration ---- */

struct relo_send {
	struct hostd *h;
	char name[VM_NAME_MAX + 1];
	char dir[PATH_MAX];
	char dest[128], user[TASK_USER_MAX];
	struct net_route route;
	enum vm_state prev;
	bool shared;
	bool staging; /* frozen files ahead of a live --storage: the VM stays */
	uint64_t max_bps;
	size_t n;
	char (*files)[256];
	char (*tokens)[NFC_TOKEN_HEX + 1];
	uint64_t *sizes;
};

static void send_free(struct relo_send *j)
{
	free(j->files);
	free(j->tokens);
	free(j->sizes);
	free(j);
}

static void *send_worker(struct hostd_task *t, void *arg)
{
	struct relo_send *j = arg;
	struct hostd_inventory *inv = j->h->inventory;
	uint64_t t0 = util_now_ms(), sent = 0;
	unsigned resumes = 0;
	char err[600] = "";
	int result = 0;

	task_set_detail(t, "vm", j->name);
	task_set_detail(t, "source", j->h->cfg.name);
	task_set_detail(t, "destination", j->dest);
	task_set_detail(t, "kind", "cold");
	if (j->route.stream[0])
		task_set_detail(t, "stream", j->route.stream);
	if (j->route.notes[0])
		task_set_detail(t, "network_note", j->route.notes);
	task_set_detail_u64(t, "files", j->n);
	struct relocate_send_file *f = calloc(j->n + 1, sizeof(*f));
	char(*paths)[PATH_MAX + 300] = calloc(j->n + 1, sizeof(*paths));
	if (!f || !paths) {
		result = -ENOMEM;
		snprintf(err, sizeof(err), "out of memory");
	}
	for (size_t i = 0; !result && i < j->n; i++) {
		snprintf(paths[i], sizeof(paths[i]), "%s/%s", j->dir, j->files[i]);
		f[i] = (struct relocate_send_file){ .path = paths[i],
			                            .token = j->tokens[i],
			                            .size = j->sizes[i],
			                            .label = j->files[i] };
	}
	/* the .vmx is files[n - 1]: its arrival commits the migration */
	if (!result)
		result = relocate_send_files(t, &j->route, f, j->n, j->max_bps, 5, 95, &sent,
		                             &resumes, err, sizeof(err));
	free(f);
	free(paths);
	task_set_detail_u64(t, "total_ms", util_now_ms() - t0);
	task_set_detail_u64(t, "downtime_ms", 0);
	task_set_detail_u64(t, "transferred_bytes", sent);
	task_set_detail_u64(t, "iterations", 1);
	task_set_detail_u64(t, "reconnects", resumes);
	if (j->staging) {
		if (result != 0) {
			pthread_mutex_lock(&inv->lock);
			struct vm *sv = inv_find(inv, j->name);
			if (sv)
				sv->staged_until_ms = 0;
			pthread_mutex_unlock(&inv->lock);
		}
		if (result == 0)
			task_finish(t, 0, "VM %s: %zu frozen files staged on %s", j->name, j->n,
			            j->dest);
		else
			task_finish(t,
			            result == -ECANCELED ? VMK__STATUS__STATUS_CANCELLED
			                                 : VMK__STATUS__STATUS_FAILED,
			            "VM %s: staging its frozen files on %s failed: %s", j->name,
			            j->dest, err);
		send_free(j);
		return NULL;
	}
	pthread_mutex_lock(&inv->lock);
	struct vm *v = inv_find(inv, j->name);
	if (result == 0) {
		/* the destination has every file verified and the VM registered */
		if (v) {
			inv_drop(inv, v);
			inv_save(inv);
		}
		pthread_mutex_unlock(&inv->lock);
		if (!j->shared) {
			int ret = util_rm_tree(j->dir);
			if (ret < 0)
				log_warn("vm %s: removing %s: %s", j->name, j->dir, strerror(-ret));
		}
		hostd_event(j->h, j->name, j->user,
		            "cold-migrated to %s%s (%zu files, %" PRIu64 " bytes sent)", j->dest,
		            j->shared ? " on the shared datastore" : "", j->n, sent);
		task_finish(t, 0, "VM %s cold-migrated to %s (%" PRIu64 " bytes copied)", j->name,
		            j->dest, sent);
	} else {
		if (v) {
			v->state = j->prev;
			inv_save(inv);
		}
		pthread_mutex_unlock(&inv->lock);
		bool cancelled = result == -ECANCELED;
		hostd_event(j->h, j->name, j->user, "cold migration to %s %s: %s", j->dest,
		            cancelled ? "cancelled" : "failed", err);
		task_finish(t,
		            cancelled ? VMK__STATUS__STATUS_CANCELLED : VMK__STATUS__STATUS_FAILED,
		            "VM %s: cold migration to %s %s: %s; it stays on %s, intact", j->name,
		            j->dest, cancelled ? "cancelled" : "failed", err, j->h->cfg.name);
	}
	send_free(j);
	return NULL;
}

int hostd_op_vm_relocate(struct hostd_call *call, const Vmk__Request *req)
{
	struct hostd *h = call->h;
	struct hostd_inventory *inv = h->inventory;
	const Vmk__VmMigrateRequest *m = req->vm_migrate;
	struct relocate_file have[RELOCATE_MAX_FILES];
	size_t nhave = 0;
	char why[400];

	if (!m->shared && (m->n_files < 1 || m->n_files > RELOCATE_MAX_FILES ||
	                   m->n_files != m->n_file_tokens || !m->dest_address[0] ||
	                   strlen(m->dest_address) > 255 || !m->dest_port || m->dest_port > 65535))
		return hostd_fail(call, VMK__STATUS__STATUS_USAGE,
		                  "a cold migration needs the destination's address, port, and a "
		                  "token per file (from its prepare)");
	for (size_t i = 0; !m->shared && i < m->n_files; i++)
		if (strlen(m->file_tokens[i]) != NFC_TOKEN_HEX || !file_name_ok(m->files[i]))
			return hostd_fail(call, VMK__STATUS__STATUS_USAGE,
			                  "file %.100s: a bad name or token", m->files[i]);
	struct relo_send *j = calloc(1, sizeof(*j));
	size_t n = m->shared ? 0 : m->n_files;
	if (!j || (n && (!(j->files = calloc(n, sizeof(*j->files))) ||
	                 !(j->tokens = calloc(n, sizeof(*j->tokens))) ||
	                 !(j->sizes = calloc(n, sizeof(*j->sizes)))))) {
		if (j)
			send_free(j);
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED, "out of memory");
	}
	pthread_mutex_lock(&inv->lock);
	struct vm *v = inv_find(inv, m->name);
	int status = 0;
	struct vmlock_owner o;
	if (!v) {
		status = hostd_fail(call, VMK__STATUS__STATUS_NOT_FOUND,
		                    "no VM named \"%s\" on this host; see vm list", m->name);
	} else if (vm_state_check(v->state, VMOP_MIGRATE, v->name, why, sizeof(why)) < 0) {
		status = hostd_fail(call, VMK__STATUS__STATUS_CONFLICT, "%s", why);
	} else if (!m->staging && v->state != VMS_POWERED_OFF && v->state != VMS_SUSPENDED) {
		status =
		        hostd_fail(call, VMK__STATUS__STATUS_CONFLICT,
		                   "VM %s is %s: a cold migration moves a powered-off or suspended "
		                   "VM; migrate it live (without --cold) or power it off first",
		                   v->name, vm_state_name(v->state));
	} else if (!m->staging && vmlock_read(v->dir, &o, NULL, 0) == 0) {
		status = hostd_fail(call, VMK__STATUS__STATUS_CONFLICT,
		                    "VM %s: host %s holds its datastore lock (it runs there)",
		                    v->name, o.host);
	} else if (vmsnap_pinned(v->dir, v->name, why, sizeof(why))) {
		status = hostd_fail(call, VMK__STATUS__STATUS_CONFLICT,
		                    "VM %s cannot move: the linked clone in %s sits on its disks",
		                    v->name, why);
	} else if (!chains_inside(v->dir, &v->cfg, why, sizeof(why))) {
		status = hostd_fail(call, VMK__STATUS__STATUS_CONFLICT,
		                    "VM %s depends on files outside its directory (%s): a linked "
		                    "clone cannot move away from its base; make a full clone of it "
		                    "(vm clone) to move that",
		                    v->name, why);
	} else if (n && relocate_list_files(v->dir, have, RELOCATE_MAX_FILES, &nhave) < 0) {
		status = hostd_fail(call, VMK__STATUS__STATUS_FAILED, "VM %s: cannot list %s",
		                    v->name, v->dir);
	}
	/* exactly the files the destination prepared for, the .vmx last */
	char vmxname[VM_NAME_MAX + 8];
	snprintf(vmxname, sizeof(vmxname), "%s.vmx", m->name);
	if (!status && n && m->staging) {
		/* frozen files only: not the .vmx, a disk's top or the serial log */
		for (size_t i = 0; !status && i < n; i++) {
			size_t f;
			bool live =
			        !strcmp(m->files[i], vmxname) || !strcmp(m->files[i], "serial.log");
			for (unsigned d = 0; d < v->cfg.ndisks; d++) {
				const char *b = strrchr(v->cfg.disks[d].path, '/');
				live |= b && !strcmp(b + 1, m->files[i]);
			}
			for (f = 0; f < nhave && strcmp(have[f].name, m->files[i]); f++)
				;
			if (live || f == nhave)
				status = hostd_fail(
				        call, VMK__STATUS__STATUS_USAGE,
				        "VM %s: %s is not a frozen file of its directory", m->name,
				        m->files[i]);
			else {
				snprintf(j->files[i], sizeof(j->files[i]), "%s", m->files[i]);
				snprintf(j->tokens[i], sizeof(j->tokens[i]), "%s",
				         m->file_tokens[i]);
				j->sizes[i] = have[f].size;
			}
		}
	} else if (!status && n) {
		bool same = nhave == n, has_vmx = false;
		size_t k = 0;
		for (size_t i = 0; same && i < n; i++) {
			size_t f;
			for (f = 0; f < nhave && strcmp(have[f].name, m->files[i]); f++)
				;
			if (f == nhave) {
				same = false;
				break;
			}
			bool is_vmx = !strcmp(m->files[i], vmxname);
			has_vmx |= is_vmx;
			size_t at = is_vmx ? n - 1 : k++;
			snprintf(j->files[at], sizeof(j->files[at]), "%s", m->files[i]);
			snprintf(j->tokens[at], sizeof(j->tokens[at]), "%s", m->file_tokens[i]);
			j->sizes[at] = have[f].size;
		}
		if (!same || !has_vmx)
			status = hostd_fail(
			        call, VMK__STATUS__STATUS_CONFLICT,
			        "VM %s: its files changed since the destination prepared for "
			        "them; run the migration again",
			        m->name);
	}
	if (status) {
		pthread_mutex_unlock(&inv->lock);
		send_free(j);
		return status;
	}
	j->h = h;
	j->n = n;
	j->shared = m->shared;
	j->staging = m->staging;
	j->prev = v->state;
	j->max_bps = (uint64_t)m->max_bandwidth_mibps << 20;
	snprintf(j->name, sizeof(j->name), "%s", v->name);
	snprintf(j->dir, sizeof(j->dir), "%s", v->dir);
	if (!j->staging) { /* staging leaves it as it is: it may run */
		v->state = VMS_MIGRATING;
		inv_save(inv);
	} else {
		/* the staged layers must stay as sent until the live migration */
		v->staged_until_ms = util_now_ms() + STAGED_HOLD_MS;
	}
	pthread_mutex_unlock(&inv->lock);
	snprintf(j->dest, sizeof(j->dest), "%s", m->dest_host[0] ? m->dest_host : m->dest_address);
	snprintf(j->user, sizeof(j->user), "%s", call->user);
	if (n)
		hostd_network_route(h, NET_TAG_PROVISIONING, "NFC ", j->dest, m->dest_address,
		                    m->dest_port, m->dest_interface, m->dest_note, &j->route);
	char name[VM_NAME_MAX + 1];
	snprintf(name, sizeof(name), "%s", j->name);
	enum vm_state prev = j->prev;
	bool staging = j->staging;
	status = hostd_task_start_reply(call, staging ? "vm.migrate.stage" : "vm.migrate", name,
	                                send_worker, j);
	if (status != VMK__STATUS__STATUS_OK) {
		pthread_mutex_lock(&inv->lock);
		if (!staging && (v = inv_find(inv, name))) {
			v->state = prev;
			inv_save(inv);
		}
		pthread_mutex_unlock(&inv->lock);
		send_free(j);
	}
	return status;
}
