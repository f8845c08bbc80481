#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static enum log_level log_level_cur = LOG_INFO;
static char log_tag[64] = "vmk";
static FILE *log_file;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

int log_level_parse(const char *name, enum log_level *out)
{
	for (unsigned i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

void log_set_level(enum log_level level)
{
	log_level_cur = level;
}

void log_set_tag(const char *tag)
{
	pthread_mutex_lock(&log_lock);
	snprintf(log_tag, sizeof(log_tag), "%s", tag);
	pthread_mutex_unlock(&log_lock);
}

int log_set_file(const char *path)
{
	FILE *f = NULL;

	if (path) {
		f = fopen(path, "ae");
		if (!f)
			return -errno;
		setvbuf(f, NULL, _IOLBF, 0);
	}
	pthread_mutex_lock(&log_lock);
	if (log_file)
		fclose(log_file);
	log_file = f;
	pthread_mutex_unlock(&log_lock);
	return 0;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	char stamp[40], line[2048];
	struct timespec ts;
	struct tm tm;
	va_list ap;

	if (level > log_level_cur)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);

	pthread_mutex_lock(&log_lock);
	fprintf(stderr, "%s.%03ldZ %s %s: %s\n", stamp, ts.tv_nsec / 1000000, log_tag,
	        level_names[level], line);
	if (log_file)
		fprintf(log_file, "%s.%03ldZ %s %s: %s\n", stamp, ts.tv_nsec / 1000000, log_tag,
		        level_names[level], line);
	pthread_mutex_unlock(&log_lock);
}
