/* Clones (vm clone): a full copy of a VM under a new name, a new uuid and
 * so new MACs, its disks as disk<N>.img. On this host a raw disk is copied
 * with a reflink where the file system can, else copy_file_range over its
 * data (holes stay holes), and a disk with snapshots is copied flat as its
 * chain reads; on another host they go over NFC as in a cold migration
 * (relocate.c), the clone's .vmx last, whose arrival registers the clone
 * there. A running VM keeps running: its disks are frozen under temporary
 * deltas for the copy and consolidated after (vmsnap_freeze). A powered-off
 * source is kept from powering on while its disks are read. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
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
#include "relocate.h"
#include "task.h"
#include "util.h"
#include "vmm/disk.h"
#include "vmm/vmcfg.h"
#include "vmsnap.h"

struct clone_job {
	struct hostd *h;
	char name[VM_NAME_MAX + 1], new_name[VM_NAME_MAX + 1];
	char user[TASK_USER_MAX];
	char src_dir[PATH_MAX];
	enum vm_state prev;
	bool running; /* the source runs: its disks are frozen for the copy */
	bool linked;  /* deltas over a snapshot of the source, not copies */
	size_t ndisks;
	char disks[VMCFG_MAX_DISKS][256]; /* file names in the source's directory */
	uint64_t sizes[VMCFG_MAX_DISKS];
	char *vmx_text; /* the clone's */
	/* on this host */
	char ds[64];
	char dir[PATH_MAX]; /* the clone's directory, made by the request */
	/* on another */
	bool remote;
	char dest[128];
	struct net_route route;
	char tokens[VMCFG_MAX_DISKS + 1][NFC_TOKEN_HEX + 1];
	uint64_t max_bps;
};

/* A disk of the source as one flat file: a raw one by reflink or
 * copy_file_range, a snapshot chain as it reads. */
static int copy_disk(const char *src, const char *dst, uint64_t *copied, char *err, size_t errlen)
{
	struct stat st;
	uint64_t n = 0;
	int ret;

	if (vmm_delta_probe(src) == 1) {
		ret = vmm_disk_copy_flat(src, dst, &n, err, errlen);
		*copied += n;
		return ret;
	}
	ret = nfc_copy_local(src, dst, err, errlen);
	if (ret == 0 && stat(dst, &st) == 0)
		*copied += (uint64_t)st.st_blocks * 512;
	return ret;
}

static int register_clone(struct clone_job *j, char *err, size_t errlen);

/* On this host: the disks, then the .vmx, then the registration. */
static int clone_here(struct hostd_task *t, struct clone_job *j, uint64_t *copied, char *err,
                      size_t errlen)
{
	int ret = 0;

	for (size_t i = 0; i < j->ndisks && ret == 0; i++) {
		char src[PATH_MAX + 300], dst[PATH_MAX + 300], ph[300];
		if (task_cancelled(t)) {
			snprintf(err, errlen, "cancelled");
			return -ECANCELED;
		}
		snprintf(ph, sizeof(ph), "copying %s (%zu of %zu)", j->disks[i], i + 1, j->ndisks);
		task_progress(t, 5 + (unsigned)(i * 85 / j->ndisks), ph);
		snprintf(src, sizeof(src), "%s/%s", j->src_dir, j->disks[i]);
		snprintf(dst, sizeof(dst), "%s/disk%zu.img", j->dir, i);
		ret = copy_disk(src, dst, copied, err, errlen);
	}
	if (ret < 0)
		return ret;
	return register_clone(j, err, errlen);
}

/* The clone's .vmx written into its directory, and the clone registered. */
static int register_clone(struct clone_job *j, char *err, size_t errlen)
{
	struct hostd_inventory *inv = j->h->inventory;
	char vmx[PATH_MAX + 300];
	int ret;

	snprintf(vmx, sizeof(vmx), "%s/%s.vmx", j->dir, j->new_name);
	if ((ret = util_write_file_atomic(vmx, j->vmx_text, strlen(j->vmx_text), 0644)) < 0) {
		snprintf(err, errlen, "writing %s: %s", vmx, strerror(-ret));
		return ret;
	}
	pthread_mutex_lock(&inv->lock);
	struct vm *v = inv_find(inv, j->new_name) ? NULL : inv_add(inv, vmx, j->ds);
	if (!v || !v->valid) {
		snprintf(err, errlen, "cannot register %s: %s", vmx,
		         v ? v->error : "the name was taken meanwhile, or the inventory is full");
		if (v)
			inv_drop(inv, v);
		ret = -EINVAL;
	} else {
		snprintf(v->reason, sizeof(v->reason), "cloned from %s", j->name);
		inv_save(inv);
	}
	pthread_mutex_unlock(&inv->lock);
	return ret;
}

/* On another host: the disks and the clone's .vmx over NFC. */
static int clone_there(struct hostd_task *t, struct clone_job *j, uint64_t *sent,
                       unsigned *reconnects, char *err, size_t errlen)
{
	struct relocate_send_file f[VMCFG_MAX_DISKS + 1];
	char paths[VMCFG_MAX_DISKS + 1][PATH_MAX + 300], vmxname[VM_NAME_MAX + 8];
	char labels[VMCFG_MAX_DISKS][32];
	bool flat[VMCFG_MAX_DISKS] = { false };
	int ret = 0;

	snprintf(vmxname, sizeof(vmxname), "%s.vmx", j->new_name);
	for (size_t i = 0; i < j->ndisks; i++) {
		snprintf(paths[i], sizeof(paths[i]), "%s/%s", j->src_dir, j->disks[i]);
		snprintf(labels[i], sizeof(labels[i]), "disk%zu.img", i);
		if (vmm_delta_probe(paths[i]) == 1) {
			/* a snapshot chain goes as one flat file, made here first */
			char tmp[PATH_MAX + 300];
			uint64_t n;
			snprintf(tmp, sizeof(tmp), "%s/.%s-disk%zu.img.clone", j->src_dir,
			         j->new_name, i);
			task_progress(t, 5, "flattening the snapshot chain");
			if ((ret = vmm_disk_copy_flat(paths[i], tmp, &n, err, errlen)) < 0)
				goto out;
			snprintf(paths[i], sizeof(paths[i]), "%s", tmp);
			flat[i] = true;
		}
		f[i] = (struct relocate_send_file){ .path = paths[i],
			                            .token = j->tokens[i],
			                            .size = j->sizes[i],
			                            .label = labels[i] };
	}
	/* the clone's .vmx, from a hidden file next to the source's (no VM file) */
	snprintf(paths[j->ndisks], sizeof(paths[j->ndisks]), "%s/.%s.vmx.clone", j->src_dir,
	         j->new_name);
	if ((ret = util_write_file_atomic(paths[j->ndisks], j->vmx_text, strlen(j->vmx_text),
	                                  0644)) < 0) {
		snprintf(err, errlen, "writing %s: %s", paths[j->ndisks], strerror(-ret));
		goto out;
	}
	f[j->ndisks] = (struct relocate_send_file){ .path = paths[j->ndisks],
		                                    .token = j->tokens[j->ndisks],
		                                    .size = strlen(j->vmx_text),
		                                    .label = vmxname };
	ret = relocate_send_files(t, &j->route, f, j->ndisks + 1, j->max_bps, 5, 95, sent,
	                          reconnects, err, errlen);
	unlink(paths[j->ndisks]);
out:
	for (size_t i = 0; i < j->ndisks; i++)
		if (flat[i])
			unlink(paths[i]);
	return ret;
}

/* A linked clone: a snapshot of the source, and the clone's disks deltas
 * over its frozen layers (nothing is copied). */
static int clone_linked(struct hostd_task *t, struct clone_job *j, char *err, size_t errlen)
{
	char layers[VMCFG_MAX_DISKS][PATH_MAX];
	unsigned n = 0;
	int ret;

	task_progress(t, 10, "snapshotting the source");
	if (vmsnap_link(j->h, t, j->name, j->dir, layers, &n, err, errlen) != 0)
		return -EIO;
	if (n != j->ndisks) {
		snprintf(err, errlen, "VM %s: %u snapshot layers for %zu disks", j->name, n,
		         j->ndisks);
		return -EIO;
	}
	task_progress(t, 60, "creating the clone's delta disks");
	for (unsigned i = 0; i < n; i++) {
		char path[PATH_MAX + 300];
		snprintf(path, sizeof(path), "%s/disk%u.delta", j->dir, i);
		if ((ret = vmm_delta_create(path, layers[i], err, errlen)) < 0)
			return ret;
	}
	return register_clone(j, err, errlen);
}

static void *clone_worker(struct hostd_task *t, void *arg)
{
	struct clone_job *j = arg;
	struct hostd_inventory *inv = j->h->inventory;
	uint64_t t0 = util_now_ms(), bytes = 0;
	unsigned reconnects = 0;
	char err[600] = "";
	int ret;

	task_set_detail(t, "vm", j->name);
	task_set_detail(t, "clone", j->new_name);
	task_set_detail(t, "source", j->h->cfg.name);
	task_set_detail(t, "destination", j->remote ? j->dest : j->h->cfg.name);
	task_set_detail(t, "kind", "full");
	if (j->remote && j->route.stream[0])
		task_set_detail(t, "stream", j->route.stream);
	struct vmsnap_freeze fz = { .n = 0 };
	ret = 0;
	if (j->linked) {
		task_set_detail(t, "kind", "linked");
		ret = clone_linked(t, j, err, sizeof(err));
	} else if (j->running) {
		/* the copy reads frozen layers; the guest writes on above them */
		task_progress(t, 3, "freezing the running VM's disks");
		if ((ret = vmsnap_freeze(j->h, j->name, &fz, err, sizeof(err))) == 0)
			for (size_t i = 0; i < j->ndisks && i < fz.n; i++)
				snprintf(j->disks[i], sizeof(j->disks[i]), "%s", fz.tops[i]);
	}
	if (ret == 0 && j->linked)
		; /* done above */
	else if (ret == 0 && j->remote)
		ret = clone_there(t, j, &bytes, &reconnects, err, sizeof(err));
	else if (ret == 0)
		ret = clone_here(t, j, &bytes, err, sizeof(err));
	if (fz.n) {
		char e2[400];
		task_progress(t, 96, "consolidating the running VM's disks");
		if (vmsnap_thaw(j->h, &fz, e2, sizeof(e2)) < 0)
			log_warn("clone %s of %s: the source's disks: %s", j->new_name, j->name,
			         e2);
	}
	task_set_detail_u64(t, "total_ms", util_now_ms() - t0);
	task_set_detail_u64(t, "transferred_bytes", bytes);
	if (j->remote)
		task_set_detail_u64(t, "reconnects", reconnects);
	if (ret < 0 && !j->remote) {
		int r = util_rm_tree(j->dir);
		if (r < 0)
			log_warn("clone %s: removing %s: %s", j->new_name, j->dir, strerror(-r));
		if (j->linked) { /* the snapshot made for it goes too */
			char e2[400];
			if (vmsnap_unlink_failed(j->h, t, j->name, j->dir, e2, sizeof(e2)) < 0)
				log_warn("clone %s: %s", j->new_name, e2);
		}
	}
	pthread_mutex_lock(&inv->lock);
	struct vm *v = inv_find(inv, j->name);
	if (v && v->state == VMS_CLONING) {
		v->state = j->prev;
		inv_save(inv);
	}
	pthread_mutex_unlock(&inv->lock);
	if (ret == 0) {
		hostd_event(j->h, j->name, j->user, "cloned as %s%s%s", j->new_name,
		            j->remote ? " on " : "", j->remote ? j->dest : "");
		task_finish(t, 0, "VM %s cloned as %s on %s", j->name, j->new_name,
		            j->remote ? j->dest : j->h->cfg.name);
	} else {
		bool cancelled = ret == -ECANCELED;
		task_finish(t,
		            cancelled ? VMK__STATUS__STATUS_CANCELLED : VMK__STATUS__STATUS_FAILED,
		            "clone %s of VM %s %s: %s; nothing of it is left", j->new_name, j->name,
		            cancelled ? "cancelled" : "failed", err);
	}
	free(j->vmx_text);
	free(j);
	return NULL;
}

/* Checks of the request against the source VM (lock held); fills j. */
static int clone_source(struct hostd_call *call, const Vmk__VmCloneRequest *m, struct vm *v,
                        struct clone_job *j)
{
	char why[400], uuid[37];
	char *text = NULL;
	size_t tl = 0, ol = 0;

	if (vm_state_check(v->state, VMOP_CLONE, v->name, why, sizeof(why)) < 0)
		return hostd_fail(call, VMK__STATUS__STATUS_CONFLICT, "%s", why);
	size_t dl = strlen(v->dir);
	for (unsigned i = 0; i < v->cfg.ndisks; i++) {
		const char *p = v->cfg.disks[i].path;
		struct stat st;
		if (strncmp(p, v->dir, dl) != 0 || p[dl] != '/' || strchr(p + dl + 1, '/'))
			return hostd_fail(
			        call, VMK__STATUS__STATUS_USAGE,
			        "VM %s has disk %s outside its directory: a clone copies the "
			        "VM's own disks only",
			        v->name, p);
		char parent[300], e[200];
		if (stat(p, &st) < 0)
			return hostd_fail(call, VMK__STATUS__STATUS_FAILED, "VM %s: disk %s: %s",
			                  v->name, p, strerror(errno));
		snprintf(j->disks[i], sizeof(j->disks[i]), "%s", p + dl + 1);
		j->sizes[i] = (uint64_t)st.st_size;
		if (vmm_delta_probe(p) == 1 &&
		    vmm_delta_info(p, parent, sizeof(parent), &j->sizes[i], NULL, e, sizeof(e)) < 0)
			return hostd_fail(call, VMK__STATUS__STATUS_FAILED, "VM %s: %s", v->name,
			                  e);
	}
	j->ndisks = v->cfg.ndisks;
	if (util_read_file(v->path, 1u << 20, &text, &tl) < 0)
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED, "VM %s: cannot read %s",
		                  v->name, v->path);
	util_uuid4(uuid);
	char *named = NULL;
	int ret = vmcfg_clone_text(text, m->new_name, uuid, &named, &ol, why, sizeof(why));
	free(text);
	/* the clone's disks are flat disk<N>.img, whatever layers the source has */
	char dn[VMCFG_MAX_DISKS][32];
	const char *dp[VMCFG_MAX_DISKS];
	for (unsigned i = 0; i < v->cfg.ndisks; i++) {
		snprintf(dn[i], sizeof(dn[i]), m->linked ? "disk%u.delta" : "disk%u.img", i);
		dp[i] = dn[i];
	}
	if (ret == 0 && v->cfg.ndisks) {
		ret = vmcfg_set_disk_paths(named, dp, v->cfg.ndisks, &j->vmx_text, &ol, why,
		                           sizeof(why));
		free(named);
	} else if (ret == 0) {
		j->vmx_text = named;
	}
	if (ret < 0)
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED, "VM %s: %s", v->name, why);
	snprintf(j->src_dir, sizeof(j->src_dir), "%s", v->dir);
	snprintf(j->ds, sizeof(j->ds), "%s", m->datastore[0] ? m->datastore : v->datastore);
	return 0;
}

/* The clone's home on this host (lock held). */
static int clone_home(struct hostd_call *call, struct clone_job *j)
{
	struct hostd *h = call->h;
	char root[PATH_MAX];
	uint64_t need = 16ull << 20;
	struct statvfs sv;

	if (inv_find(h->inventory, j->new_name))
		return hostd_fail(call, VMK__STATUS__STATUS_CONFLICT,
		                  "a VM named %s is already registered on this host: pick another "
		                  "--name",
		                  j->new_name);
	if (hostd_datastore_path(h->datastores, j->ds, root, sizeof(root)) < 0)
		return hostd_fail(
		        call, VMK__STATUS__STATUS_NOT_FOUND,
		        "no datastore named \"%s\" on this host; see storage datastore list",
		        j->ds);
	for (size_t i = 0; i < j->ndisks; i++) {
		char p[PATH_MAX + 300];
		struct stat st;
		snprintf(p, sizeof(p), "%s/%s", j->src_dir, j->disks[i]);
		if (stat(p, &st) == 0)
			need += (uint64_t)st.st_blocks * 512;
	}
	if (statvfs(root, &sv) == 0 && (uint64_t)sv.f_bavail * sv.f_frsize < need)
		return hostd_fail(call, VMK__STATUS__STATUS_CONFLICT,
		                  "datastore %s has %" PRIu64 " MiB free, the clone needs %" PRIu64
		                  " MiB: free space there or pick another with --datastore",
		                  j->ds, (uint64_t)sv.f_bavail * sv.f_frsize >> 20, need >> 20);
	snprintf(j->dir, sizeof(j->dir), "%s/%s", root, j->new_name);
	if (mkdir(j->dir, 0755) < 0) {
		int e = errno;
		return hostd_fail(
		        call,
		        e == EEXIST ? VMK__STATUS__STATUS_CONFLICT : VMK__STATUS__STATUS_FAILED,
		        "%s: %s%s", j->dir, strerror(e),
		        e == EEXIST ? " (a VM directory of that name is there already)" : "");
	}
	return 0;
}

/* A clone on another host: the files its prepare expects are the disks,
 * in order, then NEW.vmx. */
static int clone_remote(struct hostd_call *call, const Vmk__VmCloneRequest *m, struct clone_job *j)
{
	char vmxname[VM_NAME_MAX + 8];

	snprintf(vmxname, sizeof(vmxname), "%s.vmx", m->new_name);
	if (!m->dest_address[0] || strlen(m->dest_address) > 255 || !m->dest_port ||
	    m->dest_port > 65535 || m->n_files != j->ndisks + 1 || m->n_file_tokens != m->n_files)
		return hostd_fail(
		        call, VMK__STATUS__STATUS_USAGE,
		        "a clone to another host needs its address, port, and a token for "
		        "each disk and the .vmx (from its prepare)");
	for (size_t i = 0; i < m->n_files; i++) {
		char dname[32];
		snprintf(dname, sizeof(dname), "disk%zu.img", i);
		const char *want = i < j->ndisks ? dname : vmxname;
		if (strcmp(m->files[i], want) != 0 || strlen(m->file_tokens[i]) != NFC_TOKEN_HEX)
			return hostd_fail(call, VMK__STATUS__STATUS_USAGE,
			                  "clone file %zu: expected %s with a token, got %.100s", i,
			                  want, m->files[i]);
		snprintf(j->tokens[i], sizeof(j->tokens[i]), "%s", m->file_tokens[i]);
	}
	j->remote = true;
	j->max_bps = (uint64_t)m->max_bandwidth_mibps << 20;
	snprintf(j->dest, sizeof(j->dest), "%s", m->dest_host[0] ? m->dest_host : m->dest_address);
	hostd_network_route(call->h, NET_TAG_PROVISIONING, "NFC ", j->dest, m->dest_address,
	                    m->dest_port, m->dest_interface, m->dest_note, &j->route);
	return 0;
}

int hostd_op_vm_clone(struct hostd_call *call, const Vmk__Request *req)
{
	struct hostd_inventory *inv = call->h->inventory;
	const Vmk__VmCloneRequest *m = req->vm_clone;
	char why[256];
	int status;

	if (!util_valid_name(m->new_name, VM_NAME_MAX, why, sizeof(why)))
		return hostd_fail(call, VMK__STATUS__STATUS_USAGE, "--name \"%.100s\": %s",
		                  m->new_name, why);
	if (m->linked && m->dest_address[0])
		return hostd_fail(
		        call, VMK__STATUS__STATUS_USAGE,
		        "--linked: a linked clone's disks sit on its source's, so it stays on "
		        "the source's host; drop --dest, or make a full clone");
	struct clone_job *j = calloc(1, sizeof(*j));
	if (!j)
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED, "out of memory");
	j->h = call->h;
	snprintf(j->name, sizeof(j->name), "%s", m->name);
	snprintf(j->new_name, sizeof(j->new_name), "%s", m->new_name);
	snprintf(j->user, sizeof(j->user), "%s", call->user);
	pthread_mutex_lock(&inv->lock);
	struct vm *v = inv_find(inv, m->name);
	if (!v)
		status = hostd_fail(call, VMK__STATUS__STATUS_NOT_FOUND,
		                    "no VM named \"%s\" on this host; see vm list", m->name);
	else if (!strcmp(m->name, m->new_name))
		status = hostd_fail(call, VMK__STATUS__STATUS_USAGE,
		                    "--name %s is the VM's own name: a clone needs a new one",
		                    m->name);
	else if (!(status = clone_source(call, m, v, j)))
		status = m->dest_address[0] ? clone_remote(call, m, j) : clone_home(call, j);
	if (status) {
		pthread_mutex_unlock(&inv->lock);
		free(j->vmx_text);
		free(j);
		return status;
	}
	j->prev = v->state;
	j->running = v->state == VMS_POWERED_ON;
	j->linked = m->linked;
	if (!j->linked) { /* a running one runs on, but nothing else starts on it */
		v->state = VMS_CLONING;
		inv_save(inv);
	}
	pthread_mutex_unlock(&inv->lock);
	char name[VM_NAME_MAX + 1], dir[PATH_MAX];
	snprintf(name, sizeof(name), "%s", j->name);
	snprintf(dir, sizeof(dir), "%s", j->remote ? "" : j->dir);
	enum vm_state prev = j->prev;
	char *text = j->vmx_text;
	status = hostd_task_start_reply(call, "vm.clone", name, clone_worker, j);
	if (status != VMK__STATUS__STATUS_OK) {
		pthread_mutex_lock(&inv->lock);
		if ((v = inv_find(inv, name)) && v->state == VMS_CLONING) {
			v->state = prev;
			inv_save(inv);
		}
		pthread_mutex_unlock(&inv->lock);
		if (dir[0])
			util_rm_tree(dir);
		free(text);
		free(j);
	}
	return status;
}
