/*
 * secretctl inject --dir DIR [--owner UID:GID] [--mode MODE] [--allow-disk] NAME[=FILE]...
 *
 * The init-container helper.  It is all or nothing:
 *
 *   1. every argument is checked before anything else happens;
 *   2. DIR is opened once (a symbolic link as DIR is refused) and must be on
 *      tmpfs or ramfs unless --allow-disk;
 *   3. every secret is fetched over one connection into locked memory: any
 *      refusal (denied, not found, unreachable, unavailable) ends the run
 *      with that status and nothing written;
 *   4. every file is written in full under a temporary name in DIR, with
 *      its owner and mode, and synced;
 *   5. only then are they renamed into place, one after the other.
 *
 * If writing fails (disk full, chown refused, a rename that fails), the
 * temporary files are removed and the files this run already renamed into
 * place are unlinked again, so DIR holds none of this run's secrets.  A file
 * that an earlier run had left under the same name was replaced by the
 * rename, so after such a rollback that name is absent rather than restored:
 * an init container that fails is not expected to start its workload.
 *
 * Everything in DIR is reached through DIR's descriptor with openat,
 * renameat and unlinkat; temporary files are created with O_EXCL|O_NOFOLLOW
 * and the final names are never opened, so no symbolic link under DIR is
 * ever followed (a link at a final name is replaced, its target untouched).
 *
 * --watch makes it a sidecar (inject_watch.c): the set is written in
 * kubelet's layout (atomicdir.h) and replaced as one on every change.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <sodium.h>

#include <secretd/exitcodes.h>
#include <secretd/names.h>
#include <secretd/wire.h>

#include "atomicfile.h"
#include "conn.h"
#include "inject.h"
#include "secretctl.h"
#include "sigs.h"

#define DEFAULT_MODE 0400
#define CONTEXT_SIZE 300

/* An octal mode, digits 0-7 only, at most 0777: no set-id or sticky bits. */
static bool parse_mode(const char *s, mode_t *mode)
{
	uint64_t v;

	if (strlen(s) > 4 || !ctl_parse_number(s, 8, 0, 0777, &v))
		return false;
	*mode = (mode_t)v;
	return true;
}

/* UID:GID, both numeric: the static binary never asks NSS for a name. */
static bool parse_owner(const char *s, uid_t *uid, gid_t *gid)
{
	const char *colon = strchr(s, ':');
	char uidtext[16];
	uint32_t u, g;
	size_t ulen;

	if (colon == NULL)
		return false;
	ulen = (size_t)(colon - s);
	if (ulen == 0 || ulen >= sizeof(uidtext))
		return false;
	memcpy(uidtext, s, ulen);
	uidtext[ulen] = '\0';
	/* (uid_t)-1 means "leave unchanged" to fchown: not an owner. */
	if (!ctl_parse_u32(uidtext, 0, UINT32_MAX - 1, &u) ||
	    !ctl_parse_u32(colon + 1, 0, UINT32_MAX - 1, &g))
		return false;
	*uid = (uid_t)u;
	*gid = (gid_t)g;
	return true;
}

/* NAME or NAME=FILE into t; EXIT_OK or EXIT_USAGE with the message printed. */
static int parse_target(const char *cmd, const char *arg, struct target *t)
{
	const char *eq = strchr(arg, '=');
	size_t nlen = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
	const char *why;

	if (!name_valid(arg, nlen, &why)) {
		ctl_err("%s: invalid name: %s", cmd, why);
		return EXIT_USAGE;
	}
	t->name = strndup(arg, nlen);
	t->file = eq != NULL ? strdup(eq + 1) : strndup(arg, nlen);
	if (t->name == NULL || t->file == NULL) {
		ctl_err("%s: out of memory", cmd);
		return EXIT_ERROR;
	}
	if (eq == NULL) {
		for (char *p = t->file; *p != '\0'; p++)
			if (*p == '/')
				*p = '_';
	}
	if (!afile_name_valid(t->file, &why)) {
		ctl_err("%s: %s: %s", cmd, t->name, why);
		return EXIT_USAGE;
	}
	/* The layout's own names ("..data", the set directories) are not files. */
	if (strncmp(t->file, "..", 2) == 0) {
		ctl_err("%s: %s: a file name may not start with '..'", cmd, t->name);
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

int inject_parse_targets(struct inject *in, const char *cmd, char **ops, int nops)
{
	in->targets = calloc((size_t)nops > 0 ? (size_t)nops : 1, sizeof(*in->targets));
	if (in->targets == NULL) {
		ctl_err("%s: out of memory", cmd);
		return EXIT_ERROR;
	}
	for (int i = 0; i < nops; i++) {
		struct target *t = &in->targets[in->ntargets++];
		int rc;

		t->tmp.fd = -1;
		rc = parse_target(cmd, ops[i], t);
		if (rc != EXIT_OK)
			return rc;
		for (size_t k = 0; k + 1 < in->ntargets; k++) {
			if (strcmp(in->targets[k].file, t->file) == 0) {
				ctl_err("%s: %s and %s would both be written to %s", cmd,
					in->targets[k].name, t->name, t->file);
				return EXIT_USAGE;
			}
		}
	}
	return EXIT_OK;
}

int inject_open_dir(struct inject *in)
{
	struct statfs sfs;

	struct stat st;
	char *path = strdup(in->dir);
	size_t len;
	int err;

	if (path == NULL) {
		ctl_err("%s: out of memory", in->cmd);
		return EXIT_ERROR;
	}
	/* A trailing '/' would make the kernel follow a link that DIR itself is. */
	for (len = strlen(path); len > 1 && path[len - 1] == '/'; len--)
		path[len - 1] = '\0';
	in->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	err = errno;
	if (in->dirfd < 0 && fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISLNK(st.st_mode))
		err = ELOOP;
	free(path);
	if (in->dirfd < 0) {
		if (err == ELOOP)
			ctl_err("%s: %s: is a symbolic link; give the real directory", in->cmd, in->dir);
		else
			ctl_err("%s: %s: %s", in->cmd, in->dir, strerror(err));
		return EXIT_ERROR;
	}
	if (in->allow_disk)
		return EXIT_OK;
	if (fstatfs(in->dirfd, &sfs) != 0) {
		ctl_err("%s: %s: cannot tell its file system: %s", in->cmd, in->dir, strerror(errno));
		return EXIT_ERROR;
	}
	if ((unsigned long)sfs.f_type != TMPFS_MAGIC && (unsigned long)sfs.f_type != RAMFS_MAGIC) {
		ctl_err("%s: %s is not on tmpfs or ramfs (file system type 0x%lx): "
			"secrets would be written to disk; mount a tmpfs there or pass --allow-disk", in->cmd,
			in->dir, (unsigned long)sfs.f_type);
		return EXIT_ERROR;
	}
	return EXIT_OK;
}

int inject_fetch(struct target *targets, size_t n, const char *cmd)
{
	struct conn c = { .fd = -1 };
	char context[CONTEXT_SIZE];
	int rc;

	inject_drop_values(targets, n);
	if (n == 0)
		return EXIT_OK;
	rc = conn_open(&c);
	for (size_t i = 0; rc == EXIT_OK && i < n; i++) {
		struct target *t = &targets[i];
		struct wire_request req = { .type = WIRE_GET };

		req.name.ptr = (const uint8_t *)t->name;
		req.name.len = strlen(t->name);
		snprintf(context, sizeof(context), "%s %s", cmd, t->name);
		rc = conn_request(&c, &req, context);
		if (rc != EXIT_OK)
			break;
		/* sodium_malloc(0) may return NULL: an empty value still gets a buffer. */
		t->value = sodium_malloc(c.resp.value.len > 0 ? c.resp.value.len : 1);
		if (t->value == NULL) {
			ctl_err("%s: out of memory", context);
			rc = EXIT_ERROR;
			break;
		}
		if (c.resp.value.len > 0)
			memcpy(t->value, c.resp.value.ptr, c.resp.value.len);
		t->len = c.resp.value.len;
		t->version = c.resp.version;
		conn_release(&c);
	}
	conn_close(&c);
	/* All or nothing: a set fetched in part is no set. */
	if (rc != EXIT_OK)
		inject_drop_values(targets, n);
	return rc;
}

void inject_drop_values(struct target *targets, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		sodium_free(targets[i].value); /* wipes before it unmaps */
		targets[i].value = NULL;
		targets[i].len = 0;
	}
}

/* Undo this run: temporary files removed, files already placed unlinked. */
static void roll_back(struct inject *in)
{
	for (size_t i = 0; i < in->ntargets; i++) {
		struct target *t = &in->targets[i];

		afile_discard(&t->tmp);
		if (t->placed && unlinkat(in->dirfd, t->file, 0) != 0)
			ctl_err("%s: %s/%s: removing it again: %s", in->cmd, in->dir, t->file,
				strerror(errno));
		t->placed = false;
	}
}

int inject_write_files(struct inject *in)
{
	struct target *t = NULL;
	sigset_t saved;
	int err = 0;

	/* A stop request waits until every file is placed or rolled back. */
	afile_signals_hold(&saved);
	afile_sweep(in->dirfd);
	/* Everything that can fail for lack of space or rights happens before any rename. */
	for (size_t i = 0; err == 0 && i < in->ntargets; i++) {
		t = &in->targets[i];
		err = afile_create(&t->tmp, in->dirfd);
		if (err == 0)
			err = afile_fill(&t->tmp, t->value, t->len, &in->attrs);
	}
	for (size_t i = 0; err == 0 && i < in->ntargets; i++) {
		t = &in->targets[i];
		err = afile_commit(&t->tmp, t->file);
		t->placed = err == 0;
	}
	if (err == 0 && fsync(in->dirfd) != 0) {
		err = -errno;
		ctl_err("%s: %s: syncing the directory: %s", in->cmd, in->dir, strerror(-err));
	} else if (err != 0) {
		ctl_err("%s: %s/%s: %s: %s", in->cmd, in->dir, t->file, t->tmp.failed, strerror(-err));
	}
	if (err != 0)
		roll_back(in);
	afile_signals_release(&saved);
	return err != 0 ? EXIT_ERROR : EXIT_OK;
}

void inject_free(struct inject *in)
{
	for (size_t i = 0; i < in->ntargets; i++) {
		struct target *t = &in->targets[i];

		afile_discard(&t->tmp);
		sodium_free(t->value); /* wipes before it unmaps */
		free(t->name);
		free(t->file);
	}
	free(in->targets);
	in->targets = NULL;
	in->ntargets = 0;
	if (in->dirfd >= 0)
		close(in->dirfd);
	in->dirfd = -1;
}

int inject_check_options(struct inject *in, const char *cmd, const char *owner,
			 const char *mode)
{
	if (in->dir == NULL)
		return ctl_usage_err(cmd, "--dir DIR is required");
	if (in->dir[0] == '\0')
		return ctl_usage_err(cmd, "--dir needs a DIR");
	in->attrs.mode = DEFAULT_MODE;
	if (mode != NULL && !parse_mode(mode, &in->attrs.mode)) {
		ctl_err("%s: --mode needs an octal mode from 0 to 0777", cmd);
		return EXIT_USAGE;
	}
	in->attrs.set_owner = true;
	in->attrs.uid = geteuid();
	in->attrs.gid = getegid();
	if (owner != NULL && !parse_owner(owner, &in->attrs.uid, &in->attrs.gid)) {
		ctl_err("%s: --owner needs numeric UID:GID", cmd);
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

/* --watch and its companions; EXIT_OK or EXIT_USAGE with the message printed. */
static int check_watch_options(struct inject_watch *w, const char *sig, bool watch)
{
	if (!watch) {
		if (w->on_change != NULL || sig != NULL || w->pid_file != NULL)
			return ctl_usage_err("inject", "--on-change, --signal and --pid-file go with --watch");
		return EXIT_OK;
	}
	if ((sig == NULL) != (w->pid_file == NULL))
		return ctl_usage_err("inject", "--signal SIG and --pid-file FILE go together");
	if (sig != NULL && !sigs_parse(sig, &w->signal)) {
		ctl_err("inject: --signal needs a signal name (TERM, HUP, USR1...) or number");
		return EXIT_USAGE;
	}
	if (w->on_change != NULL && w->on_change[0] == '\0')
		return ctl_usage_err("inject", "--on-change needs a CMD");
	if (w->pid_file != NULL && w->pid_file[0] == '\0')
		return ctl_usage_err("inject", "--pid-file needs a FILE");
	return EXIT_OK;
}

int cmd_inject(int argc, char **argv)
{
	struct inject in = { .dirfd = -1, .cmd = "inject" };
	struct inject_watch w = { 0 };
	const char *owner = NULL, *mode = NULL, *sig = NULL;
	bool watch = false;
	const struct ctl_opt opts[] = {
		{ "--dir", true, &in.dir, NULL },
		{ "--owner", true, &owner, NULL },
		{ "--mode", true, &mode, NULL },
		{ "--allow-disk", false, NULL, &in.allow_disk },
		{ "--watch", false, NULL, &watch },
		{ "--on-change", true, &w.on_change, NULL },
		{ "--signal", true, &sig, NULL },
		{ "--pid-file", true, &w.pid_file, NULL },
	};
	bool help;
	int nops = 0;
	int rc;

	rc = ctl_parse_args(argc, argv, opts, sizeof(opts) / sizeof(opts[0]), &nops, &help);
	if (rc != 0 || help)
		goto out;
	rc = inject_check_options(&in, "inject", owner, mode);
	if (rc == EXIT_OK)
		rc = check_watch_options(&w, sig, watch);
	if (rc != EXIT_OK)
		goto out;
	if (nops == 0) {
		rc = ctl_usage_err(argv[0], "no NAME given");
		goto out;
	}
	rc = inject_parse_targets(&in, "inject", argv + 1, nops);
	if (rc == EXIT_OK)
		rc = inject_open_dir(&in);
	if (rc == EXIT_OK)
		rc = inject_fetch(in.targets, in.ntargets, "inject");
	if (rc == EXIT_OK && watch)
		rc = inject_watch_run(&in, &w);
	else if (rc == EXIT_OK)
		rc = inject_write_files(&in);
out:
	inject_free(&in);
	return rc;
}
