/*
 * secretd-null: the floor a broker is measured against (README "Performance").
 *
 *   secretd-null -s SOCKET
 *
 * Listens on a Unix socket and answers every request frame with one fixed,
 * valid GET answer (status OK, version 1, a 32-byte value: the size class of
 * the benchmark's secret), and does nothing else: no identity, policy,
 * vault, decryption or audit.  One thread, level-triggered epoll,
 * non-blocking sockets; per request one read and one write, as the least a
 * server of this protocol can do.  Point secretd-bench at it to get the rate
 * and CPU per request of the socket round trip alone.  It runs until killed;
 * the socket file is the caller's to remove.
 *
 *   secretd-null -s SOCKET --floor LOG
 *
 * adds the contract's floor (floor.h): each answer's value opened from its
 * sealed form, a MAC-chained record for each request, and the records of a
 * turn of the loop written to LOG in one write(2) before any of the turn's
 * answers is sent.  What a broker keeping the contract cannot avoid, so the
 * best ratio against the null server that any such broker can reach here.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "floor.h"
#include "secretd/wire.h"

#define VALUE_LEN 32u
/* Input per connection: the benchmark's frames are a few dozen bytes. */
#define IN_CAP 4096u
/* Answers queued per connection before the client must read some. */
#define OUT_CAP 65536u
#define MAX_EVENTS 256

struct nconn {
	int fd;
	bool want_out; /* EPOLLOUT registered: answers are waiting for room */
	bool dirty;    /* --floor: answers wait for this turn's records */
	struct nconn *next_dirty;
	size_t in_len, out_len;
	uint8_t in[IN_CAP];
	uint8_t out[OUT_CAP];
};

static uint8_t answer[WIRE_HEADER_SIZE + 64];
static size_t answer_len;
static bool floor_on;
static struct nconn *dirty; /* --floor: connections with answers held */

static int encode_answer(void)
{
	static const uint8_t value[VALUE_LEN] = "0123456789abcdef0123456789abcdef";
	struct wire_response resp = {
		.type = WIRE_GET, .status = WIRE_OK, .version = 1,
		.value = { value, sizeof(value) },
	};
	long n = wire_encode_response(&resp, answer, sizeof(answer));

	if (n < 0)
		return -1;
	answer_len = (size_t)n;
	return 0;
}

static void nconn_close(struct nconn *c)
{
	close(c->fd); /* also takes it out of epoll */
	free(c);
}

/* Write what is queued: 0 all out or waiting for room, -1 on an error. */
static int nconn_flush(int epfd, struct nconn *c)
{
	size_t off = 0;
	bool want;
	struct epoll_event ev = { .data.ptr = c };

	while (off < c->out_len) {
		ssize_t n = send(c->fd, c->out + off, c->out_len - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0)
			return -1;
		off += (size_t)n;
	}
	memmove(c->out, c->out + off, c->out_len - off);
	c->out_len -= off;
	want = c->out_len > 0;
	if (want == c->want_out)
		return 0;
	/* Stop reading while the client does not read its answers. */
	ev.events = want ? EPOLLOUT : EPOLLIN;
	c->want_out = want;
	return epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Queue an answer per whole frame received: how many, or -1 (close it). */
static int nconn_parse(struct nconn *c)
{
	size_t off = 0;
	uint32_t len;
	int queued = 0;

	while (c->in_len - off >= WIRE_HEADER_SIZE) {
		if (wire_frame_length(c->in + off, IN_CAP - WIRE_HEADER_SIZE, &len) != 0)
			return -1; /* empty or larger than any frame it expects */
		if (c->in_len - off < WIRE_HEADER_SIZE + (size_t)len)
			break;
		if (floor_on) {
			size_t n = floor_answer(c->out + c->out_len, OUT_CAP - c->out_len);

			if (n == 0)
				break; /* the rest waits for room, or for the next turn */
			c->out_len += n;
		} else {
			if (c->out_len + answer_len > OUT_CAP)
				break; /* the rest waits until the client reads */
			memcpy(c->out + c->out_len, answer, answer_len);
			c->out_len += answer_len;
		}
		off += WIRE_HEADER_SIZE + (size_t)len;
		queued++;
	}
	memmove(c->in, c->in + off, c->in_len - off);
	c->in_len -= off;
	return queued;
}

/* --floor: queue c's answers, to be sent once the turn's records are written. */
static int nconn_hold(struct nconn *c)
{
	if (nconn_parse(c) < 0)
		return -1;
	if (c->out_len > 0 && !c->dirty) {
		c->dirty = true;
		c->next_dirty = dirty;
		dirty = c;
	}
	return 0;
}

/*
 * --floor, after each turn: the records go out, then the answers; frames
 * that were waiting for room are answered in another round.  When the
 * records cannot be written no answer is sent: those connections close.
 */
static void floor_turn(int epfd)
{
	while (dirty != NULL) {
		struct nconn *list = dirty, *c;
		bool written = floor_write() == 0;

		dirty = NULL;
		while ((c = list) != NULL) {
			list = c->next_dirty;
			c->dirty = false;
			if (!written || nconn_flush(epfd, c) != 0 ||
			    (!c->want_out && nconn_hold(c) != 0))
				nconn_close(c);
		}
	}
}

/*
 * Readiness on c: read once (unless answers are waiting for room), then
 * answer every whole frame.  A frame fits in IN_CAP, so when the loop ends
 * with nothing queued the buffer has room for the next read.  0, or -1 to
 * close the connection.
 */
static int nconn_serve(int epfd, struct nconn *c, uint32_t events)
{
	int queued;

	if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !c->want_out) {
		ssize_t n = read(c->fd, c->in + c->in_len, IN_CAP - c->in_len);

		if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN &&
			       errno != EWOULDBLOCK))
			return -1;
		if (n > 0)
			c->in_len += (size_t)n;
	}
	if (floor_on)
		return nconn_hold(c);
	do {
		queued = nconn_parse(c);
		if (queued < 0 || nconn_flush(epfd, c) != 0)
			return -1;
	} while (queued > 0 && !c->want_out);
	return 0;
}

static void on_accept(int epfd, int lfd)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct nconn *c;
		struct epoll_event ev = { .events = EPOLLIN };

		if (fd < 0)
			return; /* EAGAIN: all taken; anything else: try next time */
		c = malloc(sizeof(*c));
		if (c == NULL) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->want_out = c->dirty = false;
		c->next_dirty = NULL;
		c->in_len = c->out_len = 0;
		ev.data.ptr = c;
		if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
			nconn_close(c);
	}
}

static int listen_on(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(addr.sun_path)) {
		fprintf(stderr, "secretd-null: socket path too long\n");
		return -1;
	}
	memcpy(addr.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (const struct sockaddr *)&addr, sizeof(addr)) != 0 ||
	    listen(fd, SOMAXCONN) != 0) {
		fprintf(stderr, "secretd-null: %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static int serve(int lfd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	struct epoll_event evs[MAX_EVENTS];
	int epfd = epoll_create1(EPOLL_CLOEXEC);

	if (epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev) != 0) {
		fprintf(stderr, "secretd-null: epoll: %s\n", strerror(errno));
		return -1;
	}
	for (;;) {
		int n = epoll_wait(epfd, evs, MAX_EVENTS, -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "secretd-null: epoll_wait: %s\n", strerror(errno));
			return -1;
		}
		for (int i = 0; i < n; i++) {
			struct nconn *c = evs[i].data.ptr;

			if (c == NULL) {
				on_accept(epfd, lfd);
				continue;
			}
			/* never on the dirty list here: each turn ends with it empty */
			if (nconn_serve(epfd, c, evs[i].events) != 0)
				nconn_close(c);
		}
		floor_turn(epfd);
	}
}

int main(int argc, char **argv)
{
	int lfd;

	if ((argc != 3 && argc != 5) || strcmp(argv[1], "-s") != 0 ||
	    (argc == 5 && strcmp(argv[3], "--floor") != 0)) {
		fprintf(stderr, "usage: secretd-null -s SOCKET [--floor LOG]\n");
		return 2;
	}
	if (argc == 5) {
		if (floor_open(argv[4]) != 0) {
			fprintf(stderr, "secretd-null: cannot set up the floor\n");
			return 1;
		}
		floor_on = true;
	}
	if (encode_answer() != 0) {
		fprintf(stderr, "secretd-null: cannot encode the answer\n");
		return 1;
	}
	lfd = listen_on(argv[2]);
	if (lfd < 0)
		return 1;
	serve(lfd);
	close(lfd);
	return 1;
}
