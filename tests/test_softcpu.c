/* The software CPU against the real one: each instruction runs on the host
 * (in an executable buffer) and on the interpreter from the same random
 * registers and flags, and the results and defined flags must agree.
 * Plus the things a differential test cannot reach: paging faults through
 * the IDT, privilege checks, state save/restore. */
#include <setjmp.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <cmocka.h>

#include "vmm/sbuf.h"
#include "vmm/softcpu.h"

#define CF  0x1ull
#define PF  0x4ull
#define AF  0x10ull
#define ZF  0x40ull
#define SF  0x80ull
#define OF  0x800ull
#define ALL (CF | PF | AF | ZF | SF | OF)

#define CODE   0x10000ull /* where test instructions go */
#define PML4   0x1000ull
#define STACK  0x80000ull
#define IDT    0x20000ull
#define GDT    0x21000ull
#define TSS    0x22000ull
#define HANDLR 0x23000ull

struct regs {
	uint64_t rax, rbx, rcx, rdx, rflags;
};

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

/* ---- the host side ---- */

static uint8_t *host_buf;

static void host_run(const uint8_t *insn, size_t len, struct regs *r)
{
	static const uint8_t pre[] = {
		0x53,                   /* push rbx */
		0x48, 0x8b, 0x07,       /* mov rax, [rdi] */
		0x48, 0x8b, 0x5f, 0x08, /* mov rbx, [rdi+8] */
		0x48, 0x8b, 0x4f, 0x10, /* mov rcx, [rdi+16] */
		0x48, 0x8b, 0x57, 0x18, /* mov rdx, [rdi+24] */
		0xff, 0x77, 0x20,       /* push qword [rdi+32] */
		0x9d,                   /* popfq */
	};
	static const uint8_t post[] = {
		0x9c,                   /* pushfq */
		0x8f, 0x47, 0x20,       /* pop qword [rdi+32] */
		0x48, 0x89, 0x07,       /* mov [rdi], rax */
		0x48, 0x89, 0x5f, 0x08, /* mov [rdi+8], rbx */
		0x48, 0x89, 0x4f, 0x10, /* mov [rdi+16], rcx */
		0x48, 0x89, 0x57, 0x18, /* mov [rdi+24], rdx */
		0x5b,                   /* pop rbx */
		0xc3,                   /* ret */
	};
	uint8_t *p = host_buf;
	memcpy(p, pre, sizeof(pre));
	p += sizeof(pre);
	memcpy(p, insn, len);
	p += len;
	memcpy(p, post, sizeof(post));
	__builtin___clear_cache((char *)host_buf, (char *)p + sizeof(post));
	((void (*)(struct regs *))(void *)host_buf)(r);
}

/* ---- the interpreter side ---- */

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
	c->cr3 = PML4;
	c->cr4 = 1u << 5;
	c->efer = (1u << 8) | (1u << 10);
	c->cr0 = 0x80000011;
	c->cs_l = true;
	c->cs_db = false;
	c->r[4] = STACK;
	softcpu_flush_tlb(c);
}

static enum softcpu_exit soft_run(struct softcpu *c, const uint8_t *insn, size_t len,
                                  struct regs *r)
{
	memcpy(gp(CODE), insn, len);
	gp(CODE)[len] = 0xf4; /* hlt */
	c->rip = CODE;
	c->r[0] = r->rax;
	c->r[3] = r->rbx;
	c->r[1] = r->rcx;
	c->r[2] = r->rdx;
	c->rflags = (r->rflags & ALL) | 2;
	enum softcpu_exit e = softcpu_run(c, 100);
	r->rax = c->r[0];
	r->rbx = c->r[3];
	r->rcx = c->r[1];
	r->rdx = c->r[2];
	r->rflags = c->rflags;
	return e;
}

/* ---- the differential cases ---- */

enum { ANY, SHIFT, DIV, NONZERO_RBX };

struct dcase {
	const char *name;
	uint8_t bytes[12];
	size_t len;
	uint64_t flags; /* flags the SDM defines for this instruction */
	int kind;
};

#define D(n, f, k, ...)                                                                            \
	{                                                                                          \
		n, { __VA_ARGS__ }, sizeof((uint8_t[]){ __VA_ARGS__ }), f, k                       \
	}

static const struct dcase cases[] = {
	D("add r64", ALL, ANY, 0x48, 0x01, 0xd8),
	D("add r32", ALL, ANY, 0x01, 0xd8),
	D("add r16", ALL, ANY, 0x66, 0x01, 0xd8),
	D("add r8", ALL, ANY, 0x00, 0xd8),
	D("add ah,bl", ALL, ANY, 0x00, 0xdc),
	D("adc r64", ALL, ANY, 0x48, 0x11, 0xd8),
	D("adc r8", ALL, ANY, 0x10, 0xd8),
	D("sub r64", ALL, ANY, 0x48, 0x29, 0xd8),
	D("sub r32", ALL, ANY, 0x29, 0xd8),
	D("sub r16", ALL, ANY, 0x66, 0x29, 0xd8),
	D("sbb r64", ALL, ANY, 0x48, 0x19, 0xd8),
	D("sbb r8", ALL, ANY, 0x18, 0xd8),
	D("cmp r64", ALL, ANY, 0x48, 0x39, 0xd8),
	D("cmp r8", ALL, ANY, 0x38, 0xd8),
	D("and r64", ALL & ~AF, ANY, 0x48, 0x21, 0xd8),
	D("or r32", ALL & ~AF, ANY, 0x09, 0xd8),
	D("xor r16", ALL & ~AF, ANY, 0x66, 0x31, 0xd8),
	D("test r64", ALL & ~AF, ANY, 0x48, 0x85, 0xd8),
	D("add imm8", ALL, ANY, 0x48, 0x83, 0xc0, 0x80),
	D("sub imm32", ALL, ANY, 0x48, 0x2d, 0x01, 0x00, 0x00, 0x80),
	D("cmp al,imm", ALL, ANY, 0x3c, 0x7f),
	D("inc r64", ALL, ANY, 0x48, 0xff, 0xc0),
	D("dec r32", ALL, ANY, 0xff, 0xc8),
	D("inc r8", ALL, ANY, 0xfe, 0xc0),
	D("neg r64", ALL, ANY, 0x48, 0xf7, 0xd8),
	D("neg r8", ALL, ANY, 0xf6, 0xd8),
	D("not r32", 0, ANY, 0xf7, 0xd0),
	D("shl r64,cl", CF | ZF | SF | PF, SHIFT, 0x48, 0xd3, 0xe0),
	D("shr r64,cl", CF | ZF | SF | PF, SHIFT, 0x48, 0xd3, 0xe8),
	D("sar r64,cl", CF | ZF | SF | PF, SHIFT, 0x48, 0xd3, 0xf8),
	D("shl r32,cl", CF | ZF | SF | PF, SHIFT, 0xd3, 0xe0),
	D("shr r16,cl", CF | ZF | SF | PF, SHIFT, 0x66, 0xd3, 0xe8),
	D("sar r8,cl", CF | ZF | SF | PF, SHIFT, 0xd2, 0xf8),
	D("rol r64,cl", CF, SHIFT, 0x48, 0xd3, 0xc0),
	D("ror r32,cl", CF, SHIFT, 0xd3, 0xc8),
	D("rcl r64,cl", CF, SHIFT, 0x48, 0xd3, 0xd0),
	D("rcr r8,cl", CF, SHIFT, 0xd2, 0xd8),
	D("shl r64,1", ALL & ~AF, ANY, 0x48, 0xd1, 0xe0),
	D("shr r32,1", ALL & ~AF, ANY, 0xd1, 0xe8),
	D("sar r64,imm", CF | ZF | SF | PF, ANY, 0x48, 0xc1, 0xf8, 0x05),
	D("rol r8,1", CF | OF, ANY, 0xd0, 0xc0),
	D("imul r64,r64", CF | OF, ANY, 0x48, 0x0f, 0xaf, 0xc3),
	D("imul r32,r32,imm", CF | OF, ANY, 0x69, 0xc3, 0x39, 0x30, 0x00, 0x80),
	D("imul r16,imm8", CF | OF, ANY, 0x66, 0x6b, 0xc3, 0x85),
	D("mul r64", CF | OF, ANY, 0x48, 0xf7, 0xe3),
	D("mul r8", CF | OF, ANY, 0xf6, 0xe3),
	D("imul r64 (1 op)", CF | OF, ANY, 0x48, 0xf7, 0xeb),
	D("imul r32 (1 op)", CF | OF, ANY, 0xf7, 0xeb),
	D("div r64", 0, DIV, 0x48, 0xf7, 0xf3),
	D("div r32", 0, DIV, 0xf7, 0xf3),
	D("idiv r64", 0, DIV, 0x48, 0xf7, 0xfb),
	D("idiv r32", 0, DIV, 0xf7, 0xfb),
	D("bt r64,r64", CF, ANY, 0x48, 0x0f, 0xa3, 0xd8),
	D("bts r64,r64", CF, ANY, 0x48, 0x0f, 0xab, 0xd8),
	D("btr r32,imm", CF, ANY, 0x0f, 0xba, 0xf0, 0x11),
	D("bsf r64", ZF, NONZERO_RBX, 0x48, 0x0f, 0xbc, 0xc3),
	D("bsr r32", ZF, NONZERO_RBX, 0x0f, 0xbd, 0xc3),
	D("movzx r32,r8", 0, ANY, 0x0f, 0xb6, 0xc3),
	D("movsx r64,r16", 0, ANY, 0x48, 0x0f, 0xbf, 0xc3),
	D("movsxd", 0, ANY, 0x48, 0x63, 0xc3),
	D("cdqe", 0, ANY, 0x48, 0x98),
	D("cqo", 0, ANY, 0x48, 0x99),
	D("cdq", 0, ANY, 0x99),
	D("xchg r64", 0, ANY, 0x48, 0x87, 0xd8),
	D("xchg eax,ebx", 0, ANY, 0x93),
	D("xadd r64", ALL, ANY, 0x48, 0x0f, 0xc1, 0xd8),
	D("cmpxchg r64", ALL, ANY, 0x48, 0x0f, 0xb1, 0xd9),
	D("bswap r64", 0, ANY, 0x48, 0x0f, 0xcb),
	D("bswap r32", 0, ANY, 0x0f, 0xc8),
	D("cmovb r64", 0, ANY, 0x48, 0x0f, 0x42, 0xc3),
	D("cmovle r32", 0, ANY, 0x0f, 0x4e, 0xc3),
	D("seto", 0, ANY, 0x0f, 0x90, 0xc0),
	D("setbe", 0, ANY, 0x0f, 0x96, 0xc0),
	D("setp", 0, ANY, 0x0f, 0x9a, 0xc0),
	D("setl", 0, ANY, 0x0f, 0x9c, 0xc0),
	D("setg", 0, ANY, 0x0f, 0x9f, 0xc4),
	D("lea sib", 0, ANY, 0x48, 0x8d, 0x44, 0x98, 0x10),
	D("lea r32", 0, ANY, 0x8d, 0x44, 0x0b, 0xf0),
	D("mov r8,imm (rex)", 0, ANY, 0x40, 0xb6, 0x12),
	D("movabs", 0, ANY, 0x48, 0xb9, 1, 2, 3, 4, 5, 6, 7, 8),
	D("mov r16 keeps upper", 0, ANY, 0x66, 0x89, 0xd8),
	D("cmc", CF, ANY, 0xf5),
};

static void test_differential(void **state)
{
	struct softcpu *c = *state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct dcase *d = &cases[i];
		for (int iter = 0; iter < 400; iter++) {
			struct regs in = { operand(), operand(), operand(), operand(),
				           (rnd() & ALL) | 2 };
			if (d->kind == SHIFT)
				in.rcx = (iter < 70 ? (uint64_t)iter : rnd()) & 0xff;
			if (d->kind == NONZERO_RBX && !(in.rbx & 0xffffffff))
				in.rbx |= 1ull << (rnd() % 32);
			if (d->kind == DIV) {
				bool wide = d->bytes[0] == 0x48,
				     sgn = (d->bytes[d->len - 1] & 0x38) == 0x38;
				uint64_t m = wide ? ~0ull : 0xffffffffull;
				if (!(in.rbx & m))
					in.rbx |= 3;
				if (sgn) { /* sign-extended dividend cannot overflow but for MIN/-1 */
					int64_t a = wide ? (int64_t)in.rax : (int32_t)in.rax;
					in.rdx = a < 0 ? ~0ull : 0;
					if ((in.rbx & m) == m)
						in.rbx ^= 2;
				} else {
					in.rdx = (in.rdx & m) % (in.rbx & m);
				}
			}
			struct regs h = in, s = in;
			host_run(d->bytes, d->len, &h);
			enum softcpu_exit e = soft_run(c, d->bytes, d->len, &s);
			uint64_t fmask = d->flags;
			if (d->kind == SHIFT) {
				bool wide = d->bytes[0] == 0x48;
				unsigned cnt = (unsigned)(in.rcx & (wide ? 63 : 31));
				if (cnt == 0)
					fmask = ALL; /* nothing changes */
				else if (cnt == 1)
					fmask |= OF;
			}
			if (e != SOFTCPU_HLT || h.rax != s.rax || h.rbx != s.rbx ||
			    h.rcx != s.rcx || h.rdx != s.rdx || ((h.rflags ^ s.rflags) & fmask)) {
				fail_msg("%s: in rax=%llx rbx=%llx rcx=%llx rdx=%llx fl=%llx\n"
				         "  host rax=%llx rbx=%llx rcx=%llx rdx=%llx fl=%llx\n"
				         "  soft rax=%llx rbx=%llx rcx=%llx rdx=%llx fl=%llx (exit "
				         "%d %s)",
				         d->name, (unsigned long long)in.rax,
				         (unsigned long long)in.rbx, (unsigned long long)in.rcx,
				         (unsigned long long)in.rdx, (unsigned long long)in.rflags,
				         (unsigned long long)h.rax, (unsigned long long)h.rbx,
				         (unsigned long long)h.rcx, (unsigned long long)h.rdx,
				         (unsigned long long)(h.rflags & fmask),
				         (unsigned long long)s.rax, (unsigned long long)s.rbx,
				         (unsigned long long)s.rcx, (unsigned long long)s.rdx,
				         (unsigned long long)(s.rflags & fmask), e, c->why);
			}
		}
	}
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
	assert_int_equal(c->r[1], 0);                   /* rcx counted down */
	assert_int_equal(c->r[6], CODE + sizeof(prog)); /* rip-relative lea */
	assert_int_equal(c->r[4], STACK);               /* balanced stack */
}

/* A page fault at CPL 3 goes through the IDT to a CPL 0 handler on the
 * TSS stack, with CR2 and the error code; OUT at CPL 3 needs IOPL 3. */
static void test_fault_delivery(void **state)
{
	struct softcpu *c = *state;
	uint64_t gdt[7] = {
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
	/* gate 14 and gate 13 -> HANDLR: interrupt gate, DPL 0, selector 0x08 */
	for (int v = 13; v <= 14; v++) {
		uint64_t lo = (HANDLR & 0xffff) | (0x08ull << 16) | (0x8eull << 40) |
		              ((HANDLR & 0xffff0000ull) << 32);
		put64(IDT + v * 16u, lo);
		put64(IDT + v * 16u + 8, HANDLR >> 32);
	}
	gp(HANDLR)[0] = 0xf4; /* hlt at CPL 0 */
	c->gdt_base = GDT;
	c->gdt_limit = sizeof(gdt) - 1;
	c->idt_base = IDT;
	c->idt_limit = 4095;
	c->tr_base = TSS;
	c->cpl = 3;
	c->sel[1] = 0x1b;
	c->r[4] = 0x60000;

	/* mov rax, [0x4000010] at CPL 3: the 2 MiB page at 64 MiB is unmapped */
	static const uint8_t ld[] = { 0x48, 0x8b, 0x04, 0x25, 0x10, 0x00, 0x00, 0x04 };
	struct regs r = { 0 };
	assert_int_equal(soft_run(c, ld, sizeof(ld), &r), SOFTCPU_HLT);
	assert_int_equal(c->cr2, 0x4000010);
	assert_int_equal(c->cpl, 0);
	uint64_t *frame = (uint64_t *)gp(c->r[4]);
	assert_int_equal(frame[0], 4 /* user, read, not present */);
	assert_int_equal(frame[1], CODE); /* the faulting instruction */
	assert_int_equal(frame[2], 0x1b);
	assert_int_equal(frame[4], 0x60000);
	assert_int_equal(c->r[4], 0x70000 - 6 * 8);

	/* out at CPL 3 with IOPL 0: #GP(0) */
	c->cpl = 3;
	c->sel[1] = 0x1b;
	c->r[4] = 0x60000;
	static const uint8_t out[] = { 0xe6, 0x80 };
	io_last_port = 0;
	assert_int_equal(soft_run(c, out, sizeof(out), &r), SOFTCPU_HLT);
	assert_int_equal(io_last_port, 0);
	frame = (uint64_t *)gp(c->r[4]);
	assert_int_equal(frame[0], 0);
	/* with IOPL 3 it reaches the device */
	c->cpl = 3;
	c->sel[1] = 0x1b;
	r.rflags = 0;
	c->r[4] = 0x60000;
	memcpy(gp(CODE), out, sizeof(out));
	gp(CODE)[2] = 0xf4;
	c->rip = CODE;
	c->rflags = 0x3002;
	c->r[0] = 0x42;
	assert_int_equal(softcpu_run(c, 100), SOFTCPU_HLT); /* hlt at CPL 3: #GP -> handler */
	assert_int_equal(io_last_port, 0x80);
	assert_int_equal(io_last_val, 0x42);
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

static void test_save_restore(void **state)
{
	struct softcpu *c = *state, d;
	struct sbuf b;
	struct rbuf rb;
	struct softcpu_io io = { pio, mmio, NULL };

	c->r[7] = 0x1234;
	c->rip = 0x4444;
	sbuf_init(&b);
	softcpu_save(c, &b);
	softcpu_init(&d, &mem, &io);
	rbuf_init(&rb, b.data, b.len);
	assert_int_equal(softcpu_restore(&d, &rb), 0);
	assert_int_equal(d.r[7], 0x1234);
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

static int setup(void **state)
{
	static struct softcpu c;

	host_buf = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS,
	                -1, 0);
	if (host_buf == MAP_FAILED || vmm_mem_init(&mem, 128ull << 20, false) < 0)
		return -1;
	cpu_setup(&c);
	*state = &c;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	vmm_mem_free(&mem);
	munmap(host_buf, 4096);
	return 0;
}

static int reset(void **state)
{
	cpu_setup(*state);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_differential, reset),
		cmocka_unit_test_setup(test_memory_and_stack, reset),
		cmocka_unit_test_setup(test_fault_delivery, reset),
		cmocka_unit_test_setup(test_unsupported_and_triple_fault, reset),
		cmocka_unit_test_setup(test_save_restore, reset),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
