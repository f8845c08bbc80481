/* The power/exit device: port 0xf4, 4 bytes wide, isa-debug-exit
 * compatible (QEMU exits with (v << 1) | 1; vmx powers the VM off with
 * status v & 0xff). A guest write of v records the power-off and calls
 * on_poweroff(arg, v & 0xff) from the writing vCPU's thread, without the
 * device's lock held; reads return 0. */
#ifndef VMM_POWER_H
#define VMM_POWER_H

#include <stdbool.h>

#include "device.h"

#define POWER_PORT 0xf4
#define POWER_LEN  4

int vmm_power_create(struct vmm_device **d, struct vmm_bus *bus,
                     void (*on_poweroff)(void *arg, int status), void *arg);
/* Whether the guest powered off, and with which status (0 if it did not). */
bool vmm_power_get(struct vmm_device *d, int *status);

#endif
