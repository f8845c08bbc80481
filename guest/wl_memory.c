/* Memory workloads: dirty (a write rate over a working set) and verify
 * (a seeded pattern that detects any lost or stale page). */
#include "rt.h"
#include "workloads.h"

#define PAGE 4096u

/* The working set: mib MiB from the first free byte after the image. */
static uint8_t *region(uint64_t mib, const char *who)
{
	uint64_t bytes = mib << 20;

	if (!mib || free_start + bytes > free_end) {
		printf_("%s: mib=%lu does not fit: %lu MiB free\n", who, mib,
		        (free_end - free_start) >> 20);
		return 0;
	}
	return (uint8_t *)(uintptr_t)free_start;
}

/* tick_ms=N (0 = none): a line "t" every N ms of guest time besides the
 * work, for observers that time the guest's pauses by its output (a
 * 2-byte line: two exits). */
struct tick {
	uint64_t every, next;
};

static void tick_init(struct tick *t)
{
	t->every = cmdline_u64("tick_ms", 0) * tsc_khz;
	t->next = rdtsc() + t->every;
}

static void tick(struct tick *t)
{
	uint64_t now;

	if (!t->every || (now = rdtsc()) < t->next)
		return;
	puts_("t\n");
	/* after a stall, the next one interval on: no burst */
	t->next = now > t->next + t->every ? now + t->every : t->next + t->every;
}

/* dirty mib=W rate=R (MiB/s, 0 = as fast as it goes) seconds=S (0 = forever)
 * [tick_ms=N]: writes every page of the working set whole, round robin,
 * paced by the TSC. Prints "dirty <MiB/s>" each second. */
int wl_dirty(void)
{
	uint64_t mib = cmdline_u64("mib", 64), rate = cmdline_u64("rate", 0);
	uint64_t seconds = cmdline_u64("seconds", 0);
	struct tick tk;
	uint8_t *mem = region(mib, "dirty");
	uint64_t pages = (mib << 20) / PAGE, stamp = 1;

	if (!mem)
		return 2;
	/* TSC ticks one page may take at the requested rate */
	uint64_t page_ticks = rate ? PAGE * tsc_khz * 1000 / (rate << 20) : 0;
	uint64_t start = rdtsc(), sec_start = start, sec_pages = 0, done_pages = 0;
	uint64_t end = seconds ? start + seconds * 1000 * tsc_khz : ~0ull;
	printf_("dirty %lu MiB at %lu MiB/s\n", mib, rate);
	tick_init(&tk);
	for (uint64_t p = 0;; p = p + 1 == pages ? 0 : p + 1) {
		/* the whole page, as real writers do: a dirty rate is bytes written */
		volatile uint64_t *w = (volatile uint64_t *)(mem + p * PAGE);
		for (unsigned i = 0; i < PAGE / 8; i++)
			w[i] = stamp + i;
		stamp++;
		done_pages++;
		sec_pages++;
		tick(&tk); /* a page at a time: under dirty logging a page can take 30 us */
		if ((done_pages & 255) == 0) { /* every MiB: pace and report */
			uint64_t now = rdtsc();
			if (rate) {
				uint64_t allowed_at = start + done_pages * page_ticks;
				/* held back (paused, throttled, migrated): no burst to catch
				 * up beyond 10 ms, so the rate is a ceiling, not an average */
				if (now > allowed_at + 10 * tsc_khz)
					start += now - (allowed_at + 10 * tsc_khz);
				allowed_at = start + done_pages * page_ticks;
				while ((now = rdtsc()) < allowed_at) {
					tick(&tk);
					cpu_relax();
				}
			}
			if (now - sec_start >= 1000 * tsc_khz) {
				printf_("dirty %lu\n", sec_pages * PAGE / (1u << 20) * 1000 *
				                               tsc_khz / (now - sec_start));
				sec_start = now;
				sec_pages = 0;
			}
			if (now >= end)
				return 0;
		}
	}
}

static inline uint64_t pattern(uint64_t seed, uint64_t addr, uint64_t gen, uint64_t i)
{
	uint64_t x =
	        seed ^ (addr * 0x9e3779b97f4a7c15ull) ^ (gen << 32) ^ (i * 0xbf58476d1ce4e5b9ull);
	x ^= x >> 31;
	return x * 0x94d049bb133111ebull;
}

/* verify mib=W seed=S passes=N (0 = forever) [tick_ms=N]: fills the
 * working set with a seeded pattern, then in every pass checks each page against the
 * generation it must have at that point and rewrites it with the next. A
 * page lost, zeroed or left stale by a migration or restore shows up as
 * "CORRUPT <addr>" (and status 1). Prints "verify pass <n> OK". */
int wl_verify(void)
{
	uint64_t mib = cmdline_u64("mib", 64), seed = cmdline_u64("seed", 1);
	uint64_t passes = cmdline_u64("passes", 0);
	uint8_t *mem = region(mib, "verify");
	uint64_t pages = (mib << 20) / PAGE;
	struct tick tk;

	if (!mem)
		return 2;
	for (uint64_t p = 0; p < pages; p++) {
		uint64_t *w = (uint64_t *)(mem + p * PAGE);
		for (uint64_t i = 0; i < PAGE / 8; i++)
			w[i] = pattern(seed, (uint64_t)(uintptr_t)w, 0, i);
	}
	printf_("verify %lu MiB seed %lu filled\n", mib, seed);
	tick_init(&tk);
	for (uint64_t gen = 0; !passes || gen < passes; gen++) {
		for (uint64_t p = 0; p < pages; p++) {
			uint64_t *w = (uint64_t *)(mem + p * PAGE);
			tick(&tk);
			for (uint64_t i = 0; i < PAGE / 8; i++) {
				uint64_t want = pattern(seed, (uint64_t)(uintptr_t)w, gen, i);
				if (w[i] != want) {
					printf_("CORRUPT %lx pass %lu want %lx got %lx\n",
					        (uint64_t)(uintptr_t)&w[i], gen, want, w[i]);
					return 1;
				}
			}
			for (uint64_t i = 0; i < PAGE / 8; i++)
				w[i] = pattern(seed, (uint64_t)(uintptr_t)w, gen + 1, i);
		}
		printf_("verify pass %lu OK\n", gen + 1);
	}
	return 0;
}
