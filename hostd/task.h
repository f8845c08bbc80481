/* hostd's tasks: long operations (power on, migrate, clone...) run on a
 * worker thread of their own and are followed by id (`task list|get|cancel`).
 *
 * The table lives in memory only: the running tasks (at most max_running)
 * and the last keep_finished finished ones. Ids are "task-<boot>-<n>": <boot>
 * is random per hostd run, so an id issued before a restart never names a
 * task of this run. Everything is guarded by one mutex; readers get copies
 * (struct task_info), never pointers a worker may free.
 *
 * A worker runs fn(t, arg) once. It reports with task_progress and
 * task_set_detail, polls task_cancelled, and ends with task_finish. The
 * struct hostd_task stays valid for it until fn returns. */
#ifndef HOSTD_TASK_H
#define HOSTD_TASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hostd.h"

#define TASKS_MAX_RUNNING   64  /* default: more running tasks are refused (-EBUSY) */
#define TASKS_KEEP_FINISHED 200 /* default: finished tasks kept for task list/get */

#define TASK_ID_MAX       40
#define TASK_OP_MAX       48
#define TASK_TARGET_MAX   128
#define TASK_USER_MAX     65
#define TASK_PHASE_MAX    128
#define TASK_MSG_MAX      512
#define TASK_DETAILS_MAX  16
#define TASK_KEY_MAX      32
#define TASK_VALUE_MAX    96
#define TASK_STOP_WAIT_MS 10000 /* hostd_tasks_free waits this long for workers */

enum task_state {
	TASK_QUEUED,  /* started; its worker has not run yet */
	TASK_RUNNING, /* its worker runs */
	TASK_SUCCESS,
	TASK_FAILED,
	TASK_CANCELLED,
};

struct task_detail {
	char key[TASK_KEY_MAX];
	char value[TASK_VALUE_MAX];
};

/* A copy of a task, taken under the table's lock. */
struct task_info {
	char id[TASK_ID_MAX];
	char op[TASK_OP_MAX];
	char target[TASK_TARGET_MAX];
	char user[TASK_USER_MAX];
	enum task_state state;
	unsigned progress; /* percent, 0..100 */
	char phase[TASK_PHASE_MAX];
	uint64_t start_ms, end_ms; /* wall clock (ms since the epoch); end_ms 0 until finished */
	uint64_t duration_ms;      /* monotonic; so far while not finished */
	int status;             /* 0, or the exit code (Vmk__Status) of a failed/cancelled task */
	char msg[TASK_MSG_MAX]; /* result of a success, error of a failure or cancellation */
	bool cancel_requested;
	size_t ndetails;
	struct task_detail details[TASK_DETAILS_MAX];
};

struct hostd_tasks;
struct hostd_task;

typedef void *(*task_fn)(struct hostd_task *t, void *arg);

/* max_running and keep_finished 0 take the defaults above. */
int hostd_tasks_init(struct hostd_tasks **tp, unsigned max_running, unsigned keep_finished);
/* Asks every unfinished task to cancel, waits up to TASK_STOP_WAIT_MS for
 * the workers to return, then frees the table. A worker that is still
 * running after that keeps the table alive (it is leaked, with a warning):
 * hostd is exiting anyway. NULL is fine. */
void hostd_tasks_free(struct hostd_tasks *ts);

/* Starts fn(t, arg) on a detached thread, with all signals blocked. Returns
 * the task with a reference for the caller, who copies what it needs
 * (task_snapshot) and drops it with task_put; fn owns arg from then on.
 * Returns NULL with errno set, and arg still the caller's: EBUSY when
 * max_running tasks run, EINVAL for an empty op, ENOMEM, EAGAIN (no thread). */
struct hostd_task *task_start(struct hostd_tasks *ts, const char *op, const char *target,
                              const char *user, task_fn fn, void *arg);
void task_put(struct hostd_task *t);
void task_snapshot(struct hostd_task *t, struct task_info *out);

/* ---- for the worker; all are no-ops (or -EALREADY) once the task finished ---- */

/* pct is clamped to 0..100; phase NULL keeps the current one. */
void task_progress(struct hostd_task *t, unsigned pct, const char *phase);
/* Sets or replaces one detail. key: 1..31 of [a-z0-9_] starting with a
 * letter (it becomes a JSON field name). -EINVAL for a bad key, -ENOSPC when
 * TASK_DETAILS_MAX keys are set; values are truncated to TASK_VALUE_MAX-1. */
int task_set_detail(struct hostd_task *t, const char *key, const char *value);
/* The same for a number (vmkctl shows it as one). */
int task_set_detail_u64(struct hostd_task *t, const char *key, uint64_t value);
/* Ends the task: status 0 (VMK__STATUS__STATUS_OK) is success with msg as
 * its result, VMK__STATUS__STATUS_CANCELLED is cancelled, anything else is
 * failed with that exit status; msg is the error then (name the object and
 * the fix). -EALREADY if the task already ended. */
int task_finish(struct hostd_task *t, int status, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* True once `task cancel` (or shutdown) asked the task to stop. */
bool task_cancelled(struct hostd_task *t);
/* The task's id, valid while the caller holds t. */
const char *task_id(const struct hostd_task *t);

/* ---- for readers ---- */

/* 0, or -ENOENT for an unknown id. */
int hostd_tasks_get(struct hostd_tasks *ts, const char *id, struct task_info *out);
/* Every task, in start order. *out is malloc'd (the caller frees it). */
int hostd_tasks_list(struct hostd_tasks *ts, struct task_info **out, size_t *n);
/* Asks a running task to cancel (again is fine) and copies it to out.
 * -ENOENT for an unknown id, -EALREADY when it has finished (out is set). */
int hostd_tasks_cancel(struct hostd_tasks *ts, const char *id, struct task_info *out);
/* This run's boot id ("3f9a1c2e"), the <boot> of every id. */
const char *hostd_tasks_boot_id(const struct hostd_tasks *ts);

const char *task_state_name(enum task_state s);

/* ---- for handlers of long operations ---- */

/* Starts the task and answers the call with it (Response.task), or fails
 * the call with the reason (5 when too many tasks run). Returns OK once
 * the task runs (then fn owns arg, even if the answer could not be built
 * and says so), else the failure's status (arg is still the caller's). */
int hostd_task_start_reply(struct hostd_call *call, const char *op, const char *target, task_fn fn,
                           void *arg);

#endif
