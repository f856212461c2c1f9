/*
 * The event loop: the composing layer.  It builds the parts every request
 * needs (struct services), starts the listener, and keeps the tick (time-
 * outs, the audit log's epoch and recovery, retries), the signals (SIGHUP:
 * reload; SIGTERM/SIGINT: finish what is in flight, then stop) and the
 * final, checkpointed sync of the audit log.
 */
#include "server.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include <secretd/wire.h>

#include "conn.h"
#include "listen.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "request.h"
#include "services.h"
#include "upstream.h"
#include "watch.h"

#define TICK_MS 1000

struct server {
	struct services svc; /* first */
	uv_loop_t loop;
	struct listener *listener;
	uv_signal_t sig_hup, sig_term, sig_int;
	uv_timer_t tick;
	struct audit *audit;
	struct vault_writer *vault_writer;
	const struct notify *notify;
	struct http_server *http; /* --metrics-listen; NULL when off or stopped */
	struct upstream *upstream_unstarted; /* until upstream_start took it */
	bool upstream_stopping;
	bool handles_closed;
};

static void on_upstream_stopped(void *arg);

static void maybe_finish_shutdown(struct server *s)
{
	struct services *svc = &s->svc;

	if (!svc->stopping || s->handles_closed || svc->nconns > 0 || s->http != NULL ||
	    !writer_idle(svc->writer) || !gate_idle(svc->gate))
		return;
	if (svc->upstream != NULL) {
		/* Last: its steps in the writer are done, no request waits on it. */
		if (!s->upstream_stopping) {
			s->upstream_stopping = true;
			upstream_stop(svc->upstream, on_upstream_stopped, s);
		}
		return;
	}
	s->handles_closed = true;
	uv_close((uv_handle_t *)&s->tick, NULL);
	uv_close((uv_handle_t *)&s->sig_hup, NULL);
	uv_close((uv_handle_t *)&s->sig_term, NULL);
	uv_close((uv_handle_t *)&s->sig_int, NULL);
	gate_close(svc->gate);
	conns_close(svc);
}

static void on_part_done(void *arg)
{
	maybe_finish_shutdown(arg);
}

static void on_upstream_stopped(void *arg)
{
	struct server *s = arg;

	s->svc.upstream = NULL;
	maybe_finish_shutdown(s);
}

static void on_conn_gone(struct services *svc)
{
	maybe_finish_shutdown((struct server *)svc);
}

/* A durable audit state: the vault keeps it with the next commit. */
static void on_checkpoint(void *arg, const uint8_t *blob, size_t len)
{
	struct server *s = arg;

	writer_checkpoint(s->svc.writer, blob, len);
}

static void on_http_stopped(void *arg)
{
	struct server *s = arg;

	s->http = NULL;
	maybe_finish_shutdown(s);
}

/* GET /metrics: counts only (metrics.h). */
static int render_metrics(void *arg, char **body, size_t *len)
{
	struct server *s = arg;

	return metrics_render(s->svc.metrics, SECRETD_VERSION, body, len);
}

/* GET /healthz: 200 while the broker can serve and audit. */
static int health(void *arg, char *reason, size_t reason_size)
{
	struct server *s = arg;

	if (s->svc.stopping) {
		snprintf(reason, reason_size, "shutting down");
		return -1;
	}
	if (!gate_healthy(s->svc.gate)) {
		snprintf(reason, reason_size, "audit log cannot be written: %s",
			 audit_problem(s->audit));
		return -1;
	}
	return 0;
}

static int start_metrics(struct server *s)
{
	struct http_config hc = {
		.listen = s->svc.cfg->metrics_listen,
		.metrics = render_metrics,
		.health = health,
		.arg = s,
	};
	char err[256];

	if (hc.listen == NULL)
		return 0;
	if (http_start(&s->loop, &hc, &s->http, err, sizeof(err)) != 0) {
		log_err("metrics-listen %s: %s", hc.listen, err);
		s->http = NULL;
		return -1;
	}
	log_info("metrics and health on %s", hc.listen);
	return 0;
}

static void note_metrics(struct server *s)
{
	metrics_audit_state(s->svc.metrics, gate_healthy(s->svc.gate));
	metrics_audit_records(s->svc.metrics, audit_last_seq(s->audit));
}

static void on_tick(uv_timer_t *t)
{
	struct server *s = t->data;
	struct services *svc = &s->svc;

	if (!svc->stopping)
		listener_retry(s->listener);
	gate_tick(svc->gate);
	writer_kick(svc->writer);
	limits_sweep(svc->limits, uv_now(&s->loop));
	conns_sweep(svc);
	request_record_refusals(svc);
	note_metrics(s);
}

static void reload(struct server *s)
{
	struct policy *fresh = NULL;
	char err[512];

	if (policy_load(s->svc.cfg->policy, &fresh, err, sizeof(err)) != 0) {
		log_err("policy reload rejected, keeping the old policy: %s", err);
	} else {
		policy_free(s->svc.policy);
		s->svc.policy = fresh;
		log_info("policy reloaded: %zu rules", policy_rule_count(fresh));
	}
	gate_reopen(s->svc.gate);
}

static void on_signal(uv_signal_t *sig, int signum)
{
	struct server *s = sig->data;

	if (signum == SIGHUP) {
		reload(s);
		return;
	}
	if (s->svc.stopping)
		return;
	log_info("signal %d: finishing requests in flight, then exiting", signum);
	s->svc.stopping = true;
	if (s->notify != NULL)
		(void)notify_send(s->notify, "STOPPING=1");
	listener_close(s->listener);
	s->listener = NULL;
	if (s->http != NULL)
		http_stop(s->http, on_http_stopped, s);
	conns_stop(&s->svc);
	maybe_finish_shutdown(s);
}

static int start_signals(struct server *s)
{
	int rc;

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

static int start_handles(struct server *s, int listen_fd)
{
	struct services *svc = &s->svc;
	struct gate_sync sync = { .always = svc->cfg->audit_sync_always,
				  .interval_ms = svc->cfg->audit_sync_interval_ms };
	int rc;

	if ((rc = conns_init(svc)) != 0 ||
	    (rc = gate_new(&s->loop, s->audit, &sync, on_checkpoint, s, &svc->gate)) != 0 ||
	    (rc = writer_new(&s->loop, s->vault_writer, &svc->writer)) != 0)
		return rc;
	gate_on_idle(svc->gate, on_part_done, s);
	writer_on_done(svc->writer, on_part_done, s);
	if ((rc = uv_timer_init(&s->loop, &s->tick)) != 0)
		return rc;
	s->tick.data = s;
	if ((rc = uv_timer_start(&s->tick, on_tick, TICK_MS, TICK_MS)) != 0 ||
	    (rc = start_signals(s)) != 0)
		return rc;
	return listener_start(svc, listen_fd, &s->listener);
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

	request_record_refusals(&s->svc);
	if (audit_stop(s->audit) != 0)
		log_err("writing the audit log's shutdown record failed: %s",
			audit_problem(s->audit));
	/*
	 * Even when every record is on disk already: the gate gives the vault
	 * at most one checkpoint a second, so the newest may still be unstored.
	 */
	covers = audit_sync_begin(s->audit, blob, &len);
	rc = audit_sync_run(s->audit);
	audit_sync_end(s->audit, covers, rc);
	if (rc == 0 && len > 0) {
		struct vault_op op = { .kind = VAULT_OP_CHECKPOINT, .value = blob, .value_len = len };

		if (vault_write_batch(s->vault_writer, &op, 1) != VAULT_OK)
			log_warn("storing the final audit checkpoint in the vault failed");
	}
}

static void close_any(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static int init_services(struct server *s, const struct server_parts *parts)
{
	struct services *svc = &s->svc;
	const struct config *cfg = parts->cfg;
	struct limits_config lc = {
		.max_total = cfg->max_connections,
		.max_per_peer = cfg->max_connections_per_peer,
		.rate = cfg->rate_per_second,
		.burst = cfg->rate_burst,
		.connect_rate = cfg->connect_rate,
		.connect_burst = cfg->connect_burst,
		.in_budget = BUFFERS_BUDGET - BUFFERS_REPLY_RESERVE,
		.share = BUFFERS_SHARE,
	};

	svc->loop = &s->loop;
	svc->cfg = cfg;
	svc->vault = parts->vault;
	svc->policy = parts->policy;
	svc->on_conn_gone = on_conn_gone;
	svc->self.uid = getuid();
	svc->self.gid = getgid();
	svc->self.pid = getpid();
	svc->self.creds = true;
	snprintf(svc->banner, sizeof(svc->banner), "secretd %s protocol %d", SECRETD_VERSION,
		 WIRE_VERSION);
	svc->limits = limits_new(&lc);
	svc->buffers = buffers_new(BUFFERS_BUDGET, BUFFERS_REPLY_RESERVE);
	svc->hub = watch_hub_new();
	svc->metrics = metrics_new();
	return svc->limits != NULL && svc->buffers != NULL && svc->hub != NULL &&
			       svc->metrics != NULL ? 0 : -1;
}

int server_run(struct server_parts *parts)
{
	struct server *s = calloc(1, sizeof(*s));
	int rc, ret = 1;

	if (s == NULL) {
		log_err("out of memory");
		policy_free(parts->policy);
		close(parts->listen_fd);
		return 1;
	}
	s->audit = parts->audit;
	s->vault_writer = parts->writer;
	s->notify = parts->notify;
	s->upstream_unstarted = parts->upstream;
	if (init_services(s, parts) != 0 || uv_loop_init(&s->loop) != 0) {
		log_err("cannot set up the event loop");
		close(parts->listen_fd);
		goto out_noloop;
	}
	rc = start_handles(s, parts->listen_fd);
	if (rc != 0) {
		log_err("cannot start serving: %s", uv_strerror(rc));
		if (s->listener == NULL)
			close(parts->listen_fd);
		goto out;
	}
	if (start_metrics(s) != 0)
		goto out;
	if (s->upstream_unstarted != NULL) {
		char err[512];

		if (upstream_start(s->upstream_unstarted, &s->svc, err, sizeof(err)) != 0) {
			log_err("%s", err);
			goto out;
		}
		s->upstream_unstarted = NULL;
	}
	note_metrics(s);
	log_info("serving on %s (%zu policy rules, audit-sync %s)", s->svc.cfg->socket,
		 policy_rule_count(s->svc.policy), s->svc.cfg->audit_sync_always ? "always" : "batch");
	if (s->notify != NULL && notify_send(s->notify, "READY=1") != 0)
		log_warn("telling the service manager we are ready failed");
	rc = uv_run(&s->loop, UV_RUN_DEFAULT);
	if (rc != 0)
		log_warn("the event loop stopped with work left");
	final_sync(s);
	ret = 0;
	log_info("stopped");
out:
	listener_close(s->listener);
	uv_walk(&s->loop, close_any, NULL);
	(void)uv_run(&s->loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&s->loop) != 0) {
		log_warn("event loop closed with handles still open");
		ret = ret == 0 ? 1 : ret;
	}
out_noloop:
	upstream_free(s->upstream_unstarted);
	policy_free(s->svc.policy);
	limits_free(s->svc.limits);
	buffers_free(s->svc.buffers);
	writer_free(s->svc.writer);
	gate_free(s->svc.gate);
	watch_hub_free(s->svc.hub);
	metrics_free(s->svc.metrics);
	free(s);
	return ret;
}
