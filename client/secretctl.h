/*
 * secretctl's shared pieces: the subcommands dispatched from main.c, the
 * one-line messages, the option parser and the one number parser.
 */
#ifndef SECRETCTL_H
#define SECRETCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The broker's socket, chosen in main() from -s, $SECRETD_SOCKET or the default. */
extern const char *ctl_socket;

/* Subcommands: argv[0] is the subcommand's name; they return an exit status. */
int cmd_get(int argc, char **argv);
int cmd_put(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_whoami(int argc, char **argv);
int cmd_inject(int argc, char **argv);
int cmd_ping(int argc, char **argv);
int cmd_watch(int argc, char **argv);
int cmd_exec(int argc, char **argv);
int cmd_status(int argc, char **argv);

/* A command answered with key/value pairs (pairs.c): WIRE_WHOAMI or WIRE_STATUS. */
int ctl_pairs_command(int argc, char **argv, uint8_t type, const char *what);

/* The usage line of a subcommand ("get NAME [-o FILE] [--version N]"). */
const char *ctl_usage_of(const char *cmd);

/*
 * One line on stderr, "secretctl: " and the formatted text.  Bytes that are
 * not printable are shown as '?', so that nothing a broker or an argument
 * says can break the line or reach the terminal as a control sequence.
 */
void ctl_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Text from the broker (a banner, a whoami field) on stdout, each control
 * byte shown as '?' so that it stays on its line.  UTF-8 passes through.
 */
void ctl_put_text(const uint8_t *text, size_t len);

/* A usage error of CMD: the reason and the subcommand's usage, one line; EXIT_USAGE. */
int ctl_usage_err(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* An option of a subcommand: exact name only ("-o", "--version"). */
struct ctl_opt {
	const char *name;
	bool takes_value;
	const char **value; /* set when takes_value */
	bool *flag;         /* set when !takes_value */
};

/*
 * Parse argv[1..argc) of subcommand argv[0]: options may come before or after
 * the operands, "--" ends options, "--opt=VALUE" is the same as "--opt VALUE".
 * The operands are moved to argv[1..1+*nops).  "-h"/"--help" prints the
 * usage to stdout and sets *help.  Returns 0 or EXIT_USAGE (message printed).
 */
int ctl_parse_args(int argc, char **argv, const struct ctl_opt *opts, size_t nopts,
		   int *nops, bool *help);

/*
 * The one number parser: digits of base (8 or 10) only, in [min, max];
 * false on anything else.  ctl_parse_u32 is the decimal case.
 */
bool ctl_parse_number(const char *s, int base, uint64_t min, uint64_t max, uint64_t *out);
bool ctl_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out);

/* Write all of buf to fd, retrying on EINTR and short writes; 0 or -errno. */
int ctl_write_all(int fd, const uint8_t *buf, size_t len);

#endif
