/* The migration socket layer (migrate/wire.c): both ends of a connection
 * send their short control lines at once (TCP_NODELAY), and lines cross
 * in both directions. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "migrate/wire.h"

static int nodelay(int fd)
{
	int v = 0;
	socklen_t l = sizeof(v);

	assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &l), 0);
	return v;
}

/* The destination answers every pass with a short line while the source
 * sends it nothing: with Nagle on the accepted socket, each answer after
 * the first waited for the source's delayed ACK (40 ms a pass). */
static void test_both_ends_nodelay(void **state)
{
	char err[200], line[64];
	uint16_t port = 0;

	(void)state;
	int l = wire_listen(-1, "127.0.0.1", &port, err, sizeof(err));
	assert_true(l >= 0);
	assert_true(port > 0);
	int c = wire_connect(-1, "127.0.0.1", port, 2000, err, sizeof(err));
	assert_true(c >= 0);
	int a = wire_accept(l, 2000, "no peer", err, sizeof(err));
	assert_true(a >= 0);
	assert_true(nodelay(c));
	assert_true(nodelay(a));
	for (int i = 0; i < 3; i++) {
		assert_int_equal(wire_send_line(a, "S 1\n"), 0);
		assert_int_equal(wire_read_line(c, line, sizeof(line), 2000), 3);
		assert_string_equal(line, "S 1");
	}
	assert_int_equal(wire_send_line(c, "L\n"), 0);
	assert_int_equal(wire_read_line(a, line, sizeof(line), 2000), 1);
	assert_string_equal(line, "L");
	close(a);
	close(c);
	close(l);
}

/* The bandwidth estimate follows passes big enough to measure the link;
 * a small pass (344 KiB in 2 ms on a 2 GB/s loopback) leaves it alone,
 * unless there is none yet. */
static void test_bw_estimate_ignores_small_passes(void **state)
{
	(void)state;
	uint64_t bw = wire_bw_estimate(0, 64ull << 20, 32000); /* 64 MiB in 32 ms */
	assert_true(bw == 2000ull << 20);
	assert_true(wire_bw_estimate(bw, 344 << 10, 2000) == bw);
	assert_true(wire_bw_estimate(bw, 100 << 10, 10) == bw); /* into the socket buffer */
	/* a big pass moves it, down as well as up */
	assert_true(wire_bw_estimate(bw, 8ull << 20, 8000) == 1000ull << 20);
	/* the first pass counts whatever its size; nothing measured: 100 MiB/s */
	assert_true(wire_bw_estimate(0, 1 << 20, 1000) == 1000ull << 20);
	assert_true(wire_bw_estimate(0, 0, 0) == 100ull << 20);
	assert_true(wire_bw_estimate(0, 1 << 20, 0) == 100ull << 20);
}

/* The buffers follow the path's round trip at 100 Gbit/s: the least on
 * loopback (a sender with 4 MiB ran 4 ms ahead of its reader and kept a
 * vCPU on its core waiting), a LAN's window at 100 us, the most on a long
 * path. */
static void test_buffers_sized_to_the_path(void **state)
{
	char err[200];
	uint16_t port = 0;

	(void)state;
	assert_int_equal(wire_buffer_bytes(0), WIRE_BUF_MIN);
	assert_int_equal(wire_buffer_bytes(20), WIRE_BUF_MIN);
	assert_int_equal(wire_buffer_bytes(100), 100 * WIRE_BYTES_PER_US);
	assert_int_equal(wire_buffer_bytes(150000), WIRE_BUF_MAX);
	assert_int_equal(wire_buffer_bytes(UINT32_MAX), WIRE_BUF_MAX);

	int l = wire_listen(-1, "127.0.0.1", &port, err, sizeof(err));
	assert_true(l >= 0);
	int c = wire_connect(-1, "127.0.0.1", port, 2000, err, sizeof(err));
	assert_true(c >= 0);
	int a = wire_accept(l, 2000, "no peer", err, sizeof(err));
	assert_true(a >= 0);
	int fds[] = { c, a };
	for (int i = 0; i < 2; i++) {
		int opts[] = { SO_SNDBUF, SO_RCVBUF };
		for (int k = 0; k < 2; k++) {
			int v = 0;
			socklen_t vl = sizeof(v);
			assert_int_equal(getsockopt(fds[i], SOL_SOCKET, opts[k], &v, &vl), 0);
			/* the kernel doubles what it was given (capped at
			 * net.core.[rw]mem_max when not root); loopback's
			 * round trip is tens of us (300: a loaded host), and
			 * the 4 MiB of old would read 8 MiB here */
			assert_true(v <= 2 * (int)wire_buffer_bytes(300));
			if (geteuid() == 0) /* SO_*BUFFORCE */
				assert_true(v >= 2 * (int)WIRE_BUF_MIN);
		}
	}
	close(a);
	close(c);
	close(l);
}

/* A line whose rest comes after the timeout is still read whole: the
 * FT primary's acknowledgement reader, which retries after each 20 ms
 * timeout, once lost "A 35" of "A 359" and read "9" as the next line. */
static void test_line_split_across_timeout(void **state)
{
	char line[64];
	int sv[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(wire_read_line(sv[0], line, sizeof(line), 10), -ETIMEDOUT);
	assert_int_equal(wire_send_line(sv[1], "A 35"), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		usleep(100 * 1000);
		_exit(wire_send_line(sv[1], "9\nA 360\n") == 0 ? 0 : 1);
	}
	assert_int_equal(wire_read_line(sv[0], line, sizeof(line), 20), 5);
	assert_string_equal(line, "A 359");
	assert_int_equal(wire_read_line(sv[0], line, sizeof(line), 2000), 5);
	assert_string_equal(line, "A 360");
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	close(sv[0]);
	close(sv[1]);
}

/* Nobody connects: a clear timeout naming what was awaited. */
static void test_accept_timeout(void **state)
{
	char err[200];
	uint16_t port = 0;

	(void)state;
	int l = wire_listen(-1, "127.0.0.1", &port, err, sizeof(err));
	assert_true(l >= 0);
	assert_int_equal(wire_accept(l, 50, "no source connected", err, sizeof(err)), -ETIMEDOUT);
	assert_non_null(strstr(err, "no source connected"));
	close(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_both_ends_nodelay),
		cmocka_unit_test(test_buffers_sized_to_the_path),
		cmocka_unit_test(test_bw_estimate_ignores_small_passes),
		cmocka_unit_test(test_line_split_across_timeout),
		cmocka_unit_test(test_accept_timeout),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
