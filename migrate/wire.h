/* Sockets for migration streams (migrate.h describes the protocol). */
#ifndef MIGRATE_WIRE_H
#define MIGRATE_WIRE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/state.h"

/* The socket buffers hold what the path keeps in flight at
 * WIRE_BYTES_PER_US (100 Gbit/s) over the round trip TCP measured at the
 * handshake, within [WIRE_BUF_MIN, WIRE_BUF_MAX]. Not more: a sender
 * with 4 MiB buffers on loopback ran 4 ms ahead of its reader without
 * blocking, and a vCPU sharing its core waited those 4 ms (bench/migrate,
 * traced with perf); with 256 KiB it blocks every ~0.1 ms and gives the
 * core back. A long path gets the window its bandwidth needs, up to what
 * the window scale agreed at the handshake allows (from net.ipv4.tcp_rmem's
 * maximum: 6 MiB on a stock host gives windows up to 8 MiB). */
#define WIRE_BYTES_PER_US 12500u
#define WIRE_BUF_MIN      (256u << 10)
#define WIRE_BUF_MAX      (32u << 20)
/* The buffer size (each way, before the kernel doubles it) for a path
 * whose round trip is rtt_us (0: unknown, the least). */
uint32_t wire_buffer_bytes(uint32_t rtt_us);

/* The link's bandwidth in bytes/s after a pre-copy pass sent bytes in
 * el_us, from prev (0: none yet). A pass of WIRE_BW_SAMPLE_BYTES or more
 * measures the link; a smaller one mostly the wake-ups at both ends (a
 * busy guest's pass of 344 KiB took 2 ms, "168 MiB/s" on a 2 GB/s
 * loopback, and that estimate sent two more passes and put
 * auto-converge's first hold on the guest), or only the socket's buffer:
 * it counts only when there is no estimate yet. 100 MiB/s when nothing
 * could be measured. */
#define WIRE_BW_SAMPLE_BYTES (4u << 20)
uint64_t wire_bw_estimate(uint64_t prev, uint64_t bytes, uint64_t el_us);

/* A connected TCP socket (blocking, NODELAY, buffers sized to the path:
 * wire_buffer_bytes), or -errno. */
int wire_connect(int nsfd, const char *host, uint16_t port, int timeout_ms, char *err,
                 size_t errlen);
/* A listening socket on host:*port (0: the kernel picks; *port is set). */
int wire_listen(int nsfd, const char *host, uint16_t *port, char *err, size_t errlen);

/* The state stream over a socket: counts bytes, caps the rate (max_bps
 * bytes/s, 0: none) and stops at *cancel. */
struct wire_stream {
	int fd;
	uint64_t max_bps, sent;
	double t0;
	atomic_bool *cancel;
};
void wire_stream_init(struct wire_stream *w, struct vmm_stream *s, int fd, uint64_t max_bps,
                      atomic_bool *cancel);
/* Holds small writes back until the stream is uncorked (TCP_CORK), so a
 * run of small sections leaves as full segments, not one each. */
void wire_stream_cork(struct wire_stream *w, bool on);

/* The next connection on lfd within timeout_ms (receive buffer tuned), or
 * -ETIMEDOUT / -errno with err set; what names the waited-for peer. */
int wire_accept(int lfd, int timeout_ms, const char *what, char *err, size_t errlen);

int wire_send_line(int fd, const char *line);
/* One '\n'-terminated line (without it) within timeout_ms: its length, or
 * -ETIMEDOUT, -ECONNRESET, -EMSGSIZE. A line that began within timeout_ms
 * gets WIRE_LINE_REST_MS more for its rest: a timeout never leaves half a
 * line read. */
#define WIRE_LINE_REST_MS 2000
int wire_read_line(int fd, char *buf, size_t len, int timeout_ms);
/* Constant-time comparison of n bytes. */
bool wire_token_equal(const char *a, const char *b, size_t n);

/* nsfd: the network namespace (netstack) the socket is made in, -1 for
 * the process's own. */
#endif
