/*
 * The wire codec: exact bytes of every message (hex vectors that pin the
 * format in proto/PROTOCOL.md), round trips, and the refusals the broker
 * and the client rely on when the peer sends something malformed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "secretd/exitcodes.h"
#include "secretd/wire.h"

#define S(lit) ((struct wire_str){ (const uint8_t *)(lit), sizeof(lit) - 1 })

/* Test helper: trusted hex text (spaces ignored) to bytes; returns length. */
static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
	size_t n = 0;
	int nib = -1;

	for (const char *p = hex; *p != '\0'; p++) {
		int v = 0;
		if (*p == ' ')
			continue;
		if (*p >= '0' && *p <= '9')
			v = *p - '0';
		else if (*p >= 'a' && *p <= 'f')
			v = *p - 'a' + 10;
		else
			fail_msg("bad hex digit in test vector: %c", *p);
		if (nib < 0) {
			nib = v;
		} else {
			assert_true(n < cap);
			out[n++] = (uint8_t)(nib << 4 | v);
			nib = -1;
		}
	}
	assert_int_equal(nib, -1);
	return n;
}

static void assert_str(struct wire_str s, const char *want)
{
	assert_int_equal(s.len, strlen(want));
	if (s.len > 0)
		assert_memory_equal(s.ptr, want, s.len);
}

/* ---- the vectors ------------------------------------------------------- */

struct req_vec {
	const char *what;
	struct wire_request req;
	const char *hex; /* the whole frame */
};

static const struct wire_str watch_one[] = { S("app/*") };
static const struct wire_str watch_two[] = { S("db/x"), S("**") };

static const struct req_vec req_vecs[] = {
	{ "ping", { .type = WIRE_PING }, "00000002 01 01" },
	{ "get latest", { .type = WIRE_GET, .name = S("db/x") },
	  "0000000c 01 02 0004 64622f78 00000000" },
	{ "get version", { .type = WIRE_GET, .name = S("db/x"), .version = 0x01020304 },
	  "0000000c 01 02 0004 64622f78 01020304" },
	{ "put", { .type = WIRE_PUT, .name = S("a"), .value = S("xyz") },
	  "0000000c 01 03 0001 61 00000003 78797a" },
	{ "put empty value", { .type = WIRE_PUT, .name = S("a"), .value = S("") },
	  "00000009 01 03 0001 61 00000000" },
	{ "put binary value", { .type = WIRE_PUT, .name = S("k"), .value = S("\0\n\xff") },
	  "0000000c 01 03 0001 6b 00000003 000aff" },
	{ "list all", { .type = WIRE_LIST, .name = S("") }, "00000004 01 04 0000" },
	{ "list glob", { .type = WIRE_LIST, .name = S("app/*") },
	  "00000009 01 04 0005 6170702f2a" },
	{ "delete", { .type = WIRE_DELETE, .name = S("a") }, "00000005 01 05 0001 61" },
	{ "whoami", { .type = WIRE_WHOAMI }, "00000002 01 06" },
	/* version 3: STATUS carries 03 */
	{ "status", { .type = WIRE_STATUS }, "00000002 03 09" },
	/* version 2: WATCH carries the version byte 02 */
	{ "watch one", { .type = WIRE_WATCH, .items = watch_one, .nitems = 1 },
	  "0000000b 02 07 0001 0005 6170702f2a" },
	{ "watch two", { .type = WIRE_WATCH, .items = watch_two, .nitems = 2 },
	  "0000000e 02 07 0002 0004 64622f78 0002 2a2a" },
};

static const struct wire_str list_items[] = { S("a"), S("b/c") };
static const struct wire_str whoami_items[] = { S("uid"), S("0"), S("pod"), S("") };
static const uint32_t watch_versions[] = { 3, 1 };

struct resp_vec {
	const char *what;
	struct wire_response resp;
	const char *hex;
};

static const struct resp_vec resp_vecs[] = {
	{ "ping", { .type = WIRE_PING, .status = WIRE_OK, .value = S("secretd") },
	  "0000000c 01 81 00 0007 73656372657464" },
	{ "get", { .type = WIRE_GET, .status = WIRE_OK, .version = 3, .value = S("hi") },
	  "0000000d 01 82 00 00000003 00000002 6869" },
	{ "put", { .type = WIRE_PUT, .status = WIRE_OK, .version = 2 },
	  "00000007 01 83 00 00000002" },
	{ "list", { .type = WIRE_LIST, .status = WIRE_OK, .items = list_items, .nitems = 2 },
	  "0000000f 01 84 00 00000002 0001 61 0003 622f63" },
	{ "list empty", { .type = WIRE_LIST, .status = WIRE_OK }, "00000007 01 84 00 00000000" },
	{ "delete", { .type = WIRE_DELETE, .status = WIRE_OK, .version = 5 },
	  "00000007 01 85 00 00000005" },
	{ "whoami",
	  { .type = WIRE_WHOAMI, .status = WIRE_OK, .items = whoami_items, .nitems = 4 },
	  "00000016 01 86 00 00000004 0003 756964 0001 30 0003 706f64 0000" },
	{ "status",
	  { .type = WIRE_STATUS, .status = WIRE_OK, .items = whoami_items, .nitems = 4 },
	  "00000016 03 89 00 00000004 0003 756964 0001 30 0003 706f64 0000" },
	{ "not found", { .type = WIRE_GET, .status = WIRE_NOT_FOUND, .value = S("not found") },
	  "0000000e 01 82 03 0009 6e6f7420666f756e64" },
	{ "denied", { .type = WIRE_DELETE, .status = WIRE_DENIED, .value = S("no") },
	  "00000007 01 85 04 0002 6e6f" },
	{ "rate limited", { .type = WIRE_PING, .status = WIRE_RATE_LIMITED, .value = S("") },
	  "00000005 01 81 07 0000" },
	/* version 2 */
	{ "watch",
	  { .type = WIRE_WATCH, .status = WIRE_OK, .items = list_items,
	    .versions = watch_versions, .nitems = 2 },
	  "00000017 02 87 00 00000002 0001 61 00000003 0003 622f63 00000001" },
	{ "watch nothing yet", { .type = WIRE_WATCH, .status = WIRE_OK },
	  "00000007 02 87 00 00000000" },
	{ "watch denied", { .type = WIRE_WATCH, .status = WIRE_DENIED, .value = S("no") },
	  "00000007 02 87 04 0002 6e6f" },
	{ "event", { .type = WIRE_EVENT, .status = WIRE_OK, .name = S("db/x"), .version = 4 },
	  "0000000d 02 88 00 0004 64622f78 00000004" },
	{ "event deleted", { .type = WIRE_EVENT, .status = WIRE_OK, .name = S("a"), .version = 0 },
	  "0000000a 02 88 00 0001 61 00000000" },
	{ "event end", { .type = WIRE_EVENT, .status = WIRE_RATE_LIMITED, .value = S("too slow") },
	  "0000000d 02 88 07 0008 746f6f20736c6f77" },
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---- encoding: exact bytes --------------------------------------------- */

static void test_request_vectors(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(req_vecs); i++) {
		uint8_t want[256], got[256];
		size_t n = unhex(req_vecs[i].hex, want, sizeof(want));
		long w;

		print_message("request %s\n", req_vecs[i].what);
		assert_int_equal(wire_request_size(&req_vecs[i].req), n);
		w = wire_encode_request(&req_vecs[i].req, got, sizeof(got));
		assert_int_equal(w, (long)n);
		assert_memory_equal(got, want, n);
	}
}

static void test_response_vectors(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(resp_vecs); i++) {
		uint8_t want[256], got[256];
		size_t n = unhex(resp_vecs[i].hex, want, sizeof(want));
		long w;

		print_message("response %s\n", resp_vecs[i].what);
		assert_int_equal(wire_response_size(&resp_vecs[i].resp), n);
		w = wire_encode_response(&resp_vecs[i].resp, got, sizeof(got));
		assert_int_equal(w, (long)n);
		assert_memory_equal(got, want, n);
	}
}

/* ---- round trips ------------------------------------------------------- */

static void same_request(const struct wire_request *a, const struct wire_request *b)
{
	assert_int_equal(a->type, b->type);
	assert_int_equal(a->name.len, b->name.len);
	if (a->name.len)
		assert_memory_equal(a->name.ptr, b->name.ptr, a->name.len);
	if (a->type == WIRE_GET)
		assert_int_equal(a->version, b->version);
	if (a->type == WIRE_PUT) {
		assert_int_equal(a->value.len, b->value.len);
		if (a->value.len)
			assert_memory_equal(a->value.ptr, b->value.ptr, a->value.len);
	}
	if (a->type == WIRE_WATCH) {
		struct wire_str cur = b->items_raw, item;

		assert_null(b->items);
		assert_int_equal(b->nitems, a->nitems);
		for (size_t i = 0; i < a->nitems; i++) {
			assert_true(wire_items_next(&cur, &item));
			assert_int_equal(item.len, a->items[i].len);
			assert_memory_equal(item.ptr, a->items[i].ptr, item.len);
		}
		assert_false(wire_items_next(&cur, &item));
	}
}

static void test_request_round_trip(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(req_vecs); i++) {
		uint8_t buf[256];
		struct wire_request got;
		uint32_t len;
		long n = wire_encode_request(&req_vecs[i].req, buf, sizeof(buf));

		assert_true(n > 0);
		assert_int_equal(wire_frame_length(buf, WIRE_MAX_REQUEST, &len), 0);
		assert_int_equal(len + WIRE_HEADER_SIZE, (size_t)n);
		assert_int_equal(wire_decode_request(buf + WIRE_HEADER_SIZE, len, &got), 0);
		same_request(&req_vecs[i].req, &got);
	}
}

static void same_items(const struct wire_response *want, const struct wire_response *got)
{
	struct wire_str cur = got->items_raw, item;

	assert_null(got->items);
	assert_int_equal(got->nitems, want->nitems);
	for (size_t i = 0; i < want->nitems; i++) {
		assert_true(wire_items_next(&cur, &item));
		assert_int_equal(item.len, want->items[i].len);
		if (item.len)
			assert_memory_equal(item.ptr, want->items[i].ptr, item.len);
	}
	assert_false(wire_items_next(&cur, &item));
	assert_int_equal(cur.len, 0);
}

static void same_pairs(const struct wire_response *want, const struct wire_response *got)
{
	struct wire_str cur = got->items_raw, name;
	uint32_t version;

	assert_null(got->items);
	assert_null(got->versions);
	assert_int_equal(got->nitems, want->nitems);
	for (size_t i = 0; i < want->nitems; i++) {
		assert_true(wire_pairs_next(&cur, &name, &version));
		assert_int_equal(name.len, want->items[i].len);
		assert_memory_equal(name.ptr, want->items[i].ptr, name.len);
		assert_int_equal(version, want->versions[i]);
	}
	assert_false(wire_pairs_next(&cur, &name, &version));
	assert_int_equal(cur.len, 0);
}

static void test_response_round_trip(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(resp_vecs); i++) {
		const struct wire_response *want = &resp_vecs[i].resp;
		uint8_t buf[256];
		struct wire_response got;
		uint32_t len;
		long n = wire_encode_response(want, buf, sizeof(buf));

		assert_true(n > 0);
		assert_int_equal(wire_frame_length(buf, WIRE_MAX_RESPONSE, &len), 0);
		assert_int_equal(wire_decode_response(buf + WIRE_HEADER_SIZE, len, &got), 0);
		assert_int_equal(got.type, want->type);
		assert_int_equal(got.status, want->status);
		assert_int_equal(got.value.len, want->value.len);
		if (want->value.len)
			assert_memory_equal(got.value.ptr, want->value.ptr, want->value.len);
		if (want->status == WIRE_OK && want->type != WIRE_PING)
			assert_int_equal(got.version, want->version);
		if (want->status == WIRE_OK &&
		    (want->type == WIRE_LIST || want->type == WIRE_WHOAMI))
			same_items(want, &got);
		if (want->status == WIRE_OK && want->type == WIRE_WATCH)
			same_pairs(want, &got);
		if (want->status == WIRE_OK && want->type == WIRE_EVENT)
			assert_str(got.name, (const char *)want->name.ptr);
	}
}

/* The largest value survives a round trip; one byte more is refused. */
static void test_max_value(void **state)
{
	struct wire_request req = { .type = WIRE_PUT, .name = S("big") };
	struct wire_request got;
	size_t cap = WIRE_HEADER_SIZE + WIRE_MAX_REQUEST;
	uint8_t *buf = malloc(cap);
	uint8_t *val = calloc(1, WIRE_MAX_VALUE + 1);
	long n;

	(void)state;
	assert_non_null(buf);
	assert_non_null(val);
	val[WIRE_MAX_VALUE - 1] = 0x5a;
	req.value.ptr = val;
	req.value.len = WIRE_MAX_VALUE;
	n = wire_encode_request(&req, buf, cap);
	assert_int_equal(n, (long)wire_request_size(&req));
	assert_int_equal(wire_decode_request(buf + 4, (size_t)n - 4, &got), 0);
	assert_int_equal(got.value.len, WIRE_MAX_VALUE);
	assert_int_equal(got.value.ptr[WIRE_MAX_VALUE - 1], 0x5a);

	req.value.len = WIRE_MAX_VALUE + 1;
	assert_int_equal(wire_encode_request(&req, buf, cap), WIRE_E_TOOBIG);
	assert_int_equal(wire_request_size(&req), 0);
	free(buf);
	free(val);
}

/* ---- decoding failures ------------------------------------------------- */

static void test_truncated_everywhere(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(req_vecs); i++) {
		uint8_t f[256];
		size_t n = unhex(req_vecs[i].hex, f, sizeof(f));
		struct wire_request r;

		for (size_t k = 0; k < n - 4; k++) {
			/* A copy of exactly k bytes so ASan catches any over-read. */
			uint8_t *b = malloc(k ? k : 1);
			assert_non_null(b);
			memcpy(b, f + 4, k);
			assert_int_equal(wire_decode_request(b, k, &r),
					 k == 0 ? WIRE_E_EMPTY : WIRE_E_TRUNCATED);
			free(b);
		}
	}
	for (size_t i = 0; i < NELEM(resp_vecs); i++) {
		uint8_t f[256];
		size_t n = unhex(resp_vecs[i].hex, f, sizeof(f));
		struct wire_response r;

		for (size_t k = 0; k < n - 4; k++) {
			uint8_t *b = malloc(k ? k : 1);
			assert_non_null(b);
			memcpy(b, f + 4, k);
			assert_int_equal(wire_decode_response(b, k, &r),
					 k == 0 ? WIRE_E_EMPTY : WIRE_E_TRUNCATED);
			free(b);
		}
	}
}

static void test_trailing(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(req_vecs); i++) {
		uint8_t f[256];
		size_t n = unhex(req_vecs[i].hex, f, sizeof(f) - 1);
		struct wire_request r;

		f[n] = 0;
		assert_int_equal(wire_decode_request(f + 4, n - 3, &r), WIRE_E_TRAILING);
	}
	for (size_t i = 0; i < NELEM(resp_vecs); i++) {
		uint8_t f[256];
		size_t n = unhex(resp_vecs[i].hex, f, sizeof(f) - 1);
		struct wire_response r;

		f[n] = 0;
		assert_int_equal(wire_decode_response(f + 4, n - 3, &r), WIRE_E_TRAILING);
	}
}

static int dec_req(const char *hex)
{
	uint8_t b[256];
	struct wire_request r;

	return wire_decode_request(b, unhex(hex, b, sizeof(b)), &r);
}

static int dec_resp(const char *hex)
{
	uint8_t b[256];
	struct wire_response r;

	return wire_decode_response(b, unhex(hex, b, sizeof(b)), &r);
}

static void test_bad_version_type_status(void **state)
{
	(void)state;
	assert_int_equal(dec_req("00 01"), WIRE_E_VERSION);
	assert_int_equal(dec_req("02 01"), WIRE_E_VERSION);
	assert_int_equal(dec_req("ff"), WIRE_E_TRUNCATED); /* no type to judge it by */
	assert_int_equal(dec_req("03 01"), WIRE_E_VERSION);
	assert_int_equal(dec_resp("02 81 00 0000"), WIRE_E_VERSION);

	assert_int_equal(dec_req("01 00"), WIRE_E_TYPE);
	assert_int_equal(dec_req("01 08"), WIRE_E_TYPE);
	assert_int_equal(dec_req("02 08"), WIRE_E_TYPE); /* EVENT is response-only */
	assert_int_equal(dec_req("02 09"), WIRE_E_VERSION); /* STATUS is version 3 */
	assert_int_equal(dec_req("03 0a"), WIRE_E_TYPE);
	assert_int_equal(dec_req("01 3f"), WIRE_E_TYPE);
	assert_int_equal(dec_req("01 81"), WIRE_E_TYPE); /* a response is no request */
	assert_int_equal(dec_resp("01 01 00 0000"), WIRE_E_TYPE); /* nor the reverse */
	assert_int_equal(dec_resp("01 80 00"), WIRE_E_TYPE);
	assert_int_equal(dec_resp("01 8a 00"), WIRE_E_TYPE);
	assert_int_equal(dec_resp("02 89 00"), WIRE_E_VERSION);
	assert_int_equal(dec_resp("03 8a 00"), WIRE_E_TYPE);
	assert_int_equal(dec_resp("01 ff 00"), WIRE_E_TYPE);

	assert_int_equal(dec_resp("01 81 05 0000"), WIRE_E_STATUS);
	assert_int_equal(dec_resp("01 81 08 0000"), WIRE_E_STATUS);
	assert_int_equal(dec_resp("01 82 ff 0000"), WIRE_E_STATUS);
}

static void test_oversized_fields(void **state)
{
	(void)state;
	/* name 1024 bytes is the codec's limit; 1025 is refused before reading */
	assert_int_equal(dec_req("01 02 0401"), WIRE_E_TOOBIG);
	assert_int_equal(dec_req("01 02 ffff"), WIRE_E_TOOBIG);
	assert_int_equal(dec_req("01 04 0401"), WIRE_E_TOOBIG);
	assert_int_equal(dec_req("01 05 0401"), WIRE_E_TOOBIG);
	assert_int_equal(dec_req("01 02 0400"), WIRE_E_TRUNCATED);
	/* a value length past WIRE_MAX_VALUE, up to the 4 GiB a u32 can say */
	assert_int_equal(dec_req("01 03 0001 61 00100001"), WIRE_E_TOOBIG);
	assert_int_equal(dec_req("01 03 0001 61 ffffffff"), WIRE_E_TOOBIG);
	assert_int_equal(dec_req("01 03 0001 61 00100000"), WIRE_E_TRUNCATED);
	assert_int_equal(dec_resp("01 82 00 00000001 ffffffff"), WIRE_E_TOOBIG);
	/* an error message past WIRE_MAX_MESSAGE */
	assert_int_equal(dec_resp("01 82 01 0401"), WIRE_E_TOOBIG);
	/* item counts the body cannot hold */
	assert_int_equal(dec_resp("01 84 00 ffffffff 0001 61"), WIRE_E_TRUNCATED);
	assert_int_equal(dec_resp("01 84 00 00000002 0001 61"), WIRE_E_TRUNCATED);
	assert_int_equal(dec_resp("01 84 00 00000001 0005 61"), WIRE_E_TRUNCATED);
	/* whoami is key/value pairs: an odd count is a missing value */
	assert_int_equal(dec_resp("01 86 00 00000001 0001 61"), WIRE_E_TRUNCATED);
}

static void test_oversized_bodies(void **state)
{
	size_t n = WIRE_MAX_RESPONSE + 1;
	uint8_t *b = calloc(1, n);
	struct wire_request req;
	struct wire_response resp;

	(void)state;
	assert_non_null(b);
	b[0] = WIRE_VERSION;
	b[1] = WIRE_PING;
	assert_int_equal(wire_decode_request(b, WIRE_MAX_REQUEST + 1, &req), WIRE_E_TOOBIG);
	b[1] = WIRE_PING | WIRE_RESPONSE_BIT;
	assert_int_equal(wire_decode_response(b, n, &resp), WIRE_E_TOOBIG);
	free(b);
}

static void test_frame_length(void **state)
{
	uint8_t h[4];
	uint32_t len = 77;

	(void)state;
	unhex("00000000", h, 4);
	assert_int_equal(wire_frame_length(h, WIRE_MAX_REQUEST, &len), WIRE_E_EMPTY);
	unhex("ffffffff", h, 4); /* 4 GiB */
	assert_int_equal(wire_frame_length(h, WIRE_MAX_REQUEST, &len), WIRE_E_TOOBIG);
	assert_int_equal(wire_frame_length(h, WIRE_MAX_RESPONSE, &len), WIRE_E_TOOBIG);
	unhex("00100201", h, 4); /* WIRE_MAX_REQUEST + 1 */
	assert_int_equal(wire_frame_length(h, WIRE_MAX_REQUEST, &len), WIRE_E_TOOBIG);
	assert_int_equal(len, 77);
	unhex("00100200", h, 4);
	assert_int_equal(wire_frame_length(h, WIRE_MAX_REQUEST, &len), 0);
	assert_int_equal(len, WIRE_MAX_REQUEST);
	unhex("00000001", h, 4);
	assert_int_equal(wire_frame_length(h, WIRE_MAX_REQUEST, &len), 0);
	assert_int_equal(len, 1);
	/* zero-length body */
	assert_int_equal(dec_req(""), WIRE_E_EMPTY);
	assert_int_equal(dec_resp(""), WIRE_E_EMPTY);
}

static void test_items_next_bounds(void **state)
{
	uint8_t b[8];
	struct wire_str cur, item;

	(void)state;
	/* claims 5 bytes, holds 2 */
	cur.len = unhex("0005 6162", b, sizeof(b));
	cur.ptr = b;
	assert_false(wire_items_next(&cur, &item));
	/* a lone length byte */
	cur.len = 1;
	assert_false(wire_items_next(&cur, &item));
	cur.len = 0;
	assert_false(wire_items_next(&cur, &item));
	/* one good string, then a bad one */
	cur.len = unhex("0001 61 0009 62", b, sizeof(b));
	cur.ptr = b;
	assert_true(wire_items_next(&cur, &item));
	assert_str(item, "a");
	assert_false(wire_items_next(&cur, &item));
}

/* ---- encoding failures ------------------------------------------------- */

static void test_encode_refusals(void **state)
{
	uint8_t buf[2048];
	char name[1025];
	struct wire_request req = { .type = WIRE_GET };
	struct wire_response resp = { .type = WIRE_GET, .status = WIRE_ERROR };
	size_t size;

	(void)state;
	memset(name, 'a', sizeof(name));
	req.name.ptr = (const uint8_t *)name;
	req.name.len = 1024;
	size = wire_request_size(&req);
	assert_int_equal(size, 4 + 2 + 2 + 1024 + 4);
	assert_int_equal(wire_encode_request(&req, buf, size - 1), WIRE_E_SPACE);
	assert_int_equal(wire_encode_request(&req, buf, size), (long)size);
	req.name.len = 1025;
	assert_int_equal(wire_encode_request(&req, buf, sizeof(buf)), WIRE_E_TOOBIG);

	req.type = WIRE_EVENT; /* not a request */
	req.name.len = 1;
	assert_int_equal(wire_encode_request(&req, buf, sizeof(buf)), WIRE_E_TYPE);
	assert_int_equal(wire_request_size(&req), 0);

	resp.value.ptr = (const uint8_t *)name;
	resp.value.len = WIRE_MAX_MESSAGE;
	assert_true(wire_encode_response(&resp, buf, sizeof(buf)) > 0);
	resp.value.len = WIRE_MAX_MESSAGE + 1;
	assert_int_equal(wire_encode_response(&resp, buf, sizeof(buf)), WIRE_E_TOOBIG);
	resp.value.len = 1;
	resp.status = 5;
	assert_int_equal(wire_encode_response(&resp, buf, sizeof(buf)), WIRE_E_STATUS);
	resp.status = WIRE_OK;
	resp.type = 0x80 | WIRE_GET;
	assert_int_equal(wire_encode_response(&resp, buf, sizeof(buf)), WIRE_E_TYPE);
	resp.type = WIRE_WHOAMI;
	resp.items = list_items;
	resp.nitems = 1;
	assert_int_equal(wire_encode_response(&resp, buf, sizeof(buf)), WIRE_E_TRUNCATED);
	resp.items = NULL;
	resp.nitems = 2;
	assert_int_equal(wire_encode_response(&resp, buf, sizeof(buf)), WIRE_E_TRUNCATED);
}

/* ---- version 2: WATCH and EVENT ---------------------------------------- */

/*
 * The version byte is the lowest version that defines the type: 1 for the
 * first six types (so a version-1 peer sees no change), 2 for WATCH and
 * EVENT; any other byte is refused so that each message has one encoding.
 */
static void test_type_versions(void **state)
{
	(void)state;
	assert_int_equal(WIRE_VERSION, 3);
	for (uint8_t t = WIRE_PING; t <= WIRE_WHOAMI; t++)
		assert_int_equal(wire_type_version(t), 1);
	assert_int_equal(wire_type_version(WIRE_WATCH), 2);
	assert_int_equal(wire_type_version(WIRE_EVENT), 2);
	assert_int_equal(wire_type_version(0), 0);
	assert_int_equal(wire_type_version(WIRE_STATUS), 3);
	assert_int_equal(wire_type_version(10), 0);
	assert_int_equal(dec_req("02 09"), WIRE_E_VERSION);
	assert_int_equal(dec_req("03 09"), 0);
	/* v1 types under v2, and the reverse */
	assert_int_equal(dec_req("02 01"), WIRE_E_VERSION);
	assert_int_equal(dec_req("02 02 0001 61 00000000"), WIRE_E_VERSION);
	assert_int_equal(dec_resp("02 81 00 0000"), WIRE_E_VERSION);
	assert_int_equal(dec_req("01 07 0001 0001 61"), WIRE_E_VERSION);
	assert_int_equal(dec_req("03 07 0001 0001 61"), WIRE_E_VERSION);
	assert_int_equal(dec_req("00 07 0001 0001 61"), WIRE_E_VERSION);
	assert_int_equal(dec_resp("01 87 00 00000000"), WIRE_E_VERSION);
	assert_int_equal(dec_resp("01 88 00 0001 61 00000001"), WIRE_E_VERSION);
	assert_int_equal(dec_resp("03 88 00 0001 61 00000001"), WIRE_E_VERSION);
	/* the good ones, for contrast */
	assert_int_equal(dec_req("02 07 0001 0001 61"), 0);
	assert_int_equal(dec_resp("02 88 00 0001 61 00000001"), 0);
}

static void test_watch_decode_refusals(void **state)
{
	uint8_t b[300];
	struct wire_request r;
	size_t n;

	(void)state;
	/* pattern counts: 1..64 */
	assert_int_equal(dec_req("02 07 0000"), WIRE_E_FIELD);
	assert_int_equal(dec_req("02 07 0041 0001 61"), WIRE_E_TOOBIG);
	assert_int_equal(dec_req("02 07 ffff"), WIRE_E_TOOBIG);
	assert_int_equal(dec_req("02 07 0002 0001 61"), WIRE_E_TRUNCATED);
	assert_int_equal(dec_req("02 07 0001"), WIRE_E_TRUNCATED);
	/* a pattern: 1..255 bytes of name bytes and '*' */
	assert_int_equal(dec_req("02 07 0001 0000 00"), WIRE_E_FIELD);
	assert_int_equal(dec_req("02 07 0001 0100 00"), WIRE_E_TOOBIG);
	assert_int_equal(dec_req("02 07 0001 0001 20"), WIRE_E_FIELD);
	assert_int_equal(dec_req("02 07 0001 0002 610a"), WIRE_E_FIELD);
	assert_int_equal(dec_req("02 07 0001 0001 00"), WIRE_E_FIELD);
	assert_int_equal(dec_req("02 07 0002 0001 61 0001 ff"), WIRE_E_FIELD);
	assert_int_equal(dec_req("02 07 0001 0001 2a"), 0);
	/* 255 bytes is the longest pattern */
	n = unhex("02 07 0001 00ff", b, sizeof(b));
	memset(b + n, 'a', 255);
	assert_int_equal(wire_decode_request(b, n + 255, &r), 0);
	assert_int_equal(r.nitems, 1);
	/* a WATCH answer: names without '*', each with a version */
	assert_int_equal(dec_resp("02 87 00 ffffffff 0001 61 00000001"), WIRE_E_TRUNCATED);
	assert_int_equal(dec_resp("02 87 00 00000002 0001 61 00000001"), WIRE_E_TRUNCATED);
	assert_int_equal(dec_resp("02 87 00 00000001 0000 00000001 00"), WIRE_E_FIELD);
	assert_int_equal(dec_resp("02 87 00 00000001 0001 2a 00000001"), WIRE_E_FIELD);
	assert_int_equal(dec_resp("02 87 00 00000001 0100 00000001 00"), WIRE_E_TOOBIG);
	assert_int_equal(dec_resp("02 87 00 00000001 0002 6162 000001"), WIRE_E_TRUNCATED);
	/* an EVENT */
	assert_int_equal(dec_resp("02 88 00 0000 00000001"), WIRE_E_FIELD);
	assert_int_equal(dec_resp("02 88 00 0001 0a 00000001"), WIRE_E_FIELD);
	assert_int_equal(dec_resp("02 88 00 0100"), WIRE_E_TOOBIG);
	assert_int_equal(dec_resp("02 88 00 0001 61 000001"), WIRE_E_TRUNCATED);
	assert_int_equal(dec_resp("02 88 03 0401"), WIRE_E_TOOBIG); /* message limit */
}

static void test_watch_encode_refusals(void **state)
{
	uint8_t buf[1024];
	char big[256];
	struct wire_str pats[65];
	struct wire_request req = { .type = WIRE_WATCH, .items = pats };
	struct wire_response resp = { .type = WIRE_WATCH, .status = WIRE_OK };
	static const uint32_t one_version[] = { 7 };

	(void)state;
	memset(big, 'x', sizeof(big));
	for (size_t i = 0; i < 65; i++)
		pats[i] = S("a");
	req.nitems = 0;
	assert_int_equal(wire_encode_request(&req, buf, sizeof(buf)), WIRE_E_FIELD);
	assert_int_equal(wire_request_size(&req), 0);
	req.nitems = 65;
	assert_int_equal(wire_encode_request(&req, buf, sizeof(buf)), WIRE_E_TOOBIG);
	req.nitems = 64;
	assert_int_equal(wire_encode_request(&req, buf, sizeof(buf)), 4 + 2 + 2 + 64 * 3);
	req.nitems = 1;
	pats[0] = (struct wire_str){ (const uint8_t *)big, 255 };
	assert_int_equal(wire_encode_request(&req, buf, sizeof(buf)), 4 + 2 + 2 + 2 + 255);
	pats[0].len = 256;
	assert_int_equal(wire_encode_request(&req, buf, sizeof(buf)), WIRE_E_TOOBIG);
	pats[0] = S("a b");
	assert_int_equal(wire_encode_request(&req, buf, sizeof(buf)), WIRE_E_FIELD);
	pats[0] = S("");
	assert_int_equal(wire_encode_request(&req, buf, sizeof(buf)), WIRE_E_FIELD);
	req.items = NULL;
	assert_int_equal(wire_encode_request(&req, buf, sizeof(buf)), WIRE_E_TRUNCATED);

	resp.items = list_items;
	resp.nitems = 1;
	assert_int_equal(wire_encode_response(&resp, buf, sizeof(buf)), WIRE_E_TRUNCATED);
	resp.versions = one_version;
	assert_int_equal(wire_encode_response(&resp, buf, sizeof(buf)), 4 + 3 + 4 + 3 + 4);
	resp.items = pats; /* "" */
	assert_int_equal(wire_encode_response(&resp, buf, sizeof(buf)), WIRE_E_FIELD);
	pats[0] = S("a/*");
	assert_int_equal(wire_encode_response(&resp, buf, sizeof(buf)), WIRE_E_FIELD);

	resp = (struct wire_response){ .type = WIRE_EVENT, .status = WIRE_OK };
	assert_int_equal(wire_encode_response(&resp, buf, sizeof(buf)), WIRE_E_FIELD);
	resp.name = S("a\n");
	assert_int_equal(wire_encode_response(&resp, buf, sizeof(buf)), WIRE_E_FIELD);
	resp.name = S("db/x");
	assert_int_equal(wire_encode_response(&resp, buf, 16), WIRE_E_SPACE);
	assert_int_equal(wire_encode_response(&resp, buf, 17), 17);
}

static void test_pairs_next_bounds(void **state)
{
	uint8_t b[16];
	struct wire_str cur, name;
	uint32_t v = 99;

	(void)state;
	cur.len = unhex("0005 6162", b, sizeof(b));
	cur.ptr = b;
	assert_false(wire_pairs_next(&cur, &name, &v));
	/* a name without its whole version */
	cur.len = unhex("0001 61 000000", b, sizeof(b));
	cur.ptr = b;
	assert_false(wire_pairs_next(&cur, &name, &v));
	assert_int_equal(v, 99);
	cur.len = unhex("0001 61 00000009 0001", b, sizeof(b));
	cur.ptr = b;
	assert_true(wire_pairs_next(&cur, &name, &v));
	assert_str(name, "a");
	assert_int_equal(v, 9);
	assert_false(wire_pairs_next(&cur, &name, &v));
	cur.ptr = NULL;
	cur.len = 0;
	assert_false(wire_pairs_next(&cur, &name, &v));
}

/* ---- names of things --------------------------------------------------- */

static void test_type_names(void **state)
{
	(void)state;
	assert_string_equal(wire_type_name(WIRE_PING), "ping");
	assert_string_equal(wire_type_name(WIRE_GET), "get");
	assert_string_equal(wire_type_name(WIRE_PUT), "put");
	assert_string_equal(wire_type_name(WIRE_LIST), "list");
	assert_string_equal(wire_type_name(WIRE_DELETE), "rm");
	assert_string_equal(wire_type_name(WIRE_WHOAMI), "whoami");
	assert_null(wire_type_name(0));
	assert_string_equal(wire_type_name(WIRE_WATCH), "watch");
	assert_null(wire_type_name(WIRE_EVENT));
	assert_string_equal(wire_type_name(WIRE_STATUS), "status");
	assert_null(wire_type_name(10));
	assert_null(wire_type_name(WIRE_GET | WIRE_RESPONSE_BIT));
}

static void test_strerror(void **state)
{
	(void)state;
	for (int e = WIRE_E_FIELD; e <= WIRE_E_TRUNCATED; e++) {
		assert_non_null(wire_strerror(e));
		for (int f = e + 1; f <= WIRE_E_TRUNCATED; f++)
			assert_string_not_equal(wire_strerror(e), wire_strerror(f));
	}
	assert_non_null(wire_strerror(-100));
}

static void test_exit_codes(void **state)
{
	(void)state;
	assert_int_equal(exit_for_status(WIRE_OK), 0);
	assert_int_equal(exit_for_status(WIRE_ERROR), 1);
	assert_int_equal(exit_for_status(WIRE_INVALID), 1);
	assert_int_equal(exit_for_status(WIRE_NOT_FOUND), 3);
	assert_int_equal(exit_for_status(WIRE_DENIED), 4);
	assert_int_equal(exit_for_status(WIRE_UNAVAILABLE), 6);
	assert_int_equal(exit_for_status(WIRE_RATE_LIMITED), 1);
	assert_int_equal(exit_for_status(5), 1);
	assert_int_equal(exit_for_status(200), 1);
	assert_int_equal(exit_for_status(-1), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_vectors),
		cmocka_unit_test(test_response_vectors),
		cmocka_unit_test(test_request_round_trip),
		cmocka_unit_test(test_response_round_trip),
		cmocka_unit_test(test_max_value),
		cmocka_unit_test(test_truncated_everywhere),
		cmocka_unit_test(test_trailing),
		cmocka_unit_test(test_bad_version_type_status),
		cmocka_unit_test(test_oversized_fields),
		cmocka_unit_test(test_oversized_bodies),
		cmocka_unit_test(test_frame_length),
		cmocka_unit_test(test_items_next_bounds),
		cmocka_unit_test(test_encode_refusals),
		cmocka_unit_test(test_type_versions),
		cmocka_unit_test(test_watch_decode_refusals),
		cmocka_unit_test(test_watch_encode_refusals),
		cmocka_unit_test(test_pairs_next_bounds),
		cmocka_unit_test(test_type_names),
		cmocka_unit_test(test_strerror),
		cmocka_unit_test(test_exit_codes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
