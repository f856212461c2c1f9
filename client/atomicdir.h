/*
 * A set of files replaced as one, in the layout kubelet uses for Secret and
 * ConfigMap volumes (pkg/volume/util/atomic_writer.go):
 *
 *   DIR/..2026_12_01_21_30_00.1234567890/FILE   the files of one set
 *   DIR/..data -> ..2026_12_01_21_30_00.1234567890
 *   DIR/FILE -> ..data/FILE
 *
 * An update writes the new set into a new hidden directory (each file whole,
 * through atomicfile, synced), then makes the switch with one rename(2) of a
 * new "..data" link over the old one, then removes the old directory.  A
 * reader that resolves DIR/..data once and reads every file relative to it
 * sees the whole old set or the whole new set, never a mix; a reader of one
 * file sees the old file or the new one, never a partial or empty one.
 *
 * Functions return 0 or a negative errno and never print; on failure
 * `*failed` names the step and `*failed_file` the file, if any.
 */
#ifndef SECRETCTL_ATOMICDIR_H
#define SECRETCTL_ATOMICDIR_H

#include <stddef.h>
#include <stdint.h>

#include "atomicfile.h"

#define ADIR_DATA "..data"

struct adir_file {
	const char *file;     /* a name directly in DIR (afile_name_valid) */
	const uint8_t *value; /* its content */
	size_t len;
};

struct adir_error {
	const char *failed;      /* the step */
	const char *failed_file; /* the file, or NULL */
};

/*
 * Replace the set in dirfd with files[0..n): written into a new timestamped
 * directory, switched to by renaming "..data", FILE links made where missing
 * (a file or link of another kind at FILE is replaced), then every older
 * timestamped directory removed (any a killed run left) but the set just
 * replaced: a reader that resolved ..data to it a moment before the switch
 * must still find its files.  Call adir_sweep a little later to remove it.
 * On failure before the switch the old set stays in place, untouched, and
 * the new directory is removed.
 */
int adir_update(int dirfd, const struct adir_file *files, size_t n,
		const struct afile_attrs *attrs, struct adir_error *err);

/* Remove every set directory but the one ..data points at. */
void adir_sweep(int dirfd);

/* How long after a switch the replaced set is removed. */
#define ADIR_SWEEP_MS 1000

/* Whether name looks like a set's directory ("..", then a digit). */
bool adir_is_setdir(const char *name);

#endif
