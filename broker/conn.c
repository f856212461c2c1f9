/*
 * Connections.  Each reads frames into a guarded buffer and takes one
 * request at a time (a second waits while one is being decided, and each
 * connection gets one frame a turn of the loop, so that a client pipelining
 * costly requests cannot keep everyone else waiting).  Answers go out in
 * request order from the reply queue (conn_reply.c); a connection whose
 * peer does not read stops being read at MAX_REPLIES and is closed after
 * request-timeout.
 */
#include "conn.h"
#include "conn_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>
#include <uv.h>

#include <secretd/wire.h>

#include "credential.h"
#include "log.h"
#include "metrics.h"
#include "reply.h"
#include "request.h"
#include "services.h"

#define MAX_REPLIES 64 /* replies queued before the connection is no longer read */

static void process_input(struct conn *c);

/* ---- references and buffers ---------------------------------------------- */

void conn_ref(struct conn *c)
{
	c->refs++;
}

static void buf_put(struct conn *c, uint8_t *buf, size_t cap, enum limits_buf kind);
static void in_put(struct conn *c);

static void conn_free(struct conn *c)
{
	struct services *svc = c->svc;

	/* A request buffer, charged as one (a hang-up mid-frame leaves it). */
	in_put(c);
	/* After the buffers, which are charged to the identity's slot. */
	limits_release(svc->limits, c->slot);
	identity_clear(&c->id);
	free(c->audit_who);
	free(c->spare);
	free(c);
	if (svc->on_conn_gone != NULL)
		svc->on_conn_gone(svc);
}

void conn_unref(struct conn *c)
{
	if (--c->refs == 0)
		conn_free(c);
}

static uint8_t *buf_get(struct conn *c, size_t *cap, enum limits_buf kind)
{
	uint8_t *buf;

	if (*cap > BUFFERS_SMALL && (c->slot == NULL || !limits_charge(c->slot, kind, *cap)))
		return NULL;
	buf = buffers_get(c->svc->buffers, cap,
			  kind == LIMITS_IN ? BUFFERS_REQUEST : BUFFERS_REPLY);
	if (buf == NULL && *cap > BUFFERS_SMALL)
		limits_refund(c->slot, kind, *cap);
	return buf;
}

static void buf_put(struct conn *c, uint8_t *buf, size_t cap, enum limits_buf kind)
{
	if (buf == NULL)
		return;
	if (cap > BUFFERS_SMALL && c->slot != NULL)
		limits_refund(c->slot, kind, cap);
	buffers_put(c->svc->buffers, buf, cap);
}

/* An answer's buffer back, wiping only its first dirty bytes (see reply.h). */
void conn_out_put(struct conn *c, uint8_t *buf, size_t cap, size_t dirty)
{
	if (buf == NULL)
		return;
	if (cap > BUFFERS_SMALL && c->slot != NULL)
		limits_refund(c->slot, LIMITS_OUT, cap);
	buffers_put_dirty(c->svc->buffers, buf, cap, dirty);
}

/*
 * The request buffer back.  Only its first in_len bytes can be other than
 * zero: reads fill it from in_len on, and consume() wipes what a frame
 * leaves, so only those are wiped (not the whole 4 KiB a request).
 */
static void in_put(struct conn *c)
{
	if (c->in == NULL)
		return;
	if (c->in_cap > BUFFERS_SMALL && c->slot != NULL)
		limits_refund(c->slot, LIMITS_IN, c->in_cap);
	buffers_put_dirty(c->svc->buffers, c->in, c->in_cap, c->in_len);
}

/* Answers and the copies deferred requests keep. */
uint8_t *conn_buf_get(struct conn *c, size_t *cap)
{
	return buf_get(c, cap, LIMITS_OUT);
}

void conn_buf_put(struct conn *c, uint8_t *buf, size_t cap)
{
	buf_put(c, buf, cap, LIMITS_OUT);
}

const struct identity *conn_identity(const struct conn *c)
{
	return &c->id;
}

/*
 * Every record of this connection writes the same identity: its fields
 * are laid out once, at the first record (the identity is settled by
 * then), instead of at each.  NULL (out of memory): each record lays them
 * out itself.
 */
const char *conn_audit_who(struct conn *c, size_t *len)
{
	if (c->audit_who == NULL) {
		char buf[AUDIT_WHO_MAX];
		size_t n = audit_record_who(&c->id, buf, sizeof(buf));

		if (n == 0 || (c->audit_who = malloc(n)) == NULL)
			return NULL;
		memcpy(c->audit_who, buf, n);
		c->audit_who_len = n;
	}
	*len = c->audit_who_len;
	return c->audit_who;
}

struct services *conn_services(const struct conn *c)
{
	return c->svc;
}

int conn_set_unit(struct conn *c, const char *unit)
{
	char *copy = strdup(unit);

	if (copy == NULL)
		return -ENOMEM;
	free(c->id.unit);
	c->id.unit = copy;
	return 0;
}

struct limits_slot *conn_slot(struct conn *c)
{
	return c->slot;
}

struct conn_refusals *conn_refusals(struct conn *c)
{
	return &c->refusals;
}

bool conn_closing(const struct conn *c)
{
	return c->state == CONN_CLOSING;
}

void conn_set_stream(struct conn *c, void *state, void (*end)(void *state))
{
	c->stream = state;
	c->stream_end = end;
}

bool conn_is_stream(const struct conn *c)
{
	return c->stream != NULL;
}

size_t conn_queued(const struct conn *c)
{
	return c->nreplies;
}

/* ---- the ready list: one frame a connection a turn ------------------------ */

static void unready(struct conn *c)
{
	if (!c->on_ready)
		return;
	TAILQ_REMOVE(&c->svc->ready, c, ready_link);
	c->on_ready = false;
}

static void on_ready(uv_idle_t *h)
{
	struct services *svc = h->data;
	struct conn_list batch = TAILQ_HEAD_INITIALIZER(batch);
	struct conn *c;

	/* Only those queued before this turn: each gets one frame. */
	TAILQ_CONCAT(&batch, &svc->ready, ready_link);
	while ((c = TAILQ_FIRST(&batch)) != NULL) {
		TAILQ_REMOVE(&batch, c, ready_link);
		c->on_ready = false;
		process_input(c);
	}
	if (TAILQ_EMPTY(&svc->ready))
		(void)uv_idle_stop(&svc->ready_idle);
}

void conn_make_ready(struct conn *c)
{
	struct services *svc = c->svc;

	if (c->on_ready)
		return;
	TAILQ_INSERT_TAIL(&svc->ready, c, ready_link);
	c->on_ready = true;
	/* Starting an initialised idle handle cannot fail. */
	(void)uv_idle_start(&svc->ready_idle, on_ready);
}

/* ---- reading ---------------------------------------------------------------- */

/* The frame at the head of the input is all there (or its header is bad). */
bool conn_whole_frame(const struct conn *c)
{
	uint32_t len;

	if (c->in_len < WIRE_HEADER_SIZE)
		return false;
	if (wire_frame_length(c->in, WIRE_MAX_REQUEST, &len) != 0)
		return true;
	return c->in_len >= WIRE_HEADER_SIZE + (size_t)len;
}

static bool takes_requests(const struct conn *c)
{
	return !c->eof && (c->state == CONN_OPEN || c->state == CONN_DECIDING);
}

/*
 * A connection that will take no more (the peer shut down its side, or the
 * broker is draining it) closes once its whole frames are answered.
 */
bool conn_finished(const struct conn *c)
{
	if (!c->eof && c->state != CONN_DRAINING)
		return false;
	if (c->state == CONN_DECIDING || c->nreplies > 0)
		return false;
	return c->state != CONN_OPEN || !conn_whole_frame(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

/*
 * Read while a request may come: not past a whole frame that waits (so
 * the buffer stays one frame and a bit), not while answers pile up unread.
 * A connection that asks one question at a time is never stopped.
 */
void conn_update_reading(struct conn *c)
{
	bool want = takes_requests(c) && c->nreplies < MAX_REPLIES && !conn_whole_frame(c);

	if (want && !c->reading) {
		if (uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read) == 0)
			c->reading = true;
	} else if (!want && c->reading) {
		(void)uv_read_stop((uv_stream_t *)&c->pipe);
		c->reading = false;
	}
}

/*
 * Room for the next read: a small buffer to start, grown (doubling) as the
 * bytes of a larger frame arrive, never past the frame its header declares.
 * -1 when there is none to give.
 */
static int in_reserve(struct conn *c)
{
	size_t want = BUFFERS_SMALL, cap = BUFFERS_SMALL;
	uint32_t len;
	uint8_t *bigger;

	if (c->in != NULL) {
		if (c->in_len < c->in_cap)
			return 0;
		if (c->in_len >= WIRE_HEADER_SIZE &&
		    wire_frame_length(c->in, WIRE_MAX_REQUEST, &len) == 0)
			want = WIRE_HEADER_SIZE + (size_t)len;
		if (want <= c->in_cap)
			return -1;
		cap = c->in_cap * 2 < want ? c->in_cap * 2 : want;
	}
	bigger = buf_get(c, &cap, LIMITS_IN);
	if (bigger == NULL)
		return -1;
	if (c->in != NULL) {
		memcpy(bigger, c->in, c->in_len);
		in_put(c);
	}
	c->in = bigger;
	c->in_cap = cap;
	return 0;
}

/* An idle connection holds no buffer (thousands may be open). */
static void in_release_if_empty(struct conn *c)
{
	if (c->in_len != 0 || c->in == NULL)
		return;
	in_put(c);
	c->in = NULL;
	c->in_cap = 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct conn *c = (struct conn *)h;

	(void)suggested;
	if (in_reserve(c) != 0) {
		*buf = uv_buf_init(NULL, 0);
		return;
	}
	*buf = uv_buf_init((char *)c->in + c->in_len, (unsigned)(c->in_cap - c->in_len));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = (struct conn *)stream;

	(void)buf;
	if (nread == UV_ENOBUFS) {
		log_warn("connection from pid %d uid %u: no buffer memory left for its frame, closing",
			 (int)c->id.pid, (unsigned)c->id.uid);
		conn_close(c);
		return;
	}
	if (nread == UV_EOF) {
		/* Whole requests are still answered; a half-sent one is dropped. */
		c->eof = true;
		conn_update_reading(c);
		if (conn_finished(c))
			conn_close(c);
		return;
	}
	if (nread < 0) {
		conn_close(c);
		return;
	}
	if (nread == 0) {
		in_release_if_empty(c);
		return;
	}
	if (c->in_len == 0)
		c->frame_started_ms = conn_now_ms(c);
	c->in_len += (size_t)nread;
	process_input(c);
}

/* The frame is handled: drop its bytes (wiped), keep what follows. */
static void consume(struct conn *c, size_t n)
{
	size_t rest = c->in_len - n;

	memmove(c->in, c->in + n, rest);
	sodium_memzero(c->in + rest, c->in_len - rest);
	c->in_len = rest;
	c->frame_started_ms = rest > 0 ? conn_now_ms(c) : 0;
	in_release_if_empty(c);
}

/* The stream cannot be trusted past a bad length: answer, drop the rest, close. */
static void refuse_framing(struct conn *c, int rc)
{
	c->state = CONN_DRAINING;
	consume(c, c->in_len);
	request_refuse_framing(c->svc, c, rc);
}

/* Take the next request if one is whole and the connection may take it. */
static void process_input(struct conn *c)
{
	uint32_t len;
	int rc;

	if (c->state == CONN_OPEN && c->nreplies < MAX_REPLIES && conn_whole_frame(c)) {
		rc = wire_frame_length(c->in, WIRE_MAX_REQUEST, &len);
		if (rc != 0) {
			refuse_framing(c, rc);
		} else {
			/* c outlives this: its handle's reference goes only in on_closed. */
			c->state = CONN_DECIDING;
			if (request_handle(c->svc, c, c->in + WIRE_HEADER_SIZE, len) == OP_DONE &&
			    c->state == CONN_DECIDING)
				c->state = CONN_OPEN;
			if (c->state != CONN_CLOSING)
				consume(c, WIRE_HEADER_SIZE + (size_t)len);
			c->active_ms = conn_now_ms(c);
			if (c->state == CONN_OPEN && conn_whole_frame(c))
				conn_make_ready(c);
		}
	}
	if (c->state == CONN_CLOSING)
		return;
	if (conn_finished(c))
		conn_close(c);
	else
		conn_update_reading(c);
}

void conn_request_decided(struct conn *c)
{
	if (c->state != CONN_DECIDING)
		return;
	c->state = c->svc->stopping ? CONN_DRAINING : CONN_OPEN;
	c->active_ms = conn_now_ms(c);
	if (conn_finished(c)) {
		conn_close(c);
		return;
	}
	/* Never inside someone else's callback: the next frame waits a turn. */
	if (conn_whole_frame(c))
		conn_make_ready(c);
	else
		conn_update_reading(c);
}

/* ---- lifetime --------------------------------------------------------------- */

static void on_closed(uv_handle_t *h)
{
	conn_unref((struct conn *)h);
}

void conn_close(struct conn *c)
{
	struct services *svc = c->svc;
	struct reply *r, *next;

	if (c->state == CONN_CLOSING)
		return;
	c->state = CONN_CLOSING;
	if (c->stream_end != NULL)
		c->stream_end(c->stream);
	c->stream_end = NULL;
	request_end_refusals(svc, c);
	unready(c);
	TAILQ_REMOVE(&svc->conns, c, link);
	svc->nconns--;
	metrics_conn_closed(svc->metrics);
	/*
	 * Replies not yet handed to the socket go now; those still being
	 * decided are freed when they are (a put's change is recorded all the
	 * same), those being written when libuv cancels their write.
	 */
	TAILQ_FOREACH_SAFE(r, &c->replies, link, next) {
		if (r->state == REPLY_AUDITING)
			gate_forget(svc->gate, &r->gate);
		if (r->state == REPLY_READY || r->state == REPLY_AUDITING)
			conn_reply_free(r);
	}
	uv_close((uv_handle_t *)&c->pipe, on_closed);
}

int conn_start(struct services *svc, int fd, struct identity *id,
	       const struct sockaddr_un *peer, socklen_t peer_len)
{
	struct conn *c = calloc(1, sizeof(*c));
	struct credential_req cred;
	int rc;

	if (c == NULL) {
		close(fd);
		identity_clear(id);
		return -ENOMEM;
	}
	c->svc = svc;
	TAILQ_INIT(&c->replies);
	if ((rc = uv_pipe_init(svc->loop, &c->pipe, 0)) != 0) {
		free(c);
		close(fd);
		identity_clear(id);
		return rc;
	}
	c->id = *id;
	memset(id, 0, sizeof(*id));
	c->refs = 1; /* the handle's, dropped in on_closed */
	c->state = CONN_OPEN;
	c->active_ms = conn_now_ms(c);
	TAILQ_INSERT_TAIL(&svc->conns, c, link);
	svc->nconns++;
	metrics_conn_opened(svc->metrics);
	if ((rc = uv_pipe_open(&c->pipe, fd)) != 0) {
		close(fd);
		conn_close(c);
		return rc;
	}
	rc = limits_acquire(svc->limits, c->id.uid, c->id.cgroup, conn_now_ms(c), &c->slot);
	if (rc != LIMITS_OK) {
		c->state = CONN_DRAINING;
		request_refuse_conn(svc, c, rc);
		return 0;
	}
	/* systemd's LoadCredential= sends nothing: it is known by its address. */
	rc = peer != NULL ? credential_detect_addr(peer, peer_len, &c->id, &cred)
			  : credential_detect(fd, &c->id, &cred);
	if (rc < 0) {
		conn_close(c);
		return rc;
	}
	if (rc == 1) {
		c->state = CONN_DRAINING;
		request_credential(svc, c, &cred);
		return 0;
	}
	if (!c->id.established)
		log_info("connection from pid %d uid %u: identity not established: %s",
			 (int)c->id.pid, (unsigned)c->id.uid, c->id.problem);
	conn_update_reading(c);
	return 0;
}

/* ---- all connections ---------------------------------------------------------- */

static void sweep_one(struct conn *c, uint64_t now, const struct config *cfg)
{
	if (c->writing > 0 && now - c->write_started_ms >= cfg->request_timeout_ms) {
		/* A peer that does not read its answer holds a value: let go. */
		log_info("closing connection from pid %d: its answer was not read in time",
			 (int)c->id.pid);
		conn_close(c);
	} else if (c->state == CONN_OPEN && c->in_len > 0 && !conn_whole_frame(c) &&
		   now - c->frame_started_ms >= cfg->request_timeout_ms) {
		log_info("closing connection from pid %d: request not completed in time",
			 (int)c->id.pid);
		conn_close(c);
	} else if (c->state == CONN_OPEN && c->in_len == 0 && c->nreplies == 0 && !c->stream &&
		   now - c->active_ms >= cfg->idle_timeout_ms) {
		conn_close(c);
	}
}

void conns_sweep(struct services *svc)
{
	uint64_t now = uv_now(svc->loop);
	struct conn *c, *next;

	TAILQ_FOREACH_SAFE(c, &svc->conns, link, next)
		sweep_one(c, now, svc->cfg);
}

void conns_stop(struct services *svc)
{
	struct conn *c, *next;

	TAILQ_FOREACH_SAFE(c, &svc->conns, link, next) {
		if (c->state == CONN_OPEN && c->nreplies == 0)
			conn_close(c);
		else if (c->state == CONN_OPEN)
			c->state = CONN_DRAINING;
		/* DECIDING: conn_request_decided sees svc->stopping. */
		if (c->state != CONN_CLOSING)
			conn_update_reading(c);
	}
}

/* The gets of a turn shared one read transaction: it ends before the wait. */
static void on_turn_end(uv_prepare_t *h)
{
	struct services *svc = h->data;

	vault_turn_end(svc->vault);
}

int conns_init(struct services *svc)
{
	int rc;

	TAILQ_INIT(&svc->conns);
	TAILQ_INIT(&svc->ready);
	rc = uv_idle_init(svc->loop, &svc->ready_idle);
	svc->ready_idle.data = svc;
	if (rc != 0)
		return rc;
	rc = uv_prepare_init(svc->loop, &svc->turn_end);
	svc->turn_end.data = svc;
	if (rc == 0 && svc->vault != NULL) {
		rc = uv_prepare_start(&svc->turn_end, on_turn_end);
		if (rc == 0)
			vault_hold_reads(svc->vault);
	}
	/* Not a reason for the loop to run on. */
	uv_unref((uv_handle_t *)&svc->turn_end);
	return rc;
}

void conns_close(struct services *svc)
{
	if (!uv_is_closing((uv_handle_t *)&svc->ready_idle))
		uv_close((uv_handle_t *)&svc->ready_idle, NULL);
	if (!uv_is_closing((uv_handle_t *)&svc->turn_end)) {
		vault_turn_end(svc->vault);
		uv_close((uv_handle_t *)&svc->turn_end, NULL);
	}
}
