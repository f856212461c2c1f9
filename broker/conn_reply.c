/*
 * A connection's answers: queued in request order as they are decided,
 * written in that order once each is released by the audit gate (at once
 * when the socket takes them, else through libuv's write queue), and a
 * watcher's events, coalesced for a subscriber that does not read.
 */
#include "conn_internal.h"

#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include <secretd/wire.h>

#include "reply.h"

/* Events queued for a subscriber: coalesced past the first, closed past the second. */
#define EVENTS_COALESCE 32
#define CONN_MAX_EVENTS 512

static void pump(struct conn *c);

/* ---- replies ---------------------------------------------------------------- */

struct reply *conn_reply_new(struct conn *c, uint8_t type)
{
	struct reply *r = c->spare;

	if (r != NULL) {
		c->spare = NULL;
		memset(r, 0, sizeof(*r));
	} else if ((r = calloc(1, sizeof(*r))) == NULL) {
		return NULL;
	}
	r->conn = c;
	r->type = type;
	r->resp.type = type;
	r->state = REPLY_DECIDING;
	r->out_dirty = SIZE_MAX;
	r->started_ns = uv_hrtime();
	TAILQ_INSERT_TAIL(&c->replies, r, link);
	c->nreplies++;
	conn_ref(c);
	return r;
}

/* The reply is written (or never will be): free it and what it holds. */
void conn_reply_free(struct reply *r)
{
	struct conn *c = r->conn;

	TAILQ_REMOVE(&c->replies, r, link);
	c->nreplies--;
	reply_drop_content(r);
	if (r->plain)
		free(r->out);
	else
		conn_out_put(c, r->out, r->out_cap, r->out_dirty);
	free(r->ev_text);
	if (c->spare == NULL)
		c->spare = r; /* what it held is gone: the encoding, the value, the texts */
	else
		free(r);
	conn_unref(c);
}

static void after_reply(struct conn *c, bool close_after)
{
	if (c->state == CONN_CLOSING)
		return;
	if (close_after || conn_finished(c)) {
		conn_close(c);
		return;
	}
	/* Room in the queue again: a waiting frame gets its turn. */
	if (c->state == CONN_OPEN && conn_whole_frame(c))
		conn_make_ready(c);
	conn_update_reading(c);
}

static void on_write(uv_write_t *req, int status)
{
	struct reply *r = req->data;
	struct conn *c = r->conn;
	bool close_after = r->close_after || status < 0;

	conn_ref(c);
	c->writing--;
	c->write_started_ms = conn_now_ms(c);
	conn_reply_free(r);
	after_reply(c, close_after);
	if (c->state != CONN_CLOSING)
		pump(c);
	conn_unref(c);
}

/* Hand r to the socket: at once if nothing else is queued in libuv. */
static int start_write(struct conn *c, struct reply *r)
{
	uv_buf_t buf = uv_buf_init((char *)r->out, (unsigned)r->out_len);
	int w = 0;

	if (c->writing == 0) {
		w = uv_try_write((uv_stream_t *)&c->pipe, &buf, 1);
		if (w == (int)r->out_len)
			return 1; /* all written */
		if (w < 0 && w != UV_EAGAIN)
			return w;
		if (w < 0)
			w = 0;
		buf.base += w;
		buf.len -= (unsigned)w;
		c->write_started_ms = conn_now_ms(c);
	}
	r->wreq.data = r;
	w = uv_write(&r->wreq, (uv_stream_t *)&c->pipe, &buf, 1, on_write);
	if (w != 0)
		return w;
	r->state = REPLY_WRITING;
	c->writing++;
	return 0;
}

/* Write every ready reply, in order, up to the first one still undecided. */
static void pump(struct conn *c)
{
	struct reply *r = TAILQ_FIRST(&c->replies);

	conn_ref(c);
	while (r != NULL && c->state != CONN_CLOSING) {
		struct reply *next = TAILQ_NEXT(r, link);
		bool close_after = r->close_after;
		int rc;

		if (r->state == REPLY_WRITING) {
			r = next;
			continue;
		}
		if (r->state != REPLY_READY)
			break;
		/*
		 * A stream's events wait here, one write at a time, so that a
		 * subscriber that does not read has them coalesced (conn_push_event).
		 */
		if (c->writing > 0 && c->stream != NULL)
			break;
		rc = start_write(c, r);
		if (rc < 0) {
			conn_close(c);
			break;
		}
		if (rc == 1) {
			conn_reply_free(r);
			after_reply(c, close_after);
		}
		r = next;
	}
	conn_unref(c);
}

void conn_reply_ready(struct reply *r)
{
	struct conn *c = r->conn;

	if (c->state == CONN_CLOSING) {
		conn_reply_free(r);
		return;
	}
	r->state = REPLY_READY;
	if (r->close_after && c->state != CONN_DECIDING)
		c->state = CONN_DRAINING;
	pump(c);
}

/* ---- streams ------------------------------------------------------------------ */

/* Offsets in an encoded EVENT frame: header, version, type, status, str16 name, u32. */
#define EVENT_NAME_AT (WIRE_HEADER_SIZE + 3 + 2)

/* An event for the same name still waiting: it takes the newer version. */
static bool coalesce(struct conn *c, const char *name, size_t len, uint32_t version)
{
	struct reply *r;

	TAILQ_FOREACH_REVERSE(r, &c->replies, reply_list, link) {
		uint8_t *v;

		if (r->state != REPLY_READY)
			break; /* an older one is already being written */
		if (r->type != WIRE_EVENT || r->resp.status != WIRE_OK ||
		    r->out_len != EVENT_NAME_AT + len + 4 ||
		    memcmp(r->out + EVENT_NAME_AT, name, len) != 0)
			continue;
		v = r->out + EVENT_NAME_AT + len;
		v[0] = (uint8_t)(version >> 24);
		v[1] = (uint8_t)(version >> 16);
		v[2] = (uint8_t)(version >> 8);
		v[3] = (uint8_t)version;
		return true;
	}
	return false;
}

static int push(struct conn *c, const struct wire_response *resp, bool close_after)
{
	size_t size = wire_response_size(resp);
	struct reply *r;
	long n;

	if (size == 0)
		return -1;
	r = conn_reply_new(c, resp->type);
	if (r == NULL)
		return -1;
	r->plain = true;
	r->close_after = close_after;
	r->out = malloc(size);
	n = r->out != NULL ? wire_encode_response(resp, r->out, size) : -1;
	if (n < 0) {
		r->state = REPLY_READY;
		r->out_len = 0;
		conn_reply_free(r);
		return -1;
	}
	r->out_len = (size_t)n;
	r->out_cap = size;
	conn_reply_ready(r);
	return 0;
}

int conn_push_event(struct conn *c, const char *name, size_t len, uint32_t version)
{
	struct wire_response resp = {
		.type = WIRE_EVENT, .status = WIRE_OK, .version = version,
		.name = { (const uint8_t *)name, len },
	};

	if (c->state == CONN_CLOSING || c->state == CONN_DRAINING)
		return 0;
	if (c->nreplies >= EVENTS_COALESCE && coalesce(c, name, len, version))
		return 0;
	if (c->nreplies >= CONN_MAX_EVENTS)
		return -1;
	return push(c, &resp, false);
}

void conn_end_stream(struct conn *c, uint8_t status, const char *message)
{
	struct wire_response resp = {
		.type = WIRE_EVENT, .status = status,
		.value = { (const uint8_t *)message, strlen(message) },
	};

	if (c->state == CONN_CLOSING || c->state == CONN_DRAINING)
		return;
	if (push(c, &resp, true) != 0) {
		conn_close(c);
		return;
	}
	if (c->state == CONN_OPEN)
		c->state = CONN_DRAINING;
	conn_update_reading(c);
}
