#include "vmrun.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dispatch.h"
#include "events.h"
#include "ft.h"
#include "inventory_int.h"
#include "log.h"
#include "network.h"
#include "task.h"
#include "util.h"
#include "vmlock.h"
#include "vmm/control.h"
#include "vmm/monitor.h"

#define SUPERVISE_MS  300
#define EXIT_GRACE_MS 2000 /* for the vmx.exit of a monitor that is not our child */

struct hostd_vmrun {
	pthread_t thread;
	bool running;
	pthread_mutex_t m;
	pthread_cond_t cv;
	bool stop;
};

const char *hostd_vmx_path(void)
{
	static char path[PATH_MAX];
	const char *env = getenv("VMK_VMX");

	if (env && *env)
		return env;
	if (!path[0]) {
		ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 8);
		if (n <= 0) {
			snprintf(path, sizeof(path), "vmx");
			return path;
		}
		path[n] = '\0';
		char *slash = strrchr(path, '/');
		snprintf(slash ? slash + 1 : path, 8, "vmx");
	}
	return path;
}

void vmrun_last_error(const char *dir, char *out, size_t outlen)
{
	char path[PATH_MAX + 16], buf[8192];
	int fd;

	out[0] = '\0';
	snprintf(path, sizeof(path), "%s/vmx.log", dir);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return;
	off_t end = lseek(fd, 0, SEEK_END);
	off_t from = end > (off_t)sizeof(buf) - 1 ? end - (off_t)sizeof(buf) + 1 : 0;
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, from);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	/* the last line that starts with "vmx: " */
	for (char *line = buf; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		if (!strncmp(line, "vmx: ", 5))
			snprintf(out, outlen, "%s", line + 5);
		line = nl ? nl + 1 : NULL;
	}
}

/* Per host and VM: <state_dir>/run/<name>, for vmx.sock and vmx.exit (the
 * VM's own directory may be on a datastore other hosts share). */
void vmrun_dir(const struct hostd *h, const char *name, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s/run/%s", h->cfg.state_dir, name);
}

static void sock_path(const char *rundir, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s/vmx.sock", rundir);
}

int vmrun_vmx_call(const char *rundir, Vmx__Request *rq, Vmx__Response **rs, int timeout_ms,
                   char *err, size_t errlen)
{
	char sock[PATH_MAX + 16];

	sock_path(rundir, sock, sizeof(sock));
	rq->version = 1;
	return vmm_control_call(sock, rq, rs, timeout_ms, err, errlen);
}

/* The vmx's status: 0 with *rs carrying status_info (freed by the caller),
 * or -errno. */
static int status_call(const char *rundir, Vmx__Response **rs)
{
	Vmx__Request rq = VMX__REQUEST__INIT;
	Vmx__Empty e = VMX__EMPTY__INIT;
	char err[300];

	rq.body_case = VMX__REQUEST__BODY_STATUS;
	rq.status = &e;
	int ret = vmrun_vmx_call(rundir, &rq, rs, 1000, err, sizeof(err));
	if (ret < 0)
		return ret;
	if ((*rs)->status != 0 || (*rs)->body_case != VMX__RESPONSE__BODY_STATUS_INFO) {
		vmx__response__free_unpacked(*rs, NULL);
		return -EIO;
	}
	return 0;
}

/* The vmx's own view: 0 with *pid and state, or -errno (no vmx there). */
static int vmx_status(const char *dir, int *pid, char *state, size_t statelen, uint64_t *uptime_ms)
{
	return vmrun_vmx_status(dir, pid, state, statelen, uptime_ms, NULL);
}

int vmrun_vmx_status(const char *dir, int *pid, char *state, size_t statelen, uint64_t *uptime_ms,
                     uint32_t *incoming_port)
{
	char sock[PATH_MAX + 16];
	Vmx__Response *rs = NULL;

	sock_path(dir, sock, sizeof(sock));
	if (access(sock, F_OK) < 0)
		return -ENOENT;
	int ret = status_call(dir, &rs);
	if (ret < 0)
		return ret;
	*pid = rs->status_info->pid;
	snprintf(state, statelen, "%s", rs->status_info->state);
	if (uptime_ms)
		*uptime_ms = rs->status_info->uptime_ms;
	if (incoming_port)
		*incoming_port = rs->status_info->incoming_port;
	vmx__response__free_unpacked(rs, NULL);
	return 0;
}

/* power_off (hard) or save PATH through the control socket. */
static int vmx_control(const char *dir, int body, const char *save_path, char *err, size_t errlen)
{
	Vmx__Request rq = VMX__REQUEST__INIT;
	Vmx__PowerOffRequest po = VMX__POWER_OFF_REQUEST__INIT;
	Vmx__SaveRequest sv = VMX__SAVE_REQUEST__INIT;
	Vmx__Response *rs = NULL;

	rq.body_case = (Vmx__Request__BodyCase)body;
	if (body == VMX__REQUEST__BODY_POWER_OFF) {
		po.hard = 1;
		rq.power_off = &po;
	} else {
		sv.path = (char *)save_path;
		rq.save = &sv;
	}
	int ret = vmrun_vmx_call(dir, &rq, &rs, 120000, err, errlen);
	if (ret < 0)
		return ret;
	if (rs->status != 0) {
		snprintf(err, errlen, "%s", rs->error);
		ret = -EIO;
	}
	vmx__response__free_unpacked(rs, NULL);
	return ret;
}

int vmrun_vmx_cpu(const char *rundir, struct arena *a, char **model, char ***features, size_t *n)
{
	Vmx__Response *rs = NULL;
	int ret = status_call(rundir, &rs);

	if (ret < 0)
		return ret;
	const Vmx__StatusInfo *si = rs->status_info;
	*model = arena_strdup(a, si->cpu_model);
	*features = arena_calloc(a, si->n_cpu_features + 1, sizeof(char *));
	*n = 0;
	for (size_t i = 0; *features && i < si->n_cpu_features && i < 256; i++)
		(*features)[(*n)++] = arena_strdup(a, si->cpu_features[i]);
	ret = *model && *features ? 0 : -ENOMEM;
	vmx__response__free_unpacked(rs, NULL);
	return ret;
}

/* On a shared datastore the socket in the VM's directory may be another
 * host's vmx: ours is the one whose datastore lock names this host and its
 * pid. */
bool vmrun_vmx_is_ours(struct hostd *h, const char *dir, int pid)
{
	struct vmlock_owner o;

	return vmlock_read(dir, &o, NULL, 0) == 0 && !strcmp(o.host, h->cfg.name) && o.pid == pid;
}

bool vmrun_pid_alive(int pid)
{
	return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

/* Starts `vmx --monitor` for the VM in a session of its own, its output
 * appended to <dir>/vmx.log. */
static int spawn_vmx(struct hostd *h, const char *cfgpath, const char *dir, const char *rundir,
                     const char *restore, pid_t *monitor, char *err, size_t errlen)
{
	return vmrun_spawn(h, cfgpath, dir, rundir, restore, NULL, monitor, err, errlen);
}

int vmrun_spawn(struct hostd *h, const char *cfgpath, const char *dir, const char *rundir,
                const char *restore, const struct vmrun_incoming *in, pid_t *monitor, char *err,
                size_t errlen)
{
	char logpath[PATH_MAX + 16], addr[128], taps[VMCFG_MAX_NICS][16];
	const char *vmx = hostd_vmx_path();
	const char *argv[24 + 2 * VMCFG_MAX_NICS + 2 * VMCFG_MAX_DISKS];
	int n = 0;

	/* the lock names this host's management address */
	const char *l = strstr(h->cfg.listen, "://");
	snprintf(addr, sizeof(addr), "%s", l ? l + 3 : h->cfg.listen);
	argv[n++] = vmx;
	argv[n++] = "--monitor";
	argv[n++] = "--config";
	argv[n++] = cfgpath;
	argv[n++] = "--lock-host";
	argv[n++] = h->cfg.name;
	argv[n++] = "--lock-addr";
	argv[n++] = addr;
	argv[n++] = "--run-dir";
	argv[n++] = rundir;
	int mk = util_mkdir_p(rundir, 0700);
	if (mk < 0) {
		snprintf(err, errlen, "%s: %s", rundir, strerror(-mk));
		return mk;
	}
	if (restore) {
		argv[n++] = "--restore";
		argv[n++] = restore;
	}
	/* NICs: a tap on each NIC's port group, made here, attached by vmx */
	struct vmcfg vc;
	char cerr[400];
	unsigned ntaps = 0;
	if (h->network && hostd_network_managed(h) &&
	    vmcfg_load(cfgpath, &vc, cerr, sizeof(cerr)) == 0) {
		int ret = 0;
		for (unsigned i = 0; i < vc.nnics && ret == 0; i++) {
			vmnic_tap_name(vc.uuid, i, taps[i]);
			if ((ret = vmnic_attach(h, vc.nics[i].portgroup, taps[i], cerr,
			                        sizeof(cerr))) < 0) {
				snprintf(err, errlen, "NIC %u: %s", i, cerr);
				for (unsigned k = 0; k < i; k++)
					vmnic_release(taps[k]);
			}
			argv[n++] = "--tap";
			argv[n++] = taps[i];
			ntaps = ret == 0 ? i + 1 : 0;
		}
		vmcfg_free(&vc);
		if (ret < 0)
			return ret;
	}
	if (in) {
		argv[n++] = "--incoming";
		argv[n++] = in->addr;
		argv[n++] = "--incoming-token-file";
		argv[n++] = in->token_file;
		if (in->netns) {
			argv[n++] = "--netns";
			argv[n++] = in->netns;
		}
		if (in->ft_secondary)
			argv[n++] = "--ft-secondary";
		for (unsigned i = 0; i < in->ndisks && i < VMCFG_MAX_DISKS; i++) {
			argv[n++] = "--disk";
			argv[n++] = in->disks[i];
		}
	}
	argv[n] = NULL;
	snprintf(logpath, sizeof(logpath), "%s/vmx.log", dir);
	int logfd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0644);
	int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (logfd < 0 || nullfd < 0) {
		snprintf(err, errlen, "%s: %s", logpath, strerror(errno));
		if (logfd >= 0)
			close(logfd);
		if (nullfd >= 0)
			close(nullfd);
		for (unsigned i = 0; i < ntaps; i++)
			vmnic_release(taps[i]);
		return -EIO;
	}
	sigset_t all;
	sigemptyset(&all);
	pid_t pid = fork();
	if (pid == 0) {
		/* async-signal-safe calls only until exec */
		setsid();
		dup2(nullfd, 0);
		dup2(logfd, 1);
		dup2(logfd, 2);
		sigprocmask(SIG_SETMASK, &all, NULL);
		execv(vmx, (char *const *)argv);
		static const char msg[] = "vmx: cannot execute the vmx binary\n";
		(void)!write(2, msg, sizeof(msg) - 1);
		_exit(102);
	}
	int saved = errno;
	close(logfd);
	close(nullfd);
	if (pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(saved));
		for (unsigned i = 0; i < ntaps; i++)
			vmnic_release(taps[i]);
		return -saved;
	}
	*monitor = pid;
	return 0;
}

/* ---- what a vmx's end means ---- */

/* Sets v's state from how its vmx ended (vmx.exit); lock held. */
/* A VM that stopped running here: its NICs' taps go */
void vmrun_release_nics(struct hostd *h, const struct vm *v)
{
	char tap[16];

	for (unsigned i = 0; v->valid && hostd_network_managed(h) && i < v->cfg.nnics; i++) {
		vmnic_tap_name(v->cfg.uuid, i, tap);
		vmnic_release(tap);
	}
}

static void record_exit(struct hostd *h, struct vm *v, const char *user)
{
	int pid, code, sig;
	long long when;
	char why[300];
	bool crashed;

	vmrun_release_nics(h, v);
	if (vmx_exit_read(v->rundir, &pid, &code, &sig, &when) == 0 && (pid == v->pid || !v->pid)) {
		if (sig) {
			snprintf(v->reason, sizeof(v->reason), "vmx pid %d was killed by signal %d",
			         pid, sig);
			crashed = true;
		} else if (code <= 99) {
			snprintf(v->reason, sizeof(v->reason), "the guest powered off (status %d)",
			         code);
			crashed = false;
		} else {
			vmrun_last_error(v->dir, why, sizeof(why));
			snprintf(v->reason, sizeof(v->reason), "vmx exited with %d%s%s", code,
			         why[0] ? ": " : "", why);
			crashed = code != 104;
		}
	} else {
		snprintf(v->reason, sizeof(v->reason), "vmx pid %d ended and left no exit status",
		         v->pid);
		crashed = true;
	}
	if (v->expect_exit)
		crashed = false;
	/* the monitor releases a killed vmx's lease; a monitor killed too cannot */
	if (v->pid) {
		char err[300];
		vmlock_release_if_owner(v->dir, h->cfg.name, v->pid, err, sizeof(err));
	}
	hostd_ft_clear(v);
	v->state = crashed ? VMS_CRASHED : VMS_POWERED_OFF;
	v->pid = 0;
	v->monitor_pid = 0;
	v->started_ms = 0;
	v->expect_exit = false;
	hostd_event(h, v->name, user, "%s: %s", crashed ? "crashed" : "powered off", v->reason);
	inv_save(h->inventory);
}

/* ---- the supervisor ---- */

static void supervise_once(struct hostd *h)
{
	struct hostd_inventory *inv = h->inventory;

	pthread_mutex_lock(&inv->lock);
	for (size_t i = 0; i < inv->n; i++) {
		struct vm *v = inv->vms[i];
		if (v->state != VMS_POWERED_ON)
			continue; /* a power operation owns the VM (and reaps its monitor) */
		/* reap the monitor hostd started once it ended (its vmx.exit says the rest) */
		if (v->monitor_pid && waitpid(v->monitor_pid, NULL, WNOHANG) == v->monitor_pid)
			v->monitor_pid = 0;
		if (vmrun_pid_alive(v->pid)) {
			v->gone_ms = 0;
			continue;
		}
		/* the monitor writes vmx.exit right after it reaps its vmx; a
		 * monitor that is not our child (hostd restarted since) cannot be
		 * watched, so its file gets a grace period */
		struct stat st;
		char p[PATH_MAX + 16];
		snprintf(p, sizeof(p), "%s/%s", v->rundir, VMX_EXIT_FILE);
		if (!v->gone_ms)
			v->gone_ms = util_now_ms();
		if (stat(p, &st) < 0 &&
		    ((v->monitor_pid && vmrun_pid_alive(v->monitor_pid)) ||
		     (!v->monitor_pid && util_now_ms() - v->gone_ms < EXIT_GRACE_MS)))
			continue;
		if (hostd_ft_settling(h, v))
			continue; /* the generation record says soon who runs it */
		v->gone_ms = 0;
		log_info("vm %s: vmx pid %d ended", v->name, v->pid);
		if (hostd_ft_failed_over(h, v)) {
			i--; /* dropped: it runs on its former secondary's host */
			continue;
		}
		record_exit(h, v, "-");
	}
	pthread_mutex_unlock(&inv->lock);
}

static void *supervisor_main(void *arg)
{
	struct hostd *h = arg;
	struct hostd_vmrun *r = h->vmrun;

	pthread_mutex_lock(&r->m);
	while (!r->stop) {
		struct timespec ts;
		util_deadline(&ts, SUPERVISE_MS);
		pthread_cond_timedwait(&r->cv, &r->m, &ts);
		if (r->stop)
			break;
		pthread_mutex_unlock(&r->m);
		supervise_once(h);
		hostd_ft_watch(h);
		hostd_ft_poll(h);
		hostd_ft_reprotect(h);
		pthread_mutex_lock(&r->m);
	}
	pthread_mutex_unlock(&r->m);
	return NULL;
}

void vmrun_suspend_path(const char *dir, const char *name, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s/%s%s", dir, name, VMRUN_SUSPEND_FILE_EXT);
}

int hostd_vmrun_start(struct hostd *h)
{
	struct hostd_inventory *inv = h->inventory;
	struct hostd_vmrun *r = calloc(1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	pthread_mutex_init(&r->m, NULL);
	pthread_cond_init(&r->cv, NULL);
	h->vmrun = r;
	pthread_mutex_lock(&inv->lock);
	for (size_t i = 0; i < inv->n; i++) {
		struct vm *v = inv->vms[i];
		char state[32], ss[PATH_MAX + 32];
		int pid = 0;
		uint64_t up = 0;
		if (!v->valid)
			continue;
		hostd_ft_load(v);
		bool answers = vmx_status(v->rundir, &pid, state, sizeof(state), &up) == 0;
		if (answers && (!strcmp(state, "running") || !strcmp(state, "paused")) &&
		    vmrun_vmx_is_ours(h, v->dir, pid)) {
			/* an FT secondary that went live meanwhile: the supervisor
			 * makes it the primary */
			v->state = !strcmp(v->ft_role, "secondary") ? VMS_FT_SECONDARY
			                                            : VMS_POWERED_ON;
			v->pid = pid;
			v->started_ms = util_wall_ms() - up;
			log_info("vm %s: re-attached to vmx pid %d (%s)", v->name, pid, state);
			continue;
		}
		if (v->state == VMS_FT_SECONDARY) {
			/* the supervisor follows it, or finds it ended and lets it
			 * go: a vmx that does not answer gets pid 0, never a pid
			 * that may have been reused */
			v->pid = answers ? pid : 0;
			int xpid, code, sig;
			long long when;
			if (!answers && vmx_exit_read(v->rundir, &xpid, &code, &sig, &when) == 0)
				v->pid = xpid; /* it ended: how is in its exit record */
			log_info("vm %s: FT secondary, vmx pid %d", v->name, v->pid);
			continue;
		}
		vmrun_suspend_path(v->dir, v->name, ss, sizeof(ss));
		if ((v->state == VMS_MIGRATING || v->state == VMS_CLONING ||
		     v->state == VMS_SNAPSHOTTING) &&
		    !vmrun_pid_alive(pid)) {
			/* an operation on a VM without a vmx was cut short by the
			 * restart: the VM is as its files say */
			v->state = access(ss, F_OK) == 0 ? VMS_SUSPENDED : VMS_POWERED_OFF;
			snprintf(v->reason, sizeof(v->reason),
			         "hostd restarted during an operation on it");
			log_warn("vm %s: hostd restarted during an operation on it; it is %s",
			         v->name, vm_state_name(v->state));
			continue;
		}
		if (vm_state_has_vmx(v->state)) {
			/* it ran when hostd last saw it, and its vmx is gone now */
			log_warn("vm %s: its vmx ended while hostd was down", v->name);
			int xpid, code, sig;
			long long when;
			if (vmx_exit_read(v->rundir, &xpid, &code, &sig, &when) == 0)
				v->pid = xpid;
			if (hostd_ft_failed_over(h, v)) {
				i--; /* it runs on its former secondary's host */
				continue;
			}
			record_exit(h, v, "-");
		} else if (access(ss, F_OK) == 0) {
			v->state = VMS_SUSPENDED;
		}
	}
	inv_save(inv);
	pthread_mutex_unlock(&inv->lock);
	if (pthread_create(&r->thread, NULL, supervisor_main, h) != 0)
		return -EAGAIN;
	r->running = true;
	return 0;
}

void hostd_vmrun_halt(struct hostd *h)
{
	struct hostd_vmrun *r = h->vmrun;

	if (!r || !r->running)
		return;
	pthread_mutex_lock(&r->m);
	r->stop = true;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->m);
	pthread_join(r->thread, NULL);
	r->running = false;
}

void hostd_vmrun_stop(struct hostd *h)
{
	struct hostd_vmrun *r = h->vmrun;

	if (!r)
		return;
	hostd_vmrun_halt(h);
	pthread_mutex_destroy(&r->m);
	pthread_cond_destroy(&r->cv);
	free(r);
	h->vmrun = NULL;
}

/* ---- power operations (tasks) ---- */

struct power_job {
	struct hostd *h;
	enum vm_op op;
	enum vm_state before;
	char name[VM_NAME_MAX + 1];
	char path[PATH_MAX];
	char dir[PATH_MAX];
	char rundir[PATH_MAX];
	char user[TASK_USER_MAX];
};

/* Sets the VM's state (and more) at the end of a step; lock taken here. */
static void set_state(struct power_job *j, enum vm_state s, int pid, int monitor,
                      const char *reason)
{
	struct hostd_inventory *inv = j->h->inventory;

	pthread_mutex_lock(&inv->lock);
	struct vm *v = inv_find(inv, j->name);
	if (v) {
		if (s == VMS_POWERED_OFF || s == VMS_SUSPENDED || s == VMS_CRASHED ||
		    s == VMS_SNAPSHOTTING) { /* no vmx in these: its taps go, and its FT */
			vmrun_release_nics(j->h, v);
			hostd_ft_clear(v);
		}
		v->state = s;
		v->pid = pid;
		v->monitor_pid = monitor;
		v->started_ms = pid ? util_wall_ms() : 0;
		v->expect_exit = false;
		if (reason)
			snprintf(v->reason, sizeof(v->reason), "%s", reason);
		inv_save(inv);
	}
	pthread_mutex_unlock(&inv->lock);
}

static int current_pid(struct power_job *j, int *monitor)
{
	struct hostd_inventory *inv = j->h->inventory;
	int pid = 0;

	pthread_mutex_lock(&inv->lock);
	struct vm *v = inv_find(inv, j->name);
	if (v) {
		pid = v->pid;
		if (monitor)
			*monitor = v->monitor_pid;
		v->expect_exit = true; /* whatever ends it now is us */
	}
	pthread_mutex_unlock(&inv->lock);
	return pid;
}

/* Exit statuses of vmx and what they mean to a user. */
static int start_failure_status(int code)
{
	switch (code) {
	case 101:
		return VMK__STATUS__STATUS_USAGE; /* the configuration */
	case 105:
		return VMK__STATUS__STATUS_CONFLICT; /* locked by another host */
	default:
		return VMK__STATUS__STATUS_FAILED;
	}
}

/* Starts the vmx and waits until it runs the guest. 0, or the task's
 * failure status with msg set. */
static int do_start(struct power_job *j, struct hostd_task *t, const char *restore, char *msg,
                    size_t msglen)
{
	pid_t monitor;
	char err[400];

	task_progress(t, 10, restore ? "restoring the suspended state" : "starting vmx");
	if (spawn_vmx(j->h, j->path, j->dir, j->rundir, restore, &monitor, err, sizeof(err)) < 0) {
		snprintf(msg, msglen, "cannot start vmx for VM %s: %s", j->name, err);
		return VMK__STATUS__STATUS_FAILED;
	}
	uint64_t deadline = util_now_ms() + VMRUN_START_TIMEOUT_MS;
	for (;;) {
		char state[32];
		int pid = 0, st;
		if (vmx_status(j->rundir, &pid, state, sizeof(state), NULL) == 0 && pid > 0 &&
		    (!strcmp(state, "running") || !strcmp(state, "paused")) &&
		    vmrun_vmx_is_ours(j->h, j->dir, pid)) {
			set_state(j, VMS_POWERED_ON, pid, monitor, "");
			return 0;
		}
		if (waitpid(monitor, &st, WNOHANG) == monitor) {
			int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
			if (code <= 99) {
				/* it started, and its guest powered off before we looked */
				char why[100];
				snprintf(why, sizeof(why), "its guest powered off with status %d",
				         code);
				set_state(j, VMS_POWERED_OFF, 0, 0, why);
				return 0;
			}
			vmrun_last_error(j->dir, err, sizeof(err));
			if (err[0])
				snprintf(msg, msglen, "VM %s did not start: %s", j->name, err);
			else if (code >= 128)
				snprintf(msg, msglen,
				         "VM %s did not start: vmx was killed by signal %d (see "
				         "vmx.log in the VM's directory)",
				         j->name, code - 128);
			else
				snprintf(msg, msglen,
				         "VM %s did not start: vmx exited with status %d (see "
				         "vmx.log in the VM's directory)",
				         j->name, code);
			return start_failure_status(code);
		}
		if (task_cancelled(t) || util_now_ms() > deadline) {
			bool cancelled = task_cancelled(t);
			kill(-monitor, SIGKILL); /* the whole session: monitor and vmx */
			waitpid(monitor, NULL, 0);
			snprintf(msg, msglen, "VM %s: %s", j->name,
			         cancelled ? "power on cancelled; the vmx was stopped"
			                   : "vmx did not come up within 30 s; it was stopped "
			                     "(see vmx.log in the VM's directory)");
			return cancelled ? VMK__STATUS__STATUS_CANCELLED
			                 : VMK__STATUS__STATUS_TIMEOUT;
		}
		usleep(50 * 1000);
	}
}

/* Stops the running vmx: power off through its socket, then SIGKILL. */
static int do_stop(struct power_job *j, struct hostd_task *t, char *msg, size_t msglen)
{
	int monitor = 0, pid = current_pid(j, &monitor);
	char err[400];

	if (t)
		task_progress(t, 30, "stopping vmx");
	if (pid > 0 &&
	    vmx_control(j->rundir, VMX__REQUEST__BODY_POWER_OFF, NULL, err, sizeof(err)) < 0)
		log_warn("vm %s: power off through the control socket: %s; killing vmx pid %d",
		         j->name, err, pid);
	uint64_t deadline = util_now_ms() + VMRUN_STOP_TIMEOUT_MS;
	while (vmrun_pid_alive(pid)) {
		if (monitor)
			waitpid(monitor, NULL, WNOHANG);
		if (util_now_ms() > deadline) {
			kill(pid, SIGKILL);
			deadline = UINT64_MAX;
		}
		usleep(20 * 1000);
	}
	if (monitor)
		waitpid(monitor, NULL, 0);
	(void)msg;
	(void)msglen;
	return 0;
}

int vmrun_power_off_now(struct hostd *h, const char *name, const char *reason, enum vm_state after)
{
	struct hostd_inventory *inv = h->inventory;
	struct power_job j = { .h = h, .op = VMOP_POWER_OFF };

	pthread_mutex_lock(&inv->lock);
	struct vm *v = inv_find(inv, name);
	if (!v || !v->pid || (v->state != VMS_POWERED_ON && v->state != VMS_SNAPSHOTTING)) {
		pthread_mutex_unlock(&inv->lock);
		return -EBUSY;
	}
	if (v->state == VMS_POWERED_ON)
		v->state = VMS_POWERING_OFF;
	j.before = VMS_POWERED_ON;
	snprintf(j.name, sizeof(j.name), "%s", v->name);
	snprintf(j.rundir, sizeof(j.rundir), "%s", v->rundir);
	snprintf(j.dir, sizeof(j.dir), "%s", v->dir);
	pthread_mutex_unlock(&inv->lock);
	do_stop(&j, NULL, NULL, 0);
	set_state(&j, after, 0, 0, reason);
	return 0;
}

static void *power_worker(struct hostd_task *t, void *arg)
{
	struct power_job *j = arg;
	struct hostd *h = j->h;
	char msg[600] = "", ss[PATH_MAX + 32], err[400];
	int status = 0;

	vmrun_suspend_path(j->dir, j->name, ss, sizeof(ss));
	switch (j->op) {
	case VMOP_POWER_ON:
	case VMOP_RESUME: {
		bool resume = j->before == VMS_SUSPENDED;
		status = do_start(j, t, resume ? ss : NULL, msg, sizeof(msg));
		if (status == 0) {
			if (resume)
				unlink(ss); /* the state lives in the running VM now */
			hostd_event(h, j->name, j->user, resume ? "resumed" : "powered on");
			snprintf(msg, sizeof(msg), "VM %s %s", j->name,
			         resume ? "resumed" : "powered on");
		} else {
			set_state(j, j->before == VMS_CRASHED ? VMS_CRASHED : j->before, 0, 0, msg);
		}
		break;
	}
	case VMOP_POWER_OFF:
		if (j->before == VMS_SUSPENDED) {
			unlink(ss);
			snprintf(msg, sizeof(msg),
			         "VM %s powered off (its suspended state discarded)", j->name);
		} else {
			do_stop(j, t, msg, sizeof(msg));
			snprintf(msg, sizeof(msg), "VM %s powered off", j->name);
		}
		set_state(j, VMS_POWERED_OFF, 0, 0, "powered off by a user");
		hostd_event(h, j->name, j->user, "powered off");
		break;
	case VMOP_SUSPEND:
		task_progress(t, 20, "saving the VM's state");
		if (vmx_control(j->rundir, VMX__REQUEST__BODY_SAVE, ss, err, sizeof(err)) < 0) {
			/* the VM keeps running where it was */
			Vmx__Request rq = VMX__REQUEST__INIT;
			Vmx__Empty e = VMX__EMPTY__INIT;
			Vmx__Response *rs = NULL;
			char e2[200];
			rq.body_case = VMX__REQUEST__BODY_RESUME;
			rq.resume = &e;
			if (vmrun_vmx_call(j->rundir, &rq, &rs, 5000, e2, sizeof(e2)) == 0)
				vmx__response__free_unpacked(rs, NULL);
			int monitor = 0, pid = current_pid(j, &monitor);
			set_state(j, VMS_POWERED_ON, pid, monitor, NULL);
			snprintf(msg, sizeof(msg), "VM %s: suspend failed, it keeps running: %s",
			         j->name, err);
			status = VMK__STATUS__STATUS_FAILED;
			break;
		}
		task_progress(t, 80, "stopping vmx");
		do_stop(j, t, msg, sizeof(msg));
		set_state(j, VMS_SUSPENDED, 0, 0, "suspended by a user");
		hostd_event(h, j->name, j->user, "suspended (state in %s)", ss);
		snprintf(msg, sizeof(msg), "VM %s suspended", j->name);
		break;
	case VMOP_RESET:
		if (j->before == VMS_POWERED_ON)
			do_stop(j, t, msg, sizeof(msg));
		status = do_start(j, t, NULL, msg, sizeof(msg));
		if (status == 0) {
			hostd_event(h, j->name, j->user, "reset");
			snprintf(msg, sizeof(msg), "VM %s reset", j->name);
		} else {
			set_state(j, VMS_POWERED_OFF, 0, 0, msg);
		}
		break;
	default:
		status = VMK__STATUS__STATUS_FAILED;
		snprintf(msg, sizeof(msg), "unknown power operation");
	}
	task_progress(t, 100, NULL);
	task_finish(t, status, "%s", msg);
	free(j);
	return NULL;
}

static const struct {
	Vmk__PowerAction action;
	enum vm_op op;
	const char *task;
} actions[] = {
	{ VMK__POWER_ACTION__POWER_ON, VMOP_POWER_ON, "vm.power.on" },
	{ VMK__POWER_ACTION__POWER_OFF, VMOP_POWER_OFF, "vm.power.off" },
	{ VMK__POWER_ACTION__POWER_RESET, VMOP_RESET, "vm.power.reset" },
	{ VMK__POWER_ACTION__POWER_SUSPEND, VMOP_SUSPEND, "vm.power.suspend" },
	{ VMK__POWER_ACTION__POWER_RESUME, VMOP_RESUME, "vm.power.resume" },
};

int hostd_op_vm_power(struct hostd_call *call, const Vmk__Request *req)
{
	struct hostd_inventory *inv = call->h->inventory;
	const Vmk__VmPowerRequest *p = req->vm_power;
	struct power_job *j;
	char why[500];
	size_t a;

	for (a = 0; a < ARRAY_SIZE(actions); a++)
		if (actions[a].action == p->action)
			break;
	if (a == ARRAY_SIZE(actions))
		return hostd_fail(call, VMK__STATUS__STATUS_USAGE,
		                  "unknown power action %d: use on, off, reset, suspend or resume",
		                  (int)p->action);
	if (!(j = calloc(1, sizeof(*j))))
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED, "out of memory");
	pthread_mutex_lock(&inv->lock);
	struct vm *v = inv_find(inv, p->name);
	if (!v) {
		pthread_mutex_unlock(&inv->lock);
		free(j);
		return hostd_fail(call, VMK__STATUS__STATUS_NOT_FOUND,
		                  "no VM named \"%s\" on this host; see vm list", p->name);
	}
	enum vm_op op = actions[a].op;
	/* power on of a suspended VM resumes it, as in ESXi */
	if (op == VMOP_POWER_ON && v->state == VMS_SUSPENDED)
		op = VMOP_RESUME;
	if (vm_state_check(v->state, op, v->name, why, sizeof(why)) < 0 ||
	    (op == VMOP_SUSPEND && hostd_ft_refuse(v, "suspend", why, sizeof(why)) < 0)) {
		pthread_mutex_unlock(&inv->lock);
		free(j);
		return hostd_fail(call, VMK__STATUS__STATUS_CONFLICT, "%s", why);
	}
	j->h = call->h;
	j->op = op;
	j->before = v->state;
	snprintf(j->name, sizeof(j->name), "%s", v->name);
	snprintf(j->path, sizeof(j->path), "%s", v->path);
	snprintf(j->dir, sizeof(j->dir), "%s", v->dir);
	snprintf(j->rundir, sizeof(j->rundir), "%s", v->rundir);
	snprintf(j->user, sizeof(j->user), "%s", call->user);
	v->state = vm_state_during(op);
	if (op == VMOP_POWER_OFF || op == VMOP_SUSPEND || op == VMOP_RESET)
		v->expect_exit = true;
	inv_save(inv);
	pthread_mutex_unlock(&inv->lock);
	int status = hostd_task_start_reply(call, actions[a].task, j->name, power_worker, j);
	if (status != VMK__STATUS__STATUS_OK) {
		/* no task: nothing happened */
		pthread_mutex_lock(&inv->lock);
		if ((v = inv_find(inv, j->name))) {
			v->state = j->before;
			v->expect_exit = false;
			inv_save(inv);
		}
		pthread_mutex_unlock(&inv->lock);
		free(j);
	}
	return status;
}
