/* Sets of files switched as one through a "..data" link (kubelet's layout). */
#include "atomicdir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#define DATA_TMP "..data_tmp"
/* "..YYYY_MM_DD_HH_MM_SS." and up to 10 digits. */
#define SETDIR_SIZE 40
#define MKDIR_TRIES 8
/* "..data/" and a file name. */
#define LINK_SIZE (sizeof(ADIR_DATA) + NAME_MAX + 1)

bool adir_is_setdir(const char *name)
{
	return name[0] == '.' && name[1] == '.' && name[2] >= '0' && name[2] <= '9';
}

static int fail(struct adir_error *err, const char *step, const char *file, int rc)
{
	err->failed = step;
	err->failed_file = file;
	return rc;
}

/* A new, empty set directory; its name in name. */
static int make_setdir(int dirfd, char name[SETDIR_SIZE])
{
	struct timespec ts;
	struct tm tm;
	char stamp[24];
	int rc = -EEXIST;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (gmtime_r(&ts.tv_sec, &tm) == NULL)
		return -EOVERFLOW;
	strftime(stamp, sizeof(stamp), "%Y_%m_%d_%H_%M_%S", &tm);
	for (int i = 0; i < MKDIR_TRIES && rc == -EEXIST; i++) {
		snprintf(name, SETDIR_SIZE, "..%s.%u", stamp, (unsigned)randombytes_random());
		rc = mkdirat(dirfd, name, 0755) == 0 ? 0 : -errno;
	}
	return rc;
}

/* Remove a set directory and the plain files in it; best effort. */
static void remove_setdir(int dirfd, const char *name)
{
	struct dirent *de;
	DIR *d;
	int fd;

	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			(void)unlinkat(fd, de->d_name, 0); /* fd is d's until closedir */
	}
	closedir(d);
	(void)unlinkat(dirfd, name, AT_REMOVEDIR);
}

/* Every set directory but keep and keep2 (NULL: none): old sets, and what a killed run left. */
static void remove_other_setdirs(int dirfd, const char *keep, const char *keep2)
{
	char names[16][SETDIR_SIZE];
	struct dirent *de;
	size_t n = 0;
	bool more = true;

	/*
	 * Collect first, then remove: removing while readdir runs may skip
	 * names.  Bounded, so that entries that cannot be removed (a file
	 * named like a set) cannot keep it going.
	 */
	for (int round = 0; more && round < 64; round++) {
		int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		DIR *d = fd >= 0 ? fdopendir(fd) : NULL;

		if (d == NULL) {
			if (fd >= 0)
				close(fd);
			return;
		}
		n = 0;
		more = false;
		while ((de = readdir(d)) != NULL) {
			size_t len = strlen(de->d_name);

			if (!adir_is_setdir(de->d_name) || strcmp(de->d_name, keep) == 0 ||
			    (keep2 != NULL && strcmp(de->d_name, keep2) == 0) || len >= SETDIR_SIZE)
				continue;
			if (n == sizeof(names) / sizeof(names[0])) {
				more = true;
				break;
			}
			memcpy(names[n++], de->d_name, len + 1);
		}
		closedir(d);
		for (size_t i = 0; i < n; i++)
			remove_setdir(dirfd, names[i]);
	}
}

/* Write every file into the set directory, each whole and synced, then the directory. */
static int fill_setdir(int setfd, const struct adir_file *files, size_t n,
		       const struct afile_attrs *attrs, struct adir_error *err)
{
	int rc;

	for (size_t i = 0; i < n; i++) {
		struct afile f;

		rc = afile_create(&f, setfd);
		if (rc == 0)
			rc = afile_fill(&f, files[i].value, files[i].len, attrs);
		if (rc == 0)
			rc = afile_commit(&f, files[i].file);
		if (rc != 0) {
			afile_discard(&f);
			return fail(err, f.failed, files[i].file, rc);
		}
		afile_discard(&f);
	}
	if (fsync(setfd) != 0)
		return fail(err, "syncing the new set's directory", NULL, -errno);
	return 0;
}

/* The set ..data points at into name (cap SETDIR_SIZE); false when there is none. */
static bool current_setdir(int dirfd, char *name)
{
	ssize_t n = readlinkat(dirfd, ADIR_DATA, name, SETDIR_SIZE - 1);

	if (n <= 0)
		return false;
	name[n] = '\0';
	return adir_is_setdir(name);
}

void adir_sweep(int dirfd)
{
	char cur[SETDIR_SIZE];

	if (current_setdir(dirfd, cur))
		remove_other_setdirs(dirfd, cur, NULL);
}

/* Point "..data" at setname with one rename of a fresh link over it. */
static int switch_data(int dirfd, const char *setname, struct adir_error *err)
{
	(void)unlinkat(dirfd, DATA_TMP, 0); /* a link a killed run left */
	if (symlinkat(setname, dirfd, DATA_TMP) != 0)
		return fail(err, "creating the new ..data link", NULL, -errno);
	if (renameat(dirfd, DATA_TMP, dirfd, ADIR_DATA) != 0) {
		int rc = -errno;
		(void)unlinkat(dirfd, DATA_TMP, 0);
		return fail(err, "switching ..data", NULL, rc);
	}
	return 0;
}

/* DIR/FILE -> ..data/FILE, made (or put in place of anything else) with one rename. */
static int link_file(int dirfd, const char *file, struct adir_error *err)
{
	char want[LINK_SIZE], have[LINK_SIZE], tmp[AFILE_TMPNAME_SIZE];
	uint8_t rnd[8];
	char hex[17];
	ssize_t n;

	snprintf(want, sizeof(want), "%s/%s", ADIR_DATA, file);
	n = readlinkat(dirfd, file, have, sizeof(have) - 1);
	if (n >= 0) {
		have[n] = '\0';
		if (strcmp(have, want) == 0)
			return 0;
	}
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(hex, sizeof(hex), rnd, sizeof(rnd));
	/* afile_sweep's name pattern: a killed run's link is removed by the next. */
	snprintf(tmp, sizeof(tmp), ".secretctl-%s", hex);
	if (symlinkat(want, dirfd, tmp) != 0)
		return fail(err, "creating the file's link", file, -errno);
	if (renameat(dirfd, tmp, dirfd, file) != 0) {
		int rc = -errno;
		(void)unlinkat(dirfd, tmp, 0);
		return fail(err, "putting the file's link in place", file, rc);
	}
	return 0;
}

int adir_update(int dirfd, const struct adir_file *files, size_t n,
		const struct afile_attrs *attrs, struct adir_error *err)
{
	char setname[SETDIR_SIZE], prev[SETDIR_SIZE];
	int setfd = -1;
	bool made = false, switched = false, had_prev;
	int rc;

	err->failed = NULL;
	err->failed_file = NULL;
	had_prev = current_setdir(dirfd, prev);
	rc = make_setdir(dirfd, setname);
	if (rc != 0) {
		rc = fail(err, "creating the new set's directory", NULL, rc);
		goto out;
	}
	made = true;
	setfd = openat(dirfd, setname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (setfd < 0) {
		rc = fail(err, "opening the new set's directory", NULL, -errno);
		goto out;
	}
	rc = fill_setdir(setfd, files, n, attrs, err);
	if (rc == 0)
		rc = switch_data(dirfd, setname, err);
	if (rc != 0)
		goto out;
	switched = true;
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = link_file(dirfd, files[i].file, err);
	if (rc == 0 && fsync(dirfd) != 0)
		rc = fail(err, "syncing the directory", NULL, -errno);
out:
	if (setfd >= 0)
		close(setfd);
	if (made && !switched)
		remove_setdir(dirfd, setname);
	/*
	 * The set before stays until adir_sweep: a reader that resolved
	 * ..data to it a moment before the switch still finds its files.
	 * Anything older goes now.
	 */
	if (switched)
		remove_other_setdirs(dirfd, setname, had_prev ? prev : NULL);
	afile_sweep(dirfd);
	return rc;
}
