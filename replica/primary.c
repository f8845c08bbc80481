/* The FT primary (replica.h): the first copy, then an epoch every
 * epoch_ms: pause, take what changed into a local buffer, resume, send;
 * the guest's serial output waits for the secondary's acknowledgement. */
#include <errno.h>
#include <sched.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"
#include "migrate/wire.h"
#include "replica.h"
#include "vmm/diskstate.h"
#include "vmm/ramstate.h"
#include "vmm/snapshot.h"
#include "vmm/uart.h"
#include "vmm/virtio_net.h"

#define FT_PRECOPY_PASSES     10
#define FT_PRECOPY_DONE_PAGES 256 /* 1 MiB: the first epoch's copy is short */

static const char *const phase_names[] = { "off",   "connecting", "syncing", "protected",
	                                   "alone", "failed",     "lost" };

const char *ft_phase_name(enum ft_phase p)
{
	return (unsigned)p < sizeof(phase_names) / sizeof(phase_names[0]) ? phase_names[p] : "?";
}

static struct vmm_device *find_uart(struct vmm_vm *vm)
{
	for (unsigned i = 0; i < vm->ndevs; i++)
		if (strcmp(vm->devs[i]->ops->name, "uart") == 0)
			return vm->devs[i];
	return NULL;
}

/* The VM's NICs: their transmits wait with the serial output. */
static void find_nics(struct ft_primary *f)
{
	f->nnics = 0;
	for (unsigned i = 0; i < f->vm->ndevs && f->nnics < FT_MAX_NICS; i++)
		if (strcmp(f->vm->devs[i]->ops->name, "virtio-net") == 0)
			f->nics[f->nnics++] = f->vm->devs[i];
}

static void nics_hold(struct ft_primary *f, bool on)
{
	for (unsigned i = 0; i < f->nnics; i++)
		vmm_virtio_net_hold(f->nics[i], on);
}

static void set_phase(struct ft_primary *f, enum ft_phase p, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void set_phase(struct ft_primary *f, enum ft_phase p, const char *fmt, ...)
{
	pthread_mutex_lock(&f->m);
	f->st.phase = p;
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(f->st.error, sizeof(f->st.error), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&f->m);
}

/* The acknowledgements: "A <n>" lets out the output of epochs up to n. */
static void *acker_main(void *arg)
{
	struct ft_primary *f = arg;
	struct vmm_device *uart = find_uart(f->vm);
	char line[64];

	while (!atomic_load(&f->stop)) {
		int r = wire_read_line(f->fd, line, sizeof(line), 20);
		if (r == -ETIMEDOUT)
			continue;
		unsigned long long n;
		if (r < 0 || sscanf(line, "A %llu", &n) != 1)
			break; /* the epoch thread sees the silence */
		uint64_t upto = 0, net_upto[FT_MAX_NICS] = { 0 };
		pthread_mutex_lock(&f->m);
		if (n > f->st.acked && n <= f->st.epoch) {
			uint64_t now = util_now_ms();
			f->st.acked = n;
			f->last_ack_ms = (int64_t)now;
			upto = f->marks[n % FT_RING];
			memcpy(net_upto, f->net_marks[n % FT_RING], sizeof(net_upto));
			/* The secondary goes live only after the detection time
			 * without an epoch. If the last one left here longer than
			 * half of that ago (this process was stopped or starved),
			 * it may have gone live and written this output itself:
			 * nothing is let out now, the record decides. A later
			 * acknowledgement lets it out with its own, as usual. */
			/* an answer to an epoch not yet booked as sent: it just was */
			uint64_t sent = f->sent_upto < n ? now : f->sent_ms[f->sent_upto % FT_RING];
			if (now > sent && now - sent > f->detect_ms / 2) {
				upto = 0;
				memset(net_upto, 0, sizeof(net_upto));
			}
		}
		pthread_mutex_unlock(&f->m);
		/* out of the lock: writing the log must not hold up ft-status */
		if (upto && uart && !f->fault_no_release)
			vmm_uart_release(uart, upto);
		for (unsigned i = 0; i < f->nnics && !f->fault_no_release; i++)
			if (net_upto[i])
				vmm_virtio_net_release(f->nics[i], net_upto[i]);
	}
	atomic_store(&f->acker_done, true);
	return NULL;
}

/* Whether the oldest epoch sent in full and not acknowledged has waited
 * longer than ms. */
static bool acks_late(struct ft_primary *f, unsigned ms)
{
	pthread_mutex_lock(&f->m);
	bool late = f->st.epoch > f->st.acked &&
	            util_now_ms() - f->sent_ms[(f->st.acked + 1) % FT_RING] > ms;
	pthread_mutex_unlock(&f->m);
	return late;
}

/* The secondary is gone: run on alone only after winning the record; a
 * lost test-and-set (or a record out of reach: this host may be the
 * isolated one) stops this copy before it says anything more. */
static void secondary_lost(struct ft_primary *f, struct vmm_device *uart, const char *why)
{
	char err[300];
	int ret = ft_gen_take(f->p.gen_path, f->st.generation, f->p.owner, err, sizeof(err));

	if (ret == 0) {
		log_warn("FT: the secondary is lost (%s): running on alone, unprotected", why);
		set_phase(f, FT_ALONE, "the secondary is lost (%s)", why);
		if (uart)
			vmm_uart_hold(uart, false);
		nics_hold(f, false);
		return;
	}
	log_error("FT: the secondary is lost (%s) and this side lost the generation record "
	          "(%s): stopping this copy",
	          why, err);
	/* what waits is the secondary's to write now: it writes what the log
	 * lacks of the epochs it applied */
	if (uart)
		vmm_uart_drop(uart);
	for (unsigned i = 0; i < f->nnics; i++)
		vmm_virtio_net_drop(f->nics[i]); /* as lost packets: never seen outside */
	set_phase(f, FT_LOST, "the secondary took over or the record is out of reach: %s", err);
	vmm_vm_stop(f->vm, VM_POWERED_OFF, "fault tolerance: the secondary runs the VM");
}

/* The pause of an epoch runs at real-time priority (SCHED_FIFO 1) where
 * the process may (root, as under hostd; VMX_FT_NO_RT=1 turns it off): on
 * a busy host, a thread that wakes at the normal priority waits for the
 * scheduler's slice, and those waits were the tail of the pause (p99 of
 * the 50 MiB/s dirtier 0.5-3.3 ms before, 0.5-0.74 ms with it, on 2
 * cores). Sending the epoch runs at the normal priority again. */
static void rt_epoch(bool rt, bool on)
{
	struct sched_param sp = { .sched_priority = on ? 1 : 0 };

	if (rt)
		pthread_setschedparam(pthread_self(), on ? SCHED_FIFO : SCHED_OTHER, &sp);
}

/* The secondary's "OK <detect_ms>": it detects a silent primary after the
 * time this side fences after. An older one says "OK" alone and uses the
 * default, which is then all this side may ask for. */
static bool secondary_agrees(const char *line, uint32_t detect_ms, uint32_t epoch_ms)
{
	unsigned d;

	if (!strcmp(line, "OK"))
		return detect_ms == FT_DETECT_MS(epoch_ms);
	return sscanf(line, "OK %u", &d) == 1 && d == detect_ms;
}

static void *ft_main(void *arg)
{
	struct ft_primary *f = arg;
	struct vmm_vm *vm = f->vm;
	struct vmm_device *uart = find_uart(vm);
	struct wire_stream ws;
	struct vmm_stream st, mst;
	struct sbuf eb, out;
	struct vmm_disks_log dk = { 0 }; /* the disks' writes not sent yet */
	char err[400], line[300];
	uint64_t *bm = NULL, words = 0, prev_mark = 0;
	uint32_t epoch_ms = f->p.epoch_ms ? f->p.epoch_ms : FT_DEFAULT_EPOCH_MS;
	bool logging = false;
	int ret;

	sbuf_init(&eb);
	sbuf_init(&out);
	vmm_stream_sbuf(&mst, &eb); /* the epoch buffer */
	set_phase(f, FT_CONNECTING, NULL);
	int fd = wire_connect(f->p.nsfd, f->p.host, f->p.port, 10000, err, sizeof(err));
	pthread_mutex_lock(&f->m);
	f->fd = fd;
	pthread_mutex_unlock(&f->m);
	if (f->p.nsfd >= 0) {
		close(f->p.nsfd);
		f->p.nsfd = -1;
	}
	if (f->fd < 0) {
		set_phase(f, FT_FAILED, "%s", err);
		goto out;
	}
	/* a send that makes no progress for the detection time fails: the
	 * secondary may be gone or cut off (a blocked send would never see
	 * the silence) */
	unsigned detect = f->detect_ms;
	struct timeval tv = { .tv_sec = detect / 1000, .tv_usec = (detect % 1000) * 1000 };
	setsockopt(f->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	uint64_t gen = 0;
	if ((ret = ft_gen_begin(f->p.gen_path, f->p.owner, &gen, err, sizeof(err))) < 0) {
		set_phase(f, FT_FAILED, "%s", err);
		goto out;
	}
	pthread_mutex_lock(&f->m);
	f->st.generation = gen;
	pthread_mutex_unlock(&f->m);
	snprintf(line, sizeof(line), "VMKFT1 %s %" PRIu64 " %u %u\n", f->p.token, f->st.generation,
	         epoch_ms, f->detect_ms);
	if ((ret = wire_send_line(f->fd, line)) < 0 ||
	    (ret = wire_read_line(f->fd, line, sizeof(line), 10000)) < 0 ||
	    !secondary_agrees(line, f->detect_ms, epoch_ms)) {
		set_phase(f, FT_FAILED, "the secondary refused: %s",
		          ret < 0 ? strerror(-ret) : line);
		goto out;
	}
	/* ---- the first copy, live; output waits from here on ---- */
	set_phase(f, FT_SYNCING, NULL);
	wire_stream_init(&ws, &st, f->fd, 0, &f->stop);
	nics_hold(f, true);
	if (uart) {
		vmm_uart_hold(uart, true);
		int lfd = vmm_uart_log_fd(uart);
		off_t end = lfd >= 0 ? lseek(lfd, 0, SEEK_END) : -1;
		prev_mark = vmm_uart_held_mark(uart); /* epoch 1 carries what waits from here */
		f->log_base = end > 0 ? (uint64_t)end - prev_mark : 0;
	}
	if (vmm_vm_save_begin(vm, &st, err, sizeof(err)) < 0 ||
	    vmm_vm_dirty_start(vm, err, sizeof(err)) < 0) {
		set_phase(f, FT_FAILED, "%s", err);
		goto out;
	}
	logging = true;
	/* the disks' writes travel with the epochs (read-only disks are
	 * opened where they are by the secondary) */
	if (vmm_disks_log_start(vm, &dk, true) < 0) {
		set_phase(f, FT_FAILED, "out of memory for the disks' write logs");
		goto out;
	}
	words = (vm->mem.dirty_pages + 63) / 64; /* set by the dirty log's start */
	if (!(bm = calloc(words ? words : 1, sizeof(uint64_t)))) {
		set_phase(f, FT_FAILED, "out of memory");
		goto out;
	}
	vmm_vm_dirty_harvest(vm, bm); /* KVM's log starts all set: re-arm it all */
	memset(bm, 0xff, words * sizeof(uint64_t));
	if ((ret = vmm_vm_dirty_clear(vm, bm, 0, vm->mem.dirty_pages)) < 0 ||
	    (ret = vmm_ram_save_all(&vm->mem, &st, NULL)) < 0 ||
	    (ret = vmm_disks_log_save_all(vm, &dk, &st, NULL)) < 0) {
		set_phase(f, FT_FAILED, "the first copy: %s", strerror(-ret));
		goto out;
	}
	/* pre-copy passes while the rest shrinks, so the first epoch (taken
	 * while the guest is paused) holds little */
	for (int pass = 0; pass < FT_PRECOPY_PASSES && !atomic_load(&f->stop); pass++) {
		uint64_t left = vmm_vm_dirty_harvest(vm, bm);
		uint64_t disk_left = vmm_disks_log_harvest(vm, &dk);
		uint32_t inst = 0;
		if (left <= FT_PRECOPY_DONE_PAGES &&
		    disk_left <= FT_PRECOPY_DONE_PAGES * VMM_PAGE_SIZE) {
			/* the harvested bits go in the first epoch */
			vmm_mem_merge_dirty(&vm->mem, 0, bm, vm->mem.dirty_pages);
			break;
		}
		if ((ret = vmm_vm_dirty_clear(vm, bm, 0, vm->mem.dirty_pages)) < 0 ||
		    (ret = vmm_ram_save_dirty_range(&vm->mem, &st, bm, 0, vm->mem.dirty_pages,
		                                    &inst, NULL)) < 0 ||
		    (ret = vmm_disks_log_send(vm, &dk, &st, NULL)) < 0) {
			set_phase(f, FT_FAILED, "the first copy: %s", strerror(-ret));
			goto out;
		}
	}
	f->last_ack_ms = (int64_t)util_now_ms();
	f->acker_started = pthread_create(&f->acker, NULL, acker_main, f) == 0;
	log_info("FT: first copy sent (%" PRIu64 " bytes), epochs of %u ms, generation %" PRIu64,
	         ws.sent, epoch_ms, f->st.generation);

	/* ---- epochs ---- */
	struct sched_param sp0 = { .sched_priority = 1 };
	bool rt = getenv("VMX_FT_NO_RT") == NULL &&
	          pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp0) == 0;
	sp0.sched_priority = 0;
	if (rt)
		pthread_setschedparam(pthread_self(), SCHED_OTHER, &sp0);
	uint64_t next = util_now_us();
	for (uint64_t n = 1; !atomic_load(&f->stop); n++) {
		uint64_t t = util_now_us();
		if (t < next)
			usleep((useconds_t)(next - t));
		if (atomic_load(&vm->state) != VM_RUNNING)
			break;
		eb.len = 0;
		eb.err = 0;
		uint32_t inst = 0;
		uint64_t t0 = util_now_us();
		rt_epoch(rt, true);
		/* not vmm_vm_pause_saving: at real-time priority this thread
		 * keeps a vCPU thread on its core off it, and bench/ft showed
		 * no gain from the vCPU reading its own state (pause p50
		 * 177-262 us with it, 158-292 without) */
		vmm_vm_pause(vm);
		vmm_vm_dirty_harvest(vm, bm);
		ret = vmm_vm_dirty_clear(vm, bm, 0, vm->mem.dirty_pages);
		if (ret == 0)
			ret = vmm_state_write_section(&mst, SEC_EPOCH, 0, &n, 8);
		if (ret == 0)
			ret = vmm_ram_save_dirty_range(&vm->mem, &mst, bm, 0, vm->mem.dirty_pages,
			                               &inst, NULL);
		/* what the guest wrote to its disks in the epoch, read while it
		 * is paused: the secondary's disks stay at its memory's point */
		vmm_disks_log_harvest(vm, &dk);
		if (ret == 0)
			ret = vmm_disks_log_send(vm, &dk, &mst, NULL);
		if (ret == 0)
			ret = vmm_vm_save_machine(vm, &mst, false, err, sizeof(err));
		uint64_t mark = uart ? vmm_uart_held_mark(uart) : 0;
		uint64_t net_mark[FT_MAX_NICS] = { 0 };
		for (unsigned i = 0; i < f->nnics; i++)
			net_mark[i] = vmm_virtio_net_held_mark(f->nics[i]);
		if (ret == 0 && uart && mark > prev_mark) {
			/* the epoch's output travels with it: a secondary that goes
			 * live writes what the log has not got yet */
			uint64_t at = f->log_base + prev_mark;
			out.len = 0;
			out.err = 0;
			sbuf_put(&out, &at, 8);
			ret = vmm_uart_held_copy(uart, prev_mark, mark, &out);
			if (ret == 0)
				ret = vmm_state_write_section(&mst, SEC_EPOCH_OUT, 0, out.data,
				                              out.len);
		}
		if (ret == 0)
			ret = vmm_state_write_section(&mst, SEC_EPOCH_END, 0, &n, 8);
		/* fencing: with acknowledgements late by half the secondary's
		 * detection time, the guest stays paused until they come, or
		 * until this side wins the record. A secondary that goes live
		 * then never finds this copy running. */
		if (ret == 0 && acks_late(f, f->detect_ms / 2)) {
			uint64_t until = util_now_ms() + f->detect_ms;
			while (acks_late(f, f->detect_ms / 2) && util_now_ms() < until &&
			       !atomic_load(&f->acker_done) && !atomic_load(&f->stop))
				usleep(2000);
			if (acks_late(f, f->detect_ms / 2) || atomic_load(&f->acker_done)) {
				secondary_lost(f, uart,
				               "no acknowledgement within the detection time");
				if (f->st.phase == FT_ALONE)
					vmm_vm_resume(vm);
				goto out;
			}
		}
		vmm_vm_resume(vm);
		rt_epoch(rt, false);
		uint64_t pause = util_now_us() - t0;
		/* a steady cadence; a late epoch pushes the next one back
		 * instead of bunching them up */
		next += (uint64_t)epoch_ms * 1000;
		if (next < t0)
			next = t0 + (uint64_t)epoch_ms * 1000;
		if (ret < 0) {
			/* the secondary may hold earlier epochs: settle it by the
			 * record, as for a lost secondary */
			char why[120];
			snprintf(why, sizeof(why), "epoch %" PRIu64 " could not be taken: %s", n,
			         strerror(-ret));
			secondary_lost(f, uart, why);
			goto out;
		}
		prev_mark = mark;
		pthread_mutex_lock(&f->m);
		f->marks[n % FT_RING] = mark;
		memcpy(f->net_marks[n % FT_RING], net_mark, sizeof(net_mark));
		f->st.epoch = n;
		f->st.pause_us_last = pause;
		if (pause > f->st.pause_us_max)
			f->st.pause_us_max = pause;
		f->pauses[n % FT_SAMPLES] = pause > UINT32_MAX ? UINT32_MAX : (uint32_t)pause;
		if (n == 1)
			f->first_epoch_ms = util_now_ms();
		if (f->st.phase == FT_SYNCING)
			f->st.phase = FT_PROTECTED;
		pthread_mutex_unlock(&f->m);
		ret = st.write(st.arg, eb.data, eb.len);
		pthread_mutex_lock(&f->m);
		f->sent_ms[n % FT_RING] = util_now_ms();
		f->sent_upto = n;
		f->st.bytes = ws.sent;
		uint64_t behind = n - f->st.acked;
		/* silence: the oldest epoch sent in full and not acknowledged
		 * waits for longer than the detection time */
		int64_t silent =
		        behind ? (int64_t)(util_now_ms() - f->sent_ms[(f->st.acked + 1) % FT_RING])
		               : 0;
		if (util_now_us() > next)
			f->st.stretched++; /* the next epoch starts late: longer, not stalled */
		pthread_mutex_unlock(&f->m);
		if (atomic_load(&f->stop))
			break;
		bool acker_gone = atomic_load(&f->acker_done);
		if (ret < 0 || silent > f->detect_ms || behind >= FT_RING - 4 || acker_gone) {
			char why[120];
			snprintf(why, sizeof(why), "%s",
			         ret < 0                 ? strerror(-ret)
			         : behind >= FT_RING - 4 ? "too many epochs unacknowledged"
			         : acker_gone            ? "its answers stopped"
			                      : "no acknowledgement within the detection time");
			secondary_lost(f, uart, why);
			goto out;
		}
	}
	if (atomic_load(&f->stop) || atomic_load(&vm->state) != VM_RUNNING) {
		/* protection ends (asked, or the guest stopped): END tells the
		 * secondary to stop without going live; the record taken here
		 * makes sure of it should END not arrive */
		ws.cancel = NULL;
		vmm_state_write_section(&st, SEC_END, 0, NULL, 0);
		if (ft_gen_take(f->p.gen_path, f->st.generation, f->p.owner, err, sizeof(err)) ==
		    0) {
			set_phase(f, FT_OFF, NULL);
			if (uart)
				vmm_uart_hold(uart, false);
			nics_hold(f, false);
		} else {
			secondary_lost(f, uart, "protection ended");
		}
	}
out:
	rt_epoch(true, false); /* a path out of the pause: the normal priority again */
	if (logging)
		vmm_vm_dirty_stop(vm);
	vmm_disks_log_stop(vm, &dk);
	if (f->fd >= 0)
		shutdown(f->fd, SHUT_RDWR);
	if (f->acker_started) {
		pthread_join(f->acker, NULL);
		f->acker_started = false;
	}
	pthread_mutex_lock(&f->m);
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	pthread_mutex_unlock(&f->m);
	if (f->st.phase == FT_FAILED) { /* never protected: nothing to wait for */
		if (uart)
			vmm_uart_hold(uart, false);
		nics_hold(f, false);
	}
	free(bm);
	sbuf_free(&eb);
	sbuf_free(&out);
	return NULL;
}

int ft_primary_start(struct ft_primary *f, struct vmm_vm *vm, const struct ft_params *p, char *err,
                     size_t errlen)
{
	if (f->started) {
		pthread_mutex_lock(&f->m);
		enum ft_phase ph = f->st.phase;
		pthread_mutex_unlock(&f->m);
		if (ph != FT_FAILED && ph != FT_OFF && ph != FT_ALONE) {
			snprintf(err, errlen, "fault tolerance is on already (%s)",
			         ft_phase_name(ph));
			return -EBUSY;
		}
		pthread_join(f->thread, NULL);
		f->started = false;
	}
	if (p->epoch_ms > FT_MAX_EPOCH_MS) {
		snprintf(err, errlen, "an epoch of %u ms: at most %u", p->epoch_ms,
		         FT_MAX_EPOCH_MS);
		return -EINVAL;
	}
	uint32_t em = p->epoch_ms ? p->epoch_ms : FT_DEFAULT_EPOCH_MS;
	/* the epochs waiting for an answer fit in the ring */
	uint32_t most =
	        (FT_RING - 8) * em < FT_MAX_DETECT_MS ? (FT_RING - 8) * em : FT_MAX_DETECT_MS;
	if (p->detect_ms && (p->detect_ms < FT_MIN_DETECT_MS(em) || p->detect_ms > most)) {
		snprintf(err, errlen,
		         "a detection time of %u ms with %u ms epochs: between %u (2 epochs + "
		         "10 ms) and %u",
		         p->detect_ms, em, FT_MIN_DETECT_MS(em), most);
		return -EINVAL;
	}
	f->vm = vm;
	f->p = *p;
	f->fd = -1;
	atomic_store(&f->stop, false);
	atomic_store(&f->acker_done, false);
	f->log_base = 0;
	f->epoch_ms = p->epoch_ms ? p->epoch_ms : FT_DEFAULT_EPOCH_MS;
	f->detect_ms = p->detect_ms ? p->detect_ms : FT_DETECT_MS(f->epoch_ms);
	/* tests: acknowledgements that never let output out, as if this side
	 * died each time right after one arrived */
	const char *fault = getenv("VMX_FT_FAULT");
	f->fault_no_release = fault && strcmp(fault, "no-release") == 0;
	memset(&f->st, 0, sizeof(f->st));
	f->st.detect_ms = f->detect_ms;
	f->st.phase = FT_CONNECTING; /* from now: ft-status never says off meanwhile */
	memset(f->marks, 0, sizeof(f->marks));
	memset(f->net_marks, 0, sizeof(f->net_marks));
	find_nics(f);
	memset(f->sent_ms, 0, sizeof(f->sent_ms));
	f->sent_upto = 0;
	f->last_ack_ms = 0;
	f->first_epoch_ms = 0;
	if (pthread_create(&f->thread, NULL, ft_main, f) != 0) {
		snprintf(err, errlen, "cannot start the FT thread");
		return -EAGAIN;
	}
	f->started = true;
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* p50 and p99 of n samples (sorted in place) */
static void percentiles(uint32_t *v, size_t n, uint64_t *p50, uint64_t *p99)
{
	*p50 = *p99 = 0;
	if (!n)
		return;
	qsort(v, n, sizeof(*v), cmp_u32);
	*p50 = v[n / 2];
	*p99 = v[n * 99 / 100];
}

void ft_primary_status(struct ft_primary *f, struct ft_stats *out)
{
	static __thread uint32_t v[FT_SAMPLES];

	pthread_mutex_lock(&f->m);
	*out = f->st;
	size_t n = out->epoch < FT_SAMPLES ? (size_t)out->epoch : FT_SAMPLES;
	for (size_t i = 0; i < n; i++)
		v[i] = f->pauses[(out->epoch - i) % FT_SAMPLES];
	uint64_t now = util_now_ms();
	if (out->epoch && f->first_epoch_ms)
		out->protected_ms = now - f->first_epoch_ms;
	if (out->acked && f->last_ack_ms > 0 && now >= (uint64_t)f->last_ack_ms)
		out->last_ack_age_ms = now - (uint64_t)f->last_ack_ms;
	uint64_t sent = f->sent_ms[(out->acked + 1) % FT_RING];
	if (f->sent_upto > out->acked && now >= sent)
		out->lag_ms = now - sent;
	pthread_mutex_unlock(&f->m);
	percentiles(v, n, &out->pause_us_p50, &out->pause_us_p99);
	struct vmm_device *uart = f->vm ? find_uart(f->vm) : NULL;
	n = uart ? vmm_uart_hold_waits(uart, v, FT_SAMPLES) : 0;
	percentiles(v, n, &out->output_us_p50, &out->output_us_p99);
}

bool ft_primary_active(struct ft_primary *f)
{
	pthread_mutex_lock(&f->m);
	enum ft_phase p = f->st.phase;
	pthread_mutex_unlock(&f->m);
	return f->started && (p == FT_CONNECTING || p == FT_SYNCING || p == FT_PROTECTED);
}

bool ft_primary_lost(struct ft_primary *f)
{
	pthread_mutex_lock(&f->m);
	bool lost = f->started && f->st.phase == FT_LOST;
	pthread_mutex_unlock(&f->m);
	return lost;
}

void ft_primary_stop(struct ft_primary *f)
{
	if (!f->started)
		return;
	atomic_store(&f->stop, true);
	/* a handshake that waits for a silent peer ends now, not in 10 s
	 * (the control socket waits for this) */
	pthread_mutex_lock(&f->m);
	if (f->st.phase == FT_CONNECTING && f->fd >= 0)
		shutdown(f->fd, SHUT_RDWR);
	pthread_mutex_unlock(&f->m);
	pthread_join(f->thread, NULL);
	f->started = false;
}
