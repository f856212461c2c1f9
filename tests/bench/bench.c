/*
 * secretd-bench: a load generator for the broker (CONTRACT "Benchmark").
 *
 *   secretd-bench -s SOCKET -c CLIENTS -n REQUESTS [--reconnect] NAME
 *
 * CLIENTS threads share REQUESTS `get NAME` requests, handed out one at a
 * time by an atomic counter, each thread over one persistent blocking
 * connection (with --reconnect, a new connection for every request, as
 * `secretctl get` does, and the connect is part of the request's latency).
 * One request is in flight per connection.  Every request's latency goes
 * into its own slot of an array allocated up front, so the hot loop neither
 * allocates nor locks.  A non-OK response or an I/O error counts as an
 * error; after an I/O error or a malformed answer the connection is
 * replaced, since the stream can no longer be trusted.
 *
 * Output: a summary line, a latency line, and last, exactly
 *   rps=<requests per second, 1 decimal> p50_us=<int> p99_us=<int> errors=<int>
 * where rps counts every request (failed ones too) over the wall-clock time
 * of the run and the percentiles are over the successful requests only.
 * Exit status: 0 when every request succeeded, 1 when any failed (the line
 * is printed all the same) or the run could not start, 2 for a usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
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
#define IO_TIMEOUT_SEC 30
/* Latency slot of a request that failed. */
#define FAILED UINT64_MAX

struct bench {
	struct sockaddr_un addr;
	bool reconnect;
	size_t clients, requests;
	uint8_t *frame; /* the encoded get request, shared read-only */
	size_t frame_len;
	uint64_t *lat_ns; /* one slot per request */
	atomic_size_t next;
	atomic_size_t errors;
	atomic_flag told; /* the first connect failure has been reported */
};

struct worker {
	struct bench *b;
	pthread_t tid;
	int fd;
	uint8_t *buf; /* the response body; holds a secret value: wiped after use */
	size_t cap;
};

static void usage(FILE *to)
{
	fprintf(to, "usage: secretd-bench [-s SOCKET] -c CLIENTS -n REQUESTS "
		    "[--reconnect] NAME\n");
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

static int bench_connect(const struct bench *b)
{
	struct timeval tv = { .tv_sec = IO_TIMEOUT_SEC };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0 ||
	    connect(fd, (const struct sockaddr *)&b->addr, sizeof(b->addr)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int send_all(int fd, const uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int read_full(int fd, uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1; /* error, timeout or the broker hung up */
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int reserve(struct worker *w, size_t len)
{
	uint8_t *bigger;

	if (len <= w->cap)
		return 0;
	bigger = malloc(len);
	if (bigger == NULL)
		return -1;
	if (w->buf != NULL) {
		explicit_bzero(w->buf, w->cap);
		free(w->buf);
	}
	w->buf = bigger;
	w->cap = len;
	return 0;
}

/*
 * One get on w->fd: 0 on an OK answer, 1 on a well-formed non-OK answer (the
 * connection is still good), -1 when the connection must be dropped.
 */
static int exchange(struct worker *w)
{
	uint8_t hdr[WIRE_HEADER_SIZE];
	struct wire_response resp;
	uint32_t len;
	int rc = -1;

	if (send_all(w->fd, w->b->frame, w->b->frame_len) != 0 ||
	    read_full(w->fd, hdr, sizeof(hdr)) != 0 ||
	    wire_frame_length(hdr, WIRE_MAX_RESPONSE, &len) != 0 ||
	    reserve(w, len) != 0 || read_full(w->fd, w->buf, len) != 0)
		goto out;
	if (wire_decode_response(w->buf, len, &resp) != 0 || resp.type != WIRE_GET)
		goto wipe;
	rc = resp.status == WIRE_OK ? 0 : 1;
wipe:
	explicit_bzero(w->buf, len);
out:
	return rc;
}

static void drop(struct worker *w)
{
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct bench *b = w->b;
	size_t i;

	/* Persistent connections are opened before the first timed request. */
	if (!b->reconnect)
		w->fd = bench_connect(b);
	while ((i = atomic_fetch_add(&b->next, 1)) < b->requests) {
		uint64_t t0 = now_ns();
		int rc = -1;

		if (w->fd < 0 && (w->fd = bench_connect(b)) < 0 &&
		    !atomic_flag_test_and_set(&b->told))
			fprintf(stderr, "secretd-bench: cannot connect to %s: %m\n",
				b->addr.sun_path);
		if (w->fd >= 0)
			rc = exchange(w);
		b->lat_ns[i] = rc == 0 ? now_ns() - t0 : FAILED;
		if (rc != 0)
			atomic_fetch_add(&b->errors, 1);
		if (rc < 0 || b->reconnect)
			drop(w);
	}
	drop(w);
	return NULL;
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

static void report(struct bench *b, uint64_t elapsed_ns)
{
	size_t ok = 0;
	double secs = (double)elapsed_ns / 1e9;
	double rps = secs > 0 ? (double)b->requests / secs : 0.0;
	uint64_t *l = b->lat_ns;

	for (size_t i = 0; i < b->requests; i++) {
		if (l[i] != FAILED)
			l[ok++] = l[i];
	}
	qsort(l, ok, sizeof(*l), cmp_u64);
	printf("secretd-bench: %zu requests, %zu clients, %s connections, %.3f s\n",
	       b->requests, b->clients, b->reconnect ? "new" : "persistent", secs);
	printf("latency_us: min=%" PRIu64 " p50=%" PRIu64 " p90=%" PRIu64
	       " p99=%" PRIu64 " p99.9=%" PRIu64 " max=%" PRIu64 "\n",
	       ok ? (l[0] + 500) / 1000 : 0, pct_us(l, ok, 50), pct_us(l, ok, 90),
	       pct_us(l, ok, 99), pct_us(l, ok, 99.9), ok ? (l[ok - 1] + 500) / 1000 : 0);
	printf("rps=%.1f p50_us=%" PRIu64 " p99_us=%" PRIu64 " errors=%zu\n", rps,
	       pct_us(l, ok, 50), pct_us(l, ok, 99), atomic_load(&b->errors));
	fflush(stdout);
}

/* Start the workers, wait for them all; -1 if one could not start. */
static int run(struct bench *b, struct worker *w)
{
	size_t started = 0;
	int rc = 0;

	for (; started < b->clients; started++) {
		w[started].b = b;
		w[started].fd = -1;
		if (pthread_create(&w[started].tid, NULL, worker_main, &w[started]) != 0) {
			fprintf(stderr, "secretd-bench: cannot start client thread %zu\n",
				started + 1);
			/* Let the running workers finish at once. */
			atomic_store(&b->next, b->requests);
			rc = -1;
			break;
		}
	}
	for (size_t i = 0; i < started; i++)
		(void)pthread_join(w[i].tid, NULL);
	return rc;
}

/* Encode the one request every client sends. */
static int encode_get(struct bench *b, const char *name)
{
	struct wire_request req = {
		.type = WIRE_GET,
		.name = { (const uint8_t *)name, strlen(name) },
	};

	b->frame_len = wire_request_size(&req);
	if (b->frame_len == 0 || (b->frame = malloc(b->frame_len)) == NULL)
		return -1;
	if (wire_encode_request(&req, b->frame, b->frame_len) != (long)b->frame_len)
		return -1;
	return 0;
}

static int bench_main(struct bench *b, const char *name)
{
	struct worker *w = NULL;
	uint64_t t0;
	int rc = EXIT_ERROR;

	b->lat_ns = calloc(b->requests, sizeof(*b->lat_ns));
	w = calloc(b->clients, sizeof(*w));
	if (b->lat_ns == NULL || w == NULL) {
		fprintf(stderr, "secretd-bench: out of memory\n");
		goto out;
	}
	if (encode_get(b, name) != 0) {
		fprintf(stderr, "secretd-bench: cannot encode the request\n");
		goto out;
	}
	t0 = now_ns();
	if (run(b, w) != 0)
		goto out;
	report(b, now_ns() - t0);
	rc = atomic_load(&b->errors) == 0 ? EXIT_OK : EXIT_ERROR;
out:
	for (size_t i = 0; w != NULL && i < b->clients; i++) {
		if (w[i].buf != NULL)
			explicit_bzero(w[i].buf, w[i].cap);
		free(w[i].buf);
	}
	free(w);
	free(b->frame);
	free(b->lat_ns);
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "clients", required_argument, NULL, 'c' },
		{ "requests", required_argument, NULL, 'n' },
		{ "reconnect", no_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct bench b = { .addr.sun_family = AF_UNIX, .told = ATOMIC_FLAG_INIT };
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
