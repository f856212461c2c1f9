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
	char *text;         /* the names, one after another */
	size_t text_len, text_cap;
	size_t *lens;
	uint32_t *versions;
	size_t count, cap;
	size_t encoded;
	bool too_many, nomem;
};

static bool matches(const struct state_ctx *s, const char *name, size_t len)
{
	for (size_t i = 0; i < s->npatterns; i++)
		if (glob_match((const char *)s->patterns[i].ptr, s->patterns[i].len, name, len))
			return true;
	return false;
}

static bool grow_to(void **buf, size_t unit, size_t *cap, size_t need)
{
	size_t n = *cap ? *cap : 64;
	void *bigger;

	if (need <= *cap)
		return true;
	while (n < need)
		n *= 2;
	bigger = realloc(*buf, n * unit);
	if (bigger == NULL)
		return false;
	*buf = bigger;
	*cap = n;
	return true;
}

static int state_one(const char *name, size_t len, uint32_t version, void *arg)
{
	struct state_ctx *s = arg;
	unsigned rule;
	size_t cap = s->cap;

	if (!matches(s, name, len) ||
	    !policy_eval(s->rq->svc->policy, s->rq->id, PERM_READ, name, len, &rule))
		return 0;
	if (s->encoded + 6 + len > WATCH_MAX_BYTES) {
		s->too_many = true;
		return 1;
	}
	if (!grow_to((void **)&s->text, 1, &s->text_cap, s->text_len + len) ||
	    !grow_to((void **)&s->lens, sizeof(size_t), &cap, s->count + 1) ||
	    !grow_to((void **)&s->versions, sizeof(uint32_t), &s->cap, s->count + 1)) {
		s->nomem = true;
		return 1;
	}
	memcpy(s->text + s->text_len, name, len);
	s->text_len += len;
	s->lens[s->count] = len;
	s->versions[s->count++] = version;
	s->encoded += 6 + len;
	return 0;
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

/* The answer: the names (from s) with their versions. */
static int fill_answer(struct reply *r, struct state_ctx *s)
{
	size_t off = 0;

	r->items = calloc(s->count ? s->count : 1, sizeof(*r->items));
	if (r->items == NULL)
		return -1;
	for (size_t i = 0; i < s->count; i++) {
		r->items[i].ptr = (const uint8_t *)s->text + off;
		r->items[i].len = s->lens[i];
		off += s->lens[i];
	}
	r->item_text = s->text;
	r->versions = s->versions;
	s->text = NULL;
	s->versions = NULL;
	r->resp.status = WIRE_OK;
	r->resp.items = r->items;
	r->resp.versions = r->versions;
	r->resp.nitems = s->count;
	return 0;
}

enum op_result op_watch(struct request *rq)
{
	struct reply *r = rq->reply;
	struct wire_str patterns[WIRE_MAX_PATTERNS], cursor = rq->wire->items_raw;
	struct state_ctx s = { .rq = rq, .patterns = patterns };

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
	    vault_list_versions(rq->svc->vault, state_one, &s) < 0 || s.nomem || s.too_many ||
	    fill_answer(r, &s) != 0 || subscribe(rq, patterns, s.npatterns) != 0) {
		if (s.too_many)
			request_fail(rq, WIRE_INVALID, "error", "too many names",
				     "too many names for one answer; narrow the patterns");
		else
			request_fail(rq, WIRE_ERROR, "error", "watch failed", "watch failed");
		goto out;
	}
	r->ev.decision = "allow";
	r->ev.count = (long long)s.count;
out:
	free(s.text);
	free(s.lens);
	free(s.versions);
	return OP_DONE;
}
