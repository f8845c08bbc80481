/* vmkctl task ... */
#include <time.h>

#include "handlers.h"
#include "taskwait.h"
#include "util.h"

static const char *const list_cols[] = { "task_id",  "op",   "target",  "state",
	                                 "progress", "user", "started", "duration_ms" };

int cmd_task_list(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out)
{
	Vmk__Request req = VMK__REQUEST__INIT;
	Vmk__TaskListRequest body = VMK__TASK_LIST_REQUEST__INIT;
	Vmk__Response *resp;
	int ret;

	(void)a;
	req.body_case = VMK__REQUEST__BODY_TASK_LIST;
	req.task_list = &body;
	if ((ret = vmkctl_call(v, &req, &resp)))
		return ret;
	const Vmk__TaskListResponse *r =
	        VMKCTL_BODY(v, resp, VMK__RESPONSE__BODY_TASK_LIST, task_list);
	if (!r)
		return 1;
	if (out_init(out, "Task", true, ARRAY_SIZE(list_cols), list_cols) < 0)
		return vmkctl_error(v, 1, "out of memory");
	for (size_t i = 0; i < r->n_tasks; i++) {
		const Vmk__Task *t = r->tasks[i];
		char started[32];
		time_t s = (time_t)(t->start_ms / 1000);
		struct tm tm;
		int row = out_add_row(out);
		if (row < 0)
			return vmkctl_error(v, 1, "out of memory");
		out_set_str(out, (size_t)row, "task_id", t->id);
		out_set_str(out, (size_t)row, "op", t->op);
		out_set_str(out, (size_t)row, "target", t->target);
		out_set_str(out, (size_t)row, "state", t->state);
		out_set_int(out, (size_t)row, "progress", t->progress);
		out_set_str(out, (size_t)row, "user", t->user);
		if (t->start_ms && gmtime_r(&s, &tm) &&
		    strftime(started, sizeof(started), "%Y-%m-%dT%H:%M:%SZ", &tm))
			out_set_str(out, (size_t)row, "started", started);
		out_set_int(out, (size_t)row, "duration_ms", (int64_t)t->duration_ms);
	}
	return 0;
}

/* task get and task cancel answer with one task */
static int one_task(struct vmkctl *v, Vmk__Request *req, struct out_doc *out)
{
	Vmk__Response *resp;
	int ret;

	if ((ret = vmkctl_call(v, req, &resp)))
		return ret;
	const Vmk__Task *t = VMKCTL_BODY(v, resp, VMK__RESPONSE__BODY_TASK, task);
	if (!t)
		return 1;
	if (vmkctl_task_doc(out, t) < 0)
		return vmkctl_error(v, 1, "out of memory");
	return 0;
}

int cmd_task_get(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out)
{
	Vmk__Request req = VMK__REQUEST__INIT;
	Vmk__TaskIdRequest body = VMK__TASK_ID_REQUEST__INIT;
	struct vmkctl_wait_opts o;
	Vmk__Task *final;
	int ret;

	body.id = (char *)args_str(a, "task-id");
	if (!args_flag(a, "wait")) {
		if (args_str(a, "wait-timeout"))
			return vmkctl_error(v, 2,
			                    "vmkctl task get: --wait-timeout goes with --wait; add "
			                    "--wait or drop it");
		req.body_case = VMK__REQUEST__BODY_TASK_GET;
		req.task_get = &body;
		return one_task(v, &req, out);
	}
	vmkctl_wait_opts_from_args(a, &o);
	if ((ret = vmkctl_task_wait(v, body.id, &o, &final)) != 0)
		return ret;
	if (vmkctl_task_doc(out, final) < 0)
		return vmkctl_error(v, 1, "out of memory");
	return 0;
}

int cmd_task_cancel(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out)
{
	Vmk__Request req = VMK__REQUEST__INIT;
	Vmk__TaskIdRequest body = VMK__TASK_ID_REQUEST__INIT;

	body.id = (char *)args_str(a, "task-id");
	req.body_case = VMK__REQUEST__BODY_TASK_CANCEL;
	req.task_cancel = &body;
	return one_task(v, &req, out);
}
