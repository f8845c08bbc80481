/* The files of hostd's cluster section (config.h): the other hosts it may
 * call itself, and the credentials it calls them with, read when needed.
 * The hosts file says where the credentials go, so neither may be written
 * by others; the credentials file is read by its owner (hostd's user)
 * only, and never through a link. */
#ifndef HOSTD_CLUSTER_H
#define HOSTD_CLUSTER_H

#include <stddef.h>

#define CLUSTER_FILE_MAX (64u << 10)
#define CLUSTER_HOSTS    32

struct cluster_host {
	char name[128], addr[300], thumbprint[160];
};

/* NAME ADDRESS:PORT THUMBPRINT lines (# comments; a line without all
 * three is skipped with a warning): how many, at most max, or -errno with
 * err. */
int cluster_hosts(const char *path, struct cluster_host *h, size_t max, char *err, size_t errlen);
/* username= and password= lines: 0, or -errno with err (-EPERM for a file
 * others may read or that is not this user's, -EINVAL when one is missing
 * or the password does not fit in pl). What was read is wiped. */
int cluster_credentials(const char *path, char *user, size_t ul, char *pw, size_t pl, char *err,
                        size_t errlen);

#endif
