/* The metrics listener's sockets, connections and answers. */
#include "http.h"
#include "http_parse.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* The Prometheus text format's content type (what metrics_render writes). */
#define HTTP_METRICS_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct http_conn {
	struct http_conn *next, **prevp;
	struct http_server *srv;
	union {
		uv_handle_t handle;
		uv_stream_t stream;
		uv_tcp_t tcp;
		uv_pipe_t pipe;
	} h;
	uv_timer_t timer;
	int closing; /* handles still to close */
	bool answered;
	size_t len;
	char buf[HTTP_MAX_REQUEST];
};

/* A write owns its buffer and is freed in its callback (as libuv's examples). */
struct http_write {
	uv_write_t req;
	char *data;
};

struct http_server {
	uv_loop_t *loop;
	struct http_config cfg;
	union {
		uv_handle_t handle;
		uv_stream_t stream;
		uv_tcp_t tcp;
		uv_pipe_t pipe;
	} listener;
	bool is_unix;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct http_conn *conns;
	unsigned nconns;
	bool stopping;
	int pending; /* handles still to close while stopping */
	void (*done)(void *arg);
	void *done_arg;
};

int http_parse_listen(const char *addr, struct sockaddr_storage *sa)
{
	struct sockaddr_in *in4 = (struct sockaddr_in *)sa;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)sa;
	struct sockaddr_un *un = (struct sockaddr_un *)sa;
	char host[INET6_ADDRSTRLEN + 1];
	const char *colon, *port_s, *h;
	size_t hlen;
	char *end;
	unsigned long port;

	memset(sa, 0, sizeof(*sa));
	if (addr == NULL || addr[0] == '\0')
		return -EINVAL;
	if (addr[0] == '/') {
		if (strlen(addr) >= sizeof(un->sun_path))
			return -ENAMETOOLONG;
		un->sun_family = AF_UNIX;
		memcpy(un->sun_path, addr, strlen(addr) + 1);
		return 0;
	}
	if (addr[0] == '[') {
		const char *close = strchr(addr, ']');
		if (close == NULL || close[1] != ':')
			return -EINVAL;
		h = addr + 1;
		hlen = (size_t)(close - h);
		port_s = close + 2;
	} else {
		colon = strrchr(addr, ':');
		if (colon == NULL)
			return -EINVAL;
		h = addr;
		hlen = (size_t)(colon - addr);
		port_s = colon + 1;
	}
	if (hlen == 0 || hlen >= sizeof(host))
		return -EINVAL;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	if (port_s[0] < '0' || port_s[0] > '9')
		return -EINVAL;
	errno = 0;
	port = strtoul(port_s, &end, 10);
	if (errno != 0 || *end != '\0' || port > 65535)
		return -EINVAL;
	if (addr[0] == '[') {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		return inet_pton(AF_INET6, host, &in6->sin6_addr) == 1 ? 0 : -EINVAL;
	}
	in4->sin_family = AF_INET;
	in4->sin_port = htons((uint16_t)port);
	return inet_pton(AF_INET, host, &in4->sin_addr) == 1 ? 0 : -EINVAL;
}

/* ---- closing -------------------------------------------------------- */

static void http_maybe_done(struct http_server *s)
{
	if (s->stopping && s->pending == 0 && s->conns == NULL) {
		void (*done)(void *) = s->done;
		void *arg = s->done_arg;

		free(s);
		if (done != NULL)
			done(arg);
	}
}

static void http_conn_closed(uv_handle_t *h)
{
	struct http_conn *c = h->data;
	struct http_server *s = c->srv;

	if (--c->closing > 0)
		return;
	*c->prevp = c->next;
	if (c->next != NULL)
		c->next->prevp = c->prevp;
	s->nconns--;
	free(c);
	http_maybe_done(s);
}

/* The one way a connection ends: both its handles closed, then freed. */
static void http_conn_close(struct http_conn *c)
{
	if (c->closing > 0)
		return;
	c->closing = 2;
	uv_timer_stop(&c->timer);
	uv_close((uv_handle_t *)&c->timer, http_conn_closed);
	uv_close(&c->h.handle, http_conn_closed);
}

/* ---- answers -------------------------------------------------------- */

static void http_written(uv_write_t *req, int status)
{
	struct http_write *w = (struct http_write *)req;
	struct http_conn *c = req->handle->data;

	(void)status;
	free(w->data);
	free(w);
	http_conn_close(c);
}

static const char *http_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return "Error";
	}
}

/* Queue the whole answer (head and BODY, which is copied) and then close. */
static void http_answer(struct http_conn *c, int status, const char *type, const char *body,
			size_t blen)
{
	struct http_write *w = NULL;
	char head[256];
	int hlen;
	uv_buf_t b;

	if (c->answered || c->closing > 0)
		return;
	c->answered = true;
	uv_read_stop(&c->h.stream);
	hlen = snprintf(head, sizeof(head),
			"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
			"Cache-Control: no-store\r\nConnection: close\r\n%s\r\n",
			status, http_reason(status), type, blen,
			status == 405 ? "Allow: GET\r\n" : "");
	if (hlen < 0 || (size_t)hlen >= sizeof(head))
		goto fail;
	w = calloc(1, sizeof(*w));
	if (w == NULL || (w->data = malloc((size_t)hlen + blen)) == NULL)
		goto fail;
	memcpy(w->data, head, (size_t)hlen);
	if (blen > 0)
		memcpy(w->data + hlen, body, blen);
	b = uv_buf_init(w->data, (unsigned)((size_t)hlen + blen));
	if (uv_write(&w->req, &c->h.stream, &b, 1, http_written) != 0)
		goto fail;
	return;
fail:
	if (w != NULL)
		free(w->data);
	free(w);
	http_conn_close(c);
}

static void http_answer_text(struct http_conn *c, int status, const char *text)
{
	char body[512];
	int n = snprintf(body, sizeof(body), "%s\n", text);

	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(body))
		n = (int)sizeof(body) - 1;
	http_answer(c, status, "text/plain; charset=utf-8", body, (size_t)n);
}

static void http_serve(struct http_conn *c, const struct http_request *req)
{
	struct http_server *s = c->srv;
	char reason[256] = "";
	char *body = NULL;
	size_t blen = 0;

	switch (req->target) {
	case HTTP_TARGET_METRICS:
		if (s->cfg.metrics == NULL || s->cfg.metrics(s->cfg.arg, &body, &blen) != 0) {
			http_answer_text(c, 500, "metrics unavailable");
			break;
		}
		http_answer(c, 200, HTTP_METRICS_TYPE, body, blen);
		free(body);
		break;
	case HTTP_TARGET_HEALTHZ:
		if (s->cfg.health != NULL && s->cfg.health(s->cfg.arg, reason, sizeof(reason)) != 0) {
			reason[sizeof(reason) - 1] = '\0';
			/* One line: the reason is ours, but keep the framing intact. */
			for (char *p = reason; *p != '\0'; p++)
				if (*p == '\r' || *p == '\n')
					*p = ' ';
			http_answer_text(c, 503, reason[0] != '\0' ? reason : "unhealthy");
		} else {
			http_answer_text(c, 200, "ok");
		}
		break;
	default:
		http_answer_text(c, 404, "not found");
		break;
	}
}

/* ---- reading -------------------------------------------------------- */

static void http_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct http_conn *c = h->data;

	(void)suggested;
	buf->base = c->buf + c->len;
	buf->len = sizeof(c->buf) - c->len;
}

static void http_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	struct http_conn *c = stream->data;
	struct http_request req;
	int st;

	(void)buf;
	if (nread < 0) {
		/* EOF or error before a whole request: nothing to answer. */
		http_conn_close(c);
		return;
	}
	if (nread == 0)
		return;
	c->len += (size_t)nread;
	st = http_parse_request(c->buf, c->len, &req);
	if (st == 1)
		return;
	if (st == 0)
		http_serve(c, &req);
	else
		http_answer_text(c, st, http_reason(st));
}

static void http_timeout(uv_timer_t *t)
{
	struct http_conn *c = t->data;

	if (!c->answered)
		http_answer_text(c, 408, "request timeout");
	else
		http_conn_close(c);
}

static void http_reject_closed(uv_handle_t *h)
{
	free(h->data);
}

static void http_accept(uv_stream_t *listener, int status)
{
	struct http_server *s = listener->data;
	struct http_conn *c;
	int rc;

	if (status != 0 || s->stopping)
		return;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return;
	c->srv = s;
	rc = s->is_unix ? uv_pipe_init(s->loop, &c->h.pipe, 0) : uv_tcp_init(s->loop, &c->h.tcp);
	if (rc != 0) {
		free(c);
		return;
	}
	c->h.handle.data = c;
	if (uv_accept(listener, &c->h.stream) != 0 || s->nconns >= s->cfg.max_connections) {
		/* Over the cap: closed unanswered (accepted, so the backlog drains). */
		uv_close(&c->h.handle, http_reject_closed);
		return;
	}
	uv_timer_init(s->loop, &c->timer);
	c->timer.data = c;
	c->next = s->conns;
	c->prevp = &s->conns;
	if (s->conns != NULL)
		s->conns->prevp = &c->next;
	s->conns = c;
	s->nconns++;
	if (uv_timer_start(&c->timer, http_timeout, s->cfg.timeout_ms, 0) != 0 ||
	    uv_read_start(&c->h.stream, http_alloc, http_read) != 0)
		http_conn_close(c);
}

/* ---- listening ------------------------------------------------------ */

/* A socket file nobody listens on is a dead listener's; anything else stays. */
static int http_clear_stale(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, rc;

	if (lstat(path, &st) != 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s exists and is not a socket", path);
		return -EEXIST;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	memcpy(un.sun_path, path, strlen(path) + 1);
	rc = connect(fd, (struct sockaddr *)&un, sizeof(un));
	close(fd);
	if (rc == 0) {
		snprintf(err, errlen, "%s: another process listens on it", path);
		return -EADDRINUSE;
	}
	if (errno != ECONNREFUSED)
		return -errno;
	return unlink(path) == 0 ? 0 : -errno;
}

static int http_bind(struct http_server *s, const struct sockaddr_storage *sa, char *err,
		     size_t errlen)
{
	int rc;

	if (sa->ss_family == AF_UNIX) {
		const char *path = ((const struct sockaddr_un *)sa)->sun_path;
		mode_t old;

		s->is_unix = true;
		rc = http_clear_stale(path, err, errlen);
		if (rc != 0)
			return rc;
		rc = uv_pipe_init(s->loop, &s->listener.pipe, 0);
		if (rc != 0)
			return rc;
		/* Created with no access at all, then given its mode. */
		old = umask(0777);
		rc = uv_pipe_bind(&s->listener.pipe, path);
		umask(old);
		if (rc == 0) {
			snprintf(s->path, sizeof(s->path), "%s", path);
			if (chmod(path, s->cfg.unix_mode) != 0)
				rc = -errno;
		}
		return rc;
	}
	rc = uv_tcp_init(s->loop, &s->listener.tcp);
	if (rc != 0)
		return rc;
	return uv_tcp_bind(&s->listener.tcp, (const struct sockaddr *)sa,
			   sa->ss_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0);
}

static void http_listener_closed(uv_handle_t *h)
{
	struct http_server *s = h->data;

	s->pending--;
	http_maybe_done(s);
}

int http_start(uv_loop_t *loop, const struct http_config *cfg, struct http_server **out,
	       char *err, size_t errlen)
{
	struct sockaddr_storage sa;
	struct http_server *s = NULL;
	int rc;

	*out = NULL;
	if (errlen > 0)
		err[0] = '\0';
	rc = http_parse_listen(cfg->listen, &sa);
	if (rc != 0) {
		snprintf(err, errlen,
			 "metrics-listen: %s is not IPV4:PORT, [IPV6]:PORT (numeric) or an absolute socket path",
			 cfg->listen != NULL ? cfg->listen : "(none)");
		return rc;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	s->loop = loop;
	s->cfg = *cfg;
	if (s->cfg.max_connections == 0)
		s->cfg.max_connections = 16;
	if (s->cfg.timeout_ms == 0)
		s->cfg.timeout_ms = 5000;
	if (s->cfg.unix_mode == 0)
		s->cfg.unix_mode = 0600;
	rc = http_bind(s, &sa, err, errlen);
	if (rc == 0)
		rc = uv_listen(&s->listener.stream, 64, http_accept);
	s->listener.handle.data = s;
	if (rc != 0) {
		if (err[0] == '\0')
			snprintf(err, errlen, "metrics-listen %s: %s", cfg->listen, uv_strerror(rc));
		if (uv_handle_get_type(&s->listener.handle) != UV_UNKNOWN_HANDLE) {
			/* Closed through the loop; freed when it has been. */
			s->stopping = true;
			s->pending = 1;
			if (s->path[0] != '\0')
				unlink(s->path);
			uv_close(&s->listener.handle, http_listener_closed);
		} else {
			free(s);
		}
		return rc;
	}
	*out = s;
	return 0;
}

void http_stop(struct http_server *s, void (*done)(void *arg), void *arg)
{
	struct http_conn *c, *next;

	if (s == NULL) {
		if (done != NULL)
			done(arg);
		return;
	}
	s->stopping = true;
	s->done = done;
	s->done_arg = arg;
	s->pending = 1;
	if (s->path[0] != '\0')
		unlink(s->path);
	uv_close(&s->listener.handle, http_listener_closed);
	for (c = s->conns; c != NULL; c = next) {
		next = c->next;
		http_conn_close(c);
	}
}

int http_port(const struct http_server *s)
{
	struct sockaddr_storage sa;
	int len = sizeof(sa);

	if (s->is_unix ||
	    uv_tcp_getsockname(&s->listener.tcp, (struct sockaddr *)&sa, &len) != 0)
		return 0;
	if (sa.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
	return ntohs(((struct sockaddr_in *)&sa)->sin_port);
}
