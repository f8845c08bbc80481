/* Reads a kernel image and hands it to the loader for its format. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "boot.h"
#include "util.h"

int vmm_boot_place_initrd(struct vmm_mem *m, const uint8_t *initrd, size_t len, uint64_t top,
                          uint64_t kernel_end, uint64_t *at, char *err, size_t errlen)
{
	uint64_t end = m->slots[0].gpa + m->slots[0].size;

	if (top && top < end)
		end = top;
	*at = len < end ? (end - len) & ~0xfffull : 0;
	if (*at < kernel_end || !vmm_gpa(m, *at, len)) {
		snprintf(err, errlen,
		         "the initrd (%zu bytes) does not fit between the kernel's end (0x%llx) "
		         "and 0x%llx: give the VM more memory",
		         len, (unsigned long long)kernel_end, (unsigned long long)end);
		return -E2BIG;
	}
	memcpy(vmm_gpa(m, *at, len), initrd, len);
	return 0;
}

int vmm_boot_load(struct vmm_mem *m, const char *kernel, const char *initrd, const char *cmdline,
                  struct vmm_boot *out, char *err, size_t errlen)
{
	char *img = NULL, *rd = NULL, why[400];
	size_t len = 0, rdlen = 0;
	int ret;

	ret = util_read_file(kernel, BOOT_IMAGE_MAX, &img, &len);
	if (ret < 0) {
		snprintf(err, errlen, "kernel %s: %s", kernel,
		         ret == -EFBIG ? "larger than 512 MiB" : util_strerror(ret));
		return ret;
	}
	if (initrd) {
		ret = util_read_file(initrd, BOOT_IMAGE_MAX, &rd, &rdlen);
		if (ret < 0) {
			snprintf(err, errlen, "initrd %s: %s", initrd,
			         ret == -EFBIG ? "larger than 512 MiB" : util_strerror(ret));
			goto out;
		}
	}
	const uint8_t *u = (const uint8_t *)img;
	if (len >= 4 && memcmp(u,
	                       "\x7f"
	                       "ELF",
	                       4) == 0) {
		ret = vmm_boot_pvh(m, u, len, (const uint8_t *)rd, rdlen, cmdline, out, why,
		                   sizeof(why));
	} else if (len >= 0x206 && memcmp(u + 0x202, "HdrS", 4) == 0) {
		ret = vmm_boot_linux(m, u, len, (const uint8_t *)rd, rdlen, cmdline, out, why,
		                     sizeof(why));
	} else {
		snprintf(why, sizeof(why), "neither a PVH ELF nor a Linux bzImage");
		ret = -ENOEXEC;
	}
	if (ret < 0)
		snprintf(err, errlen, "kernel %s: %s", kernel, why);
out:
	free(img);
	free(rd);
	return ret;
}
