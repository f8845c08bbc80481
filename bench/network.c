/* bench/network: VMkernel networking in a two-host lab, each number next
 * to a reference measured over the same path in the same run. Prints,
 * never asserts.
 *   - migration stream over the vmotion netstack (vmk1 on both hosts) at
 *     MTU 1500 and 9000: the engine's measured bandwidth and bytes/total
 *     time of a migration of a guest with MIB MiB of live data, as a ratio
 *     to a raw TCP stream between the two vmk1 addresses (same namespaces,
 *     same veths and bridges);
 *   - VM to VM: frames per second from a `net` sender VM on esx1 to a
 *     receiver VM on esx2 over the VM Network port group (virtio-net, taps,
 *     bridges), as a ratio to raw AF_PACKET sockets on two veths plugged
 *     into the same port-group bridges.
 * Usage: build/bench/network [--mib N] (default 192). Needs root; takes
 * the lab at /tmp/vmk-bench-network up and down. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "benchutil.h"
#include "netlink.h"
#include "hostd/network.h"
#include "netns.h"

#define LAB_DIR      "/tmp/vmk-bench-network"
#define RAW_MIB      1024 /* the raw TCP stream */
#define FRAME_BYTES  64
#define RAW_FRAMES_S 2 /* seconds of raw frames */

static char top[PATH_MAX], vmkctl[PATH_MAX + 64], lab[PATH_MAX + 32], elf[PATH_MAX + 32];

static int ctl(char *out, size_t outlen, const char *host, const char *args)
{
	return bench_sh(out, outlen, "%s -s %s --formatter json %s 2>&1", vmkctl, host, args);
}

/* ---- raw TCP between the two vmk1 addresses ---- */

struct sink {
	int fd;
	uint64_t bytes;
};

static void *sink_main(void *arg)
{
	struct sink *s = arg;
	static char buf[1 << 20];
	int c = accept(s->fd, NULL, NULL);
	ssize_t n;

	while (c >= 0 && (n = read(c, buf, sizeof(buf))) > 0)
		s->bytes += (uint64_t)n;
	if (c >= 0)
		close(c);
	return NULL;
}

static double raw_tcp_mibps(void)
{
	int src_ns = netns_open("vmk-esx1-vmotion"), dst_ns = netns_open("vmk-esx2-vmotion");
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);
	struct sink s = { .fd = -1 };
	pthread_t t;
	double mibps = -1;
	static char buf[1 << 20];

	if (src_ns < 0 || dst_ns < 0)
		goto out;
	s.fd = netns_socket(dst_ns, AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	inet_pton(AF_INET, "198.18.2.12", &a.sin_addr);
	if (s.fd < 0 || bind(s.fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s.fd, 1) < 0 ||
	    getsockname(s.fd, (struct sockaddr *)&a, &al) < 0)
		goto out;
	pthread_create(&t, NULL, sink_main, &s);
	int c = netns_socket(src_ns, AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c >= 0 && connect(c, (struct sockaddr *)&a, sizeof(a)) == 0) {
		memset(buf, 0x5a, sizeof(buf));
		double t0 = bench_now_ms();
		for (int i = 0; i < RAW_MIB; i++) {
			size_t off = 0;
			while (off < sizeof(buf)) {
				ssize_t w = write(c, buf + off, sizeof(buf) - off);
				if (w <= 0)
					break;
				off += (size_t)w;
			}
		}
		close(c);
		pthread_join(t, NULL);
		mibps = (double)s.bytes / (1 << 20) / ((bench_now_ms() - t0) / 1e3);
	} else {
		if (c >= 0)
			close(c);
		shutdown(s.fd, SHUT_RDWR);
		pthread_cancel(t);
		pthread_join(t, NULL);
	}
out:
	if (s.fd >= 0)
		close(s.fd);
	if (src_ns >= 0)
		close(src_ns);
	if (dst_ns >= 0)
		close(dst_ns);
	return mibps;
}

/* ---- raw frames between two veths on the VM Network bridges ---- */

struct fsink {
	int fd;
	atomic_ulong frames;
	atomic_bool stop;
};

static void *fsink_main(void *arg)
{
	struct fsink *s = arg;
	char buf[2048];

	while (!atomic_load(&s->stop))
		if (recv(s->fd, buf, sizeof(buf), 0) == FRAME_BYTES)
			atomic_fetch_add(&s->frames, 1);
	return NULL;
}

/* a veth NAME in host namespace ns, its peer on the VM Network's bridge */
static int plug(const char *ns, const char *name, char *err, size_t errlen)
{
	char peer[16];
	int nsfd = netns_open(ns), nl, ret;

	if (nsfd < 0)
		return nsfd;
	snprintf(peer, sizeof(peer), "%s-p", name);
	char br[16];
	net_pg_bridge("VM Network", br);
	nl = nl_open_netns(nsfd);
	close(nsfd);
	if (nl < 0)
		return nl;
	if ((ret = nl_link_add_veth(nl, name, peer, -1, 1500, err, errlen)) == 0 &&
	    (ret = nl_link_set(nl, peer, 1, 0, br, err, errlen)) == 0 &&
	    (ret = nl_link_set(nl, name, 1, 0, NULL, err, errlen)) == 0)
		ret = nl_link_wait_running(nl, name, 2000);
	nl_close(nl);
	return ret;
}

static int packet_socket(const char *ns, const char *ifname, unsigned char mac[6])
{
	int nsfd = netns_open(ns), nl, fd;
	struct nl_link l;

	if (nsfd < 0)
		return nsfd;
	nl = nl_open_netns(nsfd);
	if (nl < 0 || nl_link_get(nl, ifname, &l) < 0) {
		close(nsfd);
		return -ENODEV;
	}
	nl_close(nl);
	fd = netns_socket(nsfd, AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(0x88b6));
	close(nsfd);
	struct sockaddr_ll sl = { .sll_family = AF_PACKET,
		                  .sll_protocol = htons(0x88b6),
		                  .sll_ifindex = l.ifindex };
	if (fd < 0 || bind(fd, (struct sockaddr *)&sl, sizeof(sl)) < 0)
		return -errno;
	memcpy(mac, l.mac, 6);
	struct timeval tv = { .tv_usec = 200000 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static double raw_frames_per_s(void)
{
	char err[300];
	unsigned char ma[6], mb[6];
	struct fsink s = { .fd = -1 };
	pthread_t t;
	double fps = -1;

	if (plug("vmk-esx1", "bxa", err, sizeof(err)) < 0 ||
	    plug("vmk-esx2", "bxb", err, sizeof(err)) < 0) {
		fprintf(stderr, "network: raw frames: %s\n", err);
		return -1;
	}
	int tx = packet_socket("vmk-esx1", "bxa", ma);
	s.fd = packet_socket("vmk-esx2", "bxb", mb);
	if (tx < 0 || s.fd < 0)
		goto out;
	pthread_create(&t, NULL, fsink_main, &s);
	unsigned char f[FRAME_BYTES] = { 0 };
	memcpy(f, mb, 6);
	memcpy(f + 6, ma, 6);
	f[12] = 0x88, f[13] = 0xb6;
	/* the bridges learn where bxb is before the clock starts */
	send(s.fd, f, sizeof(f), 0);
	usleep(100 * 1000);
	atomic_store(&s.frames, 0);
	double t0 = bench_now_ms();
	while (bench_now_ms() - t0 < RAW_FRAMES_S * 1000.0)
		for (int i = 0; i < 64; i++)
			send(tx, f, sizeof(f), 0);
	usleep(200 * 1000);
	fps = (double)atomic_load(&s.frames) / RAW_FRAMES_S;
	atomic_store(&s.stop, true);
	pthread_join(t, NULL);
out:
	if (tx >= 0)
		close(tx);
	if (s.fd >= 0)
		close(s.fd);
	return fps;
}

/* ---- the VMs ---- */

static void vmk1(int mtu)
{
	char out[4096], args[512];

	for (int k = 1; k <= 2; k++) {
		char host[8];
		snprintf(host, sizeof(host), "esx%d", k);
		snprintf(args, sizeof(args), "network ip interface set -i vmk1 -m %d", mtu);
		if (ctl(out, sizeof(out), host, args) == 0)
			continue;
		snprintf(args, sizeof(args),
		         "network ip interface add -i vmk1 -p vMotion -N vmotion -m %d", mtu);
		ctl(out, sizeof(out), host, args);
		snprintf(args, sizeof(args),
		         "network ip interface ipv4 set -i vmk1 -t static -I 198.18.2.1%d -N "
		         "255.255.255.0",
		         k);
		ctl(out, sizeof(out), host, args);
		ctl(out, sizeof(out), host, "network ip interface tag add -i vmk1 -t VMotion");
	}
}

/* migrates mv esx1 -> esx2 -> esx1 three times; the medians of the
 * engine's bandwidth and of bytes/total */
#define MIGRATIONS 6

static void migrate(int streams, double *bw, double *eff)
{
	char out[8192], args[128];
	double b[MIGRATIONS], e[MIGRATIONS];

	for (int i = 0; i < MIGRATIONS; i++) {
		snprintf(args, sizeof(args), "vm migrate -n mv --dest %s --streams %d",
		         i % 2 ? "esx1" : "esx2", streams);
		ctl(out, sizeof(out), i % 2 ? "esx2" : "esx1", args);
		b[i] = bench_field(out, "\"bandwidth_mibps\":");
		double bytes = bench_field(out, "\"transferred_bytes\":");
		double ms = bench_field(out, "\"total_ms\":");
		e[i] = ms > 0 ? bytes / (1 << 20) / (ms / 1e3) : -1;
	}
	*bw = bench_median(b, MIGRATIONS);
	*eff = bench_median(e, MIGRATIONS);
}

static double vm_frames_per_s(void)
{
	char out[8192], path[PATH_MAX + 64], args[1024];
	double best = -1;

	snprintf(args, sizeof(args),
	         "vm create -n nrx -m 32 --kernel %s --cmdline \"net role=recv timeout_ms=20000\" "
	         "--nic \"VM Network\" -d shared",
	         elf);
	ctl(out, sizeof(out), "esx2", args);
	snprintf(args, sizeof(args),
	         "vm create -n ntx -m 32 --kernel %s --cmdline \"net role=send count=0 "
	         "interval_us=0 wait_ms=20000\" --nic \"VM Network\" -d shared",
	         elf);
	ctl(out, sizeof(out), "esx1", args);
	ctl(out, sizeof(out), "esx2", "vm power on -n nrx");
	ctl(out, sizeof(out), "esx1", "vm power on -n ntx");
	snprintf(path, sizeof(path), "%s/shared/nrx/serial.log", LAB_DIR);
	/* "net rx N gaps G reorder R" once a second: the best second */
	bench_wait_file_has(path, "net rx", 20000);
	sleep(5);
	FILE *f = fopen(path, "r");
	unsigned long prev = 0, n;
	char line[256];
	bool first = true;
	while (f && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "net rx %lu", &n) != 1)
			continue;
		if (!first && (double)(n - prev) > best)
			best = (double)(n - prev);
		first = false;
		prev = n;
	}
	if (f)
		fclose(f);
	ctl(out, sizeof(out), "esx1", "vm power off -n ntx");
	ctl(out, sizeof(out), "esx2", "vm power off -n nrx");
	return best;
}

int main(int argc, char **argv)
{
	char out[8192], args[1024], self[PATH_MAX];
	int mib = 192;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--mib") && i + 1 < argc)
			mib = atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: %s [--mib N]\n", argv[0]);
			return 2;
		}
	}
	ssize_t sl = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (sl < 0)
		return 1;
	self[sl] = '\0';
	snprintf(top, sizeof(top), "%s", self);
	for (int up = 0; up < 3; up++)
		*strrchr(top, '/') = '\0'; /* build/bench/network -> top */
	snprintf(vmkctl, sizeof(vmkctl), "%s/build/bin/vmkctl --lab %s", top, LAB_DIR);
	snprintf(lab, sizeof(lab), "%s/integration/lab", top);
	snprintf(elf, sizeof(elf), "%s/build/guest/vmk-guest.elf", top);
	if (bench_sh(out, sizeof(out), "%s up --hosts 2 --dir %s 2>&1", lab, LAB_DIR) != 0) {
		fprintf(stderr, "network: the lab did not come up:\n%s", out);
		return 1;
	}
	snprintf(args, sizeof(args),
	         "vm create -n mv -m %d --kernel %s --cmdline \"verify mib=%d\" -d shared",
	         mib + 64, elf, mib);
	ctl(out, sizeof(out), "esx1", args);
	ctl(out, sizeof(out), "esx1", "vm power on -n mv");
	char serial[PATH_MAX + 64];
	snprintf(serial, sizeof(serial), "%s/shared/mv/serial.log", LAB_DIR);
	bench_wait_file_has(serial, "filled", 60000);

	printf("bench/network: two-host lab, vmk1 on the vmotion netstack of each host\n");
	printf("%-44s %10s %10s %10s %8s\n", "migration stream (MiB/s)", "engine", "bytes/t",
	       "raw TCP", "eng/raw");
	for (int i = 0; i < 3; i++) {
		int mtu = i ? 9000 : 1500, streams = i == 2 ? 4 : 1;
		double bw, eff;
		vmk1(mtu);
		double raw = raw_tcp_mibps();
		migrate(streams, &bw, &eff);
		printf("  MTU %-4d, %d stream%s, %d MiB live       %10.0f %10.0f %10.0f %8.2f\n",
		       mtu, streams, streams > 1 ? "s" : " ", mib, bw, eff, raw,
		       raw > 0 ? bw / raw : 0);
	}
	ctl(out, sizeof(out), "esx1", "vm power off -n mv");

	double vm = vm_frames_per_s();
	double raw = raw_frames_per_s();
	printf("%-44s %10s %10s %8s\n", "VM to VM over VM Network (frames/s)", "virtio-net",
	       "AF_PACKET", "vm/raw");
	printf("  esx1 -> esx2, %d-byte frames                %10.0f %10.0f %8.2f\n", FRAME_BYTES,
	       vm, raw, raw > 0 ? vm / raw : 0);
	bench_sh(NULL, 0, "%s down --dir %s >/dev/null 2>&1", lab, LAB_DIR);
	return 0;
}
