/* The software CPU (see softcpu.h): fetch, decode and execute one x86-64
 * instruction at a time against guest memory through a small TLB.
 *
 * Faults are raised with longjmp back to softcpu_run(); step() has left
 * RIP on the faulting instruction, and the exception is delivered through
 * the guest's IDT. Every instruction reads its memory operands before it
 * writes anything, so a fault leaves the architectural state as it was:
 * the read of a read-modify-write destination already needs write
 * permission (mem_read_rmw), IRET checks everything before RSP moves. A
 * REP string instruction is interruptible between iterations, as on the
 * CPU (string_op).
 *
 * References: Intel SDM vol. 2 (instruction encodings, flags), vol. 3
 * chapters 4 (paging) and 6 (64-bit interrupt delivery). */
#include "softcpu.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <x86intrin.h>

#include "util.h"

#define F_CF    0x0001ull
#define F_PF    0x0004ull
#define F_AF    0x0010ull
#define F_ZF    0x0040ull
#define F_SF    0x0080ull
#define F_TF    0x0100ull
#define F_IF    0x0200ull
#define F_DF    0x0400ull
#define F_OF    0x0800ull
#define F_IOPL  0x3000ull
#define F_NT    0x4000ull
#define F_RF    0x10000ull
#define F_AC    0x40000ull
#define F_ID    0x200000ull
#define F_ARITH (F_CF | F_PF | F_AF | F_ZF | F_SF | F_OF)

#define CR0_PE  (1ull << 0)
#define CR0_WP  (1ull << 16)
#define CR0_PG  (1ull << 31)
#define CR4_PAE (1ull << 5)

#define EFER_SCE (1ull << 0)
#define EFER_LME (1ull << 8)
#define EFER_LMA (1ull << 10)
#define EFER_NXE (1ull << 11)

#define MSR_TSC            0x10
#define MSR_EFER           0xc0000080
#define MSR_FS_BASE        0xc0000100
#define MSR_GS_BASE        0xc0000101
#define MSR_KERNEL_GS_BASE 0xc0000102

#define VEC_DE 0
#define VEC_BP 3
#define VEC_UD 6
#define VEC_GP 13
#define VEC_PF 14

#define SOFTCPU_PAUSE_EXIT 32 /* PAUSEs that make a pause-loop exit */
#define TLB_VALID          (1ull << 63)
#define PTE_ADDR           0x000ffffffffff000ull

enum { SEG_ES, SEG_CS, SEG_SS, SEG_DS, SEG_FS, SEG_GS, SEG_NONE };
enum { RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI };
enum { ACC_R, ACC_W, ACC_X };
enum { JMP_FAULT = 1, JMP_EXIT = 2 };

struct insn {
	uint64_t start;
	uint8_t b[16];
	unsigned n, pos;
	uint8_t rex, rep;
	bool o16, a32, m64;
	int seg;
	unsigned osz, asz;
	/* ModRM */
	uint8_t mod, reg, rm;
	bool mem, riprel;
	uint64_t ea;
	bool jumped; /* a taken branch in the 0F map set RIP */
};

static inline uint64_t mask_of(unsigned sz)
{
	return sz == 8 ? ~0ull : (1ull << (sz * 8)) - 1;
}

static inline uint64_t sign_of(unsigned sz)
{
	return 1ull << (sz * 8 - 1);
}

static inline int64_t sext(uint64_t v, unsigned sz)
{
	unsigned sh = 64 - sz * 8;
	return (int64_t)(v << sh) >> sh;
}

/* ---- leaving the interpreter ---- */

static _Noreturn void raise_fault(struct softcpu *c, uint8_t vec, bool has_err, uint32_t err)
{
	c->fault_vec = vec;
	c->fault_has_err = has_err;
	c->fault_err = err;
	c->fault_ilen = 0;
	longjmp(c->fault_jmp, JMP_FAULT);
}

static _Noreturn void leave(struct softcpu *c, enum softcpu_exit e)
{
	c->pending_exit = e;
	longjmp(c->fault_jmp, JMP_EXIT);
}

static _Noreturn void unsupported(struct softcpu *c, const struct insn *in, const char *what)
{
	int n = snprintf(c->why, sizeof(c->why), "software CPU: %s at rip 0x%llx:", what,
	                 (unsigned long long)in->start);
	unsigned show = in->pos > 8 ? in->pos : in->n < 8 ? in->n : 8; /* opcode and a few more */
	for (unsigned i = 0; i < show && n > 0 && (size_t)n < sizeof(c->why); i++)
		n += snprintf(c->why + n, sizeof(c->why) - (size_t)n, " %02x", in->b[i]);
	leave(c, SOFTCPU_UNSUPPORTED);
}

static _Noreturn void gp0(struct softcpu *c)
{
	raise_fault(c, VEC_GP, true, 0);
}

/* ---- paging and the TLB ---- */

void softcpu_flush_tlb(struct softcpu *c)
{
	memset(c->tlb, 0, sizeof(c->tlb));
}

static uint64_t phys_u64(struct softcpu *c, uint64_t pa)
{
	const uint64_t *p = vmm_gpa(c->mem, pa, 8);
	return p ? *p : 0; /* page tables outside RAM read as not present */
}

static _Noreturn void page_fault(struct softcpu *c, uint64_t la, int acc, bool user, bool present)
{
	uint32_t err = (present ? 1u : 0) | (acc == ACC_W ? 2u : 0) | (user ? 4u : 0) |
	               (acc == ACC_X && (c->efer & EFER_NXE) ? 0x10u : 0);
	c->cr2 = la;
	raise_fault(c, VEC_PF, true, err);
}

/* Walks the guest page tables for la and fills its TLB entry; faults as
 * the CPU would. The entry keeps the raw permissions; the access itself
 * was checked here (a supervisor write to a read-only page with CR0.WP
 * clear passes here but keeps missing the TLB's fast check). */
static struct softcpu_tlb *walk(struct softcpu *c, uint64_t la, int acc, bool user)
{
	uint64_t vpn = la >> 12, pa;
	struct softcpu_tlb *t = &c->tlb[vpn & (SOFTCPU_TLB_SIZE - 1)];
	bool u = true, w = true, x = true;

	if (!(c->cr0 & CR0_PG)) {
		pa = (la & 0xffffffffull) & ~0xfffull;
	} else if (c->efer & EFER_LMA) {
		if ((uint64_t)((int64_t)(la << 16) >> 16) != la)
			gp0(c); /* non-canonical */
		uint64_t table = c->cr3 & PTE_ADDR;
		for (int level = 3;; level--) {
			uint64_t e = phys_u64(c, table + ((la >> (12 + 9 * level)) & 511) * 8);
			if (!(e & 1))
				page_fault(c, la, acc, user, false);
			u = u && (e & 4);
			w = w && (e & 2);
			if (c->efer & EFER_NXE)
				x = x && !(e >> 63);
			if (level == 0) {
				pa = e & PTE_ADDR;
				break;
			}
			if ((level == 1 || level == 2) && (e & 0x80)) {
				uint64_t span = 1ull << (12 + 9 * level);
				pa = (e & PTE_ADDR & ~(span - 1)) | (la & (span - 1) & ~0xfffull);
				break;
			}
			table = e & PTE_ADDR;
		}
	} else {
		/* legacy 32-bit paging is never used by a PVH guest */
		c->pending_exit = SOFTCPU_UNSUPPORTED;
		snprintf(c->why, sizeof(c->why),
		         "software CPU: paging without long mode (CR0.PG without EFER.LME)");
		longjmp(c->fault_jmp, JMP_EXIT);
	}
	if ((user && !u) || (acc == ACC_X && !x) ||
	    (acc == ACC_W && !w && (user || (c->cr0 & CR0_WP))))
		page_fault(c, la, acc, user, true);
	t->vpn = vpn | TLB_VALID;
	t->pa = pa;
	t->host = vmm_gpa(c->mem, pa, VMM_PAGE_SIZE);
	t->user = u;
	t->write = w;
	t->exec = x;
	return t;
}

static inline struct softcpu_tlb *lookup(struct softcpu *c, uint64_t la, int acc)
{
	bool user = c->cpl == 3;
	uint64_t vpn = la >> 12;
	struct softcpu_tlb *t = &c->tlb[vpn & (SOFTCPU_TLB_SIZE - 1)];

	if (t->vpn != (vpn | TLB_VALID) || (user && !t->user) || (acc == ACC_W && !t->write) ||
	    (acc == ACC_X && !t->exec))
		t = walk(c, la, acc, user);
	return t;
}

static inline void mark_dirty(struct softcpu *c, uint64_t pa)
{
	uint64_t *d = atomic_load_explicit(&c->dirty, memory_order_acquire);
	uint64_t pfn = pa >> 12;

	if (d && pfn < c->dirty_pages)
		__atomic_fetch_or(&d[pfn >> 6], 1ull << (pfn & 63), __ATOMIC_SEQ_CST);
}

/* acc: ACC_R, or ACC_W for the read of a read-modify-write instruction,
 * which (as on the CPU) needs write permission already: it faults before
 * anything changed, with W in the #PF error code, and its write then
 * cannot fault. */
static inline uint64_t mem_read_acc(struct softcpu *c, uint64_t la, unsigned sz, int acc)
{
	uint64_t v = 0;

	if ((la & 0xfff) + sz <= 4096) {
		struct softcpu_tlb *t = lookup(c, la, acc);
		if (t->host) {
			memcpy(&v, t->host + (la & 0xfff), sz);
		} else {
			c->io_exits++;
			c->io.mmio(c->io.arg, t->pa | (la & 0xfff), false, (uint8_t *)&v, sz);
		}
		return v;
	}
	/* crossing a page: both pages are checked before a byte is read */
	lookup(c, la, acc);
	lookup(c, la + sz - 1, acc);
	for (unsigned i = 0; i < sz; i++)
		v |= mem_read_acc(c, la + i, 1, ACC_R) << (8 * i);
	return v;
}

static uint64_t mem_read(struct softcpu *c, uint64_t la, unsigned sz)
{
	return mem_read_acc(c, la, sz, ACC_R);
}

static uint64_t mem_read_rmw(struct softcpu *c, uint64_t la, unsigned sz)
{
	return mem_read_acc(c, la, sz, ACC_W);
}

static void mem_write(struct softcpu *c, uint64_t la, unsigned sz, uint64_t v)
{
	if ((la & 0xfff) + sz <= 4096) {
		struct softcpu_tlb *t = lookup(c, la, ACC_W);
		if (t->host) {
			memcpy(t->host + (la & 0xfff), &v, sz);
			mark_dirty(c, t->pa);
		} else {
			c->io_exits++;
			c->io.mmio(c->io.arg, t->pa | (la & 0xfff), true, (uint8_t *)&v, sz);
		}
		return;
	}
	/* crossing a page: both pages must be writable before a byte lands */
	lookup(c, la, ACC_W);
	lookup(c, la + sz - 1, ACC_W);
	for (unsigned i = 0; i < sz; i++)
		mem_write(c, la + i, 1, v >> (8 * i));
}

/* An implicit supervisor access (GDT, IDT, TSS): checked as at CPL 0
 * whatever the CPL. A fault on the way restores the CPL (softcpu_run). */
static uint64_t sys_read(struct softcpu *c, uint64_t la, unsigned sz)
{
	uint8_t cpl = c->cpl;

	c->sys_cpl = (uint8_t)(cpl + 1);
	c->cpl = 0;
	uint64_t v = mem_read(c, la, sz);
	c->cpl = cpl;
	c->sys_cpl = 0;
	return v;
}

/* ---- fetch and decode ---- */

static uint8_t fetch_slow(struct softcpu *c, struct insn *in)
{
	if (in->pos >= 15)
		gp0(c); /* longer than 15 bytes */
	uint64_t la = in->start + in->n;
	struct softcpu_tlb *t = lookup(c, la, ACC_X);
	if (!t->host)
		unsupported(c, in, "instruction fetch from MMIO");
	unsigned take = 4096 - (unsigned)(la & 0xfff);
	if (take > 15 - in->n)
		take = 15 - in->n;
	memcpy(in->b + in->n, t->host + (la & 0xfff), take);
	in->n += take;
	return in->b[in->pos++];
}

static inline uint8_t getb(struct softcpu *c, struct insn *in)
{
	if (in->pos < in->n)
		return in->b[in->pos++];
	return fetch_slow(c, in);
}

static uint64_t getimm(struct softcpu *c, struct insn *in, unsigned sz)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < sz; i++)
		v |= (uint64_t)getb(c, in) << (8 * i);
	return v;
}

/* Iz: 16 or 32 bits, sign-extended to the operand size */
static uint64_t getiz(struct softcpu *c, struct insn *in)
{
	return in->osz == 2 ? getimm(c, in, 2) : (uint64_t)(int64_t)(int32_t)getimm(c, in, 4);
}

static uint64_t getib_sx(struct softcpu *c, struct insn *in)
{
	return (uint64_t)(int64_t)(int8_t)getb(c, in);
}

static void modrm(struct softcpu *c, struct insn *in)
{
	uint8_t m = getb(c, in);
	unsigned rm = m & 7;
	uint64_t ea = 0;

	in->mod = m >> 6;
	in->reg = (uint8_t)(((m >> 3) & 7) | ((in->rex & 4) << 1));
	if (in->mod == 3) {
		in->mem = false;
		in->rm = (uint8_t)(rm | ((in->rex & 1) << 3));
		return;
	}
	in->mem = true;
	if (in->asz == 2)
		unsupported(c, in, "16-bit addressing");
	if (rm == 4) {
		uint8_t sib = getb(c, in);
		unsigned base = (sib & 7) | ((in->rex & 1) << 3);
		unsigned index = ((sib >> 3) & 7) | ((in->rex & 2) << 2);
		if (index != 4)
			ea += c->r[index] << (sib >> 6);
		if ((sib & 7) == 5 && in->mod == 0)
			ea += (uint64_t)(int64_t)(int32_t)getimm(c, in, 4);
		else
			ea += c->r[base];
	} else if (rm == 5 && in->mod == 0) {
		int32_t d = (int32_t)getimm(c, in, 4);
		if (in->m64)
			in->riprel = true;
		ea = (uint64_t)(int64_t)d;
	} else {
		ea = c->r[rm | ((in->rex & 1) << 3)];
	}
	if (in->mod == 1)
		ea += getib_sx(c, in);
	else if (in->mod == 2)
		ea += (uint64_t)(int64_t)(int32_t)getimm(c, in, 4);
	in->ea = ea;
}

/* The linear address of the memory operand. Immediates must have been
 * fetched already (RIP-relative addressing counts from the next insn). */
static uint64_t ea_of(struct softcpu *c, const struct insn *in)
{
	uint64_t a = in->ea;

	if (in->riprel)
		a += in->start + in->pos;
	if (in->asz == 4)
		a = (uint32_t)a;
	if (in->seg == SEG_FS)
		a += c->fs_base;
	else if (in->seg == SEG_GS)
		a += c->gs_base;
	return a;
}

/* ---- registers and operands ---- */

static inline uint64_t rd_reg(const struct softcpu *c, const struct insn *in, unsigned r,
                              unsigned sz)
{
	if (sz == 1 && !in->rex && r >= 4 && r < 8)
		return (c->r[r - 4] >> 8) & 0xff; /* AH CH DH BH */
	return c->r[r] & mask_of(sz);
}

static inline void wr_reg(struct softcpu *c, const struct insn *in, unsigned r, unsigned sz,
                          uint64_t v)
{
	switch (sz) {
	case 1:
		if (!in->rex && r >= 4 && r < 8)
			c->r[r - 4] = (c->r[r - 4] & ~0xff00ull) | ((v & 0xff) << 8);
		else
			c->r[r] = (c->r[r] & ~0xffull) | (v & 0xff);
		break;
	case 2:
		c->r[r] = (c->r[r] & ~0xffffull) | (v & 0xffff);
		break;
	case 4:
		c->r[r] = (uint32_t)v; /* 32-bit results zero-extend */
		break;
	default:
		c->r[r] = v;
	}
}

static uint64_t rd_e(struct softcpu *c, const struct insn *in, unsigned sz)
{
	return in->mem ? mem_read(c, ea_of(c, in), sz) : rd_reg(c, in, in->rm, sz);
}

/* the destination of a read-modify-write instruction (see mem_read_acc) */
static uint64_t rd_e_rmw(struct softcpu *c, const struct insn *in, unsigned sz)
{
	return in->mem ? mem_read_rmw(c, ea_of(c, in), sz) : rd_reg(c, in, in->rm, sz);
}

static void wr_e(struct softcpu *c, const struct insn *in, unsigned sz, uint64_t v)
{
	if (in->mem)
		mem_write(c, ea_of(c, in), sz, v);
	else
		wr_reg(c, in, in->rm, sz, v);
}

static uint64_t stack_mask(const struct softcpu *c)
{
	return (c->efer & EFER_LMA) && c->cs_l ? ~0ull : 0xffffffffull;
}

static void push(struct softcpu *c, uint64_t v, unsigned sz)
{
	uint64_t sp = (c->r[RSP] - sz) & stack_mask(c);

	mem_write(c, sp, sz, v);
	c->r[RSP] = sp;
}

static uint64_t pop(struct softcpu *c, unsigned sz)
{
	uint64_t v = mem_read(c, c->r[RSP] & stack_mask(c), sz);

	c->r[RSP] = (c->r[RSP] + sz) & stack_mask(c);
	return v;
}

/* ---- flags ---- */

static inline void set_flags(struct softcpu *c, uint64_t f)
{
	c->rflags = (c->rflags & ~F_ARITH) | f;
}

static inline uint64_t szp(uint64_t r, unsigned sz)
{
	uint64_t f = 0;

	r &= mask_of(sz);
	if (!r)
		f |= F_ZF;
	if (r & sign_of(sz))
		f |= F_SF;
	if (!__builtin_parity((unsigned)(r & 0xff)))
		f |= F_PF;
	return f;
}

static uint64_t alu(struct softcpu *c, unsigned op, uint64_t a, uint64_t b, unsigned sz)
{
	uint64_t m = mask_of(sz), sb = sign_of(sz), r, f, cin = c->rflags & F_CF;
	bool cf;

	a &= m;
	b &= m;
	switch (op & 7) {
	case 0: /* add */
	case 2: /* adc */
		if ((op & 7) == 0)
			cin = 0;
		r = (a + b + cin) & m;
		cf = cin ? r <= a : r < a;
		f = szp(r, sz) | (cf ? F_CF : 0) | (((a ^ r) & (b ^ r) & sb) ? F_OF : 0) |
		    ((a ^ b ^ r) & F_AF);
		break;
	case 3: /* sbb */
	case 5: /* sub */
	case 7: /* cmp */
		if ((op & 7) != 3)
			cin = 0;
		r = (a - b - cin) & m;
		cf = cin ? a <= b : a < b;
		f = szp(r, sz) | (cf ? F_CF : 0) | (((a ^ b) & (a ^ r) & sb) ? F_OF : 0) |
		    ((a ^ b ^ r) & F_AF);
		break;
	case 1:
		r = a | b;
		f = szp(r, sz);
		break;
	case 4:
		r = a & b;
		f = szp(r, sz);
		break;
	default: /* 6: xor */
		r = a ^ b;
		f = szp(r, sz);
	}
	set_flags(c, f);
	return r;
}

static bool cond(const struct softcpu *c, unsigned cc)
{
	uint64_t f = c->rflags;
	bool r;

	switch (cc >> 1) {
	case 0:
		r = f & F_OF;
		break;
	case 1:
		r = f & F_CF;
		break;
	case 2:
		r = f & F_ZF;
		break;
	case 3:
		r = f & (F_CF | F_ZF);
		break;
	case 4:
		r = f & F_SF;
		break;
	case 5:
		r = f & F_PF;
		break;
	case 6:
		r = !(f & F_SF) != !(f & F_OF);
		break;
	default:
		r = (f & F_ZF) || (!(f & F_SF) != !(f & F_OF));
	}
	return (cc & 1) ? !r : r;
}

/* group 2: rol ror rcl rcr shl shr sal sar */
static uint64_t shift(struct softcpu *c, unsigned op, uint64_t a, unsigned cnt, unsigned sz)
{
	unsigned bits = sz * 8;
	uint64_t m = mask_of(sz), sb = sign_of(sz), r = a & m, f = c->rflags & F_ARITH;

	cnt &= sz == 8 ? 63 : 31;
	if (!cnt)
		return r;
	a &= m;
	switch (op & 7) {
	case 0: { /* rol */
		unsigned k = cnt % bits;
		r = k ? ((a << k) | (a >> (bits - k))) & m : a;
		f = (f & ~(F_CF | F_OF)) | ((r & 1) ? F_CF : 0);
		if (((r & sb) != 0) != ((r & 1) != 0))
			f |= F_OF;
		break;
	}
	case 1: { /* ror */
		unsigned k = cnt % bits;
		r = k ? ((a >> k) | (a << (bits - k))) & m : a;
		f = (f & ~(F_CF | F_OF)) | ((r & sb) ? F_CF : 0);
		if (((r & sb) != 0) != ((r & (sb >> 1)) != 0))
			f |= F_OF;
		break;
	}
	case 2:   /* rcl */
	case 3: { /* rcr */
		bool cf = f & F_CF;
		unsigned k = cnt % (bits + 1);
		r = a;
		for (unsigned i = 0; i < k; i++) {
			bool out;
			if ((op & 7) == 2) {
				out = r & sb;
				r = ((r << 1) | cf) & m;
			} else {
				out = r & 1;
				r = (r >> 1) | (cf ? sb : 0);
			}
			cf = out;
		}
		f = (f & ~(F_CF | F_OF)) | (cf ? F_CF : 0);
		if ((op & 7) == 2 ? (((r & sb) != 0) != cf)
		                  : (((r & sb) != 0) != ((r & (sb >> 1)) != 0)))
			f |= F_OF;
		break;
	}
	case 4:
	case 6: /* shl/sal */
		r = cnt < bits ? (a << cnt) & m : 0;
		f = szp(r, sz) | ((cnt <= bits && ((a >> (bits - cnt)) & 1)) ? F_CF : 0);
		if (((r & sb) != 0) != ((f & F_CF) != 0))
			f |= F_OF;
		break;
	case 5: /* shr */
		r = cnt < bits ? a >> cnt : 0;
		f = szp(r, sz) | ((cnt <= bits && ((a >> (cnt - 1)) & 1)) ? F_CF : 0);
		if (a & sb)
			f |= F_OF;
		break;
	default: { /* sar */
		int64_t s = sext(a, sz);
		unsigned k = cnt < bits ? cnt : bits - 1;
		r = (uint64_t)(s >> k) & m;
		f = szp(r, sz) | (((s >> (cnt < bits ? cnt - 1 : bits - 1)) & 1) ? F_CF : 0);
	}
	}
	c->rflags = (c->rflags & ~F_ARITH) | f;
	return r;
}

/* ---- system state ---- */

/* The GDT descriptor of sel (no LDT); `size` 16 for the system
 * descriptors of long mode, whose upper half must be inside the limit too. */
static uint64_t gdt_desc(struct softcpu *c, uint16_t sel, unsigned size)
{
	uint32_t off = sel & ~7u;

	if (!(sel & ~3u) || off + size - 1 > c->gdt_limit || (sel & 4))
		raise_fault(c, VEC_GP, true, sel & ~3u);
	return sys_read(c, c->gdt_base + off, 8);
}

/* The code segment descriptor for CS = sel at privilege cpl, checked as
 * a far transfer does: a present code segment (S and the code bit), with
 * DPL = CPL, or DPL <= CPL if conforming. */
static uint64_t cs_desc(struct softcpu *c, uint16_t sel, uint8_t cpl)
{
	uint64_t d = gdt_desc(c, sel, 8);
	unsigned dpl = (d >> 45) & 3;
	bool conforming = (d >> 42) & 1;

	if (!((d >> 47) & 1) || !((d >> 44) & 1) || !((d >> 43) & 1) ||
	    (conforming ? dpl > cpl : dpl != cpl))
		raise_fault(c, VEC_GP, true, sel & ~3u);
	return d;
}

static void set_cs(struct softcpu *c, uint16_t sel, uint64_t d, uint8_t cpl)
{
	c->sel[SEG_CS] = (uint16_t)((sel & ~3u) | cpl);
	c->cs_l = (d >> 53) & 1;
	c->cs_db = (d >> 54) & 1;
	c->cpl = cpl;
}

static void load_cs(struct softcpu *c, uint16_t sel, uint8_t cpl)
{
	set_cs(c, sel, cs_desc(c, sel, cpl), cpl);
}

static inline bool canonical(uint64_t la)
{
	return (uint64_t)((int64_t)(la << 16) >> 16) == la;
}

static void load_seg(struct softcpu *c, unsigned seg, uint16_t sel)
{
	uint64_t base = 0;

	if (seg == SEG_CS)
		gp0(c);
	if (sel & ~3u) {
		uint64_t d = gdt_desc(c, sel, 8);
		base = ((d >> 16) & 0xffffff) | ((d >> 32) & 0xff000000);
	}
	c->sel[seg] = sel;
	if (seg == SEG_FS)
		c->fs_base = base;
	else if (seg == SEG_GS)
		c->gs_base = base;
}

static void write_cr(struct softcpu *c, unsigned cr, uint64_t v)
{
	switch (cr) {
	case 0:
		if ((v & CR0_PG) && !(v & CR0_PE))
			gp0(c);
		if ((v & CR0_PG) && (c->efer & EFER_LME)) {
			if (!(c->cr4 & CR4_PAE))
				gp0(c);
			c->efer |= EFER_LMA;
		} else if (!(v & CR0_PG)) {
			c->efer &= ~EFER_LMA;
		}
		c->cr0 = v | 0x10; /* ET is hard-wired */
		break;
	case 2:
		c->cr2 = v;
		break;
	case 3:
		c->cr3 = v;
		break;
	case 4:
		if ((c->efer & EFER_LMA) && !(v & CR4_PAE))
			gp0(c);
		c->cr4 = v;
		break;
	case 8:
		break; /* TPR: no APIC */
	default:
		raise_fault(c, VEC_UD, false, 0);
	}
	softcpu_flush_tlb(c);
}

static uint64_t read_cr(struct softcpu *c, unsigned cr)
{
	switch (cr) {
	case 0:
		return c->cr0;
	case 2:
		return c->cr2;
	case 3:
		return c->cr3;
	case 4:
		return c->cr4;
	case 8:
		return 0;
	default:
		raise_fault(c, VEC_UD, false, 0);
	}
}

static uint64_t host_tsc(void)
{
	return __rdtsc();
}

uint64_t softcpu_tsc(const struct softcpu *c)
{
	return host_tsc() + (uint64_t)c->tsc_offset;
}

static bool rdmsr(struct softcpu *c, uint32_t msr, uint64_t *v)
{
	switch (msr) {
	case MSR_TSC:
		*v = softcpu_tsc(c);
		return true;
	case MSR_EFER:
		*v = c->efer;
		return true;
	case MSR_FS_BASE:
		*v = c->fs_base;
		return true;
	case MSR_GS_BASE:
		*v = c->gs_base;
		return true;
	case MSR_KERNEL_GS_BASE:
		*v = c->kernel_gs_base;
		return true;
	}
	return false;
}

static bool wrmsr(struct softcpu *c, uint32_t msr, uint64_t v)
{
	switch (msr) {
	case MSR_TSC:
		c->tsc_offset = (int64_t)(v - host_tsc());
		return true;
	case MSR_EFER:
		if (v & ~(EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE))
			return false;
		if ((c->cr0 & CR0_PG) && ((v ^ c->efer) & EFER_LME))
			return false; /* LME cannot change while paging is on */
		c->efer = (v & ~EFER_LMA) | (c->efer & EFER_LMA);
		softcpu_flush_tlb(c);
		return true;
	case MSR_FS_BASE:
		c->fs_base = v;
		return true;
	case MSR_GS_BASE:
		c->gs_base = v;
		return true;
	case MSR_KERNEL_GS_BASE:
		c->kernel_gs_base = v;
		return true;
	}
	return false;
}

static void do_cpuid(struct softcpu *c)
{
	uint32_t fn = (uint32_t)c->r[RAX], idx = (uint32_t)c->r[RCX];
	const struct cpuid_leaf *hit = NULL;

	for (unsigned i = 0; i < c->ncpuid && i < SOFTCPU_MAX_CPUID; i++) {
		if (c->cpuid[i].function != fn)
			continue;
		if (c->cpuid[i].index == idx) {
			hit = &c->cpuid[i];
			break;
		}
		if (!hit && c->cpuid[i].index == 0)
			hit = &c->cpuid[i]; /* leaves without subleaves */
	}
	if (hit && hit->index != idx && (fn == 4 || fn == 7 || fn == 0xb || fn == 0xd))
		hit = NULL; /* a subleaf that does not exist reads as zero */
	c->r[RAX] = hit ? hit->eax : 0;
	c->r[RBX] = hit ? hit->ebx : 0;
	c->r[RCX] = hit ? hit->ecx : 0;
	c->r[RDX] = hit ? hit->edx : 0;
}

static bool io_allowed(const struct softcpu *c)
{
	return c->cpl <= ((c->rflags & F_IOPL) >> 12);
}

static void port_io(struct softcpu *c, uint16_t port, bool out, unsigned sz)
{
	uint8_t data[4] = { 0 };

	if (!io_allowed(c))
		gp0(c);
	c->io_exits++;
	if (out) {
		uint64_t v = c->r[RAX];
		memcpy(data, &v, sz);
		c->io.pio(c->io.arg, port, true, data, sz);
	} else {
		uint32_t v = 0;
		c->io.pio(c->io.arg, port, false, data, sz);
		memcpy(&v, data, sz);
		if (sz == 4)
			c->r[RAX] = v;
		else
			c->r[RAX] = (c->r[RAX] & ~mask_of(sz)) | v;
	}
}

/* IRETQ (64-bit) and IRETD (32-bit, same privilege only). Everything is
 * read and checked before anything changes (RSP included). */
static void do_iret(struct softcpu *c, const struct insn *in)
{
	unsigned sz = in->m64 ? (in->rex & 8 ? 8 : 4) : 4;
	uint64_t sm = stack_mask(c), sp = c->r[RSP];
	uint64_t rip = mem_read(c, sp & sm, sz);
	uint16_t cs = (uint16_t)mem_read(c, (sp + sz) & sm, sz);
	uint64_t fl = mem_read(c, (sp + 2 * sz) & sm, sz);
	uint8_t new_cpl = cs & 3;
	bool pop_ss = in->m64 || new_cpl != c->cpl;
	uint64_t rsp = (sp + 3 * sz) & sm;
	uint16_t ss = c->sel[SEG_SS];

	if (new_cpl < c->cpl)
		gp0(c);
	if (pop_ss) {
		if (!in->m64)
			unsupported(c, in, "IRET to another privilege level outside long mode");
		rsp = mem_read(c, (sp + 3 * sz) & sm, sz);
		ss = (uint16_t)mem_read(c, (sp + 4 * sz) & sm, sz);
	}
	uint64_t d = cs_desc(c, cs, new_cpl);
	if (in->m64 && ((d >> 53) & 1) && !canonical(rip))
		gp0(c);
	uint64_t changeable = F_ARITH | F_TF | F_DF | F_NT | F_RF | F_AC | F_ID;
	if (c->cpl <= ((c->rflags & F_IOPL) >> 12))
		changeable |= F_IF;
	if (c->cpl == 0)
		changeable |= F_IOPL;
	set_cs(c, cs, d, new_cpl);
	c->rflags = (c->rflags & ~changeable) | (fl & changeable) | 2;
	c->r[RSP] = rsp;
	c->sel[SEG_SS] = ss;
	c->rip = rip;
}

/* Delivers an exception or software interrupt through the 64-bit IDT
 * (interrupt and trap gates; stack switch to TSS.RSP0 or an IST stack).
 * ilen: the length of an INT n / INT3 (a trap: the frame gets the RIP
 * after it, and the gate's DPL must allow the CPL), 0 for a fault.
 * The IDT, GDT and TSS are read as implicit supervisor accesses. */
static void deliver(struct softcpu *c, uint8_t vec, bool has_err, uint32_t err, unsigned ilen)
{
	if (!(c->efer & EFER_LMA)) {
		snprintf(c->why, sizeof(c->why),
		         "triple fault: exception %u at rip 0x%llx before long mode (no IDT)", vec,
		         (unsigned long long)c->rip);
		leave(c, SOFTCPU_SHUTDOWN);
	}
	if ((uint32_t)vec * 16 + 15 > c->idt_limit) {
		snprintf(c->why, sizeof(c->why),
		         "triple fault: exception %u at rip 0x%llx beyond the IDT limit", vec,
		         (unsigned long long)c->rip);
		leave(c, SOFTCPU_SHUTDOWN);
	}
	uint8_t old_cpl = c->cpl;
	uint64_t old_rsp = c->r[RSP], old_fl = c->rflags;
	uint16_t old_cs = c->sel[SEG_CS], old_ss = c->sel[SEG_SS];

	uint64_t lo = sys_read(c, c->idt_base + vec * 16u, 8);
	uint64_t hi = sys_read(c, c->idt_base + vec * 16u + 8, 8);
	unsigned type = (lo >> 40) & 0xf, ist = (lo >> 32) & 7;
	if (!((lo >> 47) & 1) || (type != 0xe && type != 0xf)) {
		snprintf(c->why, sizeof(c->why),
		         "triple fault: exception %u at rip 0x%llx has no present IDT gate", vec,
		         (unsigned long long)c->rip);
		leave(c, SOFTCPU_SHUTDOWN);
	}
	if (ilen && ((lo >> 45) & 3) < old_cpl) {
		/* INT n through a gate of higher privilege: #GP(vector) instead,
		 * a fault at the INT */
		deliver(c, VEC_GP, true, vec * 8u + 2, 0);
		return;
	}
	uint16_t sel = (uint16_t)(lo >> 16);
	uint64_t target = (lo & 0xffff) | ((lo >> 32) & 0xffff0000ull) | (hi << 32);
	uint64_t d = gdt_desc(c, sel, 8);
	uint8_t new_cpl = (uint8_t)((d >> 45) & 3);
	if (!((d >> 47) & 1) || !((d >> 44) & 1) || !((d >> 43) & 1) || !((d >> 53) & 1) ||
	    new_cpl > old_cpl)
		raise_fault(c, VEC_GP, true, sel & ~3u); /* a present 64-bit code segment */
	if (!canonical(target))
		gp0(c);
	uint64_t rsp = old_rsp;
	if (new_cpl < old_cpl) {
		if (4 + new_cpl * 8u + 7 > c->tr_limit)
			raise_fault(c, 10 /* #TS */, true, c->tr_sel & ~3u);
		rsp = sys_read(c, c->tr_base + 4 + new_cpl * 8u, 8);
	}
	if (ist) {
		if (0x24 + (ist - 1) * 8u + 7 > c->tr_limit)
			raise_fault(c, 10 /* #TS */, true, c->tr_sel & ~3u);
		rsp = sys_read(c, c->tr_base + 0x24 + (ist - 1) * 8u, 8);
	}
	rsp &= ~0xfull;
	uint64_t frame[6] = { old_ss, old_rsp, old_fl, old_cs, c->rip + ilen, err };
	unsigned nf = has_err ? 6 : 5;
	c->cpl = new_cpl; /* the frame is written with the handler's privilege */
	for (unsigned i = 0; i < nf; i++)
		mem_write(c, rsp - 8 * (i + 1), 8, frame[i]);
	set_cs(c, sel, d, new_cpl);
	c->r[RSP] = rsp - 8 * nf;
	if (new_cpl < old_cpl)
		c->sel[SEG_SS] = new_cpl;
	c->rflags &= ~(F_TF | F_NT | F_RF);
	if (type == 0xe)
		c->rflags &= ~F_IF;
	c->rip = target;
}

/* ---- string instructions ---- */

/* the mask of an address size, and a write of RCX/RSI/RDI at that size:
 * 32 bits zero-extend (ECX, not RCX, counts with a 0x67 prefix), 16 keep
 * the rest */
static inline uint64_t amask(unsigned asz)
{
	return asz == 8 ? ~0ull : asz == 4 ? 0xffffffffull : 0xffffull;
}

static inline void wr_areg(struct softcpu *c, unsigned r, unsigned asz, uint64_t v)
{
	c->r[r] = asz == 8 ? v : asz == 4 ? (uint32_t)v : (c->r[r] & ~0xffffull) | (v & 0xffff);
}

/* With a REP prefix each iteration counts as an instruction of the budget,
 * and like the CPU (where a repeated string instruction is interruptible)
 * it stops between iterations when the budget runs out or *stop is set,
 * RIP left on the instruction and RCX/RSI/RDI where they got: the next
 * step() continues it. A guest cannot hold the vCPU thread with a huge
 * RCX over memory that never faults. */
static void string_op(struct softcpu *c, struct insn *in, uint8_t op)
{
	unsigned sz = (op & 1) ? in->osz : 1, asz = in->asz;
	uint64_t am = amask(asz);
	int64_t step = (c->rflags & F_DF) ? -(int64_t)sz : (int64_t)sz;
	uint64_t src_base = in->seg == SEG_FS ? c->fs_base : in->seg == SEG_GS ? c->gs_base : 0;

	for (bool first = true;; first = false) {
		if (in->rep) {
			if (!(c->r[RCX] & am))
				break;
			if (!first) {
				if (c->insns + 1 >= c->insn_end || *c->stop) {
					in->jumped = true; /* c->rip is in->start */
					return;
				}
				c->insns++;
			}
		}
		switch (op & ~1) {
		case 0xa4: /* movs */
			mem_write(c, c->r[RDI] & am, sz,
			          mem_read(c, src_base + (c->r[RSI] & am), sz));
			wr_areg(c, RSI, asz, c->r[RSI] + (uint64_t)step);
			wr_areg(c, RDI, asz, c->r[RDI] + (uint64_t)step);
			break;
		case 0xaa: /* stos */
			mem_write(c, c->r[RDI] & am, sz, c->r[RAX]);
			wr_areg(c, RDI, asz, c->r[RDI] + (uint64_t)step);
			break;
		case 0xac: /* lods */
			wr_reg(c, in, RAX, sz, mem_read(c, src_base + (c->r[RSI] & am), sz));
			wr_areg(c, RSI, asz, c->r[RSI] + (uint64_t)step);
			break;
		case 0xa6: { /* cmps */
			uint64_t a = mem_read(c, src_base + (c->r[RSI] & am), sz);
			uint64_t b = mem_read(c, c->r[RDI] & am, sz);
			alu(c, 7, a, b, sz);
			wr_areg(c, RSI, asz, c->r[RSI] + (uint64_t)step);
			wr_areg(c, RDI, asz, c->r[RDI] + (uint64_t)step);
			break;
		}
		default: /* 0xae scas */
			alu(c, 7, c->r[RAX], mem_read(c, c->r[RDI] & am, sz), sz);
			wr_areg(c, RDI, asz, c->r[RDI] + (uint64_t)step);
		}
		if (!in->rep)
			break;
		wr_areg(c, RCX, asz, c->r[RCX] - 1);
		if ((op & ~1) == 0xa6 || (op & ~1) == 0xae) {
			bool zf = c->rflags & F_ZF;
			if ((in->rep == 0xf3 && !zf) || (in->rep == 0xf2 && zf))
				break;
		}
	}
}

/* ---- group 3: test not neg mul imul div idiv ---- */

static void group3(struct softcpu *c, struct insn *in, unsigned sz)
{
	uint64_t m = mask_of(sz);

	switch (in->reg & 7) {
	case 0:
	case 1: {
		uint64_t imm = sz == 1 ? getb(c, in) : getiz(c, in);
		alu(c, 4, rd_e(c, in, sz), imm, sz);
		return;
	}
	case 2:
		wr_e(c, in, sz, ~rd_e_rmw(c, in, sz) & m);
		return;
	case 3: {
		uint64_t a = rd_e_rmw(c, in, sz);
		uint64_t r = alu(c, 5, 0, a, sz);
		wr_e(c, in, sz, r);
		return;
	}
	}
	uint64_t src = rd_e(c, in, sz);
	unsigned bits = sz * 8;
	unsigned __int128 a;
	if (sz == 1)
		a = c->r[RAX] & 0xffff;
	else
		a = ((unsigned __int128)(c->r[RDX] & m) << bits) | (c->r[RAX] & m);
	uint64_t lo, hi;
	bool ovf = false;
	switch (in->reg & 7) {
	case 4: { /* mul */
		unsigned __int128 p = (unsigned __int128)(c->r[RAX] & m) * src;
		lo = (uint64_t)p & m;
		hi = (uint64_t)(p >> bits) & m;
		ovf = hi != 0;
		break;
	}
	case 5: { /* imul */
		__int128 p = (__int128)sext(c->r[RAX], sz) * sext(src, sz);
		lo = (uint64_t)p & m;
		hi = (uint64_t)(p >> bits) & m;
		ovf = p != (__int128)sext(lo, sz);
		break;
	}
	case 6: { /* div */
		if (!src)
			raise_fault(c, VEC_DE, false, 0);
		unsigned __int128 q = a / src;
		if (q > m)
			raise_fault(c, VEC_DE, false, 0);
		lo = (uint64_t)q;
		hi = (uint64_t)(a % src);
		break;
	}
	default: { /* idiv */
		if (!src)
			raise_fault(c, VEC_DE, false, 0);
		__int128 sa = (__int128)(a << (128 - 2 * bits)) >> (128 - 2 * bits);
		__int128 sd = sext(src, sz);
		if (sd == -1 && sa == (__int128)((unsigned __int128)1 << 127))
			raise_fault(c, VEC_DE, false, 0);
		__int128 q = sa / sd, r = sa % sd;
		if (q > (__int128)(m >> 1) || q < -(__int128)(m >> 1) - 1)
			raise_fault(c, VEC_DE, false, 0);
		lo = (uint64_t)q & m;
		hi = (uint64_t)r & m;
		break;
	}
	}
	if ((in->reg & 7) < 6) /* mul, imul: CF = OF = the high half matters */
		c->rflags = (c->rflags & ~(F_CF | F_OF)) | (ovf ? F_CF | F_OF : 0);
	if (sz == 1) {
		wr_reg(c, in, RAX, 2, (hi << 8) | lo);
	} else {
		wr_reg(c, in, RAX, sz, lo);
		wr_reg(c, in, RDX, sz, hi);
	}
}

static uint64_t imul2(struct softcpu *c, uint64_t a, uint64_t b, unsigned sz)
{
	__int128 p = (__int128)sext(a, sz) * sext(b, sz);
	uint64_t r = (uint64_t)p & mask_of(sz);
	bool ovf = p != (__int128)sext(r, sz);

	c->rflags = (c->rflags & ~(F_CF | F_OF)) | (ovf ? F_CF | F_OF : 0);
	return r;
}

static void need_cpl0(struct softcpu *c)
{
	if (c->cpl != 0)
		gp0(c);
}

/* ---- the two-byte opcode map ---- */

static void exec_0f(struct softcpu *c, struct insn *in)
{
	uint8_t op = getb(c, in);
	unsigned sz = in->osz;

	switch (op) {
	case 0x00: /* group 6: only LTR */
		modrm(c, in);
		if ((in->reg & 7) != 3)
			unsupported(c, in, "instruction");
		need_cpl0(c);
		{
			uint16_t sel = (uint16_t)rd_e(c, in, 2);
			bool lma = c->efer & EFER_LMA;
			uint64_t d = gdt_desc(c, sel, lma ? 16 : 8);
			/* a present, available TSS (system descriptor type 9) */
			if (((d >> 40) & 0x9f) != 0x89)
				raise_fault(c, VEC_GP, true, sel & ~3u);
			uint64_t base = ((d >> 16) & 0xffffff) | ((d >> 32) & 0xff000000);
			if (lma)
				base |= sys_read(c, c->gdt_base + (sel & ~7u) + 8, 4) << 32;
			c->tr_sel = sel;
			c->tr_base = base;
			c->tr_limit = (uint32_t)((d & 0xffff) | ((d >> 32) & 0xf0000));
		}
		break;
	case 0x01: { /* group 7 */
		/* a peek at the ModRM byte (modrm() reads it again), fetched if
		 * it is on the next page */
		uint8_t m = getb(c, in);
		in->pos--;
		if (m == 0xf9) { /* rdtscp */
			in->pos++;
			uint64_t t = softcpu_tsc(c);
			c->r[RAX] = (uint32_t)t;
			c->r[RDX] = t >> 32;
			c->r[RCX] = 0;
			break;
		}
		modrm(c, in);
		if (!in->mem)
			unsupported(c, in, "instruction");
		need_cpl0(c);
		uint64_t a = ea_of(c, in);
		switch (in->reg & 7) {
		case 2:
		case 3: {
			uint32_t limit = (uint32_t)mem_read(c, a, 2);
			uint64_t base = mem_read(c, a + 2, in->m64 ? 8 : 4);
			if ((in->reg & 7) == 2) {
				c->gdt_base = base;
				c->gdt_limit = limit;
			} else {
				c->idt_base = base;
				c->idt_limit = limit;
			}
			break;
		}
		case 7: /* invlpg */
			softcpu_flush_tlb(c);
			break;
		default:
			unsupported(c, in, "instruction");
		}
		break;
	}
	case 0x0b:
		raise_fault(c, VEC_UD, false, 0);
	case 0x18 ... 0x1f: /* prefetch, hint nops, endbr64 */
		modrm(c, in);
		break;
	case 0x20:
	case 0x22: {
		modrm(c, in); /* always register form; mod ignored */
		need_cpl0(c);
		unsigned r = in->rm;
		if (op == 0x20)
			c->r[r] = read_cr(c, in->reg) & (in->m64 ? ~0ull : 0xffffffffull);
		else
			write_cr(c, in->reg, in->m64 ? c->r[r] : (uint32_t)c->r[r]);
		break;
	}
	case 0x30:   /* wrmsr */
	case 0x32: { /* rdmsr */
		need_cpl0(c);
		uint32_t msr = (uint32_t)c->r[RCX];
		if (op == 0x30) {
			if (!wrmsr(c, msr, (c->r[RDX] << 32) | (uint32_t)c->r[RAX]))
				gp0(c);
		} else {
			uint64_t v;
			if (!rdmsr(c, msr, &v))
				gp0(c);
			c->r[RAX] = (uint32_t)v;
			c->r[RDX] = v >> 32;
		}
		break;
	}
	case 0x31: { /* rdtsc */
		uint64_t t = softcpu_tsc(c);
		c->r[RAX] = (uint32_t)t;
		c->r[RDX] = t >> 32;
		break;
	}
	case 0x40 ... 0x4f: { /* cmovcc */
		modrm(c, in);
		uint64_t v = rd_e(c, in, sz);
		if (cond(c, op & 0xf))
			wr_reg(c, in, in->reg, sz, v);
		else if (sz == 4)
			c->r[in->reg] = (uint32_t)c->r[in->reg];
		break;
	}
	case 0x80 ... 0x8f: { /* jcc rel32 */
		int64_t d = (int32_t)getimm(c, in, 4);
		if (cond(c, op & 0xf)) {
			c->rip = in->start + in->pos + (uint64_t)d;
			in->jumped = true;
		}
		break;
	}
	case 0x90 ... 0x9f: /* setcc */
		modrm(c, in);
		wr_e(c, in, 1, cond(c, op & 0xf));
		break;
	case 0xa2:
		do_cpuid(c);
		break;
	case 0xa3:
	case 0xab:
	case 0xb3:
	case 0xbb:
	case 0xba: { /* bt bts btr btc */
		modrm(c, in);
		unsigned bits = sz * 8, kind;
		uint64_t off;
		if (op == 0xba) {
			if ((in->reg & 7) < 4)
				unsupported(c, in, "instruction");
			kind = in->reg & 3;
			off = getb(c, in) & (bits - 1);
		} else {
			kind = op == 0xa3 ? 0 : op == 0xab ? 1 : op == 0xb3 ? 2 : 3;
			off = rd_reg(c, in, in->reg, sz);
		}
		uint64_t v, a = 0;
		if (in->mem) {
			int64_t so = op == 0xba ? (int64_t)off : sext(off, sz);
			a = ea_of(c, in) + (uint64_t)((so >> (sz == 8 ? 6 : sz == 4 ? 5 : 4)) * sz);
			v = kind ? mem_read_rmw(c, a, sz) : mem_read(c, a, sz);
		} else {
			v = rd_reg(c, in, in->rm, sz);
		}
		unsigned bit = (unsigned)(off & (bits - 1));
		c->rflags = (c->rflags & ~F_CF) | ((v >> bit) & 1);
		if (kind) {
			v = kind == 1   ? v | (1ull << bit)
			    : kind == 2 ? v & ~(1ull << bit)
			                : v ^ (1ull << bit);
			if (in->mem)
				mem_write(c, a, sz, v);
			else
				wr_reg(c, in, in->rm, sz, v);
		}
		break;
	}
	case 0xaf:
		modrm(c, in);
		wr_reg(c, in, in->reg, sz,
		       imul2(c, rd_reg(c, in, in->reg, sz), rd_e(c, in, sz), sz));
		break;
	case 0xb0:
	case 0xb1: { /* cmpxchg */
		unsigned s = op == 0xb0 ? 1 : sz;
		modrm(c, in);
		uint64_t v = rd_e_rmw(c, in, s);
		alu(c, 7, c->r[RAX], v, s);
		if (c->rflags & F_ZF)
			wr_e(c, in, s, rd_reg(c, in, in->reg, s));
		else
			wr_reg(c, in, RAX, s, v);
		break;
	}
	case 0xb6:
	case 0xb7:
	case 0xbe:
	case 0xbf: { /* movzx movsx */
		unsigned s = (op & 1) ? 2 : 1;
		modrm(c, in);
		uint64_t v = rd_e(c, in, s);
		if (op >= 0xbe)
			v = (uint64_t)sext(v, s);
		wr_reg(c, in, in->reg, sz, v);
		break;
	}
	case 0xbc:
	case 0xbd: { /* bsf bsr; tzcnt lzcnt with F3 */
		modrm(c, in);
		uint64_t v = rd_e(c, in, sz);
		unsigned bits = sz * 8;
		if (in->rep == 0xf3) {
			unsigned n = v ? (op == 0xbc ? (unsigned)__builtin_ctzll(v)
			                             : (unsigned)__builtin_clzll(v) - (64 - bits))
			               : bits;
			wr_reg(c, in, in->reg, sz, n);
			c->rflags = (c->rflags & ~(F_CF | F_ZF)) | (v ? 0 : F_CF) | (n ? 0 : F_ZF);
		} else if (!v) {
			c->rflags |= F_ZF;
		} else {
			c->rflags &= ~F_ZF;
			wr_reg(c, in, in->reg, sz,
			       op == 0xbc ? (unsigned)__builtin_ctzll(v)
			                  : 63u - (unsigned)__builtin_clzll(v));
		}
		break;
	}
	case 0xc0:
	case 0xc1: { /* xadd */
		unsigned s = op == 0xc0 ? 1 : sz;
		modrm(c, in);
		uint64_t d = rd_e_rmw(c, in, s), r = rd_reg(c, in, in->reg, s);
		uint64_t sum = alu(c, 0, d, r, s);
		if (in->mem) {
			wr_e(c, in, s, sum);
			wr_reg(c, in, in->reg, s, d);
		} else { /* SRC := DEST, then DEST := sum (xadd rax, rax: the sum) */
			wr_reg(c, in, in->reg, s, d);
			wr_reg(c, in, in->rm, s, sum);
		}
		break;
	}
	case 0xc8 ... 0xcf: { /* bswap */
		unsigned r = (op & 7) | ((in->rex & 1) << 3);
		if (sz == 8)
			c->r[r] = __builtin_bswap64(c->r[r]);
		else
			c->r[r] = __builtin_bswap32((uint32_t)c->r[r]);
		break;
	}
	default:
		unsupported(c, in, "instruction");
	}
}

/* ---- one instruction ---- */

/* not inlined: softcpu_run's setjmp must not see its locals */
static __attribute__((noinline)) void step(struct softcpu *c)
{
	struct insn in;
	uint8_t op;

	in.start = c->rip;
	in.pos = in.n = 0;
	in.rex = in.rep = 0;
	in.o16 = in.a32 = in.riprel = in.jumped = false;
	in.seg = SEG_NONE;
	in.m64 = (c->efer & EFER_LMA) && c->cs_l;
	if (!in.m64) {
		in.start &= 0xffffffffull;
		if (!c->cs_db)
			unsupported(c, &in, "16-bit code");
	}
	{
		struct softcpu_tlb *t = lookup(c, in.start, ACC_X);
		unsigned off = (unsigned)(in.start & 0xfff), take = 4096 - off;
		if (!t->host)
			unsupported(c, &in, "instruction fetch from MMIO");
		if (take > 15)
			take = 15;
		memcpy(in.b, t->host + off, take);
		in.n = take;
	}
	if (__builtin_expect(c->trace != 0, 0)) {
		c->trace--;
		fprintf(stderr,
		        "softcpu: %llx cpl%u rax=%llx rcx=%llx rdx=%llx rsp=%llx: %02x %02x %02x "
		        "%02x\n",
		        (unsigned long long)in.start, c->cpl, (unsigned long long)c->r[RAX],
		        (unsigned long long)c->r[RCX], (unsigned long long)c->r[RDX],
		        (unsigned long long)c->r[RSP], in.b[0], in.b[1], in.b[2], in.b[3]);
	}
	/* prefixes; a REX counts only right before the opcode (the last one
	 * wins, a legacy prefix after it cancels it) */
	for (;;) {
		op = getb(c, &in);
		switch (op) {
		case 0x40 ... 0x4f:
			if (!in.m64)
				break; /* inc/dec outside 64-bit mode */
			in.rex = op;
			continue;
		case 0x66:
			in.o16 = true;
			in.rex = 0;
			continue;
		case 0x67:
			in.a32 = true;
			in.rex = 0;
			continue;
		case 0xf2:
		case 0xf3:
			in.rep = op;
			in.rex = 0;
			continue;
		case 0xf0: /* lock: one vCPU, every access is atomic already */
		case 0x26:
		case 0x2e:
		case 0x36:
		case 0x3e:
			in.rex = 0;
			continue;
		case 0x64:
			in.seg = SEG_FS;
			in.rex = 0;
			continue;
		case 0x65:
			in.seg = SEG_GS;
			in.rex = 0;
			continue;
		}
		break;
	}
	in.osz = (in.rex & 8) ? 8 : in.o16 ? 2 : 4;
	in.asz = in.m64 ? (in.a32 ? 4 : 8) : (in.a32 ? 2 : 4);
	unsigned sz = in.osz;
	uint64_t next;

	c->rip = in.start; /* branches below set it; others advance at the end */
	switch (op) {
	case 0x00 ... 0x05:
	case 0x08 ... 0x0d:
	case 0x10 ... 0x15:
	case 0x18 ... 0x1d:
	case 0x20 ... 0x25:
	case 0x28 ... 0x2d:
	case 0x30 ... 0x35:
	case 0x38 ... 0x3d: {
		unsigned alu_op = op >> 3, form = op & 7, s = (form & 1) ? sz : 1;
		if (form < 4) {
			modrm(c, &in);
			if (form < 2) { /* E, G */
				uint64_t a = alu_op != 7 ? rd_e_rmw(c, &in, s) : rd_e(c, &in, s);
				uint64_t r = alu(c, alu_op, a, rd_reg(c, &in, in.reg, s), s);
				if (alu_op != 7)
					wr_e(c, &in, s, r);
			} else { /* G, E */
				uint64_t r = alu(c, alu_op, rd_reg(c, &in, in.reg, s),
				                 rd_e(c, &in, s), s);
				if (alu_op != 7)
					wr_reg(c, &in, in.reg, s, r);
			}
		} else {
			uint64_t imm = s == 1 ? getb(c, &in) : getiz(c, &in);
			uint64_t r = alu(c, alu_op, c->r[RAX], imm, s);
			if (alu_op != 7)
				wr_reg(c, &in, RAX, s, r);
		}
		break;
	}
	case 0x40 ... 0x4f: { /* inc/dec r32 (32-bit mode only; REX in 64-bit) */
		unsigned r = op & 7;
		uint64_t cf = c->rflags & F_CF;
		uint64_t v = alu(c, op < 0x48 ? 0 : 5, c->r[r], 1, sz);
		c->rflags = (c->rflags & ~F_CF) | cf;
		wr_reg(c, &in, r, sz, v);
		break;
	}
	case 0x50 ... 0x57: {
		unsigned r = (op & 7) | ((in.rex & 1) << 3);
		push(c, c->r[r], in.m64 ? (in.o16 ? 2 : 8) : sz);
		break;
	}
	case 0x58 ... 0x5f: {
		unsigned r = (op & 7) | ((in.rex & 1) << 3), s = in.m64 ? (in.o16 ? 2 : 8) : sz;
		wr_reg(c, &in, r, s, pop(c, s));
		break;
	}
	case 0x63: /* movsxd */
		modrm(c, &in);
		if (sz == 8)
			c->r[in.reg] = (uint64_t)sext(rd_e(c, &in, 4), 4);
		else
			wr_reg(c, &in, in.reg, sz, rd_e(c, &in, sz));
		break;
	case 0x68:
		push(c, getiz(c, &in), in.m64 ? (in.o16 ? 2 : 8) : sz);
		break;
	case 0x6a:
		push(c, getib_sx(c, &in), in.m64 ? (in.o16 ? 2 : 8) : sz);
		break;
	case 0x69:
	case 0x6b: {
		modrm(c, &in);
		uint64_t imm = op == 0x69 ? getiz(c, &in) : getib_sx(c, &in);
		wr_reg(c, &in, in.reg, sz, imul2(c, rd_e(c, &in, sz), imm, sz));
		break;
	}
	case 0x70 ... 0x7f: {
		int64_t d = (int8_t)getb(c, &in);
		if (cond(c, op & 0xf)) {
			c->rip = in.start + in.pos + (uint64_t)d;
			in.jumped = true;
		}
		break;
	}
	case 0x80:
	case 0x81:
	case 0x83: {
		unsigned s = op == 0x80 ? 1 : sz;
		modrm(c, &in);
		uint64_t imm = op == 0x81   ? getiz(c, &in)
		               : op == 0x83 ? getib_sx(c, &in)
		                            : getb(c, &in);
		uint64_t a = (in.reg & 7) != 7 ? rd_e_rmw(c, &in, s) : rd_e(c, &in, s);
		uint64_t r = alu(c, in.reg & 7, a, imm, s);
		if ((in.reg & 7) != 7)
			wr_e(c, &in, s, r);
		break;
	}
	case 0x84:
	case 0x85: {
		unsigned s = op == 0x84 ? 1 : sz;
		modrm(c, &in);
		alu(c, 4, rd_e(c, &in, s), rd_reg(c, &in, in.reg, s), s);
		break;
	}
	case 0x86:
	case 0x87: {
		unsigned s = op == 0x86 ? 1 : sz;
		modrm(c, &in);
		uint64_t a = rd_e_rmw(c, &in, s), b = rd_reg(c, &in, in.reg, s);
		wr_e(c, &in, s, b);
		wr_reg(c, &in, in.reg, s, a);
		break;
	}
	case 0x88:
	case 0x89:
		modrm(c, &in);
		wr_e(c, &in, op == 0x88 ? 1 : sz, rd_reg(c, &in, in.reg, op == 0x88 ? 1 : sz));
		break;
	case 0x8a:
	case 0x8b:
		modrm(c, &in);
		wr_reg(c, &in, in.reg, op == 0x8a ? 1 : sz, rd_e(c, &in, op == 0x8a ? 1 : sz));
		break;
	case 0x8c: /* mov Ev, Sreg */
		modrm(c, &in);
		if ((in.reg & 7) > 5)
			raise_fault(c, VEC_UD, false, 0);
		wr_e(c, &in, in.mem ? 2 : sz, c->sel[in.reg & 7]);
		break;
	case 0x8d:
		modrm(c, &in);
		if (!in.mem)
			raise_fault(c, VEC_UD, false, 0);
		{
			uint64_t a = in.ea + (in.riprel ? in.start + in.pos : 0);
			if (in.asz == 4)
				a = (uint32_t)a;
			wr_reg(c, &in, in.reg, sz, a);
		}
		break;
	case 0x8e: /* mov Sreg, Ew */
		modrm(c, &in);
		if ((in.reg & 7) > 5)
			raise_fault(c, VEC_UD, false, 0);
		load_seg(c, in.reg & 7, (uint16_t)rd_e(c, &in, 2));
		break;
	case 0x8f: {
		unsigned s = in.m64 ? (in.o16 ? 2 : 8) : sz, at = in.pos;
		modrm(c, &in);
		if ((in.reg & 7) != 0)
			unsupported(c, &in, "instruction");
		/* an address based on RSP counts from RSP after the pop */
		if (in.mem && (in.b[at] & 7) == 4 && (in.b[at + 1] & 7) == 4 && !(in.rex & 1))
			in.ea += s;
		uint64_t v = mem_read(c, c->r[RSP] & stack_mask(c), s);
		wr_e(c, &in, s, v); /* faults before RSP moves */
		c->r[RSP] = (c->r[RSP] + s) & stack_mask(c);
		break;
	}
	case 0x90 ... 0x97: {
		unsigned r = (op & 7) | ((in.rex & 1) << 3);
		if (r == 0) { /* nop; pause (F3 90): every 32nd leaves the loop */
			if (in.rep == 0xf3 && ++c->pause_run >= SOFTCPU_PAUSE_EXIT) {
				c->pause_run = 0;
				c->pending_exit = SOFTCPU_PAUSE;
				c->exit_now = true;
			}
			break;
		}
		uint64_t a = rd_reg(c, &in, r, sz), b = rd_reg(c, &in, RAX, sz);
		wr_reg(c, &in, r, sz, b);
		wr_reg(c, &in, RAX, sz, a);
		break;
	}
	case 0x98: /* cbw cwde cdqe */
		wr_reg(c, &in, RAX, sz, (uint64_t)sext(c->r[RAX], sz / 2));
		break;
	case 0x99: /* cwd cdq cqo */
		wr_reg(c, &in, RDX, sz, (c->r[RAX] & sign_of(sz)) ? ~0ull : 0);
		break;
	case 0x9c:
		push(c, c->rflags & ~(F_RF), in.m64 ? (in.o16 ? 2 : 8) : sz);
		break;
	case 0x9d: {
		uint64_t fl = pop(c, in.m64 ? (in.o16 ? 2 : 8) : sz);
		uint64_t changeable = F_ARITH | F_TF | F_DF | F_NT | F_AC | F_ID;
		if (c->cpl <= ((c->rflags & F_IOPL) >> 12))
			changeable |= F_IF;
		if (c->cpl == 0)
			changeable |= F_IOPL;
		c->rflags = (c->rflags & ~changeable) | (fl & changeable) | 2;
		break;
	}
	case 0xa4 ... 0xa7:
	case 0xaa ... 0xaf:
		string_op(c, &in, op);
		break;
	case 0xa8:
		alu(c, 4, c->r[RAX], getb(c, &in), 1);
		break;
	case 0xa9:
		alu(c, 4, c->r[RAX], getiz(c, &in), sz);
		break;
	case 0xb0 ... 0xb7:
		wr_reg(c, &in, (op & 7) | ((in.rex & 1) << 3), 1, getb(c, &in));
		break;
	case 0xb8 ... 0xbf:
		wr_reg(c, &in, (op & 7) | ((in.rex & 1) << 3), sz, getimm(c, &in, sz));
		break;
	case 0xc0:
	case 0xc1:
	case 0xd0:
	case 0xd1:
	case 0xd2:
	case 0xd3: {
		unsigned s = (op & 1) ? sz : 1, cnt;
		modrm(c, &in);
		if (op <= 0xc1)
			cnt = getb(c, &in);
		else if (op <= 0xd1)
			cnt = 1;
		else
			cnt = (unsigned)(c->r[RCX] & 0xff);
		uint64_t v = rd_e_rmw(c, &in, s);
		wr_e(c, &in, s, shift(c, in.reg & 7, v, cnt, s));
		break;
	}
	case 0xc2:
	case 0xc3: {
		uint16_t extra = op == 0xc2 ? (uint16_t)getimm(c, &in, 2) : 0;
		uint64_t to = pop(c, in.m64 ? 8 : 4);
		c->r[RSP] = (c->r[RSP] + extra) & stack_mask(c);
		c->rip = to;
		goto done_branch;
	}
	case 0xc6:
	case 0xc7: {
		unsigned s = op == 0xc6 ? 1 : sz;
		modrm(c, &in);
		if ((in.reg & 7) != 0)
			unsupported(c, &in, "instruction");
		uint64_t imm = s == 1 ? getb(c, &in) : getiz(c, &in);
		wr_e(c, &in, s, imm);
		break;
	}
	case 0xc9: { /* leave */
		unsigned s = in.m64 ? 8 : 4;
		uint64_t v = mem_read(c, c->r[RBP] & stack_mask(c), s);
		c->r[RSP] = (c->r[RBP] + s) & stack_mask(c);
		wr_reg(c, &in, RBP, s, v);
		break;
	}
	case 0xcc:   /* int3 */
	case 0xcd: { /* int n: traps, delivered by softcpu_run */
		uint8_t vec = op == 0xcc ? VEC_BP : getb(c, &in);
		c->fault_vec = vec;
		c->fault_has_err = false;
		c->fault_err = 0;
		c->fault_ilen = (uint8_t)in.pos;
		longjmp(c->fault_jmp, JMP_FAULT);
	}
	case 0xcf:
		do_iret(c, &in);
		goto done_branch;
	case 0xe2:
	case 0xe3: { /* loop, jrcxz */
		int64_t d = (int8_t)getb(c, &in);
		uint64_t am = amask(in.asz);
		bool take;
		if (op == 0xe2) {
			wr_areg(c, RCX, in.asz, c->r[RCX] - 1);
			take = (c->r[RCX] & am) != 0;
		} else {
			take = (c->r[RCX] & am) == 0;
		}
		if (take) {
			c->rip = in.start + in.pos + (uint64_t)d;
			in.jumped = true;
		}
		break;
	}
	case 0xe4:
	case 0xe5:
	case 0xe6:
	case 0xe7: {
		uint16_t port = getb(c, &in);
		port_io(c, port, op >= 0xe6, (op & 1) ? (in.o16 ? 2 : 4) : 1);
		break;
	}
	case 0xec:
	case 0xed:
	case 0xee:
	case 0xef:
		port_io(c, (uint16_t)c->r[RDX], op >= 0xee, (op & 1) ? (in.o16 ? 2 : 4) : 1);
		break;
	case 0xe8: {
		int64_t d = (int32_t)getimm(c, &in, 4);
		next = in.start + in.pos;
		push(c, next, in.m64 ? 8 : 4);
		c->rip = next + (uint64_t)d;
		goto done_branch;
	}
	case 0xe9:
	case 0xeb: {
		int64_t d = op == 0xe9 ? (int32_t)getimm(c, &in, 4) : (int8_t)getb(c, &in);
		c->rip = in.start + in.pos + (uint64_t)d;
		goto done_branch;
	}
	case 0xea: { /* ljmp ptr16:32 (not in 64-bit mode) */
		if (in.m64)
			raise_fault(c, VEC_UD, false, 0);
		uint64_t off = getimm(c, &in, 4);
		uint16_t sel = (uint16_t)getimm(c, &in, 2);
		load_cs(c, sel, c->cpl);
		c->rip = off;
		goto done_branch;
	}
	case 0xf4:
		need_cpl0(c);
		c->rip = in.start + in.pos;
		c->pending_exit = SOFTCPU_HLT;
		c->exit_now = true;
		return;
	case 0xf5:
		c->rflags ^= F_CF;
		break;
	case 0xf6:
	case 0xf7:
		modrm(c, &in);
		group3(c, &in, op == 0xf6 ? 1 : sz);
		break;
	case 0xf8:
		c->rflags &= ~F_CF;
		break;
	case 0xf9:
		c->rflags |= F_CF;
		break;
	case 0xfa:
	case 0xfb:
		if (!io_allowed(c))
			gp0(c);
		if (op == 0xfa)
			c->rflags &= ~F_IF;
		else
			c->rflags |= F_IF;
		break;
	case 0xfc:
		c->rflags &= ~F_DF;
		break;
	case 0xfd:
		c->rflags |= F_DF;
		break;
	case 0xfe:
	case 0xff: {
		unsigned s = op == 0xfe ? 1 : sz, g;
		modrm(c, &in);
		g = in.reg & 7;
		if (g < 2) { /* inc dec: CF unchanged */
			uint64_t cf = c->rflags & F_CF;
			uint64_t r = alu(c, g ? 5 : 0, rd_e_rmw(c, &in, s), 1, s);
			c->rflags = (c->rflags & ~F_CF) | cf;
			wr_e(c, &in, s, r);
			break;
		}
		if (op == 0xfe)
			unsupported(c, &in, "instruction");
		unsigned ws = in.m64 ? 8 : 4;
		if (g == 2 || g == 4) { /* call, jmp near indirect */
			uint64_t to = rd_e(c, &in, ws);
			if (g == 2)
				push(c, in.start + in.pos, ws);
			c->rip = to;
			goto done_branch;
		}
		if (g == 6) {
			push(c, rd_e(c, &in, in.m64 ? (in.o16 ? 2 : 8) : sz),
			     in.m64 ? (in.o16 ? 2 : 8) : sz);
			break;
		}
		unsupported(c, &in, "instruction");
	}
	case 0x0f:
		exec_0f(c, &in);
		break;
	default:
		unsupported(c, &in, "instruction");
	}
	if (!in.jumped)
		c->rip = in.start + in.pos;
done_branch:
	if (!in.m64 && !((c->efer & EFER_LMA) && c->cs_l))
		c->rip &= 0xffffffffull;
}

/* ---- running ---- */

enum softcpu_exit softcpu_run(struct softcpu *c, uint64_t max_insns)
{
	int j;

	/* the bound lives in *c: no local is live across the setjmp */
	c->insn_end = max_insns > ~0ull - c->insns ? ~0ull : c->insns + max_insns;
	c->exit_now = false;
	j = setjmp(c->fault_jmp);
	if (c->sys_cpl) { /* a fault in an implicit supervisor access */
		c->cpl = (uint8_t)(c->sys_cpl - 1);
		c->sys_cpl = 0;
	}
	if (j == JMP_EXIT) {
		c->delivering = 0;
		return c->pending_exit;
	}
	if (j == JMP_FAULT) {
		c->faults++;
		if (c->delivering) {
			snprintf(c->why, sizeof(c->why),
			         "triple fault: exception %u while delivering exception %d (rip "
			         "0x%llx)",
			         c->fault_vec, c->delivering - 1, (unsigned long long)c->rip);
			c->delivering = 0;
			return SOFTCPU_SHUTDOWN;
		}
		c->delivering = c->fault_vec + 1;
		deliver(c, c->fault_vec, c->fault_has_err, c->fault_err, c->fault_ilen);
		c->delivering = 0;
		c->insns++;
	}
	while (c->insns < c->insn_end) {
		if (*c->stop)
			return SOFTCPU_YIELD;
		step(c);
		c->insns++;
		if (c->exit_now)
			return c->pending_exit;
	}
	return SOFTCPU_YIELD;
}

static const uint8_t never_stop;

void softcpu_init(struct softcpu *c, struct vmm_mem *mem, const struct softcpu_io *io)
{
	memset(c, 0, sizeof(*c));
	c->mem = mem;
	c->io = *io;
	c->stop = (volatile uint8_t *)&never_stop;
	const char *t = getenv("VMK_SOFTCPU_TRACE");
	c->trace = t ? strtoull(t, NULL, 0) : 0;
	atomic_init(&c->dirty, NULL);
}

void softcpu_reset_pvh(struct softcpu *c, uint64_t entry, uint64_t start_info)
{
	memset(c->r, 0, sizeof(c->r));
	c->r[RBX] = start_info;
	c->rip = entry;
	c->rflags = 2;
	c->cr0 = CR0_PE | 0x10;
	c->cr2 = c->cr3 = c->cr4 = c->efer = 0;
	c->sel[SEG_CS] = 0x8;
	c->sel[SEG_ES] = c->sel[SEG_SS] = c->sel[SEG_DS] = c->sel[SEG_FS] = c->sel[SEG_GS] = 0x10;
	c->cs_l = false;
	c->cs_db = true;
	c->cpl = 0;
	c->fs_base = c->gs_base = c->kernel_gs_base = 0;
	c->gdt_base = c->idt_base = c->tr_base = 0;
	c->gdt_limit = c->idt_limit = 0xffff;
	c->tr_limit = 0;
	c->tsc_offset = -(int64_t)host_tsc(); /* the guest's TSC starts near 0 */
	softcpu_flush_tlb(c);
}

uint32_t softcpu_tsc_khz(void)
{
	static uint32_t khz;
	struct timespec a, b;

	if (khz)
		return khz;
	clock_gettime(CLOCK_MONOTONIC_RAW, &a);
	uint64_t t0 = host_tsc();
	do
		clock_gettime(CLOCK_MONOTONIC_RAW, &b);
	while ((b.tv_sec - a.tv_sec) * 1000000000ll + (b.tv_nsec - a.tv_nsec) < 20000000);
	uint64_t t1 = host_tsc();
	uint64_t ns = (uint64_t)((b.tv_sec - a.tv_sec) * 1000000000ll + (b.tv_nsec - a.tv_nsec));
	khz = (uint32_t)((t1 - t0) * 1000000ull / ns);
	return khz;
}

/* ---- state ---- */

#define SOFTCPU_STATE_VERSION 1

void softcpu_save(const struct softcpu *c, struct sbuf *b)
{
	sbuf_u8(b, SOFTCPU_STATE_VERSION);
	for (unsigned i = 0; i < 16; i++)
		sbuf_u64(b, c->r[i]);
	sbuf_u64(b, c->rip);
	sbuf_u64(b, c->rflags);
	sbuf_u64(b, c->cr0);
	sbuf_u64(b, c->cr2);
	sbuf_u64(b, c->cr3);
	sbuf_u64(b, c->cr4);
	sbuf_u64(b, c->efer);
	sbuf_u64(b, c->fs_base);
	sbuf_u64(b, c->gs_base);
	sbuf_u64(b, c->kernel_gs_base);
	sbuf_u64(b, c->gdt_base);
	sbuf_u32(b, c->gdt_limit);
	sbuf_u64(b, c->idt_base);
	sbuf_u32(b, c->idt_limit);
	sbuf_u64(b, c->tr_base);
	sbuf_u32(b, c->tr_limit);
	sbuf_u16(b, c->tr_sel);
	for (unsigned i = 0; i < 6; i++)
		sbuf_u16(b, c->sel[i]);
	sbuf_u8(b, (uint8_t)(c->cs_l | c->cs_db << 1));
	sbuf_u8(b, c->cpl);
	sbuf_u64(b, softcpu_tsc(c)); /* the guest's TSC at the save */
}

int softcpu_restore(struct softcpu *c, struct rbuf *r)
{
	struct softcpu s = *c;

	if (rbuf_u8(r) != SOFTCPU_STATE_VERSION)
		return -EPROTONOSUPPORT;
	for (unsigned i = 0; i < 16; i++)
		s.r[i] = rbuf_u64(r);
	s.rip = rbuf_u64(r);
	s.rflags = rbuf_u64(r);
	s.cr0 = rbuf_u64(r);
	s.cr2 = rbuf_u64(r);
	s.cr3 = rbuf_u64(r);
	s.cr4 = rbuf_u64(r);
	s.efer = rbuf_u64(r);
	s.fs_base = rbuf_u64(r);
	s.gs_base = rbuf_u64(r);
	s.kernel_gs_base = rbuf_u64(r);
	s.gdt_base = rbuf_u64(r);
	s.gdt_limit = rbuf_u32(r);
	s.idt_base = rbuf_u64(r);
	s.idt_limit = rbuf_u32(r);
	s.tr_base = rbuf_u64(r);
	s.tr_limit = rbuf_u32(r);
	s.tr_sel = rbuf_u16(r);
	for (unsigned i = 0; i < 6; i++)
		s.sel[i] = rbuf_u16(r);
	uint8_t mode = rbuf_u8(r);
	s.cpl = rbuf_u8(r);
	uint64_t tsc = rbuf_u64(r);
	if (rbuf_done(r) < 0)
		return -EBADMSG;
	s.cs_l = mode & 1;
	s.cs_db = (mode >> 1) & 1;
	/* refuse what the CPU could never be in */
	if ((mode & ~3u) || s.cpl > 3 || (s.cs_l && s.cs_db) || !(s.cr0 & CR0_PE) ||
	    ((s.cr0 & CR0_PG) && (s.efer & EFER_LME) && !(s.cr4 & CR4_PAE)) ||
	    (!!(s.efer & EFER_LMA) != ((s.cr0 & CR0_PG) && (s.efer & EFER_LME))) ||
	    (s.efer & ~(EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE)) || !(s.rflags & 2) ||
	    (s.rflags >> 22) || (s.cs_l && !(s.efer & EFER_LMA)) || s.gdt_limit > 0xffff ||
	    s.idt_limit > 0xffff)
		return -EINVAL;
	s.tsc_offset = (int64_t)(tsc - host_tsc());
	*c = s;
	softcpu_flush_tlb(c);
	return 0;
}
