/* libFuzzer target: the software CPU runs the input as x86 code, from a
 * state the input picks (CPL 3 or 0 in long mode, or the 32-bit PVH entry
 * state; registers from a pool of troublesome values; where the code
 * sits), against guest RAM fenced by PROT_NONE guard pages. softcpu_run
 * must come back with one of its exits and within its budget, MMIO and
 * port accesses must be well-formed and never hit RAM, and nothing may
 * touch host memory outside guest RAM (ASan, the guards) or be undefined
 * (UBSan). The fuzz build links lib/, hostd/ and vmkctl/ but not vmm/, so
 * the interpreter and guest memory are compiled in here.
 *
 * Guest RAM: 4 MiB at 0 and 64 KiB at 4 GiB. The page tables sit at the
 * end of the first slot and map RAM, MMIO, 4 KiB pages of every kind (not
 * present, read-only, supervisor, NX; the page tables among them), a page
 * table in MMIO, a directory used as a page table, a recursive PML4 entry
 * and the higher half. Exceptions go to handlers that step over a byte and
 * IRETQ (or HLT). Between inputs the pages the guest wrote (the CPU's own
 * dirty log) are zeroed again, so an input always runs the same way.
 *   make fuzz FUZZ_SECONDS=60 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "vmm/mem.c"
#include "vmm/sbuf.c"
#include "vmm/softcpu.c"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define LOW    (4ull << 20)
#define HIGH   (64ull << 10)
#define HGPA   (4ull << 30)
#define GUARD  (64ull << 10)
#define GDT    0x1000ull
#define IDT    0x2000ull
#define TSS    0x3000ull
#define HND    0x4000ull
#define PT     0x6000ull /* 4 KiB pages of every kind at 2 MiB */
#define KSTK   0x80000ull
#define ISTK   0x90000ull
#define USTK   0xa0000ull
#define CODE   0x100000ull
#define PML4   (LOW - 0x2000)
#define PDPT   (LOW - 0x3000)
#define PD     (LOW - 0x4000)
#define NPAGES ((HGPA + HIGH) >> 12)

static struct vmm_mem ram;
static struct softcpu cpu;
static uint64_t dirty[NPAGES / 64 + 1];

/* the input, read front to back; zeros once it runs out */
struct in {
	const uint8_t *p;
	size_t n;
};

static uint8_t u8(struct in *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

static uint64_t u64(struct in *in)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v |= (uint64_t)u8(in) << (8 * i);
	return v;
}

static uint8_t *slot_map(size_t len)
{
	uint8_t *p = mmap(NULL, len + 2 * GUARD, PROT_NONE,
	                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED || mprotect(p + GUARD, len, PROT_READ | PROT_WRITE))
		abort();
	return p + GUARD;
}

static uint8_t *gpa(uint64_t a)
{
	return vmm_gpa(&ram, a, 1);
}

static void put(uint64_t a, uint64_t v)
{
	memcpy(gpa(a), &v, 8);
}

static volatile uint8_t sink;

static void fz_pio(void *arg, uint16_t port, bool out, uint8_t *data, unsigned size)
{
	(void)arg;
	(void)port;
	if (size != 1 && size != 2 && size != 4)
		abort();
	if (out)
		for (unsigned i = 0; i < size; i++)
			sink ^= data[i];
	else
		memset(data, 0x5a, size);
}

static void fz_mmio(void *arg, uint64_t a, bool write, uint8_t *data, unsigned size)
{
	(void)arg;
	if ((size != 1 && size != 2 && size != 4 && size != 8) || (a & 0xfff) + size > 4096 ||
	    vmm_gpa(&ram, a, size))
		abort();
	if (write)
		for (unsigned i = 0; i < size; i++)
			sink ^= data[i];
	else
		memset(data, 0xa5, size);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct softcpu_io io = { fz_pio, fz_mmio, NULL };

	(void)argc;
	(void)argv;
	ram.slots[0] = (struct vmm_mem_slot){ 0, LOW, slot_map(LOW), -1 };
	ram.slots[1] = (struct vmm_mem_slot){ HGPA, HIGH, slot_map(HIGH), -1 };
	ram.nslots = 2;
	ram.ram_bytes = LOW + HIGH;
	softcpu_init(&cpu, &ram, &io);
	cpu.trace = 0;
	atomic_store(&cpu.dirty, dirty);
	cpu.dirty_pages = NPAGES;
	return 0;
}

static void mark(uint64_t a, uint64_t len)
{
	for (uint64_t p = a >> 12; p <= (a + len - 1) >> 12 && p < NPAGES; p++)
		dirty[p / 64] |= 1ull << (p % 64);
}

/* the pages the last input wrote, zeroed again */
static void scrub(void)
{
	for (uint64_t w = 0; w < sizeof(dirty) / 8; w++)
		for (uint64_t bits = dirty[w]; bits; bits &= bits - 1) {
			uint64_t pfn = w * 64 + (uint64_t)__builtin_ctzll(bits);
			uint8_t *p = vmm_gpa(&ram, pfn << 12, 4096);
			if (p)
				memset(p, 0, 4096);
		}
	memset(dirty, 0, sizeof(dirty));
}

static void build(uint8_t flags)
{
	static const uint64_t gdt[8] = {
		0,
		0x00af9a000000ffffull, /* 0x08 kernel code 64 */
		0x00cf92000000ffffull, /* 0x10 kernel data */
		0x00affa000000ffffull, /* 0x18 user code 64 */
		0x00cff2000000ffffull, /* 0x20 user data */
		0x0000890030000067ull, /* 0x28 TSS at 0x3000 */
		0,
		0x00cf9a000000ffffull, /* 0x38 kernel code 32 */
	};
	static const uint8_t skip[] = { 0x48, 0x83, 0x04, 0x24, 0x01, 0x48, 0xcf };
	static const uint8_t pop_err[] = { 0x48, 0x83, 0xc4, 0x08 };

	memcpy(gpa(GDT), gdt, sizeof(gdt));
	memset(gpa(TSS), 0, 0x68);
	put(TSS + 4, KSTK);
	put(TSS + 0x24, ISTK);
	memset(gpa(HND), 0xcc, 0x210);
	for (unsigned v = 0; v < 32; v++) {
		uint8_t *h = gpa(HND + 16 * v);
		if (flags & 4) {
			h[0] = 0xf4; /* hlt */
			continue;
		}
		if (v == 8 || (v >= 10 && v <= 14) || v == 17 || v == 21) {
			memcpy(h, pop_err, sizeof(pop_err));
			h += sizeof(pop_err);
		}
		memcpy(h, skip, sizeof(skip));
	}
	gpa(HND + 0x200)[0] = 0x48; /* iretq for INT n */
	gpa(HND + 0x200)[1] = 0xcf;
	for (unsigned v = 0; v < 256; v++) {
		uint64_t t = v < 32 ? HND + 16 * v : HND + 0x200;
		unsigned dpl = v == 3 || v >= 0x80 ? 3 : 0, ist = v == 8 ? 1 : 0;
		put(IDT + v * 16, (t & 0xffff) | (0x08ull << 16) | ((uint64_t)ist << 32) |
		                          ((uint64_t)(0x8e | dpl << 5) << 40) |
		                          ((t & 0xffff0000ull) << 32));
		put(IDT + v * 16 + 8, t >> 32);
	}
	put(PML4, PDPT | 7);
	put(PML4 + 256 * 8, PDPT | 7);
	put(PML4 + 511 * 8, PML4 | 7); /* recursive */
	put(PDPT, PD | 7);
	put(PDPT + 8, HGPA | 0x87);           /* 1 GiB onto slot 1, then MMIO */
	put(PDPT + 24, 0xc0000000ull | 0x87); /* 1 GiB of MMIO */
	put(PDPT + 32, LOW | 7);              /* a directory beyond RAM */
	for (uint64_t i = 0; i < 512; i++)
		put(PD + i * 8, (i << 21) | 0x87);
	put(PD + 8, PT | 7);
	put(PD + 3 * 8, 0);
	put(PD + 4 * 8, 0xd0000000ull | 7); /* a page table in MMIO */
	put(PD + 5 * 8, PD | 7);            /* the directory as a page table */
	for (uint64_t j = 0; j < 512; j++) {
		static const uint64_t kind[8] = { 7, 0, 7, 5, 7, 3, 7, 7 | 1ull << 63 };
		put(PT + j * 8, kind[j % 8] ? (0x200000 + j * 4096) | kind[j % 8] : 0);
	}
}

static uint64_t value(struct in *in)
{
	uint8_t k = u8(in);
	uint64_t off = (uint64_t)u8(in) * 8;

	switch (k % 14) {
	case 0:
		return off / 8;
	case 1:
		return CODE + off;
	case 2:
		return LOW - off; /* the page tables */
	case 3:
		return 0x200000 + off * 16; /* 4 KiB pages of every kind */
	case 4:
		return 0xc0000000ull + off; /* MMIO */
	case 5:
		return (1ull << 47) - off; /* the canonical edge */
	case 6:
		return 0xffff800000000000ull + off * 64; /* the higher half */
	case 7:
		return (1ull << 30) + HIGH - off; /* the end of slot 1 */
	case 8:
		return ~0ull - off;
	case 9:
		return 0xffffff8000000000ull + off * 512; /* the recursive entry */
	case 10:
		return (off / 8 % 9) * 8 | (k >> 6); /* selectors */
	case 11:
		return off / 8 < 128 ? 0xc0000080 + off / 8 % 3 : 0x10; /* MSRs */
	case 12:
		return 1ull << 63 | off;
	default:
		return u64(in);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct in in = { data, size };
	struct softcpu *c = &cpu;
	uint8_t flags = u8(&in), where = u8(&in);
	unsigned mode = flags % 3; /* CPL 3, CPL 0, 32-bit protected mode */
	bool lm = mode != 2;
	uint64_t la, pa;

	scrub();
	build(flags);
	softcpu_reset_pvh(c, CODE, 0);
	c->gdt_base = GDT;
	c->gdt_limit = 0x3f;
	if (lm) {
		c->cr0 = 0x80010033;
		c->cr4 = 0x20;
		c->efer = 0x501 | (flags & 8 ? 0x800 : 0);
		c->cr3 = PML4;
		c->idt_base = IDT;
		c->idt_limit = 0xfff;
		c->tr_base = TSS;
		c->tr_limit = 0x67;
		c->tr_sel = 0x28;
		c->cs_l = true;
		c->cs_db = false;
		c->cpl = mode ? 0 : 3;
		c->sel[SEG_CS] = mode ? 0x08 : 0x1b;
		c->sel[SEG_SS] = mode ? 0x10 : 0x23;
	}
	c->rflags = 2 | (flags & 0x10 ? F_IOPL : 0) | (flags & 0x20 ? F_DF : 0) |
	            (flags & 0x40 ? F_CF | F_ZF : 0);
	for (unsigned r = 0; r < 16; r++)
		c->r[r] = value(&in);
	if (!(flags & 0x80))
		c->r[RSP] = mode ? KSTK - 0x1000 : USTK;
	uint64_t budget = 1 + u8(&in) * 4u;

	unsigned n = 1 + where % 15;
	switch (lm ? (where >> 4) % 5 : (where >> 4) % 2) {
	case 0:
		la = pa = CODE + (where >> 4) * 64;
		break;
	case 1:
		la = pa = LOW - n; /* the end of RAM, then MMIO */
		break;
	case 2:
		la = pa = 0x201000 - n; /* then a page that is not present */
		break;
	case 3:
		la = (1ull << 30) + HIGH - n; /* the end of slot 1, then MMIO */
		pa = HGPA + HIGH - n;
		break;
	default:
		la = 0xffff800000000000ull + CODE + 4096 - n; /* the higher half */
		pa = CODE + 4096 - n;
	}
	for (size_t i = 0; i < 256 && in.n; i++) {
		uint8_t *p = vmm_gpa(&ram, pa + i, 1);
		uint8_t b = u8(&in);
		if (p)
			*p = b;
	}
	c->rip = la;
	for (int k = 0; k < 3; k++) {
		uint64_t i0 = c->insns;
		enum softcpu_exit e = softcpu_run(c, budget);
		if ((unsigned)e > SOFTCPU_PAUSE || c->insns - i0 > budget || c->cpl > 3 ||
		    !memchr(c->why, 0, sizeof(c->why)))
			abort();
		if (e != SOFTCPU_YIELD && e != SOFTCPU_PAUSE)
			break;
	}
	/* what was written here rather than by the CPU is scrubbed next time
	 * too: the tables, the handlers, the code */
	mark(0, 8 * 4096);
	mark(LOW - 0x4000, 0x4000);
	mark(pa, 256);
	return 0;
}
