/* bench/lifecycle: N VMs (16 MiB heartbeat guests) created, powered on and
 * off through vmkctl in a one-host lab, as a script would drive them.
 * Prints, never asserts:
 *   - per operation (create, power on, power off): total, p50, p99 (ms),
 *     each a whole vmkctl process (connect, TLS, the session of a session
 *     file as scripts keep it, the task and its wait);
 *   - hostd RSS per registered VM;
 *   - `vm list` p50/p99 with no VM running and with all N running, and
 *     their ratio (goal: p99 within 3x);
 *   - whether all N ran at once.
 * Guests run on KVM where /dev/kvm opens, else on vmx's software CPU.
 * Usage: bench/lifecycle [--vms N] [--mib M] [--lists K] */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "benchutil.h"

static char top[PATH_MAX], vmkctl[PATH_MAX + 32], lab[PATH_MAX + 32], elf[PATH_MAX + 32];
static const char *labdir = "/tmp/vmk-bench-lifecycle";
static char session[PATH_MAX]; /* as a script would: log in once, reuse the session */

static double pct(double *v, int n, double p)
{
	qsort(v, (size_t)n, sizeof(*v), bench_cmp_double);
	int i = (int)(p * (n - 1) + 0.5);
	return n ? v[i] : 0;
}

/* Runs argv (stdout into out when not NULL); returns its exit status and
 * the milliseconds it took in *ms. */
static int run(char *const argv[], double *ms, char *out, size_t outlen)
{
	int p[2] = { -1, -1 };

	if (out && pipe(p) < 0)
		return -1;
	double t0 = bench_now_ms();
	pid_t pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		dup2(out ? p[1] : null, 1);
		dup2(null, 2);
		if (out) {
			close(p[0]);
			close(p[1]);
		}
		execv(argv[0], argv);
		_exit(127);
	}
	size_t len = 0;
	if (out) {
		close(p[1]);
		ssize_t n;
		while ((n = read(p[0], out + len, outlen - 1 - len)) > 0)
			len += (size_t)n;
		close(p[0]);
		out[len] = '\0';
	}
	int st = 0;
	waitpid(pid, &st, 0);
	if (ms)
		*ms = bench_now_ms() - t0;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static int ctl(double *ms, char *out, size_t outlen, const char *a1, const char *a2, const char *a3,
               const char *a4, const char *a5, const char *a6)
{
	char *argv[20] = {
		vmkctl, "--lab", (char *)labdir, "--sessionfile", session, "-s", "esx1"
	};
	int n = 7;
	const char *more[] = { a1, a2, a3, a4, a5, a6 };
	for (int i = 0; i < 6 && more[i]; i++)
		argv[n++] = (char *)more[i];
	argv[n] = NULL;
	return run(argv, ms, out, outlen);
}

static long hostd_rss_kib(void)
{
	char path[PATH_MAX + 32], buf[4096];
	snprintf(path, sizeof(path), "%s/esx1/hostd.pid", labdir);
	FILE *f = fopen(path, "r");
	int pid = 0;
	if (!f || fscanf(f, "%d", &pid) != 1) {
		if (f)
			fclose(f);
		return -1;
	}
	fclose(f);
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	if (!(f = fopen(path, "r")))
		return -1;
	long kib = -1;
	while (fgets(buf, sizeof(buf), f))
		if (sscanf(buf, "VmRSS: %ld", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

static void list_latency(int k, double *p50, double *p99)
{
	double *t = calloc((size_t)k, sizeof(double));
	for (int i = 0; i < k; i++)
		ctl(&t[i], NULL, 0, "vm", "list", NULL, NULL, NULL, NULL);
	*p50 = pct(t, k, 0.5);
	*p99 = pct(t, k, 0.99);
	free(t);
}

static void report(const char *what, double *t, int n)
{
	double total = 0;
	for (int i = 0; i < n; i++)
		total += t[i];
	printf("  %-12s total %8.0f ms   p50 %7.1f ms   p99 %7.1f ms\n", what, total,
	       pct(t, n, 0.5), pct(t, n, 0.99));
}

int main(int argc, char **argv)
{
	int nvms = 50, mib = 16, lists = 100;
	char self[PATH_MAX], name[32], buf[1 << 16], cmdline[64];

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--vms"))
			nvms = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--mib"))
			mib = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--lists"))
			lists = atoi(argv[i + 1]);
	}
	if (nvms < 1 || nvms > 500 || mib < 16 || lists < 1) {
		fprintf(stderr, "usage: lifecycle [--vms 1..500] [--mib >=16] [--lists K]\n");
		return 2;
	}
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return 1;
	self[n] = '\0';
	/* build/bench/lifecycle -> the repository */
	snprintf(top, sizeof(top), "%s", self);
	for (int up = 0; up < 3; up++)
		*strrchr(top, '/') = '\0';
	snprintf(vmkctl, sizeof(vmkctl), "%s/build/bin/vmkctl", top);
	snprintf(lab, sizeof(lab), "%s/integration/lab", top);
	snprintf(elf, sizeof(elf), "%s/build/guest/vmk-guest.elf", top);
	bool kvm = access("/dev/kvm", R_OK | W_OK) == 0;
	printf("bench/lifecycle: %d VMs of %d MiB (heartbeat), vCPUs on %s\n", nvms, mib,
	       kvm ? "KVM" : "the software CPU (no usable /dev/kvm)");

	char *down[] = { lab, "down", "--dir", (char *)labdir, NULL };
	char *up[] = { lab, "up", "--hosts", "1", "--dir", (char *)labdir, NULL };
	run(down, NULL, NULL, 0);
	if (run(up, NULL, NULL, 0) != 0) {
		fprintf(stderr, "lifecycle: the lab did not come up (integration/lab up)\n");
		return 1;
	}
	snprintf(session, sizeof(session), "%s/bench.session", labdir);
	double p50_idle, p99_idle, p50_busy, p99_busy;
	list_latency(lists, &p50_idle, &p99_idle);
	long rss0 = hostd_rss_kib();

	double *tc = calloc((size_t)nvms, sizeof(double)),
	       *ton = calloc((size_t)nvms, sizeof(double));
	double *toff = calloc((size_t)nvms, sizeof(double));
	char mibs[16];
	snprintf(mibs, sizeof(mibs), "%d", mib);
	snprintf(cmdline, sizeof(cmdline), "heartbeat interval_ms=100");
	int fails = 0;
	for (int i = 0; i < nvms; i++) {
		snprintf(name, sizeof(name), "b%03d", i);
		char *argv2[] = { vmkctl,   "--lab",     (char *)labdir, "-s", "esx1", "vm",
			          "create", "-n",        name,           "-m", mibs,   "--kernel",
			          elf,      "--cmdline", cmdline,        NULL };
		fails += run(argv2, &tc[i], NULL, 0) != 0;
	}
	long rss1 = hostd_rss_kib();
	double t0 = bench_now_ms();
	for (int i = 0; i < nvms; i++) {
		snprintf(name, sizeof(name), "b%03d", i);
		fails += ctl(&ton[i], NULL, 0, "vm", "power", "on", "-n", name, NULL) != 0;
	}
	double on_total = bench_now_ms() - t0;
	sleep(2);
	ctl(NULL, buf, sizeof(buf), "--formatter", "csv", "vm", "list", NULL, NULL);
	int running = 0;
	for (char *p = buf; (p = strstr(p, ",poweredOn,")); p++)
		running++;
	list_latency(lists, &p50_busy, &p99_busy);
	long rss2 = hostd_rss_kib();
	for (int i = 0; i < nvms; i++) {
		snprintf(name, sizeof(name), "b%03d", i);
		fails += ctl(&toff[i], NULL, 0, "vm", "power", "off", "-n", name, NULL) != 0;
	}
	printf("  operations (each one vmkctl process; %d failed):\n", fails);
	report("vm create", tc, nvms);
	report("power on", ton, nvms);
	report("power off", toff, nvms);
	printf("  all %d powered on in %.1f s; running at once: %d of %d\n", nvms, on_total / 1e3,
	       running, nvms);
	printf("  hostd RSS: %ld KiB empty, %ld KiB with %d registered (%.1f KiB per VM), %ld "
	       "KiB with them running\n",
	       rss0, rss1, nvms, rss0 > 0 && rss1 > 0 ? (double)(rss1 - rss0) / nvms : -1.0, rss2);
	printf("  vm list: p50 %.1f / p99 %.1f ms with none running; p50 %.1f / p99 %.1f ms "
	       "with %d running\n",
	       p50_idle, p99_idle, p50_busy, p99_busy, running);
	printf("  vm list p99 ratio (running / none): %.2fx (goal <= 3x)\n",
	       p99_idle > 0 ? p99_busy / p99_idle : 0);
	run(down, NULL, NULL, 0);
	free(tc);
	free(ton);
	free(toff);
	return 0;
}
