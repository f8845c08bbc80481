/* vmx's control socket: the decoder with a fake VM, and a real ipc round
 * trip (socket mode 0600). */
#include <errno.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "net.h"
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

static int status_call(const char *path, uint64_t id, int *pid)
{
	Vmx__Request req = VMX__REQUEST__INIT;
	Vmx__Empty e = VMX__EMPTY__INIT;
	Vmx__Response *r = NULL;
	char err[256];

	req.version = 1;
	req.request_id = id;
	req.body_case = VMX__REQUEST__BODY_STATUS;
	req.status = &e;
	int ret = vmm_control_call(path, &req, &r, 5000, err, sizeof(err));
	if (ret < 0)
		return ret;
	ret = r->request_id == id && r->status_info ? 0 : -EBADMSG;
	*pid = r->status_info ? r->status_info->pid : -1;
	vmx__response__free_unpacked(r, NULL);
	return ret;
}

static int raw_connect(const char *path)
{
	int fd = net_unix_connect(path, 5000);
	assert_true(fd >= 0);
	return fd;
}

/* A connection the server has taken a slot for: it answered a request on
 * it. Under load a slot can still belong to a client that just left, and
 * then the server refuses a new one: that one is tried again. */
static int held_client(const char *path)
{
	for (int tries = 0; tries < 100; tries++) {
		Vmx__Request req = VMX__REQUEST__INIT;
		Vmx__Empty e = VMX__EMPTY__INIT;
		uint8_t buf[64], *in = NULL;
		size_t inlen = 0;
		int fd = raw_connect(path);
		req.version = 1;
		req.body_case = VMX__REQUEST__BODY_STATUS;
		req.status = &e;
		size_t n = vmx__request__pack(&req, buf);
		if (vmm_control_send_frame(fd, buf, n) == 0 &&
		    vmm_control_recv_frame(fd, VMM_CONTROL_MAX_MSG, 5000, &in, &inlen) == 0) {
			free(in);
			return fd;
		}
		close(fd);
		usleep(20 * 1000);
	}
	fail_msg("the control server never took a client");
	return -1;
}

static void test_socket_round_trip(void **state)
{
	struct fake f = { 0 };
	struct vmm_control *c;
	char dir[] = "/tmp/vmk-test-ctl-XXXXXX", path[64], err[256];
	struct stat st;
	int pid = 0;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/vmx.sock", dir);
	assert_int_equal(vmm_control_start(&c, path, &ops, &f, err, sizeof(err)), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* many requests on one connection */
	int fd = raw_connect(path);
	for (int i = 0; i < 10; i++) {
		Vmx__Request req = VMX__REQUEST__INIT;
		Vmx__Empty e = VMX__EMPTY__INIT;
		uint8_t buf[64], *in = NULL;
		size_t inlen = 0;
		req.version = 1;
		req.request_id = (uint64_t)i;
		req.body_case = VMX__REQUEST__BODY_STATUS;
		req.status = &e;
		size_t n = vmx__request__pack(&req, buf);
		assert_int_equal(vmm_control_send_frame(fd, buf, n), 0);
		assert_int_equal(vmm_control_recv_frame(fd, VMM_CONTROL_MAX_MSG, 5000, &in, &inlen),
		                 0);
		Vmx__Response *r = vmx__response__unpack(NULL, inlen, in);
		free(in);
		assert_non_null(r);
		assert_int_equal(r->request_id, (uint64_t)i);
		assert_int_equal(r->status_info->pid, 42);
		vmx__response__free_unpacked(r, NULL);
	}
	close(fd);
	/* and one connection per call, as hostd does */
	assert_int_equal(status_call(path, 7, &pid), 0);
	assert_int_equal(pid, 42);
	vmm_control_stop(c);
	assert_int_not_equal(access(path, F_OK), 0);                 /* the socket file is gone */
	assert_int_equal(status_call(path, 8, &pid), -ECONNREFUSED); /* nothing there now */
	rmdir(dir);
}

/* Peers that go away mid-way, lie about sizes or just sit there never stop
 * the server from answering the next one (nng 1.5's ipc listener stopped
 * for good after a peer that closed during its handshake). */
static void test_socket_bad_peers(void **state)
{
	struct fake f = { 0 };
	struct vmm_control *c;
	char dir[] = "/tmp/vmk-test-ctl-XXXXXX", path[64], err[256];
	int pid = 0, fds[VMM_CONTROL_MAX_CONNS];

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/vmx.sock", dir);
	assert_int_equal(vmm_control_start(&c, path, &ops, &f, err, sizeof(err)), 0);
	/* connect and close at once, a dozen times */
	for (int i = 0; i < 12; i++)
		close(raw_connect(path));
	assert_int_equal(status_call(path, 1, &pid), 0);
	/* half a length, then close */
	int fd = raw_connect(path);
	assert_int_equal(net_send_all(fd, "\x05\x00", 2), 0);
	close(fd);
	assert_int_equal(status_call(path, 2, &pid), 0);
	/* a length over the limit: the server closes the connection */
	fd = raw_connect(path);
	assert_int_equal(net_send_all(fd, "\xff\xff\xff\x7f", 4), 0);
	char b;
	assert_int_equal(net_recv_all(fd, &b, 1, 5000), -ECONNRESET);
	close(fd);
	/* a body shorter than its length, then close */
	fd = raw_connect(path);
	assert_int_equal(net_send_all(fd,
	                              "\x10\x00\x00\x00"
	                              "abc",
	                              7),
	                 0);
	close(fd);
	/* garbage of the right length: an error answer, not a crash */
	fd = raw_connect(path);
	assert_int_equal(vmm_control_send_frame(fd, "\xff\xff\xff", 3), 0);
	uint8_t *in = NULL;
	size_t inlen = 0;
	assert_int_equal(vmm_control_recv_frame(fd, VMM_CONTROL_MAX_MSG, 5000, &in, &inlen), 0);
	Vmx__Response *r = vmx__response__unpack(NULL, inlen, in);
	free(in);
	assert_non_null(r);
	assert_int_not_equal(r->status, 0);
	vmx__response__free_unpacked(r, NULL);
	close(fd);
	assert_int_equal(status_call(path, 3, &pid), 0);
	/* every slot held by a client that was served once and stays
	 * connected: the next is refused, and served again once they leave */
	for (int i = 0; i < VMM_CONTROL_MAX_CONNS; i++)
		fds[i] = held_client(path);
	assert_int_equal(status_call(path, 4, &pid), -EIO);
	for (int i = 0; i < VMM_CONTROL_MAX_CONNS; i++)
		close(fds[i]);
	int ok = -1;
	for (int i = 0; i < 50 && ok != 0; i++) { /* their threads notice the close */
		ok = status_call(path, 5, &pid);
		if (ok)
			usleep(20 * 1000);
	}
	assert_int_equal(ok, 0);
	/* stop with a client still connected returns */
	fd = raw_connect(path);
	usleep(50 * 1000);
	vmm_control_stop(c);
	close(fd);
	assert_int_equal(f.power_offs, 0);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ops),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_socket_round_trip),
		cmocka_unit_test(test_socket_bad_peers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
