/*
 * name_valid: the CONTRACT's name rule, which the broker enforces on every
 * get/put/rm and the client checks before connecting.  Names become audit
 * fields and (in inject) file names, so every refusal here matters.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "secretd/names.h"

struct ncase {
	const char *name;
	size_t len; /* the bytes to check (the literal may hold a NUL) */
	bool valid;
	const char *why_has; /* a word the reason must contain, for invalid names */
};

#define N(lit, ok, why) { lit, sizeof(lit) - 1, ok, why }

static const struct ncase cases[] = {
	N("a", true, NULL),
	N("db/password", true, NULL),
	N("app/db/x", true, NULL),
	N("A-Z_a.z-0.9", true, NULL),
	N("a/b/c/d/e/f", true, NULL),
	N(".hidden", true, NULL),
	N("a/.b", true, NULL),
	N("a/b.", true, NULL),
	N("a/..b", true, NULL),
	/* only "." and ".." are banned segments; "..." is an ordinary name */
	N("...", true, NULL),
	N("a/.../b", true, NULL),
	N("-", true, NULL),
	N("_/-", true, NULL),

	N("", false, "empty"),
	N("/", false, "segment"),
	N("a//b", false, "segment"),
	N("/a", false, "segment"),
	N("a/", false, "segment"),
	N("//", false, "segment"),
	N(".", false, "'.'"),
	N("..", false, "'.'"),
	N("a/../b", false, "'.'"),
	N("a/./b", false, "'.'"),
	N("../a", false, "'.'"),
	N("a/..", false, "'.'"),
	N("a/.", false, "'.'"),
	N("a b", false, "byte"),
	N("a\0b", false, "byte"),
	N("a\nb", false, "byte"),
	N("caf\xc3\xa9", false, "byte"),
	N("a*", false, "byte"),
	N("a\\b", false, "byte"),
	N("a:b", false, "byte"),
	N("${uid}", false, "byte"),
	N("\xff", false, "byte"),
};

static void test_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct ncase *c = &cases[i];
		const char *why = NULL;
		bool ok = name_valid(c->name, c->len, &why);

		print_message("case %zu (%zu bytes)\n", i, c->len);
		assert_int_equal(ok, c->valid);
		if (c->valid) {
			assert_null(why);
		} else {
			assert_non_null(why);
			assert_non_null(strstr(why, c->why_has));
		}
	}
}

static void test_lengths(void **state)
{
	char buf[300];
	const char *why = NULL;

	(void)state;
	memset(buf, 'x', sizeof(buf));
	assert_true(name_valid(buf, 1, &why));
	assert_true(name_valid(buf, 255, &why));
	assert_false(name_valid(buf, 256, &why));
	assert_non_null(strstr(why, "255"));
	assert_false(name_valid(buf, sizeof(buf), NULL));
	/* 255 bytes made of segments, with a '/' as the 255th byte: trailing slash */
	for (size_t i = 1; i < 255; i += 2)
		buf[i] = '/';
	assert_true(name_valid(buf, 255, NULL)); /* "x/x/.../x" */
	assert_false(name_valid(buf, 254, NULL)); /* ends in '/' */
}

/* The length is what counts: bytes past it are not looked at. */
static void test_explicit_length(void **state)
{
	(void)state;
	assert_true(name_valid("ab cd", 2, NULL));
	assert_true(name_valid("a/b/", 3, NULL));
	assert_false(name_valid("a", 0, NULL));
	assert_false(name_valid(NULL, 0, NULL));
	assert_false(name_valid(NULL, 4, NULL));
}

/* The reason never quotes the input, so it is safe to log and to send. */
static void test_reason_does_not_echo(void **state)
{
	const char *bad[] = { "secretpart x", "secretpart//x", "secretpart/..", "" };

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *why = NULL;

		assert_false(name_valid(bad[i], strlen(bad[i]), &why));
		assert_non_null(why);
		assert_null(strstr(why, "secretpart"));
	}
}

/* Watch patterns: the name rule with '*' allowed, and nothing else added. */
static void test_patterns(void **state)
{
	static const char *const good[] = { "a", "app/*", "**", "app/**", "a/*/b", "*x*", "db/x" };
	static const char *const bad[] = { "", "a//b", "/a", "a/", "a/./b", "../x", "a b",
					   "a?", "a\n", "a[b]" };
	char buf[257];
	const char *why;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_true(pattern_valid(good[i], strlen(good[i]), NULL));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = NULL;
		assert_false(pattern_valid(bad[i], strlen(bad[i]), &why));
		assert_non_null(why);
	}
	/* '*' stays out of names */
	assert_false(name_valid("app/*", 5, NULL));
	memset(buf, '*', sizeof(buf));
	assert_true(pattern_valid(buf, 255, NULL));
	assert_false(pattern_valid(buf, 256, NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_lengths),
		cmocka_unit_test(test_explicit_length),
		cmocka_unit_test(test_reason_does_not_echo),
		cmocka_unit_test(test_patterns),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
