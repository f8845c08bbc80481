/* bench/vmx: vmx against QEMU microvm booting the same micro-guest ELF, in
 * the same run. Prints, never asserts (exit 1 only if nothing could run).
 *   - power-on to first serial byte of `hello` (median of N boots)
 *   - guest CPU speed: `burn` iterations per second
 * QEMU uses KVM when /dev/kvm opens, TCG otherwise (then the ratios are not
 * meaningful and the table says so). vmx needs /dev/kvm; without it the
 * vmx column says why.
 *   - save and restore of a 1 GiB guest with 256 MiB touched: vmx's
 *     control `save` and `--restore` against QEMU's `migrate exec:` to a
 *     file and `-incoming exec:cat` */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "benchutil.h"

#define BOOTS 5

static char bindir[PATH_MAX], elf[PATH_MAX], tmpdir[64] = "/tmp/vmk-bench-vmx-XXXXXX";
static char tsc_arg[64];

static bool kvm_usable(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return false;
	close(fd);
	return true;
}

/* Runs QEMU with cmdline; returns ms to the first console byte (or -1) and
 * leaves the whole console output in out (NUL-terminated). */
static double run_qemu(const char *cmdline, bool kvm, char *out, size_t outlen, int timeout_s)
{
	int p[2];
	char append[512];

	if (pipe(p) < 0)
		return -1;
	snprintf(append, sizeof(append), "%s %s", cmdline, tsc_arg);
	double t0 = bench_now_ms();
	pid_t pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		char tmo[16];
		snprintf(tmo, sizeof(tmo), "%d", timeout_s);
		char *q[BENCH_QEMU_ARGV + 2] = { "timeout", tmo };
		bench_qemu_argv(q + 2, kvm, "128", "stdio", elf, append, NULL, NULL);
		execvp("timeout", q);
		_exit(127);
	}
	close(p[1]);
	double first = -1;
	size_t got = 0;
	for (;;) {
		ssize_t n = read(p[0], out + got, outlen - 1 - got);
		if (n <= 0)
			break;
		if (first < 0)
			first = bench_now_ms() - t0;
		got += (size_t)n;
		if (got == outlen - 1)
			break;
	}
	out[got] = '\0';
	close(p[0]);
	waitpid(pid, NULL, 0);
	return first;
}

/* Runs vmx on a fresh VM directory; returns ms to the first byte in
 * serial.log (polled), the log in out. */
static double run_vmx(const char *cmdline, char *out, size_t outlen, int timeout_s)
{
	char dir[PATH_MAX], cfg[PATH_MAX + 16], log[PATH_MAX + 16], vmx[PATH_MAX + 8];
	static int seq;

	snprintf(dir, sizeof(dir), "%s/vm%d", tmpdir, seq++);
	mkdir(dir, 0755);
	snprintf(cfg, sizeof(cfg), "%s/vm.vmx", dir);
	snprintf(log, sizeof(log), "%s/serial.log", dir);
	snprintf(vmx, sizeof(vmx), "%s/vmx", bindir);
	if (bench_write_vmx(cfg, "bench", 1, 128, elf, cmdline) < 0)
		return -1;
	double t0 = bench_now_ms(), first = -1;
	pid_t pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		dup2(null, 2);
		execl(vmx, "vmx", "-c", cfg, (char *)NULL);
		_exit(127);
	}
	for (double end = t0 + timeout_s * 1e3; bench_now_ms() < end;) {
		struct stat st;
		if (first < 0 && stat(log, &st) == 0 && st.st_size > 0)
			first = bench_now_ms() - t0;
		if (waitpid(pid, NULL, WNOHANG) == pid) {
			pid = 0;
			break;
		}
		usleep(first < 0 ? 50 : 2000);
	}
	if (pid) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	int fd = open(log, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, out, outlen - 1) : 0;
	out[n > 0 ? n : 0] = '\0';
	if (fd >= 0)
		close(fd);
	return first;
}

/* iterations per second from "burn N" lines (interval 1000 ms), skipping
 * the first (warm-up) line */
static double burn_rate(const char *out)
{
	double sum = 0;
	int n = 0, line = 0;

	for (const char *p = strstr(out, "burn "); p; p = strstr(p + 1, "burn ")) {
		if (line++ == 0)
			continue;
		sum += strtod(p + 5, NULL);
		n++;
	}
	return n ? sum / n : 0;
}

/* ---- save and restore: a 1 GiB guest with 256 MiB touched ---- */

#define SR_MIB   1024
#define SR_TOUCH "verify mib=256"

struct sr {
	double save_ms, restore_ms, bytes;
};

/* vmx: `--control save` (pause, write, fsync), then a fresh vmx
 * `--restore` until it runs (its control socket appears after its vCPUs
 * start) */
static struct sr sr_vmx(void)
{
	struct sr r = { -1, -1, 0 };
	char dir[PATH_MAX], cfg[PATH_MAX + 16], serial[PATH_MAX + 16], state[PATH_MAX + 16];
	char sock[PATH_MAX + 16], vmx[PATH_MAX + 8];
	struct stat st;

	snprintf(dir, sizeof(dir), "%s/sr", tmpdir);
	mkdir(dir, 0755);
	snprintf(cfg, sizeof(cfg), "%s/sr.vmx", dir);
	snprintf(serial, sizeof(serial), "%s/serial.log", dir);
	snprintf(state, sizeof(state), "%s/state", dir);
	snprintf(sock, sizeof(sock), "%s/vmx.sock", dir);
	snprintf(vmx, sizeof(vmx), "%s/vmx", bindir);
	char cmdline[256];
	snprintf(cmdline, sizeof(cmdline), "%s %s", SR_TOUCH, tsc_arg);
	if (bench_write_vmx(cfg, "sr", 2, SR_MIB, elf, cmdline) < 0)
		return r;
	char *run[] = { vmx, "-c", cfg, NULL };
	pid_t pid = bench_spawn(run, NULL);
	if (!bench_wait_file_has(serial, "filled", 60000)) {
		bench_kill(pid);
		return r;
	}
	char cmd[3 * PATH_MAX];
	double t0 = bench_now_ms();
	snprintf(cmd, sizeof(cmd), "%s --control %s save %s", vmx, sock, state);
	int rc = bench_sh(NULL, 0, "%s >/dev/null 2>&1", cmd);
	r.save_ms = bench_now_ms() - t0;
	bench_kill(pid);
	unlink(sock);
	if (rc != 0 || stat(state, &st) < 0)
		return (struct sr){ -1, -1, 0 };
	r.bytes = (double)st.st_size;
	char *restore[] = { vmx, "-c", cfg, "--restore", state, NULL };
	bench_warm_memory(SR_MIB); /* as for QEMU: see bench_warm_memory */
	t0 = bench_now_ms();
	pid = bench_spawn(restore, NULL);
	while (bench_now_ms() - t0 < 60000 && stat(sock, &st) < 0)
		usleep(100);
	r.restore_ms = stat(sock, &st) == 0 ? bench_now_ms() - t0 : -1;
	bench_kill(pid);
	return r;
}

/* QEMU: `migrate exec:cat > FILE` (paused, no fsync), then `-incoming
 * exec:cat FILE` until query-status says running */
static struct sr sr_qemu(bool kvm)
{
	struct sr r = { -1, -1, 0 };
	char qs[PATH_MAX + 16], qsa[PATH_MAX + 48], serial[PATH_MAX + 16], sfile[PATH_MAX + 24];
	char state[PATH_MAX + 16], mem[16], append[256], uri[PATH_MAX + 40], inc[PATH_MAX + 40];
	struct stat st;

	snprintf(qs, sizeof(qs), "%s/q.sock", tmpdir);
	snprintf(qsa, sizeof(qsa), "unix:%s,server=on,wait=off", qs);
	snprintf(serial, sizeof(serial), "%s/q.serial", tmpdir);
	snprintf(sfile, sizeof(sfile), "file:%s", serial);
	snprintf(state, sizeof(state), "%s/q.state", tmpdir);
	snprintf(mem, sizeof(mem), "%d", SR_MIB);
	snprintf(append, sizeof(append), "%s %s", SR_TOUCH, tsc_arg);
	char *a[BENCH_QEMU_ARGV];
	bench_qemu_argv(a, kvm, mem, sfile, elf, append, qsa, NULL);
	unlink(serial);
	pid_t pid = bench_spawn(a, NULL);
	int fd = bench_qmp_open(qs);
	if (fd < 0 || !bench_wait_file_has(serial, "filled", 60000))
		goto out;
	bench_qmp(fd, "{\"execute\":\"qmp_capabilities\"}\n");
	bench_qmp(fd, "{\"execute\":\"migrate-set-parameters\",\"arguments\":{\"max-bandwidth\":"
	              "107374182400}}\n");
	snprintf(uri, sizeof(uri),
	         "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"exec:cat > %s\"}}\n", state);
	double t0 = bench_now_ms();
	bench_qmp(fd, uri);
	for (int i = 0; i < 60000; i++) {
		const char *o = bench_qmp(fd, "{\"execute\":\"query-migrate\"}\n");
		if (strstr(o, "\"completed\"")) {
			r.save_ms = bench_now_ms() - t0;
			break;
		}
		if (strstr(o, "\"failed\"") || !o[0])
			break;
		usleep(200);
	}
	close(fd);
	fd = -1;
	bench_kill(pid);
	pid = -1;
	if (r.save_ms < 0 || stat(state, &st) < 0)
		goto out;
	r.bytes = (double)st.st_size;
	unlink(qs);
	snprintf(inc, sizeof(inc), "exec:cat %s", state);
	char *incoming[] = { "-incoming", inc, NULL };
	bench_qemu_argv(a, kvm, mem, sfile, elf, append, qsa, incoming);
	bench_warm_memory(SR_MIB);
	t0 = bench_now_ms();
	pid = bench_spawn(a, NULL);
	fd = bench_qmp_open(qs);
	if (fd < 0)
		goto out;
	bench_qmp(fd, "{\"execute\":\"qmp_capabilities\"}\n");
	for (int i = 0; i < 60000; i++) {
		const char *o = bench_qmp(fd, "{\"execute\":\"query-status\"}\n");
		if (strstr(o, "\"running\"")) {
			r.restore_ms = bench_now_ms() - t0;
			break;
		}
		if (!o[0])
			break;
		usleep(200);
	}
out:
	if (fd >= 0)
		close(fd);
	bench_kill(pid);
	return r;
}

static double median_boot(bool use_vmx, bool kvm)
{
	double t[BOOTS];
	char out[4096];
	int n = 0;

	for (int i = 0; i < BOOTS; i++) {
		double ms = use_vmx ? run_vmx("hello", out, sizeof(out), 30)
		                    : run_qemu("hello", kvm, out, sizeof(out), 30);
		if (ms > 0 && strstr(out, "hello from vmk guest"))
			t[n++] = ms;
	}
	if (!n)
		return -1;
	qsort(t, (size_t)n, sizeof(t[0]), bench_cmp_double);
	return t[n / 2];
}

int main(int argc, char **argv)
{
	char self[PATH_MAX], out[16384];

	if (argc > 1) {
		printf("usage: bench/vmx\n  boot time and burn speed of vmx vs QEMU microvm\n");
		return strcmp(argv[1], "--help") == 0 ? 0 : 2;
	}
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return 1;
	self[n] = '\0';
	*strrchr(self, '/') = '\0'; /* build/bench */
	snprintf(bindir, sizeof(bindir), "%s/../bin", self);
	snprintf(elf, sizeof(elf), "%s/../guest/vmk-guest.elf", self);
	if (!mkdtemp(tmpdir))
		return 1;
	FILE *ci = fopen("/proc/cpuinfo", "r");
	double mhz = 2000;
	char line[256];
	while (ci && fgets(line, sizeof(line), ci))
		if (sscanf(line, "cpu MHz : %lf", &mhz) == 1)
			break;
	if (ci)
		fclose(ci);
	snprintf(tsc_arg, sizeof(tsc_arg), "tsc_khz=%ld", (long)(mhz * 1000));

	bool kvm = kvm_usable();
	bool have_qemu = system("command -v qemu-system-x86_64 >/dev/null") == 0;
	printf("bench/vmx: micro guest %s; QEMU %s; vmx %s\n", elf,
	       !have_qemu ? "not installed"
	       : kvm      ? "with KVM"
	                  : "with TCG (no KVM: ratios not meaningful)",
	       kvm ? "with KVM" : "not runnable here: /dev/kvm does not open");
	double qb = have_qemu ? median_boot(false, kvm) : -1;
	double vb = kvm ? median_boot(true, true) : -1;
	double qburn = 0, vburn = 0;
	if (have_qemu) {
		run_qemu("burn interval_ms=1000 seconds=4", kvm, out, sizeof(out), 60);
		qburn = burn_rate(out);
	}
	if (kvm) {
		run_vmx("burn interval_ms=1000 seconds=4", out, sizeof(out), 60);
		vburn = burn_rate(out);
	}
	char v1[32] = "n/a", q1[32] = "n/a", r1[32] = "-", v2[32] = "n/a", q2[32] = "n/a",
	     r2[32] = "-";
	if (vb > 0)
		snprintf(v1, sizeof(v1), "%.1f", vb);
	if (qb > 0)
		snprintf(q1, sizeof(q1), "%.1f", qb);
	if (vb > 0 && qb > 0)
		snprintf(r1, sizeof(r1), "%.2f", qb / vb);
	if (vburn > 0)
		snprintf(v2, sizeof(v2), "%.0f", vburn);
	if (qburn > 0)
		snprintf(q2, sizeof(q2), "%.0f", qburn);
	if (vburn > 0 && qburn > 0)
		snprintf(r2, sizeof(r2), "%.3f", qburn / vburn);
	printf("%-36s %12s %12s %10s\n", "", "vmx", "qemu", "qemu/vmx");
	printf("%-36s %12s %12s %10s\n", "power-on to first byte (ms, median)", v1, q1, r1);
	printf("%-36s %12s %12s %10s\n", "burn iterations/s", v2, q2, r2);
	/* save/restore, median of 3 each */
	double vs[3], vr[3], qsv[3], qr[3], vbytes = 0, qbytes = 0;
	int nv = 0, nq = 0;
	for (int i = 0; i < 3; i++) {
		struct sr v = kvm ? sr_vmx() : (struct sr){ -1, -1, 0 };
		struct sr q = have_qemu ? sr_qemu(kvm) : (struct sr){ -1, -1, 0 };
		if (v.save_ms > 0 && v.restore_ms > 0) {
			vs[nv] = v.save_ms, vr[nv++] = v.restore_ms;
			vbytes = v.bytes;
		}
		if (q.save_ms > 0 && q.restore_ms > 0) {
			qsv[nq] = q.save_ms, qr[nq++] = q.restore_ms;
			qbytes = q.bytes;
		}
	}
	printf("save/restore, %d MiB guest with 256 MiB touched (median of 3):\n", SR_MIB);
	if (nv)
		printf("  vmx   save %7.1f ms (%6.0f MiB/s of RAM)  restore %7.1f ms  state %6.1f "
		       "MiB"
		       " (fsync'd)\n",
		       bench_median(vs, nv), 256.0 / (bench_median(vs, nv) / 1e3),
		       bench_median(vr, nv), vbytes / 1048576);
	if (nq)
		printf("  QEMU  save %7.1f ms (%6.0f MiB/s of RAM)  restore %7.1f ms  state %6.1f "
		       "MiB"
		       " (exec:cat, no fsync)\n",
		       bench_median(qsv, nq), 256.0 / (bench_median(qsv, nq) / 1e3),
		       bench_median(qr, nq), qbytes / 1048576);
	if (nv && nq)
		printf("  QEMU/vmx: save %.2f  restore %.2f\n",
		       bench_median(qsv, nq) / bench_median(vs, nv),
		       bench_median(qr, nq) / bench_median(vr, nv));
	char rm[128];
	snprintf(rm, sizeof(rm), "rm -rf %s", tmpdir);
	if (system(rm) != 0)
		fprintf(stderr, "bench/vmx: could not remove %s\n", tmpdir);
	return have_qemu || kvm ? 0 : 1;
}
