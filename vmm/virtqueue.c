#include "virtqueue.h"

#include <endian.h>
#include <errno.h>
#include <string.h>

/* struct virtq_desc, as the guest lays it out */
struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

#define DESC_SIZE 16u

int vmm_vq_check(const struct vmm_vq *q, const struct vmm_mem *m)
{
	uint64_t n = q->size;

	if (!n || n > VMM_VQ_MAX_SIZE || (n & (n - 1)))
		return -EINVAL;
	if (q->desc % 16 || q->avail % 2 || q->used % 4)
		return -EINVAL;
	/* avail: flags, idx, ring[n], used_event; used: flags, idx, ring[n],
	 * avail_event */
	if (!vmm_gpa(m, q->desc, DESC_SIZE * n) || !vmm_gpa(m, q->avail, 6 + 2 * n) ||
	    !vmm_gpa(m, q->used, 6 + 8 * n))
		return -EINVAL;
	return 0;
}

static int bad(const char **why, const char *what)
{
	if (why)
		*why = what;
	return -EINVAL;
}

static bool read_desc(const struct vmm_mem *m, uint64_t table, uint32_t i, struct desc *d)
{
	const uint8_t *p = vmm_gpa(m, table + (uint64_t)DESC_SIZE * i, DESC_SIZE);

	if (!p)
		return false;
	memcpy(&d->addr, p, 8);
	memcpy(&d->len, p + 8, 4);
	memcpy(&d->flags, p + 12, 2);
	memcpy(&d->next, p + 14, 2);
	d->addr = le64toh(d->addr);
	d->len = le32toh(d->len);
	d->flags = le16toh(d->flags);
	d->next = le16toh(d->next);
	return true;
}

/* Walks the chain from descriptor `head` of the queue's table into c. */
static int walk(const struct vmm_vq *q, const struct vmm_mem *m, uint16_t head,
                struct vmm_vq_chain *c, const char **why)
{
	uint64_t table = q->desc, total = 0;
	uint32_t tsize = q->size, i = head;
	unsigned budget = q->size; /* buffer descriptors the chain may still have */
	bool in_table = false;
	struct desc d;

	c->head = head;
	c->nr = c->nw = 0;
	c->rlen = c->wlen = 0;
	for (;;) {
		if (!read_desc(m, table, i, &d))
			return bad(why, in_table ? "indirect table outside guest memory"
			                         : "descriptor table outside guest memory");
		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			if (!q->indirect)
				return bad(why, "indirect descriptor (not negotiated)");
			if (in_table)
				return bad(why, "indirect descriptor inside an indirect table");
			if (d.flags & VIRTQ_DESC_F_NEXT)
				return bad(why, "indirect descriptor with NEXT set");
			if (!d.len || d.len % DESC_SIZE)
				return bad(why, "indirect table length not a multiple of 16");
			if (!vmm_gpa(m, d.addr, d.len))
				return bad(why, "indirect table outside guest memory");
			table = d.addr;
			tsize = d.len / DESC_SIZE;
			in_table = true;
			i = 0;
			continue;
		}
		if (budget-- == 0)
			return bad(why, "descriptor chain longer than the queue (or a loop)");
		if (d.len) {
			void *buf = vmm_gpa(m, d.addr, d.len);
			if (!buf)
				return bad(why, "buffer outside guest memory");
			total += d.len;
			if (total > UINT32_MAX)
				return bad(why, "descriptor chain of 4 GiB or more");
			struct iovec *v = &c->iov[c->nr + c->nw];
			c->gpa[c->nr + c->nw] = d.addr;
			v->iov_base = buf;
			v->iov_len = d.len;
			if (d.flags & VIRTQ_DESC_F_WRITE) {
				c->nw++;
				c->wlen += d.len;
			} else {
				if (c->nw)
					return bad(why, "readable buffer after a writable one");
				c->nr++;
				c->rlen += d.len;
			}
		}
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			return 0;
		if (d.next >= tsize)
			return bad(why, "next descriptor index out of range");
		i = d.next;
	}
}

int vmm_vq_pop(struct vmm_vq *q, const struct vmm_mem *m, struct vmm_vq_chain *c, const char **why)
{
	if (!q->ready)
		return 0;
	uint8_t *avail = vmm_gpa(m, q->avail, 4 + 2ull * q->size);
	if (!avail)
		return bad(why, "available ring outside guest memory");
	/* the index first, then (ordered after it) the entries it covers */
	uint16_t idx = le16toh(__atomic_load_n((uint16_t *)(avail + 2), __ATOMIC_ACQUIRE));
	if (idx == q->last_avail)
		return 0;
	if ((uint16_t)(idx - q->last_avail) > q->size)
		return bad(why, "available index ran more than the queue size ahead");
	uint16_t head;
	memcpy(&head, avail + 4 + 2 * (q->last_avail & (q->size - 1)), 2);
	head = le16toh(head);
	if (head >= q->size)
		return bad(why, "available ring entry out of range");
	int ret = walk(q, m, head, c, why);
	if (ret < 0)
		return ret;
	q->last_avail++;
	return 1;
}

void vmm_vq_unpop(struct vmm_vq *q)
{
	q->last_avail--;
}

int vmm_vq_push(struct vmm_vq *q, const struct vmm_mem *m, uint16_t head, uint32_t len)
{
	uint8_t *used = vmm_gpa(m, q->used, 4 + 8ull * q->size);
	uint32_t elem[2] = { htole32(head), htole32(len) };

	if (!used || !q->size)
		return -EINVAL;
	memcpy(used + 4 + 8 * (q->used_idx & (q->size - 1)), elem, 8);
	vmm_mem_mark_dirty(m, q->used, 4 + 8ull * q->size);
	q->used_idx++;
	/* the entry before the index that publishes it */
	__atomic_store_n((uint16_t *)(used + 2), htole16(q->used_idx), __ATOMIC_RELEASE);
	return 0;
}

bool vmm_vq_want_irq(const struct vmm_vq *q, const struct vmm_mem *m)
{
	const uint16_t *flags = vmm_gpa(m, q->avail, 2);

	if (!flags)
		return true;
	/* the used index store before the flags load: a driver that re-enables
	 * interrupts and then checks the used ring cannot miss both */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return !(le16toh(__atomic_load_n(flags, __ATOMIC_RELAXED)) & VIRTQ_AVAIL_F_NO_INTERRUPT);
}

unsigned vmm_iov_slice(const struct iovec *iov, unsigned n, size_t off, size_t len,
                       struct iovec *out)
{
	unsigned k = 0;

	for (unsigned i = 0; i < n && len; i++) {
		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		size_t take = iov[i].iov_len - off;
		if (take > len)
			take = len;
		out[k].iov_base = (uint8_t *)iov[i].iov_base + off;
		out[k].iov_len = take;
		k++;
		len -= take;
		off = 0;
	}
	return k;
}

/* Copies between bytes [off, off + len) of iov[0 .. n) and dst (from the
 * iovecs) or src (into them). */
static size_t copy_iov(const struct iovec *iov, unsigned n, size_t off, uint8_t *dst,
                       const uint8_t *src, size_t len)
{
	size_t done = 0;

	for (unsigned i = 0; i < n && done < len; i++) {
		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		size_t take = iov[i].iov_len - off;
		if (take > len - done)
			take = len - done;
		uint8_t *p = (uint8_t *)iov[i].iov_base + off;
		if (src)
			memcpy(p, src + done, take);
		else if (dst)
			memcpy(dst + done, p, take);
		done += take;
		off = 0;
	}
	return done;
}

size_t vmm_vq_read(const struct vmm_vq_chain *c, size_t off, void *dst, size_t n)
{
	return copy_iov(c->iov, c->nr, off, dst, NULL, n);
}

size_t vmm_vq_write(const struct vmm_vq_chain *c, size_t off, const void *src, size_t n)
{
	return copy_iov(c->iov + c->nr, c->nw, off, NULL, src, n);
}
