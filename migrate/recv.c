/* The destination side of a live migration (migrate.h): one connection,
 * the token, the state stream into a VM that has not run, the acks. */
#include <errno.h>
#include <stdatomic.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "util.h"
#include "migrate.h"
#include "vmm/ramstate.h"
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

/* One of the other streams (--streams): RAM and ZERO sections into the
 * VM's memory until END. Its pages are never on another stream, so it
 * needs no ordering with the rest. */
struct xrecv {
	int fd;
	struct vmm_vm *vm;
	pthread_t t;
	bool started;
	int ret;
	uint64_t bytes;
	char err[300];
	uint32_t synced; /* the last SYNC read, + 1; under sync_m */
	bool ended;      /* no more will come; under sync_m */
	atomic_bool cut; /* join_streams shut it down: its failure is not news */
};

/* The streams' progress through the passes: the main stream answers a
 * SYNC ("S <pass>") once every other stream has loaded that pass too, so
 * the source pauses the VM only when nothing of the earlier passes is
 * still queued here (that backlog would be downtime). */
static pthread_mutex_t sync_m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sync_cv = PTHREAD_COND_INITIALIZER;

static void mark(struct xrecv *x, uint32_t synced, bool ended)
{
	pthread_mutex_lock(&sync_m);
	if (synced)
		x->synced = synced;
	x->ended |= ended;
	pthread_cond_broadcast(&sync_cv);
	pthread_mutex_unlock(&sync_m);
}

struct sync_ctx {
	struct xrecv *x;
	unsigned n;
	int fd;
};

static int main_sync(void *arg, uint32_t pass)
{
	struct sync_ctx *c = arg;
	struct timespec until;
	int ret = 0;

	util_deadline(&until, MIGRATE_ACK_TIMEOUT_MS);
	pthread_mutex_lock(&sync_m);
	for (unsigned k = 1; k < c->n && ret == 0; k++) {
		while (c->x[k].synced < pass + 1 && !c->x[k].ended && ret == 0)
			if (pthread_cond_timedwait(&sync_cv, &sync_m, &until) == ETIMEDOUT)
				ret = -ETIMEDOUT;
		if (c->x[k].synced < pass + 1)
			ret = ret ? ret : -EPIPE; /* it ended, failed, before this pass */
	}
	pthread_mutex_unlock(&sync_m);
	if (ret == 0) {
		char line[32];
		snprintf(line, sizeof(line), "S %u\n", pass);
		ret = wire_send_line(c->fd, line);
	}
	return ret;
}

static void *xrecv_main(void *arg)
{
	struct xrecv *x = arg;
	struct wire_stream ws;
	struct vmm_stream st;
	struct sbuf p;
	uint32_t type = 0, inst;

	/* the extra streams are the bulk of pre-copy: they yield to the vCPUs
	 * at this end too (the source's: send.c's share_main). The switchover's
	 * rest goes on the main stream alone unless it is 16 MiB or more
	 * (FINAL_ONE_STREAM_BYTES): only then does the pause wait for these */
	util_thread_nice(MIGRATE_PRECOPY_NICE);
	sbuf_init(&p);
	wire_stream_init(&ws, &st, x->fd, 0, NULL);
	x->ret = vmm_state_read_header(&st, x->err, sizeof(x->err));
	while (x->ret == 0 && type != SEC_END) {
		bool loaded;
		x->ret = vmm_ram_read_section(&st, &x->vm->mem, &type, &inst, &p, &loaded, x->err,
		                              sizeof(x->err));
		if (x->ret < 0)
			break;
		if (loaded) /* RAM, RAMD, RAMC: read straight into guest memory */
			x->ret = 0;
		else if (type == SEC_RAM)
			x->ret = vmm_ram_load(&x->vm->mem, p.data, p.len, x->err, sizeof(x->err));
		else if (type == SEC_RAMZ)
			x->ret = vmm_ram_load_compressed(&x->vm->mem, p.data, p.len, x->err,
			                                 sizeof(x->err));
		else if (type == SEC_ZERO)
			x->ret = vmm_ram_zero_load(&x->vm->mem, p.data, p.len, x->err,
			                           sizeof(x->err));
		else if (type == SEC_SYNC && p.len == 4) {
			uint32_t pass;
			memcpy(&pass, p.data, 4);
			mark(x, pass + 1, false);
		} else if (type != SEC_END) {
			char t[5];
			vmm_fourcc_str(type, t);
			snprintf(x->err, sizeof(x->err), "a %s section on a memory stream", t);
			x->ret = -EBADMSG;
		}
	}
	x->bytes = st.bytes;
	mark(x, 0, true);
	if (x->ret < 0) { /* the source must not block on a stream nobody reads */
		if (!atomic_load(&x->cut))
			log_warn("migration: a memory stream failed: %s", x->err);
		shutdown(x->fd, SHUT_RDWR);
	}
	sbuf_free(&p);
	return NULL;
}

/* Accepts the n - 1 other streams (each with the token and its number,
 * once) and starts their readers. */
static int accept_streams(int lfd, const char *token, struct vmm_vm *vm, struct xrecv *x,
                          unsigned n, char *err, size_t errlen)
{
	char line[200];

	for (unsigned got = 1; got < n; got++) {
		char what[80];
		snprintf(what, sizeof(what), "the source opened %u of its %u streams, no more", got,
		         n);
		int c = wire_accept(lfd, 10000, what, err, errlen);
		if (c < 0)
			return c;
		char *end = NULL;
		int r = wire_read_line(c, line, sizeof(line), 10000);
		unsigned long k = 0;
		if (r >= 0 && strncmp(line, "VMKMIG1S ", 9) == 0 &&
		    strlen(line) > 9 + MIGRATE_TOKEN_HEX + 1 && line[9 + MIGRATE_TOKEN_HEX] == ' ')
			k = strtoul(line + 10 + MIGRATE_TOKEN_HEX, &end, 10);
		if (r < 0 || !end || *end || k < 1 || k >= n || x[k].fd >= 0 ||
		    !wire_token_equal(line + 9, token, MIGRATE_TOKEN_HEX)) {
			wire_send_line(c, "NO the migration token or stream number is wrong\n");
			close(c);
			snprintf(err, errlen,
			         "a connection for stream %u presented no valid token "
			         "and number: refused",
			         got);
			return -EACCES;
		}
		wire_send_line(c, "OK\n");
		x[k].fd = c;
		x[k].vm = vm;
		if (pthread_create(&x[k].t, NULL, xrecv_main, &x[k]) != 0) {
			snprintf(err, errlen, "cannot start a thread for stream %lu", k);
			return -EAGAIN;
		}
		x[k].started = true;
	}
	return 0;
}

/* Joins the other streams' readers (cut first when abort); the first
 * error, with its message in err. */
static int join_streams(struct xrecv *x, unsigned n, bool abort_them, char *err, size_t errlen)
{
	int ret = 0;

	for (unsigned k = 1; k < n; k++) {
		if (x[k].fd >= 0 && abort_them) {
			atomic_store(&x[k].cut, true);
			shutdown(x[k].fd, SHUT_RDWR);
		}
		if (x[k].started)
			pthread_join(x[k].t, NULL);
		if (x[k].fd >= 0)
			close(x[k].fd);
		if (x[k].started && x[k].ret < 0 && ret == 0) {
			ret = x[k].ret;
			snprintf(err, errlen, "stream %u: %s", k, x[k].err);
		}
		x[k] = (struct xrecv){ .fd = -1 };
	}
	return ret;
}

int migrate_dst_receive(int lfd, const char *token, struct vmm_vm *vm, int timeout_ms, int *conn,
                        char *err, size_t errlen)
{
	static struct xrecv x[MIGRATE_MAX_STREAMS];
	unsigned n = 1;
	char line[200];
	int ret;

	int c = wire_accept(lfd, timeout_ms, "no source connected", err, errlen);
	if (c < 0)
		return c;
	ret = wire_read_line(c, line, sizeof(line), 10000);
	/* "VMKMIG1 <token>" or "VMKMIG1 <token> <streams>" */
	size_t ll = ret < 0 ? 0 : strlen(line);
	if (ll > 8 + MIGRATE_TOKEN_HEX + 1 && line[8 + MIGRATE_TOKEN_HEX] == ' ') {
		char *end = NULL;
		unsigned long v = strtoul(line + 9 + MIGRATE_TOKEN_HEX, &end, 10);
		n = end && !*end && v >= 1 && v <= MIGRATE_MAX_STREAMS ? (unsigned)v : 0;
		ll = 8 + MIGRATE_TOKEN_HEX;
	}
	if (ret < 0 || strncmp(line, "VMKMIG1 ", 8) != 0 || ll != 8 + MIGRATE_TOKEN_HEX || n == 0 ||
	    !wire_token_equal(line + 8, token, MIGRATE_TOKEN_HEX)) {
		close(lfd);
		wire_send_line(c, "NO the migration token is wrong or missing\n");
		close(c);
		snprintf(err, errlen, "the connecting source presented no valid token: refused");
		return -EACCES;
	}
	wire_send_line(c, "OK\n");
	for (unsigned k = 0; k < MIGRATE_MAX_STREAMS; k++)
		x[k] = (struct xrecv){ .fd = -1 };
	/* with --verify-pages, pages the source read while the guest wrote
	 * them arrive damaged (RAMC) and are suspect until a newer copy
	 * comes: it always does (the write is in its dirty log), so one left
	 * at the end was damaged on the way. The marks exist before any
	 * stream's reader starts: one that read a damaged page before them
	 * failed the migration ("arrived damaged") */
	ret = vmm_mem_suspect_start(&vm->mem);
	if (ret < 0)
		snprintf(err, errlen, "out of memory");
	else
		ret = accept_streams(lfd, token, vm, x, n, err, errlen);
	/* these connections, once: whatever they present, nobody else gets in */
	close(lfd);
	if (ret < 0) {
		join_streams(x, n, true, err + strlen(err), 0);
		close(c);
		return ret;
	}
	if (n > 1)
		log_info("migration: %u streams", n);
	if (n > 1) /* tests: the extra streams run ahead of the main one */
		util_test_delay("VMX_TEST_STREAMS_DELAY_MS", "the main stream");
	struct wire_stream ws;
	struct vmm_stream st;
	wire_stream_init(&ws, &st, c, 0, NULL);
	struct sync_ctx sc = { x, n, c };
	st.sync = main_sync;
	st.sync_arg = &sc;
	ret = vmm_vm_restore(vm, &st, err, errlen);
	int xret = join_streams(x, n, ret < 0, ret < 0 ? err + strlen(err) : err,
	                        ret < 0 ? 0 : errlen);
	if (ret == 0 && xret < 0)
		ret = xret;
	int vm_st = atomic_load(&vm->state);
	if (ret == 0 && (vm_st == VM_POWERED_OFF || vm_st == VM_CRASHED)) {
		/* stopped here meanwhile (a signal): before "R" the source
		 * still resumes it */
		snprintf(err, errlen, "the destination's vmx was stopped: %s", vm->exit_reason);
		ret = -ECANCELED;
	}
	uint64_t first, bad = ret == 0 ? vmm_mem_suspect_count(&vm->mem, &first) : 0;
	if (bad) {
		snprintf(err, errlen,
		         "%llu pages of guest memory arrived damaged and no newer copy "
		         "followed (the first at 0x%llx): the network corrupts data",
		         (unsigned long long)bad, (unsigned long long)first);
		ret = -EBADMSG;
	}
	if (ret < 0) {
		char f[500];
		snprintf(f, sizeof(f), "F %s\n", err);
		wire_send_line(c, f);
		close(c);
		return ret;
	}
	/* the answer first: the guest is paused until the source hears it */
	if ((ret = wire_send_line(c, "R\n")) < 0) {
		close(c);
		snprintf(err, errlen, "the source went away: %s", strerror(-ret));
		return ret;
	}
	log_info("migration: %llu bytes received and loaded", (unsigned long long)ws.sent);
	if (atomic_load(&vm->mem.pages_checked))
		log_info("migration: %llu page copies checked against the source's checksums",
		         (unsigned long long)atomic_load(&vm->mem.pages_checked));
	if (atomic_load(&vm->mem.suspect_seen))
		log_info("migration: %llu page copies arrived damaged (the source read them while "
		         "the guest wrote them); newer copies replaced every one",
		         (unsigned long long)atomic_load(&vm->mem.suspect_seen));
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
