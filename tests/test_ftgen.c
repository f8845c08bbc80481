/* The FT generation record (replica/gen.c): begin, the test-and-set that
 * exactly one side wins, and records that are not one. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "replica/replica.h"

static char dir[64], path[128];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/vmk-test-ftgen.XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/vm.ftgen", dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	rmdir(dir);
	return 0;
}

static void test_begin_and_take(void **state)
{
	char err[300], owner[64];
	uint64_t g = 0;

	(void)state;
	assert_int_equal(ft_gen_begin(path, "esx0", &g, err, sizeof(err)), 0);
	assert_true(g == 1);
	assert_int_equal(ft_gen_begin(path, "esx0", &g, err, sizeof(err)), 0);
	assert_true(g == 2); /* a new protection, a new generation */
	assert_int_equal(ft_gen_read(path, &g, owner, sizeof(owner)), 0);
	assert_true(g == 2);
	assert_string_equal(owner, "esx0");
	/* the secondary wins; the primary, a moment later, loses */
	assert_int_equal(ft_gen_take(path, 2, "esx1", err, sizeof(err)), 0);
	assert_int_equal(ft_gen_take(path, 2, "esx0", err, sizeof(err)), -EBUSY);
	assert_non_null(strstr(err, "at 3 (esx1)"));
	assert_int_equal(ft_gen_read(path, &g, owner, sizeof(owner)), 0);
	assert_true(g == 3);
	assert_string_equal(owner, "esx1");
}

struct racer {
	uint64_t expect;
	const char *who;
	int ret;
};

static void *race(void *arg)
{
	struct racer *r = arg;
	char err[300];

	r->ret = ft_gen_take(path, r->expect, r->who, err, sizeof(err));
	return NULL;
}

/* both sides at once, 50 times: one wins each time, never both */
static void test_one_winner(void **state)
{
	char err[300];
	uint64_t g = 0;

	(void)state;
	for (int i = 0; i < 50; i++) {
		assert_int_equal(ft_gen_begin(path, "esx0", &g, err, sizeof(err)), 0);
		struct racer a = { g, "esx0", 1 }, b = { g, "esx1", 1 };
		pthread_t ta, tb;
		pthread_create(&ta, NULL, race, &a);
		pthread_create(&tb, NULL, race, &b);
		pthread_join(ta, NULL);
		pthread_join(tb, NULL);
		assert_true((a.ret == 0) != (b.ret == 0));
		assert_true(a.ret == -EBUSY || b.ret == -EBUSY);
	}
}

static void test_not_a_record(void **state)
{
	char err[300];
	uint64_t g = 0;

	(void)state;
	FILE *f = fopen(path, "w");
	fputs("generation=12abc\n", f);
	fclose(f);
	assert_int_equal(ft_gen_take(path, 12, "esx1", err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "not an FT generation record"));
	assert_int_equal(ft_gen_begin(path, "esx0", &g, err, sizeof(err)), -EBADMSG);
	/* a record nobody can write: nobody may think it won */
	assert_true(ft_gen_take("/nonexistent-dir/vm.ftgen", 1, "esx1", err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "/nonexistent-dir/vm.ftgen"));
	/* a missing record is not a generation to take over */
	unlink(path);
	assert_int_equal(ft_gen_take(path, 0, "esx1", err, sizeof(err)), -EBADMSG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_begin_and_take, setup, teardown),
		cmocka_unit_test_setup_teardown(test_one_winner, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_a_record, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
