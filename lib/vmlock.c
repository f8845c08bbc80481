#include "vmlock.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

/* Private names next to the lock: <path>.<token>.new (a lease being
 * written) and <path>.<token>.old (a lease moved aside). */
#define PRIVATE_SUFFIX_MAX (1 + VMLOCK_TOKEN_LEN + 4)
/* create/read/replace rounds before acquire gives up on a file that keeps
 * changing under it */
#define ACQUIRE_TRIES 5

enum key { K_VERSION, K_HOST, K_ADDR, K_PID, K_COUNTER, K_EXPIRES, K_TOKEN, K_N };
static const char *const key_names[K_N] = { "version", "host",    "addr", "pid",
	                                    "counter", "expires", "token" };

/* host ids and addresses: 0 or 1..max bytes of printable ASCII, no spaces */
static bool valid_id(const char *s, size_t n, bool allow_empty)
{
	if (n == 0)
		return allow_empty;
	if (n > VMLOCK_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

static int new_token(char out[VMLOCK_TOKEN_LEN + 1])
{
	uint8_t rnd[VMLOCK_TOKEN_LEN / 2];
	int ret = util_random(rnd, sizeof(rnd));

	if (ret < 0)
		return ret;
	util_hex(rnd, sizeof(rnd), out);
	return 0;
}

static void private_name(const char *path, const char *token, const char *kind, char *out,
                         size_t outlen)
{
	/* fits: vmlock_init checked the length */
	snprintf(out, outlen, "%s.%s.%s", path, token, kind);
}

static int damaged(const char *path, const char *why, char *err, size_t errlen)
{
	util_set_err(
	        err, errlen,
	        "VM lock file %s is damaged (%s); if no host runs this VM, remove the file and "
	        "try again",
	        path, why);
	return -EBADMSG;
}

/* ---- the file format ---- */

/* Decimal without sign or leading zeros, at most max. */
static int parse_u64(const char *s, size_t n, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (n == 0 || n > 20 || (n > 1 && s[0] == '0'))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		uint64_t d = (uint64_t)(s[i] - '0');
		if (v > (max - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

static int find_key(const char *k, size_t n)
{
	for (int i = 0; i < K_N; i++)
		if (strlen(key_names[i]) == n && memcmp(key_names[i], k, n) == 0)
			return i;
	return -1;
}

/* One key=value line (printable ASCII, no spaces in the value). */
static int parse_value(enum key k, const char *v, size_t n, struct vmlock_owner *o, char *why,
                       size_t whylen)
{
	uint64_t x;

	switch (k) {
	case K_VERSION:
		if (parse_u64(v, n, UINT32_MAX, &x) < 0)
			break;
		if (x != VMLOCK_VERSION) {
			snprintf(why, whylen, "%" PRIu64, x);
			return -EPROTONOSUPPORT;
		}
		return 0;
	case K_HOST:
	case K_ADDR:
		if (!valid_id(v, n, k == K_ADDR))
			break;
		memcpy(k == K_HOST ? o->host : o->addr, v, n);
		(k == K_HOST ? o->host : o->addr)[n] = '\0';
		return 0;
	case K_PID:
		if (parse_u64(v, n, INT_MAX, &x) < 0 || x == 0)
			break;
		o->pid = (int)x;
		return 0;
	case K_COUNTER:
		/* room left for +1 at every renewal */
		if (parse_u64(v, n, INT64_MAX, &x) < 0 || x == 0)
			break;
		o->counter = x;
		return 0;
	case K_EXPIRES:
		if (parse_u64(v, n, UINT64_MAX, &o->expires_s) < 0)
			break;
		return 0;
	case K_TOKEN:
		if (n != VMLOCK_TOKEN_LEN)
			break;
		for (size_t i = 0; i < n; i++)
			if (!((v[i] >= '0' && v[i] <= '9') || (v[i] >= 'a' && v[i] <= 'f')))
				goto bad;
		memcpy(o->token, v, n);
		o->token[n] = '\0';
		return 0;
	case K_N:
		break;
	}
bad:
	snprintf(why, whylen, "%s=%.*s is not valid", key_names[k], n > 40 ? 40 : (int)n, v);
	return -EBADMSG;
}

/* Parses a whole lock file (len bytes, untrusted); on failure why says what
 * is wrong. Every key exactly once, version first. -EPROTONOSUPPORT (why:
 * the version) for a format version other than ours. */
static int parse_lease(const char *buf, size_t len, struct vmlock_owner *o, char *why,
                       size_t whylen)
{
	bool have[K_N] = { false };
	const char *p = buf, *end = buf + len;
	int lineno = 0;
	char w[160];

	memset(o, 0, sizeof(*o));
	if (len == 0) {
		snprintf(why, whylen, "it is empty");
		return -EBADMSG;
	}
	if (memchr(buf, '\0', len)) {
		snprintf(why, whylen, "it contains a NUL byte");
		return -EBADMSG;
	}
	if (buf[len - 1] != '\n') {
		snprintf(why, whylen, "its last line is not terminated: the file is cut short");
		return -EBADMSG;
	}
	while (p < end) {
		const char *line = p, *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)(nl - p);
		p = nl + 1;
		lineno++;
		for (size_t i = 0; i < n; i++) {
			if ((unsigned char)line[i] < 0x20 || (unsigned char)line[i] > 0x7e) {
				snprintf(why, whylen,
				         "line %d has a control or non-ASCII byte at column %zu",
				         lineno, i + 1);
				return -EBADMSG;
			}
		}
		if (n > 0 && line[0] == '#')
			continue;
		const char *eq = n ? memchr(line, '=', n) : NULL;
		if (!eq) {
			snprintf(why, whylen, "line %d is not key=value", lineno);
			return -EBADMSG;
		}
		size_t klen = (size_t)(eq - line), vlen = n - klen - 1;
		int k = find_key(line, klen);
		if (k < 0) {
			snprintf(why, whylen, "line %d: unknown key \"%.*s\"", lineno,
			         klen > 20 ? 20 : (int)klen, line);
			return -EBADMSG;
		}
		if (!have[K_VERSION] && k != K_VERSION) {
			snprintf(why, whylen, "line %d: the first line must be version=", lineno);
			return -EBADMSG;
		}
		if (have[k]) {
			snprintf(why, whylen, "line %d: %s given twice", lineno, key_names[k]);
			return -EBADMSG;
		}
		have[k] = true;
		if (memchr(eq + 1, ' ', vlen)) {
			snprintf(why, whylen, "line %d: a space in the value of %s", lineno,
			         key_names[k]);
			return -EBADMSG;
		}
		int ret = parse_value((enum key)k, eq + 1, vlen, o, w, sizeof(w));
		if (ret == -EPROTONOSUPPORT) {
			snprintf(why, whylen, "%s", w);
			return ret;
		}
		if (ret < 0) {
			snprintf(why, whylen, "line %d: %s", lineno, w);
			return -EBADMSG;
		}
	}
	for (int k = 0; k < K_N; k++) {
		if (!have[k]) {
			snprintf(why, whylen, "%s= is missing", key_names[k]);
			return -EBADMSG;
		}
	}
	return 0;
}

static uint64_t wall_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec > 0 ? (uint64_t)ts.tv_sec : 0;
}

static int format_lease(const struct vmlock *l, const char *token, uint64_t counter, char *buf,
                        size_t len)
{
	int n = snprintf(buf, len,
	                 "# vmk VM lock: host %s runs this VM and rewrites this file every few "
	                 "seconds. Do not edit.\n"
	                 "# If no host runs the VM, remove this file.\n"
	                 "version=%d\nhost=%s\naddr=%s\npid=%d\ncounter=%" PRIu64
	                 "\nexpires=%" PRIu64 "\ntoken=%s\n",
	                 l->host, VMLOCK_VERSION, l->host, l->addr, l->pid, counter,
	                 wall_s() + l->lease_ms / 1000, token);
	return n > 0 && (size_t)n < len ? n : -EOVERFLOW;
}

/* ---- files ---- */

/* Is another open file (of any process, this one included) holding an
 * fcntl lock on fd's file? */
static bool fd_locked(int fd)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };

	if (fcntl(fd, F_OFD_GETLK, &fl) < 0)
		return false;
	return fl.l_type != F_UNLCK;
}

/* The same-host guard on a file we own: 0 (also when the file system has
 * no fcntl locks), -EBUSY when someone else holds one. */
static int lock_fd(int fd)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };

	if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
		return 0;
	if (errno == EAGAIN || errno == EACCES)
		return -EBUSY;
	/* ENOLCK (NFS without lockd), EINVAL/EOPNOTSUPP: the lease alone decides */
	return 0;
}

/* Reads and parses the lease at path. 0 and *o; -ENOENT; -EBADMSG or
 * -EPROTONOSUPPORT (err says why and how to fix); other -errno for I/O. */
static int read_lease(const char *path, struct vmlock_owner *o, char *err, size_t errlen)
{
	char buf[VMLOCK_MAX_BYTES + 1], why[200];
	struct stat st;
	size_t len = 0;
	int fd, ret;

	/* no symlinks, and no blocking on a FIFO someone put there */
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		if (ret == -ENOENT)
			return ret;
		if (ret == -ELOOP)
			return damaged(path, "it is a symbolic link", err, errlen);
		util_set_err(err, errlen,
		             "VM lock file %s: cannot open it: %s; check the datastore", path,
		             util_strerror(ret));
		return ret;
	}
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		util_set_err(err, errlen, "VM lock file %s: %s; check the datastore", path,
		             util_strerror(ret));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = damaged(path, "it is not a regular file", err, errlen);
		goto out;
	}
	while (len < sizeof(buf)) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			util_set_err(err, errlen,
			             "VM lock file %s: cannot read it: %s; check the datastore",
			             path, util_strerror(ret));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > VMLOCK_MAX_BYTES) {
		snprintf(why, sizeof(why), "it is larger than the %d bytes of a lock file",
		         VMLOCK_MAX_BYTES);
		ret = damaged(path, why, err, errlen);
		goto out;
	}
	ret = parse_lease(buf, len, o, why, sizeof(why));
	if (ret == -EPROTONOSUPPORT) {
		util_set_err(
		        err, errlen,
		        "VM lock file %s has lock format version %s, from a newer vmk; this host "
		        "reads version %d: upgrade vmk on this host (another host may run the VM)",
		        path, why, VMLOCK_VERSION);
		goto out;
	}
	if (ret < 0) {
		ret = damaged(path, why, err, errlen);
		goto out;
	}
	o->locked = fd_locked(fd);
	ret = 0;
out:
	close(fd);
	return ret;
}

/* Writes a lease of ours to the new private file tmp, fcntl-locked and
 * synced. Ownership: *fdp is the caller's; on failure tmp is gone. */
static int write_tmp(const struct vmlock *l, const char *token, uint64_t counter, const char *tmp,
                     int *fdp, char *err, size_t errlen)
{
	char buf[VMLOCK_MAX_BYTES];
	int n = format_lease(l, token, counter, buf, sizeof(buf));
	int fd, ret;

	if (n < 0)
		return n;
	fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0 && errno == EEXIST) {
		/* our own leftover (the name has our random token) */
		unlink(tmp);
		fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	}
	if (fd < 0) {
		ret = -errno;
		util_set_err(err, errlen,
		             "VM lock: cannot create %s: %s; check that the datastore is writable",
		             tmp, util_strerror(ret));
		return ret;
	}
	ret = lock_fd(fd);
	if (ret < 0) {
		util_set_err(err, errlen, "VM lock: %s is locked by someone else", tmp);
		goto fail;
	}
	for (const char *p = buf; n > 0;) {
		ssize_t w = write(fd, p, (size_t)n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			ret = -errno;
			goto io;
		}
		p += w;
		n -= (int)w;
	}
	if (fsync(fd) < 0) {
		ret = -errno;
		goto io;
	}
	*fdp = fd;
	return 0;
io:
	util_set_err(err, errlen, "VM lock: writing %s: %s; check the datastore (space, quota)",
	             tmp, util_strerror(ret));
fail:
	close(fd);
	unlink(tmp);
	return ret;
}

/* link(tmp, path), which fails when path exists. A link whose reply was
 * lost (NFS retransmits it and gets EEXIST) is recognised by its inode. */
static int link_excl(const char *tmp, const char *path, const struct stat *mine)
{
	struct stat cur;
	int ret;

	if (link(tmp, path) == 0)
		return 0;
	ret = -errno;
	if (lstat(path, &cur) == 0 && cur.st_ino == mine->st_ino && cur.st_dev == mine->st_dev)
		return 0;
	return ret;
}

/* Puts a lease moved aside back in place, unless a new one appeared
 * meanwhile (then its holder finds out at its next renewal). */
static void restore(const char *old, const char *path)
{
	if (link(old, path) < 0)
		log_warn("VM lock %s: could not put back the lease moved aside to %s (%s); its "
		         "holder will find the lock lost at its next renewal",
		         path, old, strerror(errno));
	unlink(old);
}

/* Moves the lease at path aside to old, if it still is (token, counter):
 * 0 moved (the caller removes old); -EAGAIN it changed or vanished (put
 * back, nothing moved); other -errno. Only one mover can get a given file. */
static int move_away(const char *path, const char *old, const char *token, uint64_t counter,
                     char *err, size_t errlen)
{
	struct vmlock_owner moved;
	struct stat st;

	if (rename(path, old) < 0) {
		int e = errno;
		/* an NFS rename whose reply was lost: retransmitted, it says ENOENT */
		if (!(e == ENOENT && lstat(old, &st) == 0)) {
			if (e == ENOENT)
				return -EAGAIN;
			util_set_err(err, errlen,
			             "VM lock %s: cannot rename it: %s; check the datastore", path,
			             strerror(e));
			return -e;
		}
	}
	if (read_lease(old, &moved, NULL, 0) == 0 && strcmp(moved.token, token) == 0 &&
	    moved.counter == counter)
		return 0;
	restore(old, path);
	return -EAGAIN;
}

/* l no longer holds the lock; the file is left alone. */
static void drop(struct vmlock *l)
{
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
	l->held = false;
}

/* Opens the lease we just linked in place, checks it is still our file and
 * takes the fcntl lock: 0 held, -EAGAIN someone replaced it already. */
static int open_ours(struct vmlock *l, const struct stat *mine, const char *token, uint64_t counter,
                     uint64_t t, char *err, size_t errlen)
{
	struct stat st;
	int fd = open(l->path, O_RDWR | O_NOFOLLOW | O_CLOEXEC), ret;

	if (fd < 0) {
		ret = -errno;
		if (ret == -ENOENT || ret == -ELOOP)
			return -EAGAIN;
		util_set_err(err, errlen, "VM lock %s: cannot open it: %s", l->path,
		             util_strerror(ret));
		return ret;
	}
	if (fstat(fd, &st) < 0 || st.st_ino != mine->st_ino || st.st_dev != mine->st_dev) {
		close(fd);
		return -EAGAIN;
	}
	ret = lock_fd(fd);
	if (ret < 0) {
		close(fd);
		return -EAGAIN;
	}
	l->fd = fd;
	l->held = true;
	l->counter = counter;
	l->renewed_ms = t;
	memcpy(l->token, token, sizeof(l->token));
	return 0;
}

/* Makes a new lease of ours (new token, counter) appear at l->path if no
 * file is there: 0 held; -EEXIST a file is there; -EAGAIN ours was replaced
 * at once; other -errno. */
static int create_lease(struct vmlock *l, uint64_t counter, char *err, size_t errlen)
{
	char token[VMLOCK_TOKEN_LEN + 1], tmp[PATH_MAX];
	struct stat st;
	uint64_t t = 0;
	int fd, ret;

	ret = new_token(token);
	if (ret < 0) {
		util_set_err(err, errlen, "VM lock %s: no random numbers: %s", l->path,
		             util_strerror(ret));
		return ret;
	}
	private_name(l->path, token, "new", tmp, sizeof(tmp));
	ret = write_tmp(l, token, counter, tmp, &fd, err, errlen);
	if (ret < 0)
		return ret;
	ret = fstat(fd, &st) < 0 ? -errno : 0;
	/* closed before unlink(tmp): an NFS client would keep an open unlinked
	 * file as .nfsXXXX */
	close(fd);
	if (ret == 0) {
		t = l->now_ms();
		ret = link_excl(tmp, l->path, &st);
	}
	unlink(tmp);
	if (ret == -EEXIST)
		return ret;
	if (ret < 0) {
		util_set_err(
		        err, errlen,
		        "VM lock %s: cannot create it: %s; check that the datastore is writable "
		        "and supports hard links",
		        l->path, util_strerror(ret));
		return ret;
	}
	return open_ours(l, &st, token, counter, t, err, errlen);
}

/* Replaces the lease *cur (as just read) by a new one of ours with counter
 * + 1: 0 held; -EAGAIN the file changed meanwhile (read it again). */
static int replace_lease(struct vmlock *l, const struct vmlock_owner *cur, char *err, size_t errlen)
{
	char mover[VMLOCK_TOKEN_LEN + 1], old[PATH_MAX];
	int ret;

	ret = new_token(mover);
	if (ret < 0)
		return ret;
	private_name(l->path, mover, "old", old, sizeof(old));
	ret = move_away(l->path, old, cur->token, cur->counter, err, errlen);
	if (ret < 0)
		return ret;
	ret = create_lease(l, cur->counter + 1, err, errlen);
	if (ret < 0 && ret != -EEXIST && ret != -EAGAIN) {
		/* could not write ours: leave things as they were */
		restore(old, l->path);
		return ret;
	}
	unlink(old);
	return ret == -EEXIST ? -EAGAIN : ret;
}

static bool late(const struct vmlock *l, uint64_t now)
{
	return now >= l->renewed_ms && now - l->renewed_ms >= l->lease_ms - l->renew_ms;
}

static int busy(const struct vmlock *l, const struct vmlock_owner *o, const char *more, char *err,
                size_t errlen)
{
	util_set_err(err, errlen,
	             "VM lock %s is held by host %s (%s, vmx pid %d, lease %" PRIu64
	             "): the VM runs there; power it off there first%s",
	             l->path, o->host, o->addr[0] ? o->addr : "no address", o->pid, o->counter,
	             more);
	return -EBUSY;
}

/* ---- API ---- */

int vmlock_init(struct vmlock *l, const char *vmdir, const char *host, const char *addr, int pid,
                char *err, size_t errlen)
{
	size_t hl = host ? strlen(host) : 0, al = addr ? strlen(addr) : 0;

	memset(l, 0, sizeof(*l));
	l->fd = -1;
	if (!valid_id(host, hl, false)) {
		util_set_err(
		        err, errlen,
		        "VM lock: host id \"%.70s\" must be 1 to %d printable characters without "
		        "spaces",
		        host ? host : "", VMLOCK_ID_MAX);
		return -EINVAL;
	}
	if (!valid_id(addr, al, true)) {
		util_set_err(
		        err, errlen,
		        "VM lock: host address \"%.70s\" must be at most %d printable characters "
		        "without spaces",
		        addr, VMLOCK_ID_MAX);
		return -EINVAL;
	}
	if (pid < 1) {
		util_set_err(err, errlen, "VM lock: vmx pid %d is not a process id", pid);
		return -EINVAL;
	}
	if (!vmdir || !vmdir[0] ||
	    strlen(vmdir) + 1 + strlen(VMLOCK_FILE) + PRIVATE_SUFFIX_MAX >= PATH_MAX) {
		util_set_err(err, errlen, "VM lock: the VM directory path is empty or too long");
		return vmdir && vmdir[0] ? -ENAMETOOLONG : -EINVAL;
	}
	snprintf(l->path, sizeof(l->path), "%s/%s", vmdir, VMLOCK_FILE);
	memcpy(l->host, host, hl + 1);
	memcpy(l->addr, addr ? addr : "", al + 1);
	l->pid = pid;
	l->lease_ms = VMLOCK_LEASE_MS;
	l->renew_ms = VMLOCK_RENEW_MS;
	l->now_ms = util_now_ms;
	return 0;
}

int vmlock_check_stale(const struct vmlock *l, struct vmlock_watch *w, uint64_t now_ms,
                       struct vmlock_owner *o, char *err, size_t errlen)
{
	char more[200];
	int ret = read_lease(l->path, o, err, errlen);

	if (ret < 0) {
		memset(w, 0, sizeof(*w));
		return ret;
	}
	if (!w->seen || strcmp(w->token, o->token) != 0 || w->counter != o->counter) {
		w->seen = true;
		memcpy(w->token, o->token, sizeof(w->token));
		w->counter = o->counter;
		w->since_ms = now_ms;
	}
	/* only for leases of this host: on NFS the lock of a dead host can linger */
	if (o->locked && strcmp(o->host, l->host) == 0)
		return busy(l, o, "; its lock file is locked by a live process of this host", err,
		            errlen);
	if (now_ms < w->since_ms || now_ms - w->since_ms < l->lease_ms) {
		snprintf(more, sizeof(more),
		         " (it is taken over only if its lease stays unchanged for %u ms)",
		         l->lease_ms);
		return busy(l, o, more, err, errlen);
	}
	return 0;
}

/* One try at a free lock: 0 held; 1 another lease is there, in *cur (and
 * *holder); -EAGAIN it changed meanwhile (try again); other -errno. */
static int create_or_read(struct vmlock *l, struct vmlock_owner *cur, struct vmlock_owner *holder,
                          char *err, size_t errlen)
{
	int ret = create_lease(l, 1, err, errlen);

	if (ret != -EEXIST)
		return ret;
	ret = read_lease(l->path, cur, err, errlen);
	if (ret == -ENOENT)
		return -EAGAIN;
	if (ret < 0)
		return ret;
	if (holder)
		*holder = *cur;
	return 1;
}

int vmlock_acquire(struct vmlock *l, struct vmlock_watch *w, struct vmlock_owner *holder, char *err,
                   size_t errlen)
{
	struct vmlock_owner cur;
	int ret;

	if (l->held)
		return 0;
	if (!l->now_ms || l->renew_ms == 0 || l->renew_ms >= l->lease_ms) {
		util_set_err(err, errlen,
		             "VM lock %s: renew_ms %u must be above 0 and below lease_ms %u",
		             l->path, l->renew_ms, l->lease_ms);
		return -EINVAL;
	}
	for (int i = 0; i < ACQUIRE_TRIES; i++) {
		ret = create_or_read(l, &cur, holder, err, errlen);
		if (ret == -EAGAIN)
			continue;
		if (ret <= 0)
			return ret;
		if (strcmp(cur.host, l->host) == 0 && cur.pid == l->pid) {
			/* ours, left by a process that is gone: adopt it */
			if (cur.locked)
				return busy(l, &cur,
				            "; another process of this host holds it (is hostd "
				            "running twice?)",
				            err, errlen);
			ret = replace_lease(l, &cur, err, errlen);
			if (ret == -EAGAIN)
				continue;
			if (ret == 0)
				log_info("VM lock %s: lease of vmx pid %d adopted", l->path,
				         l->pid);
			return ret;
		}
		if (!w)
			return busy(l, &cur, "", err, errlen);
		ret = vmlock_check_stale(l, w, l->now_ms(), &cur, err, errlen);
		if (holder && (ret == 0 || ret == -EBUSY))
			*holder = cur;
		if (ret == -ENOENT)
			continue;
		if (ret < 0)
			return ret;
		uint64_t unchanged = l->now_ms() - w->since_ms;
		ret = replace_lease(l, &cur, err, errlen);
		if (ret == -EAGAIN)
			continue;
		if (ret == 0) {
			log_warn("VM lock %s: took over the lease of host %s (%s, vmx pid %d), "
			         "unchanged for %" PRIu64 " ms",
			         l->path, cur.host, cur.addr, cur.pid, unchanged);
			memset(w, 0, sizeof(*w));
		}
		return ret;
	}
	util_set_err(err, errlen, "VM lock %s kept changing while being acquired; try again",
	             l->path);
	return -EAGAIN;
}

int vmlock_seize(struct vmlock *l, struct vmlock_owner *holder, char *err, size_t errlen)
{
	struct vmlock_owner cur;
	int ret;

	if (l->held)
		return 0;
	for (int i = 0; i < ACQUIRE_TRIES; i++) {
		ret = create_or_read(l, &cur, holder, err, errlen);
		if (ret == -EAGAIN)
			continue;
		if (ret == -EBADMSG) {
			/* a damaged lease names nobody, and the caller has the
			 * right to run the VM: the file goes aside, kept to look
			 * at, and the lock is taken anew */
			char aside[PATH_MAX + 16];
			snprintf(aside, sizeof(aside), "%s.damaged", l->path);
			if (rename(l->path, aside) == 0) {
				log_warn("VM lock %s was damaged: moved to %s, and taken", l->path,
				         aside);
				continue;
			}
			return ret;
		}
		if (ret <= 0)
			return ret;
		ret = replace_lease(l, &cur, err, errlen);
		if (ret == -EAGAIN)
			continue;
		if (ret == 0 && (strcmp(cur.host, l->host) != 0 || cur.pid != l->pid))
			log_warn("VM lock %s: seized the lease of host %s (%s, vmx pid %d)",
			         l->path, cur.host, cur.addr, cur.pid);
		return ret;
	}
	util_set_err(err, errlen, "VM lock %s kept changing while being seized; try again",
	             l->path);
	return -EAGAIN;
}

int vmlock_renew(struct vmlock *l, char *err, size_t errlen)
{
	struct vmlock_owner cur;
	char tmp[PATH_MAX];
	uint64_t now;
	int fd, ret;

	if (!l->held) {
		util_set_err(err, errlen, "VM lock %s is not held; acquire it first", l->path);
		return -EINVAL;
	}
	ret = read_lease(l->path, &cur, err, errlen);
	if (ret == -ENOENT) {
		util_set_err(
		        err, errlen,
		        "VM lock %s was removed by someone else: the lock is lost, stop the VM",
		        l->path);
		drop(l);
		return -ESTALE;
	}
	if (ret == -EBADMSG || ret == -EPROTONOSUPPORT) {
		util_set_err(
		        err, errlen,
		        "VM lock %s was overwritten with something that is not our lease: the lock "
		        "is lost, stop the VM (and remove the file once no host runs the VM)",
		        l->path);
		drop(l);
		return -ESTALE;
	}
	if (ret == 0 && (strcmp(cur.token, l->token) != 0 || cur.counter != l->counter)) {
		util_set_err(
		        err, errlen,
		        "VM lock %s was taken over by host %s (%s, vmx pid %d): the lock is lost, "
		        "stop the VM",
		        l->path, cur.host, cur.addr, cur.pid);
		drop(l);
		return -ESTALE;
	}
	now = l->now_ms();
	if (late(l, now))
		goto late;
	if (ret < 0)
		return ret; /* an I/O error: still ours, try again */
	private_name(l->path, l->token, "new", tmp, sizeof(tmp));
	ret = write_tmp(l, l->token, l->counter + 1, tmp, &fd, err, errlen);
	if (ret < 0)
		return ret;
	/* the last moment before the new lease shows */
	now = l->now_ms();
	if (late(l, now)) {
		close(fd);
		unlink(tmp);
		goto late;
	}
	if (rename(tmp, l->path) < 0) {
		ret = -errno;
		close(fd);
		unlink(tmp);
		util_set_err(err, errlen, "VM lock %s: cannot renew it: %s; check the datastore",
		             l->path, util_strerror(ret));
		return ret;
	}
	/* ownership: fd (the new file, fcntl-locked) replaces the old one */
	close(l->fd);
	l->fd = fd;
	l->counter++;
	l->renewed_ms = now;
	return 0;
late:
	util_set_err(
	        err, errlen,
	        "VM lock %s was not renewed for %" PRIu64
	        " ms (lease %u ms): another host may take it over, so it is given up; stop the VM",
	        l->path, now - l->renewed_ms, l->lease_ms);
	drop(l);
	return -ETIMEDOUT;
}

int vmlock_release(struct vmlock *l, char *err, size_t errlen)
{
	struct vmlock_owner cur;
	char mover[VMLOCK_TOKEN_LEN + 1], old[PATH_MAX];
	int ret;

	if (!l->held)
		return 0;
	ret = read_lease(l->path, &cur, err, errlen);
	if (ret == -ENOENT || ret == -EBADMSG || ret == -EPROTONOSUPPORT ||
	    (ret == 0 && (strcmp(cur.token, l->token) != 0 || cur.counter != l->counter))) {
		if (ret == 0)
			util_set_err(err, errlen,
			             "VM lock %s now belongs to host %s (vmx pid %d): left alone",
			             l->path, cur.host, cur.pid);
		else if (ret == -ENOENT)
			util_set_err(err, errlen, "VM lock %s was already removed by someone else",
			             l->path);
		drop(l);
		return -ESTALE;
	}
	if (ret < 0)
		return ret;
	ret = new_token(mover);
	if (ret < 0)
		return ret;
	private_name(l->path, mover, "old", old, sizeof(old));
	ret = move_away(l->path, old, l->token, l->counter, err, errlen);
	if (ret == -EAGAIN) {
		util_set_err(err, errlen, "VM lock %s changed while being released: left alone",
		             l->path);
		drop(l);
		return -ESTALE;
	}
	if (ret < 0)
		return ret;
	unlink(old);
	drop(l);
	return 0;
}

void vmlock_abandon(struct vmlock *l)
{
	drop(l);
}

int vmlock_read(const char *vmdir, struct vmlock_owner *o, char *err, size_t errlen)
{
	char path[PATH_MAX];

	if (snprintf(path, sizeof(path), "%s/%s", vmdir, VMLOCK_FILE) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	int ret = read_lease(path, o, err, errlen);
	if (ret == -ENOENT)
		util_set_err(err, errlen, "%s: no VM lock file: the VM is not locked by any host",
		             path);
	return ret;
}

int vmlock_release_if_owner(const char *vmdir, const char *host, int pid, char *err, size_t errlen)
{
	struct vmlock_owner cur;
	char path[PATH_MAX], mover[VMLOCK_TOKEN_LEN + 1], old[PATH_MAX];
	int ret;

	if (strlen(vmdir) + 1 + strlen(VMLOCK_FILE) + PRIVATE_SUFFIX_MAX >= PATH_MAX)
		return -ENAMETOOLONG;
	snprintf(path, sizeof(path), "%s/%s", vmdir, VMLOCK_FILE);
	ret = read_lease(path, &cur, err, errlen);
	if (ret == -ENOENT)
		util_set_err(err, errlen, "%s: no VM lock to remove", path);
	if (ret < 0)
		return ret;
	if (strcmp(cur.host, host) != 0 || cur.pid != pid) {
		util_set_err(
		        err, errlen,
		        "VM lock %s is held by host %s (vmx pid %d), not by %s (vmx pid %d): left "
		        "alone",
		        path, cur.host, cur.pid, host, pid);
		return -EBUSY;
	}
	if (cur.locked) {
		util_set_err(
		        err, errlen,
		        "VM lock %s of vmx pid %d is still locked by a live process: left alone "
		        "(its holder must release it)",
		        path, pid);
		return -EBUSY;
	}
	ret = new_token(mover);
	if (ret < 0)
		return ret;
	private_name(path, mover, "old", old, sizeof(old));
	ret = move_away(path, old, cur.token, cur.counter, err, errlen);
	if (ret == -EAGAIN)
		util_set_err(err, errlen, "VM lock %s changed while being removed: left alone",
		             path);
	if (ret < 0)
		return ret;
	unlink(old);
	return 0;
}
