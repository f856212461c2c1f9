/*
 * Splitting the gateway's /v3/watch stream into messages.  The gateway
 * writes one JSON object a message followed by "\n" inside an HTTP/1.1
 * chunked body (libcurl removes the chunking); a message may arrive in any
 * number of pieces and several may arrive in one.  Pure, one user at a time.
 */
#ifndef SECRETD_ETCD_STREAM_H
#define SECRETD_ETCD_STREAM_H

#include <stddef.h>

struct etcd_stream {
	char *buf;
	size_t len;
	size_t cap;
	size_t max; /* longest message accepted */
};

/* Called for each complete message (without its "\n"); nonzero stops the feed. */
typedef int (*etcd_stream_fn)(const char *msg, size_t len, void *arg);

void etcd_stream_init(struct etcd_stream *s, size_t max);
void etcd_stream_reset(struct etcd_stream *s);
void etcd_stream_free(struct etcd_stream *s);

/*
 * Append data and call fn for each message it completes; empty lines are
 * skipped.  Returns 0, what fn returned when it stopped, ETCD_E_PROTOCOL when
 * a message grows past max, or ETCD_E_NOMEM.
 */
int etcd_stream_feed(struct etcd_stream *s, const char *data, size_t n, etcd_stream_fn fn,
		     void *arg);

#endif
