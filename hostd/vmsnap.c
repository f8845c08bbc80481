/* VM snapshots (vm snapshot create|list|revert|remove).
 *
 * A snapshot freezes each disk's top layer and puts a new, empty delta
 * over it (vmm/disk.h) that takes the writes from then on; with --memory
 * it also keeps the running VM's state stream, saved while the guest was
 * paused for the switch. The tree lives in <dir>/<name>.vmsd: per
 * snapshot its id, name, parent, the layer it froze on each disk and its
 * memory file; and which snapshot the present state descends from.
 *
 * Revert puts a new delta over the snapshot's layers (the present top,
 * which no snapshot froze, is deleted) and, for a memory snapshot, leaves
 * the VM suspended at that point (vmkctl resumes it). Remove merges the
 * layer above the snapshot's into it when only one layer sits on it:
 * online through the vmx when that layer is the running top, offline
 * otherwise (the running vmx reads the same bytes either way).
 *
 * Crash order: new layers are created before the .vmx names them, the
 * .vmx is rewritten before the vmx switches, the .vmsd last; a crash in
 * between leaves a chain that opens and reads the same. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <libconfig.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "confload.h"
#include "dispatch.h"
#include "events.h"
#include "ft.h"
#include "inventory_int.h"
#include "log.h"
#include "migrate/nfc.h"
#include "task.h"
#include "util.h"
#include "vmm/disk.h"
#include "vmm/vmcfg.h"
#include "vmrun.h"
#include "vmsnap.h"

#define SNAP_MAX        32
#define SNAP_NAME_MAX   64
#define SNAPDB_EXT      ".vmsd"
#define SNAPMEM_EXT     ".vmsn"
#define SNAP_MAX_CLONES 8

static pthread_mutex_t snap_m = PTHREAD_MUTEX_INITIALIZER; /* one snapshot operation at a time */

struct snap {
	unsigned id, parent;
	char name[SNAP_NAME_MAX + 1];
	char created[32];
	char memory[256]; /* file in the VM's directory, "" */
	unsigned ndisks;
	char disks[VMCFG_MAX_DISKS][256]; /* the layer it froze, per disk */
	unsigned nclones;
	char clones[SNAP_MAX_CLONES][PATH_MAX]; /* linked clones' directories on its layers */
};

struct snapdb {
	unsigned n, current, next_id, next_layer;
	struct snap s[SNAP_MAX];
};

/* ---- the .vmsd ---- */

static void db_path(const char *dir, const char *vm, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s/%s%s", dir, vm, SNAPDB_EXT);
}

static bool plain_name(const char *n)
{
	return n[0] && n[0] != '.' && !strchr(n, '/') && strlen(n) < 256;
}

static int db_load(const char *dir, const char *vm, struct snapdb *db, char *err, size_t errlen)
{
	char path[PATH_MAX + 300];
	config_t cfg;
	int ival;

	memset(db, 0, sizeof(*db));
	db->next_id = db->next_layer = 1;
	db_path(dir, vm, path, sizeof(path));
	if (access(path, F_OK) != 0)
		return 0;
	if (conf_read(&cfg, path, 1u << 20, err, errlen) < 0) {
		config_destroy(&cfg);
		return -EINVAL;
	}
	int ret = 0;
	if (config_lookup_int(&cfg, "current", &ival))
		db->current = (unsigned)ival;
	if (config_lookup_int(&cfg, "next_id", &ival) && ival > 0)
		db->next_id = (unsigned)ival;
	if (config_lookup_int(&cfg, "next_layer", &ival) && ival > 0)
		db->next_layer = (unsigned)ival;
	config_setting_t *list = config_lookup(&cfg, "snapshots");
	for (int i = 0; list && i < config_setting_length(list) && !ret; i++) {
		config_setting_t *g = config_setting_get_elem(list, (unsigned)i), *ds;
		const char *name = NULL, *created = "", *mem = "";
		int id = 0, parent = 0;
		struct snap *s = &db->s[db->n];
		if (db->n == SNAP_MAX || !g || !config_setting_lookup_int(g, "id", &id) ||
		    id <= 0 || !config_setting_lookup_string(g, "name", &name) ||
		    strlen(name) > SNAP_NAME_MAX) {
			ret = -EINVAL;
			break;
		}
		config_setting_lookup_int(g, "parent", &parent);
		config_setting_lookup_string(g, "created", &created);
		config_setting_lookup_string(g, "memory", &mem);
		memset(s, 0, sizeof(*s));
		s->id = (unsigned)id;
		s->parent = parent > 0 ? (unsigned)parent : 0;
		snprintf(s->name, sizeof(s->name), "%s", name);
		snprintf(s->created, sizeof(s->created), "%s", created);
		if (mem[0] && !plain_name(mem))
			ret = -EINVAL;
		snprintf(s->memory, sizeof(s->memory), "%s", mem);
		config_setting_t *cl = config_setting_get_member(g, "clones");
		for (int k = 0; cl && k < config_setting_length(cl) && !ret; k++) {
			const char *c = config_setting_get_string_elem(cl, (unsigned)k);
			if (!c || c[0] != '/' || s->nclones == SNAP_MAX_CLONES ||
			    strlen(c) >= sizeof(s->clones[0]))
				ret = -EINVAL;
			else
				snprintf(s->clones[s->nclones++], sizeof(s->clones[0]), "%s", c);
		}
		ds = config_setting_get_member(g, "disks");
		for (int k = 0; ds && k < config_setting_length(ds) && !ret; k++) {
			const char *d = config_setting_get_string_elem(ds, (unsigned)k);
			if (!d || !plain_name(d) || s->ndisks == VMCFG_MAX_DISKS)
				ret = -EINVAL;
			else
				snprintf(s->disks[s->ndisks++], sizeof(s->disks[0]), "%s", d);
		}
		db->n++;
	}
	config_destroy(&cfg);
	if (ret < 0)
		snprintf(err, errlen, "%s: a snapshot entry is damaged; fix or remove the file",
		         path);
	return ret;
}

static int db_save(const char *dir, const char *vm, const struct snapdb *db)
{
	char path[PATH_MAX + 300], *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return -ENOMEM;
	fprintf(f, "# vmk snapshot tree of VM %s: written by hostd\n", vm);
	fprintf(f, "current = %u;\nnext_id = %u;\nnext_layer = %u;\nsnapshots = (", db->current,
	        db->next_id, db->next_layer);
	for (unsigned i = 0; i < db->n; i++) {
		const struct snap *s = &db->s[i];
		fprintf(f, "%s\n  { id = %u; parent = %u; name = ", i ? "," : "", s->id, s->parent);
		conf_put_string(f, s->name);
		fprintf(f, "; created = ");
		conf_put_string(f, s->created);
		fprintf(f, "; memory = ");
		conf_put_string(f, s->memory);
		fprintf(f, ";\n    disks = [");
		for (unsigned k = 0; k < s->ndisks; k++) {
			fprintf(f, "%s", k ? ", " : " ");
			conf_put_string(f, s->disks[k]);
		}
		fprintf(f, " ];");
		if (s->nclones) {
			fprintf(f, "\n    clones = [");
			for (unsigned k = 0; k < s->nclones; k++) {
				fprintf(f, "%s", k ? ", " : " ");
				conf_put_string(f, s->clones[k]);
			}
			fprintf(f, " ];");
		}
		fprintf(f, " }");
	}
	fprintf(f, "\n);\n");
	if (fclose(f) != 0) {
		free(buf);
		return -ENOMEM;
	}
	db_path(dir, vm, path, sizeof(path));
	int ret = util_write_file_atomic(path, buf, len, 0644);
	free(buf);
	return ret;
}

static struct snap *db_find(struct snapdb *db, const char *key)
{
	char *end;
	unsigned long id = strtoul(key, &end, 10);

	for (unsigned i = 0; i < db->n; i++)
		if (!strcmp(db->s[i].name, key) || (!*end && key[0] && db->s[i].id == id))
			return &db->s[i];
	return NULL;
}

static struct snap *db_by_id(struct snapdb *db, unsigned id)
{
	for (unsigned i = 0; id && i < db->n; i++)
		if (db->s[i].id == id)
			return &db->s[i];
	return NULL;
}

/* The first linked clone of s that still exists (its directory), or NULL. */
static const char *pinned_by(const struct snap *s)
{
	for (unsigned k = 0; k < s->nclones; k++)
		if (access(s->clones[k], F_OK) == 0)
			return s->clones[k];
	return NULL;
}

int vmsnap_pinned(const char *dir, const char *vm, char *who, size_t wholen)
{
	struct snapdb db;
	char err[300];

	/* no snap_m: callers hold the inventory lock, which snapshot operations
	 * take inside snap_m; the file is replaced whole, so a read sees a tree */
	int ret = db_load(dir, vm, &db, err, sizeof(err));
	for (unsigned i = 0; ret == 0 && i < db.n; i++) {
		const char *c = pinned_by(&db.s[i]);
		if (c) {
			snprintf(who, wholen, "%s (on snapshot %s)", c, db.s[i].name);
			return 1;
		}
	}
	return 0;
}

/* ---- the VM ---- */

struct snap_job {
	struct hostd *h;
	char op[16];
	char vm[VM_NAME_MAX + 1];
	char snapshot[SNAP_NAME_MAX + 1];
	bool memory;
	char user[TASK_USER_MAX];
};

/* What a snapshot operation needs of the VM, read under the lock. */
struct vmview {
	char name[VM_NAME_MAX + 1];
	char dir[PATH_MAX], path[PATH_MAX], rundir[PATH_MAX];
	enum vm_state state; /* as it was found (before a claim) */
	bool running;        /* a vmx runs it */
	unsigned ndisks;
	char disks[VMCFG_MAX_DISKS][256]; /* file names of the tops, in the VM's directory */
};

enum view_mode {
	VIEW_LOOK,  /* poweredOff, poweredOn or suspended; left as it is */
	VIEW_CLAIM, /* the same, and marked snapshotting until view_release */
	VIEW_CLONE, /* cloning: a clone's freeze and thaw */
	VIEW_ANY,   /* whatever state (snapshot list) */
};

static int view_vm(struct hostd *h, const char *name, struct vmview *w, char *err, size_t errlen,
                   enum view_mode mode)
{
	struct hostd_inventory *inv = h->inventory;
	int ret = 0;

	memset(w, 0, sizeof(*w));
	pthread_mutex_lock(&inv->lock);
	struct vm *v = inv_find(inv, name);
	bool ok_state = mode == VIEW_ANY ? v != NULL
	                : mode == VIEW_CLONE
	                        ? v && v->state == VMS_CLONING
	                        : v && (v->state == VMS_POWERED_OFF || v->state == VMS_POWERED_ON ||
	                                v->state == VMS_SUSPENDED);
	if (!v) {
		snprintf(err, errlen, "no VM named \"%s\" on this host; see vm list", name);
		ret = -ENOENT;
	} else if (!v->valid) {
		snprintf(err, errlen, "VM %s: its .vmx cannot be read: %s", name, v->error);
		ret = -EINVAL;
	} else if (!ok_state) {
		snprintf(err, errlen, "VM %s is %s: wait for that to end (task list)", name,
		         vm_state_name(v->state));
		ret = -EBUSY;
	} else if (mode == VIEW_CLAIM && (ret = hostd_ft_refuse(v, "snapshot", err, errlen)) < 0) {
		/* the checkpoints own its pauses: a revert would power it off */
	} else {
		snprintf(w->name, sizeof(w->name), "%s", v->name);
		snprintf(w->dir, sizeof(w->dir), "%s", v->dir);
		snprintf(w->path, sizeof(w->path), "%s", v->path);
		snprintf(w->rundir, sizeof(w->rundir), "%s", v->rundir);
		w->state = v->state;
		size_t dl = strlen(v->dir);
		for (unsigned i = 0; i < v->cfg.ndisks && !ret; i++) {
			const char *p = v->cfg.disks[i].path;
			if (strncmp(p, v->dir, dl) != 0 || p[dl] != '/' ||
			    strchr(p + dl + 1, '/')) {
				snprintf(err, errlen,
				         "VM %s has disk %s outside its directory: snapshots layer "
				         "the VM's own disks only",
				         name, p);
				ret = -EINVAL;
			} else if (v->cfg.disks[i].readonly) {
				snprintf(err, errlen, "VM %s: disk %s is read-only", name, p);
				ret = -EINVAL;
			} else {
				snprintf(w->disks[w->ndisks++], sizeof(w->disks[0]), "%s",
				         p + dl + 1);
			}
		}
		if (ret == 0 && mode == VIEW_CLAIM && v->staged_until_ms > util_now_ms()) {
			snprintf(err, errlen,
			         "VM %s: a migration with --storage has staged its snapshot files "
			         "and "
			         "is under way; wait for it (task list)",
			         name);
			ret = -EBUSY;
		}
		if (ret == 0 && mode == VIEW_CLAIM) {
			v->state = VMS_SNAPSHOTTING; /* nothing else starts on it meanwhile */
			inv_save(inv);
		}
		w->running = v->pid > 0 && (w->state == VMS_POWERED_ON || mode == VIEW_CLONE);
	}
	pthread_mutex_unlock(&inv->lock);
	return ret;
}

/* Ends a VIEW_CLAIM: the VM's state becomes `to`. */
static void view_release(struct hostd *h, const struct vmview *w, enum vm_state to)
{
	struct hostd_inventory *inv = h->inventory;

	pthread_mutex_lock(&inv->lock);
	struct vm *v = inv_find(inv, w->name);
	if (v && v->state == VMS_SNAPSHOTTING) {
		v->state = to;
		inv_save(inv);
	}
	pthread_mutex_unlock(&inv->lock);
}

/* Rewrites the .vmx with these disk files and reloads it. */
static int set_disks(struct hostd *h, const struct vmview *w, char names[][256], char *err,
                     size_t errlen)
{
	struct hostd_inventory *inv = h->inventory;
	const char *paths[VMCFG_MAX_DISKS];
	char *text = NULL, *out = NULL;
	size_t tl = 0, ol = 0;
	int ret;

	for (unsigned i = 0; i < w->ndisks; i++)
		paths[i] = names[i];
	if ((ret = util_read_file(w->path, 1u << 20, &text, &tl)) < 0) {
		snprintf(err, errlen, "reading %s: %s", w->path, strerror(-ret));
		return ret;
	}
	ret = vmcfg_set_disk_paths(text, paths, w->ndisks, &out, &ol, err, errlen);
	free(text);
	if (ret == 0 && (ret = util_write_file_atomic(w->path, out, ol, 0644)) < 0)
		snprintf(err, errlen, "writing %s: %s", w->path, strerror(-ret));
	free(out);
	pthread_mutex_lock(&inv->lock);
	struct vm *v = inv_find(inv, w->name);
	if (v)
		inv_reload(v);
	pthread_mutex_unlock(&inv->lock);
	return ret;
}

#define VMX_SWITCH_MS (60 * 1000)      /* a switch to new layers (the guest is paused) */
#define VMX_MERGE_MS  (30 * 60 * 1000) /* a consolidation copies a whole layer */

static int vmx_call_t(const char *rundir, Vmx__Request *rq, int timeout_ms, char *err,
                      size_t errlen)
{
	Vmx__Response *rs = NULL;
	int ret = vmrun_vmx_call(rundir, rq, &rs, timeout_ms, err, errlen);

	if (ret == 0 && rs->status != 0) {
		snprintf(err, errlen, "%s", rs->error);
		ret = -EIO;
	}
	if (rs)
		vmx__response__free_unpacked(rs, NULL);
	return ret;
}

/* After a vmx call that failed or timed out: the files each disk of the
 * running vmx writes to now, named in the .vmx (whatever it got done is
 * what the next boot must open). 1 when the vmx answered, 0 when not. */
static int reconcile(struct hostd *h, struct vmview *w)
{
	Vmx__Request rq = VMX__REQUEST__INIT;
	Vmx__Empty e = VMX__EMPTY__INIT;
	Vmx__Response *rs = NULL;
	char err[300], tops[VMCFG_MAX_DISKS][256];

	rq.body_case = VMX__REQUEST__BODY_STATUS;
	rq.status = &e;
	if (vmrun_vmx_call(w->rundir, &rq, &rs, 10000, err, sizeof(err)) < 0)
		return 0;
	const Vmx__StatusInfo *si = rs->status_info;
	bool same = si && si->n_disk_tops == w->ndisks;
	for (unsigned i = 0; same && i < w->ndisks; i++) {
		const char *b = strrchr(si->disk_tops[i], '/');
		snprintf(tops[i], sizeof(tops[i]), "%s", b ? b + 1 : si->disk_tops[i]);
	}
	vmx__response__free_unpacked(rs, NULL);
	if (!same)
		return 0;
	if (memcmp(tops, w->disks, sizeof(tops[0]) * w->ndisks) != 0) {
		if (set_disks(h, w, tops, err, sizeof(err)) < 0)
			log_error("vm %s: naming its disks' present layers in the .vmx: %s",
			          w->name, err);
		memcpy(w->disks, tops, sizeof(tops[0]) * w->ndisks);
	}
	return 1;
}

static void vmx_resume(const char *rundir)
{
	Vmx__Request rq = VMX__REQUEST__INIT;
	Vmx__Empty e = VMX__EMPTY__INIT;
	char err[200];
	rq.body_case = VMX__REQUEST__BODY_RESUME;
	rq.resume = &e;
	if (vmx_call_t(rundir, &rq, VMX_SWITCH_MS, err, sizeof(err)) < 0)
		log_warn("resuming the VM after a snapshot: %s", err);
}

static void now_iso(char *out, size_t outlen)
{
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The deltas of the VM's directory whose recorded parent is `layer`. */
static unsigned children_of(const char *dir, const char *layer, char out[][256], unsigned max)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	unsigned n = 0;

	while (d && (e = readdir(d))) {
		char path[PATH_MAX + 300], parent[300], err[200];
		uint64_t size;
		if (!vmm_disk_is_delta_name(e->d_name) || e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (vmm_delta_info(path, parent, sizeof(parent), &size, NULL, err, sizeof(err)) ==
		            0 &&
		    !strcmp(parent, layer)) {
			if (n < max)
				snprintf(out[n], 256, "%s", e->d_name);
			n++;
		}
	}
	if (d)
		closedir(d);
	return n;
}

static bool frozen_by_any(const struct snapdb *db, const char *layer)
{
	for (unsigned i = 0; i < db->n; i++)
		for (unsigned k = 0; k < db->s[i].ndisks; k++)
			if (!strcmp(db->s[i].disks[k], layer))
				return true;
	return false;
}

/* ---- create ---- */

/* The body of a snapshot operation on a claimed VM: it may set the state
 * the VM ends in (*end starts as the one it was found in). */
typedef int (*snap_op)(struct snap_job *j, struct hostd_task *t, struct vmview *w,
                       enum vm_state *end, char *msg, size_t msglen);

/* Runs op with the VM claimed (snapshotting), released after. */
static int claimed(struct snap_job *j, struct hostd_task *t, snap_op op, char *msg, size_t msglen)
{
	struct vmview w;
	int ret = view_vm(j->h, j->vm, &w, msg, msglen, VIEW_CLAIM);

	if (ret < 0)
		return ret == -ENOENT ? VMK__STATUS__STATUS_NOT_FOUND
		                      : VMK__STATUS__STATUS_CONFLICT;
	enum vm_state end = w.state;
	int status = op(j, t, &w, &end, msg, msglen);
	view_release(j->h, &w, end);
	return status;
}

static int snap_create_in(struct snap_job *j, struct hostd_task *t, struct vmview *w,
                          enum vm_state *end, char *msg, size_t msglen)
{
	(void)end;
	struct snapdb db;
	char err[600], fresh[VMCFG_MAX_DISKS][256], memfile[256] = "", mempath[PATH_MAX + 300];
	int ret;

	bool running = w->running, leave_layers = false;
	char frozen[VMCFG_MAX_DISKS][256];
	memcpy(frozen, w->disks, sizeof(frozen));
	if (!w->ndisks) {
		snprintf(msg, msglen, "VM %s has no disks: a snapshot layers disks (add one)",
		         w->name);
		return VMK__STATUS__STATUS_USAGE;
	}
	if (j->memory && !running) {
		snprintf(msg, msglen, "VM %s is %s: --memory keeps a running VM's memory; drop it",
		         w->name, vm_state_name(w->state));
		return VMK__STATUS__STATUS_USAGE;
	}
	if ((ret = db_load(w->dir, w->name, &db, msg, msglen)) < 0)
		return VMK__STATUS__STATUS_FAILED;
	if (db.n == SNAP_MAX) {
		snprintf(msg, msglen, "VM %s has %d snapshots, the most it can: remove one",
		         w->name, SNAP_MAX);
		return VMK__STATUS__STATUS_CONFLICT;
	}
	char sname[SNAP_NAME_MAX + 1];
	snprintf(sname, sizeof(sname), "%s", j->snapshot[0] ? j->snapshot : "");
	if (!sname[0])
		snprintf(sname, sizeof(sname), "snapshot-%u", db.next_id);
	if (db_find(&db, sname)) {
		snprintf(msg, msglen, "VM %s already has a snapshot named %s: pick another name",
		         w->name, sname);
		return VMK__STATUS__STATUS_CONFLICT;
	}
	/* 1. the new layers, over the present tops */
	task_progress(t, 20, "creating the delta disks");
	unsigned made = 0;
	for (; made < w->ndisks; made++) {
		char path[PATH_MAX + 300];
		snprintf(fresh[made], sizeof(fresh[made]), "disk%u-%06u.delta", made,
		         db.next_layer++);
		snprintf(path, sizeof(path), "%s/%s", w->dir, fresh[made]);
		if (vmm_delta_create(path, w->disks[made], err, sizeof(err)) < 0) {
			snprintf(msg, msglen, "VM %s: %s", w->name, err);
			ret = VMK__STATUS__STATUS_FAILED;
			goto undo_layers;
		}
	}
	/* 2. the memory, with the guest paused from here to the switch */
	unsigned id = db.next_id;
	if (j->memory) {
		task_progress(t, 40, "saving the memory");
		snprintf(memfile, sizeof(memfile), "%s-%u%s", w->name, id, SNAPMEM_EXT);
		snprintf(mempath, sizeof(mempath), "%s/%s", w->dir, memfile);
		Vmx__Request rq = VMX__REQUEST__INIT;
		Vmx__SaveRequest sr = VMX__SAVE_REQUEST__INIT;
		sr.path = mempath;
		rq.body_case = VMX__REQUEST__BODY_SAVE;
		rq.save = &sr;
		if (vmx_call_t(w->rundir, &rq, VMX_SWITCH_MS, err, sizeof(err)) < 0) {
			vmx_resume(w->rundir);
			snprintf(msg, msglen, "VM %s: saving its memory: %s", w->name, err);
			ret = VMK__STATUS__STATUS_FAILED;
			goto undo_layers;
		}
	}
	/* 3. the .vmx names the new layers, 4. the running vmx switches to them */
	task_progress(t, 60, "switching the disks to the new layers");
	if ((ret = set_disks(j->h, w, fresh, err, sizeof(err))) < 0) {
		snprintf(msg, msglen, "VM %s: %s", w->name, err);
		ret = VMK__STATUS__STATUS_FAILED;
		goto undo_memory;
	}
	if (running) {
		Vmx__Request rq = VMX__REQUEST__INIT;
		Vmx__DiskSnapshotRequest ds = VMX__DISK_SNAPSHOT_REQUEST__INIT;
		char abs[VMCFG_MAX_DISKS][PATH_MAX + 300], *ptrs[VMCFG_MAX_DISKS];
		for (unsigned i = 0; i < w->ndisks; i++) {
			snprintf(abs[i], sizeof(abs[i]), "%s/%s", w->dir, fresh[i]);
			ptrs[i] = abs[i];
		}
		ds.deltas = ptrs;
		ds.n_deltas = w->ndisks;
		rq.body_case = VMX__REQUEST__BODY_DISK_SNAPSHOT;
		rq.disk_snapshot = &ds;
		if (vmx_call_t(w->rundir, &rq, VMX_SWITCH_MS, err, sizeof(err)) < 0) {
			/* did it switch after all (a timeout)? the .vmx follows the vmx */
			memcpy(w->disks, fresh, sizeof(fresh[0]) * w->ndisks);
			int answered = reconcile(j->h, w);
			if (!answered || memcmp(w->disks, fresh, sizeof(fresh[0]) * w->ndisks)) {
				char e2[300];
				if (!answered) { /* it may still switch: keep the layers */
					set_disks(j->h, w, frozen, e2, sizeof(e2));
					leave_layers = true;
				}
				snprintf(msg, msglen,
				         "VM %s: its vmx did not switch to the new layers: %s",
				         w->name, err);
				ret = VMK__STATUS__STATUS_FAILED;
				goto undo_memory;
			}
		}
	}
	if (j->memory)
		vmx_resume(w->rundir);
	/* 5. the tree */
	struct snap *s = &db.s[db.n++];
	memset(s, 0, sizeof(*s));
	s->id = id;
	s->parent = db.current;
	snprintf(s->name, sizeof(s->name), "%s", sname);
	now_iso(s->created, sizeof(s->created));
	snprintf(s->memory, sizeof(s->memory), "%s", memfile);
	s->ndisks = w->ndisks;
	for (unsigned i = 0; i < w->ndisks; i++)
		snprintf(s->disks[i], sizeof(s->disks[i]), "%s", frozen[i]);
	db.current = id;
	db.next_id = id + 1;
	if ((ret = db_save(w->dir, w->name, &db)) < 0) {
		snprintf(msg, msglen, "VM %s: writing its snapshot tree: %s", w->name,
		         strerror(-ret));
		return VMK__STATUS__STATUS_FAILED;
	}
	task_set_detail(t, "snapshot", sname);
	task_set_detail_u64(t, "snapshot_id", id);
	hostd_event(j->h, w->name, j->user, "snapshot %s (id %u) created%s", sname, id,
	            j->memory ? " with memory" : "");
	snprintf(msg, msglen, "snapshot %s (id %u) of VM %s created%s", sname, id, w->name,
	         j->memory ? " with its memory" : "");
	return 0;

undo_memory:
	if (j->memory) {
		unlink(mempath);
		vmx_resume(w->rundir);
	}
undo_layers:
	for (unsigned i = 0; i < made && !leave_layers; i++) {
		char path[PATH_MAX + 300];
		snprintf(path, sizeof(path), "%s/%s", w->dir, fresh[i]);
		unlink(path);
	}
	return ret;
}

static int snap_create(struct snap_job *j, struct hostd_task *t, char *msg, size_t msglen)
{
	return claimed(j, t, snap_create_in, msg, msglen);
}

/* ---- revert ---- */

static int snap_revert_in(struct snap_job *j, struct hostd_task *t, struct vmview *w,
                          enum vm_state *end, char *msg, size_t msglen)
{
	struct snapdb db;
	char err[600], fresh[VMCFG_MAX_DISKS][256];
	int ret;

	if ((ret = db_load(w->dir, w->name, &db, msg, msglen)) < 0)
		return VMK__STATUS__STATUS_FAILED;
	struct snap *s = db_find(&db, j->snapshot);
	if (!s) {
		snprintf(msg, msglen, "VM %s has no snapshot %s (see vm snapshot list)", w->name,
		         j->snapshot);
		return VMK__STATUS__STATUS_NOT_FOUND;
	}
	if (s->ndisks != w->ndisks) {
		snprintf(msg, msglen,
		         "snapshot %s has %u disks, VM %s now %u: it cannot be reverted to",
		         s->name, s->ndisks, w->name, w->ndisks);
		return VMK__STATUS__STATUS_CONFLICT;
	}
	/* the new layers first: a failure here changes nothing */
	unsigned made = 0;
	for (; made < w->ndisks; made++) {
		char path[PATH_MAX + 300];
		snprintf(fresh[made], sizeof(fresh[made]), "disk%u-%06u.delta", made,
		         db.next_layer++);
		snprintf(path, sizeof(path), "%s/%s", w->dir, fresh[made]);
		if (vmm_delta_create(path, s->disks[made], err, sizeof(err)) < 0) {
			snprintf(msg, msglen, "VM %s: %s", w->name, err);
			for (unsigned i = 0; i < made; i++) {
				snprintf(path, sizeof(path), "%s/%s", w->dir, fresh[i]);
				unlink(path);
			}
			return VMK__STATUS__STATUS_FAILED;
		}
	}
	bool was_running = w->running;
	if (was_running) {
		task_progress(t, 30, "powering the VM off");
		if (vmrun_power_off_now(j->h, w->name, "powered off to revert to a snapshot",
		                        VMS_SNAPSHOTTING) < 0) {
			snprintf(msg, msglen, "VM %s: it could not be powered off to revert",
			         w->name);
			for (unsigned i = 0; i < made; i++) {
				char path[PATH_MAX + 300];
				snprintf(path, sizeof(path), "%s/%s", w->dir, fresh[i]);
				unlink(path);
			}
			return VMK__STATUS__STATUS_FAILED;
		}
		*end = VMS_POWERED_OFF; /* whatever happens next, it no longer runs */
	}
	char ss[PATH_MAX + 300];
	vmrun_suspend_path(w->dir, w->name, ss, sizeof(ss));
	unlink(ss); /* a suspended present state goes with the present */
	task_progress(t, 60, "switching the disks");
	if ((ret = set_disks(j->h, w, fresh, err, sizeof(err))) < 0) {
		snprintf(msg, msglen, "VM %s: %s", w->name, err);
		return VMK__STATUS__STATUS_FAILED;
	}
	/* the present tops no snapshot froze are the discarded present */
	for (unsigned i = 0; i < w->ndisks; i++)
		if (!frozen_by_any(&db, w->disks[i]) && strstr(w->disks[i], ".delta")) {
			char path[PATH_MAX + 300];
			snprintf(path, sizeof(path), "%s/%s", w->dir, w->disks[i]);
			unlink(path);
		}
	bool suspended = false;
	if (s->memory[0]) {
		char mem[PATH_MAX + 300];
		snprintf(mem, sizeof(mem), "%s/%s", w->dir, s->memory);
		if (nfc_copy_local(mem, ss, err, sizeof(err)) < 0)
			log_warn("vm %s: the memory of snapshot %s: %s", w->name, s->name, err);
		else
			suspended = true;
	}
	*end = suspended ? VMS_SUSPENDED : VMS_POWERED_OFF;
	struct hostd_inventory *inv = j->h->inventory;
	pthread_mutex_lock(&inv->lock);
	struct vm *v = inv_find(inv, w->name);
	if (v) {
		snprintf(v->reason, sizeof(v->reason), "reverted to snapshot %s", s->name);
		inv_save(inv);
	}
	pthread_mutex_unlock(&inv->lock);
	db.current = s->id;
	if ((ret = db_save(w->dir, w->name, &db)) < 0) {
		snprintf(msg, msglen, "VM %s: writing its snapshot tree: %s", w->name,
		         strerror(-ret));
		return VMK__STATUS__STATUS_FAILED;
	}
	task_set_detail(t, "snapshot", s->name);
	task_set_detail(t, "power_state", suspended ? "suspended" : "poweredOff");
	task_set_detail(t, "was_running", was_running ? "true" : "false");
	hostd_event(j->h, w->name, j->user, "reverted to snapshot %s", s->name);
	snprintf(msg, msglen, "VM %s reverted to snapshot %s (%s)", w->name, s->name,
	         suspended ? "suspended at that point" : "powered off");
	return 0;
}

static int snap_revert(struct snap_job *j, struct hostd_task *t, char *msg, size_t msglen)
{
	return claimed(j, t, snap_revert_in, msg, msglen);
}

/* ---- remove ---- */

/* Merges the one layer over `layer` on disk i into it, if there is exactly
 * one; fixes up the .vmx, the tree and the deltas that sat on the merged
 * one. */
static int consolidate(struct snap_job *j, struct vmview *w, struct snapdb *db, unsigned i,
                       const char *layer, char *dead, size_t deadlen, char *msg, size_t msglen)
{
	char kids[4][256], err[600], cpath[PATH_MAX + 300];
	unsigned n = children_of(w->dir, layer, kids, 4);

	if (n != 1)
		return 0; /* nothing sits on it, or branches do: it stays as it is */
	for (unsigned k = 0; k < db->n; k++)
		if (!strcmp(db->s[k].disks[i], kids[0]) && pinned_by(&db->s[k]))
			return 0; /* linked clones read that layer: it stays */
	snprintf(cpath, sizeof(cpath), "%s/%s", w->dir, kids[0]);
	if (!strcmp(kids[0], w->disks[i])) {
		/* the present top: into its parent, which takes the writes again */
		if (w->running) {
			Vmx__Request rq = VMX__REQUEST__INIT;
			Vmx__DiskConsolidateRequest dc = VMX__DISK_CONSOLIDATE_REQUEST__INIT;
			uint32_t idx = i;
			dc.disks = &idx;
			dc.n_disks = 1;
			rq.body_case = VMX__REQUEST__BODY_DISK_CONSOLIDATE;
			rq.disk_consolidate = &dc;
			if (vmx_call_t(w->rundir, &rq, VMX_MERGE_MS, err, sizeof(err)) < 0) {
				/* it may have merged anyway (a timeout): follow what it writes */
				reconcile(j->h, w);
				snprintf(msg, msglen, "VM %s: consolidating disk %u: %s", w->name,
				         i, err);
				return -EIO;
			}
		} else if (vmm_delta_merge(cpath, err, sizeof(err)) < 0) {
			snprintf(msg, msglen, "VM %s: %s", w->name, err);
			return -EIO;
		}
		char tops[VMCFG_MAX_DISKS][256];
		memcpy(tops, w->disks, sizeof(tops));
		snprintf(tops[i], sizeof(tops[i]), "%s", layer);
		if (set_disks(j->h, w, tops, err, sizeof(err)) < 0) {
			snprintf(msg, msglen, "VM %s: %s", w->name, err);
			return -EIO;
		}
		snprintf(w->disks[i], sizeof(w->disks[i]), "%s", layer);
	} else {
		/* a frozen layer: merged offline, what sat on it moves down */
		char above[SNAP_MAX + 2][256];
		unsigned na = children_of(w->dir, kids[0], above, SNAP_MAX + 2);
		if (na > SNAP_MAX + 2) {
			snprintf(msg, msglen, "VM %s: %u layers sit on %s: too many to re-point",
			         w->name, na, kids[0]);
			return -E2BIG;
		}
		if (vmm_delta_merge(cpath, err, sizeof(err)) < 0) {
			snprintf(msg, msglen, "VM %s: %s", w->name, err);
			return -EIO;
		}
		for (unsigned k = 0; k < na; k++) {
			char apath[PATH_MAX + 300];
			snprintf(apath, sizeof(apath), "%s/%s", w->dir, above[k]);
			if (vmm_delta_set_parent(apath, layer, err, sizeof(err)) < 0) {
				snprintf(msg, msglen, "VM %s: %s", w->name, err);
				return -EIO;
			}
		}
		for (unsigned k = 0; k < db->n; k++)
			if (!strcmp(db->s[k].disks[i], kids[0]))
				snprintf(db->s[k].disks[i], sizeof(db->s[k].disks[i]), "%s", layer);
	}
	snprintf(dead, deadlen, "%s", cpath); /* removed once the tree no longer names it */
	return 0;
}

static int snap_remove_in(struct snap_job *j, struct hostd_task *t, struct vmview *w,
                          enum vm_state *end, char *msg, size_t msglen)
{
	(void)end;
	struct snapdb db;
	char dead[VMCFG_MAX_DISKS][PATH_MAX + 300];
	int ret;

	if ((ret = db_load(w->dir, w->name, &db, msg, msglen)) < 0)
		return VMK__STATUS__STATUS_FAILED;
	struct snap *s = db_find(&db, j->snapshot);
	if (!s) {
		snprintf(msg, msglen, "VM %s has no snapshot %s (see vm snapshot list)", w->name,
		         j->snapshot);
		return VMK__STATUS__STATUS_NOT_FOUND;
	}
	const char *pin = pinned_by(s);
	if (pin) {
		snprintf(msg, msglen,
		         "snapshot %s of VM %s is the base of the linked clone in %s: destroy it "
		         "(or make it a full clone) first",
		         s->name, w->name, pin);
		return VMK__STATUS__STATUS_CONFLICT;
	}
	struct snap gone = *s;
	task_progress(t, 30, "consolidating the disks");
	memset(dead, 0, sizeof(dead));
	for (unsigned i = 0; i < gone.ndisks && i < w->ndisks; i++)
		if (consolidate(j, w, &db, i, gone.disks[i], dead[i], sizeof(dead[i]), msg,
		                msglen) < 0) {
			db_save(w->dir, w->name, &db); /* what the disks before it changed */
			for (unsigned k = 0; k < i; k++)
				if (dead[k][0])
					unlink(dead[k]);
			return VMK__STATUS__STATUS_FAILED;
		}
	/* the tree without it: its children hang from its parent */
	for (unsigned k = 0; k < db.n; k++)
		if (db.s[k].parent == gone.id)
			db.s[k].parent = gone.parent;
	if (db.current == gone.id)
		db.current = gone.parent;
	s = db_by_id(&db, gone.id);
	*s = db.s[--db.n];
	if ((ret = db_save(w->dir, w->name, &db)) < 0) {
		snprintf(msg, msglen, "VM %s: writing its snapshot tree: %s", w->name,
		         strerror(-ret));
		return VMK__STATUS__STATUS_FAILED;
	}
	for (unsigned i = 0; i < VMCFG_MAX_DISKS; i++)
		if (dead[i][0])
			unlink(dead[i]); /* merged layers, named by nothing now */
	if (gone.memory[0]) {
		char mem[PATH_MAX + 300];
		snprintf(mem, sizeof(mem), "%s/%s", w->dir, gone.memory);
		unlink(mem);
	}
	task_set_detail(t, "snapshot", gone.name);
	hostd_event(j->h, w->name, j->user, "snapshot %s removed", gone.name);
	snprintf(msg, msglen, "snapshot %s of VM %s removed", gone.name, w->name);
	return 0;
}

static int snap_remove(struct snap_job *j, struct hostd_task *t, char *msg, size_t msglen)
{
	return claimed(j, t, snap_remove_in, msg, msglen);
}

static void *snap_worker(struct hostd_task *t, void *arg)
{
	struct snap_job *j = arg;
	char msg[800] = "";
	int status;

	task_set_detail(t, "vm", j->vm);
	pthread_mutex_lock(&snap_m);
	if (!strcmp(j->op, "create"))
		status = snap_create(j, t, msg, sizeof(msg));
	else if (!strcmp(j->op, "revert"))
		status = snap_revert(j, t, msg, sizeof(msg));
	else
		status = snap_remove(j, t, msg, sizeof(msg));
	pthread_mutex_unlock(&snap_m);
	task_finish(t, status, "%s", msg);
	free(j);
	return NULL;
}

int hostd_op_vm_snapshot(struct hostd_call *call, const Vmk__Request *req)
{
	const Vmk__VmSnapshotRequest *r = req->vm_snapshot;
	char why[256];

	if (strcmp(r->op, "create") && strcmp(r->op, "revert") && strcmp(r->op, "remove"))
		return hostd_fail(call, VMK__STATUS__STATUS_USAGE,
		                  "snapshot operation \"%.20s\": use create, revert or remove",
		                  r->op);
	if (strcmp(r->op, "create") && !r->snapshot[0])
		return hostd_fail(call, VMK__STATUS__STATUS_USAGE,
		                  "snapshot %s needs --snapshot NAME (see vm snapshot list)",
		                  r->op);
	if (r->snapshot[0] && !util_valid_name(r->snapshot, SNAP_NAME_MAX, why, sizeof(why)))
		return hostd_fail(call, VMK__STATUS__STATUS_USAGE, "--snapshot \"%.70s\": %s",
		                  r->snapshot, why);
	struct snap_job *j = calloc(1, sizeof(*j));
	if (!j)
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED, "out of memory");
	j->h = call->h;
	snprintf(j->op, sizeof(j->op), "%s", r->op);
	snprintf(j->vm, sizeof(j->vm), "%s", r->name);
	snprintf(j->snapshot, sizeof(j->snapshot), "%s", r->snapshot);
	snprintf(j->user, sizeof(j->user), "%s", call->user);
	j->memory = r->memory;
	char op[48];
	snprintf(op, sizeof(op), "vm.snapshot.%s", r->op);
	int status = hostd_task_start_reply(call, op, j->vm, snap_worker, j);
	if (status != VMK__STATUS__STATUS_OK)
		free(j);
	return status;
}

int hostd_op_vm_snapshot_list(struct hostd_call *call, const Vmk__Request *req)
{
	struct vmview w;
	struct snapdb db;
	char err[600];

	int ret = view_vm(call->h, req->vm_snapshot_list->name, &w, err, sizeof(err), VIEW_ANY);
	if (ret == -ENOENT)
		return hostd_fail(call, VMK__STATUS__STATUS_NOT_FOUND, "%s", err);
	if (ret == -EINVAL)
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED, "%s", err);
	if (ret < 0) /* busy: the tree as it is on disk */
		return hostd_fail(call, VMK__STATUS__STATUS_CONFLICT, "%s", err);
	ret = db_load(w.dir, w.name, &db, err, sizeof(err)); /* replaced whole: no lock */
	if (ret < 0)
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED, "%s", err);
	Vmk__VmSnapshotListResponse *r = arena_alloc(call->a, sizeof(*r));
	if (!r)
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED, "out of memory");
	vmk__vm_snapshot_list_response__init(r);
	r->snapshots = arena_calloc(call->a, db.n + 1, sizeof(*r->snapshots));
	for (unsigned i = 0; r->snapshots && i < db.n; i++) {
		const struct snap *s = &db.s[i];
		Vmk__VmSnapshot *o = arena_alloc(call->a, sizeof(*o));
		if (!o)
			break;
		vmk__vm_snapshot__init(o);
		o->id = s->id;
		o->name = arena_strdup(call->a, s->name);
		o->parent = s->parent;
		const struct snap *p = db_by_id(&db, s->parent);
		o->parent_name = arena_strdup(call->a, p ? p->name : "");
		o->created = arena_strdup(call->a, s->created);
		o->memory = s->memory[0] != 0;
		o->current = s->id == db.current;
		o->disks = arena_calloc(call->a, s->ndisks + 1, sizeof(char *));
		for (unsigned k = 0; o->disks && k < s->ndisks; k++)
			o->disks[o->n_disks++] = arena_strdup(call->a, s->disks[k]);
		r->snapshots[r->n_snapshots++] = o;
	}
	call->resp->body_case = VMK__RESPONSE__BODY_VM_SNAPSHOT_LIST;
	call->resp->vm_snapshot_list = r;
	return VMK__STATUS__STATUS_OK;
}

/* ---- the freeze of a clone ---- */

int vmsnap_freeze(struct hostd *h, const char *vm, struct vmsnap_freeze *f, char *err,
                  size_t errlen)
{
	struct vmview w;
	char abs[VMCFG_MAX_DISKS][PATH_MAX + 300], *ptrs[VMCFG_MAX_DISKS];
	int ret;

	memset(f, 0, sizeof(*f));
	pthread_mutex_lock(&snap_m);
	if ((ret = view_vm(h, vm, &w, err, errlen, VIEW_CLONE)) < 0)
		goto fail;
	if (!w.running) {
		snprintf(err, errlen, "VM %s is %s, not running", vm, vm_state_name(w.state));
		ret = -EBUSY;
		goto fail;
	}
	snprintf(f->vm, sizeof(f->vm), "%s", w.name);
	snprintf(f->dir, sizeof(f->dir), "%s", w.dir);
	uint64_t stamp = util_now_ms();
	for (; f->n < w.ndisks; f->n++) {
		unsigned i = f->n;
		snprintf(f->tops[i], sizeof(f->tops[i]), "%s", w.disks[i]);
		snprintf(f->temps[i], sizeof(f->temps[i]), "disk%u-clone%" PRIx64 ".delta", i,
		         stamp);
		snprintf(abs[i], sizeof(abs[i]), "%s/%s", w.dir, f->temps[i]);
		ptrs[i] = abs[i];
		if ((ret = vmm_delta_create(abs[i], w.disks[i], err, errlen)) < 0)
			goto undo;
	}
	if ((ret = set_disks(h, &w, f->temps, err, errlen)) < 0)
		goto undo;
	Vmx__Request rq = VMX__REQUEST__INIT;
	Vmx__DiskSnapshotRequest ds = VMX__DISK_SNAPSHOT_REQUEST__INIT;
	ds.deltas = ptrs;
	ds.n_deltas = w.ndisks;
	rq.body_case = VMX__REQUEST__BODY_DISK_SNAPSHOT;
	rq.disk_snapshot = &ds;
	if ((ret = vmx_call_t(w.rundir, &rq, VMX_SWITCH_MS, err, errlen)) < 0) {
		char frozen[VMCFG_MAX_DISKS][256];
		memcpy(frozen, w.disks, sizeof(frozen));
		memcpy(w.disks, f->temps, sizeof(f->temps));
		if (reconcile(h, &w) && !memcmp(w.disks, f->temps, sizeof(f->temps[0]) * f->n)) {
			ret = 0; /* it switched after all */
			pthread_mutex_unlock(&snap_m);
			return 0;
		}
		char e2[300];
		set_disks(h, &w, frozen, e2, sizeof(e2));
		goto undo;
	}
	pthread_mutex_unlock(&snap_m); /* the VM stays cloning: no snapshot starts on it */
	return 0;
undo:
	for (unsigned i = 0; i < f->n; i++)
		unlink(abs[i]);
	f->n = 0;
fail:
	pthread_mutex_unlock(&snap_m);
	return ret;
}

int vmsnap_thaw(struct hostd *h, struct vmsnap_freeze *f, char *err, size_t errlen)
{
	struct vmview w;
	pthread_mutex_lock(&snap_m);
	int ret = view_vm(h, f->vm, &w, err, errlen, VIEW_CLONE);

	if (ret == 0 && w.running) {
		Vmx__Request rq = VMX__REQUEST__INIT;
		Vmx__DiskConsolidateRequest dc = VMX__DISK_CONSOLIDATE_REQUEST__INIT;
		uint32_t idx[VMCFG_MAX_DISKS];
		for (unsigned i = 0; i < f->n; i++)
			idx[i] = i;
		dc.disks = idx;
		dc.n_disks = f->n;
		rq.body_case = VMX__REQUEST__BODY_DISK_CONSOLIDATE;
		rq.disk_consolidate = &dc;
		if ((ret = vmx_call_t(w.rundir, &rq, VMX_MERGE_MS, err, errlen)) < 0) {
			reconcile(h, &w); /* the .vmx follows what it writes now */
			pthread_mutex_unlock(&snap_m);
			log_error("vm %s: merging the clone's temporary layers: %s", f->vm, err);
			return ret;
		}
	} else if (ret == 0) { /* it stopped meanwhile: offline */
		for (unsigned i = 0; i < f->n && ret == 0; i++) {
			char p[PATH_MAX + 300];
			snprintf(p, sizeof(p), "%s/%s", f->dir, f->temps[i]);
			ret = vmm_delta_merge(p, err, errlen);
		}
	}
	if (ret == 0 && (ret = set_disks(h, &w, f->tops, err, errlen)) == 0)
		for (unsigned i = 0; i < f->n; i++) {
			char p[PATH_MAX + 300];
			snprintf(p, sizeof(p), "%s/%s", f->dir, f->temps[i]);
			unlink(p);
		}
	if (ret < 0)
		log_error("vm %s: the clone's temporary disk layers stay (%s); they hold the "
		          "guest's writes since the clone began",
		          f->vm, err);
	pthread_mutex_unlock(&snap_m);
	return ret;
}

/* ---- linked clones ---- */

int vmsnap_link(struct hostd *h, struct hostd_task *t, const char *vm, const char *clone_dir,
                char layers[][PATH_MAX], unsigned *n, char *err, size_t errlen)
{
	struct snap_job j = { .h = h };
	struct snapdb db;
	struct vmview w;
	int status;

	*n = 0;
	snprintf(j.op, sizeof(j.op), "create");
	snprintf(j.vm, sizeof(j.vm), "%s", vm);
	snprintf(j.user, sizeof(j.user), "-");
	const char *base = strrchr(clone_dir, '/') ? strrchr(clone_dir, '/') + 1 : clone_dir;
	snprintf(j.snapshot, sizeof(j.snapshot), "clone-%.50s", base);
	pthread_mutex_lock(&snap_m);
	if ((status = snap_create(&j, t, err, errlen)) != 0)
		goto out;
	if (view_vm(h, vm, &w, err, errlen, VIEW_ANY) < 0 ||
	    db_load(w.dir, w.name, &db, err, errlen) < 0) {
		status = VMK__STATUS__STATUS_FAILED;
		goto out;
	}
	struct snap *s = db_find(&db, j.snapshot);
	if (!s || s->nclones == SNAP_MAX_CLONES) {
		snprintf(err, errlen, "VM %s: snapshot %s went missing", vm, j.snapshot);
		status = VMK__STATUS__STATUS_FAILED;
		goto out;
	}
	snprintf(s->clones[s->nclones++], sizeof(s->clones[0]), "%s", clone_dir);
	if (db_save(w.dir, w.name, &db) < 0) {
		snprintf(err, errlen, "VM %s: writing its snapshot tree", vm);
		status = VMK__STATUS__STATUS_FAILED;
		goto out;
	}
	for (unsigned i = 0; i < s->ndisks; i++)
		snprintf(layers[i], PATH_MAX, "%s/%s", w.dir, s->disks[i]);
	*n = s->ndisks;
out:
	pthread_mutex_unlock(&snap_m);
	return status;
}

int vmsnap_unlink_failed(struct hostd *h, struct hostd_task *t, const char *vm,
                         const char *clone_dir, char *err, size_t errlen)
{
	struct snap_job j = { .h = h };
	const char *base = strrchr(clone_dir, '/') ? strrchr(clone_dir, '/') + 1 : clone_dir;

	snprintf(j.op, sizeof(j.op), "remove");
	snprintf(j.vm, sizeof(j.vm), "%s", vm);
	snprintf(j.user, sizeof(j.user), "-");
	snprintf(j.snapshot, sizeof(j.snapshot), "clone-%.50s", base);
	pthread_mutex_lock(&snap_m);
	int status = snap_remove(&j, t, err, errlen);
	pthread_mutex_unlock(&snap_m);
	return status == 0 || status == VMK__STATUS__STATUS_NOT_FOUND ? 0 : -EIO;
}

int vmsnap_clear_clones(const char *dir, const char *vm)
{
	struct snapdb db;
	char err[300];
	bool any = false;

	if (db_load(dir, vm, &db, err, sizeof(err)) < 0)
		return -EINVAL;
	for (unsigned i = 0; i < db.n; i++) {
		any |= db.s[i].nclones > 0;
		db.s[i].nclones = 0;
	}
	return any ? db_save(dir, vm, &db) : 0;
}
