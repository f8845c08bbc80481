/* PVH boot (as QEMU, Firecracker and Cloud Hypervisor do it): load the ELF's
 * PT_LOAD segments at their physical addresses, find the entry in the
 * XEN_ELFNOTE_PHYS32_ENTRY note, and leave an hvm_start_info with the
 * command line, memory map and, given an initrd, one module: the initrd
 * at the top of low RAM (Linux's PVH entry takes module 0 as its
 * initrd). Every offset and size from the file is checked before use. */
#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "boot.h"

#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define HVM_START_MAGIC          0x336ec578u
#define MAX_PHDRS                64

struct hvm_start_info {
	uint32_t magic, version, flags, nr_modules;
	uint64_t modlist_paddr, cmdline_paddr, rsdp_paddr, memmap_paddr;
	uint32_t memmap_entries, reserved;
};

struct hvm_memmap_entry {
	uint64_t addr, size;
	uint32_t type, reserved;
};

struct hvm_modlist_entry {
	uint64_t paddr, size, cmdline_paddr, reserved;
};

unsigned vmm_boot_e820(const struct vmm_mem *m, struct vmm_e820 *e, unsigned max)
{
	unsigned n = 0;

	if (max < 2 + m->nslots)
		return 0;
	/* conventional memory, the legacy hole (VGA/BIOS, reserved), then RAM */
	e[n++] = (struct vmm_e820){ 0, 0x9fc00, E820_TYPE_RAM };
	e[n++] = (struct vmm_e820){ 0x9fc00, 0x100000 - 0x9fc00, E820_TYPE_RESERVED };
	for (unsigned i = 0; i < m->nslots; i++) {
		uint64_t a = m->slots[i].gpa, sz = m->slots[i].size;
		if (a < 0x100000) { /* the low slot: above the hole only */
			if (sz <= 0x100000)
				continue;
			sz -= 0x100000 - a;
			a = 0x100000;
		}
		e[n++] = (struct vmm_e820){ a, sz, E820_TYPE_RAM };
	}
	return n;
}

static int put_cmdline(struct vmm_mem *m, const char *cmdline, char *err, size_t errlen)
{
	size_t n = cmdline ? strlen(cmdline) : 0;
	char *dst = vmm_gpa(m, BOOT_CMDLINE_GPA, BOOT_CMDLINE_MAX);

	if (n >= BOOT_CMDLINE_MAX) {
		snprintf(err, errlen, "the kernel command line has %zu bytes; at most %u", n,
		         BOOT_CMDLINE_MAX - 1);
		return -E2BIG;
	}
	if (!dst)
		return -EFAULT;
	memcpy(dst, cmdline ? cmdline : "", n);
	dst[n] = '\0';
	return 0;
}

/* Finds the PVH entry in the PT_NOTE segments. */
static int find_entry(const uint8_t *img, size_t len, const Elf64_Phdr *ph, unsigned phnum,
                      uint64_t *entry)
{
	for (unsigned i = 0; i < phnum; i++) {
		if (ph[i].p_type != PT_NOTE)
			continue;
		uint64_t off = ph[i].p_offset, end = off + ph[i].p_filesz;
		if (end < off || end > len)
			return -EOVERFLOW;
		while (end - off >= sizeof(Elf64_Nhdr)) {
			Elf64_Nhdr nh;
			memcpy(&nh, img + off, sizeof(nh));
			uint64_t name = off + sizeof(nh);
			uint64_t desc = name + ((nh.n_namesz + 3ull) & ~3ull);
			uint64_t next = desc + ((nh.n_descsz + 3ull) & ~3ull);
			if (next > end || next <= off)
				return -EBADMSG;
			if (nh.n_type == XEN_ELFNOTE_PHYS32_ENTRY && nh.n_namesz == 4 &&
			    memcmp(img + name, "Xen", 4) == 0) {
				if (nh.n_descsz == 4) {
					uint32_t v;
					memcpy(&v, img + desc, 4);
					*entry = v;
				} else if (nh.n_descsz == 8) {
					memcpy(entry, img + desc, 8);
				} else {
					return -EBADMSG;
				}
				return 0;
			}
			off = next;
		}
	}
	return -ENOENT;
}

int vmm_boot_pvh(struct vmm_mem *m, const uint8_t *img, size_t len, const uint8_t *initrd,
                 size_t initrd_len, const char *cmdline, struct vmm_boot *out, char *err,
                 size_t errlen)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph[MAX_PHDRS];
	uint64_t entry = 0;
	int ret;

	if (len < sizeof(eh)) {
		snprintf(err, errlen, "truncated ELF header (%zu bytes)", len);
		return -EBADMSG;
	}
	memcpy(&eh, img, sizeof(eh));
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) {
		snprintf(err, errlen, "not an ELF file");
		return -EBADMSG;
	}
	if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB ||
	    eh.e_machine != EM_X86_64) {
		snprintf(err, errlen,
		         "not a little-endian x86-64 ELF64 image (class %u, machine "
		         "%u); build a 64-bit PVH kernel",
		         eh.e_ident[EI_CLASS], eh.e_machine);
		return -EBADMSG;
	}
	if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum > MAX_PHDRS ||
	    eh.e_phoff > len || (len - eh.e_phoff) / sizeof(Elf64_Phdr) < eh.e_phnum) {
		snprintf(err, errlen,
		         "bad program header table (%u entries of %u bytes at %llu, "
		         "file %zu bytes)",
		         eh.e_phnum, eh.e_phentsize, (unsigned long long)eh.e_phoff, len);
		return -EBADMSG;
	}
	memcpy(ph, img + eh.e_phoff, eh.e_phnum * sizeof(Elf64_Phdr));
	ret = find_entry(img, len, ph, eh.e_phnum, &entry);
	if (ret == -ENOENT) {
		snprintf(err, errlen,
		         "no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY): build the "
		         "kernel with CONFIG_PVH=y, or boot a bzImage");
		return -ENOEXEC;
	}
	if (ret == -EOVERFLOW) {
		snprintf(err, errlen,
		         "the note segment runs past the end of the file (%zu bytes): "
		         "truncated image?",
		         len);
		return -EBADMSG;
	}
	if (ret < 0) {
		snprintf(err, errlen, "malformed ELF note segment");
		return ret;
	}
	if (entry < BOOT_KERNEL_MIN_GPA || entry >= (4ull << 30)) {
		snprintf(err, errlen, "PVH entry 0x%llx is outside [1 MiB, 4 GiB)",
		         (unsigned long long)entry);
		return -EBADMSG;
	}
	bool entry_loaded = false;
	uint64_t kernel_end = 0;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		const Elf64_Phdr *p = &ph[i];
		if (p->p_type != PT_LOAD || p->p_memsz == 0)
			continue;
		if (p->p_filesz > p->p_memsz || p->p_offset > len ||
		    len - p->p_offset < p->p_filesz) {
			snprintf(err, errlen, "segment %u: file range past the end of the image",
			         i);
			return -EBADMSG;
		}
		if (p->p_paddr < BOOT_KERNEL_MIN_GPA) {
			snprintf(err, errlen, "segment %u loads at 0x%llx, below 1 MiB", i,
			         (unsigned long long)p->p_paddr);
			return -EBADMSG;
		}
		uint8_t *dst = vmm_gpa(m, p->p_paddr, p->p_memsz);
		if (!dst) {
			snprintf(err, errlen,
			         "segment %u [0x%llx, +%llu) does not fit in guest RAM (%llu MiB)",
			         i, (unsigned long long)p->p_paddr, (unsigned long long)p->p_memsz,
			         (unsigned long long)(m->ram_bytes >> 20));
			return -E2BIG;
		}
		memcpy(dst, img + p->p_offset, p->p_filesz);
		memset(dst + p->p_filesz, 0, p->p_memsz - p->p_filesz);
		if (entry >= p->p_paddr && entry - p->p_paddr < p->p_memsz)
			entry_loaded = true;
		if (p->p_paddr + p->p_memsz > kernel_end)
			kernel_end = p->p_paddr + p->p_memsz;
	}
	if (!entry_loaded) {
		snprintf(err, errlen, "PVH entry 0x%llx is not inside a loaded segment",
		         (unsigned long long)entry);
		return -EBADMSG;
	}
	if ((ret = put_cmdline(m, cmdline, err, errlen)) < 0)
		return ret;

	struct vmm_e820 e[8];
	unsigned n = vmm_boot_e820(m, e, 8);
	struct hvm_start_info *si = vmm_gpa(m, BOOT_START_INFO_GPA, sizeof(*si) + 8 * 24);
	if (!si)
		return -EFAULT;
	memset(si, 0, sizeof(*si));
	si->magic = HVM_START_MAGIC;
	si->version = 1;
	si->cmdline_paddr = BOOT_CMDLINE_GPA;
	si->memmap_paddr = BOOT_START_INFO_GPA + sizeof(*si);
	si->memmap_entries = n;
	struct hvm_memmap_entry *mm = (void *)(si + 1);
	for (unsigned i = 0; i < n; i++)
		mm[i] = (struct hvm_memmap_entry){ e[i].addr, e[i].size, e[i].type, 0 };
	if (initrd && initrd_len) {
		/* below 4 GiB */
		uint64_t at;
		struct hvm_modlist_entry *ml = vmm_gpa(m, BOOT_MODLIST_GPA, sizeof(*ml));
		if (!ml)
			return -EFAULT;
		if ((ret = vmm_boot_place_initrd(m, initrd, initrd_len, 4ull << 30, kernel_end, &at,
		                                 err, errlen)) < 0)
			return ret;
		*ml = (struct hvm_modlist_entry){ at, initrd_len, 0, 0 };
		si->nr_modules = 1;
		si->modlist_paddr = BOOT_MODLIST_GPA;
	}
	out->kind = BOOT_PVH;
	out->entry = entry;
	out->arg = BOOT_START_INFO_GPA;
	return 0;
}
