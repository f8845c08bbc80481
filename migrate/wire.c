/* The socket side of a migration: connect/listen, the state stream over a
 * socket (counted, optionally rate-limited), and the short control lines. */
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "net.h"
#include "netns.h"
#include "util.h"

uint32_t wire_buffer_bytes(uint32_t rtt_us)
{
	uint64_t want = (uint64_t)rtt_us * WIRE_BYTES_PER_US;

	return (uint32_t)(want < WIRE_BUF_MIN   ? WIRE_BUF_MIN
	                  : want > WIRE_BUF_MAX ? WIRE_BUF_MAX
	                                        : want);
}

uint64_t wire_bw_estimate(uint64_t prev, uint64_t bytes, uint64_t el_us)
{
	if (el_us && (bytes >= WIRE_BW_SAMPLE_BYTES || !prev))
		prev = bytes * 1000000 / el_us;
	return prev ? prev : 100ull << 20;
}

static void tune(int fd)
{
	struct tcp_info ti = { 0 };
	socklen_t tl = sizeof(ti);
	int one = 1;

	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) < 0)
		ti.tcpi_rtt = 0;
	int buf = (int)wire_buffer_bytes(ti.tcpi_rtt);

	log_debug("migration socket: round trip %u us, buffers %d KiB", ti.tcpi_rtt, buf >> 10);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* past net.core.[rw]mem_max (208 KiB on a stock host) as root */
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &buf, sizeof(buf)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof(buf)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
}

int wire_connect(int nsfd, const char *host, uint16_t port, int timeout_ms, char *err,
                 size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
	char ps[8];
	int fd = -1, ret;

	snprintf(ps, sizeof(ps), "%u", port);
	if ((ret = getaddrinfo(host, ps, &hints, &res)) != 0) {
		snprintf(err, errlen, "%s: %s", host, gai_strerror(ret));
		return -EHOSTUNREACH;
	}
	for (struct addrinfo *a = res; a; a = a->ai_next) {
		fd = netns_socket(nsfd, a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
		                  0);
		if (fd < 0)
			continue;
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0 || errno == EINPROGRESS) {
			struct pollfd p = { .fd = fd, .events = POLLOUT };
			int soerr = 0;
			socklen_t sl = sizeof(soerr);
			if (poll(&p, 1, timeout_ms) == 1 &&
			    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0) {
				fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
				tune(fd);
				freeaddrinfo(res);
				return fd;
			}
			snprintf(err, errlen, "connecting to %s:%u: %s", host, port,
			         soerr ? strerror(soerr) : "timed out");
		} else {
			snprintf(err, errlen, "connecting to %s:%u: %s", host, port,
			         strerror(errno));
		}
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return -ECONNREFUSED;
}

int wire_listen(int nsfd, const char *host, uint16_t *port, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *res = NULL;
	char ps[8];
	int ret;

	snprintf(ps, sizeof(ps), "%u", *port);
	if ((ret = getaddrinfo(host, ps, &hints, &res)) != 0) {
		snprintf(err, errlen, "%s: %s", host, gai_strerror(ret));
		return -EADDRNOTAVAIL;
	}
	int fd = netns_socket(nsfd, res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 1) < 0) {
		ret = -errno;
		snprintf(err, errlen, "listening on %s:%u: %s", host, *port, strerror(errno));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(res);
		return ret;
	}
	freeaddrinfo(res);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	*port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
	                                       : ((struct sockaddr_in *)&ss)->sin_port);
	return fd;
}

static double mono_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int wstream_write(void *arg, const void *p, size_t n)
{
	struct wire_stream *w = arg;
	const uint8_t *b = p;

	while (n) {
		if (w->cancel && atomic_load(w->cancel))
			return -ECANCELED;
		size_t chunk = n > (1u << 20) ? (1u << 20) : n;
		if (w->max_bps) {
			/* keep the average at or under the cap since the stream began */
			double due = w->t0 + (double)(w->sent + chunk) / (double)w->max_bps;
			double now = mono_s();
			if (due > now)
				usleep((useconds_t)((due - now) * 1e6));
		}
		ssize_t k = send(w->fd, b, chunk, MSG_NOSIGNAL);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		b += k;
		n -= (size_t)k;
		w->sent += (uint64_t)k;
	}
	return 0;
}

/* Without a cap, the buffers in one sendmsg (a section's header, payload
 * and trailer: a RAMD or RAMC section's pages straight from guest memory);
 * with one, each through wstream_write. */
static int wstream_writev(void *arg, const struct iovec *iov, int n)
{
	struct wire_stream *w = arg;
	struct iovec v[VMM_STATE_MAX_IOV + 2];
	struct msghdr mh = { .msg_iov = v };
	int ret;

	if (w->max_bps || n > VMM_STATE_MAX_IOV + 2) {
		for (int i = 0; i < n; i++)
			if ((ret = wstream_write(w, iov[i].iov_base, iov[i].iov_len)) < 0)
				return ret;
		return 0;
	}
	memcpy(v, iov, (size_t)n * sizeof(*iov));
	mh.msg_iovlen = (size_t)n;
	while (mh.msg_iovlen) {
		if (w->cancel && atomic_load(w->cancel))
			return -ECANCELED;
		ssize_t k = sendmsg(w->fd, &mh, MSG_NOSIGNAL);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		w->sent += (uint64_t)k;
		/* past what went */
		while (mh.msg_iovlen && (size_t)k >= mh.msg_iov->iov_len) {
			k -= (ssize_t)mh.msg_iov->iov_len;
			mh.msg_iov++;
			mh.msg_iovlen--;
		}
		if (mh.msg_iovlen) {
			mh.msg_iov->iov_base = (uint8_t *)mh.msg_iov->iov_base + k;
			mh.msg_iov->iov_len -= (size_t)k;
		}
	}
	return 0;
}

static int wstream_read(void *arg, void *p, size_t n)
{
	struct wire_stream *w = arg;
	uint8_t *b = p;

	while (n) {
		ssize_t k = recv(w->fd, b, n, 0);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (k == 0)
			return -ECONNRESET;
		b += k;
		n -= (size_t)k;
		w->sent += (uint64_t)k;
	}
	return 0;
}

void wire_stream_init(struct wire_stream *w, struct vmm_stream *s, int fd, uint64_t max_bps,
                      atomic_bool *cancel)
{
	memset(w, 0, sizeof(*w));
	w->fd = fd;
	w->max_bps = max_bps;
	w->cancel = cancel;
	w->t0 = mono_s();
	memset(s, 0, sizeof(*s));
	s->write = wstream_write;
	s->writev = wstream_writev;
	s->read = wstream_read;
	s->arg = w;
}

void wire_stream_cork(struct wire_stream *w, bool on)
{
	int v = on;

	setsockopt(w->fd, IPPROTO_TCP, TCP_CORK, &v, sizeof(v));
}

int wire_accept(int lfd, int timeout_ms, const char *what, char *err, size_t errlen)
{
	struct pollfd p = { .fd = lfd, .events = POLLIN };

	if (poll(&p, 1, timeout_ms) <= 0) {
		snprintf(err, errlen, "%s within %d s", what, timeout_ms / 1000);
		return -ETIMEDOUT;
	}
	int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (c < 0) {
		int e = errno;
		snprintf(err, errlen, "accept: %s", strerror(e));
		return -e;
	}
	/* the destination's answers are short lines: without TCP_NODELAY
	 * Nagle held each one back until the source's delayed ACK of the
	 * previous one (40 ms) */
	tune(c);
	return c;
}

int wire_send_line(int fd, const char *line)
{
	return net_send_all(fd, line, strlen(line));
}

int wire_read_line(int fd, char *buf, size_t len, int timeout_ms)
{
	size_t n = 0;
	uint64_t deadline = util_now_ms() + (uint64_t)timeout_ms;

	while (n + 1 < len) {
		/* a line that began is read whole: its rest is in flight, and
		 * a caller that retries after a timeout must not get half of it */
		int64_t left = (int64_t)(deadline + (n ? WIRE_LINE_REST_MS : 0) - util_now_ms());
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (left <= 0)
			return -ETIMEDOUT;
		int r = poll(&p, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r == 0 ? -ETIMEDOUT : -errno;
		ssize_t k = recv(fd, buf + n, 1, 0); /* byte by byte: the stream follows */
		if (k <= 0)
			return k == 0 ? -ECONNRESET : -errno;
		if (buf[n] == '\n') {
			buf[n] = '\0';
			return (int)n;
		}
		n++;
	}
	return -EMSGSIZE;
}

bool wire_token_equal(const char *a, const char *b, size_t n)
{
	unsigned char d = 0;

	for (size_t i = 0; i < n; i++)
		d |= (unsigned char)(a[i] ^ b[i]);
	return d == 0;
}
