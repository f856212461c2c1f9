/*
 * credential.c against real kernel objects, for t_systemd_pid1.
 *
 *   credential_probe serve SOCKET N
 *       listen on SOCKET (mode 0666) and take N connections one at a time:
 *       identify the peer (peer_identify), classify it (credential_detect)
 *       and print one line "detect=R unit=U id=I trusted=yes|no pid=P";
 *       a trusted request is answered with "value-of-<ID>", anything else
 *       is closed with nothing written.
 *   credential_probe client SOCKET UNIT ID
 *       bind to "@<hex>/unit/UNIT/ID", connect, read until EOF and print
 *       "got=<bytes read>".
 *
 * Bounded: every socket has a 10 s timeout.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "credential.h"
#include "peer.h"

static int set_timeout(int fd)
{
	struct timeval tv = { .tv_sec = 10 };

	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0)
		return -1;
	return 0;
}

/* Like systemd's random part of the address: unpredictable, not rand(). */
static unsigned probe_nonce(void)
{
	unsigned n = 0;

	if (getrandom(&n, sizeof(n), 0) != (ssize_t)sizeof(n))
		n = (unsigned)getpid();
	return n;
}

static int path_addr(const char *path, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path))
		return -1;
	memcpy(sa->sun_path, path, strlen(path) + 1);
	return 0;
}

static int serve_one(int c)
{
	struct identity id;
	struct credential_req req;
	char value[CREDENTIAL_ID_MAX + 16];
	int r, rc = -1;

	if (peer_identify(c, &id) != 0)
		return -1;
	r = credential_detect(c, &id, &req);
	printf("detect=%d unit=%s id=%s trusted=%s pid=%d why=%s\n", r, req.unit, req.id,
	       r == 1 && req.refusal == NULL ? "yes" : "no", (int)id.pid,
	       req.refusal != NULL ? req.refusal : (id.problem[0] ? id.problem : "-"));
	fflush(stdout);
	if (r == 1 && req.refusal == NULL) {
		int n = snprintf(value, sizeof(value), "value-of-%s", req.id);

		if (write(c, value, (size_t)n) != n)
			goto out;
	}
	rc = 0;
out:
	identity_clear(&id);
	return rc;
}

static int serve(const char *path, long n)
{
	struct sockaddr_un sa;
	int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (l < 0 || path_addr(path, &sa) != 0)
		return 1;
	unlink(path);
	if (bind(l, (struct sockaddr *)&sa, sizeof(sa)) != 0 || chmod(path, 0666) != 0 ||
	    listen(l, 8) != 0 || set_timeout(l) != 0)
		return 1;
	for (long i = 0; i < n; i++) {
		int c = accept(l, NULL, NULL);

		if (c < 0)
			return 1;
		if (serve_one(c) != 0) {
			close(c);
			return 1;
		}
		close(c);
	}
	close(l);
	return 0;
}

static int client(const char *path, const char *unit, const char *cid)
{
	struct sockaddr_un sa, b;
	char buf[512];
	long got = 0;
	int n, c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (c < 0 || path_addr(path, &sa) != 0 || set_timeout(c) != 0)
		return 1;
	memset(&b, 0, sizeof(b));
	b.sun_family = AF_UNIX;
	n = snprintf(b.sun_path + 1, sizeof(b.sun_path) - 1, "%lx%x/unit/%s/%s",
		     (unsigned long)getpid(), probe_nonce(), unit, cid);
	if (n <= 0 || (size_t)n >= sizeof(b.sun_path) - 1)
		return 1;
	if (bind(c, (struct sockaddr *)&b,
		 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n)) != 0 ||
	    connect(c, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		perror("credential_probe client");
		return 1;
	}
	for (;;) {
		ssize_t r = read(c, buf, sizeof(buf));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return 1;
		if (r == 0)
			break;
		got += r;
	}
	printf("got=%ld\n", got);
	close(c);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "serve") == 0) {
		char *end = NULL;
		long n;

		errno = 0;
		n = strtol(argv[3], &end, 10);
		if (errno != 0 || end == argv[3] || *end != '\0' || n < 1 || n > 100)
			return 2;
		return serve(argv[2], n);
	}
	if (argc == 5 && strcmp(argv[1], "client") == 0)
		return client(argv[2], argv[3], argv[4]);
	fprintf(stderr, "usage: credential_probe serve SOCKET N | client SOCKET UNIT ID\n");
	return 2;
}
