/* libFuzzer target: the state stream is what a destination vmx reads from
 * the network during a migration (after the token) and what a restore reads
 * from a file. The input goes through vmm_vm_restore into a VM on the
 * software CPU shaped like vmx builds it (16 MiB, the UART, the power
 * device and a virtio-blk disk): every section kind, the CPU model check,
 * RAM/ZERO/DISK/SLOG loading and the devices' restore must refuse what is
 * malformed without crashing, leaking or touching memory outside the VM
 * (ASan, UBSan). Seeds: tests/corpus/fuzz_state/ (a stream vmx saved, and
 * the same with its RAM sections as live migration's RAMD and RAMC).
 *   make fuzz FUZZ_SECONDS=60 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz/fuzzutil.h"
#include "log.h"
#include "vmm/power.h"
#include "vmm/snapshot.h"
#include "vmm/uart.h"
#include "vmm/virtio_blk.h"
#include "vmm/vm.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct vmm_vm vm;

struct in {
	const uint8_t *p;
	size_t len, off;
};

static int in_read(void *arg, void *p, size_t n)
{
	struct in *i = arg;

	if (n > i->len - i->off)
		return -EIO;
	memcpy(p, i->p + i->off, n);
	i->off += n;
	return 0;
}

static int in_write(void *arg, const void *p, size_t n)
{
	(void)arg;
	(void)p;
	(void)n;
	return -EIO;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char disk[96];

	(void)argc;
	(void)argv;
	log_set_level(LOG_ERROR);
	snprintf(disk, sizeof(disk), "%s/disk0.img", fuzz_tmpdir("state"));
	fuzz_vm_create(&vm, disk);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct in i = { data, size, 0 };
	struct vmm_stream s = { .write = in_write, .read = in_read, .arg = &i };
	char err[600];

	vmm_vm_restore(&vm, &s, err, sizeof(err));
	if (!memchr(err, 0, sizeof(err)))
		abort(); /* every message is terminated */
	return 0;
}
