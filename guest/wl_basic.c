/* hello, heartbeat and burn. */
#include "rt.h"
#include "workloads.h"

int wl_hello(void)
{
	printf_("hello from vmk guest: ram %lu MiB, tsc %lu kHz\n", ram_bytes >> 20, tsc_khz);
	return 0;
}

/* "hb <seq>" every interval_ms (default 1); count=N stops after N lines;
 * stamp=1: "hb <seq> <ms>", the guest's TSC in ms (its clock, which a
 * migration must not set back). After a stall (pause, migration) it
 * resumes with the next number and does not burst to catch up: the gap
 * itself is what observers measure. */
int wl_heartbeat(void)
{
	uint64_t interval = cmdline_u64("interval_ms", 1) * tsc_khz;
	uint64_t count = cmdline_u64("count", 0);
	bool stamp = cmdline_u64("stamp", 0) != 0;
	uint64_t next = rdtsc();

	for (uint64_t seq = 0; !count || seq < count; seq++) {
		while (rdtsc() < next)
			cpu_relax();
		if (stamp)
			printf_("hb %lu %lu\n", seq, rdtsc() / tsc_khz);
		else
			printf_("hb %lu\n", seq);
		next += interval;
		uint64_t now = rdtsc();
		if (now > next + interval)
			next = now + interval;
	}
	return 0;
}

/* Pure CPU: "burn <iterations>" per interval_ms (default 1000); seconds=N
 * stops after N seconds (0: forever). */
int wl_burn(void)
{
	uint64_t interval = cmdline_u64("interval_ms", 1000) * tsc_khz;
	uint64_t seconds = cmdline_u64("seconds", 0);
	uint64_t end = seconds ? rdtsc() + seconds * 1000 * tsc_khz : ~0ull;
	uint64_t x = 88172645463325252ull;

	for (uint64_t t = rdtsc(); t < end;) {
		uint64_t n = 0, stop = t + interval;
		while (rdtsc() < stop) {
			for (int i = 0; i < 1024; i++)
				rng_next(&x);
			n += 1024;
		}
		t = stop;
		printf_("burn %lu\n", n);
	}
	return x == 0; /* keep x alive */
}
