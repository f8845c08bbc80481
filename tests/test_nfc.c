/* NFC, the provisioning file copy: sparse transfers, resume after a dropped
 * connection, corruption detection, refused tokens, malformed senders and
 * the same-host copy. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "migrate/nfc.h"
#include "net.h"
#include "util.h"
#include "migrate/wire.h"
#include "vmm/state.h"

#define FILE_SIZE (64ull << 20)

static char dir[] = "/tmp/vmk-test-nfc-XXXXXX";
static char src_path[128], dst_path[128];
static uint64_t data_bytes; /* non-zero data in the source */

static const char TOKEN[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/* A sparse source: random extents of random data, plus one extent of
 * written zeros (allocated, but nothing to send). */
static void make_source(void)
{
	int fd = open(src_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	uint8_t *buf = malloc(2u << 20);
	uint64_t x = 0x9e3779b97f4a7c15ull;

	assert_true(fd >= 0 && buf);
	assert_int_equal(ftruncate(fd, (off_t)FILE_SIZE), 0);
	data_bytes = 0;
	for (int e = 0; e < 16; e++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		uint64_t off = (x % (FILE_SIZE / 4096 - 512)) * 4096; /* 4 KiB aligned */
		size_t len = (size_t)(1 + (x >> 40) % 512) * 4096;    /* up to 2 MiB */
		for (size_t i = 0; i < len; i++)
			buf[i] = (uint8_t)(x >> (i % 56)) | 1; /* never zero */
		assert_int_equal(pwrite(fd, buf, len, (off_t)off), (ssize_t)len);
	}
	memset(buf, 0, 1u << 20);
	assert_int_equal(pwrite(fd, buf, 1u << 20, (off_t)(FILE_SIZE - (1u << 20))), 1 << 20);
	fsync(fd);
	close(fd);
	/* the bytes that are data and not zero, chunk by chunk as NFC reads */
	fd = open(src_path, O_RDONLY);
	for (uint64_t pos = 0; pos < FILE_SIZE;) {
		off_t d = lseek(fd, (off_t)pos, SEEK_DATA);
		if (d < 0)
			break;
		off_t h = lseek(fd, d, SEEK_HOLE);
		for (uint64_t o = (uint64_t)d; o < (uint64_t)h;) {
			size_t len =
			        (uint64_t)h - o > NFC_CHUNK ? NFC_CHUNK : (size_t)((uint64_t)h - o);
			assert_int_equal(pread(fd, buf, len, (off_t)o), (ssize_t)len);
			bool zero = true;
			for (size_t i = 0; i < len && zero; i++)
				zero = buf[i] == 0;
			if (!zero)
				data_bytes += len;
			o += len;
		}
		pos = (uint64_t)h;
	}
	close(fd);
	free(buf);
}

static bool same_content(const char *a, const char *b)
{
	char *x = NULL, *y = NULL;
	size_t xl = 0, yl = 0;
	bool same = util_read_file(a, 1ull << 30, &x, &xl) == 0 &&
	            util_read_file(b, 1ull << 30, &y, &yl) == 0 && xl == yl &&
	            memcmp(x, y, xl) == 0;
	free(x);
	free(y);
	return same;
}

static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(dir))
		return -1;
	snprintf(src_path, sizeof(src_path), "%s/src-flat.vmdk", dir);
	snprintf(dst_path, sizeof(dst_path), "%s/dst-flat.vmdk", dir);
	make_source();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return util_rm_tree(dir);
}

/* ---- a server thread on one end of a socketpair ---- */

struct server {
	int fd;
	struct nfc_xfer *x;
	int ret;
	char err[400];
	pthread_t t;
};

static void *server_main(void *arg)
{
	struct server *s = arg;
	s->ret = nfc_serve(s->fd, nfc_lookup_one, s->x, s->err, sizeof(s->err));
	close(s->fd);
	return NULL;
}

/* One transfer attempt of the file at path: the server on one end,
 * nfc_send on the other. */
static int attempt_from(const char *path, struct nfc_xfer *x, const char *token,
                        const struct nfc_faults *f, struct nfc_progress *p, struct server *s,
                        char *err, size_t errlen)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	*s = (struct server){ .fd = sv[1], .x = x };
	assert_int_equal(pthread_create(&s->t, NULL, server_main, s), 0);
	int src = open(path, O_RDONLY);
	assert_true(src >= 0);
	int ret = nfc_send(sv[0], src, token, p, f, NULL, err, errlen);
	close(src);
	close(sv[0]);
	pthread_join(s->t, NULL);
	return ret;
}

static int attempt(struct nfc_xfer *x, const char *token, const struct nfc_faults *f,
                   struct nfc_progress *p, struct server *s, char *err, size_t errlen)
{
	return attempt_from(src_path, x, token, f, p, s, err, errlen);
}

static void test_sparse_copy(void **state)
{
	struct nfc_xfer x;
	struct nfc_progress p = { 0 };
	struct server s;
	struct stat a, b;
	char err[400], part[160];

	(void)state;
	unlink(dst_path);
	nfc_xfer_init(&x, TOKEN, dst_path);
	assert_int_equal(attempt(&x, TOKEN, NULL, &p, &s, err, sizeof(err)), 0);
	assert_int_equal(s.ret, 0);
	assert_true(x.done);
	assert_true(same_content(src_path, dst_path));
	/* holes and zero chunks never went over the wire, nor take space */
	assert_int_equal(atomic_load(&p.sent), data_bytes);
	assert_int_equal(x.received, data_bytes);
	assert_true(data_bytes < FILE_SIZE / 2);
	assert_int_equal(stat(src_path, &a), 0);
	assert_int_equal(stat(dst_path, &b), 0);
	assert_int_equal(b.st_size, (off_t)FILE_SIZE);
	assert_true(b.st_blocks <= a.st_blocks);
	snprintf(part, sizeof(part), "%s.part", dst_path);
	assert_int_not_equal(access(part, F_OK), 0);
	/* a finished transfer's token hears DONE again (a sender that lost the
	 * first one), and nothing more is sent or written */
	struct stat c;
	assert_int_equal(stat(dst_path, &c), 0);
	assert_int_equal(attempt(&x, TOKEN, NULL, &p, &s, err, sizeof(err)), 0);
	assert_int_equal(atomic_load(&p.sent), 0);
	assert_int_equal(x.received, data_bytes);
	assert_true(same_content(src_path, dst_path));
	assert_int_equal(stat(dst_path, &a), 0);
	assert_int_equal(a.st_ino, c.st_ino);
	nfc_xfer_destroy(&x);
}

static void test_resume(void **state)
{
	struct nfc_xfer x;
	struct nfc_progress p = { 0 };
	struct nfc_faults f = { .drop_after = 0 };
	struct server s;
	char err[400];

	(void)state;
	unlink(dst_path);
	nfc_xfer_init(&x, TOKEN, dst_path);
	f.drop_after = data_bytes * 2 / 5;
	assert_true(attempt(&x, TOKEN, &f, &p, &s, err, sizeof(err)) < 0);
	assert_true(s.ret < 0);
	assert_false(x.done);
	uint64_t kept = x.verified;
	assert_true(kept > 0 && kept < FILE_SIZE);
	assert_int_not_equal(access(dst_path, F_OK), 0); /* no half file under its name */
	/* again: it goes on from where the verified data ends */
	assert_int_equal(attempt(&x, TOKEN, NULL, &p, &s, err, sizeof(err)), 0);
	assert_int_equal(p.resumed_from, kept);
	assert_true(atomic_load(&p.sent) < data_bytes);
	assert_true(x.done);
	assert_true(same_content(src_path, dst_path));
	nfc_xfer_destroy(&x);
}

static void test_corruption_detected(void **state)
{
	struct nfc_xfer x;
	struct nfc_progress p = { 0 };
	struct server s;
	char err[400];

	(void)state;
	unlink(dst_path);
	nfc_xfer_init(&x, TOKEN, dst_path);
	/* a byte in the first data extent flips after its checksum */
	int fd = open(src_path, O_RDONLY);
	off_t d = lseek(fd, 0, SEEK_DATA);
	close(fd);
	struct nfc_faults f = { .flip_at = (uint64_t)d + 100 + 1 };
	assert_true(attempt(&x, TOKEN, &f, &p, &s, err, sizeof(err)) < 0);
	assert_int_equal(s.ret, -EBADMSG);
	assert_non_null(strstr(s.err, "failed its checksum"));
	assert_non_null(strstr(err, "checksum"));
	assert_false(x.done);
	assert_true(x.verified <= (uint64_t)d + 100);
	assert_int_not_equal(access(dst_path, F_OK), 0);
	nfc_xfer_destroy(&x);
}

static void test_refused(void **state)
{
	struct nfc_xfer x;
	struct nfc_progress p = { 0 };
	struct server s;
	char err[400];

	(void)state;
	nfc_xfer_init(&x, TOKEN, dst_path);
	char wrong[] = "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";
	assert_int_equal(attempt(&x, wrong, NULL, &p, &s, err, sizeof(err)), -EACCES);
	assert_non_null(strstr(err, "unknown transfer token"));
	assert_int_equal(s.ret, -EACCES);
	assert_int_equal(attempt(&x, "short", NULL, &p, &s, err, sizeof(err)), -EINVAL);
	nfc_xfer_destroy(&x);
}

/* Raw senders that break the rules: the server fails the transfer with a
 * message, never crashes, writes nothing under the file's name. */
static int raw(struct nfc_xfer *x, const void *bytes, size_t n, char *err, size_t errlen)
{
	int sv[2];
	struct server s;
	char line[200];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	s = (struct server){ .fd = sv[1], .x = x };
	assert_int_equal(pthread_create(&s.t, NULL, server_main, &s), 0);
	snprintf(line, sizeof(line), "VMKNFC1 %s\n", TOKEN);
	assert_int_equal(net_send_all(sv[0], line, strlen(line)), 0);
	assert_int_equal(net_send_all(sv[0], bytes, n), 0);
	shutdown(sv[0], SHUT_WR);
	pthread_join(s.t, NULL);
	close(sv[0]);
	snprintf(err, errlen, "%s", s.err);
	return s.ret;
}

static void test_malformed_senders(void **state)
{
	struct nfc_xfer x;
	char err[400];

	(void)state;
	unlink(dst_path);
	nfc_xfer_init(&x, TOKEN, dst_path);
	assert_int_equal(raw(&x, "Z", 1, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "unknown type"));
	/* a chunk longer than NFC_CHUNK */
	uint8_t d[17] = { 'D', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20, 0, 0, 0, 0, 0 };
	assert_int_equal(raw(&x, d, sizeof(d), err, sizeof(err)), -EBADMSG);
	/* an END shorter than the data that came: size 0 after a chunk */
	uint8_t two[17 + 4 + 9] = { 'D', 0, 0x10, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0 };
	uint32_t crc = vmm_crc32c(0, "abcd", 4);
	memcpy(two + 13, &crc, 4);
	memcpy(two + 17, "abcd", 4);
	two[21] = 'E';
	assert_int_equal(raw(&x, two, sizeof(two), err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "END says"));
	/* a header cut short */
	assert_true(raw(&x, "D\x01\x02", 3, err, sizeof(err)) < 0);
	assert_int_not_equal(access(dst_path, F_OK), 0);
	assert_false(x.done);
	nfc_xfer_destroy(&x);
}

static void test_copy_local(void **state)
{
	char err[400], out[160];
	struct stat a, b;

	(void)state;
	snprintf(out, sizeof(out), "%s/local-flat.vmdk", dir);
	assert_int_equal(nfc_copy_local(src_path, out, err, sizeof(err)), 0);
	assert_true(same_content(src_path, out));
	assert_int_equal(stat(src_path, &a), 0);
	assert_int_equal(stat(out, &b), 0);
	assert_int_equal(b.st_size, a.st_size);
	assert_true(b.st_blocks <= a.st_blocks); /* the holes stayed holes */
	assert_int_equal(nfc_copy_local("/nonexistent/x", out, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/x"));
	/* a VM's file that is a symbolic link (to a host file hostd, root,
	 * would copy into a datastore) or a FIFO (the copy would wait for a
	 * writer): refused, and nothing is left under the copy's name */
	char link[160], fifo[160], out2[160];
	snprintf(link, sizeof(link), "%s/linked-flat.vmdk", dir);
	snprintf(fifo, sizeof(fifo), "%s/fifo-flat.vmdk", dir);
	snprintf(out2, sizeof(out2), "%s/refused-copy.vmdk", dir);
	assert_int_equal(symlink("/etc/hostname", link), 0);
	assert_int_equal(nfc_copy_local(link, out2, err, sizeof(err)), -ELOOP);
	assert_non_null(strstr(err, "is a symbolic link"));
	assert_int_equal(mkfifo(fifo, 0600), 0);
	alarm(10); /* before: the open waited for a writer */
	assert_int_equal(nfc_copy_local(fifo, out2, err, sizeof(err)), -EINVAL);
	alarm(0);
	assert_non_null(strstr(err, "not a regular file"));
	assert_int_not_equal(access(out2, F_OK), 0);
	unlink(link);
	unlink(fifo);
}

/* ---- over TCP: nfc_send_path, takeover, commit ---- */

struct tcp_server {
	int lfd;
	uint16_t port;
	struct nfc_xfer *x;
	pthread_t acceptor;
	int nconns;
	struct server conns[8];
};

static void *acceptor_main(void *arg)
{
	struct tcp_server *ts = arg;
	for (int i = 0; i < 8; i++) {
		char err[200];
		int fd = wire_accept(ts->lfd, 20000, "test", err, sizeof(err));
		if (fd < 0)
			break;
		ts->conns[i] = (struct server){ .fd = fd, .x = ts->x };
		ts->nconns = i + 1;
		if (pthread_create(&ts->conns[i].t, NULL, server_main, &ts->conns[i]) != 0)
			break;
	}
	return NULL;
}

static void tcp_server_start(struct tcp_server *ts, struct nfc_xfer *x)
{
	char err[200];
	memset(ts, 0, sizeof(*ts));
	ts->x = x;
	ts->lfd = wire_listen(-1, "127.0.0.1", &ts->port, err, sizeof(err));
	assert_true(ts->lfd >= 0);
	assert_int_equal(pthread_create(&ts->acceptor, NULL, acceptor_main, ts), 0);
}

static void tcp_server_stop(struct tcp_server *ts)
{
	shutdown(ts->lfd, SHUT_RDWR);
	pthread_join(ts->acceptor, NULL);
	close(ts->lfd);
	for (int i = 0; i < ts->nconns; i++)
		pthread_join(ts->conns[i].t, NULL);
}

/* A sender whose first connection stalls (as on a pulled cable) holding the
 * transfer: nfc_send_path's new connection takes over and completes it. */
static void test_takeover_of_stalled_connection(void **state)
{
	struct nfc_xfer x;
	struct nfc_progress p = { 0 };
	struct tcp_server ts;
	char err[400], line[200];

	(void)state;
	unlink(dst_path);
	nfc_xfer_init(&x, TOKEN, dst_path);
	tcp_server_start(&ts, &x);
	int stale = wire_connect(-1, "127.0.0.1", ts.port, 2000, err, sizeof(err));
	assert_true(stale >= 0);
	snprintf(line, sizeof(line), "VMKNFC1 %s\n", TOKEN);
	assert_int_equal(wire_send_line(stale, line), 0);
	assert_true(wire_read_line(stale, line, sizeof(line), 5000) > 0);
	assert_string_equal(line, "OK 0");
	/* ... and says nothing more, the transfer still held */
	assert_true(x.busy);
	assert_int_equal(nfc_send_path(-1, "127.0.0.1", ts.port, src_path, TOKEN, &p, NULL, NULL,
	                               10000, err, sizeof(err)),
	                 0);
	assert_true(x.done);
	assert_true(same_content(src_path, dst_path));
	/* the stalled connection was cut */
	assert_true(wire_read_line(stale, line, sizeof(line), 5000) < 0 ||
	            !strncmp(line, "ERR", 3));
	close(stale);
	tcp_server_stop(&ts);
	assert_true(ts.nconns == 2);
	nfc_xfer_destroy(&x);
}

/* A dropped connection: nfc_send_path connects again and resumes. */
static void test_send_path_resumes(void **state)
{
	struct nfc_xfer x;
	struct nfc_progress p = { 0 };
	struct nfc_faults f = { .drop_after = 0 };
	struct tcp_server ts;
	char err[400];

	(void)state;
	unlink(dst_path);
	nfc_xfer_init(&x, TOKEN, dst_path);
	tcp_server_start(&ts, &x);
	f.drop_after = data_bytes / 2;
	assert_int_equal(nfc_send_path(-1, "127.0.0.1", ts.port, src_path, TOKEN, &p, &f, NULL,
	                               10000, err, sizeof(err)),
	                 0);
	assert_true(atomic_load(&p.resumes) >= 1);
	assert_true(p.resumed_from > 0);
	/* what was verified before the drop did not cross again */
	assert_true(atomic_load(&p.sent_all) < data_bytes + data_bytes / 2 + NFC_CHUNK);
	assert_true(x.done);
	assert_true(same_content(src_path, dst_path));
	tcp_server_stop(&ts);
	nfc_xfer_destroy(&x);
	/* nobody listening: it gives up once the window has passed */
	assert_true(nfc_send_path(-1, "127.0.0.1", ts.port, src_path, TOKEN, &p, NULL, NULL, 300,
	                          err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "connecting"));
}

static int commits;
static int commit_fail(struct nfc_xfer *x, void *arg, char *err, size_t errlen)
{
	(void)x;
	commits++;
	if (arg)
		snprintf(err, errlen, "%s", (const char *)arg);
	return arg ? -EEXIST : 0;
}

/* The commit hook runs once, after the file is in place and before DONE;
 * its failure is what the sender reports. */
static void test_commit_hook(void **state)
{
	struct nfc_xfer x;
	struct nfc_progress p = { 0 };
	struct server s;
	char err[400];

	(void)state;
	unlink(dst_path);
	nfc_xfer_init(&x, TOKEN, dst_path);
	x.commit = commit_fail;
	x.commit_arg = "the VM could not be registered";
	commits = 0;
	assert_int_equal(attempt(&x, TOKEN, NULL, &p, &s, err, sizeof(err)), -EIO);
	assert_int_equal(commits, 1);
	assert_non_null(strstr(err, "could not be registered"));
	assert_false(x.done);
	/* and it is over: a resend cannot put another file in its place */
	assert_int_equal(attempt(&x, TOKEN, NULL, &p, &s, err, sizeof(err)), -EACCES);
	assert_non_null(strstr(err, "failed for good"));
	assert_int_equal(commits, 1);
	unlink(dst_path);
	nfc_xfer_destroy(&x);
	nfc_xfer_init(&x, TOKEN, dst_path);
	x.commit = commit_fail;
	assert_int_equal(attempt(&x, TOKEN, NULL, &p, &s, err, sizeof(err)), 0);
	assert_int_equal(commits, 2);
	assert_true(x.done);
	nfc_xfer_destroy(&x);
}

/* Written zeros take time to read but send nothing: skip records keep the
 * receiver from timing out, and move its verified offset. */
static void test_keepalive_over_zeros(void **state)
{
	struct nfc_xfer x;
	struct nfc_progress p = { 0 };
	struct nfc_faults f = { .keepalive_ms = 1 };
	struct server s;
	char err[400], zpath[160];

	(void)state;
	snprintf(zpath, sizeof(zpath), "%s/zeros-flat.vmdk", dir);
	int fd = open(zpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	static uint8_t z[1 << 20];
	for (int i = 0; i < 8; i++)
		assert_int_equal(pwrite(fd, z, sizeof(z), (off_t)i << 20), (ssize_t)sizeof(z));
	assert_int_equal(pwrite(fd, "tail", 4, 8 << 20), 4);
	close(fd);
	unlink(dst_path);
	nfc_xfer_init(&x, TOKEN, dst_path);
	assert_int_equal(attempt_from(zpath, &x, TOKEN, &f, &p, &s, err, sizeof(err)), 0);
	assert_int_equal(s.ret, 0);
	assert_int_equal(atomic_load(&p.sent), 4);
	assert_true(same_content(zpath, dst_path));
	nfc_xfer_destroy(&x);
	unlink(zpath);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sparse_copy),
		cmocka_unit_test(test_resume),
		cmocka_unit_test(test_corruption_detected),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_malformed_senders),
		cmocka_unit_test(test_copy_local),
		cmocka_unit_test(test_takeover_of_stalled_connection),
		cmocka_unit_test(test_send_path_resumes),
		cmocka_unit_test(test_commit_hook),
		cmocka_unit_test(test_keepalive_over_zeros),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
