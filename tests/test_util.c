/* lib/util.c's util_thread_nice: an extra migration stream's thread yields
 * to the vCPUs during pre-copy; threads it starts inherit its priority.
 * util_read_file: bounded, and only regular files (a FIFO is refused at
 * once, not waited on). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/util.h"

static int my_nice(void)
{
	return getpriority(PRIO_PROCESS, (id_t)gettid());
}

static void *report_nice(void *arg)
{
	*(int *)arg = my_nice();
	return NULL;
}

static void *nice_and_spawn(void *arg)
{
	int *v = arg;
	pthread_t t;

	v[0] = util_thread_nice(7);
	v[1] = my_nice();
	pthread_create(&t, NULL, report_nice, &v[2]);
	pthread_join(t, NULL);
	return NULL;
}

/* the thread itself only, and what it starts afterwards */
static void test_thread_nice(void **state)
{
	int v[3] = { -100, -100, -100 };
	pthread_t t;

	(void)state;
	int before = my_nice();
	assert_int_equal(pthread_create(&t, NULL, nice_and_spawn, v), 0);
	pthread_join(t, NULL);
	assert_int_equal(v[0], 0);
	assert_int_equal(v[1], before + 7);
	assert_int_equal(v[2], before + 7);
	assert_int_equal(my_nice(), before); /* the caller's thread is untouched */
}

static void test_read_file(void **state)
{
	char dir[] = "/tmp/vmk-test-util.XXXXXX", path[64], *buf = NULL;
	size_t len = 0;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/f", dir);
	assert_int_equal(util_write_file_atomic(path, "hello", 5, 0644), 0);
	assert_int_equal(util_read_file(path, 5, &buf, &len), 0);
	assert_int_equal(len, 5);
	assert_string_equal(buf, "hello");
	free(buf);
	assert_int_equal(util_read_file(path, 4, &buf, &len), -EFBIG);
	assert_int_equal(util_read_file(dir, 4096, &buf, &len), -EISDIR);
	/* a FIFO with no writer: before, the open waited for one for good
	 * (the alarm ends the test instead) */
	snprintf(path, sizeof(path), "%s/fifo", dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	alarm(10);
	assert_int_equal(util_read_file(path, 4096, &buf, &len), -EINVAL);
	alarm(0);
	assert_int_equal(util_read_file("/dev/zero", 4096, &buf, &len), -EINVAL);
	/* a symbolic link at the temporary name is not written through */
	char tmpname[80], target[64];
	snprintf(path, sizeof(path), "%s/g", dir);
	snprintf(tmpname, sizeof(tmpname), "%s/g.tmp", dir);
	snprintf(target, sizeof(target), "%s/target", dir);
	assert_int_equal(util_write_file_atomic(target, "keep", 4, 0644), 0);
	assert_int_equal(symlink(target, tmpname), 0);
	assert_int_equal(util_write_file_atomic(path, "evil", 4, 0644), -ELOOP);
	assert_int_equal(util_read_file(target, 64, &buf, &len), 0);
	assert_string_equal(buf, "keep");
	free(buf);
	util_rm_tree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_thread_nice),
		cmocka_unit_test(test_read_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
