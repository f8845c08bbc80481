/* vmkctl option parsing against the command table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vmkctl/cmd.h"

static const struct vmkctl_cmd demo = {
    .path = "demo ns",
    .verb = "run",
    .help = "a command for tests",
    .opts =
        {
            {.name = "name",
             .shortname = 'n',
             .type = OPT_STR,
             .metavar = "NAME",
             .required = true},
            {.name = "count", .shortname = 'c', .type = OPT_INT, .min = 1, .max = 64},
            {.name = "mode", .type = OPT_ENUM, .choices = "soft|hard|force"},
            {.name = "disk", .type = OPT_INT, .min = 1, .max = 1 << 20, .repeatable = true},
            {.name = "cold", .type = OPT_FLAG},
        },
};

static int parse(struct vmkctl_args *a, char *err, int argc, ...)
{
	char *argv[16];
	va_list ap;

	va_start(ap, argc);
	for (int i = 0; i < argc; i++)
		argv[i] = va_arg(ap, char *);
	va_end(ap);
	return vmkctl_parse_args(&demo, argc, argv, a, err, 512);
}

static void test_forms(void **state)
{
	struct vmkctl_args a;
	char err[512];

	(void)state;
	assert_int_equal(parse(&a, err, 6, "-n", "vm1", "--count=4", "--mode", "hard", "--cold"),
	                 0);
	assert_string_equal(args_str(&a, "name"), "vm1");
	assert_int_equal(args_int(&a, "count", 0), 4);
	assert_string_equal(args_str(&a, "mode"), "hard");
	assert_true(args_flag(&a, "cold"));
	assert_int_equal(parse(&a, err, 2, "-nvm2", "-c7"), 0);
	assert_string_equal(args_str(&a, "name"), "vm2");
	assert_int_equal(args_int(&a, "count", 0), 7);
	assert_false(args_flag(&a, "cold"));
	assert_null(args_str(&a, "mode"));
	assert_int_equal(args_int(&a, "count", 0), 7);
}

static void test_repeatable(void **state)
{
	struct vmkctl_args a;
	char err[512];

	(void)state;
	assert_int_equal(parse(&a, err, 5, "-n", "x", "--disk", "10", "--disk=20"), 0);
	assert_int_equal(a.nvals[3], 2);
	assert_string_equal(a.vals[3][0], "10");
	assert_string_equal(a.vals[3][1], "20");
	/* not repeatable */
	assert_int_equal(parse(&a, err, 4, "-n", "x", "-n", "y"), 2);
	assert_non_null(strstr(err, "--name given twice"));
}

static void test_errors(void **state)
{
	struct vmkctl_args a;
	char err[512];

	(void)state;
	assert_int_equal(parse(&a, err, 0), 2);
	assert_non_null(strstr(err, "missing --name"));
	assert_non_null(strstr(err, "vmkctl demo ns run --help"));
	assert_int_equal(parse(&a, err, 3, "-n", "x", "--bogus"), 2);
	assert_non_null(strstr(err, "unknown option --bogus"));
	assert_int_equal(parse(&a, err, 3, "-n", "x", "-z"), 2);
	assert_non_null(strstr(err, "unknown option -z"));
	assert_int_equal(parse(&a, err, 3, "-n", "x", "stray"), 2);
	assert_non_null(strstr(err, "unexpected argument 'stray'"));
	assert_int_equal(parse(&a, err, 3, "-n", "x", "--count"), 2);
	assert_non_null(strstr(err, "--count needs a value"));
	assert_int_equal(parse(&a, err, 4, "-n", "x", "--count", "0"), 2);
	assert_non_null(strstr(err, "out of range; use 1 to 64"));
	assert_int_equal(parse(&a, err, 4, "-n", "x", "--count", "4x"), 2);
	assert_non_null(strstr(err, "wants a whole number"));
	assert_int_equal(parse(&a, err, 4, "-n", "x", "--count", "99999999999999999999"), 2);
	assert_int_equal(parse(&a, err, 4, "-n", "x", "--mode", "gentle"), 2);
	assert_non_null(strstr(err, "not one of soft|hard|force"));
	assert_int_equal(parse(&a, err, 3, "-n", "x", "--cold=yes"), 2);
	assert_non_null(strstr(err, "takes no value"));
	assert_int_equal(parse(&a, err, 2, "-n", ""), 2);
	assert_non_null(strstr(err, "non-empty"));
}

static void test_globals_stop_at_word(void **state)
{
	char *argv[] = { "-s", "esx1", "--formatter=json", "storage", "datastore", "list" };
	struct vmkctl_args g;
	char err[512];
	int used = -1;

	(void)state;
	assert_int_equal(
	        vmkctl_parse_globals(vmkctl_globals(), 6, argv, &g, &used, err, sizeof(err)), 0);
	assert_int_equal(used, 3);
	assert_string_equal(args_str(&g, "server"), "esx1");
	assert_string_equal(args_str(&g, "formatter"), "json");

	char *bad[] = { "--formatter", "yaml", "system" };
	assert_int_equal(
	        vmkctl_parse_globals(vmkctl_globals(), 3, bad, &g, &used, err, sizeof(err)), 2);
	assert_non_null(strstr(err, "table|json|csv|keyvalue|xml"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_forms),
		cmocka_unit_test(test_repeatable),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_globals_stop_at_word),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
