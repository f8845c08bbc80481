/* The FT generation record (replica.h): "generation=N\nowner=HOST\n" in a
 * file on the shared datastore, changed only under an exclusive flock and
 * synced before the lock is let go. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "replica.h"

#define RECORD_MAX 512

static int parse(const char *text, uint64_t *gen, char *owner, size_t ownerlen)
{
	const char *g = strstr(text, "generation=");
	char *end = NULL;

	if (!g)
		return -EBADMSG;
	errno = 0;
	unsigned long long v = strtoull(g + 11, &end, 10);
	if (errno || end == g + 11 || (*end != '\n' && *end != '\0'))
		return -EBADMSG;
	*gen = v;
	if (owner && ownerlen) {
		owner[0] = '\0';
		const char *o = strstr(text, "owner=");
		if (o) {
			size_t n = strcspn(o + 6, "\n");
			if (n >= ownerlen)
				n = ownerlen - 1;
			memcpy(owner, o + 6, n);
			owner[n] = '\0';
		}
	}
	return 0;
}

/* Opens and locks the record; its text in buf (empty for a new one). */
static int open_locked(const char *path, char *buf, size_t len, char *err, size_t errlen)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);

	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "the FT generation record %s: %s", path, strerror(e));
		return -e;
	}
	while (flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			int e = errno;
			snprintf(err, errlen, "locking %s: %s", path, strerror(e));
			close(fd);
			return -e;
		}
	}
	ssize_t n = pread(fd, buf, len - 1, 0);
	if (n < 0) {
		int e = errno;
		snprintf(err, errlen, "reading %s: %s", path, strerror(e));
		close(fd);
		return -e;
	}
	buf[n] = '\0';
	return fd;
}

static int store(int fd, const char *path, uint64_t gen, const char *owner, char *err,
                 size_t errlen)
{
	char text[RECORD_MAX];
	int n = snprintf(text, sizeof(text), "generation=%" PRIu64 "\nowner=%s\n", gen, owner);

	if (n <= 0 || (size_t)n >= sizeof(text) || pwrite(fd, text, (size_t)n, 0) != n ||
	    ftruncate(fd, n) < 0 || fsync(fd) < 0) {
		int e = errno ? errno : EIO;
		snprintf(err, errlen, "writing %s: %s", path, strerror(e));
		return -e;
	}
	return 0;
}

int ft_gen_begin(const char *path, const char *owner, uint64_t *gen, char *err, size_t errlen)
{
	char text[RECORD_MAX];
	uint64_t g = 0;
	int fd = open_locked(path, text, sizeof(text), err, errlen);

	if (fd < 0)
		return fd;
	if (text[0] && parse(text, &g, NULL, 0) < 0) {
		snprintf(err, errlen, "%s is not an FT generation record", path);
		close(fd); /* the lock goes with it */
		return -EBADMSG;
	}
	int ret = store(fd, path, g + 1, owner, err, errlen);
	close(fd);
	if (ret == 0)
		*gen = g + 1;
	return ret;
}

int ft_gen_take(const char *path, uint64_t expect, const char *owner, char *err, size_t errlen)
{
	char text[RECORD_MAX], who[128];
	uint64_t g = 0;
	int fd = open_locked(path, text, sizeof(text), err, errlen);

	if (fd < 0)
		return fd;
	if (parse(text, &g, who, sizeof(who)) < 0) {
		snprintf(err, errlen, "%s is not an FT generation record", path);
		close(fd);
		return -EBADMSG;
	}
	if (g != expect) {
		snprintf(err, errlen,
		         "the FT generation record is at %" PRIu64 " (%s), not %" PRIu64
		         ": the other side took over first",
		         g, who, expect);
		close(fd);
		return -EBUSY;
	}
	int ret = store(fd, path, expect + 1, owner, err, errlen);
	close(fd);
	return ret;
}

int ft_gen_read(const char *path, uint64_t *gen, char *owner, size_t ownerlen)
{
	char text[RECORD_MAX];
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
	close(fd);
	if (n < 0)
		return -EIO;
	text[n] = '\0';
	return parse(text, gen, owner, ownerlen);
}
