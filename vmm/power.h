/* The power/exit device: port 0xf4, isa-debug-exit compatible (QEMU exits
 * with (v << 1) | 1; vmx powers the VM off with status v). */
#ifndef VMM_POWER_H
#define VMM_POWER_H

#include "device.h"

#define POWER_PORT 0xf4

int vmm_power_create(struct vmm_device **d, struct vmm_bus *bus,
                     void (*on_poweroff)(void *arg, int status), void *arg);

#endif
