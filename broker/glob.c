/*
 * Glob matching for secret names and cgroup paths (semantics in glob.h).
 *
 * Both levels use the classic greedy "remember the last star" algorithm: on
 * a mismatch we only ever go back to the most recent star and let it absorb
 * one more unit.  That bounds the work by (pattern units x subject units)
 * instead of the exponential blow-up of naive recursion, which matters
 * because patterns reach us from `secretctl list GLOB` and from the fuzzer.
 *
 * Subjects are split on '/' without exception, so a cgroup path "/a/b" is
 * the three segments "", "a", "b": the leading empty segment is matched by
 * the pattern's own leading '/' and nothing else.  Hence the pattern
 * "/kubepods" followed by a trailing "**" segment matches
 * "/kubepods/besteffort/pod1/abc" but not "/kubepods" itself, and a pattern
 * without the leading '/' never matches a cgroup path.
 */
#include "glob.h"

#include <stdint.h>
#include <string.h>

/* Position past the end: the last segment ends at len, so one more is len+1. */
#define SEG_END(len) ((len) + 1)

/* Length of the segment starting at pos (up to the next '/' or the end). */
static size_t seg_len(const char *s, size_t len, size_t pos)
{
	const char *slash = memchr(s + pos, '/', len - pos);

	return slash != NULL ? (size_t)(slash - (s + pos)) : len - pos;
}

static bool is_double_star(const char *p, size_t len)
{
	return len == 2 && p[0] == '*' && p[1] == '*';
}

/* One segment: '*' matches any run of bytes (there is no '/' inside). */
static bool segment_match(const char *p, size_t plen, const char *s, size_t slen)
{
	size_t pi = 0, si = 0;
	size_t star_p = SIZE_MAX, star_s = 0;

	while (si < slen) {
		if (pi < plen && p[pi] == '*') {
			star_p = ++pi;
			star_s = si;
		} else if (pi < plen && p[pi] == s[si]) {
			pi++;
			si++;
		} else if (star_p != SIZE_MAX) {
			pi = star_p;
			si = ++star_s;
		} else {
			return false;
		}
	}
	while (pi < plen && p[pi] == '*')
		pi++;
	return pi == plen;
}

bool glob_match(const char *pattern, size_t plen, const char *subject, size_t slen)
{
	size_t pp = 0, sp = 0; /* start of the current segment in each */
	size_t star_pp = SIZE_MAX, star_sp = 0;

	while (sp < SEG_END(slen)) {
		if (pp < SEG_END(plen)) {
			size_t pl = seg_len(pattern, plen, pp);
			size_t sl = seg_len(subject, slen, sp);

			if (is_double_star(pattern + pp, pl)) {
				/* Trailing "**": at least one segment remains, so it matches. */
				if (pp + pl == plen)
					return true;
				/* Inner "**": try zero segments first, widen on mismatch. */
				pp += pl + 1;
				star_pp = pp;
				star_sp = sp;
				continue;
			}
			if (segment_match(pattern + pp, pl, subject + sp, sl)) {
				pp += pl + 1;
				sp += sl + 1;
				continue;
			}
		}
		if (star_pp == SIZE_MAX)
			return false;
		star_sp += seg_len(subject, slen, star_sp) + 1;
		sp = star_sp;
		pp = star_pp;
	}
	/* Subject used up: any pattern left needs at least one more segment. */
	return pp >= SEG_END(plen);
}
