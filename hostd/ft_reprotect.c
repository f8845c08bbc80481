/* FT re-protect (ft.h): a VM protected with `--secondary auto` that needs
 * a secondary again (it failed over to this host, or its secondary was
 * lost) gets one without being asked. This host asks the other hosts of
 * its cluster in order, as vCenter's vpxuser would with the cluster's
 * credentials, until one prepares a secondary; then it protects the VM as
 * vm ft enable does, in a task `vm.ft.reprotect`. A dead or unfit host is
 * skipped; when none can hold the secondary, the VM runs on unprotected
 * (its note says why) and is tried again after FT_REPROTECT_RETRY_MS. */
#include "ft.h"
#include "ft_int.h"

#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arena.h"
#include "cluster.h"
#include "datastore.h"
#include "events.h"
#include "hostconn.h"
#include "log.h"
#include "util.h"
#include "vmrun.h"

/* re-protects at once from this host: each copies a whole VM over the FT
 * network, and they share the task table with the users' operations */
#define REPROTECT_MAX 2
static atomic_int running;
#define PEER_TIMEOUT_MS 30000 /* a prepare waits up to 10 s for its vmx, and makes disks */

struct reprotect_job {
	struct hostd *h;
	char name[VM_NAME_MAX + 1];
	char rundir[PATH_MAX];
	char dspath[PATH_MAX + 80]; /* DATASTORE:DIR/NAME.vmx */
	uint32_t memory_mib, epoch_ms, detect_ms;
	uint64_t claim; /* the VM's ft_claim when this job took it */
};

/* vm ft disable of the VM on a peer: its secondary copy goes. */
static void peer_disable(struct hostconn *c, const char *name)
{
	Vmk__Request req = VMK__REQUEST__INIT;
	Vmk__VmFtRequest body = VMK__VM_FT_REQUEST__INIT;
	Vmk__Response *resp;
	struct arena a;

	arena_init(&a, 1u << 20);
	body.name = (char *)name;
	body.op = "disable";
	req.body_case = VMK__REQUEST__BODY_VM_FT;
	req.vm_ft = &body;
	if (hostconn_call(c, &req, &a, &resp) != 0)
		log_warn("vm %s: re-protect: disabling the secondary on %s: %s", name, c->display,
		         c->err);
	arena_free(&a);
}

/* Appends "; host: why" to the reasons. */
static void add_why(char *why, size_t len, const char *host, const char *what)
{
	size_t l = strlen(why);

	if (l < len)
		snprintf(why + l, len - l, "%s%s: %s", l ? "; " : "", host, what);
}

/* One peer: prepare there, then protect here. 1 when the VM is protected,
 * 0 to try the next peer (why says what this one said), -1 to give up. */
static int try_peer(struct hostd_task *t, struct reprotect_job *j, const struct cluster_host *p,
                    const char *user, const char *pw, const char *model, char **features, size_t nf,
                    char *why, size_t whylen, char *msg, size_t msglen)
{
	struct hostconn c;
	struct hostconn_opts o = { .server = p->addr,
		                   .username = user,
		                   .password = pw,
		                   .thumbprint = p->thumbprint,
		                   .timeout_ms = PEER_TIMEOUT_MS,
		                   .no_known_hosts = true };
	Vmk__Request req = VMK__REQUEST__INIT;
	Vmk__VmFtPrepareRequest prep = VMK__VM_FT_PREPARE_REQUEST__INIT;
	Vmk__Response *resp = NULL;
	struct arena a;
	char err[600], phase[200];
	int ret = 0;

	memset(&c, 0, sizeof(c));
	snprintf(phase, sizeof(phase), "asking %s to hold the secondary", p->name);
	task_progress(t, 5, phase);
	if (hostconn_open(&c, &o) != 0) {
		add_why(why, whylen, p->name, c.err);
		hostconn_close(&c);
		return 0;
	}
	arena_init(&a, 4u << 20);
	prep.name = j->name;
	prep.datastore_path = j->dspath;
	prep.memory_mib = j->memory_mib;
	prep.primary_host = j->h->cfg.name;
	prep.cpu_model = (char *)model;
	prep.cpu_features = features;
	prep.n_cpu_features = nf;
	prep.reprotect = true;
	prep.epoch_ms = j->epoch_ms;
	prep.detect_ms = j->detect_ms;
	req.body_case = VMK__REQUEST__BODY_VM_FT_PREPARE;
	req.vm_ft_prepare = &prep;
	int rc = hostconn_call(&c, &req, &a, &resp);
	if (rc != 0 || resp->body_case != VMK__RESPONSE__BODY_VM_FT_PREPARE) {
		add_why(why, whylen, p->name, c.err[0] ? c.err : "a malformed answer");
		if (rc == 0 || rc == 6) /* it may have prepared one: it goes */
			peer_disable(&c, j->name);
		goto out;
	}
	const Vmk__VmFtPrepareResponse *pr = resp->vm_ft_prepare;
	struct ft_begin_args b = { .name = j->name,
		                   .secondary = p->name,
		                   .address = pr->address,
		                   .port = pr->port,
		                   .token = pr->token,
		                   .interface = pr->interface,
		                   .note = pr->note,
		                   .epoch_ms = j->epoch_ms,
		                   .detect_ms = j->detect_ms,
		                   .reprotect = true,
		                   .claim = j->claim,
		                   .user = "hostd" };
	struct enable_job *ej;
	int status = ft_begin(j->h, &b, &ej, err, sizeof(err));
	if (status) {
		/* this host cannot protect it: another peer would not help */
		peer_disable(&c, j->name);
		snprintf(msg, msglen, "%s", err);
		ret = -1;
		goto out;
	}
	status = ft_follow(t, ej, msg, msglen);
	free(ej);
	if (status == VMK__STATUS__STATUS_CANCELLED) {
		peer_disable(&c, j->name);
		ret = -1;
	} else if (status && ft_peer_is(j->h, j->name, p->name)) {
		/* its vmx may have lost or taken the record: the supervisor
		 * settles it, and the secondary stays */
		ret = -1;
	} else if (status) {
		/* it never began with this peer (e.g. its FT address is out
		 * of reach): the next one may do */
		peer_disable(&c, j->name);
		add_why(why, whylen, p->name, msg);
	} else {
		ret = 1;
	}
out:
	arena_free(&a);
	hostconn_close(&c);
	return ret;
}

static void *reprotect_worker(struct hostd_task *t, void *arg)
{
	struct reprotect_job *j = arg;
	struct hostd *h = j->h;
	static __thread struct cluster_host peers[CLUSTER_HOSTS];
	char user[128], pw[256], err[600], why[2000] = "", msg[800] = "";
	char *model = NULL, **features = NULL;
	size_t nf = 0;
	struct arena a;
	int n = 0, found = 0;

	arena_init(&a, 1u << 20);
	task_set_detail(t, "vm", j->name);
	task_set_detail(t, "primary", h->cfg.name);
	if (!j->dspath[0]) {
		snprintf(msg, sizeof(msg), "VM %s is not on a datastore of this host", j->name);
		found = -1;
	} else if (vmrun_vmx_cpu(j->rundir, &a, &model, &features, &nf) < 0) {
		snprintf(msg, sizeof(msg), "VM %s: its vmx does not answer", j->name);
		found = -1;
	} else if ((n = cluster_hosts(h->cfg.cluster_hosts_file, peers, CLUSTER_HOSTS, err,
	                              sizeof(err))) < 0 ||
	           cluster_credentials(h->cfg.cluster_credentials_file, user, sizeof(user), pw,
	                               sizeof(pw), err, sizeof(err)) < 0) {
		snprintf(msg, sizeof(msg), "%s", err);
		found = -1;
	}
	for (int i = 0; i < n && found == 0 && !task_cancelled(t); i++) {
		if (!strcmp(peers[i].name, h->cfg.name))
			continue;
		found = try_peer(t, j, &peers[i], user, pw, model, features, nf, why, sizeof(why),
		                 msg, sizeof(msg));
		if (found == 1)
			task_set_detail(t, "secondary", peers[i].name);
	}
	explicit_bzero(pw, sizeof(pw));
	if (found == 1) {
		hostd_event(h, j->name, "hostd", "FT: re-protected: %s", msg);
		task_finish(t, 0, "%s", msg);
	} else {
		if (found == 0)
			snprintf(msg, sizeof(msg),
			         "VM %s: no other host of the cluster can hold its secondary%s%s",
			         j->name, why[0] ? ": " : "", why);
		if (ft_reprotect_later(h, j->name, j->claim, msg)) {
			hostd_event(h, j->name, "hostd", "FT: re-protect failed, again in %d s: %s",
			            FT_REPROTECT_RETRY_MS / 1000, msg);
			log_warn("vm %s: FT re-protect failed: %s", j->name, msg);
			task_finish(t,
			            task_cancelled(t) ? VMK__STATUS__STATUS_CANCELLED
			                              : VMK__STATUS__STATUS_FAILED,
			            "%s", msg);
		} else {
			task_finish(
			        t, VMK__STATUS__STATUS_CANCELLED,
			        "VM %s: its protection was disabled or enabled by hand meanwhile",
			        j->name);
		}
	}
	arena_free(&a);
	free(j);
	atomic_fetch_sub(&running, 1);
	return NULL;
}

/* A primary that needs a secondary, and gets one by itself. Lock held. */
static bool wants_secondary(const struct vm *v, uint64_t now)
{
	return v->state == VMS_POWERED_ON && !strcmp(v->ft_role, "primary") && !v->ft_peer[0] &&
	       !v->ft_starting && v->ft_auto && now >= v->ft_retry_ms && v->pid;
}

void hostd_ft_reprotect(struct hostd *h)
{
	struct hostd_inventory *inv = h->inventory;
	struct reprotect_job *jobs[REPROTECT_MAX];
	size_t n = 0;
	uint64_t now = util_now_ms();

	if (!h->cfg.cluster_hosts_file)
		return;
	pthread_mutex_lock(&inv->lock);
	int busy = atomic_load(&running);
	size_t room = busy < REPROTECT_MAX ? (size_t)(REPROTECT_MAX - busy) : 0;
	for (size_t i = 0; i < inv->n && n < room && n < REPROTECT_MAX; i++) {
		struct vm *v = inv->vms[i];
		char root[PATH_MAX];
		size_t rl;
		if (!wants_secondary(v, now))
			continue;
		struct reprotect_job *j = calloc(1, sizeof(*j));
		if (!j)
			break;
		j->h = h;
		snprintf(j->name, sizeof(j->name), "%s", v->name);
		snprintf(j->rundir, sizeof(j->rundir), "%s", v->rundir);
		if (hostd_datastore_path(h->datastores, v->datastore, root, sizeof(root)) == 0 &&
		    (rl = strlen(root)) && !strncmp(v->path, root, rl) && v->path[rl] == '/')
			snprintf(j->dspath, sizeof(j->dspath), "%s:%s", v->datastore,
			         v->path + rl + 1);
		j->memory_mib = v->cfg.memory_mib;
		j->epoch_ms = v->ft_epoch_ms;
		j->detect_ms = v->ft_detect_ms;
		v->ft_starting = true; /* one re-protect at a time, and no enable meanwhile */
		j->claim = ++v->ft_claim;
		jobs[n++] = j;
	}
	pthread_mutex_unlock(&inv->lock);
	for (size_t i = 0; i < n; i++) {
		char name[VM_NAME_MAX + 1];
		snprintf(name, sizeof(name), "%s", jobs[i]->name);
		log_info("vm %s: FT: it needs a secondary: re-protecting it", name);
		atomic_fetch_add(&running, 1);
		struct hostd_task *t = task_start(h->tasks, "vm.ft.reprotect", name, "hostd",
		                                  reprotect_worker, jobs[i]);
		if (!t) {
			atomic_fetch_sub(&running, 1);
			ft_reprotect_later(h, name, jobs[i]->claim,
			                   "no task could start (too many run)");
			free(jobs[i]);
			continue;
		}
		task_put(t);
	}
}
