/*
 * libFuzzer harness for where an existing audit log leaves off
 * (audit_tail_read), which reads the end of a file anyone who could write
 * the log may have shaped.  Never a crash or a sanitizer report; and the
 * outcome is the one the whole file calls for, worked out here from the
 * whole file rather than from the end the reader looks at:
 *
 *   - the partial line after the last newline (none when the file ends in
 *     one) is cut off and counted, unless it is as long as a record can be
 *     (one write(2) torn by a crash leaves less), which is refused;
 *   - the last complete line must be a record (audit_record_parse, at most
 *     AUDIT_RECORD_MAX with its newline) whose epoch is below its seq, and
 *     its seq, epoch and chain are what is reported; anything else is
 *     refused;
 *   - a refused file keeps every byte it had.
 *
 * Input: two bytes giving a count of 64-byte units (below 1100, so a file
 * can be larger than the end the reader looks at), one filler byte that
 * fills them, then the file's end.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit_record.h"
#include "audit_tail.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PAD_UNIT 64
#define PAD_UNITS 1100

static struct audit_parsed parsed;

struct expect {
	bool refused, have;
	uint64_t seq, epoch;
	size_t size; /* the file's size afterwards */
};

static const char *last_nl(const char *p, size_t n)
{
	return n > 0 ? memrchr(p, '\n', n) : NULL;
}

static struct expect expected(const char *file, size_t size)
{
	struct expect e = { .size = size };
	const char *nl = last_nl(file, size), *prev;
	size_t complete = nl != NULL ? (size_t)(nl - file) + 1 : 0, start;

	if (size - complete >= AUDIT_RECORD_MAX) {
		e.refused = true;
		return e;
	}
	if (complete > 0) {
		prev = last_nl(file, complete - 1);
		start = prev != NULL ? (size_t)(prev - file) + 1 : 0;
		if (!audit_record_parse(file + start, complete - 1 - start, &parsed) ||
		    parsed.ev.epoch >= parsed.ev.seq) {
			e.refused = true;
			return e;
		}
		e.have = true;
		e.seq = parsed.ev.seq;
		e.epoch = parsed.ev.epoch;
	}
	e.size = complete;
	return e;
}

static char *build(const uint8_t *data, size_t size, size_t *len)
{
	size_t pad = (((size_t)data[0] << 8 | data[1]) % PAD_UNITS) * PAD_UNIT;
	char *file = malloc(pad + size - 3 + 1);

	if (file == NULL)
		return NULL;
	memset(file, data[2], pad);
	memcpy(file + pad, data + 3, size - 3);
	*len = pad + size - 3;
	return file;
}

static void write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n <= 0)
			__builtin_trap();
		p += n;
		len -= (size_t)n;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct audit_tail t;
	struct expect e;
	struct stat st;
	char err[512], *file, *back;
	size_t len;
	int fd, rc;

	if (size < 3)
		return 0;
	file = build(data, size, &len);
	if (file == NULL)
		return 0;
	fd = memfd_create("audit.log", MFD_CLOEXEC);
	if (fd < 0)
		__builtin_trap();
	write_all(fd, file, len);
	e = expected(file, len);
	/* the chain value is checked against the line the oracle parsed last */
	rc = audit_tail_read(fd, "audit.log", &t, err, sizeof(err));
	if (fstat(fd, &st) != 0)
		__builtin_trap();
	if (e.refused) {
		if (rc != -EINVAL || t.have || err[0] == '\0' || (size_t)st.st_size != len)
			__builtin_trap();
	} else {
		if (rc != 0 || t.have != e.have || (size_t)st.st_size != e.size ||
		    t.torn_bytes != (long long)(len - e.size))
			__builtin_trap();
		if (e.have && (t.seq != e.seq || t.epoch != e.epoch ||
			       memcmp(t.chain, parsed.ev.chain, AUDIT_CHAIN_LEN) != 0))
			__builtin_trap();
	}
	/* whatever was kept is the file's own bytes */
	back = malloc((size_t)st.st_size + 1);
	if (back == NULL || pread(fd, back, (size_t)st.st_size, 0) != (ssize_t)st.st_size ||
	    memcmp(back, file, (size_t)st.st_size) != 0)
		__builtin_trap();
	free(back);
	close(fd);
	free(file);
	return 0;
}
