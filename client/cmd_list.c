/* secretctl list [GLOB] */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <secretd/exitcodes.h>
#include <secretd/wire.h>

#include "conn.h"
#include "secretctl.h"

/* Byte order, shorter first on a common prefix: the order the broker promises. */
static int compare_names(const void *a, const void *b)
{
	const struct wire_str *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int d = memcmp(x->ptr, y->ptr, n);

	if (d != 0)
		return d;
	return (x->len > y->len) - (x->len < y->len);
}

int cmd_list(int argc, char **argv)
{
	struct wire_request req = { .type = WIRE_LIST };
	struct conn c = { .fd = -1 };
	struct wire_str *names = NULL;
	struct wire_str cursor, item;
	char context[300] = "list";
	size_t count = 0, i = 0;
	bool help;
	int nops = 0;
	int rc;

	rc = ctl_parse_args(argc, argv, NULL, 0, &nops, &help);
	if (rc != 0 || help)
		goto out;
	if (nops > 1) {
		rc = ctl_usage_err(argv[0], "one GLOB only");
		goto out;
	}
	if (nops == 1) {
		/* The broker judges the glob; an empty one would mean "everything". */
		if (argv[1][0] == '\0') {
			rc = ctl_usage_err(argv[0], "the GLOB is empty");
			goto out;
		}
		req.name.ptr = (const uint8_t *)argv[1];
		req.name.len = strlen(argv[1]);
		snprintf(context, sizeof(context), "list %s", argv[1]);
	}
	rc = conn_open(&c);
	if (rc == EXIT_OK)
		rc = conn_request(&c, &req, context);
	if (rc != EXIT_OK)
		goto out;

	rc = EXIT_ERROR;
	for (cursor = c.resp.items_raw; wire_items_next(&cursor, &item);)
		count++;
	names = calloc(count > 0 ? count : 1, sizeof(*names));
	if (names == NULL) {
		ctl_err("%s: out of memory", context);
		goto out;
	}
	for (cursor = c.resp.items_raw; i < count && wire_items_next(&cursor, &item);)
		names[i++] = item;
	qsort(names, count, sizeof(*names), compare_names);
	for (i = 0; i < count; i++) {
		fwrite(names[i].ptr, 1, names[i].len, stdout);
		putchar('\n');
	}
	if (fflush(stdout) != 0 || ferror(stdout)) {
		ctl_err("%s: writing to standard output: %s", context, strerror(errno));
		goto out;
	}
	rc = EXIT_OK;
out:
	free(names);
	conn_close(&c);
	return rc;
}
