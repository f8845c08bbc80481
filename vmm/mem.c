#include "mem.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MIN_RAM (16ull << 20)
#define MAX_RAM (64ull << 30)
#define HUGE_2M (2ull << 20)

static int map_slot(struct vmm_mem_slot *s, uint64_t gpa, uint64_t size, bool use_memfd)
{
	int flags = MAP_SHARED | MAP_NORESERVE;

	s->gpa = gpa;
	s->size = size;
	s->memfd = -1;
	if (use_memfd) {
		s->memfd = memfd_create("vmk-guest-ram", MFD_CLOEXEC);
		if (s->memfd < 0)
			return -errno;
		if (ftruncate(s->memfd, (off_t)size) < 0) {
			int e = -errno;
			close(s->memfd);
			s->memfd = -1;
			return e;
		}
	} else {
		flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
	}
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, flags, s->memfd, 0);
	if (p == MAP_FAILED) {
		int e = -errno;
		if (s->memfd >= 0)
			close(s->memfd);
		s->memfd = -1;
		return e;
	}
	/* transparent huge pages where the kernel has them: fewer TLB misses
	 * and EPT/shadow entries; best effort */
	if (size >= HUGE_2M)
		madvise(p, size, MADV_HUGEPAGE);
	s->host = p;
	return 0;
}

int vmm_mem_init(struct vmm_mem *m, uint64_t bytes, bool use_memfd)
{
	int ret;

	memset(m, 0, sizeof(*m));
	m->pagemap_fd = -1;
	if (bytes < MIN_RAM || bytes > MAX_RAM || bytes % VMM_PAGE_SIZE)
		return -EINVAL;
	uint64_t low = bytes < VMM_MMIO_HOLE_START ? bytes : VMM_MMIO_HOLE_START;
	ret = map_slot(&m->slots[0], 0, low, use_memfd);
	if (ret < 0)
		return ret;
	m->nslots = 1;
	if (bytes > low) {
		ret = map_slot(&m->slots[1], 4ull << 30, bytes - low, use_memfd);
		if (ret < 0) {
			vmm_mem_free(m);
			return ret;
		}
		m->nslots = 2;
	}
	m->ram_bytes = bytes;
	/* anonymous memory has no SEEK_DATA: its page table tells which
	 * pages the guest never touched */
	if (!use_memfd)
		m->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	return 0;
}

#define PM_PRESENT (1ull << 63)
#define PM_SWAPPED (1ull << 62)

void vmm_mem_anon_data(const struct vmm_mem *m, unsigned slot, uint64_t off, uint32_t npages,
                       uint64_t *bits)
{
	uint64_t pm[512];
	uintptr_t first = (uintptr_t)(m->slots[slot].host + off) / VMM_PAGE_SIZE;

	memset(bits, 0, (npages + 63) / 64 * sizeof(uint64_t));
	for (uint32_t i = 0; i < npages;) {
		uint32_t n = npages - i < 512 ? npages - i : 512;
		ssize_t r = m->pagemap_fd < 0 ? -1
		                              : pread(m->pagemap_fd, pm, n * sizeof(pm[0]),
		                                      (off_t)((first + i) * sizeof(pm[0])));
		if (r < (ssize_t)sizeof(pm[0])) { /* unknown: data */
			for (; i < npages; i++)
				bits[i / 64] |= 1ull << (i % 64);
			return;
		}
		n = (uint32_t)((size_t)r / sizeof(pm[0]));
		for (uint32_t k = 0; k < n; k++, i++)
			if (pm[k] & (PM_PRESENT | PM_SWAPPED))
				bits[i / 64] |= 1ull << (i % 64);
	}
}

static uint64_t top_page(const struct vmm_mem *m)
{
	uint64_t top = 0;

	for (unsigned i = 0; i < m->nslots; i++)
		if (m->slots[i].gpa + m->slots[i].size > top)
			top = m->slots[i].gpa + m->slots[i].size;
	return top / VMM_PAGE_SIZE;
}

int vmm_mem_dirty_start(struct vmm_mem *m)
{
	if (!m->dirty_map) {
		m->dirty_pages = top_page(m);
		m->dirty_map = calloc((m->dirty_pages + 63) / 64, sizeof(uint64_t));
		if (!m->dirty_map)
			return -ENOMEM;
	} else {
		memset(m->dirty_map, 0, (m->dirty_pages + 63) / 64 * sizeof(uint64_t));
	}
	atomic_store(&m->dirty, m->dirty_map);
	return 0;
}

void vmm_mem_dirty_stop(struct vmm_mem *m)
{
	atomic_store(&m->dirty, NULL);
}

uint64_t vmm_mem_dirty_harvest(struct vmm_mem *m, uint64_t *out)
{
	uint64_t n = 0, words = (m->dirty_pages + 63) / 64;

	for (uint64_t w = 0; w < words; w++) {
		uint64_t v = m->dirty_map
		                     ? __atomic_exchange_n(&m->dirty_map[w], 0, __ATOMIC_SEQ_CST)
		                     : 0;
		out[w] = v;
		n += (uint64_t)__builtin_popcountll(v);
	}
	return n;
}

void vmm_mem_merge_dirty(struct vmm_mem *m, uint64_t first, const uint64_t *bm, uint64_t npages)
{
	uint64_t *d = atomic_load_explicit(&m->dirty, memory_order_acquire);

	if (!d)
		return;
	for (uint64_t w = 0; w < (npages + 63) / 64 && first + w * 64 < m->dirty_pages; w++)
		if (bm[w])
			__atomic_fetch_or(&d[first / 64 + w], bm[w], __ATOMIC_SEQ_CST);
}

void vmm_mem_mark_dirty(const struct vmm_mem *m, uint64_t gpa, uint64_t len)
{
	uint64_t *d = atomic_load_explicit(&((struct vmm_mem *)m)->dirty, memory_order_acquire);

	if (!d || !len)
		return;
	for (uint64_t p = gpa / VMM_PAGE_SIZE; p <= (gpa + len - 1) / VMM_PAGE_SIZE; p++)
		if (p < m->dirty_pages)
			__atomic_fetch_or(&d[p / 64], 1ull << (p % 64), __ATOMIC_SEQ_CST);
}

int vmm_mem_suspect_start(struct vmm_mem *m)
{
	uint64_t pages = top_page(m);
	uint64_t *b = calloc((pages + 63) / 64 ? (pages + 63) / 64 : 1, sizeof(uint64_t));

	if (!b)
		return -ENOMEM;
	free(m->suspect);
	m->suspect = b;
	m->suspect_pages = pages;
	atomic_store(&m->suspect_seen, 0);
	atomic_store(&m->pages_checked, 0);
	return 0;
}

void vmm_mem_suspect_set(struct vmm_mem *m, uint64_t page, bool bad)
{
	if (!m->suspect || page >= m->suspect_pages)
		return;
	uint64_t bit = 1ull << (page % 64);
	if (bad) {
		__atomic_fetch_or(&m->suspect[page / 64], bit, __ATOMIC_RELAXED);
		atomic_fetch_add_explicit(&m->suspect_seen, 1, memory_order_relaxed);
	} else if (__atomic_load_n(&m->suspect[page / 64], __ATOMIC_RELAXED) & bit) {
		__atomic_fetch_and(&m->suspect[page / 64], ~bit, __ATOMIC_RELAXED);
	}
}

void vmm_mem_suspect_clear(struct vmm_mem *m, uint64_t gpa, uint64_t len)
{
	if (!m->suspect || !len)
		return;
	for (uint64_t p = gpa / VMM_PAGE_SIZE; p <= (gpa + len - 1) / VMM_PAGE_SIZE; p++) {
		if (p >= m->suspect_pages)
			break;
		if (p % 64 == 0 && p + 64 <= (gpa + len) / VMM_PAGE_SIZE) { /* a whole word */
			if (__atomic_load_n(&m->suspect[p / 64], __ATOMIC_RELAXED))
				__atomic_store_n(&m->suspect[p / 64], 0, __ATOMIC_RELAXED);
			p += 63;
			continue;
		}
		vmm_mem_suspect_set(m, p, false);
	}
}

uint64_t vmm_mem_suspect_count(const struct vmm_mem *m, uint64_t *first)
{
	uint64_t n = 0;

	*first = 0;
	for (uint64_t w = 0; m->suspect && w < (m->suspect_pages + 63) / 64; w++) {
		uint64_t v = __atomic_load_n(&m->suspect[w], __ATOMIC_RELAXED);
		if (v && !n)
			*first = (w * 64 + (uint64_t)__builtin_ctzll(v)) * VMM_PAGE_SIZE;
		n += (uint64_t)__builtin_popcountll(v);
	}
	return n;
}

void vmm_mem_free(struct vmm_mem *m)
{
	free(m->dirty_map);
	free(m->suspect);
	for (unsigned i = 0; i < m->nslots; i++) {
		munmap(m->slots[i].host, m->slots[i].size);
		if (m->slots[i].memfd >= 0)
			close(m->slots[i].memfd);
	}
	if (m->nslots && m->pagemap_fd >= 0)
		close(m->pagemap_fd);
	memset(m, 0, sizeof(*m));
	m->pagemap_fd = -1;
}

void *vmm_gpa(const struct vmm_mem *m, uint64_t gpa, uint64_t len)
{
	for (unsigned i = 0; i < m->nslots; i++) {
		const struct vmm_mem_slot *s = &m->slots[i];
		if (gpa >= s->gpa && gpa - s->gpa <= s->size && len <= s->size - (gpa - s->gpa))
			return s->host + (gpa - s->gpa);
	}
	return NULL;
}
