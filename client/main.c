/*
 * secretctl: the secretd client and init-container helper.
 *
 * One file a subcommand; this table drives both dispatch and usage.  Only
 * exact subcommand names are accepted: no prefix matching in a tool that
 * deletes secrets.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include <secretd/exitcodes.h>

#include "secretctl.h"

#define DEFAULT_SOCKET "/run/secretd/secretd.sock"

const char *ctl_socket = DEFAULT_SOCKET;

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *args;
	const char *description;
} subcommands[] = {
	{ "get", cmd_get, "get NAME [-o FILE] [--version N]",
	  "print a secret's value, byte-exact (or write it to FILE, mode 0400)" },
	{ "put", cmd_put,
	  "put NAME [--from-file FILE | --generate N [--charset base64|hex|alnum]]",
	  "store a new version from stdin (or FILE, or N random characters);"
	  " prints the version number" },
	{ "list", cmd_list, "list [GLOB]", "the names you may list, sorted, one a line" },
	{ "rm", cmd_rm, "rm NAME", "delete a secret, every version" },
	{ "whoami", cmd_whoami, "whoami", "your identity as the broker sees it" },
	{ "inject", cmd_inject,
	  "inject --dir DIR [--owner UID:GID] [--mode MODE] [--allow-disk]"
	  " [--watch [--on-change CMD] [--signal SIG --pid-file FILE]] NAME[=FILE]...",
	  "fetch every NAME, then write each to DIR/FILE; all or nothing" },
	{ "watch", cmd_watch, "watch PATTERN...",
	  "print NAME VERSION for each readable match, then each change as it happens" },
	{ "exec", cmd_exec,
	  "exec [--env VAR=NAME]... [--dir DIR NAME[=FILE]...] [--watch [--restart | --signal SIG]]"
	  " -- CMD [ARG...]",
	  "fetch every secret, then run CMD with them in its environment or files" },
	{ "ping", cmd_ping, "ping", "check that the broker answers" },
	{ "status", cmd_status, "status",
	  "the broker's state: upstream, revision, lag, secrets, audit, version" },
};

#define NSUBCOMMANDS (sizeof(subcommands) / sizeof(subcommands[0]))

const char *ctl_usage_of(const char *cmd)
{
	for (size_t i = 0; i < NSUBCOMMANDS; i++)
		if (strcmp(subcommands[i].name, cmd) == 0)
			return subcommands[i].args;
	return cmd;
}

static void show_usage(FILE *f)
{
	fprintf(f, "usage: secretctl [-s SOCKET] COMMAND [ARGS]\n"
		   "       secretctl --help | --version\n\n"
		   "commands:\n");
	for (size_t i = 0; i < NSUBCOMMANDS; i++)
		fprintf(f, "  %s\n      %s\n", subcommands[i].args, subcommands[i].description);
	fprintf(f, "\nThe socket is -s SOCKET, else $SECRETD_SOCKET, else %s.\n"
		   "Exit status: 0 ok, 1 error, 2 usage, 3 not found, 4 permission denied,\n"
		   "5 broker unreachable, 6 broker unavailable (vault sealed, audit log).\n",
		   DEFAULT_SOCKET);
}

/* A usage error before any subcommand: the reason, then the usage, on stderr. */
/* One line, like every message (the contract); the full text is --help's. */
static int usage_error(const char *what, const char *arg)
{
	if (arg != NULL)
		ctl_err("%s: %s (secretctl --help lists the commands)", what, arg);
	else
		ctl_err("%s (secretctl --help lists the commands)", what);
	return EXIT_USAGE;
}

int main(int argc, char **argv)
{
	const char *env = getenv("SECRETD_SOCKET");
	int i = 1;

	/*
	 * A closed pipe on stdout must be an error we report (EPIPE), not a
	 * silent death halfway through a value.
	 */
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
		ctl_err("cannot ignore SIGPIPE");
		return EXIT_ERROR;
	}
	if (sodium_init() < 0) {
		ctl_err("cannot initialise libsodium");
		return EXIT_ERROR;
	}
	if (env != NULL && env[0] != '\0')
		ctl_socket = env;

	for (; i < argc; i++) {
		if (strcmp(argv[i], "-s") == 0 || strcmp(argv[i], "--socket") == 0) {
			if (i + 1 >= argc)
				return usage_error("option needs a SOCKET", argv[i]);
			ctl_socket = argv[++i];
		} else if (strncmp(argv[i], "--socket=", 9) == 0) {
			ctl_socket = argv[i] + 9;
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			show_usage(stdout);
			return fflush(stdout) == 0 ? EXIT_OK : EXIT_ERROR;
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("secretctl %s\n", SECRETD_VERSION);
			return fflush(stdout) == 0 ? EXIT_OK : EXIT_ERROR;
		} else if (argv[i][0] == '-') {
			return usage_error("unknown option", argv[i]);
		} else {
			break;
		}
	}
	if (ctl_socket[0] == '\0')
		return usage_error("the socket path is empty", NULL);
	if (i >= argc)
		return usage_error("no command given", NULL);
	if (strcmp(argv[i], "help") == 0) {
		show_usage(stdout);
		return fflush(stdout) == 0 ? EXIT_OK : EXIT_ERROR;
	}
	for (size_t k = 0; k < NSUBCOMMANDS; k++)
		if (strcmp(argv[i], subcommands[k].name) == 0)
			return subcommands[k].fn(argc - i, argv + i);
	return usage_error("unknown command", argv[i]);
}
