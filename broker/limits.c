/* Per-identity connection counts and token buckets in a small hash table. */
#include "limits.h"

#include <stdlib.h>
#include <string.h>

#define LIMITS_BUCKETS 1024

struct limits_slot {
	struct limits_slot *next;
	uid_t uid;
	char *cgroup; /* "" when unknown */
	unsigned conns;
	size_t bytes; /* large buffers held by its connections */
	double tokens;
	uint64_t refilled_ms;
	const struct limits_config *cfg;
};

struct limits {
	struct limits_config cfg;
	unsigned total;
	struct limits_slot *buckets[LIMITS_BUCKETS];
};

struct limits *limits_new(const struct limits_config *cfg)
{
	struct limits *l = calloc(1, sizeof(*l));

	if (l != NULL)
		l->cfg = *cfg;
	return l;
}

void limits_free(struct limits *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < LIMITS_BUCKETS; i++) {
		struct limits_slot *s = l->buckets[i];
		while (s != NULL) {
			struct limits_slot *next = s->next;
			free(s->cgroup);
			free(s);
			s = next;
		}
	}
	free(l);
}

/* FNV-1a over the uid and the cgroup path. */
static size_t slot_hash(uid_t uid, const char *cgroup)
{
	uint64_t h = 1469598103934665603ull;
	const unsigned char *p = (const unsigned char *)&uid;

	for (size_t i = 0; i < sizeof(uid); i++)
		h = (h ^ p[i]) * 1099511628211ull;
	for (p = (const unsigned char *)cgroup; *p != '\0'; p++)
		h = (h ^ *p) * 1099511628211ull;
	return (size_t)(h % LIMITS_BUCKETS);
}

int limits_acquire(struct limits *l, uid_t uid, const char *cgroup,
		   uint64_t now_ms, struct limits_slot **out)
{
	const char *key = cgroup != NULL ? cgroup : "";
	size_t b = slot_hash(uid, key);
	struct limits_slot *s;

	if (l->total >= l->cfg.max_total)
		return LIMITS_TOTAL;
	for (s = l->buckets[b]; s != NULL; s = s->next)
		if (s->uid == uid && strcmp(s->cgroup, key) == 0)
			break;
	if (s == NULL) {
		s = calloc(1, sizeof(*s));
		if (s == NULL || (s->cgroup = strdup(key)) == NULL) {
			free(s);
			return LIMITS_NOMEM;
		}
		s->uid = uid;
		s->tokens = l->cfg.burst;
		s->refilled_ms = now_ms;
		s->cfg = &l->cfg;
		s->next = l->buckets[b];
		l->buckets[b] = s;
	}
	if (s->conns >= l->cfg.max_per_peer)
		return LIMITS_PEER;
	s->conns++;
	l->total++;
	*out = s;
	return LIMITS_OK;
}

void limits_release(struct limits *l, struct limits_slot *slot)
{
	if (slot == NULL)
		return;
	l->total--;
	slot->conns--;
}

static void refill(struct limits_slot *s, uint64_t now_ms)
{
	if (now_ms > s->refilled_ms) {
		s->tokens += (double)(now_ms - s->refilled_ms) * s->cfg->rate / 1000.0;
		if (s->tokens > s->cfg->burst)
			s->tokens = s->cfg->burst;
		s->refilled_ms = now_ms;
	}
}

/*
 * A slot outlives its connections until its bucket is full again, so that
 * reconnecting for every request does not refill the bucket.
 */
void limits_sweep(struct limits *l, uint64_t now_ms)
{
	for (size_t b = 0; b < LIMITS_BUCKETS; b++) {
		struct limits_slot **pp = &l->buckets[b];

		while (*pp != NULL) {
			struct limits_slot *s = *pp;

			refill(s, now_ms);
			if (s->conns == 0 && s->bytes == 0 && s->tokens >= s->cfg->burst) {
				*pp = s->next;
				free(s->cgroup);
				free(s);
			} else {
				pp = &s->next;
			}
		}
	}
}

bool limits_take(struct limits_slot *s, uint64_t now_ms)
{
	refill(s, now_ms);
	if (s->tokens < 1.0)
		return false;
	s->tokens -= 1.0;
	return true;
}

unsigned limits_total(const struct limits *l)
{
	return l->total;
}

bool limits_charge(struct limits_slot *s, size_t bytes, size_t share)
{
	if (bytes > share || s->bytes > share - bytes)
		return false;
	s->bytes += bytes;
	return true;
}

void limits_refund(struct limits_slot *s, size_t bytes)
{
	s->bytes -= bytes < s->bytes ? bytes : s->bytes;
}

