/*
 * The path of one request (see request.h).  Records stay with their
 * answers: an answer is released only once its record is written, and one
 * that releases or changes a secret is withheld ("unavailable") if its
 * record could not be made durable.
 */
#include "request.h"

#include <stdio.h>
#include <string.h>

#include <secretd/names.h>
#include <secretd/wire.h>

#include "conn.h"
#include "credential.h"
#include "gate.h"
#include "log.h"
#include "metrics.h"
#include "reply.h"
#include "services.h"

#define BAD_NAME_LOGGED 64 /* bytes of an invalid name kept in its audit record */

#define container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

static uint64_t now_ms(struct services *svc)
{
	return uv_now(svc->loop);
}

/* Re-encode after the answer changed; the buffer always fits an error. */
static void encode_again(struct reply *r)
{
	long n = wire_encode_response(&r->resp, r->out, r->out_cap);

	r->out_len = n > 0 ? (size_t)n : 0;
	/* A shorter frame leaves the longer one's bytes behind it. */
	if (n < 0)
		r->out_dirty = SIZE_MAX;
	else if ((size_t)n > r->out_dirty)
		r->out_dirty = (size_t)n;
	reply_drop_content(r);
}

static void withhold(struct reply *r)
{
	if (r->raw) {
		/* systemd reads until EOF: nothing written is all it can be told. */
		reply_drop_content(r);
		r->out_len = 0;
		return;
	}
	reply_error(r, WIRE_UNAVAILABLE, "audit log cannot be written");
	encode_again(r);
}

static enum metrics_decision decision_of(const struct reply *r)
{
	if (r->resp.status == WIRE_OK && strcmp(r->ev.decision, "allow") == 0)
		return METRICS_ALLOW;
	return strcmp(r->ev.decision, "deny") == 0 ? METRICS_DENY : METRICS_ERROR;
}

static void on_release(struct gate_item *item, enum gate_outcome outcome)
{
	struct reply *r = container_of(item, struct reply, gate);
	struct services *svc = conn_services(r->conn);

	/* A refusal record lost with its batch: its count goes into the summary. */
	if (outcome == GATE_UNWRITTEN && r->refusals > 0)
		svc->refusals.unrecorded += r->refusals;
	if (outcome == GATE_UNWRITTEN && (r->flags & OP_AUDITED)) {
		withhold(r);
		/* A subscription that could not be recorded does not stay. */
		if (r->flags & OP_STREAM)
			r->close_after = true;
	}
	else if (outcome == GATE_UNSYNCED && (r->flags & OP_SECRET) && r->resp.status == WIRE_OK)
		withhold(r);
	metrics_request(svc->metrics, r->ev.op, outcome == GATE_OK ? decision_of(r) : METRICS_ERROR,
			(uv_hrtime() - r->started_ns) / 1000);
	conn_reply_ready(r);
}

/*
 * The answer goes into its own buffer before its record is written, so
 * that no answer is audited as allowed and then found to have no memory.
 */
/* A credential's answer: the value's bytes alone, or none when refused. */
static int encode_raw(struct conn *c, struct reply *r)
{
	size_t len = r->resp.status == WIRE_OK && r->secret != NULL ? r->secret->len : 0;

	r->out_cap = len > 0 ? len : 1;
	r->out = conn_buf_get(c, &r->out_cap);
	if (r->out == NULL) {
		r->ev.decision = "error";
		r->ev.error = "out of memory";
		r->out_cap = 1;
		r->out = conn_buf_get(c, &r->out_cap);
		len = 0;
		if (r->out == NULL)
			return -1;
	}
	if (len > 0)
		memcpy(r->out, r->secret->data, len);
	r->out_len = len;
	r->out_dirty = len;
	reply_drop_content(r);
	return 0;
}

static int encode(struct conn *c, struct reply *r)
{
	size_t size = wire_response_size(&r->resp);
	long n;

	if (r->raw)
		return encode_raw(c, r);
	if (size == 0) {
		log_err("a reply of type %u cannot be encoded", (unsigned)r->type);
		reply_error(r, WIRE_ERROR, "internal error");
		size = wire_response_size(&r->resp);
	}
	r->out_cap = size;
	r->out = conn_buf_get(c, &r->out_cap);
	if (r->out == NULL) {
		reply_error(r, WIRE_ERROR, "out of memory");
		r->ev.decision = "error";
		r->ev.error = "out of memory";
		r->ev.version = -1;
		r->out_cap = wire_response_size(&r->resp);
		r->out = conn_buf_get(c, &r->out_cap);
		if (r->out == NULL)
			return -1;
	}
	n = wire_encode_response(&r->resp, r->out, r->out_cap);
	if (n < 0) {
		log_err("encoding a reply failed: %s", wire_strerror((int)n));
		return -1;
	}
	r->out_len = (size_t)n;
	r->out_dirty = (size_t)n; /* the encoder writes the frame's bytes only */
	/* The value now lives in the encoded frame only. */
	reply_drop_content(r);
	return 0;
}

/* Encode, then hand to the gate (with its record, or none). */
static void submit(struct services *svc, struct reply *r, bool record)
{
	/* Ping and whoami are recorded while the log works, and answered anyway. */
	if (!(r->flags & OP_AUDITED) && !gate_healthy(svc->gate))
		record = false;
	if (encode(r->conn, r) != 0) {
		conn_close(r->conn);
		conn_reply_ready(r); /* freed: the connection is closing */
		return;
	}
	r->state = REPLY_AUDITING;
	r->gate.release = on_release;
	gate_submit(svc->gate, &r->gate, record ? &r->ev : NULL);
}

void request_decided(struct services *svc, struct reply *r)
{
	struct conn *c = r->conn;

	submit(svc, r, true);
	conn_request_decided(c);
}

void request_fail(struct request *rq, uint8_t status, const char *decision,
		  const char *error, const char *message)
{
	reply_error(rq->reply, status, "%s", message);
	rq->reply->ev.decision = decision;
	rq->reply->ev.error = error;
}

/* ---- refusals --------------------------------------------------------------- */

/*
 * Over its rate.  A flood of refusals must not become a flood of records:
 * the first of a run is recorded at once, then one record a second, and the
 * rest when the run ends (request_end_refusals), each with `count`.
 */
static void rate_limited(struct services *svc, struct conn *c, struct reply *r)
{
	struct conn_refusals *cr = conn_refusals(c);
	uint64_t now = now_ms(svc);
	bool record;

	cr->count++;
	reply_error(r, WIRE_RATE_LIMITED, "rate limited: too many requests");
	record = cr->logged_ms == 0 || now - cr->logged_ms >= 1000;
	if (record) {
		cr->logged_ms = now;
		record = refusals_may_record(&svc->refusals, now, cr->count);
		if (record) {
			r->ev.decision = "deny";
			r->ev.error = "rate limited";
			r->ev.count = cr->count;
			r->refusals = cr->count;
		}
		cr->count = 0;
	}
	/* An unrecorded refusal is counted, so its answer needs no record. */
	if (!record)
		r->flags &= ~(unsigned)OP_AUDITED;
	submit(svc, r, record);
}

void request_end_refusals(struct services *svc, struct conn *c)
{
	struct conn_refusals *cr = conn_refusals(c);
	struct audit_event ev = { .op = "ratelimit", .version = -1, .decision = "deny",
				  .error = "rate limited", .who = conn_identity(c) };

	cr->logged_ms = 0;
	if (cr->count == 0)
		return;
	ev.count = cr->count;
	cr->count = 0;
	if (!refusals_may_record(&svc->refusals, now_ms(svc), (unsigned)ev.count))
		return;
	if (gate_record(svc->gate, &ev) != 0) {
		/* Not lost: counted in the next summary. */
		svc->refusals.unrecorded += (unsigned long long)ev.count;
		log_warn("recording %lld rate-limited requests failed", ev.count);
	}
}

void request_record_refusals(struct services *svc)
{
	struct audit_event ev = {
		.op = "refusals", .version = -1, .decision = "deny",
		.error = "refused requests and connections beyond the records a second",
		.who = &svc->self,
	};
	unsigned long long n;

	if (svc->refusals.unrecorded == 0 || !gate_healthy(svc->gate))
		return;
	n = refusals_take(&svc->refusals);
	ev.count = (long long)n;
	if (gate_record(svc->gate, &ev) != 0)
		svc->refusals.unrecorded += n;
}

/* ---- the path ------------------------------------------------------------- */

static void init_event(struct reply *r, const char *op, const struct identity *id)
{
	r->ev = (struct audit_event){
		.op = op, .version = -1, .decision = "error", .count = -1, .who = id,
	};
}

/* The record names what the request names. */
static void event_names(struct reply *r, const struct wire_request *req)
{
	if ((op_find(req->type) != NULL && (op_find(req->type)->flags & OP_NAME)) ||
	    (req->type == WIRE_LIST && req->name.len > 0)) {
		r->ev.name = (const char *)req->name.ptr;
		r->ev.name_len = req->name.len;
	}
	if (req->type == WIRE_GET && req->version != 0)
		r->ev.version = req->version;
}

/* The checks every operation's flags ask for, before its handler.  false: answered. */
static bool admit(struct request *rq)
{
	const struct op_entry *op = rq->op;
	struct reply *r = rq->reply;
	const char *why = NULL;

	if ((op->flags & OP_NAME) &&
	    !name_valid((const char *)rq->wire->name.ptr, rq->wire->name.len, &why)) {
		/*
		 * Enough to recognise it: a caller with no rights must not fill
		 * the log's disk 1 KiB of escaped junk a request.
		 */
		if (r->ev.name_len > BAD_NAME_LOGGED)
			r->ev.name_len = BAD_NAME_LOGGED;
		request_fail(rq, WIRE_INVALID, "error", "bad name", why);
		return false;
	}
	if ((op->flags & OP_AUDITED) && !gate_healthy(rq->svc->gate)) {
		/* Nothing can be recorded, so nothing is released; the log counts it. */
		reply_error(r, WIRE_UNAVAILABLE, "audit log cannot be written");
		return false;
	}
	if ((op->flags & OP_CALLER) && !rq->id->established) {
		char msg[REPLY_MESSAGE_MAX];

		snprintf(msg, sizeof(msg), "identity not established: %s", rq->id->problem);
		request_fail(rq, WIRE_DENIED, "deny", "identity not established", msg);
		return false;
	}
	if ((op->flags & OP_NAME) && op->perm != 0 &&
	    !policy_eval(rq->svc->policy, rq->id, op->perm, (const char *)rq->wire->name.ptr,
			 rq->wire->name.len, &r->ev.rule)) {
		request_fail(rq, WIRE_DENIED, "deny", "permission denied", "permission denied");
		return false;
	}
	return true;
}

static void malformed(struct reply *r, const char *error, const char *message)
{
	r->ev.op = "malformed";
	reply_error(r, WIRE_INVALID, "%s", message);
	r->ev.error = error;
}

enum op_result request_handle(struct services *svc, struct conn *c, const uint8_t *body,
			      size_t len)
{
	/* Answer a malformed request in the type it claimed, if it is one. */
	uint8_t claimed = len >= 2 && op_find(body[1]) != NULL ? body[1] : WIRE_PING;
	struct reply *r = conn_reply_new(c, claimed);
	struct wire_request wire = { 0 };
	struct request rq = { .conn = c, .id = conn_identity(c), .svc = svc, .wire = &wire };
	int rc;

	if (r == NULL) {
		log_err("connection from pid %d: no memory for a reply, closing",
			(int)conn_identity(c)->pid);
		conn_close(c);
		return OP_DONE;
	}
	rq.reply = r;
	rq.op = op_find(claimed);
	r->flags = rq.op->flags;
	init_event(r, rq.op->name, rq.id);
	r->ev.who_json = conn_audit_who(c, &r->ev.who_json_len);
	rc = wire_decode_request(body, len, &wire);
	/* Every frame costs a token, well-formed or not. */
	if (!limits_take(conn_slot(c), now_ms(svc))) {
		if (rc == 0)
			event_names(r, &wire);
		rate_limited(svc, c, r);
		return OP_DONE;
	}
	request_end_refusals(svc, c);
	if (rc != 0) {
		char msg[REPLY_MESSAGE_MAX];

		snprintf(msg, sizeof(msg), "malformed request: %s", wire_strerror(rc));
		malformed(r, "malformed request", msg);
		submit(svc, r, true);
		return OP_DONE;
	}
	rq.op = op_find(wire.type);
	if (rq.op == NULL) {
		/* The decoder refuses unknown types; kept so no path skips the log. */
		malformed(r, "unknown request type", "unknown request type");
		submit(svc, r, true);
		return OP_DONE;
	}
	event_names(r, &wire);
	if (admit(&rq) && rq.op->handler(&rq) == OP_DEFERRED)
		return OP_DEFERRED;
	submit(svc, r, true);
	return OP_DONE;
}

/* The credential's decision, up to the value (NULL when refused). */
static const char *credential_decide(struct services *svc, struct conn *c,
				     const struct credential_req *req, struct reply *r)
{
	const struct identity *id = conn_identity(c);
	int rc;

	if (!limits_take(conn_slot(c), now_ms(svc)))
		return "rate limited";
	if (req->refusal != NULL)
		return req->refusal;
	if (!id->established)
		return "identity not established";
	if (!gate_healthy(svc->gate))
		return "audit log cannot be written";
	if (conn_set_unit(c, req->unit) != 0)
		return "out of memory";
	if (!policy_eval(svc->policy, id, PERM_READ, req->name, strlen(req->name), &r->ev.rule))
		return "permission denied";
	rc = vault_get(svc->vault, req->name, strlen(req->name), 0, &r->secret);
	if (rc == VAULT_E_NOTFOUND)
		return "not found";
	if (rc != VAULT_OK)
		return vault_strerror(rc);
	r->ev.version = r->secret->version;
	return NULL;
}

void request_credential(struct services *svc, struct conn *c, const struct credential_req *req)
{
	struct reply *r = conn_reply_new(c, WIRE_GET);
	const char *why;

	if (r == NULL) {
		conn_close(c);
		return;
	}
	init_event(r, "credential", conn_identity(c));
	r->raw = true;
	r->close_after = true;
	r->flags = OP_AUDITED | OP_SECRET;
	r->ev.name = req->name;
	r->ev.name_len = strlen(req->name);
	r->ev.unit = req->unit;
	why = credential_decide(svc, c, req, r);
	if (why == NULL) {
		r->ev.decision = "allow";
		r->resp.status = WIRE_OK;
	} else {
		/*
		 * systemd cannot be told: it stores an empty credential, so the
		 * unit's guard (test -s) is what fails it.  Say so here.
		 */
		log_warn("credential %s for unit %s refused: %s", req->name, req->unit, why);
		r->ev.decision = strcmp(why, "not found") == 0 || strcmp(why, "out of memory") == 0
					 ? "error" : "deny";
		r->ev.error = why;
		r->resp.status = WIRE_DENIED;
	}
	submit(svc, r, true);
}

void request_refuse_framing(struct services *svc, struct conn *c, int wire_err)
{
	struct reply *r = conn_reply_new(c, WIRE_PING);

	if (r == NULL) {
		conn_close(c);
		return;
	}
	init_event(r, "malformed", conn_identity(c));
	malformed(r, "bad frame length",
		  wire_err == WIRE_E_TOOBIG ? "frame too large: closing the connection"
					    : "bad frame length: closing the connection");
	r->close_after = true;
	submit(svc, r, true);
}

void request_refuse_conn(struct services *svc, struct conn *c, int limits_result)
{
	struct reply *r = conn_reply_new(c, WIRE_PING);
	const struct identity *id = conn_identity(c);
	bool record = refusals_may_record(&svc->refusals, now_ms(svc), 1);
	const char *why = limits_result == LIMITS_TOTAL  ? "too many connections to the broker"
			: limits_result == LIMITS_PEER ? "too many connections from this identity"
							: "out of memory";

	if (r == NULL) {
		conn_close(c);
		return;
	}
	metrics_conn_refused(svc->metrics, limits_result == LIMITS_TOTAL ? METRICS_REFUSED_TOTAL
					   : limits_result == LIMITS_PEER ? METRICS_REFUSED_PEER
									  : METRICS_REFUSED_OTHER);
	init_event(r, "connect", id);
	reply_error(r, WIRE_RATE_LIMITED, "%s", why);
	r->ev.decision = "deny";
	r->ev.error = why;
	r->ev.count = 1;
	r->close_after = true;
	if (record)
		log_warn("refusing a connection from uid %u pid %d: %s", (unsigned)id->uid,
			 (int)id->pid, why);
	submit(svc, r, record);
}
