/*
 * A file that appears whole or not at all: written under a random temporary
 * name in its directory (opened relative to a directory descriptor, with
 * O_CREAT|O_EXCL|O_NOFOLLOW, so no symbolic link is ever followed), given
 * its owner and mode, synced, then renamed over the final name.  renameat
 * replaces a symbolic link at the final name rather than following it, and
 * the final name itself is never opened.
 *
 * Functions return 0 or a negative errno; on failure `failed` names the step
 * for the caller's message.  They never print.
 */
#ifndef SECRETCTL_ATOMICFILE_H
#define SECRETCTL_ATOMICFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ".secretctl-" and 16 hex digits. */
#define AFILE_TMPNAME_SIZE 32

struct afile {
	int dirfd;                       /* borrowed, not closed here */
	int fd;
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

/* Write all of data, set owner and mode, fsync and close. */
int afile_fill(struct afile *f, const uint8_t *data, size_t len, const struct afile_attrs *attrs);

/* Rename the finished temporary file over `name` in the same directory. */
int afile_commit(struct afile *f, const char *name);

/* Close and remove the temporary file, if any is left; safe to call twice. */
void afile_discard(struct afile *f);

/*
 * Whether `file` can name a file directly inside a directory: 1..255 bytes,
 * no '/', not "." or "..".
 */
bool afile_name_valid(const char *file, const char **why);

#endif
