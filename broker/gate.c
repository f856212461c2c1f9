/*
 * The audit gate.  An answer's record is queued while the answer is being
 * decided; after the turn of the loop, on_check writes every queued record
 * with one write(2) and releases their answers.  With audit-sync = always
 * the answers then wait for the fsync (on a worker thread) that covers their
 * records; with batch, a timer starts an fsync audit-sync-interval after the
 * first unsynced record.  A durable state becomes a checkpoint for the
 * vault, so that a log cut off afterwards is found out: the first one after
 * a quiet second at once, later ones at most once a second (each is a
 * SQLite commit with an fsync of its own, and under load one every batch
 * cost more than the batch's own fsync).
 */
#include "gate.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

#define CHECKPOINT_MS 1000

TAILQ_HEAD(gate_list, gate_item);

struct gate {
	uv_loop_t *loop;
	struct audit *audit;
	bool always;
	unsigned batch_ms; /* audit-sync = batch: an fsync this long after a record */
	gate_checkpoint_fn checkpoint;
	void *checkpoint_arg;
	void (*idle_fn)(void *arg);
	void *idle_arg;
	struct gate_list unwritten; /* records queued, write(2) after this turn */
	struct gate_list unsynced;  /* audit-sync = always: waiting for the fsync */
	uv_check_t check;
	uv_poll_t links;  /* audit_watch_fd: the log's file may have lost its name */
	bool links_on;
	uv_timer_t timer;
	bool timer_armed;
	/* the fsync on a worker thread */
	uv_work_t work;
	bool sync_busy;
	int sync_rc;
	uint64_t sync_covers;
	uint64_t sync_failures_before;
	uint8_t sync_ckpt[AUDIT_CHECKPOINT_MAX];
	size_t sync_ckpt_len;
	/* the newest durable state not yet given to the vault */
	uv_timer_t ckpt_timer;
	uint8_t ckpt[AUDIT_CHECKPOINT_MAX];
	size_t ckpt_len;
	bool ckpt_armed;
	uint64_t ckpt_stored_ms; /* uv_now of the last one given */
	bool was_healthy;
};

static void sync_kick(struct gate *g);

/* Say so once when the log stops or starts being writable. */
static void note_health(struct gate *g)
{
	bool healthy = audit_healthy(g->audit);

	if (healthy == g->was_healthy)
		return;
	g->was_healthy = healthy;
	if (healthy)
		log_warn("audit log writable again: serving secrets");
	else
		log_err("audit log cannot be written (%s): releasing no secret until it can",
			audit_problem(g->audit));
}

static void put_on(struct gate_list *list, struct gate_item *item, enum gate_where where)
{
	TAILQ_INSERT_TAIL(list, item, link);
	item->where = where;
}

static void take(struct gate_list *list, struct gate_item *item)
{
	TAILQ_REMOVE(list, item, link);
	item->where = GATE_NOWHERE;
}

static void release(struct gate_item *item, enum gate_outcome outcome)
{
	item->release(item, outcome);
}

static void maybe_idle(struct gate *g)
{
	if (g->idle_fn != NULL && gate_idle(g))
		g->idle_fn(g->idle_arg);
}

static void on_links(uv_poll_t *p, int status, int events)
{
	struct gate *g = p->data;

	(void)status;
	(void)events;
	audit_watch_event(g->audit);
}

/* Without the watch every write checks for itself: nothing is lost but a system call. */
static void watch_links(struct gate *g)
{
	int fd = audit_watch_fd(g->audit);

	if (fd < 0)
		return;
	if (uv_poll_init(g->loop, &g->links, fd) != 0) {
		audit_watch_off(g->audit);
		return;
	}
	g->links.data = g;
	g->links_on = true;
	if (uv_poll_start(&g->links, UV_READABLE, on_links) != 0)
		audit_watch_off(g->audit); /* the handle is closed with the gate */
	/* Not a reason for the loop to run on. */
	uv_unref((uv_handle_t *)&g->links);
}

static void on_timer(uv_timer_t *t)
{
	struct gate *g = t->data;

	g->timer_armed = false;
	sync_kick(g);
}

/* Batch mode: an fsync soon after the first record that is not yet on disk. */
static void arm_batch_sync(struct gate *g)
{
	if (g->always || g->timer_armed)
		return;
	if (uv_timer_start(&g->timer, on_timer, g->batch_ms, 0) != 0) {
		/* Not reached for an initialised timer; the tick syncs instead. */
		log_warn("audit: cannot arm the sync timer");
		return;
	}
	g->timer_armed = true;
}

static void store_checkpoint(struct gate *g)
{
	g->ckpt_stored_ms = uv_now(g->loop);
	if (g->ckpt_len > 0 && g->checkpoint != NULL)
		g->checkpoint(g->checkpoint_arg, g->ckpt, g->ckpt_len);
	g->ckpt_len = 0;
}

static void on_ckpt_timer(uv_timer_t *t)
{
	struct gate *g = t->data;

	g->ckpt_armed = false;
	store_checkpoint(g);
}

/* A durable state: to the vault now, or when a second has passed since the last. */
static void checkpoint_due(struct gate *g, const uint8_t *blob, size_t len)
{
	uint64_t since = uv_now(g->loop) - g->ckpt_stored_ms;

	memcpy(g->ckpt, blob, len);
	g->ckpt_len = len;
	if (g->ckpt_armed)
		return;
	if (since >= CHECKPOINT_MS || uv_timer_start(&g->ckpt_timer, on_ckpt_timer,
						     CHECKPOINT_MS - since, 0) != 0) {
		store_checkpoint(g);
		return;
	}
	g->ckpt_armed = true;
}

static void sync_work(uv_work_t *w)
{
	struct gate *g = w->data;

	g->sync_rc = audit_sync_run(g->audit);
}

/* Release (or, if the fsync failed, withhold) the answers that waited for it. */
static void release_synced(struct gate *g, bool ok)
{
	struct gate_item *item, *next;

	TAILQ_FOREACH_SAFE(item, &g->unsynced, link, next) {
		if (ok && item->seq > audit_synced_seq(g->audit))
			continue;
		take(&g->unsynced, item);
		release(item, ok ? GATE_OK : GATE_UNSYNCED);
	}
}

static void sync_after(uv_work_t *w, int status)
{
	struct gate *g = w->data;
	bool ran_ok = g->sync_rc == 0;
	/*
	 * Another fsync failed while this one ran (a reopen withheld the
	 * answers waiting on that file): this 0 may hide lost pages, so it
	 * covers nothing, and those still waiting wait for the next one.
	 */
	bool ok = ran_ok && audit_sync_failures(g->audit) == g->sync_failures_before;

	(void)status;
	g->sync_busy = false;
	audit_sync_end(g->audit, ok ? g->sync_covers : 0, g->sync_rc);
	note_health(g);
	if (ok && g->sync_ckpt_len > 0)
		checkpoint_due(g, g->sync_ckpt, g->sync_ckpt_len);
	release_synced(g, ran_ok);
	if (audit_dirty(g->audit)) {
		if (g->always || !TAILQ_EMPTY(&g->unsynced))
			sync_kick(g);
		else
			arm_batch_sync(g);
	}
	maybe_idle(g);
}

static void sync_kick(struct gate *g)
{
	int rc;

	if (g->sync_busy || !audit_dirty(g->audit))
		return;
	g->sync_ckpt_len = 0;
	g->sync_covers = audit_sync_begin(g->audit, g->sync_ckpt, &g->sync_ckpt_len);
	g->sync_failures_before = audit_sync_failures(g->audit);
	g->work.data = g;
	rc = uv_queue_work(g->loop, &g->work, sync_work, sync_after);
	if (rc != 0) {
		/* The tick tries again; the answers keep waiting. */
		log_err("audit: cannot queue the fsync: %s", uv_strerror(rc));
		return;
	}
	g->sync_busy = true;
}

/* Written: release, or with audit-sync = always wait for the fsync. */
static void written(struct gate *g, struct gate_item *item)
{
	if (g->always && item->seq > audit_synced_seq(g->audit)) {
		put_on(&g->unsynced, item, GATE_UNSYNCED_LIST);
		sync_kick(g);
		return;
	}
	release(item, GATE_OK);
}

/*
 * After each turn of the loop: the records of every answer decided in it
 * go to the log in one write(2), and only then are the answers released.
 * An answer whose record may have been lost is released as unwritten.
 */
static void on_check(uv_check_t *h)
{
	struct gate *g = h->data;

	/* Releases may let connections decide more answers: loop until none. */
	while (!TAILQ_EMPTY(&g->unwritten)) {
		struct gate_list batch = TAILQ_HEAD_INITIALIZER(batch);
		struct gate_item *item;
		uint64_t drops;

		TAILQ_CONCAT(&batch, &g->unwritten, link);
		(void)audit_flush(g->audit);
		note_health(g);
		drops = audit_drops(g->audit);
		while ((item = TAILQ_FIRST(&batch)) != NULL) {
			take(&batch, item);
			if (item->drops != drops) {
				item->seq = 0;
				release(item, GATE_UNWRITTEN);
			} else {
				written(g, item);
			}
		}
	}
}

int gate_new(uv_loop_t *loop, struct audit *audit, const struct gate_sync *sync,
	     gate_checkpoint_fn checkpoint, void *arg, struct gate **out)
{
	struct gate *g = calloc(1, sizeof(*g));
	int rc;

	if (g == NULL)
		return UV_ENOMEM;
	g->loop = loop;
	g->audit = audit;
	g->always = sync->always;
	g->batch_ms = sync->interval_ms;
	g->checkpoint = checkpoint;
	g->checkpoint_arg = arg;
	g->was_healthy = true;
	TAILQ_INIT(&g->unwritten);
	TAILQ_INIT(&g->unsynced);
	/* Initialising handles cannot fail on Unix; all are closed by gate_close. */
	if ((rc = uv_check_init(loop, &g->check)) != 0 ||
	    (rc = uv_timer_init(loop, &g->timer)) != 0 ||
	    (rc = uv_timer_init(loop, &g->ckpt_timer)) != 0) {
		free(g);
		return rc;
	}
	g->check.data = g->timer.data = g->ckpt_timer.data = g;
	/* The first durable state goes to the vault at once. */
	g->ckpt_stored_ms = uv_now(loop) - CHECKPOINT_MS;
	*out = g;
	watch_links(g);
	rc = uv_check_start(&g->check, on_check);
	if (rc != 0)
		gate_close(g);
	return rc;
}

void gate_close(struct gate *g)
{
	if (!uv_is_closing((uv_handle_t *)&g->check))
		uv_close((uv_handle_t *)&g->check, NULL);
	if (g->links_on && !uv_is_closing((uv_handle_t *)&g->links))
		uv_close((uv_handle_t *)&g->links, NULL);
	if (!uv_is_closing((uv_handle_t *)&g->timer))
		uv_close((uv_handle_t *)&g->timer, NULL);
	if (!uv_is_closing((uv_handle_t *)&g->ckpt_timer))
		uv_close((uv_handle_t *)&g->ckpt_timer, NULL);
}

void gate_free(struct gate *g)
{
	free(g);
}

void gate_submit(struct gate *g, struct gate_item *item, const struct audit_event *ev)
{
	int rc;

	item->seq = 0;
	item->where = GATE_NOWHERE;
	if (ev == NULL) {
		release(item, GATE_OK);
		return;
	}
	rc = audit_queue(g->audit, ev);
	note_health(g);
	if (rc != 0) {
		release(item, GATE_UNWRITTEN);
		return;
	}
	item->seq = audit_last_seq(g->audit);
	item->drops = audit_drops(g->audit);
	put_on(&g->unwritten, item, GATE_UNWRITTEN_LIST);
	arm_batch_sync(g);
}

void gate_forget(struct gate *g, struct gate_item *item)
{
	if (item->where == GATE_NOWHERE)
		return;
	take(item->where == GATE_UNSYNCED_LIST ? &g->unsynced : &g->unwritten, item);
	maybe_idle(g);
}

int gate_record(struct gate *g, const struct audit_event *ev)
{
	int rc = audit_append(g->audit, ev);

	note_health(g);
	if (rc == 0)
		arm_batch_sync(g);
	return rc;
}

bool gate_healthy(struct gate *g)
{
	return audit_healthy(g->audit);
}

void gate_tick(struct gate *g)
{
	(void)audit_tick(g->audit);
	if (!audit_healthy(g->audit))
		(void)audit_recover(g->audit);
	note_health(g);
	if (audit_dirty(g->audit) && !g->timer_armed)
		sync_kick(g);
}

void gate_reopen(struct gate *g)
{
	uint64_t failures = audit_sync_failures(g->audit);

	if (audit_reopen(g->audit) != 0)
		log_err("reopening the audit log failed: %s", audit_problem(g->audit));
	note_health(g);
	/* The old file's last records may not be on disk: withhold what waits on them. */
	if (audit_sync_failures(g->audit) != failures)
		release_synced(g, false);
	maybe_idle(g);
}

bool gate_idle(const struct gate *g)
{
	return !g->sync_busy && TAILQ_EMPTY(&g->unwritten) && TAILQ_EMPTY(&g->unsynced);
}

void gate_on_idle(struct gate *g, void (*fn)(void *arg), void *arg)
{
	g->idle_fn = fn;
	g->idle_arg = arg;
}
