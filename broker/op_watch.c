/*
 * watch: the current (name, version) of every readable name the patterns
 * match, then an EVENT for each later change of one, for as long as the
 * connection lasts.  The policy is asked again for every event, so a reload
 * that takes a right away stops that name's events.  Events carry no value.
 */
#include <stdlib.h>
#include <string.h>

#include <secretd/names.h>

#include "conn.h"
#include "glob.h"
#include "log.h"
#include "namelist.h"
#include "ops.h"
#include "reply.h"
#include "request.h"
#include "services.h"
#include "watch.h"

/* The answer must fit one identity's share of reply buffers. */
#define WATCH_MAX_BYTES (BUFFERS_SHARE - 64)

struct watcher {
	struct services *svc;
	struct conn *conn;
	struct watch_sub *sub;
};

static void on_change(void *owner, const char *name, size_t len, uint32_t version)
{
	struct watcher *w = owner;
	unsigned rule;

	if (!policy_eval(w->svc->policy, conn_identity(w->conn), PERM_READ, name, len, &rule))
		return;
	if (conn_push_event(w->conn, name, len, version) != 0) {
		log_info("closing a watch of pid %d: it does not read its events",
			 (int)conn_identity(w->conn)->pid);
		conn_end_stream(w->conn, WIRE_UNAVAILABLE,
				"too many events not read: watch again to resynchronise");
	}
}

static void on_end(void *state)
{
	struct watcher *w = state;

	watch_unsubscribe(w->svc->hub, w->sub);
	free(w);
}

struct state_ctx {
	struct request *rq;
	const struct wire_str *patterns;
	size_t npatterns;
	struct namelist names;
};

static bool matches(const struct state_ctx *s, const char *name, size_t len)
{
	for (size_t i = 0; i < s->npatterns; i++)
		if (glob_match((const char *)s->patterns[i].ptr, s->patterns[i].len, name, len))
			return true;
	return false;
}

static int state_one(const char *name, size_t len, uint32_t version, void *arg)
{
	struct state_ctx *s = arg;
	unsigned rule;

	if (!matches(s, name, len) ||
	    !policy_eval(s->rq->svc->policy, s->rq->id, PERM_READ, name, len, &rule))
		return 0;
	return namelist_add(&s->names, name, len, version);
}

/* The patterns as the audit record names them, comma-separated. */
static char *joined(const struct wire_str *patterns, size_t n)
{
	size_t len = 0, pos = 0;
	char *text;

	for (size_t i = 0; i < n; i++)
		len += patterns[i].len + 1;
	text = malloc(len + 1);
	if (text == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			text[pos++] = ',';
		memcpy(text + pos, patterns[i].ptr, patterns[i].len);
		pos += patterns[i].len;
	}
	text[pos] = '\0';
	return text;
}

static int subscribe(struct request *rq, const struct wire_str *patterns, size_t n)
{
	struct watcher *w = calloc(1, sizeof(*w));

	if (w == NULL)
		return -1;
	w->svc = rq->svc;
	w->conn = rq->conn;
	if (watch_subscribe(rq->svc->hub, patterns, n, on_change, w, &w->sub) != 0) {
		free(w);
		return -1;
	}
	conn_set_stream(rq->conn, w, on_end);
	return 0;
}

enum op_result op_watch(struct request *rq)
{
	struct reply *r = rq->reply;
	struct wire_str patterns[WIRE_MAX_PATTERNS], cursor = rq->wire->items_raw;
	struct state_ctx s = {
		.rq = rq, .patterns = patterns,
		.names = { .max_bytes = WATCH_MAX_BYTES, .per_name = 6 },
	};

	while (s.npatterns < WIRE_MAX_PATTERNS && wire_items_next(&cursor, &patterns[s.npatterns]))
		s.npatterns++;
	r->ev_text = joined(patterns, s.npatterns);
	if (r->ev_text != NULL) {
		r->ev.name = r->ev_text;
		r->ev.name_len = strlen(r->ev_text);
	}
	if (conn_is_stream(rq->conn)) {
		request_fail(rq, WIRE_INVALID, "error", "second watch",
			     "this connection already watches: open another");
		goto out;
	}
	if (r->ev_text == NULL ||
	    vault_list_versions(rq->svc->vault, state_one, &s) < 0 || s.names.nomem ||
	    s.names.too_many || namelist_to_reply(&s.names, r, true) != 0 ||
	    subscribe(rq, patterns, s.npatterns) != 0) {
		if (s.names.too_many)
			request_fail(rq, WIRE_INVALID, "error", "too many names",
				     "too many names for one answer; narrow the patterns");
		else
			request_fail(rq, WIRE_ERROR, "error", "watch failed", "watch failed");
		goto out;
	}
	r->ev.decision = "allow";
	r->ev.count = (long long)r->resp.nitems;
	r->resp.status = WIRE_OK;
out:
	namelist_free(&s.names);
	return OP_DONE;
}
