/* Small utilities shared by every binary. Functions return 0 or -errno. */
#ifndef VMK_UTIL_H
#define VMK_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/types.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Opens path (flags: O_RDONLY or O_RDWR, plus O_NOFOLLOW to refuse a
 * symbolic link) as a regular file without waiting on it: a FIFO or a
 * device, whose open may wait for a peer for good, is refused at once.
 * The fd (close-on-exec, blocking), with its stat in *st if st; or
 * -errno: -EISDIR for a directory, -EINVAL for any other file that is not
 * a regular one, -ELOOP for a link under O_NOFOLLOW. */
int util_open_regular(const char *path, int flags, struct stat *st);

/* Reads a whole file of at most `max` bytes into a NUL-terminated buffer.
 * -EFBIG when larger; -EISDIR for a directory and -EINVAL for any other
 * file that is not a regular one (a FIFO or a device: refused at once,
 * never waited on). Ownership: *buf is malloc'd, the caller frees it. */
int util_read_file(const char *path, size_t max, char **buf, size_t *len);

/* A test hook: when the environment variable env holds a number of ms
 * (1 to 10000), logs that what waits that long, and sleeps. */
void util_test_delay(const char *env, const char *what);

/* Writes via PATH.tmp + fsync + rename, so readers see old or new, never
 * half. PATH.tmp is never followed as a symbolic link (one put there, in a
 * datastore, would have root write through it): -ELOOP. */
int util_write_file_atomic(const char *path, const void *buf, size_t len, mode_t mode);

/* mkdir -p; existing directories are fine. */
int util_mkdir_p(const char *path, mode_t mode);

/* Fills buf with len bytes from the kernel CSPRNG. */
int util_random(void *buf, size_t len);

/* A random (version 4) RFC 4122 uuid as 36 characters and a NUL. */
int util_uuid4(char out[37]);

/* Lower-case hex of n bytes into out (2n+1 bytes). */
void util_hex(const uint8_t *in, size_t n, char *out);

/* Constant-time comparison of two equal-length buffers. */
bool util_ct_equal(const void *a, const void *b, size_t n);

/* Object names (datastores, VMs, accounts...): 1..max characters of
 * [A-Za-z0-9._-], not starting with '.' or '-'. On failure writes why. */
/* Whether path is inside directory dir (dir/..., not dir itself). */
bool util_path_in(const char *path, const char *dir);
bool util_valid_name(const char *s, size_t max, char *why, size_t whylen);

/* printf into err[errlen] (nothing when err is NULL or errlen 0): the
 * "char *err, size_t errlen" out-parameter of functions that fail. */
void util_set_err(char *err, size_t errlen, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* FNV-1a of the string s, continuing from h (start with UTIL_FNV1A_INIT):
 * stable names and MACs derived from names and uuids. */
#define UTIL_FNV1A_INIT 2166136261u
uint32_t util_fnv1a(uint32_t h, const char *s);

/* Milliseconds on CLOCK_MONOTONIC. */
uint64_t util_now_ms(void);
/* The same in microseconds. */
uint64_t util_now_us(void);
/* ms from now on CLOCK_REALTIME: the deadline of pthread_cond_timedwait. */
void util_deadline(struct timespec *ts, unsigned ms);
/* Wall-clock milliseconds since the epoch (what survives a restart). */
uint64_t util_wall_ms(void);
/* The same in nanoseconds. */
uint64_t util_wall_ns(void);
/* rm -r of dir (without following symlinks): removes what it can; 0 or
 * the -errno of the first failure. */
int util_rm_tree(const char *dir);

/* True when all n bytes at p are zero (a word at a time). */
bool util_all_zero(const void *p, size_t n);

/* All n bytes at offset off (retried on EINTR and short writes): 0 or
 * -errno. */
int util_pwrite_all(int fd, const void *buf, size_t n, uint64_t off);

/* Raises the calling thread's nice value by inc: it yields CPU to the
 * process's other threads and everyone else. For threads that end at that
 * priority (coming back needs CAP_SYS_NICE); threads it creates inherit
 * the value. */
int util_thread_nice(int inc);

/* strerror for a negative errno. */
const char *util_strerror(int neg_errno);

#endif
