/*
 * One connection to the broker: requests are sent one at a time and each
 * answer is read before the next request goes out.  The functions print the
 * one-line message for every failure themselves and return the exit status,
 * so subcommands only add what is theirs.
 */
#ifndef SECRETCTL_CONN_H
#define SECRETCTL_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <secretd/wire.h>

/* How long a broker may stay silent before the client gives up. */
#define CONN_TIMEOUT_SECONDS 30

struct conn {
	int fd;
	uint8_t *body;              /* sodium_malloc: answers may carry values */
	size_t body_len;
	struct wire_response resp;  /* the last answer; points into body */
};

/* Connect to ctl_socket: EXIT_OK, or EXIT_UNREACHABLE with the message printed. */
int conn_open(struct conn *c);

/*
 * Send req and read its answer into c->resp (valid until the next request or
 * conn_close).  On a status other than OK, prints "CONTEXT: <broker's
 * message>" and returns the exit status for it; c->resp.status still says
 * which.  context names the operation ("get app/db").
 */
int conn_request(struct conn *c, const struct wire_request *req, const char *context);

/*
 * Read one frame the broker sends unasked (a WATCH EVENT) into c->resp.
 * EXIT_OK whatever its status; EXIT_UNREACHABLE when the broker closed the
 * connection, EXIT_ERROR for a malformed frame, with the message printed.
 */
int conn_recv(struct conn *c, const char *context);

/* Wipe and free the last answer; the connection stays open. */
void conn_release(struct conn *c);

/* Wipe, free and close everything; safe on a connection that never opened. */
void conn_close(struct conn *c);

#endif
