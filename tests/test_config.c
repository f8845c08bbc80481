/* hostd configuration: golden dumps of every example in configs/, golden
 * error messages (file:line and the fix) for every broken config in
 * tests/data/config/. VMK_UPDATE_GOLDEN=1 rewrites the golden files. */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/testutil.h"

#include "hostd/config.h"
#include "util.h"

/* Files in dir ending with .cfg, sorted; returns how many (at most max). */
static int list_cfgs(const char *dir, char names[][128], int max)
{
	struct dirent **ents;
	int n = scandir(dir, &ents, NULL, alphasort), k = 0;

	assert_true(n >= 0);
	for (int i = 0; i < n; i++) {
		size_t l = strlen(ents[i]->d_name);
		if (l > 4 && strcmp(ents[i]->d_name + l - 4, ".cfg") == 0 && k < max)
			snprintf(names[k++], 128, "%s", ents[i]->d_name);
		free(ents[i]);
	}
	free(ents);
	return k;
}

static void test_examples_golden(void **state)
{
	char names[32][128], path[256], golden[256];
	int n;

	(void)state;
	n = list_cfgs("configs", names, 32);
	assert_true(n >= 3);
	for (int i = 0; i < n; i++) {
		struct hostd_config c;
		char err[1024], *buf = NULL;
		size_t len = 0;
		snprintf(path, sizeof(path), "configs/%s", names[i]);
		if (hostd_config_load(path, &c, err, sizeof(err)) < 0)
			fail_msg("%s does not load: %s", path, err);
		FILE *f = open_memstream(&buf, &len);
		hostd_config_dump(&c, f);
		fclose(f);
		snprintf(golden, sizeof(golden), "tests/golden/config/%.*s.txt",
		         (int)strlen(names[i]) - 4, names[i]);
		check_golden(golden, buf);
		free(buf);
		hostd_config_free(&c);
	}
}

static void test_bad_configs_golden(void **state)
{
	char names[64][128], path[256], golden[256];
	int n;

	(void)state;
	n = list_cfgs("tests/data/config", names, 64);
	assert_true(n >= 15);
	for (int i = 0; i < n; i++) {
		struct hostd_config c;
		char err[1024], msg[1100];
		snprintf(path, sizeof(path), "tests/data/config/%s", names[i]);
		if (hostd_config_load(path, &c, err, sizeof(err)) == 0) {
			hostd_config_free(&c);
			fail_msg("%s loaded but must be rejected", path);
		}
		/* every message names the file */
		assert_non_null(strstr(err, path));
		snprintf(msg, sizeof(msg), "%s\n", err);
		snprintf(golden, sizeof(golden), "tests/golden/config/bad-%.*s.err",
		         (int)strlen(names[i]) - 4, names[i]);
		check_golden(golden, msg);
	}
}

static void test_missing_file(void **state)
{
	struct hostd_config c;
	char err[512];

	(void)state;
	assert_int_equal(hostd_config_load("tests/data/no-such.cfg", &c, err, sizeof(err)),
	                 -ENOENT);
	assert_non_null(strstr(err, "No such file"));
}

static void test_oversized_file(void **state)
{
	char path[] = "/tmp/vmk-test-config-XXXXXX";
	struct hostd_config c;
	char err[512];
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	/* 2 MiB of comments: over the 1 MiB limit, never handed to libconfig */
	char line[1024];
	memset(line, '#', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\n';
	for (int i = 0; i < 2048; i++)
		assert_int_equal(write(fd, line, sizeof(line)), (ssize_t)sizeof(line));
	close(fd);
	assert_int_equal(hostd_config_load(path, &c, err, sizeof(err)), -EFBIG);
	assert_non_null(strstr(err, "larger than"));
	unlink(path);
}

static void test_binary_garbage(void **state)
{
	char path[] = "/tmp/vmk-test-config-XXXXXX";
	struct hostd_config c;
	char err[512];
	uint8_t junk[4096];
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)(i * 131 + 7);
	assert_int_equal(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
	close(fd);
	assert_int_equal(hostd_config_load(path, &c, err, sizeof(err)), -EINVAL);
	unlink(path);
}

static void test_defaults(void **state)
{
	struct hostd_config c;
	char err[512];

	(void)state;
	assert_int_equal(hostd_config_load("configs/insecure-lab.cfg", &c, err, sizeof(err)), 0);
	assert_true(c.insecure);
	assert_int_equal(c.workers, 8);
	assert_int_equal(c.session_timeout_s, 1800);
	assert_int_equal(c.max_message_bytes, 65536);
	assert_int_equal(c.naccounts, 1);
	assert_int_equal(c.accounts[0].role, ROLE_ADMIN);
	assert_int_equal(c.ndatastores, 0);
	hostd_config_free(&c);
}

static int setup(void **state)
{
	const char *src = getenv("VMK_SRCDIR");

	(void)state;
	return src && chdir(src) != 0 ? -1 : 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_examples_golden), cmocka_unit_test(test_bad_configs_golden),
		cmocka_unit_test(test_missing_file),    cmocka_unit_test(test_oversized_file),
		cmocka_unit_test(test_binary_garbage),  cmocka_unit_test(test_defaults),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
