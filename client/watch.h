/*
 * A WATCH subscription on its own connection (proto/PROTOCOL.md,
 * "Watching"): subscribe, take the current state, then read the events the
 * broker pushes.  Both calls print their one-line message on failure and
 * return an exit status, like conn.c.
 */
#ifndef SECRETCTL_WATCH_H
#define SECRETCTL_WATCH_H

#include <stddef.h>
#include <stdint.h>

#include <secretd/wire.h>

#include "conn.h"

/* Called for each (name, version) of the state and for each event; non-zero stops. */
typedef int (*watch_fn)(void *arg, const struct wire_str *name, uint32_t version);

/*
 * Connect, send WATCH with the n patterns and hand every pair of the
 * current state to fn.  On a refusal c->resp.status says which: INVALID
 * from a broker that does not know WATCH (protocol 1) or that refused a
 * pattern.
 */
int watch_subscribe(struct conn *c, char *const *patterns, size_t n, const char *context,
		    watch_fn fn, void *arg);

/*
 * Read one event (call when c->fd is readable) and hand it to fn.  An event
 * that ends the subscription is reported and gives its exit status (never
 * EXIT_OK); a broker gone gives EXIT_UNREACHABLE.
 */
int watch_event(struct conn *c, const char *context, watch_fn fn, void *arg);

#endif
