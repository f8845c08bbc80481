/* hostd/dispatch.c: sessions and privileges in front of every operation,
 * login and logout, on a hand-built struct hostd (datastores in a temp dir). */
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "hostd/auth.h"
#include "hostd/datastore.h"
#include "hostd/dispatch.h"
#include "hostd/session.h"
#include "hostd/task.h"
#include "log.h"
#include "rpc.h"
#include "util.h"

#define TIMEOUT_S 600

static struct {
	struct hostd h;
	struct hostd_account acct[3];
	char dir[64];
	char dspath[128];
	struct arena a; /* responses of the current test */
} fx;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int setup(void **state)
{
	struct hostd_config *c = &fx.h.cfg;
	char err[512];

	(void)state;
	log_set_level(LOG_ERROR);
	snprintf(fx.dir, sizeof(fx.dir), "/tmp/vmk-test-dispatch.XXXXXX");
	if (!mkdtemp(fx.dir))
		return -1;
	snprintf(fx.dspath, sizeof(fx.dspath), "%s/ds1", fx.dir);
	if (mkdir(fx.dspath, 0755) < 0)
		return -1;
	fx.acct[0] = (struct hostd_account){ .id = "root", .role = ROLE_ADMIN };
	fx.acct[1] = (struct hostd_account){ .id = "viewer", .role = ROLE_READONLY };
	fx.acct[2] = (struct hostd_account){ .id = "nobody", .role = ROLE_NOACCESS };
	if (hostd_auth_hash("root-pw", &fx.acct[0].password_hash) < 0 ||
	    hostd_auth_hash("viewer-pw", &fx.acct[1].password_hash) < 0 ||
	    hostd_auth_hash("nobody-pw", &fx.acct[2].password_hash) < 0)
		return -1;
	c->path = "test.cfg";
	c->name = "esx-test";
	c->state_dir = fx.dir;
	c->session_timeout_s = TIMEOUT_S;
	c->accounts = fx.acct;
	c->naccounts = 3;
	if (hostd_auth_init(&fx.h.auth, c) < 0 ||
	    hostd_sessions_init(&fx.h.sessions, c->session_timeout_s) < 0 ||
	    hostd_datastores_init(&fx.h.datastores, c, err, sizeof(err)) < 0 ||
	    hostd_tasks_init(&fx.h.tasks, 0, 0) < 0)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	hostd_tasks_free(fx.h.tasks);
	hostd_datastores_free(fx.h.datastores);
	hostd_sessions_free(fx.h.sessions);
	hostd_auth_free(fx.h.auth);
	for (size_t i = 0; i < ARRAY_SIZE(fx.acct); i++)
		free(fx.acct[i].password_hash);
	if (fx.dir[0])
		nftw(fx.dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	return 0;
}

static int test_setup(void **state)
{
	(void)state;
	arena_init(&fx.a, 16u << 20);
	return 0;
}

static int test_teardown(void **state)
{
	(void)state;
	arena_free(&fx.a);
	return 0;
}

/* A request for op with session (NULL: none), its body initialised; the
 * body's strings are set by the caller through the returned request. */
static Vmk__Request *request(Vmk__Request__BodyCase op, const char *session)
{
	Vmk__Request *r = arena_alloc(&fx.a, sizeof(*r));
	Vmk__RequestHeader *h = arena_alloc(&fx.a, sizeof(*h));

	assert_non_null(r);
	assert_non_null(h);
	vmk__request__init(r);
	vmk__request_header__init(h);
	h->version = RPC_PROTOCOL_VERSION;
	h->request_id = 1;
	h->session = (char *)(session ? session : "");
	r->header = h;
	r->body_case = op;
	switch (op) {
	case VMK__REQUEST__BODY_LOGIN: {
		Vmk__LoginRequest *b = arena_alloc(&fx.a, sizeof(*b));
		vmk__login_request__init(b);
		r->login = b;
		break;
	}
	case VMK__REQUEST__BODY_LOGOUT: {
		Vmk__LogoutRequest *b = arena_alloc(&fx.a, sizeof(*b));
		vmk__logout_request__init(b);
		r->logout = b;
		break;
	}
	case VMK__REQUEST__BODY_VERSION_GET: {
		Vmk__VersionGetRequest *b = arena_alloc(&fx.a, sizeof(*b));
		vmk__version_get_request__init(b);
		r->version_get = b;
		break;
	}
	case VMK__REQUEST__BODY_CPU_GET: {
		Vmk__CpuGetRequest *b = arena_alloc(&fx.a, sizeof(*b));
		vmk__cpu_get_request__init(b);
		r->cpu_get = b;
		break;
	}
	case VMK__REQUEST__BODY_MEMORY_GET: {
		Vmk__MemoryGetRequest *b = arena_alloc(&fx.a, sizeof(*b));
		vmk__memory_get_request__init(b);
		r->memory_get = b;
		break;
	}
	case VMK__REQUEST__BODY_DATASTORE_LIST: {
		Vmk__DatastoreListRequest *b = arena_alloc(&fx.a, sizeof(*b));
		vmk__datastore_list_request__init(b);
		r->datastore_list = b;
		break;
	}
	case VMK__REQUEST__BODY_DATASTORE_ADD: {
		Vmk__DatastoreAddRequest *b = arena_alloc(&fx.a, sizeof(*b));
		vmk__datastore_add_request__init(b);
		r->datastore_add = b;
		break;
	}
	case VMK__REQUEST__BODY_DATASTORE_REMOVE: {
		Vmk__DatastoreRemoveRequest *b = arena_alloc(&fx.a, sizeof(*b));
		vmk__datastore_remove_request__init(b);
		r->datastore_remove = b;
		break;
	}
	case VMK__REQUEST__BODY_TASK_LIST: {
		Vmk__TaskListRequest *b = arena_alloc(&fx.a, sizeof(*b));
		vmk__task_list_request__init(b);
		r->task_list = b;
		break;
	}
	case VMK__REQUEST__BODY_TASK_GET:
	case VMK__REQUEST__BODY_TASK_CANCEL: {
		Vmk__TaskIdRequest *b = arena_alloc(&fx.a, sizeof(*b));
		vmk__task_id_request__init(b);
		b->id = "task-00000000-1";
		if (op == VMK__REQUEST__BODY_TASK_GET)
			r->task_get = b;
		else
			r->task_cancel = b;
		break;
	}
	default:
		break;
	}
	return r;
}

/* Dispatches as rpc_handle_message would: status OK, request id echoed. */
static Vmk__Response *dispatch(const Vmk__Request *req)
{
	Vmk__Response *resp = arena_alloc(&fx.a, sizeof(*resp));

	assert_non_null(resp);
	vmk__response__init(resp);
	resp->request_id = req->header->request_id;
	resp->status = VMK__STATUS__STATUS_OK;
	resp->error = "";
	hostd_dispatch(&fx.h, req, resp, &fx.a);
	assert_non_null(resp->error);
	if (resp->status != VMK__STATUS__STATUS_OK)
		assert_true(strlen(resp->error) > 0);
	/* every response can be sent */
	size_t n = vmk__response__get_packed_size(resp);
	uint8_t *buf = arena_alloc(&fx.a, n + 1);
	assert_non_null(buf);
	assert_int_equal(vmk__response__pack(resp, buf), n);
	return resp;
}

static Vmk__Response *login(const char *user, const char *password)
{
	Vmk__Request *r = request(VMK__REQUEST__BODY_LOGIN, NULL);

	r->login->username = (char *)user;
	r->login->password = (char *)password;
	return dispatch(r);
}

/* A session token for user, or fails the test. */
static const char *session(const char *user, const char *password)
{
	Vmk__Response *resp = login(user, password);

	if (resp->status != VMK__STATUS__STATUS_OK)
		fail_msg("login %s: %s", user, resp->error);
	return resp->login->session;
}

static int status_of(Vmk__Request__BodyCase op, const char *sess)
{
	return (int)dispatch(request(op, sess))->status;
}

/* Without a (valid) session every operation but login is denied. */
static void test_session_required(void **state)
{
	size_t n;
	const struct hostd_op *ops = hostd_ops(&n);
	const char *bogus = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	int checked = 0;

	(void)state;
	for (size_t i = 0; i < n; i++) {
		const char *tokens[] = { NULL, "", bogus, "short", "root" };
		if (ops[i].op == VMK__REQUEST__BODY_LOGIN) {
			assert_int_equal(ops[i].priv, PRIV_NONE);
			continue;
		}
		assert_int_not_equal(ops[i].priv, PRIV_NONE);
		for (size_t t = 0; t < ARRAY_SIZE(tokens); t++) {
			Vmk__Response *resp = dispatch(request(ops[i].op, tokens[t]));
			if (resp->status != VMK__STATUS__STATUS_DENIED)
				fail_msg("%s without a session: status %d", ops[i].name,
				         resp->status);
			assert_non_null(strstr(resp->error, "not logged in"));
			assert_int_equal(resp->body_case, VMK__RESPONSE__BODY__NOT_SET);
			checked++;
		}
	}
	assert_true(checked >= 7 * 5);
}

/* Every arm of the Request oneof has exactly one entry in the table. */
static void test_ops_table_complete(void **state)
{
	const ProtobufCMessageDescriptor *d = &vmk__request__descriptor;
	size_t n;
	const struct hostd_op *ops = hostd_ops(&n);

	(void)state;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		int found = 0;
		if (!(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
			continue;
		for (size_t j = 0; j < n; j++)
			found += ops[j].op == (Vmk__Request__BodyCase)f->id;
		if (found != 1)
			fail_msg("Request.%s is in the op table %d times", f->name, found);
	}
	for (size_t j = 0; j < n; j++)
		assert_non_null(protobuf_c_message_descriptor_get_field(d, (unsigned)ops[j].op));
}

static void test_login(void **state)
{
	Vmk__Response *resp;

	(void)state;
	resp = login("root", "root-pw");
	assert_int_equal(resp->status, VMK__STATUS__STATUS_OK);
	assert_int_equal(resp->body_case, VMK__RESPONSE__BODY_LOGIN);
	assert_int_equal(strlen(resp->login->session), 64);
	for (const char *p = resp->login->session; *p; p++) {
		if (!strchr("0123456789abcdef", *p))
			fail_msg("token %s is not hex", resp->login->session);
	}
	assert_string_equal(resp->login->role, "Admin");
	assert_int_equal(resp->login->expires_in_s, TIMEOUT_S);

	resp = login("viewer", "viewer-pw");
	assert_int_equal(resp->status, VMK__STATUS__STATUS_OK);
	assert_string_equal(resp->login->role, "ReadOnly");

	/* two logins, two sessions */
	assert_string_not_equal(session("root", "root-pw"), session("root", "root-pw"));

	static const char *const bad[][2] = {
		{ "root", "wrong" }, { "root", "" },        { "ghost", "root-pw" },
		{ "", "" },          { "Root", "root-pw" }, { "nobody", "nobody-pw" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		resp = login(bad[i][0], bad[i][1]);
		if (resp->status != VMK__STATUS__STATUS_DENIED)
			fail_msg("login %s/%s: status %d", bad[i][0], bad[i][1], resp->status);
		/* the same message whatever was wrong */
		assert_string_equal(resp->error, "login failed: wrong username or password");
		assert_int_equal(resp->body_case, VMK__RESPONSE__BODY__NOT_SET);
	}

	/* overlong names are a usage error, not a lookup */
	char longname[80];
	memset(longname, 'u', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	resp = login(longname, "x");
	assert_int_equal(resp->status, VMK__STATUS__STATUS_USAGE);
}

static void test_readonly(void **state)
{
	const char *s;
	Vmk__Response *resp;

	(void)state;
	s = session("viewer", "viewer-pw");
	resp = dispatch(request(VMK__REQUEST__BODY_VERSION_GET, s));
	assert_int_equal(resp->status, VMK__STATUS__STATUS_OK);
	assert_int_equal(resp->body_case, VMK__RESPONSE__BODY_VERSION_GET);
	assert_string_equal(resp->version_get->product, HOSTD_PRODUCT);
	assert_string_equal(resp->version_get->version, HOSTD_VERSION);
	assert_string_equal(resp->version_get->hostname, "esx-test");
	assert_int_equal(resp->version_get->protocol, RPC_PROTOCOL_VERSION);
	assert_int_equal(status_of(VMK__REQUEST__BODY_MEMORY_GET, s), VMK__STATUS__STATUS_OK);
	assert_int_equal(status_of(VMK__REQUEST__BODY_DATASTORE_LIST, s), VMK__STATUS__STATUS_OK);

	Vmk__Request *r = request(VMK__REQUEST__BODY_DATASTORE_ADD, s);
	r->datastore_add->name = "ds1";
	r->datastore_add->path = fx.dspath;
	resp = dispatch(r);
	assert_int_equal(resp->status, VMK__STATUS__STATUS_DENIED);
	assert_non_null(strstr(resp->error, "System.Modify"));
	assert_non_null(strstr(resp->error, "viewer"));
	assert_non_null(strstr(resp->error, "storage.datastore.add"));

	r = request(VMK__REQUEST__BODY_DATASTORE_REMOVE, s);
	r->datastore_remove->name = "ds1";
	resp = dispatch(r);
	assert_int_equal(resp->status, VMK__STATUS__STATUS_DENIED);
	assert_non_null(strstr(resp->error, "System.Modify"));

	/* nothing was added */
	resp = dispatch(request(VMK__REQUEST__BODY_DATASTORE_LIST, s));
	assert_int_equal(resp->datastore_list->n_datastores, 0);
	/* the session still works after a denial */
	assert_int_equal(status_of(VMK__REQUEST__BODY_VERSION_GET, s), VMK__STATUS__STATUS_OK);
}

static void test_admin_datastores(void **state)
{
	const char *s;
	Vmk__Response *resp;
	Vmk__Request *r;

	(void)state;
	s = session("root", "root-pw");
	r = request(VMK__REQUEST__BODY_DATASTORE_ADD, s);
	r->datastore_add->name = "ds1";
	r->datastore_add->path = fx.dspath;
	r->datastore_add->shared = true;
	resp = dispatch(r);
	if (resp->status != VMK__STATUS__STATUS_OK)
		fail_msg("datastore add: %s", resp->error);
	assert_int_equal(resp->body_case, VMK__RESPONSE__BODY_DATASTORE);
	assert_string_equal(resp->datastore->name, "ds1");
	assert_true(resp->datastore->shared);

	/* again: a conflict */
	resp = dispatch(r);
	assert_int_equal(resp->status, VMK__STATUS__STATUS_CONFLICT);

	resp = dispatch(request(VMK__REQUEST__BODY_DATASTORE_LIST, s));
	assert_int_equal(resp->status, VMK__STATUS__STATUS_OK);
	assert_int_equal(resp->datastore_list->n_datastores, 1);
	assert_string_equal(resp->datastore_list->datastores[0]->source, "runtime");

	r = request(VMK__REQUEST__BODY_DATASTORE_REMOVE, s);
	r->datastore_remove->name = "ds1";
	assert_int_equal(dispatch(r)->status, VMK__STATUS__STATUS_OK);
	assert_int_equal(dispatch(r)->status, VMK__STATUS__STATUS_NOT_FOUND);
}

static void test_logout(void **state)
{
	const char *s, *other;

	(void)state;
	s = session("root", "root-pw");
	other = session("root", "root-pw");
	assert_int_equal(status_of(VMK__REQUEST__BODY_VERSION_GET, s), VMK__STATUS__STATUS_OK);
	assert_int_equal(status_of(VMK__REQUEST__BODY_LOGOUT, s), VMK__STATUS__STATUS_OK);
	assert_int_equal(status_of(VMK__REQUEST__BODY_VERSION_GET, s), VMK__STATUS__STATUS_DENIED);
	assert_int_equal(status_of(VMK__REQUEST__BODY_LOGOUT, s), VMK__STATUS__STATUS_DENIED);
	/* only that session ended */
	assert_int_equal(status_of(VMK__REQUEST__BODY_VERSION_GET, other), VMK__STATUS__STATUS_OK);
}

static void test_session_expiry(void **state)
{
	const char *s;
	Vmk__Response *resp;

	(void)state;
	s = session("viewer", "viewer-pw");
	hostd_sessions_advance(fx.h.sessions, (TIMEOUT_S - 100) * 1000ull);
	assert_int_equal(status_of(VMK__REQUEST__BODY_VERSION_GET, s), VMK__STATUS__STATUS_OK);
	hostd_sessions_advance(fx.h.sessions, (TIMEOUT_S - 100) * 1000ull);
	assert_int_equal(status_of(VMK__REQUEST__BODY_VERSION_GET, s), VMK__STATUS__STATUS_OK);
	hostd_sessions_advance(fx.h.sessions, (TIMEOUT_S + 1) * 1000ull);
	resp = dispatch(request(VMK__REQUEST__BODY_VERSION_GET, s));
	assert_int_equal(resp->status, VMK__STATUS__STATUS_DENIED);
	assert_non_null(strstr(resp->error, "expired"));
	resp = dispatch(request(VMK__REQUEST__BODY_VERSION_GET, s));
	assert_int_equal(resp->status, VMK__STATUS__STATUS_DENIED);
	assert_non_null(strstr(resp->error, "not logged in"));
}

/* Tasks: ReadOnly may list and get, only Admin may cancel. */
static void test_task_privileges(void **state)
{
	const char *viewer, *root;
	Vmk__Response *resp;

	(void)state;
	viewer = session("viewer", "viewer-pw");
	root = session("root", "root-pw");
	resp = dispatch(request(VMK__REQUEST__BODY_TASK_LIST, viewer));
	assert_int_equal(resp->status, VMK__STATUS__STATUS_OK);
	assert_int_equal(resp->body_case, VMK__RESPONSE__BODY_TASK_LIST);
	assert_int_equal(resp->task_list->n_tasks, 0);
	resp = dispatch(request(VMK__REQUEST__BODY_TASK_GET, viewer));
	assert_int_equal(resp->status, VMK__STATUS__STATUS_NOT_FOUND);
	assert_non_null(strstr(resp->error, "task-00000000-1"));
	resp = dispatch(request(VMK__REQUEST__BODY_TASK_CANCEL, viewer));
	assert_int_equal(resp->status, VMK__STATUS__STATUS_DENIED);
	assert_non_null(strstr(resp->error, "task.cancel"));
	assert_non_null(strstr(resp->error, "System.Modify"));
	resp = dispatch(request(VMK__REQUEST__BODY_TASK_CANCEL, root));
	assert_int_equal(resp->status, VMK__STATUS__STATUS_NOT_FOUND);
}

static void test_unknown_op(void **state)
{
	Vmk__Response *resp;

	(void)state;
	resp = dispatch(request((Vmk__Request__BodyCase)99, NULL));
	assert_int_equal(resp->status, VMK__STATUS__STATUS_USAGE);
	assert_non_null(strstr(resp->error, "99"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_session_required, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_ops_table_complete, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_login, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_readonly, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_admin_datastores, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_logout, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_session_expiry, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_task_privileges, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_unknown_op, test_setup, test_teardown),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
