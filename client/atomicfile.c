/* Files that appear atomically, through a directory descriptor. */
#include "atomicfile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "secretctl.h"

/* Attempts at a fresh random name before giving up (each collision is 2^-64). */
#define TMPNAME_TRIES 8

static void random_tmpname(struct afile *f)
{
	uint8_t rnd[8];
	char hex[2 * sizeof(rnd) + 1];

	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(hex, sizeof(hex), rnd, sizeof(rnd));
	snprintf(f->tmpname, sizeof(f->tmpname), ".secretctl-%s", hex);
}

/* An unnamed file in dirfd, or -errno (-EOPNOTSUPP where it cannot be had). */
static int open_unnamed(int dirfd)
{
	int fd;

	/* Linking an O_TMPFILE without privilege goes through /proc/self/fd. */
	if (access("/proc/self/fd", X_OK) != 0)
		return -EOPNOTSUPP;
	fd = openat(dirfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
	/* Filesystems without O_TMPFILE say so in several ways. */
	if (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)
		return -EOPNOTSUPP;
	return -errno;
}

int afile_create(struct afile *f, int dirfd)
{
	int rc = -EEXIST;

	memset(f, 0, sizeof(*f));
	f->dirfd = dirfd;
	f->fd = open_unnamed(dirfd);
	if (f->fd >= 0) {
		f->unnamed = true;
		return 0;
	}
	if (f->fd != -EOPNOTSUPP) {
		rc = f->fd;
		f->fd = -1;
		f->failed = "creating a temporary file";
		return rc;
	}
	f->fd = -1;
	for (int i = 0; i < TMPNAME_TRIES && rc == -EEXIST; i++) {
		random_tmpname(f);
		/*
		 * O_EXCL|O_NOFOLLOW: a name planted in the directory, link or
		 * not, is never opened; 0600 until the final mode is set.
		 */
		f->fd = openat(dirfd, f->tmpname,
			       O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		rc = f->fd >= 0 ? 0 : -errno;
	}
	if (rc != 0)
		f->failed = "creating a temporary file";
	else
		f->exists = true;
	return rc;
}

int afile_fill(struct afile *f, const uint8_t *data, size_t len, const struct afile_attrs *attrs)
{
	int rc;

	rc = ctl_write_all(f->fd, data, len);
	if (rc != 0) {
		f->failed = "writing";
		goto out;
	}
	/* Owner before mode: a change of owner may clear mode bits. */
	if (attrs->set_owner && fchown(f->fd, attrs->uid, attrs->gid) != 0) {
		rc = -errno;
		f->failed = "setting the owner";
		goto out;
	}
	if (fchmod(f->fd, attrs->mode) != 0) {
		rc = -errno;
		f->failed = "setting the mode";
		goto out;
	}
	if (fsync(f->fd) != 0) {
		rc = -errno;
		f->failed = "syncing";
		goto out;
	}
	if (f->unnamed)
		goto out; /* its descriptor is its only name until the commit */
	rc = close(f->fd) == 0 ? 0 : -errno;
	f->fd = -1;
	if (rc != 0)
		f->failed = "closing";
out:
	return rc;
}

/* The unnamed file is named now: its descriptor is no longer needed. */
static int linked(struct afile *f)
{
	int rc;

	f->unnamed = false;
	rc = close(f->fd) == 0 ? 0 : -errno;
	f->fd = -1;
	return rc;
}

/*
 * Link the unnamed file under `name`: 0, -EEXIST when the name is taken
 * (linkat never replaces, and never follows a link at the new name), or
 * another -errno.
 */
static int link_unnamed_as(struct afile *f, const char *name)
{
	char proc[40];

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", f->fd);
	return linkat(AT_FDCWD, proc, f->dirfd, name, AT_SYMLINK_FOLLOW) == 0 ? 0 : -errno;
}

/* Link the unnamed file under a fresh temporary name. */
static int link_unnamed(struct afile *f)
{
	int rc = -EEXIST;

	for (int i = 0; i < TMPNAME_TRIES && rc == -EEXIST; i++) {
		random_tmpname(f);
		rc = link_unnamed_as(f, f->tmpname);
	}
	if (rc != 0)
		return rc;
	f->exists = true;
	return linked(f);
}

int afile_commit(struct afile *f, const char *name)
{
	int rc;

	if (f->unnamed) {
		/*
		 * A free name is taken in one step, so no temporary name ever
		 * holds the value: a SIGKILL leaves either nothing or the
		 * whole file.  Only a name already taken needs the temporary
		 * name and a rename over it (linkat cannot replace).
		 */
		rc = link_unnamed_as(f, name);
		if (rc == 0)
			return linked(f);
		if (rc == -EEXIST)
			rc = link_unnamed(f);
		if (rc != 0) {
			f->failed = "linking the file into the directory";
			return rc;
		}
	}
	if (renameat(f->dirfd, f->tmpname, f->dirfd, name) != 0) {
		f->failed = "renaming into place";
		return -errno;
	}
	f->exists = false;
	return 0;
}

void afile_discard(struct afile *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	if (f->exists)
		(void)unlinkat(f->dirfd, f->tmpname, 0); /* nothing more to do if it fails */
	f->exists = false;
}

/* ".secretctl-" and exactly 16 lower-case hex digits: a name random_tmpname made. */
static bool is_tmpname(const char *name)
{
	size_t len = strlen(name);

	return len == 11 + 16 && strncmp(name, ".secretctl-", 11) == 0 &&
	       strspn(name + 11, "0123456789abcdef") == 16;
}

void afile_sweep(int dirfd)
{
	struct dirent *de;
	DIR *d;
	int fd;

	fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		/* unlinkat removes a link itself, never its target; a directory fails. */
		if (is_tmpname(de->d_name))
			(void)unlinkat(dirfd, de->d_name, 0);
	}
	closedir(d);
}

void afile_signals_hold(sigset_t *saved)
{
	sigset_t stop;

	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGHUP);
	sigaddset(&stop, SIGQUIT);
	(void)sigprocmask(SIG_BLOCK, &stop, saved); /* fails only for a bad `how` */
}

void afile_signals_release(const sigset_t *saved)
{
	(void)sigprocmask(SIG_SETMASK, saved, NULL);
}

bool afile_name_valid(const char *file, const char **why)
{
	size_t len = strlen(file);

	if (len == 0)
		*why = "the file name is empty";
	else if (len > NAME_MAX)
		*why = "the file name is longer than 255 bytes";
	else if (memchr(file, '/', len) != NULL)
		*why = "the file name contains '/'";
	else if (strcmp(file, ".") == 0 || strcmp(file, "..") == 0)
		*why = "the file name is '.' or '..'";
	else
		return true;
	return false;
}
