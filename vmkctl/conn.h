/* vmkctl's connection to one hostd: resolving -s / --lab, pinning the host
 * certificate by thumbprint, logging in (or reusing a session file). Also
 * the library face of vmkctl, used by bench/ programs. */
#ifndef VMKCTL_CONN_H
#define VMKCTL_CONN_H

#include <stdbool.h>

#include "arena.h"
#include "cert.h"
#include "rpc.h"

struct vmkctl_conn_opts {
	const char *server; /* HOST[:PORT], lab host name, or a tcp:// / tls+tcp:// URL */
	const char *username;
	const char *password;
	const char *password_file;
	const char *thumbprint;
	const char *sessionfile;
	const char *lab; /* lab directory: hosts and credentials files */
	int timeout_ms;
	bool interactive; /* may prompt for a password on the TTY */
};

struct vmkctl_conn {
	struct vmkctl_conn_opts o;
	char url[300];
	char display[300]; /* "esx1 (198.18.0.11:4443)" for messages */
	char thumbprint[CERT_THUMBPRINT_LEN];
	char session[RPC_MAX_SESSION_LEN + 1];
	struct rpc_client *rpc;
	char err[1024];
};

/* The host names of a lab (its hosts file), at most max: 0 or -errno. */
int vmkctl_lab_hosts(const char *lab, char (*names)[128], size_t max, size_t *n);

/* Resolves, connects and logs in. Returns an exit code (0, 3, 6, 1...) with
 * c->err set on failure. */
int vmkctl_conn_open(struct vmkctl_conn *c, const struct vmkctl_conn_opts *o);
/* One call; returns the exit code: the response's status, or 6/3/1 for
 * transport failures. c->err holds the message when it is not 0. A session
 * that expired is renewed once when a password is at hand. */
int vmkctl_conn_call(struct vmkctl_conn *c, Vmk__Request *req, struct arena *a,
                     Vmk__Response **resp);
void vmkctl_conn_close(struct vmkctl_conn *c);

/* Exit code for a -errno from the rpc layer. */
int vmkctl_errno_exit(int neg_errno);

#endif
