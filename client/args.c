/* Subcommand options, exact names only, and the one number parser. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <secretd/exitcodes.h>

#include "secretctl.h"

/*
 * The one number parser of the client: digits of the base only (strtoull
 * alone would take "-1", " 7", "+7" and "0x7"), at most 20 of them, in
 * [min, max].
 */
bool ctl_parse_number(const char *s, int base, uint64_t min, uint64_t max, uint64_t *out)
{
	const char *digits = base == 8 ? "01234567" : "0123456789";
	unsigned long long v;
	char *end = NULL;
	size_t len;

	if (s == NULL || (base != 8 && base != 10))
		return false;
	len = strlen(s);
	if (len == 0 || len > 20 || strspn(s, digits) != len)
		return false;
	errno = 0;
	v = strtoull(s, &end, base);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		return false;
	*out = (uint64_t)v;
	return true;
}

bool ctl_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
	uint64_t v;

	if (!ctl_parse_number(s, 10, min, max, &v))
		return false;
	*out = (uint32_t)v;
	return true;
}

static const struct ctl_opt *find_opt(const struct ctl_opt *opts, size_t nopts,
				      const char *arg, size_t len)
{
	for (size_t i = 0; i < nopts; i++)
		if (strlen(opts[i].name) == len && memcmp(opts[i].name, arg, len) == 0)
			return &opts[i];
	return NULL;
}

int ctl_parse_args(int argc, char **argv, const struct ctl_opt *opts, size_t nopts,
		   int *nops, bool *help)
{
	const char *cmd = argv[0];
	bool only_operands = false;
	int n = 0;

	*help = false;
	for (int i = 1; i < argc; i++) {
		char *arg = argv[i];
		const struct ctl_opt *o;
		const char *eq;
		size_t len;

		if (only_operands || arg[0] != '-' || arg[1] == '\0') {
			argv[1 + n++] = arg; /* never overtakes i: operands only move left */
			continue;
		}
		if (strcmp(arg, "--") == 0) {
			only_operands = true;
			continue;
		}
		if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
			printf("usage: secretctl [-s SOCKET] %s\n", ctl_usage_of(cmd));
			*help = true;
			return fflush(stdout) == 0 ? 0 : EXIT_ERROR;
		}
		eq = strncmp(arg, "--", 2) == 0 ? strchr(arg, '=') : NULL;
		len = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
		o = find_opt(opts, nopts, arg, len);
		if (o == NULL)
			return ctl_usage_err(cmd, "unknown option %.*s", (int)len, arg);
		if (!o->takes_value) {
			if (eq != NULL)
				return ctl_usage_err(cmd, "option %s takes no value", o->name);
			*o->flag = true;
		} else if (eq != NULL) {
			*o->value = eq + 1;
		} else if (i + 1 < argc) {
			*o->value = argv[++i];
		} else {
			return ctl_usage_err(cmd, "option %s needs a value", o->name);
		}
	}
	*nops = n;
	return 0;
}
