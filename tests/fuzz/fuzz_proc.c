/*
 * libFuzzer harness for the /proc/<pid>/stat and status parsers
 * (proc_parse.h).  The first byte chooses the file.  stat: parsed with its
 * exact length from an exact-size heap copy, and checked against a
 * reference written another way.  status: scanned whole and again cut into chunks whose lengths
 * come from the input itself; both must give the same State and NSpid.
 * Never a crash, a read past the input or a sanitizer report.
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

static void fuzz_status(const char *text, size_t len, const uint8_t *cuts, size_t ncuts)
{
	struct proc_status_scan whole, cut;
	size_t off = 0, i = 0;
	bool done;

	proc_status_init(&whole);
	done = proc_status_feed(&whole, text, len);
	if (done != whole.done || (done && whole.nspid == -ENOENT) ||
	    (!done && whole.nspid != -ENOENT))
		abort();
	if (whole.done && whole.nspid < 1 && whole.nspid != -EPROTO && whole.nspid != -EFBIG)
		abort();
	proc_status_init(&cut);
	while (off < len) {
		size_t step = ncuts > 0 ? (size_t)cuts[i++ % ncuts] % 64 + 1 : len;

		if (step > len - off)
			step = len - off;
		if (proc_status_feed(&cut, text + off, step))
			break;
		off += step;
	}
	if (cut.nspid != whole.nspid || cut.state != whole.state || cut.done != whole.done)
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
