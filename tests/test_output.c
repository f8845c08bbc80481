/* Unit tests of the vmkctl output formatters (vmkctl/output.c).
 *
 * Golden files live in $VMK_SRCDIR/tests/golden/output/ (VMK_SRCDIR defaults to "."); with
 * VMK_UPDATE_GOLDEN=1 the tests rewrite them instead of comparing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../vmkctl/output.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---- helpers ---- */

/* Renders d into a malloc'ed string; returns out_render's result. */
static int render(enum out_format fmt, const struct out_doc *d, char **text, size_t *len)
{
	FILE *f;
	int ret;

	*text = NULL;
	*len = 0;
	f = open_memstream(text, len);
	if (!f)
		return -errno;
	ret = out_render(f, fmt, d);
	if (fclose(f) && !ret)
		ret = -EIO;
	return ret;
}

static void assert_renders(enum out_format fmt, const struct out_doc *d, const char *expected)
{
	char *text;
	size_t len;

	assert_int_equal(render(fmt, d, &text, &len), 0);
	assert_string_equal(text, expected);
	assert_int_equal(len, strlen(expected));
	free(text);
}

static char *golden_path(const char *name)
{
	const char *srcdir = getenv("VMK_SRCDIR");
	char *path;

	if (!srcdir || !*srcdir)
		srcdir = ".";
	if (asprintf(&path, "%s/tests/golden/output/%s", srcdir, name) < 0)
		return NULL;
	return path;
}

static void make_golden_dirs(void)
{
	static const char *const dirs[] = { "tests", "tests/golden", "tests/golden/output" };
	const char *srcdir = getenv("VMK_SRCDIR");
	char *path;
	size_t i;

	if (!srcdir || !*srcdir)
		srcdir = ".";
	for (i = 0; i < ARRAY_SIZE(dirs); i++) {
		assert_true(asprintf(&path, "%s/%s", srcdir, dirs[i]) >= 0);
		if (mkdir(path, 0755) && errno != EEXIST)
			fail_msg("mkdir %s: %s", path, strerror(errno));
		free(path);
	}
}

static bool read_file(const char *path, char **text, size_t *len)
{
	FILE *in = fopen(path, "rb"), *out;
	char buf[4096];
	size_t n;

	if (!in)
		return false;
	out = open_memstream(text, len);
	assert_non_null(out);
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		assert_int_equal(fwrite(buf, 1, n, out), n);
	assert_false(ferror(in));
	fclose(in);
	assert_int_equal(fclose(out), 0);
	return true;
}

static void check_golden(const char *name, const char *actual, size_t len)
{
	const char *update = getenv("VMK_UPDATE_GOLDEN");
	char *path = golden_path(name), *expected = NULL;
	size_t elen = 0;
	FILE *f;

	assert_non_null(path);
	if (update && !strcmp(update, "1")) {
		make_golden_dirs();
		f = fopen(path, "wb");
		if (!f)
			fail_msg("cannot write %s: %s", path, strerror(errno));
		assert_int_equal(fwrite(actual, 1, len, f), len);
		assert_int_equal(fclose(f), 0);
		free(path);
		return;
	}
	if (!read_file(path, &expected, &elen)) {
		print_error("cannot read golden file %s: %s (VMK_UPDATE_GOLDEN=1 creates it)\n",
		            path, strerror(errno));
		free(path);
		fail();
	}
	if (elen != len || memcmp(expected, actual, len)) {
		print_error("output differs from golden file %s\n"
		            "--- expected (%zu bytes) ---\n%s\n"
		            "--- actual (%zu bytes) ---\n%s\n"
		            "--- end ---\n",
		            path, elen, expected, len, actual);
		free(expected);
		free(path);
		fail();
	}
	free(expected);
	free(path);
}

/* ---- test documents ---- */

static const char *const vm_cols[] = {
	"name", "state", "vcpus", "memory_mib", "ft_enabled", "ft_role", "networks", "annotation",
};

/* A list of virtual machines: strings, ints, bools, nulls and string lists; the annotation of
 * the first has a comma, quotes, an ampersand, a newline and a non-ASCII character. */
static void build_vm_list(struct out_doc *d, bool with_rows)
{
	static const char *const nets0[] = { "VM Network", "vMotion" };
	static const char *const nets1[] = { "Storage" };
	int r;

	assert_int_equal(out_init(d, "VirtualMachine", true, ARRAY_SIZE(vm_cols), vm_cols), 0);
	if (!with_rows)
		return;

	r = out_add_row(d);
	assert_int_equal(r, 0);
	assert_int_equal(out_set_str(d, r, "name", "web-01"), 0);
	assert_int_equal(out_set_str(d, r, "state", "poweredOn"), 0);
	assert_int_equal(out_set_int(d, r, "vcpus", 2), 0);
	assert_int_equal(out_set_int(d, r, "memory_mib", 4096), 0);
	assert_int_equal(out_set_bool(d, r, "ft_enabled", true), 0);
	assert_int_equal(out_set_str(d, r, "ft_role", "primary"), 0);
	assert_int_equal(out_set_list(d, r, "networks", nets0, ARRAY_SIZE(nets0)), 0);
	assert_int_equal(out_set_str(d, r, "annotation", "Tier 1, \"prod\" & ops\nowner: Zoë"), 0);

	r = out_add_row(d);
	assert_int_equal(r, 1);
	assert_int_equal(out_set_str(d, r, "name", "café-db"), 0);
	assert_int_equal(out_set_str(d, r, "state", "poweredOff"), 0);
	assert_int_equal(out_set_int(d, r, "vcpus", 16), 0);
	assert_int_equal(out_set_int(d, r, "memory_mib", 65536), 0);
	assert_int_equal(out_set_bool(d, r, "ft_enabled", false), 0);
	assert_int_equal(out_set_list(d, r, "networks", nets1, ARRAY_SIZE(nets1)), 0);
	/* ft_role and annotation stay null */

	r = out_add_row(d);
	assert_int_equal(r, 2);
	assert_int_equal(out_set_str(d, r, "name", "build"), 0);
	assert_int_equal(out_set_str(d, r, "state", "suspended"), 0);
	assert_int_equal(out_set_int(d, r, "vcpus", 1), 0);
	assert_int_equal(out_set_int(d, r, "memory_mib", 512), 0);
	assert_int_equal(out_set_bool(d, r, "ft_enabled", false), 0);
	assert_int_equal(out_set_str(d, r, "ft_role", "secondary"), 0);
	assert_int_equal(out_set_list(d, r, "networks", NULL, 0), 0);
	assert_int_equal(out_set_str(d, r, "annotation", "nightly CI"), 0);
}

/* A single object, as `system version get`. */
static void build_host_object(struct out_doc *d)
{
	static const char *const cols[] = {
		"hostname",   "product",          "version",        "cpus",
		"memory_mib", "maintenance_mode", "tls_thumbprint", "ipv4_addresses",
	};
	static const char *const addrs[] = { "192.168.1.10", "10.0.0.5" };

	assert_int_equal(out_init(d, "HostInfo", false, ARRAY_SIZE(cols), cols), 0);
	assert_int_equal(out_add_row(d), 0);
	assert_int_equal(out_set_str(d, 0, "hostname", "esx-01.lab"), 0);
	assert_int_equal(out_set_str(d, 0, "product", "vmk"), 0);
	assert_int_equal(out_set_str(d, 0, "version", "1.0.0"), 0);
	assert_int_equal(out_set_int(d, 0, "cpus", 16), 0);
	assert_int_equal(out_set_int(d, 0, "memory_mib", 65536), 0);
	assert_int_equal(out_set_bool(d, 0, "maintenance_mode", false), 0);
	/* tls_thumbprint stays null */
	assert_int_equal(out_set_list(d, 0, "ipv4_addresses", addrs, ARRAY_SIZE(addrs)), 0);
}

/* A single-object doc with one string column "s" set to value. */
static void build_one_string(struct out_doc *d, const char *value)
{
	static const char *const cols[] = { "s" };

	assert_int_equal(out_init(d, "T", false, 1, cols), 0);
	assert_int_equal(out_add_row(d), 0);
	assert_int_equal(out_set_str(d, 0, "s", value), 0);
}

/* ---- golden tests ---- */

enum doc_kind { DOC_LIST, DOC_OBJECT, DOC_EMPTY };

struct golden_case {
	enum doc_kind kind;
	enum out_format fmt;
	const char *file;
};

static void test_golden(void **state)
{
	const struct golden_case *gc = *state;
	struct out_doc d;
	char *text;
	size_t len;

	switch (gc->kind) {
	case DOC_LIST:
		build_vm_list(&d, true);
		break;
	case DOC_OBJECT:
		build_host_object(&d);
		break;
	case DOC_EMPTY:
	default:
		build_vm_list(&d, false);
		break;
	}
	assert_int_equal(render(gc->fmt, &d, &text, &len), 0);
	out_free(&d);
	check_golden(gc->file, text, len);
	free(text);
}

/* ---- unit tests ---- */

static void test_title_case(void **state)
{
	static const struct {
		const char *col, *title;
	} cases[] = {
		{ "name", "Name" },
		{ "memory_mib", "Memory MiB" },
		{ "world_id", "World ID" },
		{ "config_file", "Config File" },
		{ "vcpus", "vCPUs" },
		{ "cpus", "CPUs" },
		{ "cpu_reservation_mhz", "CPU Reservation MHz" },
		{ "disk_gib", "Disk GiB" },
		{ "cache_kib", "Cache KiB" },
		{ "kvm_version", "KVM Version" },
		{ "ip", "IP" },
		{ "ipv4_address", "IPv4 Address" },
		{ "mtu", "MTU" },
		{ "mac_address", "MAC Address" },
		{ "ft_role", "FT Role" },
		{ "vm_uuid", "VM UUID" },
		{ "pid", "PID" },
		{ "tls_thumbprint", "TLS Thumbprint" },
		{ "url", "URL" },
		{ "downtime_ms", "Downtime ms" },
		{ "transferred_bytes", "Transferred Bytes" },
		/* fixed spellings apply to whole words only */
		{ "identity", "Identity" },
		{ "video_ram", "Video Ram" },
		{ "vms", "Vms" },
		{ "x", "X" },
		{ "ipv6", "Ipv6" },
		{ "", "" },
		{ "a__b_", "A B" },
	};
	char *title;
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		assert_int_equal(out_column_title(cases[i].col, &title), 0);
		assert_string_equal(title, cases[i].title);
		free(title);
	}
	assert_int_equal(out_column_title(NULL, &title), -EINVAL);
}

static void test_table_titles(void **state)
{
	static const char *const cols[] = { "world_id", "memory_mib", "ft_role" };
	struct out_doc d;

	(void)state;
	assert_int_equal(out_init(&d, "T", true, ARRAY_SIZE(cols), cols), 0);
	assert_int_equal(out_add_row(&d), 0);
	assert_int_equal(out_set_int(&d, 0, "world_id", 1000123), 0);
	assert_int_equal(out_set_int(&d, 0, "memory_mib", 1024), 0);
	assert_renders(FMT_TABLE, &d,
	               "World ID  Memory MiB  FT Role\n"
	               "--------  ----------  -------\n"
	               " 1000123        1024\n");
	out_free(&d);
}

static void test_json_escape_control(void **state)
{
	struct out_doc d;

	(void)state;
	build_one_string(&d, "q\" b\\ n\n t\t r\r b\b f\f 01\x01 1f\x1f 7f\x7f /");
	assert_renders(FMT_JSON, &d,
	               "{\"s\":\"q\\\" b\\\\ n\\n t\\t r\\r b\\b f\\f 01\\u0001 1f\\u001f "
	               "7f\\u007f /\"}\n");
	out_free(&d);
}

static void test_json_utf8(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		/* valid UTF-8 passes through: 2, 3 and 4 byte sequences, U+10FFFF */
		{ "café € 日本 \xf0\x9d\x84\x9e \xf4\x8f\xbf\xbf",
		  "\"café € 日本 \xf0\x9d\x84\x9e \xf4\x8f\xbf\xbf\"" },
		{ "a\xff"
		  "b",
		  "\"a\\ufffdb\"" },             /* never a lead byte */
		{ "\x80", "\"\\ufffd\"" },       /* lone continuation */
		{ "caf\xc3", "\"caf\\ufffd\"" }, /* truncated at the end */
		{ "\xe2\x82"
		  "x",
		  "\"\\ufffdx\"" },                              /* truncated: one U+FFFD */
		{ "\xc0\xaf", "\"\\ufffd\\ufffd\"" },            /* overlong '/' */
		{ "\xe0\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\"" }, /* overlong, 3 bytes */
		{ "\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"" }, /* surrogate U+D800 */
		{ "\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\"" }, /* above U+10FFFF */
		{ "\xf5\x80", "\"\\ufffd\\ufffd\"" },
	};
	struct out_doc d;
	char *text, *expected;
	size_t i, len;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		build_one_string(&d, cases[i].in);
		assert_int_equal(render(FMT_JSON, &d, &text, &len), 0);
		assert_true(asprintf(&expected, "{\"s\":%s}\n", cases[i].out) >= 0);
		assert_string_equal(text, expected);
		free(expected);
		free(text);
		out_free(&d);
	}
}

static void test_json_types(void **state)
{
	static const char *const cols[] = { "a", "b", "c", "d", "e", "f" };
	static const char *const one[] = { "x\"y" };
	struct out_doc d;

	(void)state;
	assert_int_equal(out_init(&d, "T", true, ARRAY_SIZE(cols), cols), 0);
	assert_int_equal(out_add_row(&d), 0);
	assert_int_equal(out_set_int(&d, 0, "a", INT64_MIN), 0);
	assert_int_equal(out_set_int(&d, 0, "b", INT64_MAX), 0);
	assert_int_equal(out_set_bool(&d, 0, "c", false), 0);
	assert_int_equal(out_set_list(&d, 0, "d", NULL, 0), 0);
	assert_int_equal(out_set_list(&d, 0, "e", one, 1), 0);
	assert_renders(FMT_JSON, &d,
	               "[{\"a\":-9223372036854775808,\"b\":9223372036854775807,\"c\":false,"
	               "\"d\":[],\"e\":[\"x\\\"y\"],\"f\":null}]\n");
	out_free(&d);
}

static void test_json_error(void **state)
{
	char *text;
	size_t len;
	FILE *f;

	(void)state;
	f = open_memstream(&text, &len);
	assert_non_null(f);
	assert_int_equal(out_render_json_error(f, 4, "NOT_FOUND", "vm \"web\\01\" not found\n"), 0);
	assert_int_equal(out_render_json_error(f, 1, NULL, "é\xff"), 0);
	assert_int_equal(fclose(f), 0);
	assert_string_equal(text,
	                    "{\"error\":{\"code\":4,\"name\":\"NOT_FOUND\","
	                    "\"message\":\"vm \\\"web\\\\01\\\" not found\\n\"}}\n"
	                    "{\"error\":{\"code\":1,\"name\":null,\"message\":\"é\\ufffd\"}}\n");
	free(text);
	assert_int_equal(out_render_json_error(NULL, 1, "X", "y"), -EINVAL);
}

static void test_table_sanitize(void **state)
{
	static const char *const cols[] = { "name", "size", "note" };
	struct out_doc d;

	(void)state;
	assert_int_equal(out_init(&d, "T", true, ARRAY_SIZE(cols), cols), 0);
	assert_int_equal(out_add_row(&d), 0);
	assert_int_equal(out_add_row(&d), 1);
	assert_int_equal(out_add_row(&d), 2);
	/* control characters become spaces, wide characters take two columns, invalid UTF-8 one */
	assert_int_equal(out_set_str(&d, 0, "name", "a\nb\tc\x1b"), 0);
	assert_int_equal(out_set_str(&d, 1, "name", "日本"), 0);
	assert_int_equal(out_set_str(&d, 2, "name", "x\xff"), 0);
	assert_int_equal(out_set_int(&d, 0, "size", -5), 0);
	assert_int_equal(out_set_int(&d, 1, "size", 123456), 0);
	assert_int_equal(out_set_str(&d, 0, "note", "trailing\n"), 0);
	assert_int_equal(out_set_str(&d, 2, "note", "z"), 0);
	assert_renders(FMT_TABLE, &d,
	               "Name    Size    Note\n"
	               "------  ------  ---------\n"
	               "a b c       -5  trailing\n"
	               "日本    123456\n"
	               "x\xef\xbf\xbd              z\n");
	out_free(&d);
}

static void test_table_object_sanitize(void **state)
{
	struct out_doc d;

	(void)state;
	build_one_string(&d, "two\nlines");
	assert_renders(FMT_TABLE, &d, "   S: two lines\n");
	assert_int_equal(out_set_str(&d, 0, "s", NULL), 0);
	assert_renders(FMT_TABLE, &d, "   S:\n");
	out_free(&d);
}

static void test_csv_quoting(void **state)
{
	static const char *const cols[] = { "a", "b", "c", "d", "e" };
	static const char *const one[] = { "x" };
	static const char *const quoted[] = { "say \"hi\"" };
	struct out_doc d;

	(void)state;
	assert_int_equal(out_init(&d, "T", true, ARRAY_SIZE(cols), cols), 0);
	assert_int_equal(out_add_row(&d), 0);
	assert_int_equal(out_set_str(&d, 0, "a", "cr\rhere"), 0);
	assert_int_equal(out_set_str(&d, 0, "b", "plain \"inner"), 0);
	assert_int_equal(out_set_list(&d, 0, "c", one, 1), 0);
	assert_int_equal(out_set_list(&d, 0, "d", quoted, 1), 0);
	assert_int_equal(out_set_str(&d, 0, "e", ""), 0);
	assert_renders(FMT_CSV, &d,
	               "a,b,c,d,e\n"
	               "\"cr\rhere\",\"plain \"\"inner\",x,\"say \"\"hi\"\"\",\n");
	out_free(&d);
}

static void test_keyvalue_escape(void **state)
{
	struct out_doc d;

	(void)state;
	build_one_string(&d, "back\\slash\r\nend");
	assert_renders(FMT_KEYVALUE, &d, "T.s.string=back\\\\slash\\r\\nend\n");
	out_free(&d);
}

static void test_xml_escape(void **state)
{
	struct out_doc d;

	(void)state;
	build_one_string(&d, "<a href='x'>&\"</a>\x01\x1f\tt\nn\rr\xef\xbf\xbf\xff");
	assert_renders(FMT_XML, &d,
	               "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
	               "<output xmlns=\"http://www.vmware.com/Products/ESX/5.0/esxcli\">\n"
	               "<root>\n"
	               "   <structure typeName=\"T\">\n"
	               "      <field name=\"s\">\n"
	               "         <string>&lt;a href=&apos;x&apos;&gt;&amp;&quot;&lt;/a&gt;\tt\nn"
	               "&#13;r\xef\xbf\xbd</string>\n"
	               "      </field>\n"
	               "   </structure>\n"
	               "</root>\n"
	               "</output>\n");
	out_free(&d);
}

static void test_set_errors(void **state)
{
	static const char *const v[] = { "a" };
	struct out_doc d;

	(void)state;
	build_vm_list(&d, false);
	/* no rows yet */
	assert_int_equal(out_set_str(&d, 0, "name", "x"), -ERANGE);
	assert_int_equal(out_add_row(&d), 0);

	assert_int_equal(out_set_str(&d, 0, "nope", "x"), -ENOENT);
	assert_int_equal(out_set_int(&d, 0, "nope", 1), -ENOENT);
	assert_int_equal(out_set_bool(&d, 0, "nope", true), -ENOENT);
	assert_int_equal(out_set_list(&d, 0, "nope", v, 1), -ENOENT);
	assert_int_equal(out_set_str(&d, 0, "Name", "x"), -ENOENT);

	assert_int_equal(out_set_str(&d, 1, "name", "x"), -ERANGE);
	assert_int_equal(out_set_int(&d, 1, "vcpus", 1), -ERANGE);
	assert_int_equal(out_set_bool(&d, 1, "ft_enabled", true), -ERANGE);
	assert_int_equal(out_set_list(&d, 1, "networks", v, 1), -ERANGE);
	assert_int_equal(out_set_str(&d, (size_t)-1, "name", "x"), -ERANGE);

	/* nothing was set */
	assert_int_equal(d.cells[0].type, OUT_NULL);
	assert_int_equal(out_set_list(&d, 0, "networks", NULL, 1), -EINVAL);
	assert_int_equal(out_set_str(NULL, 0, "name", "x"), -EINVAL);
	assert_int_equal(out_set_str(&d, 0, NULL, "x"), -EINVAL);
	out_free(&d);
}

static void test_set_replaces(void **state)
{
	static const char *const v[] = { "a", "b" };
	const struct out_cell *c;
	struct out_doc d;

	(void)state;
	build_one_string(&d, "first");
	c = &d.cells[0];
	assert_int_equal(c->type, OUT_STR);
	assert_string_equal(c->s, "first");
	assert_int_equal(out_set_str(&d, 0, "s", "second"), 0);
	assert_string_equal(c->s, "second");
	assert_int_equal(out_set_list(&d, 0, "s", v, 2), 0);
	assert_int_equal(c->type, OUT_STRLIST);
	assert_null(c->s);
	assert_int_equal(c->nlist, 2);
	assert_string_equal(c->list[1], "b");
	assert_int_equal(out_set_list(&d, 0, "s", v, 1), 0);
	assert_int_equal(c->nlist, 1);
	assert_int_equal(out_set_int(&d, 0, "s", 42), 0);
	assert_int_equal(c->type, OUT_INT);
	assert_null(c->list);
	assert_int_equal(c->i, 42);
	assert_int_equal(out_set_bool(&d, 0, "s", true), 0);
	assert_int_equal(c->type, OUT_BOOL);
	assert_int_equal(out_set_str(&d, 0, "s", "again"), 0);
	assert_int_equal(out_set_str(&d, 0, "s", NULL), 0);
	assert_int_equal(c->type, OUT_NULL);
	assert_null(c->s);
	out_free(&d);
	/* leaks would be reported by the sanitizer build */
}

static void test_init_and_free(void **state)
{
	static const char *const dup[] = { "a", "b", "a" };
	static const char *const with_null[] = { "a", NULL };
	struct out_doc d;

	(void)state;
	memset(&d, 0, sizeof(d));
	out_free(&d);
	out_free(&d);
	out_free(NULL);

	assert_int_equal(out_init(&d, "T", true, ARRAY_SIZE(dup), dup), -EINVAL);
	assert_null(d.cols);
	out_free(&d);
	assert_int_equal(out_init(&d, "T", true, ARRAY_SIZE(with_null), with_null), -EINVAL);
	assert_int_equal(out_init(&d, NULL, true, 1, dup), -EINVAL);
	assert_int_equal(out_init(NULL, "T", true, 1, dup), -EINVAL);

	/* a partially built doc: rows with some cells set */
	build_vm_list(&d, false);
	assert_int_equal(out_add_row(&d), 0);
	assert_int_equal(out_set_str(&d, 0, "name", "x"), 0);
	assert_int_equal(out_add_row(&d), 1);
	out_free(&d);
	assert_null(d.cells);
	assert_int_equal(d.nrows, 0);
	out_free(&d);

	/* no columns */
	assert_int_equal(out_init(&d, "T", true, 0, NULL), 0);
	assert_int_equal(out_add_row(&d), 0);
	assert_int_equal(out_add_row(&d), 1);
	assert_renders(FMT_JSON, &d, "[{},{}]\n");
	out_free(&d);
}

static void test_many_rows(void **state)
{
	static const char *const cols[] = { "id", "name" };
	struct out_doc d;
	char *text, *p, name[16];
	size_t len, lines = 0;
	int i, r;

	(void)state;
	assert_int_equal(out_init(&d, "T", true, ARRAY_SIZE(cols), cols), 0);
	for (i = 0; i < 1000; i++) {
		r = out_add_row(&d);
		assert_int_equal(r, i);
		snprintf(name, sizeof(name), "n%d", i);
		assert_int_equal(out_set_int(&d, r, "id", i), 0);
		assert_int_equal(out_set_str(&d, r, "name", name), 0);
	}
	assert_int_equal(render(FMT_CSV, &d, &text, &len), 0);
	for (p = text; *p; p++)
		lines += *p == '\n';
	assert_int_equal(lines, 1001);
	assert_non_null(strstr(text, "\n999,n999\n"));
	free(text);
	assert_int_equal(render(FMT_TABLE, &d, &text, &len), 0);
	assert_true(strncmp(text, "ID   Name\n---  ----\n  0  n0\n", 28) == 0);
	free(text);
	out_free(&d);
}

static void test_format_parse(void **state)
{
	static const struct {
		const char *name;
		enum out_format fmt;
	} names[] = {
		{ "table", FMT_TABLE },       { "json", FMT_JSON }, { "csv", FMT_CSV },
		{ "keyvalue", FMT_KEYVALUE }, { "xml", FMT_XML },
	};
	static const char *const bad[] = { "yaml", "", "JSON", "json ", "tab", "key-value" };
	enum out_format f;
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(names); i++) {
		f = (enum out_format) - 1;
		assert_int_equal(out_format_parse(names[i].name, &f), 0);
		assert_int_equal(f, names[i].fmt);
		assert_string_equal(out_format_name(f), names[i].name);
	}
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		f = FMT_XML;
		assert_int_equal(out_format_parse(bad[i], &f), -EINVAL);
		assert_int_equal(f, FMT_XML);
	}
	assert_int_equal(out_format_parse(NULL, &f), -EINVAL);
	assert_null(out_format_name((enum out_format)42));
}

static void test_render_errors(void **state)
{
	static const char *const cols[] = { "a" };
	struct out_doc d;
	char *text;
	size_t len;

	(void)state;
	/* a single object needs exactly one row */
	assert_int_equal(out_init(&d, "T", false, 1, cols), 0);
	assert_int_equal(render(FMT_JSON, &d, &text, &len), -EINVAL);
	assert_int_equal(len, 0);
	free(text);
	assert_int_equal(out_add_row(&d), 0);
	assert_int_equal(out_add_row(&d), 1);
	assert_int_equal(render(FMT_TABLE, &d, &text, &len), -EINVAL);
	free(text);
	out_free(&d);

	build_one_string(&d, "x");
	assert_int_equal(render((enum out_format)42, &d, &text, &len), -EINVAL);
	assert_int_equal(len, 0);
	free(text);
	assert_int_equal(out_render(NULL, FMT_JSON, &d), -EINVAL);
	out_free(&d);
}

/* A golden test of doc kind k in format f, compared with tests/golden/output/<file>. */
#define GOLDEN(k, f, file)                                                                         \
	{                                                                                          \
		.name = "golden " file, .test_func = test_golden,                                  \
		.initial_state = &(struct golden_case){ k, f, file },                              \
	}

int main(void)
{
	const struct CMUnitTest tests[] = {
		GOLDEN(DOC_LIST, FMT_TABLE, "list.table"),
		GOLDEN(DOC_LIST, FMT_JSON, "list.json"),
		GOLDEN(DOC_LIST, FMT_CSV, "list.csv"),
		GOLDEN(DOC_LIST, FMT_KEYVALUE, "list.keyvalue"),
		GOLDEN(DOC_LIST, FMT_XML, "list.xml"),
		GOLDEN(DOC_OBJECT, FMT_TABLE, "object.table"),
		GOLDEN(DOC_OBJECT, FMT_JSON, "object.json"),
		GOLDEN(DOC_OBJECT, FMT_CSV, "object.csv"),
		GOLDEN(DOC_OBJECT, FMT_KEYVALUE, "object.keyvalue"),
		GOLDEN(DOC_OBJECT, FMT_XML, "object.xml"),
		GOLDEN(DOC_EMPTY, FMT_TABLE, "empty.table"),
		GOLDEN(DOC_EMPTY, FMT_JSON, "empty.json"),
		GOLDEN(DOC_EMPTY, FMT_CSV, "empty.csv"),
		GOLDEN(DOC_EMPTY, FMT_KEYVALUE, "empty.keyvalue"),
		GOLDEN(DOC_EMPTY, FMT_XML, "empty.xml"),
		cmocka_unit_test(test_title_case),
		cmocka_unit_test(test_table_titles),
		cmocka_unit_test(test_json_escape_control),
		cmocka_unit_test(test_json_utf8),
		cmocka_unit_test(test_json_types),
		cmocka_unit_test(test_json_error),
		cmocka_unit_test(test_table_sanitize),
		cmocka_unit_test(test_table_object_sanitize),
		cmocka_unit_test(test_csv_quoting),
		cmocka_unit_test(test_keyvalue_escape),
		cmocka_unit_test(test_xml_escape),
		cmocka_unit_test(test_set_errors),
		cmocka_unit_test(test_set_replaces),
		cmocka_unit_test(test_init_and_free),
		cmocka_unit_test(test_many_rows),
		cmocka_unit_test(test_format_parse),
		cmocka_unit_test(test_render_errors),
	};

	return cmocka_run_group_tests_name("output", tests, NULL, NULL);
}
