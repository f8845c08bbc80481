/* Fault tolerance: continuous checkpoints of a running VM to a secondary
 * vmx on another host, output commit, and the go-live of the secondary.
 *
 * The primary (primary.c) copies the VM once while it runs, then every
 * epoch (default 10 ms) pauses the vCPUs, takes the pages dirtied since
 * the last epoch and the vCPU and device state into a local buffer,
 * resumes at once and sends the buffer. The secondary (secondary.c)
 * buffers a whole epoch and applies it only when it is complete; it
 * answers "A <n>". The primary holds the guest's serial output of an epoch
 * until that answer (vmm_uart_hold), so nothing the outside saw is ever
 * lost by a failover.
 *
 * Exactly one copy runs: a side that loses its peer (silent for the
 * detection time) must win a test-and-set on the VM's generation record
 * (gen.c, a file next to the .vmx on the shared datastore) before it runs
 * on alone: the secondary to go live, the primary to release more output.
 * The loser stops its copy at once.
 *
 * The stream: "VMKFT1 <token> <generation>" (answer "OK"), then the state
 * format of docs/state-format.md: the header, CPUM, CONF and all of RAM,
 * then per epoch an EPCH section (u64 epoch), its RAM sections and the
 * machine sections, and EPND (u64 epoch). */
#ifndef VMK_REPLICA_H
#define VMK_REPLICA_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/state.h"
#include "vmm/vm.h"

#define SEC_EPOCH     VMM_FOURCC('E', 'P', 'C', 'H') /* u64 epoch: its sections follow */
#define SEC_EPOCH_END VMM_FOURCC('E', 'P', 'N', 'D') /* u64 epoch: it is complete */
/* in an epoch: u64 the serial log offset of its first byte, then the
 * serial output the guest wrote during the epoch (held by the primary) */
#define SEC_EPOCH_OUT VMM_FOURCC('E', 'O', 'U', 'T')

#define FT_TOKEN_HEX        64
#define FT_DEFAULT_EPOCH_MS 10
#define FT_MAX_EPOCH_MS     1000
/* a peer silent this long is declared failed: 3 epochs + 100 ms by
 * default, configurable between 2 epochs + 10 ms and FT_MAX_DETECT_MS */
#define FT_DETECT_MS(epoch_ms)     (3 * (epoch_ms) + 100)
#define FT_MIN_DETECT_MS(epoch_ms) (2 * (epoch_ms) + 10)
#define FT_MAX_DETECT_MS           5000

/* ---- the generation record (gen.c) ---- */

/* Sets the record at path to a generation one past what it holds (a new
 * protection) and returns it in *gen. */
int ft_gen_begin(const char *path, const char *owner, uint64_t *gen, char *err, size_t errlen);
/* The test-and-set: if the record holds expect, it becomes expect + 1,
 * owned by owner, and 0 is returned (this side won); -EBUSY when it holds
 * another generation (the peer won first), -errno when it cannot be read
 * or written (then nobody may assume it won). Atomic between hosts that
 * share the file through flock(2) and fsync. */
int ft_gen_take(const char *path, uint64_t expect, const char *owner, char *err, size_t errlen);
/* The generation and owner the record holds. */
int ft_gen_read(const char *path, uint64_t *gen, char *owner, size_t ownerlen);

/* ---- primary ---- */

enum ft_phase {
	FT_OFF,
	FT_CONNECTING,
	FT_SYNCING,   /* the first full copy */
	FT_PROTECTED, /* epochs flow and are acknowledged */
	FT_ALONE,     /* the secondary was lost; this side won the record */
	FT_FAILED,    /* never protected, or stopped */
	FT_LOST,      /* the secondary won the record: this copy stops */
};
const char *ft_phase_name(enum ft_phase p);

struct ft_params {
	char host[256];
	uint16_t port;
	char token[FT_TOKEN_HEX + 1];
	uint32_t epoch_ms;   /* 0: FT_DEFAULT_EPOCH_MS */
	uint32_t detect_ms;  /* 0: FT_DETECT_MS(epoch_ms) */
	int nsfd;            /* netstack to connect from, -1: vmx's own; owned */
	char gen_path[4096]; /* the generation record */
	char owner[128];     /* this host's name in the record */
};

struct ft_stats {
	enum ft_phase phase;
	uint64_t epoch; /* the last epoch taken */
	uint64_t acked; /* the last epoch the secondary acknowledged */
	uint64_t generation;
	uint64_t bytes; /* sent */
	uint64_t pause_us_last, pause_us_max;
	uint64_t stretched;                    /* epochs that took longer than epoch_ms to send */
	uint64_t pause_us_p50, pause_us_p99;   /* over the last FT_SAMPLES epochs */
	uint64_t output_us_p50, output_us_p99; /* how long released output waited */
	uint64_t protected_ms;                 /* since the first epoch */
	uint64_t last_ack_age_ms;              /* since the last acknowledgement (0: none yet) */
	uint64_t lag_ms;    /* how long the oldest unacknowledged epoch has waited */
	uint32_t detect_ms; /* the failure detection time */
	char error[300];
};

#define FT_SAMPLES 1024
/* epochs sent and not yet acknowledged, at most (their marks, n % FT_RING) */
#define FT_RING     512
#define FT_MAX_NICS 8

struct ft_primary {
	struct vmm_vm *vm;
	struct ft_params p;
	pthread_t thread, acker;
	bool started, acker_started;
	atomic_bool stop;
	int fd;
	pthread_mutex_t m;
	struct ft_stats st;
	uint64_t marks[FT_RING];              /* serial output mark at the end of epoch n */
	struct vmm_device *nics[FT_MAX_NICS]; /* their transmits wait too */
	unsigned nnics;
	uint64_t net_marks[FT_RING][FT_MAX_NICS]; /* each NIC's held mark at the end of epoch n */
	uint64_t sent_ms[FT_RING];                /* when epoch n was sent in full */
	uint64_t sent_upto;                       /* the last epoch sent in full */
	int64_t last_ack_ms;
	uint32_t pauses[FT_SAMPLES]; /* µs, epoch n at n % FT_SAMPLES */
	uint64_t first_epoch_ms;
	atomic_bool acker_done; /* the answers stopped: the record decides */
	uint32_t epoch_ms;
	uint32_t detect_ms;
	uint64_t log_base;     /* the serial log's size when output began to wait */
	bool fault_no_release; /* VMX_FT_FAULT=no-release (tests) */
};

/* Starts protecting the running VM (a thread); -EBUSY if it runs. */
int ft_primary_start(struct ft_primary *f, struct vmm_vm *vm, const struct ft_params *p, char *err,
                     size_t errlen);
void ft_primary_status(struct ft_primary *f, struct ft_stats *out);
/* Whether protection runs or is being set up (the VM's pause, its dirty
 * log and its disks belong to it then). */
bool ft_primary_active(struct ft_primary *f);
/* Whether this copy stopped because the secondary won the record. */
bool ft_primary_lost(struct ft_primary *f);
/* Ends protection: output flows at once again; the secondary, sent END,
 * stops without going live (and the record, taken here, would stop it
 * anyway). */
void ft_primary_stop(struct ft_primary *f);

/* ---- secondary ---- */

/* A secondary's decision between going live and being stopped, taken
 * under one lock so that exactly one of them happens. */
struct ft_standby {
	pthread_mutex_t m;
	bool live;           /* it decided to go live (it competes for the record) */
	bool abandoned;      /* stopped: it ends without going live */
	int fd;              /* the listening socket, then the connection: shut down
	                 * to wake it when stopped; -1 */
	uint64_t generation; /* of the protection it keeps a copy for */
	uint64_t applied;    /* epochs applied whole (and acknowledged) */
	uint64_t applied_ms; /* when the last one was */
	uint32_t epoch_ms;
	uint32_t detect_ms;
};
void ft_standby_init(struct ft_standby *s);
/* Stops the secondary unless it decided to go live: 0 (it ends without
 * going live and leaves the record alone), or -EALREADY (it runs the VM,
 * or is about to). */
int ft_standby_abandon(struct ft_standby *s);

/* Accepts the primary on lfd (its token checked in constant time), takes
 * the first copy and then epochs until the primary is lost. Returns 0 when
 * this side won the generation record (gen_path, owner) and the VM holds
 * the last complete epoch, ready to run; -ECANCELED when the primary ended
 * protection or sb was abandoned, -EBUSY when the primary kept the record, other -errno with
 * err. */
int ft_secondary_run(int lfd, const char *token, struct vmm_vm *vm, const char *gen_path,
                     const char *owner, int timeout_ms, struct ft_standby *sb, char *err,
                     size_t errlen);

#endif
