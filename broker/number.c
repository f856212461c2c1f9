#include "number.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int number_parse(const char *s, size_t len, unsigned base, unsigned long min,
		 unsigned long max, unsigned long *out)
{
	char buf[24];
	char *end;
	unsigned long v;
	char top = base == 8 ? '7' : '9';

	if (len == 0 || len >= sizeof(buf) || (base != 8 && base != 10))
		return -1;
	for (size_t i = 0; i < len; i++)
		if (s[i] < '0' || s[i] > top)
			return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	errno = 0;
	v = strtoul(buf, &end, (int)base);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}
