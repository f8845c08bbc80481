#include "inventory.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "confload.h"
#include "datastore.h"
#include "dispatch.h"
#include "events.h"
#include "log.h"
#include "util.h"
#include "ft.h"
#include "inventory_int.h"
#include "relocate.h"
#include "vmlock.h"
#include "vmm/disk.h"
#include "vmsnap.h"
#include "vmrun.h"
#include "vmm/vmcfg.h"

#define INVENTORY_FILE "inventory.cfg"

struct vm *inv_find(struct hostd_inventory *inv, const char *name)
{
	for (size_t i = 0; i < inv->n; i++)
		if (strcmp(inv->vms[i]->name, name) == 0)
			return inv->vms[i];
	return NULL;
}

/* Loads (or reloads) the .vmx of v; an error marks it invalid. */
void inv_reload(struct vm *v)
{
	char err[600];

	if (v->valid)
		vmcfg_free(&v->cfg);
	v->valid = vmcfg_load(v->path, &v->cfg, err, sizeof(err)) == 0;
	if (v->valid) {
		snprintf(v->name, sizeof(v->name), "%s", v->cfg.name);
		v->error[0] = '\0';
	} else {
		snprintf(v->error, sizeof(v->error), "%s", err);
	}
}

/* Writes the list of .vmx paths; lock held. */
int inv_save(struct hostd_inventory *inv)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	int ret;

	if (!f)
		return -ENOMEM;
	fprintf(f, "# written by hostd: the registered VMs\nvms = (");
	for (size_t i = 0; i < inv->n; i++) {
		fprintf(f, "%s\n  { path = ", i ? "," : "");
		conf_put_string(f, inv->vms[i]->path);
		fprintf(f, "; datastore = ");
		conf_put_string(f, inv->vms[i]->datastore);
		fprintf(f, "; state = ");
		conf_put_string(f, vm_state_name(inv->vms[i]->state));
		fprintf(f, "; }");
	}
	fprintf(f, "\n);\n");
	if (fclose(f) != 0) {
		free(buf);
		return -ENOMEM;
	}
	ret = util_write_file_atomic(inv->file, buf, len, 0644);
	free(buf);
	return ret;
}

struct vm *inv_add(struct hostd_inventory *inv, const char *path, const char *ds)
{
	struct vm *v;

	if (inv->n == INVENTORY_MAX || !(v = calloc(1, sizeof(*v))))
		return NULL;
	snprintf(v->path, sizeof(v->path), "%s", path);
	snprintf(v->datastore, sizeof(v->datastore), "%s", ds);
	snprintf(v->dir, sizeof(v->dir), "%s", path);
	if (strrchr(v->dir, '/'))
		*strrchr(v->dir, '/') = '\0';
	/* until it loads: the directory name */
	const char *slash = strrchr(path, '/');
	snprintf(v->name, sizeof(v->name), "%.*s",
	         slash ? (int)(strrchr(path, '.') - slash - 1) : 0, slash ? slash + 1 : "");
	inv_reload(v);
	v->state = v->valid ? VMS_POWERED_OFF : VMS_INVALID;
	snprintf(v->rundir, sizeof(v->rundir), "%s/run/%s", inv->hcfg->state_dir, v->name);
	inv->vms[inv->n++] = v;
	return v;
}

void inv_drop(struct hostd_inventory *inv, struct vm *v)
{
	hostd_ft_clear(v); /* its ft.info goes with it */
	for (size_t i = 0; i < inv->n; i++) {
		if (inv->vms[i] == v) {
			memmove(&inv->vms[i], &inv->vms[i + 1], (inv->n - i - 1) * sizeof(v));
			inv->n--;
			break;
		}
	}
	if (v->valid)
		vmcfg_free(&v->cfg);
	free(v);
}

int hostd_inventory_init(struct hostd_inventory **ip, const struct hostd_config *cfg,
                         struct hostd_datastores *ds)
{
	struct hostd_inventory *inv = calloc(1, sizeof(*inv));
	config_t c;
	char err[600];

	if (!inv)
		return -ENOMEM;
	pthread_mutex_init(&inv->lock, NULL);
	inv->hcfg = cfg;
	inv->ds = ds;
	snprintf(inv->file, sizeof(inv->file), "%s/%s", cfg->state_dir, INVENTORY_FILE);
	int ret = conf_read(&c, inv->file, 1u << 20, err, sizeof(err));
	if (ret == 0) {
		config_setting_t *l = config_lookup(&c, "vms");
		for (int i = 0; l && i < config_setting_length(l); i++) {
			config_setting_t *e = config_setting_get_elem(l, (unsigned)i);
			const char *p = NULL, *dsname = "", *st = "";
			struct vm *v;
			config_setting_lookup_string(e, "path", &p);
			config_setting_lookup_string(e, "datastore", &dsname);
			config_setting_lookup_string(e, "state", &st);
			if (p && p[0] == '/' && strlen(p) < PATH_MAX &&
			    (v = inv_add(inv, p, dsname))) {
				/* what it was when hostd last saw it; vmrun re-attaches */
				int k = vm_state_parse(st);
				if (v->valid && k >= 0 && k != VMS_INVALID)
					v->state = (enum vm_state)k;
				continue;
			}
			log_warn("%s: entry %d skipped (not an absolute .vmx path)", inv->file, i);
		}
		for (size_t i = 0; i < inv->n; i++)
			if (!inv->vms[i]->valid)
				log_warn("vm %s is invalid: %s", inv->vms[i]->name,
				         inv->vms[i]->error);
	} else if (ret != -ENOENT) {
		log_warn("%s; the inventory starts empty (fix or remove the file)", err);
	}
	config_destroy(&c);
	*ip = inv;
	return 0;
}

void hostd_inventory_free(struct hostd_inventory *inv)
{
	if (!inv)
		return;
	while (inv->n)
		inv_drop(inv, inv->vms[inv->n - 1]);
	pthread_mutex_destroy(&inv->lock);
	free(inv);
}

/* ---- handlers ---- */

static Vmk__VmInfo *info(struct hostd_call *call, const struct vm *v)
{
	Vmk__VmInfo *i = arena_alloc(call->a, sizeof(*i));

	if (!i)
		return NULL;
	vmk__vm_info__init(i);
	i->name = arena_strdup(call->a, v->name);
	i->host = call->h->cfg.name;
	i->path = arena_strdup(call->a, v->path);
	i->datastore = arena_strdup(call->a, v->datastore);
	i->ft_role = arena_strdup(call->a, v->ft_role);
	if (!v->valid) {
		i->state = "invalid";
		i->error = arena_strdup(call->a, v->error);
		return i;
	}
	i->state = (char *)vm_state_name(v->state);
	i->pid = v->pid;
	if (v->pid && v->started_ms) {
		uint64_t now = util_wall_ms();
		i->uptime_ms = now > v->started_ms ? now - v->started_ms : 0;
	}
	i->serial_log = arena_strdup(call->a, v->cfg.serial_log);
	char root[PATH_MAX];
	size_t rl;
	if (hostd_datastore_path(call->h->datastores, v->datastore, root, sizeof(root)) == 0 &&
	    (rl = strlen(root)) && !strncmp(v->path, root, rl) && v->path[rl] == '/')
		i->datastore_path = arena_printf(call->a, "%s:%s", v->datastore, v->path + rl + 1);
	i->state_reason = arena_strdup(call->a, v->reason);
	struct vmlock_owner o;
	i->lock_owner = vmlock_read(v->dir, &o, NULL, 0) == 0 ? arena_strdup(call->a, o.host) : "";
	i->vcpus = v->cfg.vcpus;
	i->memory_mib = v->cfg.memory_mib;
	i->uuid = arena_strdup(call->a, v->cfg.uuid);
	i->kernel = arena_strdup(call->a, v->cfg.kernel);
	i->cmdline = arena_strdup(call->a, v->cfg.cmdline);
	i->disk_bytes = arena_calloc(call->a, v->cfg.ndisks + 1, sizeof(uint64_t));
	i->disk_parents = arena_calloc(call->a, v->cfg.ndisks + 1, sizeof(char *));
	for (unsigned k = 0; i->disk_bytes && i->disk_parents && k < v->cfg.ndisks; k++) {
		struct stat st;
		char parent[300] = "", e[200];
		uint64_t size = 0;
		/* what the guest sees: a delta's disk size (its header), not its file's */
		if (vmm_delta_info(v->cfg.disks[k].path, parent, sizeof(parent), &size, NULL, e,
		                   sizeof(e)) < 0) {
			size = stat(v->cfg.disks[k].path, &st) == 0 ? (uint64_t)st.st_size : 0;
			parent[0] = '\0';
		}
		i->disk_bytes[i->n_disk_bytes++] = size;
		i->disk_parents[i->n_disk_parents++] = arena_strdup(call->a, parent);
	}
	i->disks = arena_calloc(call->a, v->cfg.ndisks + 1, sizeof(char *));
	for (unsigned k = 0; i->disks && k < v->cfg.ndisks; k++)
		i->disks[i->n_disks++] = arena_strdup(call->a, v->cfg.disks[k].path);
	i->nics = arena_calloc(call->a, v->cfg.nnics + 1, sizeof(char *));
	for (unsigned k = 0; i->nics && k < v->cfg.nnics; k++)
		i->nics[i->n_nics++] = arena_strdup(call->a, v->cfg.nics[k].portgroup);
	return i;
}

int hostd_op_vm_list(struct hostd_call *call, const Vmk__Request *req)
{
	struct hostd_inventory *inv = call->h->inventory;
	Vmk__VmListResponse *r = arena_alloc(call->a, sizeof(*r));

	(void)req;
	if (!r)
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED, "out of memory");
	vmk__vm_list_response__init(r);
	pthread_mutex_lock(&inv->lock);
	r->vms = arena_calloc(call->a, inv->n + 1, sizeof(*r->vms));
	for (size_t i = 0; r->vms && i < inv->n; i++)
		if ((r->vms[r->n_vms] = info(call, inv->vms[i])))
			r->n_vms++;
	pthread_mutex_unlock(&inv->lock);
	call->resp->body_case = VMK__RESPONSE__BODY_VM_LIST;
	call->resp->vm_list = r;
	return VMK__STATUS__STATUS_OK;
}

int hostd_op_vm_get(struct hostd_call *call, const Vmk__Request *req)
{
	struct hostd_inventory *inv = call->h->inventory;
	int status = VMK__STATUS__STATUS_OK;

	pthread_mutex_lock(&inv->lock);
	struct vm *v = inv_find(inv, req->vm_get->name);
	if (!v)
		status = hostd_fail(call, VMK__STATUS__STATUS_NOT_FOUND,
		                    "no VM named \"%s\" on this host; see vm list",
		                    req->vm_get->name);
	else if ((call->resp->vm = info(call, v))) {
		char *text = NULL;
		size_t tl = 0;
		if (util_read_file(v->path, 1u << 20, &text, &tl) == 0) {
			call->resp->vm->vmx_text = arena_strdup(call->a, text);
			free(text);
		}
		struct relocate_file files[RELOCATE_MAX_FILES];
		size_t nf = 0;
		Vmk__VmInfo *vi = call->resp->vm;
		relocate_list_files(v->dir, files, RELOCATE_MAX_FILES, &nf);
		vi->files = arena_calloc(call->a, nf + 1, sizeof(*vi->files));
		for (size_t k = 0; vi->files && k < nf; k++) {
			Vmk__VmFile *f = arena_alloc(call->a, sizeof(*f));
			if (!f)
				break;
			vmk__vm_file__init(f);
			f->name = arena_strdup(call->a, files[k].name);
			f->size = files[k].size;
			f->allocated = files[k].allocated;
			vi->files[vi->n_files++] = f;
		}
		call->resp->vm->events =
		        hostd_events_of(call->h, call->a, v->name, 20, &call->resp->vm->n_events);
		call->resp->body_case = VMK__RESPONSE__BODY_VM;
	}
	char rundir[PATH_MAX] = "";
	if (v && v->pid && call->resp->vm)
		snprintf(rundir, sizeof(rundir), "%s", v->rundir);
	pthread_mutex_unlock(&inv->lock);
	/* a running guest: the CPU model it was given (what a migration needs) */
	if (rundir[0])
		vmrun_vmx_cpu(rundir, call->a, &call->resp->vm->cpu_model,
		              &call->resp->vm->cpu_features, &call->resp->vm->n_cpu_features);
	return status;
}

/* "DS:path" on a datastore, or an absolute path, to a file that exists. */
static int kernel_path(struct hostd_call *call, const char *k, char *out, size_t outlen)
{
	const char *colon = strchr(k, ':');
	struct stat st;

	if (k[0] == '/') {
		snprintf(out, outlen, "%s", k);
	} else if (colon) {
		char ds[64], dir[PATH_MAX];
		snprintf(ds, sizeof(ds), "%.*s", (int)(colon - k), k);
		if (hostd_datastore_path(call->h->datastores, ds, dir, sizeof(dir)) < 0)
			return hostd_fail(call, VMK__STATUS__STATUS_NOT_FOUND,
			                  "--kernel %s: no datastore named \"%s\"", k, ds);
		if (strstr(colon + 1, ".."))
			return hostd_fail(call, VMK__STATUS__STATUS_USAGE,
			                  "--kernel %s: '..' is not allowed in a datastore path",
			                  k);
		snprintf(out, outlen, "%s/%s", dir, colon + 1);
	} else {
		return hostd_fail(call, VMK__STATUS__STATUS_USAGE,
		                  "--kernel %s: give an absolute path or DATASTORE:PATH", k);
	}
	if (stat(out, &st) < 0 || !S_ISREG(st.st_mode))
		return hostd_fail(call, VMK__STATUS__STATUS_NOT_FOUND,
		                  "--kernel %s: %s is not a file on this host", k, out);
	return 0;
}

static uint64_t host_memory_mib(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
	return pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size >> 20 : 0;
}

int hostd_op_vm_create(struct hostd_call *call, const Vmk__Request *req)
{
	struct hostd_inventory *inv = call->h->inventory;
	const Vmk__VmCreateRequest *r = req->vm_create;
	char why[256], dsdir[PATH_MAX], kernel[PATH_MAX], dir[PATH_MAX], vmx[PATH_MAX + 100];
	const char *ds = r->datastore;
	int status;

	if (!util_valid_name(r->name, VM_NAME_MAX, why, sizeof(why)))
		return hostd_fail(call, VMK__STATUS__STATUS_USAGE, "VM name \"%.100s\": %s",
		                  r->name, why);
	uint64_t host_mib = host_memory_mib();
	if (r->memory_mib < VMCFG_MIN_MIB || r->memory_mib > VMCFG_MAX_MIB)
		return hostd_fail(call, VMK__STATUS__STATUS_USAGE,
		                  "-m %u MiB is out of range; use %d to %d", r->memory_mib,
		                  VMCFG_MIN_MIB, VMCFG_MAX_MIB);
	if (host_mib && r->memory_mib > host_mib)
		return hostd_fail(call, VMK__STATUS__STATUS_USAGE,
		                  "-m %u MiB is more than this host's %llu MiB of memory",
		                  r->memory_mib, (unsigned long long)host_mib);
	if (r->vcpus < 1 || r->vcpus > VMCFG_MAX_VCPUS)
		return hostd_fail(call, VMK__STATUS__STATUS_USAGE, "-c %u vCPUs: use 1 to %d",
		                  r->vcpus, VMCFG_MAX_VCPUS);
	if (r->n_disk_mib > VMCFG_MAX_DISKS || r->n_nics > VMCFG_MAX_NICS)
		return hostd_fail(call, VMK__STATUS__STATUS_USAGE, "at most %d disks and %d NICs",
		                  VMCFG_MAX_DISKS, VMCFG_MAX_NICS);
	if (strlen(r->cmdline) > 2047 || strchr(r->cmdline, '\n'))
		return hostd_fail(call, VMK__STATUS__STATUS_USAGE,
		                  "--cmdline: at most 2047 bytes on one line");
	for (size_t i = 0; i < r->n_disk_mib; i++)
		if (r->disk_mib[i] < 1 || r->disk_mib[i] > (1u << 22))
			return hostd_fail(call, VMK__STATUS__STATUS_USAGE,
			                  "--disk %u MiB: use 1 to 4194304 MiB", r->disk_mib[i]);
	for (size_t i = 0; i < r->n_nics; i++)
		if (!r->nics[i][0] || strlen(r->nics[i]) > 64 || strchr(r->nics[i], '"'))
			return hostd_fail(
			        call, VMK__STATUS__STATUS_USAGE,
			        "--nic \"%.70s\": a port group name of 1 to 64 characters",
			        r->nics[i]);
	if ((status = kernel_path(call, r->kernel, kernel, sizeof(kernel))) != 0)
		return status;
	if (!ds[0]) {
		ds = call->h->cfg.ndatastores ? call->h->cfg.datastores[0].name : "";
	}
	if (hostd_datastore_path(call->h->datastores, ds, dsdir, sizeof(dsdir)) < 0)
		return hostd_fail(call, VMK__STATUS__STATUS_NOT_FOUND,
		                  "no datastore named \"%s\"; see storage datastore list", ds);
	snprintf(dir, sizeof(dir), "%s/%s", dsdir, r->name);
	snprintf(vmx, sizeof(vmx), "%s/%s.vmx", dir, r->name);

	pthread_mutex_lock(&inv->lock);
	if (inv_find(inv, r->name)) {
		status = hostd_fail(call, VMK__STATUS__STATUS_CONFLICT,
		                    "a VM named %s is already registered on this host", r->name);
		goto out;
	}
	if (mkdir(dir, 0755) < 0) {
		status = hostd_fail(call,
		                    errno == EEXIST ? VMK__STATUS__STATUS_CONFLICT
		                                    : VMK__STATUS__STATUS_FAILED,
		                    "%s: %s%s", dir, strerror(errno),
		                    errno == EEXIST ? " (register it, or pick another name)" : "");
		goto out;
	}
	char uuid[37];
	util_uuid4(uuid);
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	fprintf(f, "vm = {\n  name = ");
	conf_put_string(f, r->name);
	fprintf(f, ";\n  uuid = \"%s\";\n", uuid);
	fprintf(f, "  memory_mib = %u;\n  vcpus = %u;\n  kernel = ", r->memory_mib, r->vcpus);
	conf_put_string(f, kernel);
	fprintf(f, ";\n  cmdline = ");
	conf_put_string(f, r->cmdline);
	fprintf(f, ";\n};\n");
	if (r->n_disk_mib) {
		fprintf(f, "disks = (");
		for (size_t i = 0; i < r->n_disk_mib; i++)
			fprintf(f, "%s { path = \"disk%zu.img\"; }", i ? "," : "", i);
		fprintf(f, " );\n");
	}
	if (r->n_nics) {
		fprintf(f, "nics = (");
		for (size_t i = 0; i < r->n_nics; i++) {
			fprintf(f, "%s { portgroup = ", i ? "," : "");
			conf_put_string(f, r->nics[i]);
			fprintf(f, "; }");
		}
		fprintf(f, " );\n");
	}
	fclose(f);
	int ret = util_write_file_atomic(vmx, text, len, 0644);
	free(text);
	for (size_t i = 0; ret == 0 && i < r->n_disk_mib; i++) {
		char img[PATH_MAX + 32];
		snprintf(img, sizeof(img), "%s/disk%zu.img", dir, i);
		int fd = open(img, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0 || ftruncate(fd, (off_t)r->disk_mib[i] << 20) < 0)
			ret = -errno;
		if (fd >= 0)
			close(fd);
	}
	struct vm *v = ret == 0 ? inv_add(inv, vmx, ds) : NULL;
	if (v && !v->valid) {
		snprintf(why, sizeof(why), "%s", v->error);
		inv_drop(inv, v);
		v = NULL;
		ret = -EINVAL;
	}
	if (!v || (ret = inv_save(inv)) < 0) {
		if (v)
			inv_drop(inv, v);
		util_rm_tree(dir);
		status = hostd_fail(call, VMK__STATUS__STATUS_FAILED, "vm %s not created: %s",
		                    r->name,
		                    ret == -EINVAL ? why : strerror(ret < 0 ? -ret : ENOMEM));
		goto out;
	}
	call->resp->vm = info(call, v);
	call->resp->body_case = VMK__RESPONSE__BODY_VM;
	hostd_event(call->h, r->name, call->user, "created in %s (%u MiB, %u vCPUs)", dir,
	            r->memory_mib, r->vcpus);
	status = VMK__STATUS__STATUS_OK;
out:
	pthread_mutex_unlock(&inv->lock);
	return status;
}

int hostd_op_vm_destroy(struct hostd_call *call, const Vmk__Request *req)
{
	struct hostd_inventory *inv = call->h->inventory;
	char dir[PATH_MAX];
	int status = VMK__STATUS__STATUS_OK;

	pthread_mutex_lock(&inv->lock);
	struct vm *v = inv_find(inv, req->vm_destroy->name);
	if (!v) {
		status = hostd_fail(call, VMK__STATUS__STATUS_NOT_FOUND,
		                    "no VM named \"%s\" on this host; see vm list",
		                    req->vm_destroy->name);
		goto out;
	}
	char why[400];
	struct vmlock_owner o;
	if (vm_state_check(v->state, VMOP_DESTROY, v->name, why, sizeof(why)) < 0) {
		status = hostd_fail(call, VMK__STATUS__STATUS_CONFLICT, "%s", why);
		goto out;
	}
	if (vmlock_read(v->dir, &o, NULL, 0) == 0) {
		status =
		        hostd_fail(call, VMK__STATUS__STATUS_CONFLICT,
		                   "cannot destroy VM %s: it runs on host %s (%s), which holds its "
		                   "datastore lock; power it off there first",
		                   v->name, o.host, o.addr);
		goto out;
	}
	char who[PATH_MAX + 100];
	if (vmsnap_pinned(v->dir, v->name, who, sizeof(who))) {
		status = hostd_fail(
		        call, VMK__STATUS__STATUS_CONFLICT,
		        "cannot destroy VM %s: the linked clone in %s sits on its disks; "
		        "destroy that first",
		        v->name, who);
		goto out;
	}
	snprintf(dir, sizeof(dir), "%s", v->path);
	*strrchr(dir, '/') = '\0';
	char name[VM_NAME_MAX + 1];
	snprintf(name, sizeof(name), "%s", v->name);
	inv_drop(inv, v);
	inv_save(inv);
	/* only a directory that holds the VM's own .vmx is removed */
	int rm = util_rm_tree(dir);
	if (rm < 0)
		log_warn("vm %s: removing %s: %s", name, dir, strerror(-rm));
	call->resp->body_case = VMK__RESPONSE__BODY_EMPTY;
	hostd_event(call->h, name, call->user, "destroyed (%s removed)", dir);
out:
	pthread_mutex_unlock(&inv->lock);
	return status;
}

int hostd_op_vm_register(struct hostd_call *call, const Vmk__Request *req)
{
	struct hostd_inventory *inv = call->h->inventory;
	const char *p = req->vm_register->path, *colon = strchr(p, ':');
	char ds[64] = "", dir[PATH_MAX], path[PATH_MAX + 80], real[PATH_MAX];
	int status = VMK__STATUS__STATUS_OK;

	if (colon && p[0] != '/') {
		snprintf(ds, sizeof(ds), "%.*s", (int)(colon - p), p);
		if (hostd_datastore_path(call->h->datastores, ds, dir, sizeof(dir)) < 0)
			return hostd_fail(call, VMK__STATUS__STATUS_NOT_FOUND,
			                  "--path %s: no datastore named \"%s\"", p, ds);
		if (strstr(colon + 1, ".."))
			return hostd_fail(call, VMK__STATUS__STATUS_USAGE,
			                  "--path %s: '..' is not allowed in a datastore path", p);
		snprintf(path, sizeof(path), "%s/%s", dir, colon + 1);
	} else if (p[0] == '/') {
		snprintf(path, sizeof(path), "%s", p);
	} else {
		return hostd_fail(call, VMK__STATUS__STATUS_USAGE,
		                  "--path %s: give DATASTORE:DIR/NAME.vmx or an absolute path", p);
	}
	size_t pl = strlen(path);
	if (pl < 5 || strcmp(path + pl - 4, ".vmx") != 0)
		return hostd_fail(call, VMK__STATUS__STATUS_USAGE, "--path %s: not a .vmx file", p);
	if (!realpath(path, real))
		return hostd_fail(call, VMK__STATUS__STATUS_NOT_FOUND, "--path %s: %s: %s", p, path,
		                  strerror(errno));
	pthread_mutex_lock(&inv->lock);
	for (size_t i = 0; i < inv->n; i++) {
		if (strcmp(inv->vms[i]->path, real) == 0) {
			status = hostd_fail(call, VMK__STATUS__STATUS_CONFLICT,
			                    "%s is already registered as %s", real,
			                    inv->vms[i]->name);
			goto out;
		}
	}
	struct vm *v = inv_add(inv, real, ds);
	if (!v) {
		status = hostd_fail(call, VMK__STATUS__STATUS_CONFLICT,
		                    "the inventory is full (%d VMs)", INVENTORY_MAX);
		goto out;
	}
	if (!v->valid) {
		status =
		        hostd_fail(call, VMK__STATUS__STATUS_USAGE, "not registered: %s", v->error);
		inv_drop(inv, v);
		goto out;
	}
	for (size_t i = 0; i + 1 < inv->n; i++) {
		if (strcmp(inv->vms[i]->name, v->name) == 0) {
			status = hostd_fail(call, VMK__STATUS__STATUS_CONFLICT,
			                    "a VM named %s is already registered (%s)", v->name,
			                    inv->vms[i]->path);
			inv_drop(inv, v);
			goto out;
		}
	}
	int ret = inv_save(inv);
	if (ret < 0) {
		inv_drop(inv, v);
		status = hostd_fail(call, VMK__STATUS__STATUS_FAILED, "cannot write %s: %s",
		                    inv->file, strerror(-ret));
		goto out;
	}
	call->resp->vm = info(call, v);
	call->resp->body_case = VMK__RESPONSE__BODY_VM;
	hostd_event(call->h, v->name, call->user, "registered from %s", real);
out:
	pthread_mutex_unlock(&inv->lock);
	return status;
}

int hostd_op_vm_unregister(struct hostd_call *call, const Vmk__Request *req)
{
	struct hostd_inventory *inv = call->h->inventory;
	int status = VMK__STATUS__STATUS_OK;

	pthread_mutex_lock(&inv->lock);
	struct vm *v = inv_find(inv, req->vm_unregister->name);
	if (!v) {
		status = hostd_fail(call, VMK__STATUS__STATUS_NOT_FOUND,
		                    "no VM named \"%s\" on this host; see vm list",
		                    req->vm_unregister->name);
		goto out;
	}
	char why[400];
	if (vm_state_check(v->state, VMOP_UNREGISTER, v->name, why, sizeof(why)) < 0) {
		status = hostd_fail(call, VMK__STATUS__STATUS_CONFLICT, "%s", why);
		goto out;
	}
	hostd_event(call->h, v->name, call->user, "unregistered (its files stay in %s)", v->path);
	inv_drop(inv, v);
	inv_save(inv);
	call->resp->body_case = VMK__RESPONSE__BODY_EMPTY;
out:
	pthread_mutex_unlock(&inv->lock);
	return status;
}
