/* Leveled, thread-safe logging to stderr and optionally a file. */
#ifndef VMK_LOG_H
#define VMK_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* "error" | "warn" | "info" | "debug" -> level; -EINVAL otherwise. */
int log_level_parse(const char *name, enum log_level *out);
void log_set_level(enum log_level level);
/* Tag printed in every line, e.g. "hostd[esx1]". Copied. */
void log_set_tag(const char *tag);
/* Also append every line to this file (0 or -errno). NULL closes it. */
int log_set_file(const char *path);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
