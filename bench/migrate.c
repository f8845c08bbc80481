/* bench/migrate: live migration of the same micro guest by vmx and by
 * QEMU, side by side on loopback in the same run. Prints, never asserts:
 * total time, downtime (the engine's, and as the guest saw it: the longest
 * gap between its lines' arrivals on the host) and bytes on the wire for
 *   - an idle 1 GiB guest (heartbeat: mostly zero pages),
 *   - a busy guest (verify over 64 MiB, every page rewritten each pass),
 *   - a dirtier of 256 MiB at 200 MiB/s and at its fastest,
 * each the median of RUNS migrations, and vmx/QEMU ratios (< 1: vmx is
 * better). Both get a 50 ms downtime limit and no bandwidth cap. QEMU runs
 * with KVM where /dev/kvm opens, else TCG; vmx with KVM or its software
 * CPU: the table says which, since the guests' speeds then differ. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pthread.h>
#include <stdatomic.h>

#include "benchutil.h"
#include "vmm/control.h"

#define RUNS     3
#define WARM_MIB 1024 /* host memory touched before each migration (bench_warm_memory) */
/* "floor": the longest gap between the heartbeat's lines over this long
 * with no migration at all, right before it (what the host's scheduler
 * alone does to the guest: a "seen" near it shows no pause at all) */
#define FLOOR_MS 100

static double quiet_gap(const char *a)
{
	struct bench_watch w;

	bench_watch_start(&w, a, NULL, true);
	usleep(FLOOR_MS * 1000);
	return bench_watch_stop(&w);
}

static char bindir[PATH_MAX], elf[PATH_MAX + 32], tmp[64] = "/tmp/vmk-bench-mig-XXXXXX";

struct result {
	double total_ms, downtime_ms, bytes;
	double iterations;  /* pre-copy passes (vmx) or dirty-log syncs (QEMU) */
	double observed_ms; /* the longest gap between arrivals of serial output, or -1 */
	double floor_ms;    /* the same over FLOOR_MS of the guest before, not migrating */
	bool ok;
};

/* ---- vmx ---- */

static struct result run_vmx(int mib, const char *cmdline, const char *ready, const char *streams)
{
	struct result r = { 0 };
	char dir[PATH_MAX], cfg[PATH_MAX + 16], runA[PATH_MAX + 8], runB[PATH_MAX + 8];
	char tok[PATH_MAX + 8], sockA[PATH_MAX + 16], sockB[PATH_MAX + 16], log[PATH_MAX + 16];
	char vmx[PATH_MAX + 8], token[65], port[16], serial[PATH_MAX + 16];

	snprintf(dir, sizeof(dir), "%s/vmx", tmp);
	mkdir(dir, 0755);
	snprintf(cfg, sizeof(cfg), "%s/m.vmx", dir);
	snprintf(serial, sizeof(serial), "%s/serial.log", dir);
	unlink(serial);
	if (bench_write_vmx(cfg, "m", 177, mib, elf, cmdline) < 0)
		return r;
	snprintf(runA, sizeof(runA), "%s/a", tmp);
	snprintf(runB, sizeof(runB), "%s/b", tmp);
	mkdir(runA, 0700);
	mkdir(runB, 0700);
	snprintf(vmx, sizeof(vmx), "%s/vmx", bindir);
	snprintf(log, sizeof(log), "%s/a.log", tmp);
	char *a[] = { vmx, "--run-dir", runA, "-c", cfg, NULL };
	pid_t pa = bench_spawn(a, log);
	for (int i = 0; i < 32; i++)
		snprintf(token + 2 * i, 3, "%02x", (unsigned)(rand() & 0xff));
	snprintf(tok, sizeof(tok), "%s/tok", tmp);
	FILE *f = fopen(tok, "w");
	fprintf(f, "%s\n", token);
	fclose(f);
	snprintf(log, sizeof(log), "%s/b.log", tmp);
	char *b[] = { vmx, "--run-dir", runB, "--incoming", "127.0.0.1", "--incoming-token-file",
		      tok, "-c",        cfg,  NULL };
	pid_t pb = bench_spawn(b, log);
	snprintf(sockA, sizeof(sockA), "%s/vmx.sock", runA);
	snprintf(sockB, sizeof(sockB), "%s/vmx.sock", runB);
	if (!bench_wait_file_has(serial, ready, 120000))
		goto out;
	for (int i = 0; i < 100; i++) {
		char *st[] = { vmx, "--control", sockB, "status", NULL };
		double p = access(sockB, F_OK) == 0
		                   ? bench_field(bench_vmx_control(st), "incoming_port=")
		                   : 0;
		if (p > 0) {
			snprintf(port, sizeof(port), "%d", (int)p);
			break;
		}
		usleep(50 * 1000);
	}
	char *m[] = { vmx,   "--control", sockA, "migrate",       "127.0.0.1", port,
		      token, "50",        "0",   (char *)streams, NULL };
	bench_warm_memory(WARM_MIB);
	r.floor_ms = quiet_gap(serial);
	struct bench_watch w;
	bench_watch_start(&w, serial, NULL, true);
	double tm = bench_now_ms();
	bench_vmx_control(m);
	if (getenv("BENCH_DEBUG"))
		fprintf(stderr, "vmx migrate command took %.1f ms\n", bench_now_ms() - tm);
	for (int i = 0; i < 2400; i++) {
		char *st[] = { vmx, "--control", sockA, "migrate-status", NULL };
		const char *o = bench_vmx_control(st);
		if (strstr(o, "phase=done")) {
			usleep(20 * 1000); /* the destination's first lines */
			r.observed_ms = bench_watch_stop(&w);
			r.total_ms = bench_field(o, "total_ms=");
			r.downtime_ms = bench_field(o, "\ndowntime_ms=");
			r.bytes = bench_field(o, "transferred=");
			r.iterations = bench_field(o, "iteration=");
			r.ok = true;
			break;
		}
		if (strstr(o, "phase=failed") || strstr(o, "phase=cancelled") || !o[0])
			break;
		usleep(2 * 1000);
	}
	if (!r.ok)
		bench_watch_stop(&w);
out:
	bench_kill(pa);
	bench_kill(pb);
	if (getenv("BENCH_DEBUG")) {
		bench_sh(NULL, 0, "cat %s/a.log %s/b.log >>/tmp/vmk-bench-mig-debug.log", tmp, tmp);
	}
	return r;
}

/* ---- QEMU ---- */

static struct result run_qemu(int mib, const char *cmdline, const char *ready, bool kvm,
                              const char *tsc_arg, bool multifd)
{
	struct result r = { 0 };
	char qa[PATH_MAX + 8], qb[PATH_MAX + 8], sa[PATH_MAX + 16], sb[PATH_MAX + 16], mem[16];
	char append[512], inc[64], la[PATH_MAX + 8], lb[PATH_MAX + 8];
	int port = 20000 + (rand() % 20000);

	snprintf(qa, sizeof(qa), "%s/qa.sock", tmp);
	snprintf(qb, sizeof(qb), "%s/qb.sock", tmp);
	snprintf(sa, sizeof(sa), "file:%s/qa.serial", tmp);
	snprintf(sb, sizeof(sb), "file:%s/qb.serial", tmp);
	snprintf(la, sizeof(la), "%s/qa.serial", tmp);
	snprintf(lb, sizeof(lb), "%s/qb.log", tmp);
	unlink(la);
	snprintf(mem, sizeof(mem), "%d", mib);
	snprintf(append, sizeof(append), "%s %s", cmdline, tsc_arg);
	snprintf(inc, sizeof(inc), "tcp:127.0.0.1:%d", port);
	char qas[PATH_MAX + 40], qbs[PATH_MAX + 40];
	snprintf(qas, sizeof(qas), "unix:%s,server=on,wait=off", qa);
	snprintf(qbs, sizeof(qbs), "unix:%s,server=on,wait=off", qb);
	char *a[BENCH_QEMU_ARGV], *b[BENCH_QEMU_ARGV];
	char *incoming[] = { "-incoming", multifd ? "defer" : inc, NULL };
	bench_qemu_argv(a, kvm, mem, sa, elf, append, qas, NULL);
	bench_qemu_argv(b, kvm, mem, sb, elf, append, qbs, incoming);
	char lga[PATH_MAX + 8];
	snprintf(lga, sizeof(lga), "%s/qa.log", tmp);
	pid_t pa = bench_spawn(a, lga), pb = bench_spawn(b, lb);
	int fa = bench_qmp_open(qa), fb = bench_qmp_open(qb);
	if (fa < 0 || fb < 0 || !bench_wait_file_has(la, ready, 120000))
		goto out;
	bench_qmp(fa, "{\"execute\":\"qmp_capabilities\"}\n");
	bench_qmp(fb, "{\"execute\":\"qmp_capabilities\"}\n");
	/* our downtime limit, and no bandwidth cap (QEMU's default 128 MiB/s
	 * never finishes a fast dirtier) */
	bench_qmp(fa,
	          "{\"execute\":\"migrate-set-parameters\",\"arguments\":{\"downtime-limit\":50,"
	          "\"max-bandwidth\":107374182400}}\n");
	/* as vmx does: hold the vCPUs when the guest dirties faster than the link */
	bench_qmp(fa, "{\"execute\":\"migrate-set-capabilities\",\"arguments\":{\"capabilities\":"
	              "[{\"capability\":\"auto-converge\",\"state\":true}]}}\n");
	if (multifd) { /* 4 channels on both ends; the destination listens late */
		for (int k = 0; k < 2; k++) {
			int q = k ? fb : fa;
			bench_qmp(q, "{\"execute\":\"migrate-set-capabilities\",\"arguments\":"
			             "{\"capabilities\":[{\"capability\":\"multifd\",\"state\":"
			             "true}]}}\n");
			bench_qmp(q, "{\"execute\":\"migrate-set-parameters\",\"arguments\":"
			             "{\"multifd-channels\":4}}\n");
		}
		char mi[200];
		snprintf(mi, sizeof(mi),
		         "{\"execute\":\"migrate-incoming\",\"arguments\":{\"uri\":\"%s\"}}\n",
		         inc);
		bench_qmp(fb, mi);
	}
	char cmd[200];
	snprintf(cmd, sizeof(cmd), "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"%s\"}}\n",
	         inc);
	char lbs[PATH_MAX + 16];
	snprintf(lbs, sizeof(lbs), "%s/qb.serial", tmp);
	unlink(lbs);
	bench_warm_memory(WARM_MIB);
	r.floor_ms = quiet_gap(la);
	struct bench_watch w;
	bench_watch_start(&w, la, lbs, true);
	bench_qmp(fa, cmd);
	for (int i = 0; i < 2400; i++) {
		const char *o = bench_qmp(fa, "{\"execute\":\"query-migrate\"}\n");
		if (getenv("BENCH_DEBUG") && strstr(o, "\"completed\""))
			fprintf(stderr, "%s\n", o);
		if (strstr(o, "\"completed\"")) {
			usleep(20 * 1000);
			r.observed_ms = bench_watch_stop(&w);
			r.total_ms = bench_field(o, "\"total-time\": ");
			r.downtime_ms = bench_field(o, "\"downtime\": ");
			r.bytes = bench_field(o, "\"transferred\": ");
			r.iterations = bench_field(o, "\"dirty-sync-count\": ");
			r.ok = true;
			break;
		}
		if (strstr(o, "\"failed\"") || !o[0])
			break;
		usleep(2 * 1000);
	}
	if (!r.ok)
		bench_watch_stop(&w);
out:
	if (fa >= 0)
		close(fa);
	if (fb >= 0)
		close(fb);
	bench_kill(pa);
	bench_kill(pb);
	return r;
}

struct med {
	int n;
	double total, down, observed, floor, bytes, worst, iterations;
};

static struct med medians(const struct result *r, int n)
{
	double t[RUNS], d[RUNS], o[RUNS], f[RUNS], b[RUNS], it[RUNS];
	struct med m = { 0 };

	for (int i = 0; i < n; i++) {
		if (!r[i].ok)
			continue;
		t[m.n] = r[i].total_ms, d[m.n] = r[i].downtime_ms, o[m.n] = r[i].observed_ms,
		f[m.n] = r[i].floor_ms, it[m.n] = r[i].iterations, b[m.n++] = r[i].bytes;
	}
	if (!m.n)
		return m;
	m.total = bench_median(t, m.n), m.down = bench_median(d, m.n);
	m.observed = bench_median(o, m.n), m.bytes = bench_median(b, m.n);
	m.floor = bench_median(f, m.n), m.iterations = bench_median(it, m.n);
	m.worst = t[m.n - 1]; /* sorted by bench_median */
	return m;
}

static void show(const char *who, const struct med *m)
{
	if (!m->n) {
		printf("    %-13s failed or absent\n", who);
		return;
	}
	printf("    %-13s %7.0f ms (worst %6.0f)  down %4.0f ms", who, m->total, m->worst, m->down);
	printf("  seen %5.1f ms (floor %3.1f)", m->observed, m->floor);
	printf("  %8.1f MiB  %3.0f it\n", m->bytes / 1048576, m->iterations);
}

/* Each metric: the better of two configurations' medians (either may
 * have failed: absent). */
static struct med best_of(const struct med *a, const struct med *b)
{
	if (!a->n || !b->n)
		return a->n ? *a : *b;
	struct med m = *a;
	m.total = fmin(a->total, b->total), m.down = fmin(a->down, b->down);
	m.observed = fmin(a->observed, b->observed), m.bytes = fmin(a->bytes, b->bytes);
	/* a side that did not report its count (-1) has none to offer */
	m.iterations = a->iterations < 0   ? b->iterations
	               : b->iterations < 0 ? a->iterations
	                                   : fmin(a->iterations, b->iterations);
	return m;
}

static void ratio(const char *name, double v, double q)
{
	if (v < 0 || q < 0)
		printf("  %s -", name); /* one side did not report it */
	else if (q > 0)
		printf("  %s %.2f", name, v / q);
	else
		printf("  %s - (QEMU's is 0)", name);
}

/* vmx's best of its two configurations against QEMU's best of its two,
 * metric by metric */
static void line(const char *what, const struct result *v1, const struct result *v4,
                 const struct result *q, const struct result *qm, int n)
{
	struct med m1 = medians(v1, n), m4 = medians(v4, n), mq = medians(q, n),
	           mm = medians(qm, n);
	struct med mv = best_of(&m1, &m4), bq = best_of(&mq, &mm);

	printf("%s\n", what);
	show("vmx", &m1);
	show("vmx 4 streams", &m4);
	show("QEMU", &mq);
	show("QEMU multifd", &mm);
	if (!mv.n || !bq.n)
		return;
	printf("    vmx's best / QEMU's best:");
	ratio("total", mv.total, bq.total);
	ratio("downtime", mv.down, bq.down);
	ratio("seen", mv.observed, bq.observed);
	ratio("bytes", mv.bytes, bq.bytes);
	ratio("iterations", mv.iterations, bq.iterations);
	printf("\n");
}

int main(int argc, char **argv)
{
	char self[PATH_MAX], tsc_arg[64] = "";
	const char *only = argc > 1 ? argv[1] : NULL; /* e.g. "idle": the cases named so */
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0 || !mkdtemp(tmp))
		return 1;
	self[n] = '\0';
	*strrchr(self, '/') = '\0'; /* build/bench */
	snprintf(bindir, sizeof(bindir), "%s/../bin", self);
	snprintf(elf, sizeof(elf), "%s/../guest/vmk-guest.elf", self);
	srand((unsigned)time(NULL));
	bool kvm = access("/dev/kvm", R_OK | W_OK) == 0;
	bool qemu = system("command -v qemu-system-x86_64 >/dev/null 2>&1") == 0;
	FILE *ci = fopen("/proc/cpuinfo", "r");
	char buf[256];
	while (ci && fgets(buf, sizeof(buf), ci))
		if (sscanf(buf, "cpu MHz : %63s", tsc_arg) == 1)
			break;
	if (ci)
		fclose(ci);
	double mhz = atof(tsc_arg);
	snprintf(tsc_arg, sizeof(tsc_arg), "tsc_khz=%ld", (long)(mhz * 1000));
	printf("bench/migrate: median of %d live migrations on loopback, downtime limit 50 ms\n",
	       RUNS);
	printf("  vmx on %s; QEMU %s\n", kvm ? "KVM" : "its software CPU (no usable /dev/kvm)",
	       !qemu ? "absent"
	       : kvm ? "on KVM"
	             : "on TCG (so the guests' speeds differ)");
	/* "seen": the guest-observed downtime, from the arrival of the
	 * guest's lines on the host: the heartbeat's, or the 2-byte "t" line
	 * the busy guests print besides their work (tick_ms), one a
	 * millisecond */
	struct {
		const char *name, *cmdline, *ready;
		int mib;
	} cases[] = {
		{ "idle 1 GiB (heartbeat 1 ms)", "heartbeat interval_ms=1", "hb 300", 1024 },
		{ "busy, verify 64 MiB of 128", "verify mib=64 tick_ms=1", "filled", 128 },
		{ "dirty 256 MiB at 200 MiB/s", "dirty mib=256 rate=200 tick_ms=1", "\ndirty 2",
		  512 },
		/* faster than any link here: only auto-converge ends it */
		{ "dirty 256 MiB at max rate", "dirty mib=256 rate=0 tick_ms=1", "t\ndirty ", 512 },
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		if (only && !strstr(cases[c].name, only))
			continue;
		struct result v[RUNS], v4[RUNS], q[RUNS], qm[RUNS];
		for (int i = 0; i < RUNS; i++) {
			v[i] = run_vmx(cases[c].mib, cases[c].cmdline, cases[c].ready, "streams=1");
			v4[i] = run_vmx(cases[c].mib, cases[c].cmdline, cases[c].ready,
			                "streams=4");
			q[i] = qemu ? run_qemu(cases[c].mib, cases[c].cmdline, cases[c].ready, kvm,
			                       tsc_arg, false)
			            : (struct result){ 0 };
			qm[i] = qemu ? run_qemu(cases[c].mib, cases[c].cmdline, cases[c].ready, kvm,
			                        tsc_arg, true)
			             : (struct result){ 0 };
		}
		line(cases[c].name, v, v4, q, qm, RUNS);
	}
	char rm[128];
	snprintf(rm, sizeof(rm), "rm -rf %s", tmp);
	if (system(rm) != 0)
		return 1;
	return 0;
}
