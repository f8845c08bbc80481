/* A private network and mount namespace for tests that make links and
 * namespaces (header-only: each test is one program). isolate() at start:
 * nothing reaches the host, and VMK_NETNS_DIR is a tmpfs of its own;
 * REQUIRE_ISOLATION() skips a test, saying why, where that is not possible
 * (not root). Include after <cmocka.h>. */
#ifndef VMK_NETNS_SANDBOX_H
#define VMK_NETNS_SANDBOX_H

#include <errno.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

static bool isolated;
static char skip_why[256];
static char nsdir[64];

static void isolate(void)
{
	if (unshare(CLONE_NEWNET | CLONE_NEWNS) < 0) {
		if (errno != EPERM) {
			fprintf(stderr, "unshare(CLONE_NEWNET|CLONE_NEWNS): %s\n", strerror(errno));
			exit(1);
		}
		snprintf(skip_why, sizeof(skip_why),
		         "unshare(CLONE_NEWNET|CLONE_NEWNS): %s: these tests need root "
		         "(CAP_SYS_ADMIN) to get a private network namespace",
		         strerror(errno));
		return;
	}
	if (mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) < 0) {
		fprintf(stderr, "mount --make-rprivate /: %s\n", strerror(errno));
		exit(1);
	}
	snprintf(nsdir, sizeof(nsdir), "/tmp/vmk-test-netns.XXXXXX");
	if (!mkdtemp(nsdir) || mount("tmpfs", nsdir, "tmpfs", 0, "mode=0755,size=1m") < 0) {
		fprintf(stderr, "tmpfs on %s: %s\n", nsdir, strerror(errno));
		exit(1);
	}
	setenv("VMK_NETNS_DIR", nsdir, 1);
	isolated = true;
}

static void unisolate(void)
{
	if (!isolated)
		return;
	umount2(nsdir, MNT_DETACH);
	rmdir(nsdir);
}

#define REQUIRE_ISOLATION()                                                                        \
	do {                                                                                       \
		if (!isolated) {                                                                   \
			print_message("skipped: %s\n", skip_why);                                  \
			skip();                                                                    \
		}                                                                                  \
	} while (0)

#endif
