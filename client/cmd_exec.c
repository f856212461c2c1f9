/*
 * secretctl exec [--env VAR=NAME]... [--dir DIR NAME[=FILE]...]
 *                [--watch [--restart | --signal SIG]] -- CMD [ARG...]
 *
 * The supervisor for applications that read their secrets at start.  Every
 * secret is fetched first, all or nothing (the exit status says why), the
 * --dir files are written as inject writes them, then CMD runs with the
 * --env variables set to their values.  The signals a supervisor is sent
 * (HUP INT QUIT TERM USR1 USR2 WINCH ALRM) are passed on to CMD, and CMD's
 * exit status becomes ours (128 + N when it was killed by signal N).
 *
 * --watch: on a change of any name the whole set is fetched again; with
 * --restart (the default) CMD gets SIGTERM, SIGKILL after 10 s if it is
 * still there, and runs again with the new values; with --signal SIG (files
 * only) the files are replaced as one, as inject --watch does, and CMD gets
 * SIG.  A fetch that fails leaves CMD running as it is and is retried.
 *
 * The environment is the only place secretctl puts a secret where other
 * processes of the same user can read it (/proc/PID/environ); it does so
 * only for --env, in the child, just before execvp.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include <secretd/exitcodes.h>
#include <secretd/names.h>

#include "follow.h"
#include "inject.h"
#include "secretctl.h"
#include "sigs.h"

#define RESTART_GRACE_MS 10000
/* The exit status of a CMD that could not be run, as a shell says it. */
#define EXIT_NOEXEC 126
#define EXIT_NOTFOUND_CMD 127

extern char **environ;

static const int forwarded[] = { SIGHUP, SIGINT, SIGQUIT, SIGTERM,
				 SIGUSR1, SIGUSR2, SIGWINCH, SIGALRM };

enum child_state { CHILD_RUNNING, CHILD_STOPPING, CHILD_GONE };

struct exec {
	struct inject envs;  /* targets: name, file = the variable */
	struct inject files; /* targets in --dir; dirfd < 0 without --dir */
	bool watch, restart;
	int signal;          /* --signal, 0 for --restart */
	char **cmd;          /* CMD [ARG...], NULL-terminated */
	sigset_t childmask;  /* the mask to restore in CMD */
	pid_t pid;
	pid_t parent;        /* our pid, for the child's check after PR_SET_PDEATHSIG */
	int pidfd;
	enum child_state state;
	long long kill_at;   /* CHILD_STOPPING: SIGKILL then */
	bool exiting;        /* a stop signal came: no restart */
	int status;          /* CMD's exit status, as ours */
};

static bool env_var_valid(const char *s, size_t len)
{
	if (len == 0 || !((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') ||
			  s[0] == '_'))
		return false;
	for (size_t i = 1; i < len; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return false;
	return true;
}

/* --env VAR=NAME into the next env target. */
static int add_env(struct exec *x, const char *arg, size_t cap)
{
	const char *eq = strchr(arg, '=');
	struct target *t;
	const char *why;

	if (eq == NULL || !env_var_valid(arg, (size_t)(eq - arg)))
		return ctl_usage_err("exec", "--env needs VAR=NAME (VAR: letters, digits, _)");
	if (!name_valid(eq + 1, strlen(eq + 1), &why)) {
		ctl_err("exec: --env %.*s: invalid name: %s", (int)(eq - arg), arg, why);
		return EXIT_USAGE;
	}
	if (x->envs.ntargets == cap)
		return ctl_usage_err("exec", "too many --env");
	t = &x->envs.targets[x->envs.ntargets++];
	t->tmp.fd = -1;
	t->file = strndup(arg, (size_t)(eq - arg));
	t->name = strdup(eq + 1);
	if (t->file == NULL || t->name == NULL) {
		ctl_err("exec: out of memory");
		return EXIT_ERROR;
	}
	for (size_t i = 0; i + 1 < x->envs.ntargets; i++)
		if (strcmp(x->envs.targets[i].file, t->file) == 0)
			return ctl_usage_err("exec", "--env %s given twice", t->file);
	return EXIT_OK;
}

/* An option's value: "--opt=V" or "--opt V". */
static const char *opt_value(int argc, char **argv, int *i, const char *opt)
{
	size_t len = strlen(opt);

	if (strncmp(argv[*i], opt, len) == 0 && argv[*i][len] == '=')
		return argv[*i] + len + 1;
	if (strcmp(argv[*i], opt) == 0 && *i + 1 < argc)
		return argv[++*i];
	return NULL;
}

static bool is_opt(const char *arg, const char *opt)
{
	size_t len = strlen(opt);

	return strncmp(arg, opt, len) == 0 && (arg[len] == '\0' || arg[len] == '=');
}

struct exec_args {
	const char *owner, *mode, *sig;
	char **ops;
	int nops;
	bool help;
};

/* Everything before "--" is ours; operands are --dir's NAME[=FILE]. */
static int parse_args(struct exec *x, int argc, char **argv, struct exec_args *a)
{
	static const char *const valued[] = { "--dir", "--owner", "--mode", "--signal" };
	const char **slots[] = { &x->files.dir, &a->owner, &a->mode, &a->sig };
	int i, rc;

	a->ops = calloc((size_t)argc, sizeof(*a->ops));
	x->envs.targets = calloc((size_t)argc, sizeof(*x->envs.targets));
	if (a->ops == NULL || x->envs.targets == NULL) {
		ctl_err("exec: out of memory");
		return EXIT_ERROR;
	}
	for (i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
		bool done = false;

		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			printf("usage: secretctl [-s SOCKET] %s\n", ctl_usage_of("exec"));
			a->help = true;
			return fflush(stdout) == 0 ? EXIT_OK : EXIT_ERROR;
		}
		if (is_opt(argv[i], "--env")) {
			const char *v = opt_value(argc, argv, &i, "--env");
			if (v == NULL)
				return ctl_usage_err("exec", "option --env needs a value");
			if ((rc = add_env(x, v, (size_t)argc)) != EXIT_OK)
				return rc;
			continue;
		}
		for (size_t k = 0; k < sizeof(valued) / sizeof(valued[0]) && !done; k++) {
			if (!is_opt(argv[i], valued[k]))
				continue;
			*slots[k] = opt_value(argc, argv, &i, valued[k]);
			if (*slots[k] == NULL)
				return ctl_usage_err("exec", "option %s needs a value", valued[k]);
			done = true;
		}
		if (done)
			continue;
		if (strcmp(argv[i], "--allow-disk") == 0)
			x->files.allow_disk = true;
		else if (strcmp(argv[i], "--watch") == 0)
			x->watch = true;
		else if (strcmp(argv[i], "--restart") == 0)
			x->restart = true;
		else if (argv[i][0] == '-')
			return ctl_usage_err("exec", "unknown option %s", argv[i]);
		else
			a->ops[a->nops++] = argv[i];
	}
	if (i >= argc - 1)
		return ctl_usage_err("exec", "no CMD given after --");
	x->cmd = argv + i + 1;
	return EXIT_OK;
}

static int check_args(struct exec *x, struct exec_args *a)
{
	int rc;

	if (a->nops > 0 && x->files.dir == NULL)
		return ctl_usage_err("exec", "NAME[=FILE] operands go with --dir DIR");
	if (x->files.dir != NULL && a->nops == 0)
		return ctl_usage_err("exec", "--dir DIR needs NAME[=FILE] operands");
	if (x->files.dir == NULL && (a->owner != NULL || a->mode != NULL || x->files.allow_disk))
		return ctl_usage_err("exec", "--owner, --mode and --allow-disk go with --dir");
	if (x->envs.ntargets == 0 && a->nops == 0)
		return ctl_usage_err("exec", "no secret named (--env VAR=NAME or --dir DIR NAME)");
	if (!x->watch && (x->restart || a->sig != NULL))
		return ctl_usage_err("exec", "--restart and --signal go with --watch");
	if (x->restart && a->sig != NULL)
		return ctl_usage_err("exec", "--restart and --signal exclude each other");
	if (a->sig != NULL) {
		if (!sigs_parse(a->sig, &x->signal)) {
			ctl_err("exec: --signal needs a signal name (HUP, USR1...) or number");
			return EXIT_USAGE;
		}
		/* A running process's environment cannot be changed from outside. */
		if (x->envs.ntargets > 0)
			return ctl_usage_err("exec", "--signal is for --dir files only; --env needs --restart");
	}
	x->restart = x->watch && a->sig == NULL;
	if (x->files.dir == NULL)
		return EXIT_OK;
	rc = inject_check_options(&x->files, "exec", a->owner, a->mode);
	if (rc == EXIT_OK)
		rc = inject_parse_targets(&x->files, "exec", a->ops, a->nops);
	if (rc == EXIT_OK)
		rc = inject_open_dir(&x->files);
	return rc;
}

/* Both sets, all or nothing. */
static int fetch(struct exec *x)
{
	int rc = inject_fetch(x->envs.targets, x->envs.ntargets, "exec");

	if (rc == EXIT_OK && x->files.ntargets > 0) {
		rc = inject_fetch(x->files.targets, x->files.ntargets, "exec");
		if (rc != EXIT_OK)
			inject_drop_values(x->envs.targets, x->envs.ntargets);
	}
	return rc;
}

static int write_files(struct exec *x)
{
	int rc = EXIT_OK;

	if (x->files.ntargets == 0)
		return EXIT_OK;
	rc = x->watch ? inject_write_set(&x->files) : inject_write_files(&x->files);
	inject_drop_values(x->files.targets, x->files.ntargets);
	return rc;
}

/* In the child: our environment minus the --env variables, plus them with their values. */
static char **child_env(const struct exec *x)
{
	size_t n = 0, k = 0;
	char **env;

	while (environ[n] != NULL)
		n++;
	env = calloc(n + x->envs.ntargets + 1, sizeof(*env));
	if (env == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		bool ours = false;
		for (size_t j = 0; j < x->envs.ntargets && !ours; j++) {
			size_t vl = strlen(x->envs.targets[j].file);
			ours = strncmp(environ[i], x->envs.targets[j].file, vl) == 0 &&
			       environ[i][vl] == '=';
		}
		if (!ours)
			env[k++] = environ[i];
	}
	for (size_t j = 0; j < x->envs.ntargets; j++) {
		const struct target *t = &x->envs.targets[j];
		size_t vl = strlen(t->file);
		char *s = malloc(vl + 1 + t->len + 1);

		if (s == NULL)
			return NULL;
		memcpy(s, t->file, vl);
		s[vl] = '=';
		if (t->len > 0)
			memcpy(s + vl + 1, t->value, t->len);
		s[vl + 1 + t->len] = '\0';
		env[k++] = s;
	}
	env[k] = NULL;
	return env;
}

static int env_values_ok(const struct exec *x)
{
	for (size_t j = 0; j < x->envs.ntargets; j++) {
		const struct target *t = &x->envs.targets[j];
		if (t->len > 0 && memchr(t->value, '\0', t->len) != NULL) {
			ctl_err("exec: --env %s: %s holds a NUL byte, which an environment "
				"variable cannot carry; use --dir", t->file, t->name);
			return EXIT_ERROR;
		}
	}
	return EXIT_OK;
}

static int spawn(struct exec *x)
{
	int rc = env_values_ok(x);

	if (rc != EXIT_OK)
		goto out;
	x->parent = getpid();
	x->pid = fork();
	if (x->pid < 0) {
		ctl_err("exec: fork: %s", strerror(errno));
		rc = EXIT_ERROR;
		goto out;
	}
	if (x->pid == 0) {
		char **env = child_env(x);

		sigprocmask(SIG_SETMASK, &x->childmask, NULL);
		/* A supervisor killed outright must not leave CMD running unsupervised. */
		if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != x->parent)
			_exit(EXIT_ERROR);
		if (env == NULL) {
			ctl_err("exec: out of memory");
			_exit(EXIT_ERROR);
		}
		execvpe(x->cmd[0], x->cmd, env);
		ctl_err("exec: %s: %s", x->cmd[0], strerror(errno));
		_exit(errno == ENOENT ? EXIT_NOTFOUND_CMD : EXIT_NOEXEC);
	}
	/* Our child cannot be reaped by anyone else, but the pidfd keeps that explicit. */
	x->pidfd = sigs_pidfd(x->pid);
	x->state = CHILD_RUNNING;
	rc = EXIT_OK;
out:
	inject_drop_values(x->envs.targets, x->envs.ntargets);
	return rc;
}

static void signal_child(struct exec *x, int sig)
{
	int rc = x->pidfd >= 0 ? sigs_send(x->pidfd, sig) : (kill(x->pid, sig) == 0 ? 0 : -errno);

	if (rc != 0 && rc != -ESRCH)
		ctl_err("exec: signalling %s: %s", x->cmd[0], strerror(-rc));
}

/* CMD is gone: its status (or, while restarting, nothing yet). */
static void child_exited(struct exec *x, int status)
{
	if (x->pidfd >= 0)
		close(x->pidfd);
	x->pidfd = -1;
	x->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	x->state = CHILD_GONE;
}

static void reap(struct exec *x)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (pid == x->pid && (WIFEXITED(status) || WIFSIGNALED(status)))
			child_exited(x, status);
	}
}

/* Restart: the values are fetched; now stop CMD (SIGTERM, then SIGKILL). */
static void begin_restart(struct exec *x, long long now)
{
	signal_child(x, SIGTERM);
	x->state = CHILD_STOPPING;
	x->kill_at = now + RESTART_GRACE_MS;
}

static uint32_t *all_versions(const struct exec *x)
{
	size_t n = x->envs.ntargets + x->files.ntargets;
	uint32_t *v = calloc(n > 0 ? n : 1, sizeof(*v));

	for (size_t i = 0; v != NULL && i < x->envs.ntargets; i++)
		v[i] = x->envs.targets[i].version;
	for (size_t i = 0; v != NULL && i < x->files.ntargets; i++)
		v[x->envs.ntargets + i] = x->files.targets[i].version;
	return v;
}

static char **all_names(const struct exec *x)
{
	size_t n = x->envs.ntargets + x->files.ntargets;
	char **names = calloc(n > 0 ? n : 1, sizeof(*names));

	for (size_t i = 0; names != NULL && i < x->envs.ntargets; i++)
		names[i] = x->envs.targets[i].name;
	for (size_t i = 0; names != NULL && i < x->files.ntargets; i++)
		names[x->envs.ntargets + i] = x->files.targets[i].name;
	return names;
}

/* A change: fetch everything; if anything is new, restart CMD or switch and signal. */
static void refresh(struct exec *x, struct follow *f)
{
	long long now = sigs_now_ms();
	uint32_t *v;
	bool same = true;

	if (fetch(x) != EXIT_OK) {
		follow_fetch_failed(f, now);
		return;
	}
	v = all_versions(x);
	if (v == NULL) {
		inject_drop_values(x->envs.targets, x->envs.ntargets);
		inject_drop_values(x->files.targets, x->files.ntargets);
		follow_fetch_failed(f, now);
		return;
	}
	for (size_t i = 0; i < f->n; i++)
		same = same && v[i] == f->applied[i];
	if (same) {
		inject_drop_values(x->envs.targets, x->envs.ntargets);
		inject_drop_values(x->files.targets, x->files.ntargets);
		follow_fetched(f, v, now);
	} else if (x->restart) {
		/* The new values wait in locked memory until CMD is gone. */
		follow_fetched(f, v, now);
		begin_restart(x, now);
	} else if (write_files(x) == EXIT_OK) {
		follow_fetched(f, v, now);
		signal_child(x, x->signal);
	} else {
		follow_fetch_failed(f, now);
	}
	free(v);
}

/* The old CMD is gone during a restart: the new values in place, CMD again. */
static int finish_restart(struct exec *x)
{
	int rc = write_files(x);

	if (rc == EXIT_OK)
		rc = spawn(x);
	inject_drop_values(x->envs.targets, x->envs.ntargets);
	return rc;
}

static int on_signal(struct exec *x, int sig, long long now)
{
	(void)now;
	if (sig == SIGCHLD) {
		reap(x);
		return EXIT_OK;
	}
	if (sig == SIGTERM || sig == SIGINT || sig == SIGQUIT || sig == SIGHUP)
		x->exiting = x->exiting || sig != SIGHUP;
	if (x->state != CHILD_GONE)
		signal_child(x, sig);
	return EXIT_OK;
}

/* Until CMD ends for good: its status. */
static int supervise(struct exec *x, struct follow *f, int sigfd)
{
	for (;;) {
		long long now = sigs_now_ms();
		struct pollfd pfd[2] = { { .fd = sigfd, .events = POLLIN },
					 { .fd = -1, .events = POLLIN } };
		int timeout = -1, sig;

		if (x->state == CHILD_GONE) {
			if (!x->watch || x->exiting || x->kill_at == 0)
				return x->status;
			x->kill_at = 0;
			if (finish_restart(x) != EXIT_OK)
				return EXIT_ERROR;
			continue;
		}
		if (x->state == CHILD_STOPPING && now >= x->kill_at && x->kill_at != 0) {
			signal_child(x, SIGKILL);
			x->kill_at = now + 60000; /* only once; the SIGCHLD comes */
		}
		if (x->watch && x->state == CHILD_RUNNING) {
			follow_tick(f, now);
			if (follow_fetch_due(f, now) && !x->exiting)
				refresh(x, f);
			pfd[1].fd = follow_fd(f);
			timeout = follow_timeout(f, sigs_now_ms());
		}
		if (x->state == CHILD_STOPPING) {
			long long left = x->kill_at - now;
			timeout = left < 0 ? 0 : (int)left;
		}
		if (x->files.dirfd >= 0) {
			inject_sweep(&x->files, sigs_now_ms(), false);
			timeout = inject_sweep_timeout(&x->files, sigs_now_ms(), timeout);
		}
		if (poll(pfd, 2, timeout) < 0 && errno != EINTR) {
			ctl_err("exec: poll: %s", strerror(errno));
			return EXIT_ERROR;
		}
		while ((pfd[0].revents & POLLIN) && (sig = sigs_read(sigfd)) > 0)
			on_signal(x, sig, now);
		if (pfd[1].fd >= 0 && pfd[1].revents != 0)
			follow_input(f, sigs_now_ms());
	}
}

static void exec_free(struct exec *x)
{
	if (x->files.dirfd >= 0)
		inject_sweep(&x->files, 0, true);
	inject_free(&x->envs);
	inject_free(&x->files);
	if (x->pidfd >= 0)
		close(x->pidfd);
}

int cmd_exec(int argc, char **argv)
{
	struct exec x = { .envs = { .cmd = "exec", .dirfd = -1 },
			  .files = { .cmd = "exec", .dirfd = -1 },
			  .pidfd = -1, .state = CHILD_GONE };
	struct exec_args a = { 0 };
	struct follow f = { .c.fd = -1 };
	char **names = NULL;
	uint32_t *v = NULL;
	sigset_t set;
	int sigfd = -1;
	int rc;

	rc = parse_args(&x, argc, argv, &a);
	if (rc != EXIT_OK || a.help)
		goto out;
	rc = check_args(&x, &a);
	if (rc != EXIT_OK)
		goto out;
	/* Signals are ours from before the fetch, so none is lost before CMD runs. */
	sigemptyset(&set);
	for (size_t i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++)
		sigaddset(&set, forwarded[i]);
	sigaddset(&set, SIGCHLD);
	sigfd = sigs_open(&set, &x.childmask);
	if (sigfd < 0) {
		ctl_err("exec: signalfd: %s", strerror(-sigfd));
		rc = EXIT_ERROR;
		goto out;
	}
	rc = fetch(&x);
	if (rc != EXIT_OK)
		goto out;
	v = all_versions(&x);
	names = all_names(&x);
	if (v == NULL || names == NULL ||
	    follow_init(&f, "exec", names, x.envs.ntargets + x.files.ntargets, v) != 0) {
		ctl_err("exec: out of memory");
		rc = EXIT_ERROR;
		goto out;
	}
	rc = write_files(&x);
	if (rc == EXIT_OK)
		rc = spawn(&x);
	if (rc != EXIT_OK)
		goto out;
	if (x.watch) {
		int w = follow_start(&f, sigs_now_ms());
		/* CMD runs already: a subscription refused is said, and CMD goes on unwatched. */
		if (w != EXIT_OK && w != EXIT_UNREACHABLE) {
			ctl_err("exec: not watching for changes");
			x.watch = false;
		}
	}
	rc = supervise(&x, &f, sigfd);
out:
	inject_drop_values(x.envs.targets, x.envs.ntargets);
	inject_drop_values(x.files.targets, x.files.ntargets);
	follow_free(&f);
	free(names);
	free(v);
	free(a.ops);
	exec_free(&x);
	if (sigfd >= 0)
		close(sigfd);
	return rc;
}
