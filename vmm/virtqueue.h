/* The device side of a split virtqueue (VIRTIO 1.x, 2.7), independent of the
 * transport: takes descriptor chains from the available ring, hands their
 * buffers out as iovecs (host pointers into guest RAM) and returns them on
 * the used ring.
 *
 * Every ring, descriptor table and buffer address goes through vmm_gpa()
 * and every descriptor is copied once before it is looked at, so a guest
 * that rewrites its rings concurrently can make a chain malformed but never
 * make the device touch memory outside guest RAM. A malformed ring makes
 * vmm_vq_pop() fail; the transport then sets DEVICE_NEEDS_RESET.
 *
 * No locking: the transport serialises every call on a queue. */
#ifndef VMM_VIRTQUEUE_H
#define VMM_VIRTQUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "mem.h"

#define VMM_VQ_MAX_SIZE 256 /* largest queue (QueueNumMax) */

#define VIRTQ_DESC_F_NEXT     1
#define VIRTQ_DESC_F_WRITE    2
#define VIRTQ_DESC_F_INDIRECT 4

#define VIRTQ_AVAIL_F_NO_INTERRUPT 1

struct vmm_vq {
	uint64_t desc, avail, used; /* guest physical addresses of the three parts */
	uint16_t size;              /* QueueNum: entries, a power of two when ready */
	bool ready;
	bool indirect;       /* VIRTIO_RING_F_INDIRECT_DESC negotiated */
	uint16_t last_avail; /* next available ring entry to take */
	uint16_t used_idx;   /* next used ring entry to fill (the used index) */
};

/* One descriptor chain: its readable buffers are iov[0 .. nr), the writable
 * ones iov[nr .. nr + nw) (a chain that puts a readable buffer after a
 * writable one is malformed). Zero-length descriptors are skipped. */
struct vmm_vq_chain {
	uint16_t head;       /* what goes back on the used ring */
	unsigned nr, nw;     /* readable / writable buffers */
	uint32_t rlen, wlen; /* their total bytes (rlen + wlen < 4 GiB) */
	struct iovec iov[VMM_VQ_MAX_SIZE];
	uint64_t gpa[VMM_VQ_MAX_SIZE]; /* guest-physical address of each iov (dirty log) */
};

/* A queue the driver marks ready: size a power of two <= VMM_VQ_MAX_SIZE,
 * parts aligned as the spec requires (16, 2, 4) and inside guest RAM.
 * 0 or -EINVAL. */
int vmm_vq_check(const struct vmm_vq *q, const struct vmm_mem *m);

/* Takes the next available chain: 1, or 0 when the ring is empty (or the
 * queue not ready), or -EINVAL for a malformed ring or chain (*why, when
 * not NULL, then says what: for the log). A chain has at most q->size
 * buffer descriptors in all (an indirect table included), which also ends
 * any loop. */
int vmm_vq_pop(struct vmm_vq *q, const struct vmm_mem *m, struct vmm_vq_chain *c, const char **why);
/* Gives back the chain just popped (unused), e.g. when a receive buffer
 * turns out not to be needed. */
void vmm_vq_unpop(struct vmm_vq *q);
/* Puts chain `head` on the used ring with `len` bytes written to it and
 * publishes the new used index. 0, or -EINVAL if the used ring is not in
 * guest RAM (cannot happen for a queue that passed vmm_vq_check). */
int vmm_vq_push(struct vmm_vq *q, const struct vmm_mem *m, uint16_t head, uint32_t len);
/* After pushes: does the driver want an interrupt (VIRTQ_AVAIL_F_NO_INTERRUPT
 * clear)? No EVENT_IDX. */
bool vmm_vq_want_irq(const struct vmm_vq *q, const struct vmm_mem *m);

/* Copy n bytes at offset off of the chain's readable part into dst, or
 * from src into its writable part; return the bytes copied (short at the
 * end of the part). */
size_t vmm_vq_read(const struct vmm_vq_chain *c, size_t off, void *dst, size_t n);
size_t vmm_vq_write(const struct vmm_vq_chain *c, size_t off, const void *src, size_t n);

/* The iovecs covering bytes [off, off + len) of iov[0 .. n), into out (room
 * for n entries); returns how many (0 if the range is empty or beyond). */
unsigned vmm_iov_slice(const struct iovec *iov, unsigned n, size_t off, size_t len,
                       struct iovec *out);

#endif
