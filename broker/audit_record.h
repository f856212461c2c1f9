/*
 * One audit record: the struct that describes it, the builder that lays it
 * out as one JSON line and the parser that reads such a line back (broker
 * restart, audit-verify, the fuzzer).  The parser takes untrusted bytes with
 * an explicit length and accepts exactly what the builder writes: the
 * fields in the builder's order, each string in the builder's escaping and
 * within the builder's bound, numbers without sign or leading zeros where
 * the builder writes none.  Whatever parses, built again, gives the same
 * bytes.  Nothing here does I/O or keeps state.
 */
#ifndef SECRETD_AUDIT_RECORD_H
#define SECRETD_AUDIT_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audit_chain.h"
#include "identity.h"

/*
 * A record, newline included: room for a whole cgroup path (cgroup.c takes
 * at most CGROUP_PATH_MAX - 1 bytes) even with every byte escaped as
 * \u00XX, and for every other field at its bound.
 */
#define AUDIT_RECORD_MAX 32768
#define AUDIT_TS_MAX 40       /* a timestamp and its terminator */

/* ",\"chain\":\"<64 hex>\"}\n": what follows the body. */
#define AUDIT_RECORD_SUFFIX_LEN (10 + 2 * AUDIT_CHAIN_LEN + 3)

/*
 * One request as the log records it, and one record as the parser reads
 * it.  No value, nothing derived from one.  A caller of audit_append and
 * audit_queue fills the first group (with designated initialisers: what it
 * leaves zero is absent, except version and count, absent at -1); the log
 * fills the rest.
 */
struct audit_event {
	const char *op;        /* "get", "put", ... */
	const char *name;      /* NULL when the op has none */
	size_t name_len;
	long long version;     /* -1 when not applicable */
	const char *decision;  /* "allow", "deny", "error" */
	unsigned rule;         /* deciding policy line, 0 = default deny */
	const struct identity *who;
	/* who's fields as audit_record_who wrote them; NULL: written from who */
	const char *who_json;
	size_t who_json_len;
	const char *error;     /* NULL when none */
	long long count;       /* list: names returned; -1 when not applicable */
	const char *unit;      /* credential: the systemd unit; NULL when none */
	long long revision;    /* fleet sync: the upstream revision; 0 when none */

	/* Fields of the log's own records (start, degraded, ...). */
	const char *note;      /* NULL when none */
	long long torn_bytes;  /* start: bytes of a torn last line cut off; 0 none */
	bool degraded;         /* a degraded record: the next two are present */
	long long degraded_us; /* how long the log could not be written */
	long long refused;     /* requests refused meanwhile */

	/*
	 * Set by the log as it seals the record (what a caller passes is
	 * ignored), and by the parser.
	 */
	const char *ts;        /* RFC 3339, UTC, microseconds */
	uint64_t seq;
	uint64_t epoch;        /* of the key that seals the next record */
	bool file_start;       /* "file":"new": the first record of its file */
	/*
	 * file_start: "prev", the chain value of the record before it (zero
	 * before seq 1), so that the MAC of a file's first record can be
	 * checked without the earlier files.  Only records of secretd before
	 * 2026-12 begin a file without it.
	 */
	bool has_prev;
	uint8_t prev[AUDIT_CHAIN_LEN];
	uint8_t chain[AUDIT_CHAIN_LEN]; /* parser only: the record's chain value */
};

/*
 * Lay out the body of ev (everything the chain MAC covers, up to
 * ",\"chain\":") in out.  Strings are escaped (anything outside printable
 * ASCII as \u00XX) and cut with "..." at their bound.  Returns the length,
 * or 0 when ev lacks op, decision, who or ts, or the record would not fit
 * in cap (at most AUDIT_RECORD_MAX - AUDIT_RECORD_SUFFIX_LEN counts).
 */
size_t audit_record_body(const struct audit_event *ev, char *out, size_t cap);

/*
 * The identity's fields (uid to pod) as every record lays them out, for a
 * caller that writes many records of one identity and passes them as the
 * event's who_json.  The length, or 0 when they do not fit in cap
 * (AUDIT_WHO_MAX always does).
 */
#define AUDIT_WHO_MAX (6 * 4096 + 512)
size_t audit_record_who(const struct identity *who, char *out, size_t cap);

/*
 * Append the chain field and the newline to the body of body_len bytes in
 * buf (which has room for AUDIT_RECORD_SUFFIX_LEN more); the record's
 * length.
 */
size_t audit_record_seal(char *buf, size_t body_len, const uint8_t chain[AUDIT_CHAIN_LEN]);

/*
 * A parsed record.  ev.who points at who, and every string of ev (decoded,
 * NUL-terminated; name has name_len and may hold NUL bytes) into text, so
 * the struct must not be copied.
 */
struct audit_parsed {
	struct audit_event ev;
	struct identity who;
	size_t body_len;            /* bytes the chain MAC covers */
	char text[AUDIT_RECORD_MAX];
};

/* Parse one line of len bytes, without its newline.  False if it is not a record. */
bool audit_record_parse(const char *line, size_t len, struct audit_parsed *out);

/* The op is one of those that open an epoch ("start", "epoch"). */
bool audit_record_opens_epoch(const struct audit_event *ev);

#endif
