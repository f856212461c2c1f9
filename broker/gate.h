/*
 * The audit gate: no answer leaves before its audit record has been
 * written, and with audit-sync = always before it is on disk.  It owns the
 * batched write(2) after each turn of the loop, the fsync on a worker
 * thread, the answers waiting for either, and their release.  It knows
 * nothing of connections: what waits is a struct gate_item, released
 * through its callback exactly once (unless forgotten first).
 */
#ifndef SECRETD_GATE_H
#define SECRETD_GATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "tailq.h"

#include <uv.h>

#include "audit.h"

enum gate_outcome {
	GATE_OK,        /* the record is written (and durable where required) */
	GATE_UNWRITTEN, /* the record could not be written: nothing audited */
	GATE_UNSYNCED,  /* written, but the fsync covering it failed */
};

enum gate_where { GATE_NOWHERE, GATE_UNWRITTEN_LIST, GATE_UNSYNCED_LIST };

struct gate_item {
	TAILQ_ENTRY(gate_item) link;
	uint64_t seq;   /* its record; 0 when it has none */
	uint64_t drops; /* audit_drops() when the record was queued */
	enum gate_where where;
	void (*release)(struct gate_item *item, enum gate_outcome outcome);
};

struct gate;

/* checkpoint(arg, blob, len): a durable audit state for the vault to keep. */
typedef void (*gate_checkpoint_fn)(void *arg, const uint8_t *blob, size_t len);

struct gate_sync {
	bool always;          /* audit-sync = always: answers wait for their fsync */
	unsigned interval_ms; /* batch: the fsync this long after the first record */
};

int gate_new(uv_loop_t *loop, struct audit *audit, const struct gate_sync *sync,
	     gate_checkpoint_fn checkpoint, void *arg, struct gate **out);
/* Close the gate's handles (the loop must then run to let them go). */
void gate_close(struct gate *g);
void gate_free(struct gate *g);

/*
 * Queue ev (NULL: no record) and release item once it may go out: after
 * this turn's write(2), and with audit-sync = always after its fsync.  A
 * record that cannot be queued releases the item at once, GATE_UNWRITTEN.
 */
void gate_submit(struct gate *g, struct gate_item *item, const struct audit_event *ev);
/* The item's owner is going away: take it off the gate's lists, no release. */
void gate_forget(struct gate *g, struct gate_item *item);

/* A record about no answer (refusal counts, the broker's own): written now. */
int gate_record(struct gate *g, const struct audit_event *ev);

bool gate_healthy(struct gate *g);
/* Every second: ratchet the epoch, recover a degraded log, start a due sync. */
void gate_tick(struct gate *g);
/* SIGHUP: reopen the log after rotation (answers on an unsynced old file are withheld). */
void gate_reopen(struct gate *g);
/* Nothing waits and no fsync runs: shutdown may finish. */
bool gate_idle(const struct gate *g);
/* Called whenever the gate becomes idle (shutdown watches it). */
void gate_on_idle(struct gate *g, void (*fn)(void *arg), void *arg);

#endif
