#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"

/* "vmkctl storage datastore add", or "vmkctl" for the global options */
static void cmd_name(const struct vmkctl_cmd *cmd, char *out, size_t outlen)
{
	if (cmd->verb && cmd->verb[0])
		snprintf(out, outlen, "vmkctl %s %s", cmd->path, cmd->verb);
	else
		snprintf(out, outlen, "vmkctl");
}

static int opt_index(const struct vmkctl_cmd *cmd, const char *name)
{
	for (int i = 0; i < VMKCTL_MAX_OPTS && cmd->opts[i].name; i++) {
		if (strcmp(cmd->opts[i].name, name) == 0)
			return i;
	}
	return -1;
}

static int opt_index_short(const struct vmkctl_cmd *cmd, char c)
{
	for (int i = 0; i < VMKCTL_MAX_OPTS && cmd->opts[i].name; i++) {
		if (cmd->opts[i].shortname == c)
			return i;
	}
	return -1;
}

static bool enum_has(const char *choices, const char *v)
{
	size_t n = strlen(v);

	for (const char *p = choices; p && *p;) {
		const char *bar = strchr(p, '|');
		size_t len = bar ? (size_t)(bar - p) : strlen(p);
		if (len == n && strncmp(p, v, n) == 0)
			return true;
		p = bar ? bar + 1 : NULL;
	}
	return false;
}

static int check_value(const struct vmkctl_cmd *cmd, const struct vmkctl_opt *o, const char *v,
                       char *err, size_t errlen)
{
	char nm[200];

	cmd_name(cmd, nm, sizeof(nm));
	if (o->type == OPT_INT) {
		char *end;
		errno = 0;
		long long x = strtoll(v, &end, 10);
		if (!*v || *end || errno) {
			snprintf(err, errlen, "%s: --%s wants a whole number, not '%s'", nm,
			         o->name, v);
			return 2;
		}
		if (x < o->min || x > o->max) {
			snprintf(err, errlen, "%s: --%s %lld is out of range; use %lld to %lld", nm,
			         o->name, x, (long long)o->min, (long long)o->max);
			return 2;
		}
	} else if (o->type == OPT_ENUM && !enum_has(o->choices, v)) {
		snprintf(err, errlen, "%s: --%s '%s' is not one of %s", nm, o->name, v, o->choices);
		return 2;
	} else if (o->type == OPT_STR && !*v) {
		snprintf(err, errlen, "%s: --%s needs a non-empty value", nm, o->name);
		return 2;
	}
	return 0;
}

static int store(const struct vmkctl_cmd *cmd, struct vmkctl_args *out, int idx, const char *v,
                 char *err, size_t errlen)
{
	const struct vmkctl_opt *o = &cmd->opts[idx];
	char nm[200];
	int ret;

	cmd_name(cmd, nm, sizeof(nm));
	if (o->type != OPT_FLAG && (ret = check_value(cmd, o, v, err, errlen)) != 0)
		return ret;
	if (out->nvals[idx] > 0 && !o->repeatable) {
		snprintf(err, errlen, "%s: --%s given twice", nm, o->name);
		return 2;
	}
	if (out->nvals[idx] == sizeof(out->vals[0]) / sizeof(out->vals[0][0])) {
		snprintf(err, errlen, "%s: --%s given too often", nm, o->name);
		return 2;
	}
	out->vals[idx][out->nvals[idx]++] = v;
	return 0;
}

/* Parses options of cmd from argv. With stop_at_word, the first argument
 * that is not an option ends parsing and *consumed says where. */
static int parse(const struct vmkctl_cmd *cmd, int argc, char **argv, struct vmkctl_args *out,
                 bool stop_at_word, int *consumed, char *err, size_t errlen)
{
	char nm[200];
	int ret, i;

	cmd_name(cmd, nm, sizeof(nm));
	memset(out, 0, sizeof(*out));
	out->cmd = cmd;
	for (i = 0; i < argc; i++) {
		const char *a = argv[i], *val = NULL;
		int idx;
		if (stop_at_word && (a[0] != '-' || !a[1]))
			break;
		if (strcmp(a, "--") == 0 && stop_at_word) {
			i++;
			break;
		}
		if (strncmp(a, "--", 2) == 0 && a[2]) {
			char name[64];
			const char *eq = strchr(a + 2, '=');
			size_t n = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
			if (n >= sizeof(name))
				n = sizeof(name) - 1;
			memcpy(name, a + 2, n);
			name[n] = '\0';
			idx = opt_index(cmd, name);
			if (idx < 0) {
				snprintf(err, errlen, "%s: unknown option --%s; see %s --help", nm,
				         name, nm);
				return 2;
			}
			if (eq)
				val = eq + 1;
		} else if (a[0] == '-' && a[1] && a[1] != '-') {
			idx = opt_index_short(cmd, a[1]);
			if (idx < 0) {
				snprintf(err, errlen, "%s: unknown option -%c; see %s --help", nm,
				         a[1], nm);
				return 2;
			}
			if (a[2])
				val = a + 2;
		} else {
			snprintf(err, errlen,
			         "%s: unexpected argument '%s' (options start with - or --)", nm,
			         a);
			return 2;
		}
		const struct vmkctl_opt *o = &cmd->opts[idx];
		if (o->type == OPT_FLAG) {
			if (val) {
				snprintf(err, errlen, "%s: --%s takes no value", nm, o->name);
				return 2;
			}
			val = "";
		} else if (!val) {
			if (i + 1 >= argc) {
				snprintf(err, errlen, "%s: --%s needs a value (%s)", nm, o->name,
				         o->metavar ? o->metavar : "VALUE");
				return 2;
			}
			val = argv[++i];
		}
		if ((ret = store(cmd, out, idx, val, err, errlen)) != 0)
			return ret;
	}
	if (consumed)
		*consumed = i;
	for (i = 0; i < VMKCTL_MAX_OPTS && cmd->opts[i].name; i++) {
		if (cmd->opts[i].required && out->nvals[i] == 0) {
			snprintf(err, errlen, "%s: missing --%s %s; see %s --help", nm,
			         cmd->opts[i].name,
			         cmd->opts[i].metavar ? cmd->opts[i].metavar : "", nm);
			return 2;
		}
	}
	return 0;
}

int vmkctl_parse_args(const struct vmkctl_cmd *cmd, int argc, char **argv, struct vmkctl_args *out,
                      char *err, size_t errlen)
{
	return parse(cmd, argc, argv, out, false, NULL, err, errlen);
}

int vmkctl_parse_globals(const struct vmkctl_cmd *globals, int argc, char **argv,
                         struct vmkctl_args *out, int *consumed, char *err, size_t errlen)
{
	return parse(globals, argc, argv, out, true, consumed, err, errlen);
}

const char *args_str(const struct vmkctl_args *a, const char *name)
{
	int i = opt_index(a->cmd, name);

	return i >= 0 && a->nvals[i] ? a->vals[i][a->nvals[i] - 1] : NULL;
}

bool args_flag(const struct vmkctl_args *a, const char *name)
{
	int i = opt_index(a->cmd, name);

	return i >= 0 && a->nvals[i] > 0;
}

int64_t args_int(const struct vmkctl_args *a, const char *name, int64_t def)
{
	const char *v = args_str(a, name);

	return v ? strtoll(v, NULL, 10) : def;
}
