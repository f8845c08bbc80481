/* vmx's control socket: the decoder with a fake VM, and a real ipc round
 * trip (socket mode 0600). */
#include <errno.h>
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
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "vmm/control.h"

struct fake {
	bool paused;
	int power_offs;
};

static int f_status(void *arg, Vmx__StatusInfo *o)
{
	struct fake *f = arg;
	o->name = "vm1";
	o->state = f->paused ? "paused" : "running";
	o->pid = 42;
	return 0;
}

static int f_pause(void *arg, const char **why)
{
	struct fake *f = arg;
	if (f->paused) {
		*why = "vm1 is already paused";
		return 5;
	}
	f->paused = true;
	return 0;
}

static int f_resume(void *arg, const char **why)
{
	struct fake *f = arg;
	(void)why;
	f->paused = false;
	return 0;
}

static int f_power_off(void *arg, int hard, const char **why)
{
	struct fake *f = arg;
	(void)hard;
	(void)why;
	f->power_offs++;
	return 0;
}

static int f_stats(void *arg, Vmx__StatsInfo *o)
{
	(void)arg;
	o->exits = 7;
	o->vcpus = 2;
	return 0;
}

static int f_save(void *arg, const char *path, const char **why)
{
	(void)arg;
	if (strcmp(path, "/nonexistent/x") == 0) {
		*why = "cannot write /nonexistent/x";
		return 1;
	}
	return 0;
}

static const struct vmm_control_ops ops = { f_status,    f_pause, f_resume,
	                                    f_power_off, f_stats, f_save };

static Vmx__Response *call(struct fake *f, const Vmx__Request *req)
{
	uint8_t in[256], *out = NULL;
	size_t n = vmx__request__pack(req, in), outlen = 0;

	assert_int_equal(vmm_control_handle(&ops, f, in, n, &out, &outlen), 0);
	Vmx__Response *r = vmx__response__unpack(NULL, outlen, out);
	free(out);
	assert_non_null(r);
	return r;
}

static void test_ops(void **state)
{
	struct fake f = { 0 };
	Vmx__Request req = VMX__REQUEST__INIT;
	Vmx__Empty e = VMX__EMPTY__INIT;
	Vmx__Response *r;

	(void)state;
	req.version = 1;
	req.request_id = 99;
	req.body_case = VMX__REQUEST__BODY_STATUS;
	req.status = &e;
	r = call(&f, &req);
	assert_int_equal(r->request_id, 99);
	assert_int_equal(r->status, 0);
	assert_string_equal(r->status_info->state, "running");
	vmx__response__free_unpacked(r, NULL);

	req.body_case = VMX__REQUEST__BODY_PAUSE;
	req.pause = &e;
	r = call(&f, &req);
	assert_int_equal(r->status, 0);
	vmx__response__free_unpacked(r, NULL);
	r = call(&f, &req); /* again: conflict with the state named */
	assert_int_equal(r->status, 5);
	assert_string_equal(r->error, "vm1 is already paused");
	vmx__response__free_unpacked(r, NULL);

	Vmx__PowerOffRequest po = VMX__POWER_OFF_REQUEST__INIT;
	req.body_case = VMX__REQUEST__BODY_POWER_OFF;
	req.power_off = &po;
	r = call(&f, &req);
	assert_int_equal(r->status, 0);
	assert_int_equal(f.power_offs, 1);
	vmx__response__free_unpacked(r, NULL);

	req.body_case = VMX__REQUEST__BODY_STATS;
	req.stats = &e;
	r = call(&f, &req);
	assert_int_equal(r->stats_info->exits, 7);
	vmx__response__free_unpacked(r, NULL);

	Vmx__SaveRequest sv = VMX__SAVE_REQUEST__INIT;
	req.body_case = VMX__REQUEST__BODY_SAVE;
	req.save = &sv;
	sv.path = "relative/path";
	r = call(&f, &req);
	assert_int_equal(r->status, 2);
	assert_non_null(strstr(r->error, "absolute"));
	vmx__response__free_unpacked(r, NULL);
	sv.path = "/nonexistent/x";
	r = call(&f, &req);
	assert_int_equal(r->status, 1);
	assert_string_equal(r->error, "cannot write /nonexistent/x");
	vmx__response__free_unpacked(r, NULL);
}

static void test_bad_input(void **state)
{
	struct fake f = { 0 };
	static const uint8_t garbage[][6] = {
		{ 0xff, 0xff, 0xff, 0xff, 0xff, 0xff }, /* overlong varint */
		{ 0x52, 0x10, 0x00, 0x00, 0x00, 0x00 }, /* length past the end */
		{ 0x0b, 0x00, 0x00, 0x00, 0x00, 0x00 }, /* group wire type */
	};
	uint8_t *out;
	size_t outlen;

	(void)state;
	for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
		assert_int_equal(vmm_control_handle(&ops, &f, garbage[i], 6, &out, &outlen), 0);
		Vmx__Response *r = vmx__response__unpack(NULL, outlen, out);
		assert_non_null(r);
		assert_int_equal(r->status, 2);
		vmx__response__free_unpacked(r, NULL);
		free(out);
	}
	/* wrong version, no body */
	Vmx__Request req = VMX__REQUEST__INIT;
	req.version = 7;
	Vmx__Response *r = call(&f, &req);
	assert_int_equal(r->status, 2);
	assert_non_null(strstr(r->error, "version 7"));
	vmx__response__free_unpacked(r, NULL);
	req.version = 1;
	r = call(&f, &req);
	assert_int_equal(r->status, 2);
	vmx__response__free_unpacked(r, NULL);
	/* oversized */
	uint8_t *big = calloc(1, VMM_CONTROL_MAX_MSG + 1);
	assert_int_equal(vmm_control_handle(&ops, &f, big, VMM_CONTROL_MAX_MSG + 1, &out, &outlen),
	                 0);
	r = vmx__response__unpack(NULL, outlen, out);
	assert_int_equal(r->status, 2);
	vmx__response__free_unpacked(r, NULL);
	free(out);
	free(big);
	assert_int_equal(f.power_offs, 0);
}

static void test_ipc_round_trip(void **state)
{
	struct fake f = { 0 };
	struct vmm_control *c;
	char dir[] = "/tmp/vmk-test-ctl-XXXXXX", path[64], url[80], err[256];
	struct stat st;
	nng_socket s;
	nng_msg *m;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/vmx.sock", dir);
	assert_int_equal(vmm_control_start(&c, path, &ops, &f, err, sizeof(err)), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	snprintf(url, sizeof(url), "ipc://%s", path);
	assert_int_equal(nng_req0_open(&s), 0);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 5000);
	assert_int_equal(nng_dial(s, url, NULL, 0), 0);
	for (int i = 0; i < 10; i++) {
		Vmx__Request req = VMX__REQUEST__INIT;
		Vmx__Empty e = VMX__EMPTY__INIT;
		req.version = 1;
		req.request_id = (uint64_t)i;
		req.body_case = VMX__REQUEST__BODY_STATUS;
		req.status = &e;
		size_t n = vmx__request__get_packed_size(&req);
		assert_int_equal(nng_msg_alloc(&m, n), 0);
		vmx__request__pack(&req, nng_msg_body(m));
		assert_int_equal(nng_sendmsg(s, m, 0), 0);
		assert_int_equal(nng_recvmsg(s, &m, 0), 0);
		Vmx__Response *r = vmx__response__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
		nng_msg_free(m);
		assert_non_null(r);
		assert_int_equal(r->request_id, (uint64_t)i);
		assert_int_equal(r->status_info->pid, 42);
		vmx__response__free_unpacked(r, NULL);
	}
	nng_close(s);
	vmm_control_stop(c);
	assert_int_not_equal(access(path, F_OK), 0); /* the socket file is gone */
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ops),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_ipc_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
