/*
 * inject --watch: the sidecar.  The first set is written in kubelet's layout
 * (atomicdir.h), then every change of any name brings a fetch of the whole
 * set, all or nothing, and a switch of "..data" to it; after each switch
 * --on-change runs, or --signal goes to the process named in --pid-file
 * (through a pidfd).  A fetch that fails keeps the current set and is tried
 * again with back-off; the subscription is re-established when the broker
 * comes back.  SIGTERM or SIGINT end it with status 0, the last complete
 * set left in place.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <secretd/exitcodes.h>

#include "atomicdir.h"
#include "follow.h"
#include "inject.h"
#include "secretctl.h"
#include "sigs.h"

void inject_sweep(struct inject *in, long long now, bool force)
{
	if (in->sweep_at != 0 && (force || now >= in->sweep_at)) {
		adir_sweep(in->dirfd);
		in->sweep_at = 0;
	}
}

int inject_sweep_timeout(const struct inject *in, long long now, int timeout)
{
	long long left;

	if (in->sweep_at == 0)
		return timeout;
	left = in->sweep_at > now ? in->sweep_at - now : 0;
	return timeout < 0 || left < timeout ? (int)left : timeout;
}

/* The pid in a --pid-file: digits, optionally one newline. */
#define PID_TEXT_MAX 24

int inject_write_set(struct inject *in)
{
	struct adir_file *files = calloc(in->ntargets > 0 ? in->ntargets : 1, sizeof(*files));
	struct adir_error err;
	int rc;

	if (files == NULL) {
		ctl_err("%s: out of memory", in->cmd);
		return EXIT_ERROR;
	}
	for (size_t i = 0; i < in->ntargets; i++) {
		files[i].file = in->targets[i].file;
		files[i].value = in->targets[i].value;
		files[i].len = in->targets[i].len;
	}
	rc = adir_update(in->dirfd, files, in->ntargets, &in->attrs, &err);
	free(files);
	if (rc == 0)
		in->sweep_at = sigs_now_ms() + ADIR_SWEEP_MS;
	if (rc != 0) {
		ctl_err("%s: %s%s%s: %s: %s", in->cmd, in->dir, err.failed_file ? "/" : "",
			err.failed_file ? err.failed_file : "", err.failed, strerror(-rc));
		return EXIT_ERROR;
	}
	return EXIT_OK;
}

/* The pid written in path, or 0 with the reason printed. */
static pid_t read_pid(const char *cmd, const char *path)
{
	char text[PID_TEXT_MAX + 1];
	uint32_t pid;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		ctl_err("%s: --pid-file %s: %s", cmd, path, strerror(errno));
		return 0;
	}
	n = read(fd, text, PID_TEXT_MAX);
	close(fd);
	if (n > 0 && text[n - 1] == '\n')
		n--;
	if (n <= 0) {
		ctl_err("%s: --pid-file %s: empty", cmd, path);
		return 0;
	}
	text[n] = '\0';
	if (!ctl_parse_u32(text, 2, 4194304, &pid)) {
		ctl_err("%s: --pid-file %s: not a process id", cmd, path);
		return 0;
	}
	return (pid_t)pid;
}

/*
 * The pid is read at each change (the process may have been restarted) and
 * turned into a pidfd, then the file is read again: if it still names that
 * pid, the pidfd is the process the file names, and a pid recycled after it
 * opened can never receive the signal.
 */
static void send_signal(const char *cmd, const struct inject_watch *w)
{
	pid_t pid = read_pid(cmd, w->pid_file);
	int pidfd, rc;

	if (pid == 0)
		return;
	pidfd = sigs_pidfd(pid);
	if (pidfd < 0) {
		ctl_err("%s: process %d of --pid-file: %s", cmd, (int)pid, strerror(-pidfd));
		return;
	}
	if (read_pid(cmd, w->pid_file) != pid) {
		ctl_err("%s: --pid-file %s changed while it was read; no signal sent", cmd,
			w->pid_file);
	} else if ((rc = sigs_send(pidfd, w->signal)) != 0) {
		ctl_err("%s: signalling process %d: %s", cmd, (int)pid, strerror(-rc));
	}
	close(pidfd);
}

/* /bin/sh -c CMD, not waited for (reaped on SIGCHLD); argv and environment are ours. */
static void run_on_change(const char *cmd, const char *shell_cmd, const sigset_t *childmask)
{
	pid_t pid = fork();

	if (pid < 0) {
		ctl_err("%s: --on-change: fork: %s", cmd, strerror(errno));
		return;
	}
	if (pid == 0) {
		sigprocmask(SIG_SETMASK, childmask, NULL);
		execl("/bin/sh", "sh", "-c", shell_cmd, (char *)NULL);
		_exit(127);
	}
}

void inject_notify(const char *cmd, const struct inject_watch *w, const sigset_t *childmask)
{
	if (w->on_change != NULL)
		run_on_change(cmd, w->on_change, childmask);
	if (w->pid_file != NULL)
		send_signal(cmd, w);
}

/* Reap --on-change commands; say so when one failed. */
static void reap(const char *cmd)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
			ctl_err("%s: --on-change exited with status %d", cmd, WEXITSTATUS(status));
		else if (WIFSIGNALED(status))
			ctl_err("%s: --on-change killed by signal %d", cmd, WTERMSIG(status));
	}
}

static uint32_t *versions_of(const struct inject *in)
{
	uint32_t *v = calloc(in->ntargets > 0 ? in->ntargets : 1, sizeof(*v));

	for (size_t i = 0; v != NULL && i < in->ntargets; i++)
		v[i] = in->targets[i].version;
	return v;
}

static char **names_of(const struct inject *in)
{
	char **names = calloc(in->ntargets > 0 ? in->ntargets : 1, sizeof(*names));

	for (size_t i = 0; names != NULL && i < in->ntargets; i++)
		names[i] = in->targets[i].name;
	return names;
}

/* A change: fetch the whole set; switch to it if anything is new, then notify. */
static void refresh(struct inject *in, const struct inject_watch *w, struct follow *f,
		    const sigset_t *childmask)
{
	long long now = sigs_now_ms();
	uint32_t *v = NULL;
	bool same = true;

	if (inject_fetch(in->targets, in->ntargets, in->cmd) != EXIT_OK) {
		follow_fetch_failed(f, now);
		return;
	}
	for (size_t i = 0; i < in->ntargets; i++)
		same = same && in->targets[i].version == f->applied[i];
	if (!same && inject_write_set(in) != EXIT_OK) {
		inject_drop_values(in->targets, in->ntargets);
		follow_fetch_failed(f, now);
		return;
	}
	inject_drop_values(in->targets, in->ntargets);
	v = versions_of(in);
	if (v == NULL) {
		follow_fetch_failed(f, now);
		return;
	}
	follow_fetched(f, v, now);
	free(v);
	/* Versions seen again (a late event) change nothing and notify no one. */
	if (!same)
		inject_notify(in->cmd, w, childmask);
}

static int loop(struct inject *in, const struct inject_watch *w, struct follow *f, int sigfd,
		const sigset_t *childmask)
{
	for (;;) {
		long long now = sigs_now_ms();
		struct pollfd pfd[2] = { { .fd = sigfd, .events = POLLIN },
					 { .fd = -1, .events = POLLIN } };
		int sig;

		follow_tick(f, now);
		if (follow_fetch_due(f, now))
			refresh(in, w, f, childmask);
		inject_sweep(in, sigs_now_ms(), false);
		pfd[1].fd = follow_fd(f);
		if (poll(pfd, 2, inject_sweep_timeout(in, sigs_now_ms(),
						      follow_timeout(f, sigs_now_ms()))) < 0 &&
		    errno != EINTR) {
			ctl_err("%s: poll: %s", in->cmd, strerror(errno));
			return EXIT_ERROR;
		}
		while ((pfd[0].revents & POLLIN) && (sig = sigs_read(sigfd)) > 0) {
			if (sig == SIGTERM || sig == SIGINT) {
				inject_sweep(in, 0, true);
				return EXIT_OK;
			}
			if (sig == SIGCHLD)
				reap(in->cmd);
		}
		if (pfd[1].fd >= 0 && pfd[1].revents != 0)
			follow_input(f, sigs_now_ms());
	}
}

int inject_watch_run(struct inject *in, const struct inject_watch *w)
{
	struct follow f = { .c.fd = -1 };
	sigset_t set, saved;
	uint32_t *v = NULL;
	char **names = NULL;
	int sigfd = -1;
	int rc = EXIT_ERROR;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	sigfd = sigs_open(&set, &saved);
	if (sigfd < 0) {
		ctl_err("%s: signalfd: %s", in->cmd, strerror(-sigfd));
		goto out;
	}
	rc = inject_write_set(in);
	inject_drop_values(in->targets, in->ntargets);
	if (rc != EXIT_OK)
		goto out;
	v = versions_of(in);
	names = names_of(in);
	rc = EXIT_ERROR;
	if (v == NULL || names == NULL || follow_init(&f, in->cmd, names, in->ntargets, v) != 0) {
		ctl_err("%s: out of memory", in->cmd);
		goto out;
	}
	rc = follow_start(&f, sigs_now_ms());
	/* Unreachable now is retried; a refusal (no WATCH, denied) is final. */
	if (rc != EXIT_OK && rc != EXIT_UNREACHABLE)
		goto out;
	rc = loop(in, w, &f, sigfd, &saved);
out:
	follow_free(&f);
	free(v);
	free(names);
	if (sigfd >= 0)
		close(sigfd);
	return rc;
}
