/* The client side of vmx's control socket: what hostd uses, and
 * `vmx --control SOCK VERB` for people and tests. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control.h"
#include "net.h"

int vmm_control_call(const char *path, const Vmx__Request *req, Vmx__Response **resp,
                     int timeout_ms, char *err, size_t errlen)
{
	uint8_t *out = NULL, *in = NULL;
	size_t inlen = 0;
	int fd = net_unix_connect(path, timeout_ms), ret;

	if (fd < 0) {
		snprintf(err, errlen, "%s: %s (is the VM's vmx running?)", path, strerror(-fd));
		return -ECONNREFUSED;
	}
	size_t n = vmx__request__get_packed_size(req);
	if (!(out = malloc(n ? n : 1))) {
		close(fd);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	vmx__request__pack(req, out);
	ret = vmm_control_send_frame(fd, out, n);
	free(out);
	if (ret == 0)
		ret = vmm_control_recv_frame(fd, VMM_CONTROL_MAX_MSG, timeout_ms, &in, &inlen);
	close(fd);
	if (ret == 0 && !(*resp = vmx__response__unpack(NULL, inlen, in)))
		ret = -EBADMSG;
	free(in);
	if (ret < 0) {
		snprintf(err, errlen, "%s: %s", path,
		         ret == -EAGAIN || ret == -ETIMEDOUT ? "no answer in time"
		         : ret == -EBADMSG                   ? "a malformed answer"
		                                             : strerror(-ret));
		return ret == -EAGAIN || ret == -ETIMEDOUT ? -ETIMEDOUT : -EIO;
	}
	return 0;
}

int vmm_control_cli(const char *path, int argc, char **argv, FILE *out)
{
	Vmx__Request req = VMX__REQUEST__INIT;
	Vmx__Empty e = VMX__EMPTY__INIT;
	Vmx__PowerOffRequest po = VMX__POWER_OFF_REQUEST__INIT;
	Vmx__SaveRequest sv = VMX__SAVE_REQUEST__INIT;
	Vmx__MigrateSendRequest ms = VMX__MIGRATE_SEND_REQUEST__INIT;
	Vmx__FtStartRequest fs = VMX__FT_START_REQUEST__INIT;
	Vmx__Response *r = NULL;
	char err[400];

	req.version = 1;
	req.request_id = 1;
	const char *verb = argc > 0 ? argv[0] : "";
	if (strcmp(verb, "status") == 0) {
		req.body_case = VMX__REQUEST__BODY_STATUS;
		req.status = &e;
	} else if (strcmp(verb, "stats") == 0) {
		req.body_case = VMX__REQUEST__BODY_STATS;
		req.stats = &e;
	} else if (strcmp(verb, "pause") == 0) {
		req.body_case = VMX__REQUEST__BODY_PAUSE;
		req.pause = &e;
	} else if (strcmp(verb, "resume") == 0) {
		req.body_case = VMX__REQUEST__BODY_RESUME;
		req.resume = &e;
	} else if (strcmp(verb, "power-off") == 0) {
		req.body_case = VMX__REQUEST__BODY_POWER_OFF;
		req.power_off = &po;
	} else if (strcmp(verb, "migrate") == 0 && argc >= 4 && argc <= 9) {
		req.body_case = VMX__REQUEST__BODY_MIGRATE_SEND;
		ms.host = argv[1];
		ms.port = (uint32_t)strtoul(argv[2], NULL, 10);
		ms.token = argv[3];
		ms.downtime_ms = argc > 4 ? (uint32_t)strtoul(argv[4], NULL, 10) : 0;
		ms.max_bandwidth_mibps = argc > 5 ? (uint32_t)strtoul(argv[5], NULL, 10) : 0;
		/* then any of: storage, compress, verify, streams=N */
		for (int i = 6; i < argc; i++) {
			if (!strcmp(argv[i], "storage"))
				ms.storage = true;
			else if (!strcmp(argv[i], "compress"))
				ms.compress = true;
			else if (!strcmp(argv[i], "verify"))
				ms.verify_pages = true;
			else if (!strncmp(argv[i], "streams=", 8))
				ms.streams = (uint32_t)strtoul(argv[i] + 8, NULL, 10);
		}
		req.migrate_send = &ms;
	} else if (strcmp(verb, "migrate-status") == 0) {
		req.body_case = VMX__REQUEST__BODY_MIGRATE_STATUS;
		req.migrate_status = &e;
	} else if (strcmp(verb, "migrate-cancel") == 0) {
		req.body_case = VMX__REQUEST__BODY_MIGRATE_CANCEL;
		req.migrate_cancel = &e;
	} else if (strcmp(verb, "ft-start") == 0 && argc >= 4 && argc <= 6) {
		req.body_case = VMX__REQUEST__BODY_FT_START;
		fs.host = argv[1];
		fs.port = (uint32_t)strtoul(argv[2], NULL, 10);
		fs.token = argv[3];
		fs.epoch_ms = argc > 4 ? (uint32_t)strtoul(argv[4], NULL, 10) : 0;
		fs.detect_ms = argc > 5 ? (uint32_t)strtoul(argv[5], NULL, 10) : 0;
		req.ft_start = &fs;
	} else if (strcmp(verb, "ft-status") == 0) {
		req.body_case = VMX__REQUEST__BODY_FT_STATUS;
		req.ft_status = &e;
	} else if (strcmp(verb, "ft-stop") == 0) {
		req.body_case = VMX__REQUEST__BODY_FT_STOP;
		req.ft_stop = &e;
	} else if (strcmp(verb, "save") == 0 && argc == 2) {
		req.body_case = VMX__REQUEST__BODY_SAVE;
		sv.path = argv[1];
		req.save = &sv;
	} else {
		fprintf(stderr,
		        "vmx --control SOCK: verbs are status, stats, pause, resume, "
		        "power-off, save PATH, migrate HOST PORT TOKEN [DOWNTIME_MS "
		        "[MIBPS [storage] [compress] [verify] [streams=N]]], migrate-status, "
		        "migrate-cancel, ft-start HOST PORT TOKEN [EPOCH_MS [DETECT_MS]], "
		        "ft-status, ft-stop\n");
		return 2;
	}
	if (vmm_control_call(path, &req, &r, 60000, err, sizeof(err)) < 0) {
		fprintf(stderr, "vmx: %s\n", err);
		return 6;
	}
	int status = r->status;
	if (status != 0)
		fprintf(stderr, "vmx: %s: %s\n", verb, r->error);
	else if (r->body_case == VMX__RESPONSE__BODY_STATUS_INFO)
		fprintf(out,
		        "name=%s\nstate=%s\npid=%d\nuptime_ms=%llu\nexit_reason=%s\nincoming_port=%"
		        "u\n",
		        r->status_info->name, r->status_info->state, r->status_info->pid,
		        (unsigned long long)r->status_info->uptime_ms, r->status_info->exit_reason,
		        r->status_info->incoming_port);
	else if (r->body_case == VMX__RESPONSE__BODY_MIGRATE_INFO)
		fprintf(out,
		        "phase=%s\niteration=%u\nremaining_bytes=%llu\ndirty_rate=%llu\n"
		        "bandwidth=%llu\nexpected_downtime_ms=%llu\ntransferred=%llu\n"
		        "throttle_pct=%u\ntotal_ms=%llu\ndowntime_ms=%llu\nerror=%s\n",
		        r->migrate_info->phase, r->migrate_info->iteration,
		        (unsigned long long)r->migrate_info->remaining_bytes,
		        (unsigned long long)r->migrate_info->dirty_rate,
		        (unsigned long long)r->migrate_info->bandwidth,
		        (unsigned long long)r->migrate_info->expected_downtime_ms,
		        (unsigned long long)r->migrate_info->transferred,
		        r->migrate_info->throttle_pct,
		        (unsigned long long)r->migrate_info->total_ms,
		        (unsigned long long)r->migrate_info->downtime_ms, r->migrate_info->error);
	else if (r->body_case == VMX__RESPONSE__BODY_FT_INFO)
		fprintf(out,
		        "phase=%s\nepoch=%llu\nacked=%llu\ngeneration=%llu\nbytes=%llu\n"
		        "pause_us_last=%llu\npause_us_max=%llu\nstretched=%llu\nerror=%s\n"
		        "pause_us_p50=%llu\npause_us_p99=%llu\noutput_us_p50=%llu\n"
		        "output_us_p99=%llu\nprotected_ms=%llu\nlast_ack_age_ms=%llu\nlag_ms=%"
		        "llu\ndetect_ms=%u\n",
		        r->ft_info->phase, (unsigned long long)r->ft_info->epoch,
		        (unsigned long long)r->ft_info->acked,
		        (unsigned long long)r->ft_info->generation,
		        (unsigned long long)r->ft_info->bytes,
		        (unsigned long long)r->ft_info->pause_us_last,
		        (unsigned long long)r->ft_info->pause_us_max,
		        (unsigned long long)r->ft_info->stretched, r->ft_info->error,
		        (unsigned long long)r->ft_info->pause_us_p50,
		        (unsigned long long)r->ft_info->pause_us_p99,
		        (unsigned long long)r->ft_info->output_us_p50,
		        (unsigned long long)r->ft_info->output_us_p99,
		        (unsigned long long)r->ft_info->protected_ms,
		        (unsigned long long)r->ft_info->last_ack_age_ms,
		        (unsigned long long)r->ft_info->lag_ms, r->ft_info->detect_ms);
	else if (r->body_case == VMX__RESPONSE__BODY_STATS_INFO)
		fprintf(out, "exits=%llu\nram_bytes=%llu\nvcpus=%u\n",
		        (unsigned long long)r->stats_info->exits,
		        (unsigned long long)r->stats_info->ram_bytes, r->stats_info->vcpus);
	vmx__response__free_unpacked(r, NULL);
	return status;
}
