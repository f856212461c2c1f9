/*
 * Inside a connection: its state, shared by conn.c (lifetime, buffers,
 * reading and taking requests) and conn_reply.c (the reply queue, writing,
 * a watcher's events).  Nothing else includes this; the rest of the broker
 * sees struct conn only through conn.h.
 */
#ifndef SECRETD_CONN_INTERNAL_H
#define SECRETD_CONN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "conn.h"
#include "reply.h"
#include "services.h"
#include "tailq.h"

enum conn_state {
	CONN_OPEN,     /* takes requests */
	CONN_DECIDING, /* a request is being decided; the next one waits */
	CONN_DRAINING, /* takes no more: closes once its replies are written */
	CONN_CLOSING,  /* the handle is closing; freed with the last reference */
};

TAILQ_HEAD(reply_list, reply);

struct conn {
	uv_pipe_t pipe; /* first: libuv hands back the handle */
	struct services *svc;
	enum conn_state state;
	unsigned refs;
	TAILQ_ENTRY(conn) link;       /* svc->conns */
	TAILQ_ENTRY(conn) ready_link; /* svc->ready, while on_ready */
	bool on_ready;
	bool reading;                 /* uv_read_start is in effect */
	void *stream;                 /* a watcher's state (never idle), or NULL */
	void (*stream_end)(void *stream);
	bool eof;                     /* the peer will send no more: answer, then close */
	struct identity id;
	char *audit_who;              /* id as its records write it (conn_audit_who) */
	size_t audit_who_len;
	struct limits_slot *slot;
	uint8_t *in;                  /* guarded: frames may carry values */
	size_t in_len, in_cap;
	struct reply_list replies;
	size_t nreplies;
	/* The last reply freed, kept for the next request (most clients send one at a time). */
	struct reply *spare;
	size_t writing;               /* replies handed to uv_write */
	uint64_t frame_started_ms;    /* first byte of an unfinished frame */
	uint64_t write_started_ms;    /* the oldest answer the peer has not taken */
	uint64_t active_ms;           /* last request decided */
	struct conn_refusals refusals;
};

static inline uint64_t conn_now_ms(const struct conn *c)
{
	return uv_now(c->svc->loop);
}

/* conn.c */
/* An answer's buffer back (see the definition). */
void conn_out_put(struct conn *c, uint8_t *buf, size_t cap, size_t dirty);
/* The frame at the head of the input is all there (or its header is bad). */
bool conn_whole_frame(const struct conn *c);
/* Taking no more requests and nothing left to answer: time to close. */
bool conn_finished(const struct conn *c);
/* Its next frame waits for the next turn (one frame a connection a turn). */
void conn_make_ready(struct conn *c);
/* Start or stop reading as the connection's state asks (see conn.c). */
void conn_update_reading(struct conn *c);

/* conn_reply.c */
/* Free a reply and what it holds (see the definition). */
void conn_reply_free(struct reply *r);

#endif
