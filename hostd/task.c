#include "task.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dispatch.h"
#include "log.h"
#include "util.h"

struct hostd_task {
	struct hostd_tasks *ts;
	struct task_info info;         /* duration_ms is computed by snapshots */
	uint64_t start_mono, end_mono; /* util_now_ms() */
	unsigned refs;                 /* the table's, the worker's, task_start's caller's */
	task_fn fn;
	void *arg;
};

struct hostd_tasks {
	pthread_mutex_t lock;
	pthread_cond_t idle; /* broadcast whenever a worker returns */
	char boot[9];
	uint64_t next; /* number of the next task */
	unsigned max_running, keep_finished;
	unsigned workers;  /* worker threads that have not returned */
	unsigned finished; /* finished tasks in tab */
	size_t n, cap;
	struct hostd_task **tab; /* in start order; cap = max_running + keep_finished + 1 */
};

static const char *const state_names[] = {
	[TASK_QUEUED] = "queued", [TASK_RUNNING] = "running",     [TASK_SUCCESS] = "success",
	[TASK_FAILED] = "failed", [TASK_CANCELLED] = "cancelled",
};

const char *task_state_name(enum task_state s)
{
	return (unsigned)s < ARRAY_SIZE(state_names) ? state_names[s] : "unknown";
}

static bool finished(const struct hostd_task *t)
{
	return t->info.state >= TASK_SUCCESS;
}

int hostd_tasks_init(struct hostd_tasks **tp, unsigned max_running, unsigned keep_finished)
{
	struct hostd_tasks *ts = calloc(1, sizeof(*ts));
	uint8_t rnd[4];
	int ret;

	if (!ts)
		return -ENOMEM;
	ts->max_running = max_running ? max_running : TASKS_MAX_RUNNING;
	ts->keep_finished = keep_finished ? keep_finished : TASKS_KEEP_FINISHED;
	ts->cap = (size_t)ts->max_running + ts->keep_finished + 1;
	ts->tab = calloc(ts->cap, sizeof(*ts->tab));
	if (!ts->tab) {
		ret = -ENOMEM;
		goto err_free;
	}
	if ((ret = util_random(rnd, sizeof(rnd))) < 0)
		goto err_free;
	util_hex(rnd, sizeof(rnd), ts->boot);
	ts->next = 1;
	pthread_mutex_init(&ts->lock, NULL);
	pthread_cond_init(&ts->idle, NULL);
	*tp = ts;
	return 0;
err_free:
	free(ts->tab);
	free(ts);
	return ret;
}

/* Drops one reference; lock held. The last frees the task. */
static void put_locked(struct hostd_task *t)
{
	if (--t->refs == 0)
		free(t);
}

void hostd_tasks_free(struct hostd_tasks *ts)
{
	struct timespec until;

	if (!ts)
		return;
	pthread_mutex_lock(&ts->lock);
	if (ts->workers > 0)
		log_info("shutdown: cancelling %u running tasks", ts->workers);
	for (size_t i = 0; i < ts->n; i++)
		if (!finished(ts->tab[i]))
			ts->tab[i]->info.cancel_requested = true;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += TASK_STOP_WAIT_MS / 1000;
	while (ts->workers > 0) {
		if (pthread_cond_timedwait(&ts->idle, &ts->lock, &until) == ETIMEDOUT)
			break;
	}
	if (ts->workers > 0) {
		for (size_t i = 0; i < ts->n; i++)
			if (!finished(ts->tab[i]))
				log_warn("task %s (%s %s) did not stop within %d ms of shutdown",
				         ts->tab[i]->info.id, ts->tab[i]->info.op,
				         ts->tab[i]->info.target, TASK_STOP_WAIT_MS);
		pthread_mutex_unlock(&ts->lock);
		return; /* its workers still use the table: leave it */
	}
	/* no worker is left; references of task_start callers are gone too */
	for (size_t i = 0; i < ts->n; i++)
		free(ts->tab[i]);
	pthread_mutex_unlock(&ts->lock);
	pthread_cond_destroy(&ts->idle);
	pthread_mutex_destroy(&ts->lock);
	free(ts->tab);
	free(ts);
}

/* Forgets the oldest finished tasks beyond keep_finished; lock held. */
static void evict_locked(struct hostd_tasks *ts)
{
	for (size_t i = 0; ts->finished > ts->keep_finished && i < ts->n;) {
		struct hostd_task *t = ts->tab[i];
		if (!finished(t)) {
			i++;
			continue;
		}
		memmove(&ts->tab[i], &ts->tab[i + 1], (ts->n - i - 1) * sizeof(t));
		ts->n--;
		ts->finished--;
		put_locked(t);
	}
}

/* lock held */
static int finish_locked(struct hostd_task *t, int status, const char *msg)
{
	struct hostd_tasks *ts = t->ts;
	struct task_info *i = &t->info;

	if (finished(t))
		return -EALREADY;
	i->state = status == VMK__STATUS__STATUS_OK          ? TASK_SUCCESS
	           : status == VMK__STATUS__STATUS_CANCELLED ? TASK_CANCELLED
	                                                     : TASK_FAILED;
	i->status = status;
	if (i->state == TASK_SUCCESS)
		i->progress = 100;
	snprintf(i->msg, sizeof(i->msg), "%s", msg ? msg : "");
	i->end_ms = util_wall_ms();
	t->end_mono = util_now_ms();
	ts->finished++;
	if (i->state == TASK_SUCCESS)
		log_info("task %s: %s %s by %s: success (%" PRIu64 " ms)%s%s", i->id, i->op,
		         i->target, i->user, t->end_mono - t->start_mono, i->msg[0] ? ": " : "",
		         i->msg);
	else
		log_info("task %s: %s %s by %s: %s (%" PRIu64 " ms): %s", i->id, i->op, i->target,
		         i->user, task_state_name(i->state), t->end_mono - t->start_mono, i->msg);
	evict_locked(ts);
	return 0;
}

static void *worker(void *p)
{
	struct hostd_task *t = p;
	struct hostd_tasks *ts = t->ts;

	pthread_mutex_lock(&ts->lock);
	if (t->info.state == TASK_QUEUED)
		t->info.state = TASK_RUNNING;
	pthread_mutex_unlock(&ts->lock);

	t->fn(t, t->arg);

	pthread_mutex_lock(&ts->lock);
	if (!finished(t)) {
		if (t->info.cancel_requested)
			finish_locked(t, VMK__STATUS__STATUS_CANCELLED, "cancelled");
		else
			finish_locked(t, VMK__STATUS__STATUS_FAILED,
			              "the operation ended without a result (a hostd bug; "
			              "check the object's state)");
	}
	put_locked(t);
	ts->workers--;
	pthread_cond_broadcast(&ts->idle);
	pthread_mutex_unlock(&ts->lock);
	return NULL;
}

struct hostd_task *task_start(struct hostd_tasks *ts, const char *op, const char *target,
                              const char *user, task_fn fn, void *arg)
{
	struct hostd_task *t;
	pthread_attr_t attr;
	pthread_t tid;
	sigset_t all, old;
	int ret;

	if (!ts || !op || !op[0] || !fn) {
		errno = EINVAL;
		return NULL;
	}
	if (!(t = calloc(1, sizeof(*t)))) {
		errno = ENOMEM;
		return NULL;
	}
	t->ts = ts;
	t->fn = fn;
	t->arg = arg;
	t->refs = 3; /* table, worker, caller */
	snprintf(t->info.op, sizeof(t->info.op), "%s", op);
	snprintf(t->info.target, sizeof(t->info.target), "%s", target ? target : "");
	snprintf(t->info.user, sizeof(t->info.user), "%s", user ? user : "");
	t->info.state = TASK_QUEUED;

	pthread_mutex_lock(&ts->lock);
	if (ts->workers >= ts->max_running) {
		ret = EBUSY;
		goto err_unlock;
	}
	snprintf(t->info.id, sizeof(t->info.id), "task-%s-%" PRIu64, ts->boot, ts->next);
	t->info.start_ms = util_wall_ms();
	t->start_mono = util_now_ms();

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = pthread_attr_init(&attr);
	if (ret == 0) {
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		ret = pthread_create(&tid, &attr, worker, t);
		pthread_attr_destroy(&attr);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret != 0)
		goto err_unlock;
	/* the worker waits for the lock before it looks at anything */
	ts->next++;
	ts->workers++;
	ts->tab[ts->n++] = t;
	log_info("task %s: %s %s by %s started", t->info.id, op, t->info.target,
	         t->info.user[0] ? t->info.user : "-");
	pthread_mutex_unlock(&ts->lock);
	return t;

err_unlock:
	pthread_mutex_unlock(&ts->lock);
	free(t);
	errno = ret;
	return NULL;
}

void task_put(struct hostd_task *t)
{
	struct hostd_tasks *ts = t->ts;

	pthread_mutex_lock(&ts->lock);
	put_locked(t);
	pthread_mutex_unlock(&ts->lock);
}

/* lock held */
static void copy_locked(const struct hostd_task *t, struct task_info *out)
{
	*out = t->info;
	out->duration_ms = (finished(t) ? t->end_mono : util_now_ms()) - t->start_mono;
}

void task_snapshot(struct hostd_task *t, struct task_info *out)
{
	pthread_mutex_lock(&t->ts->lock);
	copy_locked(t, out);
	pthread_mutex_unlock(&t->ts->lock);
}

const char *task_id(const struct hostd_task *t)
{
	return t->info.id; /* set before the task is published, never changed */
}

void task_progress(struct hostd_task *t, unsigned pct, const char *phase)
{
	pthread_mutex_lock(&t->ts->lock);
	if (!finished(t)) {
		t->info.progress = pct > 100 ? 100 : pct;
		if (phase)
			snprintf(t->info.phase, sizeof(t->info.phase), "%s", phase);
	}
	pthread_mutex_unlock(&t->ts->lock);
}

static bool valid_key(const char *k)
{
	size_t n = strlen(k);

	if (n == 0 || n >= TASK_KEY_MAX || k[0] < 'a' || k[0] > 'z')
		return false;
	for (; *k; k++)
		if (!((*k >= 'a' && *k <= 'z') || (*k >= '0' && *k <= '9') || *k == '_'))
			return false;
	return true;
}

int task_set_detail_u64(struct hostd_task *t, const char *key, uint64_t value)
{
	char b[32];
	snprintf(b, sizeof(b), "%" PRIu64, value);
	return task_set_detail(t, key, b);
}

int task_set_detail(struct hostd_task *t, const char *key, const char *value)
{
	struct task_info *i = &t->info;
	int ret = 0;
	size_t k;

	if (!key || !valid_key(key))
		return -EINVAL;
	pthread_mutex_lock(&t->ts->lock);
	if (finished(t)) {
		ret = -EALREADY;
		goto out;
	}
	for (k = 0; k < i->ndetails; k++)
		if (strcmp(i->details[k].key, key) == 0)
			break;
	if (k == TASK_DETAILS_MAX) {
		ret = -ENOSPC;
		goto out;
	}
	if (k == i->ndetails) {
		snprintf(i->details[k].key, sizeof(i->details[k].key), "%s", key);
		i->ndetails++;
	}
	snprintf(i->details[k].value, sizeof(i->details[k].value), "%s", value ? value : "");
out:
	pthread_mutex_unlock(&t->ts->lock);
	return ret;
}

int task_finish(struct hostd_task *t, int status, const char *fmt, ...)
{
	char msg[TASK_MSG_MAX];
	va_list ap;
	int ret;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&t->ts->lock);
	ret = finish_locked(t, status, msg);
	pthread_mutex_unlock(&t->ts->lock);
	return ret;
}

bool task_cancelled(struct hostd_task *t)
{
	pthread_mutex_lock(&t->ts->lock);
	bool c = t->info.cancel_requested;
	pthread_mutex_unlock(&t->ts->lock);
	return c;
}

/* lock held */
static struct hostd_task *find_locked(struct hostd_tasks *ts, const char *id)
{
	for (size_t i = 0; i < ts->n; i++)
		if (strcmp(ts->tab[i]->info.id, id) == 0)
			return ts->tab[i];
	return NULL;
}

int hostd_tasks_get(struct hostd_tasks *ts, const char *id, struct task_info *out)
{
	pthread_mutex_lock(&ts->lock);
	struct hostd_task *t = find_locked(ts, id);
	if (t)
		copy_locked(t, out);
	pthread_mutex_unlock(&ts->lock);
	return t ? 0 : -ENOENT;
}

int hostd_tasks_list(struct hostd_tasks *ts, struct task_info **out, size_t *n)
{
	struct task_info *v;

	*out = NULL;
	*n = 0;
	pthread_mutex_lock(&ts->lock);
	v = calloc(ts->n ? ts->n : 1, sizeof(*v)); /* at most a few hundred */
	for (size_t i = 0; v && i < ts->n; i++)
		copy_locked(ts->tab[i], &v[i]);
	if (v)
		*n = ts->n;
	pthread_mutex_unlock(&ts->lock);
	*out = v;
	return v ? 0 : -ENOMEM;
}

int hostd_tasks_cancel(struct hostd_tasks *ts, const char *id, struct task_info *out)
{
	int ret = 0;

	pthread_mutex_lock(&ts->lock);
	struct hostd_task *t = find_locked(ts, id);
	if (!t) {
		ret = -ENOENT;
	} else {
		if (finished(t))
			ret = -EALREADY;
		else
			t->info.cancel_requested = true;
		copy_locked(t, out);
	}
	pthread_mutex_unlock(&ts->lock);
	return ret;
}

const char *hostd_tasks_boot_id(const struct hostd_tasks *ts)
{
	return ts->boot;
}

/* ---- handlers ---- */

static Vmk__Task *to_proto(struct hostd_call *call, const struct task_info *i)
{
	struct arena *a = call->a;
	Vmk__Task *t = arena_alloc(a, sizeof(*t));

	if (!t)
		return NULL;
	vmk__task__init(t);
	t->id = arena_strdup(a, i->id);
	t->op = arena_strdup(a, i->op);
	t->target = arena_strdup(a, i->target);
	t->user = arena_strdup(a, i->user);
	t->state = (char *)task_state_name(i->state);
	t->progress = i->progress;
	t->phase = arena_strdup(a, i->phase);
	t->start_ms = i->start_ms;
	t->end_ms = i->end_ms;
	t->duration_ms = i->duration_ms;
	t->status = (Vmk__Status)i->status;
	t->result = i->state == TASK_SUCCESS ? arena_strdup(a, i->msg) : "";
	t->error = i->state == TASK_FAILED || i->state == TASK_CANCELLED ? arena_strdup(a, i->msg)
	                                                                 : "";
	t->cancel_requested = i->cancel_requested;
	t->details = arena_calloc(a, i->ndetails + 1, sizeof(*t->details));
	if (!t->id || !t->op || !t->target || !t->user || !t->phase || !t->result || !t->error ||
	    !t->details)
		return NULL;
	for (size_t k = 0; k < i->ndetails; k++) {
		Vmk__TaskDetail *d = arena_alloc(a, sizeof(*d));
		if (!d)
			return NULL;
		vmk__task_detail__init(d);
		d->key = arena_strdup(a, i->details[k].key);
		d->value = arena_strdup(a, i->details[k].value);
		if (!d->key || !d->value)
			return NULL;
		t->details[t->n_details++] = d;
	}
	return t;
}

static int reply_task(struct hostd_call *call, const struct task_info *i)
{
	Vmk__Task *t = to_proto(call, i);

	if (!t)
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED, "task %s: out of memory",
		                  i->id);
	call->resp->body_case = VMK__RESPONSE__BODY_TASK;
	call->resp->task = t;
	return VMK__STATUS__STATUS_OK;
}

int hostd_op_task_list(struct hostd_call *call, const Vmk__Request *req)
{
	Vmk__TaskListResponse *r = arena_alloc(call->a, sizeof(*r));
	struct task_info *v = NULL;
	size_t n = 0;
	int status = VMK__STATUS__STATUS_OK;

	(void)req;
	if (r)
		vmk__task_list_response__init(r);
	if (!r || hostd_tasks_list(call->h->tasks, &v, &n) < 0 ||
	    !(r->tasks = arena_calloc(call->a, n + 1, sizeof(*r->tasks)))) {
		status = hostd_fail(call, VMK__STATUS__STATUS_FAILED, "task list: out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (!(r->tasks[r->n_tasks++] = to_proto(call, &v[i]))) {
			status = hostd_fail(call, VMK__STATUS__STATUS_FAILED,
			                    "task list: out of memory (%zu tasks)", n);
			goto out;
		}
	}
	call->resp->body_case = VMK__RESPONSE__BODY_TASK_LIST;
	call->resp->task_list = r;
out:
	free(v);
	return status;
}

/* The id of a task_get / task_cancel request, checked; 0 or a failed status. */
static int check_id(struct hostd_call *call, const char *verb, const Vmk__TaskIdRequest *r)
{
	if (!r || !r->id || !r->id[0])
		return hostd_fail(call, VMK__STATUS__STATUS_USAGE,
		                  "task %s: give the task id (-t task-...); see task list", verb);
	if (strlen(r->id) >= TASK_ID_MAX)
		return hostd_fail(call, VMK__STATUS__STATUS_USAGE,
		                  "task %s: \"%.60s...\" is too long for a task id (at most %d "
		                  "characters); see task list",
		                  verb, r->id, TASK_ID_MAX - 1);
	return 0;
}

static int not_found(struct hostd_call *call, const char *id)
{
	struct hostd_tasks *ts = call->h->tasks;
	size_t bl = strlen(ts->boot);

	/* task-<boot>-<n> of another boot id: issued before a restart */
	if (strncmp(id, "task-", 5) == 0 && strlen(id) > 5 + bl && id[5 + bl] == '-' &&
	    strncmp(id + 5, ts->boot, bl) != 0)
		return hostd_fail(call, VMK__STATUS__STATUS_NOT_FOUND,
		                  "no task %s on this host: it is from an earlier run of hostd "
		                  "(this run's ids are task-%s-N) and tasks do not survive a "
		                  "restart; check the state of the object it worked on",
		                  id, ts->boot);
	return hostd_fail(call, VMK__STATUS__STATUS_NOT_FOUND,
	                  "no task %s on this host (hostd keeps the running tasks and the last "
	                  "%u finished ones); see task list",
	                  id, ts->keep_finished);
}

int hostd_op_task_get(struct hostd_call *call, const Vmk__Request *req)
{
	struct task_info i;
	int status;

	if ((status = check_id(call, "get", req->task_get)) != 0)
		return status;
	if (hostd_tasks_get(call->h->tasks, req->task_get->id, &i) < 0)
		return not_found(call, req->task_get->id);
	return reply_task(call, &i);
}

int hostd_op_task_cancel(struct hostd_call *call, const Vmk__Request *req)
{
	struct task_info i;
	int status, ret;

	if ((status = check_id(call, "cancel", req->task_cancel)) != 0)
		return status;
	ret = hostd_tasks_cancel(call->h->tasks, req->task_cancel->id, &i);
	if (ret == -ENOENT)
		return not_found(call, req->task_cancel->id);
	if (ret == -EALREADY)
		return hostd_fail(call, VMK__STATUS__STATUS_CONFLICT,
		                  "task %s (%s %s) already ended: %s; there is nothing to cancel",
		                  i.id, i.op, i.target, task_state_name(i.state));
	log_info("task %s: %s %s: cancel requested by %s", i.id, i.op, i.target, call->user);
	return reply_task(call, &i);
}

int hostd_task_start_reply(struct hostd_call *call, const char *op, const char *target, task_fn fn,
                           void *arg)
{
	struct hostd_tasks *ts = call->h->tasks;
	struct hostd_task *t = task_start(ts, op, target, call->user, fn, arg);
	struct task_info i;

	if (!t) {
		if (errno == EBUSY)
			return hostd_fail(
			        call, VMK__STATUS__STATUS_CONFLICT,
			        "%s %s: this host already runs %u tasks, its limit; wait for "
			        "some to finish (task list) and retry",
			        op, target ? target : "", ts->max_running);
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED,
		                  "%s %s: cannot start a task: %s", op, target ? target : "",
		                  strerror(errno));
	}
	task_snapshot(t, &i);
	task_put(t);
	/* the task runs and owns arg from here: the caller must not take it
	 * back, even when the answer cannot be built (it says so) */
	reply_task(call, &i);
	return VMK__STATUS__STATUS_OK;
}
