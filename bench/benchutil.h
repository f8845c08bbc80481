/* Small helpers shared by the bench programs (header-only: each bench is
 * one program). */
#ifndef VMK_BENCHUTIL_H
#define VMK_BENCHUTIL_H

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vmm/control.h"

static inline double bench_now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static inline double bench_median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), bench_cmp_double);
	return n ? v[n / 2] : 0;
}

/* Runs a shell command (printf-style) and returns its stdout in out;
 * the exit status, or -1. */
static inline int bench_sh(char *out, size_t outlen, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static inline int bench_sh(char *out, size_t outlen, const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	size_t n = 0;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	FILE *p = popen(cmd, "r");
	if (!p)
		return -1;
	if (out && outlen) {
		n = fread(out, 1, outlen - 1, p);
		out[n] = '\0';
	} else {
		char sink[4096];
		while (fread(sink, 1, sizeof(sink), p) > 0)
			;
	}
	int st = pclose(p);
	return st < 0 ? -1 : WEXITSTATUS(st);
}

/* The QEMU command line every bench boots the micro guest with: microvm
 * (KVM, or TCG), the exit device at 0xf4, the serial port to `serial`
 * (a chardev: "stdio", "file:PATH"), a QMP socket when qmp is not NULL,
 * then `extra` (NULL-terminated, may be NULL). argv needs room for 32. */
#define BENCH_QEMU_ARGV 32
static inline void bench_qemu_argv(char **argv, bool kvm, const char *mem, const char *serial,
                                   const char *elf, const char *append, const char *qmp,
                                   char *const *extra)
{
	int n = 0;

	argv[n++] = "qemu-system-x86_64";
	argv[n++] = "-M";
	argv[n++] = kvm ? "microvm,accel=kvm" : "microvm,accel=tcg";
	argv[n++] = "-cpu"; /* -cpu host makes QEMU 7.2 abort on this CPU */
	argv[n++] = kvm ? "host,-arch-capabilities" : "max";
	argv[n++] = "-m";
	argv[n++] = (char *)mem;
	argv[n++] = "-nodefaults";
	argv[n++] = "-no-user-config";
	argv[n++] = "-nographic";
	argv[n++] = "-display";
	argv[n++] = "none";
	argv[n++] = "-serial";
	argv[n++] = (char *)serial;
	argv[n++] = "-device";
	argv[n++] = "isa-debug-exit,iobase=0xf4,iosize=4";
	argv[n++] = "-kernel";
	argv[n++] = (char *)elf;
	argv[n++] = "-append";
	argv[n++] = (char *)append;
	if (qmp) {
		argv[n++] = "-qmp";
		argv[n++] = (char *)qmp;
	}
	for (; extra && *extra && n < BENCH_QEMU_ARGV - 1; extra++)
		argv[n++] = *extra;
	argv[n] = NULL;
}

/* Starts argv in a session of its own, stdin from /dev/null, stdout and
 * stderr to logpath (NULL: /dev/null). */
static inline pid_t bench_spawn(char *const argv[], const char *logpath)
{
	pid_t pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		int fd = logpath ? open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0644) : null;
		dup2(null, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		setsid();
		execvp(argv[0], argv);
		_exit(127);
	}
	return pid;
}

/* Writes a one-vCPU .vmx for the micro guest: name, the last 12 digits of
 * its uuid, MiB of RAM, the guest ELF and its command line; 0 or -1. */
static inline int bench_write_vmx(const char *path, const char *name, unsigned uuid_tail, int mib,
                                  const char *elf, const char *cmdline)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -1;
	fprintf(f,
	        "vm = { name = \"%s\"; uuid = \"564d0000-0000-4000-8000-%012u\";\n"
	        "  memory_mib = %d; vcpus = 1; kernel = \"%s\"; cmdline = \"%s\"; };\n",
	        name, uuid_tail, mib, elf, cmdline);
	return fclose(f) == 0 ? 0 : -1;
}

/* Touches and frees mib MiB of transparent huge pages. On a nested host
 * whose balloon reports free 2 MiB blocks back to the outer hypervisor
 * (page_reporting_order 9, as here), a huge page first touched after that
 * costs the outer fault of all its 4 KiB pages: whichever VMM allocated
 * such memory during a migration lost up to 1 s to it, at random. Called
 * right before each measured migration, for vmx and QEMU alike, so the
 * destination's huge pages come from memory the outer host still backs,
 * as a real host's do. */
static inline void bench_warm_memory(size_t mib)
{
	size_t len = mib << 20;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return;
	madvise(p, len, MADV_HUGEPAGE);
	for (size_t off = 0; off < len; off += 4096)
		p[off] = 1;
	munmap(p, len);
}

/* SIGKILL to it and its session's group, and reaps it. */
static inline void bench_kill(pid_t pid)
{
	if (pid > 0) {
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
}

/* The number after key in text ("\"total_ms\":" -> 1234), or -1. */
static inline double bench_field(const char *text, const char *key)
{
	const char *p = strstr(text, key);
	return p ? strtod(p + strlen(key), NULL) : -1;
}

/* Waits up to ms for needle to appear in the file at path. */
static inline bool bench_wait_file_has(const char *path, const char *needle, int ms)
{
	for (int i = 0; i < ms / 50; i++) {
		FILE *f = fopen(path, "r");
		static char buf[1 << 20];
		size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
		if (f)
			fclose(f);
		buf[n] = '\0';
		if (strstr(buf, needle))
			return true;
		usleep(50 * 1000);
	}
	return false;
}

/* A QMP socket of QEMU (-qmp unix:PATH,server=on,wait=off), waiting up to
 * 10 s for it to appear. */
static inline int bench_qmp_open(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	for (int i = 0; i < 200; i++) {
		int fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
			return fd;
		close(fd);
		usleep(50 * 1000);
	}
	return -1;
}

/* Sends one QMP command, returns the reply line that has "return" or
 * "error" (static buffer). */
static inline const char *bench_qmp(int fd, const char *cmd)
{
	static char buf[16384];
	size_t n = 0;

	if (write(fd, cmd, strlen(cmd)) < 0)
		return "";
	for (;;) {
		ssize_t k = read(fd, buf + n, sizeof(buf) - 1 - n);
		if (k <= 0)
			return "";
		n += (size_t)k;
		buf[n] = '\0';
		char *line = buf, *nl;
		while ((nl = strchr(line, '\n'))) {
			*nl = '\0';
			if (strstr(line, "\"return\"") || strstr(line, "\"error\"")) {
				memmove(buf, line, strlen(line) + 1);
				return buf;
			}
			line = nl + 1;
		}
		memmove(buf, line, strlen(line) + 1);
		n = strlen(buf);
	}
}

/* A `vmx --control SOCK VERB ...` argv, answered in this process (as QEMU's
 * QMP socket is: no fork and exec of a client per poll, which on two
 * cores would take CPU from the guest being watched); the key=value
 * lines of the answer (static buffer). */
static inline const char *bench_vmx_control(char *const argv[])
{
	static char out[8192];
	char *buf = NULL;
	size_t len = 0;
	int argc = 0;

	while (argv[argc])
		argc++;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return "";
	vmm_control_cli(argv[2], argc - 3, (char **)argv + 3, f);
	fclose(f);
	snprintf(out, sizeof(out), "%s", buf ? buf : "");
	free(buf);
	return out;
}

/* Arrivals of serial lines, as the outside sees them: a thread reads what
 * the serial log(s) gained each time one grows (inotify) and keeps the
 * longest time between two line ends. Woken by the writes, not by a
 * clock: polling every 100 us, its 10000 wake-ups a second preempted the
 * guest's vCPU on its core (an exit and an entry each under nested KVM),
 * slowed the guest's output and the migration it timed, and quantised
 * every arrival by up to the period; BENCH_WATCH=poll brings the polling
 * back, to compare. Lines, not bytes: QEMU writes its log a byte at a
 * time and vmx a line at a time, so a byte's arrival would time the two
 * VMMs differently (the wake-ups follow those writes). Gaps count once
 * armed; a line before that only marks where the next gap begins (a
 * failover's gap: the primary's last line, then the secondary's first). A hypervisor may stop the guest TSC while paused,
 * so the guest's own stamps cannot show such a gap. */
struct bench_watch {
	const char *paths[2];
	int fds[2];       /* each log, open once it exists */
	off_t read_to[2]; /* what was read of it (counted for line ends) */
	int n;
	atomic_bool stop, armed;
	_Atomic double max_gap_ms; /* the longest counted gap */
	_Atomic double last_ms;    /* when the log last grew */
	atomic_int growths;        /* growths since armed */
	double gap_at_ms;          /* when the longest gap began, from t0 */
	bool realtime;             /* the watching thread got SCHED_FIFO */
	int in;                    /* inotify, or -1: polled */
	int wd[2];                 /* each log's watch, once it exists; -1 before */
	double t0;
	pthread_t t;
};

/* The line ends log i gained since the last call (the logs are only
 * appended to while watched; a log is opened once it exists). */
static inline long long bench_watch_lines(struct bench_watch *w, int i)
{
	char buf[4096];
	long long lines = 0;
	ssize_t n;

	if (w->fds[i] < 0 && (w->fds[i] = open(w->paths[i], O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	if (w->in >= 0 && w->wd[i] < 0)
		w->wd[i] = inotify_add_watch(w->in, w->paths[i], IN_MODIFY);
	while ((n = pread(w->fds[i], buf, sizeof(buf), w->read_to[i])) > 0) {
		w->read_to[i] += n;
		for (ssize_t k = 0; k < n; k++)
			lines += buf[k] == '\n';
	}
	return lines;
}

static inline void *bench_watch_main(void *arg)
{
	struct bench_watch *w = arg;
	long long prev = -1, total = 0;

	/* The watch is the instrument: at the host's normal priority it
	 * waited behind the migration's threads on two cores, up to a 4 ms
	 * tick, and timed its own wait as the guest's (KVM's trace showed
	 * the guest's lines leaving every 1 ms meanwhile). A real-time
	 * thread runs as soon as a log grows, for a few us. */
	struct sched_param sp = { .sched_priority = 1 };
	w->realtime = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp) == 0;
	const char *how = getenv("BENCH_WATCH");
	w->in = how && strcmp(how, "poll") == 0 ? -1 : inotify_init1(IN_CLOEXEC);
	w->wd[0] = w->wd[1] = -1;
	/* a log that does not exist yet (a destination's) is created in its
	 * directory: watched there until it is */
	for (int i = 0; w->in >= 0 && i < w->n; i++) {
		char d[PATH_MAX];
		snprintf(d, sizeof(d), "%s", w->paths[i]);
		char *sl = strrchr(d, '/');
		if (sl)
			*sl = '\0';
		inotify_add_watch(w->in, sl ? d : ".", IN_CREATE);
	}
	for (int i = 0; i < w->n; i++) /* what is there already */
		bench_watch_lines(w, i);
	while (!atomic_load(&w->stop)) {
		for (int i = 0; i < w->n; i++)
			total += bench_watch_lines(w, i);
		double now = bench_now_ms(), last = atomic_load(&w->last_ms);
		if (total != prev) {
			if (prev >= 0 && atomic_load(&w->armed)) {
				if (now - last > 1.8 && getenv("BENCH_DEBUG"))
					fprintf(stderr, "  gap %.1f ms at %.3f\n", now - last,
					        last);
				if (now - last > atomic_load(&w->max_gap_ms)) {
					atomic_store(&w->max_gap_ms, now - last);
					w->gap_at_ms = last - w->t0;
				}
				atomic_fetch_add(&w->growths, 1);
			}
			prev = total;
			atomic_store(&w->last_ms, now);
		}
		if (w->in >= 0) { /* the next write; 10 ms at most, to see stop */
			struct pollfd pf = { .fd = w->in, .events = POLLIN };
			char ev[4096];
			if (poll(&pf, 1, 10) > 0 && read(w->in, ev, sizeof(ev)) < 0)
				break;
		} else {
			nanosleep(&(struct timespec){ .tv_nsec = 100000 }, NULL);
		}
	}
	if (w->in >= 0)
		close(w->in);
	return NULL;
}

/* Watches log a (and b when not NULL); armed: gaps count from the start. */
static inline void bench_watch_start(struct bench_watch *w, const char *a, const char *b,
                                     bool armed)
{
	memset(w, 0, sizeof(*w));
	w->fds[0] = w->fds[1] = -1;
	w->paths[w->n++] = a;
	if (b)
		w->paths[w->n++] = b;
	w->t0 = bench_now_ms();
	atomic_store(&w->last_ms, w->t0);
	atomic_store(&w->armed, armed);
	pthread_create(&w->t, NULL, bench_watch_main, w);
}

/* Ends the watch: the longest gap counted, in ms. */
static inline double bench_watch_stop(struct bench_watch *w)
{
	atomic_store(&w->stop, true);
	pthread_join(w->t, NULL);
	for (int i = 0; i < w->n; i++)
		if (w->fds[i] >= 0)
			close(w->fds[i]);
	static bool warned;
	if (!w->realtime && !warned) {
		warned = true;
		fprintf(stderr, "bench: the serial watcher could not run real-time (SCHED_FIFO: "
		                "run as root): its own waits for a core count as the guest's\n");
	}
	if (getenv("BENCH_DEBUG"))
		fprintf(stderr, "longest gap %.1f ms, from +%.1f ms (at %.3f)\n",
		        atomic_load(&w->max_gap_ms), w->gap_at_ms, w->gap_at_ms + w->t0);
	return atomic_load(&w->max_gap_ms);
}

#endif
