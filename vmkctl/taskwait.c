#include "taskwait.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#define BAR_CELLS 20

static volatile sig_atomic_t interrupts;

static void on_sigint(int sig)
{
	(void)sig;
	if (interrupts < 2)
		interrupts++;
}

int vmkctl_task_exit(const Vmk__Task *t)
{
	if (strcmp(t->state, "success") == 0)
		return 0;
	if (strcmp(t->state, "cancelled") == 0)
		return VMK__STATUS__STATUS_CANCELLED;
	if (strcmp(t->state, "failed") == 0)
		return t->status > VMK__STATUS__STATUS_OK &&
		                       t->status <= VMK__STATUS__STATUS_CANCELLED
		               ? (int)t->status
		               : VMK__STATUS__STATUS_FAILED;
	return -1;
}

void vmkctl_task_bar(char *buf, size_t len, unsigned pct, const char *phase, unsigned cols)
{
	char line[512];
	size_t n, fill;

	if (!len)
		return;
	if (pct > 100)
		pct = 100;
	fill = (size_t)pct * BAR_CELLS / 100;
	line[0] = '[';
	memset(line + 1, '#', fill);
	memset(line + 1 + fill, '-', BAR_CELLS - fill);
	n = 1 + BAR_CELLS;
	n += (size_t)snprintf(line + n, sizeof(line) - n, "] %3u%%", pct);
	if (phase && *phase && n + 2 < sizeof(line)) {
		line[n++] = ' ';
		for (const char *p = phase; *p && n + 1 < sizeof(line); p++) {
			unsigned char c = (unsigned char)*p;
			line[n++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
		}
	}
	line[n] = '\0';
	/* one line: never reach the last column (the terminal would wrap) */
	size_t max = cols > 1 ? cols - 1 : 0;
	if (max && n > max) {
		n = max;
		/* not in the middle of a UTF-8 sequence */
		while (n > 0 && ((unsigned char)line[n] & 0xc0) == 0x80)
			n--;
		line[n] = '\0';
	}
	snprintf(buf, len, "%s", line);
}

static unsigned term_cols(FILE *f)
{
	struct winsize ws;

	if (ioctl(fileno(f), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	return 80;
}

static void draw(FILE *f, const Vmk__Task *t)
{
	char line[512];

	vmkctl_task_bar(line, sizeof(line), t->progress, t->phase, term_cols(f));
	fprintf(f, "\r%s\033[K", line);
	fflush(f);
}

static void clear_bar(FILE *f)
{
	fputs("\r\033[K", f);
	fflush(f);
}

/* task get id; *t in a */
static int get_task(struct vmkctl *v, const char *id, struct arena *a, Vmk__Task **t)
{
	Vmk__Request req = VMK__REQUEST__INIT;
	Vmk__TaskIdRequest body = VMK__TASK_ID_REQUEST__INIT;
	Vmk__Response *resp;
	int ret;

	body.id = (char *)id;
	req.body_case = VMK__REQUEST__BODY_TASK_GET;
	req.task_get = &body;
	if ((ret = vmkctl_call_in(v, &req, a, &resp)))
		return ret;
	*t = VMKCTL_BODY(v, resp, VMK__RESPONSE__BODY_TASK, task);
	return *t ? 0 : 1;
}

static int cancel_task(struct vmkctl *v, const char *id, struct arena *a)
{
	Vmk__Request req = VMK__REQUEST__INIT;
	Vmk__TaskIdRequest body = VMK__TASK_ID_REQUEST__INIT;
	Vmk__Response *resp;

	body.id = (char *)id;
	req.body_case = VMK__REQUEST__BODY_TASK_CANCEL;
	req.task_cancel = &body;
	return vmkctl_call_in(v, &req, a, &resp);
}

/* A copy of t in v->a, or NULL. */
static Vmk__Task *keep(struct vmkctl *v, const Vmk__Task *t)
{
	size_t n = vmk__task__get_packed_size(t);
	uint8_t *buf = malloc(n ? n : 1);
	Vmk__Task *c = NULL;

	if (buf) {
		vmk__task__pack(t, buf);
		c = vmk__task__unpack(&v->a.pb, n, buf);
		free(buf);
	}
	return c;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL); /* Ctrl-C cuts it short, which is what we want */
}

int vmkctl_task_wait(struct vmkctl *v, const char *id, const struct vmkctl_wait_opts *o,
                     Vmk__Task **final)
{
	struct sigaction sa = { .sa_handler = on_sigint }, old;
	int poll_ms = o->poll_ms > 0 ? o->poll_ms : VMKCTL_TASK_POLL_MS;
	uint64_t start = util_now_ms();
	bool cancel_sent = false, drawn = false;
	int ret;

	if (final)
		*final = NULL;
	interrupts = 0;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old); /* no SA_RESTART: Ctrl-C wakes the sleep */
	for (;;) {
		struct arena a;
		Vmk__Task *t = NULL;

		arena_init(&a, 0);
		ret = get_task(v, id, &a, &t);
		if (ret) {
			char why[sizeof(v->err)];
			snprintf(why, sizeof(why), "%s", v->err);
			/* a lost host or session: the task itself may go on */
			if (ret == VMK__STATUS__STATUS_TIMEOUT ||
			    ret == VMK__STATUS__STATUS_DENIED || ret == VMK__STATUS__STATUS_FAILED)
				vmkctl_error(
				        v, ret,
				        "waiting for task %s: %s (the task may go on: vmkctl task "
				        "get -t %s)",
				        id, why, id);
			else
				vmkctl_error(v, ret, "waiting for task %s: %s", id, why);
			arena_free(&a);
			break;
		}
		ret = vmkctl_task_exit(t);
		if (ret < 0 && o->bar) {
			draw(o->bar, t);
			drawn = true;
		}
		if (ret >= 0) {
			if (ret == VMK__STATUS__STATUS_CANCELLED)
				vmkctl_error(v, ret, "task %s (%s %s) was cancelled: %s", t->id,
				             t->op, t->target,
				             t->error[0] ? t->error : "no reason given");
			else if (ret)
				vmkctl_error(v, ret, "task %s (%s %s) failed: %s", t->id, t->op,
				             t->target, t->error[0] ? t->error : "no reason given");
			if (final && !(* final = keep(v, t)))
				ret = vmkctl_error(v, 1, "out of memory");
			arena_free(&a);
			break;
		}
		uint64_t waited = util_now_ms() - start;
		if (interrupts >= 2) {
			ret = vmkctl_error(v, VMK__STATUS__STATUS_CANCELLED,
			                   "stopped waiting for task %s (%s %s), which may go on: "
			                   "vmkctl task get -t %s",
			                   t->id, t->op, t->target, t->id);
			arena_free(&a);
			break;
		}
		if (o->timeout_ms > 0 && waited >= (uint64_t)o->timeout_ms) {
			ret = vmkctl_error(
			        v, VMK__STATUS__STATUS_TIMEOUT,
			        "task %s (%s %s) still runs after %d s (%u%%%s%s); it goes "
			        "on: follow it with vmkctl task get -t %s --wait, or stop it "
			        "with vmkctl task cancel -t %s",
			        t->id, t->op, t->target, o->timeout_ms / 1000, t->progress,
			        t->phase[0] ? ", " : "", t->phase, t->id, t->id);
			arena_free(&a);
			break;
		}
		arena_free(&a);
		if (interrupts == 1 && !cancel_sent) {
			cancel_sent = true;
			if (drawn)
				clear_bar(o->bar);
			fprintf(stderr,
			        "vmkctl: cancelling task %s; waiting for it to stop (Ctrl-C again "
			        "to "
			        "stop waiting)\n",
			        id);
			arena_init(&a, 0);
			int cret = cancel_task(v, id, &a);
			arena_free(&a);
			/* 5: it has just ended; the next poll tells how */
			if (cret && cret != VMK__STATUS__STATUS_CONFLICT)
				fprintf(stderr, "vmkctl: cannot cancel task %s: %s\n", id, v->err);
			continue;
		}
		sleep_ms(poll_ms);
	}
	if (drawn)
		clear_bar(o->bar);
	sigaction(SIGINT, &old, NULL);
	return ret;
}

int vmkctl_settle_peer(struct vmkctl *v, struct vmkctl *d, const char *task, int ret,
                       bool cancel_on_failure, const char *done)
{
	struct vmkctl_wait_opts o = { .timeout_ms = 60000 };
	char saved[sizeof(v->err)];

	snprintf(saved, sizeof(saved), "%s", v->err);
	if (ret != 0 && cancel_on_failure)
		vmkctl_cancel_quiet(d, task);
	int r2 = vmkctl_task_wait(d, task, &o, NULL);
	if (ret == 0 && r2 != 0)
		return vmkctl_error(v, r2, "%s, but destination %s reports: %s", done,
		                    d->copts.server, d->err);
	snprintf(v->err, sizeof(v->err), "%s", saved);
	return ret;
}

static const char *const task_cols[] = {
	"task_id", "op",    "target",      "state",     "progress", "phase", "user",
	"started", "ended", "duration_ms", "exit_code", "result",   "error", "cancel_requested",
};
#define NTASK_COLS (sizeof(task_cols) / sizeof(task_cols[0]))

/* "2024-05-01T12:00:00Z", or NULL for 0 */
static const char *iso_time(char *buf, size_t len, uint64_t ms)
{
	time_t s = (time_t)(ms / 1000);
	struct tm tm;

	if (!ms || !gmtime_r(&s, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
		return NULL;
	return buf;
}

static bool whole_number(const char *s)
{
	size_t n = 0;

	if (*s == '-')
		s++;
	for (; s[n]; n++)
		if (s[n] < '0' || s[n] > '9')
			return false;
	return n > 0 && n <= 18 && !(n > 1 && s[0] == '0');
}

/* Does the detail key name a column already (fixed, or an earlier detail)? */
static bool taken(const char *const *cols, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(cols[i], key) == 0)
			return true;
	return false;
}

int vmkctl_task_doc(struct out_doc *out, const Vmk__Task *t)
{
	const char *cols[NTASK_COLS + 64];
	size_t ncols = NTASK_COLS;
	char started[32], ended[32];
	int ret;

	memcpy(cols, task_cols, sizeof(task_cols));
	for (size_t i = 0; i < t->n_details && ncols < ARRAY_SIZE(cols); i++)
		if (t->details[i]->key[0] && !taken(cols, ncols, t->details[i]->key))
			cols[ncols++] = t->details[i]->key;
	if ((ret = out_init(out, "Task", false, ncols, cols)) < 0 || (ret = out_add_row(out)) < 0)
		return ret;
	out_set_str(out, 0, "task_id", t->id);
	out_set_str(out, 0, "op", t->op);
	out_set_str(out, 0, "target", t->target);
	out_set_str(out, 0, "state", t->state);
	out_set_int(out, 0, "progress", t->progress);
	out_set_str(out, 0, "phase", t->phase);
	out_set_str(out, 0, "user", t->user);
	out_set_str(out, 0, "started", iso_time(started, sizeof(started), t->start_ms));
	out_set_str(out, 0, "ended", iso_time(ended, sizeof(ended), t->end_ms));
	out_set_int(out, 0, "duration_ms", (int64_t)t->duration_ms);
	if (vmkctl_task_exit(t) >= 0) /* null while it runs */
		out_set_int(out, 0, "exit_code", vmkctl_task_exit(t));
	out_set_str(out, 0, "result", t->result[0] ? t->result : NULL);
	out_set_str(out, 0, "error", t->error[0] ? t->error : NULL);
	out_set_bool(out, 0, "cancel_requested", t->cancel_requested);
	for (size_t i = 0; i < t->n_details; i++) {
		const Vmk__TaskDetail *d = t->details[i];
		/* a key that repeats a fixed column is left out; a later value wins */
		if (taken(task_cols, NTASK_COLS, d->key))
			continue;
		if (whole_number(d->value))
			out_set_int(out, 0, d->key, strtoll(d->value, NULL, 10));
		else
			out_set_str(out, 0, d->key, d->value);
	}
	return 0;
}

void vmkctl_wait_opts_from_args(const struct vmkctl_args *a, struct vmkctl_wait_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->timeout_ms = (int)args_int(a, "wait-timeout", 0) * 1000;
	o->bar = isatty(STDERR_FILENO) ? stderr : NULL;
}

int vmkctl_task_result(struct vmkctl *v, const struct vmkctl_args *a, const Vmk__Task *t,
                       struct out_doc *out)
{
	static const char *const async_cols[] = { "task_id", "op", "target", "state" };
	struct vmkctl_wait_opts o;
	Vmk__Task *final;
	int ret;

	if (!t || !t->id || !t->id[0])
		return vmkctl_error(v, 1, "unexpected response from the host: no task");
	if (args_flag(a, "async")) {
		if (out_init(out, "Task", false, ARRAY_SIZE(async_cols), async_cols) < 0 ||
		    out_add_row(out) < 0)
			return vmkctl_error(v, 1, "out of memory");
		out_set_str(out, 0, "task_id", t->id);
		out_set_str(out, 0, "op", t->op);
		out_set_str(out, 0, "target", t->target);
		out_set_str(out, 0, "state", t->state);
		return 0;
	}
	vmkctl_wait_opts_from_args(a, &o);
	if ((ret = vmkctl_task_wait(v, t->id, &o, &final)) != 0)
		return ret;
	if (vmkctl_task_doc(out, final) < 0)
		return vmkctl_error(v, 1, "out of memory");
	return 0;
}
