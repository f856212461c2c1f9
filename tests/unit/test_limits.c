/*
 * limits.c: connection caps, token buckets (the clock is the caller's, so
 * the tests are the clock), the per-uid connect rate, the shrinking share of
 * request buffers among the identities holding some, and the sweep.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "limits.h"

static const struct limits_config base = {
	.max_total = 3,
	.max_per_peer = 2,
	.rate = 10,
	.burst = 5,
	.connect_rate = 2,
	.connect_burst = 3,
	.in_budget = 100,
	.share = 60,
};

static void test_connection_caps(void **state)
{
	struct limits *l = limits_new(&base);
	struct limits_slot *a1, *a2, *a3, *b, *c, *n;

	(void)state;
	assert_non_null(l);
	assert_int_equal(limits_acquire(l, 1000, "/pod/a", 0, &a1), LIMITS_OK);
	assert_int_equal(limits_acquire(l, 1000, "/pod/a", 0, &a2), LIMITS_OK);
	/* One identity (uid plus cgroup), one slot. */
	assert_ptr_equal(a1, a2);
	assert_int_equal(limits_acquire(l, 1000, "/pod/a", 0, &a3), LIMITS_PEER);
	/* The same uid in another cgroup is another identity. */
	assert_int_equal(limits_acquire(l, 1000, "/pod/b", 0, &b), LIMITS_OK);
	assert_ptr_not_equal(a1, b);
	assert_int_equal(limits_total(l), 3);
	assert_int_equal(limits_acquire(l, 2000, NULL, 0, &c), LIMITS_TOTAL);
	limits_release(l, b);
	assert_int_equal(limits_total(l), 2);
	assert_int_equal(limits_acquire(l, 2000, NULL, 0, &c), LIMITS_OK);
	/* No cgroup and an empty one are the same identity. */
	limits_release(l, c);
	assert_int_equal(limits_acquire(l, 2000, "", 0, &n), LIMITS_OK);
	assert_ptr_equal(c, n);
	limits_release(l, n);
	limits_release(l, a1);
	limits_release(l, a2);
	limits_release(l, NULL);
	assert_int_equal(limits_total(l), 0);
	limits_free(l);
}

static void test_token_bucket(void **state)
{
	struct limits *l = limits_new(&base);
	struct limits_slot *s, *other;

	(void)state;
	assert_int_equal(limits_acquire(l, 1, "/a", 1000, &s), LIMITS_OK);
	assert_int_equal(limits_acquire(l, 2, "/a", 1000, &other), LIMITS_OK);
	for (int i = 0; i < 5; i++)
		assert_true(limits_take(s, 1000));
	assert_false(limits_take(s, 1000));
	assert_false(limits_take(s, 1099)); /* 0.99 of a token */
	assert_true(limits_take(s, 1100));  /* 10 a second: one each 100 ms */
	assert_false(limits_take(s, 1100));
	/* One identity over its rate does not touch another's bucket. */
	assert_true(limits_take(other, 1100));
	/* A clock that goes back adds nothing. */
	assert_false(limits_take(s, 500));
	/* A long pause fills the bucket to its size, no more. */
	for (int i = 0; i < 5; i++)
		assert_true(limits_take(s, 100000));
	assert_false(limits_take(s, 100000));
	limits_release(l, s);
	limits_release(l, other);
	limits_free(l);
}

/* Reconnecting does not refill a bucket: the slot outlives its connections. */
static void test_reconnect_keeps_bucket(void **state)
{
	struct limits *l = limits_new(&base);
	struct limits_slot *s, *again;

	(void)state;
	assert_int_equal(limits_acquire(l, 7, "/c", 0, &s), LIMITS_OK);
	while (limits_take(s, 0))
		;
	limits_release(l, s);
	limits_sweep(l, 50); /* half a token: the slot stays */
	assert_int_equal(limits_acquire(l, 7, "/c", 50, &again), LIMITS_OK);
	assert_ptr_equal(s, again);
	assert_false(limits_take(again, 50));
	limits_release(l, again);
	/* Full again and unused: forgotten; a new slot starts full. */
	limits_sweep(l, 10000);
	assert_int_equal(limits_acquire(l, 7, "/c", 10000, &again), LIMITS_OK);
	for (int i = 0; i < 5; i++)
		assert_true(limits_take(again, 10000));
	limits_release(l, again);
	limits_free(l);
}

/* A slot with a connection, or with buffers, survives any sweep (ASan would see). */
static void test_sweep_keeps_busy_slots(void **state)
{
	struct limits *l = limits_new(&base);
	struct limits_slot *open, *holding;

	(void)state;
	assert_int_equal(limits_acquire(l, 1, "/open", 0, &open), LIMITS_OK);
	assert_int_equal(limits_acquire(l, 2, "/holding", 0, &holding), LIMITS_OK);
	assert_true(limits_charge(holding, LIMITS_OUT, 10));
	limits_release(l, holding);
	limits_sweep(l, 1000000);
	assert_true(limits_take(open, 1000000));
	assert_int_equal(limits_total(l), 1);
	/* Still charged: its share is still taken. */
	assert_false(limits_charge(holding, LIMITS_OUT, 51));
	limits_refund(holding, LIMITS_OUT, 10);
	limits_sweep(l, 2000000); /* now it may go */
	limits_release(l, open);
	limits_sweep(l, 3000000);
	assert_int_equal(limits_total(l), 0);
	limits_free(l);
}

static void test_connect_rate(void **state)
{
	struct limits *l = limits_new(&base);

	(void)state;
	for (int i = 0; i < 3; i++)
		assert_true(limits_connect(l, 1000, 0));
	assert_false(limits_connect(l, 1000, 0));
	/* Another uid has its own bucket (uid 1000 + 1024 shares its hash chain). */
	assert_true(limits_connect(l, 2024, 0));
	assert_true(limits_connect(l, 0, 0));
	assert_false(limits_connect(l, 1000, 499));
	assert_true(limits_connect(l, 1000, 500)); /* 2 a second */
	assert_false(limits_connect(l, 1000, 500));
	/* The sweep forgets full buckets only. */
	limits_sweep(l, 600);
	assert_false(limits_connect(l, 1000, 600));
	limits_sweep(l, 100000);
	for (int i = 0; i < 3; i++)
		assert_true(limits_connect(l, 1000, 100000));
	assert_false(limits_connect(l, 1000, 100000));
	limits_free(l);
}

/*
 * Request buffers: in_budget divided among the identities holding some,
 * the newcomer counted, and never more than share; answers get share each.
 */
static void test_shrinking_share(void **state)
{
	struct limits *l = limits_new(&base);
	struct limits_slot *a, *b, *c;

	(void)state;
	assert_int_equal(limits_acquire(l, 1, "/a", 0, &a), LIMITS_OK);
	assert_int_equal(limits_acquire(l, 2, "/b", 0, &b), LIMITS_OK);
	assert_int_equal(limits_acquire(l, 3, "/c", 0, &c), LIMITS_OK);
	assert_int_equal(limits_holders(l), 0);
	/* Alone: min(100 / 1, 60). */
	assert_false(limits_charge(a, LIMITS_IN, 61));
	assert_int_equal(limits_holders(l), 0);
	assert_true(limits_charge(a, LIMITS_IN, 60));
	assert_int_equal(limits_holders(l), 1);
	/* Second: 100 / 2. */
	assert_false(limits_charge(b, LIMITS_IN, 51));
	assert_true(limits_charge(b, LIMITS_IN, 50));
	assert_int_equal(limits_holders(l), 2);
	/* a's share shrank to 50 too: it may take no more. */
	assert_false(limits_charge(a, LIMITS_IN, 1));
	/* Third: 100 / 3. */
	assert_false(limits_charge(c, LIMITS_IN, 34));
	assert_true(limits_charge(c, LIMITS_IN, 33));
	assert_int_equal(limits_holders(l), 3);
	/* Answers are charged apart, a full share each, whatever the holders. */
	assert_true(limits_charge(c, LIMITS_OUT, 60));
	assert_false(limits_charge(c, LIMITS_OUT, 1));
	assert_int_equal(limits_holders(l), 3);
	limits_refund(c, LIMITS_OUT, 60);
	/* A partial refund keeps a holder; the last byte lets it go. */
	limits_refund(b, LIMITS_IN, 20);
	assert_int_equal(limits_holders(l), 3);
	limits_refund(b, LIMITS_IN, 30);
	assert_int_equal(limits_holders(l), 2);
	limits_refund(c, LIMITS_IN, 33);
	assert_int_equal(limits_holders(l), 1);
	/* Back to one holder: b may take 50 again, a more again. */
	assert_true(limits_charge(b, LIMITS_IN, 50));
	limits_refund(b, LIMITS_IN, 50);
	limits_refund(a, LIMITS_IN, 60);
	assert_int_equal(limits_holders(l), 0);
	assert_true(limits_charge(a, LIMITS_IN, 60));
	limits_refund(a, LIMITS_IN, 60);
	limits_release(l, a);
	limits_release(l, b);
	limits_release(l, c);
	limits_free(l);
}

/* Refunding more than is held clamps to nothing held, once. */
static void test_refund_clamps(void **state)
{
	struct limits *l = limits_new(&base);
	struct limits_slot *a, *b;

	(void)state;
	assert_int_equal(limits_acquire(l, 1, "/a", 0, &a), LIMITS_OK);
	assert_int_equal(limits_acquire(l, 2, "/b", 0, &b), LIMITS_OK);
	assert_true(limits_charge(a, LIMITS_IN, 10));
	assert_true(limits_charge(b, LIMITS_IN, 10));
	limits_refund(a, LIMITS_IN, 25);
	assert_int_equal(limits_holders(l), 1);
	/*
	 * Nothing held: a refund releases no holder.  Fails today: holders
	 * goes down (and, unsigned, can wrap, leaving every identity a share
	 * of 0) because limits_refund tests the bytes after, not before.
	 */
	limits_refund(a, LIMITS_IN, 5);
	assert_int_equal(limits_holders(l), 1);
	assert_true(limits_charge(a, LIMITS_IN, 50));
	limits_refund(a, LIMITS_IN, 50);
	limits_refund(b, LIMITS_IN, 10);
	assert_int_equal(limits_holders(l), 0);
	limits_release(l, a);
	limits_release(l, b);
	limits_free(l);
}

/* Many identities: the hash table keeps them apart. */
static void test_many_identities(void **state)
{
	struct limits_config cfg = base;
	struct limits *l;
	static struct limits_slot *slots[5000];
	char cg[32];

	(void)state;
	cfg.max_total = 10000;
	l = limits_new(&cfg);
	for (unsigned i = 0; i < 5000; i++) {
		snprintf(cg, sizeof(cg), "/pod/%u", i % 7);
		assert_int_equal(limits_acquire(l, i, cg, 0, &slots[i]), LIMITS_OK);
		assert_true(limits_take(slots[i], 0));
	}
	assert_int_equal(limits_total(l), 5000);
	for (unsigned i = 0; i < 5000; i++)
		limits_release(l, slots[i]);
	limits_sweep(l, 1000000);
	assert_int_equal(limits_total(l), 0);
	limits_free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_connection_caps),
		cmocka_unit_test(test_token_bucket),
		cmocka_unit_test(test_reconnect_keeps_bucket),
		cmocka_unit_test(test_sweep_keeps_busy_slots),
		cmocka_unit_test(test_connect_rate),
		cmocka_unit_test(test_shrinking_share),
		cmocka_unit_test(test_refund_clamps),
		cmocka_unit_test(test_many_identities),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
