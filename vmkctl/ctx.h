/* The state one vmkctl invocation carries into a command handler. */
#ifndef VMKCTL_CTX_H
#define VMKCTL_CTX_H

#include "arena.h"
#include "hostconn.h"
#include "output.h"

struct vmkctl {
	struct hostconn_opts copts;
	struct hostconn conn;
	bool connected;
	struct arena a; /* per-command allocations, freed at exit */
	enum out_format fmt;
	char err[1200];
	bool printed; /* the command wrote its own output (vm console): nothing to render */
};

/* Connects on first use, then performs one call. Returns the exit code;
 * v->err holds the message when it is not 0. */
int vmkctl_call(struct vmkctl *v, Vmk__Request *req, Vmk__Response **resp);
/* The same with the response allocated in a instead of v->a (for calls
 * repeated many times, such as polling a task). */
int vmkctl_call_in(struct vmkctl *v, Vmk__Request *req, struct arena *a, Vmk__Response **resp);

/* d: a context for another host (a migration's or clone's destination),
 * with v's credentials and output format but no session file (a session
 * belongs to one host). vmkctl_peer_free closes it. */
void vmkctl_peer_init(struct vmkctl *d, const struct vmkctl *v, const char *server);
void vmkctl_peer_free(struct vmkctl *d);

/* vm get of a VM on v: the VM (allocated in v->a), or NULL with *ret the
 * exit code and v->err the message. */
const Vmk__VmInfo *vmkctl_vm_get(struct vmkctl *v, const char *name, int *ret);
/* The host a VM runs on, as vm get said (the server asked otherwise). */
const char *vmkctl_vm_host(const struct vmkctl *v, const Vmk__VmInfo *vm);

/* Asks the host to cancel a task, quietly (cleanup after a failure). */
int vmkctl_cancel_quiet(struct vmkctl *v, const char *task_id);

/* Sets v->err and returns code, for `return vmkctl_error(...)`. */
int vmkctl_error(struct vmkctl *v, int code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* The response body, checked to be the expected case; NULL (and exit code 1
 * with a message in v->err) when the host sent something else. */
#define VMKCTL_BODY(v, resp, kase, field)                                                          \
	((resp)->body_case == (kase) && (resp)->field ? (resp)->field                              \
	                                              : (vmkctl_error((v), 1,                      \
	                                                              "unexpected response from "  \
	                                                              "the host"),                 \
	                                                 NULL))

#endif
