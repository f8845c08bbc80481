/* hostd: the per-host daemon. `hostd -c host.cfg` runs it in the foreground. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "auth.h"
#include "datastore.h"
#include "dispatch.h"
#include "inventory.h"
#include "vmrun.h"
#include "log.h"
#include "network.h"
#include "nfcsvc.h"
#include "rpc.h"
#include "session.h"
#include "task.h"
#include "util.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: hostd -c CONFIG [--check | --thumbprint]\n"
	           "       hostd --hash-password\n"
	           "\n"
	           "  -c, --config FILE   host configuration (libconfig; see configs/host.cfg)\n"
	           "      --check         validate the configuration, print it, and exit\n"
	           "      --thumbprint    print the SHA-256 thumbprint of this host's TLS\n"
	           "                      certificate (creating it on first use) and exit\n"
	           "      --hash-password read a password line on stdin, print its yescrypt hash\n"
	           "                      for accounts[].password_hash, and exit\n"
	           "  -h, --help          this help\n"
	           "  -V, --version       print the version\n");
}

static int hash_password(void)
{
	char line[1100], *hash = NULL;
	struct termios old, quiet;
	bool tty = isatty(STDIN_FILENO);
	int ret;

	if (tty) {
		fprintf(stderr, "password: ");
		tcgetattr(STDIN_FILENO, &old);
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
	}
	char *got = fgets(line, sizeof(line), stdin);
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSANOW, &old);
		fputc('\n', stderr);
	}
	if (!got) {
		fprintf(stderr, "hostd: no password on stdin\n");
		return 2;
	}
	line[strcspn(line, "\r\n")] = '\0';
	if (strlen(line) < 8) {
		fprintf(stderr, "hostd: the password must have at least 8 characters\n");
		return 2;
	}
	ret = hostd_auth_hash(line, &hash);
	explicit_bzero(line, sizeof(line));
	if (ret < 0) {
		fprintf(stderr, "hostd: cannot hash: %s\n", util_strerror(ret));
		return 1;
	}
	printf("%s\n", hash);
	free(hash);
	return 0;
}

/* Loads (creating on first start) the host certificate and key. */
static int load_cert(struct hostd *h, char **cert, char **key)
{
	char cpath[PATH_MAX], kpath[PATH_MAX], err[512];
	size_t clen;
	int ret;

	snprintf(cpath, sizeof(cpath), "%s/hostd.crt", h->cfg.state_dir);
	snprintf(kpath, sizeof(kpath), "%s/hostd.key", h->cfg.state_dir);
	if (access(cpath, F_OK) < 0 || access(kpath, F_OK) < 0) {
		ret = cert_generate(cpath, kpath, h->cfg.name, err, sizeof(err));
		if (ret < 0) {
			log_error("cannot create the host certificate: %s", err);
			return ret;
		}
		log_info("created host certificate %s", cpath);
	}
	ret = util_read_file(cpath, 1u << 20, cert, &clen);
	if (ret == 0)
		ret = util_read_file(kpath, 1u << 20, key, NULL);
	if (ret < 0) {
		log_error("cannot read %s / %s: %s", cpath, kpath, util_strerror(ret));
		return ret;
	}
	ret = cert_thumbprint(*cert, clen, h->thumbprint);
	if (ret < 0)
		log_error("%s is not a PEM certificate; remove it and %s to make a new one", cpath,
		          kpath);
	return ret;
}

static int init_state_dir(struct hostd *h)
{
	int ret = util_mkdir_p(h->cfg.state_dir, 0700);

	if (ret < 0)
		fprintf(stderr, "hostd: %s: host.state_dir %s: %s\n", h->cfg.path, h->cfg.state_dir,
		        util_strerror(ret));
	return ret;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check", no_argument, NULL, 'k' },
		{ "thumbprint", no_argument, NULL, 't' },
		{ "hash-password", no_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct hostd h = { 0 };
	struct rpc_server *srv = NULL;
	const char *cfgpath = NULL;
	char err[1024], *cert = NULL, *key = NULL;
	bool check = false, thumb = false;
	int opt, ret, rc = 1;

	while ((opt = getopt_long(argc, argv, "c:hV", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			cfgpath = optarg;
			break;
		case 'k':
			check = true;
			break;
		case 't':
			thumb = true;
			break;
		case 'p':
			return hash_password();
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("hostd %s %s (protocol %d)\n", HOSTD_PRODUCT, HOSTD_VERSION,
			       RPC_PROTOCOL_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "hostd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (!cfgpath) {
		fprintf(stderr, "hostd: no configuration; run hostd -c /path/to/host.cfg\n");
		usage(stderr);
		return 2;
	}
	if (hostd_config_load(cfgpath, &h.cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "hostd: %s\n", err);
		return 1;
	}
	if (check) {
		hostd_config_dump(&h.cfg, stdout);
		hostd_config_free(&h.cfg);
		return 0;
	}
	log_set_level(h.cfg.log_level);
	char tag[80];
	snprintf(tag, sizeof(tag), "hostd[%s]", h.cfg.name);
	log_set_tag(tag);
	if (init_state_dir(&h) < 0)
		goto out;
	if (thumb) {
		log_set_level(LOG_WARN);
		if (load_cert(&h, &cert, &key) == 0) {
			printf("%s\n", h.thumbprint);
			rc = 0;
		}
		goto out;
	}
	ret = log_set_file(h.cfg.log_file);
	if (ret < 0)
		log_warn("cannot open log file %s: %s (logging to stderr only)", h.cfg.log_file,
		         util_strerror(ret));
	if (load_cert(&h, &cert, &key) < 0)
		goto out;

	h.start_ms = util_now_ms();
	if ((ret = hostd_auth_init(&h.auth, &h.cfg)) < 0 ||
	    (ret = hostd_sessions_init(&h.sessions, h.cfg.session_timeout_s)) < 0) {
		log_error("cannot initialise: %s", util_strerror(ret));
		goto out;
	}
	if (hostd_datastores_init(&h.datastores, &h.cfg, err, sizeof(err)) < 0) {
		log_error("%s", err);
		goto out;
	}
	if (hostd_inventory_init(&h.inventory, &h.cfg, h.datastores) < 0) {
		log_error("cannot initialise the VM inventory: out of memory");
		goto out;
	}
	if ((ret = hostd_tasks_init(&h.tasks, 0, 0)) < 0) {
		log_error("cannot initialise the task table: %s", util_strerror(ret));
		goto out;
	}
	/* before listening: the listen address is usually vmk0's */
	if ((ret = hostd_network_init(&h, err, sizeof(err))) < 0) {
		log_error("cannot initialise the network: %s", util_strerror(ret));
		goto out;
	}

	/* signals are taken by sigwait below, in this thread only */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* the VMs that ran before: re-attach, or record how they ended */
	if ((ret = hostd_vmrun_start(&h)) < 0) {
		log_error("cannot start the VM supervisor: %s", util_strerror(ret));
		goto out;
	}
	if ((ret = hostd_nfc_init(&h)) < 0) {
		log_error("cannot start the NFC service: %s", util_strerror(ret));
		goto out;
	}

	struct rpc_server_opts so = {
		.url = h.cfg.listen,
		.cert_pem = cert,
		.key_pem = key,
		.insecure = h.cfg.insecure,
		.max_msg = h.cfg.max_message_bytes,
		.workers = h.cfg.workers,
		.dispatch = hostd_dispatch,
		.arg = &h,
	};
	if (rpc_server_start(&srv, &so, err, sizeof(err)) < 0) {
		log_error("%s", err);
		goto out;
	}
	char pidfile[PATH_MAX], pidbuf[32];
	snprintf(pidfile, sizeof(pidfile), "%s/hostd.pid", h.cfg.state_dir);
	int n = snprintf(pidbuf, sizeof(pidbuf), "%d\n", (int)getpid());
	util_write_file_atomic(pidfile, pidbuf, (size_t)n, 0644);
	log_info("%s %s serving %s (thumbprint %s, %d workers)", HOSTD_PRODUCT, HOSTD_VERSION,
	         h.cfg.listen, h.thumbprint, h.cfg.workers);

	for (;;) {
		int sig = 0;
		sigwait(&set, &sig);
		if (sig == SIGHUP) {
			log_info("SIGHUP: nothing to reload yet; restart hostd to apply %s",
			         h.cfg.path);
			continue;
		}
		log_info("signal %d: shutting down", sig);
		break;
	}
	rpc_server_stop(srv);
	unlink(pidfile);
	rc = 0;
out:
	hostd_vmrun_halt(&h);      /* the supervisor starts tasks (FT re-protect) */
	hostd_tasks_free(h.tasks); /* cancels what still runs; after the server stopped */
	hostd_nfc_free(&h);        /* after the tasks that offered transfers */
	hostd_vmrun_stop(&h);      /* the VMs keep running */
	hostd_inventory_free(h.inventory);
	hostd_datastores_free(h.datastores);
	hostd_network_free(h.network);
	hostd_sessions_free(h.sessions);
	hostd_auth_free(h.auth);
	if (key)
		explicit_bzero(key, strlen(key));
	free(key);
	free(cert);
	hostd_config_free(&h.cfg);
	log_set_file(NULL);
	return rc;
}
