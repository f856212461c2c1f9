/*
 * buffers.c: small buffers from guarded slabs, wiped when given back; large
 * ones within a budget whose last part only answers may take; large ones
 * freed (the budget comes back; ASan sees a leak or a double free).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "buffers.h"

#define KIB 1024u

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != 0)
			return false;
	return true;
}

static void test_small_wiped(void **state)
{
	struct buffers *b = buffers_new(1024 * KIB, 256 * KIB);
	size_t cap = 100;
	uint8_t *buf, *again;

	(void)state;
	assert_non_null(b);
	buf = buffers_get(b, &cap, BUFFERS_REQUEST);
	assert_non_null(buf);
	assert_int_equal(cap, BUFFERS_SMALL);
	assert_true(all_zero(buf, cap));
	memset(buf, 0xa5, cap);
	buffers_put(b, buf, cap);
	/* Past the free list's link, nothing of the old content is left. */
	assert_true(all_zero(buf + sizeof(void *), cap - sizeof(void *)));
	cap = BUFFERS_SMALL;
	again = buffers_get(b, &cap, BUFFERS_REPLY);
	assert_ptr_equal(again, buf); /* the last one given back comes first */
	assert_true(all_zero(again, cap));
	buffers_put(b, again, cap);
	buffers_put(b, NULL, 0);
	buffers_free(b);
}

/* Given back with its dirty length: those bytes are wiped, the buffer zero again. */
static void test_small_dirty(void **state)
{
	struct buffers *b = buffers_new(1024 * KIB, 256 * KIB);
	size_t cap = 100;
	uint8_t *buf, *again;

	(void)state;
	assert_non_null(b);
	buf = buffers_get(b, &cap, BUFFERS_REPLY);
	assert_non_null(buf);
	memset(buf, 0xa5, 300);
	buffers_put_dirty(b, buf, cap, 300);
	cap = 1;
	again = buffers_get(b, &cap, BUFFERS_REPLY);
	assert_ptr_equal(again, buf);
	assert_true(all_zero(again, cap));
	/* More than the buffer holds is all of it. */
	memset(again, 0x5a, cap);
	buffers_put_dirty(b, again, cap, (size_t)-1);
	cap = 1;
	buf = buffers_get(b, &cap, BUFFERS_REPLY);
	assert_true(all_zero(buf, cap));
	buffers_put(b, buf, cap);
	buffers_free(b);
}

/* More than a slab's worth: distinct, whole, and all given back. */
static void test_many_small(void **state)
{
	struct buffers *b = buffers_new(1024 * KIB, 256 * KIB);
	static uint8_t *bufs[300];

	(void)state;
	for (size_t i = 0; i < 300; i++) {
		size_t cap = 1 + i % BUFFERS_SMALL;

		bufs[i] = buffers_get(b, &cap, BUFFERS_REQUEST);
		assert_non_null(bufs[i]);
		assert_int_equal(cap, BUFFERS_SMALL);
		memset(bufs[i], (int)(i & 0xff), cap);
	}
	for (size_t i = 0; i < 300; i++) {
		assert_int_equal(bufs[i][0], (uint8_t)i);
		assert_int_equal(bufs[i][BUFFERS_SMALL - 1], (uint8_t)i);
	}
	for (size_t i = 0; i < 300; i++)
		buffers_put(b, bufs[i], BUFFERS_SMALL);
	buffers_free(b);
}

/* Requests may take budget - reserve; answers the whole budget. */
static void test_budget_and_reserve(void **state)
{
	struct buffers *b = buffers_new(1024 * KIB, 256 * KIB);
	size_t c1 = 512 * KIB, c2 = 256 * KIB, c3 = 8 * KIB, c4 = 8 * KIB, c5 = 248 * KIB,
	       c6 = 8 * KIB;
	uint8_t *r1, *r2, *r3, *a1, *a2, *a3;

	(void)state;
	r1 = buffers_get(b, &c1, BUFFERS_REQUEST);
	r2 = buffers_get(b, &c2, BUFFERS_REQUEST);
	assert_non_null(r1);
	assert_non_null(r2);
	assert_int_equal(c1, 512 * KIB); /* a large buffer is the size asked */
	memset(r1, 1, c1);
	memset(r2, 2, c2);
	/* 768 KiB of requests: the rest is the answers'. */
	r3 = buffers_get(b, &c3, BUFFERS_REQUEST);
	assert_null(r3);
	a1 = buffers_get(b, &c4, BUFFERS_REPLY);
	assert_non_null(a1);
	a2 = buffers_get(b, &c5, BUFFERS_REPLY);
	assert_non_null(a2);
	/* The whole budget is out: nothing more for anyone. */
	a3 = buffers_get(b, &c6, BUFFERS_REPLY);
	assert_null(a3);
	/* Small buffers are not counted against the budget. */
	{
		size_t cap = 1;
		uint8_t *s = buffers_get(b, &cap, BUFFERS_REQUEST);

		assert_non_null(s);
		buffers_put(b, s, cap);
	}
	/*
	 * A request given back: 256 KiB free, but answers hold the rest of
	 * the requests' part, so only answers may take it.
	 */
	buffers_put(b, r2, c2);
	c3 = 8 * KIB;
	assert_null(buffers_get(b, &c3, BUFFERS_REQUEST));
	c6 = 256 * KIB;
	a3 = buffers_get(b, &c6, BUFFERS_REPLY);
	assert_non_null(a3);
	buffers_put(b, a3, c6);
	/* The answers go: requests have their 768 KiB again. */
	buffers_put(b, a1, c4);
	buffers_put(b, a2, c5);
	c3 = 256 * KIB;
	r3 = buffers_get(b, &c3, BUFFERS_REQUEST);
	assert_non_null(r3);
	c2 = 8 * KIB;
	assert_null(buffers_get(b, &c2, BUFFERS_REQUEST));
	buffers_put(b, r3, c3);
	buffers_put(b, r1, c1);
	buffers_free(b);
}

/* Answers holding more than requests may have: requests refused, answers not. */
static void test_requests_refused_before_replies(void **state)
{
	struct buffers *b = buffers_new(1024 * KIB, 256 * KIB);
	size_t big = 900 * KIB, req = 8 * KIB, rep = 8 * KIB;
	uint8_t *a, *r, *a2;

	(void)state;
	a = buffers_get(b, &big, BUFFERS_REPLY);
	assert_non_null(a);
	r = buffers_get(b, &req, BUFFERS_REQUEST);
	assert_null(r);
	a2 = buffers_get(b, &rep, BUFFERS_REPLY);
	assert_non_null(a2);
	buffers_put(b, a2, rep);
	buffers_put(b, a, big);
	r = buffers_get(b, &req, BUFFERS_REQUEST);
	assert_non_null(r);
	buffers_put(b, r, req);
	buffers_free(b);
}

/* Large buffers go back to the system: the budget can be taken again and again. */
static void test_big_freed(void **state)
{
	struct buffers *b = buffers_new(1024 * KIB, 256 * KIB);

	(void)state;
	for (int round = 0; round < 50; round++) {
		size_t cap = 768 * KIB, cap2 = 256 * KIB;
		uint8_t *r = buffers_get(b, &cap, BUFFERS_REQUEST);
		uint8_t *a = buffers_get(b, &cap2, BUFFERS_REPLY);

		assert_non_null(r);
		assert_non_null(a);
		r[0] = r[cap - 1] = 0x5a;
		buffers_put(b, r, cap);
		buffers_put(b, a, cap2);
	}
	/* One byte over the small size is a large buffer. */
	{
		size_t cap = BUFFERS_SMALL + 1;
		uint8_t *r = buffers_get(b, &cap, BUFFERS_REQUEST);

		assert_non_null(r);
		assert_int_equal(cap, BUFFERS_SMALL + 1);
		buffers_put(b, r, cap);
	}
	buffers_free(b);
}

/* A reserve larger than the budget leaves requests nothing large. */
static void test_reserve_clamped(void **state)
{
	struct buffers *b = buffers_new(64 * KIB, 128 * KIB);
	size_t req = 8 * KIB, rep = 64 * KIB;
	uint8_t *r, *a;

	(void)state;
	r = buffers_get(b, &req, BUFFERS_REQUEST);
	assert_null(r);
	a = buffers_get(b, &rep, BUFFERS_REPLY);
	assert_non_null(a);
	buffers_put(b, a, rep);
	buffers_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_small_wiped),
		cmocka_unit_test(test_small_dirty),
		cmocka_unit_test(test_many_small),
		cmocka_unit_test(test_budget_and_reserve),
		cmocka_unit_test(test_requests_refused_before_replies),
		cmocka_unit_test(test_big_freed),
		cmocka_unit_test(test_reserve_clamped),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
