/* vmx's control socket: hostd drives its VM through it (status, pause,
 * resume, power off, stats), and re-attaches to it after its own restart.
 * A unix stream socket at <path>, mode 0600, and every connecting peer must
 * have vmx's own uid. Frames: a 4-byte little-endian length, then a
 * protobuf message (proto/vmx.proto); a client sends a Request and reads
 * the Response, as many times as it likes on one connection. (It was nng
 * REP over ipc://; nng 1.5's ipc listener stops accepting for good after a
 * peer that closes during the handshake, nanomsg/nng#1518, which left a
 * VM without control.) */
#ifndef VMM_CONTROL_H
#define VMM_CONTROL_H

#include <stdint.h>
#include <stdio.h>

#include "vmx.pb-c.h"

/* What the control socket asks of the VM; each returns a status code
 * (0 ok, 5 conflict with the current state, ...) and may set *why. */
struct vmm_control_ops {
	int (*status)(void *arg, Vmx__StatusInfo *out); /* strings must outlive the reply */
	int (*pause)(void *arg, const char **why);
	int (*resume)(void *arg, const char **why);
	int (*power_off)(void *arg, int hard, const char **why);
	int (*stats)(void *arg, Vmx__StatsInfo *out);
	int (*save)(void *arg, const char *path, const char **why);
	/* live migration (migrate/migrate.h); NULL: not offered */
	int (*migrate_send)(void *arg, const Vmx__MigrateSendRequest *r, const char **why);
	int (*migrate_status)(void *arg, Vmx__MigrateInfo *out); /* strings outlive the reply */
	int (*migrate_cancel)(void *arg, const char **why);
	/* fault tolerance (replica/); NULL: not offered */
	int (*ft_start)(void *arg, const Vmx__FtStartRequest *r, const char **why);
	int (*ft_status)(void *arg, Vmx__FtInfo *out); /* strings outlive the reply */
	int (*ft_stop)(void *arg, const char **why);
	/* disk snapshot layers (vmm/disk.h); NULL: not offered */
	int (*disk_snapshot)(void *arg, const Vmx__DiskSnapshotRequest *r, const char **why);
	int (*disk_consolidate)(void *arg, const Vmx__DiskConsolidateRequest *r, const char **why);
};

struct vmm_control;

int vmm_control_start(struct vmm_control **c, const char *path, const struct vmm_control_ops *ops,
                      void *arg, char *err, size_t errlen);
void vmm_control_stop(struct vmm_control *c);

/* One raw request in, one packed response out (malloc'd): the decoder the
 * server uses, exposed for tests and fuzzing. Never fails on bad input. */
int vmm_control_handle(const struct vmm_control_ops *ops, void *arg, const uint8_t *in,
                       size_t inlen, uint8_t **out, size_t *outlen);

#define VMM_CONTROL_MAX_MSG   (64u << 10)
#define VMM_CONTROL_MAX_CONNS 16
#define VMM_CONTROL_IDLE_MS   30000 /* a client quiet this long is closed */

/* The framing: one frame out; one frame in within timeout_ms, at most max
 * bytes (-EMSGSIZE above), *body malloc'd. 0 or -errno. */
int vmm_control_send_frame(int fd, const void *body, size_t len);
int vmm_control_recv_frame(int fd, size_t max, int timeout_ms, uint8_t **body, size_t *len);

/* Client: one call to the vmx at path. *resp is freed with
 * vmx__response__free_unpacked. -ECONNREFUSED / -ETIMEDOUT / -EIO. */
int vmm_control_call(const char *path, const Vmx__Request *req, Vmx__Response **resp,
                     int timeout_ms, char *err, size_t errlen);

/* `vmx --control SOCK VERB [ARG]`: prints the answer's key=value lines to
 * out and returns an exit code (the status). */
int vmm_control_cli(const char *path, int argc, char **argv, FILE *out);

#endif
