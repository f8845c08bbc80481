/* hostd/auth.c: password hashing and checks against a hand-built config. */
#include <crypt.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hostd/auth.h"
#include "hostd/config.h"

enum { ACCT_ADMIN, ACCT_VIEWER, ACCT_NOBODY, ACCT_SHA512, ACCT_LOCKED, ACCT_EMPTYHASH, NACCT };

static struct {
	struct hostd_config cfg;
	struct hostd_account acct[NACCT];
	struct hostd_auth *auth;
	char *sha512;
} fx;

static int setup(void **state)
{
	struct crypt_data cd;
	char *h;

	(void)state;
	memset(&fx, 0, sizeof(fx));
	fx.acct[ACCT_ADMIN] = (struct hostd_account){ .id = "root", .role = ROLE_ADMIN };
	fx.acct[ACCT_VIEWER] = (struct hostd_account){ .id = "viewer", .role = ROLE_READONLY };
	fx.acct[ACCT_NOBODY] = (struct hostd_account){ .id = "nobody", .role = ROLE_NOACCESS };
	fx.acct[ACCT_SHA512] = (struct hostd_account){ .id = "legacy", .role = ROLE_READONLY };
	fx.acct[ACCT_LOCKED] =
	        (struct hostd_account){ .id = "locked", .password_hash = "!", .role = ROLE_ADMIN };
	fx.acct[ACCT_EMPTYHASH] =
	        (struct hostd_account){ .id = "nohash", .password_hash = "", .role = ROLE_ADMIN };
	if (hostd_auth_hash("root-pw", &fx.acct[ACCT_ADMIN].password_hash) < 0 ||
	    hostd_auth_hash("viewer-pw", &fx.acct[ACCT_VIEWER].password_hash) < 0 ||
	    hostd_auth_hash("nobody-pw", &fx.acct[ACCT_NOBODY].password_hash) < 0)
		return -1;
	/* sha512-crypt, as older config files have */
	memset(&cd, 0, sizeof(cd));
	h = crypt_r("legacy-pw", "$6$rounds=5000$0123456789abcdef$", &cd);
	if (!h || h[0] == '*')
		return -1;
	fx.sha512 = strdup(h);
	fx.acct[ACCT_SHA512].password_hash = fx.sha512;
	fx.cfg.accounts = fx.acct;
	fx.cfg.naccounts = NACCT;
	return hostd_auth_init(&fx.auth, &fx.cfg);
}

static int teardown(void **state)
{
	(void)state;
	hostd_auth_free(fx.auth);
	free(fx.acct[ACCT_ADMIN].password_hash);
	free(fx.acct[ACCT_VIEWER].password_hash);
	free(fx.acct[ACCT_NOBODY].password_hash);
	free(fx.sha512);
	return 0;
}

static void test_hash(void **state)
{
	char *h1 = NULL, *h2 = NULL;
	struct crypt_data cd;

	(void)state;
	assert_int_equal(hostd_auth_hash("secret", &h1), 0);
	assert_int_equal(hostd_auth_hash("secret", &h2), 0);
	assert_memory_equal(h1, "$y$", 3);
	assert_string_not_equal(h1, h2); /* salted */
	/* both verify with crypt(3) */
	memset(&cd, 0, sizeof(cd));
	assert_string_equal(crypt_r("secret", h1, &cd), h1);
	memset(&cd, 0, sizeof(cd));
	assert_string_equal(crypt_r("secret", h2, &cd), h2);
	memset(&cd, 0, sizeof(cd));
	assert_string_not_equal(crypt_r("Secret", h1, &cd), h1);
	free(h1);
	free(h2);
	/* the empty password can be hashed too (and then must be given) */
	assert_int_equal(hostd_auth_hash("", &h1), 0);
	free(h1);
}

static void test_right_password(void **state)
{
	enum hostd_role role = ROLE_NOACCESS;

	(void)state;
	assert_int_equal(hostd_auth_check(fx.auth, "root", "root-pw", &role), 0);
	assert_int_equal(role, ROLE_ADMIN);
	assert_int_equal(hostd_auth_check(fx.auth, "viewer", "viewer-pw", &role), 0);
	assert_int_equal(role, ROLE_READONLY);
	assert_int_equal(hostd_auth_check(fx.auth, "legacy", "legacy-pw", &role), 0);
	assert_int_equal(role, ROLE_READONLY);
}

static void test_wrong_password(void **state)
{
	enum hostd_role role = ROLE_READONLY;
	char longpw[2048];

	(void)state;
	memset(longpw, 'x', sizeof(longpw) - 1);
	longpw[sizeof(longpw) - 1] = '\0';
	assert_int_equal(hostd_auth_check(fx.auth, "root", "root-pW", &role), -EACCES);
	assert_int_equal(hostd_auth_check(fx.auth, "root", "", &role), -EACCES);
	assert_int_equal(hostd_auth_check(fx.auth, "root", "root-pw ", &role), -EACCES);
	assert_int_equal(hostd_auth_check(fx.auth, "root", "viewer-pw", &role), -EACCES);
	assert_int_equal(hostd_auth_check(fx.auth, "root", longpw, &role), -EACCES);
	assert_int_equal(hostd_auth_check(fx.auth, "legacy", "legacy", &role), -EACCES);
	/* another account's hash as password */
	assert_int_equal(
	        hostd_auth_check(fx.auth, "root", fx.acct[ACCT_ADMIN].password_hash, &role),
	        -EACCES);
	assert_int_equal(role, ROLE_READONLY); /* untouched on failure */
}

static void test_unknown_user(void **state)
{
	enum hostd_role role = ROLE_READONLY;

	(void)state;
	assert_int_equal(hostd_auth_check(fx.auth, "admin", "root-pw", &role), -EACCES);
	assert_int_equal(hostd_auth_check(fx.auth, "Root", "root-pw", &role), -EACCES);
	assert_int_equal(hostd_auth_check(fx.auth, "root ", "root-pw", &role), -EACCES);
	assert_int_equal(hostd_auth_check(fx.auth, "", "", &role), -EACCES);
	assert_int_equal(role, ROLE_READONLY);
}

static void test_noaccess_role(void **state)
{
	enum hostd_role role = ROLE_READONLY;

	(void)state;
	/* the right password, but the role grants nothing */
	assert_int_equal(hostd_auth_check(fx.auth, "nobody", "nobody-pw", &role), -EACCES);
	assert_int_equal(hostd_auth_check(fx.auth, "nobody", "wrong", &role), -EACCES);
	assert_int_equal(role, ROLE_READONLY);
}

/* Hashes that are not hashes ("!" locks an account, "" is not a hash)
 * match no password, not even themselves or the empty one. */
static void test_locked_accounts(void **state)
{
	enum hostd_role role = ROLE_READONLY;

	(void)state;
	assert_int_equal(hostd_auth_check(fx.auth, "locked", "!", &role), -EACCES);
	assert_int_equal(hostd_auth_check(fx.auth, "locked", "", &role), -EACCES);
	assert_int_equal(hostd_auth_check(fx.auth, "locked", "*0", &role), -EACCES);
	assert_int_equal(hostd_auth_check(fx.auth, "nohash", "", &role), -EACCES);
	assert_int_equal(hostd_auth_check(fx.auth, "nohash", "x", &role), -EACCES);
	assert_int_equal(role, ROLE_READONLY);
}

/* A config without accounts lets nobody in. */
static void test_no_accounts(void **state)
{
	struct hostd_config empty = { 0 };
	struct hostd_auth *a = NULL;
	enum hostd_role role = ROLE_READONLY;

	(void)state;
	assert_int_equal(hostd_auth_init(&a, &empty), 0);
	assert_int_equal(hostd_auth_check(a, "root", "root-pw", &role), -EACCES);
	assert_int_equal(hostd_auth_check(a, "", "", &role), -EACCES);
	assert_int_equal(role, ROLE_READONLY);
	hostd_auth_free(a);
	hostd_auth_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash),           cmocka_unit_test(test_right_password),
		cmocka_unit_test(test_wrong_password), cmocka_unit_test(test_unknown_user),
		cmocka_unit_test(test_noaccess_role),  cmocka_unit_test(test_locked_accounts),
		cmocka_unit_test(test_no_accounts),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
