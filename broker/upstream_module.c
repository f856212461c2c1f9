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

/* PATH of the module beside the executable, if there is one we may trust. */
static bool beside_exe(char *path, size_t cap)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash;

	if (n <= 0)
		return false;
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (slash == NULL)
		return false;
	*slash = '\0';
	if (snprintf(path, cap, "%s/%s", exe, UPSTREAM_ETCD_MODULE) >= (int)cap)
		return false;
	return access(path, F_OK) == 0 && trusted(exe) && trusted(path);
}

static int load(char *err, size_t errlen)
{
	char path[PATH_MAX + 64];
	void *h;

	if (ops != NULL)
		return 0;
	if (!beside_exe(path, sizeof(path))) {
		snprintf(path, sizeof(path), "%s/%s", SECRETD_MODULE_DIR, UPSTREAM_ETCD_MODULE);
		if (!trusted(SECRETD_MODULE_DIR) || !trusted(path)) {
			snprintf(err, errlen, "upstream = etcd needs %s (owned by root, writable by"
				 " nobody else): %s", path,
				 access(path, F_OK) == 0 ? "its owner or mode is wrong"
							 : strerror(errno));
			return -1;
		}
	}
	h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		snprintf(err, errlen, "upstream = etcd: %s", dlerror());
		return -1;
	}
	ops = dlsym(h, UPSTREAM_ETCD_SYMBOL);
	if (ops == NULL || strcmp(ops->version, SECRETD_VERSION) != 0) {
		snprintf(err, errlen, "upstream = etcd: %s is not the module of secretd %s", path,
			 SECRETD_VERSION);
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
