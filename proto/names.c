/*
 * Secret names (CONTRACT "Names and sizes"): the one rule that the broker
 * enforces and the client checks before it connects.  A name is used as a
 * key, in audit records and in inject's file names, so the alphabet is small
 * and "." and ".." segments are refused to keep path-like names unambiguous.
 * Other dot-only segments such as "..." are plain names and are allowed.
 */
#include <stdbool.h>
#include <stddef.h>

#include "secretd/names.h"

static bool name_byte(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-' ||
	       ch == '/';
}

/* A segment is name[start, end): not empty, not "." and not "..". */
static const char *segment_problem(const char *name, size_t start, size_t end)
{
	size_t n = end - start;

	if (n == 0)
		return "name has an empty segment (leading, trailing or double '/')";
	if ((n == 1 && name[start] == '.') ||
	    (n == 2 && name[start] == '.' && name[start + 1] == '.'))
		return "name has a '.' or '..' segment";
	return NULL;
}

static const char *check_words(const char *name, size_t len, bool star)
{
	if (name == NULL || len == 0)
		return "name is empty";
	if (len > NAME_MAX_LEN)
		return "name is longer than 255 bytes";
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)name[i];

		if (!name_byte(ch) && !(star && ch == '*'))
			return star ? "pattern contains a byte outside A-Z a-z 0-9 . _ - / *"
				    : "name contains a byte outside A-Z a-z 0-9 . _ - /";
	}
	return NULL;
}

static bool check_name(const char *name, size_t len, bool star, const char **why)
{
	const char *reason = check_words(name, len, star);
	size_t start = 0;

	if (reason != NULL)
		goto out;
	for (size_t i = 0; i <= len && reason == NULL; i++) {
		if (i == len || name[i] == '/') {
			reason = segment_problem(name, start, i);
			start = i + 1;
		}
	}
out:
	if (reason != NULL && why != NULL)
		*why = reason;
	return reason == NULL;
}

bool name_valid(const char *name, size_t len, const char **why)
{
	return check_name(name, len, false, why);
}

bool pattern_valid(const char *pattern, size_t len, const char **why)
{
	return check_name(pattern, len, true, why);
}
