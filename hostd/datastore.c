#include "datastore.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "confload.h"
#include "dispatch.h"
#include "log.h"
#include "util.h"

#define RUNTIME_FILE "datastores.cfg"

struct ds {
	char name[64];
	char path[PATH_MAX];
	bool shared;
	bool from_config;
	int line;
};

struct hostd_datastores {
	pthread_mutex_t lock;
	char state_file[PATH_MAX];
	const char *config_path;
	size_t n;
	struct ds tab[DATASTORE_MAX];
};

static struct ds *find(struct hostd_datastores *d, const char *name)
{
	for (size_t i = 0; i < d->n; i++) {
		if (strcmp(d->tab[i].name, name) == 0)
			return &d->tab[i];
	}
	return NULL;
}

/* Writes the runtime datastores; lock held. */
static int save_runtime(struct hostd_datastores *d)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	int ret;

	if (!f)
		return -ENOMEM;
	fprintf(f, "# written by hostd: datastores added with `storage datastore add`\n"
	           "datastores = (\n");
	bool first = true;
	for (size_t i = 0; i < d->n; i++) {
		if (d->tab[i].from_config)
			continue;
		fprintf(f, "%s  { name = ", first ? "" : ",\n");
		conf_put_string(f, d->tab[i].name);
		fprintf(f, "; path = ");
		conf_put_string(f, d->tab[i].path);
		fprintf(f, "; shared = %s; }", d->tab[i].shared ? "true" : "false");
		first = false;
	}
	fprintf(f, "\n);\n");
	if (fclose(f) != 0) {
		free(buf);
		return -ENOMEM;
	}
	ret = util_write_file_atomic(d->state_file, buf, len, 0644);
	free(buf);
	return ret;
}

static void load_runtime(struct hostd_datastores *d)
{
	config_t cfg;
	char why[256], err[600];
	int ret;

	ret = conf_read(&cfg, d->state_file, 1u << 20, err, sizeof(err));
	if (ret == -ENOENT)
		goto out;
	if (ret < 0) {
		log_warn("%s; runtime datastores not loaded (fix or remove the file)", err);
		goto out;
	}
	config_setting_t *list = config_lookup(&cfg, "datastores");
	for (int i = 0; list && i < config_setting_length(list); i++) {
		config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
		const char *name = NULL, *path = NULL;
		int shared = 0;
		int line = config_setting_source_line(g);
		if (!config_setting_lookup_string(g, "name", &name) ||
		    !config_setting_lookup_string(g, "path", &path)) {
			log_warn("%s:%d: datastore entry without name or path skipped",
			         d->state_file, line);
			continue;
		}
		config_setting_lookup_bool(g, "shared", &shared);
		if (!util_valid_name(name, 63, why, sizeof(why)) || path[0] != '/' ||
		    strlen(path) >= PATH_MAX || find(d, name) || d->n == DATASTORE_MAX) {
			log_warn("%s:%d: datastore \"%s\" skipped (invalid, duplicate or too many)",
			         d->state_file, line, name);
			continue;
		}
		struct ds *e = &d->tab[d->n++];
		snprintf(e->name, sizeof(e->name), "%s", name);
		snprintf(e->path, sizeof(e->path), "%s", path);
		e->shared = shared;
		e->line = line;
	}
out:
	config_destroy(&cfg);
}

int hostd_datastores_init(struct hostd_datastores **dp, const struct hostd_config *cfg, char *err,
                          size_t errlen)
{
	struct hostd_datastores *d = calloc(1, sizeof(*d));
	int ret;

	if (!d)
		return -ENOMEM;
	pthread_mutex_init(&d->lock, NULL);
	d->config_path = cfg->path;
	snprintf(d->state_file, sizeof(d->state_file), "%s/%s", cfg->state_dir, RUNTIME_FILE);
	if (cfg->ndatastores > DATASTORE_MAX) {
		snprintf(err, errlen, "%s: %zu datastores; at most %d are supported", cfg->path,
		         cfg->ndatastores, DATASTORE_MAX);
		hostd_datastores_free(d);
		return -E2BIG;
	}
	for (size_t i = 0; i < cfg->ndatastores; i++) {
		struct ds *e = &d->tab[d->n++];
		snprintf(e->name, sizeof(e->name), "%s", cfg->datastores[i].name);
		snprintf(e->path, sizeof(e->path), "%s", cfg->datastores[i].path);
		e->shared = cfg->datastores[i].shared;
		e->from_config = true;
		e->line = cfg->datastores[i].line;
		ret = util_mkdir_p(e->path, 0755);
		if (ret < 0)
			log_warn("datastore %s: cannot create %s: %s (shown as inaccessible)",
			         e->name, e->path, util_strerror(ret));
	}
	load_runtime(d);
	*dp = d;
	return 0;
}

void hostd_datastores_free(struct hostd_datastores *d)
{
	if (!d)
		return;
	pthread_mutex_destroy(&d->lock);
	free(d);
}

int hostd_datastore_path(struct hostd_datastores *d, const char *name, char *out, size_t outlen)
{
	int ret = -ENOENT;

	pthread_mutex_lock(&d->lock);
	struct ds *e = find(d, name);
	if (e) {
		snprintf(out, outlen, "%s", e->path);
		ret = 0;
	}
	pthread_mutex_unlock(&d->lock);
	return ret;
}

bool hostd_datastore_shared(struct hostd_datastores *d, const char *name)
{
	pthread_mutex_lock(&d->lock);
	struct ds *e = find(d, name);
	bool shared = e && e->shared;
	pthread_mutex_unlock(&d->lock);
	return shared;
}

static Vmk__Datastore *ds_message(struct arena *a, const struct ds *e)
{
	Vmk__Datastore *m = arena_alloc(a, sizeof(*m));
	struct statvfs sv;

	if (!m)
		return NULL;
	vmk__datastore__init(m);
	m->name = arena_strdup(a, e->name);
	m->path = arena_strdup(a, e->path);
	m->shared = e->shared;
	m->source = e->from_config ? "config" : "runtime";
	if (statvfs(e->path, &sv) == 0) {
		m->capacity_bytes = (uint64_t)sv.f_blocks * sv.f_frsize;
		m->free_bytes = (uint64_t)sv.f_bavail * sv.f_frsize;
		m->accessible = access(e->path, R_OK | W_OK | X_OK) == 0;
	}
	return m;
}

int hostd_op_datastore_list(struct hostd_call *call, const Vmk__Request *req)
{
	struct hostd_datastores *d = call->h->datastores;
	Vmk__DatastoreListResponse *r = arena_alloc(call->a, sizeof(*r));
	struct ds snap[DATASTORE_MAX];
	size_t n;

	(void)req;
	if (!r)
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED, "out of memory");
	vmk__datastore_list_response__init(r);
	/* statvfs can block on a dead shared mount: never under the lock */
	pthread_mutex_lock(&d->lock);
	n = d->n;
	memcpy(snap, d->tab, n * sizeof(snap[0]));
	pthread_mutex_unlock(&d->lock);
	r->datastores = arena_calloc(call->a, n ? n : 1, sizeof(*r->datastores));
	if (!r->datastores)
		return hostd_fail(call, VMK__STATUS__STATUS_FAILED, "out of memory");
	for (size_t i = 0; i < n; i++) {
		r->datastores[i] = ds_message(call->a, &snap[i]);
		if (!r->datastores[i])
			return hostd_fail(call, VMK__STATUS__STATUS_FAILED, "out of memory");
	}
	r->n_datastores = n;
	call->resp->body_case = VMK__RESPONSE__BODY_DATASTORE_LIST;
	call->resp->datastore_list = r;
	return VMK__STATUS__STATUS_OK;
}

int hostd_op_datastore_add(struct hostd_call *call, const Vmk__Request *req)
{
	struct hostd_datastores *d = call->h->datastores;
	const Vmk__DatastoreAddRequest *r = req->datastore_add;
	char why[256], real[PATH_MAX];
	struct stat st;
	int status = VMK__STATUS__STATUS_OK, ret;

	if (!util_valid_name(r->name, 63, why, sizeof(why)))
		return hostd_fail(call, VMK__STATUS__STATUS_USAGE, "datastore name \"%s\": %s",
		                  r->name, why);
	if (r->path[0] != '/' || strlen(r->path) >= PATH_MAX)
		return hostd_fail(call, VMK__STATUS__STATUS_USAGE,
		                  "datastore %s: --path \"%s\" must be an absolute path", r->name,
		                  r->path);
	if (!realpath(r->path, real) || stat(real, &st) < 0)
		return hostd_fail(call, VMK__STATUS__STATUS_NOT_FOUND,
		                  "datastore %s: %s: %s; create the directory first", r->name,
		                  r->path, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return hostd_fail(call, VMK__STATUS__STATUS_USAGE,
		                  "datastore %s: %s is not a directory", r->name, r->path);
	if (access(real, R_OK | W_OK | X_OK) < 0)
		return hostd_fail(call, VMK__STATUS__STATUS_DENIED,
		                  "datastore %s: hostd cannot read and write %s: %s", r->name, real,
		                  strerror(errno));

	pthread_mutex_lock(&d->lock);
	if (find(d, r->name)) {
		status = hostd_fail(call, VMK__STATUS__STATUS_CONFLICT,
		                    "datastore %s already exists; pick another name or remove it "
		                    "first",
		                    r->name);
		goto out;
	}
	for (size_t i = 0; i < d->n; i++) {
		char other[PATH_MAX];
		if (realpath(d->tab[i].path, other) && strcmp(other, real) == 0) {
			status = hostd_fail(call, VMK__STATUS__STATUS_CONFLICT,
			                    "%s is already datastore %s", real, d->tab[i].name);
			goto out;
		}
	}
	if (d->n == DATASTORE_MAX) {
		status = hostd_fail(call, VMK__STATUS__STATUS_CONFLICT,
		                    "this host has %d datastores, the most it supports; remove one "
		                    "first",
		                    DATASTORE_MAX);
		goto out;
	}
	struct ds *e = &d->tab[d->n++];
	memset(e, 0, sizeof(*e));
	snprintf(e->name, sizeof(e->name), "%s", r->name);
	snprintf(e->path, sizeof(e->path), "%s", real);
	e->shared = r->shared;
	ret = save_runtime(d);
	if (ret < 0) {
		d->n--;
		status = hostd_fail(call, VMK__STATUS__STATUS_FAILED,
		                    "datastore %s not added: cannot write %s: %s", r->name,
		                    d->state_file, util_strerror(ret));
		goto out;
	}
	call->resp->datastore = ds_message(call->a, e);
	call->resp->body_case = VMK__RESPONSE__BODY_DATASTORE;
	log_info("datastore %s added at %s by %s", r->name, real, call->user);
out:
	pthread_mutex_unlock(&d->lock);
	return status;
}

int hostd_op_datastore_remove(struct hostd_call *call, const Vmk__Request *req)
{
	struct hostd_datastores *d = call->h->datastores;
	const Vmk__DatastoreRemoveRequest *r = req->datastore_remove;
	int status = VMK__STATUS__STATUS_OK, ret;

	pthread_mutex_lock(&d->lock);
	struct ds *e = find(d, r->name);
	if (!e) {
		status = hostd_fail(call, VMK__STATUS__STATUS_NOT_FOUND,
		                    "no datastore named \"%s\"; see storage datastore list",
		                    r->name);
		goto out;
	}
	if (e->from_config) {
		status = hostd_fail(call, VMK__STATUS__STATUS_CONFLICT,
		                    "datastore %s is defined in %s line %d; remove it there and "
		                    "restart hostd",
		                    r->name, d->config_path, e->line);
		goto out;
	}
	struct ds saved = *e;
	size_t idx = (size_t)(e - d->tab);
	memmove(e, e + 1, (d->n - idx - 1) * sizeof(*e));
	d->n--;
	ret = save_runtime(d);
	if (ret < 0) {
		memmove(&d->tab[idx + 1], &d->tab[idx], (d->n - idx) * sizeof(*e));
		d->tab[idx] = saved;
		d->n++;
		status = hostd_fail(call, VMK__STATUS__STATUS_FAILED,
		                    "datastore %s not removed: cannot write %s: %s", r->name,
		                    d->state_file, util_strerror(ret));
		goto out;
	}
	call->resp->body_case = VMK__RESPONSE__BODY_EMPTY;
	log_info("datastore %s removed by %s (its files are left in %s)", r->name, call->user,
	         saved.path);
out:
	pthread_mutex_unlock(&d->lock);
	return status;
}
