/* Micro-guest workloads, chosen by the first word of the command line. */
#ifndef GUEST_WORKLOADS_H
#define GUEST_WORKLOADS_H

/* Each returns the power-off status: 0 success. */
int wl_hello(void);
int wl_heartbeat(void);
int wl_burn(void);
int wl_dirty(void);
int wl_verify(void);
int wl_disk(void);
int wl_net(void);

#endif
