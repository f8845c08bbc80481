#include "hostconn.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "util.h"

#define LINE_MAX_BYTES 4096
#define SMALL_FILE     (64u << 10)

int hostconn_errno_exit(int e)
{
	switch (e) {
	case 0:
		return 0;
	case -ECONNREFUSED:
	case -ETIMEDOUT:
	case -EHOSTUNREACH:
	case -ENETUNREACH:
	case -ECONNRESET:
		return 6;
	case -EACCES:
		return 3;
	default:
		return 1;
	}
}

/* ~/.vmk, created on demand; "" when there is no home. */
static void vmk_home(char *out, size_t outlen)
{
	const char *home = getenv("HOME");

	if (!home || !*home) {
		out[0] = '\0';
		return;
	}
	snprintf(out, outlen, "%s/.vmk", home);
}

/* Value for `key` in a "key=value" lines file. */
static int kv_lookup(const char *text, const char *key, char *out, size_t outlen)
{
	size_t kl = strlen(key);

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (strncmp(p, key, kl) == 0 && p[kl] == '=') {
			const char *v = p + kl + 1;
			size_t n = strcspn(v, "\r\n");
			if (n >= outlen)
				return -ENAMETOOLONG;
			memcpy(out, v, n);
			out[n] = '\0';
			return 0;
		}
	}
	return -ENOENT;
}

/* In a whitespace-separated lines file, the line whose field `col` equals
 * `key`: copies fields 1 and 2 (address and thumbprint for lab hosts). */
static int table_lookup(const char *text, int col, const char *key, char *f0, size_t f0len,
                        char *f1, size_t f1len, char *f2, size_t f2len)
{
	char line[LINE_MAX_BYTES];

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		size_t n = strcspn(p, "\n");
		if (n >= sizeof(line) || p[0] == '#')
			continue;
		memcpy(line, p, n);
		line[n] = '\0';
		char *save = NULL, *f[3] = { 0 };
		f[0] = strtok_r(line, " \t\r", &save);
		f[1] = f[0] ? strtok_r(NULL, " \t\r", &save) : NULL;
		f[2] = f[1] ? strtok_r(NULL, " \t\r", &save) : NULL;
		if (!f[col] || strcmp(f[col], key) != 0)
			continue;
		if (f0)
			snprintf(f0, f0len, "%s", f[0]);
		if (f1)
			snprintf(f1, f1len, "%s", f[1] ? f[1] : "");
		if (f2)
			snprintf(f2, f2len, "%s", f[2] ? f[2] : "");
		return 0;
	}
	return -ENOENT;
}

static int read_small(const char *path, char **text, char *err, size_t errlen)
{
	int ret = util_read_file(path, SMALL_FILE, text, NULL);

	if (ret < 0)
		snprintf(err, errlen, "%s: %s", path, util_strerror(ret));
	return ret;
}

/* A lab's addresses exist only inside its network namespaces: the lab names
 * the admin namespace (attached to its management network) in DIR/netns,
 * and vmkctl enters it before opening any socket. */
static int enter_lab_netns(struct hostconn *c)
{
	char path[PATH_MAX], name[128], nspath[PATH_MAX];
	char *text = NULL;
	int fd, ret;

	snprintf(path, sizeof(path), "%s/netns", c->o.lab);
	ret = util_read_file(path, SMALL_FILE, &text, NULL);
	if (ret == -ENOENT)
		return 0; /* a lab reachable from here */
	if (ret < 0) {
		snprintf(c->err, sizeof(c->err), "%s: %s", path, util_strerror(ret));
		return 2;
	}
	snprintf(name, sizeof(name), "%.*s", (int)strcspn(text, " \t\r\n"), text);
	free(text);
	if (!name[0] || strchr(name, '/')) {
		snprintf(c->err, sizeof(c->err), "%s: not a namespace name", path);
		return 2;
	}
	snprintf(nspath, sizeof(nspath), "/run/netns/%s", name);
	fd = open(nspath, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(c->err, sizeof(c->err),
		         "the lab's network namespace %s: %s (is the lab up? integration/lab "
		         "status)",
		         name, strerror(errno));
		return 6;
	}
	ret = setns(fd, CLONE_NEWNET);
	close(fd);
	if (ret < 0) {
		snprintf(c->err, sizeof(c->err),
		         "cannot enter the lab's network namespace %s: %s (run vmkctl as root, "
		         "or inside it: ip netns exec %s vmkctl ...)",
		         name, strerror(errno), name);
		return 3;
	}
	return 0;
}

int hostconn_lab_hosts(const char *lab, char (*names)[128], size_t max, size_t *n)
{
	char path[PATH_MAX], *hosts = NULL, err[300];

	*n = 0;
	if (!lab)
		return -ENOENT;
	snprintf(path, sizeof(path), "%s/hosts", lab);
	int ret = read_small(path, &hosts, err, sizeof(err));
	if (ret < 0)
		return ret;
	for (const char *p = hosts; p && *p && *n < max;
	     p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (p[0] == '#' || sscanf(p, "%127s", names[*n]) != 1)
			continue;
		(*n)++;
	}
	free(hosts);
	return 0;
}

/* Turns the server option into c->url and c->display; fills the thumbprint
 * from the lab when it knows the host. */
static int resolve(struct hostconn *c)
{
	const char *s = c->o.server;
	char addr[300] = "", tp[200] = "", name[128] = "";
	char *hosts = NULL;
	int ret;

	if (c->o.lab) {
		char path[PATH_MAX];
		if ((ret = enter_lab_netns(c)) != 0)
			return ret;
		snprintf(path, sizeof(path), "%s/hosts", c->o.lab);
		if (read_small(path, &hosts, c->err, sizeof(c->err)) < 0) {
			strncat(c->err, " (is --lab the directory of a running lab?)",
			        sizeof(c->err) - strlen(c->err) - 1);
			return 2;
		}
		if (!s) {
			/* no -s: the lab's first host */
			if (sscanf(hosts, "%127s %299s %199s", name, addr, tp) < 2) {
				snprintf(c->err, sizeof(c->err), "%s has no hosts", path);
				free(hosts);
				return 2;
			}
		} else if (table_lookup(hosts, 0, s, name, sizeof(name), addr, sizeof(addr), tp,
		                        sizeof(tp)) < 0 &&
		           table_lookup(hosts, 1, s, name, sizeof(name), addr, sizeof(addr), tp,
		                        sizeof(tp)) < 0) {
			addr[0] = '\0';
		}
		free(hosts);
	}
	if (!addr[0]) {
		if (!s)
			s = "localhost";
		if (strchr(s, '/')) { /* a URL */
			snprintf(c->url, sizeof(c->url), "%s", s);
			snprintf(c->display, sizeof(c->display), "%s", s);
			goto thumb;
		}
		/* HOST, HOST:PORT, [V6]:PORT */
		if (s[0] == '[' ? strstr(s, "]:") != NULL
		                : (strchr(s, ':') && strchr(s, ':') == strrchr(s, ':')))
			snprintf(addr, sizeof(addr), "%s", s);
		else if (s[0] != '[' && strchr(s, ':'))
			snprintf(addr, sizeof(addr), "[%s]:%s", s, RPC_DEFAULT_PORT);
		else
			snprintf(addr, sizeof(addr), "%s:%s", s, RPC_DEFAULT_PORT);
	}
	snprintf(c->url, sizeof(c->url), "tls+tcp://%s", addr);
	if (name[0])
		snprintf(c->display, sizeof(c->display), "%s (%s)", name, addr);
	else
		snprintf(c->display, sizeof(c->display), "%s", addr);
thumb:
	/* precedence: --thumbprint / VMK_THUMBPRINT, then the lab, then known_hosts */
	if (c->o.thumbprint) {
		if (cert_thumbprint_normalize(c->o.thumbprint, c->thumbprint) < 0) {
			snprintf(c->err, sizeof(c->err),
			         "--thumbprint '%s' is not a SHA-256 thumbprint (64 hex digits, "
			         "':' separators optional)",
			         c->o.thumbprint);
			return 2;
		}
	} else if (tp[0]) {
		ret = cert_thumbprint_normalize(tp, c->thumbprint);
		if (ret < 0) {
			snprintf(c->err, sizeof(c->err), "%s/hosts: bad thumbprint for %s",
			         c->o.lab, name);
			return 2;
		}
	} else {
		char home[PATH_MAX], path[PATH_MAX + 16], *kh = NULL;
		vmk_home(home, sizeof(home));
		snprintf(path, sizeof(path), "%s/known_hosts", home);
		if (home[0] && util_read_file(path, SMALL_FILE, &kh, NULL) == 0) {
			if (table_lookup(kh, 0, c->url, NULL, 0, tp, sizeof(tp), NULL, 0) == 0)
				cert_thumbprint_normalize(tp, c->thumbprint);
			free(kh);
		}
	}
	return 0;
}

/* Appends "url thumbprint" to ~/.vmk/known_hosts after a verified contact. */
static void remember_host(struct hostconn *c)
{
	char home[PATH_MAX], path[PATH_MAX + 16], line[512];
	char *kh = NULL;

	vmk_home(home, sizeof(home));
	if (!home[0] || util_mkdir_p(home, 0700) < 0)
		return;
	snprintf(path, sizeof(path), "%s/known_hosts", home);
	if (util_read_file(path, SMALL_FILE, &kh, NULL) == 0) {
		bool known = table_lookup(kh, 0, c->url, NULL, 0, NULL, 0, NULL, 0) == 0;
		free(kh);
		if (known)
			return;
	}
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	int n = snprintf(line, sizeof(line), "%s %s\n", c->url, c->thumbprint);
	if (write(fd, line, (size_t)n) != n) {
		/* best effort: the next contact asks again */
	}
	close(fd);
}

/* The host's certificate, fetched with a bounded TLS handshake and checked
 * against the pinned thumbprint; nng then verifies the connection against
 * exactly this certificate. *pem malloc'd. */
static int pinned_cert(struct hostconn *c, char **pem)
{
	char host[256], port[16], tp[CERT_THUMBPRINT_LEN];
	bool tls;
	int ret;

	rpc_parse_url(c->url, &tls, host, sizeof(host), port, sizeof(port), c->err, sizeof(c->err));
	ret = cert_fetch_peer(host, port, c->o.timeout_ms, pem, c->err, sizeof(c->err));
	if (ret < 0) {
		char tmp[1100];
		snprintf(tmp, sizeof(tmp), "%s: %s", c->display, c->err);
		snprintf(c->err, sizeof(c->err), "%s", tmp);
		return hostconn_errno_exit(ret);
	}
	if (cert_thumbprint(*pem, strlen(*pem), tp) < 0) {
		snprintf(c->err, sizeof(c->err), "%s sent an unreadable certificate", c->display);
		goto denied;
	}
	if (!c->thumbprint[0]) {
		snprintf(c->err, sizeof(c->err),
		         "the host %s is not known. Its certificate thumbprint is\n  %s\n"
		         "Check it on the host (hostd -c CONFIG --thumbprint) and run again with "
		         "--thumbprint %s",
		         c->display, tp, tp);
		goto denied;
	}
	if (strcmp(tp, c->thumbprint) != 0) {
		snprintf(c->err, sizeof(c->err),
		         "the certificate of %s has thumbprint\n  %s\nbut\n  %s\nwas expected "
		         "(--thumbprint, lab hosts file or ~/.vmk/known_hosts). If the host was "
		         "reinstalled, update the thumbprint; otherwise the connection may be "
		         "intercepted",
		         c->display, tp, c->thumbprint);
		goto denied;
	}
	return 0;
denied:
	free(*pem);
	*pem = NULL;
	return 3;
}

static int read_password_tty(char *out, size_t outlen, const char *prompt)
{
	struct termios old, quiet;
	int fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	if (write(fd, prompt, strlen(prompt)) < 0) {
		close(fd);
		return -EIO;
	}
	tcgetattr(fd, &old);
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	tcsetattr(fd, TCSAFLUSH, &quiet);
	n = read(fd, out, outlen - 1);
	tcsetattr(fd, TCSAFLUSH, &old);
	if (write(fd, "\n", 1) < 0) {
		/* cosmetic only */
	}
	close(fd);
	if (n <= 0)
		return -EIO;
	out[n] = '\0';
	out[strcspn(out, "\r\n")] = '\0';
	return 0;
}

/* Username and password from options, env (already merged by main), the
 * password file, the lab, or the TTY. */
static int credentials(struct hostconn *c, char *user, size_t ulen, char *pw, size_t pwlen)
{
	char *text = NULL;

	user[0] = pw[0] = '\0';
	if (c->o.username)
		snprintf(user, ulen, "%s", c->o.username);
	if (c->o.password) {
		snprintf(pw, pwlen, "%s", c->o.password);
	} else if (c->o.password_file) {
		if (read_small(c->o.password_file, &text, c->err, sizeof(c->err)) < 0)
			return 2;
		text[strcspn(text, "\r\n")] = '\0';
		snprintf(pw, pwlen, "%s", text);
		explicit_bzero(text, strlen(text));
		free(text);
		text = NULL;
	}
	if (c->o.lab && (!user[0] || !pw[0])) {
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%s/credentials", c->o.lab);
		if (util_read_file(path, SMALL_FILE, &text, NULL) == 0) {
			if (!user[0])
				kv_lookup(text, "username", user, ulen);
			if (!pw[0])
				kv_lookup(text, "password", pw, pwlen);
			explicit_bzero(text, strlen(text));
			free(text);
		}
	}
	if (!user[0])
		snprintf(user, ulen, "root");
	if (!pw[0]) {
		char prompt[400];
		snprintf(prompt, sizeof(prompt), "password for %s@%s: ", user, c->display);
		if (!c->o.interactive || read_password_tty(pw, pwlen, prompt) < 0) {
			snprintf(c->err, sizeof(c->err),
			         "no password for %s@%s: pass -p, --password-file, VMK_PASSWORD "
			         "or --sessionfile",
			         user, c->display);
			return 3;
		}
	}
	return 0;
}

static int raw_call(struct hostconn *c, Vmk__Request *req, struct arena *a, Vmk__Response **resp)
{
	*resp = NULL;
	int ret = rpc_client_call(c->rpc, c->session, req, a, resp, c->err, sizeof(c->err));

	if (ret < 0)
		return hostconn_errno_exit(ret);
	if ((*resp)->status != VMK__STATUS__STATUS_OK) {
		snprintf(c->err, sizeof(c->err), "%s",
		         (*resp)->error && (*resp)->error[0] ? (*resp)->error : "operation failed");
		return (int)(*resp)->status;
	}
	return 0;
}

static int login(struct hostconn *c)
{
	Vmk__Request req = VMK__REQUEST__INIT;
	Vmk__LoginRequest lr = VMK__LOGIN_REQUEST__INIT;
	Vmk__Response *resp = NULL;
	char user[128], pw[1100];
	struct arena a;
	int ret;

	ret = credentials(c, user, sizeof(user), pw, sizeof(pw));
	if (ret)
		return ret;
	lr.username = user;
	lr.password = pw;
	req.body_case = VMK__REQUEST__BODY_LOGIN;
	req.login = &lr;
	arena_init(&a, 0);
	c->session[0] = '\0';
	ret = raw_call(c, &req, &a, &resp);
	explicit_bzero(pw, sizeof(pw));
	if (ret == 0 && (resp->body_case != VMK__RESPONSE__BODY_LOGIN || !resp->login->session ||
	                 strlen(resp->login->session) > RPC_MAX_SESSION_LEN)) {
		snprintf(c->err, sizeof(c->err), "%s sent a malformed login response", c->display);
		ret = 1;
	}
	if (ret == 0) {
		snprintf(c->session, sizeof(c->session), "%s", resp->login->session);
		if (c->o.sessionfile) {
			char buf[800];
			int n = snprintf(buf, sizeof(buf), "server=%s\nsession=%s\n", c->url,
			                 c->session);
			int wr = util_write_file_atomic(c->o.sessionfile, buf, (size_t)n, 0600);
			if (wr < 0)
				fprintf(stderr,
				        "vmkctl: warning: cannot write session file %s: %s\n",
				        c->o.sessionfile, util_strerror(wr));
		}
	} else if (ret == 3) {
		char tmp[1100];
		snprintf(tmp, sizeof(tmp), "%s: %s", c->display, c->err);
		snprintf(c->err, sizeof(c->err), "%s", tmp);
	}
	arena_free(&a);
	return ret;
}

int hostconn_open(struct hostconn *c, const struct hostconn_opts *o)
{
	char *pem = NULL, cn[256];
	int ret;

	memset(c, 0, sizeof(*c));
	c->o = *o;
	if (c->o.timeout_ms <= 0)
		c->o.timeout_ms = 30000;
	ret = resolve(c);
	if (ret)
		return ret;

	struct rpc_client_opts ro = { .url = c->url, .timeout_ms = c->o.timeout_ms };
	bool tls = strncmp(c->url, "tls+tcp://", 10) == 0;
	if (tls) {
		ret = pinned_cert(c, &pem);
		if (ret)
			return ret;
		if (cert_subject_cn(pem, strlen(pem), cn, sizeof(cn)) < 0) {
			snprintf(c->err, sizeof(c->err), "%s: certificate has no common name",
			         c->display);
			free(pem);
			return 3;
		}
		ro.ca_pem = pem;
		ro.server_name = cn;
	}
	ret = rpc_client_open(&c->rpc, &ro, c->err, sizeof(c->err));
	free(pem);
	if (ret < 0)
		return hostconn_errno_exit(ret);
	if (tls && o->thumbprint && !o->lab && !o->no_known_hosts)
		remember_host(c);

	/* a saved session for this server, if any */
	if (c->o.sessionfile) {
		char *text = NULL, srv[300];
		if (util_read_file(c->o.sessionfile, SMALL_FILE, &text, NULL) == 0) {
			if (kv_lookup(text, "server", srv, sizeof(srv)) == 0 &&
			    strcmp(srv, c->url) == 0)
				kv_lookup(text, "session", c->session, sizeof(c->session));
			free(text);
		}
		if (c->session[0])
			return 0;
	}
	return login(c);
}

int hostconn_call(struct hostconn *c, Vmk__Request *req, struct arena *a, Vmk__Response **resp)
{
	int ret = raw_call(c, req, a, resp);

	/* a saved session that expired: log in again once, if we can */
	if (ret == 3 && c->o.sessionfile && (*resp) && strstr(c->err, "log in")) {
		if (login(c) == 0)
			ret = raw_call(c, req, a, resp);
	}
	return ret;
}

void hostconn_close(struct hostconn *c)
{
	rpc_client_close(c->rpc);
	c->rpc = NULL;
	explicit_bzero(c->session, sizeof(c->session));
}
