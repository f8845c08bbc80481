/* lib/util.c's util_thread_nice: an extra migration stream's thread yields
 * to the vCPUs during pre-copy; threads it starts inherit its priority. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_thread_nice),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
