/*
 * The broker's event loop: accepts connections on the Unix socket, reads
 * frames, and composes identity (peer.c), policy (policy.c), the vault
 * (vault.c) and the audit log (audit.c) into answers.  The only file that
 * knows about all of them.
 */
#ifndef SECRETD_SERVER_H
#define SECRETD_SERVER_H

#include <stddef.h>
#include <sys/types.h>

#include "audit.h"
#include "config.h"
#include "policy.h"
#include "vault.h"

struct server_parts {
	const struct config *cfg;
	struct vault *vault;
	struct vault_writer *writer;
	struct audit *audit;
	struct policy *policy; /* the server owns it from here on */
	int listen_fd;         /* bound and listening (before privileges drop) */
};

/*
 * Create the listening socket at path with the given mode.  A stale socket
 * left by a dead broker is replaced; a live broker's is not.
 */
int server_listen(const char *path, mode_t mode, int *fd, char *err, size_t errlen);

/*
 * Serve until SIGTERM or SIGINT, then finish requests in flight and return
 * 0 (or 1 if the loop could not run).  Frees parts->policy.
 */
int server_run(struct server_parts *parts);

#endif
