/* bench/rpc: the round-trip cost of the control RPC next to a raw TCP
 * ping-pong. Starts two real hostd children in a temp dir (tls+tcp:// and an
 * insecure tcp://), calls `system version get` through the vmkctl library
 * (one connection, one login, then N calls), and runs a length-prefixed TCP
 * ping-pong of the same message sizes between two threads over loopback.
 * Prints a table; asserts nothing. Exits 1 only when something fails. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hostd/auth.h"
#include "net.h"
#include "util.h"
#include "hostconn.h"

#define START_TIMEOUT_MS 10000
#define STOP_TIMEOUT_MS  3000
#define CALL_TIMEOUT_MS  10000
#define WARMUP           100 /* unmeasured round trips before the measured ones */

struct hostd_child {
	pid_t pid;
	int port;
	char dir[PATH_MAX - 32]; /* its state_dir */
	char cfg[PATH_MAX];
};

struct result {
	const char *name;
	double rts, p50, p99; /* round trips per second; µs */
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: rpc [--count N] [--hostd PATH]\n"
	        "\n"
	        "Round trips of `system version get` through the vmkctl library to a real\n"
	        "hostd, over nng tls+tcp:// and insecure tcp://, next to a raw TCP ping-pong of\n"
	        "the same message sizes. Runs everything in a temp dir; prints, asserts nothing.\n"
	        "\n"
	        "  -n, --count N     measured round trips per transport (default 2000), after\n"
	        "                    100 unmeasured ones\n"
	        "      --hostd PATH  the hostd binary (default: ../bin/hostd next to this one)\n"
	        "  -h, --help        this help\n");
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* A socket bound to 127.0.0.1 on a free port (*port). */
static int bind_loopback(int *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
		                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
		int ret = -errno;
		close(fd);
		return ret;
	}
	*port = ntohs(sa.sin_port);
	return fd;
}

/* Starts argv[0] with stdout on outfd (unless -1), in its own process group;
 * it gets SIGTERM if we die. */
static pid_t spawn(char *const argv[], int outfd)
{
	pid_t parent = getpid(), pid = fork();

	if (pid != 0)
		return pid;
	setpgid(0, 0); /* a terminal's ^C is for us: we stop it in order */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != parent)
		_exit(127);
	if (outfd >= 0 && dup2(outfd, STDOUT_FILENO) < 0)
		_exit(127);
	execv(argv[0], argv);
	fprintf(stderr, "rpc: cannot run %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

/* `hostd -c CFG --thumbprint` (which also creates the certificate), bounded. */
static int thumbprint(const char *hostd, const char *cfg, char *tp, size_t tplen)
{
	char *argv[] = { (char *)hostd, "-c", (char *)cfg, "--thumbprint", NULL };
	uint64_t t0 = util_now_ms();
	int fds[2], status = 0;
	size_t got = 0;
	ssize_t n = 1;

	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	pid_t pid = spawn(argv, fds[1]);
	close(fds[1]);
	while (pid > 0 && n != 0 && got + 1 < tplen && !stop) {
		struct pollfd pfd = { .fd = fds[0], .events = POLLIN };
		int left = START_TIMEOUT_MS - (int)(util_now_ms() - t0);
		if (left <= 0 || poll(&pfd, 1, left) == 0) {
			kill(pid, SIGKILL);
			break;
		}
		n = read(fds[0], tp + got, tplen - 1 - got);
		if (n < 0 && errno != EINTR)
			break;
		got += n > 0 ? (size_t)n : 0;
	}
	close(fds[0]);
	tp[got] = '\0';
	tp[strcspn(tp, "\r\n")] = '\0';
	if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0 || !tp[0]) {
		fprintf(stderr, "rpc: %s -c %s --thumbprint failed\n", hostd, cfg);
		return -EIO;
	}
	return 0;
}

/* Writes a config in tmp/name, starts hostd on it and waits (bounded) until
 * it listens: hostd writes state_dir/hostd.pid once its listener is up. */
static int start_hostd(struct hostd_child *h, const char *hostd, const char *tmp, const char *name,
                       bool tls, const char *hash, char *tp, size_t tplen)
{
	char pidfile[PATH_MAX];
	int fd, status;
	FILE *f;

	snprintf(h->dir, sizeof(h->dir), "%s/%s", tmp, name);
	snprintf(h->cfg, sizeof(h->cfg), "%s.cfg", h->dir);
	snprintf(pidfile, sizeof(pidfile), "%s/hostd.pid", h->dir);
	fd = bind_loopback(&h->port);
	if (fd < 0 || mkdir(h->dir, 0700) < 0 || !(f = fopen(h->cfg, "we"))) {
		fprintf(stderr, "rpc: cannot set up %s: %s\n", h->dir, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd); /* a small race with other programs taking the port: fine for a bench */
	fprintf(f,
	        "host = {\n\tname = \"bench-%s\";\n\tlisten = \"%s://127.0.0.1:%d\";\n"
	        "\tstate_dir = \"%s\";\n\tlog_level = \"warn\";\n%s};\n"
	        "accounts = ( { id = \"root\"; password_hash = \"%s\"; role = \"Admin\"; } );\n",
	        name, tls ? "tls+tcp" : "tcp", h->port, h->dir, tls ? "" : "\tinsecure = true;\n",
	        hash);
	if (fclose(f) != 0)
		return -1;
	if (tp && thumbprint(hostd, h->cfg, tp, tplen) < 0)
		return -1;

	char *argv[] = { (char *)hostd, "-c", h->cfg, NULL };
	h->pid = spawn(argv, -1);
	if (h->pid < 0) {
		h->pid = 0;
		return -1;
	}
	for (uint64_t t0 = util_now_ms(); util_now_ms() - t0 < START_TIMEOUT_MS && !stop;) {
		if (access(pidfile, F_OK) == 0)
			return 0;
		if (waitpid(h->pid, &status, WNOHANG) == h->pid) {
			h->pid = 0;
			fprintf(stderr, "rpc: hostd (%s) exited before listening\n", h->cfg);
			return -1;
		}
		usleep(10000);
	}
	if (!stop)
		fprintf(stderr, "rpc: hostd (%s) did not listen within %d ms\n", h->cfg,
		        START_TIMEOUT_MS);
	return -1;
}

/* SIGTERM, then SIGKILL after a bounded wait. */
static void stop_hostd(struct hostd_child *h)
{
	int status;

	if (h->pid <= 0)
		return;
	kill(h->pid, SIGTERM);
	for (uint64_t t0 = util_now_ms(); util_now_ms() - t0 < STOP_TIMEOUT_MS; usleep(10000)) {
		if (waitpid(h->pid, &status, WNOHANG) == h->pid) {
			h->pid = 0;
			return;
		}
	}
	fprintf(stderr, "rpc: hostd %d ignored SIGTERM for %d ms; killing it\n", (int)h->pid,
	        STOP_TIMEOUT_MS);
	kill(h->pid, SIGKILL);
	waitpid(h->pid, &status, 0);
	h->pid = 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	if (remove(path) < 0)
		fprintf(stderr, "rpc: cannot remove %s: %s\n", path, strerror(errno));
	return 0;
}

/* One round trip; 0, or -1 with err set. i counts from 0 (warm-up first). */
typedef int (*trip_fn)(void *ctx, int i, char *err, size_t errlen);

/* WARMUP unmeasured round trips, then count measured ones, summed up in r. */
static int measure(struct result *r, const char *name, int count, trip_fn trip, void *ctx)
{
	uint64_t *lat = calloc((size_t)count, sizeof(*lat)), start = 0;
	char err[1200] = "out of memory";
	int ret = lat ? 0 : -1;

	for (int i = 0; ret == 0 && i < WARMUP + count; i++) {
		uint64_t t0 = now_ns();
		if (i == WARMUP)
			start = t0;
		ret = trip(ctx, i, err, sizeof(err));
		if (i >= WARMUP)
			lat[i - WARMUP] = now_ns() - t0;
		if (stop) {
			snprintf(err, sizeof(err), "interrupted");
			ret = -1;
		}
	}
	if (ret == 0) {
		uint64_t wall = now_ns() - start;
		qsort(lat, (size_t)count, sizeof(*lat), cmp_u64);
		r->name = name;
		r->rts = wall ? (double)count * 1e9 / (double)wall : 0;
		r->p50 = (double)lat[count / 2] / 1e3;
		r->p99 = (double)lat[(size_t)count * 99 / 100] / 1e3;
	} else {
		fprintf(stderr, "rpc: %s: %s\n", name, err);
	}
	free(lat);
	return ret;
}

struct rpc_ctx {
	struct hostconn c;
	Vmk__Request req;
	size_t *reqlen, *resplen; /* set from the first call, unless NULL */
};

static int rpc_trip(void *arg, int i, char *err, size_t errlen)
{
	struct rpc_ctx *x = arg;
	Vmk__Response *resp = NULL;
	struct arena a;
	int ret;

	arena_init(&a, 0); /* a fresh arena per call, as vmkctl uses one per command */
	ret = hostconn_call(&x->c, &x->req, &a, &resp);
	if (ret) {
		snprintf(err, errlen, "%s (exit %d)", x->c.err, ret);
		ret = -1;
	} else if (resp->body_case != VMK__RESPONSE__BODY_VERSION_GET) {
		snprintf(err, errlen, "the answer is not a version_get response");
		ret = -1;
	} else if (i == 0 && x->reqlen) {
		/* what rpc_client_call packed: a header with this id and our session */
		Vmk__RequestHeader hdr = VMK__REQUEST_HEADER__INIT;
		hdr.version = RPC_PROTOCOL_VERSION;
		hdr.request_id = resp->request_id;
		hdr.session = x->c.session;
		x->req.header = &hdr;
		*x->reqlen = vmk__request__get_packed_size(&x->req);
		x->req.header = NULL;
		*x->resplen = vmk__response__get_packed_size(resp);
	}
	arena_free(&a);
	return ret;
}

/* `system version get` through the vmkctl library: one connection and one
 * login, then the round trips on it. */
static int bench_rpc(struct result *r, const char *name, const char *server, const char *tp,
                     const char *pw, int count, size_t *reqlen, size_t *resplen)
{
	struct hostconn_opts o = { .server = server,
		                   .username = "root",
		                   .password = pw,
		                   .thumbprint = tp,
		                   .timeout_ms = CALL_TIMEOUT_MS };
	Vmk__VersionGetRequest body = VMK__VERSION_GET_REQUEST__INIT;
	struct rpc_ctx x = { .req = VMK__REQUEST__INIT, .reqlen = reqlen, .resplen = resplen };
	int ret = hostconn_open(&x.c, &o);

	x.req.body_case = VMK__REQUEST__BODY_VERSION_GET;
	x.req.version_get = &body;
	if (ret)
		fprintf(stderr, "rpc: %s: cannot connect to %s: %s (exit %d)\n", name, server,
		        x.c.err, ret);
	else
		ret = measure(r, name, count, rpc_trip, &x);
	hostconn_close(&x.c);
	return ret ? -1 : 0;
}

static int io_full(int fd, void *buf, size_t len, bool wr)
{
	for (size_t done = 0; done < len;) {
		ssize_t n = wr ? send(fd, (char *)buf + done, len - done, MSG_NOSIGNAL)
		               : recv(fd, (char *)buf + done, len - done, 0);
		if (n < 0 && errno == EINTR && !stop)
			continue;
		if (n <= 0)
			return n == 0 ? -ECONNRESET : -errno;
		done += (size_t)n;
	}
	return 0;
}

struct raw_ctx {
	int lfd, fd;
	size_t reqlen, resplen;
	uint8_t *req, *resp; /* frames: 4-byte big-endian length, then the bytes */
};

/* The raw server thread: a frame in, a frame of resplen bytes out, until
 * the client hangs up. */
static void *pong_main(void *arg)
{
	struct raw_ctx *x = arg;
	uint8_t *buf = calloc(1, 4 + (x->reqlen > x->resplen ? x->reqlen : x->resplen));
	uint32_t be = htonl((uint32_t)x->resplen), len;
	int one = 1, fd = accept4(x->lfd, NULL, NULL, SOCK_CLOEXEC);

	if (fd >= 0 && buf) {
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		while (io_full(fd, &len, 4, false) == 0 && ntohl(len) == x->reqlen &&
		       io_full(fd, buf + 4, x->reqlen, false) == 0) {
			memcpy(buf, &be, 4);
			if (io_full(fd, buf, 4 + x->resplen, true) < 0)
				break;
		}
	}
	if (fd >= 0)
		close(fd);
	free(buf);
	return NULL;
}

static int raw_trip(void *arg, int i, char *err, size_t errlen)
{
	struct raw_ctx *x = arg;
	int ret;

	(void)i;
	/* header and body in one send, as nng does; the answer's header, then its body */
	if ((ret = io_full(x->fd, x->req, 4 + x->reqlen, true)) < 0 ||
	    (ret = io_full(x->fd, x->resp, 4, false)) < 0 ||
	    (ret = io_full(x->fd, x->resp + 4, x->resplen, false)) < 0) {
		snprintf(err, errlen, "%s", util_strerror(ret));
		return -1;
	}
	return 0;
}

static int bench_raw(struct result *r, int count, size_t reqlen, size_t resplen)
{
	struct raw_ctx x = { .fd = -1, .reqlen = reqlen, .resplen = resplen };
	uint32_t be = htonl((uint32_t)reqlen);
	char err[256], port[16];
	int ret = -1, one = 1, lport;
	pthread_t th;

	x.req = calloc(1, 4 + reqlen);
	x.resp = calloc(1, 4 + resplen);
	x.lfd = bind_loopback(&lport);
	if (x.lfd < 0 || listen(x.lfd, 1) < 0 || !x.req || !x.resp) {
		fprintf(stderr, "rpc: raw tcp: cannot set up: %s\n", strerror(errno));
		goto out;
	}
	memcpy(x.req, &be, 4);
	memset(x.req + 4, 0x5a, reqlen);
	if ((ret = pthread_create(&th, NULL, pong_main, &x)) != 0) {
		fprintf(stderr, "rpc: raw tcp: pthread_create: %s\n", strerror(ret));
		goto out;
	}
	snprintf(port, sizeof(port), "%d", lport);
	x.fd = net_connect("127.0.0.1", port, CALL_TIMEOUT_MS, err, sizeof(err));
	if (x.fd < 0 || setsockopt(x.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0) {
		fprintf(stderr, "rpc: raw tcp: %s\n", x.fd < 0 ? err : strerror(errno));
		ret = -1;
	} else {
		ret = measure(r, "raw tcp ping-pong", count, raw_trip, &x);
	}
	if (x.fd >= 0)
		close(x.fd);
	shutdown(x.lfd, SHUT_RDWR); /* wakes an accept that never got its client */
	pthread_join(th, NULL);
out:
	if (x.lfd >= 0)
		close(x.lfd);
	free(x.req);
	free(x.resp);
	return ret ? -1 : 0;
}

static void print_table(const struct result *res, size_t n, int count, size_t reqlen,
                        size_t resplen)
{
	const struct result *raw = &res[0];

	printf("rpc: system version get, %d round trips after %d warm-up, request %zu B, "
	       "response %zu B\n",
	       count, WARMUP, reqlen, resplen);
	printf("%-22s %9s %8s %8s %12s %11s %11s\n", "transport", "rt/s", "p50 us", "p99 us",
	       "rt/s vs raw", "p50 vs raw", "p99 vs raw");
	for (size_t i = 0; i < n; i++)
		printf("%-22s %9.0f %8.1f %8.1f %12.2f %11.2f %11.2f\n", res[i].name, res[i].rts,
		       res[i].p50, res[i].p99, res[i].rts / raw->rts, res[i].p50 / raw->p50,
		       res[i].p99 / raw->p99);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "count", required_argument, NULL, 'n' },
		{ "hostd", required_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct hostd_child tls = { 0 }, plain = { 0 };
	struct result res[3] = { 0 };
	char hostd[PATH_MAX] = "", tmp[] = "/tmp/vmk-bench-rpc.XXXXXX", tp[CERT_THUMBPRINT_LEN];
	char pw[25] = "", url[64], *hash = NULL, *end;
	size_t reqlen = 0, resplen = 0;
	long count = 2000;
	int opt, rc = 1;
	uint8_t rnd[12];

	while ((opt = getopt_long(argc, argv, "n:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'n':
			count = strtol(optarg, &end, 10);
			if (*end || !*optarg || count < 1 || count > 100000000) {
				fprintf(stderr,
				        "rpc: --count wants a number from 1 to 100000000\n");
				return 2;
			}
			break;
		case 'H':
			snprintf(hostd, sizeof(hostd), "%s", optarg);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}
	if (!hostd[0]) {
		/* build/bench/rpc -> build/bin/hostd */
		char self[PATH_MAX];
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		self[n > 0 ? n : 0] = '\0';
		for (int k = 0; k < 2 && strrchr(self, '/'); k++)
			*strrchr(self, '/') = '\0';
		snprintf(hostd, sizeof(hostd), "%s/bin/hostd", self);
	}
	if (access(hostd, X_OK) < 0) {
		fprintf(stderr, "rpc: %s: %s (build it, or pass --hostd)\n", hostd,
		        strerror(errno));
		return 1;
	}

	struct sigaction sa = { .sa_handler = on_signal }; /* no SA_RESTART: interrupt waits */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (!mkdtemp(tmp)) {
		fprintf(stderr, "rpc: mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	setenv("HOME", tmp, 1); /* vmkctl's ~/.vmk (certs, known_hosts) goes there */
	if (util_random(rnd, sizeof(rnd)) == 0)
		util_hex(rnd, sizeof(rnd), pw); /* a random password for this run */
	if (!pw[0] || hostd_auth_hash(pw, &hash) < 0) {
		fprintf(stderr, "rpc: cannot make a password hash\n");
		goto out;
	}
	if (start_hostd(&tls, hostd, tmp, "tls", true, hash, tp, sizeof(tp)) < 0 ||
	    start_hostd(&plain, hostd, tmp, "tcp", false, hash, NULL, 0) < 0)
		goto out;

	/* the TLS run first: its first call gives the message sizes */
	snprintf(url, sizeof(url), "127.0.0.1:%d", tls.port);
	if (bench_rpc(&res[2], "nng tls+tcp (vmkctl)", url, tp, pw, (int)count, &reqlen, &resplen) <
	    0)
		goto out;
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", plain.port);
	if (bench_rpc(&res[1], "nng tcp (insecure)", url, NULL, pw, (int)count, NULL, NULL) < 0 ||
	    bench_raw(&res[0], (int)count, reqlen, resplen) < 0)
		goto out;
	print_table(res, 3, (int)count, reqlen, resplen);
	rc = 0;
out:
	stop_hostd(&tls);
	stop_hostd(&plain);
	nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	explicit_bzero(pw, sizeof(pw));
	free(hash);
	return rc;
}
