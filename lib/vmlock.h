/* The datastore ownership lock of a VM: a lease file <vmdir>/.vmk.lck, so
 * two hosts that share a datastore directory (NFS, or any shared file
 * system) never run the same VM at once, like ESXi's .lck files.
 *
 * The file is text, one key=value per line, at most VMLOCK_MAX_BYTES:
 *
 *   # vmk VM lock ...          comments: lines that start with '#'
 *   version=1                  the first line that is not a comment
 *   host=esx1                  host id of the holder (hostd's name or uuid)
 *   addr=192.0.2.11            holder's address, for messages only
 *   pid=4242                   the vmx that runs the VM
 *   counter=17                 lease generation, +1 at every renewal
 *   expires=1700000010         holder's wall clock + lease, seconds: shown
 *                              to people, never used to decide anything
 *   token=<32 hex>             random per acquisition: which lease this is
 *
 * The lease (no shared clock needed, only loosely equal clock rates):
 * - the holder renews every renew_ms (default 2 s) by writing a new file
 *   with counter + 1 and renaming it over the lock (readers see the old or
 *   the new file, never half of one);
 * - a contender that finds another host's lease records (token, counter)
 *   with its own monotonic time in a struct vmlock_watch, and may
 *   take the lock over only once they stayed unchanged for lease_ms
 *   (default 10 s) of its own time;
 * - the holder itself gives up (-ETIMEDOUT) when it could not renew for
 *   lease_ms - renew_ms of its own time, so it stops before a contender can
 *   have started: whoever renews must also stop the VM when renew fails.
 *
 * Atomic steps, all of which work over NFS:
 * - a free lock is created by writing a private temporary file and link()ing
 *   it to .vmk.lck: link fails with EEXIST when the lock exists;
 * - a stale lease is taken over by rename()ing .vmk.lck to a private name
 *   (only one contender can move a given file away), checking that what was
 *   moved is the lease that went stale (else it is linked back), then
 *   link()ing a fresh lease in place and checking the file is ours;
 * - release moves the file away the same way and deletes it only if it is
 *   still ours.
 *
 * While it holds the lock, the holder also keeps an open-file-description
 * fcntl write lock (F_OFD_SETLK) on the file: a same-host guard that stays
 * correct when a process holds several VM locks and reads lock files (a
 * POSIX F_SETLK lock would be dropped by close() of any descriptor of the
 * file in the process). It is consulted only for leases naming this host:
 * on NFS, fcntl locks depend on lockd/NFSv4 state and the lock of a dead
 * NFSv3 client can outlive it, which is why the lease decides between hosts.
 * File systems without fcntl locks (ENOLCK) just go without the guard.
 *
 * The file lives on a shared datastore: everything read from it is
 * untrusted, bounded and checked; a damaged file is reported (-EBADMSG) with
 * its path and the fix, and never taken over automatically; nor is one of
 * another format version (-EPROTONOSUPPORT).
 *
 * Not thread-safe: one struct vmlock per VM, used by one thread at a
 * time. Functions return 0 or -errno; err (may be NULL) gets a message that
 * names the lock file and the fix. */
#ifndef VMLOCK_H
#define VMLOCK_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VMLOCK_FILE      ".vmk.lck"
#define VMLOCK_VERSION   1
#define VMLOCK_MAX_BYTES 1024
#define VMLOCK_ID_MAX    63 /* host and addr: printable ASCII, no spaces */
#define VMLOCK_TOKEN_LEN 32 /* hex characters */
#define VMLOCK_LEASE_MS  10000u
#define VMLOCK_RENEW_MS  2000u

/* A lease as read from a lock file. */
struct vmlock_owner {
	char host[VMLOCK_ID_MAX + 1];
	char addr[VMLOCK_ID_MAX + 1];
	int pid;
	uint64_t counter;
	uint64_t expires_s; /* the holder's wall clock: informative only */
	char token[VMLOCK_TOKEN_LEN + 1];
	/* an fcntl lock is held on the file by another open file (a live holder
	 * process of this host; on NFS possibly of another host) */
	bool locked;
};

/* What a contender saw of another host's lease. Zero it ({0}) before the
 * first call; keep it between calls about the same VM. */
struct vmlock_watch {
	bool seen;
	char token[VMLOCK_TOKEN_LEN + 1];
	uint64_t counter;
	uint64_t since_ms; /* contender's monotonic time when (token, counter) was first seen */
};

/* One VM lock as seen by one would-be holder. After vmlock_init the
 * caller may change lease_ms, renew_ms and now_ms (tests use a fake clock). */
struct vmlock {
	char path[PATH_MAX]; /* <vmdir>/.vmk.lck */
	char host[VMLOCK_ID_MAX + 1];
	char addr[VMLOCK_ID_MAX + 1];
	int pid;
	unsigned lease_ms;
	unsigned renew_ms;
	uint64_t (*now_ms)(void); /* monotonic milliseconds; util_now_ms by default */

	bool held;
	int fd; /* owned while held: the lock file, carrying the F_OFD_SETLK lock; else -1 */
	uint64_t counter;
	uint64_t renewed_ms; /* now_ms() just before our lease was last made visible */
	char token[VMLOCK_TOKEN_LEN + 1];
};

/* Fills l for the lock of the VM in vmdir, held as host (id) / addr by the
 * vmx pid. -EINVAL for an empty or malformed host/addr or pid < 1,
 * -ENAMETOOLONG for a too long vmdir. Opens nothing. */
int vmlock_init(struct vmlock *l, const char *vmdir, const char *host, const char *addr, int pid,
                char *err, size_t errlen);

/* Takes the lock:
 *   0        held: the lock was free, or was ours (see below), or another
 *            host's lease stayed unchanged for lease_ms (takeover);
 *   -EBUSY   another holder is live, or not yet proven dead: *holder (may be
 *            NULL) says who. With a watch, call again later (e.g. every
 *            renew_ms) with the same watch: the lock is taken over once the
 *            lease stays unchanged for lease_ms. Without one (w NULL) the
 *            first sight of a holder is final;
 *   -EBADMSG the lock file is damaged (err: its path and the fix);
 *   -EPROTONOSUPPORT it has another format version (a newer vmk wrote it);
 *   other -errno: the datastore failed.
 * Same host and pid: calling it again on a held l does nothing (0). A lease
 * of the same host and pid left by a process that is gone (hostd restarted
 * while its vmx runs) is adopted at once: 0, with a new token and counter+1.
 * While another open file of this host still holds its fcntl lock (hostd
 * running twice, or a second struct in the same hostd) it is refused with
 * -EBUSY. A lease of this host with another pid is treated like any other
 * holder, and never taken over while its fcntl lock is held. */
int vmlock_acquire(struct vmlock *l, struct vmlock_watch *w, struct vmlock_owner *holder, char *err,
                   size_t errlen);

/* Takes the lock whoever holds it, live or not: only for a caller that
 * has proof of its own that the holder stops (the FT secondary that won
 * the generation record, replica/gen.c). The holder finds its lease lost
 * at its next renewal (-ESTALE). A damaged lock file names nobody: it is
 * moved to <lock>.damaged and the lock taken. 0 held; -EPROTONOSUPPORT a
 * newer lock file is left alone; other -errno. *holder (may be NULL) gets
 * the lease that was replaced. */
int vmlock_seize(struct vmlock *l, struct vmlock_owner *holder, char *err, size_t errlen);

/* Renews the lease; call every renew_ms while the VM runs.
 *   0          renewed (counter + 1);
 *   -ESTALE    the lock is no longer ours: taken over, removed or overwritten;
 *   -ETIMEDOUT not renewed for lease_ms - renew_ms: another host may take it
 *              over at any moment, so it is given up;
 *   -EINVAL    l is not held.
 * After -ESTALE or -ETIMEDOUT l is not held (the file is left alone) and the
 * VM must be stopped. Other -errno (I/O errors): l stays held; call again. */
int vmlock_renew(struct vmlock *l, char *err, size_t errlen);

/* Releases the lock, removing the file only if it is still our lease.
 * 0 removed (or l was not held: nothing to do); -ESTALE the file was no
 * longer ours and is left alone. Either way l is no longer held. Other
 * -errno (I/O errors): l stays held; call again or vmlock_abandon. */
int vmlock_release(struct vmlock *l, char *err, size_t errlen);

/* Forgets the lock without touching the file, as a crash would: for a
 * hostd that exits while the VM keeps running. The lease goes stale unless
 * the restarted hostd adopts it (acquire) within lease_ms. */
void vmlock_abandon(struct vmlock *l);

/* Who holds the lock of the VM in vmdir (for `vm get`): 0 and *o, -ENOENT
 * when there is no lock file, -EBADMSG when it is damaged,
 * -EPROTONOSUPPORT when a newer vmk wrote it. */
int vmlock_read(const char *vmdir, struct vmlock_owner *o, char *err, size_t errlen);

/* The staleness rule with an explicit clock (now_ms: the caller's monotonic
 * milliseconds), reading l's lock file and using l->host and l->lease_ms:
 *   0        stale: the lease in *o stayed unchanged for lease_ms since w
 *            first saw it (and, for a lease of this host, no fcntl lock);
 *   -EBUSY   live or not yet known to be dead (w updated);
 *   -ENOENT  free;  -EBADMSG damaged;  -EPROTONOSUPPORT newer format;
 *   other -errno: I/O.
 * It only looks: the takeover itself is vmlock_acquire's. */
int vmlock_check_stale(const struct vmlock *l, struct vmlock_watch *w, uint64_t now_ms,
                       struct vmlock_owner *o, char *err, size_t errlen);

/* For hostd cleaning up after a crashed vmx of its own: removes the lock
 * of vmdir only if its lease names host and pid and no process holds its
 * fcntl lock. 0 removed; -ENOENT no lock; -EBUSY someone else's or still
 * locked (left alone, *err says whose); -EBADMSG damaged or
 * -EPROTONOSUPPORT newer format (left alone); -EAGAIN it changed while
 * being removed (left alone). */
int vmlock_release_if_owner(const char *vmdir, const char *host, int pid, char *err, size_t errlen);

#endif
