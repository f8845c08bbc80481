/* The .vmx configuration: a good file, and every kind of bad one. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "util.h"
#include "vmm/vmcfg.h"

static char dir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/vmk-test-vmcfg-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

#define UUID "564d1234-89ab-cdef-0123-456789abcdef"

/* Writes text as DIR/vm1.vmx and loads it. */
static int load(const char *text, struct vmcfg *c, char *err)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/vm1.vmx", dir);
	assert_int_equal(util_write_file_atomic(path, text, strlen(text), 0644), 0);
	return vmcfg_load(path, c, err, 512);
}

static void test_good(void **state)
{
	struct vmcfg c;
	char err[512];

	(void)state;
	assert_int_equal(
	        load("vm = { name = \"web01\"; uuid = \"" UUID "\"; memory_mib = 256;\n"
	             "  vcpus = 2; kernel = \"vmk-guest.elf\"; cmdline = \"heartbeat\"; };\n"
	             "disks = ( { path = \"disk0.img\"; }, { path = \"/abs/ro.img\"; "
	             "readonly = true; } );\n"
	             "nics = ( { portgroup = \"VM Network\"; }, { mac = \"02:00:00:00:00:01\"; } "
	             ");\n",
	             &c, err),
	        0);
	assert_string_equal(c.name, "web01");
	assert_int_equal(c.memory_mib, 256);
	assert_int_equal(c.vcpus, 2);
	char want[128];
	snprintf(want, sizeof(want), "%s/vmk-guest.elf", dir);
	assert_string_equal(c.kernel, want);
	snprintf(want, sizeof(want), "%s/serial.log", dir);
	assert_string_equal(c.serial_log, want);
	assert_string_equal(c.cpu_model, "host");
	assert_int_equal(c.ndisks, 2);
	assert_false(c.disks[0].readonly);
	assert_true(c.disks[1].readonly);
	assert_string_equal(c.disks[1].path, "/abs/ro.img");
	assert_int_equal(c.nnics, 2);
	/* derived MAC: VMware OUI, unicast, stable, differs per NIC */
	assert_int_equal(c.nics[0].mac[0], 0x00);
	assert_int_equal(c.nics[0].mac[1], 0x50);
	assert_int_equal(c.nics[0].mac[2], 0x56);
	assert_true(c.nics[0].mac[3] <= 0x3f);
	uint8_t again[6], other[6];
	vmcfg_mac_from_uuid(UUID, 0, again);
	vmcfg_mac_from_uuid(UUID, 1, other);
	assert_memory_equal(again, c.nics[0].mac, 6);
	assert_memory_not_equal(again, other, 6);
	assert_int_equal(c.nics[1].mac[0], 0x02);
	vmcfg_free(&c);
}

static void bad(const char *text, const char *expect)
{
	struct vmcfg c;
	char err[512];

	if (load(text, &c, err) == 0) {
		vmcfg_free(&c);
		fail_msg("accepted: %s", text);
	}
	if (!strstr(err, expect))
		fail_msg("error \"%s\" does not mention \"%s\"", err, expect);
	assert_non_null(strstr(err, "vm1.vmx"));
}

#define VM(extra)                                                                                  \
	"vm = { name = \"a\"; uuid = \"" UUID "\"; vcpus = 1; kernel = \"k\"; " extra " };"

static void test_bad(void **state)
{
	(void)state;
	bad(VM("memory_mib = 0;"), "memory_mib = 0 MiB is out of range; use 16 to 65536");
	bad(VM("memory_mib = 70000;"), "out of range");
	bad(VM("memory_mib = \"256\";"), "whole number");
	bad(VM(""), "memory_mib is missing");
	bad("vm = { name = \"a\"; uuid = \"" UUID "\"; memory_mib = 64; vcpus = 1; };",
	    "kernel is missing");
	bad("vm = { name = \"a/b\"; uuid = \"" UUID
	    "\"; memory_mib = 64; vcpus = 1; kernel = \"k\"; };",
	    "may not contain '/'");
	bad("vm = { name = \"a\"; uuid = \"nope\"; memory_mib = 64; vcpus = 1; kernel = \"k\"; };",
	    "not a UUID");
	bad("vm = { name = \"a\"; uuid = \"" UUID
	    "\"; memory_mib = 64; vcpus = 0; kernel = \"k\"; };",
	    "vcpus = 0 vCPUs is out of range; use 1 to 64");
	bad(VM("memory_mib = 64; colour = \"blue\";"), "unknown setting vm.colour");
	bad(VM("memory_mib = 64;") "\nnics = ( { mac = \"01:00:5e:00:00:01\"; } );",
	    "not a unicast MAC");
	bad(VM("memory_mib = 64;") "\ndisks = ( { readonly = true; } );", "path is missing");
	bad("vm = { name = ", "syntax error");
	bad("disks = ();", "no vm group");
	/* libconfig would read the named file (a FIFO would block hostd) */
	bad("# a VM\n\t @include \"/etc/hostname\"\n" VM("memory_mib = 64;"),
	    "vm1.vmx:2: @include is not allowed here");
	bad(VM("memory_mib = 64;") "\n@include \"/dev/zero\"\n", "vm1.vmx:2: @include");
}

/* A FIFO named by @include: refused before libconfig opens it (it would
 * wait for a writer forever). */
static void test_include_fifo(void **state)
{
	char fifo[128], text[256], err[512];
	struct vmcfg c;

	(void)state;
	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	snprintf(text, sizeof(text), "@include \"%s\"\n", fifo);
	assert_int_equal(load(text, &c, err), -EINVAL);
	assert_non_null(strstr(err, "@include is not allowed"));
	char *out = NULL;
	size_t len = 0;
	assert_int_equal(vmcfg_clone_text(text, "x", UUID, &out, &len, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "@include is not allowed"));
	assert_null(out);
	unlink(fifo);
}

/* A clone's .vmx: new name and uuid, MACs that follow the new uuid, no
 * serial log of the original; everything else as it was. */
static void test_clone_text(void **state)
{
	const char *text = "vm = { name = \"web01\"; uuid = \"" UUID "\"; memory_mib = 64;\n"
	                   "  vcpus = 1; kernel = \"/k.elf\"; cmdline = \"disk seed=3\";\n"
	                   "  serial_log = \"/elsewhere/web01.log\"; };\n"
	                   "disks = ( { path = \"disk0.img\"; } );\n"
	                   "nics = ( { portgroup = \"VM Network\"; mac = \"02:00:00:00:00:01\"; "
	                   "tap = \"tap9\"; } );\n";
	const char *uuid2 = "564d0000-1111-4222-8333-444455556666";
	char *out = NULL, err[512];
	size_t len = 0;
	struct vmcfg c;

	(void)state;
	assert_int_equal(vmcfg_clone_text(text, "web02", uuid2, &out, &len, err, sizeof(err)), 0);
	assert_true(len > 0 && out);
	assert_int_equal(load(out, &c, err), 0);
	assert_string_equal(c.name, "web02");
	assert_string_equal(c.uuid, uuid2);
	assert_string_equal(c.cmdline, "disk seed=3");
	assert_int_equal(c.memory_mib, 64);
	assert_int_equal(c.ndisks, 1);
	char want[128];
	snprintf(want, sizeof(want), "%s/serial.log", dir);
	assert_string_equal(c.serial_log, want);
	uint8_t mac[6];
	vmcfg_mac_from_uuid(uuid2, 0, mac);
	assert_memory_equal(c.nics[0].mac, mac, 6);
	assert_string_equal(c.nics[0].tap, "");
	assert_string_equal(c.nics[0].portgroup, "VM Network");
	vmcfg_free(&c);
	free(out);
	assert_int_equal(
	        vmcfg_clone_text("vm = { name = ", "x", uuid2, &out, &len, err, sizeof(err)),
	        -EINVAL);
	assert_non_null(strstr(err, "does not parse"));
	assert_null(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_clone_text),
		cmocka_unit_test(test_include_fifo),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
