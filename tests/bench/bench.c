/*
 * secretd-bench: a load generator for the broker (CONTRACT "Benchmark").
 *
 *   secretd-bench -s SOCKET -c CLIENTS -n REQUESTS [--reconnect] [--put BYTES] NAME
 *
 * CLIENTS clients share REQUESTS `get NAME` requests, each over one
 * persistent connection (with --reconnect, a new connection for every
 * request, as `secretctl get` does, and the connect is part of the request's
 * latency).  With --put BYTES every request is instead a `put` of a
 * BYTES-long value of filler bytes (not a secret), client i writing
 * NAME/c<i>, so that clients do not contend for one name (in a fleet, a put
 * of a name that another put is changing is a retried etcd transaction).
 * Like redis-benchmark, one thread drives every client with
 * non-blocking sockets and level-triggered epoll, so the load generator does
 * not compete with the broker for the CPUs with a thread per client, and
 * each client keeps exactly one request in flight (no pipelining).  Every
 * request's latency, from the first byte sent (or the connect) to the last
 * byte of the answer, goes into its own slot of an array allocated up front,
 * so the hot loop does not allocate.  A non-OK answer (RATE_LIMITED, DENIED,
 * NOT_FOUND, ...) counts as an error and keeps the connection; an I/O error
 * or a malformed answer counts as an error and replaces the connection,
 * since the stream can no longer be trusted.  When nothing at all progresses for 30 s the run is abandoned and
 * every unfinished request counts as an error, so a stuck broker never hangs
 * the benchmark.
 *
 * Output: a summary line, a latency line, and last, exactly
 *   rps=<requests per second, 1 decimal> p50_us=<int> p99_us=<int> errors=<int>
 * where rps counts only the successful (OK) answers over the wall-clock time
 * of the run and the percentiles are over the successful requests only.  A
 * refusal is answered fast, so counting refusals would measure the rate
 * limiter, not the broker: when any request failed, one line on stderr
 * says so and breaks the errors down by status.
 * Exit status: 0 when every request succeeded, 1 when any failed (the line
 * is printed all the same) or the run could not start, 2 for a usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "secretd/exitcodes.h"
#include "secretd/names.h"
#include "secretd/wire.h"

#define DEFAULT_SOCKET "/run/secretd/secretd.sock"
#define MAX_CLIENTS 4096ul
#define MAX_REQUESTS 100000000ul
/* A broker that stops answering must not hang the benchmark forever. */
#define IDLE_TIMEOUT_SEC 30
#define IDLE_TIMEOUT_NS ((uint64_t)IDLE_TIMEOUT_SEC * 1000000000u)
/* How soon a connect refused for a full backlog (EAGAIN) is tried again. */
#define RETRY_MS 1
/* Answer buffer per client; a GET answer of a small value never grows it. */
#define INITIAL_IN 4096u
#define MAX_EVENTS 256
/* Latency slot of a request that failed or never finished. */
#define FAILED UINT64_MAX

enum cstate {
	ST_CLOSED,     /* no socket */
	ST_RETRY,      /* connect said EAGAIN (backlog full); not in epoll */
	ST_CONNECTING, /* connect said EINPROGRESS; waiting for EPOLLOUT */
	ST_READY,      /* connected, nothing in flight (only inside advance()) */
	ST_SEND,       /* part of the request is sent; waiting for EPOLLOUT */
	ST_RECV,       /* the request is sent; waiting for the answer */
};

struct client {
	int fd;
	enum cstate st;
	uint32_t events; /* epoll interest registered; 0 when not registered */
	bool busy;       /* a request is assigned to this client */
	size_t idx;      /* its latency slot */
	uint64_t t0;
	size_t sent;     /* bytes of the request frame sent */
	uint8_t *in;     /* the answer; holds a secret value: wiped after use */
	const uint8_t *frame; /* the request this client sends */
	size_t frame_len;
	size_t in_len, in_cap;
};

struct bench {
	struct sockaddr_un addr;
	bool reconnect;
	size_t clients, requests;
	uint8_t *frame; /* the encoded get request, shared read-only */
	size_t frame_len;
	uint8_t type;     /* WIRE_GET, or WIRE_PUT with --put */
	size_t put_size;  /* --put: the value's length */
	uint8_t **put_frames; /* --put: one request per client */
	uint64_t *lat_ns; /* one slot per request */
	struct client *c;
	int epfd;
	size_t next;     /* the next request to hand out */
	size_t done;     /* requests finished, well or badly */
	size_t errors;
	size_t by_status[256]; /* non-OK answers, by their status byte */
	size_t broken;   /* I/O errors, hangups, malformed answers, failed connects */
	size_t unfinished; /* abandoned when nothing progressed */
	size_t retrying; /* clients in ST_RETRY */
	bool progress;   /* something moved since the last look at the clock */
	bool told;       /* the first connect failure has been reported */
};

static void usage(FILE *to)
{
	fprintf(to, "usage: secretd-bench [-s SOCKET] -c CLIENTS -n REQUESTS "
		    "[--reconnect] [--put BYTES] NAME\n");
}

static int usage_error(const char *msg)
{
	fprintf(stderr, "secretd-bench: %s\n", msg);
	usage(stderr);
	return EXIT_USAGE;
}

/* Digits only, within [min, max]. */
static bool parse_count(const char *s, unsigned long min, unsigned long max,
			size_t *out)
{
	char *end;
	unsigned long v;

	if (s[0] < '0' || s[0] > '9')
		return false;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return false;
	*out = (size_t)v;
	return true;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	/* CLOCK_MONOTONIC cannot fail with a valid pointer on Linux. */
	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void set_state(struct bench *b, struct client *c, enum cstate st)
{
	if (c->st == ST_RETRY)
		b->retrying--;
	if (st == ST_RETRY)
		b->retrying++;
	c->st = st;
}

/* Register interest in events for c's socket, or change it. */
static int watch(struct bench *b, struct client *c, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = c };

	if (c->events == events)
		return 0;
	if (epoll_ctl(b->epfd, c->events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD,
		      c->fd, &ev) != 0)
		return -1;
	c->events = events;
	return 0;
}

/* Close c's connection; closing also takes the socket out of epoll. */
static void drop(struct bench *b, struct client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->events = 0;
	set_state(b, c, ST_CLOSED);
	if (c->in_len > 0)
		explicit_bzero(c->in, c->in_len);
	c->in_len = 0;
}

/* The first connect that fails is worth one line; the rest are counted. */
static void tell_connect_failure(struct bench *b, int err)
{
	if (b->told)
		return;
	b->told = true;
	fprintf(stderr, "secretd-bench: cannot connect to %s: %s\n",
		b->addr.sun_path, strerror(err));
}

/*
 * One connect attempt on c's socket: 0 connected (and watched for the
 * answer), 1 still pending, -1 failed with errno set.  On a Unix socket a
 * non-blocking connect completes at once or says EAGAIN when the listener's
 * backlog is full; then the socket stays unconnected and polling it would
 * only report a hangup, so it is tried again after RETRY_MS.
 */
static int conn_try(struct bench *b, struct client *c)
{
	if (connect(c->fd, (const struct sockaddr *)&b->addr, sizeof(b->addr)) == 0) {
		set_state(b, c, ST_READY);
		b->progress = true;
		return watch(b, c, EPOLLIN);
	}
	if (errno == EAGAIN || errno == EINTR) {
		set_state(b, c, ST_RETRY);
		return 1;
	}
	if (errno == EINPROGRESS) {
		set_state(b, c, ST_CONNECTING);
		return watch(b, c, EPOLLOUT) == 0 ? 1 : -1;
	}
	return -1;
}

static int conn_start(struct bench *b, struct client *c)
{
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -1;
	return conn_try(b, c);
}

/* An EINPROGRESS connect has resolved: 0 connected, -1 failed (errno set). */
static int conn_finish(struct bench *b, struct client *c)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		return -1;
	if (err != 0) {
		errno = err;
		return -1;
	}
	set_state(b, c, ST_READY);
	b->progress = true;
	return watch(b, c, EPOLLIN);
}

/*
 * Record c's request as finished: rc is 0 for OK, the status byte of a
 * non-OK answer, or -1 for a broken stream.
 */
static void finish(struct bench *b, struct client *c, int rc)
{
	b->lat_ns[c->idx] = rc == 0 ? now_ns() - c->t0 : FAILED;
	if (rc != 0)
		b->errors++;
	if (rc > 0)
		b->by_status[rc & 0xff]++;
	else if (rc < 0)
		b->broken++;
	b->done++;
	b->progress = true;
	c->busy = false;
	if (c->in_len > 0)
		explicit_bzero(c->in, c->in_len);
	c->in_len = 0;
	if (rc < 0 || b->reconnect)
		drop(b, c);
	else
		set_state(b, c, ST_READY);
}

/* A connect failed: the socket goes, and a request waiting on it fails. */
static void conn_failed(struct bench *b, struct client *c, int err)
{
	drop(b, c);
	if (c->busy) {
		tell_connect_failure(b, err);
		finish(b, c, -1);
	}
}

/* Send what is left of the request: 0 sent or waiting for room, -1 failed. */
static int send_more(struct bench *b, struct client *c)
{
	while (c->sent < c->frame_len) {
		ssize_t n = send(c->fd, c->frame + c->sent, c->frame_len - c->sent,
				 MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			set_state(b, c, ST_SEND);
			return watch(b, c, EPOLLOUT);
		}
		if (n <= 0)
			return -1;
		c->sent += (size_t)n;
		b->progress = true;
	}
	set_state(b, c, ST_RECV);
	return watch(b, c, EPOLLIN);
}

/* Make room for a whole frame of want bytes, keeping (and wiping) the old. */
static int grow_in(struct client *c, size_t want)
{
	uint8_t *bigger;

	if (want <= c->in_cap)
		return 0;
	bigger = malloc(want);
	if (bigger == NULL)
		return -1;
	memcpy(bigger, c->in, c->in_len);
	explicit_bzero(c->in, c->in_cap);
	free(c->in);
	c->in = bigger;
	c->in_cap = want;
	return 0;
}

/*
 * Read what has arrived of the answer: 1 when the whole frame is in, 0 when
 * more must come, -1 on an error, a hangup or a malformed frame.  With one
 * request in flight the broker has nothing else to say, so bytes past the
 * frame are malformed too.
 */
static int recv_more(struct bench *b, struct client *c)
{
	uint32_t len;

	for (;;) {
		ssize_t n = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n <= 0)
			return -1;
		c->in_len += (size_t)n;
		b->progress = true;
		if (c->in_len < WIRE_HEADER_SIZE)
			continue;
		if (wire_frame_length(c->in, WIRE_MAX_RESPONSE, &len) != 0 ||
		    grow_in(c, WIRE_HEADER_SIZE + (size_t)len) != 0 ||
		    c->in_len > WIRE_HEADER_SIZE + (size_t)len)
			return -1;
		if (c->in_len == WIRE_HEADER_SIZE + (size_t)len)
			return 1;
	}
}

/* The verdict on a whole answer frame, as for finish(): 0, a status, -1. */
static int answer(const struct bench *b, const struct client *c)
{
	struct wire_response resp;

	if (wire_decode_response(c->in + WIRE_HEADER_SIZE,
				 c->in_len - WIRE_HEADER_SIZE, &resp) != 0 ||
	    resp.type != b->type)
		return -1;
	return resp.status;
}

/*
 * Give c its next request and start it, until one is waiting on the broker
 * or none is left.  Failures that happen at once (a refused connect, a
 * broken send) finish that request here and the loop takes the next, so a
 * dead broker costs no waiting.
 */
static void advance(struct bench *b, struct client *c)
{
	for (;;) {
		int r;

		if (!c->busy) {
			if (b->next >= b->requests) {
				drop(b, c);
				return;
			}
			c->idx = b->next++;
			c->busy = true;
			c->sent = 0;
			c->t0 = now_ns();
		}
		if (c->fd < 0 && (r = conn_start(b, c)) != 0) {
			if (r > 0)
				return;
			conn_failed(b, c, errno);
			continue;
		}
		if (c->st != ST_READY)
			return; /* a connect still pending */
		if (send_more(b, c) == 0)
			return;
		finish(b, c, -1);
	}
}

/* Readiness (or a hangup or error) on c's socket. */
static void on_event(struct bench *b, struct client *c)
{
	int r;

	switch (c->st) {
	case ST_CONNECTING:
		if (conn_finish(b, c) != 0)
			conn_failed(b, c, errno);
		advance(b, c);
		break;
	case ST_SEND:
		if (send_more(b, c) != 0) {
			finish(b, c, -1);
			advance(b, c);
		}
		break;
	case ST_RECV:
		r = recv_more(b, c);
		if (r != 0) {
			finish(b, c, r > 0 ? answer(b, c) : -1);
			advance(b, c);
		}
		break;
	default:
		break; /* nothing is watched in the other states */
	}
}

/* Try again the connects that found the backlog full. */
static void retry_connects(struct bench *b)
{
	for (size_t i = 0; i < b->clients && b->retrying > 0; i++) {
		struct client *c = &b->c[i];
		int r;

		if (c->st != ST_RETRY)
			continue;
		r = conn_try(b, c);
		if (r > 0)
			continue;
		if (r < 0)
			conn_failed(b, c, errno);
		advance(b, c);
	}
}

/* Persistent connections are opened before their first timed request. */
static void open_all(struct bench *b)
{
	for (size_t i = 0; i < b->clients; i++) {
		struct client *c = &b->c[i];

		int r = b->reconnect ? 0 : conn_start(b, c);

		if (r > 0)
			continue; /* advance() runs once the connect resolves */
		if (r < 0)
			drop(b, c); /* silently: the first timed request tries again */
		advance(b, c);
	}
}

/* Nothing moved for IDLE_TIMEOUT_SEC: every unfinished request failed. */
static void give_up(struct bench *b)
{
	fprintf(stderr, "secretd-bench: no progress for %d s, giving up\n",
		IDLE_TIMEOUT_SEC);
	b->unfinished = b->requests - b->done;
	b->errors += b->unfinished;
	b->done = b->requests;
}

/* Drive every client until all requests are done; -1 if epoll fails. */
static int run(struct bench *b)
{
	struct epoll_event ev[MAX_EVENTS];
	uint64_t last = now_ns();

	open_all(b);
	while (b->done < b->requests) {
		uint64_t t = now_ns();
		int n, wait_ms;

		if (b->progress) {
			last = t;
			b->progress = false;
		}
		if (t - last >= IDLE_TIMEOUT_NS) {
			give_up(b);
			break;
		}
		wait_ms = b->retrying > 0 ? RETRY_MS :
			(int)((IDLE_TIMEOUT_NS - (t - last) + 999999) / 1000000);
		n = epoll_wait(b->epfd, ev, MAX_EVENTS, wait_ms);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "secretd-bench: epoll_wait: %m\n");
			return -1;
		}
		for (int i = 0; i < n; i++)
			on_event(b, ev[i].data.ptr);
		if (b->retrying > 0)
			retry_connects(b);
	}
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted[0..n), in whole microseconds. */
static uint64_t pct_us(const uint64_t *sorted, size_t n, double p)
{
	size_t rank;

	if (n == 0)
		return 0;
	rank = (size_t)(p / 100.0 * (double)n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return (sorted[rank - 1] + 500) / 1000;
}

static const char *status_name(unsigned st)
{
	switch (st) {
	case WIRE_ERROR: return "ERROR";
	case WIRE_INVALID: return "INVALID";
	case WIRE_NOT_FOUND: return "NOT_FOUND";
	case WIRE_DENIED: return "DENIED";
	case WIRE_UNAVAILABLE: return "UNAVAILABLE";
	case WIRE_RATE_LIMITED: return "RATE_LIMITED";
	default: return NULL;
	}
}

/*
 * Failures must not pass unnoticed in a throughput figure: one line on
 * stderr with how many requests failed and why, e.g.
 *   secretd-bench: WARNING: 93674 of 100000 requests failed (RATE_LIMITED=93674);
 *   rps counts only the 6326 successful answers
 */
static void warn_errors(const struct bench *b, size_t ok)
{
	const char *sep = "";

	if (b->errors == 0)
		return;
	fprintf(stderr, "secretd-bench: WARNING: %zu of %zu requests failed (",
		b->errors, b->requests);
	for (unsigned st = 1; st < 256; st++) {
		const char *nm = status_name(st);

		if (b->by_status[st] == 0)
			continue;
		if (nm != NULL)
			fprintf(stderr, "%s%s=%zu", sep, nm, b->by_status[st]);
		else
			fprintf(stderr, "%sstatus_%u=%zu", sep, st, b->by_status[st]);
		sep = " ";
	}
	if (b->broken > 0) {
		fprintf(stderr, "%sbroken=%zu", sep, b->broken);
		sep = " ";
	}
	if (b->unfinished > 0)
		fprintf(stderr, "%sunfinished=%zu", sep, b->unfinished);
	fprintf(stderr, "); rps counts only the %zu successful answers\n", ok);
	fflush(stderr);
}

static void report(struct bench *b, uint64_t elapsed_ns)
{
	size_t ok = 0;
	double secs = (double)elapsed_ns / 1e9;
	double rps;
	uint64_t *l = b->lat_ns;

	for (size_t i = 0; i < b->requests; i++) {
		if (l[i] != FAILED)
			l[ok++] = l[i];
	}
	rps = secs > 0 ? (double)ok / secs : 0.0;
	qsort(l, ok, sizeof(*l), cmp_u64);
	warn_errors(b, ok);
	printf("secretd-bench: %zu requests, %zu clients, %s connections, %.3f s, "
	       "%zu ok, %zu failed\n", b->requests, b->clients,
	       b->reconnect ? "new" : "persistent", secs, ok, b->errors);
	printf("latency_us: min=%" PRIu64 " p50=%" PRIu64 " p90=%" PRIu64
	       " p99=%" PRIu64 " p99.9=%" PRIu64 " max=%" PRIu64 "\n",
	       ok ? (l[0] + 500) / 1000 : 0, pct_us(l, ok, 50), pct_us(l, ok, 90),
	       pct_us(l, ok, 99), pct_us(l, ok, 99.9), ok ? (l[ok - 1] + 500) / 1000 : 0);
	printf("rps=%.1f p50_us=%" PRIu64 " p99_us=%" PRIu64 " errors=%zu\n", rps,
	       pct_us(l, ok, 50), pct_us(l, ok, 99), b->errors);
	fflush(stdout);
}

/* Encode one request into a new buffer: 0, or -1. */
static int encode(const struct wire_request *req, uint8_t **out, size_t *out_len)
{
	*out_len = wire_request_size(req);
	if (*out_len == 0 || (*out = malloc(*out_len)) == NULL)
		return -1;
	if (wire_encode_request(req, *out, *out_len) != (long)*out_len)
		return -1;
	return 0;
}

/* --put: client i puts NAME/c<i>, a value of put_size filler bytes. */
static int encode_puts(struct bench *b, const char *name)
{
	char cname[NAME_MAX_LEN + 1];
	uint8_t *value = malloc(b->put_size > 0 ? b->put_size : 1);
	int rc = 0;

	b->put_frames = calloc(b->clients, sizeof(*b->put_frames));
	if (value == NULL || b->put_frames == NULL) {
		free(value);
		return -1;
	}
	memset(value, 'v', b->put_size);
	for (size_t i = 0; i < b->clients && rc == 0; i++) {
		int n = snprintf(cname, sizeof(cname), "%s/c%zu", name, i);
		struct wire_request req = {
			.type = WIRE_PUT,
			.name = { (const uint8_t *)cname, (size_t)n },
			.value = { value, b->put_size },
		};

		if (n < 0 || (size_t)n >= sizeof(cname) || !name_valid(cname, (size_t)n, NULL)) {
			rc = -1;
			break;
		}
		rc = encode(&req, &b->put_frames[i], &b->c[i].frame_len);
		b->c[i].frame = b->put_frames[i];
	}
	free(value);
	return rc;
}

/* Encode the one request every client sends. */
static int encode_get(struct bench *b, const char *name)
{
	struct wire_request req = {
		.type = WIRE_GET,
		.name = { (const uint8_t *)name, strlen(name) },
	};

	if (encode(&req, &b->frame, &b->frame_len) != 0)
		return -1;
	for (size_t i = 0; i < b->clients; i++) {
		b->c[i].frame = b->frame;
		b->c[i].frame_len = b->frame_len;
	}
	return 0;
}

/*
 * Thousands of clients need as many descriptors; lift the soft limit toward
 * the hard one when it is short.  Failing is not fatal: the connects that
 * then fail are counted and reported like any other.
 */
static void raise_fd_limit(size_t clients)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)clients + 64;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
		return;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
	(void)setrlimit(RLIMIT_NOFILE, &rl);
}

/* Everything the run needs, allocated before the clock starts. */
static int setup(struct bench *b, const char *name)
{
	b->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (b->epfd < 0) {
		fprintf(stderr, "secretd-bench: epoll_create1: %m\n");
		return -1;
	}
	b->lat_ns = malloc(b->requests * sizeof(*b->lat_ns));
	b->c = calloc(b->clients, sizeof(*b->c));
	if (b->lat_ns == NULL || b->c == NULL)
		goto nomem;
	/* All ones is FAILED: a request that never finishes stays failed. */
	memset(b->lat_ns, 0xff, b->requests * sizeof(*b->lat_ns));
	for (size_t i = 0; i < b->clients; i++) {
		b->c[i].fd = -1;
		b->c[i].in_cap = INITIAL_IN;
		if ((b->c[i].in = malloc(INITIAL_IN)) == NULL)
			goto nomem;
	}
	if (b->type == WIRE_PUT ? encode_puts(b, name) != 0 : encode_get(b, name) != 0) {
		fprintf(stderr, "secretd-bench: cannot encode the request\n");
		return -1;
	}
	return 0;
nomem:
	fprintf(stderr, "secretd-bench: out of memory\n");
	return -1;
}

static void teardown(struct bench *b)
{
	for (size_t i = 0; b->c != NULL && i < b->clients; i++) {
		struct client *c = &b->c[i];

		if (c->fd >= 0)
			close(c->fd);
		if (c->in != NULL)
			explicit_bzero(c->in, c->in_cap);
		free(c->in);
		if (b->put_frames != NULL)
			free(b->put_frames[i]);
	}
	free(b->put_frames);
	if (b->epfd >= 0)
		close(b->epfd);
	free(b->c);
	free(b->frame);
	free(b->lat_ns);
}

static int bench_main(struct bench *b, const char *name)
{
	uint64_t t0;
	int rc = EXIT_ERROR;

	raise_fd_limit(b->clients);
	if (setup(b, name) != 0)
		goto out;
	t0 = now_ns();
	if (run(b) != 0)
		goto out;
	report(b, now_ns() - t0);
	rc = b->errors == 0 ? EXIT_OK : EXIT_ERROR;
out:
	teardown(b);
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "clients", required_argument, NULL, 'c' },
		{ "requests", required_argument, NULL, 'n' },
		{ "reconnect", no_argument, NULL, 'r' },
		{ "put", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct bench b = { .addr.sun_family = AF_UNIX, .epfd = -1, .type = WIRE_GET };
	const char *sock = getenv("SECRETD_SOCKET");
	const char *why = NULL;
	const char *name;
	bool have_c = false, have_n = false;
	int opt;

	if (sock == NULL || sock[0] == '\0')
		sock = DEFAULT_SOCKET;
	while ((opt = getopt_long(argc, argv, "s:c:n:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 's':
			sock = optarg;
			break;
		case 'c':
			if (!parse_count(optarg, 1, MAX_CLIENTS, &b.clients))
				return usage_error("-c wants a number of clients from 1 to 4096");
			have_c = true;
			break;
		case 'n':
			if (!parse_count(optarg, 1, MAX_REQUESTS, &b.requests))
				return usage_error("-n wants a number of requests from 1 to 100000000");
			have_n = true;
			break;
		case 'r':
			b.reconnect = true;
			break;
		case 'p':
			if (!parse_count(optarg, 0, 1048576, &b.put_size))
				return usage_error("--put wants a value size from 0 to 1048576 bytes");
			b.type = WIRE_PUT;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (!have_c || !have_n)
		return usage_error("-c CLIENTS and -n REQUESTS are required");
	if (argc - optind != 1)
		return usage_error("exactly one secret NAME is required");
	name = argv[optind];
	if (!name_valid(name, strlen(name), &why))
		return usage_error(why);
	if (strlen(sock) >= sizeof(b.addr.sun_path))
		return usage_error("socket path too long");
	memcpy(b.addr.sun_path, sock, strlen(sock) + 1);
	return bench_main(&b, name);
}
