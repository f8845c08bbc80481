/* Host certificates: generation (hostd, first start), SHA-256 thumbprints,
 * and fetching a server's certificate for first-contact pinning (vmkctl).
 * OpenSSL is used only here: nng's TLS (mbedTLS) cannot do these. */
#ifndef VMK_CERT_H
#define VMK_CERT_H

#include <stddef.h>

/* "AB:CD:..." : 32 bytes as upper-case hex pairs joined by ':' + NUL */
#define CERT_THUMBPRINT_LEN 96

/* Creates an EC P-256 key (mode 0600) and a self-signed certificate for `cn`
 * valid for 10 years, with `cn` as DNS subjectAltName. */
int cert_generate(const char *cert_path, const char *key_path, const char *cn, char *err,
                  size_t errlen);

/* Thumbprint (SHA-256 of the DER encoding) of the first certificate in pem. */
int cert_thumbprint(const char *pem, size_t len, char out[CERT_THUMBPRINT_LEN]);

/* Canonical form of a user-supplied thumbprint: 64 hex digits with or without
 * ':' separators, any case. -EINVAL when it is not one. */
int cert_thumbprint_normalize(const char *in, char out[CERT_THUMBPRINT_LEN]);

/* Common name of the certificate's subject. */
int cert_subject_cn(const char *pem, size_t len, char *out, size_t outlen);

/* Connects to host:port, completes a TLS handshake without verification and
 * returns the server's certificate as PEM (*pem malloc'd, caller frees).
 * -ETIMEDOUT / -ECONNREFUSED / -EHOSTUNREACH / -EPROTO with a message. */
int cert_fetch_peer(const char *host, const char *port, int timeout_ms, char **pem, char *err,
                    size_t errlen);

#endif
