/*
 * libFuzzer harness for the audit record parser (audit_record_parse), which
 * reads untrusted lines at broker start and in audit-verify.  Never a crash
 * or a sanitizer report; and whatever parses is exactly what the builder
 * writes: the parsed record, built and sealed again with its own chain
 * value, gives back the input byte for byte.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audit_record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct audit_parsed parsed;
static char out[AUDIT_RECORD_MAX];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *line = (const char *)data;
	size_t n;

	/* the last line of a file comes with its newline, or with none */
	if (size > 0 && line[size - 1] == '\n')
		size--;
	if (!audit_record_parse(line, size, &parsed))
		return 0;
	if (parsed.ev.seq == 0 || parsed.ev.op == NULL || parsed.ev.decision == NULL ||
	    parsed.ev.ts == NULL || parsed.ev.who != &parsed.who || parsed.who.cgroup == NULL ||
	    parsed.body_len >= size)
		__builtin_trap();
	(void)audit_record_opens_epoch(&parsed.ev);
	n = audit_record_body(&parsed.ev, out, sizeof(out) - AUDIT_RECORD_SUFFIX_LEN);
	if (n != parsed.body_len)
		__builtin_trap();
	n = audit_record_seal(out, n, parsed.ev.chain);
	if (n != size + 1 || memcmp(out, line, size) != 0 || out[size] != '\n')
		__builtin_trap();
	return 0;
}
