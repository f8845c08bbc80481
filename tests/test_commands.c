/* vmkctl's command table: lookup, consistency, help and completion golden. */
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

#include "util.h"
#include "vmkctl/cmd.h"

static void test_find(void **state)
{
	char *w1[] = { "storage", "datastore", "list", "--x" };
	char *w2[] = { "storage", "datastore" };
	char *w3[] = { "storage", "bogus" };
	char *w4[] = { "list" };
	int used;

	(void)state;
	const struct vmkctl_cmd *c = vmkctl_find(4, w1, &used);
	assert_non_null(c);
	assert_int_equal(used, 3);
	assert_string_equal(c->verb, "list");
	assert_null(vmkctl_find(2, w2, &used));
	assert_int_equal(used, 2);
	assert_null(vmkctl_find(2, w3, &used));
	assert_int_equal(used, 1);
	assert_null(vmkctl_find(1, w4, &used));
	assert_int_equal(used, 0);
}

/* Every command sits in a known namespace, every namespace's parents exist,
 * no two commands share path+verb, no command has two options with the same
 * long or short name, and required options have a metavar. */
static void test_table_consistent(void **state)
{
	size_t n;
	const struct vmkctl_cmd *c = vmkctl_commands(&n);

	(void)state;
	assert_true(n > 0);
	for (size_t i = 0; i < n; i++) {
		assert_true(vmkctl_is_namespace(c[i].path));
		assert_non_null(c[i].help);
		for (size_t j = i + 1; j < n; j++)
			assert_false(strcmp(c[i].path, c[j].path) == 0 &&
			             strcmp(c[i].verb, c[j].verb) == 0);
		for (int a = 0; a < VMKCTL_MAX_OPTS && c[i].opts[a].name; a++) {
			const struct vmkctl_opt *o = &c[i].opts[a];
			if (o->type != OPT_FLAG)
				assert_non_null(o->metavar);
			assert_non_null(o->help);
			for (int b = a + 1; b < VMKCTL_MAX_OPTS && c[i].opts[b].name; b++) {
				assert_string_not_equal(o->name, c[i].opts[b].name);
				if (o->shortname)
					assert_int_not_equal(o->shortname, c[i].opts[b].shortname);
			}
		}
	}
	const struct vmkctl_ns *ns = vmkctl_namespaces(&n);
	for (size_t i = 0; i < n; i++) {
		char parent[256];
		snprintf(parent, sizeof(parent), "%s", ns[i].path);
		char *sp = strrchr(parent, ' ');
		if (sp) {
			*sp = '\0';
			assert_true(vmkctl_is_namespace(parent));
		}
	}
}

static char *capture(void (*fn)(FILE *, const void *), const void *arg)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	fn(f, arg);
	fclose(f);
	return buf;
}

static void usage_fn(FILE *f, const void *a)
{
	(void)a;
	vmkctl_usage(f);
}

static void ns_fn(FILE *f, const void *a)
{
	vmkctl_ns_help(f, a);
}

static void cmd_fn(FILE *f, const void *a)
{
	vmkctl_cmd_help(f, a);
}

static void completion_fn(FILE *f, const void *a)
{
	vmkctl_completion(f, a);
}

static void test_help_golden(void **state)
{
	char *w[] = { "storage", "datastore", "add" };
	int used;
	char *s;

	(void)state;
	s = capture(usage_fn, NULL);
	check_golden("tests/golden/cli/usage.txt", s);
	free(s);
	s = capture(ns_fn, "storage");
	check_golden("tests/golden/cli/storage.txt", s);
	free(s);
	s = capture(cmd_fn, vmkctl_find(3, w, &used));
	check_golden("tests/golden/cli/storage-datastore-add.txt", s);
	free(s);
	s = capture(completion_fn, "bash");
	check_golden("tests/golden/cli/completion.bash", s);
	free(s);
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
		cmocka_unit_test(test_find),
		cmocka_unit_test(test_table_consistent),
		cmocka_unit_test(test_help_golden),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
