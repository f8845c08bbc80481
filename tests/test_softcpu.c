/* The software CPU against the real one: each instruction (or a short
 * sequence) runs on the host, in an executable buffer, and on the
 * interpreter from the same registers, flags and memory, and all sixteen
 * registers, the flags the SDM defines and the memory must agree.
 *
 * Both sides run at the same linear addresses: the host code page and a
 * scratch buffer are mapped below 2 GiB (MAP_32BIT, so that 32-bit
 * addressing reaches them too) and the guest's page tables map the same
 * linear pages onto guest RAM (the scratch pages in reverse physical
 * order, so an access crossing a page crosses physical pages). Pointers,
 * RIP-relative operands and return addresses mean the same on both sides.
 *
 * Plus what a differential test cannot reach: faults through the IDT,
 * privilege checks, the REP budget and stop, state save/restore, and
 * random instruction streams that must never take the host with them. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <cpuid.h>

#include "vmm/sbuf.h"
#include "vmm/softcpu.h"

#define CF  0x1ull
#define PF  0x4ull
#define AF  0x10ull
#define ZF  0x40ull
#define SF  0x80ull
#define DF  0x400ull
#define OF  0x800ull
#define ALL (CF | PF | AF | ZF | SF | OF)

#define CODE     0x10000ull /* where test instructions go */
#define PML4     0x1000ull
#define STACK    0x80000ull
#define IDT      0x20000ull
#define GDT      0x21000ull
#define TSS      0x22000ull
#define HANDLR   0x23000ull
#define DCODE    0x100000ull /* the differential harness: the host code page */
#define DDATA    0x110000ull /* its scratch pages */
#define PTPOOL   0x200000ull /* page tables for 4 KiB mappings */
#define PTE_ADDR 0x000ffffffffff000ull

#define SCRATCH_PAGES 3
#define SCRATCH_SIZE  (SCRATCH_PAGES * 4096)

enum { RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8, R9, R10, R11, R12, R13, R14, R15 };

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* interesting values: edges of every width, plus random ones */
static uint64_t operand(void)
{
	static const uint64_t edge[] = { 0,          1,          2,          0x7f,
		                         0x80,       0xff,       0x7fff,     0x8000,
		                         0xffff,     0x7fffffff, 0x80000000, 0xffffffff,
		                         ~0ull >> 1, 1ull << 63, ~0ull,      ~0ull - 1 };
	uint64_t r = rnd();
	return (r & 3) == 0 ? edge[(r >> 2) % (sizeof(edge) / sizeof(edge[0]))] : rnd();
}

static uint64_t mask_of(unsigned w)
{
	return w >= 8 ? ~0ull : (1ull << (8 * w)) - 1;
}

static int64_t sext(uint64_t v, unsigned w)
{
	unsigned sh = 64 - 8 * w;
	return (int64_t)(v << sh) >> sh;
}

/* ---- guest memory ---- */

static struct vmm_mem mem;
static uint8_t io_last_port;
static uint32_t io_last_val;

static void pio(void *arg, uint16_t port, bool out, uint8_t *data, unsigned size)
{
	(void)arg;
	io_last_port = (uint8_t)port;
	if (out) {
		io_last_val = 0;
		memcpy(&io_last_val, data, size);
	} else {
		memset(data, 0x5a, size);
	}
}

static void mmio(void *arg, uint64_t gpa, bool write, uint8_t *data, unsigned size)
{
	(void)arg;
	(void)gpa;
	if (!write)
		memset(data, 0xa5, size);
}

static uint8_t *gp(uint64_t gpa)
{
	return vmm_gpa(&mem, gpa, 1);
}

static void put64(uint64_t gpa, uint64_t v)
{
	memcpy(gp(gpa), &v, 8);
}

static uint64_t get64(uint64_t gpa)
{
	uint64_t v;

	memcpy(&v, gp(gpa), 8);
	return v;
}

static uint64_t pt_next;

static uint64_t pt_alloc(void)
{
	uint64_t a = pt_next;

	pt_next += 4096;
	memset(gp(a), 0, 4096);
	return a;
}

/* Maps the linear 4 KiB page la onto pa with the PTE flags given (in the
 * tables at PML4), splitting a large page on the way if need be. */
static void map4k(uint64_t la, uint64_t pa, uint64_t flags)
{
	uint64_t table = PML4;

	for (int level = 3; level > 0; level--) {
		uint64_t slot = table + ((la >> (12 + 9 * level)) & 511) * 8, e = get64(slot);
		if (!(e & 1)) {
			e = pt_alloc() | 7;
			put64(slot, e);
		} else if (e & 0x80) {
			uint64_t t = pt_alloc(), span = 1ull << (12 + 9 * (level - 1));
			uint64_t base = e & PTE_ADDR & ~((span << 9) - 1);
			for (uint64_t i = 0; i < 512; i++)
				put64(t + i * 8, (base + i * span) | (level > 1 ? 0x87 : 7));
			e = t | 7;
			put64(slot, e);
		}
		table = e & PTE_ADDR;
	}
	put64(table + ((la >> 12) & 511) * 8, pa | flags);
}

/* 64-bit mode at CPL 0: identity map of the first 1 GiB with 2 MiB pages
 * (user, writable), except the 2 MiB page at 64 MiB, left unmapped. */
static void cpu_setup(struct softcpu *c)
{
	struct softcpu_io io = { pio, mmio, NULL };

	softcpu_init(c, &mem, &io);
	softcpu_reset_pvh(c, CODE, 0);
	memset(gp(PML4), 0, 3 * 4096);
	put64(PML4, (PML4 + 0x1000) | 7);
	put64(PML4 + 0x1000, (PML4 + 0x2000) | 7);
	for (uint64_t i = 0; i < 512; i++)
		if (i != 32)
			put64(PML4 + 0x2000 + i * 8, (i << 21) | 0x87);
	pt_next = PTPOOL;
	c->cr3 = PML4;
	c->cr4 = 1u << 5;
	c->efer = (1u << 8) | (1u << 10);
	c->cr0 = 0x80000011;
	c->cs_l = true;
	c->cs_db = false;
	c->r[RSP] = STACK;
	softcpu_flush_tlb(c);
}

/* the four registers the simple tests use */
struct regs {
	uint64_t rax, rbx, rcx, rdx, rflags;
};

static enum softcpu_exit soft_run(struct softcpu *c, const uint8_t *insn, size_t len,
                                  struct regs *r)
{
	memcpy(gp(CODE), insn, len);
	gp(CODE)[len] = 0xf4; /* hlt */
	c->rip = CODE;
	c->r[RAX] = r->rax;
	c->r[RBX] = r->rbx;
	c->r[RCX] = r->rcx;
	c->r[RDX] = r->rdx;
	c->rflags = (r->rflags & ALL) | 2;
	enum softcpu_exit e;
	while ((e = softcpu_run(c, 100)) == SOFTCPU_PAUSE)
		;
	r->rax = c->r[RAX];
	r->rbx = c->r[RBX];
	r->rcx = c->r[RCX];
	r->rdx = c->r[RDX];
	r->rflags = c->rflags;
	return e;
}

/* ---- the differential harness ---- */

struct st {
	uint64_t r[16]; /* in encoding order: rax rcx rdx rbx rsp rbp rsi rdi r8..r15 */
	uint64_t fl;
};

static uint8_t *host_code; /* page 0: stub and instruction; page 1: the state block */
static uint8_t *scratch;   /* SCRATCH_PAGES, the same linear pages in the guest */
static size_t insn_off;    /* where the instruction starts in host_code */

#define BLOCK     ((struct st *)(host_code + 4096))
#define SAVED_RSP ((uint64_t)(host_code + 4096 + 0x100))

/* rex opc modrm(reg, [rip + target]) */
static uint8_t *rip_op(uint8_t *p, uint8_t rex, uint8_t opc, unsigned reg, uint64_t target)
{
	if (rex)
		*p++ = rex;
	*p++ = opc;
	*p++ = (uint8_t)(((reg & 7) << 3) | 5);
	int32_t d = (int32_t)(int64_t)(target - (uint64_t)(p + 4));
	memcpy(p, &d, 4);
	return p + 4;
}

/* saves the callee-saved registers and RSP, loads RFLAGS and all sixteen
 * registers (RSP last) from the state block */
static uint8_t *stub_pre(uint8_t *p)
{
	static const uint8_t save[] = {
		0x53, 0x55, 0x41, 0x54, 0x41, 0x55, 0x41, 0x56, 0x41, 0x57
	};

	memcpy(p, save, sizeof(save));
	p += sizeof(save);
	p = rip_op(p, 0x48, 0x89, RSP, SAVED_RSP);       /* mov [saved], rsp */
	p = rip_op(p, 0, 0xff, 6, (uint64_t)&BLOCK->fl); /* push qword [fl] */
	*p++ = 0x9d;                                     /* popfq */
	for (unsigned r = 0; r < 16; r++)
		if (r != RSP)
			p = rip_op(p, (uint8_t)(0x48 | (r >= 8 ? 4 : 0)), 0x8b, r,
			           (uint64_t)&BLOCK->r[r]);
	return rip_op(p, 0x48, 0x8b, RSP, (uint64_t)&BLOCK->r[RSP]);
}

static void host_exec(const uint8_t *insn, size_t len, struct st *s)
{
	/* cld, the callee-saved registers back, ret */
	static const uint8_t restore[] = { 0xfc, 0x41, 0x5f, 0x41, 0x5e, 0x41,
		                           0x5d, 0x41, 0x5c, 0x5d, 0x5b, 0xc3 };
	uint8_t *p = stub_pre(host_code);

	memcpy(p, insn, len);
	p += len;
	for (unsigned r = 0; r < 16; r++)
		p = rip_op(p, (uint8_t)(0x48 | (r >= 8 ? 4 : 0)), 0x89, r, (uint64_t)&BLOCK->r[r]);
	p = rip_op(p, 0x48, 0x8b, RSP, SAVED_RSP);       /* mov rsp, [saved] */
	*p++ = 0x9c;                                     /* pushfq */
	p = rip_op(p, 0, 0x8f, 0, (uint64_t)&BLOCK->fl); /* pop qword [fl] */
	memcpy(p, restore, sizeof(restore));
	p += sizeof(restore);
	*BLOCK = *s;
	__builtin___clear_cache((char *)host_code, (char *)p);
	((void (*)(void))(void *)host_code)();
	*s = *BLOCK;
}

static uint64_t scratch_gpa(unsigned page)
{
	return DDATA + (SCRATCH_PAGES - 1 - page) * 4096ull;
}

static void map_harness(struct softcpu *c)
{
	map4k((uint64_t)host_code, DCODE, 7);
	for (unsigned p = 0; p < SCRATCH_PAGES; p++)
		map4k((uint64_t)scratch + p * 4096ull, scratch_gpa(p), 7);
	softcpu_flush_tlb(c);
}

static void scratch_to_guest(void)
{
	for (unsigned p = 0; p < SCRATCH_PAGES; p++)
		memcpy(gp(scratch_gpa(p)), scratch + p * 4096, 4096);
}

/* the first offset where the guest's scratch differs from the host's, or -1 */
static long scratch_diff(void)
{
	for (unsigned p = 0; p < SCRATCH_PAGES; p++) {
		const uint8_t *g = gp(scratch_gpa(p)), *h = scratch + p * 4096;
		if (memcmp(g, h, 4096))
			for (unsigned i = 0; i < 4096; i++)
				if (g[i] != h[i])
					return (long)(p * 4096 + i);
	}
	return -1;
}

static uint8_t scratch_guest_byte(long off)
{
	return gp(scratch_gpa((unsigned)(off / 4096)))[off % 4096];
}

static enum softcpu_exit soft_exec(struct softcpu *c, const uint8_t *insn, size_t len, struct st *s)
{
	uint8_t *g = gp(DCODE);

	memcpy(g + insn_off, insn, len);
	g[insn_off + len] = 0xf4; /* hlt */
	memcpy(c->r, s->r, sizeof(c->r));
	c->rflags = (s->fl & (ALL | DF)) | 0x202; /* IF as in the host process */
	c->rip = (uint64_t)host_code + insn_off;
	enum softcpu_exit e;
	while ((e = softcpu_run(c, 10000)) == SOFTCPU_PAUSE)
		; /* a pause-loop exit only offers the host CPU: go on */
	memcpy(s->r, c->r, sizeof(s->r));
	s->fl = c->rflags;
	return e;
}

/* ---- the cases ---- */

struct dcase;
typedef void prep_fn(struct st *s, const struct dcase *d, int iter);
typedef uint64_t fmask_fn(const struct dcase *d, const struct st *in);

struct dcase {
	char name[48];
	uint8_t b[24];
	unsigned len;
	uint64_t flags;  /* flags the SDM defines (DF is always compared) */
	prep_fn *prep;   /* after the default registers and memory */
	fmask_fn *fmask; /* the defined flags if they depend on the operands */
	int p1, p2, p3;  /* for prep and fmask */
	int iters;
};

static struct dcase *cases;
static size_t ncases, capcases;

static struct dcase *add(const char *name, uint64_t flags, const uint8_t *b, size_t len)
{
	if (ncases == capcases) {
		capcases = capcases ? 2 * capcases : 512;
		cases = realloc(cases, capcases * sizeof(*cases));
		assert_non_null(cases);
	}
	struct dcase *d = &cases[ncases++];
	memset(d, 0, sizeof(*d));
	assert_true(len <= sizeof(d->b));
	snprintf(d->name, sizeof(d->name), "%s", name);
	memcpy(d->b, b, len);
	d->len = (unsigned)len;
	d->flags = flags;
	d->iters = 40;
	return d;
}

static char namebuf[64];

static const char *__attribute__((format(printf, 1, 2))) nm(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(namebuf, sizeof(namebuf), fmt, ap);
	va_end(ap);
	return namebuf;
}

#define A(name, flags, ...)                                                                        \
	add(name, flags, (const uint8_t[]){ __VA_ARGS__ }, sizeof((const uint8_t[]){ __VA_ARGS__ }))

/* an instruction assembled on the fly */
struct enc {
	uint8_t b[24];
	unsigned n;
};

static void eb(struct enc *e, unsigned v)
{
	e->b[e->n++] = (uint8_t)v;
}

static void e16(struct enc *e, uint32_t v)
{
	eb(e, v & 0xff);
	eb(e, (v >> 8) & 0xff);
}

static void e32(struct enc *e, uint32_t v)
{
	e16(e, v & 0xffff);
	e16(e, v >> 16);
}

static void eimm(struct enc *e, unsigned w, uint32_t v)
{
	if (w == 1)
		eb(e, v & 0xff);
	else if (w == 2)
		e16(e, v & 0xffff);
	else
		e32(e, v);
}

/* the operand-size prefix and REX.W of width w, then opc (or opc8 for 8 bits) */
static void eop(struct enc *e, unsigned w, unsigned rex, unsigned opc8, unsigned opc)
{
	if (w == 2)
		eb(e, 0x66);
	if (w == 8 || rex)
		eb(e, (w == 8 ? 0x48 : 0x40) | rex);
	if (opc > 0xff) { /* two-byte opcode 0x0fxx */
		eb(e, 0x0f);
		opc &= 0xff;
	}
	eb(e, w == 1 ? opc8 : opc);
}

static unsigned modrm(unsigned mod, unsigned reg, unsigned rm)
{
	return (mod << 6) | ((reg & 7) << 3) | (rm & 7);
}

static struct dcase *adde(const struct enc *e, uint64_t flags, const char *name)
{
	return add(name, flags, e->b, e->n);
}

static const unsigned widths[4] = { 1, 2, 4, 8 };

/* ---- preparing registers and memory ---- */

static uint64_t mid(void)
{
	return (uint64_t)scratch + SCRATCH_SIZE / 2;
}

/* somewhere in the scratch buffer with 2 KiB to spare on either side */
static uint64_t ptr(void)
{
	return (uint64_t)scratch + 2048 + rnd() % (SCRATCH_SIZE - 4096);
}

static uint8_t *at(uint64_t la)
{
	return scratch + (la - (uint64_t)scratch);
}

static void poke(uint64_t la, uint64_t v, unsigned w)
{
	memcpy(at(la), &v, w);
}

static uint64_t peek(uint64_t la, unsigned w)
{
	uint64_t v = 0;

	memcpy(&v, at(la), w);
	return v;
}

static void fill_scratch(void)
{
	for (size_t i = 0; i < SCRATCH_SIZE; i += 8) {
		uint64_t v = rnd() & 7 ? rnd() : operand();
		memcpy(scratch + i, &v, 8);
	}
}

static void prep_default(struct st *s)
{
	for (unsigned r = 0; r < 16; r++)
		s->r[r] = operand();
	s->r[RSP] = mid() + 8 * (rnd() % 64) - 256;
	s->r[RBP] = ptr();
	s->r[RSI] = ptr();
	s->r[RDI] = ptr();
	s->fl = (rnd() & (ALL | DF)) | 2;
}

/* the address right after the instruction under test */
static uint64_t next_of(const struct dcase *d)
{
	return (uint64_t)host_code + insn_off + d->len;
}

/* the count in CL: 0 to 69 in turn, then random */
static void prep_cl(struct st *s, const struct dcase *d, int iter)
{
	(void)d;
	s->r[RCX] = (s->r[RCX] & ~0xffull) | (iter < 70 ? (uint64_t)iter : rnd() & 0xff);
}

/* small indexes in RCX and RAX for scaled-index memory operands, R13 a
 * pointer */
static void prep_index(struct st *s, const struct dcase *d, int iter)
{
	(void)d;
	(void)iter;
	s->r[RCX] = rnd() % 64;
	s->r[RAX] = rnd() % 64;
	s->r[R13] = ptr();
}

/* 32-bit addressing: garbage above bit 31 of the pointers and counters */
static void prep_a32(struct st *s, const struct dcase *d, int iter)
{
	(void)d;
	(void)iter;
	s->r[RSI] |= rnd() << 32;
	s->r[RDI] |= rnd() << 32;
	s->r[RBP] |= rnd() << 32;
	s->r[RCX] = (rnd() << 32) | (rnd() % 64);
}

/* RET and indirect CALL/JMP: the target is the next instruction */
static void prep_target(struct st *s, const struct dcase *d, int iter)
{
	(void)iter;
	uint64_t next = next_of(d);
	poke(s->r[RSP], next, 8);
	poke(s->r[RSI], next, 8);
	s->r[RAX] = next;
	s->r[R11] = next;
}

/* POPF: a value the host can load at CPL 3 (no TF, no AC) */
static void prep_popf(struct st *s, const struct dcase *d, int iter)
{
	(void)d;
	(void)iter;
	poke(s->r[RSP], (rnd() & (ALL | DF)) | 0x202, 8);
}

/* strings: p1 the opcode, p2 the element size, p3 32-bit addressing */
static void prep_str(struct st *s, const struct dcase *d, int iter)
{
	unsigned op = (unsigned)d->p1 & ~1u, w = (unsigned)d->p2;

	(void)iter;
	s->r[RCX] = rnd() % 41;
	if (op == 0xa4 && rnd() % 4 == 0) /* overlapping moves */
		s->r[RDI] = s->r[RSI] + rnd() % 17 - 8;
	if (op == 0xa6) { /* mostly equal strings, sometimes a difference */
		memmove(at(s->r[RDI] - 400), at(s->r[RSI] - 400), 800);
		if (rnd() & 1)
			at(s->r[RDI] + rnd() % 700 - 350)[0] ^= (uint8_t)(1 + rnd() % 255);
	}
	if (op == 0xae) { /* mostly the value scanned for */
		for (int i = -400; i < 400; i += (int)w)
			poke(s->r[RDI] + (uint64_t)i, s->r[RAX], w);
		if (rnd() & 1)
			at(s->r[RDI] + rnd() % 700 - 350)[0] ^= (uint8_t)(1 + rnd() % 255);
	}
	if (d->p3) {
		s->r[RSI] |= rnd() << 32;
		s->r[RDI] |= rnd() << 32;
		s->r[RCX] |= rnd() << 32;
	}
}

/* DIV/IDIV without #DE: p1 width, p2 signed, p3 where the divisor is
 * (0 RBX/BL, 1 [RSI], 2 BH); the dividend is quotient * divisor + a
 * remainder of the dividend's sign smaller than the divisor */
static void prep_div(struct st *s, const struct dcase *d, int iter)
{
	unsigned w = (unsigned)d->p1, bits = 8 * w;
	uint64_t m = mask_of(w), dv;
	unsigned __int128 a;

	(void)iter;
	do
		dv = operand() & m;
	while (!dv);
	uint64_t qbits = (rnd() & 1 ? operand() : rnd() % 1000) & m;
	if (d->p2) {
		int64_t sd = sext(dv, w), q = sext(qbits, w);
		uint64_t ad = sd < 0 ? 0 - (uint64_t)sd : (uint64_t)sd;
		__int128 p = (__int128)q * sd, r = (__int128)(rnd() % ad);
		__int128 sa = p > 0 || (p == 0 && (rnd() & 1)) ? p + r : p - r;
		__int128 qq = sa / sd;
		assert_true(qq >= -((__int128)1 << (bits - 1)) && qq < ((__int128)1 << (bits - 1)));
		a = (unsigned __int128)sa;
	} else {
		a = (unsigned __int128)qbits * dv + rnd() % dv;
		assert_true(a / dv <= m);
	}
	if (w == 1) {
		s->r[RAX] = (s->r[RAX] & ~0xffffull) | ((uint64_t)a & 0xffff);
	} else {
		s->r[RAX] = (s->r[RAX] & ~m) | ((uint64_t)a & m);
		s->r[RDX] = (s->r[RDX] & ~m) | ((uint64_t)(a >> bits) & m);
	}
	if (d->p3 == 0)
		s->r[RBX] = (s->r[RBX] & ~m) | dv;
	else if (d->p3 == 2)
		s->r[RBX] = (s->r[RBX] & ~0xff00ull) | (dv << 8);
	else
		poke(s->r[RSI], dv, w);
}

/* BT* with a memory operand and a register bit offset in RCX: p1 width;
 * large and negative offsets, the base in the middle of the scratch */
static void prep_btoff(struct st *s, const struct dcase *d, int iter)
{
	(void)iter;
	s->r[RSI] = mid();
	if (d->p1 == 2)
		s->r[RCX] = rnd(); /* any 16-bit offset: +-4 KiB */
	else if (d->p1 == 4)
		s->r[RCX] = (rnd() << 32) | (uint32_t)(int32_t)((int)(rnd() % 64000) - 32000);
	else
		s->r[RCX] = (uint64_t)(int64_t)((int)(rnd() % 64000) - 32000);
}

/* BSF/BSR: a source that is not zero (the result is undefined for 0);
 * p1 width, p2 1 for [rsi] */
static void prep_nonzero(struct st *s, const struct dcase *d, int iter)
{
	uint64_t m = mask_of((unsigned)d->p1);

	(void)iter;
	if (d->p2) {
		if (!(peek(s->r[RSI], 8) & m))
			poke(s->r[RSI], 1ull << (rnd() % (8 * (unsigned)d->p1)), 8);
	} else if (!(s->r[RBX] & m)) {
		s->r[RBX] |= 1ull << (rnd() % (8 * (unsigned)d->p1));
	}
}

/* TZCNT/LZCNT: often zero */
static void prep_zero(struct st *s, const struct dcase *d, int iter)
{
	(void)d;
	(void)iter;
	if (rnd() % 4 == 0) {
		s->r[RBX] = 0;
		poke(s->r[RSI], 0, 8);
	}
}

/* CMPXCHG: half the time the accumulator matches; p1 width, p2 the
 * destination register (-1: [rsi], 8: BH) */
static void prep_cmpxchg(struct st *s, const struct dcase *d, int iter)
{
	uint64_t m = mask_of((unsigned)d->p1), v;

	(void)iter;
	if (rnd() & 1)
		return;
	v = d->p2 < 0 ? peek(s->r[RSI], 8) : d->p2 == 8 ? s->r[RBX] >> 8 : s->r[d->p2];
	s->r[RAX] = (s->r[RAX] & ~m) | (v & m);
}

/* LOOP/JRCXZ: small counts */
static void prep_loop(struct st *s, const struct dcase *d, int iter)
{
	(void)d;
	s->r[RCX] = (rnd() << 32) | (uint64_t)(iter % 3);
	if (iter % 7 == 0)
		s->r[RCX] &= ~0xffffffffull;
}

/* shifts and rotates: p1 the operation, p2 the width in bits, p3 an
 * immediate count (-1: CL). Undefined: AF; OF unless the count is 1; CF of
 * SHL/SHR when the count reaches the width. A masked count of 0 changes
 * nothing; rotates leave SF ZF AF PF alone. */
static uint64_t fmask_shift(const struct dcase *d, const struct st *in)
{
	unsigned w = (unsigned)d->p2;
	unsigned cnt = d->p3 >= 0 ? (unsigned)d->p3 : (unsigned)(in->r[RCX] & 0xff);

	cnt &= w == 64 ? 63 : 31;
	if (!cnt)
		return ALL;
	if (d->p1 < 4)
		return (ALL & ~OF) | (cnt == 1 ? OF : 0);
	uint64_t m = SF | ZF | PF | (cnt == 1 ? OF : 0);
	if (cnt < w || d->p1 == 7)
		m |= CF;
	return m;
}

/* ---- building the table ---- */

static const char *const alu_names[8] = { "add", "or", "adc", "sbb", "and", "sub", "xor", "cmp" };

static void build_alu(void)
{
	for (unsigned op = 0; op < 8; op++) {
		const char *n = alu_names[op];
		uint64_t f = (op == 1 || op == 4 || op == 6) ? ALL & ~AF : ALL;
		unsigned o = op << 3;
		A(nm("%s r64,r64", n), f, 0x48, o + 1, 0xd8);
		A(nm("%s r32,r32", n), f, o + 1, 0xd8);
		A(nm("%s r16,r16", n), f, 0x66, o + 1, 0xd8);
		A(nm("%s al,bl", n), f, o, 0xd8);
		A(nm("%s ah,bh", n), f, o, 0xfc);
		A(nm("%s bl,ah (G,E)", n), f, o + 2, 0xdc);
		A(nm("%s sil,dil", n), f, 0x40, o, 0xfe);
		A(nm("%s r8,r9", n), f, 0x4d, o + 1, 0xc8);
		A(nm("%s r10d,r11d (G,E)", n), f, 0x45, o + 3, 0xd3);
		A(nm("%s [rsi],rbx", n), f, 0x48, o + 1, 0x1e);
		A(nm("%s [rsi],ebx", n), f, o + 1, 0x1e);
		A(nm("%s [rsi],bx", n), f, 0x66, o + 1, 0x1e);
		A(nm("%s [rsi],bh", n), f, o, 0x3e);
		A(nm("%s [rsi],r12b", n), f, 0x44, o, 0x26);
		A(nm("%s eax,[rdi-16]", n), f, o + 3, 0x47, 0xf0);
		A(nm("%s cx,[rdi+0x100]", n), f, 0x66, o + 3, 0x8f, 0x00, 0x01, 0x00, 0x00);
		A(nm("%s ah,[rbp+1]", n), f, o + 2, 0x65, 0x01);
		A(nm("%s r9,[rsi+rcx*8+8]", n), f, 0x4c, o + 3, 0x4c, 0xce, 0x08)->prep =
		        prep_index;
		A(nm("%s al,imm", n), f, o + 4, 0x85);
		A(nm("%s ax,imm", n), f, 0x66, o + 5, 0x01, 0x80);
		A(nm("%s eax,imm", n), f, o + 5, 0x01, 0x00, 0x00, 0x80);
		A(nm("%s rax,imm", n), f, 0x48, o + 5, 0xff, 0xff, 0xff, 0x7f);
		A(nm("%s byte [rsi],imm", n), f, 0x80, 0x06 | o, 0x7f);
		A(nm("%s bh,imm", n), f, 0x80, 0xc7 | o, 0x81);
		A(nm("%s rbx,imm32", n), f, 0x48, 0x81, 0xc3 | o, 0x00, 0x00, 0x00, 0x80);
		A(nm("%s dword [rdi],imm32", n), f, 0x81, 0x07 | o, 0x78, 0x56, 0x34, 0x12);
		A(nm("%s word [rdi],imm8", n), f, 0x66, 0x83, 0x07 | o, 0xff);
		A(nm("%s r13,imm8", n), f, 0x49, 0x83, 0xc5 | o, 0x80);
		A(nm("%s dword [rsi+rcx*4+disp8],imm8", n), f, 0x83, 0x44 | o, 0x8e, 0x10, 0x01)
		        ->prep = prep_index;
		if (op != 7)
			A(nm("lock %s [rsi],rbx", n), f, 0xf0, 0x48, o + 1, 0x1e);
	}
	/* carry chains */
	A("adc/sbb chain", ALL, 0x48, 0x11, 0xd8, 0x48, 0x11, 0xca, 0x4d, 0x19, 0xc8, 0x48, 0x11,
	  0x06, 0x48, 0x19, 0x5f, 0x08, 0x10, 0xfc, 0x18, 0xe7);
	A("add/adc 128-bit", ALL, 0x48, 0x01, 0xd8, 0x48, 0x11, 0xca, 0x49, 0x83, 0xd0, 0x00);
	A("sub/sbb 128-bit", ALL, 0x48, 0x29, 0xd8, 0x48, 0x19, 0xca, 0x48, 0x1b, 0x06);
	A("stc; adc", ALL, 0xf9, 0x48, 0x11, 0xd8);
	A("clc; sbb", ALL, 0xf8, 0x48, 0x19, 0xd8);
	A("cmc; sbb r8", ALL, 0xf5, 0x18, 0xd8);
}

static void build_unary(void)
{
	static const char *const un[4] = { "inc", "dec", "not", "neg" };
	for (unsigned k = 0; k < 4; k++) {
		for (unsigned i = 0; i < 4; i++) {
			unsigned w = widths[i];
			/* inc/dec: FE/FF /0 /1; not/neg: F6/F7 /2 /3 */
			unsigned o8 = k < 2 ? 0xfe : 0xf6, o = k < 2 ? 0xff : 0xf7;
			struct enc e = { 0 };
			eop(&e, w, 0, o8, o);
			eb(&e, modrm(3, k, 3));
			adde(&e, ALL, nm("%s r%u (rbx)", un[k], 8 * w));
			e = (struct enc){ 0 };
			eop(&e, w, 0, o8, o);
			eb(&e, modrm(0, k, 6));
			adde(&e, ALL, nm("%s m%u [rsi]", un[k], 8 * w));
			e = (struct enc){ 0 };
			eop(&e, w, 1, o8, o); /* REX.B: r9 */
			eb(&e, modrm(3, k, 1));
			adde(&e, ALL, nm("%s r%u (r9)", un[k], 8 * w));
		}
	}
	A("inc ah", ALL, 0xfe, 0xc4);
	A("dec bh", ALL, 0xfe, 0xcf);
	A("neg ch", ALL, 0xf6, 0xdd);
	A("not dh", ALL, 0xf6, 0xd6);
	A("lock inc qword [rdi+8]", ALL, 0xf0, 0x48, 0xff, 0x47, 0x08);
	/* test */
	uint64_t t = ALL & ~AF;
	A("test bl,ah", t, 0x84, 0xe3);
	A("test [rsi],ebx", t, 0x85, 0x1e);
	A("test rax,rbx", t, 0x48, 0x85, 0xd8);
	A("test al,imm", t, 0xa8, 0x81);
	A("test ax,imm", t, 0x66, 0xa9, 0x00, 0x80);
	A("test rax,imm", t, 0x48, 0xa9, 0x01, 0x00, 0x00, 0x80);
	A("test byte [rsi],imm", t, 0xf6, 0x06, 0x80);
	A("test rbx,imm32", t, 0x48, 0xf7, 0xc3, 0xff, 0xff, 0xff, 0xff);
	A("test ah,imm8", t, 0xf6, 0xc4, 0x0f);
	A("test word [rdi],imm16 (/1)", t, 0x66, 0xf7, 0x0f, 0x34, 0x12);
}

static const char *const sh_names[8] = { "rol", "ror", "rcl", "rcr", "shl", "shr", "sal", "sar" };

static void build_shifts(void)
{
	static const int imms[] = { 0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 200 };

	for (unsigned op = 0; op < 8; op++) {
		for (unsigned i = 0; i < 4; i++) {
			unsigned w = widths[i];
			struct enc e = { 0 };
			struct dcase *d;
			eop(&e, w, 0, 0xd0, 0xd1);
			eb(&e, modrm(3, op, 3));
			d = adde(&e, 0, nm("%s r%u,1", sh_names[op], 8 * w));
			d->fmask = fmask_shift, d->p1 = (int)op, d->p2 = (int)(8 * w), d->p3 = 1;
			d->iters = 60;

			e = (struct enc){ 0 };
			eop(&e, w, 0, 0xd2, 0xd3);
			eb(&e, modrm(3, op, 3));
			d = adde(&e, 0, nm("%s r%u,cl", sh_names[op], 8 * w));
			d->fmask = fmask_shift, d->p1 = (int)op, d->p2 = (int)(8 * w), d->p3 = -1;
			d->prep = prep_cl, d->iters = 140;

			e = (struct enc){ 0 };
			eop(&e, w, 0, 0xd2, 0xd3);
			eb(&e, modrm(0, op, 6));
			d = adde(&e, 0, nm("%s m%u [rsi],cl", sh_names[op], 8 * w));
			d->fmask = fmask_shift, d->p1 = (int)op, d->p2 = (int)(8 * w), d->p3 = -1;
			d->prep = prep_cl, d->iters = 100;

			for (size_t k = 0; k < sizeof(imms) / sizeof(imms[0]); k++) {
				e = (struct enc){ 0 };
				eop(&e, w, 1, 0xc0, 0xc1); /* r9 */
				eb(&e, modrm(3, op, 1));
				eb(&e, (unsigned)imms[k]);
				d = adde(&e, 0, nm("%s r%u,%d", sh_names[op], 8 * w, imms[k]));
				d->fmask = fmask_shift, d->p1 = (int)op, d->p2 = (int)(8 * w);
				d->p3 = imms[k] & 0xff, d->iters = 20;
			}
		}
		struct dcase *d = A(nm("%s bh,cl", sh_names[op]), 0, 0xd2, 0xc7 | op << 3);
		d->fmask = fmask_shift, d->p1 = (int)op, d->p2 = 8, d->p3 = -1;
		d->prep = prep_cl, d->iters = 140;
		d = A(nm("%s ah,1", sh_names[op]), 0, 0xd0, 0xc4 | op << 3);
		d->fmask = fmask_shift, d->p1 = (int)op, d->p2 = 8, d->p3 = 1;
		d = A(nm("%s qword [rdi+8],5", sh_names[op]), 0, 0x48, 0xc1, 0x47 | op << 3, 0x08,
		      0x05);
		d->fmask = fmask_shift, d->p1 = (int)op, d->p2 = 64, d->p3 = 5;
	}
}

static void build_muldiv(void)
{
	static const char *const g3[4] = { "mul", "imul", "div", "idiv" };

	for (unsigned k = 0; k < 4; k++) {
		for (unsigned i = 0; i < 4; i++) {
			unsigned w = widths[i];
			uint64_t f = k < 2 ? CF | OF : 0; /* the others undefined */
			for (unsigned loc = 0; loc < 3; loc++) {
				if (loc == 2 && w != 1)
					continue;
				struct enc e = { 0 };
				eop(&e, w, 0, 0xf6, 0xf7);
				eb(&e,
				   loc == 1 ? modrm(0, 4 + k, 6) : modrm(3, 4 + k, loc ? 7 : 3));
				struct dcase *d = adde(&e, f,
				                       nm("%s %s%u", g3[k],
				                          loc == 1 ? "m"
				                          : loc    ? "bh/"
				                                   : "r",
				                          8 * w));
				d->iters = 150;
				if (k >= 2) {
					d->prep = prep_div;
					d->p1 = (int)w, d->p2 = k == 3, d->p3 = (int)loc;
				}
			}
		}
	}
	for (unsigned i = 1; i < 4; i++) {
		unsigned w = widths[i];
		struct enc e = { 0 };
		eop(&e, w, 0, 0, 0x1af);
		eb(&e, modrm(3, 0, 3));
		adde(&e, CF | OF, nm("imul r%u,r%u", 8 * w, 8 * w))->iters = 150;
		e = (struct enc){ 0 };
		eop(&e, w, 4, 0, 0x1af); /* REX.R: r8 */
		eb(&e, modrm(0, 0, 6));
		adde(&e, CF | OF, nm("imul r%u,[rsi]", 8 * w))->iters = 100;
		e = (struct enc){ 0 };
		eop(&e, w, 0, 0, 0x69);
		eb(&e, modrm(3, 1, 3));
		eimm(&e, w, 0x80000123);
		adde(&e, CF | OF, nm("imul r%u,r%u,imm", 8 * w, 8 * w))->iters = 100;
		e = (struct enc){ 0 };
		eop(&e, w, 0, 0, 0x6b);
		eb(&e, modrm(0, 2, 6));
		eb(&e, 0x85);
		adde(&e, CF | OF, nm("imul r%u,[rsi],imm8", 8 * w))->iters = 100;
	}
}

static void build_bits(void)
{
	static const char *const bt[4] = { "bt", "bts", "btr", "btc" };
	static const unsigned bto[4] = { 0xa3, 0xab, 0xb3, 0xbb };

	for (unsigned k = 0; k < 4; k++) {
		for (unsigned i = 1; i < 4; i++) {
			unsigned w = widths[i];
			struct enc e = { 0 };
			eop(&e, w, 0, 0, 0x100 | bto[k]);
			eb(&e, modrm(3, 1, 3)); /* rbx, rcx */
			adde(&e, CF, nm("%s r%u,r%u", bt[k], 8 * w, 8 * w));
			e = (struct enc){ 0 };
			eop(&e, w, 0, 0, 0x100 | bto[k]);
			eb(&e, modrm(0, 1, 6)); /* [rsi], rcx */
			struct dcase *d = adde(&e, CF, nm("%s m%u,r (far offsets)", bt[k], 8 * w));
			d->prep = prep_btoff, d->p1 = (int)w, d->iters = 150;
			static const unsigned bi[] = { 3, 15, 31, 63, 64, 77, 200, 255 };
			for (size_t j = 0; j < sizeof(bi) / sizeof(bi[0]); j++) {
				e = (struct enc){ 0 };
				eop(&e, w, 0, 0, 0x1ba);
				eb(&e, modrm(3, 4 + k, 3));
				eb(&e, bi[j]);
				adde(&e, CF, nm("%s r%u,%u", bt[k], 8 * w, bi[j]))->iters = 20;
				e = (struct enc){ 0 };
				eop(&e, w, 0, 0, 0x1ba);
				eb(&e, modrm(1, 4 + k, 7));
				eb(&e, 0xfe);
				eb(&e, bi[j]);
				adde(&e, CF, nm("%s m%u [rdi-2],%u", bt[k], 8 * w, bi[j]))->iters =
				        20;
			}
		}
		if (k) { /* lock bt is #UD */
			struct dcase *d = A(nm("lock %s [rsi],rcx", bt[k]), CF, 0xf0, 0x48, 0x0f,
			                    bto[k], 0x0e);
			d->prep = prep_btoff, d->p1 = 8;
		}
	}
	/* bsf bsr (ZF only; the others undefined), tzcnt lzcnt (CF ZF) where
	 * the host has them (without, F3 0F BC/BD are BSF/BSR) */
	unsigned ra, rb, rc, rd;
	bool bmi1 = __get_cpuid_count(7, 0, &ra, &rb, &rc, &rd) && (rb & (1u << 3));
	bool lzcnt = __get_cpuid(0x80000001, &ra, &rb, &rc, &rd) && (rc & (1u << 5));
	for (unsigned i = 1; i < 4; i++) {
		unsigned w = widths[i];
		for (unsigned o = 0xbc; o <= 0xbd; o++) {
			const char *n = o == 0xbc ? "bsf" : "bsr";
			struct enc e = { 0 };
			eop(&e, w, 0, 0, 0x100 | o);
			eb(&e, modrm(3, 0, 3));
			struct dcase *d = adde(&e, ZF, nm("%s r%u,r%u", n, 8 * w, 8 * w));
			d->prep = prep_nonzero, d->p1 = (int)w, d->iters = 100;
			e = (struct enc){ 0 };
			eop(&e, w, 0, 0, 0x100 | o);
			eb(&e, modrm(0, 0, 6));
			d = adde(&e, ZF, nm("%s r%u,[rsi]", n, 8 * w));
			d->prep = prep_nonzero, d->p1 = (int)w, d->p2 = 1, d->iters = 100;
			if (!(o == 0xbc ? bmi1 : lzcnt))
				continue;
			e = (struct enc){ 0 };
			eb(&e, 0xf3);
			eop(&e, w, 0, 0, 0x100 | o);
			eb(&e, modrm(3, 0, 3));
			d = adde(&e, CF | ZF,
			         nm("%s r%u,r%u", o == 0xbc ? "tzcnt" : "lzcnt", 8 * w, 8 * w));
			d->prep = prep_zero, d->iters = 100;
			e = (struct enc){ 0 };
			eb(&e, 0xf3);
			eop(&e, w, 0, 0, 0x100 | o);
			eb(&e, modrm(0, 0, 6));
			d = adde(&e, CF | ZF,
			         nm("%s r%u,[rsi]", o == 0xbc ? "tzcnt" : "lzcnt", 8 * w));
			d->prep = prep_zero, d->iters = 100;
		}
	}
	A("bswap r64", ALL, 0x48, 0x0f, 0xcb);
	A("bswap r32", ALL, 0x0f, 0xc8);
	A("bswap r13", ALL, 0x49, 0x0f, 0xcd);
}

static void build_movx(void)
{
	/* movzx/movsx: every destination width from every kind of source */
	static const unsigned ops[4] = { 0xb6, 0xb7, 0xbe, 0xbf };
	static const struct {
		const char *name;
		bool rex; /* needs a REX prefix (SIL), or cannot have one (BH) */
		unsigned mod, rm;
		int disp8; /* -1: none */
	} src[] = {
		{ "bl", false, 3, 3, -1 },      { "bh", false, 3, 7, -1 },
		{ "sil", true, 3, 6, -1 },      { "r11", false, 3, 11, -1 },
		{ "[rsi]", false, 0, 6, -1 },   { "[rdi-1]", false, 1, 7, -1 },
		{ "[r13+0]", false, 1, 13, 0 }, { "[rsp+rcx]", false, 0, 4, -1 },
	};
	for (unsigned k = 0; k < 4; k++) {
		unsigned o = ops[k], ssz = (o & 1) ? 16 : 8;
		const char *n = o < 0xbe ? "movzx" : "movsx";
		for (unsigned i = 1; i < 4; i++) {
			unsigned w = widths[i];
			for (size_t s = 0; s < sizeof(src) / sizeof(src[0]); s++) {
				bool bh = src[s].mod == 3 && src[s].rm == 7 && !src[s].rex;
				if ((ssz == 16 && (bh || src[s].rex)) || (bh && w == 8))
					continue; /* no BH/SIL as 16-bit, no BH with REX.W */
				struct enc e = { 0 };
				unsigned rex = (w == 8 ? 0x48 : 0) | (src[s].rm >= 8 ? 0x41 : 0) |
				               (src[s].rex ? 0x40 : 0);
				if (w == 2)
					eb(&e, 0x66);
				if (rex)
					eb(&e, rex);
				eb(&e, 0x0f);
				eb(&e, o);
				eb(&e, modrm(src[s].mod, 0, src[s].rm));
				if (src[s].mod != 3 && src[s].rm == 4)
					eb(&e, 0x0c); /* SIB: rsp + rcx */
				if (src[s].disp8 >= 0)
					eb(&e, (unsigned)src[s].disp8);
				else if (src[s].mod == 1)
					eb(&e, 0xff);
				struct dcase *d =
				        adde(&e, ALL,
				             nm("%s r%u,%s (%u-bit)", n, 8 * w, src[s].name, ssz));
				d->prep = prep_index; /* RCX small, R13 a pointer */
			}
		}
	}
	A("movsxd r64,r32", ALL, 0x48, 0x63, 0xc3);
	A("movsxd r64,[rsi]", ALL, 0x48, 0x63, 0x06);
	A("movsxd r9,[rdi+4]", ALL, 0x4c, 0x63, 0x4f, 0x04);
	A("movsxd r32,r32", ALL, 0x63, 0xc3);
	A("movsxd r16,r16", ALL, 0x66, 0x63, 0xc3);
	A("cbw", ALL, 0x66, 0x98);
	A("cwde", ALL, 0x98);
	A("cdqe", ALL, 0x48, 0x98);
	A("cwd", ALL, 0x66, 0x99);
	A("cdq", ALL, 0x99);
	A("cqo", ALL, 0x48, 0x99);
}

static void build_cond(void)
{
	for (unsigned cc = 0; cc < 16; cc++) {
		A(nm("cmov%x r64,r64", cc), ALL, 0x48, 0x0f, 0x40 + cc, 0xc3);
		A(nm("cmov%x r32,r32", cc), ALL, 0x0f, 0x40 + cc, 0xc3);
		A(nm("cmov%x r16,r16", cc), ALL, 0x66, 0x0f, 0x40 + cc, 0xc3);
		A(nm("cmov%x r32,[rsi]", cc), ALL, 0x0f, 0x40 + cc, 0x06);
		A(nm("cmov%x r12,[rdi+8]", cc), ALL, 0x4c, 0x0f, 0x40 + cc, 0x67, 0x08);
		A(nm("set%x al", cc), ALL, 0x0f, 0x90 + cc, 0xc0);
		A(nm("set%x ah", cc), ALL, 0x0f, 0x90 + cc, 0xc4);
		A(nm("set%x sil", cc), ALL, 0x40, 0x0f, 0x90 + cc, 0xc6);
		A(nm("set%x r8b", cc), ALL, 0x41, 0x0f, 0x90 + cc, 0xc0);
		A(nm("set%x [rdi]", cc), ALL, 0x0f, 0x90 + cc, 0x07);
		/* jcc over an inc rax */
		A(nm("j%x rel8", cc), ALL, 0x70 + cc, 0x03, 0x48, 0xff, 0xc0);
		A(nm("j%x rel32", cc), ALL, 0x0f, 0x80 + cc, 0x03, 0x00, 0x00, 0x00, 0x48, 0xff,
		  0xc0);
	}
	A("loop", ALL, 0xe2, 0x03, 0x48, 0xff, 0xc0)->prep = prep_loop;
	A("loop (ecx)", ALL, 0x67, 0xe2, 0x03, 0x48, 0xff, 0xc0)->prep = prep_loop;
	A("jrcxz", ALL, 0xe3, 0x03, 0x48, 0xff, 0xc0)->prep = prep_loop;
	A("jecxz", ALL, 0x67, 0xe3, 0x03, 0x48, 0xff, 0xc0)->prep = prep_loop;
	A("jmp rel8", ALL, 0xeb, 0x03, 0x48, 0xff, 0xc0);
	A("jmp rel32", ALL, 0xe9, 0x03, 0x00, 0x00, 0x00, 0x48, 0xff, 0xc0);
	A("jmp rel8 back", ALL, 0xeb, 0x05, 0x48, 0xff, 0xc0, 0xeb, 0x02, 0xeb, 0xf9);
}

/* every ModRM/SIB form of LEA (no memory access: any register values) */
static void build_lea(void)
{
	for (unsigned mod = 0; mod < 3; mod++)
		for (unsigned base = 0; base < 16; base++)
			for (unsigned index = 0; index < 16; index++)
				for (unsigned scale = 0; scale < 4; scale++) {
					struct enc e = { 0 };
					eb(&e, 0x48 | (index >= 8 ? 2 : 0) | (base >= 8 ? 1 : 0));
					eb(&e, 0x8d);
					eb(&e, modrm(mod, 0, 4));
					eb(&e, (scale << 6) | ((index & 7) << 3) | (base & 7));
					if (mod == 1)
						eb(&e, 0x9c);
					else if (mod == 2 || (base & 7) == 5)
						e32(&e, mod ? 0x87654321u : 0x12345678u);
					adde(&e, ALL,
					     nm("lea rax,[b%u+i%u*%u] mod%u", base, index,
					        1u << scale, mod))
					        ->iters = 2;
				}
	for (unsigned mod = 0; mod < 3; mod++)
		for (unsigned rm = 0; rm < 16; rm++) {
			if ((rm & 7) == 4)
				continue;
			for (unsigned form = 0; form < 4; form++) {
				/* form: 64-bit, 32-bit, 16-bit destination, 32-bit addressing */
				struct enc e = { 0 };
				if (form == 3)
					eb(&e, 0x67);
				if (form == 2)
					eb(&e, 0x66);
				eb(&e,
				   (form == 0 || form == 3 ? 0x48 : 0x40) | (rm >= 8 ? 1 : 0) | 4);
				eb(&e, 0x8d);
				eb(&e, modrm(mod, 3, rm)); /* r11 */
				if (mod == 1)
					eb(&e, 0x7f);
				else if (mod == 2 || (rm & 7) == 5)
					e32(&e, 0xfffff000u + rm);
				adde(&e, ALL, nm("lea r11 form %u,[r%u] mod%u", form, rm, mod))
				        ->iters = 8;
			}
		}
	/* 32-bit addressing with SIB: the sum wraps at 4 GiB */
	for (unsigned k = 0; k < 64; k++) {
		unsigned base = (unsigned)(rnd() % 16), index = (unsigned)(rnd() % 16);
		struct enc e = { 0 };
		eb(&e, 0x67);
		eb(&e, 0x48 | (index >= 8 ? 2 : 0) | (base >= 8 ? 1 : 0));
		eb(&e, 0x8d);
		eb(&e, modrm(2, 0, 4));
		eb(&e, ((unsigned)(rnd() % 4) << 6) | ((index & 7) << 3) | (base & 7));
		e32(&e, (uint32_t)rnd());
		adde(&e, ALL, nm("lea rax,[e%u+e%u*s+d32] (67)", base, index))->iters = 10;
	}
	static const uint32_t rel[] = { 0, 1, 0xffffffffu, 0x7fffffffu, 0x80000000u, 0x1000 };
	for (size_t k = 0; k < sizeof(rel) / sizeof(rel[0]); k++) {
		struct enc e = { 0 };
		eb(&e, 0x48);
		eb(&e, 0x8d);
		eb(&e, 0x05);
		e32(&e, rel[k]);
		adde(&e, ALL, nm("lea rax,[rip%+d]", (int32_t)rel[k]));
		e = (struct enc){ 0 };
		eb(&e, 0x67);
		eb(&e, 0x8d);
		eb(&e, 0x0d);
		e32(&e, rel[k]);
		adde(&e, ALL, nm("lea ecx,[eip%+d] (67)", (int32_t)rel[k]));
	}
}

static void build_stack(void)
{
	for (unsigned r = 0; r < 8; r++) {
		A(nm("push r%u", r), ALL, 0x50 + r);
		A(nm("push r%u", r + 8), ALL, 0x41, 0x50 + r);
		A(nm("pop r%u", r), ALL, 0x58 + r);
		A(nm("pop r%u", r + 8), ALL, 0x41, 0x58 + r);
	}
	A("push ax (66)", ALL, 0x66, 0x50);
	A("pop bx (66)", ALL, 0x66, 0x5b);
	A("push imm8", ALL, 0x6a, 0x80);
	A("push imm32", ALL, 0x68, 0x01, 0x00, 0x00, 0x80);
	A("push imm16 (66)", ALL, 0x66, 0x68, 0x34, 0x92);
	A("push [rsi]", ALL, 0xff, 0x36);
	A("push [rsp+8]", ALL, 0xff, 0x74, 0x24, 0x08);
	A("push word [rsi] (66)", ALL, 0x66, 0xff, 0x36);
	A("pop [rdi]", ALL, 0x8f, 0x07);
	A("pop [rsp]", ALL, 0x8f, 0x04, 0x24);
	A("pop [rsp+8]", ALL, 0x8f, 0x44, 0x24, 0x08);
	A("pop [rsp-8]", ALL, 0x8f, 0x44, 0x24, 0xf8);
	A("pop [rsp+rcx*8]", ALL, 0x8f, 0x04, 0xcc)->prep = prep_index;
	A("pop word [rsi] (66)", ALL, 0x66, 0x8f, 0x06);
	A("push/pop sequence", ALL, 0x50, 0x53, 0x41, 0x54, 0x58, 0x5b, 0x41, 0x5c, 0x5a);
	A("pushf", ALL, 0x9c);
	A("pushf (66)", ALL, 0x66, 0x9c);
	A("popf", ALL, 0x9d)->prep = prep_popf;
	A("pushf; popf", ALL, 0x9c, 0x9d);
	A("call rel32", ALL, 0xe8, 0x00, 0x00, 0x00, 0x00);
	A("call rax", ALL, 0xff, 0xd0)->prep = prep_target;
	A("call r11", ALL, 0x41, 0xff, 0xd3)->prep = prep_target;
	A("call [rsi]", ALL, 0xff, 0x16)->prep = prep_target;
	A("jmp rax", ALL, 0xff, 0xe0)->prep = prep_target;
	A("jmp [rsi]", ALL, 0xff, 0x26)->prep = prep_target;
	A("ret", ALL, 0xc3)->prep = prep_target;
	A("ret imm16", ALL, 0xc2, 0x18, 0x00)->prep = prep_target;
	A("call; pop", ALL, 0xe8, 0x00, 0x00, 0x00, 0x00, 0x59);
	A("leave", ALL, 0xc9);
	A("xchg [rsp],rax", ALL, 0x48, 0x87, 0x04, 0x24);
}

static void build_strings(void)
{
	static const unsigned ops[5] = { 0xa4, 0xaa, 0xac, 0xa6, 0xae };
	static const char *const names[5] = { "movs", "stos", "lods", "cmps", "scas" };

	for (unsigned k = 0; k < 5; k++)
		for (unsigned i = 0; i < 4; i++) {
			unsigned w = widths[i];
			unsigned nrep = ops[k] == 0xa6 || ops[k] == 0xae ? 3 : 2;
			for (unsigned rep = 0; rep < nrep; rep++)
				for (unsigned a32 = 0; a32 < 2; a32++) {
					struct enc e = { 0 };
					if (a32)
						eb(&e, 0x67);
					if (rep)
						eb(&e, rep == 1 ? 0xf3 : 0xf2);
					eop(&e, w, 0, ops[k], ops[k] + 1);
					struct dcase *d =
					        adde(&e, ALL,
					             nm("%s%s%u%s",
					                rep == 0   ? ""
					                : rep == 1 ? "rep "
					                           : "repne ",
					                names[k], 8 * w, a32 ? " (67)" : ""));
					d->prep = prep_str;
					d->p1 = (int)ops[k], d->p2 = (int)w, d->p3 = (int)a32;
					d->iters = 60;
				}
		}
}

static void build_atomic(void)
{
	for (unsigned i = 0; i < 4; i++) {
		unsigned w = widths[i];
		struct enc e = { 0 };
		eop(&e, w, 0, 0x1c0, 0x1c1);
		eb(&e, modrm(3, 3, 1)); /* xadd rcx, rbx */
		adde(&e, ALL, nm("xadd r%u,r%u", 8 * w, 8 * w));
		e = (struct enc){ 0 };
		eop(&e, w, 0, 0x1c0, 0x1c1);
		eb(&e, modrm(0, 3, 6));
		adde(&e, ALL, nm("xadd [rsi],r%u", 8 * w));
		e = (struct enc){ 0 };
		eop(&e, w, 0, 0x1c0, 0x1c1);
		eb(&e, modrm(3, 0, 0));
		adde(&e, ALL, nm("xadd r%u,r%u (same register)", 8 * w, 8 * w));

		e = (struct enc){ 0 };
		eop(&e, w, 0, 0x1b0, 0x1b1);
		eb(&e, modrm(3, 3, 1)); /* cmpxchg rcx, rbx */
		struct dcase *d = adde(&e, ALL, nm("cmpxchg r%u,r%u", 8 * w, 8 * w));
		d->prep = prep_cmpxchg, d->p1 = (int)w, d->p2 = RCX, d->iters = 100;
		e = (struct enc){ 0 };
		eop(&e, w, 0, 0x1b0, 0x1b1);
		eb(&e, modrm(0, 3, 6));
		d = adde(&e, ALL, nm("cmpxchg [rsi],r%u", 8 * w));
		d->prep = prep_cmpxchg, d->p1 = (int)w, d->p2 = -1, d->iters = 100;
		e = (struct enc){ 0 };
		eop(&e, w, 0, 0x1b0, 0x1b1);
		eb(&e, modrm(3, 0, 0));
		d = adde(&e, ALL, nm("cmpxchg r%u,r%u (accumulator)", 8 * w, 8 * w));

		e = (struct enc){ 0 };
		eop(&e, w, 0, 0x86, 0x87);
		eb(&e, modrm(0, 3, 6));
		adde(&e, ALL, nm("xchg [rsi],r%u", 8 * w));
		e = (struct enc){ 0 };
		eop(&e, w, 0, 0x86, 0x87);
		eb(&e, modrm(3, 3, 1));
		adde(&e, ALL, nm("xchg r%u,r%u", 8 * w, 8 * w));
	}
	A("xadd bl,ah", ALL, 0x0f, 0xc0, 0xe3);
	A("xadd [rsi],bh", ALL, 0x0f, 0xc0, 0x3e);
	A("lock xadd [rsi],rbx", ALL, 0xf0, 0x48, 0x0f, 0xc1, 0x1e);
	struct dcase *d = A("cmpxchg bh,ah", ALL, 0x0f, 0xb0, 0xe7);
	d->prep = prep_cmpxchg, d->p1 = 1, d->p2 = 8, d->iters = 100;
	d = A("cmpxchg [rsi],bh", ALL, 0x0f, 0xb0, 0x3e);
	d->prep = prep_cmpxchg, d->p1 = 1, d->p2 = -1, d->iters = 100;
	d = A("lock cmpxchg [rsi],rbx", ALL, 0xf0, 0x48, 0x0f, 0xb1, 0x1e);
	d->prep = prep_cmpxchg, d->p1 = 8, d->p2 = -1, d->iters = 100;
	A("xchg bh,ah", ALL, 0x86, 0xe7);
	A("xchg eax,ebx", ALL, 0x93);
	A("xchg ax,bx", ALL, 0x66, 0x93);
	A("xchg rax,r8", ALL, 0x49, 0x90);
	A("xchg eax,r9d", ALL, 0x41, 0x91);
	A("nop (xchg eax,eax)", ALL, 0x90);
	A("xchg rax,rax", ALL, 0x48, 0x90);
}

static void build_mov(void)
{
	A("mov [rsi],bh", ALL, 0x88, 0x3e);
	A("mov ah,[rsi]", ALL, 0x8a, 0x26);
	A("mov [rdi+1],dh", ALL, 0x88, 0x77, 0x01);
	A("mov sil,[rdi]", ALL, 0x40, 0x8a, 0x37);
	A("mov r15b,spl (REX: spl, not ah)", ALL, 0x41, 0x88, 0xe7);
	A("mov [rsi+rcx*4],rbx", ALL, 0x48, 0x89, 0x1c, 0x8e)->prep = prep_index;
	A("mov [rsi+rax*2-2],ebx", ALL, 0x89, 0x5c, 0x46, 0xfe)->prep = prep_index;
	A("mov r8,[rbp+rcx*8+0x100]", ALL, 0x4c, 0x8b, 0x84, 0xcd, 0x00, 0x01, 0x00, 0x00)->prep =
	        prep_index;
	A("mov word [rsi],imm16", ALL, 0x66, 0xc7, 0x06, 0x34, 0x12);
	A("mov byte [rdi+5],imm8", ALL, 0xc6, 0x47, 0x05, 0x99);
	A("mov qword [rsi],imm32", ALL, 0x48, 0xc7, 0x06, 0x00, 0x00, 0x00, 0x80);
	A("mov dword [rsi],imm32", ALL, 0xc7, 0x06, 0xff, 0xff, 0xff, 0xff);
	A("mov rax,imm32 (sx)", ALL, 0x48, 0xc7, 0xc0, 0xfe, 0xff, 0xff, 0xff);
	A("mov eax,imm32 (zx)", ALL, 0xc7, 0xc0, 0xfe, 0xff, 0xff, 0xff);
	A("mov ah,imm8", ALL, 0xb4, 0x12);
	A("mov sil,imm8", ALL, 0x40, 0xb6, 0x12);
	A("mov r8b,imm8", ALL, 0x41, 0xb0, 0x34);
	A("mov ax,imm16", ALL, 0x66, 0xb8, 0x34, 0x12);
	A("mov eax,imm32", ALL, 0xb8, 0x78, 0x56, 0x34, 0x12);
	A("mov r15,imm64", ALL, 0x49, 0xbf, 1, 2, 3, 4, 5, 6, 7, 0x88);
	A("mov r16 keeps upper", ALL, 0x66, 0x89, 0xd8);
	A("mov r32 clears upper", ALL, 0x89, 0xd8);
	A("mov r8 keeps upper", ALL, 0x88, 0xd8);
	A("mov eax,[esi] (67)", ALL, 0x67, 0x8b, 0x06)->prep = prep_a32;
	A("mov [edi+ecx*1],bl (67)", ALL, 0x67, 0x88, 0x1c, 0x0f)->prep = prep_a32;
	A("add [ebp-4],eax (67)", ALL, 0x67, 0x01, 0x45, 0xfc)->prep = prep_a32;
	A("lea; mov through it", ALL, 0x48, 0x8d, 0x46, 0x10, 0x48, 0x8b, 0x00);
	/* RIP-relative loads and stores into the scratch */
	for (int k = 0; k < 4; k++) {
		struct enc e = { 0 };
		eb(&e, 0x48);
		eb(&e, k & 1 ? 0x89 : 0x8b);
		eb(&e, 0x1d); /* rbx, [rip+d32] */
		uint64_t target =
		        (uint64_t)scratch + 4096 * (unsigned)(k / 2 + 1) - 4 + (unsigned)k;
		uint64_t next = (uint64_t)host_code + insn_off + 7;
		e32(&e, (uint32_t)(target - next));
		adde(&e, ALL, nm("mov %s [rip+d] (page %d)", k & 1 ? "store" : "load", k / 2));
	}
	{ /* RIP-relative with an immediate after the displacement */
		struct enc e = { 0 };
		eb(&e, 0x81);
		eb(&e, 0x05);
		uint64_t next = (uint64_t)host_code + insn_off + 10;
		e32(&e, (uint32_t)((uint64_t)scratch + 100 - next));
		e32(&e, 0x12345678);
		adde(&e, ALL, "add dword [rip+d],imm32");
	}
	/* crossing the scratch pages (crossing physical pages in the guest) */
	for (int k = -7; k <= 0; k++) {
		struct enc e = { 0 };
		eb(&e, 0x48);
		eb(&e, 0x87);
		eb(&e, 0x1c);
		eb(&e, 0x25); /* xchg rbx, [abs32] */
		e32(&e, (uint32_t)((uint64_t)scratch + 4096 + (unsigned)(k + 7) - 7));
		adde(&e, ALL, nm("xchg rbx,[page end%+d]", k));
	}
}

static void build_misc(void)
{
	unsigned ra, rb, rc, rd;

	A("cmc", ALL, 0xf5);
	A("clc", ALL, 0xf8);
	A("stc", ALL, 0xf9);
	A("cld", ALL, 0xfc);
	A("std", ALL, 0xfd);
	A("nop", ALL, 0x90);
	A("nop (66)", ALL, 0x66, 0x90);
	A("pause", ALL, 0xf3, 0x90);
	A("nop r/m", ALL, 0x0f, 0x1f, 0x00);
	A("nop r/m 5", ALL, 0x0f, 0x1f, 0x44, 0x00, 0x00);
	A("nop r/m 9", ALL, 0x66, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00);
	A("cs nop 11", ALL, 0x66, 0x66, 0x2e, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00);
	A("endbr64", ALL, 0xf3, 0x0f, 0x1e, 0xfa);
	/* REX placement: only right before the opcode counts */
	A("REX.W then 66 (REX ignored)", ALL, 0x48, 0x66, 0x01, 0xd8);
	A("66 then REX.W", ALL, 0x66, 0x48, 0x01, 0xd8);
	A("REX.W then REX (last wins)", ALL, 0x48, 0x40, 0x01, 0xd8);
	A("REX.B then REX.W (last wins)", ALL, 0x41, 0x48, 0x01, 0xd8);
	if (__get_cpuid_count(7, 0, &ra, &rb, &rc, &rd) && (rb & (1u << 3)))
		A("REX.W then f3 (REX ignored)", CF | ZF, 0x48, 0xf3, 0x0f, 0xbc, 0xc3);
	A("mov dil,spl (bare REX)", ALL, 0x40, 0x88, 0xe7);
}

static void build_cases(void)
{
	if (ncases)
		return;
	build_alu();
	build_unary();
	build_shifts();
	build_muldiv();
	build_bits();
	build_movx();
	build_cond();
	build_lea();
	build_stack();
	build_strings();
	build_atomic();
	build_mov();
	build_misc();
}

/* ---- running the table ---- */

static void report(const struct dcase *d, const struct st *in, const struct st *h,
                   const struct st *s, enum softcpu_exit e, struct softcpu *c, uint64_t fm, long md)
{
	static const char *const rn[16] = {
		"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
		"r8",  "r9",  "r10", "r11", "r12", "r13", "r14", "r15"
	};

	fprintf(stderr, "MISMATCH %s:", d->name);
	for (unsigned i = 0; i < d->len; i++)
		fprintf(stderr, " %02x", d->b[i]);
	fprintf(stderr, "\n  exit %d rip %+lld %s\n", e,
	        (long long)(c->rip - ((uint64_t)host_code + insn_off + d->len + 1)),
	        e == SOFTCPU_HLT ? "" : c->why);
	for (unsigned r = 0; r < 16; r++)
		if (h->r[r] != s->r[r] || r == RAX || r == RCX)
			fprintf(stderr, "  %-3s in %016llx host %016llx soft %016llx\n", rn[r],
			        (unsigned long long)in->r[r], (unsigned long long)h->r[r],
			        (unsigned long long)s->r[r]);
	fprintf(stderr, "  flags in %03llx host %03llx soft %03llx (compared %03llx)\n",
	        (unsigned long long)(in->fl & (ALL | DF)), (unsigned long long)(h->fl & (ALL | DF)),
	        (unsigned long long)(s->fl & (ALL | DF)), (unsigned long long)fm);
	if (md >= 0)
		fprintf(stderr, "  memory at scratch+%ld: host %02x soft %02x\n", md, scratch[md],
		        scratch_guest_byte(md));
}

static void test_differential(void **state)
{
	struct softcpu *c = *state;
	size_t fails = 0, runs = 0;

	build_cases();
	map_harness(c);
	for (size_t i = 0; i < ncases; i++) {
		const struct dcase *d = &cases[i];
		for (int iter = 0; iter < d->iters; iter++) {
			struct st in, h, s;
			fill_scratch();
			prep_default(&in);
			if (d->prep)
				d->prep(&in, d, iter);
			scratch_to_guest();
			h = s = in;
			host_exec(d->b, d->len, &h);
			enum softcpu_exit e = soft_exec(c, d->b, d->len, &s);
			runs++;
			/* a REP with 32-bit addressing and ECX = 0 runs no
			 * iteration; whether it still zero-extends RCX, RSI
			 * and RDI is left open by the SDM and differs between
			 * Intel cores (one Xeon clears RSI/RDI for MOVS/STOS and
			 * RCX for CMPS/SCAS, others keep all three) */
			if (d->prep == prep_str && d->p3 && !(uint32_t)in.r[RCX])
				for (int r = RCX; r <= RDI; r++)
					if (r == RCX || r == RSI || r == RDI)
						h.r[r] = (h.r[r] & 0xffffffffull) |
						         (s.r[r] & ~0xffffffffull);
			uint64_t fm = (d->fmask ? d->fmask(d, &in) : d->flags) | DF;
			long md = scratch_diff();
			uint64_t end = (uint64_t)host_code + insn_off + d->len + 1;
			if (e == SOFTCPU_HLT && c->rip == end && md < 0 && !((h.fl ^ s.fl) & fm) &&
			    !memcmp(h.r, s.r, sizeof(h.r)))
				continue;
			if (fails++ < 50)
				report(d, &in, &h, &s, e, c, fm, md);
			break; /* one report per case */
		}
	}
	fprintf(stderr, "differential: %zu cases, %zu runs\n", ncases, runs);
	if (fails)
		fail_msg("%zu of %zu instruction forms differ from the host CPU", fails, ncases);
}

/* Memory forms, the stack, calls and string instructions: compared with
 * what the code must leave in guest memory. */
static void test_memory_and_stack(void **state)
{
	struct softcpu *c = *state;
	static const uint8_t prog[] = {
		0x48, 0xc7, 0xc3, 0x00, 0x00, 0x03, 0x00, /* mov rbx, 0x30000 */
		0x48, 0xc7, 0x03, 0x05, 0x00, 0x00, 0x00, /* mov qword [rbx], 5 */
		0x48, 0x83, 0x03, 0x07,                   /* add qword [rbx], 7 */
		0x48, 0xff, 0x03,                         /* inc qword [rbx] */
		0xff, 0x33,                               /* push qword [rbx] */
		0x58,                                     /* pop rax (13) */
		0xe8, 0x08, 0x00, 0x00, 0x00,             /* call +8 */
		0x48, 0x89, 0x43, 0x08,                   /* mov [rbx+8], rax */
		0xeb, 0x0a,                               /* jmp over the function */
		0x90, 0x90, 0x90,                         /* pad */
		0x48, 0x6b, 0xc0, 0x03,                   /* f: imul rax, rax, 3 */
		0xc3,                                     /* ret */
		0x90, 0x90, 0x48, 0x8d, 0x7b, 0x10,       /* lea rdi, [rbx+16] */
		0xb0, 0xee,                               /* mov al, 0xee */
		0x48, 0xc7, 0xc1, 0x05, 0x00, 0x00, 0x00, /* mov rcx, 5 */
		0xf3, 0xaa,                               /* rep stosb */
		0x48, 0x8d, 0x35, 0x00, 0x00, 0x00, 0x00, /* lea rsi, [rip] */
	};
	struct regs r = { 0 };

	memset(gp(0x30000), 0, 64);
	assert_int_equal(soft_run(c, prog, sizeof(prog), &r), SOFTCPU_HLT);
	uint64_t v;
	memcpy(&v, gp(0x30000), 8);
	assert_int_equal(v, 13);
	memcpy(&v, gp(0x30008), 8);
	assert_int_equal(v, 0x27); /* 13 * 3, with al overwritten later only in rax */
	for (int i = 0; i < 5; i++)
		assert_int_equal(gp(0x30010)[i], 0xee);
	assert_int_equal(gp(0x30015)[0], 0);
	assert_int_equal(c->r[RCX], 0);                   /* rcx counted down */
	assert_int_equal(c->r[RSI], CODE + sizeof(prog)); /* rip-relative lea */
	assert_int_equal(c->r[RSP], STACK);               /* balanced stack */
}

/* ---- faults and traps ---- */

static void gate(unsigned vec, uint64_t target, unsigned dpl)
{
	uint64_t lo = (target & 0xffff) | (0x08ull << 16) | ((uint64_t)(0x8e | dpl << 5) << 40) |
	              ((target & 0xffff0000ull) << 32);
	put64(IDT + vec * 16u, lo);
	put64(IDT + vec * 16u + 8, target >> 32);
}

/* kernel and user segments, a TSS with RSP0 = 0x70000, every exception
 * vector to a HLT at CPL 0 */
static void idt_setup(struct softcpu *c)
{
	static const uint64_t gdt[7] = {
		0,
		0x00209a0000000000ull, /* 0x08 kernel code 64 */
		0x0000920000000000ull, /* 0x10 kernel data */
		0x0020fa0000000000ull, /* 0x18 user code 64 */
		0x0000f20000000000ull, /* 0x20 user data */
	};
	memcpy(gp(GDT), gdt, sizeof(gdt));
	memset(gp(IDT), 0, 4096);
	memset(gp(TSS), 0, 104);
	put64(TSS + 4, 0x70000); /* RSP0 */
	for (unsigned v = 0; v < 32; v++)
		gate(v, HANDLR, 0);
	gp(HANDLR)[0] = 0xf4; /* hlt at CPL 0 */
	c->gdt_base = GDT;
	c->gdt_limit = sizeof(gdt) - 1;
	c->idt_base = IDT;
	c->idt_limit = 4095;
	c->tr_base = TSS;
	c->tr_limit = 103;
}

static void to_user(struct softcpu *c)
{
	c->cpl = 3;
	c->sel[1] = 0x1b;
	c->r[RSP] = 0x60000;
}

/* A page fault at CPL 3 goes through the IDT to a CPL 0 handler on the
 * TSS stack, with CR2 and the error code; OUT at CPL 3 needs IOPL 3. */
static void test_fault_delivery(void **state)
{
	struct softcpu *c = *state;

	idt_setup(c);
	to_user(c);
	/* mov rax, [0x4000010] at CPL 3: the 2 MiB page at 64 MiB is unmapped */
	static const uint8_t ld[] = { 0x48, 0x8b, 0x04, 0x25, 0x10, 0x00, 0x00, 0x04 };
	struct regs r = { 0 };
	assert_int_equal(soft_run(c, ld, sizeof(ld), &r), SOFTCPU_HLT);
	assert_int_equal(c->cr2, 0x4000010);
	assert_int_equal(c->cpl, 0);
	uint64_t *frame = (uint64_t *)gp(c->r[RSP]);
	assert_int_equal(frame[0], 4 /* user, read, not present */);
	assert_int_equal(frame[1], CODE); /* the faulting instruction */
	assert_int_equal(frame[2], 0x1b);
	assert_int_equal(frame[4], 0x60000);
	assert_int_equal(c->r[RSP], 0x70000 - 6 * 8);

	/* out at CPL 3 with IOPL 0: #GP(0) */
	to_user(c);
	static const uint8_t out[] = { 0xe6, 0x80 };
	io_last_port = 0;
	assert_int_equal(soft_run(c, out, sizeof(out), &r), SOFTCPU_HLT);
	assert_int_equal(io_last_port, 0);
	frame = (uint64_t *)gp(c->r[RSP]);
	assert_int_equal(frame[0], 0);
	/* with IOPL 3 it reaches the device */
	to_user(c);
	memcpy(gp(CODE), out, sizeof(out));
	gp(CODE)[2] = 0xf4;
	c->rip = CODE;
	c->rflags = 0x3002;
	c->r[RAX] = 0x42;
	assert_int_equal(softcpu_run(c, 100), SOFTCPU_HLT); /* hlt at CPL 3: #GP -> handler */
	assert_int_equal(io_last_port, 0x80);
	assert_int_equal(io_last_val, 0x42);
}

/* A read-modify-write instruction faults on its read when the page is not
 * writable, before anything changed (the flags in the frame are those
 * before it: ADC's carry survives for the retry), with W in the error
 * code; IRET checks everything before RSP moves; INT n is a trap whose
 * gate must allow the CPL; descriptor reads are supervisor accesses. */
static void test_fault_semantics(void **state)
{
	struct softcpu *c = *state;
	struct regs r = { 0 };
	uint64_t *frame;

	idt_setup(c);
	/* adc [0x600000], rax on a read-only page, CR0.WP: #PF(P|W) with CF intact */
	map4k(0x600000, 0x600000, 1);
	softcpu_flush_tlb(c);
	c->cr0 |= 1u << 16;
	put64(0x600000, 0x1234);
	static const uint8_t adc[] = { 0x48, 0x11, 0x04, 0x25, 0x00, 0x00, 0x60, 0x00 };
	r.rflags = CF;
	assert_int_equal(soft_run(c, adc, sizeof(adc), &r), SOFTCPU_HLT);
	frame = (uint64_t *)gp(c->r[RSP]);
	assert_int_equal(frame[0], 3);
	assert_int_equal(frame[1], CODE);
	assert_true(frame[3] & CF);
	assert_int_equal(get64(0x600000), 0x1234);
	assert_int_equal(c->cr2, 0x600000);
	/* inc qword [0x4000010], not present: a write fault */
	c->r[RSP] = STACK;
	static const uint8_t inc[] = { 0x48, 0xff, 0x04, 0x25, 0x10, 0x00, 0x00, 0x04 };
	assert_int_equal(soft_run(c, inc, sizeof(inc), &r), SOFTCPU_HLT);
	frame = (uint64_t *)gp(c->r[RSP]);
	assert_int_equal(frame[0], 2);

	/* iretq to a selector beyond the GDT: #GP(sel), RSP where it was */
	c->r[RSP] = 0x60000;
	put64(0x60000, CODE + 0x100);
	put64(0x60008, 0x38);
	put64(0x60010, 2);
	put64(0x60018, 0x50000);
	put64(0x60020, 0x10);
	static const uint8_t iret[] = { 0x48, 0xcf };
	memcpy(gp(CODE), iret, sizeof(iret));
	c->rip = CODE;
	assert_int_equal(softcpu_run(c, 10), SOFTCPU_HLT);
	frame = (uint64_t *)gp(c->r[RSP]);
	assert_int_equal(frame[0], 0x38);
	assert_int_equal(frame[1], CODE);
	assert_int_equal(frame[4], 0x60000);
	/* iretq to a data segment: #GP too */
	c->r[RSP] = 0x60000;
	put64(0x60008, 0x10);
	c->rip = CODE;
	assert_int_equal(softcpu_run(c, 10), SOFTCPU_HLT);
	frame = (uint64_t *)gp(c->r[RSP]);
	assert_int_equal(frame[0], 0x10);

	/* int3 at CPL 3 through a DPL 3 gate: the handler, RIP after it */
	gate(3, HANDLR, 3);
	to_user(c);
	static const uint8_t int3[] = { 0xcc };
	assert_int_equal(soft_run(c, int3, sizeof(int3), &r), SOFTCPU_HLT);
	frame = (uint64_t *)gp(c->r[RSP]);
	assert_int_equal(frame[0], CODE + 1);
	assert_int_equal(c->r[RSP], 0x70000 - 5 * 8);
	/* through a DPL 0 gate: #GP(3 * 8 + 2) at the int3 */
	gate(3, HANDLR, 0);
	to_user(c);
	assert_int_equal(soft_run(c, int3, sizeof(int3), &r), SOFTCPU_HLT);
	frame = (uint64_t *)gp(c->r[RSP]);
	assert_int_equal(frame[0], 3 * 8 + 2);
	assert_int_equal(frame[1], CODE);
	/* int 0x21 */
	gate(0x21, HANDLR, 3);
	to_user(c);
	static const uint8_t int21[] = { 0xcd, 0x21 };
	assert_int_equal(soft_run(c, int21, sizeof(int21), &r), SOFTCPU_HLT);
	frame = (uint64_t *)gp(c->r[RSP]);
	assert_int_equal(frame[0], CODE + 2);

	/* GDT, IDT and TSS on supervisor pages: mov ds at CPL 3 reads the GDT
	 * as the CPU itself, then the hlt at CPL 3 faults (#GP, at the hlt) */
	map4k(GDT, GDT, 3);
	map4k(IDT, IDT, 3);
	map4k(TSS, TSS, 3);
	softcpu_flush_tlb(c);
	to_user(c);
	uint64_t cr2 = c->cr2;
	static const uint8_t movds[] = { 0x66, 0xb8, 0x23, 0x00, 0x8e, 0xd8 };
	assert_int_equal(soft_run(c, movds, sizeof(movds), &r), SOFTCPU_HLT);
	frame = (uint64_t *)gp(c->r[RSP]);
	assert_int_equal(frame[0], 0);
	assert_int_equal(frame[1], CODE + sizeof(movds));
	assert_int_equal(c->sel[3], 0x23);
	assert_int_equal(c->cr2, cr2);
	assert_int_equal(c->cpl, 0);
	/* a user access to it still faults, as a user access */
	to_user(c);
	static const uint8_t rdgdt[] = { 0x8b, 0x04, 0x25, 0x00, 0x10, 0x02, 0x00 };
	assert_int_equal(soft_run(c, rdgdt, sizeof(rdgdt), &r), SOFTCPU_HLT);
	frame = (uint64_t *)gp(c->r[RSP]);
	assert_int_equal(frame[0], 5 /* user, read, present */);
	assert_int_equal(c->cr2, GDT);
}

static void test_unsupported_and_triple_fault(void **state)
{
	struct softcpu *c = *state;
	static const uint8_t x87[] = { 0xd9, 0xe8 }; /* fld1 */
	struct regs r = { 0 };

	assert_int_equal(soft_run(c, x87, sizeof(x87), &r), SOFTCPU_UNSUPPORTED);
	assert_non_null(strstr(c->why, "d9 e8"));
	/* ud2 with no IDT: shutdown */
	static const uint8_t ud2[] = { 0x0f, 0x0b };
	c->idt_limit = 0;
	assert_int_equal(soft_run(c, ud2, sizeof(ud2), &r), SOFTCPU_SHUTDOWN);
	assert_non_null(strstr(c->why, "triple fault"));
}

/* ---- REP: the budget and *stop ---- */

/* a second set of tables in which every entry of every level points to
 * the next: every linear page maps onto `page` */
static void map_everything_to(struct softcpu *c, uint64_t page)
{
	for (uint64_t l = 0; l < 4; l++)
		for (uint64_t i = 0; i < 512; i++)
			put64(PTPOOL + l * 4096 + i * 8,
			      (l < 3 ? PTPOOL + (l + 1) * 4096 : page) | 7);
	c->cr3 = PTPOOL;
	softcpu_flush_tlb(c);
}

static volatile uint8_t stop_flag;

static void *stopper(void *arg)
{
	(void)arg;
	usleep(30000);
	stop_flag = 1;
	return NULL;
}

/* rep stosq with RCX = 2^62 over memory that never faults (every page is
 * the one holding the code, filled with the value stored): the budget
 * bounds it, and *stop ends it when the budget would not */
static void test_rep_budget_and_stop(void **state)
{
	struct softcpu *c = *state;
	const uint64_t pat = 0x9090909090ab48f3ull; /* rep stosq; nop ... */
	const uint64_t rip = 0x7f0000001000ull, n = 1ull << 62;

	for (int i = 0; i < 512; i++)
		put64(0x30000 + i * 8u, pat);
	map_everything_to(c, 0x30000);
	c->rip = rip;
	c->r[RAX] = pat;
	c->r[RCX] = n;
	c->r[RDI] = 0x123456789000ull;
	c->rflags = 2;
	uint64_t i0 = c->insns;
	assert_int_equal(softcpu_run(c, 1000), SOFTCPU_YIELD);
	assert_int_equal(c->insns - i0, 1000);
	assert_int_equal(c->rip, rip); /* still on the instruction */
	assert_int_equal(c->r[RCX], n - 1000);
	assert_int_equal(c->r[RDI], 0x123456789000ull + 8000);
	assert_int_equal(softcpu_run(c, 1), SOFTCPU_YIELD); /* one at a time still moves */
	assert_int_equal(c->r[RCX], n - 1001);

	struct timespec a, b;
	pthread_t t;
	stop_flag = 0;
	c->stop = &stop_flag;
	clock_gettime(CLOCK_MONOTONIC, &a);
	assert_int_equal(pthread_create(&t, NULL, stopper, NULL), 0);
	assert_int_equal(softcpu_run(c, ~0ull), SOFTCPU_YIELD);
	clock_gettime(CLOCK_MONOTONIC, &b);
	pthread_join(t, NULL);
	assert_true(b.tv_sec - a.tv_sec < 20);
	assert_true(c->r[RCX] < n - 1001);
	assert_int_equal(c->rip, rip);
	assert_int_equal(n - c->r[RCX], (c->r[RDI] - 0x123456789000ull) / 8);
}

/* A long REP cut into many budgets ends as if it had run at once. */
static void test_rep_restarts(void **state)
{
	struct softcpu *c = *state;
	static const uint8_t movsb[] = { 0xf3, 0xa4 }, cmpsb[] = { 0xf3, 0xa6 },
	                     stosd[] = { 0xfd, 0xf3, 0xab };
	enum softcpu_exit e;
	int runs = 0;

	for (int i = 0; i < 5000; i++)
		gp(0x30000)[i] = (uint8_t)rnd();
	memset(gp(0x40000), 0, 8192);
	memcpy(gp(CODE), movsb, sizeof(movsb));
	gp(CODE)[sizeof(movsb)] = 0xf4;
	c->rip = CODE;
	c->r[RSI] = 0x30000;
	c->r[RDI] = 0x40000;
	c->r[RCX] = 5000;
	c->rflags = 2;
	uint64_t i0 = c->insns;
	while ((e = softcpu_run(c, 7)) == SOFTCPU_YIELD) {
		runs++;
		assert_true(c->rip == CODE || c->rip == CODE + sizeof(movsb));
	}
	assert_int_equal(e, SOFTCPU_HLT);
	assert_true(runs >= 700);
	assert_int_equal(c->insns - i0, 5001);
	assert_memory_equal(gp(0x40000), gp(0x30000), 5000);
	assert_int_equal(gp(0x40000)[5000], 0);
	assert_int_equal(c->r[RCX], 0);
	assert_int_equal(c->r[RSI], 0x30000 + 5000);

	/* repe cmpsb stops after the difference, wherever the budget cut it */
	gp(0x40000)[3001] ^= 1;
	memcpy(gp(CODE), cmpsb, sizeof(cmpsb));
	gp(CODE)[sizeof(cmpsb)] = 0xf4;
	c->rip = CODE;
	c->r[RSI] = 0x30000;
	c->r[RDI] = 0x40000;
	c->r[RCX] = 5000;
	while ((e = softcpu_run(c, 13)) == SOFTCPU_YIELD)
		;
	assert_int_equal(e, SOFTCPU_HLT);
	assert_int_equal(c->r[RCX], 5000 - 3002);
	assert_int_equal(c->r[RSI], 0x30000 + 3002);
	assert_false(c->rflags & ZF);

	/* std; rep stosd downwards */
	memcpy(gp(CODE), stosd, sizeof(stosd));
	gp(CODE)[sizeof(stosd)] = 0xf4;
	c->rip = CODE;
	c->r[RDI] = 0x40000 + 4 * 999;
	c->r[RCX] = 1000;
	c->r[RAX] = 0xdeadbeef;
	while ((e = softcpu_run(c, 3)) == SOFTCPU_YIELD)
		;
	assert_int_equal(e, SOFTCPU_HLT);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(((uint32_t *)gp(0x40000))[i], 0xdeadbeef);
	assert_int_equal(c->r[RDI], 0x40000 - 4);
}

static void test_save_restore(void **state)
{
	struct softcpu *c = *state, d;
	struct sbuf b;
	struct rbuf rb;
	struct softcpu_io io = { pio, mmio, NULL };

	c->r[RDI] = 0x1234;
	c->rip = 0x4444;
	sbuf_init(&b);
	softcpu_save(c, &b);
	softcpu_init(&d, &mem, &io);
	rbuf_init(&rb, b.data, b.len);
	assert_int_equal(softcpu_restore(&d, &rb), 0);
	assert_int_equal(d.r[RDI], 0x1234);
	assert_int_equal(d.rip, 0x4444);
	assert_int_equal(d.cr3, c->cr3);
	assert_true(d.cs_l);
	/* the guest TSC runs on from the saved value, never backwards */
	uint64_t saved;
	memcpy(&saved, b.data + b.len - 8, 8);
	assert_true(softcpu_tsc(&d) >= saved);
	assert_true(softcpu_tsc(&d) <= softcpu_tsc(c) + 1000000000ull);
	/* truncated, wrong version, impossible modes: refused */
	for (size_t cut = 0; cut < b.len; cut += 7) {
		rbuf_init(&rb, b.data, cut);
		assert_int_not_equal(softcpu_restore(&d, &rb), 0);
	}
	b.data[0] = 99;
	rbuf_init(&rb, b.data, b.len);
	assert_int_equal(softcpu_restore(&d, &rb), -EPROTONOSUPPORT);
	b.data[0] = 1;
	/* cpl is the second-to-last u8 before the 8-byte TSC */
	b.data[b.len - 9] = 7;
	rbuf_init(&rb, b.data, b.len);
	assert_int_equal(softcpu_restore(&d, &rb), -EINVAL);
	sbuf_free(&b);
}

/* ---- random instruction streams: the guest cannot escape ----
 *
 * Guest RAM here is two slots with PROT_NONE guard pages around them (so
 * an access just outside them kills the test even without ASan): 16 MiB
 * at 0 and 2 MiB at 4 GiB. The page tables sit at the end of the first
 * slot and map RAM, MMIO, 4 KiB pages of every kind (not present,
 * read-only, supervisor, NX), a table that lives in MMIO, one beyond RAM,
 * a page directory used as a page table, a recursive PML4 entry and the
 * higher half. The IDT sends exceptions to handlers that step over the
 * faulting byte and IRETQ (or HLT), so one stream can fault many times.
 * Code is placed mid-page, at page ends before a not-present page, MMIO
 * or the end of a slot. Registers point at all of those. */

#define FZ_LOW   (16ull << 20)
#define FZ_HIGH  (2ull << 20)
#define FZ_HGPA  (4ull << 30)
#define FZ_GUARD (64ull << 10)
#define FZ_GDT   0x1000ull
#define FZ_IDT   0x2000ull
#define FZ_TSS   0x3000ull
#define FZ_HND   0x4000ull
#define FZ_PT    0x6000ull /* 4 KiB pages of every kind at 8 MiB */
#define FZ_KSTK  0x180000ull
#define FZ_IST   0x190000ull
#define FZ_CODE  0x200000ull
#define FZ_USTK  0x300000ull
#define FZ_PML4  (FZ_LOW - 0x2000)
#define FZ_PDPT  (FZ_LOW - 0x3000)
#define FZ_PD    (FZ_LOW - 0x4000)

static struct vmm_mem fz_mem;
static uint8_t *fz_res[2];
static size_t fz_reslen[2];
static unsigned fz_bad;
static volatile uint8_t fz_sink;

static uint8_t *fz_map(int i, size_t len)
{
	fz_reslen[i] = len + 2 * FZ_GUARD;
	fz_res[i] = mmap(NULL, fz_reslen[i], PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
	                 -1, 0);
	assert_true(fz_res[i] != MAP_FAILED);
	assert_int_equal(mprotect(fz_res[i] + FZ_GUARD, len, PROT_READ | PROT_WRITE), 0);
	return fz_res[i] + FZ_GUARD;
}

static uint8_t *fz_gp(uint64_t gpa)
{
	return vmm_gpa(&fz_mem, gpa, 1);
}

static void fz_put(uint64_t gpa, uint64_t v)
{
	memcpy(fz_gp(gpa), &v, 8);
}

static void fz_pio(void *arg, uint16_t port, bool out, uint8_t *data, unsigned size)
{
	(void)arg;
	(void)port;
	if (size != 1 && size != 2 && size != 4)
		fz_bad++;
	if (out)
		for (unsigned i = 0; i < size; i++)
			fz_sink ^= data[i];
	else
		memset(data, 0x5a, size);
}

/* MMIO: 1, 2, 4 or 8 bytes, within a page, never RAM */
static void fz_mmio(void *arg, uint64_t gpa, bool write, uint8_t *data, unsigned size)
{
	(void)arg;
	if ((size != 1 && size != 2 && size != 4 && size != 8) || (gpa & 0xfff) + size > 4096 ||
	    vmm_gpa(&fz_mem, gpa, size))
		fz_bad++;
	if (write)
		for (unsigned i = 0; i < size; i++)
			fz_sink ^= data[i];
	else
		memset(data, 0xa5, size);
}

static uint64_t fz_value(void)
{
	static const uint64_t msrs[] = { 0x10, 0xc0000080, 0xc0000100, 0xc0000101, 0xc0000102 };

	switch (rnd() % 15) {
	case 13:
		return (rnd() % 9) * 8 | (rnd() & 3); /* selectors: LTR, MOV Sreg, IRET */
	case 14:
		return msrs[rnd() % 5] | (rnd() & 1 ? 0 : rnd() << 32);
	case 0:
		return 0;
	case 1:
		return rnd() % 64;
	case 2:
		return FZ_CODE + rnd() % 8192; /* RAM */
	case 3:
		return FZ_LOW - rnd() % 0x5000; /* the end of RAM: the page tables */
	case 4:
		return 0x800000 + rnd() % 0x8000; /* 4 KiB pages of every kind */
	case 5:
		return 0xc0000000ull + rnd() % 0x2000; /* MMIO */
	case 6:
		return (1ull << 47) - rnd() % 64; /* the canonical edge */
	case 7:
		return 0xffff800000000000ull + rnd() % FZ_LOW; /* the higher half */
	case 8:
		return (1ull << 30) + FZ_HIGH - rnd() % 64; /* the end of slot 1 */
	case 9:
		return ~0ull - rnd() % 64;
	case 10:
		return (1ull << 63) | (rnd() % 64);
	case 11:
		return 0xffffff8000000000ull + rnd() % 0x100000; /* the recursive entry */
	default:
		return rnd();
	}
}

static void fz_env(struct softcpu *c, unsigned cpl, bool lm)
{
	static const uint64_t gdt[8] = {
		0,
		0x00af9a000000ffffull, /* 0x08 kernel code 64 */
		0x00cf92000000ffffull, /* 0x10 kernel data */
		0x00affa000000ffffull, /* 0x18 user code 64 */
		0x00cff2000000ffffull, /* 0x20 user data */
		0,                     /* 0x28 TSS, below */
		0,
		0x00cf9a000000ffffull, /* 0x38 kernel code 32 */
	};
	memcpy(fz_gp(FZ_GDT), gdt, sizeof(gdt));
	fz_put(FZ_GDT + 0x28, 0x67 | ((FZ_TSS & 0xffffff) << 16) | (0x89ull << 40) |
	                              (((FZ_TSS >> 24) & 0xff) << 56));
	memset(fz_gp(FZ_TSS), 0, 0x68);
	fz_put(FZ_TSS + 4, FZ_KSTK);
	fz_put(FZ_TSS + 0x24, FZ_IST);

	/* handlers: hlt, or drop the error code, step over a byte, iretq */
	bool halt = rnd() % 4 == 0;
	for (unsigned v = 0; v < 32; v++) {
		uint8_t *h = fz_gp(FZ_HND + 16 * v);
		bool err = v == 8 || (v >= 10 && v <= 14) || v == 17 || v == 21;
		static const uint8_t skip[] = { 0x48, 0x83, 0x04, 0x24, 0x01, 0x48, 0xcf };
		memset(h, 0xcc, 16);
		if (halt) {
			h[0] = 0xf4;
			continue;
		}
		if (err) {
			static const uint8_t pop_err[] = { 0x48, 0x83, 0xc4, 0x08 };
			memcpy(h, pop_err, sizeof(pop_err));
			h += sizeof(pop_err);
		}
		memcpy(h, skip, sizeof(skip));
	}
	fz_gp(FZ_HND + 0x200)[0] = 0x48;
	fz_gp(FZ_HND + 0x200)[1] = 0xcf;
	unsigned absent = rnd() % 4 ? 256 : (unsigned)(rnd() % 32);
	for (unsigned v = 0; v < 256; v++) {
		uint64_t t = v < 32 ? FZ_HND + 16 * v : FZ_HND + 0x200;
		unsigned dpl = v == 3 || v >= 0x80 ? 3 : 0, ist = v == 8 || v == 2 ? 1 : 0;
		uint64_t lo = (t & 0xffff) | (0x08ull << 16) | ((uint64_t)ist << 32) |
		              ((uint64_t)(0x8e | dpl << 5) << 40) | ((t & 0xffff0000ull) << 32);
		fz_put(FZ_IDT + v * 16, v == absent ? 0 : lo);
		fz_put(FZ_IDT + v * 16 + 8, t >> 32);
	}

	/* page tables */
	memset(fz_gp(FZ_PD), 0, 0x3000);
	memset(fz_gp(FZ_PT), 0, 0x1000);
	fz_put(FZ_PML4, FZ_PDPT | 7);
	fz_put(FZ_PML4 + 256 * 8, FZ_PDPT | 7);
	fz_put(FZ_PML4 + 511 * 8, FZ_PML4 | 7); /* recursive */
	fz_put(FZ_PDPT, FZ_PD | 7);
	fz_put(FZ_PDPT + 8, FZ_HGPA | 0x87);        /* 1 GiB page onto slot 1 and MMIO */
	fz_put(FZ_PDPT + 24, 0xc0000000ull | 0x87); /* 1 GiB of MMIO */
	fz_put(FZ_PDPT + 32, FZ_LOW | 7);           /* a page directory beyond RAM */
	for (uint64_t i = 0; i < 512; i++)
		fz_put(FZ_PD + i * 8, (i << 21) | 0x87);
	fz_put(FZ_PD + 4 * 8, FZ_PT | 7);
	fz_put(FZ_PD + 5 * 8, 0);
	fz_put(FZ_PD + 6 * 8, 0xd0000000ull | 7); /* a page table in MMIO */
	fz_put(FZ_PD + 7 * 8, FZ_PD | 7);         /* the directory as a page table */
	for (uint64_t j = 0; j < 512; j++) {
		static const uint64_t kind[8] = { 7, 0, 7, 5, 7, 3, 7, 7 | 1ull << 63 };
		uint64_t k = kind[j % 8];
		fz_put(FZ_PT + j * 8, k ? (0x800000 + j * 4096) | k : 0);
	}

	softcpu_reset_pvh(c, FZ_CODE, 0);
	c->ncpuid = 3;
	c->cpuid[0] = (struct cpuid_leaf){ 0, 0, 7, 1, 2, 3 };
	c->cpuid[1] = (struct cpuid_leaf){ 1, 0, 4, 5, 6, 7 };
	c->cpuid[2] = (struct cpuid_leaf){ 7, 1, 8, 9, 10, 11 };
	c->gdt_base = FZ_GDT;
	c->gdt_limit = sizeof(gdt) - 1;
	if (lm) {
		c->cr0 = 0x80010033;
		c->cr4 = 0x20;
		c->efer = 0x501 | (rnd() & 1 ? 0x800 : 0);
		c->cr3 = FZ_PML4;
		c->idt_base = FZ_IDT;
		c->idt_limit = rnd() % 8 ? 0xfff : (uint32_t)(rnd() % 0x1000);
		c->tr_base = FZ_TSS;
		c->tr_limit = 0x67;
		c->tr_sel = 0x28;
		c->cs_l = true;
		c->cs_db = false;
		c->cpl = (uint8_t)cpl;
		c->sel[1] = cpl ? 0x1b : 0x08;
		c->sel[2] = cpl ? 0x23 : 0x10;
	}
	c->rflags =
	        2 | (rnd() & (ALL | DF)) | (rnd() & 1 ? 0x200 : 0) | (rnd() % 3 == 0 ? 0x3000 : 0);
	softcpu_flush_tlb(c);
}

/* where the stream goes: mid-page, or its end just before a page that
 * is not present, MMIO, or past the end of a slot */
static uint64_t fz_place(bool lm, uint64_t *gpa)
{
	unsigned n = 1 + (unsigned)(rnd() % 15);
	uint64_t la;

	switch (lm ? rnd() % 6 : rnd() % 2) {
	case 0:
		la = FZ_CODE + rnd() % 4000;
		*gpa = la;
		break;
	case 1:
		la = FZ_LOW - n; /* the end of RAM, then MMIO */
		*gpa = la;
		break;
	case 2:
		la = 0x801000 - n; /* then a page that is not present */
		*gpa = la;
		break;
	case 3:
		la = (1ull << 30) + FZ_HIGH - n; /* the end of slot 1, then MMIO */
		*gpa = FZ_HGPA + FZ_HIGH - n;
		break;
	case 4:
		la = 0xffff800000000000ull + FZ_CODE + 4096 - n; /* the higher half */
		*gpa = FZ_CODE + 4096 - n;
		break;
	default:
		la = FZ_LOW - 0x4000 - n; /* ends where the page tables begin */
		*gpa = la;
	}
	return la;
}

static const uint8_t fz_strops[] = { 0xa4, 0xa5, 0xa6, 0xa7, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf };

/* Random bytes rarely decode past their first instruction: most streams
 * are instead a few plausible instructions, legacy prefixes, a REX, a
 * one-byte opcode or one of the two-byte ones the CPU implements (system
 * ones included), then random ModRM, SIB, displacement and immediate. */
static void fz_stream(uint8_t *code, size_t len, bool lm)
{
	static const uint8_t prefixes[] = { 0x66, 0x67, 0xf2, 0xf3, 0xf0, 0x64, 0x65, 0x2e, 0x3e };
	static const uint8_t map2[] = { 0x00, 0x01, 0x0b, 0x1f, 0x20, 0x22, 0x30, 0x31, 0x32,
		                        0x42, 0x4f, 0x84, 0x95, 0xa2, 0xa3, 0xab, 0xaf, 0xb0,
		                        0xb1, 0xb3, 0xb6, 0xb7, 0xba, 0xbb, 0xbc, 0xbd, 0xbe,
		                        0xbf, 0xc0, 0xc1, 0xc8, 0xcf, 0x05, 0xa4, 0xc7 };
	static const uint8_t sys1[] = { 0xcf, 0xcd, 0xcc, 0x8e, 0x8c, 0xea, 0xf4, 0xfa, 0xfb,
		                        0xe4, 0xe6, 0xec, 0xef, 0x9d, 0xc2, 0xe8, 0xff, 0x8f };
	size_t k = 0;

	for (size_t i = 0; i < len; i++)
		code[i] = (uint8_t)rnd();
	if (rnd() % 4 == 0)
		return; /* purely random */
	while (k + 12 < len) {
		unsigned np = (unsigned)(rnd() % 4);
		for (unsigned i = 0; i < np && rnd() % 3 == 0; i++)
			code[k++] = prefixes[rnd() % sizeof(prefixes)];
		if (lm && rnd() & 1)
			code[k++] = (uint8_t)(0x40 | (rnd() & 15));
		switch (rnd() % 4) {
		case 0:
			code[k++] = 0x0f;
			code[k++] = map2[rnd() % sizeof(map2)];
			break;
		case 1:
			code[k++] = sys1[rnd() % sizeof(sys1)];
			break;
		default:
			code[k++] = (uint8_t)rnd();
		}
		k += rnd() % 8; /* ModRM, SIB, displacement, immediate: the random bytes */
	}
}

static void fz_one(struct softcpu *c, unsigned cpl, bool lm)
{
	uint64_t gpa;

	fz_env(c, cpl, lm);
	uint64_t la = fz_place(lm, &gpa);
	uint8_t code[48];
	fz_stream(code, sizeof(code), lm);
	bool huge_rep = rnd() % 8 == 0;
	if (huge_rep) { /* [67] [REX.W] f3/f2 string op with an enormous count */
		unsigned k = 0;
		if (rnd() % 4 == 0)
			code[k++] = 0x67;
		if (rnd() & 1)
			code[k++] = 0x48;
		code[k++] = rnd() & 1 ? 0xf3 : 0xf2;
		code[k] = fz_strops[rnd() % sizeof(fz_strops)];
	}
	for (unsigned i = 0; i < sizeof(code); i++) {
		uint8_t *p = vmm_gpa(&fz_mem, gpa + i, 1);
		if (p)
			*p = code[i];
	}
	for (unsigned r = 0; r < 16; r++)
		c->r[r] = fz_value();
	if (rnd() % 4)
		c->r[RSP] = (cpl ? FZ_USTK : FZ_KSTK - 0x1000) - 8 * (rnd() % 16);
	if (huge_rep)
		c->r[RCX] = rnd() & 1 ? ~0ull - rnd() % 4 : 1ull << 63;
	if (rnd() % 16 == 0) /* tables anywhere: implicit accesses that fault */
		c->gdt_base = fz_value();
	if (rnd() % 16 == 0)
		c->idt_base = fz_value();
	if (rnd() % 16 == 0) {
		c->tr_base = fz_value();
		c->tr_limit = (uint32_t)(rnd() % 0x70);
	}
	if (rnd() % 16 == 0) /* a gate with a random selector and target */
		fz_put(FZ_IDT + (rnd() % 32) * 16, rnd());
	c->rip = la;
	for (int k = 0; k < 3; k++) {
		uint64_t budget = 1 + rnd() % 300, i0 = c->insns;
		enum softcpu_exit e = softcpu_run(c, budget);
		if ((unsigned)e > SOFTCPU_PAUSE || c->insns - i0 > budget || c->cpl > 3 ||
		    strnlen(c->why, sizeof(c->why)) == sizeof(c->why)) {
			fprintf(stderr, "escape: exit %d, %llu of %llu instructions, cpl %u\n", e,
			        (unsigned long long)(c->insns - i0), (unsigned long long)budget,
			        c->cpl);
			fz_bad++;
		}
		if (e != SOFTCPU_YIELD && e != SOFTCPU_PAUSE)
			break;
	}
}

static void test_no_escape(void **state)
{
	static struct softcpu c;
	struct softcpu_io io = { fz_pio, fz_mmio, NULL };
	uint64_t pages = (FZ_HGPA + FZ_HIGH) >> 12;
	uint64_t *dirty = calloc(pages / 64 + 1, 8);

	(void)state;
	assert_non_null(dirty);
	memset(&fz_mem, 0, sizeof(fz_mem));
	fz_mem.slots[0] = (struct vmm_mem_slot){ 0, FZ_LOW, fz_map(0, FZ_LOW), -1 };
	fz_mem.slots[1] = (struct vmm_mem_slot){ FZ_HGPA, FZ_HIGH, fz_map(1, FZ_HIGH), -1 };
	fz_mem.nslots = 2;
	fz_mem.ram_bytes = FZ_LOW + FZ_HIGH;
	softcpu_init(&c, &fz_mem, &io);
	atomic_store(&c.dirty, dirty);
	c.dirty_pages = pages;
	fz_bad = 0;
	for (int i = 0; i < 20000; i++) {
		fz_one(&c, 3, true);
		fz_one(&c, 0, rnd() % 8 != 0);
	}
	atomic_store(&c.dirty, NULL);
	free(dirty);
	for (int i = 0; i < 2; i++)
		munmap(fz_res[i], fz_reslen[i]);
	assert_int_equal(fz_bad, 0);
}

static int setup(void **state)
{
	static struct softcpu c;

	host_code = mmap(NULL, 8192, PROT_READ | PROT_WRITE | PROT_EXEC,
	                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
	scratch = mmap(NULL, SCRATCH_SIZE, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
	if (host_code == MAP_FAILED || scratch == MAP_FAILED ||
	    (uint64_t)host_code + 8192 > (1ull << 31) ||
	    (uint64_t)scratch + SCRATCH_SIZE > (1ull << 31) ||
	    vmm_mem_init(&mem, 128ull << 20, false) < 0)
		return -1;
	insn_off = (size_t)(stub_pre(host_code) - host_code);
	cpu_setup(&c);
	*state = &c;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	vmm_mem_free(&mem);
	munmap(host_code, 8192);
	munmap(scratch, SCRATCH_SIZE);
	free(cases);
	return 0;
}

static int reset(void **state)
{
	cpu_setup(*state);
	return 0;
}

/* PAUSE after PAUSE leaves the run loop (pause-loop exiting), with RIP
 * past the PAUSE; a lone one does not. */
static void test_pause_loop_exit(void **state)
{
	struct softcpu *c = *state;
	uint8_t *g = vmm_gpa(&mem, CODE, 64);
	static const uint8_t spin[] = { 0xf3, 0x90, 0xeb, 0xfc }; /* 1: pause; jmp 1b */

	memcpy(g, spin, sizeof(spin));
	c->rip = CODE;
	c->pause_run = 0;
	assert_int_equal(softcpu_run(c, 1000000), SOFTCPU_PAUSE);
	assert_true(c->insns <= 2 * 32 + 2);
	assert_true(c->rip == CODE + 2);                          /* after the 32nd pause */
	assert_int_equal(softcpu_run(c, 1000000), SOFTCPU_PAUSE); /* and again */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_differential, reset),
		cmocka_unit_test_setup(test_memory_and_stack, reset),
		cmocka_unit_test_setup(test_fault_delivery, reset),
		cmocka_unit_test_setup(test_fault_semantics, reset),
		cmocka_unit_test_setup(test_unsupported_and_triple_fault, reset),
		cmocka_unit_test_setup(test_rep_budget_and_stop, reset),
		cmocka_unit_test_setup(test_rep_restarts, reset),
		cmocka_unit_test_setup(test_save_restore, reset),
		cmocka_unit_test_setup(test_no_escape, reset),
		cmocka_unit_test_setup(test_pause_loop_exit, reset),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
