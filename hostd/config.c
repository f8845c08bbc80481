#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "confload.h"
#include "rpc.h"
#include "util.h"

#define CONFIG_MAX_BYTES (1u << 20)

static const char *const role_names[] = { "NoAccess", "ReadOnly", "Admin" };

const char *hostd_role_name(enum hostd_role r)
{
	return (size_t)r < ARRAY_SIZE(role_names) ? role_names[r] : "NoAccess";
}

int hostd_role_parse(const char *s, enum hostd_role *r)
{
	for (size_t i = 0; i < ARRAY_SIZE(role_names); i++) {
		if (strcmp(s, role_names[i]) == 0) {
			*r = (enum hostd_role)i;
			return 0;
		}
	}
	return -EINVAL;
}

static int get_str(struct conf_ctx *l, const config_setting_t *g, const char *where,
                   const char *key, bool required, const char *def, char **out)
{
	const config_setting_t *s = config_setting_get_member(g, key);

	if (!s) {
		if (required)
			return conf_fail(l, g, "%s.%s is missing; add %s = \"...\";", where, key,
			                 key);
		*out = def ? strdup(def) : NULL;
		return def && !*out ? -ENOMEM : 0;
	}
	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return conf_fail(l, s, "%s.%s must be a string in double quotes", where, key);
	*out = strdup(config_setting_get_string(s));
	return *out ? 0 : -ENOMEM;
}

static int get_bool(struct conf_ctx *l, const config_setting_t *g, const char *where,
                    const char *key, bool def, bool *out)
{
	const config_setting_t *s = config_setting_get_member(g, key);

	*out = def;
	if (!s)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_BOOL)
		return conf_fail(l, s, "%s.%s must be true or false (without quotes)", where, key);
	*out = config_setting_get_bool(s);
	return 0;
}

static int get_int(struct conf_ctx *l, const config_setting_t *g, const char *where,
                   const char *key, long long def, long long lo, long long hi, long long *out)
{
	const config_setting_t *s = config_setting_get_member(g, key);
	long long v;

	*out = def;
	if (!s)
		return 0;
	if (config_setting_type(s) == CONFIG_TYPE_INT)
		v = config_setting_get_int(s);
	else if (config_setting_type(s) == CONFIG_TYPE_INT64)
		v = config_setting_get_int64(s);
	else
		return conf_fail(l, s, "%s.%s must be a whole number from %lld to %lld", where, key,
		                 lo, hi);
	if (v < lo || v > hi)
		return conf_fail(l, s, "%s.%s = %lld is out of range; use %lld to %lld", where, key,
		                 v, lo, hi);
	*out = v;
	return 0;
}

static int load_host(struct conf_ctx *l, const config_setting_t *h, struct hostd_config *c)
{
	static const char *const keys[] = { "name",
		                            "listen",
		                            "state_dir",
		                            "log_level",
		                            "log_file",
		                            "insecure",
		                            "max_message_bytes",
		                            "workers",
		                            "session_timeout_s",
		                            "max_migrations",
		                            NULL };
	char why[256], host[256], port[16], *level = NULL;
	long long v;
	bool tls;
	int ret;

	if (!config_setting_is_group(h))
		return conf_fail(l, h, "host must be a group: host = { name = \"...\"; ... };");
	if ((ret = conf_check_keys(l, h, "host", keys)) < 0)
		return ret;
	if ((ret = get_str(l, h, "host", "name", true, NULL, &c->name)) < 0)
		return ret;
	if (!util_valid_name(c->name, 63, why, sizeof(why)))
		return conf_fail(l, config_setting_get_member(h, "name"), "host.name \"%s\": %s",
		                 c->name, why);
	if ((ret = get_str(l, h, "host", "listen", false, HOSTD_DEFAULT_LISTEN, &c->listen)) < 0)
		return ret;
	if ((ret = get_bool(l, h, "host", "insecure", false, &c->insecure)) < 0)
		return ret;
	const config_setting_t *ls = config_setting_get_member(h, "listen");
	if (rpc_parse_url(c->listen, &tls, host, sizeof(host), port, sizeof(port), why,
	                  sizeof(why)) < 0)
		return conf_fail(l, ls ? ls : h, "host.listen: %s; use e.g. \"%s\"", why,
		                 HOSTD_DEFAULT_LISTEN);
	if (!tls && !c->insecure)
		return conf_fail(l, ls,
		                 "host.listen \"%s\" is unencrypted; use tls+tcp://, or set "
		                 "host.insecure = true (lab use only)",
		                 c->listen);
	if ((ret = get_str(l, h, "host", "state_dir", true, NULL, &c->state_dir)) < 0)
		return ret;
	if (c->state_dir[0] != '/')
		return conf_fail(l, config_setting_get_member(h, "state_dir"),
		                 "host.state_dir \"%s\" must be an absolute path", c->state_dir);
	if ((ret = get_str(l, h, "host", "log_level", false, "info", &level)) < 0)
		return ret;
	ret = log_level_parse(level, &c->log_level);
	if (ret < 0) {
		ret = conf_fail(l, config_setting_get_member(h, "log_level"),
		                "host.log_level \"%s\" is unknown; use error, warn, info or debug",
		                level);
		free(level);
		return ret;
	}
	free(level);
	if ((ret = get_str(l, h, "host", "log_file", false, NULL, &c->log_file)) < 0)
		return ret;
	if ((ret = get_int(l, h, "host", "max_message_bytes", RPC_DEFAULT_MAX_MSG, 4096,
	                   256ll << 20, &v)) < 0)
		return ret;
	c->max_message_bytes = (size_t)v;
	if ((ret = get_int(l, h, "host", "workers", 8, 1, 256, &v)) < 0)
		return ret;
	c->workers = (int)v;
	if ((ret = get_int(l, h, "host", "session_timeout_s", 1800, 10, 7 * 86400, &v)) < 0)
		return ret;
	c->session_timeout_s = (unsigned)v;
	if ((ret = get_int(l, h, "host", "max_migrations", 4, 1, 64, &v)) < 0)
		return ret;
	c->max_migrations = (unsigned)v;
	return 0;
}

static int load_datastores(struct conf_ctx *l, const config_setting_t *list, struct hostd_config *c)
{
	static const char *const keys[] = { "name", "path", "shared", NULL };
	char why[256];
	int n, ret;

	if (!config_setting_is_list(list) && !config_setting_is_array(list))
		return conf_fail(l, list,
		                 "datastores must be a list: datastores = ( { name = ...; "
		                 "path = ...; } );");
	n = config_setting_length(list);
	c->datastores = calloc((size_t)n + 1, sizeof(*c->datastores));
	if (!c->datastores)
		return -ENOMEM;
	for (int i = 0; i < n; i++) {
		config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
		struct hostd_ds_conf *d = &c->datastores[c->ndatastores];
		char where[32];
		snprintf(where, sizeof(where), "datastores[%d]", i);
		if (!config_setting_is_group(g))
			return conf_fail(l, g, "%s must be a group { name = ...; path = ...; }",
			                 where);
		if ((ret = conf_check_keys(l, g, where, keys)) < 0)
			return ret;
		c->ndatastores++;
		d->line = config_setting_source_line(g);
		if ((ret = get_str(l, g, where, "name", true, NULL, &d->name)) < 0 ||
		    (ret = get_str(l, g, where, "path", true, NULL, &d->path)) < 0 ||
		    (ret = get_bool(l, g, where, "shared", false, &d->shared)) < 0)
			return ret;
		if (!util_valid_name(d->name, 63, why, sizeof(why)))
			return conf_fail(l, g, "%s.name \"%s\": %s", where, d->name, why);
		if (d->path[0] != '/')
			return conf_fail(l, g, "%s.path \"%s\" must be an absolute path", where,
			                 d->path);
		for (size_t j = 0; j + 1 < c->ndatastores; j++) {
			if (strcmp(c->datastores[j].name, d->name) == 0)
				return conf_fail(
				        l, g, "datastore \"%s\" is defined twice (also on line %d)",
				        d->name, c->datastores[j].line);
		}
	}
	return 0;
}

static int load_accounts(struct conf_ctx *l, const config_setting_t *list, struct hostd_config *c)
{
	static const char *const keys[] = { "id", "password_hash", "role", "description", NULL };
	char why[256], *role = NULL;
	int n, ret;

	if (!config_setting_is_list(list))
		return conf_fail(l, list,
		                 "accounts must be a list: accounts = ( { id = ...; "
		                 "password_hash = ...; role = ...; } );");
	n = config_setting_length(list);
	c->accounts = calloc((size_t)n + 1, sizeof(*c->accounts));
	if (!c->accounts)
		return -ENOMEM;
	for (int i = 0; i < n; i++) {
		config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
		struct hostd_account *a = &c->accounts[c->naccounts];
		char where[32];
		snprintf(where, sizeof(where), "accounts[%d]", i);
		if (!config_setting_is_group(g))
			return conf_fail(l, g,
			                 "%s must be a group { id = ...; password_hash = ...; }",
			                 where);
		if ((ret = conf_check_keys(l, g, where, keys)) < 0)
			return ret;
		c->naccounts++;
		if ((ret = get_str(l, g, where, "id", true, NULL, &a->id)) < 0 ||
		    (ret = get_str(l, g, where, "password_hash", true, NULL, &a->password_hash)) <
		            0 ||
		    (ret = get_str(l, g, where, "description", false, "", &a->description)) < 0 ||
		    (ret = get_str(l, g, where, "role", false, "Admin", &role)) < 0)
			return ret;
		ret = hostd_role_parse(role, &a->role);
		free(role);
		if (ret < 0)
			return conf_fail(l, config_setting_get_member(g, "role"),
			                 "%s.role is unknown; use Admin, ReadOnly or NoAccess",
			                 where);
		if (!util_valid_name(a->id, 64, why, sizeof(why)))
			return conf_fail(l, g, "%s.id \"%s\": %s", where, a->id, why);
		const char *hsh = a->password_hash;
		if (strncmp(hsh, "$y$", 3) != 0 && strncmp(hsh, "$6$", 3) != 0 &&
		    strncmp(hsh, "$gy$", 4) != 0 && strncmp(hsh, "$5$", 3) != 0)
			return conf_fail(
			        l, g,
			        "%s.password_hash of \"%s\" is not a yescrypt ($y$) or "
			        "sha512-crypt ($6$) hash; make one with: hostd --hash-password",
			        where, a->id);
		for (size_t j = 0; j + 1 < c->naccounts; j++) {
			if (strcmp(c->accounts[j].id, a->id) == 0)
				return conf_fail(l, g, "account \"%s\" is defined twice", a->id);
		}
	}
	return 0;
}

/* cluster = { hosts_file = "..."; credentials_file = "..."; }: both, and
 * absolute. */
static int load_cluster(struct conf_ctx *l, const config_setting_t *g, struct hostd_config *c)
{
	static const char *const keys[] = { "hosts_file", "credentials_file", NULL };
	int ret;

	if (!config_setting_is_group(g))
		return conf_fail(l, g,
		                 "cluster must be a group: cluster = { hosts_file = \"...\"; "
		                 "credentials_file = \"...\"; };");
	if ((ret = conf_check_keys(l, g, "cluster", keys)) < 0 ||
	    (ret = get_str(l, g, "cluster", "hosts_file", true, NULL, &c->cluster_hosts_file)) <
	            0 ||
	    (ret = get_str(l, g, "cluster", "credentials_file", true, NULL,
	                   &c->cluster_credentials_file)) < 0)
		return ret;
	if (c->cluster_hosts_file[0] != '/')
		return conf_fail(l, config_setting_get_member(g, "hosts_file"),
		                 "cluster.hosts_file \"%s\" must be an absolute path",
		                 c->cluster_hosts_file);
	if (c->cluster_credentials_file[0] != '/')
		return conf_fail(l, config_setting_get_member(g, "credentials_file"),
		                 "cluster.credentials_file \"%s\" must be an absolute path",
		                 c->cluster_credentials_file);
	return 0;
}

int hostd_config_load(const char *path, struct hostd_config *c, char *err, size_t errlen)
{
	/* network is read by netconf.c, leniently: a bad entry there is logged
	 * and skipped, never keeps hostd down */
	static const char *const top_keys[] = { "host",    "datastores", "accounts",
		                                "network", "cluster",    NULL };
	struct conf_ctx l = { .file = path, .err = err, .errlen = errlen };
	config_t cfg;
	int ret;

	memset(c, 0, sizeof(*c));
	c->path = strdup(path);
	if ((ret = conf_read(&cfg, path, CONFIG_MAX_BYTES, err, errlen)) < 0)
		goto out;
	config_setting_t *root = config_root_setting(&cfg);
	if ((ret = conf_check_keys(&l, root, "the file", top_keys)) < 0)
		goto out;
	config_setting_t *h = config_lookup(&cfg, "host");
	if (!h) {
		ret = conf_fail(&l, NULL,
		                "no host group; start with host = { name = \"esx1\"; "
		                "state_dir = \"/var/lib/vmk\"; };");
		goto out;
	}
	if ((ret = load_host(&l, h, c)) < 0)
		goto out;
	config_setting_t *ds = config_lookup(&cfg, "datastores");
	if (ds && (ret = load_datastores(&l, ds, c)) < 0)
		goto out;
	config_setting_t *acc = config_lookup(&cfg, "accounts");
	if (acc && (ret = load_accounts(&l, acc, c)) < 0)
		goto out;
	config_setting_t *cl = config_lookup(&cfg, "cluster");
	if (cl && (ret = load_cluster(&l, cl, c)) < 0)
		goto out;
	if (c->naccounts == 0) {
		ret = conf_fail(&l, acc,
		                "no accounts: nobody could log in; add accounts = ( { id = "
		                "\"root\"; password_hash = \"...\"; role = \"Admin\"; } ); "
		                "(hash from: hostd --hash-password)");
		goto out;
	}
	if (!c->log_file) {
		if (asprintf(&c->log_file, "%s/hostd.log", c->state_dir) < 0) {
			c->log_file = NULL;
			ret = -ENOMEM;
			goto out;
		}
	}
	ret = 0;
out:
	config_destroy(&cfg);
	if (ret < 0) {
		if (ret == -ENOMEM)
			snprintf(err, errlen, "%s: out of memory", path);
		hostd_config_free(c);
	}
	return ret;
}

void hostd_config_free(struct hostd_config *c)
{
	for (size_t i = 0; i < c->ndatastores; i++) {
		free(c->datastores[i].name);
		free(c->datastores[i].path);
	}
	for (size_t i = 0; i < c->naccounts; i++) {
		free(c->accounts[i].id);
		free(c->accounts[i].password_hash);
		free(c->accounts[i].description);
	}
	free(c->datastores);
	free(c->accounts);
	free(c->path);
	free(c->name);
	free(c->listen);
	free(c->state_dir);
	free(c->log_file);
	free(c->cluster_hosts_file);
	free(c->cluster_credentials_file);
	memset(c, 0, sizeof(*c));
}

void hostd_config_dump(const struct hostd_config *c, FILE *f)
{
	static const char *const levels[] = { "error", "warn", "info", "debug" };

	fprintf(f, "host.name = %s\n", c->name);
	fprintf(f, "host.listen = %s\n", c->listen);
	fprintf(f, "host.state_dir = %s\n", c->state_dir);
	fprintf(f, "host.log_level = %s\n", levels[c->log_level]);
	fprintf(f, "host.log_file = %s\n", c->log_file);
	fprintf(f, "host.insecure = %s\n", c->insecure ? "true" : "false");
	fprintf(f, "host.max_message_bytes = %zu\n", c->max_message_bytes);
	fprintf(f, "host.workers = %d\n", c->workers);
	fprintf(f, "host.session_timeout_s = %u\n", c->session_timeout_s);
	fprintf(f, "host.max_migrations = %u\n", c->max_migrations);
	for (size_t i = 0; i < c->ndatastores; i++)
		fprintf(f, "datastore %s = %s%s\n", c->datastores[i].name, c->datastores[i].path,
		        c->datastores[i].shared ? " (shared)" : "");
	for (size_t i = 0; i < c->naccounts; i++)
		fprintf(f, "account %s role=%s description=\"%s\"\n", c->accounts[i].id,
		        hostd_role_name(c->accounts[i].role), c->accounts[i].description);
	if (c->cluster_hosts_file)
		fprintf(f, "cluster.hosts_file = %s\ncluster.credentials_file = %s\n",
		        c->cluster_hosts_file, c->cluster_credentials_file);
}
