#include "monitor.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"
#include "vmlock.h"

int vmx_monitor_fork(const char *dir, const char *vm_dir, const char *lock_host)
{
	char path[4200];

	snprintf(path, sizeof(path), "%s/%s", dir, VMX_EXIT_FILE);
	unlink(path); /* a previous run's */
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid == 0)
		return 0;
	/* the monitor: nothing but wait; hostd signals the vmx, not us */
	signal(SIGHUP, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	int st = 0;
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR) {
			st = 0;
			break;
		}
	}
	char buf[200];
	int n;
	if (WIFSIGNALED(st))
		n = snprintf(buf, sizeof(buf), "pid=%d\nsignal=%d\ntime_ms=%llu\n", (int)pid,
		             WTERMSIG(st), (unsigned long long)util_wall_ms());
	else
		n = snprintf(buf, sizeof(buf), "pid=%d\nexit=%d\ntime_ms=%llu\n", (int)pid,
		             WEXITSTATUS(st), (unsigned long long)util_wall_ms());
	if (util_write_file_atomic(path, buf, (size_t)n, 0644) < 0)
		log_warn("writing %s: %s", path, strerror(errno));
	if (lock_host) {
		/* a vmx that was killed could not release its lease */
		char err[400];
		int ret = vmlock_release_if_owner(vm_dir, lock_host, (int)pid, err, sizeof(err));
		if (ret == 0)
			log_info("released the datastore lock of vmx pid %d", (int)pid);
		else if (ret != -ENOENT)
			log_warn("datastore lock after vmx pid %d: %s", (int)pid, err);
	}
	if (WIFSIGNALED(st))
		_exit(128 + WTERMSIG(st));
	_exit(WEXITSTATUS(st));
}

int vmx_exit_read(const char *dir, int *pid, int *exit_code, int *sig, long long *when_ms)
{
	char path[4200], buf[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, VMX_EXIT_FILE);
	if (!(f = fopen(path, "re")))
		return -errno;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	*pid = 0;
	*exit_code = -1;
	*sig = 0;
	*when_ms = 0;
	for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
		char *eq = strchr(line, '=');
		if (!eq)
			return -EBADMSG;
		*eq = '\0';
		char *end;
		long long v = strtoll(eq + 1, &end, 10);
		if (*end || v < 0 || v > (1ll << 50))
			return -EBADMSG;
		if (!strcmp(line, "pid"))
			*pid = (int)v;
		else if (!strcmp(line, "exit") && v < 256)
			*exit_code = (int)v;
		else if (!strcmp(line, "signal") && v < 65)
			*sig = (int)v;
		else if (!strcmp(line, "time_ms"))
			*when_ms = v;
		else
			return -EBADMSG;
	}
	return *pid > 0 && (*exit_code >= 0 || *sig > 0) ? 0 : -EBADMSG;
}
