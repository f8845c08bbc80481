#include "rt.h"

#include <stdarg.h>

uint64_t tsc_khz;
uint64_t ram_bytes, free_start, free_end;
static char cmd[1024];
static uint64_t tsc0;

extern char guest_image_end[];

void *memset(void *d, int c, size_t n)
{
	uint8_t *p = d;
	while (n--)
		*p++ = (uint8_t)c;
	return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
	uint8_t *p = d;
	const uint8_t *q = s;
	while (n--)
		*p++ = *q++;
	return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const uint8_t *p = a, *q = b;
	for (; n; n--, p++, q++)
		if (*p != *q)
			return *p - *q;
	return 0;
}

size_t strlen(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

int strncmp(const char *a, const char *b, size_t n)
{
	for (; n; n--, a++, b++) {
		if (*a != *b)
			return (unsigned char)*a - (unsigned char)*b;
		if (!*a)
			return 0;
	}
	return 0;
}

uint64_t parse_u64(const char *s, const char **end)
{
	uint64_t v = 0;
	int base = 10;

	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	}
	for (;; s++) {
		int d;
		if (*s >= '0' && *s <= '9')
			d = *s - '0';
		else if (base == 16 && *s >= 'a' && *s <= 'f')
			d = *s - 'a' + 10;
		else if (base == 16 && *s >= 'A' && *s <= 'F')
			d = *s - 'A' + 10;
		else
			break;
		v = v * (uint64_t)base + (uint64_t)d;
	}
	if (end)
		*end = s;
	return v;
}

void putc_(char c)
{
	outb(UART_PORT, (uint8_t)c);
}

void puts_(const char *s)
{
	while (*s)
		putc_(*s++);
}

void put_u64(uint64_t v)
{
	char b[21];
	int i = 20;
	b[i] = 0;
	do {
		b[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	puts_(b + i);
}

void put_hex(uint64_t v)
{
	static const char d[] = "0123456789abcdef";
	char b[17];
	int i = 16;
	b[i] = 0;
	do {
		b[--i] = d[v & 15];
		v >>= 4;
	} while (v);
	puts_(b + i);
}

void printf_(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	for (const char *p = fmt; *p; p++) {
		if (*p != '%') {
			putc_(*p);
			continue;
		}
		p++;
		int longs = 0;
		while (*p == 'l') {
			longs++;
			p++;
		}
		switch (*p) {
		case 's':
			puts_(va_arg(ap, const char *));
			break;
		case 'u':
			put_u64(longs ? va_arg(ap, uint64_t) : va_arg(ap, unsigned));
			break;
		case 'd': {
			int64_t v = longs ? va_arg(ap, int64_t) : va_arg(ap, int);
			if (v < 0) {
				putc_('-');
				v = -v;
			}
			put_u64((uint64_t)v);
			break;
		}
		case 'x':
			put_hex(longs ? va_arg(ap, uint64_t) : va_arg(ap, unsigned));
			break;
		case 'c':
			putc_((char)va_arg(ap, int));
			break;
		case '%':
			putc_('%');
			break;
		default:
			putc_('?');
		}
	}
	va_end(ap);
}

void poweroff(uint8_t status)
{
	outb(POWER_PORT, status);
	for (;;)
		cpu_relax();
}

/* PIT channel 2 counts down 1193182 Hz; gate it through port 0x61 and wait
 * for OUT2 to rise after `ms` milliseconds, counting TSC ticks meanwhile. */
static uint64_t calibrate_tsc_khz(void)
{
	const unsigned ms = 10;
	const uint32_t ticks = 1193182u * ms / 1000u;
	uint8_t v = inb(0x61);

	if (v == 0xff) /* no port 0x61 (QEMU microvm without a speaker port) */
		return 0;

	outb(0x61, (uint8_t)((v & ~0x02) | 0x01)); /* gate on, speaker off */
	outb(0x43, 0xb0);                          /* ch 2, lobyte/hibyte, mode 0 */
	outb(0x42, (uint8_t)(ticks & 0xff));
	outb(0x42, (uint8_t)(ticks >> 8));
	uint64_t t0 = rdtsc();
	while (!(inb(0x61) & 0x20))
		;
	uint64_t t1 = rdtsc();
	return (t1 - t0) / ms;
}

static inline void cpuid(uint32_t leaf, uint32_t *a, uint32_t *b, uint32_t *c, uint32_t *d)
{
	__asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(0));
}

/* TSC frequency from CPUID: the hypervisor timing leaf 0x40000010 (KVM,
 * VMware) or leaf 0x15/0x16. 0 if none says. */
/* The TSC rate the hypervisor or the CPU states exactly: the hypervisor
 * timing leaf 0x40000010 (vmx sets it), or leaf 0x15. */
static uint64_t cpuid_tsc_khz_exact(void)
{
	uint32_t a, b, c, d;

	cpuid(0x40000000, &a, &b, &c, &d);
	if (a >= 0x40000010 && a < 0x40000100) {
		cpuid(0x40000010, &a, &b, &c, &d);
		if (a)
			return a;
	}
	cpuid(0, &a, &b, &c, &d);
	if (a >= 0x15) {
		cpuid(0x15, &a, &b, &c, &d);
		if (a && b && c)
			return (uint64_t)c * b / a / 1000;
	}
	return 0;
}

/* The processor's base frequency (leaf 0x16): close, not exact. */
static uint64_t cpuid_tsc_khz_base(void)
{
	uint32_t a, b, c, d;

	cpuid(0, &a, &b, &c, &d);
	if (a >= 0x16) {
		cpuid(0x16, &a, &b, &c, &d);
		if (a)
			return (uint64_t)a * 1000;
	}
	return 0;
}

void time_init(void)
{
	/* what is given beats what is measured: a PIT calibration costs its
	 * window (milliseconds of boot) and is less exact */
	tsc_khz = cmdline_u64("tsc_khz", 0);
	if (!tsc_khz)
		tsc_khz = cpuid_tsc_khz_exact();
	if (!tsc_khz)
		tsc_khz = calibrate_tsc_khz();
	if (!tsc_khz)
		tsc_khz = cpuid_tsc_khz_base();
	if (!tsc_khz)
		tsc_khz = 1000000;
	tsc0 = rdtsc();
}

uint64_t now_us(void)
{
	return (rdtsc() - tsc0) * 1000 / tsc_khz;
}

void delay_us(uint64_t us)
{
	uint64_t end = rdtsc() + us * tsc_khz / 1000;
	while (rdtsc() < end)
		cpu_relax();
}

void cmdline_init(const struct hvm_start_info *si)
{
	size_t i = 0;

	if (si && si->magic == HVM_START_MAGIC && si->cmdline_paddr) {
		const char *c = (const char *)(uintptr_t)si->cmdline_paddr;
		for (; c[i] && i + 1 < sizeof(cmd); i++)
			cmd[i] = c[i];
	}
	cmd[i] = 0;
}

const char *cmdline(void)
{
	return cmd;
}

const char *cmdline_word(int n, char *buf, size_t len)
{
	const char *p = cmd;

	for (;;) {
		while (*p == ' ')
			p++;
		if (!*p)
			return NULL;
		const char *s = p;
		while (*p && *p != ' ')
			p++;
		if (n-- == 0) {
			size_t l = (size_t)(p - s) < len - 1 ? (size_t)(p - s) : len - 1;
			memcpy(buf, s, l);
			buf[l] = 0;
			return buf;
		}
	}
}

bool cmdline_get(const char *key, char *buf, size_t len)
{
	char w[256];
	size_t kl = strlen(key);

	for (int i = 0; cmdline_word(i, w, sizeof(w)); i++) {
		if (strncmp(w, key, kl) == 0 && w[kl] == '=') {
			size_t l = strlen(w + kl + 1);
			if (l >= len)
				l = len - 1;
			memcpy(buf, w + kl + 1, l);
			buf[l] = 0;
			return true;
		}
	}
	return false;
}

uint64_t cmdline_u64(const char *key, uint64_t def)
{
	char v[64];

	return cmdline_get(key, v, sizeof(v)) ? parse_u64(v, NULL) : def;
}

void mem_init(const struct hvm_start_info *si)
{
	uint64_t img_end =
	        ((uint64_t)(uintptr_t)guest_image_end + (2u << 20) - 1) & ~((2ull << 20) - 1);

	ram_bytes = 0;
	free_start = img_end;
	free_end = img_end;
	if (!si || si->magic != HVM_START_MAGIC || si->version < 1 || !si->memmap_paddr)
		return;
	const struct hvm_memmap_entry *m = (const void *)(uintptr_t)si->memmap_paddr;
	for (uint32_t i = 0; i < si->memmap_entries && i < 128; i++) {
		if (m[i].type != E820_RAM)
			continue;
		ram_bytes += m[i].size;
		uint64_t end = m[i].addr + m[i].size;
		if (m[i].addr <= img_end && end > img_end)
			free_end = end;
	}
	/* only the first 4 GiB are mapped */
	if (free_end > (4ull << 30))
		free_end = 4ull << 30;
}
