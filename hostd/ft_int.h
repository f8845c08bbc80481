/* What ft.c shares with ft_reprotect.c: starting protection with a
 * secondary that was prepared (vm ft enable, or a re-protect), and
 * following it to its first acknowledged checkpoint. */
#ifndef HOSTD_FT_INT_H
#define HOSTD_FT_INT_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "hostd.h"
#include "inventory_int.h"
#include "task.h"

/* after a failed re-protect, the next try */
#define FT_REPROTECT_RETRY_MS 30000

struct enable_job {
	struct hostd *h;
	char name[VM_NAME_MAX + 1];
	char rundir[PATH_MAX];
	char secondary[128];
	char user[TASK_USER_MAX];
	char network[300];
	char note[400];
	uint32_t epoch_ms;
	uint32_t detect_ms; /* 0: the default */
	uint64_t claim;     /* a re-protect's (0: vm ft enable's): a failure keeps the VM needing a
	                 * secondary, and a disable meanwhile stops it */
};

struct ft_begin_args {
	const char *name;
	const char *secondary; /* its host, and what its prepare answered */
	const char *address;
	uint32_t port;
	const char *token;
	const char *interface;
	const char *note;
	uint32_t epoch_ms;  /* 0: the default */
	uint32_t detect_ms; /* 0: the default */
	bool reprotect;     /* a lost secondary is replaced without being asked */
	uint64_t claim;     /* a re-protect's claim (the VM's ft_claim it set), 0: none */
	const char *user;
};

/* Checks the VM (running, not protected; with a claim, still claimed:
 * a primary in starting), makes it a primary in starting and tells its
 * vmx to protect it: 0 with *jp, or a Vmk status with err (the role is
 * forgotten then, unless claimed). Takes the inventory lock itself. */
int ft_begin(struct hostd *h, const struct ft_begin_args *b, struct enable_job **jp, char *err,
             size_t errlen);
/* Follows protection until the first acknowledged checkpoint, in task t:
 * 0 or a Vmk status, with the task's message in msg. j stays the caller's. */
int ft_follow(struct hostd_task *t, struct enable_job *j, char *msg, size_t msglen);
/* Gives up j after ft_begin: the vmx stops protecting, the role goes; j
 * is freed. */
void ft_abandon(struct hostd *h, struct enable_job *j);
/* A re-protect did not find or start a secondary: unless its claim was
 * lost (vm ft disable meanwhile), the VM stays a primary that needs one,
 * with why in its note, tried again after FT_REPROTECT_RETRY_MS. Takes
 * the lock itself; false when the claim was lost. */
bool ft_reprotect_later(struct hostd *h, const char *name, uint64_t claim, const char *why);
/* The claim still holds (lock taken here). */
bool ft_claim_holds(struct hostd *h, const char *name, uint64_t claim);
/* The VM's secondary is on peer (lock taken here). */
bool ft_peer_is(struct hostd *h, const char *name, const char *peer);
/* ft.info written from v's FT fields. Lock held. */
void ft_save(const struct vm *v);

#endif
