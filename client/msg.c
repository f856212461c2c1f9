/* One-line messages on stderr and broker text on stdout. */
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include <secretd/exitcodes.h>

#include "secretctl.h"

/* Room for the longest broker message (WIRE_MAX_MESSAGE) and its context. */
#define LINE_MAX_LEN 2048

/* "secretctl: " [prefix ": "] text [suffix], made safe for one terminal line. */
static void emit_line(const char *prefix, const char *fmt, va_list ap, const char *suffix)
{
	char line[LINE_MAX_LEN];
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	size_t len;

	if (n < 0)
		return;
	len = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)line[i];
		if (ch < 0x20 || ch >= 0x7f)
			line[i] = '?';
	}
	/* stderr is unbuffered: one fprintf keeps the line in one write. */
	fprintf(stderr, "secretctl: %s%s%.*s%s\n", prefix, prefix[0] != '\0' ? ": " : "",
		(int)len, line, suffix);
}

void ctl_put_text(const uint8_t *text, size_t len)
{
	for (size_t i = 0; i < len; i++)
		putchar(text[i] < 0x20 || text[i] == 0x7f ? '?' : text[i]);
}

void ctl_err(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit_line("", fmt, ap, "");
	va_end(ap);
}

int ctl_usage_err(const char *cmd, const char *fmt, ...)
{
	char usage[512];
	va_list ap;

	snprintf(usage, sizeof(usage), " (usage: secretctl %s)", ctl_usage_of(cmd));
	va_start(ap, fmt);
	emit_line(cmd, fmt, ap, usage);
	va_end(ap);
	return EXIT_USAGE;
}
