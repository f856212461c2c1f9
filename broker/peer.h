/* Establishing a connection's identity from the kernel (SO_PEERCRED & co). */
#ifndef SECRETD_PEER_H
#define SECRETD_PEER_H

#include "identity.h"

/*
 * Fill id for the peer of connected Unix socket fd.  Returns 0 when at least
 * the credentials were read (id->established says whether the rest was),
 * -errno when not even SO_PEERCRED worked.  Blocking but quick: reads a few
 * small files under /proc.  Needs no privilege.
 */
int peer_identify(int fd, struct identity *id);

struct ucred;
/*
 * The same for a caller whose SO_PEERCRED the broker already read (the
 * connect-rate check takes it before any /proc read): not asked again.
 */
int peer_identify_cred(int fd, const struct ucred *cred, struct identity *id);

/* Number of entries in NSpid of our own /proc/self/status (for `host`). */
int peer_own_pidns_depth(void);

#endif
