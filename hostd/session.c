#include "session.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

struct session {
	bool used;
	char token[SESSION_TOKEN_LEN + 1];
	char user[65];
	enum hostd_role role;
	uint64_t last_ms;
};

struct hostd_sessions {
	pthread_mutex_t lock;
	uint64_t idle_ms;
	uint64_t skew_ms;
	struct session tab[SESSION_MAX];
};

static uint64_t now_ms(struct hostd_sessions *s)
{
	return util_now_ms() + s->skew_ms;
}

int hostd_sessions_init(struct hostd_sessions **sp, unsigned idle_timeout_s)
{
	struct hostd_sessions *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	pthread_mutex_init(&s->lock, NULL);
	s->idle_ms = (uint64_t)idle_timeout_s * 1000;
	*sp = s;
	return 0;
}

void hostd_sessions_free(struct hostd_sessions *s)
{
	if (!s)
		return;
	explicit_bzero(s->tab, sizeof(s->tab));
	pthread_mutex_destroy(&s->lock);
	free(s);
}

int hostd_session_create(struct hostd_sessions *s, const char *user, enum hostd_role role,
                         char token[SESSION_TOKEN_LEN + 1])
{
	uint8_t rnd[SESSION_TOKEN_LEN / 2];
	struct session *slot = NULL;
	int ret;

	ret = util_random(rnd, sizeof(rnd));
	if (ret < 0)
		return ret;
	util_hex(rnd, sizeof(rnd), token);
	pthread_mutex_lock(&s->lock);
	uint64_t now = now_ms(s);
	for (size_t i = 0; i < SESSION_MAX; i++) {
		struct session *e = &s->tab[i];
		if (e->used && now - e->last_ms > s->idle_ms)
			e->used = false;
		if (!e->used) {
			slot = e;
			break;
		}
		if (!slot || e->last_ms < slot->last_ms)
			slot = e; /* least recently used, if no free slot turns up */
	}
	slot->used = true;
	memcpy(slot->token, token, SESSION_TOKEN_LEN + 1);
	snprintf(slot->user, sizeof(slot->user), "%s", user);
	slot->role = role;
	slot->last_ms = now;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

/* The slot whose token matches, compared in constant time; lock held. */
static struct session *find(struct hostd_sessions *s, const char *token)
{
	if (strlen(token) != SESSION_TOKEN_LEN)
		return NULL;
	for (size_t i = 0; i < SESSION_MAX; i++) {
		if (s->tab[i].used && util_ct_equal(s->tab[i].token, token, SESSION_TOKEN_LEN))
			return &s->tab[i];
	}
	return NULL;
}

int hostd_session_check(struct hostd_sessions *s, const char *token, char user[65],
                        enum hostd_role *role)
{
	int ret = 0;

	pthread_mutex_lock(&s->lock);
	struct session *e = find(s, token);
	uint64_t now = now_ms(s);
	if (!e) {
		ret = -ENOENT;
	} else if (now - e->last_ms > s->idle_ms) {
		e->used = false;
		ret = -ETIMEDOUT;
	} else {
		e->last_ms = now;
		memcpy(user, e->user, sizeof(e->user));
		*role = e->role;
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int hostd_session_remove(struct hostd_sessions *s, const char *token)
{
	pthread_mutex_lock(&s->lock);
	struct session *e = find(s, token);
	if (e)
		memset(e, 0, sizeof(*e));
	pthread_mutex_unlock(&s->lock);
	return e ? 0 : -ENOENT;
}

void hostd_sessions_advance(struct hostd_sessions *s, uint64_t ms)
{
	pthread_mutex_lock(&s->lock);
	s->skew_ms += ms;
	pthread_mutex_unlock(&s->lock);
}
