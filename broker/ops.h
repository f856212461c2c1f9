/*
 * The operation table: for each request type, what the request path needs
 * to know about it, and its handler.  Adding an operation is one line in
 * ops.c, one handler (op_*.c), the codec and PROTOCOL.md.
 */
#ifndef SECRETD_OPS_H
#define SECRETD_OPS_H

#include <stdint.h>

#include <secretd/wire.h>

#include "policy.h"

struct conn;
struct reply;
struct services;

enum op_flags {
	OP_NAME = 1 << 0,    /* carries a secret name: validated, policy checked on it */
	OP_AUDITED = 1 << 1, /* no answer but "unavailable" unless its record is written */
	OP_SECRET = 1 << 2,  /* releases or changes a secret: withheld if not durable */
	OP_CALLER = 1 << 3,  /* needs an established identity */
	OP_STREAM = 1 << 4,  /* keeps pushing events after its answer */
};

enum op_result {
	OP_DONE,     /* the reply is decided */
	OP_DEFERRED, /* someone calls request_decided(reply) later */
};

/* One request while its handler runs.  wire points into the input buffer:
 * valid only during the call (a deferred handler copies what it keeps). */
struct request {
	const struct op_entry *op;
	const struct wire_request *wire;
	struct conn *conn;
	const struct identity *id;
	struct reply *reply;
	struct services *svc;
};

struct op_entry {
	uint8_t type;       /* enum wire_type */
	const char *name;   /* in audit records and messages */
	unsigned perm;      /* PERM_* on the name (OP_NAME), 0 if none */
	unsigned flags;     /* enum op_flags */
	enum op_result (*handler)(struct request *rq);
};

/* The entry for a request type, NULL if there is none. */
const struct op_entry *op_find(uint8_t type);

/* Handlers (one file a group). */
enum op_result op_ping(struct request *rq);     /* op_info.c */
enum op_result op_whoami(struct request *rq);   /* op_info.c */
enum op_result op_status(struct request *rq);   /* op_info.c */
enum op_result op_get(struct request *rq);      /* op_secret.c */
enum op_result op_put(struct request *rq);      /* op_secret.c */
enum op_result op_delete(struct request *rq);   /* op_secret.c */
enum op_result op_list(struct request *rq);     /* op_list.c */
enum op_result op_watch(struct request *rq);    /* op_watch.c */

#endif
