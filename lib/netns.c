#include "netns.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/nsfs.h>

#include "log.h"
#include "netlink.h"
#include "util.h"

#define NETNS_DEFAULT_DIR "/run/netns"
#define SELF_NETNS        "/proc/thread-self/ns/net"

const char *netns_dir(void)
{
	const char *d = getenv("VMK_NETNS_DIR");

	return d && *d ? d : NETNS_DEFAULT_DIR;
}

bool netns_valid_name(const char *name, char *why, size_t whylen)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0) {
		util_set_err(why, whylen, "the name is empty");
		return false;
	}
	if (n > NETNS_NAME_MAX) {
		util_set_err(why, whylen, "the name has %zu characters; at most %d are allowed", n,
		             NETNS_NAME_MAX);
		return false;
	}
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
		util_set_err(why, whylen, "\"%s\" is not a usable name", name);
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '.' || c == '_' || c == '-')
			continue;
		if (c < 0x20 || c >= 0x7f)
			util_set_err(why, whylen,
			             "the name has a control or non-ASCII character at "
			             "position %zu",
			             i + 1);
		else
			util_set_err(
			        why, whylen,
			        "the name may not contain '%c'; use letters, digits, '.', '_' and "
			        "'-'",
			        c);
		return false;
	}
	return true;
}

/* path of NAME, after checking the name; -EINVAL with a message */
static int ns_path(const char *name, char *path, size_t pathlen, char *err, size_t errlen)
{
	char why[96];

	if (!netns_valid_name(name, why, sizeof(why))) {
		util_set_err(err, errlen, "invalid network namespace name \"%.64s\": %s",
		             name ? name : "", why);
		return -EINVAL;
	}
	if ((size_t)snprintf(path, pathlen, "%s/%s", netns_dir(), name) >= pathlen) {
		util_set_err(err, errlen, "network namespace %s: the path %s/%s is too long", name,
		             netns_dir(), name);
		return -ENAMETOOLONG;
	}
	return 0;
}

/* As iproute2: the directory becomes a shared mount point (bound onto itself
 * the first time), so that an unmount in one mount namespace propagates to
 * the others and the network namespace is freed. Under flock, like ip. */
static int prepare_dir(const char *dir, char *err, size_t errlen)
{
	bool made_mount = false;
	int lock, ret = 0;

	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		ret = -errno;
		util_set_err(err, errlen, "cannot create %s: %s", dir, util_strerror(ret));
		return ret;
	}
	lock = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (lock < 0) {
		ret = -errno;
		util_set_err(err, errlen, "cannot open %s: %s", dir, util_strerror(ret));
		return ret;
	}
	if (flock(lock, LOCK_EX) < 0) {
		ret = -errno;
		util_set_err(err, errlen, "cannot lock %s: %s", dir, util_strerror(ret));
		goto out;
	}
	while (mount("", dir, "none", MS_SHARED | MS_REC, NULL) < 0) {
		/* EINVAL: not a mount point yet (once) */
		if (errno != EINVAL || made_mount) {
			ret = -errno;
			util_set_err(err, errlen, "mount --make-shared %s failed: %s", dir,
			             util_strerror(ret));
			goto out;
		}
		if (mount(dir, dir, "none", MS_BIND | MS_REC, NULL) < 0) {
			ret = -errno;
			util_set_err(err, errlen, "mount --bind %s %s failed: %s", dir, dir,
			             util_strerror(ret));
			goto out;
		}
		made_mount = true;
	}
out:
	flock(lock, LOCK_UN);
	close(lock);
	return ret;
}

struct create_job {
	const char *name, *path;
	int ret;
	char err[256];
};

/* A thread of its own: unshare() moves the calling thread into the new
 * namespace for good, and the thread ends there. */
static void *create_thread(void *arg)
{
	struct create_job *j = arg;
	char nlerr[200];
	int nl;

	if (unshare(CLONE_NEWNET) < 0) {
		j->ret = -errno;
		util_set_err(j->err, sizeof(j->err),
		             "cannot create network namespace %s: unshare(CLONE_NEWNET): %s%s",
		             j->name, util_strerror(j->ret),
		             j->ret == -EPERM ? " (this needs CAP_SYS_ADMIN: run hostd as root)"
		                              : "");
		return NULL;
	}
	if (mount(SELF_NETNS, j->path, "none", MS_BIND, NULL) < 0) {
		j->ret = -errno;
		util_set_err(j->err, sizeof(j->err),
		             "cannot create network namespace %s: bind %s -> %s: %s", j->name,
		             SELF_NETNS, j->path, util_strerror(j->ret));
		return NULL;
	}
	nl = nl_open();
	if (nl < 0) {
		j->ret = nl;
		util_set_err(j->err, sizeof(j->err),
		             "network namespace %s: cannot open a netlink socket in it: %s",
		             j->name, util_strerror(nl));
		return NULL;
	}
	j->ret = nl_link_set(nl, "lo", 1, 0, NULL, nlerr, sizeof(nlerr));
	if (j->ret < 0)
		util_set_err(j->err, sizeof(j->err), "network namespace %s: cannot bring up lo: %s",
		             j->name, nlerr);
	nl_close(nl);
	return NULL;
}

int netns_create(const char *name, char *err, size_t errlen)
{
	struct create_job job = { .name = name, .ret = -EIO };
	char path[PATH_MAX];
	pthread_t t;
	int fd, ret;

	ret = ns_path(name, path, sizeof(path), err, errlen);
	if (ret < 0)
		return ret;
	ret = prepare_dir(netns_dir(), err, errlen);
	if (ret < 0)
		return ret;
	fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
	if (fd < 0) {
		ret = -errno;
		if (ret == -EEXIST)
			util_set_err(
			        err, errlen,
			        "network namespace %s already exists (%s); delete it first (ip "
			        "netns del %s) or choose another name",
			        name, path, name);
		else
			util_set_err(err, errlen, "cannot create network namespace file %s: %s",
			             path, util_strerror(ret));
		return ret;
	}
	close(fd);

	job.path = path;
	ret = -pthread_create(&t, NULL, create_thread, &job);
	if (ret < 0) {
		util_set_err(err, errlen, "cannot create network namespace %s: pthread_create: %s",
		             name, util_strerror(ret));
		goto undo;
	}
	pthread_join(t, NULL);
	ret = job.ret;
	if (ret < 0) {
		util_set_err(err, errlen, "%s", job.err);
		goto undo;
	}
	log_debug("network namespace %s created (%s)", name, path);
	return 0;
undo:
	umount2(path, MNT_DETACH);
	unlink(path);
	return ret;
}

int netns_delete(const char *name, char *err, size_t errlen)
{
	char path[PATH_MAX];
	int ret;

	ret = ns_path(name, path, sizeof(path), err, errlen);
	if (ret < 0)
		return ret;
	/* as ip netns del: not mounted (a leftover file) is fine */
	umount2(path, MNT_DETACH);
	if (unlink(path) < 0) {
		ret = -errno;
		if (ret == -ENOENT)
			util_set_err(err, errlen, "network namespace %s does not exist (no %s)",
			             name, path);
		else
			util_set_err(err, errlen,
			             "cannot remove network namespace %s: unlink %s: %s", name,
			             path, util_strerror(ret));
		return ret;
	}
	log_debug("network namespace %s deleted", name);
	return 0;
}

bool netns_exists(const char *name)
{
	char path[PATH_MAX];
	struct stat st;

	if (ns_path(name, path, sizeof(path), NULL, 0) < 0)
		return false;
	return stat(path, &st) == 0;
}

int netns_open(const char *name)
{
	char path[PATH_MAX];
	int fd, ret;

	ret = ns_path(name, path, sizeof(path), NULL, 0);
	if (ret < 0)
		return ret;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* an empty file left by an interrupted create is not a namespace */
	if (ioctl(fd, NS_GET_NSTYPE) != CLONE_NEWNET) {
		close(fd);
		return -EINVAL;
	}
	return fd;
}

/* Enters nsfd; *self gets the thread's own namespace to come back to. */
static int ns_enter(int nsfd, int *self)
{
	int ret;

	*self = open(SELF_NETNS, O_RDONLY | O_CLOEXEC);
	if (*self < 0)
		return -errno;
	if (setns(nsfd, CLONE_NEWNET) < 0) {
		ret = -errno;
		close(*self);
		*self = -1;
		return ret;
	}
	return 0;
}

/* Back to the thread's own namespace; a thread left in the wrong one would
 * silently configure the wrong netstack, so failing here is fatal. */
static void ns_leave(int self)
{
	if (setns(self, CLONE_NEWNET) < 0) {
		log_error("cannot return to the original network namespace: %s; aborting",
		          strerror(errno));
		abort();
	}
	close(self);
}

int netns_socket(int nsfd, int domain, int type, int protocol)
{
	int self, fd, ret;

	if (nsfd < 0) {
		fd = socket(domain, type, protocol);
		return fd < 0 ? -errno : fd;
	}
	ret = ns_enter(nsfd, &self);
	if (ret < 0)
		return ret;
	fd = socket(domain, type, protocol);
	ret = fd < 0 ? -errno : fd;
	ns_leave(self);
	return ret;
}

int netns_call(int nsfd, int (*fn)(void *arg), void *arg)
{
	int self, ret;

	if (nsfd < 0)
		return fn(arg);
	ret = ns_enter(nsfd, &self);
	if (ret < 0)
		return ret;
	ret = fn(arg);
	ns_leave(self);
	return ret;
}
