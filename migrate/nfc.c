/* NFC, the provisioning file copy (nfc.h has the wire). */
#include "nfc.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <linux/fs.h>

#include "le.h"
#include "net.h"
#include "util.h"
#include "vmm/state.h"
#include "wire.h"

#define HELLO_TIMEOUT_MS  10000
#define RECORD_TIMEOUT_MS 60000
#define DONE_TIMEOUT_MS   300000 /* the server syncs the whole file first */
#define NFC_MAX_SIZE      (16ull << 40)
#define DATA_HDR          17   /* 'D' u64 offset u32 length u32 crc */
#define TAKEOVER_WAIT_MS  5000 /* for the stalled connection to let go */
#define RECONNECT_MS      2000 /* one connection attempt of nfc_send_path */
#define KEEPALIVE_MS      2000 /* a skip record at least this often over zeros */

static int pread_full(int fd, void *buf, size_t n, uint64_t off)
{
	uint8_t *b = buf;

	while (n) {
		ssize_t k = pread(fd, b, n, (off_t)off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k == 0 ? -EIO : -errno; /* the file shrank under us */
		b += k;
		off += (uint64_t)k;
		n -= (size_t)k;
	}
	return 0;
}

/* fsync of the directory that holds path: its new name is durable too */
static void sync_dir_of(const char *path)
{
	char d[4096];

	snprintf(d, sizeof(d), "%s", path);
	char *slash = strrchr(d, '/');
	if (slash == d)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		snprintf(d, sizeof(d), ".");
	int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

void nfc_xfer_init(struct nfc_xfer *x, const char *token, const char *path)
{
	memset(x, 0, sizeof(*x));
	snprintf(x->token, sizeof(x->token), "%s", token);
	snprintf(x->path, sizeof(x->path), "%s", path);
	x->conn_fd = -1;
	pthread_mutex_init(&x->m, NULL);
	pthread_cond_init(&x->cv, NULL);
}

void nfc_xfer_destroy(struct nfc_xfer *x)
{
	pthread_cond_destroy(&x->cv);
	pthread_mutex_destroy(&x->m);
}

/* ---- the receiving side ---- */

struct nfc_xfer *nfc_lookup_one(void *xfer, const char *token)
{
	struct nfc_xfer *x = xfer;
	return strcmp(token, x->token) == 0 ? x : NULL;
}

static int refuse(int fd, const char *why, int ret, char *err, size_t errlen)
{
	char line[400];

	snprintf(line, sizeof(line), "NO %s\n", why);
	wire_send_line(fd, line);
	snprintf(err, errlen, "NFC: refused a transfer: %s", why);
	return ret;
}

static int receive(int fd, struct nfc_xfer *x, int part, uint64_t from, char *err, size_t errlen)
{
	uint8_t h[DATA_HDR];
	uint64_t end = from; /* where the last chunk ended: records only go up */
	uint8_t *buf = malloc(NFC_CHUNK);
	int ret;

	if (!buf)
		return -ENOMEM;
	for (;;) {
		if ((ret = net_recv_all(fd, h, 1, RECORD_TIMEOUT_MS)) < 0) {
			snprintf(err, errlen, "the sender went away at offset %" PRIu64 " (%s)",
			         end, strerror(-ret));
			break;
		}
		if (h[0] == 'K') { /* the sender skipped zeros up to here: a hole */
			if ((ret = net_recv_all(fd, h + 1, 8, RECORD_TIMEOUT_MS)) < 0) {
				snprintf(err, errlen, "the sender went away in a skip record");
				break;
			}
			uint64_t to = le_get64(h + 1);
			if (to < end || to > NFC_MAX_SIZE) {
				snprintf(err, errlen, "a skip to offset %" PRIu64 " from %" PRIu64,
				         to, end);
				ret = -EBADMSG;
				break;
			}
			end = to;
			pthread_mutex_lock(&x->m);
			x->verified = end;
			pthread_mutex_unlock(&x->m);
			continue;
		}
		if (h[0] == 'A') {
			snprintf(err, errlen, "the sender gave the transfer up");
			ret = -ECANCELED;
			break;
		}
		if (h[0] == 'E') {
			if ((ret = net_recv_all(fd, h + 1, 8, RECORD_TIMEOUT_MS)) < 0) {
				snprintf(err, errlen, "the sender went away in its END record");
				break;
			}
			uint64_t size = le_get64(h + 1);
			if (size < end || size > NFC_MAX_SIZE) {
				snprintf(err, errlen,
				         "END says the file has %" PRIu64
				         " bytes, but data reached %" PRIu64,
				         size, end);
				ret = -EBADMSG;
				break;
			}
			if (ftruncate(part, (off_t)size) < 0 || fsync(part) < 0) {
				ret = -errno;
				snprintf(err, errlen, "completing %s: %s", x->path,
				         strerror(errno));
				break;
			}
			pthread_mutex_lock(&x->m);
			x->size = size;
			pthread_mutex_unlock(&x->m);
			ret = 0;
			break;
		}
		if (h[0] != 'D') {
			snprintf(err, errlen, "a record of unknown type 0x%02x: not an NFC sender",
			         h[0]);
			ret = -EBADMSG;
			break;
		}
		if ((ret = net_recv_all(fd, h + 1, DATA_HDR - 1, RECORD_TIMEOUT_MS)) < 0) {
			snprintf(err, errlen, "the sender went away at offset %" PRIu64, end);
			break;
		}
		uint64_t off = le_get64(h + 1);
		uint32_t len = le_get32(h + 9), crc = le_get32(h + 13);
		if (len == 0 || len > NFC_CHUNK || off < end || off > NFC_MAX_SIZE - len) {
			snprintf(err, errlen,
			         "a chunk of %u bytes at offset %" PRIu64
			         " (chunks are 1..%u bytes, in increasing order from %" PRIu64 ")",
			         len, off, NFC_CHUNK, end);
			ret = -EBADMSG;
			break;
		}
		if ((ret = net_recv_all(fd, buf, len, RECORD_TIMEOUT_MS)) < 0) {
			snprintf(err, errlen,
			         "the connection dropped in the chunk at offset %" PRIu64, off);
			break;
		}
		if (vmm_crc32c(0, buf, len) != crc) {
			snprintf(err, errlen,
			         "the chunk at offset %" PRIu64
			         " (%u bytes) failed its checksum: corrupted in transit; "
			         "nothing of it was written",
			         off, len);
			ret = -EBADMSG;
			break;
		}
		if ((ret = util_pwrite_all(part, buf, len, off)) < 0) {
			snprintf(err, errlen, "writing %s.part at offset %" PRIu64 ": %s", x->path,
			         off, strerror(-ret));
			break;
		}
		end = off + len;
		pthread_mutex_lock(&x->m);
		x->verified = end; /* what lies between the chunks is a hole */
		x->received += len;
		pthread_mutex_unlock(&x->m);
	}
	free(buf);
	return ret;
}

int nfc_serve(int fd, nfc_lookup_fn lookup, void *arg, char *err, size_t errlen)
{
	char line[200], part[4200];
	int ret;

	ret = wire_read_line(fd, line, sizeof(line), HELLO_TIMEOUT_MS);
	if (ret < 0) {
		snprintf(err, errlen, "NFC: no greeting from the peer (%s)", strerror(-ret));
		return ret;
	}
	if (strncmp(line, "VMKNFC1 ", 8) != 0 || strlen(line) != 8 + NFC_TOKEN_HEX)
		return refuse(fd, "not an NFC greeting (VMKNFC1 <token>)", -EPROTO, err, errlen);
	struct nfc_xfer *x = lookup(arg, line + 8);
	if (!x)
		return refuse(fd, "unknown transfer token", -EACCES, err, errlen);
	pthread_mutex_lock(&x->m);
	if (x->busy && !x->done) {
		/* the sender came back: its old connection stalled on a dead link
		 * (only the token's holder gets here), so the new one takes over */
		struct timespec ts;
		util_deadline(&ts, TAKEOVER_WAIT_MS);
		shutdown(x->conn_fd, SHUT_RDWR);
		while (x->busy && pthread_cond_timedwait(&x->cv, &x->m, &ts) == 0)
			;
	}
	if (x->done) {
		/* complete already: a sender that lost our DONE asks again, and
		 * hears it again (nothing is written) */
		uint64_t got = x->received;
		pthread_mutex_unlock(&x->m);
		snprintf(line, sizeof(line), "DONE %" PRIu64 "\n", got);
		wire_send_line(fd, line);
		return 0;
	}
	const char *busy = x->dead   ? "that transfer failed for good"
	                   : x->busy ? "that transfer is in progress on another connection"
	                             : NULL;
	if (!busy) {
		x->busy = true;
		x->conn_fd = fd;
	}
	uint64_t from = x->verified;
	pthread_mutex_unlock(&x->m);
	if (busy)
		return refuse(fd, busy, -EBUSY, err, errlen);

	snprintf(part, sizeof(part), "%s.part", x->path);
	int pfd = open(part, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (pfd < 0 || ftruncate(pfd, (off_t)from) < 0) { /* no unverified tail */
		ret = -errno;
		char why[300];
		snprintf(why, sizeof(why), "cannot write %s: %s", part, strerror(errno));
		if (pfd >= 0)
			close(pfd);
		pthread_mutex_lock(&x->m);
		x->busy = false;
		x->conn_fd = -1;
		pthread_cond_broadcast(&x->cv);
		pthread_mutex_unlock(&x->m);
		return refuse(fd, why, ret, err, errlen);
	}
	snprintf(line, sizeof(line), "OK %" PRIu64 "\n", from);
	ret = wire_send_line(fd, line);
	if (ret == 0)
		ret = receive(fd, x, pfd, from, err, errlen);
	else
		snprintf(err, errlen, "NFC: the sender went away (%s)", strerror(-ret));
	if (ret == 0 && rename(part, x->path) < 0) {
		ret = -errno;
		snprintf(err, errlen, "NFC: renaming %s into place: %s", part, strerror(errno));
	}
	if (ret < 0)
		fdatasync(pfd); /* what was verified stays for a resume */
	close(pfd);
	if (ret == 0)
		sync_dir_of(x->path);
	bool dead = ret == -ECANCELED;
	if (ret == 0 && x->commit && (ret = x->commit(x, x->commit_arg, err, errlen)) < 0)
		dead = true; /* the file is in place but refused: no resend replaces it */
	pthread_mutex_lock(&x->m);
	x->dead |= dead;
	x->busy = false;
	x->conn_fd = -1;
	pthread_cond_broadcast(&x->cv);
	x->done = ret == 0;
	x->error = ret;
	snprintf(x->why, sizeof(x->why), "%s", ret < 0 ? err : "");
	uint64_t got = x->received;
	pthread_mutex_unlock(&x->m);
	if (ret == 0)
		snprintf(line, sizeof(line), "DONE %" PRIu64 "\n", got);
	else
		snprintf(line, sizeof(line), "ERR %.180s\n", err);
	wire_send_line(fd, line); /* best effort: the peer may be gone */
	return ret;
}

/* ---- the sending side ---- */

/* Sleeps until sent bytes since t0 fit under max_bps (in slices, so a
 * cancel is seen). */
static void pace(uint64_t t0, uint64_t sent, uint64_t max_bps, atomic_bool *cancel)
{
	for (;;) {
		uint64_t due = t0 + (uint64_t)((double)sent * 1000.0 / (double)max_bps);
		uint64_t now = util_now_ms();
		if (due <= now || (cancel && atomic_load(cancel)))
			return;
		usleep((useconds_t)(due - now > 100 ? 100000 : (due - now) * 1000));
	}
}

/* header and data in one go: with TCP_NODELAY two sends would put the
 * 17-byte header in a segment of its own */
static int send_iov(int fd, struct iovec *iov, int n)
{
	while (n) {
		struct msghdr m = { .msg_iov = iov, .msg_iovlen = (size_t)n };
		ssize_t k = sendmsg(fd, &m, MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		while (n && (size_t)k >= iov->iov_len) {
			k -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n) {
			iov->iov_base = (uint8_t *)iov->iov_base + k;
			iov->iov_len -= (size_t)k;
		}
	}
	return 0;
}

/* After a failed send: the server's reason when it said one (-EIO: it
 * failed the copy), else ret (the connection broke). */
static int server_reason(int fd, int ret, const char *what, char *err, size_t errlen)
{
	char line[300];

	if (wire_read_line(fd, line, sizeof(line), 2000) > 0 && strncmp(line, "ERR ", 4) == 0) {
		snprintf(err, errlen, "the destination failed the copy: %s", line + 4);
		return -EIO;
	}
	snprintf(err, errlen, "%s: %s", what, strerror(-ret));
	return ret;
}

int nfc_send(int fd, int src, const char *token, struct nfc_progress *p,
             const struct nfc_faults *faults, atomic_bool *cancel, char *err, size_t errlen)
{
	static const struct nfc_faults none = { 0 };
	char line[400];
	struct stat st;
	uint8_t h[DATA_HDR];
	int ret;

	if (!faults)
		faults = &none;
	if (strlen(token) != NFC_TOKEN_HEX) {
		snprintf(err, errlen, "an NFC token is %d hex digits", NFC_TOKEN_HEX);
		return -EINVAL;
	}
	if (fstat(src, &st) < 0) {
		snprintf(err, errlen, "the source file: %s", strerror(errno));
		return -errno;
	}
	snprintf(line, sizeof(line), "VMKNFC1 %s\n", token);
	if ((ret = wire_send_line(fd, line)) < 0 ||
	    (ret = wire_read_line(fd, line, sizeof(line), HELLO_TIMEOUT_MS)) < 0) {
		snprintf(err, errlen, "the destination did not answer (%s)", strerror(-ret));
		return ret;
	}
	char *end = NULL;
	uint64_t from = 0;
	if (strncmp(line, "DONE ", 5) == 0) { /* it has the whole file already */
		p->size = p->resumed_from = (uint64_t)st.st_size;
		atomic_store(&p->sent, 0);
		atomic_store(&p->offset, (uint64_t)st.st_size);
		return 0;
	}
	if (strncmp(line, "OK ", 3) == 0)
		from = strtoull(line + 3, &end, 10);
	if (!end || *end || from > (uint64_t)st.st_size) {
		bool no = strncmp(line, "NO ", 3) == 0;
		snprintf(err, errlen, "the destination refused the copy: %s", no ? line + 3 : line);
		return !no ? -EPROTO : strstr(line, "in progress") ? -EBUSY : -EACCES;
	}
	p->size = (uint64_t)st.st_size;
	p->resumed_from = from;
	atomic_store(&p->sent, 0);
	atomic_store(&p->offset, from);

	uint8_t *buf = malloc(NFC_CHUNK);
	if (!buf) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	uint64_t pos = from, size = (uint64_t)st.st_size;
	uint64_t t0 = util_now_ms(), last_rec = t0;
	uint64_t keepalive = faults->keepalive_ms ? faults->keepalive_ms : KEEPALIVE_MS;
	ret = 0;
	while (ret == 0 && pos < size) {
		off_t data = lseek(src, (off_t)pos, SEEK_DATA);
		if (data < 0 && errno == ENXIO)
			break; /* only a hole is left */
		off_t hole = data < 0 ? -1 : lseek(src, data, SEEK_HOLE);
		if (data < 0 || hole < 0) {
			ret = -errno;
			snprintf(err, errlen, "reading the source's extents: %s", strerror(errno));
			break;
		}
		for (uint64_t o = (uint64_t)data; ret == 0 && o < (uint64_t)hole;) {
			uint32_t len = (uint64_t)hole - o > NFC_CHUNK
			                       ? NFC_CHUNK
			                       : (uint32_t)((uint64_t)hole - o);
			if (cancel && atomic_load(cancel)) {
				ret = -ECANCELED;
				snprintf(err, errlen, "cancelled");
				break;
			}
			if ((ret = pread_full(src, buf, len, o)) < 0) {
				snprintf(err, errlen, "reading the source at %" PRIu64 ": %s", o,
				         strerror(-ret));
				break;
			}
			if (util_all_zero(buf, len) && util_now_ms() - last_rec >= keepalive) {
				/* a long run of zeros: tell the server how far we are */
				h[0] = 'K';
				le_put64(h + 1, o + len);
				if ((ret = net_send_all(fd, h, 9)) < 0) {
					ret = server_reason(fd, ret, "sending", err, errlen);
					break;
				}
				last_rec = util_now_ms();
			} else if (!util_all_zero(buf, len)) {
				h[0] = 'D';
				le_put64(h + 1, o);
				le_put32(h + 9, len);
				le_put32(h + 13, vmm_crc32c(0, buf, len));
				if (faults->flip_at && faults->flip_at - 1 >= o &&
				    faults->flip_at - 1 < o + len)
					buf[faults->flip_at - 1 - o] ^= 0x40;
				struct iovec iov[2] = { { h, sizeof(h) }, { buf, len } };
				if ((ret = send_iov(fd, iov, 2)) < 0) {
					ret = server_reason(fd, ret, "sending", err, errlen);
					break;
				}
				last_rec = util_now_ms();
				uint64_t sent = atomic_fetch_add(&p->sent, len) + len;
				atomic_fetch_add(&p->sent_all, len);
				if (p->max_bps)
					pace(t0, sent, p->max_bps, cancel);
				if (faults->drop_after && sent >= faults->drop_after) {
					shutdown(fd, SHUT_RDWR);
					ret = -ECONNRESET;
					snprintf(err, errlen, "the connection dropped (test)");
					break;
				}
			}
			o += len;
			atomic_store(&p->offset, o);
		}
		pos = (uint64_t)hole;
	}
	free(buf);
	if (ret < 0)
		return ret;
	h[0] = 'E';
	le_put64(h + 1, size);
	if ((ret = net_send_all(fd, h, 9)) < 0)
		return server_reason(fd, ret, "sending", err, errlen);
	atomic_store(&p->offset, size);
	if ((ret = wire_read_line(fd, line, sizeof(line), DONE_TIMEOUT_MS)) < 0) {
		snprintf(err, errlen, "the destination did not confirm the copy (%s)",
		         strerror(-ret));
		return ret;
	}
	if (strncmp(line, "DONE ", 5) != 0) {
		snprintf(err, errlen, "the destination failed the copy: %s",
		         strncmp(line, "ERR ", 4) == 0 ? line + 4 : line);
		return -EIO;
	}
	return 0;
}

static bool resumable(int ret)
{
	return ret != -EACCES && ret != -EIO && ret != -ECANCELED && ret != -EINVAL &&
	       ret != -EPROTO && ret != -ENOMEM;
}

/* A file of a VM's directory to copy, opened: a regular file of its own.
 * A symbolic link in its place would have hostd (root) copy whatever it
 * names, a FIFO would block the copy. fd, or -errno with err. */
static int open_source(const char *path, char *err, size_t errlen)
{
	int fd = util_open_regular(path, O_RDONLY | O_NOFOLLOW, NULL);

	if (fd == -ELOOP)
		snprintf(err, errlen,
		         "%s is a symbolic link: vmk copies the VM's own files only "
		         "(put the file it names there instead)",
		         path);
	else if (fd == -EINVAL || fd == -EISDIR)
		snprintf(err, errlen, "%s: not a regular file", path);
	else if (fd < 0)
		snprintf(err, errlen, "%s: %s", path, strerror(-fd));
	return fd == -EISDIR ? -EINVAL : fd;
}

int nfc_send_path(int nsfd, const char *host, uint16_t port, const char *path, const char *token,
                  struct nfc_progress *p, const struct nfc_faults *faults, atomic_bool *cancel,
                  int resume_ms, char *err, size_t errlen)
{
	int src = open_source(path, err, errlen);
	uint64_t failing_since = 0;
	int ret;

	if (src < 0)
		return src;
	for (;;) {
		char cerr[300];
		int fd = wire_connect(nsfd, host, port, RECONNECT_MS, cerr, sizeof(cerr));
		if (fd < 0) {
			ret = fd;
			snprintf(err, errlen, "connecting to %s:%u: %s", host, port, cerr);
		} else {
			unsigned stall = NFC_STALL_MS;
			setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &stall, sizeof(stall));
			uint64_t before = atomic_load(&p->offset);
			ret = nfc_send(fd, src, token, p, faults, cancel, err, errlen);
			close(fd);
			if (ret < 0 && atomic_load(&p->offset) > before)
				failing_since = 0; /* it got further: a fresh window */
		}
		if (ret == 0 || !resumable(ret) || (cancel && atomic_load(cancel)))
			break;
		uint64_t now = util_now_ms();
		if (!failing_since)
			failing_since = now;
		if (now - failing_since >= (uint64_t)resume_ms)
			break;
		atomic_fetch_add(&p->resumes, 1);
		faults = NULL; /* a test's fault happens once */
		usleep(200 * 1000);
	}
	if (ret < 0 && cancel && atomic_load(cancel)) {
		ret = -ECANCELED;
		snprintf(err, errlen, "cancelled");
	}
	close(src);
	return ret;
}

int nfc_abort(int nsfd, const char *host, uint16_t port, const char *token, char *err,
              size_t errlen)
{
	char line[400];
	int fd = wire_connect(nsfd, host, port, RECONNECT_MS, err, errlen), ret;

	if (fd < 0)
		return fd;
	snprintf(line, sizeof(line), "VMKNFC1 %s\n", token);
	if ((ret = wire_send_line(fd, line)) == 0 &&
	    (ret = wire_read_line(fd, line, sizeof(line), HELLO_TIMEOUT_MS)) > 0) {
		ret = 0;
		if (strncmp(line, "OK ", 3) == 0) {
			ret = net_send_all(fd, "A", 1);
		} else {
			snprintf(err, errlen, "%s", line);
			ret = strncmp(line, "DONE ", 5) == 0 ? -EALREADY : -EACCES;
		}
		if (ret == 0) /* until the server has it: its ERR, or it closes */
			wire_read_line(fd, line, sizeof(line), HELLO_TIMEOUT_MS);
	}
	close(fd);
	return ret < 0 ? ret : 0;
}

/* ---- on one host ---- */

/* buf: NFC_CHUNK bytes, for when copy_file_range cannot (another file
 * system, an old kernel) */
static int copy_range(int in, int out, uint64_t off, uint64_t len, uint8_t *buf)
{
	bool plain = false;

	while (len) {
		size_t n = len > (1u << 30) ? (1u << 30) : (size_t)len;
		ssize_t k;
		if (!plain) {
			loff_t a = (loff_t)off, b = (loff_t)off;
			k = copy_file_range(in, &a, out, &b, n, 0);
			if (k < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL ||
			              errno == EOPNOTSUPP)) {
				plain = true;
				continue;
			}
		} else {
			n = n > NFC_CHUNK ? NFC_CHUNK : n;
			k = pread(in, buf, n, (off_t)off);
			if (k > 0 && util_pwrite_all(out, buf, (size_t)k, off) < 0)
				return -errno;
		}
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k == 0 ? -EIO : -errno;
		off += (uint64_t)k;
		len -= (uint64_t)k;
	}
	return 0;
}

int nfc_copy_local(const char *src, const char *dst, char *err, size_t errlen)
{
	char part[4200];
	struct stat st;
	int in = -1, out = -1, ret = 0;

	snprintf(part, sizeof(part), "%s.part", dst);
	if ((in = open_source(src, err, errlen)) < 0 || fstat(in, &st) < 0) {
		ret = in < 0 ? in : -errno;
		if (in >= 0)
			snprintf(err, errlen, "%s: %s", src, strerror(errno));
		goto out;
	}
	if ((out = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
	                st.st_mode & 0777)) < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", part, strerror(errno));
		goto out;
	}
	if (ioctl(out, FICLONE, in) != 0) { /* no reflink here: the data extents */
		uint8_t *buf = malloc(NFC_CHUNK);
		if (!buf)
			ret = -ENOMEM;
		for (uint64_t pos = 0; ret == 0 && pos < (uint64_t)st.st_size;) {
			off_t data = lseek(in, (off_t)pos, SEEK_DATA);
			if (data < 0 && errno == ENXIO)
				break;
			off_t hole = data < 0 ? -1 : lseek(in, data, SEEK_HOLE);
			if (data < 0 || hole < 0) {
				ret = -errno;
				break;
			}
			ret = copy_range(in, out, (uint64_t)data, (uint64_t)(hole - data), buf);
			pos = (uint64_t)hole;
		}
		free(buf);
		if (ret == 0 && ftruncate(out, st.st_size) < 0)
			ret = -errno;
		if (ret < 0)
			snprintf(err, errlen, "copying %s to %s: %s", src, part, strerror(-ret));
	}
	if (ret == 0 && fsync(out) < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", part, strerror(errno));
	}
	if (ret == 0 && rename(part, dst) < 0) {
		ret = -errno;
		snprintf(err, errlen, "renaming %s into place: %s", part, strerror(errno));
	}
	if (ret == 0)
		sync_dir_of(dst);
out:
	if (out >= 0)
		close(out);
	if (in >= 0)
		close(in);
	if (ret < 0)
		unlink(part);
	return ret;
}
