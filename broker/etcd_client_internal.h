/*
 * What the two sides of the etcd client share, and nothing else includes:
 * etcd_client.c is the loop's side (requests and watches queued, answers
 * delivered, setup and teardown), etcd_thread.c the curl thread (a multi
 * handle, attempts, fail-over, authentication, the watch streams).  They
 * meet only in struct etcd_client's queues, under its mutex.
 */
#ifndef SECRETD_ETCD_CLIENT_INTERNAL_H
#define SECRETD_ETCD_CLIENT_INTERNAL_H

#include "etcd_client.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include <curl/curl.h>

#include "etcd_stream.h"

#define ETCD_HIDDEN __attribute__((visibility("hidden")))

#define DEFAULT_TIMEOUT_MS 5000
#define DEFAULT_CONNECT_MS 1000
/*
 * One attempt's limit.  A member that lost its leader holds a request until
 * its own timeout (about 7 s), longer than a whole deadline; cutting the
 * attempt short lets the request move on to a member that can answer.  A txn
 * cut short may have committed: the fleet layer recognises its own write.
 */
#define DEFAULT_ATTEMPT_MS 1500
#define MIN_ATTEMPT_MS 100
#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 1000
#define AUTH_TRIES 2

enum owner_type { OWNER_REQ, OWNER_WATCH };
enum req_kind { K_RANGE, K_TXN, K_STATUS, K_AUTH };

struct etcd_req {
	enum owner_type type; /* first: curl's private pointer tells the owner */
	TAILQ_ENTRY(etcd_req) link;
	struct etcd_client *c;
	enum req_kind kind;
	const char *path;
	char *body;
	size_t body_len;
	etcd_cb cb;
	void *arg;
	/* The curl thread's. */
	CURL *easy;
	struct curl_slist *hdrs;
	char *resp;
	size_t resp_len, resp_cap;
	size_t ep;
	unsigned attempt, refused_in_row, auth_tries;
	uint64_t deadline, due;
	int64_t floor;       /* the client's floor when submitted */
	int answered;        /* the last failure that came with an answer (not a timeout) */
	struct etcd_result res;
};
TAILQ_HEAD(req_list, etcd_req);

struct wdelivery {
	TAILQ_ENTRY(wdelivery) link;
	struct etcd_watch *w;
	int status;
	bool has_msg, free_watch;
	struct etcd_watch_msg msg;
};
TAILQ_HEAD(wdelivery_list, wdelivery);

struct etcd_watch {
	enum owner_type type;
	TAILQ_ENTRY(etcd_watch) link; /* thread: all watches it runs */
	TAILQ_ENTRY(etcd_watch) ctl;  /* loop -> thread: start or stop */
	struct etcd_client *c;
	uint8_t *key, *end;
	size_t klen, elen;
	bool has_end;
	etcd_watch_cb cb;
	void *arg;
	bool stopped;                 /* loop thread: no more callbacks */
	bool stop_req, in_ctl;        /* under mu */
	struct wdelivery fin;         /* the last delivery: free the watch */
	/* The curl thread's. */
	bool started, running, terminal, waiting;
	CURL *easy;
	struct curl_slist *hdrs;
	char *body;
	struct etcd_stream stream;
	size_t ep;
	int64_t next_rev;
	int pending;
	unsigned failures;
	uint64_t due;
};
TAILQ_HEAD(watch_list, etcd_watch);

struct etcd_client {
	uv_loop_t *loop;
	uv_async_t async;
	pthread_t thread;
	bool thread_started;
	pthread_mutex_t mu;
	/* Under mu. */
	struct req_list submit, done;
	struct watch_list wctl;
	struct wdelivery_list wdone;
	bool closing;
	uint64_t cluster_id;
	int64_t floor;
	/* The curl thread's. */
	CURLM *multi;
	struct req_list active, delayed, authwait;
	struct watch_list watches;
	char token[ETCD_TOKEN_MAX + 1];
	bool auth_inflight, auth_off;
	size_t ep_cur;
	/* Fixed after new. */
	char *ep[ETCD_MAX_ENDPOINTS];
	size_t nep;
	char *cacert, *cert, *key, *user;
	char *password;
	size_t plen;
	unsigned timeout_ms, connect_ms, attempt_ms;
	void (*done_fn)(void *);
	void *done_arg;
};

/* etcd_client.c */
ETCD_HIDDEN uint64_t etcd_now_ms(void);
ETCD_HIDDEN uint64_t etcd_backoff_ms(unsigned n);
ETCD_HIDDEN int etcd_check_header(struct etcd_client *c, const struct etcd_header *h,
				  int64_t floor);
ETCD_HIDDEN void etcd_req_free(struct etcd_req *r);
ETCD_HIDDEN int etcd_submit(struct etcd_client *c, enum req_kind kind, const char *path,
			    char *body, etcd_cb cb, void *arg);

/* etcd_thread.c */
ETCD_HIDDEN void *etcd_thread_main(void *arg);

#endif
