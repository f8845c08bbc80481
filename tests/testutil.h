/* Helpers shared by the unit tests (header-only: each test is one program).
 * Include after <cmocka.h>. */
#ifndef VMK_TESTUTIL_H
#define VMK_TESTUTIL_H

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "vmm/state.h"

/* Compares actual with the golden file at path (relative to VMK_SRCDIR, the
 * test's working directory); VMK_UPDATE_GOLDEN=1 rewrites it instead. */
static inline void check_golden(const char *golden, const char *actual)
{
	const char *u = getenv("VMK_UPDATE_GOLDEN");
	char *expected = NULL;

	if (u && strcmp(u, "1") == 0) {
		assert_int_equal(util_write_file_atomic(golden, actual, strlen(actual), 0644), 0);
		return;
	}
	if (util_read_file(golden, 1u << 20, &expected, NULL) < 0)
		fail_msg("missing golden file %s (run with VMK_UPDATE_GOLDEN=1)", golden);
	if (strcmp(expected, actual) != 0) {
		print_error("golden %s differs\n--- expected\n%s--- actual\n%s", golden, expected,
		            actual);
		free(expected);
		fail();
	}
	free(expected);
}

/* A vmm_stream over a growable memory buffer. */
struct membuf {
	uint8_t *data;
	size_t len, cap, off;
};

static inline int membuf_write(void *arg, const void *p, size_t n)
{
	struct membuf *m = arg;

	if (m->len + n > m->cap) {
		m->cap = (m->len + n) * 2;
		m->data = realloc(m->data, m->cap);
		assert_non_null(m->data);
	}
	memcpy(m->data + m->len, p, n);
	m->len += n;
	return 0;
}

static inline int membuf_read(void *arg, void *p, size_t n)
{
	struct membuf *m = arg;

	if (n > m->len - m->off)
		return -EPIPE;
	memcpy(p, m->data + m->off, n);
	m->off += n;
	return 0;
}

static inline void membuf_stream(struct vmm_stream *s, struct membuf *m)
{
	memset(s, 0, sizeof(*s));
	s->write = membuf_write;
	s->read = membuf_read;
	s->arg = m;
}

#endif
