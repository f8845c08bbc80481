/* hostd's NFC service: it listens where the host's provisioning traffic
 * goes (host.cfg's address when hostd does not manage the network), serves
 * only offered tokens, answers DONE again for a transfer that finished and
 * was withdrawn (a sender that lost the first DONE), and withdraws a
 * transfer a connection still holds without crashing. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "hostd/hostd.h"
#include "hostd/nfcsvc.h"
#include "migrate/nfc.h"
#include "migrate/wire.h"
#include "util.h"

static const char TOKEN[] = "abcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcd";
static char dir[] = "/tmp/vmk-test-nfcsvc-XXXXXX";

static int setup(void **state)
{
	(void)state;
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	return util_rm_tree(dir);
}

static void test_offer_serve_withdraw(void **state)
{
	struct hostd h;
	struct nfc_endpoint e;
	struct nfc_xfer x;
	struct nfc_progress p = { 0 };
	char err[400], src[128], dst[128], line[200];

	(void)state;
	memset(&h, 0, sizeof(h));
	h.cfg.listen = "tls+tcp://127.0.0.1:4443";
	assert_int_equal(hostd_nfc_init(&h), 0);
	assert_int_equal(hostd_nfc_endpoint(&h, &e, err, sizeof(err)), 0);
	assert_string_equal(e.addr, "127.0.0.1");
	assert_true(e.port > 0);
	assert_string_equal(e.vmk, "");

	snprintf(src, sizeof(src), "%s/src.img", dir);
	snprintf(dst, sizeof(dst), "%s/dst.img", dir);
	int fd = open(src, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	assert_int_equal(pwrite(fd, "payload", 7, 4096), 7);
	close(fd);

	/* not offered yet: refused */
	assert_int_equal(nfc_send_path(-1, e.addr, e.port, src, TOKEN, &p, NULL, NULL, 100, err,
	                               sizeof(err)),
	                 -EACCES);
	nfc_xfer_init(&x, TOKEN, dst);
	assert_int_equal(hostd_nfc_offer(&h, &x), 0);
	assert_int_equal(nfc_send_path(-1, e.addr, e.port, src, TOKEN, &p, NULL, NULL, 5000, err,
	                               sizeof(err)),
	                 0);
	assert_true(x.done);
	hostd_nfc_withdraw(&h, &x);
	nfc_xfer_destroy(&x);

	/* withdrawn, but it finished: the same token hears DONE again */
	int c = wire_connect(-1, e.addr, e.port, 2000, err, sizeof(err));
	assert_true(c >= 0);
	snprintf(line, sizeof(line), "VMKNFC1 %s\n", TOKEN);
	assert_int_equal(wire_send_line(c, line), 0);
	assert_true(wire_read_line(c, line, sizeof(line), 5000) > 0);
	assert_int_equal(strncmp(line, "DONE ", 5), 0);
	close(c);
	/* another token: refused */
	c = wire_connect(-1, e.addr, e.port, 2000, err, sizeof(err));
	assert_true(c >= 0);
	assert_int_equal(
	        wire_send_line(
	                c, "VMKNFC1 "
	                   "1111111111111111111111111111111111111111111111111111111111111111\n"),
	        0);
	assert_true(wire_read_line(c, line, sizeof(line), 5000) > 0);
	assert_non_null(strstr(line, "NO unknown transfer token"));
	close(c);

	/* a transfer held by a silent connection is withdrawn all the same */
	snprintf(dst, sizeof(dst), "%s/dst2.img", dir);
	const char *t2 = "2222222222222222222222222222222222222222222222222222222222222222";
	nfc_xfer_init(&x, t2, dst);
	assert_int_equal(hostd_nfc_offer(&h, &x), 0);
	c = wire_connect(-1, e.addr, e.port, 2000, err, sizeof(err));
	snprintf(line, sizeof(line), "VMKNFC1 %s\n", t2);
	assert_int_equal(wire_send_line(c, line), 0);
	assert_true(wire_read_line(c, line, sizeof(line), 5000) > 0);
	assert_string_equal(line, "OK 0");
	hostd_nfc_withdraw(&h, &x);
	assert_false(x.done);
	nfc_xfer_destroy(&x);
	close(c);
	hostd_nfc_free(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_offer_serve_withdraw),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
