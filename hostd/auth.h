/* Accounts and password checks (crypt(3): yescrypt, sha512-crypt). */
#ifndef HOSTD_AUTH_H
#define HOSTD_AUTH_H

#include "config.h"

struct hostd_auth;

/* Keeps a pointer to cfg's accounts: cfg must outlive the auth object. */
int hostd_auth_init(struct hostd_auth **a, const struct hostd_config *cfg);
void hostd_auth_free(struct hostd_auth *a);

/* 0 and the account's role when user/password match; -EACCES otherwise.
 * Takes the same time for an unknown user as for a wrong password. */
int hostd_auth_check(struct hostd_auth *a, const char *user, const char *password,
                     enum hostd_role *role);

/* A new yescrypt hash of password (malloc'd), for `hostd --hash-password`. */
int hostd_auth_hash(const char *password, char **hash);

#endif
