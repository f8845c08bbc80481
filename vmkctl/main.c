/* vmkctl: esxcli-style command line for vmk hosts (../shared/CLI.md). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "ctx.h"
#include "rpc.h"

#define VMKCTL_VERSION "0.1.0"

static const char *code_name(int code)
{
	return rpc_status_name(code);
}

/* Prints the failure the way CLI.md promises: stderr always, plus a JSON
 * error document on stdout with --formatter json. */
static int fail(struct vmkctl *v, int code, const char *msg)
{
	fprintf(stderr, "vmkctl: %s\n", msg);
	if (v->fmt == FMT_JSON)
		out_render_json_error(stdout, code, code_name(code), msg);
	return code;
}

static const char *env_or(const char *opt, const char *env)
{
	const char *e;

	if (opt)
		return opt;
	e = getenv(env);
	return e && *e ? e : NULL;
}

int main(int argc, char **argv)
{
	struct vmkctl v = { 0 };
	struct vmkctl_args g, ca;
	struct out_doc out = { 0 };
	char err[1024];
	int used = 0, words_used = 0, ret;

	arena_init(&v.a, 0);
	v.fmt = FMT_TABLE;
	ret = vmkctl_parse_globals(vmkctl_globals(), argc - 1, argv + 1, &g, &used, err,
	                           sizeof(err));
	if (ret) {
		fprintf(stderr, "vmkctl: %s\n", err);
		return 2;
	}
	const char *fmt = args_str(&g, "formatter");
	if (fmt)
		out_format_parse(fmt, &v.fmt);
	if (args_flag(&g, "version")) {
		printf("vmkctl %s (protocol %d)\n", VMKCTL_VERSION, RPC_PROTOCOL_VERSION);
		return 0;
	}
	if (args_str(&g, "generate-completion"))
		return vmkctl_completion(stdout, args_str(&g, "generate-completion"));

	int nw = argc - 1 - used;
	char **words = argv + 1 + used;
	if (nw == 0) {
		vmkctl_usage(stdout);
		return 0;
	}
	const struct vmkctl_cmd *cmd = vmkctl_find(nw, words, &words_used);
	if (!cmd) {
		char path[256] = "";
		for (int i = 0; i < words_used; i++)
			snprintf(path + strlen(path), sizeof(path) - strlen(path), "%s%s",
			         i ? " " : "", words[i]);
		bool help = args_flag(&g, "help");
		if (words_used < nw && (strcmp(words[words_used], "--help") == 0 ||
		                        strcmp(words[words_used], "-h") == 0))
			help = true, words_used++;
		if (words_used == nw || help) {
			if (words_used == 0) {
				vmkctl_usage(stdout);
				return 0;
			}
			vmkctl_ns_help(stdout, path);
			return 0;
		}
		snprintf(err, sizeof(err),
		         "unknown %s '%s'%s%s; run vmkctl %s--help to see what "
		         "there is",
		         words_used ? "command or namespace" : "namespace", words[words_used],
		         words_used ? " in " : "", path, path[0] ? path : "");
		if (path[0])
			strncat(err, "", 1);
		ret = fail(&v, 2, err);
		return ret;
	}
	for (int i = words_used; i < nw; i++) {
		if (strcmp(words[i], "--help") == 0 || strcmp(words[i], "-h") == 0 ||
		    args_flag(&g, "help")) {
			vmkctl_cmd_help(stdout, cmd);
			return 0;
		}
	}
	if (args_flag(&g, "help")) {
		vmkctl_cmd_help(stdout, cmd);
		return 0;
	}
	ret = vmkctl_parse_args(cmd, nw - words_used, words + words_used, &ca, err, sizeof(err));
	if (ret)
		return fail(&v, ret, err);

	v.copts.server = env_or(args_str(&g, "server"), "VMK_SERVER");
	v.copts.username = env_or(args_str(&g, "username"), "VMK_USERNAME");
	v.copts.password = env_or(args_str(&g, "password"), "VMK_PASSWORD");
	v.copts.password_file = args_str(&g, "password-file");
	v.copts.thumbprint = env_or(args_str(&g, "thumbprint"), "VMK_THUMBPRINT");
	v.copts.sessionfile = args_str(&g, "sessionfile");
	v.copts.lab = env_or(args_str(&g, "lab"), "VMK_LAB");
	v.copts.timeout_ms = (int)args_int(&g, "timeout", 30) * 1000;
	v.copts.interactive = isatty(STDIN_FILENO) && access("/dev/tty", R_OK | W_OK) == 0;

	ret = cmd->run(&v, &ca, &out);
	if (ret == 0) {
		if ((!v.printed && out_render(stdout, v.fmt, &out) < 0) || fflush(stdout) != 0) {
			fprintf(stderr, "vmkctl: cannot write the output: %s\n", strerror(errno));
			ret = 1;
		}
	} else {
		fail(&v, ret, v.err[0] ? v.err : "operation failed");
	}
	out_free(&out);
	if (v.connected)
		hostconn_close(&v.conn);
	arena_free(&v.a);
	return ret;
}
