#include "cluster.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

/* The file at path, opened without following a link, read whole into
 * text (CLUSTER_FILE_MAX at most, NUL-terminated) when its mode and owner
 * pass: 0 with *len, or -errno with err. */
static int read_guarded(const char *path, const char *what, mode_t forbid, bool own, char *text,
                        size_t *len, char *err, size_t errlen)
{
	struct stat st;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) < 0) {
		int e = errno;
		snprintf(err, errlen, "the cluster's %s %s: %s", what, path, strerror(e));
		if (fd >= 0)
			close(fd);
		return -e;
	}
	if (!S_ISREG(st.st_mode) || (st.st_mode & forbid) || (own && st.st_uid != geteuid())) {
		snprintf(err, errlen, "the cluster's %s %s must be a file %s: %s", what, path,
		         own ? "of this user that only it reads" : "that only its owner writes",
		         own ? "chown it and chmod 600 it" : "chmod go-w it");
		close(fd);
		return -EPERM;
	}
	*len = 0;
	while (*len < CLUSTER_FILE_MAX && (n = read(fd, text + *len, CLUSTER_FILE_MAX - *len)) > 0)
		*len += (size_t)n;
	close(fd);
	text[*len] = '\0';
	return 0;
}

int cluster_hosts(const char *path, struct cluster_host *h, size_t max, char *err, size_t errlen)
{
	static __thread char text[CLUSTER_FILE_MAX + 1];
	char *save = NULL;
	size_t n = 0, len;
	int ret = read_guarded(path, "hosts file", 022, false, text, &len, err, errlen);

	if (ret < 0)
		return ret;
	for (char *l = strtok_r(text, "\n", &save); l && n < max; l = strtok_r(NULL, "\n", &save)) {
		char *s2 = NULL, *f0 = strtok_r(l, " \t\r", &s2);
		char *f1 = f0 ? strtok_r(NULL, " \t\r", &s2) : NULL;
		char *f2 = f1 ? strtok_r(NULL, " \t\r", &s2) : NULL;
		if (!f0 || f0[0] == '#')
			continue;
		if (!f1 || !f2 || strlen(f0) >= sizeof(h->name) || strlen(f1) >= sizeof(h->addr) ||
		    strlen(f2) >= sizeof(h->thumbprint)) {
			log_warn(
			        "%s: a line for %.64s without an address and a thumbprint: skipped",
			        path, f0);
			continue;
		}
		snprintf(h[n].name, sizeof(h[n].name), "%s", f0);
		snprintf(h[n].addr, sizeof(h[n].addr), "%s", f1);
		snprintf(h[n].thumbprint, sizeof(h[n].thumbprint), "%s", f2);
		n++;
	}
	return (int)n;
}

int cluster_credentials(const char *path, char *user, size_t ul, char *pw, size_t pl, char *err,
                        size_t errlen)
{
	static __thread char text[CLUSTER_FILE_MAX + 1];
	char *save = NULL;
	size_t len;
	int ret = read_guarded(path, "credentials file", 077, true, text, &len, err, errlen);

	if (ret < 0)
		return ret;
	user[0] = pw[0] = '\0';
	for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		l[strcspn(l, "\r")] = '\0';
		if (!strncmp(l, "username=", 9))
			snprintf(user, ul, "%s", l + 9);
		else if (!strncmp(l, "password=", 9) && strlen(l + 9) < pl)
			snprintf(pw, pl, "%s", l + 9);
	}
	explicit_bzero(text, len); /* the whole file: strtok_r cut it into lines */
	if (!user[0] || !pw[0]) {
		explicit_bzero(pw, pl);
		snprintf(err, errlen,
		         "the cluster's credentials file %s needs username= and password= lines "
		         "(a password under %zu bytes)",
		         path, pl);
		return -EINVAL;
	}
	return 0;
}
