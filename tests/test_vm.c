/* vmm/vm.c: a pause waits for device work that runs outside the vCPUs (a
 * NIC's receive), and no such work starts while the VM is paused, so a
 * state saved during the pause (a migration's last pass, an FT epoch) is
 * whole. A VM without vCPUs is enough: the gate is the VM's. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "vmm/vm.h"

static atomic_int io_done;

static void *slow_io(void *arg)
{
	struct vmm_vm *vm = arg;

	usleep(100 * 1000);
	atomic_store(&io_done, 1);
	vmm_vm_io_end(vm);
	return NULL;
}

static void test_pause_waits_for_io(void **state)
{
	static struct vmm_vm vm;
	pthread_t t;

	(void)state;
	memset(&vm, 0, sizeof(vm));
	pthread_mutex_init(&vm.lock, NULL);
	pthread_cond_init(&vm.cond, NULL);
	atomic_store(&vm.state, VM_RUNNING);

	assert_true(vmm_vm_io_begin(&vm));
	atomic_store(&io_done, 0);
	assert_int_equal(pthread_create(&t, NULL, slow_io, &vm), 0);
	vmm_vm_pause(&vm);
	/* the pause returned only after the work in flight ended */
	assert_int_equal(atomic_load(&io_done), 1);
	assert_int_equal(atomic_load(&vm.state), VM_PAUSED);
	pthread_join(t, NULL);
	/* none starts while paused */
	assert_false(vmm_vm_io_begin(&vm));
	vmm_vm_resume(&vm);
	assert_true(vmm_vm_io_begin(&vm));
	vmm_vm_io_end(&vm);
	assert_int_equal(vm.io_busy, 0);
	pthread_mutex_destroy(&vm.lock);
	pthread_cond_destroy(&vm.cond);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pause_waits_for_io),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
