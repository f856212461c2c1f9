/*
 * One answer on its way out: decided by a handler, its audit record written
 * (and, with audit-sync = always, on disk) by the gate, then written to the
 * socket by its connection, strictly in the order the requests came.  Watch
 * events travel the same queue.  A reply owns everything it points at.
 */
#ifndef SECRETD_REPLY_H
#define SECRETD_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "tailq.h"

#include <uv.h>

#include <secretd/wire.h>

#include "audit.h"
#include "gate.h"
#include "vault.h"

#define REPLY_MESSAGE_MAX 256

struct conn;

enum reply_state {
	REPLY_DECIDING, /* its handler (or the writer) is still at work */
	REPLY_AUDITING, /* in the gate: record being written or synced */
	REPLY_READY,    /* may go out once those before it have */
	REPLY_WRITING,  /* handed to the socket */
};

struct reply {
	TAILQ_ENTRY(reply) link;     /* the connection's queue, in order */
	struct gate_item gate;       /* the audit gate's view */
	struct conn *conn;           /* holds a reference */
	enum reply_state state;
	uint8_t type;                /* the request type answered */
	unsigned flags;              /* its operation's enum op_flags */
	bool close_after;            /* the stream cannot be trusted: close once sent */
	struct wire_response resp;
	char message[REPLY_MESSAGE_MAX];
	struct vault_secret *secret; /* GET: the value, wiped when freed */
	struct wire_str *items;      /* LIST, WHOAMI, WATCH */
	uint32_t *versions;          /* WATCH */
	char *item_text;             /* the bytes items point into */
	struct audit_event ev;       /* the record, filled as the request is decided */
	char *ev_text;               /* what ev.name points at when the reply owns it */
	bool plain;                  /* out is malloc'd: an event, which holds no secret */
	bool raw;                    /* a systemd credential: the bare value, or nothing */
	unsigned refusals;           /* rate-limited requests its record counts */
	uint64_t started_ns;         /* the request's arrival (uv_hrtime), for metrics */
	uint8_t *out;                /* the encoded frame (guarded memory) */
	size_t out_len, out_cap;
	/*
	 * The first bytes of out that may have been written (wiped when out
	 * goes back): SIZE_MAX, all of it, unless the encoder says less.
	 */
	size_t out_dirty;
	uv_write_t wreq;
};

/* Replace whatever was decided with an error status and message. */
void reply_error(struct reply *r, uint8_t status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Free what the answer holds (the value wiped); the encoding is kept. */
void reply_drop_content(struct reply *r);

#endif
