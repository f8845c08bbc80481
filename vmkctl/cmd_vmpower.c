/* vmkctl vm power ..., vm console, vm process ... */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "handlers.h"
#include "taskwait.h"

static int power(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out,
                 Vmk__PowerAction action)
{
	Vmk__Request req = VMK__REQUEST__INIT;
	Vmk__VmPowerRequest body = VMK__VM_POWER_REQUEST__INIT;
	Vmk__Response *resp;
	int ret;

	body.name = (char *)args_str(a, "name");
	body.action = action;
	req.body_case = VMK__REQUEST__BODY_VM_POWER;
	req.vm_power = &body;
	if ((ret = vmkctl_call(v, &req, &resp)))
		return ret;
	const Vmk__Task *t = VMKCTL_BODY(v, resp, VMK__RESPONSE__BODY_TASK, task);
	if (!t)
		return 1;
	return vmkctl_task_result(v, a, t, out);
}

/* Powers a VM on (a suspended one resumes) and waits for it, printing
 * nothing: the second step of clone --powered-on and of a revert. */
int vmkctl_power_on_wait(struct vmkctl *h, const char *name)
{
	Vmk__Request req = VMK__REQUEST__INIT;
	Vmk__VmPowerRequest body = VMK__VM_POWER_REQUEST__INIT;
	Vmk__Response *resp;
	struct vmkctl_wait_opts o = { .timeout_ms = 60000 };
	int ret;

	body.name = (char *)name;
	body.action = VMK__POWER_ACTION__POWER_ON;
	req.body_case = VMK__REQUEST__BODY_VM_POWER;
	req.vm_power = &body;
	if ((ret = vmkctl_call(h, &req, &resp)))
		return ret;
	const Vmk__Task *t = VMKCTL_BODY(h, resp, VMK__RESPONSE__BODY_TASK, task);
	return t ? vmkctl_task_wait(h, t->id, &o, NULL) : 1;
}

int cmd_vm_power_on(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out)
{
	return power(v, a, out, VMK__POWER_ACTION__POWER_ON);
}

int cmd_vm_power_off(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out)
{
	return power(v, a, out, VMK__POWER_ACTION__POWER_OFF);
}

int cmd_vm_power_reset(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out)
{
	return power(v, a, out, VMK__POWER_ACTION__POWER_RESET);
}

int cmd_vm_power_suspend(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out)
{
	return power(v, a, out, VMK__POWER_ACTION__POWER_SUSPEND);
}

int cmd_vm_power_resume(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out)
{
	return power(v, a, out, VMK__POWER_ACTION__POWER_RESUME);
}

int cmd_vm_process_list(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out)
{
	static const char *const cols[] = { "world_id", "name", "pid", "config_file" };
	Vmk__Request req = VMK__REQUEST__INIT;
	Vmk__VmProcessListRequest body = VMK__VM_PROCESS_LIST_REQUEST__INIT;
	Vmk__Response *resp;
	int ret;

	(void)a;
	req.body_case = VMK__REQUEST__BODY_VM_PROCESS_LIST;
	req.vm_process_list = &body;
	if ((ret = vmkctl_call(v, &req, &resp)))
		return ret;
	const Vmk__VmProcessListResponse *r =
	        VMKCTL_BODY(v, resp, VMK__RESPONSE__BODY_VM_PROCESS_LIST, vm_process_list);
	if (!r)
		return 1;
	if (out_init(out, "VirtualMachineProcess", true, 4, cols) < 0)
		return vmkctl_error(v, 1, "out of memory");
	for (size_t i = 0; i < r->n_processes; i++) {
		int row = out_add_row(out);
		if (row < 0)
			return vmkctl_error(v, 1, "out of memory");
		out_set_int(out, (size_t)row, "world_id", r->processes[i]->world_id);
		out_set_str(out, (size_t)row, "name", r->processes[i]->name);
		out_set_int(out, (size_t)row, "pid", r->processes[i]->pid);
		out_set_str(out, (size_t)row, "config_file", r->processes[i]->config_file);
	}
	return 0;
}

int cmd_vm_process_kill(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out)
{
	static const char *const cols[] = { "world_id", "type", "killed" };
	Vmk__Request req = VMK__REQUEST__INIT;
	Vmk__VmProcessKillRequest body = VMK__VM_PROCESS_KILL_REQUEST__INIT;
	Vmk__Response *resp;
	int ret;

	body.world_id = args_int(a, "world-id", 0);
	body.type = (char *)args_str(a, "type");
	req.body_case = VMK__REQUEST__BODY_VM_PROCESS_KILL;
	req.vm_process_kill = &body;
	if ((ret = vmkctl_call(v, &req, &resp)))
		return ret;
	if (out_init(out, "VirtualMachineProcessKill", false, 3, cols) < 0 || out_add_row(out) < 0)
		return vmkctl_error(v, 1, "out of memory");
	out_set_int(out, 0, "world_id", body.world_id);
	out_set_str(out, 0, "type", body.type);
	out_set_bool(out, 0, "killed", true);
	return 0;
}

static volatile sig_atomic_t console_stop;

static void on_sigint(int sig)
{
	(void)sig;
	console_stop = 1;
}

/* Writes console text to the terminal with control characters other than
 * newline and tab shown as '?': the guest writes it, not us. */
static void put_text(const uint8_t *p, size_t n, bool tty)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i];
		if (tty && c < 0x20 && c != '\n' && c != '\t')
			c = '?';
		putchar(c);
	}
}

/* --follow of a VM that left its host (migrated, or failed over): the
 * lab's host that runs it now, which writes the same serial log on the
 * shared datastore. Tries for FOLLOW_FIND_MS; true with *d connected to it
 * (and *have_d), else false. */
#define FOLLOW_FIND_MS 10000
static bool follow_elsewhere(struct vmkctl *v, const char *from, Vmk__Request *req,
                             struct vmkctl *d, bool *have_d)
{
	static char names[16][128]; /* d's server points here */
	static char was[128];
	size_t n;

	snprintf(was, sizeof(was), "%s", from ? from : "");
	if (*have_d)
		vmkctl_peer_free(d);
	*have_d = false;
	if (hostconn_lab_hosts(v->copts.lab, names, 16, &n) < 0)
		return false;
	for (int round = 0; round < FOLLOW_FIND_MS / 300 && !console_stop; round++) {
		for (size_t i = 0; i < n; i++) {
			if (!strcmp(names[i], was))
				continue;
			vmkctl_peer_init(d, v, names[i]);
			struct arena scratch;
			arena_init(&scratch, 0);
			Vmk__Response *resp;
			bool there = vmkctl_call_in(d, req, &scratch, &resp) == 0 &&
			             resp->body_case == VMK__RESPONSE__BODY_VM_CONSOLE &&
			             resp->vm_console && resp->vm_console->running;
			arena_free(&scratch);
			if (there) {
				*have_d = true;
				return true;
			}
			vmkctl_peer_free(d);
		}
		usleep(300 * 1000);
	}
	return false;
}

int cmd_vm_console(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out)
{
	static const char *const cols[] = { "vm", "data", "next_offset", "running" };
	Vmk__Request req = VMK__REQUEST__INIT;
	Vmk__VmConsoleRequest body = VMK__VM_CONSOLE_REQUEST__INIT;
	bool follow = args_flag(a, "follow");
	bool tty = isatty(STDOUT_FILENO);
	int ret;

	body.name = (char *)args_str(a, "name");
	body.offset = args_str(a, "since") ? args_int(a, "since", 0) : -1;
	body.tail = (uint32_t)args_int(a, "lines", 20);
	body.max_bytes = 65536;
	req.body_case = VMK__REQUEST__BODY_VM_CONSOLE;
	req.vm_console = &body;
	if (follow && v->fmt != FMT_TABLE)
		return vmkctl_error(v, 2, "--follow writes the console as text: drop --formatter");
	if (follow)
		signal(SIGINT, on_sigint);
	struct vmkctl other, *cur = v; /* following on another host of the lab */
	bool have_other = false;
	const char *at = v->copts.server;
	for (;;) {
		struct arena scratch;
		arena_init(&scratch, 0);
		Vmk__Response *resp;
		ret = vmkctl_call_in(cur, &req, &scratch, &resp);
		if (ret == 4 && follow && body.offset >= 0 && v->copts.lab) {
			/* it left this host: follow it to the one that runs it */
			arena_free(&scratch);
			if (!follow_elsewhere(v, at, &req, &other, &have_other)) {
				if (cur != v)
					memcpy(v->err, cur->err, sizeof(v->err));
				break;
			}
			cur = &other;
			at = other.copts.server;
			continue;
		}
		if (ret) {
			if (cur != v)
				memcpy(v->err, cur->err, sizeof(v->err));
			arena_free(&scratch);
			break;
		}
		const Vmk__VmConsoleResponse *r =
		        VMKCTL_BODY(v, resp, VMK__RESPONSE__BODY_VM_CONSOLE, vm_console);
		if (!r) {
			arena_free(&scratch);
			ret = 1;
			break;
		}
		if (v->fmt != FMT_TABLE) {
			if (out_init(out, "VirtualMachineConsole", false, 4, cols) < 0 ||
			    out_add_row(out) < 0) {
				arena_free(&scratch);
				return vmkctl_error(v, 1, "out of memory");
			}
			char *text = strndup((const char *)r->data.data, r->data.len);
			out_set_str(out, 0, "vm", body.name);
			out_set_str(out, 0, "data", text ? text : "");
			out_set_int(out, 0, "next_offset", r->next_offset);
			out_set_bool(out, 0, "running", r->running);
			free(text);
			arena_free(&scratch);
			break;
		}
		put_text(r->data.data, r->data.len, tty);
		fflush(stdout);
		bool more = r->data.len > 0, r_len_full = r->data.len >= body.max_bytes;
		bool running = r->running;
		body.offset = r->next_offset;
		arena_free(&scratch);
		v->printed = true;
		if (!follow) {
			if (r_len_full)
				continue; /* the rest of a long log */
			break;
		}
		if (console_stop)
			break;
		if (!running && !more)
			break; /* it stopped (a VM that left this host is not found here) */
		if (!more)
			usleep(300 * 1000);
	}
	if (have_other)
		vmkctl_peer_free(&other);
	return ret;
}
