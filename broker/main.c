/*
 * secretd: its subcommands from one table (as secretctl's and wg's), each
 * in a file of its own; `secretd [--option ...]` alone means run.
 */
#include <stdio.h>
#include <string.h>

#include "commands.h"

static void usage(FILE *to)
{
	fprintf(to,
		"usage: secretd init --vault PATH --key-file PATH\n"
		"       secretd [run] [--config PATH] [--socket PATH] [--vault PATH] [--key-file PATH]\n"
		"               [--policy PATH] [--audit-log PATH] [--user NAME] [--socket-mode MODE]\n"
		"               [--max-secret-size N] [--keep-versions N] [--audit-sync batch|always]\n"
		"               [--SETTING VALUE ...]   (every config file key works as an option)\n"
		"       secretd audit-verify --key-file PATH [--vault PATH] FILE...\n"
		"       secretd check-policy PATH [--as SELECTOR... PERM NAME]\n"
		"       secretd upstream-reset --vault PATH --key-file PATH\n"
		"       secretd --version\n");
}

/* `secretd run OPTIONS`: argv[0] is "run". */
static int cmd_run_named(int argc, char **argv)
{
	return cmd_run(argc, argv, 1);
}

static const struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
} commands[] = {
	{ "run", cmd_run_named },
	{ "init", cmd_init },
	{ "check-policy", cmd_check_policy },
	{ "audit-verify", cmd_audit_verify },
	{ "upstream-reset", cmd_upstream_reset },
};

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "run";

	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(cmd, "--version") == 0) {
		printf("secretd %s\n", SECRETD_VERSION);
		return 0;
	}
	if (argc <= 1)
		return cmd_run(argc, argv, 1);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(cmd, commands[i].name) == 0)
			return commands[i].fn(argc - 1, argv + 1);
	if (strncmp(cmd, "--", 2) == 0)
		return cmd_run(argc, argv, 1);
	fprintf(stderr, "secretd: unknown command \"%s\"\n", cmd);
	usage(stderr);
	return 2;
}
