/*
 * Whether the audit log still has a name.  Records written into a file
 * that was removed are lost, so before a write the log must know the file
 * is still linked.  An fstat before every write costs a system call on
 * the path of every answer; instead the kernel says through inotify when
 * the file's link count (or any attribute) changed, and only then is the
 * next write preceded by an fstat.  Without inotify (no instance left, or
 * no /proc) every write is preceded by one, as before.
 */
#ifndef SECRETD_AUDIT_LINKS_H
#define SECRETD_AUDIT_LINKS_H

#include <stdbool.h>

struct audit_links {
	int ino_fd; /* the inotify instance; -1: none, fstat before each write */
	int wd;     /* its watch on the open file; -1: none */
	bool unsure;
	bool off;   /* nobody reads ino_fd: no watch is added any more */
};

void audit_links_init(struct audit_links *l);
/* Watch the file open at fd (after each open of the log). */
void audit_links_watch(struct audit_links *l, int fd);
/* Must the next write check the link count with fstat? */
bool audit_links_unsure(const struct audit_links *l);
/* That fstat found the file linked. */
void audit_links_confirmed(struct audit_links *l);
/* The descriptor to poll for readability; -1 when there is none. */
int audit_links_fd(const struct audit_links *l);
/* It was readable: read what the kernel said. */
void audit_links_drain(struct audit_links *l);
/*
 * Nobody will read the descriptor: every write checks from now on.  The
 * descriptor itself stays open until audit_links_close, so that its number
 * cannot be reused under a poll handle still registered for it.
 */
void audit_links_off(struct audit_links *l);
void audit_links_close(struct audit_links *l);

#endif
