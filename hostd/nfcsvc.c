/* hostd's NFC service (nfcsvc.h). One acceptor thread owns the listener:
 * callers say where it should listen and wait until it does; each
 * connection gets a thread that serves one transfer with nfc_serve. An
 * offer counts the connections that use it, so withdrawing it waits for
 * them instead of freeing what they still touch. */
#include "nfcsvc.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hostd.h"
#include "log.h"
#include "migrate/wire.h"
#include "netns.h"
#include "network.h"
#include "util.h"

#define LISTEN_WAIT_MS 5000
#define DONE_KEEP_MS   120000 /* a finished transfer still answers DONE this long */
#define DONE_KEEP      64

struct offer {
	struct nfc_xfer *x;
	unsigned refs; /* connections that looked it up and still serve it */
	bool gone;     /* being withdrawn: no new connection finds it */
};

/* A transfer that completed and was withdrawn: a sender that lost its DONE
 * (the link dropped right after the commit) asks again and hears it. */
struct done_token {
	char token[NFC_TOKEN_HEX + 1];
	uint64_t received, until_ms;
};

struct conn {
	struct hostd_nfc *svc;
	int fd;
	int slot;
	struct nfc_xfer *x; /* what its token found */
	bool replay;        /* x was made here to answer DONE again: ours to free */
};

struct hostd_nfc {
	pthread_mutex_t m;
	pthread_cond_t cv;
	int wake[2];
	pthread_t acceptor;
	bool started, stop;
	/* the listener: where it should be, where it is */
	char want_addr[64], want_ns[128];
	unsigned want_gen, have_gen;
	int lfd;
	uint16_t port;
	char have_addr[64], have_ns[128];
	int listen_error;
	char listen_why[300];
	struct offer offers[NFCSVC_MAX_OFFERS];
	struct done_token done[DONE_KEEP];
	unsigned done_next;
	int conn_fds[NFCSVC_MAX_CONNS]; /* -1: free */
	unsigned nconns;
};

static struct hostd_nfc *svc_of(struct hostd *h)
{
	return h->nfc;
}

/* ---- connections ---- */

static struct nfc_xfer *lookup(void *arg, const char *token)
{
	struct conn *c = arg;
	struct hostd_nfc *s = c->svc;
	struct nfc_xfer *found = NULL;

	uint64_t received = 0;
	bool finished = false;

	pthread_mutex_lock(&s->m);
	for (size_t i = 0; i < NFCSVC_MAX_OFFERS && !found; i++) {
		struct offer *o = &s->offers[i];
		if (o->x && !o->gone && wire_token_equal(o->x->token, token, NFC_TOKEN_HEX)) {
			o->refs++;
			found = o->x;
		}
	}
	uint64_t now = util_now_ms();
	for (size_t i = 0; i < DONE_KEEP && !found && !finished; i++)
		if (s->done[i].until_ms > now &&
		    wire_token_equal(s->done[i].token, token, NFC_TOKEN_HEX)) {
			finished = true;
			received = s->done[i].received;
		}
	pthread_mutex_unlock(&s->m);
	if (finished && (found = calloc(1, sizeof(*found)))) {
		nfc_xfer_init(found, token, "/");
		found->done = true;
		found->received = received;
		c->replay = true;
	}
	c->x = found;
	return found;
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	struct hostd_nfc *s = c->svc;
	char err[400];

	if (nfc_serve(c->fd, lookup, c, err, sizeof(err)) < 0)
		log_info("nfc: %s", err);
	if (c->replay) {
		nfc_xfer_destroy(c->x);
		free(c->x);
		c->x = NULL;
	}
	pthread_mutex_lock(&s->m);
	if (c->x)
		for (size_t i = 0; i < NFCSVC_MAX_OFFERS; i++)
			if (s->offers[i].x == c->x && s->offers[i].refs) {
				s->offers[i].refs--;
				break;
			}
	s->conn_fds[c->slot] = -1;
	s->nconns--;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->m);
	close(c->fd);
	free(c);
	return NULL;
}

static void start_conn(struct hostd_nfc *s, int fd)
{
	struct conn *c = calloc(1, sizeof(*c));
	pthread_attr_t at;
	pthread_t t;
	int slot = -1;

	pthread_mutex_lock(&s->m);
	for (int i = 0; i < NFCSVC_MAX_CONNS && slot < 0; i++)
		if (s->conn_fds[i] < 0)
			slot = i;
	if (slot >= 0 && c) {
		s->conn_fds[slot] = fd;
		s->nconns++;
	}
	pthread_mutex_unlock(&s->m);
	if (slot < 0 || !c) {
		wire_send_line(fd, "NO too many NFC connections to this host; try again\n");
		close(fd);
		free(c);
		return;
	}
	*c = (struct conn){ .svc = s, .fd = fd, .slot = slot };
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &at, conn_main, c) != 0) {
		pthread_mutex_lock(&s->m);
		s->conn_fds[slot] = -1;
		s->nconns--;
		pthread_cond_broadcast(&s->cv);
		pthread_mutex_unlock(&s->m);
		close(fd);
		free(c);
	}
	pthread_attr_destroy(&at);
}

/* ---- the listener ---- */

/* Called by the acceptor with s->m held: listen where wanted. */
static void relisten(struct hostd_nfc *s)
{
	char addr[64], ns[128], why[300] = "";
	unsigned gen = s->want_gen;
	uint16_t port = 0;
	int fd, nsfd = -1;

	snprintf(addr, sizeof(addr), "%s", s->want_addr);
	snprintf(ns, sizeof(ns), "%s", s->want_ns);
	pthread_mutex_unlock(&s->m);
	if (ns[0] && (nsfd = netns_open(ns)) < 0) {
		fd = nsfd;
		snprintf(why, sizeof(why), "netstack namespace %s: %s", ns, strerror(-nsfd));
	} else {
		fd = wire_listen(nsfd, addr, &port, why, sizeof(why));
		if (fd >= 0)
			listen(fd, NFCSVC_MAX_CONNS);
	}
	if (nsfd >= 0)
		close(nsfd);
	pthread_mutex_lock(&s->m);
	if (fd >= 0) {
		if (s->lfd >= 0)
			close(s->lfd); /* connections it accepted go on */
		s->lfd = fd;
		s->port = port;
		snprintf(s->have_addr, sizeof(s->have_addr), "%s", addr);
		snprintf(s->have_ns, sizeof(s->have_ns), "%s", ns);
		s->listen_error = 0;
		log_info("nfc: listening on %s:%u%s%s", addr, port, ns[0] ? " in " : "", ns);
	} else {
		s->listen_error = fd;
		snprintf(s->listen_why, sizeof(s->listen_why), "%s", why);
	}
	s->have_gen = gen;
	pthread_cond_broadcast(&s->cv);
}

static void *acceptor_main(void *arg)
{
	struct hostd_nfc *s = arg;

	pthread_mutex_lock(&s->m);
	while (!s->stop) {
		if (s->want_gen != s->have_gen) {
			relisten(s);
			continue;
		}
		struct pollfd p[2] = { { .fd = s->wake[0], .events = POLLIN },
			               { .fd = s->lfd, .events = POLLIN } };
		int lfd = s->lfd;
		pthread_mutex_unlock(&s->m);
		int n = poll(p, lfd >= 0 ? 2 : 1, -1);
		if (n > 0 && (p[0].revents & POLLIN)) {
			char b[16];
			while (read(s->wake[0], b, sizeof(b)) > 0)
				;
		}
		if (n > 0 && lfd >= 0 && (p[1].revents & POLLIN)) {
			int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
			if (fd >= 0) {
				int one = 1, big = 4 << 20;
				setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
				setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
				start_conn(s, fd);
			}
		}
		pthread_mutex_lock(&s->m);
	}
	pthread_mutex_unlock(&s->m);
	return NULL;
}

static void wake(struct hostd_nfc *s)
{
	ssize_t k = write(s->wake[1], "w", 1);
	(void)k;
}

int hostd_nfc_init(struct hostd *h)
{
	struct hostd_nfc *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	pthread_mutex_init(&s->m, NULL);
	pthread_cond_init(&s->cv, NULL);
	s->lfd = -1;
	for (int i = 0; i < NFCSVC_MAX_CONNS; i++)
		s->conn_fds[i] = -1;
	if (pipe2(s->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		int e = errno;
		free(s);
		return -e;
	}
	int e = pthread_create(&s->acceptor, NULL, acceptor_main, s);
	if (e != 0) {
		close(s->wake[0]);
		close(s->wake[1]);
		free(s);
		return -e;
	}
	s->started = true;
	h->nfc = s;
	return 0;
}

void hostd_nfc_free(struct hostd *h)
{
	struct hostd_nfc *s = h->nfc;

	if (!s)
		return;
	pthread_mutex_lock(&s->m);
	s->stop = true;
	pthread_mutex_unlock(&s->m);
	wake(s);
	pthread_join(s->acceptor, NULL);
	pthread_mutex_lock(&s->m);
	for (int i = 0; i < NFCSVC_MAX_CONNS; i++)
		if (s->conn_fds[i] >= 0)
			shutdown(s->conn_fds[i], SHUT_RDWR);
	while (s->nconns) {
		struct timespec ts;
		util_deadline(&ts, 1000);
		pthread_cond_timedwait(&s->cv, &s->m, &ts);
	}
	pthread_mutex_unlock(&s->m);
	if (s->lfd >= 0)
		close(s->lfd);
	close(s->wake[0]);
	close(s->wake[1]);
	h->nfc = NULL;
	free(s);
}

int hostd_nfc_endpoint(struct hostd *h, struct nfc_endpoint *e, char *err, size_t errlen)
{
	struct hostd_nfc *s = svc_of(h);
	int ret = 0;

	memset(e, 0, sizeof(*e));
	if (hostd_network_traffic(h, NET_TAG_PROVISIONING, e->addr, sizeof(e->addr), e->netstack,
	                          sizeof(e->netstack), e->vmk, sizeof(e->vmk), e->note,
	                          sizeof(e->note)) < 0)
		hostd_mgmt_address(h, e->addr, sizeof(e->addr));
	pthread_mutex_lock(&s->m);
	if (s->lfd < 0 || strcmp(s->have_addr, e->addr) || strcmp(s->have_ns, e->netstack)) {
		snprintf(s->want_addr, sizeof(s->want_addr), "%s", e->addr);
		snprintf(s->want_ns, sizeof(s->want_ns), "%s", e->netstack);
		unsigned gen = ++s->want_gen;
		wake(s);
		struct timespec ts;
		util_deadline(&ts, LISTEN_WAIT_MS);
		while ((int)(s->have_gen - gen) < 0 &&
		       pthread_cond_timedwait(&s->cv, &s->m, &ts) == 0)
			;
		if ((int)(s->have_gen - gen) < 0) {
			ret = -ETIMEDOUT;
			snprintf(err, errlen, "the NFC listener did not come up on %s", e->addr);
		} else if (s->listen_error) {
			ret = s->listen_error;
			snprintf(err, errlen, "NFC cannot listen on %s: %s", e->addr,
			         s->listen_why);
		}
	}
	e->port = s->port;
	pthread_mutex_unlock(&s->m);
	return ret;
}

int hostd_nfc_offer(struct hostd *h, struct nfc_xfer *x)
{
	struct hostd_nfc *s = svc_of(h);
	int ret = -ENOSPC;

	pthread_mutex_lock(&s->m);
	for (size_t i = 0; i < NFCSVC_MAX_OFFERS; i++)
		if (!s->offers[i].x) {
			s->offers[i] = (struct offer){ .x = x };
			ret = 0;
			break;
		}
	pthread_mutex_unlock(&s->m);
	return ret;
}

void hostd_nfc_withdraw(struct hostd *h, struct nfc_xfer *x)
{
	struct hostd_nfc *s = svc_of(h);

	pthread_mutex_lock(&s->m);
	for (size_t i = 0; i < NFCSVC_MAX_OFFERS; i++) {
		struct offer *o = &s->offers[i];
		if (o->x != x)
			continue;
		o->gone = true; /* no new connection finds it from here on */
		while (o->refs) {
			pthread_mutex_lock(&x->m);
			if (x->busy && x->conn_fd >= 0)
				shutdown(x->conn_fd, SHUT_RDWR);
			pthread_mutex_unlock(&x->m);
			struct timespec ts;
			util_deadline(&ts, 200);
			pthread_cond_timedwait(&s->cv, &s->m, &ts);
		}
		pthread_mutex_lock(&x->m);
		if (x->done) {
			struct done_token *d = &s->done[s->done_next++ % DONE_KEEP];
			snprintf(d->token, sizeof(d->token), "%s", x->token);
			d->received = x->received;
			d->until_ms = util_now_ms() + DONE_KEEP_MS;
		}
		pthread_mutex_unlock(&x->m);
		*o = (struct offer){ 0 };
		break;
	}
	pthread_mutex_unlock(&s->m);
}
