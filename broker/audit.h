/*
 * The audit log: one JSON line per request, appended (write(2) completed)
 * before the answer is sent, chained with a keyed BLAKE2b MAC whose key
 * ratchets forward.  audit.c writes the live log, audit_check.c verifies
 * files offline, audit_record.c builds and parses one record (struct
 * audit_event), audit_chain.c holds the keys and MACs.  Nothing here knows
 * about the event loop: server.c calls audit_sync_run() from a worker
 * thread and feeds checkpoints to the vault.
 *
 * Functions return 0 or -errno and never print; audit_problem() says what is
 * wrong while degraded.
 */
#ifndef SECRETD_AUDIT_H
#define SECRETD_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audit_record.h" /* struct audit_event */
#include "identity.h"

#define AUDIT_KEY_LEN 32
#define AUDIT_CHECKPOINT_MAX 128

enum audit_sync_mode {
	AUDIT_SYNC_BATCH,  /* fsync every few milliseconds */
	AUDIT_SYNC_ALWAYS, /* the reply waits for the fsync covering it */
};

struct audit_options {
	enum audit_sync_mode sync;
	unsigned epoch_records; /* ratchet after this many records ... */
	unsigned epoch_seconds; /* ... or this many seconds, whichever first */
};

struct audit;

/*
 * Open (create, mode 0600) the log at path for appending, derive the chain
 * key from master, and continue seq and chain from the file's last record
 * (or from the vault checkpoint blob, if given, when the file is new).
 * Holds an exclusive lock on PATH.lock until audit_close, across every
 * reopen: -EWOULDBLOCK, err naming the holder, when another broker has it.
 */
int audit_open(const char *path, const uint8_t master[32],
	       const struct audit_options *opt, const uint8_t *checkpoint,
	       size_t checkpoint_len, struct audit **out, char *err, size_t errlen);

/*
 * Append one record; returns 0 once write(2) has taken all of it.  On any
 * failure the log enters the degraded state and -errno is returned.
 */
int audit_append(struct audit *a, const struct audit_event *ev);

/*
 * The same record, sealed now (seq and chain advance) but written by the
 * next audit_flush, so that the records of one turn of the event loop cost
 * one write(2).  An answer may be sent only after audit_flush returned 0;
 * if it fails, every queued record is forgotten (seq and chain go back) and
 * the log is degraded.  Anything else that writes flushes the queue first.
 */
int audit_queue(struct audit *a, const struct audit_event *ev);
/*
 * A descriptor that becomes readable when the log's file may have lost its
 * name (-1: none; every write then checks for itself); audit_watch_event
 * when it did, so the next write checks before it writes.
 */
int audit_watch_fd(const struct audit *a);
void audit_watch_event(struct audit *a);
/* Nobody can poll it: every write checks for itself from now on. */
void audit_watch_off(struct audit *a);
int audit_flush(struct audit *a);
bool audit_pending(const struct audit *a);
/* How often queued records were forgotten: a record queued before the
 * count changed may be lost, even if a later flush succeeded. */
uint64_t audit_drops(const struct audit *a);

/* False while degraded: no secret may be released or changed. */
bool audit_healthy(const struct audit *a);
const char *audit_problem(const struct audit *a);

/* While degraded: try to write again (reopening the file); 0 when healthy. */
int audit_recover(struct audit *a);

/* SIGHUP: reopen the path (after logrotate's rename); the chain continues. */
int audit_reopen(struct audit *a);

/*
 * Durability.  audit_sync_begin (loop thread) returns the seq that the sync
 * will cover and the checkpoint blob for the vault; audit_sync_run may then
 * run on any thread; audit_sync_end (loop thread) records the result.
 */
uint64_t audit_sync_begin(struct audit *a, uint8_t *checkpoint, size_t *len);
int audit_sync_run(struct audit *a);
void audit_sync_end(struct audit *a, uint64_t covered, int result);
bool audit_dirty(const struct audit *a); /* written but not yet synced */
uint64_t audit_last_seq(const struct audit *a);
uint64_t audit_synced_seq(const struct audit *a);
/*
 * How many fsyncs have failed so far.  The kernel reports a writeback error
 * once: when an fsync failed meanwhile (reopening after a rotation syncs the
 * old file), a concurrent sync that returned 0 proves nothing.
 */
uint64_t audit_sync_failures(const struct audit *a);

/* Ratchet if the epoch's time is up (called from a timer). */
int audit_tick(struct audit *a);

/*
 * Write the clean-shutdown record now, so that the last sync and the vault
 * checkpoint cover it (otherwise audit_close writes it).  0 or -errno.
 */
int audit_stop(struct audit *a);

/* Write the clean-shutdown record, sync, close, wipe keys. */
int audit_close(struct audit *a);

/*
 * Verify files in order with the master key; with a checkpoint blob, also
 * that nothing after it was cut off.  Returns 0 intact, 1 broken (report
 * names file, line and seq), -errno when a file cannot be read.  report gets
 * a one-line summary either way.
 */
int audit_verify(const uint8_t master[32], const char *const *files, size_t nfiles,
		 const uint8_t *checkpoint, size_t checkpoint_len,
		 char *report, size_t reportlen);

#endif
