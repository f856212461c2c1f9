/* secretctl whoami: the broker's key/value pairs, key=value, in its order. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <secretd/exitcodes.h>
#include <secretd/wire.h>

#include "conn.h"
#include "secretctl.h"

/* A value on one line: a newline or control byte in a cgroup path would split it. */
static void put_field(const struct wire_str *s)
{
	for (size_t i = 0; i < s->len; i++) {
		unsigned char ch = s->ptr[i];
		putchar(ch < 0x20 || ch == 0x7f ? '?' : ch);
	}
}

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
		put_field(&key);
		putchar('=');
		put_field(&value);
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
