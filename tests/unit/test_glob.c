/* glob_match: the pattern language of policy names, cgroup= and `list GLOB`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "glob.h"

struct gcase {
	const char *pattern;
	const char *subject;
	bool match;
};

static const struct gcase cases[] = {
	/* literals */
	{ "app/db/x", "app/db/x", true },
	{ "app/db/x", "app/db/y", false },
	{ "app/db/x", "app/db/xx", false },
	{ "app/db/x", "app/db", false },
	{ "app/db", "app/db/x", false },
	{ "App", "app", false },

	/* '*' stays inside one segment */
	{ "app/*", "app/x", true },
	{ "app/*", "app/x/y", false },
	{ "app/*", "app", false },
	{ "app/*/key", "app/db/key", true },
	{ "app/*/key", "app/db/x/key", false },
	{ "*", "top", true },
	{ "*", "a/b", false },
	{ "app/db-*", "app/db-main", true },
	{ "app/db-*", "app/db-", true },
	{ "app/db-*", "app/web-main", false },
	{ "app/*.pem", "app/tls.pem", true },
	{ "app/*.pem", "app/tls.pem.bak", false },
	{ "a/*b*c*", "a/xxbyyczz", true },
	{ "a/*b*c*", "a/xxcyybzz", false },
	{ "a/x*y*z", "a/xyz", true },
	{ "a/x*y*z", "a/xzy", false },

	/* trailing "**": one segment or more, never the prefix itself */
	{ "app/**", "app/x", true },
	{ "app/**", "app/x/y/z", true },
	{ "app/**", "app", false },
	{ "app/**", "apps/x", false },
	{ "app/**", "other/app/x", false },
	{ "**", "x", true },
	{ "**", "a/b/c", true },
	{ "**/**", "a", true },
	{ "a/**/**", "a", false },
	{ "a/**/**", "a/b", true },

	/* inner "**": zero segments or more */
	{ "a/**/b", "a/b", true },
	{ "a/**/b", "a/x/b", true },
	{ "a/**/b", "a/x/y/z/b", true },
	{ "a/**/b", "a/x/y/z/c", false },
	{ "a/**/b", "a/b/c", false },
	{ "a/**/b", "a/b/b", true },
	{ "**/key", "key", true },
	{ "**/key", "x/y/key", true },
	{ "**/key", "x/y/key2", false },
	{ "a/**/b/**/c", "a/b/c", true },
	{ "a/**/b/**/c", "a/x/b/y/z/c", true },
	{ "a/**/b/**/c", "a/x/c/y/b", false },
	{ "a/**/*.pem", "a/x/y/k.pem", true },
	{ "a/**/*.pem", "a/k.pem", true },
	{ "a/**/*.pem", "a/k.key", false },
	{ "**/db/**", "x/db/y", true },
	{ "**/db/**", "db/y", true },
	{ "**/db/**", "x/db", false },

	/* cgroup paths: the leading '/' is part of the subject */
	{ "/system.slice/docker-*.scope", "/system.slice/docker-3f2a9c51e0b7.scope", true },
	{ "/system.slice/docker-*.scope", "/system.slice/containerd.service", false },
	{ "/system.slice/docker-*.scope", "/system.slice/docker-a.scope/init", false },
	{ "/kubepods/**", "/kubepods/besteffort/pod1234/abc", true },
	{ "/kubepods/**", "/kubepods", false },
	{ "/kubepods/**", "/kubepods.slice/x", false },
	{ "/kubepods/*/pod*/*", "/kubepods/besteffort/pod1234/abc", true },
	{ "/kubepods/*/pod*/*", "/kubepods/pod1234/abc", false },
	{ "/**/docker-*.scope", "/system.slice/docker-ab.scope", true },
	{ "/**/docker-*.scope", "/docker-ab.scope", true },
	{ "/**", "/", true },
	{ "/**", "/user.slice", true },
	{ "/", "/", true },
	{ "/", "/a", false },
	{ "kubepods/**", "/kubepods/x", false },
	{ "/user.slice", "user.slice", false },

	/* stars never cross '/', so globs of `list` cannot leak other subtrees */
	{ "*/*", "a/b", true },
	{ "*/*", "a/b/c", false },
	{ "a*", "a/b", false },
	{ "", "", true },
	{ "", "a", false },
	{ "a", "", false },
};

static void test_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct gcase *c = &cases[i];
		bool got = glob_match(c->pattern, strlen(c->pattern), c->subject,
				      strlen(c->subject));

		if (got != c->match)
			fail_msg("glob_match(\"%s\", \"%s\") = %d, want %d", c->pattern,
				 c->subject, got, c->match);
	}
}

/* Lengths, not terminators, bound the match. */
static void test_explicit_lengths(void **state)
{
	(void)state;
	assert_true(glob_match("app/*XXXX", 5, "app/db", 6));
	assert_false(glob_match("app/db", 6, "app/dbXX", 8));
	assert_true(glob_match("app/db", 6, "app/dbXX", 6));
}

/*
 * Adversarial patterns that make naive backtracking exponential must finish
 * at once: many stars in a segment, many "**" segments, and a subject that
 * almost matches.
 */
static void test_no_exponential_backtracking(void **state)
{
	char pat[4096], subj[4096];
	size_t pn = 0, sn = 0;

	(void)state;
	for (int i = 0; i < 200; i++) {
		pat[pn++] = 'a';
		pat[pn++] = '*';
	}
	pat[pn++] = 'b';
	memset(subj, 'a', 2000);
	sn = 2000;
	assert_false(glob_match(pat, pn, subj, sn));

	pn = 0;
	for (int i = 0; i < 300; i++) {
		memcpy(pat + pn, "**/a/", 5);
		pn += 5;
	}
	memcpy(pat + pn, "b", 1);
	pn += 1;
	sn = 0;
	for (int i = 0; i < 1000; i++) {
		memcpy(subj + sn, "a/", 2);
		sn += 2;
	}
	subj[sn++] = 'c';
	assert_false(glob_match(pat, pn, subj, sn));
	subj[sn - 1] = 'b';
	assert_true(glob_match(pat, pn, subj, sn));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_explicit_lengths),
		cmocka_unit_test(test_no_exponential_backtracking),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
