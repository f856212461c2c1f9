/* sd_notify and sd_listen_fds, written out: a few lines of protocol each. */
#include "notify.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

int notify_open(struct notify *n, char *err, size_t errlen)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	const char *e = getenv("NOTIFY_SOCKET");
	size_t len;
	socklen_t salen;
	int fd = -1, rc = -1;

	n->fd = -1;
	if (e == NULL)
		return 0;
	len = strlen(e);
	if (len < 2 || (e[0] != '/' && e[0] != '@') || len >= sizeof(un.sun_path)) {
		snprintf(err, errlen, "NOTIFY_SOCKET is neither an absolute path nor an @abstract name");
		rc = -EINVAL;
		goto out;
	}
	memcpy(un.sun_path, e, len);
	if (e[0] == '@')
		un.sun_path[0] = '\0'; /* abstract: the length says where it ends */
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (e[0] == '/' ? 1 : 0));
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&un, salen) != 0) {
		rc = -errno;
		snprintf(err, errlen, "NOTIFY_SOCKET %s: %s", e, strerror(errno));
		goto out;
	}
	n->fd = fd;
	fd = -1;
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	unsetenv("NOTIFY_SOCKET");
	return rc;
}

int notify_send(const struct notify *n, const char *state)
{
	ssize_t w;

	if (n->fd < 0)
		return 0;
	w = send(n->fd, state, strlen(state), MSG_NOSIGNAL);
	if (w < 0)
		return -errno;
	return (size_t)w == strlen(state) ? 0 : -EMSGSIZE;
}

void notify_close(struct notify *n)
{
	if (n->fd >= 0)
		close(n->fd);
	n->fd = -1;
}

/* Digits only, no sign, no overflow, at most MAX. */
static int notify_number(const char *s, unsigned long max, unsigned long *out)
{
	char *end;

	if (s == NULL || s[0] < '0' || s[0] > '9')
		return -EINVAL;
	errno = 0;
	*out = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || *out > max)
		return -EINVAL;
	return 0;
}

/* The I-th ':'-separated name in NAMES is NAME. */
static int notify_name_is(const char *names, unsigned long i, const char *name)
{
	const char *p = names;
	size_t nlen = strlen(name);

	for (; i > 0 && p != NULL; i--) {
		p = strchr(p, ':');
		if (p != NULL)
			p++;
	}
	if (p == NULL)
		return 0;
	return strncmp(p, name, nlen) == 0 && (p[nlen] == ':' || p[nlen] == '\0');
}

static int notify_check_listener(int fd, char *err, size_t errlen)
{
	int domain = 0, type = 0, acc = 0;
	socklen_t l1 = sizeof(domain), l2 = sizeof(type), l3 = sizeof(acc);
	struct stat st;

	if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "socket activation: fd %d is not a socket", fd);
		return -ENOTSOCK;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &l1) != 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l2) != 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &l3) != 0) {
		snprintf(err, errlen, "socket activation: fd %d: %s", fd, strerror(errno));
		return -errno;
	}
	if (domain != AF_UNIX || type != SOCK_STREAM || acc != 1) {
		snprintf(err, errlen,
			 "socket activation: fd %d is not a listening AF_UNIX stream socket "
			 "(ListenStream= with a path)", fd);
		return -EPROTOTYPE;
	}
	return fcntl(fd, F_SETFD, FD_CLOEXEC) == 0 ? 0 : -errno;
}

int notify_listen_fd(const char *name, int *fd, char *err, size_t errlen)
{
	const char *pid_s = getenv("LISTEN_PID"), *fds_s = getenv("LISTEN_FDS");
	const char *names = getenv("LISTEN_FDNAMES");
	unsigned long pid, nfds, pick = 0, matches = 0;
	int rc = -EINVAL;

	*fd = -1;
	if (pid_s == NULL) {
		rc = 0;
		goto out;
	}
	if (notify_number(pid_s, (unsigned long)INT32_MAX, &pid) != 0 ||
	    notify_number(fds_s, 1024, &nfds) != 0) {
		snprintf(err, errlen, "socket activation: LISTEN_PID or LISTEN_FDS is not a number");
		goto out;
	}
	if (pid != (unsigned long)getpid() || nfds == 0) {
		rc = 0; /* meant for another process (or nothing passed) */
		goto out;
	}
	if (nfds > 1) {
		for (unsigned long i = 0; names != NULL && i < nfds; i++) {
			if (notify_name_is(names, i, name)) {
				pick = i;
				matches++;
			}
		}
		if (matches != 1) {
			snprintf(err, errlen,
				 "socket activation: %lu sockets passed, and %lu of them named \"%s\" "
				 "(FileDescriptorName=)", nfds, matches, name);
			goto close_all;
		}
	}
	rc = notify_check_listener(NOTIFY_LISTEN_FDS_START + (int)pick, err, errlen);
	if (rc != 0)
		goto close_all;
	*fd = NOTIFY_LISTEN_FDS_START + (int)pick;
close_all:
	for (unsigned long i = 0; i < nfds; i++)
		if (NOTIFY_LISTEN_FDS_START + (int)i != *fd)
			close(NOTIFY_LISTEN_FDS_START + (int)i);
out:
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	return rc;
}
