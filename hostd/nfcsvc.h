/* hostd's NFC service: the listener on the provisioning vmk that receives
 * the files of cold migrations and clones (migrate/nfc.h has the wire).
 * Each file is a transfer with its own one-time token, offered while the
 * operation that made it waits for it; a connection with any other token
 * is refused. The listener follows the vSphereProvisioning-tagged vmk (the
 * Management one when none is tagged, or host.cfg's address when hostd
 * does not manage the network) and moves when that changes. */
#ifndef HOSTD_NFCSVC_H
#define HOSTD_NFCSVC_H

#include <stddef.h>
#include <stdint.h>

#include "migrate/nfc.h"

struct hostd;

#define NFCSVC_MAX_OFFERS 256
#define NFCSVC_MAX_CONNS  16

int hostd_nfc_init(struct hostd *h);
/* Stops the listener, cuts the connections and waits for them. */
void hostd_nfc_free(struct hostd *h);

/* Where senders reach this host's NFC service now (it listens there once
 * this returns 0): the address, port, vmk and netstack ("" when hostd's
 * own), and a note when it fell back to the Management vmk. -errno with
 * err set when it cannot listen. */
struct nfc_endpoint {
	char addr[64];
	uint16_t port;
	char vmk[16];
	char netstack[128];
	char note[300];
};
int hostd_nfc_endpoint(struct hostd *h, struct nfc_endpoint *e, char *err, size_t errlen);

/* Offers x (token and path set) to senders until it is withdrawn; -ENOSPC
 * when too many are offered. */
int hostd_nfc_offer(struct hostd *h, struct nfc_xfer *x);
/* Withdraws x: cuts the connection working on it, if any, and returns once
 * no connection uses it (then the caller may free it). */
void hostd_nfc_withdraw(struct hostd *h, struct nfc_xfer *x);

#endif
