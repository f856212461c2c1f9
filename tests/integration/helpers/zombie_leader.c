/*
 * zombie_leader LISTEN UPSTREAM: a process whose main thread has exited
 * (pthread_exit) while a second thread lives on and talks to the broker.
 *
 * On cgroup v1 and hybrid hosts the kernel shows "/" on every v1 line of
 * /proc/PID/cgroup once the thread-group leader is exiting, so such a
 * process used to be identified in the root cgroup, with no container.
 *
 * The second thread waits until the leader is a zombie, then listens on
 * the Unix socket LISTEN and relays each connection made to it to the
 * broker's socket UPSTREAM: the broker's peer is this process, whatever
 * client (secretctl) the test runs against LISTEN.  It serves connections
 * one after the other until it is killed.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static const char *listen_path, *upstream_path;

/* The state letter of this process's leader, from /proc/self/stat. */
static char leader_state(void)
{
	char buf[1024];
	ssize_t n;
	char *p;
	int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return '?';
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return '?';
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return p != NULL && p[1] == ' ' ? p[2] : '?';
}

static int unix_socket(const char *path, bool listening)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || strlen(path) >= sizeof(sa.sun_path))
		return -1;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (listening) {
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 8) != 0)
			goto fail;
	} else if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return -1;
}

static bool write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

/* Copy both ways until the broker closes (or either side fails). */
static void relay(int client, int upstream)
{
	struct pollfd p[2] = { { .fd = client, .events = POLLIN },
			       { .fd = upstream, .events = POLLIN } };
	char buf[65536];

	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		for (int i = 0; i < 2; i++) {
			ssize_t n;

			if (p[i].revents == 0)
				continue;
			n = read(p[i].fd, buf, sizeof(buf));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0 && i == 1)
				return;
			if (n <= 0) {
				/* The client is done sending: pass that on, read answers. */
				shutdown(upstream, SHUT_WR);
				p[0].fd = -1;
				continue;
			}
			if (!write_all(p[1 - i].fd, buf, (size_t)n))
				return;
		}
	}
}

static void *second_thread(void *arg)
{
	struct timespec tick = { 0, 10 * 1000 * 1000 };
	int lfd;

	(void)arg;
	for (int i = 0; i < 500 && leader_state() != 'Z'; i++)
		nanosleep(&tick, NULL);
	if (leader_state() != 'Z') {
		fprintf(stderr, "zombie_leader: the main thread did not become a zombie\n");
		exit(1);
	}
	lfd = unix_socket(listen_path, true);
	if (lfd < 0) {
		perror("zombie_leader: listen");
		exit(1);
	}
	for (;;) {
		int client = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		int upstream;

		if (client < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			perror("zombie_leader: accept");
			exit(1);
		}
		/* connect() from this thread: the leader is a zombie by now. */
		upstream = unix_socket(upstream_path, false);
		if (upstream >= 0) {
			relay(client, upstream);
			close(upstream);
		}
		close(client);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t t;

	if (argc != 3) {
		fprintf(stderr, "usage: zombie_leader LISTEN UPSTREAM\n");
		return 2;
	}
	listen_path = argv[1];
	upstream_path = argv[2];
	if (pthread_create(&t, NULL, second_thread, NULL) != 0) {
		fprintf(stderr, "zombie_leader: pthread_create failed\n");
		return 1;
	}
	pthread_exit(NULL);
}
