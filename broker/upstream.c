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
#include "upstream_internal.h"
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

#include "config.h"
#include "etcd_client.h"
#include "fleet.h"
#include "gate.h"
#include "keyfile.h"
#include "log.h"
#include "metrics.h"
#include "services.h"
#include "vault.h"

#define TICK_MS 1000
#define REFUSED_RETRY_MS 10000
#define PASSWORD_MAX 1024
#define UP_DIVERGED 1 /* refuse(): a history other than the one applied */

static const char *const up_state_names[] = { "connecting", "following", "resyncing", "refused" };

static void etcd_upstream_status(struct upstream *u, struct upstream_status *out);

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

void stop_watch(struct upstream *u)
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

/* This node's write committed in etcd: to the writer, unless a resync is being read. */
static void submit_local(struct upstream *u, struct step *s)
{
	if (u->snap == NULL) {
		step_submit(u, s);
		return;
	}
	if (u->held_last != NULL)
		u->held_last->held_next = s;
	else
		u->held_first = s;
	u->held_last = s;
}

/*
 * Hand the held writes with revisions up to upto to the writer, in order
 * (or fail them, when stopping); keep the rest held.  How many went.
 */
static size_t release_held(struct upstream *u, int64_t upto)
{
	struct step **at = &u->held_first, *s;
	size_t n = 0;

	u->held_last = NULL;
	while ((s = *at) != NULL) {
		struct local_write *lw = s->lw;

		if (!u->closing && s->revs[0] > upto) {
			u->held_last = s;
			at = &s->held_next;
			continue;
		}
		*at = s->held_next;
		s->held_next = NULL;
		n++;
		if (!u->closing) {
			step_submit(u, s);
			continue;
		}
		/* Committed in etcd; this replica learns it at its next start. */
		lw->done(lw->arg, WIRE_UNAVAILABLE, 0, "the broker is shutting down");
		write_end(u, lw);
		step_free(s);
	}
	return n;
}

static void on_snapshot(int status, int64_t revision, uint64_t cluster_id, void *arg)
{
	struct upstream *u = arg;
	struct step *s = u->snap;
	size_t held;

	u->snap = NULL;
	if (u->closing || status != ETCD_OK) {
		if (is_refusal(status))
			refuse(u, status);
		else if (!u->closing)
			log_warn("upstream: reading etcd for a resync failed: %s (trying again)",
				 etcd_strerror(status));
		step_free(s);
		(void)release_held(u, INT64_MAX);
		return;
	}
	if (vault_list_versions(u->svc->vault, on_prior, s) != 0) {
		log_err("upstream: cannot read the vault's names for a resync (trying again)");
		step_free(s);
		(void)release_held(u, INT64_MAX);
		return;
	}
	s->rep.replace = true;
	s->state.revision = revision;
	s->state.cluster_id = cluster_id;
	u->cluster_id = cluster_id;
	u->verified = true; /* read from this etcd just now */
	u->need_resync = false;
	/* A resync starts the replica over: the revision it completes is the floor now. */
	/*
	 * This node's writes the snapshot already holds go first, as they would
	 * have (an rm then counts what it removed); those it does not, after it.
	 */
	(void)release_held(u, revision);
	u->submitted = revision - 1;
	step_submit(u, s);
	held = release_held(u, INT64_MAX);
	if (held > 0)
		log_info("upstream: %zu writes of this node, committed in etcd while the resync"
			 " read it, applied after it", held);
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
void follow(struct upstream *u)
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
		else if (!is_refusal(status) && !u->unreachable_logged) {
			/* Once, not at every retry: status and the metrics tell the rest. */
			log_warn("upstream: cannot open the fleet in etcd: %s; serving the replica,"
				 " trying again every %u s", etcd_strerror(status), TICK_MS / 1000);
			u->unreachable_logged = true;
		}
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
	submit_local(u, s);
}

int local_write(struct upstream *u, struct local_write *lw)
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
	.abi = UPSTREAM_ABI,
	.create = etcd_upstream_new,
	.destroy = etcd_upstream_free,
	.start = etcd_upstream_start,
	.stop = etcd_upstream_stop,
	.put = etcd_upstream_put,
	.rm = etcd_upstream_rm,
	.status = etcd_upstream_status,
	.problem = etcd_upstream_problem,
};
