/*
 * Parsing of the two /proc/<pid> files peer.c reads besides cgroup: stat
 * (the leader's state, flags and start time) and status (its State letter
 * and the number of NSpid entries).  Pure functions over untrusted bytes
 * (fuzzed): a caller chooses its own comm, which stat prints unescaped,
 * spaces, ')' and newlines included.
 */
#ifndef SECRETD_PROC_PARSE_H
#define SECRETD_PROC_PARSE_H

#include <stdbool.h>
#include <stddef.h>

/* NSpid holds one pid a namespace level (at most 32 levels). */
#define PROC_STATUS_LINE_MAX 512

/* The fields of /proc/<pid>/stat we need, all of the thread-group leader. */
struct proc_stat {
	char state;               /* field 3 */
	unsigned long flags;      /* field 9 */
	unsigned long long start; /* field 22 */
};

/*
 * Parse the whole text of a stat file (len bytes, not terminated): fields
 * are counted after the LAST ')', since comm (field 2) may hold any byte
 * but NUL, each after exactly one space.  0, or -EPROTO when a field we
 * need is missing, the state is not one byte, or flags or the start time
 * is not a decimal that fits; *out is then partly written.
 */
int proc_stat_parse(const char *text, size_t len, struct proc_stat *out);

/* A status file read a chunk at a time (its Groups line can be very long). */
struct proc_status_scan {
	char line[PROC_STATUS_LINE_MAX];
	size_t llen;
	bool overflow; /* the line being read is longer than line[] */
	char state;    /* the State line's letter, or '\0' */
	/* The NSpid entries; -ENOENT until that line is read, and then the rest is not looked at. */
	int nspid;
};

void proc_status_init(struct proc_status_scan *s);

/*
 * The next n bytes of the file.  true once the NSpid line has been read
 * (then s->nspid is its count, or -EFBIG for a line too long, -EPROTO for
 * a malformed one); the result does not depend on how the text is cut
 * into chunks.
 */
bool proc_status_feed(struct proc_status_scan *s, const char *chunk, size_t n);

#endif
