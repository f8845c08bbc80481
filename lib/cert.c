#include "cert.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "net.h"
#include "util.h"

static void ssl_err(char *err, size_t errlen, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256] = "unknown error";

	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	snprintf(err, errlen, "%s: %s", what, buf);
	ERR_clear_error();
}

static int add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ext)
		return -EINVAL;
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return 0;
}

static int write_pem(const char *path, mode_t mode, int (*wr)(BIO *, void *), void *obj)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data;
	long n;
	int ret;

	if (!b)
		return -ENOMEM;
	if (!wr(b, obj)) {
		BIO_free(b);
		return -EIO;
	}
	n = BIO_get_mem_data(b, &data);
	ret = util_write_file_atomic(path, data, (size_t)n, mode);
	BIO_free(b);
	return ret;
}

static int wr_key(BIO *b, void *k)
{
	return PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
}

static int wr_cert(BIO *b, void *x)
{
	return PEM_write_bio_X509(b, x);
}

int cert_generate(const char *cert_path, const char *key_path, const char *cn, char *err,
                  size_t errlen)
{
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	uint8_t serial[16];
	char san[300];
	int ret = -EIO;

	key = EVP_EC_gen("P-256");
	if (!key) {
		ssl_err(err, errlen, "generating the host key");
		goto out;
	}
	x = X509_new();
	if (!x)
		goto oom;
	X509_set_version(x, 2);
	if (util_random(serial, sizeof(serial)) < 0)
		goto oom;
	serial[0] &= 0x7f;
	BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
	if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x))) {
		BN_free(bn);
		goto oom;
	}
	BN_free(bn);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 10L * 365 * 24 * 3600);
	X509_set_pubkey(x, key);
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"vmk", -1, -1,
	                           0);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, name);
	snprintf(san, sizeof(san), "DNS:%s", cn);
	if (add_ext(x, NID_basic_constraints, "critical,CA:TRUE") < 0 ||
	    add_ext(x, NID_key_usage, "critical,digitalSignature,keyCertSign") < 0 ||
	    add_ext(x, NID_ext_key_usage, "serverAuth") < 0 ||
	    add_ext(x, NID_subject_alt_name, san) < 0) {
		ssl_err(err, errlen, "adding certificate extensions");
		goto out;
	}
	if (!X509_sign(x, key, EVP_sha256())) {
		ssl_err(err, errlen, "signing the host certificate");
		goto out;
	}
	ret = write_pem(key_path, 0600, wr_key, key);
	if (ret < 0) {
		snprintf(err, errlen, "%s: %s", key_path, util_strerror(ret));
		goto out;
	}
	ret = write_pem(cert_path, 0644, wr_cert, x);
	if (ret < 0)
		snprintf(err, errlen, "%s: %s", cert_path, util_strerror(ret));
	goto out;
oom:
	snprintf(err, errlen, "out of memory creating the host certificate");
	ret = -ENOMEM;
out:
	X509_free(x);
	EVP_PKEY_free(key);
	return ret;
}

static X509 *pem_to_x509(const char *pem, size_t len)
{
	BIO *b = BIO_new_mem_buf(pem, (int)len);
	X509 *x;

	if (!b)
		return NULL;
	x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	BIO_free(b);
	ERR_clear_error();
	return x;
}

static void format_thumbprint(const uint8_t *md, char out[CERT_THUMBPRINT_LEN])
{
	static const char digits[] = "0123456789ABCDEF";

	for (int i = 0; i < 32; i++) {
		out[3 * i] = digits[md[i] >> 4];
		out[3 * i + 1] = digits[md[i] & 15];
		out[3 * i + 2] = i == 31 ? '\0' : ':';
	}
}

int cert_thumbprint(const char *pem, size_t len, char out[CERT_THUMBPRINT_LEN])
{
	uint8_t md[32];
	unsigned int mdlen = 0;
	X509 *x = pem_to_x509(pem, len);

	if (!x)
		return -EINVAL;
	int ok = X509_digest(x, EVP_sha256(), md, &mdlen);
	X509_free(x);
	if (!ok || mdlen != 32)
		return -EIO;
	format_thumbprint(md, out);
	return 0;
}

int cert_thumbprint_normalize(const char *in, char out[CERT_THUMBPRINT_LEN])
{
	uint8_t md[32];
	int n = 0, half = -1;

	for (const char *p = in; *p; p++) {
		int v;
		if (*p == ':' && half < 0)
			continue;
		if (*p >= '0' && *p <= '9')
			v = *p - '0';
		else if (*p >= 'a' && *p <= 'f')
			v = *p - 'a' + 10;
		else if (*p >= 'A' && *p <= 'F')
			v = *p - 'A' + 10;
		else
			return -EINVAL;
		if (n == 32)
			return -EINVAL;
		if (half < 0) {
			half = v;
		} else {
			md[n++] = (uint8_t)(half << 4 | v);
			half = -1;
		}
	}
	if (n != 32 || half >= 0)
		return -EINVAL;
	format_thumbprint(md, out);
	return 0;
}

int cert_subject_cn(const char *pem, size_t len, char *out, size_t outlen)
{
	X509 *x = pem_to_x509(pem, len);
	int n;

	if (!x)
		return -EINVAL;
	n = X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, out, (int)outlen);
	X509_free(x);
	return n < 0 ? -ENOENT : 0;
}

int cert_fetch_peer(const char *host, const char *port, int timeout_ms, char **pem, char *err,
                    size_t errlen)
{
	SSL_CTX *ctx = NULL;
	SSL *ssl = NULL;
	X509 *peer = NULL;
	BIO *b = NULL;
	int fd, ret = -EPROTO;

	fd = net_connect(host, port, timeout_ms, err, errlen);
	if (fd < 0)
		return fd;
	ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx)
		goto sslfail;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL); /* pinned by thumbprint instead */
	ssl = SSL_new(ctx);
	if (!ssl || !SSL_set_fd(ssl, fd))
		goto sslfail;
	errno = 0;
	if (SSL_connect(ssl) != 1) {
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			snprintf(err, errlen, "no TLS answer from %s:%s within %d ms", host, port,
			         timeout_ms);
			ret = -ETIMEDOUT;
			goto out;
		}
		goto sslfail;
	}
	peer = SSL_get1_peer_certificate(ssl);
	if (!peer) {
		snprintf(err, errlen, "%s:%s presented no certificate", host, port);
		goto out;
	}
	b = BIO_new(BIO_s_mem());
	if (!b || !PEM_write_bio_X509(b, peer))
		goto sslfail;
	char *data;
	long n = BIO_get_mem_data(b, &data);
	*pem = malloc((size_t)n + 1);
	if (!*pem) {
		ret = -ENOMEM;
		goto out;
	}
	memcpy(*pem, data, (size_t)n);
	(*pem)[n] = '\0';
	SSL_shutdown(ssl);
	ret = 0;
	goto out;
sslfail:
	ssl_err(err, errlen, "TLS handshake");
	{
		char tmp[300];
		snprintf(tmp, sizeof(tmp), "%s:%s: %s (is hostd listening with TLS there?)", host,
		         port, err);
		snprintf(err, errlen, "%s", tmp);
	}
out:
	BIO_free(b);
	X509_free(peer);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(fd);
	return ret;
}
