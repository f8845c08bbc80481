/* The VM state stream: what vmx saves and restores, and what migrate/ and
 * replica/ send. Format (docs/state-format.md):
 *
 *   header   "VMKSTATE" u32 version u32 flags u64 reserved u32 crc32c
 *   section* u32 type u32 instance u64 length payload[length] u32 crc32c
 *   the last section is type END.
 *
 * Little-endian; the crc32c of a section covers its type, instance, length
 * and payload (a RAMD or RAMC section's, all but its pages: ramstate.h).
 * A reader refuses an unknown version, a section longer than
 * VMM_STATE_MAX_SECTION, and any checksum mismatch, naming what it found. */
#ifndef VMM_STATE_H
#define VMM_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "sbuf.h"

#define VMM_STATE_MAGIC       "VMKSTATE"
#define VMM_STATE_VERSION     1
#define VMM_STATE_MAX_SECTION (64u << 20)
#define VMM_STATE_MAX_IOV     300 /* buffers of one vmm_state_write_sectionv */

#define VMM_FOURCC(a, b, c, d)                                                                     \
	((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)
#define SEC_CPU_MODEL VMM_FOURCC('C', 'P', 'U', 'M') /* first: compatibility record */
#define SEC_CONFIG    VMM_FOURCC('C', 'O', 'N', 'F') /* memory layout, vCPU count */
#define SEC_VCPU      VMM_FOURCC('V', 'C', 'P', 'U') /* instance = vCPU index */
#define SEC_SOFTCPU   VMM_FOURCC('S', 'C', 'P', 'U') /* a software-CPU vCPU (softcpu.h) */
#define SEC_IRQCHIP   VMM_FOURCC('I', 'R', 'Q', 'C')
#define SEC_PIT       VMM_FOURCC('P', 'I', 'T', '2')
#define SEC_CLOCK     VMM_FOURCC('C', 'L', 'C', 'K')
#define SEC_DEVICE    VMM_FOURCC('D', 'E', 'V', 'S') /* instance = device index */
#define SEC_RAM       VMM_FOURCC('R', 'A', 'M', ' ') /* pages, zero pages as flags */
#define SEC_RAMZ      VMM_FOURCC('R', 'A', 'M', 'Z') /* a RAM payload, lz4-compressed */
#define SEC_RAMC      VMM_FOURCC('R', 'A', 'M', 'C') /* RAM, a checksum per page (ramstate.h) */
#define SEC_RAMD      VMM_FOURCC('R', 'A', 'M', 'D') /* RAM straight from guest memory */
#define SEC_SLOG      VMM_FOURCC('S', 'L', 'O', 'G') /* the serial log so far (storage moves) */
#define SEC_ZERO      VMM_FOURCC('Z', 'E', 'R', 'O') /* a range the guest never wrote */
#define SEC_SYNC      VMM_FOURCC('S', 'Y', 'N', 'C') /* migration: a pass ends (u32 pass) */
/* migration: the source's CLOCK_REALTIME (u64 ns) as it read the vCPUs,
 * before them: the destination sets the guest TSC forward by the time
 * the state was on its way (vm.h: src_realtime_ns) */
#define SEC_TIME VMM_FOURCC('T', 'I', 'M', 'E')
#define SEC_END  VMM_FOURCC('E', 'N', 'D', ' ')

/* Where bytes go to or come from: a file, a socket, a buffer. Both return
 * 0 or -errno; read fails with -EPIPE at a premature end. */
struct vmm_stream {
	int (*write)(void *arg, const void *p, size_t n);
	/* optional: n buffers in one call (a socket's sendmsg); NULL: each
	 * through write */
	int (*writev)(void *arg, const struct iovec *iov, int n);
	int (*read)(void *arg, void *p, size_t n);
	void *arg;
	uint64_t bytes; /* moved so far */
	bool compress;  /* RAM sections go lz4-compressed (RAMZ) where that is smaller */
	/* RAM sections go as RAMD, their pages straight from guest memory
	 * (live migration: see ramstate.h); not with compress */
	bool direct;
	/* with direct: each page with its crc32c, checked at the other end
	 * (RAMC instead of RAMD) */
	bool page_crcs;
	/* a reader's answer to a SYNC section (live migration: everything
	 * before it is loaded); NULL: SYNC is refused as unknown */
	int (*sync)(void *arg, uint32_t pass);
	void *sync_arg;
};

/* An fd-backed stream (handles partial reads/writes and EINTR). */
void vmm_stream_fd(struct vmm_stream *s, int *fd);
/* A stream that appends to b, or reads r (the end of r reads as -EPIPE). */
void vmm_stream_sbuf(struct vmm_stream *s, struct sbuf *b);
void vmm_stream_rbuf(struct vmm_stream *s, struct rbuf *r);

uint32_t vmm_crc32c(uint32_t crc, const void *p, size_t n);
/* vmm_crc32c(0, p, 4096), the same value, three chains at once. */
uint32_t vmm_crc32c_page(const void *p);

int vmm_state_write_header(struct vmm_stream *s);
int vmm_state_write_section(struct vmm_stream *s, uint32_t type, uint32_t instance,
                            const void *payload, size_t len);
/* A section whose payload is n buffers (sent in one writev where the
 * stream has it), its trailer the crc32c of the header and of the first
 * `checked` buffers only: the others go unchecked (RAMD) or are the
 * caller's to check (RAMC). */
int vmm_state_write_sectionv(struct vmm_stream *s, uint32_t type, uint32_t instance,
                             const struct iovec *iov, int n, int checked);

int vmm_state_read_header(struct vmm_stream *s, char *err, size_t errlen);
/* Reads the next section into payload (reset first). */
int vmm_state_read_section(struct vmm_stream *s, uint32_t *type, uint32_t *instance,
                           struct sbuf *payload, char *err, size_t errlen);
/* The same in parts, for a reader that puts a payload elsewhere (RAM pages
 * straight into guest memory): the 16-byte header (its length checked
 * against the limit), n bytes of the payload, and the trailer checked
 * against crc, the running crc32c of the header and the whole payload. */
int vmm_state_read_head(struct vmm_stream *s, uint8_t h[16], uint32_t *type, uint32_t *instance,
                        uint64_t *len, char *err, size_t errlen);
int vmm_state_read_part(struct vmm_stream *s, void *p, size_t n, uint32_t type, uint32_t instance,
                        char *err, size_t errlen);
int vmm_state_read_trailer(struct vmm_stream *s, uint32_t crc, uint32_t type, uint32_t instance,
                           char *err, size_t errlen);
/* After vmm_state_read_head: the payload of len bytes into payload, and
 * the trailer checked (what vmm_state_read_section does after the head). */
int vmm_state_read_rest(struct vmm_stream *s, const uint8_t h[16], uint32_t type, uint32_t instance,
                        uint64_t len, struct sbuf *payload, char *err, size_t errlen);

/* "CPUM" etc. for messages. */
void vmm_fourcc_str(uint32_t t, char out[5]);

#endif
