#include "control.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/transport/ipc/ipc.h>

#include "log.h"

struct vmm_control {
	nng_socket sock;
	pthread_t thread;
	bool started;
	const struct vmm_control_ops *ops;
	void *arg;
	char path[256];
};

int vmm_control_handle(const struct vmm_control_ops *ops, void *arg, const uint8_t *in,
                       size_t inlen, uint8_t **out, size_t *outlen)
{
	Vmx__Response resp = VMX__RESPONSE__INIT;
	Vmx__StatusInfo si = VMX__STATUS_INFO__INIT;
	Vmx__StatsInfo st = VMX__STATS_INFO__INIT;
	Vmx__MigrateInfo mi = VMX__MIGRATE_INFO__INIT;
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
static bool peer_allowed(nng_msg *m)
{
	nng_pipe p = nng_msg_get_pipe(m);
	uint64_t uid = ~0ull;

	if (nng_pipe_get_uint64(p, NNG_OPT_IPC_PEER_UID, &uid) != 0)
		return false;
	return uid == (uint64_t)getuid();
}

static void *control_main(void *arg)
{
	struct vmm_control *c = arg;

	for (;;) {
		nng_msg *m = NULL;
		int rv = nng_recvmsg(c->sock, &m, 0);
		if (rv == NNG_ECLOSED)
			break;
		if (rv != 0)
			continue;
		uint8_t *out = NULL;
		size_t outlen = 0;
		if (!peer_allowed(m)) {
			log_warn("control: refused a peer of another uid");
			Vmx__Response deny = VMX__RESPONSE__INIT;
			deny.status = 3;
			deny.error = "not allowed: only vmx's own user may drive this VM";
			outlen = vmx__response__get_packed_size(&deny);
			out = malloc(outlen ? outlen : 1);
			if (out)
				vmx__response__pack(&deny, out);
		} else {
			vmm_control_handle(c->ops, c->arg, nng_msg_body(m), nng_msg_len(m), &out,
			                   &outlen);
		}
		nng_msg_clear(m);
		if (!out || nng_msg_append(m, out, outlen) != 0 || nng_sendmsg(c->sock, m, 0) != 0)
			nng_msg_free(m);
		free(out);
	}
	return NULL;
}

int vmm_control_start(struct vmm_control **cp, const char *path, const struct vmm_control_ops *ops,
                      void *arg, char *err, size_t errlen)
{
	struct vmm_control *c = calloc(1, sizeof(*c));
	char url[300];
	int rv;

	if (!c)
		return -ENOMEM;
	if (strlen(path) >= 100) { /* sun_path is 108 bytes */
		snprintf(err, errlen, "control socket path %s is too long (100 bytes at most)",
		         path);
		free(c);
		return -ENAMETOOLONG;
	}
	c->ops = ops;
	c->arg = arg;
	snprintf(c->path, sizeof(c->path), "%s", path);
	snprintf(url, sizeof(url), "ipc://%s", path);
	unlink(path); /* a stale socket of a dead vmx */
	if ((rv = nng_rep0_open(&c->sock)) != 0) {
		snprintf(err, errlen, "control socket: %s", nng_strerror(rv));
		free(c);
		return -ENOMEM;
	}
	nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, VMM_CONTROL_MAX_MSG * 2);
	mode_t old = umask(0077);
	rv = nng_listen(c->sock, url, NULL, 0);
	umask(old);
	if (rv != 0) {
		snprintf(err, errlen, "control socket %s: %s", path, nng_strerror(rv));
		nng_close(c->sock);
		free(c);
		return -EADDRINUSE;
	}
	chmod(path, 0600);
	if (pthread_create(&c->thread, NULL, control_main, c) != 0) {
		nng_close(c->sock);
		unlink(path);
		free(c);
		return -EAGAIN;
	}
	c->started = true;
	*cp = c;
	return 0;
}

void vmm_control_stop(struct vmm_control *c)
{
	if (!c)
		return;
	nng_close(c->sock);
	if (c->started)
		pthread_join(c->thread, NULL);
	unlink(c->path);
	free(c);
}
