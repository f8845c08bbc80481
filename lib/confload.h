/* Loading libconfig files the same way everywhere (host.cfg, .vmx): a
 * bounded read, and errors of the form "FILE:LINE: what is wrong; fix". */
#ifndef VMK_CONFLOAD_H
#define VMK_CONFLOAD_H

#include <libconfig.h>
#include <stddef.h>
#include <stdio.h>

struct conf_ctx {
	const char *file;
	char *err;
	size_t errlen;
};

/* libconfig reads the file a line "@include \"PATH\"" names, whatever it
 * is (a FIFO blocks the reader, a device never ends) and of any size:
 * -EINVAL with "FILE:LINE: ..." in err for text holding one, else 0.
 * Every parse of a file or text goes through it first. */
int conf_refuse_includes(const char *text, const char *file, char *err, size_t errlen);

/* Reads at most max bytes of path and parses them into cfg (initialised
 * here; the caller destroys it, also on failure); @include refused. */
int conf_read(config_t *cfg, const char *path, size_t max, char *err, size_t errlen);

/* Sets the error "FILE:LINE: message" (line of setting s, if any) and
 * returns -EINVAL. */
int conf_fail(struct conf_ctx *l, const config_setting_t *s, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Every key of group g must be one of known (NULL-terminated); the error
 * names the unknown key and lists the known ones. */
int conf_check_keys(struct conf_ctx *l, const config_setting_t *g, const char *where,
                    const char *const *known);

/* Writes s as a libconfig string literal (quoted, '"' and '\\' escaped),
 * for files hostd writes itself. */
void conf_put_string(FILE *f, const char *s);

#endif
