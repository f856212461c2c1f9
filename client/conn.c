/* The client side of the wire protocol: connect, one request, one answer. */
#include "conn.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <sodium.h>

#include <secretd/exitcodes.h>

#include "secretctl.h"

/* read_exact's answer when the broker closed the stream first. */
#define READ_EOF 1

int conn_open(struct conn *c)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	/* A stalled broker must not hang an init container forever. */
	struct timeval tv = { .tv_sec = CONN_TIMEOUT_SECONDS };
	size_t len = strlen(ctl_socket);
	int rc = EXIT_UNREACHABLE;
	int err;

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	if (len >= sizeof(addr.sun_path)) {
		err = ENAMETOOLONG;
		goto out;
	}
	memcpy(addr.sun_path, ctl_socket, len);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		err = errno;
		goto out;
	}
	/* SO_SNDTIMEO also bounds connect() on a broker whose backlog is full. */
	if (setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
	    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0) {
		err = errno;
		goto out;
	}
	if (connect(c->fd, (const struct sockaddr *)&addr, sizeof(addr)) != 0) {
		err = errno == EAGAIN ? ETIMEDOUT : errno;
		goto out;
	}
	rc = EXIT_OK;
out:
	if (rc != EXIT_OK) {
		ctl_err("broker unreachable: %s: %s", ctl_socket, strerror(err));
		conn_close(c);
	}
	return rc;
}

void conn_release(struct conn *c)
{
	/* sodium_free wipes the whole region before it unmaps it. */
	sodium_free(c->body);
	c->body = NULL;
	c->body_len = 0;
	memset(&c->resp, 0, sizeof(c->resp));
}

void conn_close(struct conn *c)
{
	conn_release(c);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

/* Say why the stream to the broker failed; err is errno or READ_EOF. */
static int stream_failure(const char *context, int err, const char *doing)
{
	if (err == READ_EOF || err == EPIPE || err == ECONNRESET)
		ctl_err("%s: broker closed the connection", context);
	else if (err == EAGAIN || err == EWOULDBLOCK)
		ctl_err("%s: broker did not answer within %d seconds", context,
			CONN_TIMEOUT_SECONDS);
	else
		ctl_err("%s: %s the broker: %s", context, doing, strerror(err));
	return EXIT_UNREACHABLE;
}

static int send_all(int fd, const uint8_t *buf, size_t len)
{
	while (len > 0) {
		/* MSG_NOSIGNAL: a broker gone away is an error here, not SIGPIPE. */
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* 0, READ_EOF when the stream ends first, or an errno. */
static int read_exact(int fd, uint8_t *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = recv(fd, buf, len, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno;
		}
		if (n == 0)
			return READ_EOF;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int send_request(struct conn *c, const struct wire_request *req, const char *context)
{
	size_t size = wire_request_size(req);
	/* A put's frame holds the value: locked, guarded memory, wiped by sodium_free. */
	uint8_t *frame = sodium_malloc(size);
	int rc = EXIT_ERROR;
	long n;
	int err;

	if (frame == NULL) {
		ctl_err("%s: out of memory", context);
		goto out;
	}
	n = wire_encode_request(req, frame, size);
	if (n < 0) {
		ctl_err("%s: cannot encode the request: %s", context, wire_strerror((int)n));
		goto out;
	}
	err = send_all(c->fd, frame, (size_t)n);
	/*
	 * A broker that refuses a connection (too many from this identity)
	 * answers first and closes: read that answer rather than report EPIPE.
	 */
	if (err == EPIPE || err == ECONNRESET)
		err = 0;
	if (err != 0) {
		rc = stream_failure(context, err, "writing to");
		goto out;
	}
	rc = EXIT_OK;
out:
	sodium_free(frame);
	return rc;
}

static int read_answer(struct conn *c, const char *context)
{
	uint8_t header[WIRE_HEADER_SIZE];
	uint32_t len = 0;
	int rc = EXIT_ERROR;
	int err;

	err = read_exact(c->fd, header, sizeof(header));
	if (err != 0) {
		rc = stream_failure(context, err, "reading from");
		goto out;
	}
	err = wire_frame_length(header, WIRE_MAX_RESPONSE, &len);
	if (err < 0) {
		ctl_err("%s: malformed answer from the broker: %s", context, wire_strerror(err));
		goto out;
	}
	c->body = sodium_malloc(len);
	if (c->body == NULL) {
		ctl_err("%s: out of memory", context);
		goto out;
	}
	c->body_len = len;
	err = read_exact(c->fd, c->body, len);
	if (err != 0) {
		rc = stream_failure(context, err, "reading from");
		goto out;
	}
	err = wire_decode_response(c->body, len, &c->resp);
	if (err < 0) {
		ctl_err("%s: malformed answer from the broker: %s", context, wire_strerror(err));
		goto out;
	}
	rc = EXIT_OK;
out:
	return rc;
}

/* The words for a status the broker sent no message with. */
static const char *status_text(uint8_t status)
{
	switch (status) {
	case WIRE_INVALID: return "invalid request";
	case WIRE_NOT_FOUND: return "not found";
	case WIRE_DENIED: return "permission denied";
	case WIRE_UNAVAILABLE: return "vault sealed or audit log cannot be written";
	case WIRE_RATE_LIMITED: return "rate limited";
	default: return "broker error";
	}
}

static int report_status(const struct wire_response *resp, const char *context)
{
	const char *text = (const char *)resp->value.ptr;
	int len = (int)(resp->value.len < WIRE_MAX_MESSAGE ? resp->value.len : WIRE_MAX_MESSAGE);

	if (len == 0) {
		text = status_text(resp->status);
		len = (int)strlen(text);
	}
	/* The broker's own words where it sent some; they never carry a value. */
	if (resp->status == WIRE_UNAVAILABLE)
		ctl_err("broker unavailable: %.*s", len, text);
	else
		ctl_err("%s: %.*s", context, len, text);
	/* Whatever the mapping says, a refusal is never success. */
	return exit_for_status(resp->status) != EXIT_OK ? exit_for_status(resp->status)
							 : EXIT_ERROR;
}

int conn_recv(struct conn *c, const char *context)
{
	conn_release(c);
	return read_answer(c, context);
}

int conn_request(struct conn *c, const struct wire_request *req, const char *context)
{
	int rc;

	conn_release(c);
	rc = send_request(c, req, context);
	if (rc == EXIT_OK)
		rc = read_answer(c, context);
	if (rc != EXIT_OK)
		goto out;
	if (c->resp.status != WIRE_OK) {
		rc = report_status(&c->resp, context);
		goto out;
	}
	if (c->resp.type != req->type) {
		ctl_err("%s: the broker answered a different request", context);
		rc = EXIT_ERROR;
		goto out;
	}
	rc = EXIT_OK;
out:
	return rc;
}
