/* NFC: the provisioning file copy between hosts (as ESXi's Network File
 * Copy): one file per transfer, over TCP on the provisioning netstack.
 *
 * The wire (client = the sending host, server = the receiving one):
 *   1. client: "VMKNFC1 <64 hex token>\n"; server: "OK <offset>\n", where
 *      offset is how much of the file it already holds verified (0 for a
 *      new transfer, more when a dropped transfer resumes), "DONE <n>\n"
 *      when it has the whole file already (a sender that lost the first
 *      DONE asks again), or "NO <why>\n" and it closes.
 *   2. client: records, in increasing offset order, from offset on:
 *        'D' u64 offset u32 length u32 crc32c(data) data[length]
 *      (length 1..NFC_CHUNK; only the file's data: holes, and chunks that
 *      are all zero, are never sent), then
 *        'E' u64 file size
 *      and, over a long run of zeros, at least every 2 s
 *        'K' u64 offset    (no data up to offset: a hole)
 *      or, from a sender that gives up (a cancel, a failure of its own),
 *        'A'
 *      which fails the transfer for good (error -ECANCELED).
 *   3. server: "DONE <bytes received>\n" once the file is complete, synced
 *      and in place under its name, or "ERR <why>\n".
 * The server checks every chunk's checksum before it writes it and fails
 * the transfer on a mismatch; the file only gets its name after END, so a
 * half-copied file never looks whole. A dropped connection leaves the
 * transfer resumable from the end of its last verified chunk (the token
 * stays valid until the transfer is done or forgotten).
 * Little-endian throughout. */
#ifndef MIGRATE_NFC_H
#define MIGRATE_NFC_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NFC_CHUNK     (1u << 20)
#define NFC_TOKEN_HEX 64

/* One transfer, as the receiving side knows it. */
struct nfc_xfer {
	char token[NFC_TOKEN_HEX + 1];
	char path[4096]; /* where the file goes; written as path + ".part" first */
	pthread_mutex_t m;
	pthread_cond_t cv; /* signalled when busy clears */
	int conn_fd;       /* the connection working on it (busy), -1 */
	uint64_t verified; /* bytes from 0 that are written and checked */
	uint64_t received; /* data bytes received over every connection */
	uint64_t size;     /* the file's size, known at END */
	bool busy;         /* a connection is working on it */
	bool done;
	bool dead; /* given up, or its commit failed: never resumed */
	int error; /* -errno of the last failure, 0 */
	char why[300];
	/* Optional: called once the file is complete and in place, before the
	 * sender hears DONE; a failure (-errno with err set) fails the transfer
	 * with that reason (the file stays in place: the owner cleans up). */
	int (*commit)(struct nfc_xfer *x, void *arg, char *err, size_t errlen);
	void *commit_arg;
};

void nfc_xfer_init(struct nfc_xfer *x, const char *token, const char *path);
void nfc_xfer_destroy(struct nfc_xfer *x);

/* The server side of one connection: reads the token line, asks lookup
 * for its transfer (NULL: refused), receives into it. 0 when the file is
 * complete, else -errno with err set (the transfer stays resumable unless
 * a chunk failed its checksum or the stream was malformed). A sender that
 * reconnects while its old connection still holds the transfer (the old
 * one stalled on a dead link) takes over: the old connection is shut down
 * and the new one resumes from the verified offset. */
typedef struct nfc_xfer *(*nfc_lookup_fn)(void *arg, const char *token);
int nfc_serve(int fd, nfc_lookup_fn lookup, void *arg, char *err, size_t errlen);
/* The lookup of a server that has one transfer (arg: its nfc_xfer). */
struct nfc_xfer *nfc_lookup_one(void *xfer, const char *token);

/* Test hooks for the sending side (all 0 in real use). */
struct nfc_faults {
	uint64_t drop_after;   /* shut the connection down after this many data bytes */
	uint64_t flip_at;      /* flip a byte of the data at this file offset + 1 (0: none) */
	uint64_t keepalive_ms; /* skip records over zeros this often (0: every 2 s) */
};

struct nfc_progress {
	uint64_t max_bps;              /* in: cap the data rate (bytes/s), 0: none */
	atomic_uint_fast64_t sent;     /* data bytes sent, this connection */
	atomic_uint_fast64_t sent_all; /* data bytes sent, every connection */
	atomic_uint_fast32_t resumes;  /* reconnections (nfc_send_path) */
	atomic_uint_fast64_t offset;   /* how far into the file */
	uint64_t size;
	uint64_t resumed_from; /* the offset the server asked for */
};

/* The client side: sends the file open at src over fd (connected), with
 * token. 0 once the server confirmed it, else -errno with err set:
 * -EACCES refused, -EIO the server failed the copy (a checksum, its disk),
 * -ECANCELED, -EBUSY the transfer is held by another connection; anything
 * else is a connection failure that nfc_send_path resumes from. */
int nfc_send(int fd, int src, const char *token, struct nfc_progress *p,
             const struct nfc_faults *faults, atomic_bool *cancel, char *err, size_t errlen);

/* A connection drop is noticed this long after data stops being
 * acknowledged (TCP_USER_TIMEOUT on the sending socket). */
#define NFC_STALL_MS 4000

/* The whole sending side of one file: connects to host:port (from the
 * netstack nsfd, -1: this one), sends path with token, and after a dropped
 * connection connects again and resumes where the server's verified data
 * ends, for as long as it keeps failing for less than resume_ms in a row.
 * 0 once the server confirmed the file, else -errno with err set. */
int nfc_send_path(int nsfd, const char *host, uint16_t port, const char *path, const char *token,
                  struct nfc_progress *p, const struct nfc_faults *faults, atomic_bool *cancel,
                  int resume_ms, char *err, size_t errlen);

/* Tells the server the transfer of token is given up ('A'): its owner
 * stops waiting for it. 0, -EALREADY when the server has the whole file
 * (too late to give up), or -errno. */
int nfc_abort(int nsfd, const char *host, uint16_t port, const char *token, char *err,
              size_t errlen);

/* A copy on this host: a reflink (FICLONE) where the file system can,
 * else copy_file_range over the data extents only (holes stay holes),
 * into dst + ".part", synced, then renamed to dst. */
int nfc_copy_local(const char *src, const char *dst, char *err, size_t errlen);

#endif
