/*
 * The upstream: the vault as a replica of an etcd prefix (upstream.h).
 *
 * Following: a replica that never followed reads the whole prefix at one
 * revision (fleet_snapshot) and applies it as one step that replaces the
 * vault's secrets; then, and on every later start, it watches from the
 * revision after the last one it applied.  Each watch message becomes one
 * step: its changes and the revision they complete, one vault transaction
 * (vault_replica), so a crash never leaves a revision half applied and a
 * restart resumes where the vault says.  "Compacted" starts a snapshot
 * again.  A step that fails to commit also does: the snapshot repairs
 * whatever the replica missed.
 *
 * Plaintexts of a step live in a few guarded chunks (struct arena), freed
 * and wiped with the step.
 *
 * This file and the etcd modules under it are built as a loadable module
 * (secretd-upstream-etcd.so, upstream_ops.h), so that a broker without an
 * upstream maps none of libcurl and its libraries.
 */
#include "upstream.h"
#include "upstream_ops.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>
#include <uv.h>

#include <secretd/wire.h>

#include "audit_record.h"
#include "config.h"
#include "etcd_client.h"
#include "fleet.h"
#include "gate.h"
#include "keyfile.h"
#include "log.h"
#include "metrics.h"
#include "services.h"
#include "tailq.h"
#include "vault.h"
#include "watch.h"
#include "writer.h"

#define TICK_MS 1000
#define REFUSED_RETRY_MS 10000
#define PASSWORD_MAX 1024
#define ARENA_CHUNK (64u * 1024u)
#define UP_DIVERGED 1 /* refuse(): a history other than the one applied */

enum up_state { UP_CONNECTING, UP_FOLLOWING, UP_RESYNCING, UP_REFUSED };
static const char *const up_state_names[] = { "connecting", "following", "resyncing", "refused" };

/* ---- guarded memory for a step's names and plaintexts -------------------- */

struct chunk {
	struct chunk *next;
	uint8_t *data; /* sodium_malloc'd */
	size_t used, cap;
};

struct arena {
	struct chunk *head;
};

static uint8_t *arena_alloc(struct arena *a, size_t len)
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

/* ---- the upstream ----------------------------------------------------------- */

/*
 * A put or rm of this node, from its call to etcd until the replica holds
 * it.  Its own change may come back through the watch before etcd's answer
 * does: a change of its name meanwhile waits here (parked), and is audited
 * as a sync only if it is not this write (another revision).
 */
struct parked {
	uint32_t version;
	int64_t revision;
};

struct local_write {
	TAILQ_ENTRY(local_write) link;
	struct upstream *u;
	const char *name;
	size_t nlen;
	const uint8_t *value;
	size_t vlen;
	bool rm;
	bool committed;    /* etcd answered: revision is this write's */
	int64_t revision;
	struct parked *parked;
	size_t nparked;
	upstream_done_fn done;
	void *arg;
};
TAILQ_HEAD(local_writes, local_write);

enum step_kind { STEP_WATCH, STEP_RESYNC, STEP_LOCAL };

/* A name's latest version, for what a resync changed. */
struct name_version {
	const char *name;
	size_t len;
	uint32_t version;
};

struct step {
	struct writer_job job; /* first */
	struct upstream *u;
	enum step_kind kind;
	struct vault_replica rep;
	struct vault_upstream state;
	struct vault_change *changes;
	int64_t *revs;         /* each change's etcd revision */
	size_t n, cap;
	struct arena arena;
	uint64_t received_ms;
	/* STEP_RESYNC: the names and latest versions before it */
	struct name_version *prior;
	size_t nprior, prior_cap;
	struct local_write *lw; /* STEP_LOCAL */
	bool failed;           /* gathering failed: never submitted */
};

struct upstream {
	const struct config *cfg;
	struct services *svc;
	struct etcd_client *client;
	struct fleet *fleet;
	bool fleet_pending;     /* fleet_new is running */
	struct fleet_watch *watch;
	bool watch_live;        /* the stream delivered since it (re)started */
	bool probe_ok;          /* the last status probe was answered */
	bool probe_pending;
	struct step *snap;      /* a resync being read */
	bool need_resync;
	bool verified;          /* etcd's history checked since the watch last stopped */
	bool verify_pending;
	struct vault_upstream st_cur; /* the state as last handed to the writer */
	uint8_t *cluster_key;   /* sodium_malloc'd */
	char *password;         /* sodium_malloc'd */
	size_t password_len;
	char prefix[FLEET_PREFIX_MAX + 1];
	unsigned keep;
	enum up_state state;
	char problem[256];
	int64_t applied;        /* the highest revision the vault holds */
	int64_t submitted;      /* the highest revision handed to the writer */
	uint64_t cluster_id;
	bool state_known;       /* the vault holds a state (else it must stay empty) */
	unsigned steps_pending; /* in the writer */
	struct local_writes writes; /* this node's, in flight */
	uint64_t oldest_pending_ms;
	uint64_t current_at_ms; /* when the replica last held all it had been sent */
	uint64_t refused_at_ms;
	uint64_t resyncs, rollbacks;
	uv_timer_t timer;
	bool closing;
	void (*closed)(void *arg);
	void *closed_arg;
};

static void follow(struct upstream *u);
static void etcd_upstream_status(struct upstream *u, struct upstream_status *out);

static uint64_t now_ms(const struct upstream *u)
{
	return uv_now(u->svc->loop);
}

static void set_problem(struct upstream *u, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void set_problem(struct upstream *u, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(u->problem, sizeof(u->problem), fmt, ap);
	va_end(ap);
}

static void publish_metrics(struct upstream *u)
{
	struct upstream_status st;
	enum metrics_upstream m = METRICS_UPSTREAM_DISCONNECTED;

	if (u->svc->metrics == NULL)
		return;
	etcd_upstream_status(u, &st);
	if (u->state == UP_REFUSED)
		m = METRICS_UPSTREAM_REFUSED;
	else if (st.connected)
		m = METRICS_UPSTREAM_CONNECTED;
	metrics_upstream(u->svc->metrics, m, (uint64_t)st.revision, st.lag_ms);
	metrics_upstream_counts(u->svc->metrics, u->resyncs, u->rollbacks);
}

static void stop_watch(struct upstream *u)
{
	if (u->watch != NULL) {
		fleet_watch_stop(u->watch);
		u->watch = NULL;
	}
	u->watch_live = false;
	u->verified = false;
}

/* An etcd behind what the vault holds, or another cluster: never followed. */
static void refuse(struct upstream *u, int status)
{
	stop_watch(u);
	u->refused_at_ms = now_ms(u);
	if (u->state == UP_REFUSED)
		return;
	u->state = UP_REFUSED;
	u->rollbacks++;
	if (status == UP_DIVERGED)
		set_problem(u, "etcd's history at revision %" PRId64 " is not the one this replica"
			       " applied (a backup restored and written since?): not followed; see"
			       " secretd(8) to accept it", u->st_cur.check_revision);
	else if (status == ETCD_E_CLUSTER)
		set_problem(u, "etcd answered as another cluster than the one this replica followed"
			       " (cluster id %016" PRIx64 "): not followed; see secretd(8) to accept it",
			    u->cluster_id);
	else
		set_problem(u, "etcd answered with a revision below %" PRId64 ", the one this replica"
			       " already applied (restored from an old backup?): not followed; see"
			       " secretd(8) to accept it", u->applied);
	log_err("upstream: %s", u->problem);
	publish_metrics(u);
}

/* The check of one applied key: its revision, its value's hash, the key. */
static void set_check(struct upstream *u, struct vault_upstream *st, const struct fleet_item *it)
{
	size_t klen = fleet_key_version(st->check_key, sizeof(st->check_key), u->prefix, it->name,
					it->name_len, it->version);

	if (klen == 0 || it->kind != FLEET_K_VERSION || it->sealed == NULL)
		return;
	st->check_key_len = klen;
	st->check_revision = it->mod_revision;
	crypto_generichash(st->check_hash, sizeof(st->check_hash), it->sealed, it->sealed_len,
			   NULL, 0);
}

static bool is_refusal(int status)
{
	return status == ETCD_E_ROLLBACK || status == ETCD_E_CLUSTER;
}

/* ---- steps ------------------------------------------------------------------ */

static struct step *step_new(struct upstream *u, enum step_kind kind)
{
	struct step *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->u = u;
	s->kind = kind;
	s->received_ms = now_ms(u);
	return s;
}

static void step_free(struct step *s)
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
static struct vault_change *step_add(struct step *s, enum vault_change_kind kind,
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
static int step_add_item(struct step *s, enum etcd_event_type type, const struct fleet_item *it)
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
static void unpark(struct upstream *u, struct local_write *lw)
{
	for (size_t i = 0; i < lw->nparked; i++)
		if (lw->revision == 0 || lw->parked[i].revision != lw->revision)
			record_sync(u, lw->name, lw->nlen, lw->parked[i].version,
				    lw->parked[i].revision);
	free(lw->parked);
	lw->parked = NULL;
	lw->nparked = 0;
}

static void write_end(struct upstream *u, struct local_write *lw)
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

static void step_submit(struct upstream *u, struct step *s)
{
	s->rep.changes = s->changes;
	s->rep.n = s->n;
	s->job.op = (struct vault_op){ .kind = VAULT_OP_REPLICA, .replica = &s->rep };
	s->job.done = step_done;
	if (s->state.revision > u->submitted) {
		u->submitted = s->state.revision;
		s->rep.state = &s->state;
	} else if (!u->state_known && s->kind == STEP_LOCAL) {
		/*
		 * A put made here before the first resync landed: the vault
		 * holds it with a state saying "revision 0, resync at start".
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

/* ---- the watch -------------------------------------------------------------- */

static void on_watch(int status, int64_t revision, const struct fleet_change *ch, size_t n,
		     void *arg)
{
	struct upstream *u = arg;
	struct step *s;

	if (status == ETCD_E_COMPACTED) {
		log_warn("upstream: etcd compacted its history past revision %" PRId64
			 "; resynchronising", u->submitted);
		stop_watch(u);
		u->need_resync = true;
		follow(u);
		return;
	}
	if (is_refusal(status)) {
		refuse(u, status);
		return;
	}
	if (status != ETCD_OK) {
		if (u->watch_live)
			log_warn("upstream: the watch on etcd broke (%s); serving the replica,"
				 " reconnecting", etcd_strerror(status));
		/* Start again through follow(): etcd's history is checked first. */
		stop_watch(u);
		if (status == ETCD_E_NOMEM)
			u->need_resync = true;
		publish_metrics(u);
		follow(u);
		return;
	}
	if (!u->watch_live || u->state != UP_FOLLOWING) {
		if (u->state == UP_REFUSED)
			log_info("upstream: etcd is back at or above revision %" PRId64
				 ": following it again", u->applied);
		u->state = UP_FOLLOWING;
		u->problem[0] = '\0';
	}
	u->watch_live = true;
	u->probe_ok = true;
	if (n == 0) {
		if (u->steps_pending == 0)
			u->current_at_ms = now_ms(u);
		return; /* created, or progress */
	}
	s = step_new(u, STEP_WATCH);
	for (size_t i = 0; s != NULL && i < n; i++)
		if (step_add_item(s, ch[i].type, &ch[i].item) != 0)
			s->failed = true;
	if (s == NULL || s->failed) {
		/* Cannot hold this message: start over from a snapshot. */
		log_err("upstream: out of memory applying revision %" PRId64 "; resynchronising",
			revision);
		step_free(s);
		stop_watch(u);
		u->need_resync = true;
		return;
	}
	s->state.revision = revision;
	s->state.cluster_id = etcd_client_cluster_id(u->client);
	for (size_t i = n; i-- > 0;)
		if (ch[i].type == ETCD_EVENT_PUT && ch[i].item.kind == FLEET_K_VERSION &&
		    ch[i].item.status == ETCD_OK) {
			set_check(u, &s->state, &ch[i].item);
			break;
		}
	step_submit(u, s);
}

static void start_watch(struct upstream *u)
{
	int rc = fleet_watch(u->fleet, u->submitted + 1, on_watch, u, &u->watch);

	if (rc != ETCD_OK) {
		u->watch = NULL;
		log_err("upstream: cannot watch etcd: %s (trying again)", etcd_strerror(rc));
	}
}

/* ---- resynchronisation ------------------------------------------------------ */

static int on_prior(const char *name, size_t len, uint32_t version, void *arg)
{
	struct step *s = arg;
	uint8_t *copy;

	if (s->nprior == s->prior_cap) {
		size_t cap = s->prior_cap ? s->prior_cap * 2 : 64;
		struct name_version *p = realloc(s->prior, cap * sizeof(*p));

		if (p == NULL)
			return VAULT_E_NOMEM;
		s->prior = p;
		s->prior_cap = cap;
	}
	copy = arena_alloc(&s->arena, len);
	if (copy == NULL)
		return VAULT_E_NOMEM;
	memcpy(copy, name, len);
	s->prior[s->nprior++] = (struct name_version){ (const char *)copy, len, version };
	return 0;
}

static int on_snapshot_item(const struct fleet_item *it, void *arg)
{
	struct upstream *u = arg;
	struct step *s = u->snap;

	/* The replica is replaced by the versions alone; a tombstone has none. */
	if (it->kind != FLEET_K_VERSION)
		return 0;
	if (it->status == ETCD_OK && it->mod_revision > s->state.check_revision)
		set_check(u, &s->state, it);
	if (step_add_item(s, ETCD_EVENT_PUT, it) != 0)
		s->failed = true;
	return s->failed ? ETCD_E_NOMEM : 0;
}

static void on_snapshot(int status, int64_t revision, uint64_t cluster_id, void *arg)
{
	struct upstream *u = arg;
	struct step *s = u->snap;

	u->snap = NULL;
	if (u->closing || status != ETCD_OK) {
		if (is_refusal(status))
			refuse(u, status);
		else if (!u->closing)
			log_warn("upstream: reading etcd for a resync failed: %s (trying again)",
				 etcd_strerror(status));
		step_free(s);
		return;
	}
	if (vault_list_versions(u->svc->vault, on_prior, s) != 0) {
		log_err("upstream: cannot read the vault's names for a resync (trying again)");
		step_free(s);
		return;
	}
	s->rep.replace = true;
	s->state.revision = revision;
	s->state.cluster_id = cluster_id;
	u->cluster_id = cluster_id;
	u->verified = true; /* read from this etcd just now */
	u->need_resync = false;
	/* A resync starts the replica over: the revision it completes is the floor now. */
	u->submitted = revision - 1;
	step_submit(u, s);
	u->state = UP_FOLLOWING;
	follow(u);
}

static void start_resync(struct upstream *u)
{
	int rc;

	u->snap = step_new(u, STEP_RESYNC);
	if (u->snap == NULL)
		return;
	u->state = UP_RESYNCING;
	rc = fleet_snapshot(u->fleet, on_snapshot_item, on_snapshot, u);
	if (rc != ETCD_OK) {
		log_err("upstream: cannot start a resync: %s (trying again)", etcd_strerror(rc));
		step_free(u->snap);
		u->snap = NULL;
	}
}

/* ---- is this etcd's history the one the replica applied? -------------------- */

static void on_verify(const struct etcd_result *res, void *arg)
{
	struct upstream *u = arg;
	const struct vault_upstream *st = &u->st_cur;
	const struct etcd_kv *kv = res->range.n == 1 ? &res->range.kvs[0] : NULL;
	uint8_t hash[VAULT_UPSTREAM_HASH_LEN];

	u->verify_pending = false;
	if (u->closing)
		return;
	if (res->status == ETCD_OK) {
		if (kv != NULL)
			crypto_generichash(hash, sizeof(hash), kv->value, kv->value_len, NULL, 0);
		if (kv == NULL || kv->mod_revision != st->check_revision ||
		    sodium_memcmp(hash, st->check_hash, sizeof(hash)) != 0) {
			refuse(u, UP_DIVERGED);
			return;
		}
		u->verified = true;
		follow(u);
		return;
	}
	if (res->status == ETCD_E_COMPACTED) {
		/* Nothing left to check against, nor to watch from: read it all. */
		log_warn("upstream: etcd compacted its history past revision %" PRId64
			 "; resynchronising", st->check_revision);
		u->need_resync = true;
		follow(u);
		return;
	}
	if (is_refusal(res->status))
		refuse(u, res->status);
	/* Otherwise not reachable now: the tick tries again. */
}

static void start_verify(struct upstream *u)
{
	const struct vault_upstream *st = &u->st_cur;

	if (etcd_range(u->client, st->check_key, st->check_key_len, NULL, 0, st->check_revision,
		       1, on_verify, u) == ETCD_OK)
		u->verify_pending = true;
}

/* Start whatever following needs next, if nothing runs. */
static void follow(struct upstream *u)
{
	if (u->closing || u->fleet == NULL || u->watch != NULL || u->snap != NULL ||
	    u->verify_pending)
		return;
	if (u->state == UP_REFUSED && now_ms(u) - u->refused_at_ms < REFUSED_RETRY_MS)
		return;
	if (!gate_healthy(u->svc->gate))
		return; /* every change applied must be audited: wait for the log */
	if (u->need_resync || u->applied == 0) {
		/* A resync replaces the vault: let the steps before it land first. */
		if (u->steps_pending == 0)
			start_resync(u);
		return;
	}
	if (!u->verified && u->st_cur.check_revision > 0) {
		start_verify(u);
		return;
	}
	start_watch(u);
}

/* ---- the fleet and the tick -------------------------------------------------- */

static void on_fleet_ready(struct fleet *f, int status, void *arg)
{
	struct upstream *u = arg;

	u->fleet_pending = false;
	if (status != ETCD_OK) {
		fleet_free(f);
		if (u->closing)
			return;
		if (is_refusal(status))
			refuse(u, status);
		else if (status == ETCD_E_KEY)
			set_problem(u, "cluster-key-file does not open this fleet's data key");
		else
			set_problem(u, "etcd: %s", etcd_strerror(status));
		if (status == ETCD_E_KEY)
			log_err("upstream: %s", u->problem);
		return;
	}
	if (u->closing) {
		fleet_free(f);
		return;
	}
	u->fleet = f;
	u->problem[0] = '\0';
	log_info("upstream: following etcd prefix %s from revision %" PRId64, u->prefix,
		 u->applied);
	follow(u);
}

static void start_fleet(struct upstream *u)
{
	struct fleet_config fc = { .prefix = u->prefix, .cluster_key = u->cluster_key,
				   .keep_versions = u->keep };
	struct fleet *f = NULL;
	int rc;

	u->fleet_pending = true;
	rc = fleet_new(u->svc->loop, u->client, &fc, on_fleet_ready, u, &f);
	if (rc != ETCD_OK) {
		u->fleet_pending = false;
		log_err("upstream: %s", etcd_strerror(rc));
	}
}

static void on_probe(const struct etcd_result *res, void *arg)
{
	struct upstream *u = arg;

	u->probe_pending = false;
	if (u->closing)
		return;
	u->probe_ok = res->status == ETCD_OK;
	if (is_refusal(res->status))
		refuse(u, res->status);
	else if (!u->probe_ok && u->fleet != NULL && u->state != UP_REFUSED)
		set_problem(u, "etcd: %s", etcd_strerror(res->status));
	else if (u->probe_ok && u->fleet != NULL && u->state != UP_REFUSED)
		u->problem[0] = '\0';
	publish_metrics(u);
}

static void on_tick(uv_timer_t *t)
{
	struct upstream *u = t->data;

	if (u->closing)
		return;
	if (u->fleet == NULL && !u->fleet_pending)
		start_fleet(u);
	if (!u->probe_pending && etcd_status(u->client, on_probe, u) == ETCD_OK)
		u->probe_pending = true;
	/* Following needs an audit log that works: pause while it does not. */
	if (u->watch != NULL && !gate_healthy(u->svc->gate))
		stop_watch(u);
	follow(u);
	if (u->steps_pending == 0 && u->watch_live && u->probe_ok)
		u->current_at_ms = now_ms(u);
	publish_metrics(u);
}

/* ---- start, stop ------------------------------------------------------------ */

/* The etcd password: a file the broker's user alone may read, trailing newline cut. */
static int read_password(const char *path, char **out, size_t *len, char *err, size_t errlen)
{
	struct stat st;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	char *buf = NULL;

	if (fd < 0) {
		snprintf(err, errlen, "etcd-password-file %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (st.st_mode & 077) != 0) {
		snprintf(err, errlen, "etcd-password-file %s: must be a regular file that only"
			 " its owner may read (mode 0400 or 0600)", path);
		goto fail;
	}
	buf = sodium_malloc(PASSWORD_MAX + 1);
	if (buf == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	n = read(fd, buf, PASSWORD_MAX + 1);
	if (n < 0 || n > PASSWORD_MAX) {
		snprintf(err, errlen, "etcd-password-file %s: %s", path,
			 n < 0 ? strerror(errno) : "longer than 1024 bytes");
		goto fail;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = '\0';
	close(fd);
	*out = buf;
	*len = (size_t)n;
	return 0;
fail:
	sodium_free(buf);
	close(fd);
	return -1;
}

static void etcd_upstream_free(struct upstream *u)
{
	if (u == NULL)
		return;
	sodium_free(u->cluster_key);
	sodium_free(u->password);
	free(u);
}

/* The state the vault remembers, and whether the vault may be a replica at all. */
static int load_state(struct upstream *u, struct vault *vault, char *err, size_t errlen)
{
	struct vault_upstream st;
	size_t count = 0;
	int rc = vault_upstream_get(vault, &st);

	if (rc == VAULT_OK) {
		u->applied = u->submitted = st.revision;
		u->cluster_id = st.cluster_id;
		u->st_cur = st;
		u->state_known = true;
		return 0;
	}
	if (rc != VAULT_E_NOTFOUND) {
		snprintf(err, errlen, "vault: the replica's upstream state: %s", vault_strerror(rc));
		return -1;
	}
	if (vault_count(vault, &count) != VAULT_OK || count > 0) {
		snprintf(err, errlen, "upstream = etcd: the vault holds %zu secrets of its own and"
			 " never followed an etcd; a replica starts from an empty vault (secretd init"
			 " a new one, and put the secrets into the fleet through it)", count);
		return -1;
	}
	return 0;
}

static int check_config(const struct config *cfg, char *err, size_t errlen)
{
	const char *prefix = cfg->etcd_prefix != NULL ? cfg->etcd_prefix : FLEET_DEFAULT_PREFIX;

	if (cfg->etcd_endpoints == NULL) {
		snprintf(err, errlen, "upstream = etcd needs etcd-endpoints");
		return -1;
	}
	if (cfg->cluster_key_file == NULL) {
		snprintf(err, errlen, "upstream = etcd needs cluster-key-file");
		return -1;
	}
	if (!fleet_prefix_valid(prefix, strlen(prefix))) {
		snprintf(err, errlen, "etcd-prefix: 1 to %d visible ASCII characters",
			 FLEET_PREFIX_MAX);
		return -1;
	}
	if ((cfg->etcd_user == NULL) != (cfg->etcd_password_file == NULL)) {
		snprintf(err, errlen, "etcd-user and etcd-password-file go together");
		return -1;
	}
	if ((cfg->etcd_cert == NULL) != (cfg->etcd_key == NULL)) {
		snprintf(err, errlen, "etcd-cert and etcd-key go together");
		return -1;
	}
	return 0;
}

static int etcd_upstream_new(const struct config *cfg, struct vault *vault, struct upstream **out,
		 char *err, size_t errlen)
{
	struct upstream *u;
	char kerr[256];

	*out = NULL;
	if (check_config(cfg, err, errlen) != 0)
		return -1;
	u = calloc(1, sizeof(*u));
	if (u == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	u->cfg = cfg;
	u->keep = cfg->keep_versions;
	TAILQ_INIT(&u->writes);
	snprintf(u->prefix, sizeof(u->prefix), "%s",
		 cfg->etcd_prefix != NULL ? cfg->etcd_prefix : FLEET_DEFAULT_PREFIX);
	u->cluster_key = sodium_malloc(FLEET_KEY_LEN);
	if (u->cluster_key == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (keyfile_read(cfg->cluster_key_file, u->cluster_key, kerr, sizeof(kerr)) != 0) {
		snprintf(err, errlen, "cluster-key-file: %s", kerr);
		goto fail;
	}
	if (cfg->etcd_password_file != NULL &&
	    read_password(cfg->etcd_password_file, &u->password, &u->password_len, err,
			  errlen) != 0)
		goto fail;
	if (load_state(u, vault, err, errlen) != 0)
		goto fail;
	*out = u;
	return 0;
fail:
	etcd_upstream_free(u);
	return -1;
}

static int etcd_upstream_start(struct upstream *u, struct services *svc, char *err, size_t errlen)
{
	const struct config *cfg = u->cfg;
	struct etcd_client_config ec = {
		.endpoints = cfg->etcd_endpoints, .cacert = cfg->etcd_cacert,
		.cert = cfg->etcd_cert, .key = cfg->etcd_key, .user = cfg->etcd_user,
		.password = u->password, .password_len = u->password_len,
	};
	char kerr[256];

	u->svc = svc;
	int rc = etcd_client_new(svc->loop, &ec, &u->client, kerr, sizeof(kerr));

	/* The client keeps its own locked copy: ours is wiped now. */
	sodium_free(u->password);
	u->password = NULL;
	u->password_len = 0;
	if (rc != ETCD_OK) {
		snprintf(err, errlen, "etcd: %s", kerr);
		return -1;
	}
	/* Answers from an older store, or another cluster, are refused from the first one. */
	etcd_client_expect(u->client, u->cluster_id, u->applied);
	if (uv_timer_init(svc->loop, &u->timer) != 0) {
		snprintf(err, errlen, "cannot start the upstream's timer");
		etcd_client_close(u->client, NULL, NULL);
		u->client = NULL;
		return -1;
	}
	u->timer.data = u;
	u->current_at_ms = now_ms(u);
	/*
	 * It fails only for a NULL callback; a failure here would leave an
	 * initialised handle in memory the caller frees, so it is not taken.
	 */
	(void)uv_timer_start(&u->timer, on_tick, 0, TICK_MS);
	svc->upstream = u;
	return 0;
}

static void on_client_closed(void *arg)
{
	struct upstream *u = arg;
	void (*closed)(void *) = u->closed;
	void *closed_arg = u->closed_arg;

	etcd_upstream_free(u);
	if (closed != NULL)
		closed(closed_arg);
}

static void on_timer_closed(uv_handle_t *h)
{
	struct upstream *u = h->data;

	etcd_client_close(u->client, on_client_closed, u);
}

static void etcd_upstream_stop(struct upstream *u, void (*done)(void *arg), void *arg)
{
	u->closing = true;
	u->closed = done;
	u->closed_arg = arg;
	stop_watch(u);
	if (u->fleet != NULL) {
		fleet_free(u->fleet);
		u->fleet = NULL;
	}
	uv_close((uv_handle_t *)&u->timer, on_timer_closed);
}

/* ---- this node's writes ------------------------------------------------------ */


static int wire_status_of(int status)
{
	switch (status) {
	case ETCD_E_NOTFOUND:
		return WIRE_NOT_FOUND;
	case ETCD_E_UNAVAILABLE:
	case ETCD_E_ROLLBACK:
	case ETCD_E_CLUSTER:
	case ETCD_E_CANCELED:
	case ETCD_E_CONFLICT:
		return WIRE_UNAVAILABLE;
	default:
		return WIRE_ERROR;
	}
}

static void on_committed(const struct fleet_result *r, void *arg)
{
	struct local_write *lw = arg;
	struct upstream *u = lw->u;
	struct step *s = NULL;
	struct vault_change *c = NULL;

	lw->committed = true;
	lw->revision = r->status == ETCD_OK ? r->revision : 0;
	unpark(u, lw);
	if (r->status != ETCD_OK) {
		char msg[160];

		if (is_refusal(r->status) && !u->closing)
			refuse(u, r->status);
		snprintf(msg, sizeof(msg), "the fleet's etcd: %s",
			 u->state == UP_REFUSED ? "refused (see secretctl status)"
						: etcd_strerror(r->status));
		lw->done(lw->arg, wire_status_of(r->status), 0, msg);
		write_end(u, lw);
		return;
	}
	if (u->closing) {
		/* Committed in etcd; this replica is stopping and learns it at its next start. */
		lw->done(lw->arg, WIRE_UNAVAILABLE, 0, "the broker is shutting down");
		write_end(u, lw);
		return;
	}
	s = step_new(u, STEP_LOCAL);
	if (s != NULL)
		c = step_add(s, lw->rm ? VAULT_CHANGE_REMOVE : VAULT_CHANGE_PUT, lw->name,
			     lw->nlen, r->version, r->revision);
	if (c != NULL && !lw->rm) {
		c->value = lw->value; /* the caller keeps it until done */
		c->value_len = lw->vlen;
	}
	if (c == NULL) {
		/* etcd has it; the watch brings it here, but this answer cannot wait for it. */
		step_free(s);
		lw->done(lw->arg, WIRE_ERROR, 0, "out of memory");
		write_end(u, lw);
		return;
	}
	s->lw = lw;
	step_submit(u, s);
}

static int local_write(struct upstream *u, struct local_write *lw)
{
	int rc;

	if (u->fleet == NULL || u->state == UP_REFUSED) {
		free(lw);
		return -1;
	}
	TAILQ_INSERT_TAIL(&u->writes, lw, link);
	rc = lw->rm ? fleet_rm(u->fleet, lw->name, lw->nlen, on_committed, lw)
		    : fleet_put(u->fleet, lw->name, lw->nlen, lw->value, lw->vlen, on_committed,
				lw);
	if (rc != ETCD_OK) {
		set_problem(u, "etcd: %s", etcd_strerror(rc));
		write_end(u, lw);
		return -1;
	}
	return 0;
}

static int etcd_upstream_put(struct upstream *u, const char *name, size_t nlen, const uint8_t *value,
		 size_t vlen, upstream_done_fn done, void *arg)
{
	struct local_write *lw = calloc(1, sizeof(*lw));

	if (lw == NULL)
		return -1;
	*lw = (struct local_write){ .u = u, .name = name, .nlen = nlen, .value = value,
				    .vlen = vlen, .done = done, .arg = arg };
	return local_write(u, lw);
}

static int etcd_upstream_rm(struct upstream *u, const char *name, size_t nlen, upstream_done_fn done,
		void *arg)
{
	struct local_write *lw = calloc(1, sizeof(*lw));

	if (lw == NULL)
		return -1;
	*lw = (struct local_write){ .u = u, .name = name, .nlen = nlen, .rm = true,
				    .done = done, .arg = arg };
	return local_write(u, lw);
}

/* ---- status ----------------------------------------------------------------- */

static void etcd_upstream_status(struct upstream *u, struct upstream_status *out)
{
	uint64_t now = now_ms(u);
	bool current = u->watch_live && u->probe_ok && u->steps_pending == 0;

	out->state = up_state_names[u->state];
	out->connected = u->watch_live && u->probe_ok && u->state != UP_REFUSED;
	out->revision = u->applied;
	if (current)
		out->lag_ms = 0;
	else if (u->steps_pending > 0 && u->watch_live)
		out->lag_ms = now - u->oldest_pending_ms;
	else
		out->lag_ms = now - u->current_at_ms;
	if (u->fleet == NULL && u->problem[0] == '\0' && u->state != UP_REFUSED)
		out->problem = "connecting to etcd";
	else
		out->problem = u->problem;
	out->resyncs = u->resyncs;
	out->rollbacks_refused = u->rollbacks;
}

static const char *etcd_upstream_problem(struct upstream *u)
{
	if (u->state == UP_REFUSED)
		return u->problem;
	if (u->fleet == NULL)
		return "the fleet's etcd cannot be reached yet";
	return u->problem[0] != '\0' ? u->problem : "the fleet's etcd cannot be reached";
}

/* What the broker finds with dlsym (upstream_ops.h). */
const struct upstream_ops secretd_upstream_etcd = {
	.version = SECRETD_VERSION,
	.create = etcd_upstream_new,
	.destroy = etcd_upstream_free,
	.start = etcd_upstream_start,
	.stop = etcd_upstream_stop,
	.put = etcd_upstream_put,
	.rm = etcd_upstream_rm,
	.status = etcd_upstream_status,
	.problem = etcd_upstream_problem,
};
