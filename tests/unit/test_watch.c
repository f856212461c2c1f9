/*
 * watch.c, the hub: exact and glob subscriptions, one notification per
 * change per subscription however many of its patterns match, a callback
 * that ends its own subscription, and thousands of subscriptions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "watch.h"

struct seen {
	unsigned count;
	char name[256];
	uint32_t version;
	/* for the callback that unsubscribes */
	struct watch_hub *hub;
	struct watch_sub *sub;
	bool leave;
};

static void notify(void *owner, const char *name, size_t len, uint32_t version)
{
	struct seen *s = owner;

	s->count++;
	assert_true(len < sizeof(s->name));
	memcpy(s->name, name, len);
	s->name[len] = '\0';
	s->version = version;
	if (s->leave) {
		watch_unsubscribe(s->hub, s->sub);
		s->sub = NULL;
		s->leave = false;
	}
}

static struct watch_sub *sub1(struct watch_hub *h, const char *pattern, struct seen *s)
{
	struct wire_str p = { (const uint8_t *)pattern, strlen(pattern) };
	struct watch_sub *sub = NULL;

	assert_int_equal(watch_subscribe(h, &p, 1, notify, s, &sub), 0);
	assert_non_null(sub);
	return sub;
}

static void change(struct watch_hub *h, const char *name, uint32_t version)
{
	watch_changed(h, name, strlen(name), version);
}

static void test_exact(void **state)
{
	struct watch_hub *h = watch_hub_new();
	struct seen s = { 0 };
	struct watch_sub *sub;

	(void)state;
	assert_non_null(h);
	sub = sub1(h, "app/db", &s);
	assert_int_equal(watch_count(h), 1);
	change(h, "app/dbx", 1);
	change(h, "app", 1);
	change(h, "app/d", 1);
	change(h, "other/app/db", 1);
	assert_int_equal(s.count, 0);
	change(h, "app/db", 7);
	assert_int_equal(s.count, 1);
	assert_string_equal(s.name, "app/db");
	assert_int_equal(s.version, 7);
	change(h, "app/db", 0); /* deleted */
	assert_int_equal(s.count, 2);
	assert_int_equal(s.version, 0);
	assert_true(watch_matches(sub, "app/db", 6));
	assert_false(watch_matches(sub, "app/dbx", 7));
	watch_unsubscribe(h, sub);
	assert_int_equal(watch_count(h), 0);
	change(h, "app/db", 8);
	assert_int_equal(s.count, 2);
	watch_hub_free(h);
}

static void test_globs(void **state)
{
	struct watch_hub *h = watch_hub_new();
	struct seen one = { 0 }, deep = { 0 }, all = { 0 }, mid = { 0 };
	struct watch_sub *s1 = sub1(h, "app/*", &one);
	struct watch_sub *s2 = sub1(h, "app/**", &deep);
	struct watch_sub *s3 = sub1(h, "**", &all);
	struct watch_sub *s4 = sub1(h, "app/*/key", &mid);

	(void)state;
	change(h, "app/x", 1);
	assert_int_equal(one.count, 1);
	assert_int_equal(deep.count, 1);
	assert_int_equal(all.count, 1);
	assert_int_equal(mid.count, 0);
	change(h, "app/x/key", 2);
	assert_int_equal(one.count, 1); /* '*' stays within a segment */
	assert_int_equal(deep.count, 2);
	assert_int_equal(all.count, 2);
	assert_int_equal(mid.count, 1);
	assert_string_equal(mid.name, "app/x/key");
	change(h, "apps/x", 3); /* shares the literal prefix "app", matches none of app/ */
	assert_int_equal(one.count, 1);
	assert_int_equal(deep.count, 2);
	assert_int_equal(all.count, 3);
	change(h, "app", 4); /* a trailing ** needs one segment */
	assert_int_equal(deep.count, 2);
	assert_int_equal(all.count, 4);
	watch_unsubscribe(h, s1);
	watch_unsubscribe(h, s2);
	watch_unsubscribe(h, s3);
	watch_unsubscribe(h, s4);
	assert_int_equal(watch_count(h), 0);
	watch_hub_free(h);
}

/* Several patterns of one subscription match: it hears of the change once. */
static void test_once_per_change(void **state)
{
	struct watch_hub *h = watch_hub_new();
	struct wire_str pats[] = {
		{ (const uint8_t *)"app/db", 6 }, { (const uint8_t *)"app/*", 5 },
		{ (const uint8_t *)"app/**", 6 }, { (const uint8_t *)"**", 2 },
		{ (const uint8_t *)"app/db", 6 },
	};
	struct seen a = { 0 }, b = { 0 };
	struct watch_sub *sa, *sb;

	(void)state;
	assert_int_equal(watch_subscribe(h, pats, 5, notify, &a, &sa), 0);
	assert_int_equal(watch_subscribe(h, pats, 2, notify, &b, &sb), 0);
	change(h, "app/db", 1);
	assert_int_equal(a.count, 1);
	assert_int_equal(b.count, 1);
	change(h, "app/db", 2);
	assert_int_equal(a.count, 2);
	assert_int_equal(b.count, 2);
	change(h, "app/other", 1);
	assert_int_equal(a.count, 3);
	assert_int_equal(b.count, 3);
	change(h, "elsewhere", 1);
	assert_int_equal(a.count, 4);
	assert_int_equal(b.count, 3);
	watch_unsubscribe(h, sa);
	change(h, "app/db", 3);
	assert_int_equal(a.count, 4);
	assert_int_equal(b.count, 4);
	watch_unsubscribe(h, sb);
	watch_hub_free(h);
}

/* A callback ends its own subscription: the others still hear of that change. */
static void test_unsubscribe_in_callback(void **state)
{
	struct watch_hub *h = watch_hub_new();
	struct seen first = { 0 }, second = { 0 }, third = { 0 };
	struct watch_sub *s2, *s3;

	(void)state;
	first.hub = h;
	first.leave = true;
	first.sub = sub1(h, "app/**", &first);
	s2 = sub1(h, "app/x", &second);
	second.hub = h;
	third.hub = h;
	third.leave = true;
	s3 = sub1(h, "app/*", &third);
	third.sub = s3;
	change(h, "app/x", 1);
	assert_int_equal(first.count, 1);
	assert_int_equal(second.count, 1);
	assert_int_equal(third.count, 1);
	assert_null(first.sub);
	assert_null(third.sub);
	assert_int_equal(watch_count(h), 1);
	change(h, "app/x", 2);
	assert_int_equal(first.count, 1);
	assert_int_equal(second.count, 2);
	assert_int_equal(third.count, 1);
	/* The last one leaves inside its callback, the hub empty afterwards. */
	second.leave = true;
	second.sub = s2;
	change(h, "app/x", 3);
	assert_int_equal(second.count, 3);
	assert_int_equal(watch_count(h), 0);
	change(h, "app/x", 4);
	assert_int_equal(second.count, 3);
	watch_hub_free(h);
}

#define MANY 5000

/* Thousands of subscriptions: a change reaches only those it concerns. */
static void test_thousands(void **state)
{
	struct watch_hub *h = watch_hub_new();
	static struct seen exact[MANY], globs[MANY];
	static struct watch_sub *se[MANY], *sg[MANY];
	struct seen every = { 0 };
	struct watch_sub *all;
	char name[64];

	(void)state;
	for (unsigned i = 0; i < MANY; i++) {
		memset(&exact[i], 0, sizeof(exact[i]));
		memset(&globs[i], 0, sizeof(globs[i]));
		snprintf(name, sizeof(name), "n/%u", i);
		se[i] = sub1(h, name, &exact[i]);
		snprintf(name, sizeof(name), "g/%u/*", i);
		sg[i] = sub1(h, name, &globs[i]);
	}
	all = sub1(h, "**", &every);
	assert_int_equal(watch_count(h), 2 * MANY + 1);
	change(h, "n/1234", 5);
	change(h, "g/4321/key", 6);
	change(h, "g/4321", 7); /* '*' needs its segment */
	for (unsigned i = 0; i < MANY; i++) {
		assert_int_equal(exact[i].count, i == 1234 ? 1 : 0);
		assert_int_equal(globs[i].count, i == 4321 ? 1 : 0);
	}
	assert_string_equal(globs[4321].name, "g/4321/key");
	assert_int_equal(every.count, 3);
	/* Every one told of a change they all match, once each. */
	watch_unsubscribe(h, all);
	for (unsigned i = 0; i < MANY; i++) {
		watch_unsubscribe(h, se[i]);
		se[i] = sub1(h, "x/**", &exact[i]);
	}
	change(h, "x/y", 9);
	for (unsigned i = 0; i < MANY; i++)
		assert_int_equal(exact[i].count, i == 1234 ? 2 : 1);
	for (unsigned i = 0; i < MANY; i++) {
		watch_unsubscribe(h, se[i]);
		watch_unsubscribe(h, sg[i]);
	}
	assert_int_equal(watch_count(h), 0);
	watch_hub_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exact),
		cmocka_unit_test(test_globs),
		cmocka_unit_test(test_once_per_change),
		cmocka_unit_test(test_unsubscribe_in_callback),
		cmocka_unit_test(test_thousands),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
