/* libFuzzer target: what an NFC receiver (the provisioning file copy,
 * migrate/nfc.h) reads from the network after the greeting: records of
 * any type, length, offset and checksum. nfc_serve must fail them with a
 * message, never crash, write outside its file or leave a file under the
 * final name unless END came after only good chunks. Seeds:
 * tests/corpus/fuzz_nfc/.
 *   make fuzz FUZZ_SECONDS=60 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "migrate/nfc.h"
#include "net.h"
#include "fuzz/fuzzutil.h"
#include "util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char TOKEN[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
static char path[128];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level(LOG_ERROR);
	snprintf(path, sizeof(path), "%s/f", fuzz_tmpdir("nfc"));
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nfc_xfer x;
	char err[400], hello[100];
	int sv[2];

	if (size > 100000 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return 0;
	int big = 1 << 20;
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	snprintf(hello, sizeof(hello), "VMKNFC1 %s\n", TOKEN);
	if (net_send_all(sv[0], hello, strlen(hello)) == 0 &&
	    net_send_all(sv[0], data, size) == 0) {
		shutdown(sv[0], SHUT_WR);
		nfc_xfer_init(&x, TOKEN, path);
		nfc_serve(sv[1], nfc_lookup_one, &x, err, sizeof(err));
		nfc_xfer_destroy(&x);
	}
	close(sv[0]);
	close(sv[1]);
	unlink(path);
	char part[160];
	snprintf(part, sizeof(part), "%s.part", path);
	unlink(part);
	return 0;
}
