/* secretctl rm NAME: silent on success. */
#include <stdio.h>
#include <string.h>

#include <secretd/exitcodes.h>
#include <secretd/names.h>
#include <secretd/wire.h>

#include "conn.h"
#include "secretctl.h"

int cmd_rm(int argc, char **argv)
{
	struct wire_request req = { .type = WIRE_DELETE };
	struct conn c = { .fd = -1 };
	char context[300];
	const char *why;
	bool help;
	int nops = 0;
	int rc;

	rc = ctl_parse_args(argc, argv, NULL, 0, &nops, &help);
	if (rc != 0 || help)
		goto out;
	if (nops != 1) {
		rc = ctl_usage_err(argv[0], nops == 0 ? "no NAME given" : "one NAME only");
		goto out;
	}
	if (!name_valid(argv[1], strlen(argv[1]), &why)) {
		ctl_err("rm: invalid name: %s", why);
		rc = EXIT_USAGE;
		goto out;
	}
	snprintf(context, sizeof(context), "rm %s", argv[1]);
	req.name.ptr = (const uint8_t *)argv[1];
	req.name.len = strlen(argv[1]);
	rc = conn_open(&c);
	if (rc == EXIT_OK)
		rc = conn_request(&c, &req, context);
out:
	conn_close(&c);
	return rc;
}
