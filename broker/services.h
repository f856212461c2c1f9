/*
 * What the request path is built from: the parts server.c composes and
 * hands to connections and handlers.  Each part keeps its internals; this
 * is only who is there.
 */
#ifndef SECRETD_SERVICES_H
#define SECRETD_SERVICES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "tailq.h"

#include <uv.h>

#include "buffers.h"
#include "config.h"
#include "gate.h"
#include "identity.h"
#include "limits.h"
#include "policy.h"
#include "refusals.h"
#include "vault.h"
#include "writer.h"

struct conn;
struct watch_hub;
struct metrics;
struct upstream;
TAILQ_HEAD(conn_list, conn);

struct services {
	uv_loop_t *loop;
	const struct config *cfg;
	struct vault *vault;
	struct policy *policy;   /* replaced by a reload */
	struct writer *writer;
	struct gate *gate;
	struct limits *limits;
	struct buffers *buffers;
	struct refusals refusals;
	struct watch_hub *hub;
	struct metrics *metrics;  /* counts only, for --metrics-listen */
	struct upstream *upstream; /* upstream = etcd: writes go through it; else NULL */
	struct identity self;    /* the broker, for its own records */
	char banner[64];
	bool stopping;
	/* connections (conn.c keeps these) */
	struct conn_list conns;
	size_t nconns;
	struct conn_list ready;  /* a whole frame waits for the next turn */
	uv_idle_t ready_idle;
	uv_prepare_t turn_end;   /* before the loop waits: vault_turn_end */
	void (*on_conn_gone)(struct services *svc); /* shutdown watches it */
};

#endif
