#include "control.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "le.h"
#include "log.h"
#include "net.h"

struct vmm_control {
	int lfd, wake[2];
	pthread_t thread;
	const struct vmm_control_ops *ops;
	void *arg;
	char path[256];
	pthread_mutex_t handle; /* one request handled at a time */
	pthread_mutex_t m;      /* conns, nconns */
	pthread_cond_t cv;      /* a client thread ended */
	int conns[VMM_CONTROL_MAX_CONNS];
	unsigned nconns;
};

int vmm_control_handle(const struct vmm_control_ops *ops, void *arg, const uint8_t *in,
                       size_t inlen, uint8_t **out, size_t *outlen)
{
	Vmx__Response resp = VMX__RESPONSE__INIT;
	Vmx__StatusInfo si = VMX__STATUS_INFO__INIT;
	Vmx__StatsInfo st = VMX__STATS_INFO__INIT;
	Vmx__MigrateInfo mi = VMX__MIGRATE_INFO__INIT;
	Vmx__FtInfo fi = VMX__FT_INFO__INIT;
	Vmx__Request *req = NULL;
	const char *why = NULL;
	char msg[160];

	if (inlen > VMM_CONTROL_MAX_MSG) {
		resp.status = 2;
		snprintf(msg, sizeof(msg), "control request of %zu bytes exceeds %u", inlen,
		         VMM_CONTROL_MAX_MSG);
		resp.error = msg;
	} else if (!(req = vmx__request__unpack(NULL, inlen, in))) {
		resp.status = 2;
		resp.error = "malformed control request";
	} else if (req->version != 1) {
		resp.status = 2;
		snprintf(msg, sizeof(msg), "control protocol version %u is not supported (1 is)",
		         req->version);
		resp.error = msg;
	} else {
		resp.request_id = req->request_id;
		switch (req->body_case) {
		case VMX__REQUEST__BODY_STATUS:
			resp.status = ops->status(arg, &si);
			resp.body_case = VMX__RESPONSE__BODY_STATUS_INFO;
			resp.status_info = &si;
			break;
		case VMX__REQUEST__BODY_STATS:
			resp.status = ops->stats(arg, &st);
			resp.body_case = VMX__RESPONSE__BODY_STATS_INFO;
			resp.stats_info = &st;
			break;
		case VMX__REQUEST__BODY_PAUSE:
			resp.status = ops->pause(arg, &why);
			break;
		case VMX__REQUEST__BODY_RESUME:
			resp.status = ops->resume(arg, &why);
			break;
		case VMX__REQUEST__BODY_SAVE:
			if (!req->save->path[0] || req->save->path[0] != '/') {
				resp.status = 2;
				why = "save needs an absolute path";
			} else {
				resp.status = ops->save(arg, req->save->path, &why);
			}
			break;
		case VMX__REQUEST__BODY_POWER_OFF:
			resp.status = ops->power_off(arg, req->power_off->hard, &why);
			break;
		case VMX__REQUEST__BODY_MIGRATE_SEND:
			if (!ops->migrate_send) {
				resp.status = 5;
				why = "this vmx cannot migrate its VM";
			} else if (!req->migrate_send->host[0] || !req->migrate_send->port ||
			           req->migrate_send->port > 65535 ||
			           strlen(req->migrate_send->token) != 64 ||
			           strlen(req->migrate_send->host) > 255) {
				resp.status = 2;
				why = "migrate_send needs a host, a port (1..65535) and a 64-digit "
				      "token";
			} else {
				resp.status = ops->migrate_send(arg, req->migrate_send, &why);
			}
			break;
		case VMX__REQUEST__BODY_MIGRATE_STATUS:
			if (!ops->migrate_status) {
				resp.status = 5;
				why = "this vmx cannot migrate its VM";
				break;
			}
			resp.status = ops->migrate_status(arg, &mi);
			resp.body_case = VMX__RESPONSE__BODY_MIGRATE_INFO;
			resp.migrate_info = &mi;
			break;
		case VMX__REQUEST__BODY_MIGRATE_CANCEL:
			if (!ops->migrate_cancel) {
				resp.status = 5;
				why = "this vmx cannot migrate its VM";
				break;
			}
			resp.status = ops->migrate_cancel(arg, &why);
			break;
		case VMX__REQUEST__BODY_DISK_SNAPSHOT:
		case VMX__REQUEST__BODY_DISK_CONSOLIDATE:
			if (!ops->disk_snapshot || !ops->disk_consolidate) {
				resp.status = 5;
				why = "this vmx cannot change its disks' layers";
			} else if (req->body_case == VMX__REQUEST__BODY_DISK_SNAPSHOT) {
				resp.status = ops->disk_snapshot(arg, req->disk_snapshot, &why);
			} else {
				resp.status =
				        ops->disk_consolidate(arg, req->disk_consolidate, &why);
			}
			break;
		case VMX__REQUEST__BODY_FT_START:
			if (!ops->ft_start) {
				resp.status = 5;
				why = "this vmx cannot protect its VM";
			} else if (!req->ft_start->host[0] || !req->ft_start->port ||
			           req->ft_start->port > 65535 ||
			           strlen(req->ft_start->token) != 64 ||
			           strlen(req->ft_start->host) > 255 ||
			           strlen(req->ft_start->netns) > 255) {
				resp.status = 2;
				why = "ft_start needs a host, a port (1..65535) and a 64-digit "
				      "token";
			} else {
				resp.status = ops->ft_start(arg, req->ft_start, &why);
			}
			break;
		case VMX__REQUEST__BODY_FT_STATUS:
			if (!ops->ft_status) {
				resp.status = 5;
				why = "this vmx cannot protect its VM";
				break;
			}
			resp.status = ops->ft_status(arg, &fi);
			resp.body_case = VMX__RESPONSE__BODY_FT_INFO;
			resp.ft_info = &fi;
			break;
		case VMX__REQUEST__BODY_FT_STOP:
			if (!ops->ft_stop) {
				resp.status = 5;
				why = "this vmx cannot protect its VM";
				break;
			}
			resp.status = ops->ft_stop(arg, &why);
			break;
		default:
			resp.status = 2;
			why = "unknown control operation; hostd and vmx are of different releases";
		}
		if (why)
			resp.error = (char *)why;
	}
	size_t n = vmx__response__get_packed_size(&resp);
	*out = malloc(n ? n : 1);
	if (*out)
		vmx__response__pack(&resp, *out);
	*outlen = n;
	if (req)
		vmx__request__free_unpacked(req, NULL);
	return *out ? 0 : -ENOMEM;
}

/* Only processes of our own uid (hostd, root) may drive the VM. */
static bool peer_allowed(int fd)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);

	return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0 && cr.uid == getuid();
}

int vmm_control_send_frame(int fd, const void *body, size_t len)
{
	uint8_t h[4];
	le_put32(h, (uint32_t)len);
	int ret = net_send_all(fd, h, sizeof(h));
	return ret < 0 ? ret : net_send_all(fd, body, len);
}

int vmm_control_recv_frame(int fd, size_t max, int timeout_ms, uint8_t **body, size_t *len)
{
	uint8_t h[4];
	int ret = net_recv_all(fd, h, sizeof(h), timeout_ms);

	if (ret < 0)
		return ret;
	size_t n = le_get32(h);
	if (n > max)
		return -EMSGSIZE;
	if (!(*body = malloc(n ? n : 1)))
		return -ENOMEM;
	if ((ret = net_recv_all(fd, *body, n, timeout_ms)) < 0) {
		free(*body);
		*body = NULL;
		return ret;
	}
	*len = n;
	return 0;
}

struct conn {
	struct vmm_control *c;
	int fd;
};

/* One client: requests in turn until it closes, goes quiet or errs. The
 * handlers run one at a time (c->handle), as the VM's state expects. */
static void *conn_main(void *arg)
{
	struct conn *k = arg;
	struct vmm_control *c = k->c;
	bool allowed = peer_allowed(k->fd);

	for (;;) {
		uint8_t *in = NULL, *out = NULL;
		size_t inlen = 0, outlen = 0;
		int ret = vmm_control_recv_frame(k->fd, VMM_CONTROL_MAX_MSG * 2,
		                                 VMM_CONTROL_IDLE_MS, &in, &inlen);
		if (ret == -EMSGSIZE)
			log_warn("control: a request over %u bytes; connection closed",
			         VMM_CONTROL_MAX_MSG * 2);
		if (ret < 0)
			break;
		if (!allowed) {
			log_warn("control: refused a peer of another uid");
			Vmx__Response deny = VMX__RESPONSE__INIT;
			deny.status = 3;
			deny.error = "not allowed: only vmx's own user may drive this VM";
			outlen = vmx__response__get_packed_size(&deny);
			out = malloc(outlen ? outlen : 1);
			if (out)
				vmx__response__pack(&deny, out);
		} else {
			pthread_mutex_lock(&c->handle);
			vmm_control_handle(c->ops, c->arg, in, inlen, &out, &outlen);
			pthread_mutex_unlock(&c->handle);
		}
		free(in);
		ret = out ? vmm_control_send_frame(k->fd, out, outlen) : -ENOMEM;
		free(out);
		if (ret < 0 || !allowed)
			break;
	}
	pthread_mutex_lock(&c->m);
	close(k->fd);
	for (unsigned i = 0; i < VMM_CONTROL_MAX_CONNS; i++)
		if (c->conns[i] == k->fd)
			c->conns[i] = -1;
	c->nconns--;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->m);
	free(k);
	return NULL;
}

/* Accepts until stopped (the wake pipe); a thread per client, at most
 * VMM_CONTROL_MAX_CONNS at once (further ones are closed at once). */
static void *control_main(void *arg)
{
	struct vmm_control *c = arg;

	for (;;) {
		struct pollfd p[2] = { { .fd = c->lfd, .events = POLLIN },
			               { .fd = c->wake[0], .events = POLLIN } };
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_error("control: poll: %s", strerror(errno));
			break;
		}
		if (p[1].revents)
			break;
		if (!(p[0].revents & POLLIN))
			continue;
		int fd = accept4(c->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue; /* the client went away meanwhile, or no fds left now */
		struct conn *k = malloc(sizeof(*k));
		pthread_mutex_lock(&c->m);
		unsigned slot = VMM_CONTROL_MAX_CONNS;
		for (unsigned i = 0; i < VMM_CONTROL_MAX_CONNS && slot == VMM_CONTROL_MAX_CONNS;
		     i++)
			if (c->conns[i] < 0)
				slot = i;
		pthread_t t;
		pthread_attr_t a;
		pthread_attr_init(&a);
		pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
		if (k && slot < VMM_CONTROL_MAX_CONNS) {
			*k = (struct conn){ c, fd };
			c->conns[slot] = fd;
			c->nconns++;
			if (pthread_create(&t, &a, conn_main, k) != 0) {
				c->conns[slot] = -1;
				c->nconns--;
				slot = VMM_CONTROL_MAX_CONNS;
			}
		}
		pthread_mutex_unlock(&c->m);
		pthread_attr_destroy(&a);
		if (!k || slot == VMM_CONTROL_MAX_CONNS) {
			log_warn("control: %u clients at once already; one refused",
			         VMM_CONTROL_MAX_CONNS);
			close(fd);
			free(k);
		}
	}
	return NULL;
}

int vmm_control_start(struct vmm_control **cp, const char *path, const struct vmm_control_ops *ops,
                      void *arg, char *err, size_t errlen)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct vmm_control *c;

	if (strlen(path) >= 100) { /* sun_path is 108 bytes */
		snprintf(err, errlen, "control socket path %s is too long (100 bytes at most)",
		         path);
		return -ENAMETOOLONG;
	}
	if (!(c = calloc(1, sizeof(*c))))
		return -ENOMEM;
	c->ops = ops;
	c->arg = arg;
	c->wake[0] = c->wake[1] = -1;
	for (unsigned i = 0; i < VMM_CONTROL_MAX_CONNS; i++)
		c->conns[i] = -1;
	pthread_mutex_init(&c->m, NULL);
	pthread_mutex_init(&c->handle, NULL);
	pthread_cond_init(&c->cv, NULL);
	snprintf(c->path, sizeof(c->path), "%s", path);
	memcpy(a.sun_path, path, strlen(path) + 1);
	unlink(path); /* a stale socket of a dead vmx */
	c->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	mode_t old = umask(0077);
	int ret = c->lfd < 0 || bind(c->lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	                          listen(c->lfd, 16) < 0
	                  ? -errno
	                  : 0;
	umask(old);
	if (ret == 0 && pipe2(c->wake, O_CLOEXEC) < 0)
		ret = -errno;
	if (ret < 0) {
		snprintf(err, errlen, "control socket %s: %s", path, strerror(-ret));
		goto fail;
	}
	chmod(path, 0600);
	if (pthread_create(&c->thread, NULL, control_main, c) != 0) {
		snprintf(err, errlen, "control socket %s: no thread", path);
		unlink(path);
		ret = -EAGAIN;
		goto fail;
	}
	*cp = c;
	return 0;
fail:
	if (c->lfd >= 0)
		close(c->lfd);
	if (c->wake[0] >= 0) {
		close(c->wake[0]);
		close(c->wake[1]);
	}
	free(c);
	return ret;
}

void vmm_control_stop(struct vmm_control *c)
{
	if (!c)
		return;
	if (write(c->wake[1], "x", 1) < 0)
		log_warn("control: wake: %s", strerror(errno));
	pthread_join(c->thread, NULL);
	close(c->lfd);
	unlink(c->path);
	/* the clients still connected: cut them off and wait for their threads */
	pthread_mutex_lock(&c->m);
	for (unsigned i = 0; i < VMM_CONTROL_MAX_CONNS; i++)
		if (c->conns[i] >= 0)
			shutdown(c->conns[i], SHUT_RDWR);
	while (c->nconns)
		pthread_cond_wait(&c->cv, &c->m);
	pthread_mutex_unlock(&c->m);
	close(c->wake[0]);
	close(c->wake[1]);
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->handle);
	pthread_mutex_destroy(&c->m);
	free(c);
}
