/*
 * secretd's subcommands other than `run`: each takes the arguments after
 * its own name (argv[0] is the subcommand) and returns the exit status.
 */
#ifndef SECRETD_COMMANDS_H
#define SECRETD_COMMANDS_H

int cmd_init(int argc, char **argv);         /* commands.c */
int cmd_check_policy(int argc, char **argv); /* check_policy.c */
int cmd_audit_verify(int argc, char **argv); /* audit_verify.c */

#endif
