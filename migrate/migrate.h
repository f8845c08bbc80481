/* vMotion inside vmx: the live-migration engine of one VM.
 *
 * The wire (one TCP connection, source -> destination unless noted):
 *   1. "VMKMIG1 <64 hex token>[ <n>]\n"; the destination answers "OK\n"
 *      (or "NO <why>\n" and closes). With n > 1 (--streams, at most
 *      MIGRATE_MAX_STREAMS) the source then opens n - 1 more connections,
 *      each "VMKMIG1S <token> <i>\n" (i = 1..n-1, once each), answered
 *      "OK\n"; each carries a state stream of its own: header, RAM and ZERO
 *      sections, END. A page always travels the stream
 *      (page / MIGRATE_STREAM_CHUNK) % n, so its copies arrive in order;
 *      the destination loads the main stream, then waits for every other
 *      stream's END before it acknowledges. Nobody else gets in.
 *   2. The state stream of docs/state-format.md: header, CPUM, CONF, then
 *      RAM sections while the VM runs (all of RAM, then the pages dirtied
 *      meanwhile, iteration after iteration), then, with the VM paused, the
 *      last dirty pages, the vCPUs and devices, and END. Each pre-copy
 *      pass ends with a SYNC section on every stream; the destination
 *      answers "S <pass>\n" once all streams have loaded that pass, and
 *      the source reads every such answer before it pauses the VM.
 *   3. destination -> source: "R\n" once the whole state is loaded (or
 *      "F <why>\n").
 *   4. The hand-over: the source releases the VM's datastore lock and
 *      sends "L\n"; the destination takes the lock, starts its vCPUs and
 *      answers "G\n".
 * Before the source sends "L" any failure (the destination dies, the link
 * drops, a timeout, cancel) resumes the VM on the source, intact; after
 * it, the source never resumes: the destination holds the lock. */
#ifndef MIGRATE_MIGRATE_H
#define MIGRATE_MIGRATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/lease.h"
#include "vmm/vm.h"

#define MIGRATE_TOKEN_HEX           64
#define MIGRATE_DEFAULT_DOWNTIME_MS 50
#define MIGRATE_CONVERGE_S          120 /* give up when not converged by then */
#define MIGRATE_ACK_TIMEOUT_MS      30000
#define MIGRATE_MAX_STREAMS         8
#define MIGRATE_STREAM_CHUNK        2048 /* pages (8 MiB) a stream takes in turn */
/* during pre-copy the extra streams' threads yield to the guest's vCPUs:
 * the nice value they add */
#define MIGRATE_PRECOPY_NICE 10

enum migrate_phase {
	MIG_IDLE,
	MIG_CONNECTING,
	MIG_PRECOPY,
	MIG_SWITCHOVER,
	MIG_HANDOVER,
	MIG_DONE,
	MIG_FAILED,
	MIG_CANCELLED,
};

struct migrate_params {
	char host[256]; /* destination address (vMotion netstack) */
	int nsfd;       /* the netstack to connect from, -1: the process's own; migrate_src_start
	                 * takes it over (closed after the connect) when it succeeds */
	uint16_t port;
	char token[MIGRATE_TOKEN_HEX + 1];
	uint32_t downtime_ms;      /* 0: MIGRATE_DEFAULT_DOWNTIME_MS */
	uint32_t max_bandwidth;    /* MiB/s, 0: unlimited */
	uint32_t converge_timeout; /* s, 0: MIGRATE_CONVERGE_S */
	uint32_t streams;          /* parallel connections, 0/1: one */
	bool compress;             /* lz4 for the memory (RAMZ sections) */
	bool verify_pages;         /* a crc32c for each page, checked at the destination (RAMC) */
	bool storage;              /* the disks go too (storage migration) */
	char serial_log[4096];     /* with storage: the log that moves along */
};

/* What the source reports while it runs and at the end. */
struct migrate_progress {
	enum migrate_phase phase;
	uint32_t iteration;
	uint64_t remaining_bytes; /* dirty pages left to send, as of the last pass */
	uint64_t dirty_rate;      /* bytes/s the guest dirties */
	uint64_t bandwidth;       /* bytes/s the link carried in the last pass */
	uint64_t expected_downtime_ms;
	uint64_t transferred;  /* bytes on the wire */
	uint32_t throttle_pct; /* auto-converge: the share of time the vCPUs are held */
	uint64_t total_ms, downtime_ms;
	char error[400];
};

struct migrate_src {
	struct vmm_vm *vm;
	struct vmx_lease *lease; /* released at the hand-over; NULL: no lock held */
	struct migrate_params p;
	pthread_t thread;
	bool started;
	atomic_bool cancel;
	int fd;
	int xfd[MIGRATE_MAX_STREAMS]; /* the other streams' sockets, -1 unused */
	pthread_mutex_t m;
	struct migrate_progress prog;
};

/* Starts sending the running VM (a thread); -EBUSY if one runs already. */
int migrate_src_start(struct migrate_src *s, struct vmm_vm *vm, struct vmx_lease *lease,
                      const struct migrate_params *p, char *err, size_t errlen);
void migrate_src_progress(struct migrate_src *s, struct migrate_progress *out);
void migrate_src_cancel(struct migrate_src *s);
/* Waits for the thread (at vmx exit). */
void migrate_src_join(struct migrate_src *s);
const char *migrate_phase_name(enum migrate_phase p);

/* Destination: a listening socket on host (port 0: any); *port is set. */
int migrate_listen(int nsfd, const char *host, uint16_t *port, int *fd, char *err, size_t errlen);
/* Accepts the source (one connection, token checked in constant time),
 * restores the VM from the stream and acknowledges it ("R"). 0 with
 * *conn open, or -errno with err. timeout_ms bounds the wait for the source. */
int migrate_dst_receive(int lfd, const char *token, struct vmm_vm *vm, int timeout_ms, int *conn,
                        char *err, size_t errlen);
/* Waits for the hand-over ("L"): 0 when the source let go of the VM (the
 * caller takes the lock and starts the vCPUs, then migrate_dst_running). */
int migrate_dst_wait_handover(int conn, char *err, size_t errlen);
void migrate_dst_running(int conn);

#endif
