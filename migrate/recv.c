/* The destination side of a live migration (migrate.h): one connection,
 * the token, the state stream into a VM that has not run, the acks. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "migrate.h"
#include "vmm/snapshot.h"
#include "wire.h"

int migrate_listen(int nsfd, const char *host, uint16_t *port, int *fd, char *err, size_t errlen)
{
	int l = wire_listen(nsfd, host, port, err, errlen);

	if (l < 0)
		return l;
	*fd = l;
	return 0;
}

int migrate_dst_receive(int lfd, const char *token, struct vmm_vm *vm, int timeout_ms, int *conn,
                        char *err, size_t errlen)
{
	struct pollfd p = { .fd = lfd, .events = POLLIN };
	char line[200];
	int ret;

	ret = poll(&p, 1, timeout_ms);
	if (ret <= 0) {
		snprintf(err, errlen, "no source connected within %d s", timeout_ms / 1000);
		return -ETIMEDOUT;
	}
	int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (c < 0) {
		snprintf(err, errlen, "accept: %s", strerror(errno));
		return -errno;
	}
	/* one connection, once: whatever it presents, nobody else gets in */
	close(lfd);
	int one = 1, buf = 4 << 20;
	setsockopt(c, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	(void)one;
	ret = wire_read_line(c, line, sizeof(line), 10000);
	if (ret < 0 || strncmp(line, "VMKMIG1 ", 8) != 0 || strlen(line + 8) != MIGRATE_TOKEN_HEX ||
	    !wire_token_equal(line + 8, token, MIGRATE_TOKEN_HEX)) {
		wire_send_line(c, "NO the migration token is wrong or missing\n");
		close(c);
		snprintf(err, errlen, "the connecting source presented no valid token: refused");
		return -EACCES;
	}
	wire_send_line(c, "OK\n");
	struct wire_stream ws;
	struct vmm_stream st;
	wire_stream_init(&ws, &st, c, 0, NULL);
	ret = vmm_vm_restore(vm, &st, err, errlen);
	if (ret < 0) {
		char f[500];
		snprintf(f, sizeof(f), "F %s\n", err);
		wire_send_line(c, f);
		close(c);
		return ret;
	}
	log_info("migration: %llu bytes received and loaded", (unsigned long long)ws.sent);
	if ((ret = wire_send_line(c, "R\n")) < 0) {
		close(c);
		snprintf(err, errlen, "the source went away: %s", strerror(-ret));
		return ret;
	}
	*conn = c;
	return 0;
}

int migrate_dst_wait_handover(int conn, char *err, size_t errlen)
{
	char line[64];
	int ret = wire_read_line(conn, line, sizeof(line), MIGRATE_ACK_TIMEOUT_MS);

	if (ret < 0 || strcmp(line, "L") != 0) {
		snprintf(err, errlen,
		         "the source did not hand the VM over (%s): it keeps running there",
		         ret < 0 ? strerror(-ret) : line);
		close(conn);
		return ret < 0 ? ret : -EPROTO;
	}
	return 0;
}

void migrate_dst_running(int conn)
{
	wire_send_line(conn, "G\n");
	close(conn);
}
