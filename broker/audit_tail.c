/* Where an existing audit log leaves off (audit_tail.h). */
#include "audit_tail.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit_record.h"

#define TAIL_READ (2 * AUDIT_RECORD_MAX + 16) /* a torn tail plus the last record */

static int pread_all(int fd, char *buf, size_t len, off_t off)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = pread(fd, buf + got, len - got, off + (off_t)got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		got += (size_t)n;
	}
	return 0;
}

/* The last complete line of chunk[0 .. end), end just past its newline, as t. */
static int tail_record(const char *chunk, size_t end, bool whole_file, struct audit_tail *t)
{
	struct audit_parsed *p = NULL;
	const char *nl = end > 1 ? memrchr(chunk, '\n', end - 1) : NULL;
	size_t start;
	int rc = -EINVAL;

	if (nl == NULL && !whole_file)
		return -EINVAL; /* longer than any record could be */
	start = nl != NULL ? (size_t)(nl - chunk) + 1 : 0;
	p = malloc(sizeof(*p));
	if (p == NULL)
		return -ENOMEM;
	if (!audit_record_parse(chunk + start, end - 1 - start, p))
		goto out;
	t->seq = p->ev.seq;
	t->epoch = p->ev.epoch;
	memcpy(t->chain, p->ev.chain, AUDIT_CHAIN_LEN);
	t->have = true;
	rc = 0;
out:
	free(p);
	return rc;
}

int audit_tail_read(int fd, const char *path, struct audit_tail *t, char *err, size_t errlen)
{
	char *chunk = NULL;
	struct stat st;
	size_t n, end;
	off_t base;
	const char *nl;
	int rc = 0;

	t->have = false;
	t->torn_bytes = 0;
	if (fstat(fd, &st) != 0) {
		rc = -errno;
		snprintf(err, errlen, "audit log %s: fstat: %s", path, strerror(-rc));
		return rc;
	}
	if (st.st_size == 0)
		return 0;
	n = (size_t)st.st_size < TAIL_READ ? (size_t)st.st_size : TAIL_READ;
	base = st.st_size - (off_t)n;
	chunk = malloc(n);
	if (chunk == NULL) {
		snprintf(err, errlen, "audit log %s: out of memory", path);
		return -ENOMEM;
	}
	rc = pread_all(fd, chunk, n, base);
	if (rc != 0) {
		snprintf(err, errlen, "audit log %s: read: %s", path, strerror(-rc));
		goto out;
	}
	/*
	 * Everything is decided before anything is cut: a refused log is left
	 * exactly as it was found, for the operator to look at.
	 */
	end = n;
	if (chunk[n - 1] != '\n') {
		nl = memrchr(chunk, '\n', n);
		end = nl != NULL ? (size_t)(nl - chunk) + 1 : 0;
		if (n - end >= AUDIT_RECORD_MAX) {
			/* one write(2) of a record torn by a crash is shorter than that */
			snprintf(err, errlen, "audit log %s: a partial last line longer than any "
				 "record; move the file aside", path);
			rc = -EINVAL;
			goto out;
		}
	}
	if (end > 0) {
		rc = tail_record(chunk, end, base == 0, t);
		if (rc == -ENOMEM) {
			snprintf(err, errlen, "audit log %s: out of memory", path);
			goto out;
		}
		if (rc != 0)
			goto not_a_record;
		if (t->epoch >= t->seq) {
			/* every epoch opens with a record of its own: a larger number is forged */
			snprintf(err, errlen, "audit log %s: the last record's epoch is impossible; "
				 "move the file aside", path);
			t->have = false;
			rc = -EINVAL;
			goto out;
		}
	}
	if (end < n) {
		if (ftruncate(fd, base + (off_t)end) != 0) {
			rc = -errno;
			snprintf(err, errlen, "audit log %s: cutting off a partial last line: %s",
				 path, strerror(-rc));
			t->have = false;
			goto out;
		}
		t->torn_bytes = (long long)(n - end);
	}
	goto out;
not_a_record:
	snprintf(err, errlen, "audit log %s: the last line is not an audit record; "
		 "move the file aside", path);
	rc = -EINVAL;
out:
	free(chunk);
	return rc;
}
