/* hostd: the per-host daemon. This header holds the host state every
 * handler sees and the handler calling convention of dispatch.c. */
#ifndef HOSTD_H
#define HOSTD_H

#include <stdarg.h>

#include "arena.h"
#include "cert.h"
#include "config.h"
#include "vmk.pb-c.h"

struct hostd_sessions;
struct hostd_datastores;
struct hostd_auth;
struct hostd_inventory;
struct hostd_vmrun;
struct hostd_tasks;
struct hostd_network;
struct hostd_nfc;

struct hostd {
	struct hostd_config cfg;
	struct hostd_auth *auth;
	struct hostd_sessions *sessions;
	struct hostd_datastores *datastores;
	struct hostd_inventory *inventory;
	struct hostd_tasks *tasks;     /* long operations (task.h) */
	struct hostd_vmrun *vmrun;     /* the supervisor of running VMs (vmrun.h) */
	struct hostd_network *network; /* VMkernel networking (network.h) */
	struct hostd_nfc *nfc;         /* the provisioning file copy service (nfcsvc.h) */
	char thumbprint[CERT_THUMBPRINT_LEN];
	uint64_t start_ms;
};

/* What a handler knows about the call it serves. */
struct hostd_call {
	struct hostd *h;
	struct arena *a;  /* allocate everything for the response here */
	const char *user; /* authenticated account ("" for login) */
	enum hostd_role role;
	Vmk__Response *resp;
};

/* Handlers return a Vmk__Status; on failure they set the message with
 * hostd_fail (which returns its status, so `return hostd_fail(...)`). */
typedef int (*hostd_handler_fn)(struct hostd_call *call, const Vmk__Request *req);

int hostd_fail(struct hostd_call *call, int status, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

#define HOSTD_PRODUCT "vmk"
#define HOSTD_VERSION "0.1.0"

#endif
