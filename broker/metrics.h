/*
 * The broker's operational counters, rendered in the Prometheus text format
 * (version 0.0.4) for GET /metrics: requests by operation and decision,
 * request latency as a histogram, open, accepted and refused connections,
 * the audit log's state and records written, the upstream's state, revision
 * and lag.  Counts only: never a name, a value, a uid or a container id, so
 * the output's size is fixed and nothing in it says who asked for what.
 *
 * Plain memory, no I/O, no locks: call every function from the loop thread.
 * Functions that can fail return 0 or a negative errno.
 */
#ifndef SECRETD_METRICS_H
#define SECRETD_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct metrics;

enum metrics_decision { METRICS_ALLOW, METRICS_DENY, METRICS_ERROR, METRICS_DECISIONS };

/* Why a connection was closed at accept (or before its first request). */
enum metrics_refusal {
	METRICS_REFUSED_TOTAL,  /* max-connections */
	METRICS_REFUSED_PEER,   /* max-connections-per-peer */
	METRICS_REFUSED_IDENTITY, /* the caller could not be identified */
	METRICS_REFUSED_OTHER,  /* out of memory, accept failures */
	METRICS_REFUSALS
};

enum metrics_upstream {
	METRICS_UPSTREAM_NONE,         /* upstream = none */
	METRICS_UPSTREAM_CONNECTED,    /* following etcd */
	METRICS_UPSTREAM_DISCONNECTED, /* etcd unreachable: serving the replica */
	METRICS_UPSTREAM_REFUSED,      /* rollback or another cluster: not followed */
	METRICS_UPSTREAMS
};

struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);

/*
 * One request answered: OP is the audit record's op ("get", "put", ...;
 * anything not in the table counts as "other"), latency from the request's
 * arrival to its answer being queued.
 */
void metrics_request(struct metrics *m, const char *op, enum metrics_decision d,
		     uint64_t latency_us);

void metrics_conn_opened(struct metrics *m);
void metrics_conn_closed(struct metrics *m);
void metrics_conn_refused(struct metrics *m, enum metrics_refusal why);

/* ok: the audit log can be written; false while degraded. */
void metrics_audit_state(struct metrics *m, bool ok);
void metrics_audit_records(struct metrics *m, uint64_t written);

void metrics_upstream(struct metrics *m, enum metrics_upstream state, uint64_t revision,
		      uint64_t lag_ms);
/* Totals so far: resynchronisations, and rollbacks (or foreign clusters) refused. */
void metrics_upstream_counts(struct metrics *m, uint64_t resyncs, uint64_t rollbacks_refused);

/*
 * The whole exposition in a malloc'ed buffer (*out, *len; free() it), or
 * -ENOMEM.  VERSION goes into secretd_build_info.
 */
int metrics_render(const struct metrics *m, const char *version, char **out, size_t *len);

/* The content type that goes with metrics_render's output. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
