/*
 * The broker's event loop: composes the listener, connections, the
 * request path, the audit gate, the writer, the vault and the policy, and
 * owns the tick, signals, reload and shutdown.
 */
#ifndef SECRETD_SERVER_H
#define SECRETD_SERVER_H

#include "audit.h"
#include "config.h"
#include "notify.h"
#include "policy.h"
#include "upstream.h"
#include "vault.h"

struct server_parts {
	const struct config *cfg;
	struct vault *vault;
	struct vault_writer *writer;
	struct audit *audit;
	struct policy *policy; /* the server owns it from here on */
	int listen_fd;         /* bound and listening (before privileges drop) */
	const struct notify *notify; /* READY=1 once serving, STOPPING=1 at the end */
	struct upstream *upstream;   /* upstream = etcd (upstream_new'd); the server owns it */
};

/*
 * Serve until SIGTERM or SIGINT, then finish requests in flight and return
 * 0 (or 1 if the loop could not run).  Frees parts->policy.
 */
int server_run(struct server_parts *parts);

#endif
