/* Creating the listening socket, and accepting on it. */
#include "listen.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <uv.h>

#include <secretd/wire.h>

#include "conn.h"
#include "log.h"
#include "metrics.h"
#include "peer.h"
#include "services.h"

#define LISTEN_BACKLOG 1024
#define LISTEN_ACCEPTS_PER_TURN 32

#define AWAY_MESSAGE "too many connections from this uid"

struct listener {
	uv_poll_t poll; /* first */
	struct services *svc;
	int fd;
	bool stalled;   /* accept failed for want of resources: the tick retries */
	uint8_t away[64]; /* the answer to a uid over its connection rate */
	size_t away_len;
};

/* ---- creating ------------------------------------------------------------- */

static int fill_sockaddr(const char *path, struct sockaddr_un *sa, char *err, size_t errlen)
{
	size_t len = strlen(path);

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (len == 0 || len >= sizeof(sa->sun_path)) {
		snprintf(err, errlen, "socket path %s: too long for a Unix socket", path);
		return -1;
	}
	memcpy(sa->sun_path, path, len);
	return 0;
}

/* A socket file nobody listens on is a dead broker's; anything else stays. */
static int clear_stale_socket(const char *path, const struct sockaddr_un *sa,
			      char *err, size_t errlen)
{
	struct stat st;
	int probe, rc;

	if (lstat(path, &st) != 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "socket path %s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "socket path %s exists and is not a socket", path);
		return -1;
	}
	probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	rc = connect(probe, (const struct sockaddr *)sa, sizeof(*sa));
	close(probe);
	if (rc == 0) {
		snprintf(err, errlen, "another secretd is listening on %s", path);
		return -1;
	}
	if (unlink(path) != 0) {
		snprintf(err, errlen, "removing stale socket %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

int listen_create(const char *path, mode_t mode, int *out, char *err, size_t errlen)
{
	struct sockaddr_un sa;
	mode_t old_umask;
	int fd, rc;

	if (fill_sockaddr(path, &sa, err, errlen) != 0 ||
	    clear_stale_socket(path, &sa, err, errlen) != 0)
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	/* Born private, then opened to the configured mode. */
	old_umask = umask(0177);
	rc = bind(fd, (const struct sockaddr *)&sa, sizeof(sa));
	umask(old_umask);
	if (rc != 0 || chmod(path, mode) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
		snprintf(err, errlen, "socket %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	*out = fd;
	return 0;
}

/* ---- accepting -------------------------------------------------------------- */

/*
 * Turned away on its uid alone: one fixed answer if the socket takes it at
 * once, then closed.  Counted in the broker's refusals record (a flood of
 * these must not become a flood of records, nor of /proc reads).
 */
static void turn_away(struct listener *l, int fd)
{
	/* Best effort: a peer that does not read just sees the close. */
	(void)!send(fd, l->away, l->away_len, MSG_DONTWAIT | MSG_NOSIGNAL);
	close(fd);
	l->svc->refusals.unrecorded++;
	metrics_conn_refused(l->svc->metrics, METRICS_REFUSED_OTHER);
}

static int encode_away(struct listener *l)
{
	struct wire_response resp = {
		.type = WIRE_PING, .status = WIRE_RATE_LIMITED,
		.value = { (const uint8_t *)AWAY_MESSAGE, sizeof(AWAY_MESSAGE) - 1 },
	};
	long n = wire_encode_response(&resp, l->away, sizeof(l->away));

	if (n < 0)
		return UV_EINVAL;
	l->away_len = (size_t)n;
	return 0;
}

/*
 * One accepted socket: its uid's rate, then its identity, then a
 * connection.  sa/salen: the peer's address from accept4.
 */
static void admit(struct listener *l, int fd, const struct sockaddr_un *sa, socklen_t salen)
{
	struct services *svc = l->svc;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct identity id = { 0 };
	int rc;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof(cred)) {
		close(fd);
		return;
	}
	if (!limits_connect(svc->limits, cred.uid, uv_now(svc->loop))) {
		turn_away(l, fd);
		return;
	}
	if (peer_identify_cred(fd, &cred, &id) != 0) {
		identity_clear(&id);
		close(fd);
		metrics_conn_refused(svc->metrics, METRICS_REFUSED_IDENTITY);
		return;
	}
	rc = conn_start(svc, fd, &id, sa, salen);
	if (rc != 0)
		log_warn("cannot serve a connection from uid %u: %s", (unsigned)cred.uid,
			 uv_strerror(rc));
}

static void on_poll(uv_poll_t *h, int status, int events)
{
	struct listener *l = (struct listener *)h;

	(void)events;
	if (status < 0) {
		log_warn("listening socket: %s", uv_strerror(status));
		return;
	}
	/* The rest wait for the next turn: the poll is level-triggered. */
	for (int i = 0; i < LISTEN_ACCEPTS_PER_TURN && !l->svc->stopping; i++) {
		struct sockaddr_un sa;
		socklen_t salen = sizeof(sa);
		int fd;

		/* The peer's address comes with the socket: no getpeername later. */
		memset(&sa, 0, sizeof(sa));
		fd = accept4(l->fd, (struct sockaddr *)&sa, &salen, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd >= 0) {
			admit(l, fd, &sa, salen);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
			/* Polling on would spin: wait for the tick. */
			log_warn("accept: %s: retrying in a second", strerror(errno));
			(void)uv_poll_stop(&l->poll);
			l->stalled = true;
		}
		break;
	}
}

int listener_start(struct services *svc, int fd, struct listener **out)
{
	struct listener *l = calloc(1, sizeof(*l));
	int rc;

	if (l == NULL)
		return UV_ENOMEM;
	l->svc = svc;
	l->fd = fd;
	if ((rc = encode_away(l)) != 0 || (rc = uv_poll_init(svc->loop, &l->poll, fd)) != 0) {
		free(l);
		return rc;
	}
	*out = l;
	rc = uv_poll_start(&l->poll, UV_READABLE, on_poll);
	if (rc != 0)
		listener_close(l);
	return rc;
}

void listener_retry(struct listener *l)
{
	if (l == NULL || !l->stalled || uv_is_closing((uv_handle_t *)&l->poll))
		return;
	if (uv_poll_start(&l->poll, UV_READABLE, on_poll) == 0)
		l->stalled = false;
}

static void on_listener_closed(uv_handle_t *h)
{
	struct listener *l = (struct listener *)h;

	close(l->fd);
	free(l);
}

void listener_close(struct listener *l)
{
	if (l != NULL && !uv_is_closing((uv_handle_t *)&l->poll))
		uv_close((uv_handle_t *)&l->poll, on_listener_closed);
}
