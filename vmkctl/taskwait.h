/* Following a hostd task from vmkctl. A long command (vm power on, vm
 * migrate, ...) gets a Task in its response; with --async it prints the task
 * at once, otherwise it waits for the task to end: a one-line progress bar on
 * stderr when that is a TTY, nothing but the result otherwise (CLI.md). */
#ifndef VMKCTL_TASKWAIT_H
#define VMKCTL_TASKWAIT_H

#include <stdbool.h>
#include <stdio.h>

#include "cmd.h"
#include "ctx.h"

#define VMKCTL_TASK_POLL_MS 200

/* The options of every long command: put VMKCTL_TASK_OPTS in its row's opts
 * and end its handler with vmkctl_task_result. */
/* clang-format off */
#define VMKCTL_OPT_ASYNC \
	{ .name = "async", .type = OPT_FLAG, \
	  .help = "print the task id at once instead of waiting; follow it with task get" }
#define VMKCTL_OPT_WAIT_TIMEOUT \
	{ .name = "wait-timeout", .type = OPT_INT, .metavar = "SECONDS", .min = 1, .max = 604800, \
	  .help = "stop waiting after SECONDS (exit 6; the task goes on; default: no limit)" }
/* clang-format on */
#define VMKCTL_TASK_OPTS VMKCTL_OPT_ASYNC, VMKCTL_OPT_WAIT_TIMEOUT

struct vmkctl_wait_opts {
	int timeout_ms; /* give up waiting after this long (exit 6); 0: no limit */
	int poll_ms;    /* 0: VMKCTL_TASK_POLL_MS */
	FILE *bar;      /* draw the progress bar here (a TTY); NULL: none */
};

/* Polls `task get` until task id ends. Ctrl-C sends `task cancel` once and
 * waits on; a second Ctrl-C stops waiting (exit 7, the task may go on).
 * *final (may be NULL) is the ended task, allocated in v->a. Returns the
 * task's exit code (vmkctl_task_exit) with v->err naming the task and its
 * error when it is not 0; or the code of a failed poll; or 6 on timeout. */
/* After the source's task of a two-host operation ended with ret: waits
 * (60 s at most) for the destination's task, which settles right after it,
 * cancelling it first when the source failed and cancel_on_failure; a
 * destination that fails although the source succeeded makes the result
 * "<done>, but destination ... reports: ...". Returns the exit code. */
int vmkctl_settle_peer(struct vmkctl *v, struct vmkctl *d, const char *task, int ret,
                       bool cancel_on_failure, const char *done);

int vmkctl_task_wait(struct vmkctl *v, const char *id, const struct vmkctl_wait_opts *o,
                     Vmk__Task **final);

/* The exit code of an ended task: 0 for success, 7 cancelled, its status (1
 * when it has none) for failed; -1 while it has not ended. */
int vmkctl_task_exit(const Vmk__Task *t);

/* The progress bar "[#####---------------]  25% phase" into buf (len
 * bytes), fitted to cols terminal columns; control characters of phase are
 * shown as '?'. */
void vmkctl_task_bar(char *buf, size_t len, unsigned pct, const char *phase, unsigned cols);

/* out: one task with every field `task get` shows, details included (as
 * top-level fields; whole numbers as numbers). 0 or -ENOMEM. */
int vmkctl_task_doc(struct out_doc *out, const Vmk__Task *t);

/* The wait options of a command with VMKCTL_TASK_OPTS (or --wait-timeout):
 * the bar on stderr when it is a TTY. */
void vmkctl_wait_opts_from_args(const struct vmkctl_args *a, struct vmkctl_wait_opts *o);

/* The end of a long command whose response carried task t: with --async the
 * task (task_id, op, target, state) at once; otherwise it waits for the task
 * and renders it as task get does. Returns the exit code. */
int vmkctl_task_result(struct vmkctl *v, const struct vmkctl_args *a, const Vmk__Task *t,
                       struct out_doc *out);

#endif
