/* vmkctl output model: what a command produces before a formatter renders it.
 *
 * A command yields one `struct out_doc`: either a single object (is_list =
 * false, exactly one row) or a list of objects (is_list = true, zero or more
 * rows). Every row has the same columns; column names are snake_case and are
 * the JSON field names of ../shared/CLI.md.
 */
#ifndef VMKCTL_OUTPUT_H
#define VMKCTL_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum out_type {
	OUT_NULL = 0, /* absent value: "" in table/csv, null in json */
	OUT_STR,
	OUT_INT,
	OUT_BOOL,
	OUT_STRLIST, /* list of strings: json array, ", "-joined in table */
};

struct out_cell {
	enum out_type type;
	char *s;     /* OUT_STR: owned */
	int64_t i;   /* OUT_INT */
	bool b;      /* OUT_BOOL */
	char **list; /* OUT_STRLIST: owned array of owned strings */
	size_t nlist;
};

struct out_doc {
	char *type_name; /* esxcli structure name for xml, e.g. "Datastore" */
	bool is_list;
	size_t ncols;
	char **cols; /* owned, snake_case */
	size_t nrows;
	struct out_cell *cells; /* nrows * ncols, row-major, owned */
	size_t row_cap;         /* rows allocated in cells (internal to output.c) */
};

/* Building. All return 0 or -ENOMEM (-EINVAL for NULL arguments or duplicate column names).
 * On failure out_init leaves d zeroed. */
int out_init(struct out_doc *d, const char *type_name, bool is_list, size_t ncols,
             const char *const *cols);
/* Appends an empty row (all OUT_NULL) and returns its index, or -ENOMEM. */
int out_add_row(struct out_doc *d);
/* The out_set_* functions return -ENOENT for an unknown column, -ERANGE for a row out of
 * range; a previous value of the cell is freed (and kept on failure). out_set_str with
 * s == NULL makes the cell OUT_NULL. */
int out_set_str(struct out_doc *d, size_t row, const char *col, const char *s);
int out_set_int(struct out_doc *d, size_t row, const char *col, int64_t v);
int out_set_bool(struct out_doc *d, size_t row, const char *col, bool v);
/* Copies the n strings. */
int out_set_list(struct out_doc *d, size_t row, const char *col, const char *const *v, size_t n);
/* Frees everything and zeroes d; safe on a zeroed or partially built doc, and twice. */
void out_free(struct out_doc *d);

enum out_format { FMT_TABLE, FMT_JSON, FMT_CSV, FMT_KEYVALUE, FMT_XML };

/* "table" -> FMT_TABLE ...; returns -EINVAL for an unknown name. */
int out_format_parse(const char *name, enum out_format *f);
/* "table" ...; NULL for a value outside enum out_format. */
const char *out_format_name(enum out_format f);

/* The table title of a snake_case column name: words split on '_', first letter capitalized,
 * well-known words spelled fixed ("memory_mib" -> "Memory MiB", "world_id" -> "World ID").
 * *title is malloc'ed. Returns 0, -EINVAL or -ENOMEM. */
int out_column_title(const char *col, char **title);

/* Renders d to f in the given format. Returns 0 or -errno (-EINVAL for an unknown format or a
 * single-object doc without exactly one row, -ENOMEM, or the write's error). The document is
 * rendered in memory first, so nothing is written when rendering fails; the stream is not
 * flushed. Every format emits valid UTF-8: invalid bytes become U+FFFD. In table cells control
 * characters become spaces; in keyvalue values backslash, LF and CR are written as the escapes
 * \\, \n and \r; in xml control characters other than TAB, LF and CR are dropped.
 */
int out_render(FILE *f, enum out_format fmt, const struct out_doc *d);

/* The JSON error document printed on stdout for a failed command with
 * --formatter json: {"error": {"code": N, "name": "...", "message": "..."}} */
int out_render_json_error(FILE *f, int code, const char *code_name, const char *message);

#endif
