/* vmkctl output formatters: table, json, csv, keyvalue and xml renderings of a struct out_doc.
 *
 * Every renderer appends to an in-memory buffer with a sticky error (struct sbuf); the result
 * is written to the stream in one go once it is complete.
 */
#include "output.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* ---- growable string buffer with a sticky error ---- */

struct sbuf {
	char *p;
	size_t len;
	size_t cap;
	int err;
};

static bool sb_reserve(struct sbuf *b, size_t n)
{
	size_t need, cap;
	char *p;

	if (b->err)
		return false;
	if (n > SIZE_MAX - b->len - 1) {
		b->err = -ENOMEM;
		return false;
	}
	need = b->len + n + 1;
	if (need <= b->cap)
		return true;
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	p = realloc(b->p, cap);
	if (!p) {
		b->err = -ENOMEM;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

static void sb_put(struct sbuf *b, const char *s, size_t n)
{
	if (!sb_reserve(b, n))
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void sb_puts(struct sbuf *b, const char *s)
{
	sb_put(b, s, strlen(s));
}

static void sb_putc(struct sbuf *b, char c)
{
	sb_put(b, &c, 1);
}

static void sb_repeat(struct sbuf *b, char c, size_t n)
{
	if (!sb_reserve(b, n))
		return;
	memset(b->p + b->len, c, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void sb_int(struct sbuf *b, int64_t v)
{
	char tmp[24];
	int n = snprintf(tmp, sizeof(tmp), "%" PRId64, v);

	sb_put(b, tmp, (size_t)n);
}

/* Empties b, keeping its memory. */
static void sb_reset(struct sbuf *b)
{
	b->len = 0;
	if (b->p)
		b->p[0] = '\0';
}

/* Drops trailing spaces, but none before offset from. */
static void sb_rstrip(struct sbuf *b, size_t from)
{
	if (b->err)
		return;
	while (b->len > from && b->p[b->len - 1] == ' ')
		b->len--;
	if (b->p)
		b->p[b->len] = '\0';
}

/* Takes the buffer's string (an empty one when nothing was appended); NULL on error. */
static char *sb_steal(struct sbuf *b)
{
	char *s;

	if (b->err) {
		free(b->p);
		s = NULL;
	} else {
		s = b->p ? b->p : strdup("");
	}
	memset(b, 0, sizeof(*b));
	return s;
}

static void sb_free(struct sbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* ---- UTF-8 ---- */

#define CP_INVALID  UINT32_MAX
#define REPLACEMENT "\xef\xbf\xbd" /* U+FFFD */

/* Decodes the code point at s, a NUL-terminated string with *s != '\0'. Returns the number of
 * bytes it takes; an invalid sequence yields CP_INVALID and the length of its maximal valid
 * prefix (at least 1), so that each maximal subpart becomes one U+FFFD (Unicode 3.9, D93b).
 */
static size_t utf8_decode(const unsigned char *s, uint32_t *cp)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	size_t n, i;
	uint32_t v;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		v = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		v = c & 0x0f;
		if (c == 0xe0)
			lo = 0xa0; /* no overlong forms */
		else if (c == 0xed)
			hi = 0x9f; /* no surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		v = c & 0x07;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f; /* nothing above U+10FFFF */
	} else {
		*cp = CP_INVALID;
		return 1;
	}
	for (i = 1; i < n; i++) {
		/* the NUL terminator fails this test: never reads past the string */
		if (s[i] < lo || s[i] > hi) {
			*cp = CP_INVALID;
			return i;
		}
		v = (v << 6) | (s[i] & 0x3f);
		lo = 0x80;
		hi = 0xbf;
	}
	*cp = v;
	return n;
}

struct cp_range {
	uint32_t lo, hi;
};

/* Zero-width combining marks and format characters (the common ones). */
static const struct cp_range zero_width[] = {
	{ 0x0300, 0x036f }, { 0x200b, 0x200f }, { 0x20d0, 0x20ff },
	{ 0xfe00, 0xfe0f }, { 0xfe20, 0xfe2f },
};

/* East Asian wide and fullwidth characters, emoji (approximately). */
static const struct cp_range double_width[] = {
	{ 0x1100, 0x115f },   { 0x2e80, 0x303e },   { 0x3041, 0x33ff },   { 0x3400, 0x4dbf },
	{ 0x4e00, 0x9fff },   { 0xa000, 0xa4cf },   { 0xac00, 0xd7a3 },   { 0xf900, 0xfaff },
	{ 0xfe30, 0xfe4f },   { 0xff00, 0xff60 },   { 0xffe0, 0xffe6 },   { 0x1f300, 0x1f64f },
	{ 0x1f900, 0x1f9ff }, { 0x20000, 0x2fffd }, { 0x30000, 0x3fffd },
};

static bool cp_in(uint32_t cp, const struct cp_range *r, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (cp >= r[i].lo && cp <= r[i].hi)
			return true;
	}
	return false;
}

/* Terminal columns taken by a printable code point. */
static size_t cp_width(uint32_t cp)
{
	if (cp < 0x300)
		return 1;
	if (cp_in(cp, zero_width, sizeof(zero_width) / sizeof(zero_width[0])))
		return 0;
	if (cp_in(cp, double_width, sizeof(double_width) / sizeof(double_width[0])))
		return 2;
	return 1;
}

static bool cp_is_control(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
}

/* ---- column titles ---- */

static const struct {
	const char *word;
	const char *title;
} title_words[] = {
	{ "id", "ID" },       { "mib", "MiB" }, { "gib", "GiB" },   { "kib", "KiB" },
	{ "mhz", "MHz" },     { "cpu", "CPU" }, { "cpus", "CPUs" }, { "vcpus", "vCPUs" },
	{ "kvm", "KVM" },     { "ip", "IP" },   { "ipv4", "IPv4" }, { "mtu", "MTU" },
	{ "mac", "MAC" },     { "ft", "FT" },   { "vm", "VM" },     { "uuid", "UUID" },
	{ "pid", "PID" },     { "tls", "TLS" }, { "url", "URL" },   { "ms", "ms" },
	{ "bytes", "Bytes" },
};

static void title_text(struct sbuf *b, const char *col)
{
	const char *p = col;
	bool first = true;
	size_t i, n;

	while (*p) {
		n = strcspn(p, "_");
		if (n) {
			const char *fixed = NULL;

			for (i = 0; i < sizeof(title_words) / sizeof(title_words[0]); i++) {
				if (strlen(title_words[i].word) == n &&
				    !memcmp(title_words[i].word, p, n)) {
					fixed = title_words[i].title;
					break;
				}
			}
			if (!first)
				sb_putc(b, ' ');
			if (fixed) {
				sb_puts(b, fixed);
			} else {
				sb_putc(b, *p >= 'a' && *p <= 'z' ? (char)(*p - 'a' + 'A') : *p);
				sb_put(b, p + 1, n - 1);
			}
			first = false;
		}
		p += n;
		if (*p == '_')
			p++;
	}
}

int out_column_title(const char *col, char **title)
{
	struct sbuf b = { 0 };

	if (!col || !title)
		return -EINVAL;
	title_text(&b, col);
	*title = sb_steal(&b);
	return *title ? 0 : -ENOMEM;
}

/* ---- building ---- */

static void cell_clear(struct out_cell *c)
{
	size_t i;

	free(c->s);
	if (c->list) {
		for (i = 0; i < c->nlist; i++)
			free(c->list[i]);
		free(c->list);
	}
	memset(c, 0, sizeof(*c));
}

int out_init(struct out_doc *d, const char *type_name, bool is_list, size_t ncols,
             const char *const *cols)
{
	size_t i, j;

	if (!d)
		return -EINVAL;
	memset(d, 0, sizeof(*d));
	if (!type_name || (ncols && !cols))
		return -EINVAL;
	for (i = 0; i < ncols; i++) {
		if (!cols[i])
			return -EINVAL;
		for (j = 0; j < i; j++) {
			if (!strcmp(cols[i], cols[j]))
				return -EINVAL;
		}
	}

	d->is_list = is_list;
	d->type_name = strdup(type_name);
	if (!d->type_name)
		goto nomem;
	if (ncols) {
		d->cols = calloc(ncols, sizeof(*d->cols));
		if (!d->cols)
			goto nomem;
		d->ncols = ncols;
		for (i = 0; i < ncols; i++) {
			d->cols[i] = strdup(cols[i]);
			if (!d->cols[i])
				goto nomem;
		}
	}
	return 0;

nomem:
	out_free(d);
	return -ENOMEM;
}

int out_add_row(struct out_doc *d)
{
	size_t n, cap;
	struct out_cell *cells;

	if (!d)
		return -EINVAL;
	n = d->nrows;
	if (n >= INT_MAX)
		return -EOVERFLOW;
	if (n >= d->row_cap || !d->cells) {
		cap = n < 4 ? 4 : n * 2;
		if (d->ncols && cap > SIZE_MAX / sizeof(*cells) / d->ncols)
			return -ENOMEM;
		/* at least one byte: realloc(p, 0) may free p */
		cells = realloc(d->cells, d->ncols ? cap * d->ncols * sizeof(*cells) : 1);
		if (!cells)
			return -ENOMEM;
		d->cells = cells;
		d->row_cap = cap;
	}
	if (d->ncols)
		memset(&d->cells[n * d->ncols], 0, d->ncols * sizeof(*d->cells));
	d->nrows = n + 1;
	return (int)n;
}

static int cell_at(struct out_doc *d, size_t row, const char *col, struct out_cell **cell)
{
	size_t i;

	if (!d || !col)
		return -EINVAL;
	for (i = 0; i < d->ncols; i++) {
		if (d->cols[i] && !strcmp(d->cols[i], col))
			break;
	}
	if (i == d->ncols)
		return -ENOENT;
	if (row >= d->nrows)
		return -ERANGE;
	*cell = &d->cells[row * d->ncols + i];
	return 0;
}

int out_set_str(struct out_doc *d, size_t row, const char *col, const char *s)
{
	struct out_cell *c;
	char *dup = NULL;
	int ret;

	ret = cell_at(d, row, col, &c);
	if (ret)
		return ret;
	if (s) {
		dup = strdup(s);
		if (!dup)
			return -ENOMEM;
	}
	cell_clear(c);
	if (dup) {
		c->type = OUT_STR;
		c->s = dup;
	}
	return 0;
}

int out_set_int(struct out_doc *d, size_t row, const char *col, int64_t v)
{
	struct out_cell *c;
	int ret;

	ret = cell_at(d, row, col, &c);
	if (ret)
		return ret;
	cell_clear(c);
	c->type = OUT_INT;
	c->i = v;
	return 0;
}

int out_set_bool(struct out_doc *d, size_t row, const char *col, bool v)
{
	struct out_cell *c;
	int ret;

	ret = cell_at(d, row, col, &c);
	if (ret)
		return ret;
	cell_clear(c);
	c->type = OUT_BOOL;
	c->b = v;
	return 0;
}

int out_set_list(struct out_doc *d, size_t row, const char *col, const char *const *v, size_t n)
{
	struct out_cell *c;
	char **list;
	size_t i;
	int ret;

	ret = cell_at(d, row, col, &c);
	if (ret)
		return ret;
	if (n && !v)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		if (!v[i])
			return -EINVAL;
	}
	list = calloc(n ? n : 1, sizeof(*list));
	if (!list)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		list[i] = strdup(v[i]);
		if (!list[i]) {
			ret = -ENOMEM;
			goto err;
		}
	}
	cell_clear(c);
	c->type = OUT_STRLIST;
	c->list = list;
	c->nlist = n;
	return 0;

err:
	while (i--)
		free(list[i]);
	free(list);
	return ret;
}

void out_free(struct out_doc *d)
{
	size_t i;

	if (!d)
		return;
	free(d->type_name);
	if (d->cols) {
		for (i = 0; i < d->ncols; i++)
			free(d->cols[i]);
		free(d->cols);
	}
	if (d->cells) {
		for (i = 0; i < d->nrows * d->ncols; i++)
			cell_clear(&d->cells[i]);
		free(d->cells);
	}
	memset(d, 0, sizeof(*d));
}

/* ---- format names ---- */

static const char *const format_names[] = {
	[FMT_TABLE] = "table",       [FMT_JSON] = "json", [FMT_CSV] = "csv",
	[FMT_KEYVALUE] = "keyvalue", [FMT_XML] = "xml",
};

#define NFORMATS (sizeof(format_names) / sizeof(format_names[0]))

int out_format_parse(const char *name, enum out_format *f)
{
	size_t i;

	if (!name || !f)
		return -EINVAL;
	for (i = 0; i < NFORMATS; i++) {
		if (!strcmp(name, format_names[i])) {
			*f = (enum out_format)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *out_format_name(enum out_format f)
{
	if ((size_t)f >= NFORMATS)
		return NULL;
	return format_names[f];
}

/* ---- table ---- */

/* Appends s for a table cell: invalid UTF-8 becomes U+FFFD and control characters spaces, so
 * that a cell never breaks its line. Returns the display width appended. */
static size_t table_text(struct sbuf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t k, w = 0;
	uint32_t cp;

	while (*p) {
		k = utf8_decode(p, &cp);
		if (cp == CP_INVALID) {
			sb_puts(b, REPLACEMENT);
			w++;
		} else if (cp_is_control(cp)) {
			sb_putc(b, ' ');
			w++;
		} else {
			sb_put(b, (const char *)p, k);
			w += cp_width(cp);
		}
		p += k;
	}
	return w;
}

static size_t table_cell(struct sbuf *b, const struct out_cell *c)
{
	size_t i, w = 0;

	switch (c->type) {
	case OUT_STR:
		return c->s ? table_text(b, c->s) : 0;
	case OUT_INT: {
		size_t start = b->len;

		sb_int(b, c->i);
		return b->err ? 0 : b->len - start;
	}
	case OUT_BOOL:
		sb_puts(b, c->b ? "true" : "false");
		return c->b ? 4 : 5;
	case OUT_STRLIST:
		for (i = 0; i < c->nlist; i++) {
			if (i) {
				sb_puts(b, ", ");
				w += 2;
			}
			w += table_text(b, c->list[i]);
		}
		return w;
	case OUT_NULL:
	default:
		return 0;
	}
}

struct tcell {
	char *s;
	size_t w;
};

static int tcell_title(struct tcell *t, const char *col)
{
	struct sbuf raw = { 0 }, b = { 0 };
	int ret;

	title_text(&raw, col);
	if (raw.err) {
		ret = raw.err;
		goto out;
	}
	t->w = table_text(&b, raw.p ? raw.p : "");
	t->s = sb_steal(&b);
	ret = t->s ? 0 : -ENOMEM;
out:
	sb_free(&raw);
	return ret;
}

static int tcell_value(struct tcell *t, const struct out_cell *c)
{
	struct sbuf b = { 0 };

	t->w = table_cell(&b, c);
	t->s = sb_steal(&b);
	return t->s ? 0 : -ENOMEM;
}

/* Appends t padded to width w, right-aligned if right. */
static void table_pad(struct sbuf *b, const struct tcell *t, size_t w, bool right)
{
	size_t pad = w > t->w ? w - t->w : 0;

	if (right)
		sb_repeat(b, ' ', pad);
	sb_puts(b, t->s);
	if (!right)
		sb_repeat(b, ' ', pad);
}

static int render_table_list(struct sbuf *b, const struct out_doc *d)
{
	size_t ncells = d->nrows * d->ncols, r, c, start;
	struct tcell *titles = NULL, *cells = NULL;
	size_t *width = NULL;
	int ret = -ENOMEM;

	titles = calloc(d->ncols ? d->ncols : 1, sizeof(*titles));
	cells = calloc(ncells ? ncells : 1, sizeof(*cells));
	width = calloc(d->ncols ? d->ncols : 1, sizeof(*width));
	if (!titles || !cells || !width)
		goto out;

	for (c = 0; c < d->ncols; c++) {
		ret = tcell_title(&titles[c], d->cols[c]);
		if (ret)
			goto out;
		width[c] = titles[c].w;
	}
	for (r = 0; r < d->nrows; r++) {
		for (c = 0; c < d->ncols; c++) {
			struct tcell *t = &cells[r * d->ncols + c];

			ret = tcell_value(t, &d->cells[r * d->ncols + c]);
			if (ret)
				goto out;
			if (t->w > width[c])
				width[c] = t->w;
		}
	}

	start = b->len;
	for (c = 0; c < d->ncols; c++) {
		if (c)
			sb_puts(b, "  ");
		table_pad(b, &titles[c], width[c], false);
	}
	sb_rstrip(b, start);
	sb_putc(b, '\n');

	start = b->len;
	for (c = 0; c < d->ncols; c++) {
		if (c)
			sb_puts(b, "  ");
		sb_repeat(b, '-', width[c]);
	}
	sb_rstrip(b, start);
	sb_putc(b, '\n');

	for (r = 0; r < d->nrows; r++) {
		start = b->len;
		for (c = 0; c < d->ncols; c++) {
			if (c)
				sb_puts(b, "  ");
			table_pad(b, &cells[r * d->ncols + c], width[c],
			          d->cells[r * d->ncols + c].type == OUT_INT);
		}
		sb_rstrip(b, start);
		sb_putc(b, '\n');
	}
	ret = 0;

out:
	if (titles) {
		for (c = 0; c < d->ncols; c++)
			free(titles[c].s);
	}
	if (cells) {
		for (c = 0; c < ncells; c++)
			free(cells[c].s);
	}
	free(titles);
	free(cells);
	free(width);
	return ret;
}

/* A single object, as esxcli's `system version get`: "   Title: value" per column. */
static int render_table_object(struct sbuf *b, const struct out_doc *d)
{
	struct sbuf raw = { 0 };
	size_t c, start;
	int ret = 0;

	for (c = 0; c < d->ncols; c++) {
		sb_reset(&raw);
		title_text(&raw, d->cols[c]);
		if (raw.err) {
			ret = raw.err;
			break;
		}
		start = b->len;
		sb_puts(b, "   ");
		table_text(b, raw.p ? raw.p : "");
		sb_puts(b, ": ");
		table_cell(b, &d->cells[c]);
		sb_rstrip(b, start);
		sb_putc(b, '\n');
	}
	sb_free(&raw);
	return ret;
}

/* ---- json ---- */

static void json_text(struct sbuf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	char esc[7];
	uint32_t cp;
	size_t k;

	while (*p) {
		k = utf8_decode(p, &cp);
		switch (cp) {
		case CP_INVALID:
			sb_puts(b, "\\ufffd");
			break;
		case '"':
			sb_puts(b, "\\\"");
			break;
		case '\\':
			sb_puts(b, "\\\\");
			break;
		case '\b':
			sb_puts(b, "\\b");
			break;
		case '\f':
			sb_puts(b, "\\f");
			break;
		case '\n':
			sb_puts(b, "\\n");
			break;
		case '\r':
			sb_puts(b, "\\r");
			break;
		case '\t':
			sb_puts(b, "\\t");
			break;
		default:
			if (cp < 0x20 || cp == 0x7f) {
				memcpy(esc, "\\u00", 4);
				esc[4] = hex[cp >> 4];
				esc[5] = hex[cp & 0xf];
				sb_put(b, esc, 6);
			} else {
				sb_put(b, (const char *)p, k);
			}
			break;
		}
		p += k;
	}
}

static void json_str(struct sbuf *b, const char *s)
{
	if (!s) {
		sb_puts(b, "null");
		return;
	}
	sb_putc(b, '"');
	json_text(b, s);
	sb_putc(b, '"');
}

static void json_cell(struct sbuf *b, const struct out_cell *c)
{
	size_t i;

	switch (c->type) {
	case OUT_STR:
		json_str(b, c->s);
		break;
	case OUT_INT:
		sb_int(b, c->i);
		break;
	case OUT_BOOL:
		sb_puts(b, c->b ? "true" : "false");
		break;
	case OUT_STRLIST:
		sb_putc(b, '[');
		for (i = 0; i < c->nlist; i++) {
			if (i)
				sb_putc(b, ',');
			json_str(b, c->list[i]);
		}
		sb_putc(b, ']');
		break;
	case OUT_NULL:
	default:
		sb_puts(b, "null");
		break;
	}
}

static void json_object(struct sbuf *b, const struct out_doc *d, size_t row)
{
	size_t c;

	sb_putc(b, '{');
	for (c = 0; c < d->ncols; c++) {
		if (c)
			sb_putc(b, ',');
		json_str(b, d->cols[c]);
		sb_putc(b, ':');
		json_cell(b, &d->cells[row * d->ncols + c]);
	}
	sb_putc(b, '}');
}

static int render_json(struct sbuf *b, const struct out_doc *d)
{
	size_t r;

	if (d->is_list) {
		sb_putc(b, '[');
		for (r = 0; r < d->nrows; r++) {
			if (r)
				sb_putc(b, ',');
			json_object(b, d, r);
		}
		sb_putc(b, ']');
	} else {
		json_object(b, d, 0);
	}
	sb_putc(b, '\n');
	return 0;
}

/* ---- csv ---- */

static bool csv_special(const char *s)
{
	return strpbrk(s, ",\"\r\n") != NULL;
}

static void csv_text(struct sbuf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	uint32_t cp;
	size_t k;

	while (*p) {
		k = utf8_decode(p, &cp);
		if (cp == CP_INVALID)
			sb_puts(b, REPLACEMENT);
		else if (cp == '"')
			sb_puts(b, "\"\"");
		else
			sb_put(b, (const char *)p, k);
		p += k;
	}
}

static void csv_str(struct sbuf *b, const char *s)
{
	bool quote = csv_special(s);

	if (quote)
		sb_putc(b, '"');
	csv_text(b, s);
	if (quote)
		sb_putc(b, '"');
}

static void csv_cell(struct sbuf *b, const struct out_cell *c)
{
	bool quote;
	size_t i;

	switch (c->type) {
	case OUT_STR:
		if (c->s)
			csv_str(b, c->s);
		break;
	case OUT_INT:
		sb_int(b, c->i);
		break;
	case OUT_BOOL:
		sb_puts(b, c->b ? "true" : "false");
		break;
	case OUT_STRLIST:
		quote = c->nlist > 1;
		for (i = 0; i < c->nlist && !quote; i++)
			quote = csv_special(c->list[i]);
		if (quote)
			sb_putc(b, '"');
		for (i = 0; i < c->nlist; i++) {
			if (i)
				sb_puts(b, ", ");
			csv_text(b, c->list[i]);
		}
		if (quote)
			sb_putc(b, '"');
		break;
	case OUT_NULL:
	default:
		break;
	}
}

static int render_csv(struct sbuf *b, const struct out_doc *d)
{
	size_t r, c;

	for (c = 0; c < d->ncols; c++) {
		if (c)
			sb_putc(b, ',');
		csv_str(b, d->cols[c]);
	}
	sb_putc(b, '\n');
	for (r = 0; r < d->nrows; r++) {
		for (c = 0; c < d->ncols; c++) {
			if (c)
				sb_putc(b, ',');
			csv_cell(b, &d->cells[r * d->ncols + c]);
		}
		sb_putc(b, '\n');
	}
	return 0;
}

/* ---- keyvalue ---- */

static void kv_text(struct sbuf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	uint32_t cp;
	size_t k;

	while (*p) {
		k = utf8_decode(p, &cp);
		if (cp == CP_INVALID)
			sb_puts(b, REPLACEMENT);
		else if (cp == '\\')
			sb_puts(b, "\\\\");
		else if (cp == '\n')
			sb_puts(b, "\\n");
		else if (cp == '\r')
			sb_puts(b, "\\r");
		else
			sb_put(b, (const char *)p, k);
		p += k;
	}
}

static void kv_key(struct sbuf *b, const struct out_doc *d, size_t col, const char *type)
{
	kv_text(b, d->type_name ? d->type_name : "");
	sb_putc(b, '.');
	kv_text(b, d->cols[col]);
	sb_putc(b, '.');
	sb_puts(b, type);
	sb_putc(b, '=');
}

static void kv_field(struct sbuf *b, const struct out_doc *d, size_t col, const struct out_cell *c)
{
	size_t i;

	switch (c->type) {
	case OUT_STR:
		kv_key(b, d, col, "string");
		kv_text(b, c->s ? c->s : "");
		break;
	case OUT_INT:
		kv_key(b, d, col, "integer");
		sb_int(b, c->i);
		break;
	case OUT_BOOL:
		kv_key(b, d, col, "boolean");
		sb_puts(b, c->b ? "true" : "false");
		break;
	case OUT_STRLIST:
		for (i = 0; i < c->nlist; i++) {
			kv_key(b, d, col, "string[]");
			kv_text(b, c->list[i]);
			sb_putc(b, '\n');
		}
		return;
	case OUT_NULL:
	default:
		kv_key(b, d, col, "string");
		break;
	}
	sb_putc(b, '\n');
}

static int render_keyvalue(struct sbuf *b, const struct out_doc *d)
{
	size_t r, c;

	for (r = 0; r < d->nrows; r++) {
		if (r)
			sb_putc(b, '\n');
		for (c = 0; c < d->ncols; c++)
			kv_field(b, d, c, &d->cells[r * d->ncols + c]);
	}
	return 0;
}

/* ---- xml ---- */

static void xml_text(struct sbuf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	uint32_t cp;
	size_t k;

	while (*p) {
		k = utf8_decode(p, &cp);
		switch (cp) {
		case CP_INVALID:
			sb_puts(b, REPLACEMENT);
			break;
		case '&':
			sb_puts(b, "&amp;");
			break;
		case '<':
			sb_puts(b, "&lt;");
			break;
		case '>':
			sb_puts(b, "&gt;");
			break;
		case '"':
			sb_puts(b, "&quot;");
			break;
		case '\'':
			sb_puts(b, "&apos;");
			break;
		case '\r':
			sb_puts(b, "&#13;"); /* a literal CR would be normalized away by parsers */
			break;
		case '\t':
		case '\n':
			sb_putc(b, (char)cp);
			break;
		case 0xfffe:
		case 0xffff:
			break; /* not XML characters */
		default:
			if (cp >= 0x20)
				sb_put(b, (const char *)p, k);
			break;
		}
		p += k;
	}
}

static void xml_indent(struct sbuf *b, int level)
{
	sb_repeat(b, ' ', (size_t)level * 3);
}

static void xml_string(struct sbuf *b, int level, const char *s)
{
	xml_indent(b, level);
	sb_puts(b, "<string>");
	xml_text(b, s ? s : "");
	sb_puts(b, "</string>\n");
}

static void xml_value(struct sbuf *b, int level, const struct out_cell *c)
{
	size_t i;

	switch (c->type) {
	case OUT_STR:
		xml_string(b, level, c->s);
		break;
	case OUT_INT:
		xml_indent(b, level);
		sb_puts(b, "<integer>");
		sb_int(b, c->i);
		sb_puts(b, "</integer>\n");
		break;
	case OUT_BOOL:
		xml_indent(b, level);
		sb_puts(b, c->b ? "<boolean>true</boolean>\n" : "<boolean>false</boolean>\n");
		break;
	case OUT_STRLIST:
		xml_indent(b, level);
		sb_puts(b, "<list type=\"string\">\n");
		for (i = 0; i < c->nlist; i++)
			xml_string(b, level + 1, c->list[i]);
		xml_indent(b, level);
		sb_puts(b, "</list>\n");
		break;
	case OUT_NULL:
	default:
		xml_string(b, level, "");
		break;
	}
}

static void xml_structure(struct sbuf *b, int level, const struct out_doc *d, size_t row)
{
	size_t c;

	xml_indent(b, level);
	sb_puts(b, "<structure typeName=\"");
	xml_text(b, d->type_name ? d->type_name : "");
	sb_puts(b, "\">\n");
	for (c = 0; c < d->ncols; c++) {
		xml_indent(b, level + 1);
		sb_puts(b, "<field name=\"");
		xml_text(b, d->cols[c]);
		sb_puts(b, "\">\n");
		xml_value(b, level + 2, &d->cells[row * d->ncols + c]);
		xml_indent(b, level + 1);
		sb_puts(b, "</field>\n");
	}
	xml_indent(b, level);
	sb_puts(b, "</structure>\n");
}

static int render_xml(struct sbuf *b, const struct out_doc *d)
{
	size_t r;

	sb_puts(b, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
	           "<output xmlns=\"http://www.vmware.com/Products/ESX/5.0/esxcli\">\n"
	           "<root>\n");
	if (d->is_list) {
		xml_indent(b, 1);
		sb_puts(b, "<list type=\"structure\">\n");
		for (r = 0; r < d->nrows; r++)
			xml_structure(b, 2, d, r);
		xml_indent(b, 1);
		sb_puts(b, "</list>\n");
	} else {
		xml_structure(b, 1, d, 0);
	}
	sb_puts(b, "</root>\n"
	           "</output>\n");
	return 0;
}

/* ---- rendering ---- */

static int write_all(FILE *f, const struct sbuf *b)
{
	if (!b->len)
		return 0;
	errno = 0;
	if (fwrite(b->p, 1, b->len, f) != b->len)
		return errno ? -errno : -EIO;
	return 0;
}

static bool doc_valid(const struct out_doc *d)
{
	size_t c;

	if (!d->is_list && d->nrows != 1)
		return false;
	if (d->ncols && !d->cols)
		return false;
	for (c = 0; c < d->ncols; c++) {
		if (!d->cols[c])
			return false;
	}
	return !(d->nrows && d->ncols && !d->cells);
}

int out_render(FILE *f, enum out_format fmt, const struct out_doc *d)
{
	struct sbuf b = { 0 };
	int ret;

	if (!f || !d || !doc_valid(d))
		return -EINVAL;
	switch (fmt) {
	case FMT_TABLE:
		ret = d->is_list ? render_table_list(&b, d) : render_table_object(&b, d);
		break;
	case FMT_JSON:
		ret = render_json(&b, d);
		break;
	case FMT_CSV:
		ret = render_csv(&b, d);
		break;
	case FMT_KEYVALUE:
		ret = render_keyvalue(&b, d);
		break;
	case FMT_XML:
		ret = render_xml(&b, d);
		break;
	default:
		ret = -EINVAL;
		break;
	}
	if (!ret)
		ret = b.err;
	if (!ret)
		ret = write_all(f, &b);
	sb_free(&b);
	return ret;
}

int out_render_json_error(FILE *f, int code, const char *code_name, const char *message)
{
	struct sbuf b = { 0 };
	int ret;

	if (!f)
		return -EINVAL;
	sb_puts(&b, "{\"error\":{\"code\":");
	sb_int(&b, code);
	sb_puts(&b, ",\"name\":");
	json_str(&b, code_name);
	sb_puts(&b, ",\"message\":");
	json_str(&b, message);
	sb_puts(&b, "}}\n");
	ret = b.err;
	if (!ret)
		ret = write_all(f, &b);
	sb_free(&b);
	return ret;
}
