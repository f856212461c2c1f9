/* Per-identity connection counts and token buckets in a small hash table. */
#include "limits.h"

#include <stdlib.h>
#include <string.h>

#define LIMITS_BUCKETS 1024

struct bucket {
	double tokens;
	uint64_t refilled_ms;
};

struct limits_slot {
	struct limits_slot *next;
	uid_t uid;
	char *cgroup; /* "" when unknown */
	unsigned conns;
	size_t bytes[2]; /* large buffers held by its connections, by kind */
	struct bucket rate;
	struct limits *owner;
};

/* Connection attempts of one uid. */
struct uid_slot {
	struct uid_slot *next;
	uid_t uid;
	struct bucket rate;
};

struct limits {
	struct limits_config cfg;
	unsigned total;
	unsigned holders; /* slots with bytes[LIMITS_IN] > 0 */
	struct limits_slot *buckets[LIMITS_BUCKETS];
	struct uid_slot *uids[LIMITS_BUCKETS];
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
		struct uid_slot *u = l->uids[i];
		while (u != NULL) {
			struct uid_slot *next = u->next;
			free(u);
			u = next;
		}
	}
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
		s->rate = (struct bucket){ l->cfg.burst, now_ms };
		s->owner = l;
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

static void refill(struct bucket *b, unsigned rate, unsigned burst, uint64_t now_ms)
{
	if (now_ms > b->refilled_ms) {
		b->tokens += (double)(now_ms - b->refilled_ms) * rate / 1000.0;
		if (b->tokens > burst)
			b->tokens = burst;
		b->refilled_ms = now_ms;
	}
}

static bool take(struct bucket *b, unsigned rate, unsigned burst, uint64_t now_ms)
{
	refill(b, rate, burst, now_ms);
	if (b->tokens < 1.0)
		return false;
	b->tokens -= 1.0;
	return true;
}

static void sweep_uids(struct limits *l, uint64_t now_ms)
{
	for (size_t b = 0; b < LIMITS_BUCKETS; b++) {
		struct uid_slot **pp = &l->uids[b];

		while (*pp != NULL) {
			struct uid_slot *u = *pp;

			refill(&u->rate, l->cfg.connect_rate, l->cfg.connect_burst, now_ms);
			if (u->rate.tokens >= l->cfg.connect_burst) {
				*pp = u->next;
				free(u);
			} else {
				pp = &u->next;
			}
		}
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

			refill(&s->rate, l->cfg.rate, l->cfg.burst, now_ms);
			if (s->conns == 0 && s->bytes[LIMITS_IN] == 0 && s->bytes[LIMITS_OUT] == 0 &&
			    s->rate.tokens >= l->cfg.burst) {
				*pp = s->next;
				free(s->cgroup);
				free(s);
			} else {
				pp = &s->next;
			}
		}
	}
	sweep_uids(l, now_ms);
}

bool limits_take(struct limits_slot *s, uint64_t now_ms)
{
	return take(&s->rate, s->owner->cfg.rate, s->owner->cfg.burst, now_ms);
}

bool limits_connect(struct limits *l, uid_t uid, uint64_t now_ms)
{
	size_t b = (size_t)uid % LIMITS_BUCKETS;
	struct uid_slot *u;

	for (u = l->uids[b]; u != NULL; u = u->next)
		if (u->uid == uid)
			break;
	if (u == NULL) {
		u = calloc(1, sizeof(*u));
		/* No memory to count with: let it through to the other limits. */
		if (u == NULL)
			return true;
		u->uid = uid;
		u->rate = (struct bucket){ l->cfg.connect_burst, now_ms };
		u->next = l->uids[b];
		l->uids[b] = u;
	}
	return take(&u->rate, l->cfg.connect_rate, l->cfg.connect_burst, now_ms);
}

unsigned limits_total(const struct limits *l)
{
	return l->total;
}

/* Request buffers: the budget divided among those holding some, newcomer included. */
static size_t share_of(const struct limits_slot *s, enum limits_buf kind)
{
	const struct limits *l = s->owner;
	size_t share = l->cfg.share, fair;

	if (kind == LIMITS_OUT)
		return share;
	fair = l->cfg.in_budget / (l->holders + (s->bytes[LIMITS_IN] > 0 ? 0 : 1));
	return fair < share ? fair : share;
}

bool limits_charge(struct limits_slot *s, enum limits_buf kind, size_t bytes)
{
	size_t share = share_of(s, kind);

	if (bytes > share || s->bytes[kind] > share - bytes)
		return false;
	if (kind == LIMITS_IN && s->bytes[kind] == 0 && bytes > 0)
		s->owner->holders++;
	s->bytes[kind] += bytes;
	return true;
}

void limits_refund(struct limits_slot *s, enum limits_buf kind, size_t bytes)
{
	size_t had = s->bytes[kind];

	s->bytes[kind] -= bytes < had ? bytes : had;
	if (kind == LIMITS_IN && had > 0 && s->bytes[kind] == 0)
		s->owner->holders--;
}

unsigned limits_holders(const struct limits *l)
{
	return l->holders;
}

