/* secretctl ping: the broker's banner line. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <secretd/exitcodes.h>
#include <secretd/wire.h>

#include "conn.h"
#include "secretctl.h"

int cmd_ping(int argc, char **argv)
{
	struct wire_request req = { .type = WIRE_PING };
	struct conn c = { .fd = -1 };
	size_t len;
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
		rc = conn_request(&c, &req, "ping");
	if (rc != EXIT_OK)
		goto out;
	len = c.resp.value.len;
	if (len > 0 && c.resp.value.ptr[len - 1] == '\n')
		len--;
	ctl_put_text(c.resp.value.ptr, len);
	putchar('\n');
	if (fflush(stdout) != 0 || ferror(stdout)) {
		ctl_err("ping: writing to standard output: %s", strerror(errno));
		rc = EXIT_ERROR;
	}
out:
	conn_close(&c);
	return rc;
}
