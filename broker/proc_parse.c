/* The stat and status files of /proc/<pid> (see proc_parse.h). */
#include "proc_parse.h"

#include <errno.h>
#include <string.h>

/* A decimal number of [p, end); false unless it is digits and fits. */
static bool stat_number(const char *p, const char *end, unsigned long long *out)
{
	*out = 0;
	if (p == end)
		return false;
	for (; p < end; p++) {
		unsigned d = (unsigned)(*p - '0');

		if (d > 9 || *out > (~0ULL - d) / 10)
			return false;
		*out = *out * 10 + d;
	}
	return true;
}

int proc_stat_parse(const char *text, size_t len, struct proc_stat *st)
{
	size_t i, field = 2;
	unsigned long long flags = 0;
	bool have_flags = false, have_start = false;

	memset(st, 0, sizeof(*st));
	for (i = len; i > 0 && text[i - 1] != ')'; i--)
		;
	if (i == 0)
		return -EPROTO;
	while (i < len && field < 22) {
		const char *f, *end;

		if (text[i] != ' ')
			return -EPROTO;
		field++;
		f = text + i + 1;
		end = memchr(f, ' ', len - i - 1);
		if (end == NULL)
			end = text + len;
		if (field == 3 && end - f == 1)
			st->state = f[0];
		if (field == 9)
			have_flags = stat_number(f, end, &flags);
		if (field == 22)
			have_start = stat_number(f, end, &st->start);
		i = (size_t)(end - text);
	}
	if (st->state == '\0' || !have_flags || !have_start)
		return -EPROTO;
	st->flags = (unsigned long)flags;
	return 0;
}

/* Count the pids on one "NSpid:\t1\t2" line (len bytes, no newline). */
static int count_nspid(const char *line, size_t len)
{
	size_t i = strlen("NSpid:");
	int count = 0;

	while (i < len) {
		size_t start;

		while (i < len && (line[i] == ' ' || line[i] == '\t'))
			i++;
		start = i;
		while (i < len && line[i] >= '0' && line[i] <= '9')
			i++;
		if (i == start && i < len)
			return -EPROTO;
		if (i > start)
			count++;
	}
	return count > 0 ? count : -EPROTO;
}

void proc_status_init(struct proc_status_scan *s)
{
	memset(s, 0, sizeof(*s));
	s->nspid = -ENOENT;
}

/* One whole line of status (no newline): NSpid ends the scan. */
static void status_line(struct proc_status_scan *s)
{
	const char *line = s->line;
	size_t len = s->llen;

	if (len >= strlen("NSpid:") && memcmp(line, "NSpid:", 6) == 0) {
		s->nspid = s->overflow ? -EFBIG : count_nspid(line, len);
		return;
	}
	/* "State:\tZ (zombie)" */
	if (len > 7 && memcmp(line, "State:\t", 7) == 0)
		s->state = line[7];
}

bool proc_status_feed(struct proc_status_scan *s, const char *chunk, size_t n)
{
	for (size_t i = 0; i < n && s->nspid == -ENOENT; i++) {
		if (chunk[i] != '\n') {
			if (s->llen < sizeof(s->line))
				s->line[s->llen++] = chunk[i];
			else
				s->overflow = true;
			continue;
		}
		status_line(s);
		s->llen = 0;
		s->overflow = false;
	}
	return s->nspid != -ENOENT;
}
