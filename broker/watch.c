/* The watch hub (see watch.h). */
#include "watch.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "glob.h"

#define HUB_BUCKETS 1024

/* One pattern of one subscription, on its entry's list. */
struct watch_ref {
	struct watch_ref *prev, *next;
	struct watch_entry *entry;
	struct watch_sub *sub;
	char *pattern;
	size_t len;
};

/* All refs filed under one key: an exact name, or a glob's literal prefix. */
struct watch_entry {
	struct watch_entry *next; /* bucket chain */
	bool glob;
	char *key;
	size_t key_len;
	struct watch_ref *refs;
};

struct watch_sub {
	watch_notify_fn notify;
	void *owner;
	uint64_t last_change; /* the change it was last told of: once per change */
	size_t nrefs;
	struct watch_ref refs[];
};

struct watch_hub {
	struct watch_entry *buckets[HUB_BUCKETS];
	uint64_t changes;
	size_t subs;
	struct watch_sub **told; /* the subscriptions one change concerns */
	size_t ntold, told_cap;
};

static size_t hash(bool glob, const char *key, size_t len)
{
	uint64_t h = glob ? 1469598103934665603ull : 7809847782465536322ull;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)key[i]) * 1099511628211ull;
	return (size_t)(h % HUB_BUCKETS);
}

static struct watch_entry *find(struct watch_hub *h, bool glob, const char *key, size_t len)
{
	struct watch_entry *e;

	for (e = h->buckets[hash(glob, key, len)]; e != NULL; e = e->next)
		if (e->glob == glob && e->key_len == len && memcmp(e->key, key, len) == 0)
			return e;
	return NULL;
}

static struct watch_entry *find_or_add(struct watch_hub *h, bool glob, const char *key,
				       size_t len)
{
	struct watch_entry *e = find(h, glob, key, len);
	size_t b = hash(glob, key, len);

	if (e != NULL)
		return e;
	e = calloc(1, sizeof(*e));
	if (e == NULL)
		return NULL;
	e->key = malloc(len + 1);
	if (e->key == NULL) {
		free(e);
		return NULL;
	}
	memcpy(e->key, key, len);
	e->key[len] = '\0';
	e->key_len = len;
	e->glob = glob;
	e->next = h->buckets[b];
	h->buckets[b] = e;
	return e;
}

static void entry_drop_if_empty(struct watch_hub *h, struct watch_entry *e)
{
	struct watch_entry **pp;

	if (e->refs != NULL)
		return;
	for (pp = &h->buckets[hash(e->glob, e->key, e->key_len)]; *pp != e; pp = &(*pp)->next)
		;
	*pp = e->next;
	free(e->key);
	free(e);
}

struct watch_hub *watch_hub_new(void)
{
	return calloc(1, sizeof(struct watch_hub));
}

void watch_hub_free(struct watch_hub *h)
{
	if (h != NULL)
		free(h->told);
	free(h);
}

static void unfile(struct watch_hub *h, struct watch_ref *r)
{
	if (r->entry == NULL)
		return;
	if (r->prev != NULL)
		r->prev->next = r->next;
	else
		r->entry->refs = r->next;
	if (r->next != NULL)
		r->next->prev = r->prev;
	entry_drop_if_empty(h, r->entry);
	r->entry = NULL;
}

static int file(struct watch_hub *h, struct watch_ref *r)
{
	const char *star = memchr(r->pattern, '*', r->len);
	bool glob = star != NULL;
	struct watch_entry *e = find_or_add(h, glob, r->pattern,
					    glob ? (size_t)(star - r->pattern) : r->len);

	if (e == NULL)
		return -ENOMEM;
	r->entry = e;
	r->prev = NULL;
	r->next = e->refs;
	if (e->refs != NULL)
		e->refs->prev = r;
	e->refs = r;
	return 0;
}

void watch_unsubscribe(struct watch_hub *h, struct watch_sub *sub)
{
	if (sub == NULL)
		return;
	for (size_t i = 0; i < sub->nrefs; i++) {
		unfile(h, &sub->refs[i]);
		free(sub->refs[i].pattern);
	}
	free(sub);
	h->subs--;
}

/* A change may concern every subscription: room to collect them all. */
static int reserve_told(struct watch_hub *h, size_t n)
{
	struct watch_sub **bigger;
	size_t cap = h->told_cap ? h->told_cap : 64;

	if (n <= h->told_cap)
		return 0;
	while (cap < n)
		cap *= 2;
	bigger = realloc(h->told, cap * sizeof(*bigger));
	if (bigger == NULL)
		return -ENOMEM;
	h->told = bigger;
	h->told_cap = cap;
	return 0;
}

int watch_subscribe(struct watch_hub *h, const struct wire_str *patterns, size_t n,
		    watch_notify_fn notify, void *owner, struct watch_sub **out)
{
	struct watch_sub *sub;

	if (reserve_told(h, h->subs + 1) != 0)
		return -ENOMEM;
	sub = calloc(1, sizeof(*sub) + n * sizeof(sub->refs[0]));
	if (sub == NULL)
		return -ENOMEM;
	sub->notify = notify;
	sub->owner = owner;
	h->subs++;
	for (size_t i = 0; i < n; i++) {
		struct watch_ref *r = &sub->refs[i];

		r->sub = sub;
		r->len = patterns[i].len;
		r->pattern = malloc(r->len + 1);
		sub->nrefs = i + 1;
		if (r->pattern == NULL) {
			watch_unsubscribe(h, sub);
			return -ENOMEM;
		}
		memcpy(r->pattern, patterns[i].ptr, r->len);
		r->pattern[r->len] = '\0';
		if (file(h, r) != 0) {
			watch_unsubscribe(h, sub);
			return -ENOMEM;
		}
	}
	*out = sub;
	return 0;
}

int watch_matches(const struct watch_sub *sub, const char *name, size_t len)
{
	for (size_t i = 0; i < sub->nrefs; i++)
		if (glob_match(sub->refs[i].pattern, sub->refs[i].len, name, len))
			return 1;
	return 0;
}

/* Collect the subscriptions under e that match, each once per change. */
static int collect(struct watch_hub *h, struct watch_entry *e, const char *name, size_t len)
{
	for (struct watch_ref *r = e->refs; r != NULL; r = r->next) {
		struct watch_sub *sub = r->sub;

		if (sub->last_change == h->changes)
			continue;
		if (e->glob && !glob_match(r->pattern, r->len, name, len))
			continue;
		/* Room for every subscription was made when it subscribed. */
		if (h->ntold == h->told_cap)
			return -ENOMEM;
		sub->last_change = h->changes;
		h->told[h->ntold++] = sub;
	}
	return 0;
}

/*
 * All are collected before any is told: a callback may end its own
 * subscription (never another's), which must not pull the lists away
 * from under the walk.
 */
void watch_changed(struct watch_hub *h, const char *name, size_t len, uint32_t version)
{
	struct watch_entry *e;
	int rc = 0;

	if (h == NULL || h->subs == 0)
		return;
	h->changes++;
	h->ntold = 0;
	if ((e = find(h, false, name, len)) != NULL)
		rc = collect(h, e, name, len);
	for (size_t k = 0; k <= len && rc == 0; k++)
		if ((e = find(h, true, name, k)) != NULL)
			rc = collect(h, e, name, len);
	for (size_t i = 0; i < h->ntold; i++)
		h->told[i]->notify(h->told[i]->owner, name, len, version);
	h->ntold = 0;
}

size_t watch_count(const struct watch_hub *h)
{
	return h->subs;
}
