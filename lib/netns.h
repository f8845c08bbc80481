/* Named network namespaces ("netstacks"), compatible with iproute2: the
 * namespace NAME is a bind mount of an nsfs file on /run/netns/NAME, so
 * `ip netns exec NAME ...`, `ip netns list` and `ip netns del NAME` work on
 * them, and these functions work on namespaces made by `ip netns add`.
 *
 * The environment variable VMK_NETNS_DIR, when set and non-empty, replaces
 * /run/netns (for tests only: iproute2 does not know about it).
 *
 * Names: 1..63 characters of [A-Za-z0-9_.-], not "." or "..".
 *
 * Functions return 0 or -errno; those with err/errlen write a message
 * naming the namespace and the fix. */
#ifndef VMK_NETNS_H
#define VMK_NETNS_H

#include <stdbool.h>
#include <stddef.h>

#define NETNS_NAME_MAX 63

/* The directory of the namespace files: $VMK_NETNS_DIR or /run/netns. */
const char *netns_dir(void);
/* true if name is a valid namespace name; else writes why (may be NULL). */
bool netns_valid_name(const char *name, char *why, size_t whylen);

/* ip netns add NAME: makes the directory a shared mount point (binding it
 * onto itself first if needed), creates the empty file NAME in it, then, in
 * a new thread (never the caller's), unshare(CLONE_NEWNET) and bind-mounts
 * /proc/thread-self/ns/net onto the file; "lo" is brought up inside. -EEXIST
 * if the file exists, -EINVAL for a bad name. Undone on failure. */
int netns_create(const char *name, char *err, size_t errlen);
/* ip netns del NAME: umount2(MNT_DETACH) + unlink. The namespace itself
 * lives on while something (an fd, a process, a socket) still holds it.
 * -ENOENT if absent. */
int netns_delete(const char *name, char *err, size_t errlen);
/* The file NAME exists (a valid name is required). */
bool netns_exists(const char *name);
/* O_RDONLY|O_CLOEXEC fd of the namespace NAME. -ENOENT if absent, -EINVAL
 * for a bad name or a file that is not a network namespace (e.g. left
 * behind by an interrupted create). Ownership: the caller closes it. */
int netns_open(const char *name);

/* socket(domain, type, protocol) created inside the namespace nsfd: the
 * calling thread setns()es in, creates it, and setns()es back to its own
 * namespace (abort() if it cannot: a thread never stays in the wrong one).
 * nsfd < 0: a plain socket of the current namespace. fd or -errno. */
int netns_socket(int nsfd, int domain, int type, int protocol);
/* Runs fn(arg) on the calling thread inside the namespace nsfd with the
 * same enter/return discipline (nsfd < 0: here); returns fn's value, or
 * -errno if the namespace could not be entered. */
int netns_call(int nsfd, int (*fn)(void *arg), void *arg);

#endif
