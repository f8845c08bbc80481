/* bench/transport: bulk throughput of the candidate transports for the
 * vMotion state stream, over loopback in one process: a raw TCP socket
 * (what migrate/ uses, set up by migrate/wire.c) against nng pair0 over tcp://, sending the same
 * bytes in the same message sizes. Prints MiB/s and the
 * ratio to raw TCP; asserts nothing.
 * Usage: bench/transport [--mib N] */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nng/nng.h>
#include <nng/protocol/pair0/pair.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "migrate/wire.h"

static size_t total = 256u << 20;

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* ---- raw TCP, as migrate/wire.c sets it up ---- */

struct raw_rx {
	int lfd;
	size_t got;
};

static void *raw_reader(void *arg)
{
	struct raw_rx *r = arg;
	char err[200];
	int fd = wire_accept(r->lfd, 10000, "no sender", err, sizeof(err));
	static char buf[1 << 20];
	ssize_t n;

	while (fd >= 0 && (n = read(fd, buf, sizeof(buf))) > 0)
		r->got += (size_t)n;
	if (fd >= 0)
		close(fd);
	return NULL;
}

static double raw_tcp(size_t msg)
{
	struct raw_rx r = { 0 };
	char err[200];
	uint16_t port = 0;
	pthread_t t;

	r.lfd = wire_listen(-1, "127.0.0.1", &port, err, sizeof(err));
	if (r.lfd < 0)
		return -1;
	pthread_create(&t, NULL, raw_reader, &r);
	int fd = wire_connect(-1, "127.0.0.1", port, 10000, err, sizeof(err));
	if (fd < 0)
		return -1;
	char *buf = calloc(1, msg);
	double t0 = now_s();
	for (size_t sent = 0; sent < total;) {
		ssize_t n = write(fd, buf, msg);
		if (n <= 0)
			break;
		sent += (size_t)n;
	}
	close(fd);
	pthread_join(t, NULL);
	double el = now_s() - t0;
	close(r.lfd);
	free(buf);
	return (double)r.got / (1 << 20) / el;
}

/* ---- nng pair0 ---- */

struct nng_rx {
	nng_socket s;
	size_t got, want;
};

static void *nng_reader(void *arg)
{
	struct nng_rx *r = arg;

	while (r->got < r->want) {
		nng_msg *m;
		if (nng_recvmsg(r->s, &m, 0) != 0)
			break;
		r->got += nng_msg_len(m);
		nng_msg_free(m);
	}
	return NULL;
}

static double nng_bulk(const char *url, size_t msg)
{
	nng_socket rx, tx;
	struct nng_rx r = { .want = total };
	pthread_t t;

	if (nng_pair0_open(&rx) != 0 || nng_pair0_open(&tx) != 0)
		return -1;
	nng_socket_set_size(rx, NNG_OPT_RECVMAXSZ, msg + 64);
	if (nng_listen(rx, url, NULL, 0) != 0 || nng_dial(tx, url, NULL, 0) != 0) {
		nng_close(rx);
		nng_close(tx);
		return -1;
	}
	r.s = rx;
	pthread_create(&t, NULL, nng_reader, &r);
	char *buf = calloc(1, msg);
	double t0 = now_s();
	for (size_t sent = 0; sent < total; sent += msg)
		if (nng_send(tx, buf, msg, 0) != 0)
			break;
	pthread_join(t, NULL);
	double el = now_s() - t0;
	nng_close(tx);
	nng_close(rx);
	free(buf);
	return (double)r.got / (1 << 20) / el;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "--mib"))
		total = (size_t)atoi(argv[2]) << 20;
	printf("bench/transport: %zu MiB over loopback per run (the vMotion stream's candidates)\n",
	       total >> 20);
	printf("  %-10s %12s %12s %12s %8s\n", "message", "raw tcp", "nng tcp", "", "nng/raw");
	size_t sizes[] = { 64u << 10, 1u << 20 };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		int port = 30000 + (int)(getpid() % 20000) + (int)i;
		char url[64];
		snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
		double raw = raw_tcp(sizes[i]), n = nng_bulk(url, sizes[i]);
		printf("  %7zu KiB %8.0f MiB/s %8.0f MiB/s %12s %8.2f\n", sizes[i] >> 10, raw, n,
		       "", raw > 0 ? n / raw : 0);
	}
	return 0;
}
