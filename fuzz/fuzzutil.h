/* What the libFuzzer targets share: a scratch directory that goes away at
 * exit (libFuzzer exits at its time limit, and `make fuzz` runs every
 * target), and a VM on the software CPU shaped like the one vmx builds.
 * Header-only: make fuzz builds each fuzz/fuzz_<name>.c on its own. */
#ifndef VMK_FUZZUTIL_H
#define VMK_FUZZUTIL_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "util.h"
#include "vmm/power.h"
#include "vmm/uart.h"
#include "vmm/virtio_blk.h"
#include "vmm/vm.h"

static char fuzz_dir[64];

static inline void fuzz_remove_dir(void)
{
	util_rm_tree(fuzz_dir);
}

/* /tmp/vmk-fuzz-NAME.XXXXXX, made now and removed at exit. */
static inline const char *fuzz_tmpdir(const char *name)
{
	snprintf(fuzz_dir, sizeof(fuzz_dir), "/tmp/vmk-fuzz-%s.XXXXXX", name);
	if (!mkdtemp(fuzz_dir))
		abort();
	atexit(fuzz_remove_dir);
	return fuzz_dir;
}

static inline void fuzz_on_poweroff(void *arg, int status)
{
	(void)arg;
	(void)status;
}

/* A 16 MiB VM on the software CPU with vmx's devices in vmx's order: the
 * UART (its log to /dev/null), the power device and a 1 MiB virtio-blk
 * disk at disk (made here). */
static inline void fuzz_vm_create(struct vmm_vm *vm, const char *disk)
{
	struct vmm_device *d;
	char err[400] = "";

	if (vmm_vm_create(vm, VMM_ACCEL_SOFT, 16ull << 20, 1, true, err, sizeof(err)) < 0) {
		fprintf(stderr, "fuzz: %s\n", err);
		abort();
	}
	int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	int fd = open(disk, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (null < 0 || fd < 0 || ftruncate(fd, 1 << 20) < 0)
		abort();
	close(fd);
	if (vmm_uart_create(&d, &vm->bus, null) < 0 || vmm_vm_add_device(vm, d) < 0 ||
	    vmm_power_create(&d, &vm->bus, fuzz_on_poweroff, NULL) < 0 ||
	    vmm_vm_add_device(vm, d) < 0 ||
	    vmm_virtio_blk_create(&d, &vm->bus, 0xd0000000ull, 5, disk, false, "fuzz", err,
	                          sizeof(err)) < 0 ||
	    vmm_vm_add_device(vm, d) < 0) {
		fprintf(stderr, "fuzz: %s\n", err);
		abort();
	}
}

#endif
