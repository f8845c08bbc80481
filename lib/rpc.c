#include "rpc.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/tls/tls.h>

#include "log.h"
#include "net.h"
#include "util.h"

static const char *const status_names[] = {
	"ok", "failed", "usage", "denied", "not_found", "conflict", "timeout", "cancelled",
};

const char *rpc_status_name(int status)
{
	if (status < 0 || (size_t)status >= ARRAY_SIZE(status_names))
		return "failed";
	return status_names[status];
}

int rpc_nng_errno(int rv)
{
	switch (rv) {
	case 0:
		return 0;
	case NNG_ENOMEM:
		return -ENOMEM;
	case NNG_EINVAL:
	case NNG_EADDRINVAL:
		return -EINVAL;
	case NNG_ETIMEDOUT:
		return -ETIMEDOUT;
	case NNG_ECONNREFUSED:
		return -ECONNREFUSED;
	case NNG_ECLOSED:
	case NNG_ECONNRESET:
	case NNG_ECONNSHUT:
		return -ECONNRESET;
	case NNG_EUNREACHABLE:
		return -EHOSTUNREACH;
	case NNG_EADDRINUSE:
		return -EADDRINUSE;
	case NNG_EMSGSIZE:
		return -EMSGSIZE;
	case NNG_EPEERAUTH:
	case NNG_ECRYPTO:
		return -EACCES;
	case NNG_EPERM:
		return -EPERM;
	case NNG_ENOTSUP:
		return -ENOTSUP;
	default:
		return -EIO;
	}
}

int rpc_parse_url(const char *url, bool *tls, char *host, size_t hostlen, char *port,
                  size_t portlen, char *why, size_t whylen)
{
	const char *rest, *colon;

	if (strncmp(url, "tls+tcp://", 10) == 0) {
		*tls = true;
		rest = url + 10;
	} else if (strncmp(url, "tcp://", 6) == 0) {
		*tls = false;
		rest = url + 6;
	} else {
		snprintf(why, whylen, "'%s' is not a tls+tcp:// or tcp:// URL", url);
		return -EINVAL;
	}
	if (rest[0] == '[') {
		const char *end = strchr(rest, ']');
		if (!end || end[1] != ':') {
			snprintf(why, whylen, "'%s': an IPv6 address needs the form [ADDR]:PORT",
			         url);
			return -EINVAL;
		}
		if (end == rest + 1) {
			snprintf(why, whylen, "'%s' has an empty address", url);
			return -EINVAL;
		}
		if ((size_t)(end - rest - 1) >= hostlen)
			goto toolong;
		memcpy(host, rest + 1, (size_t)(end - rest - 1));
		host[end - rest - 1] = '\0';
		colon = end + 1;
	} else {
		colon = strrchr(rest, ':');
		if (!colon || colon == rest) {
			snprintf(why, whylen, "'%s' needs the form ADDRESS:PORT", url);
			return -EINVAL;
		}
		if ((size_t)(colon - rest) >= hostlen)
			goto toolong;
		memcpy(host, rest, (size_t)(colon - rest));
		host[colon - rest] = '\0';
	}
	const char *p = colon + 1;
	char *end;
	long v = strtol(p, &end, 10);
	/* digits only: strtol alone would take " 443", "+443" */
	if (*p < '0' || *p > '9' || *end || v < 1 || v > 65535) {
		snprintf(why, whylen, "'%s': the port must be a number from 1 to 65535", url);
		return -EINVAL;
	}
	if (strlen(p) >= portlen)
		goto toolong;
	strcpy(port, p);
	return 0;
toolong:
	snprintf(why, whylen, "'%s' is too long", url);
	return -EINVAL;
}

/* ---------------------------------------------------------------- server */

/* Well-formed UTF-8 (RFC 3629): no overlong forms, surrogates or code points
 * past U+10FFFF. */
static bool utf8_valid(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;

	while (*s) {
		unsigned char c = *s++;
		int n;
		unsigned char lo = 0x80, hi = 0xbf;

		if (c < 0x80)
			continue;
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			if (c == 0xe0)
				lo = 0xa0; /* overlong */
			else if (c == 0xed)
				hi = 0x9f; /* surrogates */
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			if (c == 0xf0)
				lo = 0x90; /* overlong */
			else if (c == 0xf4)
				hi = 0x8f; /* past U+10FFFF */
		} else {
			return false;
		}
		for (int i = 0; i < n; i++, s++) {
			if (*s < lo || *s > hi)
				return false; /* also the terminating NUL */
			lo = 0x80;
			hi = 0xbf;
		}
	}
	return true;
}

/* proto3 strings must be UTF-8, but protobuf-c does not check. The name of
 * the first string field of m (or of a message in it) that is not, or NULL.
 * A peer's strings end up in logs and in error messages of responses, which
 * stricter protobuf implementations would refuse to decode. */
static const char *invalid_utf8_field(const ProtobufCMessage *m, int depth)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	const char *base = (const char *)m;

	if (depth > 32)
		return d->name;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		void *const *vals;
		size_t n = 1;

		if (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
		    *(const uint32_t *)(base + f->quantifier_offset) != f->id)
			continue; /* another arm of the oneof */
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			n = *(const size_t *)(base + f->quantifier_offset);
			vals = *(void *const *const *)(base + f->offset);
		} else {
			vals = (void *const *)(base + f->offset);
		}
		for (size_t j = 0; j < n; j++) {
			const char *bad;
			if (!vals[j])
				continue;
			if (f->type == PROTOBUF_C_TYPE_STRING)
				bad = utf8_valid(vals[j]) ? NULL : f->name;
			else
				bad = invalid_utf8_field(vals[j], depth + 1);
			if (bad)
				return bad;
		}
	}
	return NULL;
}

int rpc_decode_request(const uint8_t *buf, size_t len, size_t max_msg, struct arena *a,
                       Vmk__Request **req, char *why, size_t whylen)
{
	Vmk__Request *r;

	if (max_msg == 0)
		max_msg = RPC_DEFAULT_MAX_MSG;
	if (len > max_msg) {
		snprintf(why, whylen,
		         "request of %zu bytes exceeds this host's limit of %zu bytes "
		         "(host.max_message_bytes)",
		         len, max_msg);
		return -EMSGSIZE;
	}
	r = vmk__request__unpack(&a->pb, len, buf);
	if (!r) {
		snprintf(why, whylen, "malformed request (%zu bytes): not a vmk.Request message",
		         len);
		return -EBADMSG;
	}
	if (!r->header) {
		snprintf(why, whylen, "malformed request: no header");
		return -EBADMSG;
	}
	if (r->header->version != RPC_PROTOCOL_VERSION) {
		snprintf(why, whylen,
		         "protocol version %u is not supported by this host (it speaks %u); "
		         "use a matching vmkctl",
		         r->header->version, RPC_PROTOCOL_VERSION);
		return -EBADMSG;
	}
	const char *bad = invalid_utf8_field(&r->base, 0);
	if (bad) {
		snprintf(why, whylen, "malformed request: field %s is not valid UTF-8", bad);
		return -EBADMSG;
	}
	if (r->header->session && strlen(r->header->session) > RPC_MAX_SESSION_LEN) {
		snprintf(why, whylen, "malformed request: session token longer than %d bytes",
		         RPC_MAX_SESSION_LEN);
		return -EBADMSG;
	}
	if (r->body_case == VMK__REQUEST__BODY__NOT_SET) {
		snprintf(
		        why, whylen,
		        "request has no operation (or one this host does not know: upgrade hostd)");
		return -EBADMSG;
	}
	*req = r;
	return 0;
}

static int pack_response(const Vmk__Response *resp, uint8_t **out, size_t *outlen)
{
	size_t n = vmk__response__get_packed_size(resp);
	uint8_t *b = malloc(n ? n : 1);

	if (!b)
		return -ENOMEM;
	vmk__response__pack(resp, b);
	*out = b;
	*outlen = n;
	return 0;
}

int rpc_handle_message(const struct rpc_server_opts *o, const uint8_t *in, size_t inlen,
                       uint8_t **out, size_t *outlen)
{
	size_t max_msg = o->max_msg ? o->max_msg : RPC_DEFAULT_MAX_MSG;
	Vmk__Response resp = VMK__RESPONSE__INIT;
	Vmk__Request *req = NULL;
	struct arena a;
	char why[512];
	int ret;

	/* decoding may expand a message several times; bound it all the same */
	arena_init(&a, 8 * max_msg + (1u << 20));
	ret = rpc_decode_request(in, inlen, max_msg, &a, &req, why, sizeof(why));
	if (ret < 0) {
		resp.status = VMK__STATUS__STATUS_USAGE;
		resp.error = why;
		log_debug("rpc: rejected a request: %s", why);
	} else {
		resp.request_id = req->header->request_id;
		resp.status = VMK__STATUS__STATUS_OK;
		resp.error = "";
		o->dispatch(o->arg, req, &resp, &a);
	}
	ret = pack_response(&resp, out, outlen);
	arena_free(&a);
	return ret;
}

struct rpc_worker {
	struct rpc_server *srv;
	pthread_t thread;
	nng_ctx ctx;
	nng_aio *aio;
	bool started;
};

struct rpc_server {
	struct rpc_server_opts opts;
	nng_socket sock;
	nng_listener listener;
	nng_tls_config *tls;
	int nworkers;
	struct rpc_worker *workers;
};

static void *rpc_worker_main(void *arg)
{
	struct rpc_worker *w = arg;

	for (;;) {
		nng_ctx_recv(w->ctx, w->aio);
		nng_aio_wait(w->aio);
		int rv = nng_aio_result(w->aio);
		if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
			break;
		if (rv != 0)
			continue;
		nng_msg *msg = nng_aio_get_msg(w->aio);
		uint8_t *out = NULL;
		size_t outlen = 0;
		int ret = rpc_handle_message(&w->srv->opts, nng_msg_body(msg), nng_msg_len(msg),
		                             &out, &outlen);
		if (ret < 0) {
			nng_msg_free(msg);
			continue;
		}
		/* reuse the request's message (it carries the REP routing header) */
		nng_msg_clear(msg);
		if (nng_msg_append(msg, out, outlen) != 0) {
			free(out);
			nng_msg_free(msg);
			continue;
		}
		free(out);
		nng_aio_set_msg(w->aio, msg);
		nng_ctx_send(w->ctx, w->aio);
		nng_aio_wait(w->aio);
		rv = nng_aio_result(w->aio);
		if (rv != 0)
			nng_msg_free(msg);
		if (rv == NNG_ECLOSED)
			break;
	}
	return NULL;
}

int rpc_server_start(struct rpc_server **sp, const struct rpc_server_opts *o, char *err,
                     size_t errlen)
{
	struct rpc_server *s;
	char host[256], port[16];
	bool tls;
	int rv, ret;

	ret = rpc_parse_url(o->url, &tls, host, sizeof(host), port, sizeof(port), err, errlen);
	if (ret < 0)
		return ret;
	if (!tls && !o->insecure) {
		snprintf(err, errlen,
		         "%s is not encrypted: use tls+tcp://, or set insecure = true (lab use "
		         "only)",
		         o->url);
		return -EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->opts = *o;
	if (!s->opts.max_msg)
		s->opts.max_msg = RPC_DEFAULT_MAX_MSG;
	s->nworkers = o->workers > 0 ? o->workers : 8;

	if ((rv = nng_rep0_open(&s->sock)) != 0) {
		snprintf(err, errlen, "nng: %s", nng_strerror(rv));
		free(s);
		return rpc_nng_errno(rv);
	}
	/* Messages up to 2x the limit reach the decoder and get an error reply
	 * naming the limit; nng drops connections sending anything larger. */
	nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, 2 * s->opts.max_msg);
	if ((rv = nng_listener_create(&s->listener, s->sock, o->url)) != 0)
		goto nngfail;
	if (tls) {
		if ((rv = nng_tls_config_alloc(&s->tls, NNG_TLS_MODE_SERVER)) != 0 ||
		    (rv = nng_tls_config_own_cert(s->tls, o->cert_pem, o->key_pem, NULL)) != 0 ||
		    (rv = nng_tls_config_auth_mode(s->tls, NNG_TLS_AUTH_MODE_NONE)) != 0 ||
		    (rv = nng_listener_set_ptr(s->listener, NNG_OPT_TLS_CONFIG, s->tls)) != 0)
			goto nngfail;
	}
	if ((rv = nng_listener_start(s->listener, 0)) != 0)
		goto nngfail;

	s->workers = calloc((size_t)s->nworkers, sizeof(*s->workers));
	if (!s->workers) {
		rv = NNG_ENOMEM;
		goto nngfail;
	}
	for (int i = 0; i < s->nworkers; i++) {
		struct rpc_worker *w = &s->workers[i];
		w->srv = s;
		if ((rv = nng_ctx_open(&w->ctx, s->sock)) != 0 ||
		    (rv = nng_aio_alloc(&w->aio, NULL, NULL)) != 0)
			goto nngfail;
		if (pthread_create(&w->thread, NULL, rpc_worker_main, w) != 0) {
			rv = NNG_ENOMEM;
			goto nngfail;
		}
		w->started = true;
	}
	*sp = s;
	return 0;
nngfail:
	snprintf(err, errlen, "cannot listen on %s: %s", o->url, nng_strerror(rv));
	rpc_server_stop(s);
	return rpc_nng_errno(rv);
}

void rpc_server_stop(struct rpc_server *s)
{
	if (!s)
		return;
	/* Close the contexts first and let every worker leave: a worker may be
	 * between its recv and its send. Its next operation on a closed context
	 * fails with NNG_ECLOSED (contexts are looked up by id), whereas closing
	 * the socket under it frees the context while nng_ctx_send uses it (an
	 * nng panic seen under load). The socket goes last. */
	for (int i = 0; s->workers && i < s->nworkers; i++)
		if (s->workers[i].started)
			nng_ctx_close(s->workers[i].ctx);
	for (int i = 0; s->workers && i < s->nworkers; i++) {
		struct rpc_worker *w = &s->workers[i];
		if (w->started)
			pthread_join(w->thread, NULL);
	}
	nng_close(s->sock);
	for (int i = 0; s->workers && i < s->nworkers; i++)
		if (s->workers[i].aio)
			nng_aio_free(s->workers[i].aio);
	free(s->workers);
	if (s->tls)
		nng_tls_config_free(s->tls);
	free(s);
}

/* ---------------------------------------------------------------- client */

struct rpc_client {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool connected;
	nng_socket sock;
	nng_dialer dialer;
	nng_tls_config *tls;
	int timeout_ms;
	size_t max_msg;
	atomic_uint_fast64_t next_id;
	char url[300];
};

static void client_pipe_event(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct rpc_client *c = arg;

	(void)p;
	pthread_mutex_lock(&c->lock);
	c->connected = ev == NNG_PIPE_EV_ADD_POST;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

/* Waits until a connection (TLS handshake included) is up, or timeout. */
static int wait_connected(struct rpc_client *c)
{
	struct timespec dl;
	int ret = 0;

	util_deadline(&dl, (unsigned)c->timeout_ms);
	pthread_mutex_lock(&c->lock);
	while (!c->connected && ret == 0)
		ret = pthread_cond_timedwait(&c->cond, &c->lock, &dl);
	bool up = c->connected;
	pthread_mutex_unlock(&c->lock);
	return up ? 0 : -ETIMEDOUT;
}

int rpc_client_open(struct rpc_client **cp, const struct rpc_client_opts *o, char *err,
                    size_t errlen)
{
	struct rpc_client *c;
	char host[256], port[16];
	bool tls;
	int rv, ret, fd;

	ret = rpc_parse_url(o->url, &tls, host, sizeof(host), port, sizeof(port), err, errlen);
	if (ret < 0)
		return ret;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	c->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 30000;
	c->max_msg = o->max_msg ? o->max_msg : RPC_DEFAULT_MAX_MSG;
	snprintf(c->url, sizeof(c->url), "%s", o->url);
	uint64_t seed;
	util_random(&seed, sizeof(seed));
	atomic_init(&c->next_id, (seed >> 16) | 1);

	/* A plain TCP probe first: it bounds the connect time and tells a host
	 * that is down (refused / unreachable / timeout) from a TLS problem. */
	fd = net_connect(host, port, c->timeout_ms, err, errlen);
	if (fd < 0) {
		ret = fd;
		goto fail;
	}
	close(fd);

	if ((rv = nng_req0_open(&c->sock)) != 0)
		goto nngfail;
	nng_socket_set_ms(c->sock, NNG_OPT_RECVTIMEO, c->timeout_ms);
	nng_socket_set_ms(c->sock, NNG_OPT_SENDTIMEO, c->timeout_ms);
	/* never resend a request on a timer: operations are not idempotent */
	nng_socket_set_ms(c->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, c->max_msg);
	if ((rv = nng_dialer_create(&c->dialer, c->sock, o->url)) != 0)
		goto nngfail;
	if (tls) {
		if (!o->ca_pem || !o->server_name) {
			snprintf(err, errlen, "%s: no pinned certificate to verify the host with",
			         o->url);
			ret = -EACCES;
			goto fail;
		}
		if ((rv = nng_tls_config_alloc(&c->tls, NNG_TLS_MODE_CLIENT)) != 0 ||
		    (rv = nng_tls_config_ca_chain(c->tls, o->ca_pem, NULL)) != 0 ||
		    (rv = nng_tls_config_server_name(c->tls, o->server_name)) != 0 ||
		    (rv = nng_tls_config_auth_mode(c->tls, NNG_TLS_AUTH_MODE_REQUIRED)) != 0 ||
		    (rv = nng_dialer_set_ptr(c->dialer, NNG_OPT_TLS_CONFIG, c->tls)) != 0)
			goto nngfail;
	}
	nng_dialer_set_ms(c->dialer, NNG_OPT_RECONNMINT, 100);
	nng_dialer_set_ms(c->dialer, NNG_OPT_RECONNMAXT, 1000);
	/* Non-blocking dial, then a bounded wait for the connection: a host
	 * that accepts TCP but never completes the handshake (hung hostd)
	 * must not hang the client. A certificate that fails verification
	 * never connects either, so callers verify the thumbprint first
	 * (cert_fetch_peer) to tell the two apart. */
	nng_pipe_notify(c->sock, NNG_PIPE_EV_ADD_POST, client_pipe_event, c);
	nng_pipe_notify(c->sock, NNG_PIPE_EV_REM_POST, client_pipe_event, c);
	if ((rv = nng_dialer_start(c->dialer, NNG_FLAG_NONBLOCK)) != 0)
		goto nngfail;
	if (wait_connected(c) < 0) {
		snprintf(err, errlen,
		         "%s accepted the connection but completed no %shandshake within %d ms: "
		         "is hostd there hung or overloaded?",
		         o->url, tls ? "TLS " : "", c->timeout_ms);
		ret = -ETIMEDOUT;
		goto fail;
	}
	*cp = c;
	return 0;
nngfail:
	snprintf(err, errlen, "%s: %s", o->url, nng_strerror(rv));
	ret = rpc_nng_errno(rv);
fail:
	rpc_client_close(c);
	return ret;
}

int rpc_client_call(struct rpc_client *c, const char *session, Vmk__Request *req, struct arena *a,
                    Vmk__Response **resp, char *err, size_t errlen)
{
	Vmk__RequestHeader hdr = VMK__REQUEST_HEADER__INIT;
	nng_msg *msg = NULL;
	size_t n;
	int rv;

	hdr.version = RPC_PROTOCOL_VERSION;
	hdr.request_id = atomic_fetch_add(&c->next_id, 1);
	hdr.session = (char *)(session ? session : "");
	req->header = &hdr;

	n = vmk__request__get_packed_size(req);
	if (n > c->max_msg) {
		snprintf(err, errlen, "request of %zu bytes exceeds the %zu-byte message limit", n,
		         c->max_msg);
		req->header = NULL;
		return -EMSGSIZE;
	}
	if ((rv = nng_msg_alloc(&msg, n)) != 0)
		goto nngfail;
	vmk__request__pack(req, nng_msg_body(msg));
	req->header = NULL;
	if ((rv = nng_sendmsg(c->sock, msg, 0)) != 0) {
		nng_msg_free(msg);
		goto nngfail;
	}
	msg = NULL;
	if ((rv = nng_recvmsg(c->sock, &msg, 0)) != 0)
		goto nngfail;
	*resp = vmk__response__unpack(&a->pb, nng_msg_len(msg), nng_msg_body(msg));
	nng_msg_free(msg);
	if (!*resp) {
		snprintf(err, errlen, "%s sent a malformed response", c->url);
		return -EBADMSG;
	}
	if ((*resp)->request_id != hdr.request_id && (*resp)->request_id != 0) {
		snprintf(err, errlen, "%s answered request %llu, expected %llu", c->url,
		         (unsigned long long)(*resp)->request_id,
		         (unsigned long long)hdr.request_id);
		return -EBADMSG;
	}
	return 0;
nngfail:
	if (rv == NNG_ETIMEDOUT)
		snprintf(err, errlen, "no answer from %s within %d ms: is hostd running there?",
		         c->url, c->timeout_ms);
	else
		snprintf(err, errlen, "%s: %s", c->url, nng_strerror(rv));
	return rpc_nng_errno(rv);
}

void rpc_client_close(struct rpc_client *c)
{
	if (!c)
		return;
	nng_close(c->sock);
	if (c->tls)
		nng_tls_config_free(c->tls);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	free(c);
}
