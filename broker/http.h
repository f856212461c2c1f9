/*
 * The metrics listener: a deliberately small HTTP/1.1 server for
 * `--metrics-listen ADDR`, serving GET /metrics and GET /healthz and nothing
 * else.  It knows nothing of the broker: what it serves comes from two
 * callbacks.  It never touches the secrets socket and never writes an audit
 * record.
 *
 * ADDR is IPv4 "A.B.C.D:PORT", IPv6 "[ADDR]:PORT" (numeric only, no name
 * lookup) or an absolute Unix socket path.  Hardening: one request per
 * connection (answered with "Connection: close"), a request head of at most
 * HTTP_MAX_REQUEST bytes, one timeout for the whole exchange, a cap on
 * connections (those beyond it are accepted and closed at once, so the
 * backlog never fills), GET only.
 *
 * All calls from the loop's thread.  Functions return 0 or a negative errno
 * (libuv's codes), with a message in ERR for http_start.
 */
#ifndef SECRETD_HTTP_H
#define SECRETD_HTTP_H

#include <stddef.h>
#include <uv.h>

struct http_server;

/* The body of GET /metrics in a malloc'ed buffer the server frees; 0 or -errno. */
typedef int (*http_metrics_cb)(void *arg, char **body, size_t *len);
/* 0 when healthy; otherwise non-zero with a one-line reason in REASON. */
typedef int (*http_health_cb)(void *arg, char *reason, size_t reason_size);

struct http_config {
	const char *listen;       /* ADDR as above */
	unsigned max_connections; /* 0: 16 */
	unsigned timeout_ms;      /* whole exchange; 0: 5000 */
	unsigned unix_mode;       /* mode of a Unix socket; 0: 0600 */
	http_metrics_cb metrics;
	http_health_cb health;
	void *arg;
};

/*
 * Bind and listen.  On failure nothing is left but, possibly, a handle being
 * closed: run the loop once more before uv_loop_close().
 */
int http_start(uv_loop_t *loop, const struct http_config *cfg, struct http_server **out,
	       char *err, size_t errlen);

/*
 * Close the listener and every connection; DONE(ARG) runs once every handle
 * is closed (then the server is freed).  A Unix socket file is removed.
 */
void http_stop(struct http_server *s, void (*done)(void *arg), void *arg);

/* The bound TCP port (useful with port 0), or 0 for a Unix socket. */
int http_port(const struct http_server *s);

/* Parse ADDR into *SA (sockaddr_in, sockaddr_in6 or sockaddr_un). */
int http_parse_listen(const char *addr, struct sockaddr_storage *sa);

#endif
