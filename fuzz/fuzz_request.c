/* libFuzzer target: whatever arrives on the wire goes through the server's
 * rpc_handle_message (decode, validate, dispatch to a fake, encode) and the
 * client's Response decoder; the input as a URL goes through rpc_parse_url.
 * Nothing may crash, leak, or answer with a reply that does not decode.
 * Seeds: tests/corpus/fuzz_request/ (malformed) and its valid/ (accepted).
 *   make fuzz FUZZ_SECONDS=60 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "rpc.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t touch(const char *s)
{
	return s ? strlen(s) : 0;
}

/* Reads every string the request may carry and echoes some of them back, as
 * real handlers do in their error messages. */
static void fake_dispatch(void *arg, const Vmk__Request *req, Vmk__Response *resp, struct arena *a)
{
	size_t *calls = arg;
	size_t n = touch(req->header->session);

	(*calls)++;
	switch (req->body_case) {
	case VMK__REQUEST__BODY_LOGIN:
		n += touch(req->login->username) + touch(req->login->password);
		resp->error = arena_printf(a, "login %s", req->login->username);
		break;
	case VMK__REQUEST__BODY_DATASTORE_ADD:
		n += touch(req->datastore_add->name) + touch(req->datastore_add->path);
		resp->error = arena_printf(a, "datastore %s at %s", req->datastore_add->name,
		                           req->datastore_add->path);
		break;
	case VMK__REQUEST__BODY_DATASTORE_REMOVE:
		n += touch(req->datastore_remove->name);
		resp->error = arena_printf(a, "datastore %s", req->datastore_remove->name);
		break;
	default:
		break;
	}
	if (!resp->error)
		resp->error = "out of memory";
	resp->status = n % 2 ? VMK__STATUS__STATUS_FAILED : VMK__STATUS__STATUS_OK;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level(LOG_ERROR);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t calls = 0;
	struct rpc_server_opts o = { .max_msg = 1u << 20,
		                     .dispatch = fake_dispatch,
		                     .arg = &calls };
	uint8_t *out = NULL;
	size_t outlen = 0;

	/* the server side */
	if (rpc_handle_message(&o, data, size, &out, &outlen) < 0)
		abort(); /* only -ENOMEM is allowed, and 1 MiB cannot run out */
	Vmk__Response *r = vmk__response__unpack(NULL, outlen, out);
	if (!r || !r->error)
		abort(); /* every reply decodes */
	if (calls > 1 || (calls == 0) != (r->status == VMK__STATUS__STATUS_USAGE) ||
	    (calls == 0 && !r->error[0]))
		abort(); /* rejected: STATUS_USAGE and why; else dispatched once */
	vmk__response__free_unpacked(r, NULL);
	free(out);

	/* the client side: a hostile server's reply */
	r = vmk__response__unpack(NULL, size, data);
	if (r)
		vmk__response__free_unpacked(r, NULL);

	/* the input as a URL */
	char url[512], host[256], port[16], why[512];
	bool tls;
	size_t n = size < sizeof(url) - 1 ? size : sizeof(url) - 1;
	memcpy(url, data, n);
	url[n] = '\0';
	if (rpc_parse_url(url, &tls, host, sizeof(host), port, sizeof(port), why, sizeof(why)) ==
	    0) {
		long p = strtol(port, NULL, 10);
		if (!host[0] || p < 1 || p > 65535)
			abort();
	}
	return 0;
}
