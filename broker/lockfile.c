/*
 * Lock files beside the vault and the audit log.
 *
 * Why a file of its own, and flock(2) rather than a lock on the vault
 * itself: SQLite locks the vault with POSIX (fcntl) locks, which belong to
 * the process and are all dropped when ANY descriptor of that file is
 * closed, so a descriptor of ours on vault.db would have to outlive every
 * SQLite connection, in every error path, or silently unlock the writer.
 * And where flock is emulated with fcntl locks (NFS), a whole-file lock of
 * ours would merge with SQLite's own byte-range locks.  A separate file
 * avoids both; its lock is independent of SQLite's, follows no rename (the
 * audit log is renamed by logrotate and reopened on SIGHUP; its lock file
 * stays), and is released by the kernel when the holder dies, so a crash
 * leaves no stale lock: a leftover PATH.lock file is harmless.  The lock
 * goes by path (symbolic links resolved), not by inode: two hard links to
 * one vault in two folders would get two locks.
 */
#include "lockfile.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOCK_SUFFIX ".lock"

/* The pid the holder wrote, 0 when there is none to read. */
static long holder_pid(int fd)
{
	char buf[24];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	long pid = 0;

	if (n <= 0)
		return 0;
	buf[n] = '\0';
	for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; i++) {
		pid = pid * 10 + (buf[i] - '0');
		if (pid > 0x7fffffff)
			return 0;
	}
	return pid;
}

/*
 * Leave our pid in the file for the message of a broker refused.  Only that
 * message reads it, so a failure here (a full disk) costs nothing else.
 */
static void write_pid(int fd)
{
	char buf[24];
	int n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());

	if (n > 0 && ftruncate(fd, 0) == 0 && pwrite(fd, buf, (size_t)n, 0) == n)
		return;
}

/*
 * PATH.lock, PATH resolved first: the same file named through a symbolic
 * link, a relative path or "..", gets the same lock.  A file not there yet
 * (a new audit log) is named by its resolved folder.
 */
static int lock_name(const char *path, char *out, size_t cap)
{
	char *real = realpath(path, NULL), *copy = NULL, *dir;
	const char *slash = strrchr(path, '/');
	int n = -1;

	if (real == NULL && errno == ENOENT && (copy = strdup(path)) != NULL &&
	    (dir = realpath(dirname(copy), NULL)) != NULL) {
		n = snprintf(out, cap, "%s/%s" LOCK_SUFFIX, dir, slash != NULL ? slash + 1 : path);
		free(dir);
	} else if (real != NULL) {
		n = snprintf(out, cap, "%s" LOCK_SUFFIX, real);
	}
	free(copy);
	free(real);
	return n > 0 && (size_t)n < cap ? 0 : -1;
}

int lockfile_take(const char *path, const char *what, char *err, size_t errlen)
{
	char lock[4096];
	struct stat st;
	int fd, rc;
	long pid;

	errno = 0;
	if (lock_name(path, lock, sizeof(lock)) != 0) {
		rc = errno != 0 ? -errno : -ENAMETOOLONG;
		snprintf(err, errlen, "%s %s: cannot name its lock file: %s", what, path,
			 strerror(-rc));
		return rc;
	}
	fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s %s: cannot open its lock file %s: %s", what, path, lock,
			 strerror(-rc));
		return rc;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s %s: its lock file %s is not a regular file", what, path,
			 lock);
		close(fd);
		return -EINVAL;
	}
	while ((rc = flock(fd, LOCK_EX | LOCK_NB)) != 0 && errno == EINTR)
		;
	if (rc != 0) {
		rc = -errno;
		if (rc == -EWOULDBLOCK && (pid = holder_pid(fd)) > 0)
			snprintf(err, errlen, "%s %s is in use by another secretd (pid %ld holds %s)",
				 what, path, pid, lock);
		else if (rc == -EWOULDBLOCK)
			snprintf(err, errlen, "%s %s is in use by another secretd (%s is locked)",
				 what, path, lock);
		else
			snprintf(err, errlen, "%s %s: cannot lock %s: %s", what, path, lock,
				 strerror(-rc));
		close(fd);
		return rc;
	}
	write_pid(fd);
	return fd;
}

void lockfile_release(int fd)
{
	if (fd >= 0)
		close(fd); /* the last descriptor of the open file: the lock goes with it */
}
