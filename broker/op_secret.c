/*
 * Operations on one secret: get (answered at once from the vault), put and
 * rm (handed to the writer, answered once the commit is durable).  The
 * request path has already checked the name, the caller and the policy.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "log.h"
#include "ops.h"
#include "reply.h"
#include "request.h"
#include "services.h"
#include "upstream.h"
#include "watch.h"
#include "writer.h"

enum op_result op_get(struct request *rq)
{
	const struct wire_request *req = rq->wire;
	struct reply *r = rq->reply;
	struct vault_secret *secret = NULL;
	int rc = vault_get(rq->svc->vault, (const char *)req->name.ptr, req->name.len,
			   req->version, &secret);

	if (rc == VAULT_E_NOTFOUND) {
		request_fail(rq, WIRE_NOT_FOUND, "error", "not found", "not found");
		return OP_DONE;
	}
	if (rc != VAULT_OK) {
		log_err("get: %.*s: %s", (int)req->name.len, (const char *)req->name.ptr,
			vault_strerror(rc));
		request_fail(rq, WIRE_ERROR, "error", vault_strerror(rc), vault_strerror(rc));
		return OP_DONE;
	}
	r->ev.decision = "allow";
	r->ev.version = secret->version;
	r->secret = secret;
	r->resp.status = WIRE_OK;
	r->resp.version = secret->version;
	r->resp.value.ptr = secret->data;
	r->resp.value.len = secret->len;
	return OP_DONE;
}

/*
 * A put or rm on its way through the writer.  It owns a guarded copy of
 * the name and value: the connection's input buffer moves on meanwhile.
 */
struct write_req {
	struct writer_job job; /* first */
	struct services *svc;
	struct conn *conn;     /* a reference: the reply may be gone first */
	struct reply *reply;
	unsigned rule;         /* the policy line that permitted it */
	uint8_t *copy;
	size_t copy_cap;
};

static void write_req_free(struct write_req *w)
{
	conn_buf_put(w->conn, w->copy, w->copy_cap);
	conn_unref(w->conn);
	free(w);
}

/*
 * What a caller learns of a name it may change but not read: nothing of
 * its versions, nor whether it existed (secretd-policy(5)).  A put answers
 * version 0, an rm answers OK with 0 removed, even for a missing name.
 * The audit record keeps the truth.
 */
static bool may_read(const struct write_req *w, const struct identity *id)
{
	unsigned ignored;

	return policy_eval(w->svc->policy, id, PERM_READ, w->job.op.name, w->job.op.name_len,
			   &ignored);
}

/*
 * The write is done (committed to the vault, or to etcd and the replica):
 * record it (even if the caller has gone) and answer.  version is the new
 * version of a put, or the versions an rm removed.
 */
static void write_finish(struct write_req *w, int status, uint32_t version,
			 const char *message)
{
	const struct vault_op *op = &w->job.op;
	struct reply *r = w->reply;

	r->ev.name = op->name;
	r->ev.name_len = op->name_len;
	/* The rule that let it through, even if a reload has changed the policy. */
	r->ev.rule = w->rule;
	if (status == WIRE_OK) {
		r->ev.decision = "allow";
		r->resp.status = WIRE_OK;
		r->resp.version = may_read(w, r->ev.who) ? version : 0;
		if (op->kind == VAULT_OP_DELETE)
			r->ev.count = version;
		else
			r->ev.version = version;
	} else if (status == WIRE_NOT_FOUND) {
		/* Only an rm finds nothing; "not found" is said to readers only. */
		r->ev.error = "not found";
		if (may_read(w, r->ev.who)) {
			reply_error(r, WIRE_NOT_FOUND, "not found");
		} else {
			r->resp.status = WIRE_OK;
			r->resp.version = 0;
		}
	} else {
		log_err("%s: %.*s: %s", r->ev.op, (int)op->name_len, op->name, message);
		reply_error(r, status, "%s", message);
		r->ev.error = message;
	}
	request_decided(w->svc, r);
	write_req_free(w);
}

/* A local vault commit. */
static void write_done(struct writer_job *job)
{
	struct write_req *w = (struct write_req *)(void *)job;
	const struct vault_op *op = &job->op;

	if (op->result == VAULT_OK)
		/* Durable now, and in commit order: watchers hear of it. */
		watch_changed(w->svc->hub, op->name, op->name_len,
			      op->kind == VAULT_OP_DELETE ? 0 : op->version);
	write_finish(w, op->result == VAULT_OK ? WIRE_OK
			: op->result == VAULT_E_NOTFOUND ? WIRE_NOT_FOUND : WIRE_ERROR,
		     op->version, vault_strerror(op->result));
}

/* Through etcd: it committed there and the replica holds it (upstream told watchers). */
static void upstream_done(void *arg, int status, uint32_t version, const char *message)
{
	write_finish(arg, status, version, message);
}

static enum op_result submit_write(struct request *rq, enum vault_op_kind kind)
{
	const struct wire_request *req = rq->wire;
	size_t need = req->name.len + req->value.len;
	struct write_req *w = calloc(1, sizeof(*w));

	if (w != NULL) {
		w->copy_cap = need;
		w->copy = conn_buf_get(rq->conn, &w->copy_cap);
	}
	if (w == NULL || w->copy == NULL) {
		free(w);
		request_fail(rq, WIRE_ERROR, "error", "out of memory", "out of memory");
		return OP_DONE;
	}
	memcpy(w->copy, req->name.ptr, req->name.len);
	if (req->value.len > 0)
		memcpy(w->copy + req->name.len, req->value.ptr, req->value.len);
	w->svc = rq->svc;
	w->conn = rq->conn;
	conn_ref(w->conn);
	w->reply = rq->reply;
	w->rule = rq->reply->ev.rule;
	w->job.done = write_done;
	w->job.op = (struct vault_op){
		.kind = kind,
		.name = (const char *)w->copy,
		.name_len = req->name.len,
		.value = w->copy + req->name.len,
		.value_len = req->value.len,
	};
	if (rq->svc->upstream == NULL) {
		writer_submit(rq->svc->writer, &w->job);
		return OP_DEFERRED;
	}
	if ((kind == VAULT_OP_PUT
		     ? upstream_put(rq->svc->upstream, w->job.op.name, w->job.op.name_len,
				    w->job.op.value, w->job.op.value_len, upstream_done, w)
		     : upstream_rm(rq->svc->upstream, w->job.op.name, w->job.op.name_len,
				   upstream_done, w)) != 0) {
		const char *why = upstream_problem(rq->svc->upstream);

		write_req_free(w);
		request_fail(rq, WIRE_UNAVAILABLE, "error", why, why);
		return OP_DONE;
	}
	return OP_DEFERRED;
}

enum op_result op_put(struct request *rq)
{
	unsigned max = rq->svc->cfg->max_secret_size;

	if (rq->wire->value.len > max) {
		char msg[REPLY_MESSAGE_MAX];

		snprintf(msg, sizeof(msg),
			 "value too large: %zu bytes, the broker's max-secret-size is %u",
			 rq->wire->value.len, max);
		request_fail(rq, WIRE_INVALID, "error", "value too large", msg);
		return OP_DONE;
	}
	return submit_write(rq, VAULT_OP_PUT);
}

enum op_result op_delete(struct request *rq)
{
	return submit_write(rq, VAULT_OP_DELETE);
}
