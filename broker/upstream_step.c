/*
 * A step: what etcd sent, or this node's write, as one batch for the writer
 * (upstream_internal.h).
 */
#include "upstream_internal.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "audit_record.h"
#include "gate.h"
#include "log.h"
#include "watch.h"

#define ARENA_CHUNK (64u * 1024u)

uint8_t *arena_alloc(struct arena *a, size_t len)
{
	struct chunk *c = a->head;
	size_t need = (len + 15) & ~(size_t)15;

	if (need == 0)
		need = 16;
	if (c == NULL || c->cap - c->used < need) {
		size_t cap = need > ARENA_CHUNK ? need : ARENA_CHUNK;

		c = calloc(1, sizeof(*c));
		if (c == NULL)
			return NULL;
		c->data = sodium_malloc(cap);
		if (c->data == NULL) {
			free(c);
			return NULL;
		}
		c->cap = cap;
		c->next = a->head;
		a->head = c;
	}
	c->used += need;
	return c->data + c->used - need;
}

static void arena_free(struct arena *a)
{
	struct chunk *c;

	while ((c = a->head) != NULL) {
		a->head = c->next;
		sodium_free(c->data); /* wipes */
		free(c);
	}
}

/* ---- steps ------------------------------------------------------------------ */

struct step *step_new(struct upstream *u, enum step_kind kind)
{
	struct step *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->u = u;
	s->kind = kind;
	s->received_ms = now_ms(u);
	return s;
}

void step_free(struct step *s)
{
	if (s == NULL)
		return;
	arena_free(&s->arena);
	free(s->changes);
	free(s->revs);
	free(s->prior);
	free(s);
}

/* Room for one more change; its name copied into the step's arena. */
struct vault_change *step_add(struct step *s, enum vault_change_kind kind,
				     const char *name, size_t len, uint32_t version,
				     int64_t rev)
{
	struct vault_change *c;
	uint8_t *copy;

	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 8;
		struct vault_change *ch = realloc(s->changes, cap * sizeof(*ch));
		int64_t *revs;

		if (ch == NULL)
			return NULL;
		s->changes = ch;
		revs = realloc(s->revs, cap * sizeof(*revs));
		if (revs == NULL)
			return NULL;
		s->revs = revs;
		s->cap = cap;
	}
	copy = arena_alloc(&s->arena, len);
	if (copy == NULL)
		return NULL;
	memcpy(copy, name, len);
	c = &s->changes[s->n];
	*c = (struct vault_change){ .kind = kind, .name = (const char *)copy, .name_len = len,
				    .version = version };
	s->revs[s->n++] = rev;
	return c;
}

/* A change that arrived from etcd; 0, or -1 when out of memory. */
int step_add_item(struct step *s, enum etcd_event_type type, const struct fleet_item *it)
{
	struct upstream *u = s->u;
	struct vault_change *c;
	uint8_t *plain = NULL;
	size_t plen = 0;

	if (it->status != ETCD_OK) {
		/* A lying or damaged store: never applied, said once a record. */
		log_err("upstream: %.*s: a record in etcd fails its check (%s): not applied",
			(int)it->name_len, it->name, etcd_strerror(it->status));
		return 0;
	}
	if (it->kind == FLEET_K_HEAD && type == ETCD_EVENT_PUT && it->removed) {
		c = step_add(s, VAULT_CHANGE_REMOVE, it->name, it->name_len, it->version,
			     it->mod_revision);
		return c != NULL ? 0 : -1;
	}
	if (it->kind != FLEET_K_VERSION || type != ETCD_EVENT_PUT)
		return 0; /* a live head, a pruned version, the data key: nothing to apply */
	if (fleet_unseal(u->fleet, it, &plain, &plen) != ETCD_OK) {
		log_err("upstream: %.*s version %u: cannot be opened with the fleet's key:"
			" not applied", (int)it->name_len, it->name, it->version);
		return 0;
	}
	c = step_add(s, VAULT_CHANGE_PUT, it->name, it->name_len, it->version,
		     it->mod_revision);
	if (c != NULL) {
		uint8_t *v = arena_alloc(&s->arena, plen);

		if (v != NULL) {
			if (plen > 0)
				memcpy(v, plain, plen);
			c->value = v;
			c->value_len = plen;
		} else {
			s->n--;
			c = NULL;
		}
	}
	sodium_free(plain);
	return c != NULL ? 0 : -1;
}

static void record_sync(struct upstream *u, const char *name, size_t len, uint32_t version,
			int64_t rev)
{
	struct audit_event ev = {
		.op = "sync", .name = name, .name_len = len, .version = version,
		.decision = "allow", .who = &u->svc->self, .count = -1, .revision = rev,
	};

	if (gate_record(u->svc->gate, &ev) != 0)
		log_err("upstream: the sync record of %.*s could not be written", (int)len, name);
}

static struct local_write *write_of(struct upstream *u, const char *name, size_t len)
{
	struct local_write *lw;

	TAILQ_FOREACH(lw, &u->writes, link)
		if (lw->nlen == len && memcmp(lw->name, name, len) == 0)
			return lw;
	return NULL;
}

/* A change from the watch: a sync record, unless it is (or may be) this node's own write. */
static void sync_or_park(struct upstream *u, const char *name, size_t len, uint32_t version,
			 int64_t rev)
{
	struct local_write *lw = write_of(u, name, len);

	if (lw != NULL && lw->committed && lw->revision == rev)
		return; /* ours: its put or rm record says so, with the caller */
	if (lw != NULL && !lw->committed) {
		struct parked *p = realloc(lw->parked, (lw->nparked + 1) * sizeof(*p));

		if (p != NULL) {
			lw->parked = p;
			p[lw->nparked++] = (struct parked){ version, rev };
			return;
		}
	}
	record_sync(u, name, len, version, rev);
}

/* etcd answered lw (revision, or 0 when it failed): what waited is not ours. */
void unpark(struct upstream *u, struct local_write *lw)
{
	for (size_t i = 0; i < lw->nparked; i++)
		if (lw->revision == 0 || lw->parked[i].revision != lw->revision)
			record_sync(u, lw->name, lw->nlen, lw->parked[i].version,
				    lw->parked[i].revision);
	free(lw->parked);
	lw->parked = NULL;
	lw->nparked = 0;
}

void write_end(struct upstream *u, struct local_write *lw)
{
	TAILQ_REMOVE(&u->writes, lw, link);
	free(lw->parked);
	free(lw);
}

static int nv_cmp(const void *a, const void *b)
{
	const struct name_version *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->name, y->name, n);

	if (c != 0)
		return c;
	return x->len < y->len ? -1 : x->len > y->len;
}

static void announce(struct upstream *u, const char *name, size_t len, uint32_t version,
		     int64_t rev)
{
	watch_changed(u->svc->hub, name, len, version);
	record_sync(u, name, len, version, rev);
}

/*
 * What a resync changed: every name whose latest version differs from
 * before, and every name that is gone.  Both lists in the vault's order.
 */
static void announce_resync(struct upstream *u, struct step *s)
{
	struct name_version *now = calloc(s->n > 0 ? s->n : 1, sizeof(*now));
	size_t nnow = 0, i = 0, j = 0;

	if (now == NULL) {
		log_err("upstream: out of memory: watchers of resynchronised names not told");
		return;
	}
	for (size_t k = 0; k < s->n; k++) {
		const struct vault_change *c = &s->changes[k];

		if (nnow > 0 && now[nnow - 1].len == c->name_len &&
		    memcmp(now[nnow - 1].name, c->name, c->name_len) == 0) {
			if (c->version > now[nnow - 1].version)
				now[nnow - 1].version = c->version;
			continue;
		}
		now[nnow++] = (struct name_version){ c->name, c->name_len, c->version };
	}
	qsort(now, nnow, sizeof(*now), nv_cmp);
	while (i < s->nprior || j < nnow) {
		int c = i == s->nprior ? 1 : j == nnow ? -1 : nv_cmp(&s->prior[i], &now[j]);

		if (c < 0) {
			announce(u, s->prior[i].name, s->prior[i].len, 0, s->state.revision);
			i++;
		} else if (c > 0) {
			announce(u, now[j].name, now[j].len, now[j].version, s->state.revision);
			j++;
		} else {
			if (s->prior[i].version != now[j].version)
				announce(u, now[j].name, now[j].len, now[j].version,
					 s->state.revision);
			i++;
			j++;
		}
	}
	free(now);
}

static void step_done(struct writer_job *job)
{
	struct step *s = (struct step *)(void *)job;
	struct upstream *u = s->u;
	int rc = job->op.result;

	u->steps_pending--;
	if (rc == VAULT_OK && s->rep.state != NULL) {
		u->state_known = true;
		if (s->state.revision > u->applied)
			u->applied = s->state.revision;
	}
	if (rc != VAULT_OK && s->kind != STEP_LOCAL) {
		log_err("upstream: applying revision %" PRId64 " to the vault failed: %s;"
			" resynchronising", s->state.revision, vault_strerror(rc));
		u->need_resync = true;
		stop_watch(u);
	}
	if (rc == VAULT_OK && s->kind == STEP_RESYNC) {
		u->resyncs++;
		announce_resync(u, s);
		log_info("upstream: resynchronised %zu versions at revision %" PRId64, s->n,
			 s->state.revision);
	} else if (rc == VAULT_OK) {
		for (size_t i = 0; i < s->n; i++) {
			const struct vault_change *c = &s->changes[i];
			uint32_t v = c->kind == VAULT_CHANGE_PUT ? c->version : 0;

			if (!c->applied)
				continue;
			watch_changed(u->svc->hub, c->name, c->name_len, v);
			if (s->kind == STEP_WATCH)
				sync_or_park(u, c->name, c->name_len, v, s->revs[i]);
		}
	}
	if (s->kind == STEP_LOCAL) {
		const struct vault_change *c = &s->changes[0];
		struct local_write *lw = s->lw;

		if (rc == VAULT_OK)
			lw->done(lw->arg, WIRE_OK,
				 c->kind == VAULT_CHANGE_PUT ? c->version : c->count, NULL);
		else
			lw->done(lw->arg, WIRE_ERROR, 0, vault_strerror(rc));
		write_end(u, lw);
	}
	if (u->steps_pending == 0 && u->watch_live)
		u->current_at_ms = now_ms(u);
	step_free(s);
	if (!u->closing)
		follow(u);
}

void step_submit(struct upstream *u, struct step *s)
{
	s->rep.changes = s->changes;
	s->rep.n = s->n;
	s->job.op = (struct vault_op){ .kind = VAULT_OP_REPLICA, .replica = &s->rep };
	s->job.done = step_done;
	if (s->state.revision > u->submitted) {
		u->submitted = s->state.revision;
		s->rep.state = &s->state;
	} else if (!u->state_known && u->submitted == 0 && s->kind == STEP_LOCAL) {
		/*
		 * A put made here before the first resync was handed to the
		 * writer: the vault holds it with a state saying "revision 0,
		 * resync at start".  Once a resync is on its way its state is
		 * the one to keep: a later local step carries none.
		 */
		s->state.revision = u->applied;
		s->state.cluster_id = u->cluster_id;
		s->rep.state = &s->state;
	}
	if (s->rep.state != NULL) {
		if (s->state.check_revision == 0 && s->kind != STEP_RESYNC) {
			/* No key of its own to check by: the last one still is. */
			s->state.check_revision = u->st_cur.check_revision;
			s->state.check_key_len = u->st_cur.check_key_len;
			memcpy(s->state.check_key, u->st_cur.check_key, u->st_cur.check_key_len);
			memcpy(s->state.check_hash, u->st_cur.check_hash, sizeof(s->state.check_hash));
		}
		u->st_cur = s->state;
	}
	if (u->steps_pending++ == 0)
		u->oldest_pending_ms = s->received_ms;
	writer_submit(u->svc->writer, &s->job);
}
