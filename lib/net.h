/* Plain socket helpers. */
#ifndef VMK_NET_H
#define VMK_NET_H

#include <stddef.h>

/* TCP connect to host:port within timeout_ms; the returned blocking fd has
 * send/receive timeouts of timeout_ms. -errno with err set on failure
 * (-ECONNREFUSED, -ETIMEDOUT, -EHOSTUNREACH, ...). */
int net_connect(const char *host, const char *port, int timeout_ms, char *err, size_t errlen);

#endif
