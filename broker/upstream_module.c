/*
 * upstream.h for the broker: finds and loads the etcd upstream module
 * (upstream_ops.h) on the first upstream_new, then forwards every call.
 *
 * Where: beside the running executable (a build tree), else in
 * SECRETD_MODULE_DIR (the installed one).  It runs as root before
 * privileges drop, so a module is loaded only from a file that root or the
 * broker's own user owns and nobody else may write, on a path whose every
 * folder is the same (or sticky, as /tmp: nobody else can replace what is
 * in it); links are resolved first and the checks are on what they lead
 * to.  The file is opened once, checked on that descriptor, and loaded
 * through it, so that what is loaded is what was checked.
 */
#include "upstream.h"
#include "upstream_ops.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef SECRETD_MODULE_DIR
#define SECRETD_MODULE_DIR "/usr/lib/secretd"
#endif

static const struct upstream_ops *ops;

/* Root's or ours; nobody else may change what is in it, unless sticky. */
static bool folder_trusted(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0 && S_ISDIR(st.st_mode) &&
	       (st.st_uid == 0 || st.st_uid == geteuid()) &&
	       ((st.st_mode & 022) == 0 || (st.st_mode & S_ISVTX) != 0);
}

/* Every folder from / down to dir, an absolute path without links. */
static bool folders_trusted(const char *dir)
{
	char part[PATH_MAX];
	size_t len = strlen(dir);

	if (dir[0] != '/' || len >= sizeof(part) || !folder_trusted("/"))
		return false;
	memcpy(part, dir, len + 1);
	for (size_t i = 1; i <= len; i++) {
		if (part[i] != '/' && part[i] != '\0')
			continue;
		part[i] = '\0';
		if (!folder_trusted(part))
			return false;
		part[i] = dir[i];
	}
	return true;
}

/*
 * The module at path, opened, if it may be trusted: a descriptor, or -1
 * with why set.
 */
static int open_trusted(const char *path, const char **why)
{
	char real[PATH_MAX], *slash;
	struct stat st;
	bool folders;
	int fd;

	if (realpath(path, real) == NULL) {
		*why = strerror(errno);
		return -1;
	}
	slash = strrchr(real, '/');
	*slash = '\0';
	folders = folders_trusted(real[0] != '\0' ? real : "/");
	*slash = '/';
	if (!folders) {
		*why = "the owner or mode of a folder on its path is wrong";
		return -1;
	}
	fd = open(real, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		*why = strerror(errno);
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    (st.st_uid != 0 && st.st_uid != geteuid()) || (st.st_mode & 022) != 0) {
		close(fd);
		*why = "its owner or mode is wrong";
		return -1;
	}
	return fd;
}

/* PATH of the module beside the executable; false when there is none to look at. */
static bool beside_exe(char *path, size_t cap, char *dir, size_t dcap)
{
	ssize_t n = readlink("/proc/self/exe", dir, dcap - 1);
	struct stat st;
	char *slash;

	if (n <= 0)
		return false;
	dir[n] = '\0';
	slash = strrchr(dir, '/');
	if (slash == NULL)
		return false;
	*slash = '\0';
	if (snprintf(path, cap, "%s/%s", dir, UPSTREAM_ETCD_MODULE) >= (int)cap)
		return false;
	/* Anything there, a link too: found, and then it must be trusted. */
	return lstat(path, &st) == 0;
}

/*
 * Where the module is: beside the executable when there is one there (a
 * build tree), else installed.  A module found but not trusted is refused
 * by name, never passed over for another: the operator is told which file
 * is wrong, and no other module is loaded instead of the one they see.
 * The module, opened: a descriptor, or -1 with err set.
 */
static int locate(char *path, size_t cap, char *err, size_t errlen)
{
	char dir[PATH_MAX];
	const char *why = NULL;
	int fd;

	if (!beside_exe(path, cap, dir, sizeof(dir)))
		snprintf(path, cap, "%s/%s", SECRETD_MODULE_DIR, UPSTREAM_ETCD_MODULE);
	fd = open_trusted(path, &why);
	if (fd < 0)
		snprintf(err, errlen,
			 "upstream = etcd needs %s (owned by root, writable by nobody else): %s",
			 path, why);
	return fd;
}

static int load(char *err, size_t errlen)
{
	static const struct upstream_abi abi = UPSTREAM_ABI;
	char path[PATH_MAX + 64], fdpath[64];
	void *h;
	int fd;

	if (ops != NULL)
		return 0;
	fd = locate(path, sizeof(path), err, errlen);
	if (fd < 0)
		return -1;
	/* Loaded through the descriptor checked, not the path again. */
	snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", fd);
	h = dlopen(fdpath, RTLD_NOW | RTLD_LOCAL);
	close(fd);
	if (h == NULL) {
		snprintf(err, errlen, "upstream = etcd: %s: %s", path, dlerror());
		return -1;
	}
	ops = dlsym(h, UPSTREAM_ETCD_SYMBOL);
	/*
	 * abi.ops first: where a module from before abi keeps its first
	 * function, which is never that size; only a table that large is read
	 * further.
	 */
	if (ops == NULL || strcmp(ops->version, SECRETD_VERSION) != 0 ||
	    ops->abi.ops != abi.ops || memcmp(&ops->abi, &abi, sizeof(abi)) != 0) {
		snprintf(err, errlen, "upstream = etcd: %s is not the module of secretd %s%s", path,
			 SECRETD_VERSION,
			 ops != NULL && strcmp(ops->version, SECRETD_VERSION) == 0
				 ? " (built from other sources: its shared structs differ)"
				 : "");
		ops = NULL;
		dlclose(h);
		return -1;
	}
	/* Kept loaded for the life of the process: its code runs until exit. */
	return 0;
}

int upstream_new(const struct config *cfg, struct vault *vault, struct upstream **out,
		 char *err, size_t errlen)
{
	*out = NULL;
	if (load(err, errlen) != 0)
		return -1;
	return ops->create(cfg, vault, out, err, errlen);
}

void upstream_free(struct upstream *u)
{
	if (u != NULL)
		ops->destroy(u);
}

int upstream_start(struct upstream *u, struct services *svc, char *err, size_t errlen)
{
	return ops->start(u, svc, err, errlen);
}

void upstream_stop(struct upstream *u, void (*done)(void *arg), void *arg)
{
	ops->stop(u, done, arg);
}

int upstream_put(struct upstream *u, const char *name, size_t nlen, const uint8_t *value,
		 size_t vlen, upstream_done_fn done, void *arg)
{
	return ops->put(u, name, nlen, value, vlen, done, arg);
}

int upstream_rm(struct upstream *u, const char *name, size_t nlen, upstream_done_fn done,
		void *arg)
{
	return ops->rm(u, name, nlen, done, arg);
}

void upstream_status(struct upstream *u, struct upstream_status *out)
{
	ops->status(u, out);
}

const char *upstream_problem(struct upstream *u)
{
	return ops->problem(u);
}
