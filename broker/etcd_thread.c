/*
 * The etcd client's curl thread (etcd_client_internal.h): it takes what the
 * loop queued, runs every request and watch on one multi handle, moves a
 * request on to the next endpoint when one fails, authenticates, checks
 * every answer's header, and hands answers and watch events back.
 */
#include "etcd_client_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

/* The curl thread. */

static void post_req(struct etcd_client *c, struct etcd_req *r, int status)
{
	r->res.status = status;
	pthread_mutex_lock(&c->mu);
	TAILQ_INSERT_TAIL(&c->done, r, link);
	pthread_mutex_unlock(&c->mu);
	uv_async_send(&c->async);
}

/* False when out of memory: the caller ends the stream and retries later. */
static bool post_watch(struct etcd_client *c, struct etcd_watch *w, int status,
		       struct etcd_watch_msg *msg, bool free_watch)
{
	struct wdelivery *d = free_watch ? &w->fin : calloc(1, sizeof(*d));

	if (d == NULL) {
		if (msg != NULL)
			etcd_watch_msg_free(msg);
		return false;
	}
	memset(d, 0, sizeof(*d));
	d->w = w;
	d->status = status;
	d->free_watch = free_watch;
	if (msg != NULL) {
		d->msg = *msg;
		d->has_msg = true;
		memset(msg, 0, sizeof(*msg));
	}
	pthread_mutex_lock(&c->mu);
	TAILQ_INSERT_TAIL(&c->wdone, d, link);
	pthread_mutex_unlock(&c->mu);
	uv_async_send(&c->async);
	return true;
}

static size_t on_req_data(char *p, size_t size, size_t n, void *arg)
{
	struct etcd_req *r = arg;
	size_t len = size * n;

	if (len > ETCD_JSON_MAX - r->resp_len)
		return 0;
	if (r->resp_len + len > r->resp_cap) {
		size_t cap = r->resp_cap ? r->resp_cap : 1024;
		char *bigger;

		while (cap < r->resp_len + len)
			cap *= 2;
		bigger = realloc(r->resp, cap);
		if (bigger == NULL)
			return 0;
		r->resp = bigger;
		r->resp_cap = cap;
	}
	memcpy(r->resp + r->resp_len, p, len);
	r->resp_len += len;
	return len;
}

/* The options every transfer shares. */
static CURL *make_easy(struct etcd_client *c, size_t ep, const char *path, const char *body,
		       size_t body_len, struct curl_slist **hdrs, bool with_token, bool stream)
{
	char url[512], auth[ETCD_TOKEN_MAX + 32];
	CURL *e = curl_easy_init();
	struct curl_slist *h = NULL;
	bool ok;

	*hdrs = NULL;
	if (e == NULL || snprintf(url, sizeof(url), "%s%s", c->ep[ep], path) >= (int)sizeof(url))
		goto fail;
	h = curl_slist_append(NULL, "Content-Type: application/json");
	ok = h != NULL && curl_slist_append(h, "Expect:") != NULL;
	if (ok && with_token && c->token[0] != '\0') {
		snprintf(auth, sizeof(auth), "Authorization: %s", c->token);
		ok = curl_slist_append(h, auth) != NULL;
		sodium_memzero(auth, sizeof(auth));
	}
	/* A member cut off from the quorum ends the stream instead of going silent. */
	if (ok && stream)
		ok = curl_slist_append(h, "Grpc-Metadata-hasleader: true") != NULL;
	if (!ok)
		goto fail;
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)c->connect_ms);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 10L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 5L);
	if (c->cacert != NULL)
		curl_easy_setopt(e, CURLOPT_CAINFO, c->cacert);
	if (c->cert != NULL)
		curl_easy_setopt(e, CURLOPT_SSLCERT, c->cert);
	if (c->key != NULL)
		curl_easy_setopt(e, CURLOPT_SSLKEY, c->key);
	*hdrs = h;
	return e;
fail:
	curl_slist_free_all(h);
	if (e != NULL)
		curl_easy_cleanup(e);
	return NULL;
}

static void start_req(struct etcd_client *c, struct etcd_req *r);
static void complete_req(struct etcd_client *c, struct etcd_req *r, int status);

static void auth_done(struct etcd_client *c, struct etcd_req *r, int status);

static void ensure_auth(struct etcd_client *c)
{
	struct etcd_req *r;

	if (c->auth_inflight)
		return;
	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		struct etcd_req fake = { .type = OWNER_REQ };

		c->auth_inflight = true;
		auth_done(c, &fake, ETCD_E_NOMEM); /* fails what waits */
		return;
	}
	r->type = OWNER_REQ;
	r->c = c;
	r->kind = K_AUTH;
	r->path = "/v3/auth/authenticate";
	r->body = etcd_req_auth(c->user, c->password, c->plen);
	if (r->body == NULL) {
		c->auth_inflight = true;
		auth_done(c, r, ETCD_E_NOMEM);
		return;
	}
	r->body_len = strlen(r->body);
	c->auth_inflight = true;
	start_req(c, r);
}

static bool needs_token(const struct etcd_client *c)
{
	return c->user != NULL && !c->auth_off && c->token[0] == '\0';
}

static void start_req(struct etcd_client *c, struct etcd_req *r)
{
	uint64_t now = etcd_now_ms();
	long left;

	if (r->attempt == 0 && r->deadline == 0) {
		r->deadline = now + c->timeout_ms;
		r->ep = c->ep_cur;
	}
	if (r->kind != K_AUTH && needs_token(c)) {
		TAILQ_INSERT_TAIL(&c->authwait, r, link);
		ensure_auth(c);
		return;
	}
	r->resp_len = 0;
	r->easy = make_easy(c, r->ep, r->path, r->body, r->body_len, &r->hdrs, r->kind != K_AUTH,
			    false);
	if (r->easy == NULL) {
		complete_req(c, r, ETCD_E_NOMEM);
		return;
	}
	left = r->deadline > now ? (long)(r->deadline - now) : 1;
	if (left > (long)c->attempt_ms)
		left = (long)c->attempt_ms;
	curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, left);
	curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, on_req_data);
	curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(r->easy, CURLOPT_PRIVATE, r);
	if (curl_multi_add_handle(c->multi, r->easy) != CURLM_OK) {
		complete_req(c, r, ETCD_E_NOMEM);
		return;
	}
	TAILQ_INSERT_TAIL(&c->active, r, link);
}

static void release_easy(struct etcd_client *c, CURL **e, struct curl_slist **h)
{
	if (*e != NULL) {
		curl_multi_remove_handle(c->multi, *e);
		curl_easy_cleanup(*e);
		*e = NULL;
	}
	curl_slist_free_all(*h);
	*h = NULL;
}

/* An auth request finished: release or fail what waited for it. */
static void auth_done(struct etcd_client *c, struct etcd_req *r, int status)
{
	struct req_list waiting = TAILQ_HEAD_INITIALIZER(waiting);
	struct etcd_req *w;

	c->auth_inflight = false;
	if (status == ETCD_OK)
		status = etcd_json_token(r->resp, r->resp_len, c->token, sizeof(c->token));
	if (status == ETCD_E_SERVER && strstr(r->res.error.message, "not enabled") != NULL) {
		c->auth_off = true; /* etcd without auth: go on without a token */
		status = ETCD_OK;
	}
	TAILQ_CONCAT(&waiting, &c->authwait, link);
	while ((w = TAILQ_FIRST(&waiting)) != NULL) {
		TAILQ_REMOVE(&waiting, w, link);
		if (status == ETCD_OK) {
			start_req(c, w);
		} else {
			w->res.error = r->res.error;
			complete_req(c, w, status);
		}
	}
	if (r->c != NULL)
		etcd_req_free(r);
}

static void complete_req(struct etcd_client *c, struct etcd_req *r, int status)
{
	if (status == ETCD_OK)
		c->ep_cur = r->ep;
	if (r->kind == K_AUTH)
		auth_done(c, r, status);
	else
		post_req(c, r, status);
}

static void retry_or_fail(struct etcd_client *c, struct etcd_req *r, int status, bool refused)
{
	uint64_t now = etcd_now_ms();

	r->refused_in_row = refused ? r->refused_in_row + 1 : 0;
	r->attempt++;
	if (status != ETCD_E_UNAVAILABLE)
		r->answered = status;
	r->ep = (r->ep + 1) % c->nep;
	if (r->refused_in_row >= c->nep) {
		complete_req(c, r, ETCD_E_UNAVAILABLE);
		return;
	}
	r->due = now;
	if (r->attempt % c->nep == 0)
		r->due += etcd_backoff_ms(r->attempt / (unsigned)c->nep);
	/* No attempt too short to be answered: a lying member is named as such. */
	if (r->due + MIN_ATTEMPT_MS >= r->deadline) {
		complete_req(c, r, r->answered != ETCD_OK ? r->answered : status);
		return;
	}
	TAILQ_INSERT_TAIL(&c->delayed, r, link);
}

static bool auth_problem(const struct etcd_error *e)
{
	return e->code == ETCD_GRPC_UNAUTHENTICATED ||
	       strstr(e->message, "user name is empty") != NULL ||
	       strstr(e->message, "invalid auth token") != NULL;
}

static int map_error(const struct etcd_error *e)
{
	/*
	 * Both share gRPC's OUT_OF_RANGE, and mean opposite things: a revision
	 * above the store's is a store behind us, never a reason to resync.
	 */
	if (strstr(e->message, "future revision") != NULL)
		return ETCD_E_ROLLBACK;
	if (e->code == ETCD_GRPC_OUT_OF_RANGE || strstr(e->message, "compacted") != NULL)
		return ETCD_E_COMPACTED;
	if (e->code == ETCD_GRPC_UNAUTHENTICATED || e->code == 7 ||
	    strstr(e->message, "authentication failed") != NULL)
		return ETCD_E_AUTH;
	if (e->code == ETCD_GRPC_UNAVAILABLE)
		return ETCD_E_UNAVAILABLE;
	return ETCD_E_SERVER;
}

static int parse_answer(struct etcd_req *r)
{
	switch (r->kind) {
	case K_RANGE:
		if (etcd_json_range(r->resp, r->resp_len, &r->res.range) != ETCD_OK)
			return ETCD_E_PROTOCOL;
		r->res.header = r->res.range.header;
		return ETCD_OK;
	case K_TXN:
		if (etcd_json_txn(r->resp, r->resp_len, &r->res.txn) != ETCD_OK)
			return ETCD_E_PROTOCOL;
		r->res.header = r->res.txn.header;
		return ETCD_OK;
	case K_STATUS:
		if (etcd_json_status(r->resp, r->resp_len, &r->res.st) != ETCD_OK)
			return ETCD_E_PROTOCOL;
		r->res.header = r->res.st.header;
		return ETCD_OK;
	case K_AUTH:
		return ETCD_OK; /* the token is read in auth_done */
	}
	return ETCD_E_PROTOCOL;
}

/* A printable excerpt of a non-JSON answer, for the caller's log line. */
static void keep_text(struct etcd_req *r)
{
	size_t n = r->resp_len < sizeof(r->res.error.message) - 1 ? r->resp_len
		   : sizeof(r->res.error.message) - 1;

	r->res.error.code = -1;
	for (size_t i = 0; i < n; i++)
		r->res.error.message[i] = (r->resp[i] >= 0x20 && r->resp[i] < 0x7f) ? r->resp[i] : ' ';
	r->res.error.message[n] = '\0';
}

static void finish_req(struct etcd_client *c, struct etcd_req *r, CURLcode cc)
{
	long http = 0;
	int status;

	TAILQ_REMOVE(&c->active, r, link);
	curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &http);
	release_easy(c, &r->easy, &r->hdrs);
	if (cc != CURLE_OK) {
		retry_or_fail(c, r, cc == CURLE_WRITE_ERROR ? ETCD_E_PROTOCOL : ETCD_E_UNAVAILABLE,
			      cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST);
		return;
	}
	if (http != 200) {
		if (!etcd_json_error(r->resp, r->resp_len, &r->res.error)) {
			keep_text(r);
			/* etcd 3.4's gateway with a client certificate that has a CN. */
			if (http == 400 && strstr(r->res.error.message, "CommonName") != NULL) {
				complete_req(c, r, ETCD_E_AUTH);
				return;
			}
			retry_or_fail(c, r, ETCD_E_PROTOCOL, false);
			return;
		}
		if (r->kind != K_AUTH && c->user != NULL && auth_problem(&r->res.error) &&
		    r->auth_tries < AUTH_TRIES) {
			/* Expired or unknown token: get a new one, then go again. */
			r->auth_tries++;
			c->token[0] = '\0';
			c->auth_off = false;
			start_req(c, r);
			return;
		}
		/* Only "unavailable" (no leader, timed out) is worth another member. */
		status = map_error(&r->res.error);
		if (status == ETCD_E_UNAVAILABLE) {
			retry_or_fail(c, r, ETCD_E_UNAVAILABLE, false);
			return;
		}
		complete_req(c, r, status);
		return;
	}
	status = parse_answer(r);
	if (status == ETCD_OK && r->kind != K_AUTH) {
		/* A status answer comes from one member: no floor on its revision. */
		status = etcd_check_header(c, &r->res.header, r->kind != K_STATUS ? r->floor : -1);
	}
	if (status == ETCD_E_PROTOCOL) {
		retry_or_fail(c, r, status, false);
		return;
	}
	complete_req(c, r, status);
}

/* Watches. */

static int watch_line(const char *line, size_t len, void *arg)
{
	struct etcd_watch *w = arg;
	struct etcd_client *c = w->c;
	struct etcd_watch_msg msg;
	struct etcd_error e;
	int64_t last = w->next_rev - 1;
	int rc;

	if (etcd_json_error(line, len, &e)) {
		w->pending = map_error(&e);
		if (auth_problem(&e)) {
			w->pending = ETCD_E_AUTH;
			c->token[0] = '\0';
		}
		return 1;
	}
	if (etcd_json_watch(line, len, &msg) != ETCD_OK) {
		w->pending = ETCD_E_PROTOCOL;
		return 1;
	}
	rc = etcd_check_header(c, &msg.header, -1);
	if (rc == ETCD_OK && msg.canceled && msg.compact_revision > 0) {
		w->terminal = true;
		post_watch(c, w, ETCD_E_COMPACTED, &msg, false);
		return 1;
	}
	if (rc == ETCD_OK && msg.canceled)
		rc = ETCD_E_UNAVAILABLE;
	/* A member behind what was already applied is lagging or restored from a backup. */
	if (rc == ETCD_OK && msg.created && msg.header.revision < last)
		rc = ETCD_E_ROLLBACK;
	for (size_t i = 0; rc == ETCD_OK && i < msg.n; i++) {
		if (msg.events[i].kv.mod_revision < (last > 0 ? last : 0) ||
		    msg.events[i].kv.mod_revision <= 0 || msg.events[i].kv.mod_revision >
		    msg.header.revision)
			rc = ETCD_E_ROLLBACK;
		else
			last = msg.events[i].kv.mod_revision;
	}
	if (rc != ETCD_OK) {
		w->pending = rc;
		etcd_watch_msg_free(&msg);
		return 1;
	}
	bool created = msg.created, progress = msg.n == 0 && !msg.created;
	int64_t hrev = msg.header.revision;
	size_t n = msg.n;

	if (!post_watch(c, w, ETCD_OK, &msg, false)) {
		w->pending = ETCD_E_UNAVAILABLE; /* nothing lost: the retry starts before it */
		return 1;
	}
	if (n > 0)
		w->next_rev = last + 1;
	else if (progress && hrev >= w->next_rev)
		w->next_rev = hrev + 1; /* progress: nothing left before it */
	if (created) {
		w->failures = 0;
		/* A watch "from now" resumes after what it was created at, not from a later now. */
		if (w->next_rev == 0)
			w->next_rev = hrev + 1;
	}
	return 0;
}

static size_t on_watch_data(char *p, size_t size, size_t n, void *arg)
{
	struct etcd_watch *w = arg;
	int rc;

	rc = etcd_stream_feed(&w->stream, p, size * n, watch_line, w);
	if (rc < 0 && w->pending == ETCD_OK)
		w->pending = rc == ETCD_E_NOMEM ? ETCD_E_UNAVAILABLE : rc;
	return rc == 0 ? size * n : 0;
}

static void watch_schedule(struct etcd_client *c, struct etcd_watch *w, uint64_t delay)
{
	w->waiting = true;
	w->due = etcd_now_ms() + delay;
	(void)c;
}

static void watch_connect(struct etcd_client *c, struct etcd_watch *w)
{
	w->waiting = false;
	if (needs_token(c)) {
		ensure_auth(c);
		watch_schedule(c, w, 20);
		return;
	}
	free(w->body);
	w->body = etcd_req_watch(w->key, w->klen, w->has_end ? w->end : NULL, w->elen,
				 w->next_rev);
	w->pending = ETCD_OK;
	etcd_stream_reset(&w->stream);
	w->easy = w->body == NULL ? NULL
		  : make_easy(c, w->ep, "/v3/watch", w->body, strlen(w->body), &w->hdrs,
			      true, true);
	if (w->easy == NULL) {
		watch_schedule(c, w, etcd_backoff_ms(w->failures++));
		return;
	}
	curl_easy_setopt(w->easy, CURLOPT_WRITEFUNCTION, on_watch_data);
	curl_easy_setopt(w->easy, CURLOPT_WRITEDATA, w);
	curl_easy_setopt(w->easy, CURLOPT_PRIVATE, w);
	if (curl_multi_add_handle(c->multi, w->easy) != CURLM_OK) {
		release_easy(c, &w->easy, &w->hdrs);
		watch_schedule(c, w, etcd_backoff_ms(w->failures++));
		return;
	}
	w->running = true;
}

static void finish_watch(struct etcd_client *c, struct etcd_watch *w, CURLcode cc)
{
	long http = 0;
	int status = w->pending;

	curl_easy_getinfo(w->easy, CURLINFO_RESPONSE_CODE, &http);
	release_easy(c, &w->easy, &w->hdrs);
	w->running = false;
	if (w->terminal)
		return;
	if (status == ETCD_OK && w->stream.len > 0) {
		/* An error body without the stream's newline. */
		struct etcd_error e;

		if (etcd_json_error(w->stream.buf, w->stream.len, &e))
			status = auth_problem(&e) ? ETCD_E_AUTH : map_error(&e);
		if (status == ETCD_E_AUTH)
			c->token[0] = '\0';
	}
	if (status == ETCD_OK && http != 200 && http != 0)
		status = ETCD_E_PROTOCOL;
	if (status == ETCD_OK)
		status = ETCD_E_UNAVAILABLE; /* the stream ended */
	(void)cc;
	post_watch(c, w, status, NULL, false);
	w->ep = (w->ep + 1) % c->nep;
	watch_schedule(c, w, etcd_backoff_ms(w->failures++));
}

static void watch_end(struct etcd_client *c, struct etcd_watch *w)
{
	if (w->easy != NULL)
		release_easy(c, &w->easy, &w->hdrs);
	if (w->started)
		TAILQ_REMOVE(&c->watches, w, link);
	w->started = false;
	post_watch(c, w, ETCD_E_CANCELED, NULL, true);
}

static void take_controls(struct etcd_client *c)
{
	struct etcd_watch *w;
	bool stop;

	for (;;) {
		pthread_mutex_lock(&c->mu);
		w = TAILQ_FIRST(&c->wctl);
		if (w != NULL) {
			TAILQ_REMOVE(&c->wctl, w, ctl);
			w->in_ctl = false;
			stop = w->stop_req;
		}
		pthread_mutex_unlock(&c->mu);
		if (w == NULL)
			return;
		if (stop) {
			watch_end(c, w);
		} else if (!w->started) {
			w->started = true;
			TAILQ_INSERT_TAIL(&c->watches, w, link);
			w->ep = c->ep_cur;
			watch_connect(c, w);
		}
	}
}

static void cancel_all(struct etcd_client *c, struct req_list *fresh)
{
	struct etcd_req *r;
	struct etcd_watch *w;

	take_controls(c);
	TAILQ_CONCAT(&c->delayed, fresh, link);
	TAILQ_CONCAT(&c->delayed, &c->authwait, link);
	while ((r = TAILQ_FIRST(&c->active)) != NULL) {
		TAILQ_REMOVE(&c->active, r, link);
		release_easy(c, &r->easy, &r->hdrs);
		TAILQ_INSERT_TAIL(&c->delayed, r, link);
	}
	while ((r = TAILQ_FIRST(&c->delayed)) != NULL) {
		TAILQ_REMOVE(&c->delayed, r, link);
		if (r->kind == K_AUTH)
			etcd_req_free(r);
		else
			post_req(c, r, ETCD_E_CANCELED);
	}
	while ((w = TAILQ_FIRST(&c->watches)) != NULL)
		watch_end(c, w);
}

static int run_due(struct etcd_client *c)
{
	uint64_t now = etcd_now_ms(), next = now + 1000;
	struct etcd_req *r, *tmp;
	struct etcd_watch *w;

	for (r = TAILQ_FIRST(&c->delayed); r != NULL; r = tmp) {
		tmp = TAILQ_NEXT(r, link);
		if (r->due <= now) {
			TAILQ_REMOVE(&c->delayed, r, link);
			start_req(c, r);
		} else if (r->due < next) {
			next = r->due;
		}
	}
	TAILQ_FOREACH(w, &c->watches, link) {
		if (w->waiting && w->due <= now)
			watch_connect(c, w);
		if (w->waiting && w->due < next)
			next = w->due;
	}
	now = etcd_now_ms();
	return next > now ? (int)(next - now) : 0;
}

void *etcd_thread_main(void *arg)
{
	struct etcd_client *c = arg;
	struct req_list fresh;
	struct etcd_req *r;
	CURLMsg *m;
	int running, left, timeout;
	bool closing;

	for (;;) {
		TAILQ_INIT(&fresh);
		pthread_mutex_lock(&c->mu);
		TAILQ_CONCAT(&fresh, &c->submit, link);
		closing = c->closing;
		pthread_mutex_unlock(&c->mu);
		if (closing) {
			cancel_all(c, &fresh);
			break;
		}
		while ((r = TAILQ_FIRST(&fresh)) != NULL) {
			TAILQ_REMOVE(&fresh, r, link);
			start_req(c, r);
		}
		take_controls(c);
		curl_multi_perform(c->multi, &running);
		while ((m = curl_multi_info_read(c->multi, &left)) != NULL) {
			void *owner = NULL;

			if (m->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&owner);
			if (*(enum owner_type *)owner == OWNER_REQ)
				finish_req(c, owner, m->data.result);
			else
				finish_watch(c, owner, m->data.result);
		}
		timeout = run_due(c);
		curl_multi_poll(c->multi, NULL, 0, timeout > 0 ? timeout : 1, NULL);
	}
	return NULL;
}
