/* hostd's configuration file (libconfig), e.g. configs/host.cfg.
 * Loading is all-or-nothing: any error names file:line and the fix, and
 * hostd refuses to start half-configured. */
#ifndef HOSTD_CONFIG_H
#define HOSTD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "log.h"

enum hostd_role { ROLE_NOACCESS = 0, ROLE_READONLY, ROLE_ADMIN };

struct hostd_account {
	char *id;
	char *password_hash; /* crypt(3) hash: yescrypt ($y$) or sha512-crypt ($6$) */
	enum hostd_role role;
	char *description;
};

struct hostd_ds_conf {
	char *name;
	char *path;
	bool shared;
	int line; /* where it is defined in the config file */
};

struct hostd_config {
	char *path;   /* the file it was loaded from */
	char *name;   /* host name */
	char *listen; /* nng URL */
	char *state_dir;
	enum log_level log_level;
	char *log_file; /* default: <state_dir>/hostd.log */
	bool insecure;
	size_t max_message_bytes;
	int workers;
	unsigned session_timeout_s;
	unsigned max_migrations; /* live migrations at once from this host; more queue */
	struct hostd_ds_conf *datastores;
	size_t ndatastores;
	struct hostd_account *accounts;
	size_t naccounts;
	/* the other hosts this one may call itself, as vCenter's vpxuser would
	 * (FT re-protect): both files are read when needed, so that they may
	 * be written after hostd started; NULL when there is no cluster */
	char *cluster_hosts_file;       /* NAME ADDRESS:PORT THUMBPRINT lines */
	char *cluster_credentials_file; /* username=, password= lines; 0600 */
};

#define HOSTD_DEFAULT_LISTEN "tls+tcp://0.0.0.0:4443"

int hostd_config_load(const char *path, struct hostd_config *c, char *err, size_t errlen);
void hostd_config_free(struct hostd_config *c);
/* A canonical dump of every setting (for golden tests and `hostd --check`).
 * Password hashes are not printed. */
void hostd_config_dump(const struct hostd_config *c, FILE *f);

const char *hostd_role_name(enum hostd_role r);
int hostd_role_parse(const char *s, enum hostd_role *r);

#endif
