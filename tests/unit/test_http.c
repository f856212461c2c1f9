/*
 * The metrics listener on a private loop, driven by libuv clients on the
 * same loop: GET /metrics and /healthz (healthy and not), every refusal
 * (405, 404, 400, 431, 505, a body), the timeout of a silent client, the
 * connection cap, TCP on 127.0.0.1 and ::1 and a Unix socket; the request
 * parser on its own; and every test ends with uv_loop_close() == 0.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "http.h"
#include "http_parse.h"

/* ---- the parser ----------------------------------------------------- */

static int parse(const char *s)
{
	struct http_request r;
	int st = http_parse_request(s, strlen(s), &r);

	if (st == 0)
		return r.target == HTTP_TARGET_METRICS ? 1000 : r.target == HTTP_TARGET_HEALTHZ ? 1001 : 1002;
	return st;
}

static void test_parse(void **state)
{
	char big[HTTP_MAX_REQUEST + 16];

	(void)state;
	assert_int_equal(parse("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), 1000);
	assert_int_equal(parse("GET /healthz HTTP/1.0\r\n\r\n"), 1001);
	assert_int_equal(parse("GET /healthz?verbose HTTP/1.1\n\n"), 1001);
	assert_int_equal(parse("GET / HTTP/1.1\r\n\r\n"), 1002);
	assert_int_equal(parse("GET /metricsx HTTP/1.1\r\n\r\n"), 1002);
	assert_int_equal(parse("GET /metrics HTTP/1.1\r\nHost: x\r\n"), 1);
	assert_int_equal(parse("GET /met"), 1);
	assert_int_equal(parse(""), 1);
	assert_int_equal(parse("POST /metrics HTTP/1.1\r\n\r\n"), 405);
	assert_int_equal(parse("HEAD /metrics HTTP/1.1\r\n\r\n"), 405);
	assert_int_equal(parse("GET /metrics HTTP/2.0\r\n\r\n"), 505);
	assert_int_equal(parse("GET /metrics HTTP/1.1x\r\n\r\n"), 505);
	assert_int_equal(parse("GET /metrics FTP/1.1\r\n\r\n"), 400);
	assert_int_equal(parse("GET metrics HTTP/1.1\r\n\r\n"), 400);
	assert_int_equal(parse("GET  /metrics HTTP/1.1\r\n\r\n"), 400);
	assert_int_equal(parse("GET /metrics\r\n\r\n"), 400);
	assert_int_equal(parse("GET /metrics HTTP/1.1\r\nNoColon\r\n\r\n"), 400);
	assert_int_equal(parse("GET /metrics HTTP/1.1\r\n folded: x\r\n\r\n"), 400);
	assert_int_equal(parse("GET /metrics HTTP/1.1\r\nX: a\001b\r\n\r\n"), 400);
	assert_int_equal(parse("GET /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"), 400);
	assert_int_equal(parse("GET /metrics HTTP/1.1\r\ncontent-length: 0\r\n\r\n"), 1000);
	assert_int_equal(parse("GET /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), 400);
	{
		static const char nul[] = "GET /metrics\0 HTTP/1.1\r\n\r\n";
		struct http_request r;
		assert_int_equal(http_parse_request(nul, sizeof(nul) - 1, &r), 400);
	}
	memset(big, 'a', sizeof(big));
	memcpy(big, "GET /metrics HTTP/1.1\r\nX: ", 26);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(parse(big), 431);
	big[HTTP_MAX_REQUEST - 1] = '\0'; /* one byte short of the bound: still waiting */
	assert_int_equal(parse(big), 1);
}

static void test_parse_listen(void **state)
{
	struct sockaddr_storage sa;

	(void)state;
	assert_int_equal(http_parse_listen("127.0.0.1:9464", &sa), 0);
	assert_int_equal(sa.ss_family, AF_INET);
	assert_int_equal(http_parse_listen("[::1]:9464", &sa), 0);
	assert_int_equal(sa.ss_family, AF_INET6);
	assert_int_equal(http_parse_listen("/run/secretd-metrics/metrics.sock", &sa), 0);
	assert_int_equal(sa.ss_family, AF_UNIX);
	assert_int_equal(http_parse_listen("localhost:9464", &sa), -EINVAL);
	assert_int_equal(http_parse_listen("127.0.0.1", &sa), -EINVAL);
	assert_int_equal(http_parse_listen("127.0.0.1:", &sa), -EINVAL);
	assert_int_equal(http_parse_listen("127.0.0.1:65536", &sa), -EINVAL);
	assert_int_equal(http_parse_listen("127.0.0.1:-1", &sa), -EINVAL);
	assert_int_equal(http_parse_listen("127.0.0.1:80x", &sa), -EINVAL);
	assert_int_equal(http_parse_listen("::1:9464", &sa), -EINVAL);
	assert_int_equal(http_parse_listen("[::1]9464", &sa), -EINVAL);
	assert_int_equal(http_parse_listen("relative.sock", &sa), -EINVAL);
	assert_int_equal(http_parse_listen("", &sa), -EINVAL);
}

/* ---- a server and clients on one private loop --------------------- */

struct client {
	union {
		uv_handle_t handle;
		uv_stream_t stream;
		uv_tcp_t tcp;
		uv_pipe_t pipe;
	} h;
	uv_connect_t conn;
	uv_write_t wr;
	const char *send;
	char resp[65536];
	size_t rlen;
	bool eof, closed;
};

static uv_loop_t loop;
static struct http_server *srv;
static bool healthy = true;
static int metrics_calls;
static bool stopped;
static char sockdir[64];

static int cb_metrics(void *arg, char **body, size_t *len)
{
	(void)arg;
	metrics_calls++;
	*body = strdup("secretd_x 1\n");
	*len = *body != NULL ? strlen(*body) : 0;
	return *body != NULL ? 0 : -ENOMEM;
}

static int cb_health(void *arg, char *reason, size_t size)
{
	(void)arg;
	if (healthy)
		return 0;
	snprintf(reason, size, "audit log cannot be written\nsecond line");
	return 1;
}

static void on_stopped(void *arg)
{
	(void)arg;
	stopped = true;
}

static void client_closed(uv_handle_t *h)
{
	((struct client *)h)->closed = true;
}

static void client_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	struct client *c = (struct client *)h;

	(void)suggested;
	b->base = c->resp + c->rlen;
	b->len = sizeof(c->resp) - 1 - c->rlen;
}

static void client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct client *c = (struct client *)s;

	(void)b;
	if (n < 0) {
		c->eof = true;
		uv_close(&c->h.handle, client_closed);
		return;
	}
	c->rlen += (size_t)n;
	c->resp[c->rlen] = '\0';
}

static void client_written(uv_write_t *w, int status)
{
	(void)w;
	(void)status;
}

static void client_connected(uv_connect_t *req, int status)
{
	struct client *c = req->data;
	uv_buf_t b;

	if (status != 0) {
		c->eof = true;
		uv_close(&c->h.handle, client_closed);
		return;
	}
	assert_int_equal(uv_read_start(&c->h.stream, client_alloc, client_read), 0);
	if (c->send != NULL && c->send[0] != '\0') {
		b = uv_buf_init((char *)(uintptr_t)c->send, (unsigned)strlen(c->send));
		assert_int_equal(uv_write(&c->wr, &c->h.stream, &b, 1, client_written), 0);
	}
}

static void client_start(struct client *c, const char *addr, const char *send)
{
	struct sockaddr_storage sa;

	memset(c, 0, sizeof(*c));
	c->send = send;
	c->conn.data = c;
	assert_int_equal(http_parse_listen(addr, &sa), 0);
	if (sa.ss_family == AF_UNIX) {
		assert_int_equal(uv_pipe_init(&loop, &c->h.pipe, 0), 0);
		uv_pipe_connect(&c->conn, &c->h.pipe, ((struct sockaddr_un *)&sa)->sun_path,
				client_connected);
		return;
	}
	assert_int_equal(uv_tcp_init(&loop, &c->h.tcp), 0);
	if (sa.ss_family == AF_INET)
		((struct sockaddr_in *)&sa)->sin_port = htons((uint16_t)http_port(srv));
	else
		((struct sockaddr_in6 *)&sa)->sin6_port = htons((uint16_t)http_port(srv));
	assert_int_equal(uv_tcp_connect(&c->conn, &c->h.tcp, (struct sockaddr *)&sa, client_connected), 0);
}

/* Run the loop until every client of N is closed (at most 10 s). */
static void run_clients(struct client *c, size_t n)
{
	uint64_t start = uv_now(&loop);

	for (;;) {
		size_t open = 0;
		for (size_t i = 0; i < n; i++)
			open += !c[i].closed;
		if (open == 0)
			return;
		assert_true(uv_now(&loop) - start < 10000);
		uv_run(&loop, UV_RUN_ONCE);
	}
}

static const char *request(const char *addr, const char *send)
{
	static struct client c;

	client_start(&c, addr, send);
	run_clients(&c, 1);
	return c.resp;
}

static void server_start(const char *listen, unsigned max_conns, unsigned timeout_ms)
{
	struct http_config cfg = {
		.listen = listen, .max_connections = max_conns, .timeout_ms = timeout_ms,
		.metrics = cb_metrics, .health = cb_health,
	};
	char err[256];

	assert_int_equal(uv_loop_init(&loop), 0);
	stopped = false;
	healthy = true;
	metrics_calls = 0;
	if (http_start(&loop, &cfg, &srv, err, sizeof(err)) != 0)
		fail_msg("http_start %s: %s", listen, err);
}

static void server_stop(void)
{
	http_stop(srv, on_stopped, NULL);
	srv = NULL;
	while (uv_run(&loop, UV_RUN_DEFAULT) != 0)
		;
	assert_true(stopped);
	assert_int_equal(uv_loop_close(&loop), 0);
}

static void check_answers(const char *addr)
{
	const char *r;

	r = request(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_non_null(strstr(r, "HTTP/1.1 200 OK\r\n"));
	assert_non_null(strstr(r, "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
	assert_non_null(strstr(r, "Content-Length: 12\r\n"));
	assert_non_null(strstr(r, "Connection: close\r\n"));
	assert_non_null(strstr(r, "\r\n\r\nsecretd_x 1\n"));
	assert_int_equal(metrics_calls, 1);

	r = request(addr, "GET /healthz HTTP/1.1\r\n\r\n");
	assert_non_null(strstr(r, "HTTP/1.1 200 OK\r\n"));
	assert_non_null(strstr(r, "\r\n\r\nok\n"));
	healthy = false;
	r = request(addr, "GET /healthz HTTP/1.1\r\n\r\n");
	assert_non_null(strstr(r, "HTTP/1.1 503 Service Unavailable\r\n"));
	assert_non_null(strstr(r, "\r\n\r\naudit log cannot be written second line\n"));
	healthy = true;

	r = request(addr, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
	assert_non_null(strstr(r, "HTTP/1.1 405 Method Not Allowed\r\nContent-Type"));
	assert_non_null(strstr(r, "Allow: GET\r\n"));
	r = request(addr, "GET /secrets HTTP/1.1\r\n\r\n");
	assert_non_null(strstr(r, "HTTP/1.1 404 Not Found\r\n"));
	r = request(addr, "\x16\x03\x01\x02\xfc\x03\x03 x y\r\n\r\n");
	assert_non_null(strstr(r, "HTTP/1.1 400 Bad Request\r\n"));
	r = request(addr, "GET /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
	assert_non_null(strstr(r, "HTTP/1.1 400 Bad Request\r\n"));
	r = request(addr, "GET /metrics HTTP/3\r\n\r\n");
	assert_non_null(strstr(r, "HTTP/1.1 505 "));
	assert_int_equal(metrics_calls, 1);
}

static void test_tcp4(void **state)
{
	(void)state;
	server_start("127.0.0.1:0", 0, 0);
	assert_true(http_port(srv) > 0);
	check_answers("127.0.0.1:1");
	server_stop();
}

static void test_tcp6(void **state)
{
	(void)state;
	server_start("[::1]:0", 0, 0);
	check_answers("[::1]:1");
	server_stop();
}

static void test_unix(void **state)
{
	char path[128];
	struct stat st;

	(void)state;
	snprintf(path, sizeof(path), "%s/metrics.sock", sockdir);
	server_start(path, 0, 0);
	assert_int_equal(http_port(srv), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	check_answers(path);
	server_stop();
	assert_int_not_equal(stat(path, &st), 0); /* removed at stop */
}

static void test_unix_in_use(void **state)
{
	char path[128], err[256];
	struct http_server *second = NULL;
	struct http_config cfg = { .listen = path, .metrics = cb_metrics };

	(void)state;
	snprintf(path, sizeof(path), "%s/busy.sock", sockdir);
	server_start(path, 0, 0);
	assert_int_equal(http_start(&loop, &cfg, &second, err, sizeof(err)), -EADDRINUSE);
	assert_null(second);
	assert_non_null(strstr(err, "another process listens"));
	server_stop();
	/* A regular file in the way is never removed. */
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fclose(f);
	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(http_start(&loop, &cfg, &second, err, sizeof(err)), -EEXIST);
	while (uv_run(&loop, UV_RUN_DEFAULT) != 0)
		;
	assert_int_equal(uv_loop_close(&loop), 0);
	assert_int_equal(unlink(path), 0);
}

static void test_bad_listen(void **state)
{
	char err[256];
	struct http_server *s = NULL;
	struct http_config cfg = { .listen = "localhost:80" };

	(void)state;
	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(http_start(&loop, &cfg, &s, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "localhost:80"));
	assert_null(s);
	while (uv_run(&loop, UV_RUN_DEFAULT) != 0)
		;
	assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_timeout(void **state)
{
	struct client c[2];
	uint64_t t0;

	(void)state;
	server_start("127.0.0.1:0", 0, 200);
	t0 = uv_now(&loop);
	client_start(&c[0], "127.0.0.1:1", "");                 /* says nothing */
	client_start(&c[1], "127.0.0.1:1", "GET /metrics HTTP/1.1\r\n"); /* never ends */
	run_clients(c, 2);
	assert_true(uv_now(&loop) - t0 >= 150);
	assert_non_null(strstr(c[0].resp, "HTTP/1.1 408 Request Timeout\r\n"));
	assert_non_null(strstr(c[1].resp, "HTTP/1.1 408 Request Timeout\r\n"));
	assert_int_equal(metrics_calls, 0);
	server_stop();
}

static void test_cap(void **state)
{
	struct client c[5];

	(void)state;
	server_start("127.0.0.1:0", 3, 300);
	/* Three silent clients hold every slot; two more are closed unanswered. */
	for (int i = 0; i < 5; i++)
		client_start(&c[i], "127.0.0.1:1", "");
	run_clients(c, 5);
	int timed_out = 0, dropped = 0;
	for (int i = 0; i < 5; i++) {
		if (strstr(c[i].resp, "408") != NULL)
			timed_out++;
		else if (c[i].rlen == 0)
			dropped++;
	}
	assert_int_equal(timed_out, 3);
	assert_int_equal(dropped, 2);
	/* The slots are free again. */
	assert_non_null(strstr(request("127.0.0.1:1", "GET /healthz HTTP/1.1\r\n\r\n"), "200 OK"));
	server_stop();
}

static void test_stop_with_clients(void **state)
{
	struct client c[2];

	(void)state;
	server_start("127.0.0.1:0", 0, 60000);
	client_start(&c[0], "127.0.0.1:1", "");
	client_start(&c[1], "127.0.0.1:1", "GET /met");
	for (int i = 0; i < 20; i++)
		uv_run(&loop, UV_RUN_NOWAIT);
	http_stop(srv, on_stopped, NULL);
	srv = NULL;
	run_clients(c, 2);
	while (uv_run(&loop, UV_RUN_DEFAULT) != 0)
		;
	assert_true(stopped);
	assert_int_equal(uv_loop_close(&loop), 0);
}

static int setup(void **state)
{
	(void)state;
	snprintf(sockdir, sizeof(sockdir), "/tmp/test_http.XXXXXX");
	return mkdtemp(sockdir) != NULL ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	return rmdir(sockdir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_parse_listen),
		cmocka_unit_test(test_tcp4),
		cmocka_unit_test(test_tcp6),
		cmocka_unit_test(test_unix),
		cmocka_unit_test(test_unix_in_use),
		cmocka_unit_test(test_bad_listen),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_cap),
		cmocka_unit_test(test_stop_with_clients),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
