/*
 * etcd gateway JSON: answers captured from etcd 3.4.23 parse to what they
 * say; every wrong type, bad number, bad base64, duplicate key or trailing
 * byte is refused; request bodies hold what was asked; the watch stream
 * splitter cuts messages at their newline whatever the pieces.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "etcd_json.h"
#include "etcd_stream.h"

#define HDR "\"header\":{\"cluster_id\":\"12044327527368789814\",\"member_id\":\"8080873854249956727\",\"revision\":\"3\",\"raft_term\":\"2\"}"

static int parse_range(const char *s, struct etcd_range_resp *r)
{
	return etcd_json_range(s, strlen(s), r);
}

static void test_range_real(void **state)
{
	/* /secretd/ -> "L3gvYQ==" is "/x/a", "aGVsbG8=" is "hello". */
	const char *s = "{" HDR ",\"kvs\":[{\"key\":\"L3gvYQ==\",\"create_revision\":\"2\","
			"\"mod_revision\":\"2\",\"version\":\"1\",\"value\":\"aGVsbG8=\"}],\"count\":\"1\"}";
	struct etcd_range_resp r;

	(void)state;
	assert_int_equal(parse_range(s, &r), ETCD_OK);
	assert_true(r.header.cluster_id == 12044327527368789814ull);
	assert_int_equal(r.header.revision, 3);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.kvs[0].key_len, 4);
	assert_memory_equal(r.kvs[0].key, "/x/a", 4);
	assert_int_equal(r.kvs[0].value_len, 5);
	assert_memory_equal(r.kvs[0].value, "hello", 5);
	assert_int_equal(r.kvs[0].mod_revision, 2);
	assert_int_equal(r.count, 1);
	assert_false(r.more);
	etcd_range_free(&r);
}

static void test_range_empty_and_defaults(void **state)
{
	/* The gateway leaves out every field at its default. */
	struct etcd_range_resp r;

	(void)state;
	assert_int_equal(parse_range("{" HDR "}", &r), ETCD_OK);
	assert_int_equal(r.n, 0);
	assert_null(r.kvs);
	etcd_range_free(&r);
	/* A kv without a value: an empty value. */
	assert_int_equal(parse_range("{" HDR ",\"kvs\":[{\"key\":\"YQ==\"}],\"more\":true}", &r),
			 ETCD_OK);
	assert_int_equal(r.kvs[0].value_len, 0);
	assert_true(r.more);
	etcd_range_free(&r);
}

static void test_range_refused(void **state)
{
	static const char *const bad[] = {
		"",
		"[]",
		"null",
		"{}",                                              /* no header */
		"{\"header\":[]}",
		"{" HDR ",\"kvs\":{}}",                            /* kvs not an array */
		"{" HDR ",\"kvs\":[1]}",
		"{" HDR ",\"kvs\":[{}]}",                          /* a kv without key */
		"{" HDR ",\"kvs\":[{\"key\":\"YQ\"}]}",            /* unpadded base64 */
		"{" HDR ",\"kvs\":[{\"key\":\"Y!==\"}]}",
		"{" HDR ",\"kvs\":[{\"key\":5}]}",
		"{" HDR ",\"kvs\":[{\"key\":\"YQ==\",\"mod_revision\":\"-1\"}]}",
		"{" HDR ",\"kvs\":[{\"key\":\"YQ==\",\"mod_revision\":\"1e3\"}]}",
		"{" HDR ",\"kvs\":[{\"key\":\"YQ==\",\"mod_revision\":\" 1\"}]}",
		"{" HDR ",\"kvs\":[{\"key\":\"YQ==\",\"mod_revision\":\"99999999999999999999\"}]}",
		"{" HDR ",\"kvs\":[{\"key\":\"YQ==\",\"version\":true}]}",
		"{" HDR ",\"more\":\"true\"}",
		"{" HDR ",\"count\":1.5}",
		"{" HDR "} trailing",
		"{" HDR ",\"kvs\":[],\"kvs\":[]}",                 /* duplicate key */
		"{\"header\":{\"cluster_id\":\"-5\"}}",
		"{\"header\":{\"revision\":\"x\"}}",
		"{\"header\":{\"cluster_id\":\"18446744073709551616\"}}",
	};
	struct etcd_range_resp r;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (parse_range(bad[i], &r) != ETCD_E_PROTOCOL)
			fail_msg("accepted: %s", bad[i]);
		assert_null(r.kvs);
	}
}

static void test_not_terminated(void **state)
{
	/* The parser reads exactly len bytes: a valid prefix of a longer buffer. */
	const char *s = "{" HDR "}GARBAGE";
	struct etcd_range_resp r;

	(void)state;
	assert_int_equal(etcd_json_range(s, strlen(s) - 7, &r), ETCD_OK);
	etcd_range_free(&r);
	assert_int_equal(etcd_json_range(s, strlen(s), &r), ETCD_E_PROTOCOL);
	/* NUL inside the input. */
	assert_int_equal(etcd_json_range("{\0}", 3, &r), ETCD_E_PROTOCOL);
}

static void test_txn_real(void **state)
{
	const char *ok = "{" HDR ",\"succeeded\":true,\"responses\":[{\"response_put\":{\"header\":"
			 "{\"revision\":\"3\"}}},{\"response_delete_range\":{\"header\":{\"revision\":"
			 "\"3\"},\"deleted\":\"2\"}}]}";
	const char *failed = "{" HDR ",\"responses\":[{\"response_range\":{\"header\":{\"revision\":"
			     "\"2\"},\"kvs\":[{\"key\":\"L3gvYQ==\",\"create_revision\":\"2\","
			     "\"mod_revision\":\"2\",\"version\":\"1\",\"value\":\"aGVsbG8=\"}],"
			     "\"count\":\"1\"}},{\"response_range\":{\"header\":{\"revision\":\"2\"}}}]}";
	struct etcd_txn_resp t;

	(void)state;
	assert_int_equal(etcd_json_txn(ok, strlen(ok), &t), ETCD_OK);
	assert_true(t.succeeded);
	assert_int_equal(t.deleted, 2);
	assert_int_equal(t.n, 0);
	etcd_txn_free(&t);
	assert_int_equal(etcd_json_txn(failed, strlen(failed), &t), ETCD_OK);
	assert_false(t.succeeded); /* left out when false */
	assert_int_equal(t.n, 1);
	assert_memory_equal(t.kvs[0].value, "hello", 5);
	etcd_txn_free(&t);
}

static void test_txn_refused(void **state)
{
	static const char *const bad[] = {
		"{" HDR ",\"succeeded\":1}",
		"{" HDR ",\"responses\":{}}",
		"{" HDR ",\"responses\":[{}]}", /* no known member */
		"{" HDR ",\"responses\":[{\"response_put\":{},\"response_range\":{}}]}",
		"{" HDR ",\"responses\":[{\"response_range\":[]}]}",
		"{" HDR ",\"responses\":[{\"response_delete_range\":{\"deleted\":\"-1\"}}]}",
		"{" HDR ",\"responses\":[{\"response_range\":{\"kvs\":[{\"key\":\"\"}]}}]}",
	};
	struct etcd_txn_resp t;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (etcd_json_txn(bad[i], strlen(bad[i]), &t) != ETCD_E_PROTOCOL)
			fail_msg("accepted: %s", bad[i]);
}

static void test_watch_messages(void **state)
{
	const char *created = "{\"result\":{" HDR ",\"created\":true}}";
	const char *events = "{\"result\":{" HDR ",\"events\":[{\"kv\":{\"key\":\"YQ==\","
			     "\"mod_revision\":\"3\",\"value\":\"Yg==\"}},{\"type\":\"DELETE\","
			     "\"kv\":{\"key\":\"Yw==\",\"mod_revision\":\"3\"}}]}}";
	const char *compacted = "{\"result\":{\"header\":{\"cluster_id\":\"1\",\"raft_term\":\"2\"},"
				"\"canceled\":true,\"compact_revision\":\"3\"}}";
	struct etcd_watch_msg m;

	(void)state;
	assert_int_equal(etcd_json_watch(created, strlen(created), &m), ETCD_OK);
	assert_true(m.created);
	assert_int_equal(m.n, 0);
	etcd_watch_msg_free(&m);
	assert_int_equal(etcd_json_watch(events, strlen(events), &m), ETCD_OK);
	assert_int_equal(m.n, 2);
	assert_int_equal(m.events[0].type, ETCD_EVENT_PUT);
	assert_memory_equal(m.events[0].kv.value, "b", 1);
	assert_int_equal(m.events[1].type, ETCD_EVENT_DELETE);
	etcd_watch_msg_free(&m);
	assert_int_equal(etcd_json_watch(compacted, strlen(compacted), &m), ETCD_OK);
	assert_true(m.canceled);
	assert_int_equal(m.compact_revision, 3);
	etcd_watch_msg_free(&m);
}

static void test_watch_refused(void **state)
{
	static const char *const bad[] = {
		"{" HDR "}", /* not wrapped in result */
		"{\"result\":[]}",
		"{\"result\":{" HDR ",\"events\":[{\"type\":\"PUT\"}]}}", /* no kv */
		"{\"result\":{" HDR ",\"events\":[{\"type\":\"NOPE\",\"kv\":{\"key\":\"YQ==\"}}]}}",
		"{\"result\":{" HDR ",\"events\":[{\"type\":1,\"kv\":{\"key\":\"YQ==\"}}]}}",
		"{\"result\":{" HDR ",\"compact_revision\":\"-3\"}}",
		"{\"result\":{" HDR ",\"canceled\":\"yes\"}}",
		"{\"result\":{" HDR ",\"cancel_reason\":7}}",
	};
	struct etcd_watch_msg m;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (etcd_json_watch(bad[i], strlen(bad[i]), &m) != ETCD_E_PROTOCOL)
			fail_msg("accepted: %s", bad[i]);
}

static void test_errors_and_token(void **state)
{
	const char *unary = "{\"error\":\"etcdserver: authentication is not enabled\",\"message\":"
			    "\"etcdserver: authentication is not enabled\",\"code\":9}";
	const char *stream = "{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":"
			     "\"etcdserver: no leader\",\"http_status\":\"Service Unavailable\"}}";
	const char *ctl = "{\"error\":\"x\",\"message\":\"bad\\u0001\\nline\",\"code\":3}";
	const char *tok = "{" HDR ",\"token\":\"DeAdBeEf.42\"}";
	char token[ETCD_TOKEN_MAX + 1];
	struct etcd_error e;

	(void)state;
	assert_true(etcd_json_error(unary, strlen(unary), &e));
	assert_int_equal(e.code, 9);
	assert_string_equal(e.message, "etcdserver: authentication is not enabled");
	assert_true(etcd_json_error(stream, strlen(stream), &e));
	assert_int_equal(e.code, 14);
	assert_string_equal(e.message, "etcdserver: no leader");
	/* Control characters never reach a log line. */
	assert_true(etcd_json_error(ctl, strlen(ctl), &e));
	assert_string_equal(e.message, "bad??line");
	assert_false(etcd_json_error("{" HDR "}", strlen("{" HDR "}"), &e));
	assert_false(etcd_json_error("not json", 8, &e));
	assert_int_equal(etcd_json_token(tok, strlen(tok), token, sizeof(token)), ETCD_OK);
	assert_string_equal(token, "DeAdBeEf.42");
	/* A token goes into an HTTP header: no space, CR or LF. */
	tok = "{" HDR ",\"token\":\"a\\r\\nX-Evil: 1\"}";
	assert_int_equal(etcd_json_token(tok, strlen(tok), token, sizeof(token)), ETCD_E_PROTOCOL);
	tok = "{" HDR ",\"token\":\"\"}";
	assert_int_equal(etcd_json_token(tok, strlen(tok), token, sizeof(token)), ETCD_E_PROTOCOL);
}

static void test_status(void **state)
{
	const char *s = "{" HDR ",\"version\":\"3.4.23\",\"dbSize\":\"20480\",\"leader\":"
			"\"8080873854249956727\",\"raftIndex\":\"11\"}";
	struct etcd_status_resp st;

	(void)state;
	assert_int_equal(etcd_json_status(s, strlen(s), &st), ETCD_OK);
	assert_true(st.leader == 8080873854249956727ull);
	assert_string_equal(st.version, "3.4.23");
}

static json_t *load(const char *s)
{
	json_error_t jerr;
	json_t *j = json_loads(s, JSON_ALLOW_NUL, &jerr);

	assert_non_null(j);
	return j;
}

static void test_requests(void **state)
{
	const uint8_t key[] = "/s/n/a", end[] = "/s/n/b", val[] = { 0, 1, 2, 0xff };
	struct etcd_cmp cmp = { .target = ETCD_CMP_MOD, .result = ETCD_CMP_EQUAL, .key = key,
				.klen = 6, .number = 42 };
	struct etcd_op succ[2] = {
		{ .kind = ETCD_OP_PUT, .key = key, .klen = 6, .value = val, .vlen = sizeof(val) },
		{ .kind = ETCD_OP_DELETE, .key = key, .klen = 6, .end = end, .elen = 6 },
	};
	struct etcd_op fail = { .kind = ETCD_OP_RANGE, .key = key, .klen = 6 };
	struct etcd_txn t = { &cmp, 1, succ, 2, &fail, 1 };
	char *s;
	json_t *j;

	(void)state;
	s = etcd_req_txn(&t);
	assert_non_null(s);
	j = load(s);
	assert_string_equal(json_string_value(json_object_get(json_array_get(
		json_object_get(j, "compare"), 0), "mod_revision")), "42");
	assert_string_equal(json_string_value(json_object_get(json_array_get(
		json_object_get(j, "compare"), 0), "target")), "MOD");
	assert_string_equal(json_string_value(json_object_get(json_object_get(json_array_get(
		json_object_get(j, "success"), 0), "request_put"), "value")), "AAEC/w==");
	assert_string_equal(json_string_value(json_object_get(json_object_get(json_array_get(
		json_object_get(j, "success"), 1), "request_delete_range"), "range_end")),
		"L3Mvbi9i");
	assert_non_null(json_object_get(json_array_get(json_object_get(j, "failure"), 0),
					"request_range"));
	json_decref(j);
	free(s);

	s = etcd_req_range(key, 6, NULL, 0, 7, 500, false);
	j = load(s);
	assert_string_equal(json_string_value(json_object_get(j, "revision")), "7");
	assert_string_equal(json_string_value(json_object_get(j, "limit")), "500");
	assert_null(json_object_get(j, "range_end"));
	json_decref(j);
	free(s);

	s = etcd_req_watch(key, 6, end, 6, 9);
	j = load(s);
	assert_string_equal(json_string_value(json_object_get(json_object_get(j, "create_request"),
							      "start_revision")), "9");
	json_decref(j);
	free(s);

	/* A password with quotes and a NUL is carried exactly. */
	s = etcd_req_auth("u", "p\"w\0x", 5);
	j = load(s);
	assert_int_equal(json_string_length(json_object_get(j, "password")), 5);
	json_decref(j);
	free(s);
}

static void test_prefix_end(void **state)
{
	uint8_t end[16];
	const uint8_t all[] = { 0xff, 0xff };
	const uint8_t tail[] = { 'a', 0xff };

	(void)state;
	assert_int_equal(etcd_prefix_end((const uint8_t *)"/secretd/", 9, end), 9);
	assert_memory_equal(end, "/secretd0", 9);
	assert_int_equal(etcd_prefix_end(tail, 2, end), 1);
	assert_int_equal(end[0], 'b');
	assert_int_equal(etcd_prefix_end(all, 2, end), 0);
}

struct lines {
	char got[8][64];
	int n;
};

static int collect(const char *msg, size_t len, void *arg)
{
	struct lines *l = arg;

	assert_true(l->n < 8 && len < 64);
	memcpy(l->got[l->n], msg, len);
	l->got[l->n][len] = '\0';
	l->n++;
	return 0;
}

static void test_stream(void **state)
{
	const char *data = "{\"a\":1}\n\n{\"b\":2}\n{\"c\":";
	struct etcd_stream s;
	struct lines l = { .n = 0 };

	(void)state;
	/* Every way of cutting the same bytes gives the same messages. */
	for (size_t cut = 0; cut <= strlen(data); cut++) {
		memset(&l, 0, sizeof(l));
		etcd_stream_init(&s, 64);
		assert_int_equal(etcd_stream_feed(&s, data, cut, collect, &l), 0);
		assert_int_equal(etcd_stream_feed(&s, data + cut, strlen(data) - cut, collect, &l), 0);
		assert_int_equal(etcd_stream_feed(&s, "3}\n", 3, collect, &l), 0);
		assert_int_equal(l.n, 3);
		assert_string_equal(l.got[0], "{\"a\":1}");
		assert_string_equal(l.got[1], "{\"b\":2}");
		assert_string_equal(l.got[2], "{\"c\":3}");
		etcd_stream_free(&s);
	}
}

static int stop_at_first(const char *msg, size_t len, void *arg)
{
	(void)msg;
	(void)len;
	(*(int *)arg)++;
	return 7;
}

static void test_stream_limits(void **state)
{
	char big[100];
	struct etcd_stream s;
	int calls = 0;

	(void)state;
	memset(big, 'x', sizeof(big));
	etcd_stream_init(&s, 64);
	/* Over the limit in one piece, or grown over it across pieces. */
	assert_int_equal(etcd_stream_feed(&s, big, sizeof(big), stop_at_first, &calls),
			 ETCD_E_PROTOCOL);
	etcd_stream_reset(&s);
	assert_int_equal(etcd_stream_feed(&s, big, 40, stop_at_first, &calls), 0);
	assert_int_equal(etcd_stream_feed(&s, big, 40, stop_at_first, &calls), ETCD_E_PROTOCOL);
	etcd_stream_reset(&s);
	/* The callback's stop value comes back, and nothing after it is read. */
	assert_int_equal(etcd_stream_feed(&s, "a\nb\n", 4, stop_at_first, &calls), 7);
	assert_int_equal(calls, 1);
	etcd_stream_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_range_real),
		cmocka_unit_test(test_range_empty_and_defaults),
		cmocka_unit_test(test_range_refused),
		cmocka_unit_test(test_not_terminated),
		cmocka_unit_test(test_txn_real),
		cmocka_unit_test(test_txn_refused),
		cmocka_unit_test(test_watch_messages),
		cmocka_unit_test(test_watch_refused),
		cmocka_unit_test(test_errors_and_token),
		cmocka_unit_test(test_status),
		cmocka_unit_test(test_requests),
		cmocka_unit_test(test_prefix_end),
		cmocka_unit_test(test_stream),
		cmocka_unit_test(test_stream_limits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
