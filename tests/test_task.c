/* hostd/task.c: the task table (start, progress, details, finish, cancel,
 * limits, eviction, ordering, unique ids, shutdown, many threads at once)
 * and the task.list/get/cancel handlers. Workers are driven by gates, never
 * by sleeps; waits are bounded polls that fail the test if they run out. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "hostd/dispatch.h"
#include "hostd/task.h"
#include "log.h"
#include "util.h"

/* ---- workers ---- */

/* A worker that waits for its gate (or for cancellation), then ends as told. */
struct gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool open;
	bool started;
	int status;         /* task_finish status once open */
	bool finish;        /* false: return without task_finish */
	bool honour_cancel; /* end as cancelled when asked */
	atomic_bool saw_cancel;
};

static void gate_init(struct gate *g, int status)
{
	memset(g, 0, sizeof(*g));
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->cond, NULL);
	g->status = status;
	g->finish = true;
	g->honour_cancel = true;
}

static void gate_open(struct gate *g)
{
	pthread_mutex_lock(&g->lock);
	g->open = true;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

static void gate_destroy(struct gate *g)
{
	pthread_cond_destroy(&g->cond);
	pthread_mutex_destroy(&g->lock);
}

static void *gated(struct hostd_task *t, void *arg)
{
	struct gate *g = arg;

	pthread_mutex_lock(&g->lock);
	g->started = true;
	pthread_cond_broadcast(&g->cond);
	while (!g->open) {
		if (task_cancelled(t)) {
			atomic_store(&g->saw_cancel, true);
			if (g->honour_cancel)
				break;
		}
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += 2000000;
		if (until.tv_nsec >= 1000000000) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&g->cond, &g->lock, &until);
	}
	bool cancelled = !g->open;
	pthread_mutex_unlock(&g->lock);
	if (!g->finish)
		return NULL;
	if (cancelled)
		task_finish(t, VMK__STATUS__STATUS_CANCELLED, "stopped at %s", "the gate");
	else if (g->status == 0)
		task_finish(t, 0, "done");
	else
		task_finish(t, g->status, "vm1: it went wrong; fix it");
	return NULL;
}

static void *quick(struct hostd_task *t, void *arg)
{
	char v[32];

	(void)arg;
	task_progress(t, 50, "half");
	snprintf(v, sizeof(v), "%s", task_id(t));
	task_set_detail(t, "copied_mib", "12");
	task_finish(t, 0, "ok");
	return NULL;
}

static bool ended(enum task_state s)
{
	return s == TASK_SUCCESS || s == TASK_FAILED || s == TASK_CANCELLED;
}

static void nap(void)
{
	struct timespec ts = { 0, 1000000 };
	nanosleep(&ts, NULL);
}

/* Waits (bounded) until the task ends; fails the test otherwise. */
static void wait_end(struct hostd_tasks *ts, const char *id, struct task_info *out)
{
	for (int i = 0; i < 20000; i++) {
		assert_int_equal(hostd_tasks_get(ts, id, out), 0);
		if (ended(out->state))
			return;
		nap();
	}
	fail_msg("task %s did not end", id);
}

static void wait_started(struct gate *g)
{
	pthread_mutex_lock(&g->lock);
	while (!g->started)
		pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
}

/* task_start that retries while earlier workers are still returning. */
static struct hostd_task *start_retry(struct hostd_tasks *ts, task_fn fn, void *arg)
{
	for (int i = 0; i < 20000; i++) {
		struct hostd_task *t = task_start(ts, "test.op", "obj", "root", fn, arg);
		if (t)
			return t;
		assert_int_equal(errno, EBUSY);
		nap();
	}
	fail_msg("task_start stayed busy");
	return NULL;
}

/* ---- the table ---- */

static void test_start_progress_finish(void **state)
{
	struct hostd_tasks *ts;
	struct gate g;
	struct task_info i;

	(void)state;
	assert_int_equal(hostd_tasks_init(&ts, 0, 0), 0);
	gate_init(&g, 0);
	struct hostd_task *t = task_start(ts, "vm.power.on", "vm1", "root", gated, &g);
	assert_non_null(t);
	char id[TASK_ID_MAX];
	snprintf(id, sizeof(id), "%s", task_id(t));
	char prefix[32];
	snprintf(prefix, sizeof(prefix), "task-%s-", hostd_tasks_boot_id(ts));
	assert_int_equal(strncmp(id, prefix, strlen(prefix)), 0);
	assert_int_equal(strlen(hostd_tasks_boot_id(ts)), 8);
	wait_started(&g);

	task_progress(t, 42, "loading the kernel");
	task_progress(t, 250, NULL); /* clamped; phase kept */
	assert_int_equal(task_set_detail(t, "iteration", "3"), 0);
	assert_int_equal(task_set_detail(t, "remaining_mib", "512"), 0);
	assert_int_equal(task_set_detail(t, "iteration", "4"), 0); /* replaced */
	task_snapshot(t, &i);
	assert_string_equal(i.id, id);
	assert_string_equal(i.op, "vm.power.on");
	assert_string_equal(i.target, "vm1");
	assert_string_equal(i.user, "root");
	assert_int_equal(i.state, TASK_RUNNING);
	assert_int_equal(i.progress, 100);
	assert_string_equal(i.phase, "loading the kernel");
	assert_int_equal(i.ndetails, 2);
	assert_string_equal(i.details[0].key, "iteration");
	assert_string_equal(i.details[0].value, "4");
	assert_string_equal(i.details[1].key, "remaining_mib");
	assert_true(i.start_ms > 1600000000000ull);
	assert_int_equal(i.end_ms, 0);
	assert_false(i.cancel_requested);
	task_progress(t, 60, NULL);

	gate_open(&g);
	wait_end(ts, id, &i);
	assert_int_equal(i.state, TASK_SUCCESS);
	assert_int_equal(i.status, 0);
	assert_int_equal(i.progress, 100);
	assert_string_equal(i.msg, "done");
	assert_true(i.end_ms >= i.start_ms);
	assert_string_equal(task_state_name(i.state), "success");

	/* after the end, the worker API changes nothing */
	task_progress(t, 5, "late");
	assert_int_equal(task_set_detail(t, "late", "x"), -EALREADY);
	assert_int_equal(task_finish(t, 1, "again"), -EALREADY);
	task_snapshot(t, &i);
	assert_int_equal(i.progress, 100);
	assert_string_equal(i.phase, "loading the kernel");
	assert_string_equal(i.msg, "done");
	uint64_t d = i.duration_ms;
	nap();
	task_snapshot(t, &i);
	assert_int_equal(i.duration_ms, d); /* frozen at the end */
	task_put(t);
	hostd_tasks_free(ts);
	gate_destroy(&g);
}

static void test_failed_and_no_result(void **state)
{
	struct hostd_tasks *ts;
	struct gate g1, g2;
	struct task_info i;

	(void)state;
	assert_int_equal(hostd_tasks_init(&ts, 0, 0), 0);
	gate_init(&g1, VMK__STATUS__STATUS_NOT_FOUND);
	gate_init(&g2, 0);
	g2.finish = false; /* a buggy worker: returns without a result */
	struct hostd_task *t1 = task_start(ts, "vm.migrate", "vm1", "root", gated, &g1);
	struct hostd_task *t2 = task_start(ts, "vm.clone", "vm2", "root", gated, &g2);
	assert_non_null(t1);
	assert_non_null(t2);
	gate_open(&g1);
	gate_open(&g2);
	wait_end(ts, task_id(t1), &i);
	assert_int_equal(i.state, TASK_FAILED);
	assert_int_equal(i.status, VMK__STATUS__STATUS_NOT_FOUND);
	assert_string_equal(i.msg, "vm1: it went wrong; fix it");
	assert_string_equal(task_state_name(i.state), "failed");
	wait_end(ts, task_id(t2), &i);
	assert_int_equal(i.state, TASK_FAILED);
	assert_int_equal(i.status, VMK__STATUS__STATUS_FAILED);
	assert_non_null(strstr(i.msg, "without a result"));
	task_put(t1);
	task_put(t2);
	hostd_tasks_free(ts);
	gate_destroy(&g1);
	gate_destroy(&g2);
}

static void test_cancel(void **state)
{
	struct hostd_tasks *ts;
	struct gate g, g2;
	struct task_info i;

	(void)state;
	assert_int_equal(hostd_tasks_init(&ts, 0, 0), 0);
	gate_init(&g, 0);
	struct hostd_task *t = task_start(ts, "vm.migrate", "vm1", "root", gated, &g);
	assert_non_null(t);
	wait_started(&g);
	assert_false(task_cancelled(t));
	assert_int_equal(hostd_tasks_cancel(ts, task_id(t), &i), 0);
	assert_true(i.cancel_requested);
	/* asking twice is fine while it runs (or -EALREADY once it ended) */
	int again = hostd_tasks_cancel(ts, task_id(t), &i);
	assert_true(again == 0 || again == -EALREADY);
	assert_true(task_cancelled(t));
	wait_end(ts, task_id(t), &i);
	assert_true(atomic_load(&g.saw_cancel));
	assert_int_equal(i.state, TASK_CANCELLED);
	assert_int_equal(i.status, VMK__STATUS__STATUS_CANCELLED);
	assert_string_equal(i.msg, "stopped at the gate");
	assert_string_equal(task_state_name(i.state), "cancelled");
	/* finished: cancel says so and still tells the state */
	memset(&i, 0, sizeof(i));
	assert_int_equal(hostd_tasks_cancel(ts, task_id(t), &i), -EALREADY);
	assert_int_equal(i.state, TASK_CANCELLED);
	assert_int_equal(hostd_tasks_cancel(ts, "task-nope-1", &i), -ENOENT);
	assert_int_equal(hostd_tasks_get(ts, "task-nope-1", &i), -ENOENT);
	task_put(t);

	/* a worker that just returns when cancelled ends as cancelled */
	gate_init(&g2, 0);
	g2.finish = false;
	t = task_start(ts, "vm.clone", "vm2", "root", gated, &g2);
	wait_started(&g2);
	assert_int_equal(hostd_tasks_cancel(ts, task_id(t), &i), 0);
	wait_end(ts, task_id(t), &i);
	assert_int_equal(i.state, TASK_CANCELLED);
	assert_int_equal(i.status, VMK__STATUS__STATUS_CANCELLED);
	task_put(t);
	hostd_tasks_free(ts);
	gate_destroy(&g);
	gate_destroy(&g2);
}

static void test_details(void **state)
{
	struct hostd_tasks *ts;
	struct gate g;
	struct task_info i;
	char key[64], longval[300];

	(void)state;
	assert_int_equal(hostd_tasks_init(&ts, 0, 0), 0);
	gate_init(&g, 0);
	struct hostd_task *t = task_start(ts, "vm.migrate", "vm1", "root", gated, &g);
	assert_non_null(t);
	static const char *const bad[] = { "",
		                           "Iteration",
		                           "1st",
		                           "remaining-mib",
		                           "a b",
		                           "_x",
		                           "ünï",
		                           "task id",
		                           "abcdefghijklmnopqrstuvwxyz012345" /* 32 */ };
	for (size_t k = 0; k < ARRAY_SIZE(bad); k++)
		if (task_set_detail(t, bad[k], "v") != -EINVAL)
			fail_msg("detail key \"%s\" accepted", bad[k]);
	assert_int_equal(task_set_detail(t, NULL, "v"), -EINVAL);
	assert_int_equal(task_set_detail(t, "abcdefghijklmnopqrstuvwxyz01234", "31 ok"), 0);
	memset(longval, 'v', sizeof(longval) - 1);
	longval[sizeof(longval) - 1] = '\0';
	assert_int_equal(task_set_detail(t, "long", longval), 0);
	for (int k = 2; k < TASK_DETAILS_MAX; k++) {
		snprintf(key, sizeof(key), "k%d", k);
		assert_int_equal(task_set_detail(t, key, "x"), 0);
	}
	assert_int_equal(task_set_detail(t, "one_too_many", "x"), -ENOSPC);
	assert_int_equal(task_set_detail(t, "k5", "replaced"), 0); /* replacing still works */
	task_snapshot(t, &i);
	assert_int_equal(i.ndetails, TASK_DETAILS_MAX);
	assert_int_equal(strlen(i.details[1].value), TASK_VALUE_MAX - 1);
	assert_string_equal(i.details[5].value, "replaced");
	gate_open(&g);
	wait_end(ts, task_id(t), &i);
	assert_int_equal(i.ndetails, TASK_DETAILS_MAX); /* kept after the end */
	task_put(t);
	hostd_tasks_free(ts);
	gate_destroy(&g);
}

static void test_limits_and_eviction(void **state)
{
	enum { RUN = 4, KEEP = 5 };
	struct hostd_tasks *ts;
	struct gate g[RUN];
	struct hostd_task *t[RUN];
	struct task_info i, *v;
	char ids[40][TASK_ID_MAX];
	size_t n;

	(void)state;
	assert_int_equal(hostd_tasks_init(&ts, RUN, KEEP), 0);
	for (int k = 0; k < RUN; k++) {
		gate_init(&g[k], 0);
		t[k] = task_start(ts, "vm.power.on", "vm", "root", gated, &g[k]);
		assert_non_null(t[k]);
	}
	struct gate extra;
	gate_init(&extra, 0);
	errno = 0;
	assert_null(task_start(ts, "vm.power.on", "vm", "root", gated, &extra));
	assert_int_equal(errno, EBUSY);
	errno = 0;
	assert_null(task_start(ts, "", "vm", "root", gated, &extra));
	assert_int_equal(errno, EINVAL);
	assert_null(task_start(ts, "op", "vm", "root", NULL, &extra));

	/* one ends: room for one more */
	gate_open(&g[0]);
	wait_end(ts, task_id(t[0]), &i);
	struct hostd_task *more = start_retry(ts, gated, &extra);
	gate_open(&extra);
	wait_end(ts, task_id(more), &i);
	task_put(more);

	/* many quick tasks: only the last KEEP finished ones stay */
	for (int k = 0; k < 40; k++) {
		struct hostd_task *q = start_retry(ts, quick, NULL);
		snprintf(ids[k], sizeof(ids[k]), "%s", task_id(q));
		wait_end(ts, ids[k], &i);
		task_put(q);
	}
	assert_int_equal(hostd_tasks_list(ts, &v, &n), 0);
	assert_int_equal(n, (RUN - 1) + KEEP);
	size_t fin = 0;
	for (size_t k = 0; k < n; k++) {
		if (!ended(v[k].state))
			continue;
		/* the finished ones are the newest, in start order */
		assert_string_equal(v[k].id, ids[40 - KEEP + fin]);
		fin++;
	}
	assert_int_equal(fin, KEEP);
	free(v);
	assert_int_equal(hostd_tasks_get(ts, ids[0], &i), -ENOENT);
	assert_int_equal(hostd_tasks_get(ts, task_id(t[0]), &i), -ENOENT); /* evicted */
	/* an evicted task's pointer stays good while its reference is held */
	task_snapshot(t[0], &i);
	assert_int_equal(i.state, TASK_SUCCESS);

	for (int k = 0; k < RUN; k++) {
		gate_open(&g[k]);
		task_put(t[k]);
	}
	hostd_tasks_free(ts);
	for (int k = 0; k < RUN; k++)
		gate_destroy(&g[k]);
	gate_destroy(&extra);
}

static void test_list_order_and_ids(void **state)
{
	enum { N = 30 };
	struct hostd_tasks *ts, *ts2;
	struct gate g;
	struct hostd_task *t[N];
	struct task_info *v;
	size_t n;

	(void)state;
	assert_int_equal(hostd_tasks_init(&ts, 0, 0), 0);
	assert_int_equal(hostd_tasks_init(&ts2, 0, 0), 0);
	assert_int_equal(hostd_tasks_list(ts, &v, &n), 0);
	assert_int_equal(n, 0);
	free(v);
	/* another run of hostd: another boot id */
	assert_string_not_equal(hostd_tasks_boot_id(ts), hostd_tasks_boot_id(ts2));
	gate_init(&g, 0);
	for (int k = 0; k < N; k++) {
		char target[16];
		snprintf(target, sizeof(target), "vm%d", k);
		t[k] = task_start(ts, "vm.power.on", target, "root", k % 2 ? quick : gated, &g);
		assert_non_null(t[k]);
	}
	assert_int_equal(hostd_tasks_list(ts, &v, &n), 0);
	assert_int_equal(n, N);
	for (int k = 0; k < N; k++) {
		char target[16];
		snprintf(target, sizeof(target), "vm%d", k);
		assert_string_equal(v[k].id, task_id(t[k]));
		assert_string_equal(v[k].target, target);
		for (int j = 0; j < k; j++)
			assert_string_not_equal(v[k].id, v[j].id);
	}
	free(v);
	gate_open(&g);
	for (int k = 0; k < N; k++)
		task_put(t[k]);
	hostd_tasks_free(ts);
	hostd_tasks_free(ts2);
	gate_destroy(&g);
}

/* hostd_tasks_free asks running tasks to stop and waits for their workers */
static void test_free_cancels(void **state)
{
	struct hostd_tasks *ts;
	struct gate g;

	(void)state;
	assert_int_equal(hostd_tasks_init(&ts, 0, 0), 0);
	gate_init(&g, 0);
	struct hostd_task *t = task_start(ts, "vm.migrate", "vm1", "root", gated, &g);
	assert_non_null(t);
	task_put(t);
	wait_started(&g);
	hostd_tasks_free(ts);
	assert_true(atomic_load(&g.saw_cancel));
	gate_destroy(&g);
	hostd_tasks_free(NULL);
}

/* ---- many threads at once ---- */

enum { THREADS = 8, PER_THREAD = 60 };

/* cmocka's asserts belong to the main thread: other threads count problems */
struct conc {
	struct hostd_tasks *ts;
	char ids[THREADS * PER_THREAD][TASK_ID_MAX];
	atomic_int next;
	atomic_bool done;
	atomic_int problems;
};

static bool odd_number(const char *id)
{
	return strtoull(strrchr(id, '-') + 1, NULL, 10) % 2 == 1;
}

static void *busy(struct hostd_task *t, void *arg)
{
	char v[16];

	(void)arg;
	for (unsigned p = 0; p <= 100; p += 25) {
		task_progress(t, p, "working");
		snprintf(v, sizeof(v), "%u", p);
		task_set_detail(t, "step", v);
		if (task_cancelled(t))
			return NULL; /* ends as cancelled */
	}
	task_finish(t, odd_number(task_id(t)) ? VMK__STATUS__STATUS_CONFLICT : 0, "end");
	return NULL;
}

static void *starter(void *arg)
{
	struct conc *c = arg;

	for (int k = 0; k < PER_THREAD; k++) {
		struct hostd_task *t;
		while (!(t = task_start(c->ts, "test.op", "obj", "root", busy, NULL))) {
			if (errno != EBUSY) {
				atomic_fetch_add(&c->problems, 1);
				return NULL;
			}
			nap();
		}
		int slot = atomic_fetch_add(&c->next, 1);
		snprintf(c->ids[slot], sizeof(c->ids[slot]), "%s", task_id(t));
		task_put(t);
	}
	return NULL;
}

static void *reader(void *arg)
{
	struct conc *c = arg;
	struct task_info *v, i;
	size_t n;

	while (!atomic_load(&c->done)) {
		if (hostd_tasks_list(c->ts, &v, &n) == 0) {
			for (size_t k = 0; k < n; k++) {
				if (v[k].progress > 100 || !v[k].id[0])
					atomic_fetch_add(&c->problems, 1);
				if (k % 7 == 0)
					hostd_tasks_cancel(c->ts, v[k].id, &i);
				hostd_tasks_get(c->ts, v[k].id, &i);
			}
			free(v);
		}
	}
	return NULL;
}

static void test_concurrency(void **state)
{
	static struct conc c;
	pthread_t st[THREADS], rd[2];
	struct task_info *v;
	size_t n;

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(hostd_tasks_init(&c.ts, 16, 1000), 0);
	for (int k = 0; k < 2; k++)
		assert_int_equal(pthread_create(&rd[k], NULL, reader, &c), 0);
	for (int k = 0; k < THREADS; k++)
		assert_int_equal(pthread_create(&st[k], NULL, starter, &c), 0);
	for (int k = 0; k < THREADS; k++)
		pthread_join(st[k], NULL);
	assert_int_equal(atomic_load(&c.problems), 0);
	assert_int_equal(atomic_load(&c.next), THREADS * PER_THREAD);
	for (int k = 0; k < THREADS * PER_THREAD; k++) {
		struct task_info i;
		wait_end(c.ts, c.ids[k], &i);
		for (int j = 0; j < k; j++)
			assert_string_not_equal(c.ids[k], c.ids[j]);
	}
	atomic_store(&c.done, true);
	for (int k = 0; k < 2; k++)
		pthread_join(rd[k], NULL);
	assert_int_equal(atomic_load(&c.problems), 0);
	assert_int_equal(hostd_tasks_list(c.ts, &v, &n), 0);
	assert_int_equal(n, THREADS * PER_THREAD);
	for (size_t k = 0; k < n; k++) {
		assert_true(ended(v[k].state));
		if (v[k].state == TASK_SUCCESS) {
			assert_int_equal(v[k].progress, 100);
			assert_false(odd_number(v[k].id));
		} else if (v[k].state == TASK_FAILED) {
			assert_int_equal(v[k].status, VMK__STATUS__STATUS_CONFLICT);
			assert_true(odd_number(v[k].id));
		}
		/* start order: task numbers increase */
		if (k > 0)
			assert_true(strtoull(strrchr(v[k].id, '-') + 1, NULL, 10) >
			            strtoull(strrchr(v[k - 1].id, '-') + 1, NULL, 10));
	}
	free(v);
	hostd_tasks_free(c.ts);
}

/* ---- handlers ---- */

/* call() resets the arena and response for the next handler call; requests
 * with a body come from id_request, which does that itself (so use &hx.call). */

static struct {
	struct hostd h;
	struct arena a;
	Vmk__Response resp;
	struct hostd_call call;
} hx;

static struct hostd_call *call(void)
{
	arena_free(&hx.a);
	arena_init(&hx.a, 16u << 20);
	vmk__response__init(&hx.resp);
	hx.resp.error = "";
	hx.call = (struct hostd_call){
		.h = &hx.h, .a = &hx.a, .user = "root", .role = ROLE_ADMIN, .resp = &hx.resp
	};
	return &hx.call;
}

static Vmk__Request *id_request(Vmk__Request__BodyCase op, const char *id)
{
	Vmk__Request *r;
	Vmk__TaskIdRequest *b;

	call(); /* a fresh arena and response, for the call that follows */
	r = arena_alloc(&hx.a, sizeof(*r));
	b = arena_alloc(&hx.a, sizeof(*b));
	vmk__request__init(r);
	vmk__task_id_request__init(b);
	b->id = (char *)id;
	r->body_case = op;
	if (op == VMK__REQUEST__BODY_TASK_GET)
		r->task_get = b;
	else
		r->task_cancel = b;
	return r;
}

static void *blocked(struct hostd_task *t, void *arg)
{
	struct gate *g = arg;

	task_progress(t, 30, "copying");
	task_set_detail(t, "iteration", "2");
	return gated(t, g);
}

static void test_handlers(void **state)
{
	Vmk__Request list = VMK__REQUEST__INIT;
	Vmk__TaskListRequest lb = VMK__TASK_LIST_REQUEST__INIT;
	struct gate g, g2;
	struct task_info i;
	char other[64];

	(void)state;
	arena_init(&hx.a, 0);
	assert_int_equal(hostd_tasks_init(&hx.h.tasks, 2, 0), 0);
	list.body_case = VMK__REQUEST__BODY_TASK_LIST;
	list.task_list = &lb;

	/* empty list */
	assert_int_equal(hostd_op_task_list(call(), &list), 0);
	assert_int_equal(hx.resp.body_case, VMK__RESPONSE__BODY_TASK_LIST);
	assert_int_equal(hx.resp.task_list->n_tasks, 0);

	/* bad and unknown ids */
	assert_int_equal(hostd_op_task_get(&hx.call, id_request(VMK__REQUEST__BODY_TASK_GET, "")),
	                 VMK__STATUS__STATUS_USAGE);
	assert_non_null(strstr(hx.resp.error, "task list"));
	char longid[200];
	memset(longid, 'x', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = '\0';
	assert_int_equal(
	        hostd_op_task_get(&hx.call, id_request(VMK__REQUEST__BODY_TASK_GET, longid)),
	        VMK__STATUS__STATUS_USAGE);
	assert_int_equal(
	        hostd_op_task_get(&hx.call, id_request(VMK__REQUEST__BODY_TASK_GET, "task-x-1")),
	        VMK__STATUS__STATUS_NOT_FOUND);
	assert_non_null(strstr(hx.resp.error, "no task task-x-1"));
	snprintf(other, sizeof(other), "task-%s-7",
	         strcmp(hostd_tasks_boot_id(hx.h.tasks), "00000000") ? "00000000" : "11111111");
	assert_int_equal(
	        hostd_op_task_cancel(&hx.call, id_request(VMK__REQUEST__BODY_TASK_CANCEL, other)),
	        VMK__STATUS__STATUS_NOT_FOUND);
	assert_non_null(strstr(hx.resp.error, "earlier run of hostd"));

	/* a long operation's reply is its task */
	gate_init(&g, 0);
	gate_init(&g2, 0);
	assert_int_equal(hostd_task_start_reply(call(), "vm.migrate", "vm1", blocked, &g), 0);
	assert_int_equal(hx.resp.body_case, VMK__RESPONSE__BODY_TASK);
	char id[TASK_ID_MAX];
	snprintf(id, sizeof(id), "%s", hx.resp.task->id);
	assert_string_equal(hx.resp.task->op, "vm.migrate");
	assert_string_equal(hx.resp.task->target, "vm1");
	assert_string_equal(hx.resp.task->user, "root");
	wait_started(&g);

	assert_int_equal(hostd_op_task_get(&hx.call, id_request(VMK__REQUEST__BODY_TASK_GET, id)),
	                 0);
	Vmk__Task *t = hx.resp.task;
	assert_string_equal(t->id, id);
	assert_string_equal(t->state, "running");
	assert_int_equal(t->progress, 30);
	assert_string_equal(t->phase, "copying");
	assert_int_equal(t->n_details, 1);
	assert_string_equal(t->details[0]->key, "iteration");
	assert_string_equal(t->details[0]->value, "2");
	assert_string_equal(t->error, "");
	assert_false(t->cancel_requested);

	/* the limit (2 here): 5 with a message that says what to do */
	assert_int_equal(hostd_task_start_reply(call(), "vm.clone", "vm2", gated, &g2), 0);
	struct gate g3;
	gate_init(&g3, 0);
	assert_int_equal(hostd_task_start_reply(call(), "vm.clone", "vm3", gated, &g3),
	                 VMK__STATUS__STATUS_CONFLICT);
	assert_non_null(strstr(hx.resp.error, "vm.clone vm3"));
	assert_non_null(strstr(hx.resp.error, "task list"));
	gate_open(&g2);

	assert_int_equal(hostd_op_task_list(call(), &list), 0);
	assert_int_equal(hx.resp.task_list->n_tasks, 2);
	assert_string_equal(hx.resp.task_list->tasks[0]->id, id);

	assert_int_equal(
	        hostd_op_task_cancel(&hx.call, id_request(VMK__REQUEST__BODY_TASK_CANCEL, id)), 0);
	assert_int_equal(hx.resp.body_case, VMK__RESPONSE__BODY_TASK);
	assert_true(hx.resp.task->cancel_requested);
	wait_end(hx.h.tasks, id, &i);
	assert_int_equal(hostd_op_task_get(&hx.call, id_request(VMK__REQUEST__BODY_TASK_GET, id)),
	                 0);
	assert_string_equal(hx.resp.task->state, "cancelled");
	assert_int_equal(hx.resp.task->status, VMK__STATUS__STATUS_CANCELLED);
	assert_string_equal(hx.resp.task->error, "stopped at the gate");
	assert_true(hx.resp.task->end_ms >= hx.resp.task->start_ms);

	/* cancelling an ended task: 5, naming its state */
	assert_int_equal(
	        hostd_op_task_cancel(&hx.call, id_request(VMK__REQUEST__BODY_TASK_CANCEL, id)),
	        VMK__STATUS__STATUS_CONFLICT);
	assert_non_null(strstr(hx.resp.error, "cancelled"));
	assert_non_null(strstr(hx.resp.error, "nothing to cancel"));

	/* every response packs */
	uint8_t buf[4096];
	assert_true(vmk__response__get_packed_size(&hx.resp) < sizeof(buf));
	vmk__response__pack(&hx.resp, buf);

	hostd_tasks_free(hx.h.tasks);
	arena_free(&hx.a);
	gate_destroy(&g);
	gate_destroy(&g2);
	gate_destroy(&g3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_start_progress_finish),
		cmocka_unit_test(test_failed_and_no_result),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_details),
		cmocka_unit_test(test_limits_and_eviction),
		cmocka_unit_test(test_list_order_and_ids),
		cmocka_unit_test(test_free_cancels),
		cmocka_unit_test(test_concurrency),
		cmocka_unit_test(test_handlers),
	};

	log_set_level(LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
