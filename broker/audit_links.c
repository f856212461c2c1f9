/* The audit log's link count, watched through inotify (audit_links.h). */
#include "audit_links.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/inotify.h>
#include <unistd.h>

/* Unlinking changes the link count (IN_ATTRIB); the others say as much. */
#define WATCHED (IN_ATTRIB | IN_MOVE_SELF | IN_DELETE_SELF)

void audit_links_init(struct audit_links *l)
{
	l->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	l->wd = -1;
	l->unsure = true;
	l->off = false;
}

void audit_links_watch(struct audit_links *l, int fd)
{
	char path[64];

	l->unsure = true; /* the file may have gone between its open and the watch */
	if (l->ino_fd < 0 || l->off)
		return;
	if (l->wd >= 0)
		(void)inotify_rm_watch(l->ino_fd, l->wd); /* EINVAL once the file is gone */
	l->wd = -1;
	/* Through the descriptor: the very file open, whatever its name is now. */
	if (snprintf(path, sizeof(path), "/proc/self/fd/%d", fd) >= (int)sizeof(path))
		return;
	l->wd = inotify_add_watch(l->ino_fd, path, WATCHED);
}

bool audit_links_unsure(const struct audit_links *l)
{
	return l->wd < 0 || l->unsure;
}

void audit_links_confirmed(struct audit_links *l)
{
	l->unsure = false;
}

int audit_links_fd(const struct audit_links *l)
{
	return l->ino_fd;
}

void audit_links_drain(struct audit_links *l)
{
	/* Whatever the events say, the next write looks for itself. */
	_Alignas(struct inotify_event) char buf[4096];
	ssize_t n;

	if (l->ino_fd < 0)
		return;
	do {
		n = read(l->ino_fd, buf, sizeof(buf));
		if (n > 0)
			l->unsure = true;
	} while (n > 0 || (n < 0 && errno == EINTR));
	/* Events lost to an overflow still leave IN_Q_OVERFLOW: read above. */
}

void audit_links_off(struct audit_links *l)
{
	if (l->ino_fd >= 0 && l->wd >= 0)
		(void)inotify_rm_watch(l->ino_fd, l->wd);
	l->wd = -1;
	l->off = true;
}

void audit_links_close(struct audit_links *l)
{
	if (l->ino_fd >= 0)
		close(l->ino_fd);
	l->ino_fd = -1;
	l->wd = -1;
}
