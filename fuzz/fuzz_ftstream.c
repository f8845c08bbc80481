/* libFuzzer target: the stream an FT secondary reads from the primary
 * after the handshake (replica/secondary.c): the state header, the first
 * copy (CPUM, CONF, RAM, ZERO, DISK), then epochs (EPCH, their sections,
 * EOUT, EPND) until the connection ends. The input goes over loopback into
 * ft_secondary_run, which keeps a VM on the software CPU shaped like
 * vmx's (16 MiB, the UART, the power device, a virtio-blk disk): it must
 * refuse what is malformed with a message, apply an epoch whole or not at
 * all, and go live from the last whole one when the stream ends, never
 * crashing, leaking or touching memory outside the VM (ASan, UBSan).
 *
 * Seed: tests/corpus/fuzz_ftstream/, written by this program itself with
 * FUZZ_FTSTREAM_SEED=FILE: a saved state (FUZZ_FTSTREAM_FROM=FILE, such as
 * fuzz_state's seed of a running heartbeat guest; else this VM's, which
 * never ran) re-cut as a first copy and two epochs, the second one's end
 * missing, so that it goes live from epoch 1. FUZZ_FTSTREAM_VERBOSE=1
 * says how far each input got.
 *   make fuzz FUZZ_SECONDS=60 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz/fuzzutil.h"
#include "log.h"
#include "util.h"
#include "replica/replica.h"
#include "vmm/power.h"
#include "vmm/sbuf.h"
#include "vmm/snapshot.h"
#include "vmm/uart.h"
#include "vmm/virtio_blk.h"
#include "vmm/vm.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct vmm_vm vm;
static char gen_path[96];
static const char token[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

struct primary {
	uint16_t port;
	uint64_t gen;
	const uint8_t *data;
	size_t size;
};

/* The primary's side: the handshake, the input, the end of the stream;
 * then it reads the acknowledgements until the secondary closes. */
static void *primary_main(void *arg)
{
	struct primary *p = arg;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(p->port) };
	char line[160], junk[4096];
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		abort();
	int n = snprintf(line, sizeof(line), "VMKFT1 %s %" PRIu64 " 10\n", token, p->gen);
	if (send(fd, line, (size_t)n, MSG_NOSIGNAL) != n)
		abort();
	/* "OK <detect ms>" first, so that the stream is the input alone */
	for (size_t got = 0; got < sizeof(junk);) {
		ssize_t r = recv(fd, junk + got, 1, 0);
		if (r <= 0 || junk[got++] == '\n')
			break;
	}
	for (size_t off = 0; off < p->size;) {
		ssize_t w = send(fd, p->data + off, p->size - off, MSG_NOSIGNAL);
		if (w <= 0)
			break; /* the secondary refused it and closed */
		off += (size_t)w;
	}
	shutdown(fd, SHUT_WR);
	while (recv(fd, junk, sizeof(junk), 0) > 0)
		;
	close(fd);
	return NULL;
}

static int run(const uint8_t *data, size_t size, char *err, size_t errlen)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);
	struct primary p = { .data = data, .size = size };
	struct ft_standby sb;
	pthread_t t;
	char gerr[300];
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 1) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &al) < 0)
		abort();
	p.port = ntohs(a.sin_port);
	if (ft_gen_begin(gen_path, "fuzz-a", &p.gen, gerr, sizeof(gerr)) < 0) {
		fprintf(stderr, "fuzz_ftstream: %s\n", gerr);
		abort();
	}
	ft_standby_init(&sb);
	if (pthread_create(&t, NULL, primary_main, &p) != 0)
		abort();
	int ret = ft_secondary_run(lfd, token, &vm, gen_path, "fuzz-b", 5000, &sb, err, errlen);
	pthread_join(t, NULL);
	pthread_mutex_destroy(&sb.m);
	return ret;
}

/* FUZZ_FTSTREAM_SEED: the VM's own state as a first copy and epochs. */
static void write_seed(const char *file)
{
	struct sbuf saved, seed;
	struct vmm_stream s, out;
	struct rbuf r;
	char err[400];
	uint32_t type, inst;
	struct sbuf p, machine;
	uint64_t n;

	sbuf_init(&saved);
	sbuf_init(&seed);
	sbuf_init(&p);
	sbuf_init(&machine);
	const char *from = getenv("FUZZ_FTSTREAM_FROM");
	if (from) { /* a state vmx saved of a running guest */
		char *text = NULL;
		size_t tl = 0;
		if (util_read_file(from, 64u << 20, &text, &tl) < 0)
			abort();
		sbuf_put(&saved, text, tl);
		free(text);
	} else {
		vmm_stream_sbuf(&s, &saved);
		if (vmm_vm_save(&vm, &s, err, sizeof(err)) < 0) {
			fprintf(stderr, "fuzz_ftstream: %s\n", err);
			abort();
		}
	}
	vmm_stream_sbuf(&out, &seed);
	vmm_state_write_header(&out);
	rbuf_init(&r, saved.data, saved.len);
	vmm_stream_rbuf(&s, &r);
	if (vmm_state_read_header(&s, err, sizeof(err)) < 0)
		abort();
	struct vmm_stream ms;
	vmm_stream_sbuf(&ms, &machine);
	uint8_t first_ram[1 << 16];
	size_t first_ram_len = 0;
	while (vmm_state_read_section(&s, &type, &inst, &p, err, sizeof(err)) == 0 &&
	       type != SEC_END) {
		if (type == SEC_CPU_MODEL || type == SEC_CONFIG || type == SEC_RAM ||
		    type == SEC_ZERO)
			vmm_state_write_section(&out, type, inst, p.data, p.len);
		else
			vmm_state_write_section(&ms, type, inst, p.data, p.len);
		if (type == SEC_RAM && !first_ram_len && p.len <= sizeof(first_ram)) {
			memcpy(first_ram, p.data, p.len);
			first_ram_len = p.len;
		}
	}
	for (n = 1; n <= 2; n++) {
		uint8_t out_sec[8 + 5];
		uint64_t at = 5 * (n - 1);
		vmm_state_write_section(&out, SEC_EPOCH, 0, &n, 8);
		if (first_ram_len)
			vmm_state_write_section(&out, SEC_RAM, 0, first_ram, first_ram_len);
		sbuf_put(&seed, machine.data, machine.len);
		memcpy(out_sec, &at, 8);
		memcpy(out_sec + 8, n == 1 ? "hb 1\n" : "hb 2\n", 5);
		vmm_state_write_section(&out, SEC_EPOCH_OUT, 0, out_sec, sizeof(out_sec));
		if (n == 1)
			vmm_state_write_section(&out, SEC_EPOCH_END, 0, &n, 8);
	}
	if (seed.err || util_write_file_atomic(file, seed.data, seed.len, 0644) < 0)
		abort();
	fprintf(stderr, "fuzz_ftstream: wrote %zu bytes to %s\n", seed.len, file);
	sbuf_free(&saved);
	sbuf_free(&seed);
	sbuf_free(&p);
	sbuf_free(&machine);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char disk[96];

	(void)argc;
	(void)argv;
	log_set_level(LOG_ERROR);
	const char *dir = fuzz_tmpdir("ftstream");
	snprintf(gen_path, sizeof(gen_path), "%s/vm.ftgen", dir);
	snprintf(disk, sizeof(disk), "%s/disk0.img", dir);
	fuzz_vm_create(&vm, disk);
	const char *seed = getenv("FUZZ_FTSTREAM_SEED");
	if (seed) {
		write_seed(seed);
		exit(0);
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[600] = "";

	int ret = run(data, size, err, sizeof(err));
	if (!memchr(err, 0, sizeof(err)))
		abort();                     /* every message is terminated */
	if (getenv("FUZZ_FTSTREAM_VERBOSE")) /* what a seed reaches */
		fprintf(stderr, "fuzz_ftstream: %d %s\n", ret, ret ? err : "went live");
	return 0;
}
