/* Login sessions: random 256-bit tokens with an idle timeout. */
#ifndef HOSTD_SESSION_H
#define HOSTD_SESSION_H

#include <stdint.h>

#include "config.h"

#define SESSION_TOKEN_LEN 64 /* hex characters */
#define SESSION_MAX       4096

struct hostd_sessions;

int hostd_sessions_init(struct hostd_sessions **s, unsigned idle_timeout_s);
void hostd_sessions_free(struct hostd_sessions *s);

/* Creates a session; token gets SESSION_TOKEN_LEN + 1 bytes. When the table
 * is full the least recently used session is dropped. */
int hostd_session_create(struct hostd_sessions *s, const char *user, enum hostd_role role,
                         char token[SESSION_TOKEN_LEN + 1]);

/* Looks a token up and renews it: 0 with the user (copied into user[64])
 * and role, or -ENOENT (unknown) / -ETIMEDOUT (expired, now removed). */
int hostd_session_check(struct hostd_sessions *s, const char *token, char user[65],
                        enum hostd_role *role);

int hostd_session_remove(struct hostd_sessions *s, const char *token);

/* For tests: pretend `ms` milliseconds passed. */
void hostd_sessions_advance(struct hostd_sessions *s, uint64_t ms);

#endif
