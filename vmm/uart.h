/* A 16550A UART (COM1: ports 0x3f8-0x3ff, GSI 4). Transmitted bytes go to
 * an output fd (the VM's serial.log, opened O_APPEND so one log spans
 * migrations) in line-sized writes; received bytes come from
 * vmm_uart_input(). */
#ifndef VMM_UART_H
#define VMM_UART_H

#include <stddef.h>
#include <stdint.h>

#include "device.h"

#define UART_COM1_PORT 0x3f8
#define UART_COM1_GSI  4
#define UART_FIFO_LEN  16
#define UART_LINE_MAX  256

int vmm_uart_create(struct vmm_device **d, struct vmm_bus *bus, int out_fd);
/* Queues received bytes (dropped and counted when the FIFO is full). */
void vmm_uart_input(struct vmm_device *d, const uint8_t *buf, size_t n);
/* Writes out a partial line. */
void vmm_uart_flush(struct vmm_device *d);
/* Every flushed chunk is also handed to fn (fault tolerance holds output). */
void vmm_uart_set_tap(struct vmm_device *d, void (*fn)(void *arg, const uint8_t *buf, size_t n),
                      void *arg);

#endif
