/* 16550A model after the datasheet (and OpenBSD vmd's ns8250.c): registers,
 * DLAB, a 16-byte receive FIFO, THRE and receive-data interrupts on one
 * level-triggered line, loopback. Transmit completes at once. */
#include "uart.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* registers (offsets) */
#define R_RBR_THR 0
#define R_IER     1
#define R_IIR_FCR 2
#define R_LCR     3
#define R_MCR     4
#define R_LSR     5
#define R_MSR     6
#define R_SCR     7

#define IER_RDA  0x01
#define IER_THRE 0x02
#define IIR_NONE 0x01
#define IIR_THRE 0x02
#define IIR_RDA  0x04
#define IIR_FIFO 0xc0
#define FCR_FIFO 0x01
#define FCR_RXCL 0x02
#define LCR_DLAB 0x80
#define MCR_LOOP 0x10
#define LSR_DR   0x01
#define LSR_OE   0x02
#define LSR_THRE 0x20
#define LSR_TEMT 0x40

struct uart {
	struct vmm_device dev;
	int fd;
	uint8_t ier, lcr, mcr, lsr, msr, scr, fcr, dll, dlm;
	bool thre_pending; /* THRE interrupt latched until IIR read or THR write */
	uint8_t fifo[UART_FIFO_LEN];
	uint8_t fifo_head, fifo_count;
	int irq_level;
	uint8_t line[UART_LINE_MAX];
	size_t line_len;
	uint64_t overruns, write_errors;
	void (*tap)(void *arg, const uint8_t *buf, size_t n);
	void *tap_arg;
};

static void out_flush(struct uart *u)
{
	size_t off = 0;

	if (!u->line_len)
		return;
	if (u->tap)
		u->tap(u->tap_arg, u->line, u->line_len);
	while (off < u->line_len) {
		ssize_t w = write(u->fd, u->line + off, u->line_len - off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			u->write_errors++;
			break;
		}
		off += (size_t)w;
	}
	u->line_len = 0;
}

static uint8_t iir(const struct uart *u)
{
	uint8_t fifo = u->fcr & FCR_FIFO ? IIR_FIFO : 0;

	if ((u->ier & IER_RDA) && u->fifo_count)
		return fifo | IIR_RDA;
	if ((u->ier & IER_THRE) && u->thre_pending)
		return fifo | IIR_THRE;
	return fifo | IIR_NONE;
}

static void update_irq(struct uart *u)
{
	int level = !(iir(u) & IIR_NONE);

	if (level != u->irq_level) {
		u->irq_level = level;
		if (u->dev.bus && u->dev.bus->irq_set)
			u->dev.bus->irq_set(u->dev.bus->irq_arg, u->dev.gsi, level);
	}
}

static void rx_push(struct uart *u, uint8_t c)
{
	if (u->fifo_count == UART_FIFO_LEN) {
		u->lsr |= LSR_OE;
		u->overruns++;
		return;
	}
	u->fifo[(u->fifo_head + u->fifo_count) % UART_FIFO_LEN] = c;
	u->fifo_count++;
	u->lsr |= LSR_DR;
}

static void tx(struct uart *u, uint8_t c)
{
	if (u->mcr & MCR_LOOP) {
		rx_push(u, c);
	} else {
		u->line[u->line_len++] = c;
		if (c == '\n' || u->line_len == UART_LINE_MAX)
			out_flush(u);
	}
	u->thre_pending = true; /* the holding register empties at once */
}

static void uart_pio(struct vmm_device *d, uint16_t off, bool write, uint8_t *data, unsigned size)
{
	struct uart *u = d->priv;
	uint8_t v = data[0];

	if (size != 1) { /* the 16550 has byte registers */
		if (!write)
			memset(data, 0xff, size);
		return;
	}
	if (write) {
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
			} else {
				/* enabling THRE with an empty holding register interrupts */
				if ((v & IER_THRE) && !(u->ier & IER_THRE))
					u->thre_pending = true;
				u->ier = v & 0x0f;
			}
			break;
		case R_IIR_FCR:
			u->fcr = v & 0xc9;
			if (v & FCR_RXCL) {
				u->fifo_count = 0;
				u->lsr &= (uint8_t)~LSR_DR;
			}
			break;
		case R_LCR:
			u->lcr = v;
			break;
		case R_MCR:
			u->mcr = v & 0x1f;
			break;
		case R_SCR:
			u->scr = v;
			break;
		default: /* LSR, MSR are read-only */
			break;
		}
	} else {
		switch (off) {
		case R_RBR_THR:
			if (u->lcr & LCR_DLAB) {
				v = u->dll;
			} else if (u->fifo_count) {
				v = u->fifo[u->fifo_head];
				u->fifo_head = (uint8_t)((u->fifo_head + 1) % UART_FIFO_LEN);
				if (--u->fifo_count == 0)
					u->lsr &= (uint8_t)~LSR_DR;
			} else {
				v = 0;
			}
			break;
		case R_IER:
			v = u->lcr & LCR_DLAB ? u->dlm : u->ier;
			break;
		case R_IIR_FCR:
			v = iir(u);
			if ((v & 0x0f) == IIR_THRE)
				u->thre_pending = false; /* reading IIR clears THRE */
			break;
		case R_LCR:
			v = u->lcr;
			break;
		case R_MCR:
			v = u->mcr;
			break;
		case R_LSR:
			v = u->lsr | LSR_THRE | LSR_TEMT;
			u->lsr &= (uint8_t)~LSR_OE; /* cleared by reading */
			break;
		case R_MSR:
			/* loopback wires MCR outputs to the modem inputs; else DCD, DSR, CTS */
			v = u->mcr & MCR_LOOP ? (uint8_t)((u->mcr & 0x0f) << 4) : 0xb0;
			break;
		case R_SCR:
			v = u->scr;
			break;
		default:
			v = 0xff;
		}
		data[0] = v;
	}
	update_irq(u);
}

static void uart_reset(struct vmm_device *d)
{
	struct uart *u = d->priv;

	u->ier = u->lcr = u->mcr = u->scr = u->fcr = 0;
	u->lsr = 0;
	u->dll = 12; /* 9600 baud */
	u->dlm = 0;
	u->fifo_count = u->fifo_head = 0;
	u->thre_pending = false;
	update_irq(u);
}

static int uart_save(struct vmm_device *d, struct sbuf *o)
{
	struct uart *u = d->priv;

	sbuf_u8(o, u->ier);
	sbuf_u8(o, u->lcr);
	sbuf_u8(o, u->mcr);
	sbuf_u8(o, u->lsr);
	sbuf_u8(o, u->scr);
	sbuf_u8(o, u->fcr);
	sbuf_u8(o, u->dll);
	sbuf_u8(o, u->dlm);
	sbuf_u8(o, u->thre_pending);
	sbuf_u8(o, u->fifo_count);
	for (unsigned i = 0; i < u->fifo_count; i++)
		sbuf_u8(o, u->fifo[(u->fifo_head + i) % UART_FIFO_LEN]);
	sbuf_u16(o, (uint16_t)u->line_len);
	sbuf_put(o, u->line, u->line_len);
	sbuf_u64(o, u->overruns);
	return o->err;
}

static int uart_restore(struct vmm_device *d, struct rbuf *in)
{
	struct uart *u = d->priv;
	struct uart n = *u;

	n.ier = rbuf_u8(in);
	n.lcr = rbuf_u8(in);
	n.mcr = rbuf_u8(in);
	n.lsr = rbuf_u8(in);
	n.scr = rbuf_u8(in);
	n.fcr = rbuf_u8(in);
	n.dll = rbuf_u8(in);
	n.dlm = rbuf_u8(in);
	uint8_t thre = rbuf_u8(in);
	n.fifo_count = rbuf_u8(in);
	if (in->err || thre > 1 || n.fifo_count > UART_FIFO_LEN || n.ier > 0x0f || n.mcr > 0x1f)
		return -EBADMSG;
	n.thre_pending = thre;
	n.fifo_head = 0;
	for (unsigned i = 0; i < n.fifo_count; i++)
		n.fifo[i] = rbuf_u8(in);
	uint16_t ll = rbuf_u16(in);
	if (in->err || ll > UART_LINE_MAX)
		return -EBADMSG;
	n.line_len = ll;
	rbuf_get(in, n.line, ll);
	n.overruns = rbuf_u64(in);
	if (rbuf_done(in) < 0)
		return -EBADMSG;
	n.irq_level = u->irq_level;
	*u = n;
	update_irq(u);
	return 0;
}

static void uart_destroy(struct vmm_device *d)
{
	struct uart *u = d->priv;

	out_flush(u);
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

	if (!u)
		return -ENOMEM;
	u->fd = out_fd;
	u->dev.ops = &uart_ops;
	u->dev.pio_base = UART_COM1_PORT;
	u->dev.pio_len = 8;
	u->dev.gsi = UART_COM1_GSI;
	u->dev.bus = bus;
	u->dev.priv = u;
	uart_reset(&u->dev);
	*dp = &u->dev;
	return 0;
}

void vmm_uart_input(struct vmm_device *d, const uint8_t *buf, size_t n)
{
	struct uart *u = d->priv;

	for (size_t i = 0; i < n; i++)
		rx_push(u, buf[i]);
	update_irq(u);
}

void vmm_uart_flush(struct vmm_device *d)
{
	out_flush(d->priv);
}

void vmm_uart_set_tap(struct vmm_device *d, void (*fn)(void *arg, const uint8_t *buf, size_t n),
                      void *arg)
{
	struct uart *u = d->priv;

	u->tap = fn;
	u->tap_arg = arg;
}
