/* The cluster section's files (hostd/cluster.c): hosts lines, credentials,
 * and the modes and links each is refused for. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "hostd/cluster.h"
#include "log.h"

static char dir[64], hosts[128], cred[128], link_[128];

static void put(const char *path, const char *text, mode_t mode)
{
	unlink(path);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/vmk-test-cluster.XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(hosts, sizeof(hosts), "%s/hosts", dir);
	snprintf(cred, sizeof(cred), "%s/credentials", dir);
	snprintf(link_, sizeof(link_), "%s/link", dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(hosts);
	unlink(cred);
	unlink(link_);
	rmdir(dir);
	return 0;
}

static void test_hosts(void **state)
{
	struct cluster_host h[4];
	char err[300];

	(void)state;
	put(hosts,
	    "# the lab\n"
	    "esx1 198.18.0.11:4443 AA:BB\n"
	    "esx2\n" /* no address: skipped */
	    "\n"
	    "esx3 198.18.0.13:4443 CC:DD extra\n",
	    0644);
	assert_int_equal(cluster_hosts(hosts, h, 4, err, sizeof(err)), 2);
	assert_string_equal(h[0].name, "esx1");
	assert_string_equal(h[0].addr, "198.18.0.11:4443");
	assert_string_equal(h[0].thumbprint, "AA:BB");
	assert_string_equal(h[1].name, "esx3");
	assert_int_equal(cluster_hosts(hosts, h, 1, err, sizeof(err)), 1); /* at most max */
	/* others may write it (and so send the credentials elsewhere): refused */
	assert_int_equal(chmod(hosts, 0666), 0);
	assert_int_equal(cluster_hosts(hosts, h, 4, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "chmod go-w"));
	assert_int_equal(cluster_hosts("/nonexistent/hosts", h, 4, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/hosts"));
}

static void test_credentials(void **state)
{
	char user[64], pw[32], err[300];

	(void)state;
	put(cred, "username=root\r\npassword=s3cret\n", 0600);
	assert_int_equal(
	        cluster_credentials(cred, user, sizeof(user), pw, sizeof(pw), err, sizeof(err)), 0);
	assert_string_equal(user, "root");
	assert_string_equal(pw, "s3cret");
	/* readable by others: refused, with the fix */
	assert_int_equal(chmod(cred, 0640), 0);
	assert_int_equal(
	        cluster_credentials(cred, user, sizeof(user), pw, sizeof(pw), err, sizeof(err)),
	        -EPERM);
	assert_non_null(strstr(err, "chmod 600"));
	/* through a link: refused */
	assert_int_equal(chmod(cred, 0600), 0);
	assert_int_equal(symlink(cred, link_), 0);
	assert_int_equal(
	        cluster_credentials(link_, user, sizeof(user), pw, sizeof(pw), err, sizeof(err)),
	        -ELOOP);
	/* a line missing, or a password too long for the buffer */
	put(cred, "username=root\n", 0600);
	assert_int_equal(
	        cluster_credentials(cred, user, sizeof(user), pw, sizeof(pw), err, sizeof(err)),
	        -EINVAL);
	assert_non_null(strstr(err, "password="));
	put(cred, "username=root\npassword=0123456789012345678901234567890123456789\n", 0600);
	assert_int_equal(
	        cluster_credentials(cred, user, sizeof(user), pw, sizeof(pw), err, sizeof(err)),
	        -EINVAL);
	assert_string_equal(pw, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_hosts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_credentials, setup, teardown),
	};
	log_set_level(LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
