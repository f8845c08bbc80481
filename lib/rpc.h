/* The control RPC: protobuf Request/Response (proto/vmk.proto) over nng
 * REQ/REP, on tls+tcp:// (default) or tcp:// (only where a config says
 * insecure = true). The server decodes every message once, bounded by
 * max_msg, and hands a validated request to its dispatch function. */
#ifndef VMK_RPC_H
#define VMK_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "vmk.pb-c.h"

#define RPC_PROTOCOL_VERSION 1
#define RPC_DEFAULT_MAX_MSG  (4u << 20)
#define RPC_MAX_SESSION_LEN  128
#define RPC_DEFAULT_PORT     "4443"

/* "ok", "failed", "usage", "denied", "not_found", "conflict", "timeout",
 * "cancelled" for the Vmk__Status values (= vmkctl exit codes). */
const char *rpc_status_name(int status);

/* -errno for an nng error code, so callers speak one error language. */
int rpc_nng_errno(int nng_rv);

/* ---- server ---- */

/* Fills resp (already initialised, status OK, request_id set) for req.
 * Everything it allocates comes from `a`, freed after the reply is sent.
 * Called concurrently from the worker threads. */
typedef void (*rpc_dispatch_fn)(void *arg, const Vmk__Request *req, Vmk__Response *resp,
                                struct arena *a);

struct rpc_server_opts {
	const char *url;      /* tls+tcp://ADDR:PORT, or tcp://ADDR:PORT when insecure */
	const char *cert_pem; /* TLS certificate and key, PEM */
	const char *key_pem;
	bool insecure;  /* permit tcp:// */
	size_t max_msg; /* bytes; 0 = RPC_DEFAULT_MAX_MSG */
	int workers;    /* concurrent requests; 0 = 8 */
	rpc_dispatch_fn dispatch;
	void *arg;
};

struct rpc_server;

int rpc_server_start(struct rpc_server **s, const struct rpc_server_opts *o, char *err,
                     size_t errlen);
/* Closes the socket, joins the workers, frees s. */
void rpc_server_stop(struct rpc_server *s);

/* Decodes and validates one request of len bytes. On failure returns
 * -EMSGSIZE or -EBADMSG and writes why (a message for the peer). */
int rpc_decode_request(const uint8_t *buf, size_t len, size_t max_msg, struct arena *a,
                       Vmk__Request **req, char *why, size_t whylen);

/* What a worker does with one raw message: decode, dispatch, encode. *out is
 * malloc'd (caller frees). Never fails for bad input: that gets an error
 * response. Returns -ENOMEM only. Exposed for tests and fuzzing. */
int rpc_handle_message(const struct rpc_server_opts *o, const uint8_t *in, size_t inlen,
                       uint8_t **out, size_t *outlen);

/* ---- client ---- */

struct rpc_client_opts {
	const char *url;         /* as for the server */
	const char *ca_pem;      /* pinned server certificate (tls) */
	const char *server_name; /* name to verify in it (its CN) */
	int timeout_ms;          /* per call and for connecting; 0 = 30 s */
	size_t max_msg;          /* largest response accepted; 0 = default */
};

struct rpc_client;

/* Connects within timeout_ms. -ECONNREFUSED, -ETIMEDOUT, -EHOSTUNREACH:
 * host not reachable or not answering; err says which. A server whose
 * certificate is not ca_pem never connects (-ETIMEDOUT): check the
 * certificate first with cert_fetch_peer for a precise error. */
int rpc_client_open(struct rpc_client **c, const struct rpc_client_opts *o, char *err,
                    size_t errlen);

/* Fills req->header (version, request id, session) and performs one call.
 * *resp is allocated in `a`. Returns 0 (then look at (*resp)->status) or
 * -errno with err set (-ETIMEDOUT when no answer within the timeout). */
int rpc_client_call(struct rpc_client *c, const char *session, Vmk__Request *req, struct arena *a,
                    Vmk__Response **resp, char *err, size_t errlen);

void rpc_client_close(struct rpc_client *c);

/* Splits "tls+tcp://host:port" into its parts (host without [] for IPv6).
 * -EINVAL with why for anything else. */
int rpc_parse_url(const char *url, bool *tls, char *host, size_t hostlen, char *port,
                  size_t portlen, char *why, size_t whylen);

#endif
