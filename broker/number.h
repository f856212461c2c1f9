/* The one way the broker reads a number from text it did not write. */
#ifndef SECRETD_NUMBER_H
#define SECRETD_NUMBER_H

#include <stddef.h>

/*
 * len bytes of s (not necessarily terminated): digits of the base (10 or 8)
 * only (no blanks, signs or "0x", which strtoul would take), at most 20 of
 * them, the value within [min, max].  0, or -1 with *out untouched.
 */
int number_parse(const char *s, size_t len, unsigned base, unsigned long min,
		 unsigned long max, unsigned long *out);

#endif
