/*
 * The pattern language shared by secret names and cgroup paths:
 * '/'-separated segments; '*' matches within one segment; "**" as a whole
 * segment matches any number of segments.  As in gitignore, a trailing "**"
 * needs at least one segment (the pattern app + "/" + "**" is everything
 * below app/, not "app" itself) while a "**" between two segments may match
 * none (a + "/" + "**" + "/" + b matches "a/b").  "**" alone matches every
 * name.
 */
#ifndef SECRETD_GLOB_H
#define SECRETD_GLOB_H

#include <stdbool.h>
#include <stddef.h>

/* Match subject (slen bytes) against pattern (plen bytes); no terminators. */
bool glob_match(const char *pattern, size_t plen, const char *subject, size_t slen);

#endif
