/* The host's event log: one line per lifecycle change of a VM (who did
 * what, when), appended to <state_dir>/events.log and to hostd's log. */
#ifndef HOSTD_EVENTS_H
#define HOSTD_EVENTS_H

#include <stddef.h>

#include "hostd.h"

void hostd_event(struct hostd *h, const char *vm, const char *user, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/* The last `max` events of vm (oldest first), allocated in a; *n set. */
char **hostd_events_of(struct hostd *h, struct arena *a, const char *vm, size_t max, size_t *n);

#endif
