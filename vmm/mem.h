/* Guest physical memory: one or more slots of host memory (mmap). */
#ifndef VMM_MEM_H
#define VMM_MEM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VMM_PAGE_SIZE 4096u
#define VMM_MAX_SLOTS 4

struct vmm_mem_slot {
	uint64_t gpa;  /* guest physical base */
	uint64_t size; /* bytes, page multiple */
	uint8_t *host; /* mapping of the slot */
	int memfd;     /* backing memfd, or -1 for anonymous memory */
};

struct vmm_mem {
	struct vmm_mem_slot slots[VMM_MAX_SLOTS];
	unsigned nslots;
	uint64_t ram_bytes; /* sum of the slots */
	/* Dirty log (migration): one bit per 4 KiB page of guest-physical
	 * [0, dirty_pages * 4 KiB), set by every write of a vCPU (the software
	 * CPU, or KVM's log merged in) or a device while `dirty` is set. The
	 * bitmap stays allocated until vmm_mem_free, so a writer that raced
	 * with the end of logging never touches freed memory. */
	uint64_t *_Atomic dirty;
	uint64_t *dirty_map;
	uint64_t dirty_pages;
	int pagemap_fd; /* /proc/self/pagemap for anonymous slots, or -1 */
	/* Incoming live migration: a bit per page whose last copy arrived
	 * with a checksum that did not match (the source read it while the
	 * guest wrote it: a newer copy must follow); NULL: a mismatch is an
	 * error at once. suspect_pages bits, words of 64. */
	uint64_t *suspect;
	uint64_t suspect_pages;
	_Atomic uint64_t suspect_seen;  /* damaged copies so far */
	_Atomic uint64_t pages_checked; /* copies checked against their checksums (RAMC) */
};

/* Lays out `bytes` of RAM (16 MiB .. 64 GiB) below and above the 32-bit
 * MMIO hole [VMM_MMIO_HOLE_START, 4 GiB), maps it (MAP_NORESERVE, memfd
 * when use_memfd, 2 MiB huge pages when available) and zeroes nothing (the
 * kernel does). -EINVAL for a size out of range, -ENOMEM. */
#define VMM_MMIO_HOLE_START 0xc0000000ull
int vmm_mem_init(struct vmm_mem *m, uint64_t bytes, bool use_memfd);
void vmm_mem_free(struct vmm_mem *m);

/* Which of npages pages of anonymous slot `slot`, from byte offset off, may
 * hold data: bit i of bits (npages bits, words of 64) is set for a page
 * the page table has (present or swapped out); the others were never
 * written and read zero. Overstates, never understates: a page the guest
 * only read maps the zero page and counts. Where the page table cannot be
 * read, every page counts. */
void vmm_mem_anon_data(const struct vmm_mem *m, unsigned slot, uint64_t off, uint32_t npages,
                       uint64_t *bits);

/* Starts logging (all bits clear), stops it, and takes the bits set so far
 * into out (words of 64 pages, dirty_pages bits; clears them); returns how
 * many were set. */
int vmm_mem_dirty_start(struct vmm_mem *m);
void vmm_mem_dirty_stop(struct vmm_mem *m);
uint64_t vmm_mem_dirty_harvest(struct vmm_mem *m, uint64_t *out);
/* ORs a bitmap of npages pages starting at page `first` (a multiple of
 * 64) into the log: KVM's log merged in. */
void vmm_mem_merge_dirty(struct vmm_mem *m, uint64_t first, const uint64_t *bm, uint64_t npages);
/* Marks [gpa, gpa + len) written (devices writing guest memory). */
void vmm_mem_mark_dirty(const struct vmm_mem *m, uint64_t gpa, uint64_t len);

/* Starts tracking suspect pages (none yet): 0 or -ENOMEM. */
int vmm_mem_suspect_start(struct vmm_mem *m);
/* Page `page` (gpa / 4 KiB): its last copy was damaged (bad) or good. */
void vmm_mem_suspect_set(struct vmm_mem *m, uint64_t page, bool bad);
/* Marks [gpa, gpa + len) good. */
void vmm_mem_suspect_clear(struct vmm_mem *m, uint64_t gpa, uint64_t len);
/* How many pages are suspect; *first: the lowest one's gpa. */
uint64_t vmm_mem_suspect_count(const struct vmm_mem *m, uint64_t *first);

/* Host pointer for [gpa, gpa+len) if it lies inside one slot, else NULL.
 * Every device access to guest memory goes through here (bounds). */
void *vmm_gpa(const struct vmm_mem *m, uint64_t gpa, uint64_t len);

#endif
