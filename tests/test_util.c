/* lib/util.c's thread priority helpers: a migration's pre-copy threads
 * yield to the vCPUs (util_thread_nice) and the switchover runs at the old
 * priority again (util_thread_unnice), which only works where the thread
 * may lower its nice value again: elsewhere nothing changes. */
#include <errno.h>
#include <linux/capability.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
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

/* raised, inherited by a thread started meanwhile, and back */
static void test_nice_and_back(void **state)
{
	int saved = -100, child = -100;
	pthread_t t;

	(void)state;
	int before = my_nice();
	if (util_thread_nice(7, &saved) == -EPERM)
		skip(); /* neither CAP_SYS_NICE nor RLIMIT_NICE here */
	assert_int_equal(saved, before);
	assert_int_equal(my_nice(), before + 7);
	assert_int_equal(pthread_create(&t, NULL, report_nice, &child), 0);
	pthread_join(t, NULL);
	assert_int_equal(child, before + 7);
	assert_int_equal(util_thread_unnice(saved), 0);
	assert_int_equal(my_nice(), before);
}

/* without CAP_SYS_NICE and with RLIMIT_NICE 0 the thread could never come
 * back: refused, unchanged */
static void test_no_way_back(void **state)
{
	(void)state;
	pid_t p = fork();
	assert_true(p >= 0);
	if (p == 0) {
		struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
		struct __user_cap_data_struct d[2] = { 0 };
		struct rlimit rl = { 0, 0 };
		int saved = 0;
		if (syscall(SYS_capget, &h, d) < 0)
			_exit(2);
		d[CAP_SYS_NICE / 32].effective &= ~(1u << (CAP_SYS_NICE % 32));
		d[CAP_SYS_RESOURCE / 32].effective &= ~(1u << (CAP_SYS_RESOURCE % 32));
		if (syscall(SYS_capset, &h, d) < 0 || setrlimit(RLIMIT_NICE, &rl) < 0)
			_exit(2);
		int before = my_nice();
		_exit(util_thread_nice(5, &saved) == -EPERM && my_nice() == before ? 0 : 1);
	}
	int st = 0;
	assert_int_equal(waitpid(p, &st, 0), p);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nice_and_back),
		cmocka_unit_test(test_no_way_back),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
