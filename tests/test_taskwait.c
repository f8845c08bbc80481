/* vmkctl/taskwait.c against a real hostd dispatch: an in-process RPC server
 * (loopback tcp://, hostd_dispatch, a real task table), vmkctl's connection
 * and login, and tasks started with task_start. Covers waiting to success
 * and failure, Ctrl-C (cancel once, then stop waiting), the wait timeout,
 * unknown ids, --async, and the pure helpers (bar, exit codes, document).
 * Workers advance on what the client did (polls and cancels counted by the
 * dispatch), never on sleeps. */
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "hostd/auth.h"
#include "hostd/dispatch.h"
#include "hostd/session.h"
#include "hostd/task.h"
#include "log.h"
#include "rpc.h"
#include "util.h"
#include "vmkctl/taskwait.h"

static struct {
	struct hostd h;
	struct hostd_account acct[1];
	char dir[64];
	char url[64];
	struct rpc_server *srv;
	atomic_int gets, cancels; /* task.get and task.cancel calls served */
	pthread_t main_thread;
} fx;

static void counting_dispatch(void *arg, const Vmk__Request *req, Vmk__Response *resp,
                              struct arena *a)
{
	hostd_dispatch(arg, req, resp, a);
	if (req->body_case == VMK__REQUEST__BODY_TASK_GET)
		atomic_fetch_add(&fx.gets, 1);
	if (req->body_case == VMK__REQUEST__BODY_TASK_CANCEL)
		atomic_fetch_add(&fx.cancels, 1);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
		                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) < 0)
		return -1;
	close(fd);
	return ntohs(sa.sin_port);
}

static int setup(void **state)
{
	struct hostd_config *c = &fx.h.cfg;
	char err[512];
	int ret = -EADDRINUSE;

	(void)state;
	log_set_level(LOG_ERROR);
	fx.main_thread = pthread_self();
	snprintf(fx.dir, sizeof(fx.dir), "/tmp/vmk-test-taskwait.XXXXXX");
	if (!mkdtemp(fx.dir))
		return -1;
	fx.acct[0] = (struct hostd_account){ .id = "root", .role = ROLE_ADMIN };
	if (hostd_auth_hash("root-pw", &fx.acct[0].password_hash) < 0)
		return -1;
	c->path = "test.cfg";
	c->name = "esx-test";
	c->state_dir = fx.dir;
	c->session_timeout_s = 600;
	c->accounts = fx.acct;
	c->naccounts = 1;
	if (hostd_auth_init(&fx.h.auth, c) < 0 ||
	    hostd_sessions_init(&fx.h.sessions, c->session_timeout_s) < 0 ||
	    hostd_tasks_init(&fx.h.tasks, 0, 0) < 0)
		return -1;
	/* another process may take the port between free_port and listen */
	for (int tries = 0; tries < 5 && ret == -EADDRINUSE; tries++) {
		snprintf(fx.url, sizeof(fx.url), "tcp://127.0.0.1:%d", free_port());
		struct rpc_server_opts o = {
			.url = fx.url,
			.insecure = true,
			.workers = 4,
			.dispatch = counting_dispatch,
			.arg = &fx.h,
		};
		ret = rpc_server_start(&fx.srv, &o, err, sizeof(err));
	}
	if (ret < 0) {
		fprintf(stderr, "rpc_server_start %s: %s\n", fx.url, err);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	rpc_server_stop(fx.srv);
	hostd_tasks_free(fx.h.tasks);
	hostd_sessions_free(fx.h.sessions);
	hostd_auth_free(fx.h.auth);
	free(fx.acct[0].password_hash);
	if (fx.dir[0])
		nftw(fx.dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	return 0;
}

static void vmkctl_open(struct vmkctl *v)
{
	memset(v, 0, sizeof(*v));
	arena_init(&v->a, 0);
	v->copts.server = fx.url;
	v->copts.username = "root";
	v->copts.password = "root-pw";
	v->copts.timeout_ms = 20000;
}

static void vmkctl_close(struct vmkctl *v)
{
	if (v->connected)
		hostconn_close(&v->conn);
	arena_free(&v->a);
}

static void nap(void)
{
	struct timespec ts = { 0, 1000000 };
	nanosleep(&ts, NULL);
}

/* Waits (bounded) until the counter reaches n. */
static bool reach(atomic_int *c, int n)
{
	for (int i = 0; i < 30000; i++) {
		if (atomic_load(c) >= n)
			return true;
		nap();
	}
	return false;
}

/* ---- workers ---- */

struct job {
	int status;         /* how it ends */
	bool ignore_cancel; /* keeps running when cancelled, until release */
	atomic_bool release;
	atomic_bool saw_cancel;
	int polls; /* it ends once the client polled this many times more */
};

/* Reports progress, waits for the client's polls (or cancellation), ends. */
static void *job_fn(struct hostd_task *t, void *arg)
{
	struct job *j = arg;
	int base = atomic_load(&fx.gets);

	task_progress(t, 50, "copying memory");
	task_set_detail(t, "iteration", "3");
	task_set_detail(t, "remaining_mib", "512");
	task_set_detail(t, "kind", "live");
	for (int i = 0; i < 60000; i++) {
		if (task_cancelled(t)) {
			atomic_store(&j->saw_cancel, true);
			if (!j->ignore_cancel) {
				task_finish(t, VMK__STATUS__STATUS_CANCELLED, "stopped at 50%%");
				return NULL;
			}
		}
		if (atomic_load(&j->release))
			break;
		if (j->polls && atomic_load(&fx.gets) >= base + j->polls)
			break;
		nap();
	}
	task_progress(t, 90, "switching over");
	if (j->status)
		task_finish(t, j->status, "vm1: the destination refused it; free memory there");
	else
		task_finish(t, 0, "vm1 runs on esx2");
	return NULL;
}

static char *start_job(struct job *j)
{
	static char id[TASK_ID_MAX];
	struct hostd_task *t = task_start(fx.h.tasks, "vm.migrate", "vm1", "root", job_fn, j);

	assert_non_null(t);
	snprintf(id, sizeof(id), "%s", task_id(t));
	task_put(t);
	return id;
}

/* ---- waiting ---- */

static void test_wait_success(void **state)
{
	struct vmkctl v;
	struct job j = { .polls = 3 };
	char *bar = NULL;
	size_t barlen = 0;
	FILE *f = open_memstream(&bar, &barlen);
	struct vmkctl_wait_opts o = { .poll_ms = 5, .bar = f };
	Vmk__Task *t;

	(void)state;
	vmkctl_open(&v);
	char *id = start_job(&j);
	assert_int_equal(vmkctl_task_wait(&v, id, &o, &t), 0);
	fclose(f);
	assert_non_null(t);
	assert_string_equal(t->id, id);
	assert_string_equal(t->state, "success");
	assert_string_equal(t->result, "vm1 runs on esx2");
	assert_int_equal(t->progress, 100);
	assert_int_equal(vmkctl_task_exit(t), 0);
	/* the bar was drawn while it ran, and cleared at the end */
	assert_non_null(strstr(bar, "[##########----------]  50% copying memory"));
	assert_non_null(strstr(bar, "\r\033[K"));
	assert_int_equal(strcmp(bar + barlen - 4, "\r\033[K"), 0);
	free(bar);

	/* the document of task get */
	struct out_doc d = { 0 };
	assert_int_equal(vmkctl_task_doc(&d, t), 0);
	char *json = NULL;
	size_t jl = 0;
	FILE *jf = open_memstream(&json, &jl);
	assert_int_equal(out_render(jf, FMT_JSON, &d), 0);
	fclose(jf);
	assert_non_null(strstr(json, "\"task_id\":\""));
	assert_non_null(strstr(json, "\"state\":\"success\""));
	assert_non_null(strstr(json, "\"exit_code\":0"));
	assert_non_null(strstr(json, "\"error\":null"));
	assert_non_null(strstr(json, "\"iteration\":3"));       /* a number */
	assert_non_null(strstr(json, "\"remaining_mib\":512")); /* a number */
	assert_non_null(strstr(json, "\"kind\":\"live\""));
	free(json);
	out_free(&d);
	vmkctl_close(&v);
}

static void test_wait_failure(void **state)
{
	struct vmkctl v;
	struct job j = { .polls = 2, .status = VMK__STATUS__STATUS_CONFLICT };
	struct vmkctl_wait_opts o = { .poll_ms = 5 };
	Vmk__Task *t;

	(void)state;
	vmkctl_open(&v);
	char *id = start_job(&j);
	assert_int_equal(vmkctl_task_wait(&v, id, &o, &t), VMK__STATUS__STATUS_CONFLICT);
	assert_string_equal(t->state, "failed");
	assert_non_null(strstr(v.err, id));
	assert_non_null(strstr(v.err, "failed"));
	assert_non_null(strstr(v.err, "free memory there"));
	vmkctl_close(&v);
}

/* Sends SIGINT to the main thread once the client has polled `after` times
 * (the wait's handler is in place then) and, with twice, again once the
 * cancel arrived. */
struct interrupter {
	int after;
	bool twice;
	bool ok;
};

static void *interrupt(void *arg)
{
	struct interrupter *in = arg;

	in->ok = reach(&fx.gets, in->after);
	if (in->ok)
		pthread_kill(fx.main_thread, SIGINT);
	if (in->ok && in->twice) {
		in->ok = reach(&fx.cancels, 1);
		if (in->ok)
			pthread_kill(fx.main_thread, SIGINT);
	}
	return NULL;
}

static void test_wait_ctrl_c_cancels(void **state)
{
	struct vmkctl v;
	struct job j = { 0 };
	struct vmkctl_wait_opts o = { .poll_ms = 5 };
	struct interrupter in = { 0 };
	struct sigaction sa;
	pthread_t th;
	Vmk__Task *t;

	(void)state;
	vmkctl_open(&v);
	atomic_store(&fx.cancels, 0);
	char *id = start_job(&j);
	in.after = atomic_load(&fx.gets) + 2;
	assert_int_equal(pthread_create(&th, NULL, interrupt, &in), 0);
	assert_int_equal(vmkctl_task_wait(&v, id, &o, &t), VMK__STATUS__STATUS_CANCELLED);
	pthread_join(th, NULL);
	assert_true(in.ok);
	assert_true(atomic_load(&j.saw_cancel));
	assert_int_equal(atomic_load(&fx.cancels), 1); /* cancel sent once */
	assert_string_equal(t->state, "cancelled");
	assert_true(t->cancel_requested);
	assert_non_null(strstr(v.err, "was cancelled: stopped at 50%"));
	/* the previous SIGINT disposition is back */
	sigaction(SIGINT, NULL, &sa);
	assert_true(sa.sa_handler == SIG_DFL);
	vmkctl_close(&v);
}

static void test_wait_second_ctrl_c_stops(void **state)
{
	struct vmkctl v;
	struct job j = { .ignore_cancel = true };
	struct vmkctl_wait_opts o = { .poll_ms = 5 };
	struct interrupter in = { .twice = true };
	pthread_t th;
	Vmk__Task dummy = VMK__TASK__INIT, *t = &dummy; /* set to NULL by the wait */

	(void)state;
	vmkctl_open(&v);
	atomic_store(&fx.cancels, 0);
	char *id = start_job(&j);
	in.after = atomic_load(&fx.gets) + 1;
	assert_int_equal(pthread_create(&th, NULL, interrupt, &in), 0);
	assert_int_equal(vmkctl_task_wait(&v, id, &o, &t), VMK__STATUS__STATUS_CANCELLED);
	pthread_join(th, NULL);
	assert_true(in.ok);
	assert_null(t);
	assert_non_null(strstr(v.err, "stopped waiting"));
	assert_non_null(strstr(v.err, "task get -t"));
	assert_int_equal(atomic_load(&fx.cancels), 1);
	/* the task goes on until its worker ends */
	struct task_info i;
	assert_int_equal(hostd_tasks_get(fx.h.tasks, id, &i), 0);
	assert_int_equal(i.state, TASK_RUNNING);
	atomic_store(&j.release, true);
	for (int k = 0; k < 30000 && i.state == TASK_RUNNING; k++) {
		nap();
		hostd_tasks_get(fx.h.tasks, id, &i);
	}
	assert_int_equal(i.state, TASK_SUCCESS);
	vmkctl_close(&v);
}

static void test_wait_timeout_and_unknown(void **state)
{
	struct vmkctl v;
	struct job j = { 0 };
	struct vmkctl_wait_opts o = { .poll_ms = 5, .timeout_ms = 50 };
	Vmk__Task *t;
	struct task_info i;

	(void)state;
	vmkctl_open(&v);
	char *id = start_job(&j);
	assert_int_equal(vmkctl_task_wait(&v, id, &o, &t), VMK__STATUS__STATUS_TIMEOUT);
	assert_non_null(strstr(v.err, "still runs"));
	assert_non_null(strstr(v.err, "task cancel -t"));
	assert_int_equal(hostd_tasks_get(fx.h.tasks, id, &i), 0);
	assert_false(i.cancel_requested); /* a timeout does not cancel */
	atomic_store(&j.release, true);
	for (int k = 0; k < 30000 && i.state == TASK_RUNNING; k++) {
		nap();
		hostd_tasks_get(fx.h.tasks, id, &i);
	}
	assert_int_equal(i.state, TASK_SUCCESS); /* j is no longer used */

	o.timeout_ms = 0;
	assert_int_equal(vmkctl_task_wait(&v, "task-nope-1", &o, &t),
	                 VMK__STATUS__STATUS_NOT_FOUND);
	assert_non_null(strstr(v.err, "no task task-nope-1"));
	vmkctl_close(&v);
}

/* The end of a long command: --async prints the task at once, otherwise
 * it waits. */
static void test_task_result(void **state)
{
	static const struct vmkctl_cmd cmd = {
		.path = "vm",
		.verb = "migrate",
		.help = "test",
		.opts = { VMKCTL_TASK_OPTS },
	};
	char *async[] = { "--async" }, *none[] = { "--wait-timeout", "60" };
	struct vmkctl_args a;
	struct vmkctl v;
	struct job j = { .polls = 1 };
	char err[256];
	struct out_doc d = { 0 };
	struct task_info i;

	(void)state;
	vmkctl_open(&v);
	char *id = start_job(&j);
	assert_int_equal(hostd_tasks_get(fx.h.tasks, id, &i), 0);
	Vmk__Task t = VMK__TASK__INIT;
	t.id = id;
	t.op = "vm.migrate";
	t.target = "vm1";
	t.state = "running";

	assert_int_equal(vmkctl_parse_args(&cmd, 1, async, &a, err, sizeof(err)), 0);
	assert_int_equal(vmkctl_task_result(&v, &a, &t, &d), 0);
	assert_int_equal(d.ncols, 4);
	assert_string_equal(d.cols[0], "task_id");
	assert_string_equal(d.cells[0].s, id);
	assert_string_equal(d.cells[3].s, "running");
	out_free(&d);

	assert_int_equal(vmkctl_parse_args(&cmd, 2, none, &a, err, sizeof(err)), 0);
	assert_int_equal(vmkctl_task_result(&v, &a, &t, &d), 0);
	assert_string_equal(d.cols[0], "task_id");
	assert_string_equal(d.cells[0].s, id);
	assert_string_equal(d.cells[3].s, "success");
	out_free(&d);

	assert_int_equal(vmkctl_task_result(&v, &a, NULL, &d), 1);
	vmkctl_close(&v);
}

/* ---- pure helpers ---- */

static void test_bar(void **state)
{
	char b[256];

	(void)state;
	vmkctl_task_bar(b, sizeof(b), 0, "", 80);
	assert_string_equal(b, "[--------------------]   0%");
	vmkctl_task_bar(b, sizeof(b), 50, "copying", 80);
	assert_string_equal(b, "[##########----------]  50% copying");
	vmkctl_task_bar(b, sizeof(b), 100, NULL, 80);
	assert_string_equal(b, "[####################] 100%");
	vmkctl_task_bar(b, sizeof(b), 250, "x", 80);
	assert_string_equal(b, "[####################] 100% x");
	/* escape sequences from the host never reach the terminal */
	vmkctl_task_bar(b, sizeof(b), 7, "a\033[2Jb\n", 80);
	assert_string_equal(b, "[#-------------------]   7% a?[2Jb?");
	/* one line: shorter than the terminal */
	vmkctl_task_bar(b, sizeof(b), 50, "a long phase that does not fit", 32);
	assert_int_equal(strlen(b), 31);
	assert_string_equal(b, "[##########----------]  50% a l");
	/* never cut inside a UTF-8 character */
	vmkctl_task_bar(b, sizeof(b), 50, "\xc3\xa9\xc3\xa9\xc3\xa9", 31);
	assert_string_equal(b, "[##########----------]  50% \xc3\xa9");
	/* a small buffer truncates safely */
	vmkctl_task_bar(b, 5, 50, "x", 80);
	assert_string_equal(b, "[###");
}

static void test_exit_codes_and_doc(void **state)
{
	Vmk__Task t = VMK__TASK__INIT;
	Vmk__TaskDetail d1 = VMK__TASK_DETAIL__INIT, d2 = VMK__TASK_DETAIL__INIT,
	                d3 = VMK__TASK_DETAIL__INIT, d4 = VMK__TASK_DETAIL__INIT;
	Vmk__TaskDetail *dp[] = { &d1, &d2, &d3, &d4 };
	struct out_doc d = { 0 };

	(void)state;
	t.state = "running";
	assert_int_equal(vmkctl_task_exit(&t), -1);
	assert_int_equal(vmkctl_task_doc(&d, &t), 0);
	assert_int_equal(d.cells[10].type, OUT_NULL); /* exit_code: none while it runs */
	assert_string_equal(d.cols[10], "exit_code");
	out_free(&d);
	t.state = "queued";
	assert_int_equal(vmkctl_task_exit(&t), -1);
	t.state = "success";
	assert_int_equal(vmkctl_task_exit(&t), 0);
	t.state = "cancelled";
	t.status = VMK__STATUS__STATUS_CANCELLED;
	assert_int_equal(vmkctl_task_exit(&t), 7);
	t.state = "failed";
	t.status = VMK__STATUS__STATUS_NOT_FOUND;
	assert_int_equal(vmkctl_task_exit(&t), 4);
	t.status = VMK__STATUS__STATUS_OK; /* a failure without a status */
	assert_int_equal(vmkctl_task_exit(&t), 1);
	t.status = (Vmk__Status)42;
	assert_int_equal(vmkctl_task_exit(&t), 1);

	/* details: numbers as numbers, leading zeros and words as strings, a
	 * key that repeats a fixed column left out */
	d1.key = "transferred_bytes", d1.value = "123456789012";
	d2.key = "state", d2.value = "bogus";
	d3.key = "code", d3.value = "007";
	d4.key = "delta", d4.value = "-5";
	t.details = dp;
	t.n_details = 4;
	t.error = "it broke";
	t.status = VMK__STATUS__STATUS_FAILED;
	assert_int_equal(vmkctl_task_doc(&d, &t), 0);
	char *json = NULL;
	size_t jl = 0;
	FILE *jf = open_memstream(&json, &jl);
	assert_int_equal(out_render(jf, FMT_JSON, &d), 0);
	fclose(jf);
	assert_non_null(strstr(json, "\"transferred_bytes\":123456789012"));
	assert_non_null(strstr(json, "\"state\":\"failed\""));
	assert_null(strstr(json, "bogus"));
	assert_non_null(strstr(json, "\"code\":\"007\""));
	assert_non_null(strstr(json, "\"delta\":-5"));
	assert_non_null(strstr(json, "\"exit_code\":1"));
	assert_non_null(strstr(json, "\"error\":\"it broke\""));
	assert_non_null(strstr(json, "\"result\":null"));
	assert_non_null(strstr(json, "\"started\":null")); /* start_ms 0 */
	free(json);
	out_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wait_success),
		cmocka_unit_test(test_wait_failure),
		cmocka_unit_test(test_wait_ctrl_c_cancels),
		cmocka_unit_test(test_wait_second_ctrl_c_stops),
		cmocka_unit_test(test_wait_timeout_and_unknown),
		cmocka_unit_test(test_task_result),
		cmocka_unit_test(test_bar),
		cmocka_unit_test(test_exit_codes_and_doc),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
