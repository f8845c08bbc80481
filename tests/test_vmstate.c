/* The VM power state table: what each state allows, and that every refusal
 * names the VM and its state. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "hostd/vmstate.h"

static void test_allowed(void **state)
{
	/* the operations each settled state allows; transient ones allow only kill */
	static const struct {
		enum vm_state s;
		const char *ops; /* one char per vm_op: Y allowed, . refused */
	} want[] = {
		/*                   on off rst sus res des unr kil mig cln */
		{ VMS_POWERED_OFF, "Y....YY.YY" },  { VMS_POWERED_ON, ".YYY...YYY" },
		{ VMS_SUSPENDED, "YY..Y.Y.YY" },    { VMS_CRASHED, "YYY..YY..Y" },
		{ VMS_INVALID, ".....YY..." },      { VMS_POWERING_ON, ".......Y.." },
		{ VMS_POWERING_OFF, ".......Y.." }, { VMS_SUSPENDING, ".......Y.." },
		{ VMS_RESETTING, ".......Y.." },    { VMS_MIGRATING, ".........." },
		{ VMS_CLONING, ".........." },      { VMS_SNAPSHOTTING, ".......Y.." },
		{ VMS_FT_SECONDARY, ".........." },
	};
	char err[400];

	(void)state;
	assert_int_equal(sizeof(want) / sizeof(want[0]), VMS_COUNT);
	for (size_t i = 0; i < VMS_COUNT; i++) {
		for (int op = 0; op < VMOP_COUNT; op++) {
			err[0] = '\0';
			int r = vm_state_check(want[i].s, (enum vm_op)op, "vm7", err, sizeof(err));
			if (want[i].ops[op] == 'Y') {
				if (r != 0)
					fail_msg("%s / %s refused: %s", vm_state_name(want[i].s),
					         vm_op_name((enum vm_op)op), err);
			} else {
				if (r != -EBUSY)
					fail_msg("%s / %s allowed", vm_state_name(want[i].s),
					         vm_op_name((enum vm_op)op));
				assert_non_null(strstr(err, "vm7"));
				assert_non_null(strstr(err, vm_state_name(want[i].s)));
			}
		}
	}
}

static void test_names(void **state)
{
	(void)state;
	for (int s = 0; s < VMS_COUNT; s++)
		assert_int_equal(vm_state_parse(vm_state_name((enum vm_state)s)), s);
	assert_int_equal(vm_state_parse("running"), -1);
	assert_int_equal(vm_state_check(VMS_COUNT, VMOP_POWER_ON, "x", (char[64]){ 0 }, 64),
	                 -EINVAL);
	assert_int_equal(vm_state_during(VMOP_SUSPEND), VMS_SUSPENDING);
	assert_true(vm_state_has_vmx(VMS_POWERED_ON));
	assert_false(vm_state_has_vmx(VMS_SUSPENDED));
	assert_true(vm_state_has_vmx(VMS_FT_SECONDARY));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_allowed),
		cmocka_unit_test(test_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
