/*
 * The path of one request, all on the loop thread:
 *
 *   frame -> decode -> rate limit -> admit (name, audit log, identity)
 *   -> policy -> handler -> encode -> audit gate -> the connection's queue
 *
 * Handlers never send: they fill the request's reply and return OP_DONE,
 * or OP_DEFERRED and call request_decided() when they are done.
 */
#ifndef SECRETD_REQUEST_H
#define SECRETD_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "ops.h"

struct conn;
struct reply;
struct services;

/*
 * A whole frame body from c: decide its answer.  OP_DEFERRED: c takes no
 * other request until the handler's completion calls request_decided().
 */
enum op_result request_handle(struct services *svc, struct conn *c, const uint8_t *body,
			      size_t len);

/* Framing is broken (a bad length prefix): answer INVALID, then close. */
void request_refuse_framing(struct services *svc, struct conn *c, int wire_err);

/* A connection over a limit (enum limits_result): one answer, then close. */
void request_refuse_conn(struct services *svc, struct conn *c, int limits_result);

/*
 * A systemd credential request (credential.c recognised the connection):
 * the bare value of systemd/UNIT/ID if the policy permits it, or nothing;
 * audited either way (op "credential"), then the connection is closed.
 */
struct credential_req;
void request_credential(struct services *svc, struct conn *c, const struct credential_req *req);

/* The reply of a deferred request is decided: encode, audit, queue; and its
 * connection may take its next request. */
void request_decided(struct services *svc, struct reply *r);

/*
 * Answer the request with an error: status, the audit record's decision
 * ("deny" or "error") and error field, and the message for the caller.
 */
void request_fail(struct request *rq, uint8_t status, const char *decision,
		  const char *error, const char *message);

/* The connection's run of rate-limited requests ended: record it. */
void request_end_refusals(struct services *svc, struct conn *c);

/* The refusals not recorded one by one, in one record of the broker's (each second). */
void request_record_refusals(struct services *svc);

#endif
