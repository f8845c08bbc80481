/* A 16550A UART (COM1: ports 0x3f8-0x3ff, GSI 4). Transmitted bytes go to
 * an output fd (the VM's serial.log, opened O_APPEND so one log spans
 * migrations) in line-sized writes; received bytes come from
 * vmm_uart_input(). Every entry point takes the UART's own lock: vCPU
 * threads and an input thread may call in concurrently. */
#ifndef VMM_UART_H
#define VMM_UART_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "device.h"

#define UART_COM1_PORT 0x3f8
#define UART_COM1_GSI  4
#define UART_FIFO_LEN  16
#define UART_LINE_MAX  256

struct vmm_uart_stats {
	uint64_t tx_bytes;     /* transmitted by the guest (loopback included) */
	uint64_t rx_bytes;     /* accepted into the receive FIFO */
	uint64_t rx_dropped;   /* lost to a full receive FIFO (overrun) or to loopback */
	uint64_t write_errors; /* failed writes to the output fd (output lost) */
};

/* out_fd is borrowed (the caller closes it after destroy); -1: no output
 * (the tap still sees it). The UART starts in its power-on state. */
int vmm_uart_create(struct vmm_device **d, struct vmm_bus *bus, int out_fd);
/* Queues received bytes; those that do not fit in the FIFO are dropped,
 * counted and flagged to the guest as an overrun (LSR.OE). */
void vmm_uart_input(struct vmm_device *d, const uint8_t *buf, size_t n);
/* Free room in the receive FIFO: an input source that wants no loss sends
 * at most this much. */
size_t vmm_uart_rx_space(struct vmm_device *d);
/* Writes out a partial line. */
void vmm_uart_flush(struct vmm_device *d);
/* Forgets a partial line: it went to a migration destination in the
 * UART's state, which finishes and writes it. */
void vmm_uart_discard(struct vmm_device *d);
/* The fd its output goes to (serial.log, O_APPEND). */
int vmm_uart_log_fd(struct vmm_device *d);

/* Output commit (fault tolerance): while held, the finished lines the
 * guest writes wait instead of going out (to the log and the console
 * followers). vmm_uart_held_mark() is the output offset reached so far
 * (it only grows); vmm_uart_release(upto) lets out what was written
 * before that offset; hold(false) lets out the rest and writes at once
 * again; drop() forgets what waits (the secondary took over, and its copy
 * of the guest writes it again). At most UART_HOLD_MAX bytes wait: more is
 * lost and counted in write_errors. */
#define UART_HOLD_MAX     (4u << 20)
#define UART_HOLD_LINES   4096 /* held lines whose wait is timed */
#define UART_HOLD_SAMPLES 1024
void vmm_uart_hold(struct vmm_device *d, bool on);
uint64_t vmm_uart_held_mark(struct vmm_device *d);
void vmm_uart_release(struct vmm_device *d, uint64_t upto);
void vmm_uart_drop(struct vmm_device *d);
/* How long the last released lines waited, in µs (newest first, at most
 * max of the last UART_HOLD_SAMPLES): output commit's added latency. */
size_t vmm_uart_hold_waits(struct vmm_device *d, uint32_t *out, size_t max);
/* Appends the held output between offsets from and to (of
 * vmm_uart_held_mark) to out; -ERANGE when part of it was let out already
 * or is not written yet. */
struct sbuf;
int vmm_uart_held_copy(struct vmm_device *d, uint64_t from, uint64_t to, struct sbuf *out);
/* Every flushed chunk is also handed to fn (fault tolerance holds output),
 * with the UART's lock held: fn must not call back into the UART. NULL fn
 * removes the tap. */
void vmm_uart_set_tap(struct vmm_device *d, void (*fn)(void *arg, const uint8_t *buf, size_t n),
                      void *arg);
void vmm_uart_get_stats(struct vmm_device *d, struct vmm_uart_stats *st);

#endif
