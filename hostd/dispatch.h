/* The one table of operations hostd serves: {op, privilege, handler}. */
#ifndef HOSTD_DISPATCH_H
#define HOSTD_DISPATCH_H

#include "hostd.h"

enum hostd_priv {
	PRIV_NONE,    /* no session needed (login) */
	PRIV_SESSION, /* any logged-in account */
	PRIV_READ,    /* System.Read: ReadOnly and Admin */
	PRIV_MODIFY,  /* System.Modify: Admin */
};

struct hostd_op {
	Vmk__Request__BodyCase op;
	const char *name;
	enum hostd_priv priv;
	hostd_handler_fn fn;
};

/* rpc_dispatch_fn for rpc_server_opts: arg is the struct hostd. */
void hostd_dispatch(void *arg, const Vmk__Request *req, Vmk__Response *resp, struct arena *a);

/* The table, for tests that check every op is covered. */
const struct hostd_op *hostd_ops(size_t *n);

/* handlers, one file per concern */
int hostd_op_login(struct hostd_call *call, const Vmk__Request *req);
int hostd_op_logout(struct hostd_call *call, const Vmk__Request *req);
int hostd_op_version_get(struct hostd_call *call, const Vmk__Request *req);
int hostd_op_cpu_get(struct hostd_call *call, const Vmk__Request *req);
int hostd_op_memory_get(struct hostd_call *call, const Vmk__Request *req);
int hostd_op_datastore_list(struct hostd_call *call, const Vmk__Request *req);
int hostd_op_datastore_add(struct hostd_call *call, const Vmk__Request *req);
int hostd_op_datastore_remove(struct hostd_call *call, const Vmk__Request *req);
int hostd_op_vm_create(struct hostd_call *call, const Vmk__Request *req);
int hostd_op_vm_list(struct hostd_call *call, const Vmk__Request *req);
int hostd_op_vm_get(struct hostd_call *call, const Vmk__Request *req);
int hostd_op_vm_destroy(struct hostd_call *call, const Vmk__Request *req);
int hostd_op_vm_register(struct hostd_call *call, const Vmk__Request *req);
int hostd_op_vm_unregister(struct hostd_call *call, const Vmk__Request *req);
int hostd_op_vm_power(struct hostd_call *call, const Vmk__Request *req);
int hostd_op_vm_console(struct hostd_call *call, const Vmk__Request *req);
int hostd_op_vm_process_list(struct hostd_call *call, const Vmk__Request *req);
int hostd_op_vm_process_kill(struct hostd_call *call, const Vmk__Request *req);
int hostd_op_vm_migrate_prepare(struct hostd_call *call, const Vmk__Request *req);
int hostd_op_vm_migrate(struct hostd_call *call, const Vmk__Request *req);
int hostd_op_vm_relocate_prepare(struct hostd_call *call, const Vmk__Request *req);
int hostd_op_vm_clone(struct hostd_call *call, const Vmk__Request *req);
int hostd_op_vm_snapshot(struct hostd_call *call, const Vmk__Request *req);
int hostd_op_vm_snapshot_list(struct hostd_call *call, const Vmk__Request *req);
int hostd_op_task_list(struct hostd_call *call, const Vmk__Request *req);
int hostd_op_task_get(struct hostd_call *call, const Vmk__Request *req);
int hostd_op_task_cancel(struct hostd_call *call, const Vmk__Request *req);
int hostd_op_netstack_list(struct hostd_call *call, const Vmk__Request *req);
int hostd_op_netstack_add(struct hostd_call *call, const Vmk__Request *req);
int hostd_op_netstack_remove(struct hostd_call *call, const Vmk__Request *req);
int hostd_op_portgroup_list(struct hostd_call *call, const Vmk__Request *req);
int hostd_op_interface_list(struct hostd_call *call, const Vmk__Request *req);
int hostd_op_interface_get(struct hostd_call *call, const Vmk__Request *req);
int hostd_op_interface_add(struct hostd_call *call, const Vmk__Request *req);
int hostd_op_interface_remove(struct hostd_call *call, const Vmk__Request *req);
int hostd_op_interface_set(struct hostd_call *call, const Vmk__Request *req);
int hostd_op_interface_ipv4_set(struct hostd_call *call, const Vmk__Request *req);
int hostd_op_interface_tag_add(struct hostd_call *call, const Vmk__Request *req);
int hostd_op_interface_tag_remove(struct hostd_call *call, const Vmk__Request *req);
int hostd_op_ping(struct hostd_call *call, const Vmk__Request *req);

#endif
