/* The destination's CPU check before a migration: what a guest was given
 * against what this host's accelerator offers (here the software CPU). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hostd/migrate.h"

static void test_offered(void **state)
{
	char *f[] = { "tsc", "cmov", "lm", "nx" };
	char err[800] = "";

	(void)state;
	assert_int_equal(migrate_cpu_check("esx2", "vm1", "host", f, 4, err, sizeof(err)), 0);
	assert_int_equal(migrate_cpu_check("esx2", "vm1", "host", f, 0, err, sizeof(err)), 0);
}

static void test_lacking(void **state)
{
	char *f[] = { "lm", "avx512f", "nx", "sse4_2", "no-such-feature" };
	char err[800] = "";

	(void)state;
	assert_int_equal(migrate_cpu_check("esx2", "vm1", "x86-64-v4", f, 5, err, sizeof(err)),
	                 -ENOTSUP);
	/* names the host, the VM, the model and exactly what is missing */
	assert_non_null(strstr(err, "esx2"));
	assert_non_null(strstr(err, "vm1"));
	assert_non_null(strstr(err, "x86-64-v4"));
	assert_non_null(strstr(err, "avx512f, sse4_2, no-such-feature"));
	assert_null(strstr(err, "lm,"));
}

/* A lab host that stands for older hardware ($VMK_CPU_HIDE) lacks what it
 * hides, and only that. */
static void test_hidden(void **state)
{
	char *f[] = { "tsc", "cmov", "lm", "nx" };
	char err[800] = "";

	(void)state;
	setenv("VMK_CPU_HIDE", "nx,no-such-feature,cmov", 1);
	assert_int_equal(migrate_cpu_check("esx3", "vm1", "host", f, 4, err, sizeof(err)),
	                 -ENOTSUP);
	assert_non_null(strstr(err, "cmov, nx"));
	assert_null(strstr(err, "tsc"));
	unsetenv("VMK_CPU_HIDE");
	assert_int_equal(migrate_cpu_check("esx3", "vm1", "host", f, 4, err, sizeof(err)), 0);
}

int main(void)
{
	setenv("VMK_ACCEL", "soft", 1); /* the same answer on every machine */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_offered),
		cmocka_unit_test(test_lacking),
		cmocka_unit_test(test_hidden),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
