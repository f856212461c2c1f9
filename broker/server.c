/*
 * The event loop.  Each connection carries one request at a time through
 * these steps, all on the loop thread except the two marked:
 *
 *   read frame -> decode -> rate limit -> identity + policy -> vault
 *   (writes: the writer batch, on a worker thread) -> audit record ->
 *   (audit-sync = always: the fsync, on a worker thread) -> reply
 *
 * The reply is sent only after its audit record has been written; when the
 * log cannot be written, nothing but ping and whoami is answered with
 * anything other than "unavailable".  Requests pipelined on one connection
 * wait in its input buffer and are answered in order.
 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <sodium.h>
#include <uv.h>

#include "buffers.h"
#include "glob.h"
#include "limits.h"
#include "log.h"
#include "peer.h"
#include <secretd/names.h>
#include <secretd/wire.h>

/*
 * Buffers larger than BUFFERS_SMALL, all together and per identity, so that
 * clients announcing large frames cannot grow the broker without bound nor
 * one identity starve the others: past it, a connection that needs more is
 * closed.
 */
#define BIG_BUDGET (32u * 1024 * 1024)
#define BIG_SHARE (BIG_BUDGET / 8)
#define BAD_NAME_LOGGED 64 /* bytes of an invalid name kept in its audit record */
/*
 * Refusals (over a limit) are recorded at most this many a second in all;
 * the rest are counted and reported in one record a second, so that no
 * flood of refused requests or connections can fill the log's disk.
 */
#define REFUSAL_RECORDS_PER_S 20
#define TICK_MS 1000
#define BATCH_SYNC_MS 5
#define MESSAGE_MAX 256
#define LISTEN_BACKLOG 1024

struct server;
struct conn;

/* A put or delete on its way to the writer thread. */
struct write_job {
	struct write_job *next;
	struct conn *conn;
	struct vault_op op;
	unsigned rule; /* the policy line that permitted it */
};

/* An answer decided but not yet sent. */
struct pending {
	struct wire_response resp;
	char message[MESSAGE_MAX];
	struct vault_secret *secret; /* GET: the value, wiped when sent */
	struct wire_str *items;      /* LIST, WHOAMI */
	char *item_text;             /* the bytes items point into */
	uint64_t seq;                /* its audit record (written, then durable, first); 0 none */
	uint64_t drops;              /* audit_drops() when that record was queued */
	bool withhold_on_failure;    /* releases or changes a secret */
};

struct conn {
	uv_pipe_t pipe; /* first: libuv hands back the handle */
	struct server *srv;
	struct conn *prev, *next;  /* all connections */
	struct conn *wait_next;    /* waiting for an audit sync */
	struct conn *flush_next;   /* waiting for its record's write(2) */
	struct conn *ready_next;      /* its next frame waits for the next loop turn */
	struct identity id;
	struct limits_slot *slot;
	uint8_t *in;               /* sodium_malloc: frames may carry values */
	size_t in_len, in_cap;
	uint8_t *out;              /* sodium_malloc: replies may carry values */
	size_t out_cap;
	uv_write_t wreq;
	size_t frame_len;          /* bytes of the request being handled */
	uint8_t req_type;
	uint64_t frame_started_ms; /* first byte of an unfinished request */
	uint64_t write_started_ms; /* an answer the peer has not taken yet */
	unsigned refused;          /* rate-limited answers not yet recorded */
	uint64_t refused_logged_ms; /* this run of refusals last recorded; 0 none */
	uint64_t active_ms;        /* last request finished */
	struct pending pending;
	struct write_job job;
	bool reading, busy, dispatching, writing, waiting, flushing, ready;
	bool close_after_reply, closing, closed;
};

struct server {
	uv_loop_t loop;
	uv_pipe_t listener;
	uv_signal_t sig_hup, sig_term, sig_int;
	uv_timer_t tick, flush;
	const struct config *cfg;
	struct vault *vault;
	struct vault_writer *writer;
	struct audit *audit;
	struct policy *policy;
	struct limits *limits;
	struct conn *conns;
	size_t nconns;
	/* the writer: queued jobs, and the batch on the worker thread */
	struct write_job *queue, **queue_tail;
	struct write_job *batch;
	struct vault_op *ops;
	size_t nops, ops_cap;
	uv_work_t write_work;
	bool write_busy;
	uint8_t ckpt_pending[AUDIT_CHECKPOINT_MAX], ckpt_running[AUDIT_CHECKPOINT_MAX];
	size_t ckpt_pending_len, ckpt_running_len;
	bool ckpt_dirty;
	/* the audit log's fsync on a worker thread */
	uv_work_t sync_work;
	bool sync_busy, flush_armed;
	int sync_rc;
	uint64_t sync_covers;
	uint64_t sync_failures_before;       /* audit_sync_failures when it began */
	uint8_t sync_ckpt[AUDIT_CHECKPOINT_MAX];
	size_t sync_ckpt_len;
	struct conn *waiters;
	struct conn *flushq, **flushq_tail; /* answers whose records are queued */
	uv_check_t check;                   /* writes them after each turn of the loop */
	/*
	 * Connections with a whole frame buffered when their request ended:
	 * served by an idle handle on the next turn, one frame each, so that
	 * a client pipelining costly requests cannot keep on_check busy with
	 * its queue while every other client waits.
	 */
	struct conn *readyq, **readyq_tail;
	uv_idle_t ready_idle;
	struct buffers *buffers;
	uv_pipe_t reject; /* accepts a connection there is no memory for */
	bool reject_busy;
	bool accept_stalled; /* a connection left unaccepted: the tick retries */
	bool audit_was_healthy;
	uint64_t refusal_window_ms;
	unsigned refusal_records;            /* in the current second */
	unsigned long long refusals_unrecorded;
	struct identity self;                /* the broker, for its own records */
	bool stopping;
	char banner[64];
};

static void process_input(struct conn *c);
static void conn_close(struct conn *c);
static void request_done(struct conn *c);
static void writer_kick(struct server *s);
static void sync_kick(struct server *s);
static void maybe_finish_shutdown(struct server *s);
static void on_flush(uv_timer_t *t);
static void unlink_flushing(struct conn *c);
static void unlink_ready(struct conn *c);
static void on_ready(uv_idle_t *h);

/* ---- small helpers -------------------------------------------------- */

static uint64_t now_ms(struct server *s)
{
	return uv_now(&s->loop);
}

/* A guarded buffer for a connection, large ones charged to its identity. */
static uint8_t *buf_get(struct conn *c, size_t *cap)
{
	uint8_t *buf;

	if (*cap > BUFFERS_SMALL &&
	    (c->slot == NULL || !limits_charge(c->slot, *cap, BIG_SHARE)))
		return NULL;
	buf = buffers_get(c->srv->buffers, cap);
	if (buf == NULL && *cap > BUFFERS_SMALL)
		limits_refund(c->slot, *cap);
	return buf;
}

static void buf_put(struct conn *c, uint8_t *buf, size_t cap)
{
	if (buf == NULL)
		return;
	if (cap > BUFFERS_SMALL && c->slot != NULL)
		limits_refund(c->slot, cap);
	buffers_put(c->srv->buffers, buf, cap);
}

static bool op_needs_audit(uint8_t type)
{
	return type != WIRE_PING && type != WIRE_WHOAMI;
}

static void note_audit_state(struct server *s)
{
	bool healthy = audit_healthy(s->audit);

	if (healthy == s->audit_was_healthy)
		return;
	s->audit_was_healthy = healthy;
	if (healthy)
		log_warn("audit log writable again: serving secrets");
	else
		log_err("audit log cannot be written (%s): releasing no secret until it can",
			audit_problem(s->audit));
}

static bool refusal_may_record(struct server *s, unsigned count)
{
	uint64_t now = now_ms(s);

	if (now - s->refusal_window_ms >= 1000) {
		s->refusal_window_ms = now;
		s->refusal_records = 0;
	}
	if (s->refusal_records < REFUSAL_RECORDS_PER_S) {
		s->refusal_records++;
		return true;
	}
	s->refusals_unrecorded += count;
	return false;
}

/* The refusals not recorded one by one, in one record of the broker's. */
static void record_unrecorded_refusals(struct server *s)
{
	struct audit_event ev = {
		.op = "refusals", .version = -1, .decision = "deny",
		.error = "refused requests and connections beyond the records a second",
		.who = &s->self,
	};

	if (s->refusals_unrecorded == 0 || !audit_healthy(s->audit))
		return;
	ev.count = (long long)s->refusals_unrecorded;
	if (audit_append(s->audit, &ev) == 0)
		s->refusals_unrecorded = 0;
	note_audit_state(s);
}

/* ---- listening socket ---------------------------------------------- */

static int fill_sockaddr(const char *path, struct sockaddr_un *sa, char *err, size_t errlen)
{
	size_t len = strlen(path);

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (len == 0 || len >= sizeof(sa->sun_path)) {
		snprintf(err, errlen, "socket path %s: too long for a Unix socket", path);
		return -1;
	}
	memcpy(sa->sun_path, path, len);
	return 0;
}

/* A socket file nobody listens on is a dead broker's; anything else stays. */
static int clear_stale_socket(const char *path, const struct sockaddr_un *sa,
			      char *err, size_t errlen)
{
	struct stat st;
	int probe, rc;

	if (lstat(path, &st) != 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "socket path %s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "socket path %s exists and is not a socket", path);
		return -1;
	}
	probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	rc = connect(probe, (const struct sockaddr *)sa, sizeof(*sa));
	close(probe);
	if (rc == 0) {
		snprintf(err, errlen, "another secretd is listening on %s", path);
		return -1;
	}
	if (unlink(path) != 0) {
		snprintf(err, errlen, "removing stale socket %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

int server_listen(const char *path, mode_t mode, int *out, char *err, size_t errlen)
{
	struct sockaddr_un sa;
	mode_t old_umask;
	int fd, rc;

	if (fill_sockaddr(path, &sa, err, errlen) != 0 ||
	    clear_stale_socket(path, &sa, err, errlen) != 0)
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	/* Born private, then opened to the configured mode. */
	old_umask = umask(0177);
	rc = bind(fd, (const struct sockaddr *)&sa, sizeof(sa));
	umask(old_umask);
	if (rc != 0 || chmod(path, mode) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
		snprintf(err, errlen, "socket %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	*out = fd;
	return 0;
}

/* ---- answers ---------------------------------------------------------- */

static void pending_clear(struct pending *p)
{
	vault_secret_free(p->secret);
	free(p->items);
	free(p->item_text);
	memset(p, 0, sizeof(*p));
}

static void pending_error(struct conn *c, uint8_t status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Replace whatever was pending with an error status and message. */
static void pending_error(struct conn *c, uint8_t status, const char *fmt, ...)
{
	struct pending *p = &c->pending;
	uint64_t seq = p->seq, drops = p->drops; /* the record stays the answer's */
	va_list ap;
	int n;

	pending_clear(p);
	p->seq = seq;
	p->drops = drops;
	va_start(ap, fmt);
	n = vsnprintf(p->message, sizeof(p->message), fmt, ap);
	va_end(ap);
	if (n < 0)
		p->message[0] = '\0';
	p->resp.type = c->req_type;
	p->resp.status = status;
	p->resp.value.ptr = (const uint8_t *)p->message;
	p->resp.value.len = strlen(p->message);
}

static int out_reserve(struct conn *c, size_t need)
{
	uint8_t *bigger;

	if (need <= c->out_cap)
		return 0;
	bigger = buf_get(c, &need);
	if (bigger == NULL)
		return -1;
	buf_put(c, c->out, c->out_cap);
	c->out = bigger;
	c->out_cap = need;
	return 0;
}

/* A reply buffer is given back (wiped) once its reply is gone. */
static void out_shrink(struct conn *c)
{
	buf_put(c, c->out, c->out_cap);
	c->out = NULL;
	c->out_cap = 0;
}

static void on_write(uv_write_t *req, int status)
{
	struct conn *c = req->data;

	c->writing = false;
	out_shrink(c);
	if (status < 0) {
		conn_close(c);
		return;
	}
	if (c->close_after_reply) {
		conn_close(c);
		return;
	}
	process_input(c);
}

/* Encode the pending answer and hand it to the socket. */
static void send_pending(struct conn *c)
{
	struct pending *p = &c->pending;
	size_t size = wire_response_size(&p->resp);
	long n;
	int w;
	uv_buf_t buf;

	if (out_reserve(c, size) != 0) {
		pending_error(c, WIRE_ERROR, "out of memory");
		size = wire_response_size(&p->resp);
		if (out_reserve(c, size) != 0) {
			pending_clear(p);
			conn_close(c);
			return;
		}
	}
	n = wire_encode_response(&p->resp, c->out, c->out_cap);
	pending_clear(p);
	if (n < 0) {
		log_err("encoding a reply failed: %s", wire_strerror((int)n));
		conn_close(c);
		return;
	}
	buf = uv_buf_init((char *)c->out, (unsigned)n);
	w = uv_try_write((uv_stream_t *)&c->pipe, &buf, 1);
	if (w == n) {
		out_shrink(c);
		request_done(c);
		return;
	}
	if (w < 0 && w != UV_EAGAIN) {
		conn_close(c);
		return;
	}
	if (w > 0) {
		buf.base += w;
		buf.len -= (unsigned)w;
	}
	c->writing = true;
	c->write_started_ms = now_ms(c->srv);
	c->wreq.data = c;
	if (uv_write(&c->wreq, (uv_stream_t *)&c->pipe, &buf, 1, on_write) != 0) {
		c->writing = false;
		conn_close(c);
		return;
	}
	request_done(c);
}

static void finish_written(struct conn *c);

/*
 * The answer is decided and its audit record queued: it goes out once the
 * record is written (after this turn of the loop, see on_check) and, with
 * audit-sync = always, on disk.
 */
static void finish(struct conn *c)
{
	struct server *s = c->srv;

	if (c->closing) {
		pending_clear(&c->pending);
		request_done(c);
		return;
	}
	if (c->pending.seq != 0 && audit_pending(s->audit)) {
		c->flushing = true;
		c->flush_next = NULL;
		*s->flushq_tail = c;
		s->flushq_tail = &c->flush_next;
		return;
	}
	finish_written(c);
}

/*
 * The answer is decided and its audit record written: send it now, or, with
 * audit-sync = always, once the record is on disk.
 */
static void finish_written(struct conn *c)
{
	struct server *s = c->srv;

	if (c->pending.seq != 0 && s->cfg->audit_sync_always &&
	    audit_synced_seq(s->audit) < c->pending.seq) {
		c->waiting = true;
		c->wait_next = s->waiters;
		s->waiters = c;
		sync_kick(s);
		return;
	}
	send_pending(c);
}

/* ---- audit ------------------------------------------------------------ */

struct event {
	const char *op; /* NULL: the request type's name */
	const char *name;
	size_t name_len;
	long long version;
	const char *decision;
	unsigned rule;
	const char *error;
	long long count;
};

/*
 * A record about this connection, durable with the next batch: queued (for
 * answers, written by on_check before they go out) or written at once.
 */
static int audit_append_event(struct conn *c, const struct event *e, bool queue)
{
	struct server *s = c->srv;
	const char *op = e->op != NULL ? e->op : wire_type_name(c->req_type);
	struct audit_event ev = {
		.op = op != NULL ? op : "malformed",
		.name = e->name,
		.name_len = e->name_len,
		.version = e->version,
		.decision = e->decision,
		.rule = e->rule,
		.who = &c->id,
		.error = e->error,
		.count = e->count,
	};
	int rc = queue ? audit_queue(s->audit, &ev) : audit_append(s->audit, &ev);

	note_audit_state(s);
	if (rc == 0 && !s->cfg->audit_sync_always && !s->flush_armed) {
		s->flush_armed = true;
		uv_timer_start(&s->flush, on_flush, BATCH_SYNC_MS, 0);
	}
	return rc;
}

/*
 * Write the request's record.  Returns false when it could not be written:
 * the caller then withholds anything but ping and whoami.
 */
static bool audit_request(struct conn *c, const struct event *e)
{
	struct server *s = c->srv;

	/* Refusals are counted by the log; ping and whoami are not refused. */
	if (!op_needs_audit(c->req_type) && !audit_healthy(s->audit))
		return false;
	if (audit_append_event(c, e, true) != 0)
		return false;
	c->pending.seq = audit_last_seq(s->audit);
	c->pending.drops = audit_drops(s->audit);
	return true;
}

/* Audit an answer that is an error (or a denial), then send it. */
static void answer_error(struct conn *c, const struct event *e, uint8_t status,
			 const char *message)
{
	bool logged = audit_request(c, e);

	if (!logged) {
		c->pending.seq = 0;
		if (op_needs_audit(c->req_type)) {
			status = WIRE_UNAVAILABLE;
			message = "audit log cannot be written";
		}
	}
	/* The record stays with the answer: errors and denials wait for it too. */
	pending_error(c, status, "%s", message);
	finish(c);
}

/* Audit a successful answer already in c->pending, then send it. */
static void answer_ok(struct conn *c, const struct event *e)
{
	if (!audit_request(c, e) && op_needs_audit(c->req_type)) {
		pending_error(c, WIRE_UNAVAILABLE, "audit log cannot be written");
		c->pending.seq = 0;
	}
	finish(c);
}

/* ---- requests ----------------------------------------------------------- */

static struct event event_for(const struct wire_request *req)
{
	struct event e = {
		.version = -1,
		.decision = "error",
		.count = -1,
	};

	if (req->type == WIRE_GET || req->type == WIRE_PUT || req->type == WIRE_DELETE ||
	    (req->type == WIRE_LIST && req->name.len > 0)) {
		e.name = (const char *)req->name.ptr;
		e.name_len = req->name.len;
	}
	if (req->type == WIRE_GET && req->version != 0)
		e.version = req->version;
	return e;
}

/*
 * Checks every request that touches secrets passes before policy: a
 * well-formed name, a known caller, a writable audit log.  false: answered.
 */
static bool admit(struct conn *c, const struct wire_request *req, struct event *e)
{
	struct server *s = c->srv;
	const char *why = NULL;

	if (req->type != WIRE_LIST && !name_valid((const char *)req->name.ptr, req->name.len, &why)) {
		e->error = "bad name";
		/*
		 * Enough to recognise it: a caller with no rights must not fill
		 * the log's disk 1 KiB of escaped junk a request.
		 */
		if (e->name_len > BAD_NAME_LOGGED)
			e->name_len = BAD_NAME_LOGGED;
		answer_error(c, e, WIRE_INVALID, why);
		return false;
	}
	if (!audit_healthy(s->audit)) {
		/* Nothing can be recorded, so nothing is released; the log counts it. */
		(void)audit_request(c, e);
		pending_error(c, WIRE_UNAVAILABLE, "audit log cannot be written");
		c->pending.seq = 0;
		finish(c);
		return false;
	}
	if (!c->id.established) {
		char msg[MESSAGE_MAX];

		snprintf(msg, sizeof(msg), "identity not established: %s", c->id.problem);
		e->decision = "deny";
		e->error = "identity not established";
		answer_error(c, e, WIRE_DENIED, msg);
		return false;
	}
	return true;
}

/* The policy decision for one name; on deny the request is answered. */
static bool permitted(struct conn *c, unsigned perm, const struct wire_str *name,
		      struct event *e)
{
	bool ok = policy_eval(c->srv->policy, &c->id, perm, (const char *)name->ptr,
			      name->len, &e->rule);

	if (!ok) {
		e->decision = "deny";
		e->error = "permission denied";
		answer_error(c, e, WIRE_DENIED, "permission denied");
	}
	return ok;
}

static void handle_get(struct conn *c, const struct wire_request *req)
{
	struct event e = event_for(req);
	struct vault_secret *secret = NULL;
	int rc;

	if (!admit(c, req, &e) || !permitted(c, PERM_READ, &req->name, &e))
		return;
	rc = vault_get(c->srv->vault, (const char *)req->name.ptr, req->name.len,
		       req->version, &secret);
	if (rc == VAULT_E_NOTFOUND) {
		e.error = "not found";
		answer_error(c, &e, WIRE_NOT_FOUND, "not found");
		return;
	}
	if (rc != VAULT_OK) {
		e.error = vault_strerror(rc);
		log_err("get: %.*s: %s", (int)req->name.len, (const char *)req->name.ptr,
			vault_strerror(rc));
		answer_error(c, &e, WIRE_ERROR, vault_strerror(rc));
		return;
	}
	e.decision = "allow";
	e.version = secret->version;
	c->pending.secret = secret;
	c->pending.withhold_on_failure = true;
	c->pending.resp.type = WIRE_GET;
	c->pending.resp.status = WIRE_OK;
	c->pending.resp.version = secret->version;
	c->pending.resp.value.ptr = secret->data;
	c->pending.resp.value.len = secret->len;
	answer_ok(c, &e);
}

/* Hand a put or delete to the writer; write_done() answers it. */
static void submit_write(struct conn *c, const struct wire_request *req,
			 enum vault_op_kind kind, unsigned rule)
{
	struct server *s = c->srv;
	struct write_job *job = &c->job;

	memset(job, 0, sizeof(*job));
	job->conn = c;
	job->op.kind = kind;
	job->op.name = (const char *)req->name.ptr;
	job->op.name_len = req->name.len;
	job->op.value = req->value.ptr;
	job->op.value_len = req->value.len;
	job->rule = rule;
	*s->queue_tail = job;
	s->queue_tail = &job->next;
	writer_kick(s);
}

static void handle_put(struct conn *c, const struct wire_request *req)
{
	struct event e = event_for(req);
	unsigned max = c->srv->cfg->max_secret_size;

	if (!admit(c, req, &e))
		return;
	if (req->value.len > max) {
		char msg[MESSAGE_MAX];

		snprintf(msg, sizeof(msg), "value too large: %zu bytes, the broker's max-secret-size is %u",
			 req->value.len, max);
		e.error = "value too large";
		answer_error(c, &e, WIRE_INVALID, msg);
		return;
	}
	if (!permitted(c, PERM_WRITE, &req->name, &e))
		return;
	submit_write(c, req, VAULT_OP_PUT, e.rule);
}

static void handle_delete(struct conn *c, const struct wire_request *req)
{
	struct event e = event_for(req);

	if (!admit(c, req, &e) || !permitted(c, PERM_DELETE, &req->name, &e))
		return;
	submit_write(c, req, VAULT_OP_DELETE, e.rule);
}

/* A written put or delete: audit it (even if the caller has gone), answer. */
static void write_done(struct conn *c)
{
	struct wire_request req = {
		.type = c->req_type,
		.name = { (const uint8_t *)c->job.op.name, c->job.op.name_len },
	};
	struct event e = event_for(&req);
	const struct vault_op *op = &c->job.op;
	unsigned ignored;

	/* The rule that let it through, even if a reload has changed the policy. */
	e.rule = c->job.rule;
	if (op->result == VAULT_OK) {
		e.decision = "allow";
		e.version = op->version;
		c->pending.resp.type = c->req_type;
		c->pending.resp.status = WIRE_OK;
		c->pending.resp.version = op->version;
		c->pending.withhold_on_failure = true;
		if (op->kind == VAULT_OP_DELETE) {
			e.version = -1;
			e.count = op->version;
		}
		answer_ok(c, &e);
		return;
	}
	if (op->result == VAULT_E_NOTFOUND) {
		/* "Not found" is only said to a caller that may read the name. */
		bool may_read = policy_eval(c->srv->policy, &c->id, PERM_READ, op->name,
					    op->name_len, &ignored);
		e.error = "not found";
		answer_error(c, &e, may_read ? WIRE_NOT_FOUND : WIRE_DENIED,
			     may_read ? "not found" : "permission denied");
		return;
	}
	log_err("%s: %.*s: %s", wire_type_name(c->req_type), (int)op->name_len, op->name,
		vault_strerror(op->result));
	e.error = vault_strerror(op->result);
	answer_error(c, &e, WIRE_ERROR, vault_strerror(op->result));
}

struct list_ctx {
	struct conn *c;
	const struct wire_str *glob;
	char *text;          /* the names, one after another */
	size_t text_len, text_cap;
	size_t *lens;        /* and their lengths */
	size_t count, lens_cap;
	size_t encoded;      /* bytes the names take on the wire */
	bool too_many, nomem;
};

static bool grow(void **buf, size_t *cap, size_t need, size_t unit)
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

static int list_one(const char *name, size_t len, void *arg)
{
	struct list_ctx *l = arg;
	unsigned line;

	if (l->glob->len > 0 && !glob_match((const char *)l->glob->ptr, l->glob->len, name, len))
		return 0;
	if (!policy_eval(l->c->srv->policy, &l->c->id, PERM_LIST, name, len, &line))
		return 0;
	/* The answer's buffer must fit the identity's share of large buffers. */
	if (l->encoded + 2 + len > BIG_SHARE - 64) {
		l->too_many = true;
		return 1;
	}
	if (!grow((void **)&l->text, &l->text_cap, l->text_len + len, 1) ||
	    !grow((void **)&l->lens, &l->lens_cap, l->count + 1, sizeof(size_t))) {
		l->nomem = true;
		return 1;
	}
	memcpy(l->text + l->text_len, name, len);
	l->text_len += len;
	l->lens[l->count++] = len;
	l->encoded += 2 + len;
	return 0;
}

static bool glob_valid(const struct wire_str *g)
{
	if (g->len > NAME_MAX_LEN)
		return false;
	for (size_t i = 0; i < g->len; i++) {
		uint8_t ch = g->ptr[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-' ||
		      ch == '/' || ch == '*'))
			return false;
	}
	return true;
}

static void handle_list(struct conn *c, const struct wire_request *req)
{
	struct event e = event_for(req);
	struct list_ctx l = { .c = c, .glob = &req->name };
	struct wire_str *items = NULL;
	size_t off = 0;

	if (!glob_valid(&req->name)) {
		e.error = "bad glob";
		answer_error(c, &e, WIRE_INVALID,
			     "bad glob: use name characters, '/' and '*' only, at most 255 bytes");
		return;
	}
	if (!admit(c, req, &e))
		return;
	if (vault_list(c->srv->vault, list_one, &l) < 0 || l.nomem || l.too_many ||
	    (items = calloc(l.count ? l.count : 1, sizeof(*items))) == NULL) {
		e.error = l.too_many ? "too many names" : "list failed";
		answer_error(c, &e, l.too_many ? WIRE_INVALID : WIRE_ERROR,
			     l.too_many ? "too many names for one answer; narrow the glob"
					: "listing failed");
		free(l.text);
		free(l.lens);
		return;
	}
	for (size_t i = 0; i < l.count; i++) {
		items[i].ptr = (const uint8_t *)l.text + off;
		items[i].len = l.lens[i];
		off += l.lens[i];
	}
	free(l.lens);
	e.decision = "allow";
	e.count = (long long)l.count;
	c->pending.items = items;
	c->pending.item_text = l.text;
	c->pending.resp.type = WIRE_LIST;
	c->pending.resp.status = WIRE_OK;
	c->pending.resp.items = items;
	c->pending.resp.nitems = l.count;
	answer_ok(c, &e);
}

static void handle_ping(struct conn *c)
{
	struct event e = { .version = -1, .decision = "allow", .count = -1 };

	c->pending.resp.type = WIRE_PING;
	c->pending.resp.status = WIRE_OK;
	c->pending.resp.value.ptr = (const uint8_t *)c->srv->banner;
	c->pending.resp.value.len = strlen(c->srv->banner);
	answer_ok(c, &e);
}

/* whoami: what the broker sees, as key/value pairs. */
static int whoami_text(const struct identity *id, char *text, size_t cap,
		       size_t offsets[], size_t lens[], size_t *n)
{
	char groups[1024] = "";
	size_t glen = 0, pos = 0;
	const char *values[10][2];
	char uid[16], gid[16], pid[16];

	for (size_t i = 0; i < id->ngroups && glen + 12 < sizeof(groups); i++)
		glen += (size_t)snprintf(groups + glen, sizeof(groups) - glen, "%s%u",
					 i ? "," : "", (unsigned)id->groups[i]);
	snprintf(uid, sizeof(uid), "%u", (unsigned)id->uid);
	snprintf(gid, sizeof(gid), "%u", (unsigned)id->gid);
	snprintf(pid, sizeof(pid), "%d", (int)id->pid);
	values[0][0] = "uid", values[0][1] = id->creds ? uid : "";
	values[1][0] = "gid", values[1][1] = id->creds ? gid : "";
	values[2][0] = "groups", values[2][1] = groups;
	values[3][0] = "pid", values[3][1] = id->creds ? pid : "";
	values[4][0] = "cgroup", values[4][1] = id->cgroup != NULL ? id->cgroup : "";
	values[5][0] = "container", values[5][1] = id->container;
	values[6][0] = "pod", values[6][1] = id->pod;
	values[7][0] = "host", values[7][1] = id->established ? (id->host ? "yes" : "no") : "";
	values[8][0] = "pidfd", values[8][1] = id->pidfd_verified ? "yes" : "no";
	values[9][0] = "identity", values[9][1] = id->established ? "ok" : id->problem;
	*n = 0;
	for (size_t i = 0; i < 10; i++) {
		for (size_t k = 0; k < 2; k++) {
			size_t len = strlen(values[i][k]);
			if (pos + len > cap)
				return -1;
			memcpy(text + pos, values[i][k], len);
			offsets[*n] = pos;
			lens[*n] = len;
			pos += len;
			(*n)++;
		}
	}
	return 0;
}

static void handle_whoami(struct conn *c)
{
	struct event e = { .version = -1, .decision = "allow", .count = -1 };
	size_t offsets[20], lens[20], n = 0;
	size_t cap = 2048 + (c->id.cgroup != NULL ? strlen(c->id.cgroup) : 0);
	char *text = malloc(cap);
	struct wire_str *items = calloc(20, sizeof(*items));

	if (text == NULL || items == NULL ||
	    whoami_text(&c->id, text, cap, offsets, lens, &n) != 0) {
		free(text);
		free(items);
		answer_error(c, &e, WIRE_ERROR, "out of memory");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		items[i].ptr = (const uint8_t *)text + offsets[i];
		items[i].len = lens[i];
	}
	c->pending.item_text = text;
	c->pending.items = items;
	c->pending.resp.type = WIRE_WHOAMI;
	c->pending.resp.status = WIRE_OK;
	c->pending.resp.items = items;
	c->pending.resp.nitems = n;
	answer_ok(c, &e);
}

/*
 * Over its rate.  A flood of refusals must not become a flood of records:
 * the first of a run is recorded at once, then one record a second, and the
 * rest when the run ends (flush_refusals), each with `count` refusals.
 */
static void answer_rate_limited(struct conn *c, const struct wire_request *req)
{
	struct event e = { .version = -1, .count = -1 };
	uint64_t now = now_ms(c->srv);

	c->refused++;
	if (c->refused_logged_ms != 0 && now - c->refused_logged_ms < 1000) {
		pending_error(c, WIRE_RATE_LIMITED, "rate limited: too many requests");
		finish(c);
		return;
	}
	c->refused_logged_ms = now;
	if (!refusal_may_record(c->srv, c->refused)) {
		c->refused = 0;
		pending_error(c, WIRE_RATE_LIMITED, "rate limited: too many requests");
		finish(c);
		return;
	}
	if (req != NULL)
		e = event_for(req);
	e.decision = "deny";
	e.error = "rate limited";
	e.count = c->refused;
	c->refused = 0;
	answer_error(c, &e, WIRE_RATE_LIMITED, "rate limited: too many requests");
}

/* A run of refusals ended (a request passed, or the connection closes). */
static void flush_refusals(struct conn *c)
{
	struct event e = { .op = "ratelimit", .version = -1, .decision = "deny",
			   .error = "rate limited" };

	c->refused_logged_ms = 0;
	if (c->refused == 0)
		return;
	e.count = c->refused;
	c->refused = 0;
	if (!refusal_may_record(c->srv, (unsigned)e.count))
		return;
	if (audit_append_event(c, &e, false) != 0)
		log_warn("recording %lld rate-limited requests failed", e.count);
}

static void handle_frame(struct conn *c, const uint8_t *body, size_t len)
{
	struct wire_request req;
	int rc = wire_decode_request(body, len, &req);

	/* Answer a malformed request in the type it claimed, if it is one. */
	c->req_type = len >= 2 && wire_type_name(body[1]) != NULL ? body[1] : WIRE_PING;
	/* Every frame costs a token, well-formed or not. */
	if (!limits_take(c->slot, now_ms(c->srv))) {
		answer_rate_limited(c, rc == 0 ? &req : NULL);
		return;
	}
	flush_refusals(c);
	if (rc != 0) {
		struct event e = { .op = "malformed", .version = -1, .decision = "error",
				   .count = -1, .error = "malformed request" };
		char msg[MESSAGE_MAX];

		snprintf(msg, sizeof(msg), "malformed request: %s", wire_strerror(rc));
		answer_error(c, &e, WIRE_INVALID, msg);
		return;
	}
	c->req_type = req.type;
	switch (req.type) {
	case WIRE_PING:
		handle_ping(c);
		break;
	case WIRE_WHOAMI:
		handle_whoami(c);
		break;
	case WIRE_GET:
		handle_get(c, &req);
		break;
	case WIRE_PUT:
		handle_put(c, &req);
		break;
	case WIRE_LIST:
		handle_list(c, &req);
		break;
	case WIRE_DELETE:
		handle_delete(c, &req);
		break;
	default: {
		/* The decoder refuses unknown types; kept so no path skips the log. */
		struct event e = { .op = "malformed", .version = -1, .decision = "error",
				   .count = -1, .error = "unknown request type" };
		answer_error(c, &e, WIRE_INVALID, "unknown request type");
		break;
	}
	}
}

/* ---- connection input ------------------------------------------------------ */

static void update_reading(struct conn *c);

/* Serve c's next buffered frame on the next turn of the loop. */
static void defer_input(struct conn *c)
{
	struct server *s = c->srv;

	if (c->ready)
		return;
	c->ready = true;
	c->ready_next = NULL;
	*s->readyq_tail = c;
	s->readyq_tail = &c->ready_next;
	if (uv_idle_start(&s->ready_idle, on_ready) != 0) {
		/* Not reached (starting an initialised idle handle cannot fail). */
		unlink_ready(c);
		process_input(c);
	}
}

/* The request is answered (or dropped): consume its frame, go on. */
static void request_done(struct conn *c)
{
	struct server *s = c->srv;

	if (c->frame_len > 0) {
		size_t rest = c->in_len - c->frame_len;

		memmove(c->in, c->in + c->frame_len, rest);
		sodium_memzero(c->in + rest, c->in_len - rest);
		c->in_len = rest;
		c->frame_len = 0;
	}
	/* An idle connection holds no buffer (thousands may be open). */
	if (c->in_len == 0) {
		buf_put(c, c->in, c->in_cap);
		c->in = NULL;
		c->in_cap = 0;
	}
	c->busy = false;
	c->active_ms = now_ms(s);
	c->frame_started_ms = c->in_len > 0 ? c->active_ms : 0;
	if (c->closing) {
		conn_close(c);
		return;
	}
	if (s->stopping && c->in_len == 0 && !c->writing) {
		conn_close(c);
		return;
	}
	if (c->dispatching)
		return;
	if (c->in_len >= WIRE_HEADER_SIZE)
		defer_input(c);
	else
		process_input(c);
}

static void refuse_framing(struct conn *c, int rc)
{
	struct event e = { .op = "malformed", .version = -1, .decision = "error",
			   .count = -1, .error = "bad frame length" };

	c->busy = true;
	c->frame_len = c->in_len;
	c->req_type = WIRE_PING;
	c->close_after_reply = true;
	answer_error(c, &e, WIRE_INVALID,
		     rc == WIRE_E_TOOBIG ? "frame too large: closing the connection"
					 : "bad frame length: closing the connection");
}

static void process_input(struct conn *c)
{
	c->dispatching = true;
	while (!c->busy && !c->writing && !c->waiting && !c->closing) {
		uint32_t len;
		int rc;

		if (c->close_after_reply) {
			conn_close(c);
			break;
		}
		if (c->in_len < WIRE_HEADER_SIZE)
			break;
		rc = wire_frame_length(c->in, WIRE_MAX_REQUEST, &len);
		if (rc != 0) {
			/* Answered; the loop's top closes it once the answer is out. */
			refuse_framing(c, rc);
			continue;
		}
		if (c->in_len < WIRE_HEADER_SIZE + (size_t)len)
			break;
		c->busy = true;
		c->frame_len = WIRE_HEADER_SIZE + (size_t)len;
		handle_frame(c, c->in + WIRE_HEADER_SIZE, len);
	}
	c->dispatching = false;
	if (c->closing)
		return;
	if (c->srv->stopping && !c->busy && !c->writing && !c->waiting) {
		conn_close(c);
		return;
	}
	update_reading(c);
}

/* Grow the input buffer toward the frame being received, never beyond it. */
/*
 * Room for the next read: a small buffer to start, grown (doubling) as the
 * bytes of a larger frame arrive, never past the frame its header declares.
 * -1 when there is none to give: no memory left, or (not reached, since
 * reading stops while a request is handled) a buffer full of whole frames.
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
	bigger = buf_get(c, &cap);
	if (bigger == NULL)
		return -1;
	if (c->in != NULL) {
		memcpy(bigger, c->in, c->in_len);
		buf_put(c, c->in, c->in_cap);
	}
	c->in = bigger;
	c->in_cap = cap;
	return 0;
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
	if (nread < 0) {
		/* EOF or error: a half-sent request is dropped with the socket. */
		conn_close(c);
		return;
	}
	if (nread == 0) {
		/* Nothing came after all: an idle connection holds no buffer. */
		if (c->in_len == 0) {
			buf_put(c, c->in, c->in_cap);
			c->in = NULL;
			c->in_cap = 0;
		}
		return;
	}
	if (c->in_len == 0)
		c->frame_started_ms = now_ms(c->srv);
	c->in_len += (size_t)nread;
	process_input(c);
}

static void update_reading(struct conn *c)
{
	bool want = !c->busy && !c->writing && !c->waiting && !c->closing &&
		    !c->close_after_reply;

	if (want && !c->reading) {
		if (uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read) == 0)
			c->reading = true;
	} else if (!want && c->reading) {
		uv_read_stop((uv_stream_t *)&c->pipe);
		c->reading = false;
	}
}

/* ---- connection lifetime ---------------------------------------------------- */

static void conn_free(struct conn *c)
{
	pending_clear(&c->pending);
	buf_put(c, c->in, c->in_cap);
	buf_put(c, c->out, c->out_cap);
	/* After the buffers, which are charged to the identity's slot. */
	limits_release(c->srv->limits, c->slot);
	identity_clear(&c->id);
	free(c);
}

static void on_conn_closed(uv_handle_t *h)
{
	struct conn *c = (struct conn *)h;
	struct server *s = c->srv;

	c->closed = true;
	/* A put or delete still on the writer thread frees it when it returns. */
	if (!c->busy || c->job.conn == NULL) {
		conn_free(c);
	}
	maybe_finish_shutdown(s);
}

static void unlink_waiter(struct conn *c)
{
	struct conn **pp;

	for (pp = &c->srv->waiters; *pp != NULL; pp = &(*pp)->wait_next) {
		if (*pp == c) {
			*pp = c->wait_next;
			break;
		}
	}
	c->waiting = false;
}

/* The one way a connection ends. */
static void conn_close(struct conn *c)
{
	struct server *s = c->srv;

	if (c->closing)
		return;
	c->closing = true;
	flush_refusals(c);
	if (c->waiting)
		unlink_waiter(c);
	if (c->flushing)
		unlink_flushing(c);
	if (c->ready)
		unlink_ready(c);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	s->nconns--;
	uv_close((uv_handle_t *)&c->pipe, on_conn_closed);
}

/* Refuse a connection over a limit with one answer, then close it. */
static void refuse_conn(struct conn *c, const char *why)
{
	struct event e = { .op = "connect", .version = -1, .decision = "deny", .count = 1,
			   .error = why };

	c->busy = true;
	c->req_type = WIRE_PING;
	c->close_after_reply = true;
	if (!refusal_may_record(c->srv, 1)) {
		pending_error(c, WIRE_RATE_LIMITED, "%s", why);
		finish(c);
		return;
	}
	log_warn("refusing a connection from uid %u pid %d: %s", (unsigned)c->id.uid,
		 (int)c->id.pid, why);
	answer_error(c, &e, WIRE_RATE_LIMITED, why);
}

static void on_reject_closed(uv_handle_t *h)
{
	struct server *s = h->data;

	s->reject_busy = false;
}

/*
 * libuv stops listening until a pending connection is accepted, so one
 * that cannot be served is accepted into a spare handle and closed.
 */
static void reject_connection(struct server *s, uv_stream_t *listener)
{
	if (s->reject_busy || uv_pipe_init(&s->loop, &s->reject, 0) != 0) {
		/* Left pending, the listener stays silent: the tick tries again. */
		s->accept_stalled = true;
		return;
	}
	s->reject.data = s;
	s->reject_busy = true;
	(void)uv_accept(listener, (uv_stream_t *)&s->reject);
	uv_close((uv_handle_t *)&s->reject, on_reject_closed);
}

static void on_connection(uv_stream_t *listener, int status)
{
	struct server *s = listener->data;
	struct conn *c;
	uv_os_fd_t fd;
	int rc;

	if (status < 0) {
		log_warn("accept: %s", uv_strerror(status));
		return;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		log_err("accept: out of memory");
		reject_connection(s, listener);
		return;
	}
	c->srv = s;
	if (uv_pipe_init(&s->loop, &c->pipe, 0) != 0) {
		free(c);
		reject_connection(s, listener);
		return;
	}
	if (uv_accept(listener, (uv_stream_t *)&c->pipe) != 0 ||
	    uv_fileno((uv_handle_t *)&c->pipe, &fd) != 0 || peer_identify(fd, &c->id) != 0) {
		c->closing = true;
		uv_close((uv_handle_t *)&c->pipe, on_conn_closed);
		return;
	}
	c->next = s->conns;
	if (s->conns != NULL)
		s->conns->prev = c;
	s->conns = c;
	s->nconns++;
	c->active_ms = now_ms(s);
	rc = limits_acquire(s->limits, c->id.uid, c->id.cgroup, now_ms(s), &c->slot);
	if (rc != LIMITS_OK) {
		refuse_conn(c, rc == LIMITS_TOTAL  ? "too many connections to the broker"
			       : rc == LIMITS_PEER ? "too many connections from this identity"
						   : "out of memory");
		return;
	}
	if (!c->id.established)
		log_info("connection from pid %d uid %u: identity not established: %s",
			 (int)c->id.pid, (unsigned)c->id.uid, c->id.problem);
	update_reading(c);
}

/* ---- the writer (worker thread) -------------------------------------------- */

static void writer_work(uv_work_t *w)
{
	struct server *s = w->data;

	vault_write_batch(s->writer, s->ops, s->nops);
}

static void writer_after(uv_work_t *w, int status)
{
	struct server *s = w->data;
	struct write_job *job, *batch = s->batch;
	size_t i = 0;

	(void)status;
	/*
	 * Take every result out of the batch before answering anyone: an
	 * answer lets its connection go on to its next (pipelined) put, which
	 * starts the next batch in s->ops.
	 */
	for (job = batch; job != NULL; job = job->next, i++) {
		job->op.result = s->ops[i].result;
		job->op.version = s->ops[i].version;
	}
	if (i < s->nops && s->ops[i].kind == VAULT_OP_CHECKPOINT &&
	    s->ops[i].result != VAULT_OK)
		log_warn("storing the audit checkpoint in the vault failed: %s",
			 vault_strerror(s->ops[i].result));
	s->nops = 0;
	s->batch = NULL;
	s->write_busy = false;
	for (job = batch; job != NULL;) {
		struct write_job *next = job->next;
		struct conn *c = job->conn;

		job->conn = NULL;
		/* A closed caller's change is made: it is recorded all the same. */
		write_done(c);
		if (c->closed)
			conn_free(c);
		job = next;
	}
	writer_kick(s);
	maybe_finish_shutdown(s);
}

static int ops_reserve(struct server *s, size_t n)
{
	struct vault_op *bigger;

	if (n <= s->ops_cap)
		return 0;
	bigger = realloc(s->ops, n * sizeof(*bigger));
	if (bigger == NULL)
		return -1;
	s->ops = bigger;
	s->ops_cap = n;
	return 0;
}

/* Everything queued since the last commit goes into the next one. */
static void writer_kick(struct server *s)
{
	size_t n = 0;

	if (s->write_busy || (s->queue == NULL && !s->ckpt_dirty))
		return;
	for (struct write_job *j = s->queue; j != NULL; j = j->next)
		n++;
	if (ops_reserve(s, n + 1) != 0) {
		log_err("writer: out of memory");
		return;
	}
	s->nops = 0;
	for (struct write_job *j = s->queue; j != NULL; j = j->next)
		s->ops[s->nops++] = j->op;
	if (s->ckpt_dirty) {
		memcpy(s->ckpt_running, s->ckpt_pending, s->ckpt_pending_len);
		s->ckpt_running_len = s->ckpt_pending_len;
		s->ckpt_dirty = false;
		s->ops[s->nops++] = (struct vault_op){ .kind = VAULT_OP_CHECKPOINT,
						       .value = s->ckpt_running,
						       .value_len = s->ckpt_running_len };
	}
	s->batch = s->queue;
	s->queue = NULL;
	s->queue_tail = &s->queue;
	s->write_busy = true;
	s->write_work.data = s;
	if (uv_queue_work(&s->loop, &s->write_work, writer_work, writer_after) != 0) {
		/* Put the jobs back; the next kick (tick or request) tries again. */
		log_err("writer: cannot queue work");
		s->queue = s->batch;
		s->queue_tail = &s->queue;
		while (*s->queue_tail != NULL)
			s->queue_tail = &(*s->queue_tail)->next;
		s->batch = NULL;
		s->nops = 0;
		s->write_busy = false;
	}
}

/* ---- audit durability (worker thread) -------------------------------------- */

static void sync_work(uv_work_t *w)
{
	struct server *s = w->data;

	s->sync_rc = audit_sync_run(s->audit);
}

/* Send (or, if the fsync failed, withhold) the answers that waited for it. */
static void release_waiters(struct server *s, bool ok)
{
	struct conn **pp = &s->waiters;

	while (*pp != NULL) {
		struct conn *c = *pp;

		if (ok && c->pending.seq > audit_synced_seq(s->audit)) {
			pp = &c->wait_next;
			continue;
		}
		*pp = c->wait_next;
		c->waiting = false;
		if (!ok && c->pending.withhold_on_failure)
			pending_error(c, WIRE_UNAVAILABLE, "audit log cannot be written");
		send_pending(c);
	}
}

static void sync_after(uv_work_t *w, int status)
{
	struct server *s = w->data;
	bool ran_ok = s->sync_rc == 0;
	/*
	 * Another fsync failed while this one ran (reload withheld the answers
	 * waiting on that file): its 0 may hide lost pages, so it covers
	 * nothing, and those still waiting wait for the next one.
	 */
	bool ok = ran_ok && audit_sync_failures(s->audit) == s->sync_failures_before;

	(void)status;
	s->sync_busy = false;
	audit_sync_end(s->audit, ok ? s->sync_covers : 0, s->sync_rc);
	note_audit_state(s);
	if (ok && s->sync_ckpt_len > 0) {
		memcpy(s->ckpt_pending, s->sync_ckpt, s->sync_ckpt_len);
		s->ckpt_pending_len = s->sync_ckpt_len;
		s->ckpt_dirty = true;
		writer_kick(s);
	}
	release_waiters(s, ran_ok);
	if (audit_dirty(s->audit)) {
		if (s->cfg->audit_sync_always || s->waiters != NULL) {
			sync_kick(s);
		} else if (!s->flush_armed) {
			s->flush_armed = true;
			uv_timer_start(&s->flush, on_flush, BATCH_SYNC_MS, 0);
		}
	}
	maybe_finish_shutdown(s);
}

static void sync_kick(struct server *s)
{
	if (s->sync_busy || !audit_dirty(s->audit))
		return;
	s->sync_ckpt_len = 0;
	s->sync_covers = audit_sync_begin(s->audit, s->sync_ckpt, &s->sync_ckpt_len);
	s->sync_failures_before = audit_sync_failures(s->audit);
	s->sync_busy = true;
	s->sync_work.data = s;
	if (uv_queue_work(&s->loop, &s->sync_work, sync_work, sync_after) != 0) {
		log_err("audit: cannot queue the fsync");
		s->sync_busy = false;
	}
}

static void on_flush(uv_timer_t *t)
{
	struct server *s = t->data;

	s->flush_armed = false;
	sync_kick(s);
}

/*
 * After each turn of the loop: the records of every answer decided in it
 * go to the log in one write(2), and only then do the answers go out.  An
 * answer whose record may have been lost is withheld (6), as when the log
 * cannot be written at all.
 */
static void on_check(uv_check_t *h)
{
	struct server *s = h->data;

	/* Answers sent here may let their connections decide the next ones. */
	while (s->flushq != NULL) {
		struct conn *c = s->flushq;
		uint64_t drops;

		s->flushq = NULL;
		s->flushq_tail = &s->flushq;
		(void)audit_flush(s->audit);
		note_audit_state(s);
		drops = audit_drops(s->audit);
		if (s->cfg->audit_sync_always)
			sync_kick(s);
		while (c != NULL) {
			struct conn *next = c->flush_next;

			c->flushing = false;
			c->flush_next = NULL;
			if (c->pending.drops != drops) {
				c->pending.seq = 0;
				if (op_needs_audit(c->req_type))
					pending_error(c, WIRE_UNAVAILABLE,
						      "audit log cannot be written");
			}
			finish_written(c);
			c = next;
		}
	}
}

static void on_ready(uv_idle_t *h)
{
	struct server *s = h->data;
	struct conn *c = s->readyq;

	/* Only those queued before this turn: each gets one frame. */
	s->readyq = NULL;
	s->readyq_tail = &s->readyq;
	while (c != NULL) {
		struct conn *next = c->ready_next;

		c->ready = false;
		c->ready_next = NULL;
		process_input(c);
		c = next;
	}
	if (s->readyq == NULL)
		(void)uv_idle_stop(&s->ready_idle);
}

static void unlink_ready(struct conn *c)
{
	struct server *s = c->srv;
	struct conn **pp;

	for (pp = &s->readyq; *pp != NULL; pp = &(*pp)->ready_next) {
		if (*pp == c) {
			*pp = c->ready_next;
			break;
		}
	}
	s->readyq_tail = &s->readyq;
	while (*s->readyq_tail != NULL)
		s->readyq_tail = &(*s->readyq_tail)->ready_next;
	c->ready = false;
	c->ready_next = NULL;
}

static void unlink_flushing(struct conn *c)
{
	struct server *s = c->srv;
	struct conn **pp;

	for (pp = &s->flushq; *pp != NULL; pp = &(*pp)->flush_next) {
		if (*pp == c) {
			*pp = c->flush_next;
			break;
		}
	}
	s->flushq_tail = &s->flushq;
	while (*s->flushq_tail != NULL)
		s->flushq_tail = &(*s->flushq_tail)->flush_next;
	c->flushing = false;
}

/* ---- timers and signals ----------------------------------------------------- */

static void sweep_connections(struct server *s)
{
	uint64_t now = now_ms(s);
	struct conn *c = s->conns;

	while (c != NULL) {
		struct conn *next = c->next;

		if (c->writing && now - c->write_started_ms >= s->cfg->request_timeout_ms) {
			/* A peer that does not read its answer holds a value: let go. */
			log_info("closing connection from pid %d: its answer was not read in time",
				 (int)c->id.pid);
			conn_close(c);
		} else if (!c->busy && !c->writing && !c->waiting) {
			if (c->in_len > 0 && now - c->frame_started_ms >= s->cfg->request_timeout_ms) {
				log_info("closing connection from pid %d: request not completed in time",
					 (int)c->id.pid);
				conn_close(c);
			} else if (c->in_len == 0 && now - c->active_ms >= s->cfg->idle_timeout_ms) {
				conn_close(c);
			}
		}
		c = next;
	}
}

static void on_tick(uv_timer_t *t)
{
	struct server *s = t->data;

	if (s->accept_stalled && !s->stopping) {
		s->accept_stalled = false;
		on_connection((uv_stream_t *)&s->listener, 0);
	}
	(void)audit_tick(s->audit);
	if (!audit_healthy(s->audit))
		(void)audit_recover(s->audit);
	note_audit_state(s);
	if (audit_dirty(s->audit) && !s->flush_armed && !s->sync_busy)
		sync_kick(s);
	limits_sweep(s->limits, now_ms(s));
	sweep_connections(s);
	record_unrecorded_refusals(s);
}

static void reload(struct server *s)
{
	struct policy *fresh = NULL;
	uint64_t failures;
	char err[512];

	if (policy_load(s->cfg->policy, &fresh, err, sizeof(err)) != 0) {
		log_err("policy reload rejected, keeping the old policy: %s", err);
	} else {
		policy_free(s->policy);
		s->policy = fresh;
		log_info("policy reloaded: %zu rules", policy_rule_count(fresh));
	}
	failures = audit_sync_failures(s->audit);
	if (audit_reopen(s->audit) != 0)
		log_err("reopening the audit log failed: %s", audit_problem(s->audit));
	note_audit_state(s);
	/* The old file's last records may not be on disk: withhold what waits on them. */
	if (audit_sync_failures(s->audit) != failures)
		release_waiters(s, false);
}

static void on_signal(uv_signal_t *sig, int signum)
{
	struct server *s = sig->data;

	if (signum == SIGHUP) {
		reload(s);
		return;
	}
	if (s->stopping)
		return;
	log_info("signal %d: finishing requests in flight, then exiting", signum);
	s->stopping = true;
	uv_close((uv_handle_t *)&s->listener, NULL);
	for (struct conn *c = s->conns, *next; c != NULL; c = next) {
		next = c->next;
		if (!c->busy && !c->writing && !c->waiting)
			conn_close(c);
	}
	maybe_finish_shutdown(s);
}

static void maybe_finish_shutdown(struct server *s)
{
	if (!s->stopping || s->nconns > 0 || s->write_busy || s->sync_busy ||
	    s->queue != NULL || uv_is_closing((uv_handle_t *)&s->tick))
		return;
	uv_close((uv_handle_t *)&s->tick, NULL);
	uv_close((uv_handle_t *)&s->flush, NULL);
	uv_close((uv_handle_t *)&s->check, NULL);
	uv_close((uv_handle_t *)&s->ready_idle, NULL);
	uv_close((uv_handle_t *)&s->sig_hup, NULL);
	uv_close((uv_handle_t *)&s->sig_term, NULL);
	uv_close((uv_handle_t *)&s->sig_int, NULL);
}

/* ---- set-up and tear-down ----------------------------------------------------- */

static int start_handles(struct server *s, int listen_fd)
{
	int rc;

	if ((rc = uv_pipe_init(&s->loop, &s->listener, 0)) != 0 ||
	    (rc = uv_pipe_open(&s->listener, listen_fd)) != 0)
		return rc;
	s->listener.data = s;
	if ((rc = uv_listen((uv_stream_t *)&s->listener, LISTEN_BACKLOG, on_connection)) != 0)
		return rc;
	if ((rc = uv_timer_init(&s->loop, &s->tick)) != 0 ||
	    (rc = uv_timer_init(&s->loop, &s->flush)) != 0)
		return rc;
	s->tick.data = s->flush.data = s;
	if ((rc = uv_timer_start(&s->tick, on_tick, TICK_MS, TICK_MS)) != 0)
		return rc;
	if ((rc = uv_check_init(&s->loop, &s->check)) != 0)
		return rc;
	s->check.data = s;
	if ((rc = uv_check_start(&s->check, on_check)) != 0)
		return rc;
	if ((rc = uv_idle_init(&s->loop, &s->ready_idle)) != 0)
		return rc;
	s->ready_idle.data = s;
	if ((rc = uv_signal_init(&s->loop, &s->sig_hup)) != 0 ||
	    (rc = uv_signal_init(&s->loop, &s->sig_term)) != 0 ||
	    (rc = uv_signal_init(&s->loop, &s->sig_int)) != 0)
		return rc;
	s->sig_hup.data = s->sig_term.data = s->sig_int.data = s;
	if ((rc = uv_signal_start(&s->sig_hup, on_signal, SIGHUP)) != 0 ||
	    (rc = uv_signal_start(&s->sig_term, on_signal, SIGTERM)) != 0 ||
	    (rc = uv_signal_start(&s->sig_int, on_signal, SIGINT)) != 0)
		return rc;
	return 0;
}

/*
 * After the loop: the clean-shutdown record, made durable and checkpointed
 * in the vault, so that a log cut off after it is still found out.
 */
static void final_sync(struct server *s)
{
	uint8_t blob[AUDIT_CHECKPOINT_MAX];
	size_t len = 0;
	uint64_t covers;
	int rc;

	record_unrecorded_refusals(s);
	if (audit_stop(s->audit) != 0)
		log_err("writing the audit log's shutdown record failed: %s",
			audit_problem(s->audit));
	if (!audit_dirty(s->audit))
		return;
	covers = audit_sync_begin(s->audit, blob, &len);
	rc = audit_sync_run(s->audit);
	audit_sync_end(s->audit, covers, rc);
	if (rc == 0 && len > 0) {
		struct vault_op op = { .kind = VAULT_OP_CHECKPOINT, .value = blob, .value_len = len };
		vault_write_batch(s->writer, &op, 1);
	}
}

static void close_any(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

int server_run(struct server_parts *parts)
{
	struct server *s = calloc(1, sizeof(*s));
	struct limits_config lc;
	int rc, ret = 1;

	if (s == NULL) {
		log_err("out of memory");
		policy_free(parts->policy);
		return 1;
	}
	s->cfg = parts->cfg;
	s->vault = parts->vault;
	s->writer = parts->writer;
	s->audit = parts->audit;
	s->policy = parts->policy;
	s->queue_tail = &s->queue;
	s->flushq_tail = &s->flushq;
	s->readyq_tail = &s->readyq;
	s->audit_was_healthy = true;
	s->self.uid = getuid();
	s->self.gid = getgid();
	s->self.pid = getpid();
	s->self.creds = true;
	snprintf(s->banner, sizeof(s->banner), "secretd %s protocol %d", SECRETD_VERSION,
		 WIRE_VERSION);
	lc = (struct limits_config){ s->cfg->max_connections, s->cfg->max_connections_per_peer,
				     s->cfg->rate_per_second, s->cfg->rate_burst };
	s->limits = limits_new(&lc);
	s->buffers = buffers_new(BIG_BUDGET);
	if (s->limits == NULL || s->buffers == NULL || uv_loop_init(&s->loop) != 0) {
		log_err("cannot set up the event loop");
		goto out_nolloop;
	}
	rc = start_handles(s, parts->listen_fd);
	if (rc != 0) {
		log_err("cannot start serving: %s", uv_strerror(rc));
		goto out;
	}
	log_info("serving on %s (%zu policy rules, audit-sync %s)", s->cfg->socket,
		 policy_rule_count(s->policy), s->cfg->audit_sync_always ? "always" : "batch");
	rc = uv_run(&s->loop, UV_RUN_DEFAULT);
	final_sync(s);
	ret = 0;
	log_info("stopped");
out:
	uv_walk(&s->loop, close_any, NULL);
	uv_run(&s->loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&s->loop) != 0)
		log_warn("event loop closed with handles still open");
out_nolloop:
	policy_free(s->policy);
	limits_free(s->limits);
	buffers_free(s->buffers);
	free(s->ops);
	free(s);
	return ret;
}
