#include "auth.h"

#include <crypt.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

struct hostd_auth {
	const struct hostd_config *cfg;
	char *dummy_hash; /* checked for unknown users so timing does not tell */
};

int hostd_auth_hash(const char *password, char **hash)
{
	struct crypt_data *cd;
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	char *h;

	if (!crypt_gensalt_rn("$y$", 0, NULL, 0, salt, sizeof(salt)))
		return -errno ? -errno : -EINVAL;
	cd = calloc(1, sizeof(*cd));
	if (!cd)
		return -ENOMEM;
	h = crypt_rn(password, salt, cd, sizeof(*cd));
	if (!h || h[0] == '*') {
		free(cd);
		return -EINVAL;
	}
	*hash = strdup(h);
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return *hash ? 0 : -ENOMEM;
}

int hostd_auth_init(struct hostd_auth **ap, const struct hostd_config *cfg)
{
	struct hostd_auth *a = calloc(1, sizeof(*a));
	uint8_t rnd[16];
	char pw[33];
	int ret;

	if (!a)
		return -ENOMEM;
	a->cfg = cfg;
	util_random(rnd, sizeof(rnd));
	util_hex(rnd, sizeof(rnd), pw);
	ret = hostd_auth_hash(pw, &a->dummy_hash);
	if (ret < 0) {
		free(a);
		return ret;
	}
	*ap = a;
	return 0;
}

void hostd_auth_free(struct hostd_auth *a)
{
	if (!a)
		return;
	free(a->dummy_hash);
	free(a);
}

int hostd_auth_check(struct hostd_auth *a, const char *user, const char *password,
                     enum hostd_role *role)
{
	const struct hostd_account *acct = NULL;
	struct crypt_data *cd;
	const char *hash;
	char *res;
	bool ok;

	for (size_t i = 0; i < a->cfg->naccounts; i++) {
		if (strcmp(a->cfg->accounts[i].id, user) == 0)
			acct = &a->cfg->accounts[i];
	}
	hash = acct ? acct->password_hash : a->dummy_hash;
	cd = calloc(1, sizeof(*cd));
	if (!cd)
		return -ENOMEM;
	res = crypt_rn(password, hash, cd, sizeof(*cd));
	ok = res && res[0] != '*' && strlen(res) == strlen(hash) &&
	     util_ct_equal(res, hash, strlen(hash));
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	if (!ok || !acct || acct->role == ROLE_NOACCESS)
		return -EACCES;
	*role = acct->role;
	return 0;
}
