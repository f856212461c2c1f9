/*
 * The fleet: secrets kept in etcd under a prefix, sealed with the fleet's
 * data key (record formats in fleet_record.h), on top of an etcd_client.
 *
 * Threading: loop thread only, like etcd_client; every callback runs on the
 * loop thread and never before the call that asked for it returns.  Nothing
 * here knows connections, policy or audit: the broker composes those.
 *
 * Writes keep versions one fleet-wide sequence:
 *   put(name, value): read the head (version V, mod_revision M); then one
 *     txn: if head.mod_revision == M then { head = V+1, v/name@V+1 = sealed,
 *     delete versions <= V+1-keep } else { range head, range v/name@V+1 }.
 *     On a failed compare the answer already holds the new head, so the
 *     next attempt needs no extra read; after max_retries (default 64, with
 *     jittered backoff) the put fails with ETCD_E_CONFLICT.  If the failure
 *     branch shows v/name@V+1 holding exactly our sealed bytes, an earlier
 *     attempt of this same put committed (an answer lost in fail-over) and
 *     the put succeeds once, not twice.
 *   rm(name): the same compare; then the head becomes a tombstone (version
 *     kept, flag removed) and every version of the name is deleted, so a
 *     later put continues the sequence instead of reusing a version.
 * A write is acknowledged (status 0) only after etcd committed it; result
 * revision is the revision of that commit.  ETCD_E_UNAVAILABLE means the
 * outcome is unknown only when etcd went away after receiving the txn; the
 * watch then shows whether it committed.
 */
#ifndef SECRETD_FLEET_H
#define SECRETD_FLEET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "etcd_client.h"
#include "fleet_record.h"

#define FLEET_DEFAULT_PREFIX "/secretd/"
#define FLEET_DEFAULT_RETRIES 64
#define FLEET_SNAPSHOT_PAGE 500

struct fleet_config {
	const char *prefix;          /* etcd-prefix; NULL = FLEET_DEFAULT_PREFIX */
	const uint8_t *cluster_key;  /* FLEET_KEY_LEN bytes from cluster-key-file; not kept */
	unsigned keep_versions;      /* versions kept in etcd per name (>= 1) */
	unsigned max_retries;        /* 0 = FLEET_DEFAULT_RETRIES */
};

struct fleet;
struct fleet_watch;

struct fleet_result {
	int status;          /* 0 or an etcd_err */
	uint32_t version;    /* put: the new version; rm: the last version; get: the one read */
	int64_t revision;    /* the revision of the commit (put, rm) or of the read (get) */
	uint64_t cluster_id; /* from the answer's header */
	unsigned attempts;   /* txns sent (1 without contention) */
	struct etcd_error error; /* etcd's code and text for ETCD_E_SERVER / ETCD_E_AUTH */
};

typedef void (*fleet_ready_cb)(struct fleet *f, int status, void *arg);
typedef void (*fleet_done_cb)(const struct fleet_result *r, void *arg);
/* value: plaintext in locked memory, wiped after the callback returns. */
typedef void (*fleet_get_cb)(const struct fleet_result *r, const uint8_t *value, size_t len,
			     void *arg);

/*
 * A fleet on client.  Reads the wrapped data key at <prefix>keys/1, or
 * creates it (a txn that succeeds only if the key is still absent, so the
 * first node of a fleet makes it and every other node reads that one), and
 * unwraps it: ready(f, 0) then, or ready(f, ETCD_E_KEY) when the cluster
 * key is not the fleet's, or another etcd_err.  Returns 0 or an etcd_err
 * (then ready never runs and *out is not set).
 */
int fleet_new(uv_loop_t *loop, struct etcd_client *client, const struct fleet_config *cfg,
	      fleet_ready_cb ready, void *arg, struct fleet **out);

/*
 * Free the fleet.  Operations still running finish first (their callbacks
 * run, with ETCD_E_CANCELED once the client is closed); the memory goes with
 * the last one.  Close the client first, or let the operations end.
 */
void fleet_free(struct fleet *f);

/* Writes and a direct read from etcd (the broker serves reads from its replica). */
int fleet_put(struct fleet *f, const char *name, size_t nlen, const uint8_t *value,
	      size_t vlen, fleet_done_cb cb, void *arg);
int fleet_rm(struct fleet *f, const char *name, size_t nlen, fleet_done_cb cb, void *arg);
/* version 0 = the latest. */
int fleet_get(struct fleet *f, const char *name, size_t nlen, uint32_t version,
	      fleet_get_cb cb, void *arg);

/*
 * A record found in etcd (snapshot or watch).  status is 0, or
 * ETCD_E_INTEGRITY for a head or sealed record that is malformed or whose
 * version disagrees with its key: never apply such an item.  name and
 * sealed point into the answer: valid during the callback only.
 */
struct fleet_item {
	enum fleet_key_kind kind; /* OTHER items (foreign keys) are for counting only */
	int status;
	const char *name;         /* not terminated */
	size_t name_len;
	uint32_t version;         /* HEAD: latest version; VERSION: this one; DATAKEY: term */
	bool removed;             /* HEAD: a tombstone */
	const uint8_t *sealed;    /* VERSION (PUT only): the sealed record, for fleet_unseal */
	size_t sealed_len;
	int64_t mod_revision;
};

/* Open a VERSION item's sealed record into *out (sodium_malloc'd; sodium_free it). */
int fleet_unseal(struct fleet *f, const struct fleet_item *it, uint8_t **out, size_t *outlen);

/*
 * Read the whole prefix at one revision, FLEET_SNAPSHOT_PAGE keys a page:
 * item(it, arg) for each key in byte order (a nonzero return stops, and
 * done gets that value), then done(0, revision, arg).  ETCD_E_COMPACTED
 * means that revision was compacted between pages: discard what was given
 * and start again.  The broker applies a snapshot as one local transaction
 * and then watches from revision + 1.
 */
typedef int (*fleet_item_fn)(const struct fleet_item *it, void *arg);
typedef void (*fleet_snapshot_cb)(int status, int64_t revision, uint64_t cluster_id,
				  void *arg);
int fleet_snapshot(struct fleet *f, fleet_item_fn item, fleet_snapshot_cb done, void *arg);

struct fleet_change {
	enum etcd_event_type type; /* PUT, or DELETE (then item.sealed is NULL) */
	struct fleet_item item;
};

/*
 * Watch the prefix from from_revision (the last applied + 1).  cb gets:
 *   status 0, changes[0..n) in revision order (n may be 0), and revision:
 *     the highest revision these changes complete (persist it once they are
 *     applied), or 0 when the message completes none (the stream's
 *     "created").  A progress message gives n 0 and the store's revision.
 *   ETCD_E_UNAVAILABLE and the other transient errors of etcd_watch_cb:
 *     not connected; the watch goes on by itself.
 *   ETCD_E_COMPACTED with revision = the compaction revision: the watch is
 *     over; snapshot, then watch again.  Call fleet_watch_stop to free it.
 */
typedef void (*fleet_watch_cb)(int status, int64_t revision, const struct fleet_change *ch,
			       size_t n, void *arg);
int fleet_watch(struct fleet *f, int64_t from_revision, fleet_watch_cb cb, void *arg,
		struct fleet_watch **out);
/* No callback after this.  Stop every watch before etcd_client_close. */
void fleet_watch_stop(struct fleet_watch *w);

const char *fleet_prefix(const struct fleet *f);

#endif
