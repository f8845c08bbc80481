/* The init of `make linux-smoke` (integration/linux_smoke): a Linux
 * userland program, built static against the host's libc and packed alone
 * into an initramfs. It reports what the kernel booted into, one short
 * line each (every byte to the UART is a VM exit), then powers the VM off
 * through the exit device vmx and QEMU share (port 0xf4, isa-debug-exit):
 * vmx ends with the status written, QEMU with (status << 1) | 1. */
#include <stdio.h>
#include <string.h>
#include <sys/io.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/utsname.h>
#include <unistd.h>

#define EXIT_PORT 0xf4

/* The first line of FILE that starts with KEY, without the newline. */
static int read_line(const char *file, const char *key, char *out, size_t len)
{
	FILE *f = fopen(file, "r");
	int found = 0;

	if (!f)
		return 0;
	while (!found && fgets(out, (int)len, f))
		found = strncmp(out, key, strlen(key)) == 0;
	fclose(f);
	if (found)
		out[strcspn(out, "\n")] = '\0';
	return found;
}

static void power_off(unsigned status)
{
	fflush(stdout);
	if (ioperm(EXIT_PORT, 4, 1) == 0)
		outl(status, EXIT_PORT);
	reboot(RB_POWER_OFF); /* no exit device: the kernel halts */
}

int main(void)
{
	struct utsname u;
	char line[256];

	/* the kernel gave pid 1 its console as stdin, stdout and stderr */
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (uname(&u) == 0)
		printf("vmk-linux-smoke: init runs on Linux %s\n", u.release);
	if (mount("proc", "/proc", "proc", 0, NULL) == 0) {
		if (read_line("/proc/uptime", "", line, sizeof(line)))
			printf("vmk-linux-smoke: uptime %s\n", line);
		if (read_line("/proc/meminfo", "MemTotal:", line, sizeof(line)))
			printf("vmk-linux-smoke: %s\n", line);
		printf("vmk-linux-smoke: %ld CPUs online\n", sysconf(_SC_NPROCESSORS_ONLN));
	}
	if (mount("sysfs", "/sys", "sysfs", 0, NULL) == 0 &&
	    read_line("/sys/devices/system/clocksource/clocksource0/current_clocksource", "", line,
	              sizeof(line)))
		printf("vmk-linux-smoke: clocksource %s\n", line);
	printf("vmk-linux-smoke: done, powering off\n");
	power_off(0);
	return 1;
}
