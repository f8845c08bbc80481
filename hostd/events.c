#include "events.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define EVENTS_FILE     "events.log"
#define EVENTS_TAIL_MAX (256u << 10) /* how much of the file vm get reads */

static void path(struct hostd *h, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s/%s", h->cfg.state_dir, EVENTS_FILE);
}

void hostd_event(struct hostd *h, const char *vm, const char *user, const char *fmt, ...)
{
	char msg[600], line[900], file[PATH_MAX], stamp[32];
	struct timespec ts;
	struct tm tm;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	for (char *p = msg; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	/* "TIME VM USER: message": one write, O_APPEND, so lines never interleave */
	int n = snprintf(line, sizeof(line), "%s %s %s: %s\n", stamp, vm,
	                 user && *user ? user : "-", msg);
	path(h, file, sizeof(file));
	int fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, line, (size_t)n) != n)
		log_warn("event log %s: %s", file, strerror(errno));
	if (fd >= 0)
		close(fd);
	log_info("event: vm %s by %s: %s", vm, user && *user ? user : "-", msg);
}

char **hostd_events_of(struct hostd *h, struct arena *a, const char *vm, size_t max, size_t *n)
{
	char file[PATH_MAX], *buf = NULL;
	char **out = arena_calloc(a, max + 1, sizeof(char *));
	struct stat st;
	size_t vl = strlen(vm);

	*n = 0;
	path(h, file, sizeof(file));
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	if (!out || fd < 0 || fstat(fd, &st) < 0)
		goto done;
	off_t from = st.st_size > (off_t)EVENTS_TAIL_MAX ? st.st_size - EVENTS_TAIL_MAX : 0;
	size_t len = (size_t)(st.st_size - from);
	buf = malloc(len + 1);
	ssize_t got = buf ? pread(fd, buf, len, from) : -1;
	if (got < 0)
		goto done;
	buf[got] = '\0';
	/* keep the last `max` lines that name this VM, in order */
	for (char *line = buf, *nl; *line; line = nl + 1) {
		nl = strchr(line, '\n');
		if (!nl)
			break;
		*nl = '\0';
		char *sp = strchr(line, ' ');
		if (!sp || strncmp(sp + 1, vm, vl) != 0 || sp[1 + vl] != ' ')
			continue;
		if (*n == max) {
			memmove(out, out + 1, (max - 1) * sizeof(char *));
			(*n)--;
		}
		out[(*n)++] = arena_strdup(a, line);
	}
done:
	free(buf);
	if (fd >= 0)
		close(fd);
	return out;
}
