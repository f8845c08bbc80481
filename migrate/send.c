/* The source side of a live migration: pre-copy with the dirty log,
 * auto-converge, and the switchover state machine (migrate.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "migrate.h"
#include "util.h"
#include "vmm/diskstate.h"
#include "vmm/ramstate.h"
#include "vmm/virtio_blk.h"
#include "vmm/snapshot.h"
#include "wire.h"

#define MAX_ITERATIONS     60
#define SYNC_WAIT_AGAIN_MS 3 /* a longer wait for the destination: more passes */
#define SYNC_WAITS_MAX     3
#define THROTTLE_STEP      20 /* % more held per auto-converge step */
#define THROTTLE_MAX       99 /* as QEMU's cpu-throttle limit */
#define THROTTLE_PERIOD_MS 5  /* short holds: the guest sees gaps of pct% of this */

#define FINAL_ONE_STREAM_BYTES (16u << 20)

static const char *const phase_names[] = { "idle",     "connecting", "precopy", "switchover",
	                                   "handover", "done",       "failed",  "cancelled" };

const char *migrate_phase_name(enum migrate_phase p)
{
	return (unsigned)p < sizeof(phase_names) / sizeof(phase_names[0]) ? phase_names[p]
	                                                                  : "unknown";
}

static void set_phase(struct migrate_src *s, enum migrate_phase ph)
{
	pthread_mutex_lock(&s->m);
	s->prog.phase = ph;
	pthread_mutex_unlock(&s->m);
}

/* Auto-converge: a thread that holds the vCPUs for throttle_pct of every
 * period (pause/resume, the same for KVM and the software CPU). Its waits
 * end at once when it is told to stop (the switchover must not wait out a
 * period). */
struct throttle {
	struct vmm_vm *vm;
	atomic_uint pct;
	pthread_mutex_t m;
	pthread_cond_t cv;
	bool stop; /* under m */
	pthread_t t;
	bool running;
};

/* Waits us microseconds or until stopped; true when stopped. */
static bool throttle_wait(struct throttle *th, unsigned us)
{
	struct timespec until;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_nsec += (long)(us % 1000000) * 1000;
	until.tv_sec += us / 1000000 + until.tv_nsec / 1000000000;
	until.tv_nsec %= 1000000000;
	pthread_mutex_lock(&th->m);
	while (!th->stop && pthread_cond_timedwait(&th->cv, &th->m, &until) == 0)
		;
	bool stop = th->stop;
	pthread_mutex_unlock(&th->m);
	return stop;
}

static void *throttle_main(void *arg)
{
	struct throttle *th = arg;
	/* Real-time (as root), so its wake-ups preempt the vCPU they end the
	 * run window of: at normal priority they came late behind it, and
	 * the vCPUs asked to be held 40/60/80 % were held 34/52/76 % (their
	 * KVM_RUN time, 2 cores); real-time, 41/61/80 %. It only sleeps and
	 * pauses or resumes. */
	struct sched_param sp = { .sched_priority = 1 };
	int rt = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);
	if (rt)
		log_debug("migration: auto-converge at normal priority (%s): its holds run short",
		          strerror(rt));

	for (;;) {
		unsigned pct = atomic_load(&th->pct);
		if (!pct) {
			if (throttle_wait(th, THROTTLE_PERIOD_MS * 1000))
				break;
			continue;
		}
		vmm_vm_pause(th->vm);
		bool stop = throttle_wait(th, THROTTLE_PERIOD_MS * 10 * pct);
		vmm_vm_resume(th->vm);
		if (stop || throttle_wait(th, THROTTLE_PERIOD_MS * 10 * (100 - pct)))
			break;
	}
	return NULL;
}

static void throttle_start(struct throttle *th, struct vmm_vm *vm)
{
	pthread_condattr_t a;

	th->vm = vm;
	pthread_mutex_init(&th->m, NULL);
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(&th->cv, &a);
	pthread_condattr_destroy(&a);
	th->running = pthread_create(&th->t, NULL, throttle_main, th) == 0;
}

/* Ends the thread now (the vCPUs run when it returns); idempotent. */
static void throttle_stop(struct throttle *th)
{
	if (!th->running)
		return;
	pthread_mutex_lock(&th->m);
	th->stop = true;
	pthread_cond_signal(&th->cv);
	pthread_mutex_unlock(&th->m);
	pthread_join(th->t, NULL);
	th->running = false;
	pthread_cond_destroy(&th->cv);
	pthread_mutex_destroy(&th->m);
}

/* Every pass sends memory a chunk of MIGRATE_STREAM_CHUNK pages at a time;
 * each chunk's dirty log is re-armed (manual protection,
 * vmm_vm_dirty_clear) right before its pages are read, as QEMU clears its
 * log in chunks. With parallel streams (--streams) stream k carries the
 * chunks c with c % n == k; the main stream is stream 0. Each pass sends
 * every stream's share at once, one thread per extra stream, and ends
 * when all have. */
struct xstream {
	struct wire_stream ws;
	struct vmm_stream st;
	uint32_t inst;
};

struct share {
	struct vmm_vm *vm;
	struct vmm_stream *st;
	const uint64_t *bm;
	uint32_t *inst;
	unsigned k, n;
	bool all;   /* the first pass: all of RAM (holes as ZERO sections) */
	bool yield; /* pre-copy: an extra stream's thread yields to the vCPUs */
	int ret;
};

static void *share_main(void *arg)
{
	struct share *sh = arg;
	uint64_t pages = sh->vm->mem.dirty_pages;

	/* At the same priority, the extra streams' threads at both ends (six
	 * with 4 streams) kept a busy guest's vCPU waiting 13-33 ms at a time
	 * on two cores (bench/migrate's "seen"); niced, 6-10 ms. The main
	 * stream's thread is not: it alone keeps a migration going on a host
	 * whose cores the vCPUs fill, and a niced sender that shared a core
	 * with a busy vCPU took 1 s for a pass of 100 ms. The thread ends
	 * with the pass: nothing to restore. */
	if (sh->yield)
		util_thread_nice(MIGRATE_PRECOPY_NICE);

	for (uint64_t c = sh->k; sh->ret == 0 && c * MIGRATE_STREAM_CHUNK < pages; c += sh->n) {
		uint64_t a = c * MIGRATE_STREAM_CHUNK;
		uint64_t b = a + MIGRATE_STREAM_CHUNK < pages ? a + MIGRATE_STREAM_CHUNK : pages;
		if ((sh->ret = vmm_vm_dirty_clear(sh->vm, sh->bm, a, b)) == 0)
			sh->ret = sh->all ? vmm_ram_save_all_range(&sh->vm->mem, sh->st, a, b,
			                                           sh->inst, NULL)
			                  : vmm_ram_save_dirty_range(&sh->vm->mem, sh->st, sh->bm,
			                                             a, b, sh->inst, NULL);
	}
	return NULL;
}

/* every socket of the migration; under the lock, as cancel shuts them down */
static void close_streams(struct migrate_src *s)
{
	pthread_mutex_lock(&s->m);
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	for (unsigned k = 0; k < MIGRATE_MAX_STREAMS; k++) {
		if (s->xfd[k] >= 0)
			close(s->xfd[k]);
		s->xfd[k] = -1;
	}
	pthread_mutex_unlock(&s->m);
}

static uint64_t sent_total(const struct wire_stream *ws, const struct xstream *x, unsigned n)
{
	uint64_t t = ws->sent;

	for (unsigned k = 1; k < n; k++)
		t += x[k].ws.sent;
	return t;
}

/* Corks or uncorks every stream: a pass's small sections (ZERO ranges,
 * short runs of dirty pages) leave in full segments and the pass's SYNC
 * flushes them, instead of waking the destination's reader for each: on
 * two cores those wake-ups, a sender and a reader taking turns every
 * 15 us, kept an idle guest's vCPU off its core for 2 ms and more. */
static void cork_streams(struct wire_stream *ws, struct xstream *x, unsigned n, bool on)
{
	wire_stream_cork(ws, on);
	for (unsigned k = 1; k < n; k++)
		wire_stream_cork(&x[k].ws, on);
}

/* The pages set in bm over the main stream and the n - 1 others; yield:
 * the others' threads yield to the vCPUs (pre-copy). */
static int send_dirty_streams(struct vmm_vm *vm, struct vmm_stream *main_st, uint32_t *main_inst,
                              struct xstream *x, unsigned n, const uint64_t *bm, bool all,
                              bool yield)
{
	struct share sh[MIGRATE_MAX_STREAMS];
	pthread_t t[MIGRATE_MAX_STREAMS];
	bool started[MIGRATE_MAX_STREAMS] = { false };
	int ret = 0;

	for (unsigned k = 0; k < n; k++) {
		sh[k] = (struct share){ .vm = vm,
			                .st = k ? &x[k].st : main_st,
			                .bm = bm,
			                .inst = k ? &x[k].inst : main_inst,
			                .k = k,
			                .n = n,
			                .all = all,
			                .yield = k && yield };
		if (k && pthread_create(&t[k], NULL, share_main, &sh[k]) == 0) {
			started[k] = true;
		} else if (k) { /* no thread: in line, and this thread stays as it is */
			sh[k].yield = false;
			share_main(&sh[k]);
		}
	}
	share_main(&sh[0]);
	for (unsigned k = 0; k < n; k++) {
		if (started[k])
			pthread_join(t[k], NULL);
		if (sh[k].ret < 0 && ret == 0)
			ret = sh[k].ret;
	}
	return ret;
}

/* With the storage, the serial log moves too: its content so far (the
 * last 64 MiB at most), sent while paused, before END. */
static int send_serial_log(const char *path, struct vmm_stream *st)
{
	int fd = path[0] ? open(path, O_RDONLY | O_CLOEXEC) : -1;
	static uint8_t buf[1 << 20];
	int ret = 0;

	if (fd < 0)
		return 0; /* nothing written yet */
	off_t end = lseek(fd, 0, SEEK_END);
	off_t pos = end > (64 << 20) ? end - (64 << 20) : 0;
	while (pos < end && ret == 0) {
		ssize_t n = pread(fd, buf, sizeof(buf), pos);
		if (n <= 0)
			break;
		ret = vmm_state_write_section(st, SEC_SLOG, 0, buf, (size_t)n);
		pos += n;
	}
	close(fd);
	return ret;
}

/* Fails the migration before the hand-over: the VM runs on here. */
static void fail(struct migrate_src *s, enum migrate_phase ph, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void fail(struct migrate_src *s, enum migrate_phase ph, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&s->m);
	va_start(ap, fmt);
	vsnprintf(s->prog.error, sizeof(s->prog.error), fmt, ap);
	va_end(ap);
	s->prog.phase = ph;
	pthread_mutex_unlock(&s->m);
	log_warn("migration %s: %s; the VM keeps running here", migrate_phase_name(ph),
	         s->prog.error);
}

/* Reads the destination's answers to the passes' SYNC sections: it has
 * loaded every pass sent so far. */
static int read_syncs(struct migrate_src *s, unsigned *syncs, char *line, size_t len)
{
	int ret;

	for (; *syncs; (*syncs)--) {
		if ((ret = wire_read_line(s->fd, line, len, MIGRATE_ACK_TIMEOUT_MS)) < 0 ||
		    line[0] != 'S') {
			fail(s, atomic_load(&s->cancel) ? MIG_CANCELLED : MIG_FAILED,
			     "the destination did not load the memory sent: %s",
			     ret < 0          ? strerror(-ret)
			     : line[0] == 'F' ? line + 2
			                      : line);
			return ret < 0 ? ret : -EPROTO;
		}
	}
	return 0;
}

static void *send_main(void *arg)
{
	struct migrate_src *s = arg;
	struct vmm_vm *vm = s->vm;
	struct wire_stream ws;
	struct vmm_stream st;
	struct throttle th = { 0 };
	char err[400], line[300];
	uint64_t t0 = util_now_ms(), words = 0, *bm = NULL;
	bool logging = false, paused = false;
	struct vmm_disks_log dk = { 0 };
	static struct xstream x[MIGRATE_MAX_STREAMS]; /* one migration per vmx */
	unsigned nstreams = s->p.streams < 1                     ? 1
	                    : s->p.streams > MIGRATE_MAX_STREAMS ? MIGRATE_MAX_STREAMS
	                                                         : s->p.streams;
	uint32_t main_inst = 0;
	uint64_t max_bps = (uint64_t)s->p.max_bandwidth << 20;
	int ret;

	memset(x, 0, sizeof(x));
	set_phase(s, MIG_CONNECTING);
	int mfd = wire_connect(s->p.nsfd, s->p.host, s->p.port, 10000, err, sizeof(err));
	pthread_mutex_lock(&s->m); /* cancel shuts it down under the lock */
	s->fd = mfd;
	pthread_mutex_unlock(&s->m);
	if (s->fd < 0) {
		fail(s, atomic_load(&s->cancel) ? MIG_CANCELLED : MIG_FAILED, "%s", err);
		goto out;
	}
	if (nstreams > 1)
		snprintf(line, sizeof(line), "VMKMIG1 %s %u\n", s->p.token, nstreams);
	else
		snprintf(line, sizeof(line), "VMKMIG1 %s\n", s->p.token);
	if ((ret = wire_send_line(s->fd, line)) < 0 ||
	    (ret = wire_read_line(s->fd, line, sizeof(line), 10000)) < 0) {
		fail(s, MIG_FAILED, "the destination did not answer the handshake: %s",
		     strerror(-ret));
		goto out;
	}
	if (strcmp(line, "OK") != 0) {
		fail(s, MIG_FAILED, "the destination refused the migration: %s", line);
		goto out;
	}
	/* the other streams, each with the token and its number */
	for (unsigned k = 1; k < nstreams; k++) {
		int fd = wire_connect(s->p.nsfd, s->p.host, s->p.port, 10000, err, sizeof(err));
		if (fd < 0) {
			fail(s, atomic_load(&s->cancel) ? MIG_CANCELLED : MIG_FAILED,
			     "stream %u: %s", k, err);
			goto out;
		}
		pthread_mutex_lock(&s->m);
		s->xfd[k] = fd;
		pthread_mutex_unlock(&s->m);
		snprintf(line, sizeof(line), "VMKMIG1S %s %u\n", s->p.token, k);
		if ((ret = wire_send_line(fd, line)) < 0 ||
		    (ret = wire_read_line(fd, line, sizeof(line), 10000)) < 0 ||
		    strcmp(line, "OK") != 0) {
			fail(s, atomic_load(&s->cancel) ? MIG_CANCELLED : MIG_FAILED,
			     "stream %u: the destination refused it: %s", k,
			     ret < 0 ? strerror(-ret) : line);
			goto out;
		}
		wire_stream_init(&x[k].ws, &x[k].st, fd, max_bps / nstreams, &s->cancel);
		x[k].st.compress = s->p.compress;
		x[k].st.direct = true; /* pages straight from guest memory */
		x[k].st.page_crcs = s->p.verify_pages;
		if ((ret = vmm_state_write_header(&x[k].st)) < 0) {
			fail(s, atomic_load(&s->cancel) ? MIG_CANCELLED : MIG_FAILED,
			     "stream %u: %s", k, strerror(-ret));
			goto out;
		}
	}
	if (s->p.nsfd >= 0) { /* ours since migrate_src_start; only connect needs it */
		close(s->p.nsfd);
		s->p.nsfd = -1;
	}
	wire_stream_init(&ws, &st, s->fd, max_bps / nstreams, &s->cancel);
	st.compress = s->p.compress;
	st.direct = true;
	st.page_crcs = s->p.verify_pages;
	if (vmm_vm_save_begin(vm, &st, err, sizeof(err)) < 0 ||
	    vmm_vm_dirty_start(vm, err, sizeof(err)) < 0) {
		fail(s, MIG_FAILED, "%s", err);
		goto out;
	}
	logging = true;
	if (s->p.storage && vmm_disks_log_start(vm, &dk, false) < 0) {
		fail(s, MIG_FAILED, "out of memory for the disks' dirty logs");
		goto out;
	}
	words = (vm->mem.dirty_pages + 63) / 64;
	if (!(bm = calloc(words ? words : 1, sizeof(uint64_t)))) {
		fail(s, MIG_FAILED, "out of memory");
		goto out;
	}
	throttle_start(&th, vm);

	/* ---- pre-copy: all of RAM, then what the guest dirtied meanwhile ---- */
	set_phase(s, MIG_PRECOPY);
	uint32_t downtime = s->p.downtime_ms ? s->p.downtime_ms : MIGRATE_DEFAULT_DOWNTIME_MS;
	uint64_t converge_ms =
	        (uint64_t)(s->p.converge_timeout ? s->p.converge_timeout : MIGRATE_CONVERGE_S) *
	        1000;
	uint64_t bw = 0, rate = 0, prev_remaining = UINT64_MAX;
	unsigned behind = 0, syncs = 0;
	unsigned waits = 0; /* long waits for SYNCs, each followed by more passes */
	for (uint32_t it = 0;; it++) {
		uint64_t ti_us = util_now_us(), b0 = sent_total(&ws, x, nstreams);
		cork_streams(&ws, x, nstreams, true);
		if (it == 0) {
			/* all of RAM (holes as ZERO sections), shared out like any
			 * pass; with manual protection each chunk's log is re-armed
			 * right before it is read (its bits are all set from the
			 * start) */
			memset(bm, 0xff, words * sizeof(uint64_t));
			if (vm->mem.dirty_pages % 64)
				bm[words - 1] = (1ull << (vm->mem.dirty_pages % 64)) - 1;
			ret = send_dirty_streams(vm, &st, &main_inst, x, nstreams, bm, true, true);
			/* the disks whole (their allocated ranges), then what was written */
			if (ret == 0)
				ret = vmm_disks_log_save_all(vm, &dk, &st, NULL);
		} else {
			ret = send_dirty_streams(vm, &st, &main_inst, x, nstreams, bm, false, true);
			if (ret == 0)
				ret = vmm_disks_log_send(vm, &dk, &st, NULL);
		}
		/* the pass ends: the destination answers once it has loaded it
		 * on every stream (read before the pause) */
		for (unsigned k = 1; ret == 0 && k < nstreams; k++)
			ret = vmm_state_write_section(&x[k].st, SEC_SYNC, 0, &it, 4);
		if (ret == 0 && (ret = vmm_state_write_section(&st, SEC_SYNC, 0, &it, 4)) == 0)
			syncs++;
		cork_streams(&ws, x, nstreams, false);
		if (ret < 0) {
			if (atomic_load(&s->cancel))
				fail(s, MIG_CANCELLED, "cancelled");
			else
				fail(s, MIG_FAILED,
				     "sending memory: %s (the link or the destination "
				     "failed)",
				     strerror(-ret));
			goto out;
		}
		uint64_t el_us = util_now_us() - ti_us, el = el_us / 1000;
		uint64_t bytes = sent_total(&ws, x, nstreams) - b0;
		bw = wire_bw_estimate(bw, bytes, el_us);
		/* what the guest dirtied while that pass ran */
		uint64_t n = vmm_vm_dirty_harvest(vm, bm);
		uint64_t remaining = n * VMM_PAGE_SIZE + vmm_disks_log_harvest(vm, &dk);
		rate = el ? remaining * 1000 / el : remaining;
		uint64_t expect = bw ? remaining * 1000 / bw : 0;
		pthread_mutex_lock(&s->m);
		s->prog.iteration = it + 1;
		s->prog.remaining_bytes = remaining;
		s->prog.dirty_rate = rate;
		s->prog.bandwidth = bw;
		s->prog.expected_downtime_ms = expect;
		log_info("migration: pass %u sent %llu KiB in %llu ms (%llu MiB/s); %llu KiB "
		         "dirtied "
		         "meanwhile (%llu MiB/s), %llu ms to send",
		         it, (unsigned long long)(bytes >> 10), (unsigned long long)el,
		         (unsigned long long)(bw >> 20), (unsigned long long)(remaining >> 10),
		         (unsigned long long)(rate >> 20), (unsigned long long)expect);
		s->prog.transferred = sent_total(&ws, x, nstreams);
		pthread_mutex_unlock(&s->m);
		if (atomic_load(&s->cancel)) {
			fail(s, MIG_CANCELLED, "cancelled");
			goto out;
		}
		/* within the limit: switch over, unless another pass still
		 * shrinks what is left by a quarter or more (the pause is then
		 * shorter than the limit allows, at the price of a pass). A
		 * rest that goes in under 200 us (at a 50 ms limit) goes at
		 * once: a busy 128 MiB guest switched over with 5 MiB left
		 * after its first pass paused 5-7 ms, one more pass of 6 ms took
		 * the pause to 1 ms. */
		bool shrank = prev_remaining != UINT64_MAX && remaining * 4 <= prev_remaining * 3;
		uint64_t expect_us = bw ? remaining * 1000000 / bw : 0;
		if (expect <= downtime &&
		    (expect_us <= (uint64_t)downtime * 4 ||
		     (prev_remaining != UINT64_MAX && !shrank) || it + 1 >= MAX_ITERATIONS ||
		     util_now_ms() - t0 > converge_ms)) {
			/* the destination must have loaded every pass before the
			 * pause (what it still had queued would be loaded during
			 * it); a wait of more than a few ms for that let the guest
			 * dirty more: one more pass sends it live */
			uint64_t tw = util_now_ms();
			if ((ret = read_syncs(s, &syncs, line, sizeof(line))) < 0)
				goto out;
			if (util_now_ms() - tw <= SYNC_WAIT_AGAIN_MS || ++waits > SYNC_WAITS_MAX ||
			    it + 1 >= MAX_ITERATIONS || util_now_ms() - t0 > converge_ms)
				break;
			/* converge again from what the wait let in */
			prev_remaining = UINT64_MAX;
			continue;
		}
		prev_remaining = remaining;
		if (util_now_ms() - t0 > converge_ms) {
			fail(s, MIG_FAILED,
			     "did not converge in %llu s: the guest dirties %llu MiB/s, the link "
			     "carries %llu MiB/s (even with the vCPUs held %u%% of the time); "
			     "raise "
			     "--downtime-ms or migrate when the guest is quieter",
			     (unsigned long long)(converge_ms / 1000),
			     (unsigned long long)(rate >> 20), (unsigned long long)(bw >> 20),
			     atomic_load(&th.pct));
			goto out;
		}
		/* auto-converge: the dirty set does not shrink fast enough */
		if (rate * 2 > bw || it + 1 >= MAX_ITERATIONS) {
			if (++behind >= 2 && atomic_load(&th.pct) < THROTTLE_MAX) {
				unsigned pct = atomic_load(&th.pct) + THROTTLE_STEP;
				if (pct > THROTTLE_MAX)
					pct = THROTTLE_MAX;
				atomic_store(&th.pct, pct);
				behind = 0;
				pthread_mutex_lock(&s->m);
				s->prog.throttle_pct = pct;
				pthread_mutex_unlock(&s->m);
				log_info("migration: auto-converge: vCPUs held %u%% of the time",
				         pct);
			}
		}
	}

	/* ---- switchover: pause, the rest, the machine, END ---- */
	set_phase(s, MIG_SWITCHOVER);
	throttle_stop(&th);
	uint64_t tp = util_now_ms();
	/* the vCPUs' threads read their state while this one harvests */
	vmm_vm_pause_saving(vm);
	paused = true;
	{
		/* bm: dirtied during the last pass, not sent yet; plus what came since */
		uint64_t *more = calloc(words ? words : 1, sizeof(uint64_t));
		if (!more) {
			fail(s, MIG_FAILED, "out of memory");
			goto out;
		}
		vmm_vm_dirty_harvest(vm, more);
		for (uint64_t w = 0; w < words; w++)
			bm[w] |= more[w];
		free(more);
	}
	vmm_disks_log_harvest(vm, &dk); /* paused: the final delta of the disks */
	/* a small remainder goes on the main stream alone: waking every
	 * stream's sender and receiver costs more than it saves (each earlier
	 * pass is loaded already, so no page can overtake a newer copy) */
	uint64_t left = 0;
	for (uint64_t w = 0; w < words; w++)
		left += (uint64_t)__builtin_popcountll(bm[w]);
	unsigned final_streams = left * 4096 < FINAL_ONE_STREAM_BYTES ? 1 : nstreams;
	/* the rest and the machine leave in full segments, flushed by END */
	wire_stream_cork(&ws, true);
	ret = send_dirty_streams(vm, &st, &main_inst, x, final_streams, bm, false, false);
	for (unsigned k = 1; ret == 0 && k < nstreams; k++)
		ret = vmm_state_write_section(&x[k].st, SEC_END, 0, NULL, 0);
	if (ret < 0 || (ret = vmm_disks_log_send(vm, &dk, &st, NULL)) < 0 ||
	    (ret = vmm_vm_save_machine(vm, &st, true, err, sizeof(err))) < 0 ||
	    (s->p.storage && (ret = send_serial_log(s->p.serial_log, &st)) < 0) ||
	    (ret = vmm_state_write_section(&st, SEC_END, 0, NULL, 0)) < 0) {
		fail(s, atomic_load(&s->cancel) ? MIG_CANCELLED : MIG_FAILED,
		     "sending the final state: %s",
		     ret == -ECANCELED ? "cancelled" : strerror(-ret));
		goto out;
	}
	wire_stream_cork(&ws, false);
	if ((ret = wire_read_line(s->fd, line, sizeof(line), MIGRATE_ACK_TIMEOUT_MS)) < 0 ||
	    strcmp(line, "R") != 0) {
		fail(s, MIG_FAILED, "the destination did not load the state: %s",
		     ret < 0 ? strerror(-ret) : line);
		goto out;
	}
	if (atomic_load(&s->cancel)) {
		fail(s, MIG_CANCELLED, "cancelled");
		goto out;
	}

	/* ---- hand-over: from here on the source never resumes ---- */
	set_phase(s, MIG_HANDOVER);
	if (s->lease)
		vmx_lease_end(s->lease);
	if ((ret = wire_send_line(s->fd, "L\n")) < 0 ||
	    (ret = wire_read_line(s->fd, line, sizeof(line), MIGRATE_ACK_TIMEOUT_MS)) < 0 ||
	    strcmp(line, "G") != 0)
		log_error("migration: the destination did not confirm it runs the VM (%s); the "
		          "lock is released and the VM stays stopped here",
		          ret < 0 ? strerror(-ret) : line);
	pthread_mutex_lock(&s->m);
	s->prog.downtime_ms = util_now_ms() - tp;
	s->prog.total_ms = util_now_ms() - t0;
	s->prog.transferred = sent_total(&ws, x, nstreams);
	s->prog.phase = MIG_DONE;
	pthread_mutex_unlock(&s->m);
	vmm_vm_dirty_stop(vm);
	vmm_disks_log_stop(vm, &dk);
	char why[300];
	snprintf(why, sizeof(why), "migrated to %s", s->p.host);
	vm->power_status = 0;
	vmm_vm_stop(vm, VM_POWERED_OFF, why);
	log_info("migration done: %llu bytes, %u iterations, downtime %llu ms, total %llu ms",
	         (unsigned long long)sent_total(&ws, x, nstreams), s->prog.iteration,
	         (unsigned long long)s->prog.downtime_ms, (unsigned long long)s->prog.total_ms);
	free(bm);
	close_streams(s);
	return NULL;
out:
	if (s->p.nsfd >= 0) {
		close(s->p.nsfd);
		s->p.nsfd = -1;
	}
	throttle_stop(&th);
	if (logging)
		vmm_vm_dirty_stop(vm);
	vmm_disks_log_stop(vm, &dk);
	if (paused)
		vmm_vm_resume(vm);
	else if (atomic_load(&vm->state) == VM_PAUSED)
		vmm_vm_resume(vm); /* a throttle pause that was cut short */
	pthread_mutex_lock(&s->m);
	s->prog.total_ms = util_now_ms() - t0;
	pthread_mutex_unlock(&s->m);
	free(bm);
	close_streams(s);
	return NULL;
}

int migrate_src_start(struct migrate_src *s, struct vmm_vm *vm, struct vmx_lease *lease,
                      const struct migrate_params *p, char *err, size_t errlen)
{
	pthread_mutex_lock(&s->m);
	if (s->prog.phase >= MIG_CONNECTING && s->prog.phase <= MIG_HANDOVER) {
		pthread_mutex_unlock(&s->m);
		snprintf(err, errlen, "a migration of this VM is under way");
		return -EBUSY;
	}
	if (s->prog.phase == MIG_DONE) {
		pthread_mutex_unlock(&s->m);
		snprintf(err, errlen, "the VM has migrated away already");
		return -EBUSY;
	}
	memset(&s->prog, 0, sizeof(s->prog));
	s->prog.phase = MIG_CONNECTING;
	pthread_mutex_unlock(&s->m);
	if (s->started) {
		pthread_join(s->thread, NULL);
		s->started = false;
	}
	s->vm = vm;
	s->lease = lease;
	s->p = *p;
	s->fd = -1;
	for (unsigned k = 0; k < MIGRATE_MAX_STREAMS; k++)
		s->xfd[k] = -1;
	atomic_store(&s->cancel, false);
	if (pthread_create(&s->thread, NULL, send_main, s) != 0) {
		snprintf(err, errlen, "cannot start the migration thread");
		s->prog.phase = MIG_FAILED;
		return -EAGAIN;
	}
	s->started = true;
	return 0;
}

void migrate_src_progress(struct migrate_src *s, struct migrate_progress *out)
{
	pthread_mutex_lock(&s->m);
	*out = s->prog;
	pthread_mutex_unlock(&s->m);
}

void migrate_src_cancel(struct migrate_src *s)
{
	atomic_store(&s->cancel, true);
	/* a send blocked on a dead link: cut it, unless the hand-over began */
	pthread_mutex_lock(&s->m);
	if (s->prog.phase < MIG_HANDOVER && s->fd >= 0)
		shutdown(s->fd, SHUT_RDWR);
	for (unsigned k = 0; s->prog.phase < MIG_HANDOVER && k < MIGRATE_MAX_STREAMS; k++)
		if (s->xfd[k] >= 0)
			shutdown(s->xfd[k], SHUT_RDWR);
	pthread_mutex_unlock(&s->m);
}

void migrate_src_join(struct migrate_src *s)
{
	if (s->started) {
		migrate_src_cancel(s);
		pthread_join(s->thread, NULL);
		s->started = false;
	}
}
