/*
 * upstream.h for the broker: finds and loads the etcd upstream module
 * (upstream_ops.h) on the first upstream_new, then forwards every call.
 *
 * Where: beside the running executable (a build tree), else in
 * SECRETD_MODULE_DIR (the installed one).  It runs as root before
 * privileges drop, so a module is loaded only from a file and folder that
 * root or the broker's own user owns and nobody else may write.
 */
#include "upstream.h"
#include "upstream_ops.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <linux/limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef SECRETD_MODULE_DIR
#define SECRETD_MODULE_DIR "/usr/lib/secretd"
#endif

static const struct upstream_ops *ops;

static bool trusted(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && (st.st_uid == 0 || st.st_uid == geteuid()) &&
	       (st.st_mode & 022) == 0;
}

/* PATH of the module beside the executable; false when there is none to look at. */
static bool beside_exe(char *path, size_t cap, char *dir, size_t dcap)
{
	ssize_t n = readlink("/proc/self/exe", dir, dcap - 1);
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
	return access(path, F_OK) == 0;
}

/*
 * Where the module is: beside the executable when there is one there (a
 * build tree), else installed.  A module found but not trusted is refused
 * by name, never passed over for another: the operator is told which file
 * is wrong, and no other module is loaded instead of the one they see.
 */
static int locate(char *path, size_t cap, char *err, size_t errlen)
{
	char dir[PATH_MAX];
	const char *why;

	if (!beside_exe(path, cap, dir, sizeof(dir))) {
		snprintf(path, cap, "%s/%s", SECRETD_MODULE_DIR, UPSTREAM_ETCD_MODULE);
		snprintf(dir, sizeof(dir), "%s", SECRETD_MODULE_DIR);
	}
	if (trusted(dir) && trusted(path))
		return 0;
	/* errno of this access, not of the checks before it */
	why = access(path, F_OK) == 0 ? "its owner or mode, or its folder's, is wrong"
				       : strerror(errno);
	snprintf(err, errlen, "upstream = etcd needs %s (owned by root, writable by nobody else): %s",
		 path, why);
	return -1;
}

static int load(char *err, size_t errlen)
{
	static const struct upstream_abi abi = UPSTREAM_ABI;
	char path[PATH_MAX + 64];
	void *h;

	if (ops != NULL)
		return 0;
	if (locate(path, sizeof(path), err, errlen) != 0)
		return -1;
	h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		snprintf(err, errlen, "upstream = etcd: %s", dlerror());
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
