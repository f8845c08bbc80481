/* Guest RAM in the state stream: RAM sections of up to 256 pages, each a
 * header, a bitmap of which pages are non-zero, then those pages. Zero
 * pages cost one bit (the destination's fresh memfd RAM reads as zero, and
 * pages known zero are cleared explicitly). Migration sends the same
 * sections for its dirty pages. */
#ifndef VMM_RAMSTATE_H
#define VMM_RAMSTATE_H

#include <stdint.h>

#include "mem.h"
#include "state.h"

#define RAMSTATE_CHUNK_PAGES 256

struct ram_stats {
	uint64_t pages, zero_pages, bytes;
};

/* Pages [gpa, gpa + npages * 4 KiB) as one RAM section (npages <= 256). */
int vmm_ram_save_range(const struct vmm_mem *m, struct vmm_stream *s, uint64_t gpa, uint32_t npages,
                       uint32_t instance, struct ram_stats *st);
/* All of guest RAM. */
int vmm_ram_save_all(const struct vmm_mem *m, struct vmm_stream *s, struct ram_stats *st);
/* The same for the pages [from, to) (page numbers from gpa 0) only; *inst
 * numbers the sections. */
int vmm_ram_save_all_range(const struct vmm_mem *m, struct vmm_stream *s, uint64_t from,
                           uint64_t to, uint32_t *inst, struct ram_stats *st);
/* The pages of [from, to) whose bits are set in dirty (a bit per page from
 * gpa 0; words of 64), as sections of runs of dirty pages; *inst numbers
 * the sections. */
int vmm_ram_save_dirty_range(const struct vmm_mem *m, struct vmm_stream *s, const uint64_t *dirty,
                             uint64_t from, uint64_t to, uint32_t *inst, struct ram_stats *st);
/* Applies one ZERO section (u64 gpa, u64 bytes, page-aligned, inside one
 * slot): the range reads as zero afterwards, without writing a page (a
 * hole is punched in the memfd, or anonymous pages are dropped). */
int vmm_ram_zero_load(struct vmm_mem *m, const uint8_t *payload, size_t len, char *err,
                      size_t errlen);
/* Applies one RAMZ section payload (u32 the RAM payload's length, its lz4
 * block): -EBADMSG for a length no RAM section has or corrupt lz4 data. */
int vmm_ram_load_compressed(struct vmm_mem *m, const uint8_t *payload, size_t len, char *err,
                            size_t errlen);
/* Reads the next section of s (as vmm_state_read_section). With m, a RAM
 * section (RAMD, RAMC too) is loaded as it is read, its pages straight into guest memory
 * (no copy through payload), and *loaded says so; its header and bitmap
 * are checked before a page is written, its checksum after: a VM whose
 * restore failed must not run. Other sections go into payload. */
int vmm_ram_read_section(struct vmm_stream *s, struct vmm_mem *m, uint32_t *type, uint32_t *inst,
                         struct sbuf *payload, bool *loaded, char *err, size_t errlen);
/* Checks one RAM section payload (or one ZERO section's) as loading it
 * would, writing nothing: -EBADMSG with err for anything malformed or
 * outside guest RAM. */
int vmm_ram_check(const struct vmm_mem *m, const uint8_t *payload, size_t len, char *err,
                  size_t errlen);
int vmm_ram_zero_check(const struct vmm_mem *m, const uint8_t *payload, size_t len, char *err,
                       size_t errlen);
/* Applies one RAM section payload; -EBADMSG for anything malformed or
 * outside guest RAM (nothing is written then). */
int vmm_ram_load(struct vmm_mem *m, const uint8_t *payload, size_t len, char *err, size_t errlen);

#endif
