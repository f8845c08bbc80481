/* Plain socket helpers. */
#ifndef VMK_NET_H
#define VMK_NET_H

#include <stddef.h>

/* TCP connect to host:port within timeout_ms; the returned blocking fd has
 * send/receive timeouts of timeout_ms. -errno with err set on failure
 * (-ECONNREFUSED, -ETIMEDOUT, -EHOSTUNREACH, ...). */
int net_connect(const char *host, const char *port, int timeout_ms, char *err, size_t errlen);

/* All n bytes to a socket (MSG_NOSIGNAL, retried on EINTR and short
 * writes): 0 or -errno (-EAGAIN when a send timeout expired). */
int net_send_all(int fd, const void *buf, size_t n);

/* Exactly n bytes within timeout_ms in all: 0, -ETIMEDOUT, -ECONNRESET
 * when the peer closed first, or -errno. */
int net_recv_all(int fd, void *buf, size_t n, int timeout_ms);

/* A connected unix stream socket to path (close-on-exec, blocking, with
 * send and receive timeouts of timeout_ms), or -errno (-ENOENT when no
 * socket is there, -ECONNREFUSED when nothing listens). */
int net_unix_connect(const char *path, int timeout_ms);

#endif
