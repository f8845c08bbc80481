#include "confload.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

int conf_refuse_includes(const char *text, const char *file, char *err, size_t errlen)
{
	int line = 1;

	for (const char *p = text; *p; line++) {
		const char *q = p + strspn(p, " \t");
		if (strncmp(q, "@include", 8) == 0) {
			snprintf(err, errlen,
			         "%s:%d: @include is not allowed here (it would read another "
			         "file, of any size, as this process): put the settings in "
			         "this file",
			         file, line);
			return -EINVAL;
		}
		const char *nl = strchr(p, '\n');
		if (!nl)
			break;
		p = nl + 1;
	}
	return 0;
}

int conf_read(config_t *cfg, const char *path, size_t max, char *err, size_t errlen)
{
	char *text = NULL;
	int ret;

	config_init(cfg);
	/* bounded first: libconfig would read a file of any size */
	ret = util_read_file(path, max, &text, NULL);
	if (ret < 0) {
		if (ret == -EFBIG)
			snprintf(err, errlen, "%s: larger than %zu bytes; is this the right file?",
			         path, max);
		else if (ret == -EINVAL)
			snprintf(err, errlen, "%s: not a regular file; is this the right file?",
			         path);
		else
			snprintf(err, errlen, "%s: %s", path, util_strerror(ret));
		return ret;
	}
	ret = conf_refuse_includes(text, path, err, errlen);
	if (ret == 0 && !config_read_string(cfg, text)) {
		snprintf(err, errlen,
		         "%s:%d: %s (libconfig syntax: key = value; groups in { }, lists in ( ))",
		         path, config_error_line(cfg), config_error_text(cfg));
		ret = -EINVAL;
	}
	free(text);
	return ret;
}

int conf_fail(struct conf_ctx *l, const config_setting_t *s, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (s && config_setting_source_line(s) > 0)
		snprintf(l->err, l->errlen, "%s:%d: %s", l->file, config_setting_source_line(s),
		         msg);
	else
		snprintf(l->err, l->errlen, "%s: %s", l->file, msg);
	return -EINVAL;
}

int conf_check_keys(struct conf_ctx *l, const config_setting_t *g, const char *where,
                    const char *const *known)
{
	int n = config_setting_length(g);

	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
		const char *name = config_setting_name(s);
		bool ok = false;
		if (!name)
			continue;
		for (const char *const *k = known; *k; k++)
			ok |= strcmp(*k, name) == 0;
		if (!ok) {
			char list[256] = "";
			for (const char *const *k = known; *k; k++)
				snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
				         k == known ? "" : ", ", *k);
			return conf_fail(l, s, "unknown setting %s.%s; %s takes: %s", where, name,
			                 where, list);
		}
	}
	return 0;
}

void conf_put_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', f);
		fputc(*s, f);
	}
	fputc('"', f);
}
