/*
 * systemd integration without libsystemd: the sd_notify datagram protocol
 * (READY=1, STOPPING=1, STATUS=...) and socket activation (LISTEN_PID,
 * LISTEN_FDS, LISTEN_FDNAMES).  Both read the environment once and remove
 * what they used from it, so nothing the broker might start inherits them.
 *
 * No libuv: a notification is one non-blocking sendmsg() on a socket
 * connected at start (before privileges are dropped and the file system is
 * narrowed), and the listening socket is a plain fd for uv_pipe_open().
 * Functions return 0 or a negative errno; messages go to ERR, never to a log.
 */
#ifndef SECRETD_NOTIFY_H
#define SECRETD_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>

struct notify {
	int fd; /* -1: not started by a service manager that listens */
};

/*
 * Read $NOTIFY_SOCKET (an absolute path, or "@name" for an abstract
 * socket), connect a datagram socket to it and unset the variable.  Without
 * the variable, N->fd = -1 and 0 is returned: every notify_send is then a
 * no-op.  -EINVAL for a value that is neither, -errno when it cannot connect.
 */
int notify_open(struct notify *n, char *err, size_t errlen);

/* Send one notification ("READY=1", "STOPPING=1", "STATUS=..."); 0 or -errno. */
int notify_send(const struct notify *n, const char *state);

void notify_close(struct notify *n);

/*
 * Socket activation: when LISTEN_PID is this process, take the listening
 * socket systemd passed: the only one, or the one LISTEN_FDNAMES names NAME
 * when there are several.  It must be a listening AF_UNIX stream socket
 * (checked); it is made close-on-exec.  *FD = -1 and 0 when nothing was
 * passed to this process.  The LISTEN_* variables are unset in every case.
 * Descriptors passed but not taken are closed.
 */
int notify_listen_fd(const char *name, int *fd, char *err, size_t errlen);

/* The first fd systemd passes (SD_LISTEN_FDS_START). */
#define NOTIFY_LISTEN_FDS_START 3

#endif
