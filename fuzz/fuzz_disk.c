/* libFuzzer target: a delta disk file (vmm/disk.h) of any content over a
 * small raw base: its header, its bitmap, sizes that disagree with the
 * base's, then reads of the whole disk, a write across grains and a flush.
 * vmm_disk_open must refuse what is wrong with a message and never crash;
 * what it opens must read and write within bounds. Only inputs whose
 * parent is the fuzzer's own base are opened (a parent path is the one
 * field that names other files). Seeds: tests/corpus/fuzz_disk/.
 *   make fuzz FUZZ_SECONDS=60 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz/fuzzutil.h"
#include "util.h"
#include "vmm/disk.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define BASE_SIZE (256u << 10)

static char base[128], top[128];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	const char *dir = fuzz_tmpdir("disk");
	snprintf(base, sizeof(base), "%s/base.img", dir);
	snprintf(top, sizeof(top), "%s/top.delta", dir);
	int fd = open(base, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || ftruncate(fd, BASE_SIZE) < 0 || pwrite(fd, "base", 4, 0) != 4)
		abort();
	close(fd);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char parent[300], err[300];
	uint64_t dsize = 0;
	struct vmm_disk *d;

	if (size > (1u << 20))
		return 0;
	if (vmm_delta_header_parse(data, size, parent, sizeof(parent), &dsize, err, sizeof(err)) ==
	            1 &&
	    strcmp(parent, "base.img") != 0)
		return 0; /* it would open some other file */
	int fd = open(top, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return 0;
	if (util_pwrite_all(fd, data, size, 0) < 0) {
		close(fd);
		return 0;
	}
	close(fd);
	if (vmm_disk_open(&d, top, false, err, sizeof(err)) == 0) {
		static uint8_t buf[BASE_SIZE];
		uint64_t n = vmm_disk_size(d) < sizeof(buf) ? vmm_disk_size(d) : sizeof(buf);
		vmm_disk_pread(d, buf, n, 0);
		memset(buf, 0x5a, sizeof(buf));
		if (n > DISK_GRAIN + 100)
			vmm_disk_pwrite(d, buf, DISK_GRAIN, 100);
		vmm_disk_pread(d, buf, n, 0);
		vmm_disk_close(d);
	}
	unlink(top);
	return 0;
}
