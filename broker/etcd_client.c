/*
 * The etcd client: a curl thread with a multi handle, queues to and from
 * the loop, fail-over between endpoints, authentication and the checks on
 * every answer's header.  See etcd_client.h for the contract.  This file is
 * the loop's side and the setup; etcd_thread.c the curl thread.
 */
#include "etcd_client_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

uint64_t etcd_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t etcd_backoff_ms(unsigned n)
{
	uint64_t ms = BACKOFF_MIN_MS;

	while (n-- > 0 && ms < BACKOFF_MAX_MS)
		ms *= 2;
	if (ms > BACKOFF_MAX_MS)
		ms = BACKOFF_MAX_MS;
	/* Jitter, so that nodes that lost the same election do not retry in step. */
	return ms / 2 + randombytes_uniform((uint32_t)(ms / 2 + 1));
}

/*
 * Header checks shared by every answer: the cluster id and, for unary
 * answers, the floor as it stood when the request was submitted (floor >= 0).
 * etcd is linearizable: an answer to a request sent after revision R was
 * seen cannot be older than R.  Requests in flight together may answer in
 * any order, so the floor seen at submission is the one to hold them to.
 */
int etcd_check_header(struct etcd_client *c, const struct etcd_header *h, int64_t floor)
{
	int rc = ETCD_OK;

	pthread_mutex_lock(&c->mu);
	if (h->cluster_id == 0)
		rc = ETCD_E_PROTOCOL;
	else if (c->cluster_id == 0)
		c->cluster_id = h->cluster_id;
	else if (c->cluster_id != h->cluster_id)
		rc = ETCD_E_CLUSTER;
	if (rc == ETCD_OK && floor >= 0) {
		if (h->revision < floor)
			rc = ETCD_E_ROLLBACK;
		else if (h->revision > c->floor)
			c->floor = h->revision;
	}
	pthread_mutex_unlock(&c->mu);
	return rc;
}

static void wake(struct etcd_client *c)
{
	if (c->multi != NULL)
		curl_multi_wakeup(c->multi);
}

/* Loop side: queues and the async callback. */

void etcd_req_free(struct etcd_req *r)
{
	if (r->body != NULL) {
		sodium_memzero(r->body, r->body_len); /* an auth body holds the password */
		free(r->body);
	}
	free(r->resp);
	etcd_range_free(&r->res.range);
	etcd_txn_free(&r->res.txn);
	free(r);
}

static void watch_free(struct etcd_watch *w)
{
	free(w->key);
	free(w->end);
	free(w->body);
	etcd_stream_free(&w->stream);
	free(w);
}

static void on_async(uv_async_t *h)
{
	struct etcd_client *c = h->data;
	struct req_list reqs = TAILQ_HEAD_INITIALIZER(reqs);
	struct wdelivery_list ws = TAILQ_HEAD_INITIALIZER(ws);
	struct etcd_req *r;
	struct wdelivery *d;

	pthread_mutex_lock(&c->mu);
	TAILQ_CONCAT(&reqs, &c->done, link);
	TAILQ_CONCAT(&ws, &c->wdone, link);
	pthread_mutex_unlock(&c->mu);
	while ((r = TAILQ_FIRST(&reqs)) != NULL) {
		TAILQ_REMOVE(&reqs, r, link);
		r->cb(&r->res, r->arg);
		etcd_req_free(r);
	}
	while ((d = TAILQ_FIRST(&ws)) != NULL) {
		TAILQ_REMOVE(&ws, d, link);
		if (d->free_watch) {
			watch_free(d->w); /* d is inside it */
			continue;
		}
		if (!d->w->stopped)
			d->w->cb(d->w, d->status, d->has_msg ? &d->msg : NULL, d->w->arg);
		etcd_watch_msg_free(&d->msg);
		free(d);
	}
}

int etcd_submit(struct etcd_client *c, enum req_kind kind, const char *path, char *body,
		  etcd_cb cb, void *arg)
{
	struct etcd_req *r;

	if (body == NULL)
		return ETCD_E_NOMEM;
	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		free(body);
		return ETCD_E_NOMEM;
	}
	r->type = OWNER_REQ;
	r->c = c;
	r->kind = kind;
	r->path = path;
	r->body = body;
	r->body_len = strlen(body);
	r->cb = cb;
	r->arg = arg;
	pthread_mutex_lock(&c->mu);
	if (c->closing) {
		pthread_mutex_unlock(&c->mu);
		etcd_req_free(r);
		return ETCD_E_CANCELED;
	}
	r->floor = c->floor;
	TAILQ_INSERT_TAIL(&c->submit, r, link);
	pthread_mutex_unlock(&c->mu);
	wake(c);
	return ETCD_OK;
}

int etcd_range(struct etcd_client *c, const uint8_t *key, size_t klen, const uint8_t *end,
	       size_t elen, int64_t revision, int64_t limit, etcd_cb cb, void *arg)
{
	return etcd_submit(c, K_RANGE, "/v3/kv/range",
		      etcd_req_range(key, klen, end, elen, revision, limit, false), cb, arg);
}

int etcd_txn(struct etcd_client *c, const struct etcd_txn *t, etcd_cb cb, void *arg)
{
	return etcd_submit(c, K_TXN, "/v3/kv/txn", etcd_req_txn(t), cb, arg);
}

int etcd_status(struct etcd_client *c, etcd_cb cb, void *arg)
{
	char *body = strdup("{}");

	return etcd_submit(c, K_STATUS, "/v3/maintenance/status", body, cb, arg);
}

static uint8_t *dup_bytes(const uint8_t *p, size_t n)
{
	uint8_t *d = malloc(n > 0 ? n : 1);

	if (d != NULL && n > 0)
		memcpy(d, p, n);
	return d;
}

int etcd_watch_start(struct etcd_client *c, const uint8_t *key, size_t klen,
		     const uint8_t *end, size_t elen, int64_t start_revision,
		     etcd_watch_cb cb, void *arg, struct etcd_watch **out)
{
	struct etcd_watch *w = calloc(1, sizeof(*w));

	if (w == NULL)
		return ETCD_E_NOMEM;
	w->type = OWNER_WATCH;
	w->c = c;
	w->key = dup_bytes(key, klen);
	w->klen = klen;
	w->has_end = end != NULL;
	w->end = dup_bytes(end, elen);
	w->elen = elen;
	w->cb = cb;
	w->arg = arg;
	w->next_rev = start_revision > 0 ? start_revision : 0;
	etcd_stream_init(&w->stream, ETCD_JSON_MAX);
	if (w->key == NULL || w->end == NULL) {
		watch_free(w);
		return ETCD_E_NOMEM;
	}
	pthread_mutex_lock(&c->mu);
	if (c->closing) {
		pthread_mutex_unlock(&c->mu);
		watch_free(w);
		return ETCD_E_CANCELED;
	}
	TAILQ_INSERT_TAIL(&c->wctl, w, ctl);
	w->in_ctl = true;
	pthread_mutex_unlock(&c->mu);
	wake(c);
	*out = w;
	return ETCD_OK;
}

void etcd_watch_stop(struct etcd_watch *w)
{
	struct etcd_client *c = w->c;

	if (w->stopped)
		return;
	w->stopped = true;
	pthread_mutex_lock(&c->mu);
	w->stop_req = true;
	if (!w->in_ctl) {
		TAILQ_INSERT_TAIL(&c->wctl, w, ctl);
		w->in_ctl = true;
	}
	pthread_mutex_unlock(&c->mu);
	wake(c);
}

void etcd_client_expect(struct etcd_client *c, uint64_t cluster_id, int64_t floor_revision)
{
	pthread_mutex_lock(&c->mu);
	c->cluster_id = cluster_id;
	c->floor = floor_revision;
	pthread_mutex_unlock(&c->mu);
}

uint64_t etcd_client_cluster_id(struct etcd_client *c)
{
	uint64_t id;

	pthread_mutex_lock(&c->mu);
	id = c->cluster_id;
	pthread_mutex_unlock(&c->mu);
	return id;
}

int64_t etcd_client_revision(struct etcd_client *c)
{
	int64_t r;

	pthread_mutex_lock(&c->mu);
	r = c->floor;
	pthread_mutex_unlock(&c->mu);
	return r;
}

/* Setup and teardown. */

static int parse_endpoints(struct etcd_client *c, const char *list, char *err, size_t errlen)
{
	const char *p = list;

	while (p != NULL && *p != '\0') {
		const char *comma = strchr(p, ',');
		size_t n = comma != NULL ? (size_t)(comma - p) : strlen(p);

		while (n > 0 && p[n - 1] == '/')
			n--; /* "http://h:p/" and "http://h:p" are one endpoint */
		if (c->nep == ETCD_MAX_ENDPOINTS || n == 0 || n > 256 ||
		    !((n > 7 && strncmp(p, "http://", 7) == 0) ||
		      (n > 8 && strncmp(p, "https://", 8) == 0)) ||
		    memchr(p, ' ', n) != NULL) {
			snprintf(err, errlen, "etcd-endpoints: endpoint %zu is not http://HOST:PORT "
				 "or https://HOST:PORT (at most %d)", c->nep + 1, ETCD_MAX_ENDPOINTS);
			return ETCD_E_INVALID;
		}
		c->ep[c->nep] = strndup(p, n);
		if (c->ep[c->nep] == NULL)
			return ETCD_E_NOMEM;
		c->nep++;
		p = comma != NULL ? comma + 1 : NULL;
	}
	if (c->nep == 0) {
		snprintf(err, errlen, "etcd-endpoints: empty");
		return ETCD_E_INVALID;
	}
	return ETCD_OK;
}

static int copy_opt(const char *src, char **dst)
{
	*dst = NULL;
	if (src == NULL)
		return ETCD_OK;
	*dst = strdup(src);
	return *dst != NULL ? ETCD_OK : ETCD_E_NOMEM;
}

static void client_free(struct etcd_client *c)
{
	for (size_t i = 0; i < c->nep; i++)
		free(c->ep[i]);
	free(c->cacert);
	free(c->cert);
	free(c->key);
	free(c->user);
	if (c->password != NULL)
		sodium_free(c->password);
	if (c->multi != NULL)
		curl_multi_cleanup(c->multi);
	pthread_mutex_destroy(&c->mu);
	sodium_memzero(c->token, sizeof(c->token));
	free(c);
}

static int check_files(const struct etcd_client_config *cfg, char *err, size_t errlen)
{
	const char *files[] = { cfg->cacert, cfg->cert, cfg->key };
	const char *names[] = { "etcd-cacert", "etcd-cert", "etcd-key" };

	for (size_t i = 0; i < 3; i++) {
		FILE *f;

		if (files[i] == NULL)
			continue;
		f = fopen(files[i], "re");
		if (f == NULL) {
			snprintf(err, errlen, "%s %s: %s", names[i], files[i], strerror(errno));
			return ETCD_E_INVALID;
		}
		fclose(f);
	}
	if ((cfg->cert == NULL) != (cfg->key == NULL)) {
		snprintf(err, errlen, "etcd-cert and etcd-key go together");
		return ETCD_E_INVALID;
	}
	return ETCD_OK;
}

static void on_closed(uv_handle_t *h);

int etcd_client_new(uv_loop_t *loop, const struct etcd_client_config *cfg,
		    struct etcd_client **out, char *err, size_t errlen)
{
	struct etcd_client *c;
	int rc;

	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK || sodium_init() < 0) {
		snprintf(err, errlen, "libcurl or libsodium failed to initialise");
		return ETCD_E_NOMEM;
	}
	if ((rc = check_files(cfg, err, errlen)) != ETCD_OK)
		return rc;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return ETCD_E_NOMEM;
	pthread_mutex_init(&c->mu, NULL);
	TAILQ_INIT(&c->submit);
	TAILQ_INIT(&c->done);
	TAILQ_INIT(&c->wctl);
	TAILQ_INIT(&c->wdone);
	TAILQ_INIT(&c->active);
	TAILQ_INIT(&c->delayed);
	TAILQ_INIT(&c->authwait);
	TAILQ_INIT(&c->watches);
	c->loop = loop;
	c->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : DEFAULT_TIMEOUT_MS;
	c->connect_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms : DEFAULT_CONNECT_MS;
	c->attempt_ms = cfg->attempt_timeout_ms ? cfg->attempt_timeout_ms : DEFAULT_ATTEMPT_MS;
	rc = parse_endpoints(c, cfg->endpoints, err, errlen);
	if (rc == ETCD_OK)
		rc = copy_opt(cfg->cacert, &c->cacert);
	if (rc == ETCD_OK)
		rc = copy_opt(cfg->cert, &c->cert);
	if (rc == ETCD_OK)
		rc = copy_opt(cfg->key, &c->key);
	if (rc == ETCD_OK)
		rc = copy_opt(cfg->user, &c->user);
	if (rc == ETCD_OK && cfg->user != NULL) {
		c->password = sodium_malloc(cfg->password_len + 1);
		if (c->password == NULL) {
			rc = ETCD_E_NOMEM;
		} else {
			memcpy(c->password, cfg->password, cfg->password_len);
			c->plen = cfg->password_len;
		}
	}
	if (rc == ETCD_OK && (c->multi = curl_multi_init()) == NULL)
		rc = ETCD_E_NOMEM;
	if (rc == ETCD_OK && uv_async_init(loop, &c->async, on_async) != 0)
		rc = ETCD_E_NOMEM;
	if (rc != ETCD_OK) {
		if (rc == ETCD_E_NOMEM)
			snprintf(err, errlen, "out of memory");
		client_free(c);
		return rc;
	}
	c->async.data = c;
	if (pthread_create(&c->thread, NULL, etcd_thread_main, c) != 0) {
		snprintf(err, errlen, "cannot start the etcd thread");
		/* The handle is live: it is freed from its close callback. */
		uv_close((uv_handle_t *)&c->async, on_closed);
		return ETCD_E_NOMEM;
	}
	c->thread_started = true;
	*out = c;
	return ETCD_OK;
}

static void on_closed(uv_handle_t *h)
{
	struct etcd_client *c = h->data;
	void (*fn)(void *) = c->done_fn;
	void *arg = c->done_arg;

	client_free(c);
	if (fn != NULL)
		fn(arg);
}

void etcd_client_close(struct etcd_client *c, void (*done)(void *arg), void *arg)
{
	struct wdelivery *d;

	pthread_mutex_lock(&c->mu);
	c->closing = true;
	pthread_mutex_unlock(&c->mu);
	/* Watches the caller still holds give no more callbacks. */
	wake(c);
	if (c->thread_started)
		pthread_join(c->thread, NULL);
	c->thread_started = false;
	/* Every watch is over now; the caller's get no more callbacks. */
	pthread_mutex_lock(&c->mu);
	TAILQ_FOREACH(d, &c->wdone, link)
		d->w->stopped = true;
	pthread_mutex_unlock(&c->mu);
	on_async(&c->async);
	c->done_fn = done;
	c->done_arg = arg;
	uv_close((uv_handle_t *)&c->async, on_closed);
}
