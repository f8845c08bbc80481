/* The micro-guest runtime: serial output, TSC time, the command line,
 * power off. Runs at CPL 3 with IOPL 3 (port I/O allowed). */
#ifndef GUEST_RT_H
#define GUEST_RT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UART_PORT  0x3f8
#define POWER_PORT 0xf4 /* isa-debug-exit compatible: QEMU exits (v << 1) | 1 */

/* hvm_start_info (xen/include/public/arch-x86/hvm/start_info.h) */
struct hvm_start_info {
	uint32_t magic; /* 0x336ec578 */
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr;
	uint32_t memmap_entries;
	uint32_t reserved;
};

struct hvm_memmap_entry {
	uint64_t addr, size;
	uint32_t type, reserved;
};

#define HVM_START_MAGIC 0x336ec578u
#define E820_RAM        1

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline void outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return (uint64_t)hi << 32 | lo;
}

static inline void cpu_relax(void)
{
	__asm__ volatile("pause" ::: "memory");
}

/* output: one UART write per byte (one VM exit each: keep lines short) */
void putc_(char c);
void puts_(const char *s);
void put_u64(uint64_t v);
void put_hex(uint64_t v);
/* printf subset: %s %u %lu %llu %x %lx %d %c %% */
void printf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

void poweroff(uint8_t status) __attribute__((noreturn));

/* Time. tsc_khz comes from "tsc_khz=" on the command line or a PIT-based
 * calibration (PIT channel 2, works under KVM and QEMU). */
extern uint64_t tsc_khz;
void time_init(void);
uint64_t now_us(void);
void delay_us(uint64_t us);

/* Command line: "workload key=value ..." */
void cmdline_init(const struct hvm_start_info *si);
const char *cmdline(void);
const char *cmdline_word(int n, char *buf, size_t len); /* n-th word, or NULL */
bool cmdline_get(const char *key, char *buf, size_t len);
uint64_t cmdline_u64(const char *key, uint64_t def);

/* RAM above the image (from the start_info memory map). */
extern uint64_t ram_bytes;  /* total RAM in the map */
extern uint64_t free_start; /* first free byte after the image, 2 MiB aligned */
extern uint64_t free_end;   /* end of the RAM range free_start lies in */
void mem_init(const struct hvm_start_info *si);

void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strncmp(const char *a, const char *b, size_t n);
uint64_t parse_u64(const char *s, const char **end);

/* xorshift64* */
static inline uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

#endif
