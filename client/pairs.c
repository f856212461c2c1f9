/*
 * Commands whose answer is the broker's key/value pairs (whoami, status),
 * printed key=value, one a line, in the broker's order.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <secretd/exitcodes.h>
#include <secretd/wire.h>

#include "conn.h"
#include "secretctl.h"

int ctl_pairs_command(int argc, char **argv, uint8_t type, const char *what)
{
	struct wire_request req = { .type = type };
	struct conn c = { .fd = -1 };
	struct wire_str cursor, key, value;
	bool help;
	int nops = 0;
	int rc;

	rc = ctl_parse_args(argc, argv, NULL, 0, &nops, &help);
	if (rc != 0 || help)
		goto out;
	if (nops != 0) {
		rc = ctl_usage_err(argv[0], "no arguments expected");
		goto out;
	}
	rc = conn_open(&c);
	if (rc == EXIT_OK)
		rc = conn_request(&c, &req, what);
	if (rc != EXIT_OK)
		goto out;
	rc = EXIT_ERROR;
	cursor = c.resp.items_raw;
	while (wire_items_next(&cursor, &key)) {
		if (!wire_items_next(&cursor, &value)) {
			ctl_err("%s: malformed answer from the broker: a key without a value", what);
			goto out;
		}
		/* One line a field: a newline in a cgroup path would split it. */
		ctl_put_text(key.ptr, key.len);
		putchar('=');
		ctl_put_text(value.ptr, value.len);
		putchar('\n');
	}
	if (fflush(stdout) != 0 || ferror(stdout)) {
		ctl_err("%s: writing to standard output: %s", what, strerror(errno));
		goto out;
	}
	rc = EXIT_OK;
out:
	conn_close(&c);
	return rc;
}
