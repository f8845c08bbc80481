/* vmkctl's command table: every command is one row {namespace path, verb,
 * options, handler}; help, completion and argument checks come from it. */
#ifndef VMKCTL_CMD_H
#define VMKCTL_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "output.h"
#include "vmk.pb-c.h"

#define VMKCTL_MAX_OPTS 16

enum opt_type {
	OPT_FLAG, /* no value */
	OPT_STR,  /* any string */
	OPT_INT,  /* integer in [min, max] */
	OPT_ENUM, /* one of `choices` ("a|b|c") */
};

struct vmkctl_opt {
	const char *name; /* long name without "--" */
	char shortname;   /* 0 if none */
	enum opt_type type;
	const char *metavar; /* shown in help, e.g. "NAME" */
	const char *help;
	bool required;
	bool repeatable;
	int64_t min, max;    /* OPT_INT */
	const char *choices; /* OPT_ENUM */
};

struct vmkctl;
struct vmkctl_args;

struct vmkctl_cmd {
	const char *path; /* namespace words, e.g. "storage datastore" */
	const char *verb;
	const char *help;
	struct vmkctl_opt opts[VMKCTL_MAX_OPTS]; /* ends at the first with name NULL */
	/* Fills `out` (already zeroed). Returns an exit code; on failure it has
	 * set the message with vmkctl_error(). */
	int (*run)(struct vmkctl *v, const struct vmkctl_args *args, struct out_doc *out);
};

struct vmkctl_ns {
	const char *path;
	const char *help;
};

/* the tables (commands.c); the global options are the opts of a pseudo
 * command with path "vmkctl" */
const struct vmkctl_cmd *vmkctl_commands(size_t *n);
const struct vmkctl_cmd *vmkctl_globals(void);
const struct vmkctl_ns *vmkctl_namespaces(size_t *n);

/* ---- parsed command options (args.c) ---- */

struct vmkctl_args {
	const struct vmkctl_cmd *cmd;
	const char *vals[VMKCTL_MAX_OPTS][16]; /* up to 16 values per option */
	size_t nvals[VMKCTL_MAX_OPTS];
};

/* Parses argv (after the verb) against cmd's options. Exit code 0, or 2 with
 * err naming the bad option and the fix. */
int vmkctl_parse_args(const struct vmkctl_cmd *cmd, int argc, char **argv, struct vmkctl_args *out,
                      char *err, size_t errlen);
/* The same for the global options, which end at the first word that is not
 * an option; *consumed is how many arguments they took. */
int vmkctl_parse_globals(const struct vmkctl_cmd *globals, int argc, char **argv,
                         struct vmkctl_args *out, int *consumed, char *err, size_t errlen);
/* Last value of an option, or NULL. */
const char *args_str(const struct vmkctl_args *a, const char *name);
bool args_flag(const struct vmkctl_args *a, const char *name);
/* Value of an OPT_INT (already range-checked), or def. */
int64_t args_int(const struct vmkctl_args *a, const char *name, int64_t def);

/* Resolves words to a command or namespace. Returns the command, or NULL
 * and sets *used to how many leading words name a namespace (0 none). */
const struct vmkctl_cmd *vmkctl_find(int nwords, char **words, int *used);
bool vmkctl_is_namespace(const char *path);

/* ---- help (help.c) ---- */
void vmkctl_usage(FILE *f);
void vmkctl_ns_help(FILE *f, const char *path);
void vmkctl_cmd_help(FILE *f, const struct vmkctl_cmd *cmd);
int vmkctl_completion(FILE *f, const char *shell);

#endif
