/*
 * One broker a vault, one broker an audit log: an exclusive flock(2) on a
 * lock file beside the file it guards (PATH.lock), held as long as the
 * descriptor stays open.  The holder writes its pid into it, so that the
 * broker refused can say who holds it.  Nothing here prints.
 */
#ifndef SECRETD_LOCKFILE_H
#define SECRETD_LOCKFILE_H

#include <stddef.h>

/*
 * Lock PATH.lock (created 0600 if absent; never through a symbolic link)
 * without waiting.  Returns the descriptor that holds the lock, or -errno:
 * -EWOULDBLOCK when another process holds it.  err gets one line naming
 * what (e.g. "vault") and path, and the holder's pid when it is known.
 */
int lockfile_take(const char *path, const char *what, char *err, size_t errlen);

/* Release a lock taken by lockfile_take (fd < 0: nothing). */
void lockfile_release(int fd);

#endif
