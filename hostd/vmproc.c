/* vm process list|kill (esxcli's VM worlds: here, vmx processes) and
 * vm console (the VM's serial log, read from its directory). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dispatch.h"
#include "events.h"
#include "inventory_int.h"
#include "log.h"
#include "util.h"
#include "vmm/control.h"
#include "vmrun.h"

#define CONSOLE_DEFAULT_BYTES (64u << 10)
#define CONSOLE_MAX_BYTES     (256u << 10)
#define CONSOLE_DEFAULT_TAIL  20u

int hostd_op_vm_process_list(struct hostd_call *call, const Vmk__Request *req)
{
	struct hostd_inventory *inv = call->h->inventory;
	Vmk__VmProcessListResponse *r = arena_alloc(call->a, sizeof(*r));

	(void)req;
	if (!r)
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED, "out of memory");
	vmk__vm_process_list_response__init(r);
	pthread_mutex_lock(&inv->lock);
	r->processes = arena_calloc(call->a, inv->n + 1, sizeof(*r->processes));
	for (size_t i = 0; r->processes && i < inv->n; i++) {
		struct vm *v = inv->vms[i];
		Vmk__VmProcess *p;
		if (!v->pid || !(p = arena_alloc(call->a, sizeof(*p))))
			continue;
		vmk__vm_process__init(p);
		p->world_id = v->pid; /* one world per VM: its vmx */
		p->pid = v->pid;
		p->name = arena_strdup(call->a, v->name);
		p->config_file = arena_strdup(call->a, v->path);
		r->processes[r->n_processes++] = p;
	}
	pthread_mutex_unlock(&inv->lock);
	call->resp->body_case = VMK__RESPONSE__BODY_VM_PROCESS_LIST;
	call->resp->vm_process_list = r;
	return VMK__STATUS__STATUS_OK;
}

int hostd_op_vm_process_kill(struct hostd_call *call, const Vmk__Request *req)
{
	struct hostd_inventory *inv = call->h->inventory;
	const Vmk__VmProcessKillRequest *k = req->vm_process_kill;
	int sig;
	char why[400], dir[PATH_MAX], name[VM_NAME_MAX + 1];

	if (!strcmp(k->type, "soft"))
		sig = 0;
	else if (!strcmp(k->type, "hard"))
		sig = SIGTERM;
	else if (!strcmp(k->type, "force"))
		sig = SIGKILL;
	else
		return hostd_fail(call, VMK__STATUS__STATUS_USAGE,
		                  "kill type \"%s\": use soft, hard or force", k->type);
	pthread_mutex_lock(&inv->lock);
	struct vm *v = NULL;
	for (size_t i = 0; i < inv->n; i++)
		if (inv->vms[i]->pid && inv->vms[i]->pid == k->world_id)
			v = inv->vms[i];
	if (!v) {
		pthread_mutex_unlock(&inv->lock);
		return hostd_fail(
		        call, VMK__STATUS__STATUS_NOT_FOUND,
		        "no VM process with world id %lld on this host; see vm process list",
		        (long long)k->world_id);
	}
	if (vm_state_check(v->state, VMOP_KILL, v->name, why, sizeof(why)) < 0) {
		pthread_mutex_unlock(&inv->lock);
		return hostd_fail(call, VMK__STATUS__STATUS_CONFLICT, "%s", why);
	}
	int pid = v->pid;
	v->expect_exit = true; /* the user ended it: not a crash */
	snprintf(dir, sizeof(dir), "%s", v->rundir);
	snprintf(name, sizeof(name), "%s", v->name);
	pthread_mutex_unlock(&inv->lock);
	hostd_event(call->h, name, call->user, "process kill -t %s (vmx pid %d)", k->type, pid);
	if (sig) {
		if (kill(pid, sig) < 0)
			return hostd_fail(call, VMK__STATUS__STATUS_FAILED, "kill vmx pid %d: %s",
			                  pid, strerror(errno));
	} else {
		/* soft: vmx stops its guest and exits cleanly (no ACPI in the micro
		 * guests to ask them first) */
		char err[300];
		Vmx__Request rq = VMX__REQUEST__INIT;
		Vmx__PowerOffRequest po = VMX__POWER_OFF_REQUEST__INIT;
		Vmx__Response *rs = NULL;
		rq.body_case = VMX__REQUEST__BODY_POWER_OFF;
		rq.power_off = &po;
		if (vmrun_vmx_call(dir, &rq, &rs, 10000, err, sizeof(err)) < 0)
			return hostd_fail(
			        call, VMK__STATUS__STATUS_FAILED,
			        "VM %s: its vmx does not answer (%s); use -t hard or -t force",
			        name, err);
		vmx__response__free_unpacked(rs, NULL);
	}
	call->resp->body_case = VMK__RESPONSE__BODY_EMPTY;
	return VMK__STATUS__STATUS_OK;
}

/* Offset of the start of the last n lines of the file (fd, size). */
static off_t tail_offset(int fd, off_t size, unsigned n)
{
	char buf[4096];
	off_t pos = size;
	unsigned lines = 0;

	/* a final newline ends the last line, it does not start another */
	while (pos > 0) {
		size_t chunk = pos > (off_t)sizeof(buf) ? sizeof(buf) : (size_t)pos;
		ssize_t got = pread(fd, buf, chunk, pos - (off_t)chunk);
		if (got <= 0)
			return 0;
		for (ssize_t i = got - 1; i >= 0; i--) {
			off_t at = pos - (off_t)chunk + i;
			if (buf[i] == '\n' && at != size - 1 && ++lines == n)
				return at + 1;
		}
		pos -= (off_t)chunk;
		if (size - pos > (off_t)CONSOLE_MAX_BYTES)
			return size - (off_t)CONSOLE_MAX_BYTES;
	}
	return 0;
}

int hostd_op_vm_console(struct hostd_call *call, const Vmk__Request *req)
{
	struct hostd_inventory *inv = call->h->inventory;
	const Vmk__VmConsoleRequest *c = req->vm_console;
	char path[PATH_MAX];
	bool running;

	pthread_mutex_lock(&inv->lock);
	struct vm *v = inv_find(inv, c->name);
	if (!v || !v->valid) {
		pthread_mutex_unlock(&inv->lock);
		return hostd_fail(call, VMK__STATUS__STATUS_NOT_FOUND,
		                  v ? "VM %s is invalid (vm get says why): it has no console"
		                    : "no VM named \"%s\" on this host; see vm list",
		                  c->name);
	}
	snprintf(path, sizeof(path), "%s", v->cfg.serial_log);
	/* an FT secondary's vmx does not run the guest: its console is the
	 * primary's */
	running = vm_state_has_vmx(v->state) && v->state != VMS_FT_SECONDARY;
	pthread_mutex_unlock(&inv->lock);

	Vmk__VmConsoleResponse *r = arena_alloc(call->a, sizeof(*r));
	if (!r)
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED, "out of memory");
	vmk__vm_console_response__init(r);
	r->running = running;
	call->resp->body_case = VMK__RESPONSE__BODY_VM_CONSOLE;
	call->resp->vm_console = r;
	/* a FIFO there would hold this worker until a writer came */
	struct stat st;
	int fd = util_open_regular(path, O_RDONLY | O_NOFOLLOW, &st);
	if (fd == -ENOENT)
		return VMK__STATUS__STATUS_OK; /* never powered on: nothing yet */
	if (fd == -EINVAL || fd == -EISDIR)
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED,
		                  "VM %s: console log %s is not a regular file: vm console reads "
		                  "the log vmx writes to a file",
		                  c->name, path);
	if (fd < 0)
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED, "VM %s: console log %s: %s",
		                  c->name, path, strerror(-fd));
	size_t max = c->max_bytes ? c->max_bytes : CONSOLE_DEFAULT_BYTES;
	if (max > CONSOLE_MAX_BYTES)
		max = CONSOLE_MAX_BYTES;
	off_t from = c->offset >= 0 ? (off_t)c->offset
	                            : tail_offset(fd, st.st_size,
	                                          c->tail ? c->tail : CONSOLE_DEFAULT_TAIL);
	if (from > st.st_size)
		from = st.st_size; /* the log was truncated or replaced: from its end */
	size_t len = st.st_size - from < (off_t)max ? (size_t)(st.st_size - from) : max;
	uint8_t *data = len ? arena_alloc(call->a, len) : NULL;
	ssize_t got = data ? pread(fd, data, len, from) : 0;
	close(fd);
	if (got < 0)
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED, "VM %s: reading %s: %s",
		                  c->name, path, strerror(errno));
	r->data.data = data;
	r->data.len = (size_t)got;
	r->next_offset = from + got;
	return VMK__STATUS__STATUS_OK;
}
