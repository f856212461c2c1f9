/* Counters in fixed arrays, rendered with open_memstream. */
#include "metrics.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The ops the broker knows; anything else is "other" (bounded labels). */
static const char *const metrics_ops[] = {
	"get", "put", "list", "rm", "whoami", "ping", "inject", "watch",
	"credential", "status", "other",
};
#define METRICS_OPS (sizeof(metrics_ops) / sizeof(metrics_ops[0]))
#define METRICS_OP_OTHER (METRICS_OPS - 1)

static const char *const metrics_decisions[METRICS_DECISIONS] = { "allow", "deny", "error" };
static const char *const metrics_refusals[METRICS_REFUSALS] = {
	"max_connections", "max_connections_per_peer", "identity", "other",
};
static const char *const metrics_upstreams[METRICS_UPSTREAMS] = {
	"none", "connected", "disconnected", "refused",
};

/* Upper bounds of the latency buckets, in microseconds (100 us to 5 s). */
static const uint64_t metrics_bounds_us[] = {
	100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000,
	250000, 500000, 1000000, 2500000, 5000000,
};
#define METRICS_BUCKETS (sizeof(metrics_bounds_us) / sizeof(metrics_bounds_us[0]))

struct metrics {
	uint64_t requests[METRICS_OPS][METRICS_DECISIONS];
	uint64_t buckets[METRICS_BUCKETS]; /* not cumulative; summed when rendered */
	uint64_t latency_count;
	uint64_t latency_sum_us;
	uint64_t conns_open;
	uint64_t conns_accepted;
	uint64_t refused[METRICS_REFUSALS];
	bool audit_ok;
	uint64_t audit_records;
	enum metrics_upstream upstream;
	uint64_t upstream_revision;
	uint64_t upstream_lag_ms;
	uint64_t upstream_resyncs;
	uint64_t upstream_rollbacks;
};

struct metrics *metrics_new(void)
{
	struct metrics *m = calloc(1, sizeof(*m));

	if (m != NULL)
		m->audit_ok = true;
	return m;
}

void metrics_free(struct metrics *m)
{
	free(m);
}

static size_t metrics_op_index(const char *op)
{
	for (size_t i = 0; op != NULL && i < METRICS_OP_OTHER; i++)
		if (strcmp(op, metrics_ops[i]) == 0)
			return i;
	return METRICS_OP_OTHER;
}

void metrics_request(struct metrics *m, const char *op, enum metrics_decision d,
		     uint64_t latency_us)
{
	size_t b = 0;

	if ((unsigned)d >= METRICS_DECISIONS)
		d = METRICS_ERROR;
	m->requests[metrics_op_index(op)][d]++;
	while (b < METRICS_BUCKETS && latency_us > metrics_bounds_us[b])
		b++;
	if (b < METRICS_BUCKETS)
		m->buckets[b]++;
	m->latency_count++;
	m->latency_sum_us += latency_us;
}

void metrics_conn_opened(struct metrics *m)
{
	m->conns_open++;
	m->conns_accepted++;
}

void metrics_conn_closed(struct metrics *m)
{
	if (m->conns_open > 0)
		m->conns_open--;
}

void metrics_conn_refused(struct metrics *m, enum metrics_refusal why)
{
	if ((unsigned)why >= METRICS_REFUSALS)
		why = METRICS_REFUSED_OTHER;
	m->refused[why]++;
}

void metrics_audit_state(struct metrics *m, bool ok)
{
	m->audit_ok = ok;
}

void metrics_audit_records(struct metrics *m, uint64_t written)
{
	m->audit_records = written;
}

void metrics_upstream(struct metrics *m, enum metrics_upstream state, uint64_t revision,
		      uint64_t lag_ms)
{
	if ((unsigned)state >= METRICS_UPSTREAMS)
		state = METRICS_UPSTREAM_NONE;
	m->upstream = state;
	m->upstream_revision = revision;
	m->upstream_lag_ms = lag_ms;
}

void metrics_upstream_counts(struct metrics *m, uint64_t resyncs, uint64_t rollbacks_refused)
{
	m->upstream_resyncs = resyncs;
	m->upstream_rollbacks = rollbacks_refused;
}

static void metrics_head(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Microseconds as seconds, exactly (no floating point rounding). */
static void metrics_seconds(FILE *f, uint64_t us)
{
	fprintf(f, "%llu.%06llu", (unsigned long long)(us / 1000000),
		(unsigned long long)(us % 1000000));
}

static void metrics_render_requests(FILE *f, const struct metrics *m)
{
	uint64_t cum = 0;

	metrics_head(f, "secretd_requests_total", "counter",
		     "Requests answered, by operation and decision.");
	for (size_t o = 0; o < METRICS_OPS; o++)
		for (size_t d = 0; d < METRICS_DECISIONS; d++)
			fprintf(f, "secretd_requests_total{op=\"%s\",decision=\"%s\"} %llu\n",
				metrics_ops[o], metrics_decisions[d],
				(unsigned long long)m->requests[o][d]);
	metrics_head(f, "secretd_request_duration_seconds", "histogram",
		     "Time from a request's arrival to its answer.");
	for (size_t b = 0; b < METRICS_BUCKETS; b++) {
		cum += m->buckets[b];
		fputs("secretd_request_duration_seconds_bucket{le=\"", f);
		metrics_seconds(f, metrics_bounds_us[b]);
		fprintf(f, "\"} %llu\n", (unsigned long long)cum);
	}
	fprintf(f, "secretd_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
		(unsigned long long)m->latency_count);
	fputs("secretd_request_duration_seconds_sum ", f);
	metrics_seconds(f, m->latency_sum_us);
	fprintf(f, "\nsecretd_request_duration_seconds_count %llu\n",
		(unsigned long long)m->latency_count);
}

static void metrics_render_conns(FILE *f, const struct metrics *m)
{
	metrics_head(f, "secretd_connections_open", "gauge", "Client connections open now.");
	fprintf(f, "secretd_connections_open %llu\n", (unsigned long long)m->conns_open);
	metrics_head(f, "secretd_connections_accepted_total", "counter",
		     "Client connections accepted.");
	fprintf(f, "secretd_connections_accepted_total %llu\n",
		(unsigned long long)m->conns_accepted);
	metrics_head(f, "secretd_connections_refused_total", "counter",
		     "Client connections closed unserved, by reason.");
	for (size_t r = 0; r < METRICS_REFUSALS; r++)
		fprintf(f, "secretd_connections_refused_total{reason=\"%s\"} %llu\n",
			metrics_refusals[r], (unsigned long long)m->refused[r]);
}

static void metrics_render_state(FILE *f, const struct metrics *m, const char *version)
{
	metrics_head(f, "secretd_audit_ok", "gauge",
		     "1 while the audit log can be written, 0 while degraded (no secret is released).");
	fprintf(f, "secretd_audit_ok %d\n", m->audit_ok ? 1 : 0);
	metrics_head(f, "secretd_audit_records_total", "counter", "Audit records written.");
	fprintf(f, "secretd_audit_records_total %llu\n", (unsigned long long)m->audit_records);
	metrics_head(f, "secretd_upstream_state", "gauge",
		     "The upstream's state: 1 for the current one.");
	for (size_t u = 0; u < METRICS_UPSTREAMS; u++)
		fprintf(f, "secretd_upstream_state{state=\"%s\"} %d\n", metrics_upstreams[u],
			(size_t)m->upstream == u ? 1 : 0);
	metrics_head(f, "secretd_upstream_revision", "gauge",
		     "The highest upstream revision applied to the replica.");
	fprintf(f, "secretd_upstream_revision %llu\n", (unsigned long long)m->upstream_revision);
	metrics_head(f, "secretd_upstream_lag_seconds", "gauge",
		     "How far the replica is behind the upstream.");
	fputs("secretd_upstream_lag_seconds ", f);
	metrics_seconds(f, m->upstream_lag_ms * 1000);
	fputc('\n', f);
	metrics_head(f, "secretd_upstream_resyncs_total", "counter",
		     "Whole-prefix resynchronisations of the replica (first start, compaction).");
	fprintf(f, "secretd_upstream_resyncs_total %llu\n",
		(unsigned long long)m->upstream_resyncs);
	metrics_head(f, "secretd_upstream_rollbacks_refused_total", "counter",
		     "Times an upstream behind the replica, or another cluster, was refused.");
	fprintf(f, "secretd_upstream_rollbacks_refused_total %llu\n",
		(unsigned long long)m->upstream_rollbacks);
	metrics_head(f, "secretd_build_info", "gauge", "The broker's version.");
	fputs("secretd_build_info{version=\"", f);
	/* A label value: only the characters a version uses, the rest as '_'. */
	for (const char *p = version != NULL ? version : ""; *p != '\0'; p++)
		fputc(strchr("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-+~_",
			     *p) != NULL ? *p : '_', f);
	fputs("\"} 1\n", f);
}

int metrics_render(const struct metrics *m, const char *version, char **out, size_t *len)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);
	int rc = -ENOMEM;

	*out = NULL;
	*len = 0;
	if (f == NULL)
		return -ENOMEM;
	metrics_render_requests(f, m);
	metrics_render_conns(f, m);
	metrics_render_state(f, m, version);
	if (ferror(f) != 0) {
		fclose(f);
		goto out;
	}
	if (fclose(f) != 0)
		goto out;
	*out = buf;
	*len = n;
	buf = NULL;
	rc = 0;
out:
	free(buf);
	return rc;
}
