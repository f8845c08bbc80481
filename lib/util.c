#include "util.h"
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <pthread.h>
#include <ftw.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int util_open_regular(const char *path, int flags, struct stat *st)
{
	struct stat own;
	int ret;

	if (!st)
		st = &own;
	/* O_NONBLOCK: a read-only open of a FIFO waits for a writer */
	int fd = open(path, flags | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, st) < 0)
		ret = -errno;
	else if (!S_ISREG(st->st_mode))
		ret = S_ISDIR(st->st_mode) ? -EISDIR : -EINVAL;
	else if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0)
		ret = -errno;
	else
		return fd;
	close(fd);
	return ret;
}

int util_read_file(const char *path, size_t max, char **buf, size_t *len)
{
	struct stat st;
	char *b = NULL;
	size_t have = 0;
	int fd, ret;

	fd = util_open_regular(path, O_RDONLY, &st);
	if (fd < 0)
		return fd;
	if ((size_t)st.st_size > max) {
		ret = -EFBIG;
		goto out;
	}
	/* st_size is a hint (procfs says 0, files grow): read until EOF, never past max */
	size_t cap = (size_t)st.st_size < max ? (size_t)st.st_size + 1 : max + 1;
	if (cap < 4096 && max + 1 > 4096)
		cap = 4096;
	b = malloc(cap);
	if (!b) {
		ret = -ENOMEM;
		goto out;
	}
	for (;;) {
		if (have == cap) {
			if (cap > max) {
				ret = -EFBIG;
				goto out;
			}
			size_t ncap = cap > max / 2 ? max + 1 : cap * 2;
			char *nb = realloc(b, ncap);
			if (!nb) {
				ret = -ENOMEM;
				goto out;
			}
			b = nb;
			cap = ncap;
		}
		ssize_t n = read(fd, b + have, cap - have);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			goto out;
		}
		if (n == 0)
			break;
		have += (size_t)n;
	}
	/* here have < cap: there is room for the terminator */
	b[have] = '\0';
	*buf = b;
	b = NULL;
	if (len)
		*len = have;
	ret = 0;
out:
	free(b);
	close(fd);
	return ret;
}

void util_test_delay(const char *env, const char *what)
{
	const char *v = getenv(env);
	unsigned long ms = v ? strtoul(v, NULL, 10) : 0;

	if (ms && ms <= 10000) {
		log_warn("%s: %s waits %lu ms", env, what, ms);
		usleep((useconds_t)(ms * 1000));
	}
}

int util_write_file_atomic(const char *path, const void *buf, size_t len, mode_t mode)
{
	char tmp[PATH_MAX];
	const char *p = buf;
	int fd, ret;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return -errno;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			goto fail;
		}
		p += n;
		len -= (size_t)n;
	}
	if (fsync(fd) < 0 || fchmod(fd, mode) < 0) {
		ret = -errno;
		goto fail;
	}
	if (close(fd) < 0) {
		fd = -1;
		ret = -errno;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		ret = -errno;
		goto fail;
	}
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return ret;
}

int util_mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(buf))
		return n ? -ENAMETOOLONG : -EINVAL;
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int util_uuid4(char out[37])
{
	uint8_t u[16];
	int ret = util_random(u, sizeof(u));

	u[6] = (uint8_t)((u[6] & 0x0f) | 0x40);
	u[8] = (uint8_t)((u[8] & 0x3f) | 0x80);
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
	         u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12],
	         u[13], u[14], u[15]);
	return ret;
}

int util_random(void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = getrandom(p, len, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

void util_hex(const uint8_t *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

bool util_ct_equal(const void *a, const void *b, size_t n)
{
	const volatile uint8_t *x = a, *y = b;
	uint8_t d = 0;

	for (size_t i = 0; i < n; i++)
		d |= x[i] ^ y[i];
	return d == 0;
}

bool util_valid_name(const char *s, size_t max, char *why, size_t whylen)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0) {
		snprintf(why, whylen, "the name is empty");
		return false;
	}
	if (n > max) {
		snprintf(why, whylen, "the name has %zu characters; at most %zu are allowed", n,
		         max);
		return false;
	}
	if (s[0] == '.' || s[0] == '-') {
		snprintf(why, whylen, "the name may not start with '%c'", s[0]);
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '.' || c == '_' || c == '-')
			continue;
		if ((unsigned char)c < 0x20 || (unsigned char)c >= 0x7f)
			snprintf(why, whylen,
			         "the name has a control or non-ASCII character at position %zu",
			         i + 1);
		else
			snprintf(why, whylen,
			         "the name may not contain '%c'; use letters, digits, '.', '_' and "
			         "'-'",
			         c);
		return false;
	}
	return true;
}

uint64_t util_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t util_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void util_deadline(struct timespec *ts, unsigned ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

uint64_t util_wall_ms(void)
{
	return util_wall_ns() / 1000000u;
}

uint64_t util_wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int rm_first_err; /* nftw has no callback argument; callers are serialised below */
static pthread_mutex_t rm_lock = PTHREAD_MUTEX_INITIALIZER;

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	if (remove(p) < 0 && !rm_first_err)
		rm_first_err = -errno;
	return 0; /* go on: remove what can be removed */
}

int util_rm_tree(const char *dir)
{
	int ret;

	pthread_mutex_lock(&rm_lock);
	rm_first_err = 0;
	ret = nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS) < 0 ? -errno : rm_first_err;
	pthread_mutex_unlock(&rm_lock);
	return ret;
}

const char *util_strerror(int neg_errno)
{
	return strerror(neg_errno < 0 ? -neg_errno : neg_errno);
}

void util_set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

uint32_t util_fnv1a(uint32_t h, const char *s)
{
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

bool util_all_zero(const void *p, size_t n)
{
	const uint8_t *b = p;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, b + i, 8);
		if (w)
			return false;
	}
	for (; i < n; i++)
		if (b[i])
			return false;
	return true;
}

int util_pwrite_all(int fd, const void *buf, size_t n, uint64_t off)
{
	const uint8_t *b = buf;

	while (n) {
		ssize_t k = pwrite(fd, b, n, (off_t)off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		b += k;
		off += (uint64_t)k;
		n -= (size_t)k;
	}
	return 0;
}

bool util_path_in(const char *path, const char *dir)
{
	size_t dl = strlen(dir);

	return !strncmp(path, dir, dl) && path[dl] == '/';
}

int util_thread_nice(int inc)
{
	id_t tid = (id_t)gettid();

	errno = 0;
	int cur = getpriority(PRIO_PROCESS, tid);
	if (cur == -1 && errno)
		return -errno;
	return setpriority(PRIO_PROCESS, tid, cur + inc) < 0 ? -errno : 0;
}
