/* hostd/vmlock.c: the VM lock lease file, with one fake monotonic clock per
 * host (no sleeping), damaged files, and a second process for the fcntl
 * same-host guard. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/vmlock.h"
#include "util.h"

#define LEASE VMLOCK_LEASE_MS
#define RENEW VMLOCK_RENEW_MS

/* each "host" has its own monotonic clock, started far apart */
static uint64_t clock_a = 1000000, clock_b = 5000, clock_c = 77;

static uint64_t now_a(void)
{
	return clock_a;
}

static uint64_t now_b(void)
{
	return clock_b;
}

static uint64_t now_c(void)
{
	return clock_c;
}

struct fixture {
	char dir[64];
	char path[PATH_MAX];
	int nfds; /* open at the start: every test must end with as many */
};

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/vmk-vmlock.XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	snprintf(f->path, sizeof(f->path), "%s/%s", f->dir, VMLOCK_FILE);
	f->nfds = count_fds();
	*state = f;
	return 0;
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	int nfds = count_fds(), ret = 0;

	if (nfds != f->nfds) {
		print_error("%d file descriptors open before the test, %d after: a leak\n", f->nfds,
		            nfds);
		ret = -1;
	}
	nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	free(f);
	return ret;
}

static void mk(struct vmlock *l, const struct fixture *f, const char *host, int pid,
               uint64_t (*clk)(void))
{
	char err[512] = "";
	char addr[64];

	snprintf(addr, sizeof(addr), "10.0.0.%d", host[strlen(host) - 1]);
	if (vmlock_init(l, f->dir, host, addr, pid, err, sizeof(err)) != 0)
		fail_msg("init: %s", err);
	l->now_ms = clk;
}

static bool exists(const char *p)
{
	struct stat st;

	return lstat(p, &st) == 0;
}

/* entries in the VM directory besides the lock itself: temporaries left over */
static int leftovers(const struct fixture *f)
{
	DIR *d = opendir(f->dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
		    strcmp(e->d_name, VMLOCK_FILE))
			n++;
	}
	closedir(d);
	return n;
}

static void read_owner(const struct fixture *f, struct vmlock_owner *o)
{
	char err[512] = "";

	if (vmlock_read(f->dir, o, err, sizeof(err)) != 0)
		fail_msg("read: %s", err);
}

static void write_raw(const char *path, const void *buf, size_t len)
{
	unlink(path);
	assert_int_equal(util_write_file_atomic(path, buf, len, 0644), 0);
}

static void test_acquire_release(void **state)
{
	struct fixture *f = *state;
	struct vmlock l;
	struct vmlock_owner o;
	char err[512] = "";

	mk(&l, f, "esx-a", 4242, now_a);
	assert_int_equal(vmlock_read(f->dir, &o, err, sizeof(err)), -ENOENT);
	assert_int_equal(vmlock_acquire(&l, NULL, NULL, err, sizeof(err)), 0);
	assert_true(l.held);
	assert_true(l.fd >= 0);
	read_owner(f, &o);
	assert_string_equal(o.host, "esx-a");
	assert_string_equal(o.addr, "10.0.0.97");
	assert_int_equal(o.pid, 4242);
	assert_int_equal(o.counter, 1);
	assert_string_equal(o.token, l.token);
	/* our own OFD lock is seen from another open file, even in this process */
	assert_true(o.locked);
	assert_int_equal(leftovers(f), 0);
	/* again on the held struct: nothing happens */
	assert_int_equal(vmlock_acquire(&l, NULL, NULL, err, sizeof(err)), 0);
	read_owner(f, &o);
	assert_int_equal(o.counter, 1);

	assert_int_equal(vmlock_release(&l, err, sizeof(err)), 0);
	assert_false(l.held);
	assert_int_equal(l.fd, -1);
	assert_false(exists(f->path));
	assert_int_equal(leftovers(f), 0);
	/* releasing what is not held does nothing */
	assert_int_equal(vmlock_release(&l, err, sizeof(err)), 0);
	/* and it can be taken again */
	assert_int_equal(vmlock_acquire(&l, NULL, NULL, err, sizeof(err)), 0);
	assert_int_equal(vmlock_release(&l, err, sizeof(err)), 0);
}

static void test_second_host_busy(void **state)
{
	struct fixture *f = *state;
	struct vmlock a, b;
	struct vmlock_owner holder, o;
	struct vmlock_watch w = { 0 };
	char err[512] = "";

	mk(&a, f, "esx-a", 100, now_a);
	mk(&b, f, "esx-b", 200, now_b);
	assert_int_equal(vmlock_acquire(&a, NULL, NULL, err, sizeof(err)), 0);

	memset(&holder, 0, sizeof(holder));
	assert_int_equal(vmlock_acquire(&b, NULL, &holder, err, sizeof(err)), -EBUSY);
	assert_false(b.held);
	assert_string_equal(holder.host, "esx-a");
	assert_int_equal(holder.pid, 100);
	assert_non_null(strstr(err, "esx-a"));
	assert_non_null(strstr(err, "10.0.0.97"));
	assert_non_null(strstr(err, f->path));
	/* with a watch: busy too, and the watch remembers the lease */
	assert_int_equal(vmlock_acquire(&b, &w, &holder, err, sizeof(err)), -EBUSY);
	assert_true(w.seen);
	assert_int_equal(w.counter, 1);
	assert_int_equal(w.since_ms, clock_b);
	assert_string_equal(w.token, a.token);
	/* untouched */
	read_owner(f, &o);
	assert_string_equal(o.token, a.token);
	assert_int_equal(o.counter, 1);
	assert_int_equal(leftovers(f), 0);
	assert_int_equal(vmlock_release(&a, err, sizeof(err)), 0);
	/* free again: b gets it */
	assert_int_equal(vmlock_acquire(&b, &w, NULL, err, sizeof(err)), 0);
	assert_int_equal(vmlock_release(&b, err, sizeof(err)), 0);
}

/* The FT secondary that won the generation record takes the lock from a
 * live holder at once; the holder finds it lost at its next renewal and
 * its release leaves the new lease alone. A free lock is simply taken, a
 * damaged one never. */
static void test_seize(void **state)
{
	struct fixture *f = *state;
	struct vmlock a, b, c;
	struct vmlock_owner holder, o;
	char err[512] = "";

	mk(&a, f, "esx-a", 100, now_a);
	mk(&b, f, "esx-b", 200, now_b);
	assert_int_equal(vmlock_acquire(&a, NULL, NULL, err, sizeof(err)), 0);
	clock_a += RENEW;
	assert_int_equal(vmlock_renew(&a, err, sizeof(err)), 0);
	memset(&holder, 0, sizeof(holder));
	assert_int_equal(vmlock_seize(&b, &holder, err, sizeof(err)), 0);
	assert_true(b.held);
	assert_string_equal(holder.host, "esx-a");
	assert_int_equal(holder.counter, 2);
	read_owner(f, &o);
	assert_string_equal(o.host, "esx-b");
	assert_int_equal(o.pid, 200);
	assert_int_equal(o.counter, 3);
	/* the old holder: lost at its next renewal, and its release is harmless */
	clock_a += RENEW;
	assert_int_equal(vmlock_renew(&a, err, sizeof(err)), -ESTALE);
	assert_non_null(strstr(err, "esx-b"));
	assert_false(a.held);
	assert_int_equal(vmlock_release(&a, err, sizeof(err)), 0);
	read_owner(f, &o);
	assert_string_equal(o.host, "esx-b");
	/* again on the held struct: nothing happens */
	assert_int_equal(vmlock_seize(&b, NULL, err, sizeof(err)), 0);
	assert_int_equal(leftovers(f), 0);
	assert_int_equal(vmlock_release(&b, err, sizeof(err)), 0);
	/* a free lock is taken */
	mk(&c, f, "esx-c", 300, now_c);
	assert_int_equal(vmlock_seize(&c, NULL, err, sizeof(err)), 0);
	assert_int_equal(vmlock_release(&c, err, sizeof(err)), 0);
	/* a damaged one goes aside, kept, and the lock is taken: the VM must
	 * not run nowhere because of it */
	write_raw(f->path, "garbage\n", 8);
	assert_int_equal(vmlock_seize(&c, NULL, err, sizeof(err)), 0);
	assert_true(c.held);
	read_owner(f, &o);
	assert_string_equal(o.host, "esx-c");
	assert_int_equal(leftovers(f), 1); /* .vmk.lck.damaged */
	char aside[PATH_MAX + 16], *text = NULL;
	snprintf(aside, sizeof(aside), "%s.damaged", f->path);
	assert_int_equal(util_read_file(aside, 4096, &text, NULL), 0);
	assert_string_equal(text, "garbage\n");
	free(text);
	unlink(aside);
	assert_int_equal(vmlock_release(&c, err, sizeof(err)), 0);
}

static void test_renew_increments(void **state)
{
	struct fixture *f = *state;
	struct vmlock l;
	struct vmlock_owner o;
	char err[512] = "", token[VMLOCK_TOKEN_LEN + 1];

	mk(&l, f, "esx-a", 100, now_a);
	assert_int_equal(vmlock_renew(&l, err, sizeof(err)), -EINVAL);
	assert_int_equal(vmlock_acquire(&l, NULL, NULL, err, sizeof(err)), 0);
	memcpy(token, l.token, sizeof(token));
	for (uint64_t i = 2; i <= 50; i++) {
		clock_a += RENEW;
		if (vmlock_renew(&l, err, sizeof(err)) != 0)
			fail_msg("renew %llu: %s", (unsigned long long)i, err);
		read_owner(f, &o);
		assert_int_equal(o.counter, i);
		assert_int_equal(l.counter, i);
		assert_string_equal(o.token, token);
		assert_true(o.locked); /* the guard moves to each new file */
	}
	assert_int_equal(l.renewed_ms, clock_a);
	assert_int_equal(leftovers(f), 0);
	assert_int_equal(vmlock_release(&l, err, sizeof(err)), 0);
}

static void test_stale_takeover(void **state)
{
	struct fixture *f = *state;
	struct vmlock a, b;
	struct vmlock_owner o, holder;
	struct vmlock_watch w = { 0 };
	char err[512] = "";

	mk(&a, f, "esx-a", 100, now_a);
	mk(&b, f, "esx-b", 200, now_b);
	assert_int_equal(vmlock_acquire(&a, NULL, NULL, err, sizeof(err)), 0);
	/* a stops renewing (its host hangs: its clock does not move either) */
	assert_int_equal(vmlock_acquire(&b, &w, &holder, err, sizeof(err)), -EBUSY);
	clock_b += LEASE - 1;
	assert_int_equal(vmlock_acquire(&b, &w, &holder, err, sizeof(err)), -EBUSY);
	assert_string_equal(holder.host, "esx-a");
	assert_true(exists(f->path));
	clock_b += 1;
	assert_int_equal(vmlock_acquire(&b, &w, &holder, err, sizeof(err)), 0);
	assert_true(b.held);
	assert_false(w.seen); /* reset for the next time */
	read_owner(f, &o);
	assert_string_equal(o.host, "esx-b");
	assert_int_equal(o.pid, 200);
	assert_int_equal(o.counter, 2); /* generation continues */
	assert_string_equal(o.token, b.token);
	assert_string_not_equal(b.token, a.token);
	assert_int_equal(leftovers(f), 0);

	/* a wakes up: its renew finds the lock lost */
	assert_int_equal(vmlock_renew(&a, err, sizeof(err)), -ESTALE);
	assert_non_null(strstr(err, "esx-b"));
	assert_false(a.held);
	assert_int_equal(a.fd, -1);
	/* and its release leaves b's lease alone */
	assert_int_equal(vmlock_release(&a, err, sizeof(err)), 0);
	read_owner(f, &o);
	assert_string_equal(o.token, b.token);
	/* b renews normally */
	clock_b += RENEW;
	assert_int_equal(vmlock_renew(&b, err, sizeof(err)), 0);
	assert_int_equal(vmlock_release(&b, err, sizeof(err)), 0);
	assert_false(exists(f->path));
}

static void test_renewed_not_taken_over(void **state)
{
	struct fixture *f = *state;
	struct vmlock a, b;
	struct vmlock_owner o;
	struct vmlock_watch w = { 0 };
	char err[512] = "";

	mk(&a, f, "esx-a", 100, now_a);
	mk(&b, f, "esx-b", 200, now_b);
	assert_int_equal(vmlock_acquire(&a, NULL, NULL, err, sizeof(err)), 0);
	/* b polls every 3 s for a minute; a renews every 2 s */
	for (int t = 0; t < 60000; t += 1000) {
		if (t % 2000 == 0) {
			clock_a += 2000;
			if (vmlock_renew(&a, err, sizeof(err)) != 0)
				fail_msg("renew at %d: %s", t, err);
		}
		if (t % 3000 == 0 && vmlock_acquire(&b, &w, NULL, err, sizeof(err)) != -EBUSY)
			fail_msg("taken over a live lease at %d ms", t);
		clock_b += 1000;
	}
	/* a renewal as late as allowed (lease - renew - 1 ms) still counts */
	assert_int_equal(vmlock_acquire(&b, &w, NULL, err, sizeof(err)), -EBUSY);
	clock_a += LEASE - RENEW - 1;
	clock_b += LEASE - RENEW - 1;
	assert_int_equal(vmlock_acquire(&b, &w, NULL, err, sizeof(err)), -EBUSY);
	assert_int_equal(vmlock_renew(&a, err, sizeof(err)), 0);
	clock_b += RENEW + 1; /* lease ms since the first sight of the old counter */
	assert_int_equal(vmlock_acquire(&b, &w, NULL, err, sizeof(err)), -EBUSY);
	read_owner(f, &o);
	assert_string_equal(o.token, a.token);

	/* check_stale alone: busy until the counter stood still for the lease */
	struct vmlock_watch w2 = { 0 };
	assert_int_equal(vmlock_check_stale(&b, &w2, 10 * LEASE, &o, err, sizeof(err)), -EBUSY);
	assert_int_equal(w2.since_ms, 10 * LEASE);
	assert_int_equal(vmlock_check_stale(&b, &w2, 11 * LEASE - 1, &o, err, sizeof(err)), -EBUSY);
	assert_int_equal(vmlock_check_stale(&b, &w2, 11 * LEASE, &o, err, sizeof(err)), 0);
	assert_string_equal(o.host, "esx-a");
	/* a clock that goes backwards never makes a lease stale */
	assert_int_equal(vmlock_check_stale(&b, &w2, 5, &o, err, sizeof(err)), -EBUSY);
	/* a renewal restarts the count */
	clock_a += RENEW;
	assert_int_equal(vmlock_renew(&a, err, sizeof(err)), 0);
	assert_int_equal(vmlock_check_stale(&b, &w2, 30 * LEASE, &o, err, sizeof(err)), -EBUSY);
	assert_int_equal(w2.since_ms, 30 * LEASE);
	assert_int_equal(vmlock_check_stale(&b, &w2, 31 * LEASE, &o, err, sizeof(err)), 0);
	/* check_stale only looks */
	read_owner(f, &o);
	assert_string_equal(o.token, a.token);
	assert_int_equal(vmlock_release(&a, err, sizeof(err)), 0);
	assert_int_equal(vmlock_check_stale(&b, &w2, 32 * LEASE, &o, err, sizeof(err)), -ENOENT);
	assert_false(w2.seen);
}

/* A holder that could not renew in time gives the lock up by itself. */
static void test_late_holder_gives_up(void **state)
{
	struct fixture *f = *state;
	struct vmlock a, b;
	struct vmlock_watch w = { 0 };
	char err[512] = "";

	mk(&a, f, "esx-a", 100, now_a);
	mk(&b, f, "esx-b", 200, now_b);
	assert_int_equal(vmlock_acquire(&a, NULL, NULL, err, sizeof(err)), 0);
	clock_a += LEASE - RENEW;
	assert_int_equal(vmlock_renew(&a, err, sizeof(err)), -ETIMEDOUT);
	assert_non_null(strstr(err, f->path));
	assert_false(a.held);
	/* the file stays: it goes stale and another host takes it */
	assert_true(exists(f->path));
	assert_int_equal(vmlock_acquire(&b, &w, NULL, err, sizeof(err)), -EBUSY);
	clock_b += LEASE;
	assert_int_equal(vmlock_acquire(&b, &w, NULL, err, sizeof(err)), 0);
	assert_int_equal(vmlock_release(&b, err, sizeof(err)), 0);
}

static void test_release_by_non_owner(void **state)
{
	struct fixture *f = *state;
	struct vmlock a, b, a2;
	struct vmlock_owner o;
	char err[512] = "";

	mk(&a, f, "esx-a", 100, now_a);
	mk(&b, f, "esx-b", 200, now_b);
	assert_int_equal(vmlock_acquire(&a, NULL, NULL, err, sizeof(err)), 0);
	assert_int_equal(vmlock_acquire(&b, NULL, NULL, err, sizeof(err)), -EBUSY);
	assert_int_equal(vmlock_release(&b, err, sizeof(err)), 0);
	read_owner(f, &o);
	assert_string_equal(o.token, a.token);

	/* a holder whose lease was replaced behind its back (here: a second
	 * struct of the same host/pid that adopted it) does not remove it */
	mk(&a2, f, "esx-a", 100, now_a);
	vmlock_abandon(&a);
	assert_false(a.held);
	a.held = true; /* pretend a still believes it holds the lock */
	assert_int_equal(vmlock_acquire(&a2, NULL, NULL, err, sizeof(err)), 0);
	assert_int_equal(vmlock_release(&a, err, sizeof(err)), -ESTALE);
	assert_false(a.held);
	read_owner(f, &o);
	assert_string_equal(o.token, a2.token);
	assert_int_equal(leftovers(f), 0);
	assert_int_equal(vmlock_release(&a2, err, sizeof(err)), 0);

	/* a lock removed by hand: release says so */
	assert_int_equal(vmlock_acquire(&a, NULL, NULL, err, sizeof(err)), 0);
	assert_int_equal(unlink(f->path), 0);
	assert_int_equal(vmlock_release(&a, err, sizeof(err)), -ESTALE);
	assert_false(a.held);
	/* and a renew on a removed lock reports it lost */
	assert_int_equal(vmlock_acquire(&a, NULL, NULL, err, sizeof(err)), 0);
	assert_int_equal(unlink(f->path), 0);
	assert_int_equal(vmlock_renew(&a, err, sizeof(err)), -ESTALE);
	assert_non_null(strstr(err, "removed"));
}

static const struct {
	const char *name;
	const char *text; /* NULL: see len */
	size_t len;
} bad_files[] = {
	{ "empty", "", 0 },
	{ "garbage",
	  "\x7f"
	  "ELF\x02\x01\x01 and so on\n",
	  0 },
	{ "text", "hello world\n", 0 },
	{ "no newline at the end",
	  "version=1\nhost=esx-a\naddr=x\npid=1\ncounter=1\nexpires=1\n"
	  "token=0123456789abcdef0123456789abcdef",
	  0 },
	{ "version not a number",
	  "version=one\nhost=esx-a\naddr=x\npid=1\ncounter=1\nexpires=1\n"
	  "token=0123456789abcdef0123456789abcdef\n",
	  0 },
	{ "version not first",
	  "host=esx-a\nversion=1\naddr=x\npid=1\ncounter=1\nexpires=1\n"
	  "token=0123456789abcdef0123456789abcdef\n",
	  0 },
	{ "missing token", "version=1\nhost=esx-a\naddr=x\npid=1\ncounter=1\nexpires=1\n", 0 },
	{ "duplicate key",
	  "version=1\nhost=esx-a\nhost=esx-b\naddr=x\npid=1\ncounter=1\nexpires=1\n"
	  "token=0123456789abcdef0123456789abcdef\n",
	  0 },
	{ "unknown key",
	  "version=1\nhost=esx-a\naddr=x\npid=1\ncounter=1\nexpires=1\n"
	  "token=0123456789abcdef0123456789abcdef\nowner=me\n",
	  0 },
	{ "negative pid",
	  "version=1\nhost=esx-a\naddr=x\npid=-1\ncounter=1\nexpires=1\n"
	  "token=0123456789abcdef0123456789abcdef\n",
	  0 },
	{ "pid 0",
	  "version=1\nhost=esx-a\naddr=x\npid=0\ncounter=1\nexpires=1\n"
	  "token=0123456789abcdef0123456789abcdef\n",
	  0 },
	{ "pid too big",
	  "version=1\nhost=esx-a\naddr=x\npid=2147483648\ncounter=1\nexpires=1\n"
	  "token=0123456789abcdef0123456789abcdef\n",
	  0 },
	{ "counter overflow",
	  "version=1\nhost=esx-a\naddr=x\npid=1\ncounter=99999999999999999999\nexpires=1\n"
	  "token=0123456789abcdef0123456789abcdef\n",
	  0 },
	{ "counter leading zero",
	  "version=1\nhost=esx-a\naddr=x\npid=1\ncounter=01\nexpires=1\n"
	  "token=0123456789abcdef0123456789abcdef\n",
	  0 },
	{ "counter with sign",
	  "version=1\nhost=esx-a\naddr=x\npid=1\ncounter=+1\nexpires=1\n"
	  "token=0123456789abcdef0123456789abcdef\n",
	  0 },
	{ "short token", "version=1\nhost=esx-a\naddr=x\npid=1\ncounter=1\nexpires=1\ntoken=0123\n",
	  0 },
	{ "upper-case token",
	  "version=1\nhost=esx-a\naddr=x\npid=1\ncounter=1\nexpires=1\n"
	  "token=0123456789ABCDEF0123456789abcdef\n",
	  0 },
	{ "empty host",
	  "version=1\nhost=\naddr=x\npid=1\ncounter=1\nexpires=1\n"
	  "token=0123456789abcdef0123456789abcdef\n",
	  0 },
	{ "host too long",
	  "version=1\nhost=0123456789012345678901234567890123456789012345678901234567890123\n"
	  "addr=x\npid=1\ncounter=1\nexpires=1\ntoken=0123456789abcdef0123456789abcdef\n",
	  0 },
	{ "space in a value",
	  "version=1\nhost=esx a\naddr=x\npid=1\ncounter=1\nexpires=1\n"
	  "token=0123456789abcdef0123456789abcdef\n",
	  0 },
	{ "CRLF",
	  "version=1\r\nhost=esx-a\r\naddr=x\r\npid=1\r\ncounter=1\r\nexpires=1\r\n"
	  "token=0123456789abcdef0123456789abcdef\r\n",
	  0 },
	{ "empty line",
	  "version=1\n\nhost=esx-a\naddr=x\npid=1\ncounter=1\nexpires=1\n"
	  "token=0123456789abcdef0123456789abcdef\n",
	  0 },
	{ "non-ASCII",
	  "version=1\nhost=esx-\xc3\xa4\naddr=x\npid=1\ncounter=1\nexpires=1\n"
	  "token=0123456789abcdef0123456789abcdef\n",
	  0 },
	{ "NUL byte", "version=1\nhost=esx-a\0\naddr=x\n", 29 },
};

static void check_damaged(struct fixture *f, const char *what, bool show)
{
	struct vmlock b;
	struct vmlock_owner o;
	struct vmlock_watch w = { 0 };
	char err[512] = "";

	if (vmlock_read(f->dir, &o, err, sizeof(err)) != -EBADMSG)
		fail_msg("%s: read did not report a damaged file", what);
	if (!strstr(err, f->path) || !strstr(err, "remove the file"))
		fail_msg("%s: unclear error: %s", what, err);
	/* never taken over, however long it stays so */
	mk(&b, f, "esx-b", 200, now_b);
	for (int i = 0; i < 3; i++) {
		err[0] = '\0';
		if (vmlock_acquire(&b, &w, NULL, err, sizeof(err)) != -EBADMSG)
			fail_msg("%s: acquire did not report a damaged file", what);
		if (!strstr(err, f->path))
			fail_msg("%s: unclear error: %s", what, err);
		clock_b += LEASE;
	}
	assert_false(b.held);
	assert_int_equal(vmlock_release_if_owner(f->dir, "esx-a", 1, err, sizeof(err)), -EBADMSG);
	assert_true(exists(f->path));
	assert_int_equal(leftovers(f), 0);
	if (show)
		print_message("# %s: %s\n", what, err);
}

/* A lock of a newer format is refused with its own error, and never
 * taken over or removed. */
static void test_newer_version(void **state)
{
	struct fixture *f = *state;
	struct vmlock b;
	struct vmlock_owner o;
	struct vmlock_watch w = { 0 };
	char err[512] = "";
	const char *t = "version=2\nwhatever=the future brings\n";

	write_raw(f->path, t, strlen(t));
	assert_int_equal(vmlock_read(f->dir, &o, err, sizeof(err)), -EPROTONOSUPPORT);
	assert_non_null(strstr(err, f->path));
	assert_non_null(strstr(err, "upgrade"));
	mk(&b, f, "esx-b", 200, now_b);
	assert_int_equal(vmlock_acquire(&b, &w, NULL, err, sizeof(err)), -EPROTONOSUPPORT);
	clock_b += 2 * LEASE;
	assert_int_equal(vmlock_acquire(&b, &w, NULL, err, sizeof(err)), -EPROTONOSUPPORT);
	assert_int_equal(vmlock_release_if_owner(f->dir, "esx-a", 1, err, sizeof(err)),
	                 -EPROTONOSUPPORT);
	assert_true(exists(f->path));
	print_message("# %s\n", err);
}

static void test_damaged_files(void **state)
{
	struct fixture *f = *state;
	char big[3000];

	for (size_t i = 0; i < sizeof(bad_files) / sizeof(bad_files[0]); i++) {
		const char *t = bad_files[i].text;
		write_raw(f->path, t, bad_files[i].len ? bad_files[i].len : strlen(t));
		check_damaged(f, bad_files[i].name, true);
	}
	/* oversized: a valid lease followed by a long comment */
	int n = snprintf(big, sizeof(big),
	                 "version=1\nhost=esx-a\naddr=x\npid=1\ncounter=1\nexpires=1\n"
	                 "token=0123456789abcdef0123456789abcdef\n#");
	memset(big + n, 'x', sizeof(big) - (size_t)n - 1);
	big[sizeof(big) - 1] = '\n';
	write_raw(f->path, big, sizeof(big));
	check_damaged(f, "oversized", true);
	/* random bytes */
	for (int i = 0; i < 50; i++) {
		uint8_t rnd[600];
		assert_int_equal(util_random(rnd, sizeof(rnd)), 0);
		write_raw(f->path, rnd, 1 + rnd[0] % sizeof(rnd));
		check_damaged(f, "random bytes", false);
	}
	/* not a regular file */
	unlink(f->path);
	assert_int_equal(mkdir(f->path, 0755), 0);
	check_damaged(f, "a directory", true);
	rmdir(f->path);
	assert_int_equal(mkfifo(f->path, 0644), 0);
	check_damaged(f, "a FIFO", true); /* and no hang */
	unlink(f->path);
	assert_int_equal(symlink("/etc/passwd", f->path), 0);
	check_damaged(f, "a symbolic link", true);
	unlink(f->path);
}

/* A hand-written valid file (with comments) is accepted. */
static void test_valid_file_parses(void **state)
{
	struct fixture *f = *state;
	struct vmlock_owner o;
	const char *t = "# a comment\n#\n"
	                "version=1\nhost=esx-9:uuid.0-1\naddr=[fd00::1]:902\npid=2147483647\n"
	                "# comments anywhere\n"
	                "counter=9223372036854775807\nexpires=18446744073709551615\n"
	                "token=0123456789abcdef0123456789abcdef\n";

	write_raw(f->path, t, strlen(t));
	read_owner(f, &o);
	assert_string_equal(o.host, "esx-9:uuid.0-1");
	assert_string_equal(o.addr, "[fd00::1]:902");
	assert_int_equal(o.pid, 2147483647);
	assert_int_equal(o.counter, 9223372036854775807ull);
	assert_int_equal(o.expires_s, UINT64_MAX);
	assert_false(o.locked);
	/* an empty address is allowed */
	t = "version=1\nhost=h\naddr=\npid=1\ncounter=1\nexpires=0\n"
	    "token=0123456789abcdef0123456789abcdef\n";
	write_raw(f->path, t, strlen(t));
	read_owner(f, &o);
	assert_string_equal(o.addr, "");
}

/* Same host, same pid: refused while another open file holds the fcntl
 * lock, adopted once that holder is gone (hostd restarted). */
static void test_same_host_same_pid(void **state)
{
	struct fixture *f = *state;
	struct vmlock a1, a2;
	struct vmlock_owner holder, o;
	char err[512] = "";

	mk(&a1, f, "esx-a", 100, now_a);
	mk(&a2, f, "esx-a", 100, now_a);
	assert_int_equal(vmlock_acquire(&a1, NULL, NULL, err, sizeof(err)), 0);
	assert_int_equal(vmlock_acquire(&a2, NULL, &holder, err, sizeof(err)), -EBUSY);
	assert_non_null(strstr(err, "running twice"));
	assert_false(a2.held);
	clock_a += RENEW;
	assert_int_equal(vmlock_renew(&a1, err, sizeof(err)), 0);
	assert_int_equal(vmlock_acquire(&a2, NULL, &holder, err, sizeof(err)), -EBUSY);

	vmlock_abandon(&a1); /* the old hostd dies */
	assert_true(exists(f->path));
	assert_int_equal(vmlock_acquire(&a2, NULL, NULL, err, sizeof(err)), 0);
	read_owner(f, &o);
	assert_int_equal(o.counter, 3);
	assert_string_equal(o.token, a2.token);
	assert_int_equal(a2.counter, 3);
	assert_int_equal(leftovers(f), 0);
	clock_a += RENEW;
	assert_int_equal(vmlock_renew(&a2, err, sizeof(err)), 0);
	assert_int_equal(vmlock_release(&a2, err, sizeof(err)), 0);
	assert_false(exists(f->path));
}

/* Same host, another pid: a normal holder, but never taken over while a
 * process of this host holds its fcntl lock. */
static void test_same_host_other_pid(void **state)
{
	struct fixture *f = *state;
	struct vmlock a1, a2;
	struct vmlock_watch w = { 0 };
	char err[512] = "";

	mk(&a1, f, "esx-a", 100, now_a);
	mk(&a2, f, "esx-a", 101, now_a);
	assert_int_equal(vmlock_acquire(&a1, NULL, NULL, err, sizeof(err)), 0);
	assert_int_equal(vmlock_acquire(&a2, &w, NULL, err, sizeof(err)), -EBUSY);
	clock_a += 3 * LEASE; /* a1 hangs, holding its lock */
	assert_int_equal(vmlock_acquire(&a2, &w, NULL, err, sizeof(err)), -EBUSY);
	assert_non_null(strstr(err, "live process"));
	vmlock_abandon(&a1);
	assert_int_equal(vmlock_acquire(&a2, &w, NULL, err, sizeof(err)), 0);
	assert_int_equal(vmlock_release(&a2, err, sizeof(err)), 0);
}

/* Two contenders watch the same stale lease: only one gets it. */
static void test_two_contenders(void **state)
{
	struct fixture *f = *state;
	struct vmlock a, b, c;
	struct vmlock_watch wb = { 0 }, wc = { 0 };
	struct vmlock_owner holder;
	char err[512] = "";

	mk(&a, f, "esx-a", 100, now_a);
	mk(&b, f, "esx-b", 200, now_b);
	mk(&c, f, "esx-c", 300, now_c);
	assert_int_equal(vmlock_acquire(&a, NULL, NULL, err, sizeof(err)), 0);
	assert_int_equal(vmlock_acquire(&b, &wb, NULL, err, sizeof(err)), -EBUSY);
	assert_int_equal(vmlock_acquire(&c, &wc, NULL, err, sizeof(err)), -EBUSY);
	clock_b += LEASE;
	clock_c += LEASE;
	assert_int_equal(vmlock_acquire(&b, &wb, NULL, err, sizeof(err)), 0);
	assert_int_equal(vmlock_acquire(&c, &wc, &holder, err, sizeof(err)), -EBUSY);
	assert_string_equal(holder.host, "esx-b");
	/* c starts over: the new lease is watched from now */
	assert_int_equal(wc.since_ms, clock_c);
	assert_int_equal(wc.counter, 2);
	assert_int_equal(leftovers(f), 0);
	assert_int_equal(vmlock_renew(&a, err, sizeof(err)), -ESTALE);
	assert_int_equal(vmlock_release(&b, err, sizeof(err)), 0);
}

static void test_release_if_owner(void **state)
{
	struct fixture *f = *state;
	struct vmlock a;
	char err[512] = "";

	assert_int_equal(vmlock_release_if_owner(f->dir, "esx-a", 100, err, sizeof(err)), -ENOENT);
	mk(&a, f, "esx-a", 100, now_a);
	assert_int_equal(vmlock_acquire(&a, NULL, NULL, err, sizeof(err)), 0);
	/* still held by a live holder: left alone */
	assert_int_equal(vmlock_release_if_owner(f->dir, "esx-a", 100, err, sizeof(err)), -EBUSY);
	assert_true(exists(f->path));
	vmlock_abandon(&a); /* the vmx crashed */
	assert_int_equal(vmlock_release_if_owner(f->dir, "esx-b", 100, err, sizeof(err)), -EBUSY);
	assert_non_null(strstr(err, "esx-a"));
	assert_true(exists(f->path));
	assert_int_equal(vmlock_release_if_owner(f->dir, "esx-a", 101, err, sizeof(err)), -EBUSY);
	assert_true(exists(f->path));
	assert_int_equal(vmlock_release_if_owner(f->dir, "esx-a", 100, err, sizeof(err)), 0);
	assert_false(exists(f->path));
	assert_int_equal(leftovers(f), 0);
	assert_int_equal(vmlock_release_if_owner(f->dir, "esx-a", 100, err, sizeof(err)), -ENOENT);
}

/* The fcntl guard across processes: a child holds the lock as host esx-a /
 * pid 100; the parent (the same host and pid, like a second hostd) is
 * refused until the child exits, then adopts the lease. */
static void test_other_process(void **state)
{
	struct fixture *f = *state;
	struct vmlock l;
	int to_child[2], to_parent[2];
	char err[512] = "", c;

	assert_int_equal(pipe(to_child), 0);
	assert_int_equal(pipe(to_parent), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct vmlock cl;
		int rc = 1;
		if (vmlock_init(&cl, f->dir, "esx-a", "", 100, NULL, 0) == 0 &&
		    vmlock_acquire(&cl, NULL, NULL, NULL, 0) == 0)
			rc = 0;
		(void)!write(to_parent[1], rc ? "n" : "y", 1);
		(void)!read(to_child[0], &c, 1);
		_exit(rc); /* dies holding the lock */
	}
	assert_int_equal(read(to_parent[0], &c, 1), 1);
	assert_int_equal(c, 'y');
	mk(&l, f, "esx-a", 100, now_a);
	assert_int_equal(vmlock_acquire(&l, NULL, NULL, err, sizeof(err)), -EBUSY);
	assert_int_equal(vmlock_release_if_owner(f->dir, "esx-a", 100, err, sizeof(err)), -EBUSY);
	assert_int_equal(write(to_child[1], "x", 1), 1);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(vmlock_acquire(&l, NULL, NULL, err, sizeof(err)), 0);
	assert_int_equal(l.counter, 2);
	assert_int_equal(vmlock_release(&l, err, sizeof(err)), 0);
	close(to_child[0]);
	close(to_child[1]);
	close(to_parent[0]);
	close(to_parent[1]);
}

static void test_init_checks(void **state)
{
	struct fixture *f = *state;
	struct vmlock l;
	char err[512] = "", longdir[PATH_MAX + 10];

	assert_int_equal(vmlock_init(&l, f->dir, "", "a", 1, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "host id"));
	assert_int_equal(vmlock_init(&l, f->dir, NULL, "a", 1, err, sizeof(err)), -EINVAL);
	assert_int_equal(vmlock_init(&l, f->dir, "esx a", "a", 1, err, sizeof(err)), -EINVAL);
	assert_int_equal(vmlock_init(&l, f->dir, "esx\n", "a", 1, err, sizeof(err)), -EINVAL);
	assert_int_equal(vmlock_init(&l, f->dir,
	                             "0123456789012345678901234567890123456789012345678901"
	                             "234567890123",
	                             "a", 1, err, sizeof(err)),
	                 -EINVAL);
	assert_int_equal(vmlock_init(&l, f->dir, "esx-a", "a b", 1, err, sizeof(err)), -EINVAL);
	assert_int_equal(vmlock_init(&l, f->dir, "esx-a", "a", 0, err, sizeof(err)), -EINVAL);
	assert_int_equal(vmlock_init(&l, f->dir, "esx-a", "a", -5, err, sizeof(err)), -EINVAL);
	memset(longdir, 'd', sizeof(longdir) - 1);
	longdir[0] = '/';
	longdir[sizeof(longdir) - 1] = '\0';
	assert_int_equal(vmlock_init(&l, longdir, "esx-a", "a", 1, err, sizeof(err)),
	                 -ENAMETOOLONG);
	assert_int_equal(vmlock_init(&l, f->dir, "esx-a", NULL, 1, err, sizeof(err)), 0);
	assert_int_equal(l.fd, -1);
	assert_false(l.held);
	/* a renew period that is not below the lease is refused */
	l.renew_ms = l.lease_ms;
	assert_int_equal(vmlock_acquire(&l, NULL, NULL, err, sizeof(err)), -EINVAL);
	assert_false(exists(f->path));
	/* a VM directory that does not exist */
	char missing[PATH_MAX];
	snprintf(missing, sizeof(missing), "%s/nope", f->dir);
	assert_int_equal(vmlock_init(&l, missing, "esx-a", "a", 1, err, sizeof(err)), 0);
	assert_int_equal(vmlock_acquire(&l, NULL, NULL, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, missing));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_acquire_release, setup, teardown),
		cmocka_unit_test_setup_teardown(test_second_host_busy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_seize, setup, teardown),
		cmocka_unit_test_setup_teardown(test_renew_increments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_takeover, setup, teardown),
		cmocka_unit_test_setup_teardown(test_renewed_not_taken_over, setup, teardown),
		cmocka_unit_test_setup_teardown(test_late_holder_gives_up, setup, teardown),
		cmocka_unit_test_setup_teardown(test_release_by_non_owner, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_newer_version, setup, teardown),
		cmocka_unit_test_setup_teardown(test_valid_file_parses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_same_host_same_pid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_same_host_other_pid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_contenders, setup, teardown),
		cmocka_unit_test_setup_teardown(test_release_if_owner, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_process, setup, teardown),
		cmocka_unit_test_setup_teardown(test_init_checks, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
