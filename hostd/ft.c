/* Fault tolerance in hostd: the secondary's prepare, the primary's enable
 * task, status, disable and failover-test, and what the supervisor does
 * with FT VMs (ft.h). The engine is the vmx's (replica/); hostd starts it,
 * reports it and keeps the inventory of both hosts true to who runs the
 * VM: the generation record on the shared datastore decides that, and the
 * datastore lock follows it. */
#include "ft.h"
#include "ft_int.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "datastore.h"
#include "dispatch.h"
#include "events.h"
#include "inventory_int.h"
#include "log.h"
#include "migrate.h"
#include "network.h"
#include "replica/replica.h"
#include "task.h"
#include "util.h"
#include "vmm/disk.h"
#include "vmm/monitor.h"
#include "vmrun.h"

#define FT_INFO_FILE         "ft.info"
#define FT_INFO_MAX          4096
#define FT_ENABLE_TIMEOUT_MS (10 * 60 * 1000)
/* a primary's vmx that died (killed, or its host): how long the record
 * gets to name the secondary before the exit counts as this host's */
#define FT_SETTLE_MS (FT_MAX_DETECT_MS + 1000)
/* failover-test: how long the secondary gets to take over */
#define FT_TAKEOVER_WAIT_MS (FT_MAX_DETECT_MS + 5000)

static int vmx_ft_call(const char *rundir, int body, Vmx__Response **rs, char *err, size_t errlen);
static int vmx_ft_call_t(const char *rundir, int body, int timeout_ms, Vmx__Response **rs,
                         char *err, size_t errlen);
#define FT_POLL_CALL_MS 1000 /* the supervisor's status calls: it must not stall */

/* ---- the FT fields of a VM, and their file ---- */

static void info_path(const struct vm *v, char *out, size_t len)
{
	snprintf(out, len, "%s/%s", v->rundir, FT_INFO_FILE);
}

static void gen_path(const char *dir, const char *name, char *out, size_t len)
{
	snprintf(out, len, "%s/%s.ftgen", dir, name);
}

void ft_save(const struct vm *v)
{
	char p[PATH_MAX + 16], buf[FT_INFO_MAX];

	info_path(v, p, sizeof(p));
	int n = snprintf(buf, sizeof(buf),
	                 "role=%s\npeer=%s\nnetwork=%s\nnote=%s\nepoch_ms=%u\nregistered=%d\n"
	                 "generation=%" PRIu64 "\ndisks_dir=%s\nauto=%d\ndetect_ms=%u\n",
	                 v->ft_role, v->ft_peer, v->ft_network, v->ft_note, v->ft_epoch_ms,
	                 v->ft_registered ? 1 : 0, v->ft_generation, v->ft_disks_dir,
	                 v->ft_auto ? 1 : 0, v->ft_detect_ms);
	util_mkdir_p(v->rundir, 0700);
	if (n < 0 || (size_t)n >= sizeof(buf) ||
	    util_write_file_atomic(p, buf, (size_t)n, 0600) < 0)
		log_warn("vm %s: cannot write %s", v->name, p);
}

void hostd_ft_clear(struct vm *v)
{
	char p[PATH_MAX + 16];

	if (!v->ft_role[0])
		return;
	v->ft_role[0] = v->ft_peer[0] = v->ft_network[0] = v->ft_note[0] = '\0';
	v->ft_epoch_ms = v->ft_detect_ms = 0;
	v->ft_registered = false;
	v->ft_starting = false;
	v->ft_generation = 0;
	v->ft_disks_dir[0] = '\0';
	v->ft_auto = false;
	v->ft_retry_ms = 0;
	v->ft_claim++; /* a re-protect under way gives up */
	info_path(v, p, sizeof(p));
	unlink(p);
}

static void copy_value(char *dst, size_t len, const char *line, const char *key)
{
	size_t k = strlen(key);

	if (!strncmp(line, key, k) && line[k] == '=')
		snprintf(dst, len, "%s", line + k + 1);
}

void hostd_ft_load(struct vm *v)
{
	char p[PATH_MAX + 16], *buf = NULL, *save = NULL, epoch[16] = "", reg[4] = "", gen[24] = "",
	                       au[4] = "", det[16] = "";
	size_t len;

	info_path(v, p, sizeof(p));
	if (util_read_file(p, FT_INFO_MAX, &buf, &len) < 0)
		return;
	for (char *l = strtok_r(buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		copy_value(v->ft_role, sizeof(v->ft_role), l, "role");
		copy_value(v->ft_peer, sizeof(v->ft_peer), l, "peer");
		copy_value(v->ft_network, sizeof(v->ft_network), l, "network");
		copy_value(v->ft_note, sizeof(v->ft_note), l, "note");
		copy_value(epoch, sizeof(epoch), l, "epoch_ms");
		copy_value(reg, sizeof(reg), l, "registered");
		copy_value(gen, sizeof(gen), l, "generation");
		copy_value(v->ft_disks_dir, sizeof(v->ft_disks_dir), l, "disks_dir");
		copy_value(au, sizeof(au), l, "auto");
		copy_value(det, sizeof(det), l, "detect_ms");
	}
	free(buf);
	if (strcmp(v->ft_role, "primary") != 0 && strcmp(v->ft_role, "secondary") != 0)
		v->ft_role[0] = '\0'; /* a damaged file: not protected */
	v->ft_epoch_ms = (uint32_t)strtoul(epoch, NULL, 10);
	v->ft_registered = reg[0] == '1';
	v->ft_generation = strtoull(gen, NULL, 10);
	v->ft_auto = au[0] == '1';
	v->ft_detect_ms = (uint32_t)strtoul(det, NULL, 10);
}

/* The host the generation record names ("" when it cannot be read). */
static void record_owner(const char *dir, const char *name, char *owner, size_t len, uint64_t *gen)
{
	char p[PATH_MAX + 100];
	uint64_t g = 0;

	gen_path(dir, name, p, sizeof(p));
	owner[0] = '\0';
	if (ft_gen_read(p, &g, owner, len) < 0)
		owner[0] = '\0';
	if (gen)
		*gen = g;
}

int hostd_ft_refuse(const struct vm *v, const char *what, char *err, size_t errlen)
{
	if (strcmp(v->ft_role, "primary") != 0 || !v->ft_peer[0])
		return 0;
	snprintf(err, errlen,
	         "cannot %s VM %s: it is protected by fault tolerance (its secondary runs on %s), "
	         "whose checkpoints own its pauses and memory; vm ft disable first",
	         what, v->name, v->ft_peer);
	return -EBUSY;
}

/* ---- the supervisor's part (inventory lock held) ---- */

/* A VM as it was seen under the inventory lock, for work outside it. */
struct vm_ref {
	char name[VM_NAME_MAX + 1];
	char dir[PATH_MAX];
	char rundir[PATH_MAX];
	int pid;
	pid_t monitor;
};

/* The VMs that match, copied under the lock: *n of them, calloc'd (the
 * caller frees), NULL when none (or no memory: the next pass tries again). */
static struct vm_ref *vm_refs(struct hostd_inventory *inv, bool (*match)(const struct vm *v),
                              size_t *n)
{
	struct vm_ref *r = NULL;
	size_t k = 0;

	pthread_mutex_lock(&inv->lock);
	for (size_t i = 0; i < inv->n; i++)
		k += match(inv->vms[i]);
	if (k && (r = calloc(k, sizeof(*r)))) {
		k = 0;
		for (size_t i = 0; i < inv->n; i++) {
			const struct vm *v = inv->vms[i];
			if (!match(v))
				continue;
			snprintf(r[k].name, sizeof(r[k].name), "%s", v->name);
			snprintf(r[k].dir, sizeof(r[k].dir), "%s", v->dir);
			snprintf(r[k].rundir, sizeof(r[k].rundir), "%s", v->rundir);
			r[k].pid = v->pid;
			r[k].monitor = v->monitor_pid;
			k++;
		}
	}
	pthread_mutex_unlock(&inv->lock);
	*n = r ? k : 0;
	return r;
}

/* What the watch learnt of one secondary outside the lock. */
struct sec_seen {
	const struct vm_ref *r;
	bool reaped, alive, live, monitor_alive;
	char owner[128];
	char why[300];
};

/* The files behind one secondary: its lock and record on the datastore,
 * its exit and last error. No lock held: a hung datastore stalls only
 * the watch. */
static void look_at(struct hostd *h, struct sec_seen *s)
{
	int pid, code, sig;
	long long when;

	s->reaped = s->r->monitor && waitpid(s->r->monitor, NULL, WNOHANG) == s->r->monitor;
	s->alive = vmrun_pid_alive(s->r->pid);
	if (s->alive) {
		s->live = vmrun_vmx_is_ours(h, s->r->dir, s->r->pid); /* it holds the lock */
		return;
	}
	s->monitor_alive = s->r->monitor && !s->reaped && vmrun_pid_alive(s->r->monitor);
	if (s->monitor_alive)
		return; /* its monitor writes how it ended, then ends */
	record_owner(s->r->dir, s->r->name, s->owner, sizeof(s->owner), NULL);
	if (vmx_exit_read(s->r->rundir, &pid, &code, &sig, &when) == 0 && pid == s->r->pid) {
		if (sig)
			snprintf(s->why, sizeof(s->why), "its vmx was killed by signal %d", sig);
		else if (code == 0)
			snprintf(s->why, sizeof(s->why), "protection ended");
		else {
			char last[250];
			vmrun_last_error(s->r->dir, last, sizeof(last));
			snprintf(s->why, sizeof(s->why), "its vmx exited with %d%s%s", code,
			         last[0] ? ": " : "", last);
		}
	} else {
		snprintf(s->why, sizeof(s->why), "its vmx pid %d ended", s->r->pid);
	}
}

/* A secondary that went live runs on its copies of the disks, which its
 * vmx made the .vmx name: reloaded here. Should that rewrite have failed,
 * the copies stay where they are, said loudly. Lock held. */
static void promote_disks(struct hostd *h, struct vm *v)
{
	bool named = !v->ft_disks_dir[0];

	inv_reload(v);
	for (unsigned i = 0; !named && v->valid && i < v->cfg.ndisks; i++)
		named = util_path_in(v->cfg.disks[i].path, v->ft_disks_dir);
	if (!named) {
		hostd_event(h, v->name, "-",
		            "FT: ERROR: the VM runs on its disks in %s, but its .vmx names others "
		            "(which lack the writes since the failover): set its disks to those "
		            "in %s before it is powered on again",
		            v->ft_disks_dir, v->ft_disks_dir);
		log_error("vm %s: runs on %s, but %s names other disks", v->name, v->ft_disks_dir,
		          v->path);
		snprintf(v->ft_note, sizeof(v->ft_note),
		         "its .vmx does not name the disks it runs on (%s): see the events",
		         v->ft_disks_dir);
		return; /* ft_disks_dir kept: they are never removed as a secondary's */
	}
	v->ft_disks_dir[0] = '\0';
}

/* Acts on what was seen, if the VM is still that secondary; the copies
 * of the disks of a secondary that ended go to *gone (removed once the
 * lock is let go). Lock held. */
static void settle_secondary(struct hostd *h, const struct sec_seen *s, char *gone, size_t gonelen,
                             char *vmx, size_t vmxlen)
{
	struct hostd_inventory *inv = h->inventory;
	struct vm *v = inv_find(inv, s->r->name);

	if (!v || v->state != VMS_FT_SECONDARY || v->ft_starting || v->pid != s->r->pid)
		return;
	if (s->reaped)
		v->monitor_pid = 0;
	if (s->alive) {
		if (!s->live)
			return;
		char was[128];
		snprintf(was, sizeof(was), "%s", v->ft_peer);
		v->state = VMS_POWERED_ON;
		v->started_ms = util_wall_ms();
		snprintf(v->reason, sizeof(v->reason),
		         "fault tolerance: its secondary here took over from %s", was);
		snprintf(v->ft_role, sizeof(v->ft_role), "primary");
		v->ft_peer[0] = v->ft_network[0] = '\0';
		v->ft_registered = false;
		snprintf(v->ft_note, sizeof(v->ft_note), "failed over from %s", was);
		/* it runs on its own copies of the disks, which its .vmx names
		 * now (the vmx wrote it when it won the record) */
		promote_disks(h, v);
		ft_save(v);
		inv_save(inv);
		hostd_event(h, v->name, "-",
		            "FT failover: the secondary here (vmx pid %d) runs the VM; its primary "
		            "on %s was lost",
		            v->pid, was);
		log_warn("vm %s: FT failover: running here, the primary on %s was lost", v->name,
		         was);
		return;
	}
	if (s->monitor_alive)
		return;
	if (s->owner[0] && !strcmp(s->owner, h->cfg.name) && v->pid) {
		/* it had gone live (the record is this host's) and ended
		 * before it was seen running: a primary's exit, settled as one */
		v->state = VMS_POWERED_ON;
		snprintf(v->ft_role, sizeof(v->ft_role), "primary");
		v->ft_peer[0] = '\0';
		v->ft_registered = false;
		promote_disks(h, v);
		ft_save(v);
		return;
	}
	hostd_event(h, v->name, "-", "FT secondary of the VM on %s ended: %s", v->ft_peer, s->why);
	log_info("vm %s: FT secondary ended: %s", v->name, s->why);
	vmrun_release_nics(h, v);
	/* its copies of the disks go, on positive evidence only: the record
	 * names another host (a record out of reach says nothing) */
	if (s->owner[0] && strcmp(s->owner, h->cfg.name) != 0) {
		snprintf(gone, gonelen, "%s", v->ft_disks_dir);
		snprintf(vmx, vmxlen, "%s", v->path);
	} else if (v->ft_disks_dir[0]) {
		log_warn("vm %s: the FT secondary's disks %s are left: the generation record "
		         "does not say who runs the VM",
		         v->name, v->ft_disks_dir);
	}
	if (v->ft_registered) {
		inv_drop(inv, v);
		inv_save(inv);
		return;
	}
	hostd_ft_clear(v);
	v->state = VMS_POWERED_OFF;
	v->pid = 0;
	v->monitor_pid = 0;
	v->started_ms = 0;
	snprintf(v->reason, sizeof(v->reason), "FT secondary ended: %s", s->why);
	inv_save(inv);
}

/* Whether a process has a file under dir open (a vmx hostd lost track
 * of, e.g. one that did not answer when hostd started). */
static bool dir_in_use(const char *dir)
{
	DIR *proc = opendir("/proc");
	struct dirent *p;
	bool used = false;

	if (!proc)
		return true; /* cannot tell: assume so */
	while (!used && (p = readdir(proc))) {
		char fdp[64], link[PATH_MAX + 1];
		if (p->d_name[0] < '1' || p->d_name[0] > '9')
			continue;
		snprintf(fdp, sizeof(fdp), "/proc/%.20s/fd", p->d_name);
		DIR *fds = opendir(fdp);
		struct dirent *f;
		while (fds && !used && (f = readdir(fds))) {
			char lp[128];
			snprintf(lp, sizeof(lp), "%s/%.20s", fdp, f->d_name);
			ssize_t n = readlink(lp, link, sizeof(link) - 1);
			if (n <= 0)
				continue;
			link[n] = '\0';
			used = util_path_in(link, dir);
		}
		if (fds)
			closedir(fds);
	}
	closedir(proc);
	return used;
}

/* Removes the copies of the disks of a secondary that ended, unless the
 * VM's .vmx names one of them (it ran from them) or a process holds one
 * open. No lock held: a hung datastore stalls only the watch. */
static void remove_copies(const char *name, const char *dir, const char *vmxpath)
{
	struct vmcfg c;
	char cerr[300];
	bool named = false;

	if (vmcfg_load(vmxpath, &c, cerr, sizeof(cerr)) < 0) {
		log_warn("vm %s: the FT secondary's disks %s are left: its .vmx does not load (%s)",
		         name, dir, cerr);
		return;
	}
	for (unsigned i = 0; i < c.ndisks; i++)
		named |= util_path_in(c.disks[i].path, dir);
	vmcfg_free(&c);
	if (named || dir_in_use(dir)) {
		log_warn("vm %s: the FT secondary's disks %s are left: %s", name, dir,
		         named ? "its .vmx names them" : "a process has them open");
		return;
	}
	int ret = util_rm_tree(dir);
	if (ret < 0)
		log_warn("vm %s: removing the FT secondary's disks %s: %s", name, dir,
		         strerror(-ret));
}

static bool watched_secondary(const struct vm *v)
{
	return v->state == VMS_FT_SECONDARY && !v->ft_starting;
}

void hostd_ft_watch(struct hostd *h)
{
	struct hostd_inventory *inv = h->inventory;
	size_t n;
	struct vm_ref *refs = vm_refs(inv, watched_secondary, &n);

	for (size_t i = 0; i < n; i++) {
		struct sec_seen seen = { .r = &refs[i] };
		char gone[PATH_MAX] = "", vmx[PATH_MAX] = "";
		look_at(h, &seen);
		pthread_mutex_lock(&inv->lock);
		settle_secondary(h, &seen, gone, sizeof(gone), vmx, sizeof(vmx));
		pthread_mutex_unlock(&inv->lock);
		if (gone[0])
			remove_copies(refs[i].name, gone, vmx);
	}
	free(refs);
}

static int exit_code_of(const struct vm *v)
{
	int pid, code, sig;
	long long when;

	if (vmx_exit_read(v->rundir, &pid, &code, &sig, &when) == 0 && pid == v->pid && !sig)
		return code;
	return -1;
}

bool hostd_ft_settling(struct hostd *h, struct vm *v)
{
	char owner[128];

	if (strcmp(v->ft_role, "primary") != 0 || !v->ft_peer[0])
		return false;
	record_owner(v->dir, v->name, owner, sizeof(owner), NULL);
	if (owner[0] && strcmp(owner, h->cfg.name) != 0)
		return false; /* decided */
	if (exit_code_of(v) >= 0)
		return false; /* it ended by itself: the exit says what happened */
	return util_now_ms() - v->gone_ms < FT_SETTLE_MS;
}

bool hostd_ft_failed_over(struct hostd *h, struct vm *v)
{
	char owner[128], peer[128];

	uint64_t gen = 0;

	if (strcmp(v->ft_role, "primary") != 0 || v->ft_starting)
		return false;
	record_owner(v->dir, v->name, owner, sizeof(owner), &gen);
	/* the record of this protection, taken by the other side: an older
	 * record (of an earlier protection) proves nothing, unless the vmx
	 * itself said it lost */
	bool newer =
	        v->ft_generation ? gen > v->ft_generation : exit_code_of(v) == VMX_EXIT_FT_LOST;
	if (!owner[0] || !strcmp(owner, h->cfg.name) || !newer) {
		if (exit_code_of(v) == VMX_EXIT_FT_LOST)
			log_warn("vm %s: its vmx lost the FT record but the record names %s",
			         v->name, owner[0] ? owner : "nobody");
		return false;
	}
	snprintf(peer, sizeof(peer), "%s", owner);
	vmrun_release_nics(h, v);
	hostd_event(h, v->name, "-",
	            "FT failover: its secondary on %s runs the VM now (vmx pid %d here ended); "
	            "the VM is no longer this host's",
	            peer, v->pid);
	log_warn("vm %s: failed over to %s; unregistered here", v->name, peer);
	hostd_ft_clear(v);
	inv_drop(h->inventory, v);
	inv_save(h->inventory);
	return true;
}

/* What the vmx of a protected primary says, into its fields: a lost
 * secondary leaves it needing one; protection that ended (or never
 * began) leaves it unprotected. Lock held. */
static void sync_phase(struct hostd *h, struct vm *v, const char *phase, const char *error)
{
	if (!strcmp(phase, "alone") && v->ft_peer[0]) {
		hostd_event(
		        h, v->name, "-",
		        "FT: its secondary on %s was lost (%s); it runs on unprotected and needs "
		        "a secondary",
		        v->ft_peer, error[0] ? error : "no answer");
		snprintf(v->ft_note, sizeof(v->ft_note), "its secondary on %s was lost: %s",
		         v->ft_peer, error);
		v->ft_peer[0] = v->ft_network[0] = '\0';
		ft_save(v);
	} else if ((!strcmp(phase, "off") || !strcmp(phase, "failed")) && v->ft_peer[0]) {
		hostd_event(h, v->name, "-", "FT: protection by %s ended%s%s", v->ft_peer,
		            error[0] ? ": " : "", error);
		hostd_ft_clear(v);
	}
}

static bool protected_primary(const struct vm *v)
{
	return v->state == VMS_POWERED_ON && !strcmp(v->ft_role, "primary") && v->ft_peer[0] &&
	       !v->ft_starting;
}

void hostd_ft_poll(struct hostd *h)
{
	struct hostd_inventory *inv = h->inventory;
	size_t n;
	struct vm_ref *refs = vm_refs(inv, protected_primary, &n);

	for (size_t i = 0; i < n; i++) {
		Vmx__Response *rs = NULL;
		char err[300];
		if (vmx_ft_call_t(refs[i].rundir, VMX__REQUEST__BODY_FT_STATUS, FT_POLL_CALL_MS,
		                  &rs, err, sizeof(err)) < 0)
			continue; /* a vmx that ended: the supervisor sees to it */
		pthread_mutex_lock(&inv->lock);
		struct vm *v = inv_find(inv, refs[i].name);
		if (v && protected_primary(v))
			sync_phase(h, v, rs->ft_info->phase, rs->ft_info->error);
		pthread_mutex_unlock(&inv->lock);
		vmx__response__free_unpacked(rs, NULL);
	}
	free(refs);
}

/* A host name from the wire: printable, no spaces (it goes into ft.info
 * lines and messages). */
static bool valid_host(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (!n || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
			return false;
	return true;
}

/* Text from the wire for messages and ft.info: no control characters. */
static bool valid_text(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < ' ' || (unsigned char)s[i] == 0x7f)
			return false;
	return true;
}

/* ---- the secondary's host: prepare ---- */

/* The secondary's own copies of the VM's disks: fresh sparse files of
 * their sizes in <the VM's directory>/ft-<this host>/, or in
 * <datastore ds of this host>/<VM>/ft-<this host>/ when ds is given, made
 * for them (ft-<this host>-1/... when that one is there, e.g. the VM runs
 * from it after an earlier failover here); the first copy fills them.
 * Read-only disks are shared as they are. 0 with the files in iv (their
 * names in files) and the directory in dir ("" when none was needed), or
 * a Vmk status with err. */
static int secondary_disks(struct hostd *h, const char *vmx, const char *ds, struct incoming_vm *iv,
                           char files[][PATH_MAX], char *dir, size_t dirlen, char *err,
                           size_t errlen)
{
	char home[PATH_MAX + 128];
	struct vmcfg c;
	char cerr[400] = "";
	uint64_t size[VMCFG_MAX_DISKS] = { 0 };
	bool any = false;
	int status = 0;

	dir[0] = '\0';
	if (vmcfg_load(vmx, &c, cerr, sizeof(cerr)) < 0) {
		snprintf(err, errlen, "host %s: the VM's .vmx does not load here: %s", h->cfg.name,
		         cerr);
		return VMK__STATUS__STATUS_FAILED;
	}
	for (unsigned i = 0; i < c.ndisks && !status; i++) {
		struct stat st;
		errno = 0;
		if (vmm_disk_is_delta_name(c.disks[i].path)) {
			snprintf(err, errlen,
			         "VM %s has snapshots (disk %u is the layer %s): fault tolerance "
			         "copies whole disks to the secondary; remove its snapshots first "
			         "(vm snapshot remove)",
			         c.name, i, c.disks[i].path);
			status = VMK__STATUS__STATUS_CONFLICT;
		} else if (stat(c.disks[i].path, &st) < 0 || !S_ISREG(st.st_mode)) {
			snprintf(err, errlen,
			         "host %s cannot see disk %s of VM %s (%s): the secondary needs "
			         "its size, and keeps its copy next to the VM's .vmx",
			         h->cfg.name, c.disks[i].path, c.name,
			         errno ? strerror(errno) : "not a file");
			status = VMK__STATUS__STATUS_NOT_FOUND;
		} else {
			size[i] = (uint64_t)st.st_size;
			any |= !c.disks[i].readonly;
		}
	}
	snprintf(home, sizeof(home), "%s", c.dir);
	if (any && !status && ds[0]) {
		/* a datastore of this host: <root>/<VM>/, a directory (not a link) */
		char root[PATH_MAX];
		struct stat st;
		if (hostd_datastore_path(h->datastores, ds, root, sizeof(root)) < 0) {
			snprintf(err, errlen,
			         "host %s has no datastore named %s for the secondary's disks (see "
			         "storage datastore list)",
			         h->cfg.name, ds);
			status = VMK__STATUS__STATUS_NOT_FOUND;
		} else {
			snprintf(home, sizeof(home), "%s/%s", root, c.name);
			const char *why = NULL;
			if (mkdir(home, 0755) < 0 && errno != EEXIST)
				why = strerror(errno);
			else if (lstat(home, &st) < 0)
				why = strerror(errno);
			else if (!S_ISDIR(st.st_mode))
				why = "not a directory";
			if (why) {
				snprintf(err, errlen, "host %s: %s: %s", h->cfg.name, home, why);
				status = VMK__STATUS__STATUS_FAILED;
			}
		}
	}
	/* a directory of its own, made here: never one that was there (the
	 * VM may run from it after an earlier failover, or it may be a link
	 * elsewhere), so that nothing this host did not make is truncated */
	bool made = false;
	for (unsigned k = 0; any && !status && !made && k < 100; k++) {
		snprintf(dir, dirlen, k ? "%s/ft-%s-%u" : "%s/ft-%s", home, h->cfg.name, k);
		if (mkdir(dir, 0755) == 0)
			made = true;
		else if (errno != EEXIST)
			break;
	}
	if (any && !status && !made) {
		snprintf(err, errlen, "host %s: a directory for the secondary's disks in %s: %s",
		         h->cfg.name, home, errno == EEXIST ? "ft-* all taken" : strerror(errno));
		dir[0] = '\0';
		status = VMK__STATUS__STATUS_FAILED;
	}
	for (unsigned i = 0; i < c.ndisks && !status; i++) {
		if (c.disks[i].readonly) {
			snprintf(files[i], PATH_MAX, "%s", c.disks[i].path);
		} else {
			const char *base = strrchr(c.disks[i].path, '/');
			base = base ? base + 1 : c.disks[i].path;
			snprintf(files[i], PATH_MAX, "%s/%s", dir, base);
			/* two disks of one name in different directories */
			for (unsigned j = 0; j < i; j++)
				if (!strcmp(files[j], files[i]))
					snprintf(files[i], PATH_MAX, "%s/%u-%s", dir, i, base);
			int fd = open(files[i],
			              O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
			if (fd < 0 || ftruncate(fd, (off_t)size[i]) < 0) {
				snprintf(err, errlen, "host %s: creating %s: %s", h->cfg.name,
				         files[i], strerror(errno));
				status = VMK__STATUS__STATUS_FAILED;
			}
			if (fd >= 0)
				close(fd);
		}
		iv->disk_files[i] = files[i];
	}
	iv->ndisk_files = status ? 0 : c.ndisks;
	if (status && dir[0]) {
		util_rm_tree(dir);
		dir[0] = '\0';
	}
	vmcfg_free(&c);
	return status;
}

int hostd_op_vm_ft_prepare(struct hostd_call *call, const Vmk__Request *req)
{
	struct hostd *h = call->h;
	struct hostd_inventory *inv = h->inventory;
	const Vmk__VmFtPrepareRequest *p = req->vm_ft_prepare;
	char ds[64], real[PATH_MAX], err[400];
	int ret;

	if (!p->name[0] || strlen(p->name) > VM_NAME_MAX ||
	    !valid_host(p->primary_host, sizeof(((struct vm *)0)->ft_peer) - 1))
		return hostd_fail(call, VMK__STATUS__STATUS_USAGE,
		                  "vm ft prepare needs the VM's name and its primary host");
	if (!strcmp(p->primary_host, h->cfg.name))
		return hostd_fail(call, VMK__STATUS__STATUS_USAGE,
		                  "VM %s runs on %s: its secondary must be on another host "
		                  "(--secondary names it)",
		                  p->name, h->cfg.name);
	if ((ret = incoming_shared_path(h, p->name, p->datastore_path,
	                                "; the secondary needs the VM's shared datastore, which "
	                                "holds its FT generation record",
	                                real, sizeof(real), ds, sizeof(ds), err, sizeof(err))) ||
	    (ret = incoming_admit(h, p->name, p->memory_mib, p->cpu_model, p->cpu_features,
	                          p->n_cpu_features, err, sizeof(err))))
		return hostd_fail(call, ret, "%s", err);
	struct incoming_vm *iv = calloc(1, sizeof(*iv));
	static __thread char files[VMCFG_MAX_DISKS][PATH_MAX];
	char disks_dir[PATH_MAX];
	if (!iv)
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED, "out of memory");
	if ((ret = incoming_register(h, real, ds, p->name, VMS_FT_SECONDARY, iv, err,
	                             sizeof(err)))) {
		free(iv);
		return hostd_fail(call, ret, "%s", err);
	}
	if ((ret = secondary_disks(h, real, p->disks_datastore, iv, files, disks_dir,
	                           sizeof(disks_dir), err, sizeof(err))) ||
	    (ret = incoming_spawn(h, iv, NET_TAG_FT, true, err, sizeof(err)))) {
		incoming_undo(h, iv);
		if (disks_dir[0])
			util_rm_tree(disks_dir);
		free(iv);
		return hostd_fail(call, ret, "%s", err);
	}
	pthread_mutex_lock(&inv->lock);
	struct vm *v = inv_find(inv, iv->name);
	if (v) {
		v->pid = iv->pid;
		v->monitor_pid = iv->monitor;
		v->started_ms = util_wall_ms();
		v->expect_exit = false;
		snprintf(v->reason, sizeof(v->reason), "FT secondary of the VM on %s",
		         p->primary_host);
		snprintf(v->ft_role, sizeof(v->ft_role), "secondary");
		snprintf(v->ft_peer, sizeof(v->ft_peer), "%s", p->primary_host);
		snprintf(v->ft_network, sizeof(v->ft_network), "%s%s%s:%u", iv->vmk,
		         iv->vmk[0] ? " " : "", iv->addr, iv->port);
		snprintf(v->ft_note, sizeof(v->ft_note), "%s", iv->note);
		v->ft_registered = iv->registered_here;
		v->ft_starting = false;
		snprintf(v->ft_disks_dir, sizeof(v->ft_disks_dir), "%s", disks_dir);
		v->ft_auto = p->reprotect; /* once live, it re-protects the VM itself */
		v->ft_epoch_ms = p->epoch_ms <= FT_MAX_EPOCH_MS ? p->epoch_ms : 0;
		v->ft_detect_ms = p->detect_ms <= FT_MAX_DETECT_MS ? p->detect_ms : 0;
		ft_save(v);
		inv_save(inv);
	}
	pthread_mutex_unlock(&inv->lock);
	if (!v) { /* unregistered meanwhile: nothing to protect with */
		incoming_undo(h, iv);
		if (disks_dir[0])
			util_rm_tree(disks_dir);
		free(iv);
		return hostd_fail(call, VMK__STATUS__STATUS_CONFLICT,
		                  "VM %s was unregistered while its secondary started", p->name);
	}
	hostd_event(h, iv->name, call->user,
	            "FT secondary of the VM on %s started (vmx pid %d, waiting on %s:%u)",
	            p->primary_host, iv->pid, iv->addr, iv->port);
	Vmk__VmFtPrepareResponse *r = arena_alloc(call->a, sizeof(*r));
	if (r) {
		vmk__vm_ft_prepare_response__init(r);
		r->address = arena_strdup(call->a, iv->addr);
		r->port = iv->port;
		r->token = arena_strdup(call->a, iv->token);
		r->interface = arena_strdup(call->a, iv->vmk);
		r->netstack = arena_strdup(call->a, iv->netns);
		r->note = arena_strdup(call->a, iv->note);
	}
	explicit_bzero(iv->token, sizeof(iv->token));
	free(iv);
	if (!r || !r->address || !r->token || !r->interface || !r->netstack || !r->note)
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED, "out of memory");
	call->resp->body_case = VMK__RESPONSE__BODY_VM_FT_PREPARE;
	call->resp->vm_ft_prepare = r;
	return VMK__STATUS__STATUS_OK;
}

/* ---- the primary's host ---- */

static const char *state_of_phase(const char *phase)
{
	static const struct {
		const char *phase, *state;
	} map[] = {
		{ "off", "notProtected" },    { "connecting", "starting" },
		{ "syncing", "starting" },    { "protected", "protected" },
		{ "alone", "needSecondary" }, { "failed", "notProtected" },
		{ "lost", "lost" },
	};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (!strcmp(map[i].phase, phase))
			return map[i].state;
	return "unknown";
}

static int vmx_ft_call(const char *rundir, int body, Vmx__Response **rs, char *err, size_t errlen)
{
	return vmx_ft_call_t(rundir, body, 5000, rs, err, errlen);
}

static int vmx_ft_call_t(const char *rundir, int body, int timeout_ms, Vmx__Response **rs,
                         char *err, size_t errlen)
{
	Vmx__Request rq = VMX__REQUEST__INIT;
	Vmx__Empty e = VMX__EMPTY__INIT;

	rq.body_case = body;
	if (body == VMX__REQUEST__BODY_FT_STATUS)
		rq.ft_status = &e;
	else
		rq.ft_stop = &e;
	int ret = vmrun_vmx_call(rundir, &rq, rs, timeout_ms, err, errlen);
	if (ret < 0)
		return ret;
	if ((*rs)->status != 0) {
		snprintf(err, errlen, "%s", (*rs)->error);
		vmx__response__free_unpacked(*rs, NULL);
		*rs = NULL;
		return -EIO;
	}
	if (body == VMX__REQUEST__BODY_FT_STATUS && !(*rs)->ft_info) {
		snprintf(err, errlen, "the vmx gave no FT status");
		vmx__response__free_unpacked(*rs, NULL);
		*rs = NULL;
		return -EIO;
	}
	return 0;
}

/* Lock taken here. */
static void forget_role(struct hostd *h, const char *name)
{
	pthread_mutex_lock(&h->inventory->lock);
	struct vm *v = inv_find(h->inventory, name);
	if (v && !strcmp(v->ft_role, "primary"))
		hostd_ft_clear(v);
	pthread_mutex_unlock(&h->inventory->lock);
}

/* The enable task ended without clearing the role. Lock taken here. */
static void starting_done(struct hostd *h, const char *name)
{
	pthread_mutex_lock(&h->inventory->lock);
	struct vm *v = inv_find(h->inventory, name);
	if (v)
		v->ft_starting = false;
	pthread_mutex_unlock(&h->inventory->lock);
}

/* A re-protect's claim on the VM holds while it is a primary in starting
 * and no enable or disable came since (each bumps ft_claim). Lock held. */
static bool claim_holds(const struct vm *v, uint64_t claim)
{
	return v && claim && v->ft_claim == claim && v->ft_starting &&
	       !strcmp(v->ft_role, "primary");
}

bool ft_claim_holds(struct hostd *h, const char *name, uint64_t claim)
{
	pthread_mutex_lock(&h->inventory->lock);
	bool holds = claim_holds(inv_find(h->inventory, name), claim);
	pthread_mutex_unlock(&h->inventory->lock);
	return holds;
}

bool ft_peer_is(struct hostd *h, const char *name, const char *peer)
{
	pthread_mutex_lock(&h->inventory->lock);
	struct vm *v = inv_find(h->inventory, name);
	bool is = v && !strcmp(v->ft_peer, peer);
	pthread_mutex_unlock(&h->inventory->lock);
	return is;
}

/* An attempt ended without protection: forget, it never began (the role
 * goes for a vm ft enable; a re-protect keeps its claim, the VM needing a
 * secondary, and ft_reprotect_later ends it); else the vmx may have lost
 * or taken the record, and the supervisor settles it (peer kept). */
static void start_failed(struct hostd *h, const struct enable_job *j, bool forget)
{
	if (!j->claim || !forget) {
		if (forget)
			forget_role(h, j->name);
		else
			starting_done(h, j->name);
		return;
	}
	pthread_mutex_lock(&h->inventory->lock);
	struct vm *v = inv_find(h->inventory, j->name);
	if (claim_holds(v, j->claim)) {
		v->ft_peer[0] = v->ft_network[0] = '\0';
		ft_save(v);
	}
	pthread_mutex_unlock(&h->inventory->lock);
}

bool ft_reprotect_later(struct hostd *h, const char *name, uint64_t claim, const char *why)
{
	pthread_mutex_lock(&h->inventory->lock);
	struct vm *v = inv_find(h->inventory, name);
	bool held = claim_holds(v, claim) && !v->ft_peer[0];
	if (held) {
		v->ft_starting = false;
		v->ft_retry_ms = util_now_ms() + FT_REPROTECT_RETRY_MS;
		/* a peer's words go into ft.info: one line of printable text */
		snprintf(v->ft_note, sizeof(v->ft_note), "re-protect: %s", why);
		for (char *c = v->ft_note; *c; c++)
			if ((unsigned char)*c < ' ' || *c == 0x7f)
				*c = ' ';
		ft_save(v);
	}
	pthread_mutex_unlock(&h->inventory->lock);
	return held;
}

int ft_follow(struct hostd_task *t, struct enable_job *j, char *msg, size_t msglen)
{
	uint64_t deadline = util_now_ms() + FT_ENABLE_TIMEOUT_MS;
	char err[400], error[400] = "", phase[32] = "";
	Vmx__Response *rs = NULL;

	task_set_detail(t, "vm", j->name);
	task_set_detail(t, "primary", j->h->cfg.name);
	task_set_detail(t, "secondary", j->secondary);
	task_set_detail(t, "network", j->network);
	task_set_detail_u64(t, "epoch_ms", j->epoch_ms);
	if (j->detect_ms)
		task_set_detail_u64(t, "detect_ms", j->detect_ms);
	if (j->note[0])
		task_set_detail(t, "network_note", j->note);
	for (;;) {
		if (j->claim && !ft_claim_holds(j->h, j->name, j->claim)) {
			/* disabled (or enabled by hand) meanwhile: this one stops */
			if (vmx_ft_call(j->rundir, VMX__REQUEST__BODY_FT_STOP, &rs, err,
			                sizeof(err)) == 0)
				vmx__response__free_unpacked(rs, NULL);
			snprintf(msg, msglen, "VM %s: its protection was disabled meanwhile",
			         j->name);
			return VMK__STATUS__STATUS_CANCELLED;
		}
		if (task_cancelled(t) || util_now_ms() > deadline) {
			bool c = task_cancelled(t);
			if (vmx_ft_call(j->rundir, VMX__REQUEST__BODY_FT_STOP, &rs, err,
			                sizeof(err)) == 0)
				vmx__response__free_unpacked(rs, NULL);
			start_failed(j->h, j, true);
			snprintf(msg, msglen, "VM %s: protection %s; it keeps running unprotected",
			         j->name, c ? "cancelled" : "did not start within 10 minutes");
			return c ? VMK__STATUS__STATUS_CANCELLED : VMK__STATUS__STATUS_TIMEOUT;
		}
		if (vmx_ft_call(j->rundir, VMX__REQUEST__BODY_FT_STATUS, &rs, err, sizeof(err)) <
		    0) {
			/* its role stays: the supervisor settles what became of it */
			start_failed(j->h, j, false);
			snprintf(msg, msglen, "VM %s: the VM's vmx stopped answering: %s", j->name,
			         err);
			return VMK__STATUS__STATUS_FAILED;
		}
		snprintf(phase, sizeof(phase), "%s", rs->ft_info->phase);
		snprintf(error, sizeof(error), "%s", rs->ft_info->error);
		uint64_t bytes = rs->ft_info->bytes, gen = rs->ft_info->generation;
		vmx__response__free_unpacked(rs, NULL);
		task_set_detail(t, "state", state_of_phase(phase));
		task_set_detail_u64(t, "transferred_bytes", bytes);
		if (!strcmp(phase, "protected")) {
			pthread_mutex_lock(&j->h->inventory->lock);
			struct vm *v = inv_find(j->h->inventory, j->name);
			if (v) {
				v->ft_starting = false;
				v->ft_generation = gen;
				ft_save(v);
			}
			pthread_mutex_unlock(&j->h->inventory->lock);
			task_set_detail_u64(t, "generation", gen);
			hostd_event(j->h, j->name, j->user,
			            "FT: protected by its secondary on %s (%s, %u ms checkpoints)",
			            j->secondary, j->network, j->epoch_ms);
			snprintf(msg, msglen, "VM %s is protected: its secondary runs on %s",
			         j->name, j->secondary);
			return 0;
		}
		if (strcmp(phase, "connecting") != 0 && strcmp(phase, "syncing") != 0) {
			/* never protected: off or failed. Lost (the record went to
			 * the secondary) or alone: the supervisor and the poll
			 * settle the role from what the vmx does next */
			start_failed(j->h, j, !strcmp(phase, "off") || !strcmp(phase, "failed"));
			hostd_event(j->h, j->name, j->user, "FT: protection by %s failed: %s",
			            j->secondary, error[0] ? error : phase);
			snprintf(msg, msglen,
			         "VM %s: fault tolerance did not start (%s): %s; it keeps running "
			         "unprotected",
			         j->name, phase, error[0] ? error : "see vmx.log");
			return VMK__STATUS__STATUS_FAILED;
		}
		task_progress(t, !strcmp(phase, "syncing") ? 40 : 10,
		              !strcmp(phase, "syncing") ? "copying the VM to the secondary"
		                                        : "connecting to the secondary");
		usleep(50 * 1000);
	}
}

static void *enable_worker(struct hostd_task *t, void *arg)
{
	struct enable_job *j = arg;
	char msg[600];
	int status = ft_follow(t, j, msg, sizeof(msg));

	task_finish(t, status, "%s", msg);
	free(j);
	return NULL;
}

int ft_begin(struct hostd *h, const struct ft_begin_args *b, struct enable_job **jp, char *err,
             size_t errlen)
{
	struct hostd_inventory *inv = h->inventory;
	char e2[400];

	*jp = NULL;
	if (!b->address[0] || strlen(b->address) > 255 || !b->port || b->port > 65535 ||
	    strlen(b->token) != FT_TOKEN_HEX || !valid_host(b->secondary, 127) ||
	    !valid_host(b->address, 255) || !valid_text(b->interface, 15) ||
	    !valid_text(b->note, 300)) {
		snprintf(err, errlen,
		         "vm ft enable needs the secondary's host, address, port and token "
		         "(from its prepare)");
		return VMK__STATUS__STATUS_USAGE;
	}
	if (b->epoch_ms > FT_MAX_EPOCH_MS) {
		snprintf(err, errlen, "--epoch-ms %u: at most %u", b->epoch_ms, FT_MAX_EPOCH_MS);
		return VMK__STATUS__STATUS_USAGE;
	}
	uint32_t em = b->epoch_ms ? b->epoch_ms : FT_DEFAULT_EPOCH_MS;
	uint32_t most =
	        (FT_RING - 8) * em < FT_MAX_DETECT_MS ? (FT_RING - 8) * em : FT_MAX_DETECT_MS;
	if (b->detect_ms && (b->detect_ms < FT_MIN_DETECT_MS(em) || b->detect_ms > most)) {
		snprintf(err, errlen,
		         "--detect-ms %u: with %u ms epochs, between %u (2 epochs + 10 ms) and %u",
		         b->detect_ms, em, FT_MIN_DETECT_MS(em), most);
		return VMK__STATUS__STATUS_USAGE;
	}
	if (!strcmp(b->secondary, h->cfg.name)) {
		snprintf(err, errlen, "VM %s runs on %s: its secondary must be on another host",
		         b->name, h->cfg.name);
		return VMK__STATUS__STATUS_USAGE;
	}
	struct enable_job *j = calloc(1, sizeof(*j));
	if (!j) {
		snprintf(err, errlen, "out of memory");
		return VMK__STATUS__STATUS_FAILED;
	}
	pthread_mutex_lock(&inv->lock);
	struct vm *v = inv_find(inv, b->name);
	int status = 0;
	if (!v) {
		snprintf(err, errlen, "no VM named \"%s\" on this host; see vm list", b->name);
		status = VMK__STATUS__STATUS_NOT_FOUND;
	} else if (b->claim && !claim_holds(v, b->claim)) {
		snprintf(err, errlen, "VM %s: its protection was disabled meanwhile", v->name);
		status = VMK__STATUS__STATUS_CANCELLED;
	} else if (!strcmp(v->ft_role, "primary") &&
	           (v->ft_peer[0] || (v->ft_starting && !b->claim))) {
		snprintf(err, errlen, "VM %s is protected already%s%s: vm ft disable first",
		         v->name, v->ft_peer[0] ? " by its secondary on " : "", v->ft_peer);
		status = VMK__STATUS__STATUS_CONFLICT;
	} else if (v->state != VMS_POWERED_ON) {
		snprintf(err, errlen,
		         "VM %s is %s: only a running VM is protected; power it on first", v->name,
		         vm_state_name(v->state));
		status = VMK__STATUS__STATUS_CONFLICT;
	}
	if (status) {
		pthread_mutex_unlock(&inv->lock);
		free(j);
		return status;
	}
	snprintf(v->ft_role, sizeof(v->ft_role), "primary");
	v->ft_starting = true; /* no second enable meanwhile */
	if (!b->claim)
		v->ft_claim++; /* a re-protect under way gives up */
	snprintf(j->name, sizeof(j->name), "%s", v->name);
	snprintf(j->rundir, sizeof(j->rundir), "%s", v->rundir);
	pthread_mutex_unlock(&inv->lock);
	j->h = h;
	j->claim = b->claim;
	j->epoch_ms = b->epoch_ms ? b->epoch_ms : FT_DEFAULT_EPOCH_MS;
	j->detect_ms = b->detect_ms;
	snprintf(j->secondary, sizeof(j->secondary), "%s", b->secondary);
	snprintf(j->user, sizeof(j->user), "%s", b->user);

	/* the checkpoints leave from this host's faultToleranceLogging vmk */
	struct net_route r;
	hostd_network_route(h, NET_TAG_FT, "", b->secondary, b->address, b->port, b->interface,
	                    b->note, &r);
	snprintf(j->network, sizeof(j->network), "%s", r.stream);
	snprintf(j->note, sizeof(j->note), "%s", r.notes);

	Vmx__Request rq = VMX__REQUEST__INIT;
	Vmx__FtStartRequest fs = VMX__FT_START_REQUEST__INIT;
	Vmx__Response *rs = NULL;
	fs.host = (char *)b->address;
	fs.port = b->port;
	fs.token = (char *)b->token;
	fs.epoch_ms = j->epoch_ms;
	fs.detect_ms = j->detect_ms;
	fs.netns = r.netns;
	rq.body_case = VMX__REQUEST__BODY_FT_START;
	rq.ft_start = &fs;
	int ret = vmrun_vmx_call(j->rundir, &rq, &rs, 10000, e2, sizeof(e2));
	if (ret < 0 || rs->status != 0) {
		snprintf(err, errlen, "VM %s cannot be protected: %s", j->name,
		         ret < 0 ? e2 : rs->error);
		if (rs)
			vmx__response__free_unpacked(rs, NULL);
		start_failed(h, j, true);
		free(j);
		return ret < 0 ? VMK__STATUS__STATUS_FAILED : VMK__STATUS__STATUS_CONFLICT;
	}
	vmx__response__free_unpacked(rs, NULL);
	pthread_mutex_lock(&inv->lock);
	v = inv_find(inv, j->name);
	if (j->claim && !claim_holds(v, j->claim)) {
		/* disabled while the vmx started: it stops again */
		pthread_mutex_unlock(&inv->lock);
		if (vmx_ft_call(j->rundir, VMX__REQUEST__BODY_FT_STOP, &rs, e2, sizeof(e2)) == 0)
			vmx__response__free_unpacked(rs, NULL);
		snprintf(err, errlen, "VM %s: its protection was disabled meanwhile", j->name);
		free(j);
		return VMK__STATUS__STATUS_CANCELLED;
	}
	if (v) {
		v->ft_auto = b->reprotect; /* once it runs */
		snprintf(v->ft_peer, sizeof(v->ft_peer), "%s", j->secondary);
		snprintf(v->ft_network, sizeof(v->ft_network), "%s", j->network);
		snprintf(v->ft_note, sizeof(v->ft_note), "%s", j->note);
		v->ft_epoch_ms = j->epoch_ms;
		v->ft_detect_ms = j->detect_ms;
		ft_save(v);
	}
	pthread_mutex_unlock(&inv->lock);
	*jp = j;
	return 0;
}

void ft_abandon(struct hostd *h, struct enable_job *j)
{
	char err[300];
	Vmx__Response *rs = NULL;

	if (vmx_ft_call(j->rundir, VMX__REQUEST__BODY_FT_STOP, &rs, err, sizeof(err)) == 0)
		vmx__response__free_unpacked(rs, NULL);
	start_failed(h, j, true);
	free(j);
}

int hostd_op_vm_ft_enable(struct hostd_call *call, const Vmk__Request *req)
{
	const Vmk__VmFtEnableRequest *e = req->vm_ft_enable;
	struct ft_begin_args b = { .name = e->name,
		                   .secondary = e->secondary_host,
		                   .address = e->address,
		                   .port = e->port,
		                   .token = e->token,
		                   .interface = e->interface,
		                   .note = e->note,
		                   .epoch_ms = e->epoch_ms,
		                   .detect_ms = e->detect_ms,
		                   .reprotect = e->reprotect,
		                   .user = call->user };
	struct enable_job *j;
	char err[600], name[VM_NAME_MAX + 1];
	int status = ft_begin(call->h, &b, &j, err, sizeof(err));

	if (status)
		return hostd_fail(call, status, "%s", err);
	snprintf(name, sizeof(name), "%s", j->name);
	status = hostd_task_start_reply(call, "vm.ft.enable", name, enable_worker, j);
	if (status != VMK__STATUS__STATUS_OK)
		ft_abandon(call->h, j);
	return status;
}

/* ---- status, disable, failover-test ---- */

struct ft_view {
	char name[VM_NAME_MAX + 1];
	char rundir[PATH_MAX];
	char role[12], peer[128], network[300], note[400];
	uint32_t epoch_ms, detect_ms;
	enum vm_state state;
	int pid, monitor;
};

static Vmk__VmFtStatus *status_of(struct hostd_call *call, const struct ft_view *w,
                                  const Vmx__FtInfo *fi, const char *state, const char *note)
{
	struct arena *a = call->a;
	Vmk__VmFtStatus *s = arena_alloc(a, sizeof(*s));

	if (!s)
		return NULL;
	vmk__vm_ft_status__init(s);
	bool secondary = !strcmp(w->role, "secondary");
	s->vm = arena_strdup(a, w->name);
	s->state = arena_strdup(a, state);
	s->role = arena_strdup(a, w->role);
	s->primary = arena_strdup(a, secondary ? w->peer : call->h->cfg.name);
	s->secondary = arena_strdup(a, secondary ? call->h->cfg.name : w->peer);
	s->epoch_ms = w->epoch_ms;
	s->detect_ms = w->detect_ms ? w->detect_ms : w->epoch_ms ? FT_DETECT_MS(w->epoch_ms) : 0;
	s->network = arena_strdup(a, w->network);
	s->note = arena_strdup(a, note ? note : w->note);
	if (fi) {
		s->checkpoints = fi->acked;
		s->last_checkpoint_ms = fi->last_ack_age_ms;
		s->lag_ms = fi->lag_ms;
		s->generation = fi->generation;
		s->pause_us_p50 = fi->pause_us_p50;
		s->pause_us_p99 = fi->pause_us_p99;
		s->output_us_p99 = fi->output_us_p99;
		s->stretched = fi->stretched;
		s->bytes = fi->bytes;
		s->error = arena_strdup(a, fi->error);
		if (fi->detect_ms)
			s->detect_ms = fi->detect_ms;
	}
	return s;
}

static int reply(struct hostd_call *call, Vmk__VmFtStatus *s)
{
	if (!s || !s->vm || !s->state || !s->primary || !s->secondary)
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED, "out of memory");
	call->resp->body_case = VMK__RESPONSE__BODY_VM_FT_STATUS;
	call->resp->vm_ft_status = s;
	return VMK__STATUS__STATUS_OK;
}

/* The primary killed on purpose (vSphere's Test Failover): waits for the
 * record to name the secondary. */
static int failover_test(struct hostd_call *call, struct ft_view *w)
{
	struct hostd *h = call->h;
	Vmx__Response *rs = NULL;
	char err[400], owner[128] = "", gp[PATH_MAX + 100], note[500];
	uint64_t gen = 0;

	if (vmx_ft_call(w->rundir, VMX__REQUEST__BODY_FT_STATUS, &rs, err, sizeof(err)) < 0)
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED, "VM %s: %s", w->name, err);
	bool prot = !strcmp(rs->ft_info->phase, "protected");
	char phase[32];
	snprintf(phase, sizeof(phase), "%s", rs->ft_info->phase);
	vmx__response__free_unpacked(rs, NULL);
	if (!prot)
		return hostd_fail(call, VMK__STATUS__STATUS_CONFLICT,
		                  "VM %s is not protected (%s): a failover test would lose it",
		                  w->name, state_of_phase(phase));
	pthread_mutex_lock(&h->inventory->lock);
	struct vm *v = inv_find(h->inventory, w->name);
	if (v) {
		gen_path(v->dir, v->name, gp, sizeof(gp));
		v->expect_exit = true;
	}
	pthread_mutex_unlock(&h->inventory->lock);
	if (!v || !vmrun_pid_alive(w->pid))
		return hostd_fail(call, VMK__STATUS__STATUS_CONFLICT,
		                  "VM %s has no vmx running here", w->name);
	hostd_event(h, w->name, call->user, "FT failover test: killing the primary (vmx pid %d)",
	            w->pid);
	uint64_t t0 = util_now_ms();
	kill(w->pid, SIGKILL);
	bool moved = false;
	while (util_now_ms() - t0 < FT_TAKEOVER_WAIT_MS) {
		if (ft_gen_read(gp, &gen, owner, sizeof(owner)) == 0 && owner[0] &&
		    strcmp(owner, h->cfg.name) != 0) {
			moved = true;
			break;
		}
		usleep(10 * 1000);
	}
	uint64_t took = util_now_ms() - t0;
	if (!moved)
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED,
		                  "VM %s: the primary was killed, and its secondary on %s did not "
		                  "take over within %" PRIu64 " ms (see vmx.log there)",
		                  w->name, w->peer, took);
	snprintf(note, sizeof(note),
	         "failover test: the primary on %s was killed; %s won the record in %" PRIu64
	         " ms and runs the VM",
	         h->cfg.name, owner, took);
	struct ft_view after = *w;
	snprintf(after.role, sizeof(after.role), "primary");
	snprintf(after.peer, sizeof(after.peer), "%s", "");
	Vmk__VmFtStatus *s = status_of(call, &after, NULL, "needSecondary", note);
	if (s) {
		s->primary = arena_strdup(call->a, owner);
		s->secondary = "";
		s->generation = gen;
	}
	return reply(call, s);
}

int hostd_op_vm_ft(struct hostd_call *call, const Vmk__Request *req)
{
	struct hostd *h = call->h;
	struct hostd_inventory *inv = h->inventory;
	const Vmk__VmFtRequest *r = req->vm_ft;
	struct ft_view w = { 0 };
	Vmx__Response *rs = NULL;
	char err[400], msg[500];

	bool status = !strcmp(r->op, "status"), disable = !strcmp(r->op, "disable");
	bool test = !strcmp(r->op, "failover-test");
	if (!status && !disable && !test)
		return hostd_fail(call, VMK__STATUS__STATUS_USAGE,
		                  "vm ft: unknown operation \"%.40s\" (status, disable, "
		                  "failover-test)",
		                  r->op);
	pthread_mutex_lock(&inv->lock);
	struct vm *v = inv_find(inv, r->name);
	if (v) {
		snprintf(w.name, sizeof(w.name), "%s", v->name);
		snprintf(w.rundir, sizeof(w.rundir), "%s", v->rundir);
		snprintf(w.role, sizeof(w.role), "%s", v->ft_role);
		snprintf(w.peer, sizeof(w.peer), "%s", v->ft_peer);
		snprintf(w.network, sizeof(w.network), "%s", v->ft_network);
		snprintf(w.note, sizeof(w.note), "%s", v->ft_note);
		w.epoch_ms = v->ft_epoch_ms;
		w.detect_ms = v->ft_detect_ms;
		w.state = v->state;
		w.pid = v->pid;
		w.monitor = v->monitor_pid;
	}
	pthread_mutex_unlock(&inv->lock);
	if (!v)
		return hostd_fail(call, VMK__STATUS__STATUS_NOT_FOUND,
		                  "no VM named \"%s\" on this host; see vm list", r->name);

	if (!strcmp(w.role, "secondary")) {
		if (test)
			return hostd_fail(
			        call, VMK__STATUS__STATUS_CONFLICT,
			        "VM %s runs on %s and its secondary here: run the failover "
			        "test against %s",
			        w.name, w.peer, w.peer);
		if (status) {
			/* what its vmx applied: the checkpoints, as seen from here */
			if (vmx_ft_call(w.rundir, VMX__REQUEST__BODY_FT_STATUS, &rs, err,
			                sizeof(err)) < 0)
				return reply(call,
				             status_of(call, &w, NULL, "unknown",
				                       "its secondary vmx here does not answer"));
			const char *st = strcmp(rs->ft_info->phase, "standby") != 0 ? "unknown"
			                 : rs->ft_info->acked                       ? "protected"
			                                                            : "starting";
			Vmk__VmFtStatus *s = status_of(call, &w, rs->ft_info, st, NULL);
			vmx__response__free_unpacked(rs, NULL);
			return reply(call, s);
		}
		/* disable here: this copy goes, unless it took over; the primary
		 * runs on alone. Its vmx decides that under one lock with its
		 * go-live (ft_standby_abandon), so it never does both. */
		if (w.pid <= 0)
			return hostd_fail(call, VMK__STATUS__STATUS_CONFLICT,
			                  "VM %s: its secondary here is still starting; try again",
			                  w.name);
		int sr = vmx_ft_call(w.rundir, VMX__REQUEST__BODY_FT_STOP, &rs, err, sizeof(err));
		if (sr == -EIO)
			return hostd_fail(
			        call, VMK__STATUS__STATUS_CONFLICT,
			        "VM %s: its secondary here has taken over from %s and runs "
			        "the VM",
			        w.name, w.peer);
		if (sr < 0) {
			/* a vmx that does not answer: stopped, unless it holds the VM */
			char owner[128] = "";
			bool live = false;
			pthread_mutex_lock(&inv->lock);
			if ((v = inv_find(inv, w.name))) {
				live = vmrun_vmx_is_ours(h, v->dir, v->pid);
				record_owner(v->dir, v->name, owner, sizeof(owner), NULL);
			}
			pthread_mutex_unlock(&inv->lock);
			if (live || !strcmp(owner, h->cfg.name))
				return hostd_fail(
				        call, VMK__STATUS__STATUS_CONFLICT,
				        "VM %s: its secondary here has taken over from %s "
				        "and runs the VM",
				        w.name, w.peer);
			kill(w.pid, SIGKILL);
		} else {
			vmx__response__free_unpacked(rs, NULL);
		}
		hostd_event(h, w.name, call->user, "FT: the secondary copy here was stopped");
		snprintf(msg, sizeof(msg),
		         "the secondary copy on %s was stopped; the primary on %s runs on "
		         "unprotected",
		         h->cfg.name, w.peer);
		return reply(call, status_of(call, &w, NULL, "notProtected", msg));
	}
	if (strcmp(w.role, "primary") != 0 || w.state != VMS_POWERED_ON) {
		if (!status)
			return hostd_fail(call, VMK__STATUS__STATUS_CONFLICT,
			                  "VM %s is not protected by fault tolerance%s", w.name,
			                  test ? ": vm ft enable first" : "");
		w.role[0] = w.peer[0] = '\0';
		Vmk__VmFtStatus *s = status_of(call, &w, NULL, "notProtected", "");
		if (s && w.state != VMS_POWERED_ON)
			s->primary = "";
		return reply(call, s);
	}
	if (test)
		return failover_test(call, &w);
	if (disable) {
		int sr = vmx_ft_call(w.rundir, VMX__REQUEST__BODY_FT_STOP, &rs, err, sizeof(err));
		/* one that failed over here and needs a secondary: its vmx, once a
		 * secondary, says it took over; there is nothing to stop */
		if (sr == -EIO && !w.peer[0] && vmrun_pid_alive(w.pid))
			sr = 0, rs = NULL;
		if (sr < 0) {
			if (!vmrun_pid_alive(w.pid))
				return hostd_fail(
				        call, VMK__STATUS__STATUS_CONFLICT,
				        "VM %s: its vmx here has ended; its secondary on %s "
				        "takes over (see vm list there)",
				        w.name, w.peer);
			return hostd_fail(call, VMK__STATUS__STATUS_FAILED,
			                  "VM %s: ending its protection: %s", w.name, err);
		}
		if (rs)
			vmx__response__free_unpacked(rs, NULL);
		forget_role(h, w.name);
		hostd_event(h, w.name, call->user,
		            "FT: protection ended (its secondary on %s stops)", w.peer);
		snprintf(msg, sizeof(msg), "protection ended; the secondary on %s stops", w.peer);
		w.role[0] = w.peer[0] = '\0';
		return reply(call, status_of(call, &w, NULL, "notProtected", msg));
	}
	if (vmx_ft_call(w.rundir, VMX__REQUEST__BODY_FT_STATUS, &rs, err, sizeof(err)) < 0)
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED, "VM %s: %s", w.name, err);
	const char *state = state_of_phase(rs->ft_info->phase);
	if (!w.peer[0] && !strcmp(state, "notProtected"))
		state = "needSecondary"; /* it failed over here: its secondary is gone */
	if (!strcmp(state, "needSecondary"))
		w.peer[0] = '\0';
	Vmk__VmFtStatus *s = status_of(call, &w, rs->ft_info, state, NULL);
	/* status_of copied the strings into the arena */
	vmx__response__free_unpacked(rs, NULL);
	return reply(call, s);
}
