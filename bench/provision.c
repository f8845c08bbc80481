/* bench/provision: NFC, the provisioning file copy, next to references
 * measured on the same file in the same run. Prints, never asserts.
 *   - a sparse disk of SIZE GiB with DATA GiB written in random extents;
 *   - NFC over TCP on loopback (sender and receiver threads, checksums,
 *     fsync at the end, as hostd runs it);
 *   - raw TCP: the same data extents, each an offset and a length and its
 *     bytes, written at their offsets and fsync'ed: the floor for moving
 *     only the data;
 *   - `cp --sparse=always` of the same file on this host, then `sync` of
 *     the copy;
 *   - nfc_copy_local (FICLONE where the file system has it, else
 *     copy_file_range of the data extents).
 * Each the median of RUNS; ratios < 1: NFC is faster. Holes cost nothing
 * when NFC's bytes on the wire equal the data.
 * Usage: build/bench/provision [--size GIB] [--data GIB] [--dir DIR]
 * (default 4, 1, /var/tmp). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "benchutil.h"
#include "migrate/nfc.h"
#include "migrate/wire.h"
#include "net.h"
#include "netlink.h"
#include "netns.h"
#include "util.h"
#include "vmm/disk.h"

#define RUNS 7 /* the disk's writeback makes single copies vary by 2x */

static char src[PATH_MAX], dst[PATH_MAX + 16];
static const char TOKEN[] = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";

/* Where the copies go: two netstacks joined by a veth pair of the lab's
 * provisioning MTU (as two hosts' vSphereProvisioning vmks), or loopback
 * when namespaces cannot be made here. */
#define NS_SEND "vmkbench-prov-send"
#define NS_RECV "vmkbench-prov-recv"
static int ns_send = -1, ns_recv = -1;
static const char *peer = "127.0.0.1";

static int listen_lo(uint16_t *port)
{
	char err[200];
	*port = 0;
	return wire_listen(ns_recv, peer, port, err, sizeof(err));
}

static int connect_lo(uint16_t port)
{
	char err[200];
	return wire_connect(ns_send, peer, port, 5000, err, sizeof(err));
}

static void netstacks_down(void)
{
	char err[200];
	if (ns_send >= 0)
		close(ns_send);
	if (ns_recv >= 0)
		close(ns_recv);
	ns_send = ns_recv = -1;
	netns_delete(NS_SEND, err, sizeof(err));
	netns_delete(NS_RECV, err, sizeof(err));
}

static int netstacks_up(char *err, size_t errlen)
{
	struct in_addr a, b;
	int nl = -1, nl2 = -1, ret;

	netstacks_down(); /* what an interrupted run left */
	inet_pton(AF_INET, "198.19.255.1", &a);
	inet_pton(AF_INET, "198.19.255.2", &b);
	if ((ret = netns_create(NS_SEND, err, errlen)) < 0 ||
	    (ret = netns_create(NS_RECV, err, errlen)) < 0)
		goto out;
	if ((ns_send = netns_open(NS_SEND)) < 0 || (ns_recv = netns_open(NS_RECV)) < 0) {
		ret = -ENOENT;
		snprintf(err, errlen, "opening the bench's namespaces");
		goto out;
	}
	if ((nl = nl_open_netns(ns_send)) < 0 || (nl2 = nl_open_netns(ns_recv)) < 0) {
		ret = -EIO;
		snprintf(err, errlen, "netlink in the bench's namespaces");
		goto out;
	}
	if ((ret = nl_link_add_veth(nl, "prov0", "prov1", ns_recv, 1500, err, errlen)) < 0 ||
	    (ret = nl_addr_replace(nl, "prov0", a, 24, err, errlen)) < 0 ||
	    (ret = nl_addr_replace(nl2, "prov1", b, 24, err, errlen)) < 0 ||
	    (ret = nl_link_set(nl, "prov0", 1, 0, NULL, err, errlen)) < 0 ||
	    (ret = nl_link_set(nl2, "prov1", 1, 0, NULL, err, errlen)) < 0)
		goto out;
	nl_link_wait_running(nl, "prov0", 3000);
	nl_link_wait_running(nl2, "prov1", 3000);
	peer = "198.19.255.2";
out:
	if (nl >= 0)
		nl_close(nl);
	if (nl2 >= 0)
		nl_close(nl2);
	if (ret < 0)
		netstacks_down();
	return ret;
}

/* Each copy starts alike: no old copy, nothing of it left to write back
 * (freeing and flushing the last one's blocks would land on the next) */
static void fresh(void)
{
	unlink(dst);
	sync();
}

/* ---- NFC ---- */

struct nfc_srv {
	int lfd;
	struct nfc_xfer *x;
	int ret;
};

static void *nfc_srv_main(void *arg)
{
	struct nfc_srv *s = arg;
	char err[400];
	int c = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);

	s->ret = c < 0 ? -errno : nfc_serve(c, nfc_lookup_one, s->x, err, sizeof(err));
	if (s->ret < 0)
		fprintf(stderr, "bench/provision: NFC receiver: %s\n", c < 0 ? "accept" : err);
	if (c >= 0)
		close(c);
	return NULL;
}

static double run_nfc(uint64_t *wire)
{
	struct nfc_xfer x;
	struct nfc_progress p = { 0 };
	struct nfc_srv s = { 0 };
	pthread_t t;
	uint16_t port;
	char err[400];

	fresh();
	nfc_xfer_init(&x, TOKEN, dst);
	s.x = &x;
	if ((s.lfd = listen_lo(&port)) < 0)
		return -1;
	pthread_create(&t, NULL, nfc_srv_main, &s);
	double t0 = bench_now_ms();
	int fd = connect_lo(port), in = open(src, O_RDONLY | O_CLOEXEC);
	int ret = fd < 0 || in < 0 ? -1 : nfc_send(fd, in, TOKEN, &p, NULL, NULL, err, sizeof(err));
	if (fd >= 0)
		close(fd);
	pthread_join(t, NULL);
	double ms = bench_now_ms() - t0;
	if (in >= 0)
		close(in);
	close(s.lfd);
	nfc_xfer_destroy(&x);
	*wire = atomic_load(&p.sent);
	if (ret < 0 || s.ret < 0) {
		fprintf(stderr, "bench/provision: NFC: %s\n",
		        ret < 0 ? err : "the receiver failed");
		return -1;
	}
	return ms;
}

/* ---- raw TCP of the data extents ---- */

struct raw_srv {
	int lfd;
	int ret;
};

static void *raw_srv_main(void *arg)
{
	struct raw_srv *s = arg;
	int c = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
	int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	uint8_t *buf = malloc(NFC_CHUNK);
	uint64_t h[2];

	s->ret = c < 0 || out < 0 || !buf ? -1 : 0;
	while (s->ret == 0 && net_recv_all(c, h, sizeof(h), 60000) == 0) {
		if (h[1] == 0) { /* the end: the file's size */
			if (ftruncate(out, (off_t)h[0]) < 0 || fsync(out) < 0)
				s->ret = -1;
			break;
		}
		for (uint64_t o = h[0], left = h[1]; left && s->ret == 0;) {
			size_t n = left > NFC_CHUNK ? NFC_CHUNK : (size_t)left;
			if (net_recv_all(c, buf, n, 60000) < 0 ||
			    pwrite(out, buf, n, (off_t)o) != (ssize_t)n)
				s->ret = -1;
			o += n;
			left -= n;
		}
	}
	send(c, "k", 1, MSG_NOSIGNAL);
	free(buf);
	if (out >= 0)
		close(out);
	if (c >= 0)
		close(c);
	return NULL;
}

static double run_raw(void)
{
	struct raw_srv s = { 0 };
	pthread_t t;
	uint16_t port;
	struct stat st;

	fresh();
	if ((s.lfd = listen_lo(&port)) < 0)
		return -1;
	pthread_create(&t, NULL, raw_srv_main, &s);
	double t0 = bench_now_ms();
	int fd = connect_lo(port), in = open(src, O_RDONLY | O_CLOEXEC);
	uint8_t *buf = malloc(NFC_CHUNK);
	int ret = fd < 0 || in < 0 || !buf || fstat(in, &st) < 0 ? -1 : 0;
	for (uint64_t pos = 0; ret == 0 && pos < (uint64_t)st.st_size;) {
		off_t d = lseek(in, (off_t)pos, SEEK_DATA);
		if (d < 0)
			break;
		off_t hole = lseek(in, d, SEEK_HOLE);
		uint64_t h[2] = { (uint64_t)d, (uint64_t)(hole - d) };
		ret = net_send_all(fd, h, sizeof(h));
		for (uint64_t o = (uint64_t)d; ret == 0 && o < (uint64_t)hole;) {
			size_t n = (uint64_t)hole - o > NFC_CHUNK ? NFC_CHUNK
			                                          : (size_t)((uint64_t)hole - o);
			ret = pread(in, buf, n, (off_t)o) == (ssize_t)n ? net_send_all(fd, buf, n)
			                                                : -1;
			o += n;
		}
		pos = (uint64_t)hole;
	}
	uint64_t end[2] = { (uint64_t)st.st_size, 0 };
	char k;
	if (ret == 0 && (net_send_all(fd, end, sizeof(end)) < 0 || recv(fd, &k, 1, 0) != 1))
		ret = -1;
	pthread_join(t, NULL);
	double ms = bench_now_ms() - t0;
	free(buf);
	if (fd >= 0)
		close(fd);
	if (in >= 0)
		close(in);
	close(s.lfd);
	return ret < 0 || s.ret < 0 ? -1 : ms;
}

/* ---- on this host ---- */

static double run_cp(void)
{
	fresh();
	double t0 = bench_now_ms();
	int rc = bench_sh(NULL, 0, "cp --sparse=always '%s' '%s' && sync '%s'", src, dst, dst);
	return rc == 0 ? bench_now_ms() - t0 : -1;
}

static double run_local(void)
{
	char err[400];

	fresh();
	double t0 = bench_now_ms();
	if (nfc_copy_local(src, dst, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench/provision: local copy: %s\n", err);
		return -1;
	}
	return bench_now_ms() - t0;
}

/* The source: random extents of random data (64 KiB .. 16 MiB each) until
 * data_bytes are written, the rest holes. */
static int make_source(uint64_t size, uint64_t data_bytes)
{
	int fd = open(src, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	uint8_t *buf = malloc(16u << 20);
	uint64_t x = 0x2545f4914f6cdd1dull, written = 0;

	if (fd < 0 || !buf || ftruncate(fd, (off_t)size) < 0)
		return -1;
	while (written < data_bytes) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		uint64_t len = (1 + (x >> 20) % 256) * (64u << 10);
		uint64_t off = ((x >> 8) % ((size - len) / 4096)) * 4096;
		for (uint64_t i = 0; i < len / 8; i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			((uint64_t *)buf)[i] = x | 1;
		}
		if (pwrite(fd, buf, len, (off_t)off) != (ssize_t)len)
			return -1;
		written += len; /* overlaps make the real data somewhat less */
	}
	free(buf);
	fsync(fd);
	close(fd);
	return 0;
}

static uint64_t allocated(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (uint64_t)st.st_blocks * 512 : 0;
}

/* A linked clone's disk work (hostd adds two small file writes): a new
 * top for the source (its snapshot), the clone's delta over the frozen
 * base, and opening the clone's chain as its vmx would. */
static double run_linked(const char *dir, uint64_t size)
{
	char base[PATH_MAX + 32], top[PATH_MAX + 32], clone[PATH_MAX + 32], err[300];
	struct vmm_disk *d;

	snprintf(base, sizeof(base), "%s/base.img", dir);
	snprintf(top, sizeof(top), "%s/base-000001.delta", dir);
	snprintf(clone, sizeof(clone), "%s/clone.delta", dir);
	unlink(top);
	unlink(clone);
	int fd = open(base, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || ftruncate(fd, (off_t)size) < 0 || pwrite(fd, "data", 4, 0) != 4) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	fsync(fd);
	close(fd);
	double t0 = bench_now_ms();
	if (vmm_delta_create(top, base, err, sizeof(err)) < 0 ||
	    vmm_delta_create(clone, base, err, sizeof(err)) < 0 ||
	    vmm_disk_open(&d, clone, false, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench/provision: linked clone: %s\n", err);
		return -1;
	}
	vmm_disk_close(d);
	double t = bench_now_ms() - t0;
	unlink(top);
	unlink(clone);
	unlink(base);
	return t;
}

int main(int argc, char **argv)
{
	double size_gib = 4, data_gib = 1;
	const char *dir = "/var/tmp", *only = NULL; /* --only nfc|raw: one copy, for a profiler */

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--size") && i + 1 < argc)
			size_gib = atof(argv[++i]);
		else if (!strcmp(argv[i], "--data") && i + 1 < argc)
			data_gib = atof(argv[++i]);
		else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			dir = argv[++i];
		else if (!strcmp(argv[i], "--only") && i + 1 < argc)
			only = argv[++i];
		else {
			fprintf(stderr,
			        "usage: bench/provision [--size GIB] [--data GIB] [--dir DIR] "
			        "[--only nfc|raw]\n");
			return 2;
		}
	}
	if (size_gib <= 0 || data_gib <= 0 || data_gib >= size_gib) {
		fprintf(stderr, "bench/provision: --data must be above 0 and below --size\n");
		return 2;
	}
	char tmpl[PATH_MAX];
	snprintf(tmpl, sizeof(tmpl), "%s/vmk-bench-provision-XXXXXX", dir);
	if (!mkdtemp(tmpl)) {
		fprintf(stderr, "bench/provision: %s: %s\n", tmpl, strerror(errno));
		return 1;
	}
	snprintf(src, sizeof(src), "%s/src-flat.vmdk", tmpl);
	snprintf(dst, sizeof(dst), "%s/dst-flat.vmdk", tmpl);
	uint64_t size = (uint64_t)(size_gib * (1 << 30)), want = (uint64_t)(data_gib * (1 << 30));
	if (make_source(size, want) < 0) {
		fprintf(stderr, "bench/provision: cannot write %s\n", src);
		util_rm_tree(tmpl);
		return 1;
	}
	char nerr[300];
	bool netstacks = netstacks_up(nerr, sizeof(nerr)) == 0;
	if (!netstacks)
		fprintf(stderr, "bench/provision: no netstacks (%s): over loopback\n", nerr);
	uint64_t data = allocated(src);
	printf("bench/provision: a %.1f GiB disk with %.2f GiB of data in random extents, %s\n",
	       size_gib, data / 1073741824.0, dir);
	printf("the TCP copies go %s\n",
	       netstacks ? "between two netstacks over a veth pair of MTU 1500, as between two "
	                   "hosts' provisioning vmks"
	                 : "over loopback");
	printf("median of %d copies after a round not counted, each ending with the copy "
	       "synced\n",
	       RUNS);

	if (only) { /* one kind of copy, five times (for perf record) */
		uint64_t w = 0;
		for (int i = 0; i < RUNS; i++) {
			double ms = !strcmp(only, "raw") ? run_raw() : run_nfc(&w);
			printf("    %s %8.0f ms\n", only, ms);
		}
		util_rm_tree(tmpl);
		netstacks_down();
		return 0;
	}
	double nfc[RUNS], raw[RUNS], cp[RUNS], loc[RUNS];
	uint64_t wire = 0, nfc_alloc = 0;
	bool ok = true;
	/* a round not counted: the first copies write where the file system
	 * never wrote before, and came out up to 3x slower */
	run_nfc(&wire);
	run_raw();
	for (int i = 0; i < RUNS && ok; i++) {
		/* each round in another order: none always goes first, nor always
		 * right after nfc_copy_local, whose copy_file_range leaves the next
		 * copy 10-40 % slower here (NFC measured 1.04x raw TCP run alone,
		 * 1.35x when it always came after it) */
		static const int order[RUNS][4] = { { 0, 1, 3, 2 }, { 1, 0, 2, 3 }, { 1, 2, 0, 3 },
			                            { 2, 0, 3, 1 }, { 0, 2, 1, 3 }, { 2, 3, 0, 1 },
			                            { 1, 3, 2, 0 } };
		for (int k = 0; k < 4; k++) {
			switch (order[i][k]) {
			case 0:
				nfc[i] = run_nfc(&wire);
				nfc_alloc = allocated(dst);
				break;
			case 1:
				raw[i] = run_raw();
				break;
			case 2:
				cp[i] = run_cp();
				break;
			default:
				loc[i] = run_local();
			}
		}
		ok = nfc[i] > 0 && raw[i] > 0 && cp[i] > 0 && loc[i] > 0;
	}
	double lk1[RUNS], lk16[RUNS];
	for (int i = 0; i < RUNS && ok; i++) {
		lk1[i] = run_linked(tmpl, 1ull << 30);
		lk16[i] = run_linked(tmpl, 16ull << 30);
		ok = lk1[i] >= 0 && lk16[i] >= 0;
	}
	util_rm_tree(tmpl);
	netstacks_down();
	if (!ok) {
		fprintf(stderr, "bench/provision: a copy failed\n");
		return 1;
	}
	double mn = bench_median(nfc, RUNS), mr = bench_median(raw, RUNS),
	       mc = bench_median(cp, RUNS), ml = bench_median(loc, RUNS);
	double mib = data / 1048576.0;
	printf("    %-28s %8.0f ms  %7.0f MiB/s of data\n", "NFC over TCP", mn, mib * 1000 / mn);
	printf("    %-28s %8.0f ms  %7.0f MiB/s\n", "raw TCP of the data extents", mr,
	       mib * 1000 / mr);
	printf("    %-28s %8.0f ms  %7.0f MiB/s\n", "cp --sparse=always", mc, mib * 1000 / mc);
	printf("    %-28s %8.0f ms  %7.0f MiB/s\n", "nfc_copy_local", ml, mib * 1000 / ml);
	printf("    NFC / raw TCP %.2f   NFC / cp %.2f   local copy / cp %.2f\n", mn / mr, mn / mc,
	       ml / mc);
	printf("    NFC sent %.1f MiB for %.1f MiB of data in a %.0f MiB file; the copy "
	       "allocates %.1f MiB\n",
	       wire / 1048576.0, mib, size / 1048576.0, nfc_alloc / 1048576.0);
	double l1 = bench_median(lk1, RUNS), l16 = bench_median(lk16, RUNS);
	printf("    %-28s %8.2f ms\n", "linked clone, 1 GiB disk", l1);
	printf("    %-28s %8.2f ms   16 GiB / 1 GiB %.2f\n", "linked clone, 16 GiB disk", l16,
	       l1 > 0 ? l16 / l1 : 0);
	return 0;
}
