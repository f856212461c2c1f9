/*
 * secretd's subcommands other than `run`: each takes the arguments after
 * its own name (argv[0] is the subcommand) and returns the exit status.
 */
#ifndef SECRETD_COMMANDS_H
#define SECRETD_COMMANDS_H

int cmd_init(int argc, char **argv);         /* cmd_init.c */
int cmd_check_policy(int argc, char **argv); /* check_policy.c */
int cmd_audit_verify(int argc, char **argv); /* audit_verify.c */
int cmd_upstream_reset(int argc, char **argv); /* upstream_reset.c */

/* `--vault PATH --key-file PATH`, both required (cmd_init.c): 0, or -1 for usage. */
int cmd_vault_key_args(int argc, char **argv, const char **vault, const char **key);

/* run: argv[first..] are options (argv[0] is the program). */
int cmd_run(int argc, char **argv, int first); /* cmd_run.c */

#endif
