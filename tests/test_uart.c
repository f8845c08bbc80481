/* The 16550A UART: registers and the divisor latch, LSR, the interrupt
 * sources and the line, the receive FIFO and overruns, loopback, output to
 * serial.log in lines, and save/restore (mid-line, byte-identical, every
 * truncation and corruption refused). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "vmm/sbuf.h"
#include "vmm/uart.h"

/* registers */
enum {
	THR = 0,
	RBR = 0,
	DLL = 0,
	IER = 1,
	DLM = 1,
	IIR = 2,
	FCR = 2,
	LCR = 3,
	MCR = 4,
	LSR = 5,
	MSR = 6,
	SCR = 7
};

/* ---- fake buses that record their interrupt line ---- */

struct line {
	struct vmm_bus bus;
	int level, calls;
};

static void irq_set(void *arg, uint32_t gsi, int level)
{
	struct line *l = arg;

	assert_int_equal(gsi, UART_COM1_GSI);
	assert_true(level == 0 || level == 1);
	assert_int_not_equal(level, l->level); /* only changes are reported */
	l->level = level;
	l->calls++;
}

static void line_init(struct line *l)
{
	memset(l, 0, sizeof(*l));
	l->bus.irq_set = irq_set;
	l->bus.irq_arg = l;
}

/* the line of the tests' one device (several devices: one line each) */
static struct line L;

static int setup(void **state)
{
	(void)state;
	line_init(&L);
	return 0;
}

static void w(struct vmm_device *d, uint16_t off, uint8_t v)
{
	d->ops->pio(d, off, true, &v, 1);
}

static uint8_t r(struct vmm_device *d, uint16_t off)
{
	uint8_t v = 0xee;
	d->ops->pio(d, off, false, &v, 1);
	return v;
}

static void puts_uart(struct vmm_device *d, const char *s)
{
	while (*s)
		w(d, THR, (uint8_t)*s++);
}

static struct vmm_device *mk_on(struct line *l, int fd)
{
	struct vmm_device *d = NULL;

	assert_int_equal(vmm_uart_create(&d, &l->bus, fd), 0);
	assert_non_null(d);
	return d;
}

static struct vmm_device *mk(int fd)
{
	return mk_on(&L, fd);
}

static void input(struct vmm_device *d, const char *s)
{
	vmm_uart_input(d, (const uint8_t *)s, strlen(s));
}

static struct vmm_uart_stats stats(struct vmm_device *d)
{
	struct vmm_uart_stats st;
	vmm_uart_get_stats(d, &st);
	return st;
}

/* what the memfd behind the UART holds */
static char *contents(int fd)
{
	static char buf[8192];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

/* a tap that records the chunks it sees, "|" between them */
struct tap_log {
	char buf[8192];
	size_t len;
	int chunks;
};

static void tap(void *arg, const uint8_t *buf, size_t n)
{
	struct tap_log *t = arg;

	assert_true(n > 0 && n <= UART_LINE_MAX);
	assert_true(t->len + n + 1 < sizeof(t->buf));
	if (t->chunks++)
		t->buf[t->len++] = '|';
	memcpy(t->buf + t->len, buf, n);
	t->len += n;
	t->buf[t->len] = '\0';
}

static void save(struct vmm_device *d, struct sbuf *s)
{
	sbuf_init(s);
	assert_int_equal(d->ops->save(d, s), 0);
	assert_true(s->len > 0);
}

static int restore(struct vmm_device *d, const void *p, size_t n)
{
	struct rbuf rb;
	rbuf_init(&rb, p, n);
	return d->ops->restore(d, &rb);
}

/* ---- registers ---- */

static void test_power_on_state(void **state)
{
	struct vmm_device *d = mk(-1);

	(void)state;
	assert_int_equal(d->pio_base, 0x3f8);
	assert_int_equal(d->pio_len, 8);
	assert_int_equal(d->gsi, 4);
	assert_string_equal(d->ops->name, "uart");
	assert_int_equal(r(d, IER), 0);
	assert_int_equal(r(d, IIR), 0x01); /* no interrupt, no FIFOs */
	assert_int_equal(r(d, LCR), 0);
	assert_int_equal(r(d, MCR), 0);
	assert_int_equal(r(d, LSR), 0x60); /* THRE | TEMT */
	assert_int_equal(r(d, MSR), 0xb0); /* DCD | DSR | CTS, no deltas */
	assert_int_equal(r(d, SCR), 0);
	w(d, LCR, 0x80);
	assert_int_equal(r(d, DLL), 12); /* 9600 baud */
	assert_int_equal(r(d, DLM), 0);
	assert_int_equal(L.calls, 0);
	d->ops->destroy(d);
}

static void test_dlab_divisor_latch(void **state)
{
	int fd = memfd_create("serial", 0);
	struct vmm_device *d = mk(fd);

	(void)state;
	w(d, IER, 0x05);
	w(d, LCR, 0x83); /* DLAB, 8N1 */
	w(d, DLL, 0x01); /* 115200 */
	w(d, DLM, 0x02);
	assert_int_equal(r(d, DLL), 0x01);
	assert_int_equal(r(d, DLM), 0x02);
	assert_int_equal(r(d, LCR), 0x83);
	w(d, LCR, 0x03);
	assert_int_equal(r(d, IER), 0x05); /* the divisor latch did not touch IER */
	w(d, IER, 0xff);
	assert_int_equal(r(d, IER), 0x0f); /* the upper bits do not exist */
	w(d, IER, 0);
	w(d, LCR, 0x80);
	assert_int_equal(r(d, DLL), 0x01);
	assert_int_equal(r(d, DLM), 0x02); /* and IER writes did not touch DLM */
	w(d, LCR, 0x03);
	w(d, SCR, 0x5a);
	assert_int_equal(r(d, SCR), 0x5a);
	vmm_uart_flush(d);
	assert_string_equal(contents(fd), ""); /* divisor writes transmit nothing */
	assert_int_equal(stats(d).tx_bytes, 0);
	/* wider accesses split into byte cycles; past the 8 registers reads 0 */
	uint8_t two[2] = { 0, 0 }, four[4] = { 1, 1, 1, 1 };
	w(d, LCR, 0x80);
	d->ops->pio(d, 0, false, two, 2);
	assert_int_equal(two[0], 0x01);
	assert_int_equal(two[1], 0x02);
	d->ops->pio(d, 6, false, four, 4); /* MSR, SCR, -, - */
	assert_int_equal(four[0], 0xb0);
	assert_int_equal(four[1], 0x5a);
	assert_int_equal(four[2], 0);
	assert_int_equal(four[3], 0);
	d->ops->destroy(d);
	close(fd);
}

static void test_lsr_after_write(void **state)
{
	int fd = memfd_create("serial", 0);
	struct vmm_device *d = mk(fd);

	(void)state;
	w(d, LCR, 0x03);
	for (int i = 0; i < 40; i++) {
		w(d, THR, 'x');
		assert_int_equal(r(d, LSR), 0x60); /* sent at once, nothing received */
	}
	w(d, FCR, 0x07);
	w(d, THR, '\n');
	assert_int_equal(r(d, LSR), 0x60);
	assert_int_equal(stats(d).tx_bytes, 41);
	assert_int_equal(strlen(contents(fd)), 41);
	d->ops->destroy(d);
	close(fd);
}

static void test_thre_interrupt(void **state)
{
	struct vmm_device *d = mk(-1);

	(void)state;
	w(d, THR, 'a'); /* with ETBEI off, a transmission raises nothing */
	assert_int_equal(L.calls, 0);
	assert_int_equal(r(d, IIR), 0x01);
	w(d, IER, 0x02); /* enabling it with the holding register empty fires */
	assert_int_equal(L.level, 1);
	assert_int_equal(L.calls, 1);
	assert_int_equal(r(d, IIR), 0x02); /* IIR reports THRE, and the read clears it */
	assert_int_equal(L.level, 0);
	assert_int_equal(r(d, IIR), 0x01);
	assert_int_equal(L.calls, 2);
	/* a THR write clears it and its instant completion raises it again */
	w(d, THR, 'b');
	assert_int_equal(L.level, 1);
	w(d, THR, 'c');
	w(d, THR, 'd');
	assert_int_equal(L.calls, 3); /* the line stayed high: no calls */
	assert_int_equal(r(d, IIR), 0x02);
	assert_int_equal(L.level, 0);
	/* re-writing IER with ETBEI still set does not re-raise it */
	w(d, IER, 0x02);
	assert_int_equal(L.level, 0);
	/* Linux's THRE test: IER=THRI, IIR, IER=0, IER=THRI, IIR must fire again */
	w(d, IER, 0);
	w(d, IER, 0x02);
	assert_int_equal(r(d, IIR), 0x02);
	w(d, IER, 0);
	w(d, IER, 0x02);
	assert_int_equal(r(d, IIR), 0x02);
	/* disabling ETBEI drops a pending THRE */
	w(d, THR, 'e');
	assert_int_equal(L.level, 1);
	w(d, IER, 0);
	assert_int_equal(L.level, 0);
	assert_int_equal(r(d, IIR), 0x01);
	/* in FIFO mode IIR carries both FIFO bits */
	w(d, FCR, 0x01);
	w(d, IER, 0x02);
	assert_int_equal(r(d, IIR), 0xc2);
	assert_int_equal(r(d, IIR), 0xc1);
	d->ops->destroy(d);
}

static void test_rx_fifo_interrupt(void **state)
{
	struct vmm_device *d = mk(-1);
	uint8_t v;

	(void)state;
	input(d, "abc"); /* ERBFI off: data, no interrupt */
	assert_int_equal(L.calls, 0);
	assert_int_equal(r(d, LSR), 0x61);
	assert_int_equal(r(d, IIR), 0x01);
	w(d, IER, 0x01);
	assert_int_equal(L.level, 1);
	assert_int_equal(r(d, IIR), 0x04); /* 16450 mode: received data available */
	assert_int_equal(r(d, RBR), 'a');
	assert_int_equal(r(d, RBR), 'b');
	assert_int_equal(L.level, 1);
	assert_int_equal(r(d, RBR), 'c');
	assert_int_equal(L.level, 0); /* empty: DR and the interrupt go */
	assert_int_equal(r(d, LSR), 0x60);
	assert_int_equal(r(d, IIR), 0x01);
	assert_int_equal(r(d, RBR), 0); /* reading an empty receiver is harmless */

	/* FIFO mode, trigger level 8: below it, a character timeout */
	w(d, FCR, 0x81);
	input(d, "0123");
	assert_int_equal(r(d, IIR), 0xcc);
	input(d, "4567");
	assert_int_equal(r(d, IIR), 0xc4); /* at the trigger level */
	assert_int_equal(r(d, RBR), '0');
	assert_int_equal(r(d, IIR), 0xcc); /* back below it */
	for (v = '1'; v <= '7'; v++)
		assert_int_equal(r(d, RBR), v);
	assert_int_equal(r(d, IIR), 0xc1);
	assert_int_equal(L.level, 0);
	/* received data outranks THRE; THRE shows once the data is read */
	w(d, IER, 0x03);
	input(d, "z");
	assert_int_equal(r(d, IIR), 0xcc);
	assert_int_equal(r(d, RBR), 'z');
	assert_int_equal(r(d, IIR), 0xc2);
	assert_int_equal(L.level, 0);
	/* the FIFO wraps around its ring many times */
	for (int round = 0; round < 10; round++) {
		input(d, "0123456789");
		for (v = '0'; v <= '9'; v++)
			assert_int_equal(r(d, RBR), v);
	}
	/* RX FIFO reset empties it; turning the FIFOs off empties it too */
	input(d, "xyz");
	w(d, FCR, 0x83);
	assert_int_equal(r(d, LSR) & 0x01, 0);
	assert_int_equal(L.level, 0);
	input(d, "xyz");
	w(d, FCR, 0x00);
	assert_int_equal(r(d, LSR) & 0x01, 0);
	assert_int_equal(r(d, IIR), 0x01); /* with FE clear no other bit took */
	assert_int_equal(stats(d).rx_bytes, 3 + 8 + 1 + 100 + 6);
	assert_int_equal(stats(d).rx_dropped, 0);
	d->ops->destroy(d);
}

static void test_overflow_sets_oe(void **state)
{
	struct vmm_device *d = mk(-1);
	uint8_t in[20];

	(void)state;
	for (int i = 0; i < 20; i++)
		in[i] = (uint8_t)('a' + i);
	w(d, FCR, 0xc1); /* trigger 14 */
	w(d, IER, 0x01);
	assert_int_equal(vmm_uart_rx_space(d), 16);
	vmm_uart_input(d, in, sizeof(in));
	assert_int_equal(vmm_uart_rx_space(d), 0);
	assert_int_equal(stats(d).rx_bytes, 16);
	assert_int_equal(stats(d).rx_dropped, 4);
	assert_int_equal(L.level, 1);
	assert_int_equal(r(d, IIR), 0xc4);
	w(d, IER, 0x05); /* ELSI: the overrun outranks the data */
	assert_int_equal(r(d, IIR), 0xc6);
	assert_int_equal(r(d, LSR), 0x63);      /* DR | OE | THRE | TEMT */
	assert_int_equal(r(d, LSR), 0x61);      /* OE clears on read ... */
	assert_int_equal(r(d, IIR), 0xc4);      /* ... and with it the line status interrupt */
	for (int i = 0; i < UART_FIFO_LEN; i++) /* the FIFO kept the first 16 */
		assert_int_equal(r(d, RBR), 'a' + i);
	assert_int_equal(r(d, LSR), 0x60);
	assert_int_equal(L.level, 0);
	/* a FIFO reset does not clear OE (it is the shift register's) */
	vmm_uart_input(d, in, sizeof(in));
	w(d, FCR, 0xc3);
	assert_int_equal(r(d, LSR), 0x62);
	assert_int_equal(stats(d).rx_dropped, 8);
	d->ops->destroy(d);
}

static void test_loopback(void **state)
{
	int fd = memfd_create("serial", 0);
	struct vmm_device *d = mk(fd);

	(void)state;
	/* Linux's probe: loopback with RTS and OUT2 reads back CTS and DCD */
	w(d, MCR, 0x10 | 0x0a);
	assert_int_equal(r(d, MSR) & 0xf0, 0x90);
	w(d, MCR, 0x10 | 0x01);                   /* DTR -> DSR */
	assert_int_equal(r(d, MSR), 0x20 | 0x0b); /* DDCD, DDSR, DCTS */
	assert_int_equal(r(d, MSR), 0x20);        /* deltas clear on read */
	w(d, MCR, 0x10 | 0x04);                   /* OUT1 -> RI */
	assert_int_equal(r(d, MSR), 0x40 | 0x02); /* RI rising: no TERI */
	w(d, IER, 0x08);
	assert_int_equal(L.level, 0);
	w(d, MCR, 0x10); /* RI falling: TERI, and a modem status interrupt */
	assert_int_equal(L.level, 1);
	assert_int_equal(r(d, IIR), 0x00);
	assert_int_equal(r(d, MSR), 0x04);
	assert_int_equal(L.level, 0);
	w(d, IER, 0x01);
	/* transmitted bytes come back, not out */
	puts_uart(d, "Z\n");
	assert_int_equal(L.level, 1);
	assert_int_equal(r(d, IIR), 0x04);
	assert_int_equal(r(d, RBR), 'Z');
	assert_int_equal(r(d, RBR), '\n');
	assert_int_equal(L.level, 0);
	/* host input does not reach a looped-back receiver */
	assert_int_equal(vmm_uart_rx_space(d), 0);
	input(d, "lost");
	assert_int_equal(r(d, LSR), 0x60);
	assert_int_equal(stats(d).rx_dropped, 4);
	/* loopback overruns like a line would */
	for (int i = 0; i < 17; i++)
		w(d, THR, 'L');
	assert_int_equal(r(d, LSR), 0x63);
	assert_int_equal(stats(d).rx_dropped, 5);
	/* out of loopback: the line's inputs again, the FIFO keeps its bytes */
	w(d, MCR, 0x0b);
	assert_int_equal(r(d, MSR), 0xb0 | 0x0b); /* all three came up */
	puts_uart(d, "out\n");
	assert_string_equal(contents(fd), "out\n");
	assert_int_equal(r(d, RBR), 'L');
	assert_int_equal(stats(d).tx_bytes, 2 + 17 + 4);
	d->ops->destroy(d);
	close(fd);
}

static void test_reset(void **state)
{
	int fd = memfd_create("serial", 0);
	struct vmm_device *d = mk(fd);
	struct sbuf a, b;

	(void)state;
	save(d, &a);
	w(d, LCR, 0x80);
	w(d, DLL, 1);
	w(d, LCR, 0x1b);
	w(d, FCR, 0xc1);
	w(d, MCR, 0x1f);
	w(d, SCR, 9);
	w(d, IER, 0x0f);
	w(d, MCR, 0x03);
	input(d, "q");
	assert_int_equal(L.level, 1);
	puts_uart(d, "half");
	d->ops->reset(d);
	assert_int_equal(L.level, 0);
	assert_int_equal(r(d, IER), 0);
	assert_int_equal(r(d, IIR), 0x01);
	assert_int_equal(r(d, LCR), 0);
	assert_int_equal(r(d, MCR), 0);
	assert_int_equal(r(d, LSR), 0x60);
	assert_int_equal(r(d, MSR), 0xb0);
	assert_int_equal(r(d, SCR), 0);
	/* the output written before the reset is not lost */
	puts_uart(d, " line\n");
	assert_string_equal(contents(fd), "half line\n");
	/* and apart from the counters, the state is the power-on one */
	save(d, &b);
	assert_int_equal(a.len, b.len);
	assert_memory_equal(a.data, b.data, a.len - 32);
	sbuf_free(&a);
	sbuf_free(&b);
	d->ops->destroy(d);
	close(fd);
}

/* ---- output ---- */

static void test_output_lines(void **state)
{
	int fd = memfd_create("serial", 0);
	struct vmm_device *d = mk(fd);
	struct tap_log t = { .len = 0 };
	char big[600];

	(void)state;
	vmm_uart_set_tap(d, tap, &t);
	puts_uart(d, "hb 1\nhb 2\nhb");
	assert_string_equal(contents(fd), "hb 1\nhb 2\n"); /* written at each newline */
	assert_string_equal(t.buf, "hb 1\n|hb 2\n");
	vmm_uart_flush(d);
	assert_string_equal(contents(fd), "hb 1\nhb 2\nhb");
	assert_string_equal(t.buf, "hb 1\n|hb 2\n|hb");
	vmm_uart_flush(d); /* nothing buffered: no empty chunk */
	assert_int_equal(t.chunks, 3);

	/* a line without newline goes out in 256-byte pieces */
	vmm_uart_set_tap(d, NULL, NULL);
	assert_int_equal(ftruncate(fd, 0), 0);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	for (size_t i = 0; i < sizeof(big) - 1; i++)
		big[i] = (char)('a' + i % 26);
	big[sizeof(big) - 1] = '\0';
	puts_uart(d, big);
	assert_int_equal(strlen(contents(fd)), 512);
	assert_memory_equal(contents(fd), big, 512);
	puts_uart(d, "\n");
	assert_int_equal(strlen(contents(fd)), 600);
	assert_int_equal(t.chunks, 3); /* the tap was removed */
	assert_int_equal(stats(d).write_errors, 0);

	/* output still flushes when the device goes away */
	puts_uart(d, "bye");
	d->ops->destroy(d);
	assert_int_equal(strlen(contents(fd)), 603);
	close(fd);
}

static void test_output_pipe(void **state)
{
	int p[2];
	char buf[64];
	struct vmm_device *d;

	(void)state;
	assert_int_equal(pipe2(p, O_NONBLOCK), 0);
	d = mk(p[1]);
	puts_uart(d, "one\ntw");
	assert_int_equal(read(p[0], buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "one\n", 4);
	assert_int_equal(read(p[0], buf, sizeof(buf)), -1); /* "tw" is held */
	puts_uart(d, "o\n");
	assert_int_equal(read(p[0], buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "two\n", 4);
	d->ops->destroy(d);
	close(p[0]);
	close(p[1]);
}

static void test_write_errors_not_fatal(void **state)
{
	int fd = open("/dev/null", O_RDONLY); /* writes fail with EBADF */
	struct tap_log t = { .len = 0 };
	struct vmm_device *d;

	(void)state;
	assert_true(fd >= 0);
	d = mk(fd);
	vmm_uart_set_tap(d, tap, &t);
	puts_uart(d, "a\nb\nc");
	assert_int_equal(stats(d).write_errors, 2);
	vmm_uart_flush(d);
	assert_int_equal(stats(d).write_errors, 3);
	assert_string_equal(t.buf, "a\n|b\n|c"); /* the tap saw everything */
	assert_int_equal(r(d, LSR), 0x60);       /* and the guest noticed nothing */
	d->ops->destroy(d);
	close(fd);

	/* no fd at all: output only goes to the tap, no errors */
	t.len = 0;
	t.chunks = 0;
	d = mk(-1);
	vmm_uart_set_tap(d, tap, &t);
	puts_uart(d, "x\n");
	assert_string_equal(t.buf, "x\n");
	assert_int_equal(stats(d).write_errors, 0);
	d->ops->destroy(d);
}

/* vCPU threads and an input thread at once: nothing lost or torn. */
struct hammer {
	struct vmm_device *d;
	int id;
};

static void *hammer_main(void *arg)
{
	struct hammer *h = arg;

	for (int i = 0; i < 2000; i++) {
		if (h->id == 2) {
			uint8_t c = 'i';
			vmm_uart_input(h->d, &c, 1);
			r(h->d, RBR);
			r(h->d, LSR);
		} else {
			w(h->d, THR, h->id ? '\n' : 'a');
			r(h->d, IIR);
		}
	}
	return NULL;
}

static void test_concurrent_access(void **state)
{
	int fd = memfd_create("serial", 0);
	struct vmm_device *d = mk(fd);
	struct hammer h[3];
	pthread_t t[3];
	struct stat st;

	(void)state;
	w(d, IER, 0x0f);
	for (int i = 0; i < 3; i++) {
		h[i] = (struct hammer){ d, i };
		assert_int_equal(pthread_create(&t[i], NULL, hammer_main, &h[i]), 0);
	}
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	vmm_uart_flush(d);
	assert_int_equal(stats(d).tx_bytes, 4000);
	assert_int_equal(stats(d).rx_bytes + stats(d).rx_dropped, 2000);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, 4000);
	d->ops->destroy(d);
	close(fd);
}

/* ---- save / restore ---- */

/* A device in a busy state: DLAB set, FIFOs on, a wrapped FIFO, THRE
 * pending, modem deltas, OE, half a line buffered. */
static struct vmm_device *busy_device(struct line *l, int fd)
{
	struct vmm_device *d = mk_on(l, fd);
	uint8_t in[16];

	w(d, FCR, 0x47);
	input(d, "0123456789");
	for (int i = 0; i < 7; i++)
		r(d, RBR);
	for (int i = 0; i < 16; i++)
		in[i] = (uint8_t)('A' + i);
	vmm_uart_input(d, in, sizeof(in)); /* 3 + 13 fit, 3 overrun */
	w(d, IER, 0x0f);
	w(d, MCR, 0x10); /* the modem inputs drop and come back: deltas */
	w(d, MCR, 0x0b);
	w(d, SCR, 0xa5);
	puts_uart(d, "line 1\nhalf of ");
	w(d, LCR, 0x9b);
	w(d, DLL, 0x34);
	w(d, DLM, 0x12);
	return d;
}

static void test_save_restore_mid_line(void **state)
{
	int fd = memfd_create("serial", 0);
	struct vmm_device *a = busy_device(&L, fd), *b;
	struct tap_log t = { .len = 0 };
	struct line lb;
	struct sbuf s;

	(void)state;
	assert_int_equal(L.level, 1);
	save(a, &s);
	/* the source is torn down without flushing (its process dies): the
	 * half line moves with the state */
	free(a->priv);
	line_init(&lb);
	b = mk_on(&lb, fd);
	vmm_uart_set_tap(b, tap, &t);
	assert_int_equal(lb.level, 0);
	assert_int_equal(restore(b, s.data, s.len), 0);
	assert_int_equal(lb.level, 1); /* the pending interrupts came along */
	assert_int_equal(lb.calls, 1);
	assert_string_equal(contents(fd), "line 1\n");
	w(b, LCR, 0x1b);
	puts_uart(b, "line 2\n");
	assert_string_equal(contents(fd), "line 1\nhalf of line 2\n");
	assert_string_equal(t.buf, "half of line 2\n");
	/* registers, FIFO and counters moved too */
	w(b, LCR, 0x9b);
	assert_int_equal(r(b, DLL), 0x34);
	assert_int_equal(r(b, DLM), 0x12);
	w(b, LCR, 0x1b);
	assert_int_equal(r(b, IER), 0x0f);
	assert_int_equal(r(b, IIR), 0xc6); /* OE first */
	assert_int_equal(r(b, LSR), 0x63);
	assert_int_equal(r(b, SCR), 0xa5);
	assert_int_equal(r(b, MCR), 0x0b);
	assert_int_equal(stats(b).rx_dropped, 3);
	assert_int_equal(stats(b).rx_bytes, 23);
	assert_int_equal(stats(b).tx_bytes, strlen("line 1\nhalf of line 2\n"));
	const char *want = "789ABCDEFGHIJKLM";
	for (int i = 0; i < 16; i++)
		assert_int_equal(r(b, RBR), want[i]);
	b->ops->destroy(b);
	assert_string_equal(contents(fd), "line 1\nhalf of line 2\n");
	sbuf_free(&s);
	close(fd);
}

static void test_save_restore_save_identical(void **state)
{
	struct line la, lb, lc;
	struct vmm_device *a, *b, *c;
	struct sbuf s1, s2, s3;

	(void)state;
	line_init(&la);
	line_init(&lb);
	line_init(&lc);
	a = busy_device(&la, -1);
	b = mk_on(&lb, -1);
	c = mk_on(&lc, -1);
	save(a, &s1);
	assert_int_equal(restore(b, s1.data, s1.len), 0);
	save(b, &s2);
	assert_int_equal(s1.len, s2.len);
	assert_memory_equal(s1.data, s2.data, s1.len);
	/* the power-on state too, and restoring twice changes nothing */
	save(c, &s3);
	assert_int_equal(restore(b, s3.data, s3.len), 0);
	assert_int_equal(restore(b, s3.data, s3.len), 0);
	sbuf_free(&s2);
	save(b, &s2);
	assert_int_equal(s2.len, s3.len);
	assert_memory_equal(s2.data, s3.data, s3.len);
	assert_int_equal(r(b, IIR), 0x01);
	assert_int_equal(lb.level, 0);
	/* THRE enabled, transmitted on and disabled again: restorable */
	w(b, IER, 0x02);
	w(b, THR, 'x');
	w(b, IER, 0x00);
	sbuf_free(&s2);
	save(b, &s2);
	assert_int_equal(restore(c, s2.data, s2.len), 0);
	assert_int_equal(lc.level, 0);
	/* restoring a quiet state over a busy one lowers the line */
	assert_int_equal(restore(c, s1.data, s1.len), 0);
	assert_int_equal(lc.level, 1);
	assert_int_equal(restore(c, s3.data, s3.len), 0);
	assert_int_equal(lc.level, 0);
	sbuf_free(&s1);
	sbuf_free(&s2);
	sbuf_free(&s3);
	a->ops->destroy(a);
	b->ops->destroy(b);
	c->ops->destroy(c);
}

/* Restore must fail, and leave the device as it was. */
static void expect_refused(struct vmm_device *d, const uint8_t *p, size_t n)
{
	struct sbuf before, after;

	save(d, &before);
	assert_int_equal(restore(d, p, n), -EBADMSG);
	save(d, &after);
	assert_int_equal(before.len, after.len);
	assert_memory_equal(before.data, after.data, before.len);
	sbuf_free(&before);
	sbuf_free(&after);
}

static void test_restore_truncated(void **state)
{
	struct line la, lb;
	struct vmm_device *a, *b;
	struct sbuf s;

	(void)state;
	line_init(&la);
	line_init(&lb);
	a = busy_device(&la, -1);
	b = busy_device(&lb, -1);
	w(b, SCR, 0x11); /* b differs from what it is fed */
	save(a, &s);
	for (size_t len = 0; len < s.len; len++) {
		/* a copy of exactly len bytes, so ASan sees any over-read */
		uint8_t *p = malloc(len ? len : 1);
		memcpy(p, s.data, len);
		expect_refused(b, p, len);
		free(p);
	}
	/* one byte too many */
	uint8_t *p = malloc(s.len + 1);
	memcpy(p, s.data, s.len);
	p[s.len] = 0;
	expect_refused(b, p, s.len + 1);
	free(p);
	sbuf_free(&s);
	a->ops->destroy(a);
	b->ops->destroy(b);
}

/* offsets in the state (see uart_save) */
enum { S_VER, S_IER, S_LCR, S_MCR, S_FCR, S_LSR, S_MSR, S_SCR, S_DLL, S_DLM, S_THRE, S_COUNT };

static void corrupt_one(struct vmm_device *d, const struct sbuf *s, size_t off, uint8_t v)
{
	uint8_t *p = malloc(s->len);

	memcpy(p, s->data, s->len);
	p[off] = v;
	expect_refused(d, p, s->len);
	free(p);
}

static void test_restore_corrupted(void **state)
{
	struct line la, lb;
	struct vmm_device *a, *b;
	struct sbuf s;

	(void)state;
	line_init(&la);
	line_init(&lb);
	a = mk_on(&la, -1);
	b = busy_device(&lb, -1);
	w(a, IER, 0x02); /* THRE pending, FIFO empty, no line */
	w(a, FCR, 0x01);
	save(a, &s);
	assert_int_equal(s.len, S_COUNT + 1 + 2 + 32);
	corrupt_one(b, &s, S_VER, 0);
	corrupt_one(b, &s, S_VER, 2);
	corrupt_one(b, &s, S_IER, 0x12);       /* no such IER bits */
	corrupt_one(b, &s, S_IER, 0x01);       /* THRE pending without ETBEI */
	corrupt_one(b, &s, S_MCR, 0x20);       /* no such MCR bit */
	corrupt_one(b, &s, S_MCR, 0x10);       /* loopback, but MSR shows the line */
	corrupt_one(b, &s, S_FCR, 0x03);       /* reset bits are never kept */
	corrupt_one(b, &s, S_FCR, 0x80);       /* trigger level without FE */
	corrupt_one(b, &s, S_LSR, 0x61);       /* DR without data */
	corrupt_one(b, &s, S_LSR, 0x00);       /* THRE/TEMT clear */
	corrupt_one(b, &s, S_LSR, 0xe0);       /* error in FIFO */
	corrupt_one(b, &s, S_MSR, 0x30);       /* inputs unlike the line */
	corrupt_one(b, &s, S_THRE, 2);         /* not a bool */
	corrupt_one(b, &s, S_COUNT, 17);       /* more than the FIFO holds */
	corrupt_one(b, &s, S_COUNT, 200);      /* more than the state holds */
	corrupt_one(b, &s, S_COUNT, 1);        /* bytes shift: the lengths no longer add up */
	corrupt_one(b, &s, S_COUNT + 2, 1);    /* line length 256 */
	corrupt_one(b, &s, S_COUNT + 2, 0xff); /* line length 0xff00 */
	corrupt_one(b, &s, S_COUNT + 1, 5);    /* line longer than the state */
	/* any byte of DLL, DLM, SCR, LCR and of the counters is fine */
	for (size_t off = 0; off < s.len; off++) {
		if (off == S_LCR || off == S_SCR || off == S_DLL || off == S_DLM ||
		    off >= S_COUNT + 3) {
			uint8_t *p = malloc(s.len);
			memcpy(p, s.data, s.len);
			p[off] ^= 0xff;
			assert_int_equal(restore(b, p, s.len), 0);
			free(p);
		}
	}
	sbuf_free(&s);
	a->ops->destroy(a);
	b->ops->destroy(b);
}

/* A state written by hand: quiet registers, `count` FIFO bytes (the count
 * field says count_field), a line of line_len bytes. */
static void craft(struct sbuf *o, uint8_t count_field, unsigned count, uint16_t line_len)
{
	sbuf_init(o);
	sbuf_u8(o, 1);                         /* version */
	sbuf_u8(o, 0);                         /* IER */
	sbuf_u8(o, 0x03);                      /* LCR */
	sbuf_u8(o, 0);                         /* MCR */
	sbuf_u8(o, 0x01);                      /* FCR */
	sbuf_u8(o, count_field ? 0x61 : 0x60); /* LSR */
	sbuf_u8(o, 0xb0);                      /* MSR */
	sbuf_u8(o, 0);                         /* SCR */
	sbuf_u8(o, 1);                         /* DLL */
	sbuf_u8(o, 0);                         /* DLM */
	sbuf_u8(o, 0);                         /* THRE pending */
	sbuf_u8(o, count_field);
	for (unsigned i = 0; i < count; i++)
		sbuf_u8(o, (uint8_t)('a' + i));
	sbuf_u16(o, line_len);
	for (unsigned i = 0; i < line_len; i++)
		sbuf_u8(o, 'x');
	for (int i = 0; i < 4; i++)
		sbuf_u64(o, 1000 + (uint64_t)i);
	assert_int_equal(o->err, 0);
}

/* States whose lengths all add up but hold values out of range. */
static void test_restore_out_of_range(void **state)
{
	int fd = memfd_create("serial", 0);
	struct vmm_device *d = mk(fd), *e = mk(-1);
	struct sbuf s;

	(void)state;
	craft(&s, 16, 16, 255); /* the fullest valid state */
	assert_int_equal(restore(d, s.data, s.len), 0);
	sbuf_free(&s);
	for (int i = 0; i < 16; i++)
		assert_int_equal(r(d, RBR), 'a' + i);
	assert_int_equal(stats(d).write_errors, 1003);
	w(d, THR, 'y'); /* 256 bytes: written out */
	assert_int_equal(strlen(contents(fd)), 256);
	assert_int_equal(contents(fd)[255], 'y');

	craft(&s, 17, 17, 0); /* a FIFO longer than the hardware's */
	expect_refused(e, s.data, s.len);
	sbuf_free(&s);
	craft(&s, 255, 255, 0);
	expect_refused(e, s.data, s.len);
	sbuf_free(&s);
	craft(&s, 0, 0, 256); /* a full line is never left buffered */
	expect_refused(e, s.data, s.len);
	sbuf_free(&s);
	craft(&s, 0, 0, 4000);
	expect_refused(e, s.data, s.len);
	sbuf_free(&s);
	d->ops->destroy(d);
	e->ops->destroy(e);
	close(fd);
}

/* Every single-bit flip and random garbage: refused or accepted, never a
 * crash, and whatever is accepted saves and restores again. */
static void test_restore_garbage(void **state)
{
	struct line la, lb;
	struct vmm_device *a, *b;
	struct sbuf s, s2;
	uint8_t buf[400];
	unsigned seed = 12345;

	(void)state;
	line_init(&la);
	line_init(&lb);
	a = busy_device(&la, -1);
	b = mk_on(&lb, -1);
	save(a, &s);
	for (size_t bit = 0; bit < s.len * 8; bit++) {
		uint8_t *p = malloc(s.len);
		memcpy(p, s.data, s.len);
		p[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		int ret = restore(b, p, s.len);
		assert_true(ret == 0 || ret == -EBADMSG);
		if (ret == 0) {
			save(b, &s2);
			assert_int_equal(restore(b, s2.data, s2.len), 0);
			sbuf_free(&s2);
		}
		free(p);
	}
	for (int i = 0; i < 20000; i++) {
		size_t n = (size_t)rand_r(&seed) % sizeof(buf);
		for (size_t j = 0; j < n; j++)
			buf[j] = (uint8_t)rand_r(&seed);
		if (n > 0 && i % 2)
			buf[0] = 1; /* get past the version */
		int ret = restore(b, buf, n);
		assert_true(ret == 0 || ret == -EBADMSG);
	}
	sbuf_free(&s);
	a->ops->destroy(a);
	b->ops->destroy(b);
}

/* Output commit: held lines go out only when released, in order, up to
 * the mark given; dropped ones never do; hold(false) lets out the rest. */
static void test_output_hold(void **state)
{
	int fd = memfd_create("serial", 0);
	struct vmm_device *d = mk(fd);
	struct tap_log tl = { 0 };

	(void)state;
	vmm_uart_set_tap(d, tap, &tl);
	w(d, LCR, 0x03);
	puts_uart(d, "before\n");
	vmm_uart_hold(d, true);
	uint64_t m0 = vmm_uart_held_mark(d);
	puts_uart(d, "epoch 1\n");
	uint64_t m1 = vmm_uart_held_mark(d);
	assert_true(m1 == m0 + 8);
	puts_uart(d, "epoch 2\npart");
	uint64_t m2 = vmm_uart_held_mark(d);
	assert_string_equal(contents(fd), "before\n");
	/* what waits can be copied (FT sends it with its epoch) */
	struct sbuf cp;
	sbuf_init(&cp);
	assert_int_equal(vmm_uart_held_copy(d, m0, m1, &cp), 0);
	assert_int_equal(cp.len, 8);
	assert_memory_equal(cp.data, "epoch 1\n", 8);
	assert_int_equal(vmm_uart_held_copy(d, m1, m2 + 1, &cp), -ERANGE); /* not written yet */
	vmm_uart_release(d, m1);
	assert_string_equal(contents(fd), "before\nepoch 1\n");
	assert_int_equal(vmm_uart_held_copy(d, m0, m1, &cp), -ERANGE); /* let out already */
	uint32_t waits[4];
	assert_int_equal(vmm_uart_hold_waits(d, waits, 4), 1); /* one line timed */
	sbuf_free(&cp);
	vmm_uart_release(d, m1); /* again: nothing more */
	vmm_uart_release(d, m0);
	assert_string_equal(contents(fd), "before\nepoch 1\n");
	vmm_uart_release(d, m2);
	assert_string_equal(contents(fd), "before\nepoch 1\nepoch 2\n");
	/* the unfinished line waits in the line buffer, then in the hold */
	puts_uart(d, "ial\nlost\n");
	assert_true(vmm_uart_held_mark(d) == m2 + 13); /* "partial\n" "lost\n" */
	vmm_uart_drop(d);
	vmm_uart_release(d, UINT64_MAX);
	assert_string_equal(contents(fd), "before\nepoch 1\nepoch 2\n");
	puts_uart(d, "after\n");
	vmm_uart_hold(d, false);
	assert_string_equal(contents(fd), "before\nepoch 1\nepoch 2\nafter\n");
	puts_uart(d, "live\n");
	assert_string_equal(contents(fd), "before\nepoch 1\nepoch 2\nafter\nlive\n");
	/* the console followers saw exactly what the log got */
	tl.buf[tl.len] = '\0';
	assert_non_null(strstr(tl.buf, "epoch 2"));
	assert_null(strstr(tl.buf, "lost"));
	assert_int_equal(stats(d).write_errors, 0);
	d->ops->destroy(d);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_power_on_state, setup),
		cmocka_unit_test_setup(test_dlab_divisor_latch, setup),
		cmocka_unit_test_setup(test_lsr_after_write, setup),
		cmocka_unit_test_setup(test_thre_interrupt, setup),
		cmocka_unit_test_setup(test_rx_fifo_interrupt, setup),
		cmocka_unit_test_setup(test_overflow_sets_oe, setup),
		cmocka_unit_test_setup(test_loopback, setup),
		cmocka_unit_test_setup(test_reset, setup),
		cmocka_unit_test_setup(test_output_lines, setup),
		cmocka_unit_test_setup(test_output_pipe, setup),
		cmocka_unit_test_setup(test_write_errors_not_fatal, setup),
		cmocka_unit_test_setup(test_concurrent_access, setup),
		cmocka_unit_test_setup(test_save_restore_mid_line, setup),
		cmocka_unit_test_setup(test_save_restore_save_identical, setup),
		cmocka_unit_test_setup(test_restore_truncated, setup),
		cmocka_unit_test_setup(test_restore_corrupted, setup),
		cmocka_unit_test_setup(test_restore_out_of_range, setup),
		cmocka_unit_test_setup(test_restore_garbage, setup),
		cmocka_unit_test_setup(test_output_hold, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
