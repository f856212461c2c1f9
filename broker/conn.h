/*
 * A client connection: its socket, the caller's identity, the input buffer
 * and the queue of replies, written strictly in request order.  Only
 * conn.c and conn_reply.c see struct conn (through conn_internal.h).  A
 * connection is freed in one place: when the last reference goes (its
 * handle, each reply, each deferred request).
 */
#ifndef SECRETD_CONN_H
#define SECRETD_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <stdint.h>

#include "identity.h"
#include "limits.h"

struct conn;
struct reply;
struct services;

/* The refusals of one connection not yet recorded (see request.c). */
struct conn_refusals {
	unsigned count;
	uint64_t logged_ms; /* this run last recorded; 0 none */
};

struct sockaddr_un;
/*
 * Serve an accepted socket whose caller is *id (moved into the connection;
 * *id is cleared).  peer/peer_len: the peer's address as accept(2) gave
 * it, or NULL to ask the socket.  0, or -errno with fd closed.
 */
int conn_start(struct services *svc, int fd, struct identity *id,
	       const struct sockaddr_un *peer, socklen_t peer_len);

const struct identity *conn_identity(const struct conn *c);
/* The identity's fields as its audit records write them (audit_record_who); NULL: none. */
const char *conn_audit_who(struct conn *c, size_t *len);
struct services *conn_services(const struct conn *c);
/* A systemd credential connection: the unit its peer vouched for. */
int conn_set_unit(struct conn *c, const char *unit);
struct limits_slot *conn_slot(struct conn *c);
struct conn_refusals *conn_refusals(struct conn *c);

void conn_ref(struct conn *c);
void conn_unref(struct conn *c);
bool conn_closing(const struct conn *c);

/* Guarded buffers, large ones charged to the connection's identity. */
uint8_t *conn_buf_get(struct conn *c, size_t *cap);
void conn_buf_put(struct conn *c, uint8_t *buf, size_t cap);

/* The next reply in c's queue, for a request of this type (NULL: no memory). */
struct reply *conn_reply_new(struct conn *c, uint8_t type);
/* r is encoded and audited: it goes out once those before it have. */
void conn_reply_ready(struct reply *r);
/* The request being decided on c is decided: c may take its next one. */
void conn_request_decided(struct conn *c);
/*
 * From now on c is a stream (watch): no idle timeout, and end(state) is
 * called when the connection closes.
 */
void conn_set_stream(struct conn *c, void *state, void (*end)(void *state));
bool conn_is_stream(const struct conn *c);
/*
 * Queue an EVENT (name now has version, 0 = deleted) after everything queued
 * so far.  A subscriber that does not read has its events for one name
 * coalesced to the latest; past CONN_MAX_EVENTS queued, -1: the caller ends
 * the stream.
 */
int conn_push_event(struct conn *c, const char *name, size_t len, uint32_t version);
/* End the stream with an EVENT of this status and message, then close. */
void conn_end_stream(struct conn *c, uint8_t status, const char *message);
/* Replies queued and not yet written (watch coalesces events past a bound). */
size_t conn_queued(const struct conn *c);

/* The one way a connection ends. */
void conn_close(struct conn *c);

/* Every second: requests and answers over their time, idle connections. */
void conns_sweep(struct services *svc);
/* Shutdown: close every connection with nothing in flight. */
void conns_stop(struct services *svc);
/* Set up and tear down the connections' shared handles. */
int conns_init(struct services *svc);
void conns_close(struct services *svc);

#endif
