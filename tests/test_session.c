/* hostd/session.c: login sessions, their idle timeout (with the test clock
 * of hostd_sessions_advance) and eviction when the table is full. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hostd/session.h"

#define IDLE_S 60

static int setup(void **state)
{
	struct hostd_sessions *s = NULL;

	if (hostd_sessions_init(&s, IDLE_S) < 0)
		return -1;
	*state = s;
	return 0;
}

static int teardown(void **state)
{
	hostd_sessions_free(*state);
	return 0;
}

static void assert_token_format(const char *t)
{
	assert_int_equal(strlen(t), SESSION_TOKEN_LEN);
	for (size_t i = 0; i < SESSION_TOKEN_LEN; i++) {
		if (!strchr("0123456789abcdef", t[i]))
			fail_msg("token %s: '%c' is not lower-case hex", t, t[i]);
	}
}

static void test_create_check_remove(void **state)
{
	struct hostd_sessions *s = *state;
	char t1[SESSION_TOKEN_LEN + 1], t2[SESSION_TOKEN_LEN + 1], user[65];
	enum hostd_role role = ROLE_NOACCESS;

	assert_int_equal(hostd_session_create(s, "root", ROLE_ADMIN, t1), 0);
	assert_int_equal(hostd_session_create(s, "viewer", ROLE_READONLY, t2), 0);
	assert_token_format(t1);
	assert_token_format(t2);
	assert_string_not_equal(t1, t2);

	assert_int_equal(hostd_session_check(s, t1, user, &role), 0);
	assert_string_equal(user, "root");
	assert_int_equal(role, ROLE_ADMIN);
	assert_int_equal(hostd_session_check(s, t2, user, &role), 0);
	assert_string_equal(user, "viewer");
	assert_int_equal(role, ROLE_READONLY);

	assert_int_equal(hostd_session_remove(s, t1), 0);
	assert_int_equal(hostd_session_check(s, t1, user, &role), -ENOENT);
	assert_int_equal(hostd_session_remove(s, t1), -ENOENT);
	/* the other one is untouched */
	assert_int_equal(hostd_session_check(s, t2, user, &role), 0);
	assert_string_equal(user, "viewer");
	assert_int_equal(hostd_session_remove(s, t2), 0);
}

static void test_expiry(void **state)
{
	struct hostd_sessions *s = *state;
	char t[SESSION_TOKEN_LEN + 1], idle[SESSION_TOKEN_LEN + 1], user[65];
	enum hostd_role role;

	assert_int_equal(hostd_session_create(s, "root", ROLE_ADMIN, t), 0);
	assert_int_equal(hostd_session_create(s, "idle", ROLE_ADMIN, idle), 0);
	/* every check renews: 2 x 40 s with a check in between is fine */
	hostd_sessions_advance(s, 40 * 1000);
	assert_int_equal(hostd_session_check(s, t, user, &role), 0);
	hostd_sessions_advance(s, 40 * 1000);
	assert_int_equal(hostd_session_check(s, t, user, &role), 0);
	/* ... but the one not used for 80 s is gone */
	assert_int_equal(hostd_session_check(s, idle, user, &role), -ETIMEDOUT);
	assert_int_equal(hostd_session_check(s, idle, user, &role), -ENOENT);

	hostd_sessions_advance(s, (IDLE_S + 1) * 1000);
	assert_int_equal(hostd_session_check(s, t, user, &role), -ETIMEDOUT);
	/* an expired session is removed, not just refused */
	assert_int_equal(hostd_session_check(s, t, user, &role), -ENOENT);
	assert_int_equal(hostd_session_remove(s, t), -ENOENT);
}

static void test_unknown_token(void **state)
{
	struct hostd_sessions *s = *state;
	char t[SESSION_TOKEN_LEN + 1], other[SESSION_TOKEN_LEN + 1], user[65] = "unchanged";
	enum hostd_role role = ROLE_READONLY;

	assert_int_equal(hostd_session_create(s, "root", ROLE_ADMIN, t), 0);
	memcpy(other, t, sizeof(other));
	other[SESSION_TOKEN_LEN - 1] = other[SESSION_TOKEN_LEN - 1] == '0' ? '1' : '0';
	assert_int_equal(hostd_session_check(s, other, user, &role), -ENOENT);
	other[SESSION_TOKEN_LEN - 1] = t[SESSION_TOKEN_LEN - 1];
	other[0] = other[0] == 'a' ? 'b' : 'a';
	assert_int_equal(hostd_session_check(s, other, user, &role), -ENOENT);
	assert_int_equal(hostd_session_check(s,
	                                     "0000000000000000000000000000000000000000000000"
	                                     "000000000000000000",
	                                     user, &role),
	                 -ENOENT);
	/* the same token in upper case is another token */
	for (size_t i = 0; i < SESSION_TOKEN_LEN; i++)
		other[i] = (char)(t[i] >= 'a' ? t[i] - 'a' + 'A' : t[i]);
	if (strcmp(other, t) != 0)
		assert_int_equal(hostd_session_check(s, other, user, &role), -ENOENT);
	/* a failed check leaves the outputs alone */
	assert_string_equal(user, "unchanged");
	assert_int_equal(role, ROLE_READONLY);
	assert_int_equal(hostd_session_check(s, t, user, &role), 0);
	assert_int_equal(hostd_session_remove(s, t), 0);
}

static void test_wrong_length(void **state)
{
	struct hostd_sessions *s = *state;
	char t[SESSION_TOKEN_LEN + 1], buf[2 * SESSION_TOKEN_LEN + 2], user[65];
	enum hostd_role role;

	assert_int_equal(hostd_session_create(s, "root", ROLE_ADMIN, t), 0);
	assert_int_equal(hostd_session_check(s, "", user, &role), -ENOENT);
	/* a prefix */
	snprintf(buf, sizeof(buf), "%.*s", SESSION_TOKEN_LEN - 1, t);
	assert_int_equal(hostd_session_check(s, buf, user, &role), -ENOENT);
	assert_int_equal(hostd_session_remove(s, buf), -ENOENT);
	/* the token with something after it */
	snprintf(buf, sizeof(buf), "%s0", t);
	assert_int_equal(hostd_session_check(s, buf, user, &role), -ENOENT);
	snprintf(buf, sizeof(buf), "%s%s", t, t);
	assert_int_equal(hostd_session_check(s, buf, user, &role), -ENOENT);
	assert_int_equal(hostd_session_remove(s, buf), -ENOENT);
	/* none of that removed the session */
	assert_int_equal(hostd_session_check(s, t, user, &role), 0);
	assert_int_equal(hostd_session_remove(s, t), 0);
}

static void test_user_names(void **state)
{
	struct hostd_sessions *s = *state;
	char t[SESSION_TOKEN_LEN + 1], user[65], name[100];
	enum hostd_role role;

	memset(name, 'u', 64);
	name[64] = '\0';
	assert_int_equal(hostd_session_create(s, name, ROLE_READONLY, t), 0);
	assert_int_equal(hostd_session_check(s, t, user, &role), 0);
	assert_string_equal(user, name);
	assert_int_equal(hostd_session_remove(s, t), 0);

	/* longer names are cut to 64 bytes, never overflow user[65] */
	memset(name, 'v', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	assert_int_equal(hostd_session_create(s, name, ROLE_READONLY, t), 0);
	assert_int_equal(hostd_session_check(s, t, user, &role), 0);
	assert_int_equal(strlen(user), 64);
	assert_memory_equal(user, name, 64);
	assert_int_equal(hostd_session_remove(s, t), 0);
}

/* A fresh table of its own: SESSION_MAX sessions, one more drops the least
 * recently used one (not the oldest created: that one was renewed). */
static void test_full_table_evicts_lru(void **state)
{
	struct hostd_sessions *s = NULL;
	char(*tok)[SESSION_TOKEN_LEN + 1] = calloc(SESSION_MAX, sizeof(*tok));
	char extra[SESSION_TOKEN_LEN + 1], extra2[SESSION_TOKEN_LEN + 1], user[65], name[32];
	enum hostd_role role;

	(void)state;
	assert_non_null(tok);
	assert_int_equal(hostd_sessions_init(&s, 24 * 3600), 0);
	for (int i = 0; i < SESSION_MAX; i++) {
		snprintf(name, sizeof(name), "user%d", i);
		assert_int_equal(hostd_session_create(s, name, ROLE_READONLY, tok[i]), 0);
		hostd_sessions_advance(s, 1); /* distinct last-use times */
	}
	/* all of them are there */
	for (int i = 0; i < SESSION_MAX; i += 511) {
		snprintf(name, sizeof(name), "user%d", i);
		assert_int_equal(hostd_session_check(s, tok[i], user, &role), 0);
		assert_string_equal(user, name);
		hostd_sessions_advance(s, 1);
	}
	/* 0 was just used again: 1 is now the least recently used */
	assert_int_equal(hostd_session_check(s, tok[0], user, &role), 0);
	hostd_sessions_advance(s, 1);
	assert_int_equal(hostd_session_create(s, "extra", ROLE_ADMIN, extra), 0);

	assert_int_equal(hostd_session_check(s, tok[1], user, &role), -ENOENT);
	hostd_sessions_advance(s, 1);
	assert_int_equal(hostd_session_check(s, extra, user, &role), 0);
	assert_string_equal(user, "extra");
	assert_int_equal(role, ROLE_ADMIN);
	hostd_sessions_advance(s, 1);
	assert_int_equal(hostd_session_check(s, tok[0], user, &role), 0);
	assert_string_equal(user, "user0");
	hostd_sessions_advance(s, 1);
	for (int i = 2; i < SESSION_MAX; i++) {
		if (hostd_session_check(s, tok[i], user, &role) != 0)
			fail_msg("session %d lost", i);
	}
	/* now "extra" is the least recently used */
	hostd_sessions_advance(s, 1);
	assert_int_equal(hostd_session_create(s, "extra2", ROLE_ADMIN, extra2), 0);
	assert_int_equal(hostd_session_check(s, extra, user, &role), -ENOENT);
	assert_int_equal(hostd_session_check(s, tok[0], user, &role), 0);

	/* a freed slot is reused before anything is evicted */
	assert_int_equal(hostd_session_remove(s, tok[100]), 0);
	assert_int_equal(hostd_session_create(s, "extra3", ROLE_ADMIN, tok[100]), 0);
	for (int i = 0; i < SESSION_MAX; i++) {
		if (i != 1 && hostd_session_check(s, tok[i], user, &role) != 0)
			fail_msg("session %d lost", i);
	}
	assert_int_equal(hostd_session_check(s, extra2, user, &role), 0);
	assert_string_equal(user, "extra2");

	hostd_sessions_free(s);
	free(tok);
}

/* Expired sessions make room without evicting live ones. */
static void test_full_table_expired_first(void **state)
{
	struct hostd_sessions *s = NULL;
	char(*tok)[SESSION_TOKEN_LEN + 1] = calloc(SESSION_MAX, sizeof(*tok));
	char fresh[SESSION_TOKEN_LEN + 1], user[65];
	enum hostd_role role;
	const int half = SESSION_MAX / 2;

	(void)state;
	assert_non_null(tok);
	assert_int_equal(hostd_sessions_init(&s, IDLE_S), 0);
	for (int i = 0; i < half; i++)
		assert_int_equal(hostd_session_create(s, "old", ROLE_READONLY, tok[i]), 0);
	hostd_sessions_advance(s, 40 * 1000);
	for (int i = half; i < SESSION_MAX; i++)
		assert_int_equal(hostd_session_create(s, "live", ROLE_READONLY, tok[i]), 0);
	hostd_sessions_advance(s, 30 * 1000);
	/* the table is full: half expired (70 s idle), half live (30 s) */
	for (int i = 0; i < half; i++)
		assert_int_equal(hostd_session_create(s, "new", ROLE_ADMIN, fresh), 0);
	for (int i = half; i < SESSION_MAX; i++) {
		if (hostd_session_check(s, tok[i], user, &role) != 0)
			fail_msg("live session %d evicted", i);
	}
	assert_string_equal(user, "live");
	assert_int_equal(hostd_session_check(s, fresh, user, &role), 0);
	assert_string_equal(user, "new");
	hostd_sessions_free(s);
	free(tok);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create_check_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expiry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_token, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_length, setup, teardown),
		cmocka_unit_test_setup_teardown(test_user_names, setup, teardown),
		cmocka_unit_test(test_full_table_evicts_lru),
		cmocka_unit_test(test_full_table_expired_first),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
