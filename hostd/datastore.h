/* Datastores: named directories holding VMs, local or shared between hosts.
 * Those of host.cfg are fixed; `storage datastore add` adds runtime ones,
 * persisted in <state_dir>/datastores.cfg. */
#ifndef HOSTD_DATASTORE_H
#define HOSTD_DATASTORE_H

#include <stdbool.h>

#include "config.h"

#define DATASTORE_MAX 64

struct hostd_datastores;

/* Creates missing config datastore directories, loads the runtime ones
 * (a bad entry there is logged and skipped, never fatal). */
int hostd_datastores_init(struct hostd_datastores **d, const struct hostd_config *cfg, char *err,
                          size_t errlen);
void hostd_datastores_free(struct hostd_datastores *d);

/* Path of a datastore by name, copied into out; -ENOENT if unknown. */
int hostd_datastore_path(struct hostd_datastores *d, const char *name, char *out, size_t outlen);
/* The datastore exists and is marked shared (other hosts see the same files). */
bool hostd_datastore_shared(struct hostd_datastores *d, const char *name);

#endif
