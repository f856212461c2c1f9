/*
 * libFuzzer harness for the /proc/<pid>/stat and status parsers
 * (proc_parse.h).  The first byte chooses the file.  Each is parsed from an
 * exact-size heap copy and checked against a reference written another way
 * (stat's numbers against strtoull; status a whole line at a time).
 * status is also scanned cut into chunks whose lengths come from the input,
 * and must give the same State and NSpid however it is cut.  Never a
 * crash, a read past the input or a sanitizer report.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proc_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A decimal of [p, p+n) that fits, by strtoull on a terminated copy. */
static bool ref_number(const char *p, size_t n, unsigned long long *out)
{
	char num[32];

	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (p[i] < '0' || p[i] > '9')
			return false;
	/* Leading zeros change nothing, however many. */
	while (n > 1 && *p == '0') {
		p++;
		n--;
	}
	if (n >= sizeof(num))
		return false;
	memcpy(num, p, n);
	num[n] = '\0';
	errno = 0;
	*out = strtoull(num, NULL, 10);
	return errno == 0;
}

/*
 * The reference: after the last ')', fields are separated by exactly one
 * space; field 3 is one byte, 9 and 22 decimals that fit.
 */
static int ref_stat(const char *text, size_t len, struct proc_stat *st)
{
	const char *close = NULL, *p, *end = text + len;
	unsigned long long flags = 0, start = 0;
	char state = '\0';
	bool have_flags = false, have_start = false;

	for (size_t i = 0; i < len; i++)
		if (text[i] == ')')
			close = text + i;
	if (close == NULL)
		return -EPROTO;
	p = close + 1;
	for (int field = 3; field <= 22 && p < end; field++) {
		const char *f, *q;

		if (*p != ' ')
			return -EPROTO;
		f = p + 1;
		for (q = f; q < end && *q != ' '; q++)
			;
		if (field == 3 && q - f == 1)
			state = *f;
		if (field == 9)
			have_flags = ref_number(f, (size_t)(q - f), &flags);
		if (field == 22)
			have_start = ref_number(f, (size_t)(q - f), &start);
		p = q;
	}
	if (state == '\0' || !have_flags || !have_start)
		return -EPROTO;
	st->state = state;
	st->flags = (unsigned long)flags;
	st->start = start;
	return 0;
}

static void fuzz_stat(const char *text, size_t len)
{
	struct proc_stat st, ref;
	int rc = proc_stat_parse(text, len, &st);

	if (rc != ref_stat(text, len, &ref))
		abort();
	if (rc == 0 && (st.state != ref.state || st.flags != ref.flags || st.start != ref.start))
		abort();
}

/* The reference's NSpid count: tokens of digits between blanks, at least one. */
static int ref_nspid(const char *line, size_t len)
{
	int count = 0;
	size_t i = 6;

	if (len > PROC_STATUS_LINE_MAX)
		return -EFBIG;
	while (i < len) {
		if (line[i] == ' ' || line[i] == '\t') {
			i++;
			continue;
		}
		for (; i < len && line[i] != ' ' && line[i] != '\t'; i++)
			if (line[i] < '0' || line[i] > '9')
				return -EPROTO;
		count++;
	}
	return count > 0 ? count : -EPROTO;
}

/*
 * The reference scan: whole lines only; the last State line before the
 * first NSpid line gives the state, that NSpid line the count.
 */
static void ref_status(const char *text, size_t len, struct proc_status_scan *out)
{
	const char *p = text, *end = text + len;

	proc_status_init(out);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n;

		if (nl == NULL)
			return; /* a last line without its newline is never looked at */
		n = (size_t)(nl - p);
		if (n >= 6 && memcmp(p, "NSpid:", 6) == 0) {
			out->nspid = ref_nspid(p, n);
			return;
		}
		if (n > 7 && memcmp(p, "State:\t", 7) == 0)
			out->state = p[7];
		p = nl + 1;
	}
}

static void fuzz_status(const char *text, size_t len, const uint8_t *cuts, size_t ncuts)
{
	struct proc_status_scan whole, cut, ref;
	size_t off = 0, i = 0;

	proc_status_init(&whole);
	if (proc_status_feed(&whole, text, len) != (whole.nspid != -ENOENT))
		abort();
	ref_status(text, len, &ref);
	if (whole.nspid != ref.nspid || whole.state != ref.state)
		abort();
	/* Cut into chunks of 1 to 766 bytes (one byte each when no lengths are given). */
	proc_status_init(&cut);
	while (off < len) {
		size_t step = ncuts > 0 ? (size_t)cuts[i++ % ncuts] * 3 + 1 : 1;

		if (step > len - off)
			step = len - off;
		if (proc_status_feed(&cut, text + off, step))
			break;
		off += step;
	}
	if (cut.nspid != whole.nspid || cut.state != whole.state)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t ncuts, len;
	char *text;

	if (size < 2)
		return 0;
	/* byte 0: the file (low bit) and how many of the next bytes are chunk lengths */
	ncuts = (size_t)(data[0] >> 1) % 16;
	if (ncuts > size - 1)
		ncuts = size - 1;
	len = size - 1 - ncuts;
	/* An exact-size heap copy, so ASan sees any read past the text. */
	text = malloc(len ? len : 1);
	if (text == NULL)
		return 0;
	memcpy(text, data + 1 + ncuts, len);
	if (data[0] & 1)
		fuzz_status(text, len, data + 1, ncuts);
	else
		fuzz_stat(text, len);
	free(text);
	return 0;
}
