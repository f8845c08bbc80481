/* 16550A model after the datasheet: byte registers with the divisor latch
 * behind LCR.DLAB, a 16-byte receive FIFO, the four interrupt sources in
 * their priority order on one level-triggered line, modem status with
 * delta bits, loopback. Transmission completes at once, so LSR.THRE and
 * LSR.TEMT always read 1 and a THRE interrupt cleared by a THR write is
 * raised again by that write's instant completion.
 *
 * Deviations, all harmless to the drivers we know (Linux 8250, BSD com,
 * polled early consoles): the 16-byte receive buffer is there in 16450
 * mode too (a real 16450 holds one byte), so host input is not lost to a
 * guest that never enables the FIFO; the character timeout interrupt
 * (IIR 0x0c, data below the trigger level) is reported at once instead of
 * after four character times; parity, framing and break never happen. */
#include "uart.h"
#include "sbuf.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* register offsets */
#define R_RBR_THR 0 /* DLAB: DLL */
#define R_IER     1 /* DLAB: DLM */
#define R_IIR_FCR 2
#define R_LCR     3
#define R_MCR     4
#define R_LSR     5
#define R_MSR     6
#define R_SCR     7
#define NREGS     8

#define IER_ERBFI 0x01 /* received data available (and character timeout) */
#define IER_ETBEI 0x02 /* transmitter holding register empty */
#define IER_ELSI  0x04 /* receiver line status */
#define IER_EDSSI 0x08 /* modem status */
#define IER_MASK  0x0f

#define IIR_NONE  0x01
#define IIR_MS    0x00
#define IIR_THRE  0x02
#define IIR_RDA   0x04
#define IIR_RLS   0x06
#define IIR_CTI   0x0c
#define IIR_FIFOS 0xc0 /* both bits: FIFOs enabled (16550A) */

#define FCR_FE       0x01 /* FIFO enable */
#define FCR_RXRST    0x02
#define FCR_TXRST    0x04
#define FCR_DMA      0x08
#define FCR_TRIG     0xc0
#define FCR_KEPT     (FCR_FE | FCR_DMA | FCR_TRIG) /* what FCR remembers */
#define LCR_DLAB     0x80
#define MCR_DTR      0x01
#define MCR_RTS      0x02
#define MCR_OUT1     0x04
#define MCR_OUT2     0x08
#define MCR_LOOP     0x10
#define MCR_MASK     0x1f
#define LSR_DR       0x01
#define LSR_OE       0x02
#define LSR_THRE     0x20
#define LSR_TEMT     0x40
#define MSR_DCTS     0x01
#define MSR_DDSR     0x02
#define MSR_TERI     0x04
#define MSR_DDCD     0x08
#define MSR_DELTAS   0x0f
#define MSR_CTS      0x10
#define MSR_DSR      0x20
#define MSR_RI       0x40
#define MSR_DCD      0x80
#define MSR_INPUTS   0xf0
#define MSR_IDLE     (MSR_DCD | MSR_DSR | MSR_CTS) /* a terminal on the line */
#define DIVISOR_9600 12

#define STATE_VERSION 1

struct uart {
	struct vmm_device dev;
	pthread_mutex_t lock;
	int fd;
	uint8_t ier, lcr, mcr, fcr, scr, dll, dlm;
	uint8_t msr;       /* modem inputs (7:4) and their deltas (3:0) */
	bool oe;           /* LSR.OE, cleared by reading LSR */
	bool thre_pending; /* THRE interrupt: only while IER.ETBEI */
	uint8_t fifo[UART_FIFO_LEN];
	uint8_t fifo_head, fifo_count;
	int irq_level; /* what the line was last set to */
	uint8_t line[UART_LINE_MAX];
	size_t line_len; /* always < UART_LINE_MAX between accesses */
	struct vmm_uart_stats st;
	void (*tap)(void *arg, const uint8_t *buf, size_t n);
	void *tap_arg;
	/* output commit (vmm_uart_hold): finished lines wait in held until
	 * released; held_base is the output offset of held[0] */
	bool holding;
	uint8_t *held;
	size_t held_len, held_cap;
	uint64_t held_base;
	/* when each held line was written (its end offset), and how long the
	 * released ones waited: the latency output commit adds */
	struct held_line {
		uint64_t end, t_us;
	} lines[UART_HOLD_LINES];
	unsigned line_head, line_count;
	uint32_t waited_us[UART_HOLD_SAMPLES];
	unsigned waited_next, waited_count;
};

static uint64_t mono_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000 + (uint64_t)t.tv_nsec / 1000;
}

/* ---- output ---- */

/* Out to the console followers and the log. */
static void emit(struct uart *u, const uint8_t *buf, size_t n)
{
	size_t off = 0;

	if (!n)
		return;
	if (u->tap)
		u->tap(u->tap_arg, buf, n);
	while (u->fd >= 0 && off < n) {
		ssize_t w = write(u->fd, buf + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) { /* EAGAIN, EIO, ENOSPC...: the rest is lost */
			u->st.write_errors++;
			break;
		}
		off += (size_t)w;
	}
}

static void out_flush(struct uart *u)
{
	if (!u->line_len)
		return;
	if (!u->holding) {
		emit(u, u->line, u->line_len);
	} else if (u->held_len + u->line_len > UART_HOLD_MAX) {
		u->st.write_errors++; /* nobody acknowledged 4 MiB: lost */
	} else {
		if (u->held_len + u->line_len > u->held_cap) {
			size_t cap = u->held_cap ? u->held_cap * 2 : 4096;
			while (cap < u->held_len + u->line_len)
				cap *= 2;
			uint8_t *n = realloc(u->held, cap);
			if (!n) {
				u->st.write_errors++;
				u->line_len = 0;
				return;
			}
			u->held = n;
			u->held_cap = cap;
		}
		memcpy(u->held + u->held_len, u->line, u->line_len);
		u->held_len += u->line_len;
		if (u->line_count < UART_HOLD_LINES) { /* else: not sampled */
			unsigned k = (u->line_head + u->line_count++) % UART_HOLD_LINES;
			u->lines[k] = (struct held_line){ u->held_base + u->held_len, mono_us() };
		}
	}
	u->line_len = 0;
}

static void release_locked(struct uart *u, uint64_t upto)
{
	if (upto <= u->held_base)
		return;
	size_t n = upto - u->held_base < u->held_len ? (size_t)(upto - u->held_base) : u->held_len;
	emit(u, u->held, n);
	memmove(u->held, u->held + n, u->held_len - n);
	u->held_len -= n;
	u->held_base += n;
	uint64_t now = mono_us();
	while (u->line_count && u->lines[u->line_head].end <= u->held_base) {
		uint64_t w = now - u->lines[u->line_head].t_us;
		u->waited_us[u->waited_next] = w > UINT32_MAX ? UINT32_MAX : (uint32_t)w;
		u->waited_next = (u->waited_next + 1) % UART_HOLD_SAMPLES;
		if (u->waited_count < UART_HOLD_SAMPLES)
			u->waited_count++;
		u->line_head = (u->line_head + 1) % UART_HOLD_LINES;
		u->line_count--;
	}
}

/* ---- registers ---- */

static unsigned rx_trigger(const struct uart *u)
{
	static const unsigned levels[4] = { 1, 4, 8, 14 };

	return levels[u->fcr >> 6];
}

static uint8_t lsr(const struct uart *u)
{
	return (uint8_t)((u->fifo_count ? LSR_DR : 0) | (u->oe ? LSR_OE : 0) | LSR_THRE | LSR_TEMT);
}

/* The modem inputs: wired to the MCR outputs in loopback, else those of a
 * terminal that is always there. */
static uint8_t msr_inputs(uint8_t mcr)
{
	if (!(mcr & MCR_LOOP))
		return MSR_IDLE;
	return (uint8_t)((mcr & MCR_DTR ? MSR_DSR : 0) | (mcr & MCR_RTS ? MSR_CTS : 0) |
	                 (mcr & MCR_OUT1 ? MSR_RI : 0) | (mcr & MCR_OUT2 ? MSR_DCD : 0));
}

static void set_mcr(struct uart *u, uint8_t v)
{
	uint8_t old = u->msr & MSR_INPUTS, now, chg, delta = 0;

	u->mcr = v & MCR_MASK;
	now = msr_inputs(u->mcr);
	chg = old ^ now;
	if (chg & MSR_CTS)
		delta |= MSR_DCTS;
	if (chg & MSR_DSR)
		delta |= MSR_DDSR;
	if ((old & MSR_RI) && !(now & MSR_RI)) /* trailing edge only */
		delta |= MSR_TERI;
	if (chg & MSR_DCD)
		delta |= MSR_DDCD;
	u->msr = (uint8_t)(now | (u->msr & MSR_DELTAS) | delta);
}

/* The highest-priority pending interrupt, as IIR reads. */
static uint8_t iir(const struct uart *u)
{
	uint8_t fifos = u->fcr & FCR_FE ? IIR_FIFOS : 0;

	if ((u->ier & IER_ELSI) && u->oe)
		return fifos | IIR_RLS;
	if ((u->ier & IER_ERBFI) && u->fifo_count) {
		if ((u->fcr & FCR_FE) && u->fifo_count < rx_trigger(u))
			return fifos | IIR_CTI;
		return fifos | IIR_RDA;
	}
	if ((u->ier & IER_ETBEI) && u->thre_pending)
		return fifos | IIR_THRE;
	if ((u->ier & IER_EDSSI) && (u->msr & MSR_DELTAS))
		return fifos | IIR_MS;
	return fifos | IIR_NONE;
}

static void update_irq(struct uart *u)
{
	int level = !(iir(u) & IIR_NONE);

	if (level == u->irq_level)
		return;
	u->irq_level = level;
	if (u->dev.bus && u->dev.bus->irq_set)
		u->dev.bus->irq_set(u->dev.bus->irq_arg, u->dev.gsi, level);
}

static void rx_clear(struct uart *u)
{
	u->fifo_head = 0;
	u->fifo_count = 0;
}

/* A character arrives at the receiver: into the FIFO, or an overrun (the
 * FIFO keeps what it has, the new character is lost). */
static void rx_push(struct uart *u, uint8_t c)
{
	if (u->fifo_count == UART_FIFO_LEN) {
		u->oe = true;
		u->st.rx_dropped++;
		return;
	}
	u->fifo[(u->fifo_head + u->fifo_count) % UART_FIFO_LEN] = c;
	u->fifo_count++;
	u->st.rx_bytes++;
}

static uint8_t rx_pop(struct uart *u)
{
	uint8_t c;

	if (!u->fifo_count)
		return 0;
	c = u->fifo[u->fifo_head];
	u->fifo_head = (uint8_t)((u->fifo_head + 1) % UART_FIFO_LEN);
	u->fifo_count--;
	return c;
}

static void tx(struct uart *u, uint8_t c)
{
	u->st.tx_bytes++;
	if (u->mcr & MCR_LOOP) {
		rx_push(u, c); /* the serial output is looped back, the line idles */
	} else {
		u->line[u->line_len++] = c;
		if (c == '\n' || u->line_len == UART_LINE_MAX)
			out_flush(u);
	}
	/* the holding register is empty again at once */
	u->thre_pending = (u->ier & IER_ETBEI) != 0;
}

static void write_fcr(struct uart *u, uint8_t v)
{
	/* changing the FIFO mode clears both FIFOs; with FE clear the other
	 * bits are not programmed */
	if ((v ^ u->fcr) & FCR_FE)
		rx_clear(u);
	if (!(v & FCR_FE)) {
		u->fcr = 0;
		return;
	}
	if (v & FCR_RXRST)
		rx_clear(u); /* not the shift register: LSR.OE stays */
	u->fcr = v & FCR_KEPT;
}

static void reg_write(struct uart *u, unsigned off, uint8_t v)
{
	switch (off) {
	case R_RBR_THR:
		if (u->lcr & LCR_DLAB) {
			u->dll = v;
		} else {
			u->thre_pending = false;
			tx(u, v);
		}
		break;
	case R_IER:
		if (u->lcr & LCR_DLAB) {
			u->dlm = v;
			break;
		}
		/* enabling ETBEI with the holding register empty interrupts at
		 * once; disabling it forgets the pending THRE */
		if ((v & IER_ETBEI) && !(u->ier & IER_ETBEI))
			u->thre_pending = true;
		else if (!(v & IER_ETBEI))
			u->thre_pending = false;
		u->ier = v & IER_MASK;
		break;
	case R_IIR_FCR:
		write_fcr(u, v);
		break;
	case R_LCR:
		u->lcr = v;
		break;
	case R_MCR:
		set_mcr(u, v);
		break;
	case R_SCR:
		u->scr = v;
		break;
	default: /* LSR and MSR are read-only (writes are a factory test) */
		break;
	}
}

static uint8_t reg_read(struct uart *u, unsigned off)
{
	uint8_t v;

	switch (off) {
	case R_RBR_THR:
		return u->lcr & LCR_DLAB ? u->dll : rx_pop(u);
	case R_IER:
		return u->lcr & LCR_DLAB ? u->dlm : u->ier;
	case R_IIR_FCR:
		v = iir(u);
		if ((v & 0x0f) == IIR_THRE)
			u->thre_pending = false; /* reading IIR clears THRE it reports */
		return v;
	case R_LCR:
		return u->lcr;
	case R_MCR:
		return u->mcr;
	case R_LSR:
		v = lsr(u);
		u->oe = false;
		return v;
	case R_MSR:
		v = u->msr;
		u->msr &= MSR_INPUTS;
		return v;
	case R_SCR:
		return u->scr;
	default:
		return 0;
	}
}

/* A wider access to this byte-wide device is split into byte cycles, as
 * the ISA bus does. */
static void uart_pio(struct vmm_device *d, uint16_t off, bool write, uint8_t *data, unsigned size)
{
	struct uart *u = d->priv;

	pthread_mutex_lock(&u->lock);
	for (unsigned i = 0; i < size; i++) {
		unsigned reg = (unsigned)off + i;
		if (reg >= NREGS) {
			if (!write)
				data[i] = 0;
		} else if (write) {
			reg_write(u, reg, data[i]);
		} else {
			data[i] = reg_read(u, reg);
		}
	}
	update_irq(u);
	pthread_mutex_unlock(&u->lock);
}

/* ---- device ops ---- */

/* Power-on state. Buffered output, the counters and the tap stay. */
static void reset_locked(struct uart *u)
{
	u->ier = u->lcr = u->mcr = u->fcr = u->scr = 0;
	u->dll = DIVISOR_9600;
	u->dlm = 0;
	u->msr = MSR_IDLE;
	u->oe = false;
	u->thre_pending = false;
	rx_clear(u);
	memset(u->fifo, 0, sizeof(u->fifo));
	update_irq(u);
}

static void uart_reset(struct vmm_device *d)
{
	struct uart *u = d->priv;

	pthread_mutex_lock(&u->lock);
	reset_locked(u);
	pthread_mutex_unlock(&u->lock);
}

/* Layout (version 1): version, IER, LCR, MCR, FCR, LSR, MSR, SCR, DLL, DLM,
 * THRE pending (u8 each); FIFO count u8 and the bytes, oldest first; line
 * length u16 and the bytes; tx, rx, rx dropped, write errors (u64 each).
 * The rest (IIR, the interrupt line) follows from these. */
static int uart_save(struct vmm_device *d, struct sbuf *o)
{
	struct uart *u = d->priv;

	pthread_mutex_lock(&u->lock);
	sbuf_u8(o, STATE_VERSION);
	sbuf_u8(o, u->ier);
	sbuf_u8(o, u->lcr);
	sbuf_u8(o, u->mcr);
	sbuf_u8(o, u->fcr);
	sbuf_u8(o, lsr(u));
	sbuf_u8(o, u->msr);
	sbuf_u8(o, u->scr);
	sbuf_u8(o, u->dll);
	sbuf_u8(o, u->dlm);
	sbuf_u8(o, u->thre_pending);
	sbuf_u8(o, u->fifo_count);
	for (unsigned i = 0; i < u->fifo_count; i++)
		sbuf_u8(o, u->fifo[(u->fifo_head + i) % UART_FIFO_LEN]);
	sbuf_u16(o, (uint16_t)u->line_len);
	sbuf_put(o, u->line, u->line_len);
	sbuf_u64(o, u->st.tx_bytes);
	sbuf_u64(o, u->st.rx_bytes);
	sbuf_u64(o, u->st.rx_dropped);
	sbuf_u64(o, u->st.write_errors);
	pthread_mutex_unlock(&u->lock);
	return o->err;
}

/* The registers of a state; 0 or -EBADMSG when a value is one this model
 * cannot be in. */
struct uart_regs {
	uint8_t ier, lcr, mcr, fcr, lsr, msr, scr, dll, dlm, thre, count;
};

static int check_regs(const struct uart_regs *s)
{
	uint8_t want_lsr = (uint8_t)((s->count ? LSR_DR : 0) | LSR_THRE | LSR_TEMT);

	if (s->ier & ~IER_MASK || s->mcr & ~MCR_MASK)
		return -EBADMSG;
	if (s->fcr & ~FCR_KEPT || (s->fcr && !(s->fcr & FCR_FE)))
		return -EBADMSG;
	if ((s->lsr & ~LSR_OE) != want_lsr)
		return -EBADMSG;
	if ((s->msr & MSR_INPUTS) != msr_inputs(s->mcr))
		return -EBADMSG;
	if (s->thre > 1 || (s->thre && !(s->ier & IER_ETBEI)))
		return -EBADMSG;
	if (s->count > UART_FIFO_LEN)
		return -EBADMSG;
	return 0;
}

static int uart_restore(struct vmm_device *d, struct rbuf *in)
{
	struct uart *u = d->priv;
	struct uart_regs s;
	uint8_t fifo[UART_FIFO_LEN] = { 0 }, line[UART_LINE_MAX];
	struct vmm_uart_stats st;
	uint16_t line_len;

	if (rbuf_u8(in) != STATE_VERSION)
		return -EBADMSG;
	s.ier = rbuf_u8(in);
	s.lcr = rbuf_u8(in);
	s.mcr = rbuf_u8(in);
	s.fcr = rbuf_u8(in);
	s.lsr = rbuf_u8(in);
	s.msr = rbuf_u8(in);
	s.scr = rbuf_u8(in);
	s.dll = rbuf_u8(in);
	s.dlm = rbuf_u8(in);
	s.thre = rbuf_u8(in);
	s.count = rbuf_u8(in);
	if (in->err || check_regs(&s) < 0)
		return -EBADMSG;
	if (rbuf_get(in, fifo, s.count) < 0)
		return -EBADMSG;
	line_len = rbuf_u16(in);
	/* a full line is written out at once, so a saved one is shorter */
	if (in->err || line_len >= UART_LINE_MAX || rbuf_get(in, line, line_len) < 0)
		return -EBADMSG;
	st.tx_bytes = rbuf_u64(in);
	st.rx_bytes = rbuf_u64(in);
	st.rx_dropped = rbuf_u64(in);
	st.write_errors = rbuf_u64(in);
	if (rbuf_done(in) < 0)
		return -EBADMSG;

	/* all valid: becomes this device's state (what it had buffered belongs
	 * to the state being replaced and is dropped, not written) */
	pthread_mutex_lock(&u->lock);
	u->ier = s.ier;
	u->lcr = s.lcr;
	u->mcr = s.mcr;
	u->fcr = s.fcr;
	u->oe = s.lsr & LSR_OE;
	u->msr = s.msr;
	u->scr = s.scr;
	u->dll = s.dll;
	u->dlm = s.dlm;
	u->thre_pending = s.thre;
	memcpy(u->fifo, fifo, sizeof(fifo));
	u->fifo_head = 0;
	u->fifo_count = s.count;
	memcpy(u->line, line, line_len);
	u->line_len = line_len;
	u->st = st;
	update_irq(u);
	pthread_mutex_unlock(&u->lock);
	return 0;
}

static void uart_destroy(struct vmm_device *d)
{
	struct uart *u = d->priv;

	out_flush(u); /* held output was never acknowledged: it stays unsaid */
	pthread_mutex_destroy(&u->lock);
	free(u->held);
	free(u);
}

static const struct vmm_device_ops uart_ops = {
	.name = "uart",
	.reset = uart_reset,
	.save = uart_save,
	.restore = uart_restore,
	.pio = uart_pio,
	.destroy = uart_destroy,
};

int vmm_uart_create(struct vmm_device **dp, struct vmm_bus *bus, int out_fd)
{
	struct uart *u = calloc(1, sizeof(*u));
	int ret;

	if (!u)
		return -ENOMEM;
	ret = -pthread_mutex_init(&u->lock, NULL);
	if (ret < 0) {
		free(u);
		return ret;
	}
	u->fd = out_fd;
	u->dev.ops = &uart_ops;
	u->dev.pio_base = UART_COM1_PORT;
	u->dev.pio_len = NREGS;
	u->dev.gsi = UART_COM1_GSI;
	u->dev.bus = bus;
	u->dev.priv = u;
	reset_locked(u); /* the line starts low: no irq_set */
	*dp = &u->dev;
	return 0;
}

void vmm_uart_input(struct vmm_device *d, const uint8_t *buf, size_t n)
{
	struct uart *u = d->priv;

	pthread_mutex_lock(&u->lock);
	if (u->mcr & MCR_LOOP) {
		u->st.rx_dropped += n; /* loopback disconnects the serial input */
	} else {
		for (size_t i = 0; i < n; i++)
			rx_push(u, buf[i]);
	}
	update_irq(u);
	pthread_mutex_unlock(&u->lock);
}

size_t vmm_uart_rx_space(struct vmm_device *d)
{
	struct uart *u = d->priv;
	size_t n;

	pthread_mutex_lock(&u->lock);
	n = u->mcr & MCR_LOOP ? 0 : UART_FIFO_LEN - u->fifo_count;
	pthread_mutex_unlock(&u->lock);
	return n;
}

void vmm_uart_flush(struct vmm_device *d)
{
	struct uart *u = d->priv;

	pthread_mutex_lock(&u->lock);
	out_flush(u);
	pthread_mutex_unlock(&u->lock);
}

void vmm_uart_discard(struct vmm_device *d)
{
	struct uart *u = d->priv;

	pthread_mutex_lock(&u->lock);
	u->line_len = 0;
	pthread_mutex_unlock(&u->lock);
}

void vmm_uart_hold(struct vmm_device *d, bool on)
{
	struct uart *u = d->priv;

	pthread_mutex_lock(&u->lock);
	if (!on)
		release_locked(u, u->held_base + u->held_len);
	u->holding = on;
	pthread_mutex_unlock(&u->lock);
}

uint64_t vmm_uart_held_mark(struct vmm_device *d)
{
	struct uart *u = d->priv;

	pthread_mutex_lock(&u->lock);
	uint64_t m = u->held_base + u->held_len;
	pthread_mutex_unlock(&u->lock);
	return m;
}

void vmm_uart_release(struct vmm_device *d, uint64_t upto)
{
	struct uart *u = d->priv;

	pthread_mutex_lock(&u->lock);
	release_locked(u, upto);
	pthread_mutex_unlock(&u->lock);
}

void vmm_uart_drop(struct vmm_device *d)
{
	struct uart *u = d->priv;

	pthread_mutex_lock(&u->lock);
	u->held_base += u->held_len;
	u->held_len = 0;
	u->line_count = 0;
	pthread_mutex_unlock(&u->lock);
}

int vmm_uart_held_copy(struct vmm_device *d, uint64_t from, uint64_t to, struct sbuf *out)
{
	struct uart *u = d->priv;
	int ret = 0;

	pthread_mutex_lock(&u->lock);
	if (from < u->held_base || to < from || to > u->held_base + u->held_len)
		ret = -ERANGE; /* let out already, or not written yet */
	else
		sbuf_put(out, u->held + (from - u->held_base), (size_t)(to - from));
	pthread_mutex_unlock(&u->lock);
	return ret ? ret : out->err;
}

size_t vmm_uart_hold_waits(struct vmm_device *d, uint32_t *out, size_t max)
{
	struct uart *u = d->priv;
	size_t n;

	pthread_mutex_lock(&u->lock);
	n = u->waited_count < max ? u->waited_count : max;
	for (size_t i = 0; i < n; i++)
		out[i] = u->waited_us[(u->waited_next + UART_HOLD_SAMPLES - 1 - i) %
		                      UART_HOLD_SAMPLES];
	pthread_mutex_unlock(&u->lock);
	return n;
}

int vmm_uart_log_fd(struct vmm_device *d)
{
	return ((struct uart *)d->priv)->fd;
}

void vmm_uart_set_tap(struct vmm_device *d, void (*fn)(void *arg, const uint8_t *buf, size_t n),
                      void *arg)
{
	struct uart *u = d->priv;

	pthread_mutex_lock(&u->lock);
	u->tap = fn;
	u->tap_arg = arg;
	pthread_mutex_unlock(&u->lock);
}

void vmm_uart_get_stats(struct vmm_device *d, struct vmm_uart_stats *st)
{
	struct uart *u = d->priv;

	pthread_mutex_lock(&u->lock);
	*st = u->st;
	pthread_mutex_unlock(&u->lock);
}
