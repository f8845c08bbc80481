/* Reads a kernel image and hands it to the loader for its format. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "boot.h"
#include "util.h"

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
