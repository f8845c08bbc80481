#include "vmcfg.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "confload.h"
#include "util.h"

#define VMX_MAX_BYTES (256u << 10)

/* A path setting: absolute, or made absolute against dir. */
static int get_path(struct conf_ctx *l, const config_setting_t *g, const char *key, const char *dir,
                    bool required, char **out)
{
	const config_setting_t *s = config_setting_get_member(g, key);
	const char *v;

	*out = NULL;
	if (!s) {
		if (required)
			return conf_fail(l, g, "%s is missing", key);
		return 0;
	}
	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return conf_fail(l, s, "%s must be a string in double quotes", key);
	v = config_setting_get_string(s);
	if (!v[0])
		return conf_fail(l, s, "%s is empty", key);
	if (strlen(v) + strlen(dir) + 2 > PATH_MAX)
		return conf_fail(l, s, "%s is too long", key);
	if (v[0] == '/')
		*out = strdup(v);
	else if (asprintf(out, "%s/%s", dir, v) < 0)
		*out = NULL;
	return *out ? 0 : -ENOMEM;
}

static int get_string(struct conf_ctx *l, const config_setting_t *g, const char *key,
                      const char *def, char **out)
{
	const config_setting_t *s = config_setting_get_member(g, key);

	if (!s) {
		*out = strdup(def);
		return *out ? 0 : -ENOMEM;
	}
	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return conf_fail(l, s, "%s must be a string in double quotes", key);
	*out = strdup(config_setting_get_string(s));
	return *out ? 0 : -ENOMEM;
}

static int get_uint(struct conf_ctx *l, const config_setting_t *g, const char *key, long long lo,
                    long long hi, const char *unit, uint32_t *out)
{
	const config_setting_t *s = config_setting_get_member(g, key);
	long long v;

	if (!s)
		return conf_fail(l, g, "%s is missing", key);
	if (config_setting_type(s) == CONFIG_TYPE_INT)
		v = config_setting_get_int(s);
	else if (config_setting_type(s) == CONFIG_TYPE_INT64)
		v = config_setting_get_int64(s);
	else
		return conf_fail(l, s, "%s must be a whole number of %s", key, unit);
	if (v < lo || v > hi)
		return conf_fail(l, s, "%s = %lld %s is out of range; use %lld to %lld", key, v,
		                 unit, lo, hi);
	*out = (uint32_t)v;
	return 0;
}

static bool uuid_valid(const char *u)
{
	if (strlen(u) != 36)
		return false;
	for (int i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		char c = u[i];
		if (dash ? c != '-'
		         : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
		             (c >= 'A' && c <= 'F')))
			return false;
	}
	return true;
}

void vmcfg_mac_from_uuid(const char *uuid, unsigned index, uint8_t mac[6])
{
	/* FNV-1a over the uuid and the NIC index */
	uint32_t h = (util_fnv1a(UTIL_FNV1A_INIT, uuid) ^ index) * 16777619u;
	mac[0] = 0x00;
	mac[1] = 0x50;
	mac[2] = 0x56;
	mac[3] = (uint8_t)((h >> 16) & 0x3f); /* 00:50:56:00-3f: VMware's manual range */
	mac[4] = (uint8_t)(h >> 8);
	mac[5] = (uint8_t)h;
}

static int parse_mac(const char *s, uint8_t mac[6])
{
	unsigned v[6];
	char tail;

	if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
	           &tail) != 6)
		return -EINVAL;
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)v[i];
	if (mac[0] & 1)
		return -EINVAL; /* multicast */
	return 0;
}

static int load_vm(struct conf_ctx *l, config_setting_t *vm, struct vmcfg *c)
{
	static const char *const keys[] = { "name",       "uuid",   "memory_mib", "vcpus",
		                            "kernel",     "initrd", "cmdline",    "cpu_model",
		                            "serial_log", NULL };
	char why[256];
	int ret;

	if (!config_setting_is_group(vm))
		return conf_fail(l, vm,
		                 "vm must be a group: vm = { name = ...; memory_mib = ...; }");
	if ((ret = conf_check_keys(l, vm, "vm", keys)) < 0)
		return ret;
	if ((ret = get_string(l, vm, "name", "", &c->name)) < 0)
		return ret;
	if (!util_valid_name(c->name, 80, why, sizeof(why)))
		return conf_fail(l, vm, "vm.name \"%s\": %s", c->name, why);
	if ((ret = get_string(l, vm, "uuid", "", &c->uuid)) < 0)
		return ret;
	if (!uuid_valid(c->uuid))
		return conf_fail(l, vm, "vm.uuid \"%s\" is not a UUID (8-4-4-4-12 hex digits)",
		                 c->uuid);
	if ((ret = get_uint(l, vm, "memory_mib", VMCFG_MIN_MIB, VMCFG_MAX_MIB, "MiB",
	                    &c->memory_mib)) < 0 ||
	    (ret = get_uint(l, vm, "vcpus", 1, VMCFG_MAX_VCPUS, "vCPUs", &c->vcpus)) < 0)
		return ret;
	if ((ret = get_path(l, vm, "kernel", c->dir, true, &c->kernel)) < 0 ||
	    (ret = get_path(l, vm, "initrd", c->dir, false, &c->initrd)) < 0 ||
	    (ret = get_string(l, vm, "cmdline", "", &c->cmdline)) < 0 ||
	    (ret = get_string(l, vm, "cpu_model", "host", &c->cpu_model)) < 0)
		return ret;
	if (strlen(c->cmdline) > 2047)
		return conf_fail(l, vm, "vm.cmdline has %zu bytes; at most 2047",
		                 strlen(c->cmdline));
	if (config_setting_get_member(vm, "serial_log"))
		ret = get_path(l, vm, "serial_log", c->dir, true, &c->serial_log);
	else if (asprintf(&c->serial_log, "%s/serial.log", c->dir) < 0)
		ret = -ENOMEM;
	return ret;
}

static int load_disks(struct conf_ctx *l, config_setting_t *list, struct vmcfg *c)
{
	if (!config_setting_is_list(list))
		return conf_fail(l, list,
		                 "disks must be a list: disks = ( { path = \"disk0.img\"; } );");
	if (config_setting_length(list) > VMCFG_MAX_DISKS)
		return conf_fail(l, list, "%d disks; at most %d", config_setting_length(list),
		                 VMCFG_MAX_DISKS);
	for (int i = 0; i < config_setting_length(list); i++) {
		config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
		struct vmcfg_disk *d = &c->disks[c->ndisks];
		int ro = 0, ret;
		if (!config_setting_is_group(g))
			return conf_fail(l, g, "disks[%d] must be a group { path = ...; }", i);
		c->ndisks++;
		if ((ret = get_path(l, g, "path", c->dir, true, &d->path)) < 0)
			return ret;
		config_setting_lookup_bool(g, "readonly", &ro);
		d->readonly = ro;
	}
	return 0;
}

static int load_nics(struct conf_ctx *l, config_setting_t *list, struct vmcfg *c)
{
	if (!config_setting_is_list(list))
		return conf_fail(
		        l, list,
		        "nics must be a list: nics = ( { portgroup = \"VM Network\"; } );");
	if (config_setting_length(list) > VMCFG_MAX_NICS)
		return conf_fail(l, list, "%d nics; at most %d", config_setting_length(list),
		                 VMCFG_MAX_NICS);
	for (int i = 0; i < config_setting_length(list); i++) {
		config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
		struct vmcfg_nic *n = &c->nics[c->nnics];
		const char *mac = NULL;
		int ret;
		if (!config_setting_is_group(g))
			return conf_fail(l, g, "nics[%d] must be a group { portgroup = ...; }", i);
		c->nnics++;
		if ((ret = get_string(l, g, "portgroup", "VM Network", &n->portgroup)) < 0 ||
		    (ret = get_string(l, g, "tap", "", &n->tap)) < 0)
			return ret;
		if (config_setting_lookup_string(g, "mac", &mac)) {
			if (parse_mac(mac, n->mac) < 0)
				return conf_fail(l, g,
				                 "nics[%d].mac \"%s\" is not a unicast MAC "
				                 "(xx:xx:xx:xx:xx:xx)",
				                 i, mac);
		} else {
			vmcfg_mac_from_uuid(c->uuid, (unsigned)i, n->mac);
		}
	}
	return 0;
}

int vmcfg_load(const char *path, struct vmcfg *c, char *err, size_t errlen)
{
	struct conf_ctx l = { .file = path, .err = err, .errlen = errlen };
	config_t cfg;
	int ret;

	memset(c, 0, sizeof(*c));
	if ((ret = conf_read(&cfg, path, VMX_MAX_BYTES, err, errlen)) < 0)
		goto out;
	c->path = strdup(path);
	const char *slash = strrchr(path, '/');
	c->dir = slash ? strndup(path, (size_t)(slash - path)) : strdup(".");
	if (c->dir && !c->dir[0]) {
		free(c->dir);
		c->dir = strdup("/");
	}
	if (!c->path || !c->dir) {
		ret = -ENOMEM;
		goto out;
	}
	config_setting_t *vm = config_lookup(&cfg, "vm");
	if (!vm) {
		ret = conf_fail(&l, NULL, "no vm group; start with vm = { name = \"...\"; ... };");
		goto out;
	}
	if ((ret = load_vm(&l, vm, c)) < 0)
		goto out;
	config_setting_t *s = config_lookup(&cfg, "disks");
	if (s && (ret = load_disks(&l, s, c)) < 0)
		goto out;
	s = config_lookup(&cfg, "nics");
	if (s && (ret = load_nics(&l, s, c)) < 0)
		goto out;
	ret = 0;
out:
	config_destroy(&cfg);
	if (ret < 0) {
		if (ret == -ENOMEM)
			snprintf(err, errlen, "%s: out of memory", path);
		vmcfg_free(c);
	}
	return ret;
}

void vmcfg_free(struct vmcfg *c)
{
	for (unsigned i = 0; i < c->ndisks; i++)
		free(c->disks[i].path);
	for (unsigned i = 0; i < c->nnics; i++) {
		free(c->nics[i].portgroup);
		free(c->nics[i].tap);
	}
	free(c->path);
	free(c->dir);
	free(c->name);
	free(c->uuid);
	free(c->kernel);
	free(c->initrd);
	free(c->cmdline);
	free(c->cpu_model);
	free(c->serial_log);
	memset(c, 0, sizeof(*c));
}

/* Replaces g's member key with the string value. 0 or -ENOMEM. */
static int set_string(config_setting_t *g, const char *key, const char *value)
{
	config_setting_t *s;

	config_setting_remove(g, key);
	return (s = config_setting_add(g, key, CONFIG_TYPE_STRING)) &&
	                       config_setting_set_string(s, value)
	               ? 0
	               : -ENOMEM;
}

/* text parsed, changed by edit (0, or -errno with err set), and written
 * again into *out (malloc'ed; NULL on failure). */
static int edit_text(const char *text,
                     int (*edit)(config_t *cfg, const void *arg, char *err, size_t errlen),
                     const void *arg, char **out, size_t *outlen, char *err, size_t errlen)
{
	config_t cfg;
	int ret;

	*out = NULL;
	*outlen = 0;
	if ((ret = conf_refuse_includes(text, "the .vmx", err, errlen)) < 0)
		return ret;
	config_init(&cfg);
	if (config_read_string(&cfg, text) != CONFIG_TRUE) {
		snprintf(err, errlen, "the .vmx does not parse: line %d: %s",
		         config_error_line(&cfg), config_error_text(&cfg));
		config_destroy(&cfg);
		return -EINVAL;
	}
	ret = edit(&cfg, arg, err, errlen);
	FILE *f = ret ? NULL : open_memstream(out, outlen);
	if (!ret && !f)
		ret = -ENOMEM;
	if (f) {
		config_write(&cfg, f);
		if (fclose(f) != 0)
			ret = -ENOMEM;
	}
	config_destroy(&cfg);
	if (ret == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	if (ret < 0) {
		free(*out);
		*out = NULL;
	}
	return ret;
}

struct identity {
	const char *name, *uuid;
};

static int new_identity(config_t *cfg, const void *arg, char *err, size_t errlen)
{
	const struct identity *id = arg;
	config_setting_t *vm = config_lookup(cfg, "vm");

	if (!vm || !config_setting_is_group(vm)) {
		snprintf(err, errlen, "the .vmx has no vm group");
		return -EINVAL;
	}
	/* a new identity: name, uuid; MACs follow the uuid, the log the directory */
	config_setting_remove(vm, "serial_log");
	if (set_string(vm, "name", id->name) < 0 || set_string(vm, "uuid", id->uuid) < 0)
		return -ENOMEM;
	config_setting_t *nics = config_lookup(cfg, "nics");
	for (int i = 0; nics && i < config_setting_length(nics); i++) {
		config_setting_t *n = config_setting_get_elem(nics, (unsigned)i);
		if (n && config_setting_is_group(n)) {
			config_setting_remove(n, "mac");
			config_setting_remove(n, "tap");
		}
	}
	return 0;
}

int vmcfg_clone_text(const char *text, const char *name, const char *uuid, char **out,
                     size_t *outlen, char *err, size_t errlen)
{
	struct identity id = { name, uuid };
	return edit_text(text, new_identity, &id, out, outlen, err, errlen);
}

struct disk_paths {
	const char *const *paths;
	unsigned n;
};

static int disk_paths(config_t *cfg, const void *arg, char *err, size_t errlen)
{
	const struct disk_paths *dp = arg;
	config_setting_t *disks = config_lookup(cfg, "disks");

	if (!disks || config_setting_length(disks) != (int)dp->n) {
		snprintf(err, errlen, "the .vmx has %d disks, %u paths were given",
		         disks ? config_setting_length(disks) : 0, dp->n);
		return -EINVAL;
	}
	for (unsigned i = 0; i < dp->n; i++) {
		config_setting_t *g = config_setting_get_elem(disks, i);
		if (!g || !config_setting_is_group(g)) {
			snprintf(err, errlen, "a disk entry is not a group");
			return -EINVAL;
		}
		if (set_string(g, "path", dp->paths[i]) < 0)
			return -ENOMEM;
	}
	return 0;
}

int vmcfg_set_disk_paths(const char *text, const char *const *paths, unsigned n, char **out,
                         size_t *outlen, char *err, size_t errlen)
{
	struct disk_paths dp = { paths, n };
	return edit_text(text, disk_paths, &dp, out, outlen, err, errlen);
}
