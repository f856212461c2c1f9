/*
 * metrics: every counter reaches the exposition with the right labels and
 * values, the histogram is cumulative with exact second bounds, unknown ops
 * and out-of-range enums are bounded, and the whole text passes
 * `promtool check metrics` (Debian package prometheus), the format checker
 * of Prometheus itself.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "metrics.h"

static char *render(const struct metrics *m)
{
	char *text = NULL;
	size_t len = 0;

	assert_int_equal(metrics_render(m, "0.1.0", &text, &len), 0);
	assert_non_null(text);
	assert_int_equal(strlen(text), len);
	return text;
}

/* The exact line "NAME VALUE" (or with labels) is in TEXT. */
static void has_line(const char *text, const char *line)
{
	size_t n = strlen(line);
	const char *p = text;

	while ((p = strstr(p, line)) != NULL) {
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return;
		p += n;
	}
	fail_msg("missing line [%s]", line);
}

static void test_empty(void **state)
{
	struct metrics *m = metrics_new();
	char *t;

	(void)state;
	assert_non_null(m);
	t = render(m);
	has_line(t, "secretd_requests_total{op=\"get\",decision=\"allow\"} 0");
	has_line(t, "secretd_request_duration_seconds_bucket{le=\"+Inf\"} 0");
	has_line(t, "secretd_request_duration_seconds_sum 0.000000");
	has_line(t, "secretd_connections_open 0");
	has_line(t, "secretd_audit_ok 1");
	has_line(t, "secretd_upstream_state{state=\"none\"} 1");
	has_line(t, "secretd_upstream_state{state=\"connected\"} 0");
	has_line(t, "secretd_build_info{version=\"0.1.0\"} 1");
	has_line(t, "# TYPE secretd_request_duration_seconds histogram");
	free(t);
	metrics_free(m);
}

static void test_counts(void **state)
{
	struct metrics *m = metrics_new();
	char *t;

	(void)state;
	metrics_request(m, "get", METRICS_ALLOW, 80);       /* <= 100 us */
	metrics_request(m, "get", METRICS_ALLOW, 100);      /* <= 100 us (le is inclusive) */
	metrics_request(m, "get", METRICS_DENY, 101);       /* <= 250 us */
	metrics_request(m, "put", METRICS_ERROR, 7000000);  /* beyond 5 s: +Inf only */
	metrics_request(m, "frobnicate", METRICS_ALLOW, 1); /* "other" */
	metrics_request(m, NULL, (enum metrics_decision)99, 1);
	metrics_conn_opened(m);
	metrics_conn_opened(m);
	metrics_conn_opened(m);
	metrics_conn_closed(m);
	metrics_conn_refused(m, METRICS_REFUSED_PEER);
	metrics_conn_refused(m, (enum metrics_refusal)42);
	metrics_audit_state(m, false);
	metrics_audit_records(m, 12345);
	metrics_upstream(m, METRICS_UPSTREAM_DISCONNECTED, 987654321, 1500);
	t = render(m);
	has_line(t, "secretd_requests_total{op=\"get\",decision=\"allow\"} 2");
	has_line(t, "secretd_requests_total{op=\"get\",decision=\"deny\"} 1");
	has_line(t, "secretd_requests_total{op=\"put\",decision=\"error\"} 1");
	has_line(t, "secretd_requests_total{op=\"other\",decision=\"allow\"} 1");
	has_line(t, "secretd_requests_total{op=\"other\",decision=\"error\"} 1");
	has_line(t, "secretd_request_duration_seconds_bucket{le=\"0.000100\"} 4");
	has_line(t, "secretd_request_duration_seconds_bucket{le=\"0.000250\"} 5");
	has_line(t, "secretd_request_duration_seconds_bucket{le=\"5.000000\"} 5");
	has_line(t, "secretd_request_duration_seconds_bucket{le=\"+Inf\"} 6");
	has_line(t, "secretd_request_duration_seconds_sum 7.000283");
	has_line(t, "secretd_request_duration_seconds_count 6");
	has_line(t, "secretd_connections_open 2");
	has_line(t, "secretd_connections_accepted_total 3");
	has_line(t, "secretd_connections_refused_total{reason=\"max_connections_per_peer\"} 1");
	has_line(t, "secretd_connections_refused_total{reason=\"other\"} 1");
	has_line(t, "secretd_audit_ok 0");
	has_line(t, "secretd_audit_records_total 12345");
	has_line(t, "secretd_upstream_state{state=\"disconnected\"} 1");
	has_line(t, "secretd_upstream_state{state=\"none\"} 0");
	has_line(t, "secretd_upstream_revision 987654321");
	has_line(t, "secretd_upstream_lag_seconds 1.500000");
	free(t);
	/* Closing more than was opened never wraps the gauge. */
	metrics_conn_closed(m);
	metrics_conn_closed(m);
	metrics_conn_closed(m);
	t = render(m);
	has_line(t, "secretd_connections_open 0");
	free(t);
	metrics_free(m);
}

static void test_version_label(void **state)
{
	struct metrics *m = metrics_new();
	char *t;
	size_t len;

	(void)state;
	assert_int_equal(metrics_render(m, "1.2\"}\n3", &t, &len), 0);
	has_line(t, "secretd_build_info{version=\"1.2___3\"} 1");
	free(t);
	metrics_free(m);
}

/* promtool reads the exposition on stdin; exit 0 means valid (and lint-clean). */
static int promtool(const char *text)
{
	FILE *p = popen("promtool check metrics >promtool.out 2>&1", "w");
	int st;

	if (p == NULL)
		return -1;
	fputs(text, p);
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_promtool(void **state)
{
	struct metrics *m = metrics_new();
	char *t;
	int rc;

	(void)state;
	if (system("command -v promtool >/dev/null 2>&1") != 0)
		fail_msg("promtool is missing (Debian package prometheus; contrib/dev/deps.sh)");
	metrics_request(m, "get", METRICS_ALLOW, 250);
	metrics_request(m, "watch", METRICS_DENY, 3000);
	metrics_conn_opened(m);
	metrics_conn_refused(m, METRICS_REFUSED_TOTAL);
	metrics_audit_records(m, 2);
	metrics_upstream(m, METRICS_UPSTREAM_CONNECTED, 17, 3);
	t = render(m);
	rc = promtool(t);
	if (rc != 0 && system("cat promtool.out >&2") != 0)
		fail_msg("promtool failed, and its output cannot be shown");
	assert_int_equal(rc, 0);
	/* ... and promtool does catch a broken exposition (the check can fail). */
	assert_int_not_equal(promtool("secretd_x{le=\"1\" 3\n"), 0);
	free(t);
	metrics_free(m);
	(void)remove("promtool.out");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_counts),
		cmocka_unit_test(test_version_label),
		cmocka_unit_test(test_promtool),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
