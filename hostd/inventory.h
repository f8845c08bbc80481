/* The host's VM inventory: VMs registered from datastores, persisted in
 * <state_dir>/inventory.cfg (the .vmx paths). A .vmx that cannot be read
 * is listed as `invalid` with the reason; hostd serves everything else. */
#ifndef HOSTD_INVENTORY_H
#define HOSTD_INVENTORY_H

#include "config.h"

#define INVENTORY_MAX 512
#define VM_NAME_MAX   80

struct hostd_inventory;
struct hostd_datastores;

int hostd_inventory_init(struct hostd_inventory **inv, const struct hostd_config *cfg,
                         struct hostd_datastores *ds);
void hostd_inventory_free(struct hostd_inventory *inv);

#endif
