/* lib/rpc.c: wire encoding, request validation (rpc_handle_message against
 * the malformed-message corpus in $VMK_SRCDIR/tests/corpus/fuzz_request/),
 * URL parsing, and a real server and clients over loopback TLS and TCP.
 * VMK_SRCDIR defaults to ".". */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "cert.h"
#include "log.h"
#include "rpc.h"
#include "util.h"

#define TOKEN "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* ------------------------------------------------------------- helpers */

static uint8_t *pack_request(const Vmk__Request *r, size_t *len)
{
	*len = vmk__request__get_packed_size(r);
	uint8_t *buf = malloc(*len ? *len : 1);

	assert_non_null(buf);
	assert_int_equal(vmk__request__pack(r, buf), *len);
	return buf;
}

/* A request with a version-1 header. */
static void request_init(Vmk__Request *r, Vmk__RequestHeader *h, uint64_t id, const char *session)
{
	vmk__request__init(r);
	vmk__request_header__init(h);
	h->version = RPC_PROTOCOL_VERSION;
	h->request_id = id;
	h->session = (char *)session;
	r->header = h;
}

static const char *srcdir(void)
{
	const char *s = getenv("VMK_SRCDIR");

	return s && *s ? s : ".";
}

/* The fake dispatch: counts calls, answers version_get with a product that
 * names the request id, login with "username/password" as session,
 * datastore_add with Empty (after the gate of test_concurrent_calls, when
 * set) and anything else with STATUS_NOT_FOUND. */
struct fake {
	atomic_int calls;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool gate; /* hold datastore_add (test_concurrent_calls only) */
	bool slow_started, slow_release, slow_done;
};

static struct fake fake = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static void fake_reset(void)
{
	atomic_store(&fake.calls, 0);
	pthread_mutex_lock(&fake.lock);
	fake.gate = fake.slow_started = fake.slow_release = fake.slow_done = false;
	pthread_mutex_unlock(&fake.lock);
}

static void timespec_in(struct timespec *ts, int seconds)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += seconds;
}

/* The slow operation holds its worker until the test releases it (at most
 * 10 s, so a broken server cannot hang the test: it then fails by order). */
static void fake_slow(void)
{
	struct timespec dl;

	timespec_in(&dl, 10);
	pthread_mutex_lock(&fake.lock);
	if (!fake.gate) {
		pthread_mutex_unlock(&fake.lock);
		return;
	}
	fake.slow_started = true;
	pthread_cond_broadcast(&fake.cond);
	while (!fake.slow_release) {
		if (pthread_cond_timedwait(&fake.cond, &fake.lock, &dl) == ETIMEDOUT)
			break;
	}
	fake.slow_done = true;
	pthread_cond_broadcast(&fake.cond);
	pthread_mutex_unlock(&fake.lock);
}

static void fake_dispatch(void *arg, const Vmk__Request *req, Vmk__Response *resp, struct arena *a)
{
	(void)arg;
	atomic_fetch_add(&fake.calls, 1);
	switch (req->body_case) {
	case VMK__REQUEST__BODY_VERSION_GET: {
		Vmk__VersionGetResponse *v = arena_alloc(a, sizeof(*v));
		if (!v)
			break;
		vmk__version_get_response__init(v);
		v->product = "fake";
		v->version = arena_printf(a, "%llu", (unsigned long long)req->header->request_id);
		v->protocol = RPC_PROTOCOL_VERSION;
		resp->body_case = VMK__RESPONSE__BODY_VERSION_GET;
		resp->version_get = v;
		break;
	}
	case VMK__REQUEST__BODY_LOGIN: {
		Vmk__LoginResponse *l = arena_alloc(a, sizeof(*l));
		if (!l)
			break;
		vmk__login_response__init(l);
		l->session = arena_printf(a, "%s/%s", req->login->username, req->login->password);
		l->role = "Admin";
		resp->body_case = VMK__RESPONSE__BODY_LOGIN;
		resp->login = l;
		break;
	}
	case VMK__REQUEST__BODY_DATASTORE_ADD:
		fake_slow();
		resp->body_case = VMK__RESPONSE__BODY_EMPTY;
		break;
	default:
		resp->status = VMK__STATUS__STATUS_NOT_FOUND;
		resp->error = "fake: not served";
		break;
	}
}

/* ------------------------------------------------------------- encoding */

static void test_status_names(void **state)
{
	(void)state;
	assert_string_equal(rpc_status_name(VMK__STATUS__STATUS_OK), "ok");
	assert_string_equal(rpc_status_name(VMK__STATUS__STATUS_USAGE), "usage");
	assert_string_equal(rpc_status_name(VMK__STATUS__STATUS_DENIED), "denied");
	assert_string_equal(rpc_status_name(VMK__STATUS__STATUS_CANCELLED), "cancelled");
	assert_string_equal(rpc_status_name(-1), "failed");
	assert_string_equal(rpc_status_name(99), "failed");
	assert_int_equal(rpc_nng_errno(0), 0);
	assert_int_equal(rpc_nng_errno(NNG_ECONNREFUSED), -ECONNREFUSED);
	assert_int_equal(rpc_nng_errno(NNG_ETIMEDOUT), -ETIMEDOUT);
	assert_int_equal(rpc_nng_errno(NNG_EPEERAUTH), -EACCES);
	assert_int_equal(rpc_nng_errno(NNG_ECLOSED), -ECONNRESET);
}

static void test_request_roundtrip_login(void **state)
{
	Vmk__Request r, *out = NULL;
	Vmk__RequestHeader h;
	Vmk__LoginRequest l = VMK__LOGIN_REQUEST__INIT;
	struct arena a;
	char why[512] = "";
	size_t len;

	(void)state;
	request_init(&r, &h, 0x1122334455667788ull, "");
	l.username = "root";
	l.password = "p\xc3\xa4ssw\xc3\xb6rd"; /* UTF-8 is fine */
	r.body_case = VMK__REQUEST__BODY_LOGIN;
	r.login = &l;
	uint8_t *buf = pack_request(&r, &len);

	arena_init(&a, 1u << 20);
	assert_int_equal(rpc_decode_request(buf, len, 0, &a, &out, why, sizeof(why)), 0);
	assert_non_null(out);
	assert_int_equal(out->header->version, RPC_PROTOCOL_VERSION);
	assert_int_equal(out->header->request_id, 0x1122334455667788ull);
	assert_string_equal(out->header->session, "");
	assert_int_equal(out->body_case, VMK__REQUEST__BODY_LOGIN);
	assert_string_equal(out->login->username, "root");
	assert_string_equal(out->login->password, l.password);
	arena_free(&a);
	free(buf);
}

static void test_request_roundtrip_datastore_add(void **state)
{
	Vmk__Request r, *out = NULL;
	Vmk__RequestHeader h;
	Vmk__DatastoreAddRequest d = VMK__DATASTORE_ADD_REQUEST__INIT;
	struct arena a;
	char why[512] = "";
	size_t len;

	(void)state;
	request_init(&r, &h, 7, TOKEN);
	d.name = "ds-01";
	d.path = "/srv/vmk/ds-01";
	d.shared = true;
	r.body_case = VMK__REQUEST__BODY_DATASTORE_ADD;
	r.datastore_add = &d;
	uint8_t *buf = pack_request(&r, &len);

	arena_init(&a, 1u << 20);
	assert_int_equal(rpc_decode_request(buf, len, 4096, &a, &out, why, sizeof(why)), 0);
	assert_int_equal(out->header->request_id, 7);
	assert_string_equal(out->header->session, TOKEN);
	assert_int_equal(out->body_case, VMK__REQUEST__BODY_DATASTORE_ADD);
	assert_string_equal(out->datastore_add->name, "ds-01");
	assert_string_equal(out->datastore_add->path, "/srv/vmk/ds-01");
	assert_true(out->datastore_add->shared);
	arena_free(&a);

	/* exactly max_msg bytes is accepted, one more is not */
	arena_init(&a, 1u << 20);
	assert_int_equal(rpc_decode_request(buf, len, len, &a, &out, why, sizeof(why)), 0);
	arena_free(&a);
	arena_init(&a, 1u << 20);
	assert_int_equal(rpc_decode_request(buf, len, len - 1, &a, &out, why, sizeof(why)),
	                 -EMSGSIZE);
	assert_non_null(strstr(why, "limit"));
	arena_free(&a);
	free(buf);
}

static void test_response_roundtrip(void **state)
{
	Vmk__Response r = VMK__RESPONSE__INIT, *out;
	Vmk__DatastoreListResponse l = VMK__DATASTORE_LIST_RESPONSE__INIT;
	Vmk__Datastore d1 = VMK__DATASTORE__INIT, d2 = VMK__DATASTORE__INIT;
	Vmk__Datastore *ds[] = { &d1, &d2 };

	(void)state;
	r.request_id = 99;
	r.status = VMK__STATUS__STATUS_CONFLICT;
	r.error = "datastore ds1 already exists";
	d1.name = "ds1";
	d1.path = "/srv/ds1";
	d1.capacity_bytes = 1ull << 40;
	d1.accessible = true;
	d1.source = "config";
	d2.name = "ds2";
	d2.path = "/srv/ds2";
	d2.shared = true;
	d2.source = "runtime";
	l.n_datastores = 2;
	l.datastores = ds;
	r.body_case = VMK__RESPONSE__BODY_DATASTORE_LIST;
	r.datastore_list = &l;

	size_t len = vmk__response__get_packed_size(&r);
	uint8_t *buf = malloc(len);
	assert_non_null(buf);
	vmk__response__pack(&r, buf);
	out = vmk__response__unpack(NULL, len, buf);
	assert_non_null(out);
	assert_int_equal(out->request_id, 99);
	assert_int_equal(out->status, VMK__STATUS__STATUS_CONFLICT);
	assert_string_equal(out->error, r.error);
	assert_int_equal(out->body_case, VMK__RESPONSE__BODY_DATASTORE_LIST);
	assert_int_equal(out->datastore_list->n_datastores, 2);
	assert_string_equal(out->datastore_list->datastores[0]->name, "ds1");
	assert_int_equal(out->datastore_list->datastores[0]->capacity_bytes, 1ull << 40);
	assert_true(out->datastore_list->datastores[0]->accessible);
	assert_false(out->datastore_list->datastores[0]->shared);
	assert_string_equal(out->datastore_list->datastores[1]->path, "/srv/ds2");
	assert_true(out->datastore_list->datastores[1]->shared);
	assert_string_equal(out->datastore_list->datastores[1]->source, "runtime");
	vmk__response__free_unpacked(out, NULL);
	free(buf);
}

/* ------------------------------------------------------ rpc_handle_message */

/* Runs one message through rpc_handle_message and decodes the reply. */
static Vmk__Response *handle(const struct rpc_server_opts *o, const uint8_t *in, size_t len)
{
	uint8_t *out = NULL;
	size_t outlen = 0;

	assert_int_equal(rpc_handle_message(o, in, len, &out, &outlen), 0);
	assert_non_null(out);
	Vmk__Response *r = vmk__response__unpack(NULL, outlen, out);
	free(out);
	assert_non_null(r);
	return r;
}

static void test_handle_valid(void **state)
{
	struct rpc_server_opts o = { .max_msg = 4096, .dispatch = fake_dispatch };
	Vmk__Request r;
	Vmk__RequestHeader h;
	Vmk__VersionGetRequest v = VMK__VERSION_GET_REQUEST__INIT;
	size_t len;

	(void)state;
	fake_reset();
	request_init(&r, &h, 0xdeadbeefcafeull, TOKEN);
	r.body_case = VMK__REQUEST__BODY_VERSION_GET;
	r.version_get = &v;
	uint8_t *buf = pack_request(&r, &len);
	Vmk__Response *resp = handle(&o, buf, len);

	assert_int_equal(atomic_load(&fake.calls), 1);
	assert_int_equal(resp->status, VMK__STATUS__STATUS_OK);
	assert_int_equal(resp->request_id, 0xdeadbeefcafeull);
	assert_int_equal(resp->body_case, VMK__RESPONSE__BODY_VERSION_GET);
	assert_string_equal(resp->version_get->product, "fake");
	assert_string_equal(resp->version_get->version, "244837814094590");
	vmk__response__free_unpacked(resp, NULL);
	free(buf);

	/* the dispatch's own error status and message are passed on */
	Vmk__CpuGetRequest c = VMK__CPU_GET_REQUEST__INIT;
	r.body_case = VMK__REQUEST__BODY_CPU_GET;
	r.cpu_get = &c;
	h.request_id = 5;
	buf = pack_request(&r, &len);
	resp = handle(&o, buf, len);
	assert_int_equal(atomic_load(&fake.calls), 2);
	assert_int_equal(resp->status, VMK__STATUS__STATUS_NOT_FOUND);
	assert_int_equal(resp->request_id, 5);
	assert_string_equal(resp->error, "fake: not served");
	vmk__response__free_unpacked(resp, NULL);
	free(buf);
}

/* Every corpus file, with a part of the reason the reply must give. Files
 * not listed here (e.g. crash reproducers added later) are only checked for
 * STATUS_USAGE. */
static const struct {
	const char *file;
	const char *why;
} corpus_expect[] = {
	{ "empty.bin", "no header" },
	{ "body-without-header.bin", "no header" },
	{ "login-without-header.bin", "no header" },
	{ "unknown-oneof-field-only.bin", "no header" },
	{ "unknown-oneof-field-with-header.bin", "no operation" },
	{ "header-without-body.bin", "no operation" },
	{ "header-version-0.bin", "version 0" },
	{ "header-version-missing.bin", "version 0" },
	{ "header-version-99.bin", "version 99" },
	{ "header-merged-version-99.bin", "version 99" },
	{ "session-token-200-bytes.bin", "session token" },
	{ "session-token-129-bytes.bin", "session token" },
	{ "oversized-5000-bytes.bin", "limit of 4096 bytes" },
	{ "invalid-utf8-username.bin", "UTF-8" },
	{ "invalid-utf8-session.bin", "UTF-8" },
	{ "invalid-utf8-overlong-slash.bin", "UTF-8" },
	{ "invalid-utf8-surrogate.bin", "UTF-8" },
	{ "invalid-utf8-truncated-sequence.bin", "UTF-8" },
	{ "truncated-tag-varint.bin", "not a vmk.Request" },
	{ "truncated-length-varint.bin", "not a vmk.Request" },
	{ "truncated-varint-in-header.bin", "not a vmk.Request" },
	{ "truncated-varint-at-end.bin", "not a vmk.Request" },
	{ "length-past-end.bin", "not a vmk.Request" },
	{ "length-past-end-body.bin", "not a vmk.Request" },
	{ "wrong-wiretype-header-varint.bin", "not a vmk.Request" },
	{ "wrong-wiretype-version-len.bin", "not a vmk.Request" },
	{ "wrong-wiretype-session-varint.bin", "not a vmk.Request" },
	{ "wrong-wiretype-request-id-fixed32.bin", "not a vmk.Request" },
	{ "wrong-wiretype-login-fixed64.bin", "not a vmk.Request" },
	{ "wrong-wiretype-username-varint.bin", "not a vmk.Request" },
	{ "nested-truncated-login.bin", "not a vmk.Request" },
	{ "nested-truncated-session.bin", "not a vmk.Request" },
	{ "nested-truncated-datastore-add.bin", "not a vmk.Request" },
	{ "varint-overflow-11-bytes.bin", "not a vmk.Request" },
	{ "varint-overflow-tag-11-bytes.bin", "not a vmk.Request" },
	{ "group-start-known-field.bin", "not a vmk.Request" },
	{ "group-start-unknown-field.bin", "not a vmk.Request" },
	{ "group-end-without-start.bin", "not a vmk.Request" },
	{ "group-in-header.bin", "not a vmk.Request" },
	{ "wiretype-6.bin", "not a vmk.Request" },
	{ "wiretype-7.bin", "not a vmk.Request" },
	{ "deeply-nested-garbage.bin", "not a vmk.Request" },
	{ "random-bytes.bin", "not a vmk.Request" },
	{ "valid-then-garbage.bin", "not a vmk.Request" },
	{ "valid-then-truncated-field.bin", "not a vmk.Request" },
	{ "negative-length-int32.bin", "not a vmk.Request" },
	{ "negative-length-int64.bin", "not a vmk.Request" },
	{ "negative-length-in-login.bin", "not a vmk.Request" },
	{ "field-zero-varint.bin", "not a vmk.Request" },
	{ "field-zero-len.bin", "not a vmk.Request" },
	{ "field-zero-in-header.bin", "not a vmk.Request" },
	{ "fixed64-truncated.bin", "not a vmk.Request" },
	{ "fixed32-truncated.bin", "not a vmk.Request" },
};

/* Regular files of dir, sorted; *n set. Caller frees each and the array. */
static char **list_files(const char *dir, int *n)
{
	struct dirent **ents;
	int k = 0, m = scandir(dir, &ents, NULL, alphasort);
	char **names;

	assert_true(m >= 0);
	names = calloc((size_t)m + 1, sizeof(*names));
	assert_non_null(names);
	for (int i = 0; i < m; i++) {
		char path[4096];
		struct stat st;
		snprintf(path, sizeof(path), "%s/%s", dir, ents[i]->d_name);
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
			names[k++] = strdup(ents[i]->d_name);
		free(ents[i]);
	}
	free(ents);
	*n = k;
	return names;
}

static void test_handle_malformed_corpus(void **state)
{
	/* a small limit, so that oversized-5000-bytes.bin is over it */
	struct rpc_server_opts o = { .max_msg = 4096, .dispatch = fake_dispatch };
	bool seen[ARRAY_SIZE(corpus_expect)] = { false };
	char dir[4096];
	int n;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/tests/corpus/fuzz_request", srcdir());
	char **files = list_files(dir, &n);
	assert_true(n >= 25);
	for (int i = 0; i < n; i++) {
		char path[4200], *buf = NULL;
		size_t len = 0;

		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		assert_int_equal(util_read_file(path, 1u << 20, &buf, &len), 0);
		fake_reset();
		Vmk__Response *r = handle(&o, (const uint8_t *)buf, len);
		if (r->status != VMK__STATUS__STATUS_USAGE || atomic_load(&fake.calls) != 0)
			fail_msg("%s: accepted (status %d, dispatch called %d times)", files[i],
			         r->status, atomic_load(&fake.calls));
		assert_non_null(r->error);
		assert_true(strlen(r->error) > 0);
		assert_int_equal(r->body_case, VMK__RESPONSE__BODY__NOT_SET);
		for (size_t j = 0; j < ARRAY_SIZE(corpus_expect); j++) {
			if (strcmp(corpus_expect[j].file, files[i]) != 0)
				continue;
			seen[j] = true;
			if (!strstr(r->error, corpus_expect[j].why))
				fail_msg("%s: reply \"%s\" does not say \"%s\"", files[i], r->error,
				         corpus_expect[j].why);
		}
		vmk__response__free_unpacked(r, NULL);
		free(buf);
		free(files[i]);
	}
	free(files);
	for (size_t j = 0; j < ARRAY_SIZE(corpus_expect); j++) {
		if (!seen[j])
			fail_msg("corpus file %s/%s is missing", dir, corpus_expect[j].file);
	}
}

/* The corpus's valid/ subdirectory holds well-formed seeds for the fuzzer:
 * each must reach the dispatch function. */
static void test_handle_valid_corpus(void **state)
{
	struct rpc_server_opts o = { .max_msg = 4096, .dispatch = fake_dispatch };
	char dir[4096];
	int n;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/tests/corpus/fuzz_request/valid", srcdir());
	char **files = list_files(dir, &n);
	assert_true(n >= 5);
	for (int i = 0; i < n; i++) {
		char path[4200], *buf = NULL;
		size_t len = 0;

		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		assert_int_equal(util_read_file(path, 1u << 20, &buf, &len), 0);
		fake_reset();
		Vmk__Response *r = handle(&o, (const uint8_t *)buf, len);
		if (atomic_load(&fake.calls) != 1 || r->status == VMK__STATUS__STATUS_USAGE)
			fail_msg("%s: rejected: %s", files[i], r->error);
		assert_int_equal(r->request_id, 42);
		vmk__response__free_unpacked(r, NULL);
		free(buf);
		free(files[i]);
	}
	free(files);
}

/* Strings that are not UTF-8 are refused wherever they are (header, oneof
 * arm); valid multi-byte UTF-8 is not. */
static void test_handle_utf8(void **state)
{
	struct rpc_server_opts o = { .max_msg = 4096, .dispatch = fake_dispatch };
	static const struct {
		const char *s;
		bool ok;
	} cases[] = {
		{ "plain", true },
		{ "", true },
		{ "gr\xc3\xbc\xc3\x9f", true }, /* 2-byte */
		{ "\xe2\x82\xac", true },       /* U+20AC, 3-byte */
		{ "\xf0\x9f\x98\x80", true },   /* U+1F600, 4-byte */
		{ "\xf4\x8f\xbf\xbf", true },   /* U+10FFFF */
		{ "\xef\xbb\xbf", true },       /* BOM is a character */
		{ "\x80", false },              /* continuation first */
		{ "\xc3", false },              /* truncated */
		{ "\xc3(", false },             /* bad continuation */
		{ "\xc0\xaf", false },          /* overlong '/' */
		{ "\xc1\xbf", false },          /* overlong */
		{ "\xe0\x80\xaf", false },      /* overlong 3-byte */
		{ "\xf0\x80\x80\xaf", false },  /* overlong 4-byte */
		{ "\xed\xa0\x80", false },      /* surrogate U+D800 */
		{ "\xed\xbf\xbf", false },      /* surrogate U+DFFF */
		{ "\xf4\x90\x80\x80", false },  /* U+110000 */
		{ "\xf5\x80\x80\x80", false },  /* beyond */
		{ "\xff", false },              /* never valid */
		{ "ok\xe2\x82", false },        /* truncated at the end */
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		for (int where = 0; where < 3; where++) {
			Vmk__Request r;
			Vmk__RequestHeader h;
			Vmk__LoginRequest l = VMK__LOGIN_REQUEST__INIT;
			Vmk__DatastoreRemoveRequest d = VMK__DATASTORE_REMOVE_REQUEST__INIT;
			size_t len;

			request_init(&r, &h, 1, where == 0 ? cases[i].s : "");
			if (where == 2) {
				d.name = (char *)cases[i].s;
				r.body_case = VMK__REQUEST__BODY_DATASTORE_REMOVE;
				r.datastore_remove = &d;
			} else {
				l.username = "u";
				l.password = (char *)(where == 1 ? cases[i].s : "p");
				r.body_case = VMK__REQUEST__BODY_LOGIN;
				r.login = &l;
			}
			uint8_t *buf = pack_request(&r, &len);
			fake_reset();
			Vmk__Response *resp = handle(&o, buf, len);
			if (cases[i].ok != (atomic_load(&fake.calls) == 1))
				fail_msg("case %zu in place %d: %s", i, where,
				         cases[i].ok ? "rejected" : "accepted");
			if (!cases[i].ok) {
				assert_int_equal(resp->status, VMK__STATUS__STATUS_USAGE);
				assert_non_null(strstr(resp->error, "UTF-8"));
			}
			vmk__response__free_unpacked(resp, NULL);
			free(buf);
		}
	}
}

/* ----------------------------------------------------------- rpc_parse_url */

static void test_parse_url_good(void **state)
{
	static const struct {
		const char *url, *host, *port;
		bool tls;
	} good[] = {
		{ "tls+tcp://1.2.3.4:4443", "1.2.3.4", "4443", true },
		{ "tcp://[::1]:9", "::1", "9", false },
		{ "tls+tcp://[fe80::1%eth0]:4443", "fe80::1%eth0", "4443", true },
		{ "tcp://localhost:65535", "localhost", "65535", false },
		{ "tls+tcp://esx1.lab.example:1", "esx1.lab.example", "1", true },
		{ "tcp://0.0.0.0:4443", "0.0.0.0", "4443", false },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		char host[256] = "", port[16] = "", why[512] = "";
		bool tls = !good[i].tls;
		int ret = rpc_parse_url(good[i].url, &tls, host, sizeof(host), port, sizeof(port),
		                        why, sizeof(why));
		if (ret != 0)
			fail_msg("%s: %d %s", good[i].url, ret, why);
		assert_int_equal(tls, good[i].tls);
		assert_string_equal(host, good[i].host);
		assert_string_equal(port, good[i].port);
	}
}

static void test_parse_url_bad(void **state)
{
	char longhost[400], longport[64], longbrackets[400];
	const char *bad[] = {
		"",
		"http://1.2.3.4:80",
		"https://1.2.3.4:443",
		"tls+tcp:/1.2.3.4:4443",
		"ipc:///tmp/x",
		"tls+tcp://1.2.3.4",   /* missing port */
		"tls+tcp://1.2.3.4:",  /* empty port */
		"tls+tcp://1.2.3.4:0", /* port 0 */
		"tls+tcp://1.2.3.4:70000",
		"tls+tcp://1.2.3.4:65536",
		"tls+tcp://1.2.3.4:-1",
		"tls+tcp://1.2.3.4:+443",
		"tls+tcp://1.2.3.4: 443",
		"tls+tcp://1.2.3.4:44x3",
		"tls+tcp://1.2.3.4:4443/path",
		"tls+tcp://:4443", /* empty host */
		"tcp://[]:9",      /* empty host */
		"tcp://[::1]",     /* missing port */
		"tcp://[::1]9",
		"tcp://[::1:9",
		"tcp://",
		"tls+tcp://",
		longhost,
		longport,
		longbrackets,
	};

	(void)state;
	memset(longhost, 'h', sizeof(longhost));
	memcpy(longhost, "tcp://", 6);
	strcpy(longhost + sizeof(longhost) - 6, ":443");
	snprintf(longport, sizeof(longport), "tcp://h:%040d", 443);
	memset(longbrackets, 'a', sizeof(longbrackets));
	memcpy(longbrackets, "tcp://[", 7);
	strcpy(longbrackets + sizeof(longbrackets) - 7, "]:443");
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char host[256] = "", port[16] = "", why[512] = "";
		bool tls;
		int ret = rpc_parse_url(bad[i], &tls, host, sizeof(host), port, sizeof(port), why,
		                        sizeof(why));
		if (ret != -EINVAL)
			fail_msg("\"%s\" accepted (%d, host \"%s\", port \"%s\")", bad[i], ret,
			         host, port);
		assert_true(strlen(why) > 0);
	}
	/* too long for the caller's buffers, not for the parser */
	char host[8], port[3], why[512];
	bool tls;
	assert_int_equal(rpc_parse_url("tcp://a-long-host:9", &tls, host, sizeof(host), port,
	                               sizeof(port), why, sizeof(why)),
	                 -EINVAL);
	assert_non_null(strstr(why, "too long"));
	assert_int_equal(rpc_parse_url("tcp://h:4443", &tls, host, sizeof(host), port, sizeof(port),
	                               why, sizeof(why)),
	                 -EINVAL);
	assert_non_null(strstr(why, "too long"));
}

/* ------------------------------------------------- server and clients */

static struct {
	char dir[64];
	char cert_a[128], key_a[128], cert_b[128], key_b[128];
	char *pem_a, *keypem_a, *pem_b;
	char cn_a[64], cn_b[64];
} fx;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int net_setup(void **state)
{
	char err[512];

	(void)state;
	snprintf(fx.dir, sizeof(fx.dir), "/tmp/vmk-test-rpc.XXXXXX");
	if (!mkdtemp(fx.dir))
		return -1;
	snprintf(fx.cert_a, sizeof(fx.cert_a), "%s/a.crt", fx.dir);
	snprintf(fx.key_a, sizeof(fx.key_a), "%s/a.key", fx.dir);
	snprintf(fx.cert_b, sizeof(fx.cert_b), "%s/b.crt", fx.dir);
	snprintf(fx.key_b, sizeof(fx.key_b), "%s/b.key", fx.dir);
	if (cert_generate(fx.cert_a, fx.key_a, "hostd-a.test", err, sizeof(err)) < 0 ||
	    cert_generate(fx.cert_b, fx.key_b, "hostd-b.test", err, sizeof(err)) < 0) {
		fprintf(stderr, "cert_generate: %s\n", err);
		return -1;
	}
	if (util_read_file(fx.cert_a, 1u << 20, &fx.pem_a, NULL) < 0 ||
	    util_read_file(fx.key_a, 1u << 20, &fx.keypem_a, NULL) < 0 ||
	    util_read_file(fx.cert_b, 1u << 20, &fx.pem_b, NULL) < 0)
		return -1;
	if (cert_subject_cn(fx.pem_a, strlen(fx.pem_a), fx.cn_a, sizeof(fx.cn_a)) < 0 ||
	    cert_subject_cn(fx.pem_b, strlen(fx.pem_b), fx.cn_b, sizeof(fx.cn_b)) < 0)
		return -1;
	return 0;
}

static int net_teardown(void **state)
{
	(void)state;
	free(fx.pem_a);
	free(fx.keypem_a);
	free(fx.pem_b);
	if (fx.dir[0])
		nftw(fx.dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	return 0;
}

/* A loopback port nobody listens on (the kernel's choice, then closed). */
static int free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
		                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

static struct rpc_server *start_server(const char *scheme, bool insecure, size_t max_msg, char *url,
                                       size_t urllen)
{
	struct rpc_server *s = NULL;
	char err[512] = "";
	int ret = -EADDRINUSE;

	/* another process may take the port between free_port and listen */
	for (int tries = 0; tries < 5 && ret == -EADDRINUSE; tries++) {
		snprintf(url, urllen, "%s://127.0.0.1:%d", scheme, free_port());
		struct rpc_server_opts o = {
			.url = url,
			.cert_pem = fx.pem_a,
			.key_pem = fx.keypem_a,
			.insecure = insecure,
			.max_msg = max_msg,
			.workers = 4,
			.dispatch = fake_dispatch,
		};
		ret = rpc_server_start(&s, &o, err, sizeof(err));
	}
	if (ret < 0)
		fail_msg("rpc_server_start %s: %d %s", url, ret, err);
	return s;
}

static struct rpc_client *open_client(const char *url, const char *ca, const char *cn)
{
	struct rpc_client_opts o = {
		.url = url, .ca_pem = ca, .server_name = cn, .timeout_ms = 20000
	};
	struct rpc_client *c = NULL;
	char err[512] = "";
	int ret = rpc_client_open(&c, &o, err, sizeof(err));

	if (ret < 0)
		fail_msg("rpc_client_open %s: %d %s", url, ret, err);
	return c;
}

/* One version_get call; returns the product's version (= the request id as
 * the server saw it) or fails the test. */
static void call_version(struct rpc_client *c)
{
	Vmk__Request r = VMK__REQUEST__INIT;
	Vmk__VersionGetRequest v = VMK__VERSION_GET_REQUEST__INIT;
	Vmk__Response *resp = NULL;
	struct arena a;
	char err[512] = "";

	r.body_case = VMK__REQUEST__BODY_VERSION_GET;
	r.version_get = &v;
	arena_init(&a, 1u << 20);
	int ret = rpc_client_call(c, TOKEN, &r, &a, &resp, err, sizeof(err));
	if (ret < 0)
		fail_msg("rpc_client_call: %d %s", ret, err);
	assert_int_equal(resp->status, VMK__STATUS__STATUS_OK);
	assert_int_equal(resp->body_case, VMK__RESPONSE__BODY_VERSION_GET);
	assert_string_equal(resp->version_get->product, "fake");
	/* the server saw the request id that came back */
	char id[32];
	snprintf(id, sizeof(id), "%llu", (unsigned long long)resp->request_id);
	assert_string_equal(resp->version_get->version, id);
	assert_null(r.header); /* the call's header does not outlive it */
	arena_free(&a);
}

static void test_tls_calls(void **state)
{
	char url[64];

	(void)state;
	fake_reset();
	struct rpc_server *s = start_server("tls+tcp", false, 0, url, sizeof(url));
	struct rpc_client *c = open_client(url, fx.pem_a, fx.cn_a);

	for (int i = 0; i < 100; i++) {
		Vmk__Request r = VMK__REQUEST__INIT;
		Vmk__LoginRequest l = VMK__LOGIN_REQUEST__INIT;
		Vmk__Response *resp = NULL;
		struct arena a;
		char err[512] = "", user[32], expect[64];

		if (i % 2) {
			call_version(c);
			continue;
		}
		snprintf(user, sizeof(user), "user%d", i);
		snprintf(expect, sizeof(expect), "user%d/pw", i);
		l.username = user;
		l.password = "pw";
		r.body_case = VMK__REQUEST__BODY_LOGIN;
		r.login = &l;
		arena_init(&a, 1u << 20);
		int ret = rpc_client_call(c, NULL, &r, &a, &resp, err, sizeof(err));
		if (ret < 0)
			fail_msg("call %d: %d %s", i, ret, err);
		assert_int_equal(resp->status, VMK__STATUS__STATUS_OK);
		assert_int_equal(resp->body_case, VMK__RESPONSE__BODY_LOGIN);
		assert_string_equal(resp->login->session, expect);
		arena_free(&a);
	}
	assert_int_equal(atomic_load(&fake.calls), 100);
	rpc_client_close(c);
	rpc_server_stop(s);
}

/* A client pinned to another certificate never gets a connection. rpc.h
 * documents the result as -ETIMEDOUT (nng reports no handshake failure to a
 * non-blocking dial); the precise check is cert_fetch_peer, as vmkctl does. */
static void test_tls_wrong_pin(void **state)
{
	struct rpc_client *c = NULL;
	char url[64], err[512] = "", host[64], port[16];
	char tp_peer[CERT_THUMBPRINT_LEN], tp_a[CERT_THUMBPRINT_LEN], tp_b[CERT_THUMBPRINT_LEN];
	char *peer = NULL;
	bool tls;
	int ret;

	(void)state;
	fake_reset();
	struct rpc_server *s = start_server("tls+tcp", false, 0, url, sizeof(url));
	struct rpc_client_opts o = {
		.url = url, .ca_pem = fx.pem_b, .server_name = fx.cn_a, .timeout_ms = 2000
	};
	ret = rpc_client_open(&c, &o, err, sizeof(err));
	assert_null(c);
	if (ret != -ETIMEDOUT)
		fail_msg("pinned to another certificate: %d (%s), expected -ETIMEDOUT", ret, err);
	assert_true(strlen(err) > 0);

	/* the documented way to tell: the peer's thumbprint is not the pin's */
	assert_int_equal(
	        rpc_parse_url(url, &tls, host, sizeof(host), port, sizeof(port), err, sizeof(err)),
	        0);
	assert_int_equal(cert_fetch_peer(host, port, 5000, &peer, err, sizeof(err)), 0);
	assert_int_equal(cert_thumbprint(peer, strlen(peer), tp_peer), 0);
	assert_int_equal(cert_thumbprint(fx.pem_a, strlen(fx.pem_a), tp_a), 0);
	assert_int_equal(cert_thumbprint(fx.pem_b, strlen(fx.pem_b), tp_b), 0);
	assert_string_equal(tp_peer, tp_a);
	assert_string_not_equal(tp_peer, tp_b);
	free(peer);

	/* without a pin at all, a TLS client refuses to start */
	struct rpc_client_opts nopin = { .url = url, .timeout_ms = 2000 };
	assert_int_equal(rpc_client_open(&c, &nopin, err, sizeof(err)), -EACCES);
	assert_null(c);
	/* the right pin with the wrong name does not connect either */
	struct rpc_client_opts badname = {
		.url = url, .ca_pem = fx.pem_a, .server_name = fx.cn_b, .timeout_ms = 2000
	};
	assert_int_equal(rpc_client_open(&c, &badname, err, sizeof(err)), -ETIMEDOUT);
	assert_null(c);
	assert_int_equal(atomic_load(&fake.calls), 0);
	rpc_server_stop(s);
}

static void test_connection_refused(void **state)
{
	struct rpc_client *c = NULL;
	char url[64], err[512] = "";

	(void)state;
	snprintf(url, sizeof(url), "tls+tcp://127.0.0.1:%d", free_port());
	struct rpc_client_opts o = {
		.url = url, .ca_pem = fx.pem_a, .server_name = fx.cn_a, .timeout_ms = 5000
	};
	assert_int_equal(rpc_client_open(&c, &o, err, sizeof(err)), -ECONNREFUSED);
	assert_null(c);
	assert_true(strlen(err) > 0);
}

static void test_tcp_needs_insecure(void **state)
{
	struct rpc_server *s = NULL;
	char url[64], err[512] = "";

	(void)state;
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", free_port());
	struct rpc_server_opts o = { .url = url, .dispatch = fake_dispatch };
	assert_int_equal(rpc_server_start(&s, &o, err, sizeof(err)), -EINVAL);
	assert_null(s);
	assert_non_null(strstr(err, "insecure"));

	/* bad URLs are refused before anything listens */
	struct rpc_server_opts bad = { .url = "http://127.0.0.1:80",
		                       .insecure = true,
		                       .dispatch = fake_dispatch };
	assert_int_equal(rpc_server_start(&s, &bad, err, sizeof(err)), -EINVAL);
	assert_null(s);
}

static void test_tcp_insecure(void **state)
{
	char url[64];

	(void)state;
	fake_reset();
	struct rpc_server *s = start_server("tcp", true, 0, url, sizeof(url));
	struct rpc_client *c = open_client(url, NULL, NULL);

	for (int i = 0; i < 10; i++)
		call_version(c);
	assert_int_equal(atomic_load(&fake.calls), 10);
	rpc_client_close(c);
	rpc_server_stop(s);
}

struct slow_call {
	struct rpc_client *c;
	int ret, status;
	char err[512];
};

static void *slow_thread(void *arg)
{
	struct slow_call *sc = arg;
	Vmk__Request r = VMK__REQUEST__INIT;
	Vmk__DatastoreAddRequest d = VMK__DATASTORE_ADD_REQUEST__INIT;
	Vmk__Response *resp = NULL;
	struct arena a;

	d.name = "slow";
	d.path = "/nonexistent";
	r.body_case = VMK__REQUEST__BODY_DATASTORE_ADD;
	r.datastore_add = &d;
	arena_init(&a, 1u << 20);
	sc->ret = rpc_client_call(sc->c, TOKEN, &r, &a, &resp, sc->err, sizeof(sc->err));
	sc->status = sc->ret == 0 ? (int)resp->status : -1;
	arena_free(&a);
	return NULL;
}

/* While one call is held in its handler, 20 calls from another client are
 * all served: the verdict is the order of events, not their duration. */
static void test_concurrent_calls(void **state)
{
	struct slow_call sc = { .ret = -1 };
	struct timespec dl;
	pthread_t t;
	char url[64];
	bool started, done_early;

	(void)state;
	fake_reset();
	fake.gate = true;
	struct rpc_server *s = start_server("tls+tcp", false, 0, url, sizeof(url));
	sc.c = open_client(url, fx.pem_a, fx.cn_a);
	struct rpc_client *fast = open_client(url, fx.pem_a, fx.cn_a);

	assert_int_equal(pthread_create(&t, NULL, slow_thread, &sc), 0);
	timespec_in(&dl, 30);
	pthread_mutex_lock(&fake.lock);
	while (!fake.slow_started) {
		if (pthread_cond_timedwait(&fake.cond, &fake.lock, &dl) == ETIMEDOUT)
			break;
	}
	started = fake.slow_started;
	pthread_mutex_unlock(&fake.lock);
	assert_true(started);

	for (int i = 0; i < 20; i++)
		call_version(fast);

	pthread_mutex_lock(&fake.lock);
	done_early = fake.slow_done;
	fake.slow_release = true;
	pthread_cond_broadcast(&fake.cond);
	pthread_mutex_unlock(&fake.lock);
	pthread_join(t, NULL);

	assert_false(done_early); /* the 20 finished while the slow one was held */
	if (sc.ret != 0)
		fail_msg("slow call: %d %s", sc.ret, sc.err);
	assert_int_equal(sc.status, VMK__STATUS__STATUS_OK);
	assert_int_equal(atomic_load(&fake.calls), 21);
	rpc_client_close(fast);
	rpc_client_close(sc.c);
	rpc_server_stop(s);
}

/* A message over max_msg (but under nng's cut-off of twice that) gets an
 * answer that names the limit. */
static void test_oversized_raw(void **state)
{
	nng_socket sock;
	nng_msg *msg = NULL;
	char url[64];
	Vmk__Request r;
	Vmk__RequestHeader h;
	Vmk__LoginRequest l = VMK__LOGIN_REQUEST__INIT;
	char pw[5950];
	size_t len;

	(void)state;
	fake_reset();
	struct rpc_server *s = start_server("tcp", true, 4096, url, sizeof(url));

	request_init(&r, &h, 77, "");
	memset(pw, 'p', sizeof(pw) - 1);
	pw[sizeof(pw) - 1] = '\0';
	l.username = "root";
	l.password = pw;
	r.body_case = VMK__REQUEST__BODY_LOGIN;
	r.login = &l;
	uint8_t *buf = pack_request(&r, &len);
	assert_true(len >= 5950 && len <= 6000);

	assert_int_equal(nng_req0_open(&sock), 0);
	nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, 20000);
	nng_socket_set_ms(sock, NNG_OPT_SENDTIMEO, 20000);
	assert_int_equal(nng_dial(sock, url, NULL, 0), 0);
	assert_int_equal(nng_send(sock, buf, len, 0), 0);
	assert_int_equal(nng_recvmsg(sock, &msg, 0), 0);
	Vmk__Response *resp = vmk__response__unpack(NULL, nng_msg_len(msg), nng_msg_body(msg));
	nng_msg_free(msg);
	assert_non_null(resp);
	assert_int_equal(resp->status, VMK__STATUS__STATUS_USAGE);
	assert_non_null(strstr(resp->error, "limit of 4096 bytes"));
	char size[32];
	snprintf(size, sizeof(size), "%zu bytes", len);
	assert_non_null(strstr(resp->error, size));
	assert_int_equal(atomic_load(&fake.calls), 0);
	vmk__response__free_unpacked(resp, NULL);

	/* the connection still serves a request within the limit */
	Vmk__VersionGetRequest v = VMK__VERSION_GET_REQUEST__INIT;
	free(buf);
	r.body_case = VMK__REQUEST__BODY_VERSION_GET;
	r.version_get = &v;
	buf = pack_request(&r, &len);
	assert_int_equal(nng_send(sock, buf, len, 0), 0);
	assert_int_equal(nng_recvmsg(sock, &msg, 0), 0);
	resp = vmk__response__unpack(NULL, nng_msg_len(msg), nng_msg_body(msg));
	nng_msg_free(msg);
	assert_non_null(resp);
	assert_int_equal(resp->status, VMK__STATUS__STATUS_OK);
	assert_int_equal(resp->request_id, 77);
	vmk__response__free_unpacked(resp, NULL);
	free(buf);
	nng_close(sock);
	rpc_server_stop(s);
}

int main(void)
{
	const struct CMUnitTest unit[] = {
		cmocka_unit_test(test_status_names),
		cmocka_unit_test(test_request_roundtrip_login),
		cmocka_unit_test(test_request_roundtrip_datastore_add),
		cmocka_unit_test(test_response_roundtrip),
		cmocka_unit_test(test_handle_valid),
		cmocka_unit_test(test_handle_malformed_corpus),
		cmocka_unit_test(test_handle_valid_corpus),
		cmocka_unit_test(test_handle_utf8),
		cmocka_unit_test(test_parse_url_good),
		cmocka_unit_test(test_parse_url_bad),
	};
	const struct CMUnitTest net[] = {
		cmocka_unit_test(test_tls_calls),
		cmocka_unit_test(test_tls_wrong_pin),
		cmocka_unit_test(test_connection_refused),
		cmocka_unit_test(test_tcp_needs_insecure),
		cmocka_unit_test(test_tcp_insecure),
		cmocka_unit_test(test_concurrent_calls),
		cmocka_unit_test(test_oversized_raw),
	};
	int failed;

	log_set_level(LOG_ERROR);
	failed = cmocka_run_group_tests_name("rpc", unit, NULL, NULL);
	failed += cmocka_run_group_tests_name("rpc-loopback", net, net_setup, net_teardown);
	return failed;
}
