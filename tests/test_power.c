/* The power/exit device on port 0xf4: writes power off with the low byte
 * as status, reads are 0, save/restore/reset. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/power.h"

struct calls {
	int n, status;
};

static void on_off(void *arg, int status)
{
	struct calls *c = arg;

	c->n++;
	c->status = status;
}

static struct vmm_bus bus;

static struct vmm_device *mk(struct calls *c)
{
	struct vmm_device *d = NULL;

	assert_int_equal(vmm_power_create(&d, &bus, on_off, c), 0);
	assert_non_null(d);
	return d;
}

static void out(struct vmm_device *d, uint16_t off, uint32_t v, unsigned size)
{
	uint8_t b[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };

	d->ops->pio(d, off, true, b, size);
}

static int restore(struct vmm_device *d, const void *p, size_t n)
{
	struct rbuf rb;

	rbuf_init(&rb, p, n);
	return d->ops->restore(d, &rb);
}

static void test_write_powers_off(void **state)
{
	struct calls c = { 0, -1 };
	struct vmm_device *d = mk(&c);
	int status = -1;

	(void)state;
	assert_string_equal(d->ops->name, "power");
	assert_int_equal(d->pio_base, 0xf4);
	assert_int_equal(d->pio_len, 4);
	assert_int_equal(d->mmio_len, 0);
	assert_false(vmm_power_get(d, &status));
	assert_int_equal(status, 0);
	out(d, 0, 0x2a, 1); /* outb 0x2a, 0xf4 */
	assert_int_equal(c.n, 1);
	assert_int_equal(c.status, 0x2a);
	assert_true(vmm_power_get(d, &status));
	assert_int_equal(status, 0x2a);
	/* wider writes: the low byte is the status */
	out(d, 0, 0x12345601, 4);
	assert_int_equal(c.status, 0x01);
	out(d, 0, 0xff00, 2);
	assert_int_equal(c.status, 0);
	assert_true(vmm_power_get(d, &status));
	assert_int_equal(status, 0);
	out(d, 3, 0xfe, 1); /* any port of the four */
	assert_int_equal(c.status, 0xfe);
	assert_int_equal(c.n, 4);
	d->ops->destroy(d);
}

static void test_reads_are_zero(void **state)
{
	struct calls c = { 0, -1 };
	struct vmm_device *d = mk(&c);
	uint8_t b[8];

	(void)state;
	for (unsigned size = 1; size <= 8; size *= 2) {
		memset(b, 0xaa, sizeof(b));
		d->ops->pio(d, 0, false, b, size);
		for (unsigned i = 0; i < size; i++)
			assert_int_equal(b[i], 0);
		for (unsigned i = size; i < sizeof(b); i++)
			assert_int_equal(b[i], 0xaa); /* nothing past the access */
	}
	assert_int_equal(c.n, 0);
	assert_false(vmm_power_get(d, NULL));
	d->ops->destroy(d);
}

static void test_no_callback(void **state)
{
	struct vmm_device *d = NULL;
	int status;

	(void)state;
	assert_int_equal(vmm_power_create(&d, &bus, NULL, NULL), 0);
	out(d, 0, 3, 1);
	assert_true(vmm_power_get(d, &status));
	assert_int_equal(status, 3);
	d->ops->destroy(d);
}

static void test_save_restore_reset(void **state)
{
	struct calls ca = { 0, -1 }, cb = { 0, -1 };
	struct vmm_device *a = mk(&ca), *b = mk(&cb);
	struct sbuf s, s2;
	int status;

	(void)state;
	out(a, 0, 0x107, 2);
	sbuf_init(&s);
	assert_int_equal(a->ops->save(a, &s), 0);
	assert_int_equal(restore(b, s.data, s.len), 0);
	assert_true(vmm_power_get(b, &status));
	assert_int_equal(status, 7);
	assert_int_equal(cb.n, 0); /* restoring does not call back */
	sbuf_init(&s2);
	assert_int_equal(b->ops->save(b, &s2), 0);
	assert_int_equal(s.len, s2.len);
	assert_memory_equal(s.data, s2.data, s.len);
	sbuf_free(&s2);

	/* every truncation and a byte too many */
	for (size_t len = 0; len < s.len; len++)
		assert_int_equal(restore(b, s.data, len), -EBADMSG);
	uint8_t longer[16] = { 0 };
	memcpy(longer, s.data, s.len);
	assert_int_equal(restore(b, longer, s.len + 1), -EBADMSG);
	/* values it cannot hold */
	const uint8_t bad[][3] = {
		{ 0, 1, 7 }, /* version */
		{ 2, 1, 7 },
		{ 1, 2, 7 }, /* not a bool */
		{ 1, 0, 7 }, /* a status without a power-off */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(restore(b, bad[i], 3), -EBADMSG);
	/* refusals left b as it was */
	assert_true(vmm_power_get(b, &status));
	assert_int_equal(status, 7);

	/* reset: power-on, which is also what a fresh device saves */
	b->ops->reset(b);
	assert_false(vmm_power_get(b, &status));
	assert_int_equal(status, 0);
	struct vmm_device *c = mk(&ca);
	sbuf_init(&s2);
	assert_int_equal(b->ops->save(b, &s2), 0);
	sbuf_free(&s);
	sbuf_init(&s);
	assert_int_equal(c->ops->save(c, &s), 0);
	assert_int_equal(s.len, s2.len);
	assert_memory_equal(s.data, s2.data, s.len);
	assert_int_equal(restore(a, s.data, s.len), 0);
	assert_false(vmm_power_get(a, NULL));
	sbuf_free(&s);
	sbuf_free(&s2);
	a->ops->destroy(a);
	b->ops->destroy(b);
	c->ops->destroy(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_write_powers_off),
		cmocka_unit_test(test_reads_are_zero),
		cmocka_unit_test(test_no_callback),
		cmocka_unit_test(test_save_restore_reset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
