/* The 16550 UART and the power device: register behaviour, interrupts,
 * output to serial.log, and save/restore in the middle of a line. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "vmm/power.h"
#include "vmm/uart.h"

static int irq_level = -1, irq_changes;

static void irq_set(void *arg, uint32_t gsi, int level)
{
	(void)arg;
	assert_int_equal(gsi, UART_COM1_GSI);
	irq_level = level;
	irq_changes++;
}

static struct vmm_bus bus = { .irq_set = irq_set };

static void w(struct vmm_device *d, uint16_t off, uint8_t v)
{
	d->ops->pio(d, off, true, &v, 1);
}

static uint8_t r(struct vmm_device *d, uint16_t off)
{
	uint8_t v = 0;
	d->ops->pio(d, off, false, &v, 1);
	return v;
}

static void puts_uart(struct vmm_device *d, const char *s)
{
	while (*s)
		w(d, 0, (uint8_t)*s++);
}

/* what the memfd behind the UART holds */
static char *contents(int fd)
{
	static char buf[4096];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static void test_output_lines(void **state)
{
	struct vmm_device *d;
	int fd = memfd_create("serial", 0);

	(void)state;
	assert_int_equal(vmm_uart_create(&d, &bus, fd), 0);
	puts_uart(d, "hb 1\nhb 2\nhb");
	assert_string_equal(contents(fd), "hb 1\nhb 2\n"); /* written at each newline */
	assert_int_equal(r(d, 5) & 0x60, 0x60);            /* THRE | TEMT */
	vmm_uart_flush(d);
	assert_string_equal(contents(fd), "hb 1\nhb 2\nhb");
	d->ops->destroy(d);
	close(fd);
}

static void test_dlab_and_scratch(void **state)
{
	struct vmm_device *d;

	(void)state;
	assert_int_equal(vmm_uart_create(&d, &bus, -1), 0);
	w(d, 3, 0x80); /* DLAB */
	w(d, 0, 0x01);
	w(d, 1, 0x00);
	assert_int_equal(r(d, 0), 0x01);
	w(d, 3, 0x03); /* 8N1, DLAB off */
	w(d, 7, 0x5a);
	assert_int_equal(r(d, 7), 0x5a);
	assert_int_equal(r(d, 3), 0x03);
	d->ops->destroy(d);
}

static void test_interrupts_and_fifo(void **state)
{
	struct vmm_device *d;

	(void)state;
	irq_level = -1;
	assert_int_equal(vmm_uart_create(&d, &bus, -1), 0);
	w(d, 1, 0x02); /* enable THRE interrupt: fires at once (holding register empty) */
	assert_int_equal(irq_level, 1);
	assert_int_equal(r(d, 2) & 0x0f, 0x02); /* IIR says THRE, and reading clears it */
	assert_int_equal(irq_level, 0);
	w(d, 1, 0x01); /* receive interrupt only */
	uint8_t in[20];
	for (int i = 0; i < 20; i++)
		in[i] = (uint8_t)('a' + i);
	vmm_uart_input(d, in, sizeof(in));
	assert_int_equal(irq_level, 1);
	assert_int_equal(r(d, 2) & 0x0f, 0x04);
	uint8_t lsr = r(d, 5);
	assert_true(lsr & 0x01);      /* DR */
	assert_true(lsr & 0x02);      /* OE: 4 bytes did not fit */
	assert_false(r(d, 5) & 0x02); /* OE clears on read */
	for (int i = 0; i < UART_FIFO_LEN; i++)
		assert_int_equal(r(d, 0), 'a' + i);
	assert_false(r(d, 5) & 0x01);
	assert_int_equal(irq_level, 0);
	/* loopback: transmitted bytes come back */
	w(d, 4, 0x10);
	w(d, 0, 'Z');
	assert_int_equal(r(d, 0), 'Z');
	d->ops->destroy(d);
}

static void test_save_restore_mid_line(void **state)
{
	struct vmm_device *a, *b;
	struct sbuf s;
	struct rbuf rb;
	int fd = memfd_create("serial", 0);

	(void)state;
	assert_int_equal(vmm_uart_create(&a, &bus, fd), 0);
	w(a, 1, 0x01);
	uint8_t in[3] = { 'x', 'y', 'z' };
	vmm_uart_input(a, in, 3);
	puts_uart(a, "line 1\nhalf of ");
	sbuf_init(&s);
	assert_int_equal(a->ops->save(a, &s), 0);
	/* the source is torn down without flushing: the half line moves */
	free(a->priv);
	assert_int_equal(vmm_uart_create(&b, &bus, fd), 0);
	rbuf_init(&rb, s.data, s.len);
	assert_int_equal(b->ops->restore(b, &rb), 0);
	puts_uart(b, "line 2\n");
	assert_string_equal(contents(fd), "line 1\nhalf of line 2\n");
	assert_int_equal(r(b, 0), 'x'); /* the receive FIFO moved too */
	/* save -> restore -> save gives the same bytes */
	struct sbuf s2;
	sbuf_init(&s2);
	assert_int_equal(b->ops->save(b, &s2), 0);
	struct vmm_device *c;
	assert_int_equal(vmm_uart_create(&c, &bus, -1), 0);
	rbuf_init(&rb, s2.data, s2.len);
	assert_int_equal(c->ops->restore(c, &rb), 0);
	struct sbuf s3;
	sbuf_init(&s3);
	assert_int_equal(c->ops->save(c, &s3), 0);
	assert_int_equal(s2.len, s3.len);
	assert_memory_equal(s2.data, s3.data, s2.len);
	/* every truncation and a corrupted FIFO count are refused */
	for (size_t len = 0; len < s2.len; len++) {
		rbuf_init(&rb, s2.data, len);
		assert_int_equal(c->ops->restore(c, &rb), -EBADMSG);
	}
	s2.data[9] = 200; /* fifo_count */
	rbuf_init(&rb, s2.data, s2.len);
	assert_int_equal(c->ops->restore(c, &rb), -EBADMSG);
	sbuf_free(&s);
	sbuf_free(&s2);
	sbuf_free(&s3);
	free(c->priv);
	free(b->priv);
	close(fd);
}

static int powered = -1;

static void on_off(void *arg, int status)
{
	(void)arg;
	powered = status;
}

static void test_power(void **state)
{
	struct vmm_device *d;
	struct sbuf s;
	struct rbuf rb;
	uint8_t v = 0x2a;

	(void)state;
	assert_int_equal(vmm_power_create(&d, &bus, on_off, NULL), 0);
	assert_int_equal(d->pio_base, 0xf4);
	d->ops->pio(d, 0, true, &v, 1);
	assert_int_equal(powered, 0x2a);
	sbuf_init(&s);
	assert_int_equal(d->ops->save(d, &s), 0);
	rbuf_init(&rb, s.data, s.len);
	assert_int_equal(d->ops->restore(d, &rb), 0);
	s.data[0] = 7;
	rbuf_init(&rb, s.data, s.len);
	assert_int_equal(d->ops->restore(d, &rb), -EBADMSG);
	sbuf_free(&s);
	d->ops->destroy(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_output_lines),
		cmocka_unit_test(test_dlab_and_scratch),
		cmocka_unit_test(test_interrupts_and_fifo),
		cmocka_unit_test(test_save_restore_mid_line),
		cmocka_unit_test(test_power),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
