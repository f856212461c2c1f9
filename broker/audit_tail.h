/*
 * Where an existing audit log leaves off, so that a starting broker goes on
 * with its chain: the last record's seq, epoch and chain value, read from
 * the file's end.  A partial last line (a crash mid-write, so shorter than
 * any record) is cut off and counted.  The last complete line must parse as
 * a record, and its epoch must be below its seq (every epoch opens with a
 * record of its own); anything else is refused, for the operator to move the
 * file aside, and a refused file is left exactly as it was.
 */
#ifndef SECRETD_AUDIT_TAIL_H
#define SECRETD_AUDIT_TAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audit_chain.h"

struct audit_tail {
	bool have;            /* a last record was found */
	uint64_t seq, epoch;  /* of the last record */
	uint8_t chain[AUDIT_CHAIN_LEN];
	long long torn_bytes; /* cut off a partial last line; 0 none */
};

/*
 * Read the last record of the log open on fd (path names it in errors).
 * 0, with t->have false for an empty file (or one that held nothing but a
 * partial line, now cut); or -errno with a message in err.
 */
int audit_tail_read(int fd, const char *path, struct audit_tail *t, char *err, size_t errlen);

#endif
