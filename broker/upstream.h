/*
 * The upstream: with `upstream = etcd`, the vault is a replica of a prefix
 * of an etcd cluster (fleet.c over etcd_client.c).  This is the composing
 * layer between the fleet and the broker: it follows etcd (a snapshot, then
 * a watch from the revision after the last one applied), applies each
 * change to the vault through the writer as one unit with the revision it
 * completes, tells local watchers, writes a `sync` audit record for each
 * change it applied, and carries this node's puts and rms to etcd first.
 *
 * It refuses to follow an etcd that answers with a revision below the one
 * the vault remembers, or with another cluster id (a restored backup, the
 * wrong cluster): the replica keeps serving, writes fail with status 6.
 *
 * Loop thread only.  Callbacks run on the loop thread, never before the
 * call that asked for them returns.
 */
#ifndef SECRETD_UPSTREAM_H
#define SECRETD_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct services;
struct config;
struct upstream;

struct vault;

/*
 * Before privileges drop: read the cluster key and the etcd password, and
 * check that vault may be a replica (it followed an upstream before, or
 * holds no secret).  Returns 0, or -1 with a one-line reason in err (the
 * broker then exits 1).  cfg must outlive the upstream.
 */
int upstream_new(const struct config *cfg, struct vault *vault, struct upstream **out,
		 char *err, size_t errlen);
/* One that never started. */
void upstream_free(struct upstream *u);

/*
 * Start following in the background, on svc's loop, writing through its
 * writer and gate (sets svc->upstream).  Never waits for etcd.
 */
int upstream_start(struct upstream *u, struct services *svc, char *err, size_t errlen);

/*
 * Stop following (once nothing of it is left in the writer); done(arg) runs
 * once the etcd client is closed and u is freed.
 */
void upstream_stop(struct upstream *u, void (*done)(void *arg), void *arg);

/*
 * A put or rm through etcd.  done runs once etcd committed it and the
 * replica holds it, or once it failed: status is a wire status (OK,
 * NOT_FOUND for an rm of a missing name, UNAVAILABLE while etcd cannot be
 * reached or is refused, ERROR), version the new version (put) or the
 * versions removed here (rm), message a reason when status is not OK.
 * name and value must stay valid until done runs.  Returns 0, or -1 when it
 * cannot even start (then done never runs; upstream_problem says why).
 */
typedef void (*upstream_done_fn)(void *arg, int status, uint32_t version, const char *message);
int upstream_put(struct upstream *u, const char *name, size_t nlen, const uint8_t *value,
		 size_t vlen, upstream_done_fn done, void *arg);
int upstream_rm(struct upstream *u, const char *name, size_t nlen, upstream_done_fn done,
		void *arg);

/* Why writes cannot go to etcd now (after upstream_put/rm returned -1). */
const char *upstream_problem(struct upstream *u);

struct upstream_status {
	const char *state;    /* connecting, following, resyncing, refused */
	bool connected;
	int64_t revision;     /* the highest etcd revision applied */
	uint64_t lag_ms;      /* 0 when caught up with the store's last known revision */
	const char *problem;  /* "" when none */
	uint64_t resyncs;
	uint64_t rollbacks_refused;
};
void upstream_status(struct upstream *u, struct upstream_status *out);

#endif
