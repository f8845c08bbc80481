/* A client's connection to one hostd: resolving -s / --lab, pinning the
 * host certificate by thumbprint, logging in (or reusing a session file).
 * vmkctl's, bench/ programs', and hostd's own when it calls other hosts
 * of its cluster (FT re-protect). */
#ifndef VMK_HOSTCONN_H
#define VMK_HOSTCONN_H

#include <stdbool.h>

#include "arena.h"
#include "cert.h"
#include "rpc.h"

struct hostconn_opts {
	const char *server; /* HOST[:PORT], lab host name, or a tcp:// / tls+tcp:// URL */
	const char *username;
	const char *password;
	const char *password_file;
	const char *thumbprint;
	const char *sessionfile;
	const char *lab; /* lab directory: hosts and credentials files */
	int timeout_ms;
	bool interactive;    /* may prompt for a password on the TTY */
	bool no_known_hosts; /* a daemon's: ~/.vmk/known_hosts is not written */
};

struct hostconn {
	struct hostconn_opts o;
	char url[300];
	char display[300]; /* "esx1 (198.18.0.11:4443)" for messages */
	char thumbprint[CERT_THUMBPRINT_LEN];
	char session[RPC_MAX_SESSION_LEN + 1];
	struct rpc_client *rpc;
	char err[1024];
};

/* The host names of a lab (its hosts file), at most max: 0 or -errno. */
int hostconn_lab_hosts(const char *lab, char (*names)[128], size_t max, size_t *n);

/* Resolves, connects and logs in. Returns an exit code (0, 3, 6, 1...) with
 * c->err set on failure. */
int hostconn_open(struct hostconn *c, const struct hostconn_opts *o);
/* One call; returns the exit code: the response's status, or 6/3/1 for
 * transport failures. c->err holds the message when it is not 0. A session
 * that expired is renewed once when a password is at hand. */
int hostconn_call(struct hostconn *c, Vmk__Request *req, struct arena *a, Vmk__Response **resp);
void hostconn_close(struct hostconn *c);

/* Exit code for a -errno from the rpc layer. */
int hostconn_errno_exit(int neg_errno);

#endif
