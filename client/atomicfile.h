/*
 * A file that appears whole or not at all: written as an unnamed O_TMPFILE
 * in its directory (opened relative to a directory descriptor), given its
 * owner and mode, synced, then linked under its final name in one step
 * when that name is free; only a name already taken goes through a random
 * temporary name renamed over it at once.  A process killed before the
 * commit, even by SIGKILL, leaves nothing behind: the kernel frees an
 * unnamed file.  A SIGKILL inside the one window left (a taken name,
 * between the link and the rename) leaves a ".secretctl-" name, which the
 * next run in that directory removes (afile_sweep).
 * Where O_TMPFILE is unsupported (or /proc, which linking it needs, is not
 * mounted) the file is written under the temporary name from the start,
 * created with O_CREAT|O_EXCL|O_NOFOLLOW.  Either way no symbolic link is
 * followed: renameat replaces a link at the final name, and the final name
 * itself is never opened.
 *
 * Functions return 0 or a negative errno; on failure `failed` names the step
 * for the caller's message.  They never print.
 */
#ifndef SECRETCTL_ATOMICFILE_H
#define SECRETCTL_ATOMICFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

/* ".secretctl-" and 16 hex digits. */
#define AFILE_TMPNAME_SIZE 32

struct afile {
	int dirfd;                       /* borrowed, not closed here */
	int fd;
	bool unnamed;                    /* O_TMPFILE, not linked yet */
	bool exists;                     /* the temporary name is ours to remove */
	char tmpname[AFILE_TMPNAME_SIZE];
	const char *failed;              /* the step that failed, for messages */
};

struct afile_attrs {
	mode_t mode;
	bool set_owner;
	uid_t uid;
	gid_t gid;
};

/* Create a new temporary file in dirfd. */
int afile_create(struct afile *f, int dirfd);

/* Write all of data, set owner and mode, fsync (and close a named file). */
int afile_fill(struct afile *f, const uint8_t *data, size_t len, const struct afile_attrs *attrs);

/* Give the finished file `name` in the same directory, replacing what is there. */
int afile_commit(struct afile *f, const char *name);

/*
 * Remove the temporary names a killed run left in dirfd (".secretctl-" and
 * 16 hex digits, nothing else).  Best effort: failures are ignored.  Two
 * runs writing one directory at the same moment are not supported.
 */
void afile_sweep(int dirfd);

/* Close and remove the temporary file, if any is left; safe to call twice. */
void afile_discard(struct afile *f);

/*
 * Defer SIGINT, SIGTERM, SIGHUP and SIGQUIT while files are committed or
 * rolled back, so that a stop request lands after the directory is whole
 * again; a signal that came meanwhile is delivered by afile_signals_release.
 */
void afile_signals_hold(sigset_t *saved);
void afile_signals_release(const sigset_t *saved);

/*
 * Whether `file` can name a file directly inside a directory: 1..255 bytes,
 * no '/', not "." or "..".
 */
bool afile_name_valid(const char *file, const char **why);

#endif
