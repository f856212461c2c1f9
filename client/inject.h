/*
 * What inject and exec share: the set of targets (secret name, file name,
 * value once fetched), fetching them all or nothing over one connection,
 * and writing them into DIR, once (cmd_inject.c) or as a watched set in
 * kubelet's layout (inject_watch.c).  Every function prints its own
 * one-line message and returns an exit status.
 */
#ifndef SECRETCTL_INJECT_H
#define SECRETCTL_INJECT_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "atomicfile.h"

struct target {
	char *name;       /* the secret's name */
	char *file;       /* the file's name in DIR (exec --env: the variable) */
	uint8_t *value;   /* sodium_malloc, once fetched */
	size_t len;
	uint32_t version; /* of the value fetched */
	struct afile tmp; /* the file while it is being written */
	bool placed;      /* renamed into place by this run */
};

struct inject {
	const char *cmd;  /* "inject" or "exec", for messages */
	const char *dir;
	struct afile_attrs attrs;
	bool allow_disk;
	int dirfd;
	struct target *targets;
	size_t ntargets;
	long long sweep_at; /* when to remove the replaced set (0: nothing to remove) */
};

/*
 * After a switch the replaced set stays ADIR_SWEEP_MS (atomicdir.h) for
 * readers still on their way into it: the loops call this when the time
 * comes (and at exit), and wait no longer than inject_sweep_timeout.
 */
void inject_sweep(struct inject *in, long long now, bool force);
int inject_sweep_timeout(const struct inject *in, long long now, int timeout);

struct inject_watch {
	const char *on_change; /* run through /bin/sh -c after each switch */
	int signal;            /* sent to the pid in pid_file after each switch */
	const char *pid_file;
};

/* Defaults and checks of --dir, --owner, --mode. */
int inject_check_options(struct inject *in, const char *cmd, const char *owner,
			 const char *mode);
/* NAME[=FILE] operands into in->targets (file names checked, no two alike). */
int inject_parse_targets(struct inject *in, const char *cmd, char **ops, int nops);
/* Open DIR without following a link; tmpfs or ramfs unless allow_disk. */
int inject_open_dir(struct inject *in);
/* Fetch every target's value (and version), all or nothing: on failure none is kept. */
int inject_fetch(struct target *targets, size_t n, const char *cmd);
/* Wipe and free the fetched values. */
void inject_drop_values(struct target *targets, size_t n);
/* Write the fetched set as plain files, all or nothing (inject without --watch). */
int inject_write_files(struct inject *in);
/* Write the fetched set in kubelet's layout, replacing the current one as one. */
int inject_write_set(struct inject *in);
/* The sidecar: write the fetched set, then follow every change until SIGTERM. */
int inject_watch_run(struct inject *in, const struct inject_watch *w);
/* After a switch: run --on-change, or send --signal to the pid in --pid-file. */
void inject_notify(const char *cmd, const struct inject_watch *w, const sigset_t *childmask);
void inject_free(struct inject *in);

#endif
