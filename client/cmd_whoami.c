/* secretctl whoami: the broker's key/value pairs, key=value, in its order. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <secretd/exitcodes.h>
#include <secretd/wire.h>

#include "conn.h"
#include "secretctl.h"

int cmd_whoami(int argc, char **argv)
{
	struct wire_request req = { .type = WIRE_WHOAMI };
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
		rc = conn_request(&c, &req, "whoami");
	if (rc != EXIT_OK)
		goto out;
	rc = EXIT_ERROR;
	cursor = c.resp.items_raw;
	while (wire_items_next(&cursor, &key)) {
		if (!wire_items_next(&cursor, &value)) {
			ctl_err("whoami: malformed answer from the broker: a key without a value");
			goto out;
		}
		/* One line a field: a newline in a cgroup path would split it. */
		ctl_put_text(key.ptr, key.len);
		putchar('=');
		ctl_put_text(value.ptr, value.len);
		putchar('\n');
	}
	if (fflush(stdout) != 0 || ferror(stdout)) {
		ctl_err("whoami: writing to standard output: %s", strerror(errno));
		goto out;
	}
	rc = EXIT_OK;
out:
	conn_close(&c);
	return rc;
}
