#include "dispatch.h"
#include "ft.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "log.h"
#include "rpc.h"
#include "session.h"
#include "util.h"

static const struct hostd_op ops[] = {
	{ VMK__REQUEST__BODY_LOGIN, "login", PRIV_NONE, hostd_op_login },
	{ VMK__REQUEST__BODY_LOGOUT, "logout", PRIV_SESSION, hostd_op_logout },
	{ VMK__REQUEST__BODY_VERSION_GET, "system.version.get", PRIV_READ, hostd_op_version_get },
	{ VMK__REQUEST__BODY_CPU_GET, "hardware.cpu.get", PRIV_READ, hostd_op_cpu_get },
	{ VMK__REQUEST__BODY_MEMORY_GET, "hardware.memory.get", PRIV_READ, hostd_op_memory_get },
	{ VMK__REQUEST__BODY_DATASTORE_LIST, "storage.datastore.list", PRIV_READ,
	  hostd_op_datastore_list },
	{ VMK__REQUEST__BODY_DATASTORE_ADD, "storage.datastore.add", PRIV_MODIFY,
	  hostd_op_datastore_add },
	{ VMK__REQUEST__BODY_DATASTORE_REMOVE, "storage.datastore.remove", PRIV_MODIFY,
	  hostd_op_datastore_remove },
	{ VMK__REQUEST__BODY_VM_CREATE, "vm.create", PRIV_MODIFY, hostd_op_vm_create },
	{ VMK__REQUEST__BODY_VM_LIST, "vm.list", PRIV_READ, hostd_op_vm_list },
	{ VMK__REQUEST__BODY_VM_GET, "vm.get", PRIV_READ, hostd_op_vm_get },
	{ VMK__REQUEST__BODY_VM_DESTROY, "vm.destroy", PRIV_MODIFY, hostd_op_vm_destroy },
	{ VMK__REQUEST__BODY_VM_REGISTER, "vm.register", PRIV_MODIFY, hostd_op_vm_register },
	{ VMK__REQUEST__BODY_VM_UNREGISTER, "vm.unregister", PRIV_MODIFY, hostd_op_vm_unregister },
	{ VMK__REQUEST__BODY_VM_POWER, "vm.power", PRIV_MODIFY, hostd_op_vm_power },
	{ VMK__REQUEST__BODY_VM_CONSOLE, "vm.console", PRIV_READ, hostd_op_vm_console },
	{ VMK__REQUEST__BODY_VM_PROCESS_LIST, "vm.process.list", PRIV_READ,
	  hostd_op_vm_process_list },
	{ VMK__REQUEST__BODY_VM_PROCESS_KILL, "vm.process.kill", PRIV_MODIFY,
	  hostd_op_vm_process_kill },
	{ VMK__REQUEST__BODY_VM_MIGRATE_PREPARE, "vm.migrate.prepare", PRIV_MODIFY,
	  hostd_op_vm_migrate_prepare },
	{ VMK__REQUEST__BODY_VM_MIGRATE, "vm.migrate", PRIV_MODIFY, hostd_op_vm_migrate },
	{ VMK__REQUEST__BODY_VM_FT_PREPARE, "vm.ft.prepare", PRIV_MODIFY, hostd_op_vm_ft_prepare },
	{ VMK__REQUEST__BODY_VM_FT_ENABLE, "vm.ft.enable", PRIV_MODIFY, hostd_op_vm_ft_enable },
	{ VMK__REQUEST__BODY_VM_FT, "vm.ft", PRIV_MODIFY, hostd_op_vm_ft },
	{ VMK__REQUEST__BODY_VM_RELOCATE_PREPARE, "vm.relocate.prepare", PRIV_MODIFY,
	  hostd_op_vm_relocate_prepare },
	{ VMK__REQUEST__BODY_VM_CLONE, "vm.clone", PRIV_MODIFY, hostd_op_vm_clone },
	{ VMK__REQUEST__BODY_VM_SNAPSHOT, "vm.snapshot", PRIV_MODIFY, hostd_op_vm_snapshot },
	{ VMK__REQUEST__BODY_VM_SNAPSHOT_LIST, "vm.snapshot.list", PRIV_READ,
	  hostd_op_vm_snapshot_list },
	{ VMK__REQUEST__BODY_TASK_LIST, "task.list", PRIV_READ, hostd_op_task_list },
	{ VMK__REQUEST__BODY_TASK_GET, "task.get", PRIV_READ, hostd_op_task_get },
	{ VMK__REQUEST__BODY_TASK_CANCEL, "task.cancel", PRIV_MODIFY, hostd_op_task_cancel },
	{ VMK__REQUEST__BODY_NETSTACK_LIST, "network.ip.netstack.list", PRIV_READ,
	  hostd_op_netstack_list },
	{ VMK__REQUEST__BODY_NETSTACK_ADD, "network.ip.netstack.add", PRIV_MODIFY,
	  hostd_op_netstack_add },
	{ VMK__REQUEST__BODY_NETSTACK_REMOVE, "network.ip.netstack.remove", PRIV_MODIFY,
	  hostd_op_netstack_remove },
	{ VMK__REQUEST__BODY_PORTGROUP_LIST, "network.vswitch.standard.portgroup.list", PRIV_READ,
	  hostd_op_portgroup_list },
	{ VMK__REQUEST__BODY_INTERFACE_LIST, "network.ip.interface.list", PRIV_READ,
	  hostd_op_interface_list },
	{ VMK__REQUEST__BODY_INTERFACE_GET, "network.ip.interface.get", PRIV_READ,
	  hostd_op_interface_get },
	{ VMK__REQUEST__BODY_INTERFACE_ADD, "network.ip.interface.add", PRIV_MODIFY,
	  hostd_op_interface_add },
	{ VMK__REQUEST__BODY_INTERFACE_REMOVE, "network.ip.interface.remove", PRIV_MODIFY,
	  hostd_op_interface_remove },
	{ VMK__REQUEST__BODY_INTERFACE_SET, "network.ip.interface.set", PRIV_MODIFY,
	  hostd_op_interface_set },
	{ VMK__REQUEST__BODY_INTERFACE_IPV4_SET, "network.ip.interface.ipv4.set", PRIV_MODIFY,
	  hostd_op_interface_ipv4_set },
	{ VMK__REQUEST__BODY_INTERFACE_TAG_ADD, "network.ip.interface.tag.add", PRIV_MODIFY,
	  hostd_op_interface_tag_add },
	{ VMK__REQUEST__BODY_INTERFACE_TAG_REMOVE, "network.ip.interface.tag.remove", PRIV_MODIFY,
	  hostd_op_interface_tag_remove },
	{ VMK__REQUEST__BODY_PING, "network.diag.ping", PRIV_MODIFY, hostd_op_ping },
};

const struct hostd_op *hostd_ops(size_t *n)
{
	*n = ARRAY_SIZE(ops);
	return ops;
}

int hostd_fail(struct hostd_call *call, int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	call->resp->error = arena_vprintf(call->a, fmt, ap);
	va_end(ap);
	if (!call->resp->error)
		call->resp->error = "out of memory";
	call->resp->status = (Vmk__Status)status;
	return status;
}

static bool role_allows(enum hostd_role role, enum hostd_priv priv)
{
	switch (priv) {
	case PRIV_NONE:
	case PRIV_SESSION:
		return true;
	case PRIV_READ:
		return role == ROLE_READONLY || role == ROLE_ADMIN;
	case PRIV_MODIFY:
		return role == ROLE_ADMIN;
	}
	return false;
}

void hostd_dispatch(void *arg, const Vmk__Request *req, Vmk__Response *resp, struct arena *a)
{
	struct hostd *h = arg;
	char user[65] = "";
	struct hostd_call call = {
		.h = h, .a = a, .user = "", .role = ROLE_NOACCESS, .resp = resp
	};
	const struct hostd_op *op = NULL;
	int ret;

	for (size_t i = 0; i < ARRAY_SIZE(ops); i++) {
		if (ops[i].op == req->body_case)
			op = &ops[i];
	}
	if (!op) {
		hostd_fail(&call, VMK__STATUS__STATUS_USAGE,
		           "operation %d is not served by this host; upgrade hostd",
		           (int)req->body_case);
		return;
	}
	if (op->priv != PRIV_NONE) {
		ret = hostd_session_check(h->sessions, req->header->session, user, &call.role);
		if (ret < 0) {
			hostd_fail(&call, VMK__STATUS__STATUS_DENIED,
			           ret == -ETIMEDOUT
			                   ? "session expired after %u s idle; log in again"
			                   : "not logged in (no valid session token); log in with "
			                     "-u USER and a password",
			           h->cfg.session_timeout_s);
			return;
		}
		call.user = user;
		if (!role_allows(call.role, op->priv)) {
			log_info("denied %s to %s (role %s)", op->name, user,
			         hostd_role_name(call.role));
			hostd_fail(&call, VMK__STATUS__STATUS_DENIED,
			           "%s: account %s (role %s) lacks the privilege %s", op->name,
			           user, hostd_role_name(call.role),
			           op->priv == PRIV_MODIFY ? "System.Modify" : "System.Read");
			return;
		}
	}
	ret = op->fn(&call, req);
	if (ret != VMK__STATUS__STATUS_OK)
		log_info("%s by %s: %s: %s", op->name, call.user[0] ? call.user : "-",
		         rpc_status_name(ret), resp->error ? resp->error : "");
	else
		log_debug("%s by %s: ok", op->name, call.user[0] ? call.user : "-");
}

int hostd_op_login(struct hostd_call *call, const Vmk__Request *req)
{
	const Vmk__LoginRequest *r = req->login;
	Vmk__LoginResponse *out;
	char token[SESSION_TOKEN_LEN + 1];
	enum hostd_role role;
	int ret;

	if (!r || !r->username || !r->password || strlen(r->username) > 64 ||
	    strlen(r->password) > 1024)
		return hostd_fail(call, VMK__STATUS__STATUS_USAGE,
		                  "login needs a username (at most 64 bytes) and a password");
	ret = hostd_auth_check(call->h->auth, r->username, r->password, &role);
	if (ret < 0) {
		log_warn("failed login for \"%s\"", r->username);
		return hostd_fail(call, VMK__STATUS__STATUS_DENIED,
		                  "login failed: wrong username or password");
	}
	ret = hostd_session_create(call->h->sessions, r->username, role, token);
	out = arena_alloc(call->a, sizeof(*out));
	if (ret < 0 || !out)
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED, "cannot create a session: %s",
		                  util_strerror(ret < 0 ? ret : -ENOMEM));
	vmk__login_response__init(out);
	out->session = arena_strdup(call->a, token);
	out->expires_in_s = call->h->cfg.session_timeout_s;
	out->role = (char *)hostd_role_name(role);
	explicit_bzero(token, sizeof(token));
	call->resp->body_case = VMK__RESPONSE__BODY_LOGIN;
	call->resp->login = out;
	log_info("login: %s (%s)", r->username, hostd_role_name(role));
	return VMK__STATUS__STATUS_OK;
}

int hostd_op_logout(struct hostd_call *call, const Vmk__Request *req)
{
	hostd_session_remove(call->h->sessions, req->header->session);
	return VMK__STATUS__STATUS_OK;
}
