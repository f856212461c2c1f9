/*
 * An asynchronous etcd v3 client over the gRPC-JSON gateway (HTTP/1.1).
 *
 * Threading: libcurl runs on one dedicated thread per client (its multi
 * interface, woken with curl_multi_wakeup).  The caller's libuv loop never
 * blocks: requests are queued from the loop thread, answers are parsed and
 * checked on the curl thread, and every callback runs on the loop thread
 * (through a uv_async_t).  All functions here are for the loop thread only.
 *
 * A dedicated thread rather than curl_multi_socket_action on the broker's
 * loop: TLS handshakes, JSON parsing of answers up to 64 MiB and base64 all
 * stay off the loop that serves local callers, and the module needs nothing
 * of the loop but one uv_async_t, so it can be wired into a loop that is
 * being rebuilt without touching it.
 *
 * Endpoints are tried in turn: a request that cannot connect, times out, or
 * meets "no leader" moves to the next one.  When every endpoint refuses the
 * connection in a row the request fails at once with ETCD_E_UNAVAILABLE (no
 * hang when the whole cluster is down); otherwise it is retried with backoff
 * until its deadline (timeout_ms), which rides out a leader election.  One
 * attempt lasts at most attempt_timeout_ms, so that a member without a
 * leader, which holds requests for seconds, does not use up the deadline.
 *
 * Every answer's header is checked: its cluster id must equal the expected
 * one (learned from the first answer when set to 0), and a unary answer's
 * revision may not be below the floor as it stood when the request was
 * submitted (the floor is raised to every revision seen; requests in flight
 * together may answer in either order, which linearizability allows).  A
 * breach fails the request with ETCD_E_CLUSTER or ETCD_E_ROLLBACK and never
 * crashes, whatever the bytes.
 *
 * With a user, the client authenticates before its first request, sends the
 * token in the Authorization header, and authenticates again when etcd says
 * the token is invalid or expired.
 *
 * This module knows nothing of secrets, names, connections or policy.
 */
#ifndef SECRETD_ETCD_CLIENT_H
#define SECRETD_ETCD_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "etcd_err.h"
#include "etcd_json.h"

#define ETCD_MAX_ENDPOINTS 16

struct etcd_client_config {
	const char *endpoints;    /* comma list of http://HOST:PORT or https://HOST:PORT */
	const char *cacert;       /* NULL: the system's CAs for https */
	const char *cert;         /* client certificate, NULL for none */
	const char *key;          /* its key */
	const char *user;         /* NULL: no authentication */
	const char *password;     /* copied into locked memory */
	size_t password_len;
	unsigned timeout_ms;      /* a request's deadline over all retries; 0 = 5000 */
	unsigned connect_timeout_ms; /* one connection attempt; 0 = 1000 */
	unsigned attempt_timeout_ms; /* one attempt on one endpoint; 0 = 1500 */
};

struct etcd_client;
struct etcd_watch;

/*
 * An answer.  status is 0 or an etcd_err; header is set whenever an etcd
 * answered; error holds etcd's code and text for ETCD_E_SERVER and
 * ETCD_E_AUTH.  Exactly one of range / txn / st is filled, by the call made.
 * Everything is valid during the callback only; a callback may take kvs
 * arrays out (set the pointer to NULL and n to 0) to keep them.
 */
struct etcd_result {
	int status;
	struct etcd_header header;
	struct etcd_error error;
	struct etcd_range_resp range;
	struct etcd_txn_resp txn;
	struct etcd_status_resp st;
};

typedef void (*etcd_cb)(const struct etcd_result *res, void *arg);

/*
 * A watch callback.  status 0: msg is a message (created, progress, or
 * events in revision order).  ETCD_E_UNAVAILABLE, ETCD_E_AUTH,
 * ETCD_E_CLUSTER, ETCD_E_ROLLBACK, ETCD_E_PROTOCOL: the stream broke or was
 * refused; msg is NULL and the watch reconnects by itself (next endpoint,
 * backoff) from the revision after the last one delivered.  ETCD_E_COMPACTED:
 * msg->compact_revision says from where history remains; the watch is over
 * (resync with a range at one revision, then start a new one); call
 * etcd_watch_stop to free it.
 */
typedef void (*etcd_watch_cb)(struct etcd_watch *w, int status,
			      const struct etcd_watch_msg *msg, void *arg);

/*
 * Start a client on loop.  Returns 0, or an etcd_err with a one-line
 * reason in err (a bad endpoint list, a TLS file that is not readable).
 */
int etcd_client_new(uv_loop_t *loop, const struct etcd_client_config *cfg,
		    struct etcd_client **out, char *err, size_t errlen);

/*
 * Stop: every pending request's callback runs with ETCD_E_CANCELED, watches
 * give no more callbacks, the thread is joined and done(arg) runs once the
 * loop has closed the client's handle.  No call on c after this.
 */
void etcd_client_close(struct etcd_client *c, void (*done)(void *arg), void *arg);

/*
 * What answers must match: the cluster id (0 = learn it from the first
 * answer) and the lowest acceptable revision.  The broker sets both from its
 * replica's persisted state before the first request.
 */
void etcd_client_expect(struct etcd_client *c, uint64_t cluster_id, int64_t floor_revision);
/* The cluster id learned or set (0 until known), and the highest revision seen. */
uint64_t etcd_client_cluster_id(struct etcd_client *c);
int64_t etcd_client_revision(struct etcd_client *c);

/*
 * Requests.  Each returns 0 (cb will run exactly once, on the loop thread,
 * never before the call returns) or ETCD_E_NOMEM / ETCD_E_CANCELED (cb will
 * not run).  end NULL: the key alone; revision 0: the current one.
 */
int etcd_range(struct etcd_client *c, const uint8_t *key, size_t klen, const uint8_t *end,
	       size_t elen, int64_t revision, int64_t limit, etcd_cb cb, void *arg);
int etcd_txn(struct etcd_client *c, const struct etcd_txn *t, etcd_cb cb, void *arg);
int etcd_status(struct etcd_client *c, etcd_cb cb, void *arg);

/*
 * Watch [key, end) from start_revision (0 = from now).  Messages carry the
 * events in order; the client checks that revisions never go backwards.
 */
int etcd_watch_start(struct etcd_client *c, const uint8_t *key, size_t klen,
		     const uint8_t *end, size_t elen, int64_t start_revision,
		     etcd_watch_cb cb, void *arg, struct etcd_watch **out);
/*
 * No callback after this returns; the watch's memory is freed later.  Call
 * it before etcd_client_close (which ends every watch and frees them).
 */
void etcd_watch_stop(struct etcd_watch *w);

#endif
