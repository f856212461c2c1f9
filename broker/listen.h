/*
 * The listening socket: created (before privileges drop) and served.  A
 * turn of the loop accepts at most LISTEN_ACCEPTS_PER_TURN connections, and
 * a uid over its connection rate is turned away from its peer credentials
 * alone, before anything is read from /proc, so that a connect flood costs
 * little and the connections already open keep being served.
 */
#ifndef SECRETD_LISTEN_H
#define SECRETD_LISTEN_H

#include <stddef.h>
#include <sys/types.h>

struct services;
struct listener;

/*
 * Create the listening socket at path with the given mode.  A stale socket
 * left by a dead broker is replaced; a live broker's is not.
 */
int listen_create(const char *path, mode_t mode, int *fd, char *err, size_t errlen);

/* Serve fd (taken over: closed by listener_close). */
int listener_start(struct services *svc, int fd, struct listener **out);
/* After a failed accept (no file descriptors or memory): try again (the tick). */
void listener_retry(struct listener *l);
/* Stop accepting; the handle closes with the loop, the fd with it. */
void listener_close(struct listener *l);

#endif
