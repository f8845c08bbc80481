/* The FT secondary (replica.h): the first copy into guest memory, then
 * whole epochs only (a half-received one is never applied), and the
 * go-live once the primary is lost and this side won the record. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"
#include "migrate/wire.h"
#include "replica.h"
#include "vmm/diskstate.h"
#include "vmm/ramstate.h"
#include "vmm/snapshot.h"
#include "vmm/uart.h"
#include "vmm/virtio_blk.h"

/* The serial output of the last epochs, as one run of the log from
 * offset `at`: what a secondary going live writes where the log (shared
 * with the primary) does not have it yet. */
#define OUT_KEEP (4u << 20)
struct output {
	struct sbuf b;
	uint64_t at;
};

static void output_add(struct output *o, const uint8_t *p, size_t len)
{
	uint64_t at;

	memcpy(&at, p, 8);
	p += 8;
	len -= 8;
	if (o->b.len && at != o->at + o->b.len)
		o->b.len = 0; /* not contiguous (the primary dropped some): start over */
	if (!o->b.len)
		o->at = at;
	sbuf_put(&o->b, p, len);
	if (o->b.len > OUT_KEEP) { /* the oldest went out long ago */
		size_t cut = o->b.len - OUT_KEEP;
		memmove(o->b.data, o->b.data + cut, o->b.len - cut);
		o->b.len -= cut;
		o->at += cut;
	}
}

/* Writes what the log lacks of the kept output: the primary let out the
 * output of the epochs it saw acknowledged, in order; it may have died
 * before it let out the rest. */
static void output_catch_up(struct vmm_vm *vm, struct output *o)
{
	int fd = -1;
	struct stat st;

	for (unsigned i = 0; i < vm->ndevs && fd < 0; i++)
		if (strcmp(vm->devs[i]->ops->name, "uart") == 0)
			fd = vmm_uart_log_fd(vm->devs[i]);
	if (fd < 0 || !o->b.len || fstat(fd, &st) < 0)
		return;
	uint64_t have = (uint64_t)st.st_size, end = o->at + o->b.len;
	if (have >= end)
		return;
	size_t from = have > o->at ? (size_t)(have - o->at) : 0;
	if (write(fd, o->b.data + from, o->b.len - from) != (ssize_t)(o->b.len - from))
		log_warn("FT: writing the primary's last output to the log: %s", strerror(errno));
	else
		log_info("FT: wrote %zu bytes of output the primary had not let out",
		         o->b.len - from);
}

/* Applies the epoch buffered in ep (sections): memory now, the machine
 * sections into *machine for the go-live. Every section is checked before
 * anything is written: an epoch applies whole or not at all. */
static int apply_epoch(struct vmm_vm *vm, struct sbuf *ep, struct sbuf *machine,
                       struct output *outq, char *err, size_t errlen)
{
	struct rbuf r;
	struct vmm_stream in, out;
	struct sbuf p, next;
	uint32_t type, inst;
	int ret = 0;

	vmm_stream_rbuf(&in, &r);
	sbuf_init(&p);
	sbuf_init(&next);
	vmm_stream_sbuf(&out, &next);
	for (int pass = 0; pass < 2 && ret == 0; pass++) {
		rbuf_init(&r, ep->data, ep->len);
		while (ret == 0 && r.off < r.len) {
			if ((ret = vmm_state_read_section(&in, &type, &inst, &p, err, errlen)) < 0)
				break;
			if (type == SEC_RAM)
				ret = pass ? vmm_ram_load(&vm->mem, p.data, p.len, err, errlen)
				           : vmm_ram_check(&vm->mem, p.data, p.len, err, errlen);
			else if (type == SEC_ZERO)
				ret = pass ? vmm_ram_zero_load(&vm->mem, p.data, p.len, err, errlen)
				           : vmm_ram_zero_check(&vm->mem, p.data, p.len, err,
				                                errlen);
			else if (type == SEC_DISK)
				ret = pass ? vmm_disk_load(vm, inst, p.data, p.len, err, errlen)
				           : vmm_disk_check(vm, inst, p.data, p.len, err, errlen);
			else if (type == SEC_EPOCH_OUT && p.len >= 8)
				pass ? output_add(outq, p.data, p.len) : (void)0;
			else if (type == SEC_VCPU || type == SEC_SOFTCPU || type == SEC_IRQCHIP ||
			         type == SEC_PIT || type == SEC_CLOCK || type == SEC_DEVICE)
				ret = pass ? vmm_state_write_section(&out, type, inst, p.data,
				                                     p.len)
				           : 0;
			else {
				char t[5];
				vmm_fourcc_str(type, t);
				snprintf(err, errlen, "a %s section in an epoch", t);
				ret = -EBADMSG;
			}
		}
	}
	if (ret == 0 && next.err)
		ret = next.err;
	if (ret == 0) {
		sbuf_free(machine);
		*machine = next;
	} else {
		sbuf_free(&next);
	}
	sbuf_free(&p);
	return ret;
}

/* The VM's vCPU and device state from the last epoch: a stream of the
 * first sections (CPUM, CONF), the machine sections and END. */
static int restore_machine(struct vmm_vm *vm, const struct sbuf *prefix, const struct sbuf *machine,
                           char *err, size_t errlen)
{
	struct sbuf all;
	struct vmm_stream out, in;
	struct rbuf r;

	sbuf_init(&all);
	vmm_stream_sbuf(&out, &all);
	int ret = vmm_state_write_header(&out);
	sbuf_put(&all, prefix->data, prefix->len);
	sbuf_put(&all, machine->data, machine->len);
	if (ret == 0)
		ret = vmm_state_write_section(&out, SEC_END, 0, NULL, 0);
	if (ret == 0 && all.err)
		ret = all.err;
	if (ret == 0) {
		rbuf_init(&r, all.data, all.len);
		vmm_stream_rbuf(&in, &r);
		ret = vmm_vm_restore(vm, &in, err, errlen);
	}
	sbuf_free(&all);
	return ret;
}

/* Powered off or killed (hostd's power off, a signal) while waiting. */
static bool stopped(struct vmm_vm *vm)
{
	int st = atomic_load(&vm->state);
	return st == VM_POWERED_OFF || st == VM_CRASHED;
}

void ft_standby_init(struct ft_standby *s)
{
	pthread_mutex_init(&s->m, NULL);
	s->live = s->abandoned = false;
	s->fd = -1;
	s->generation = s->applied = s->applied_ms = 0;
	s->epoch_ms = s->detect_ms = 0;
}

int ft_standby_abandon(struct ft_standby *s)
{
	pthread_mutex_lock(&s->m);
	if (s->live) {
		pthread_mutex_unlock(&s->m);
		return -EALREADY;
	}
	s->abandoned = true;
	if (s->fd >= 0)
		shutdown(s->fd, SHUT_RDWR);
	pthread_mutex_unlock(&s->m);
	return 0;
}

/* The socket a stop shuts down to wake this side (-1: none). False when
 * it was stopped already. */
static bool standby_fd(struct ft_standby *s, int fd)
{
	pthread_mutex_lock(&s->m);
	s->fd = fd;
	bool go = !s->abandoned;
	pthread_mutex_unlock(&s->m);
	return go;
}

/* The decision to go live: false when it was stopped first. */
static bool standby_go_live(struct ft_standby *s)
{
	pthread_mutex_lock(&s->m);
	bool go = !s->abandoned;
	s->live = go;
	s->fd = -1;
	pthread_mutex_unlock(&s->m);
	return go;
}

int ft_secondary_run(int lfd, const char *token, struct vmm_vm *vm, const char *gen_path,
                     const char *owner, int timeout_ms, struct ft_standby *sb, char *err,
                     size_t errlen)
{
	char line[256];
	struct sbuf prefix, ep, machine, p;
	struct output outq = { .at = 0 };
	struct vmm_stream st, pst;
	struct wire_stream ws;
	uint64_t gen = 0, done = 0, cur = 0, disk_bytes = 0;
	unsigned epoch_ms = 0;
	bool in_epoch = false, checked = false;
	uint32_t type = 0, inst;
	int ret;

	for (unsigned i = 0; i < vm->ndevs; i++)
		if (vmm_is_disk(vm->devs[i]))
			disk_bytes += vmm_virtio_blk_bytes(vm->devs[i]);
	if (!standby_fd(sb, lfd)) {
		close(lfd);
		snprintf(err, errlen, "stopped before the primary connected");
		return -ECANCELED;
	}
	int c = wire_accept(lfd, timeout_ms, "no FT primary connected", err, errlen);
	bool go = standby_fd(sb, c);
	close(lfd); /* one primary, once */
	if (!go) {
		if (c >= 0)
			close(c);
		snprintf(err, errlen, "stopped before the primary connected");
		return -ECANCELED;
	}
	if (c < 0)
		return c;
	ret = wire_read_line(c, line, sizeof(line), 10000);
	char tok[FT_TOKEN_HEX + 1] = "";
	unsigned detect = 0;
	int nf = ret < 0 ? 0
	                 : sscanf(line, "VMKFT1 %64s %" SCNu64 " %u %u", tok, &gen, &epoch_ms,
	                          &detect);
	if (nf == 3)
		detect = FT_DETECT_MS(epoch_ms); /* a primary that does not say */
	if (nf < 3 || strlen(tok) != FT_TOKEN_HEX || !wire_token_equal(tok, token, FT_TOKEN_HEX) ||
	    epoch_ms == 0 || epoch_ms > FT_MAX_EPOCH_MS || detect < FT_MIN_DETECT_MS(epoch_ms) ||
	    detect > FT_MAX_DETECT_MS) {
		wire_send_line(c, "NO the FT token is wrong or missing\n");
		close(c);
		snprintf(err, errlen, "the connecting primary presented no valid token: refused");
		return -EACCES;
	}
	/* both sides must see one record: the primary set it to gen just now */
	uint64_t have = 0;
	char holder[128] = "";
	if (ft_gen_read(gen_path, &have, holder, sizeof(holder)) < 0 || have != gen) {
		wire_send_line(c, "NO the generation record differs here: the two hosts do not "
		                  "share the VM's datastore\n");
		close(c);
		snprintf(err, errlen,
		         "the generation record %s holds %" PRIu64 ", the primary set %" PRIu64
		         ": the two sides do not share the VM's datastore",
		         gen_path, have, gen);
		return -EXDEV;
	}
	/* the detection time it took: a primary that asked for another one
	 * (an older secondary ignores it) does not go on */
	snprintf(line, sizeof(line), "OK %u\n", detect);
	wire_send_line(c, line);
	/* a primary silent for the detection time is lost */
	struct timeval tv = { .tv_sec = detect / 1000, .tv_usec = (detect % 1000) * 1000 };
	setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));

	sbuf_init(&prefix);
	sbuf_init(&outq.b);
	sbuf_init(&ep);
	sbuf_init(&machine);
	sbuf_init(&p);
	vmm_stream_sbuf(&pst, &prefix);
	wire_stream_init(&ws, &st, c, 0, NULL);
	char why[400] = "";
	if ((ret = vmm_state_read_header(&st, why, sizeof(why))) < 0)
		goto lost;
	for (;;) {
		bool loaded = false;
		/* the first copy loads as it comes; an epoch is only buffered */
		ret = vmm_ram_read_section(&st, !in_epoch && checked && !done ? &vm->mem : NULL,
		                           &type, &inst, &p, &loaded, why, sizeof(why));
		if (ret < 0)
			goto lost;
		if (stopped(vm)) {
			snprintf(err, errlen, "stopped while a secondary");
			ret = -ECANCELED;
			goto out;
		}
		if (type == SEC_END) {
			snprintf(err, errlen, "the primary ended fault tolerance");
			ret = -ECANCELED;
			goto out;
		}
		if (type == SEC_EPOCH || type == SEC_EPOCH_END) {
			uint64_t n = 0;
			if (p.len != 8) {
				snprintf(why, sizeof(why), "a malformed epoch marker");
				ret = -EBADMSG;
				goto lost;
			}
			memcpy(&n, p.data, 8);
			if (type == SEC_EPOCH) {
				if (in_epoch || n != done + 1) {
					snprintf(why, sizeof(why),
					         "epoch %" PRIu64 " after %" PRIu64, n, done);
					ret = -EPROTO;
					goto lost;
				}
				in_epoch = true;
				cur = n;
				ep.len = 0;
				ep.err = 0;
				continue;
			}
			if (!in_epoch || n != cur) {
				snprintf(why, sizeof(why),
				         "the end of epoch %" PRIu64 " out of place", n);
				ret = -EPROTO;
				goto lost;
			}
			/* complete: applied, and only now acknowledged */
			if (ep.err ||
			    (ret = apply_epoch(vm, &ep, &machine, &outq, why, sizeof(why))) < 0) {
				/* a fault here (a disk write that failed), never the
				 * primary's loss, whatever its errno: this copy stops */
				ret = -EIO;
				goto lost;
			}
			in_epoch = false;
			done = cur;
			pthread_mutex_lock(&sb->m);
			sb->applied = done;
			sb->applied_ms = util_now_ms();
			sb->generation = gen;
			sb->epoch_ms = epoch_ms;
			sb->detect_ms = detect;
			pthread_mutex_unlock(&sb->m);
			snprintf(line, sizeof(line), "A %" PRIu64 "\n", done);
			if ((ret = wire_send_line(c, line)) < 0) {
				snprintf(why, sizeof(why), "the primary went away");
				goto lost;
			}
			continue;
		}
		if (in_epoch) {
			struct vmm_stream es;
			vmm_stream_sbuf(&es, &ep);
			vmm_state_write_section(&es, type, inst, p.data, p.len);
			/* an epoch holds at most all of RAM and the disks, and
			 * the machine */
			if (ep.len > vm->mem.ram_bytes + disk_bytes + (64u << 20)) {
				snprintf(why, sizeof(why),
				         "epoch %" PRIu64 " is larger than the VM", cur);
				ret = -EFBIG;
				goto lost;
			}
			continue;
		}
		/* the first copy: CPUM and CONF are kept for the go-live and
		 * checked at once; RAM loaded above, ZERO here */
		if (done || (!checked && type != SEC_CPU_MODEL && type != SEC_CONFIG)) {
			char t[5];
			vmm_fourcc_str(type, t);
			snprintf(why, sizeof(why), "a %s section out of place", t);
			ret = -EBADMSG;
			goto lost;
		}
		if (type == SEC_CPU_MODEL || type == SEC_CONFIG) {
			vmm_state_write_section(&pst, type, inst, p.data, p.len);
			if (type == SEC_CONFIG) {
				struct sbuf none;
				sbuf_init(&none);
				ret = restore_machine(vm, &prefix, &none, why, sizeof(why));
				sbuf_free(&none);
				if (ret < 0) {
					snprintf(err, errlen, "this host cannot take the VM: %s",
					         why);
					wire_send_line(c, "F cannot take the VM\n");
					goto out;
				}
				checked = true;
			}
		} else if (type == SEC_ZERO) {
			if ((ret = vmm_ram_zero_load(&vm->mem, p.data, p.len, why, sizeof(why))) <
			    0)
				goto lost;
		} else if (type == SEC_DISK) {
			if (vmm_disk_load(vm, inst, p.data, p.len, why, sizeof(why)) < 0) {
				ret = -EIO; /* as above: this copy stops */
				goto lost;
			}
		} else if (type == SEC_RAM && !loaded) {
			if ((ret = vmm_ram_load(&vm->mem, p.data, p.len, why, sizeof(why))) < 0)
				goto lost;
		} else if (type != SEC_RAM) {
			char t[5];
			vmm_fourcc_str(type, t);
			snprintf(why, sizeof(why), "a %s section in the first copy", t);
			ret = -EBADMSG;
			goto lost;
		}
	}
lost:
	/* Only silence or the end of the connection can mean the primary is
	 * gone. A stream this side cannot read or apply is a fault here: this
	 * copy stops, and the primary runs on (it takes the record when it
	 * notices). */
	if (ret != -EAGAIN && ret != -EWOULDBLOCK && ret != -ECONNRESET && ret != -EPIPE &&
	    ret != -ETIMEDOUT && ret != -ENOTCONN && ret != -ENETUNREACH && ret != -EHOSTUNREACH) {
		snprintf(err, errlen, "the FT stream broke here (%s): this copy stops",
		         why[0] ? why : strerror(-ret));
		ret = ret < 0 ? ret : -EPROTO;
		goto out;
	}
	if (stopped(vm) || !standby_go_live(sb)) {
		snprintf(err, errlen, "stopped while a secondary");
		ret = -ECANCELED;
		goto out;
	}
	/* the primary is gone: go live only with a whole epoch and the
	 * record won */
	if (!done) {
		snprintf(err, errlen, "the primary was lost before the first checkpoint (%s)",
		         why[0] ? why : strerror(-ret));
		ret = -EPIPE;
		goto out;
	}
	log_warn("FT: the primary is lost after epoch %" PRIu64 " (%s)", done,
	         why[0] ? why : strerror(-ret));
	if ((ret = ft_gen_take(gen_path, gen, owner, err, errlen)) < 0) {
		pthread_mutex_lock(&sb->m);
		sb->live = false; /* it ends: a stop may say so */
		pthread_mutex_unlock(&sb->m);
		goto out; /* the primary kept the VM, or the record is out of reach */
	}
	if ((ret = restore_machine(vm, &prefix, &machine, err, errlen)) < 0)
		goto out;
	log_info("FT: going live from epoch %" PRIu64 ", generation %" PRIu64, done, gen + 1);
	output_catch_up(vm, &outq);
	ret = 0;
out:
	close(c);
	sbuf_free(&prefix);
	sbuf_free(&outq.b);
	sbuf_free(&ep);
	sbuf_free(&machine);
	sbuf_free(&p);
	return ret;
}
