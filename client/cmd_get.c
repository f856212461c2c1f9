/* secretctl get NAME [-o FILE] [--version N] */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include <secretd/exitcodes.h>
#include <secretd/names.h>
#include <secretd/wire.h>

#include "atomicfile.h"
#include "conn.h"
#include "secretctl.h"

/*
 * -o FILE: the value appears at FILE whole, mode 0400, or not at all.  The
 * directory part is resolved like any path the user names; the file itself
 * is written through atomicfile, so nothing is left behind on failure.
 */
static int write_to_file(const char *context, const char *path, const struct wire_str *value)
{
	const struct afile_attrs attrs = { .mode = 0400 };
	const char *slash = strrchr(path, '/');
	const char *base = slash != NULL ? slash + 1 : path;
	char *dir = NULL;
	struct afile f = { .fd = -1 };
	const char *why;
	sigset_t saved;
	bool held = false;
	int dirfd = -1;
	int rc = EXIT_ERROR;
	int err;

	if (!afile_name_valid(base, &why)) {
		ctl_err("%s: -o %s: %s", context, path, why);
		goto out;
	}
	if (slash == NULL)
		dir = strdup(".");
	else if (slash == path)
		dir = strdup("/");
	else
		dir = strndup(path, (size_t)(slash - path));
	if (dir == NULL) {
		ctl_err("%s: out of memory", context);
		goto out;
	}
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		ctl_err("%s: -o %s: opening %s: %s", context, path, dir, strerror(errno));
		goto out;
	}
	afile_signals_hold(&saved);
	held = true;
	afile_sweep(dirfd);
	err = afile_create(&f, dirfd);
	if (err == 0)
		err = afile_fill(&f, value->ptr, value->len, &attrs);
	if (err == 0)
		err = afile_commit(&f, base);
	if (err == 0 && fsync(dirfd) != 0) {
		err = -errno;
		f.failed = "syncing the directory";
		/* Said to have failed, so not left in place either. */
		(void)unlinkat(dirfd, base, 0);
	}
	if (err != 0) {
		ctl_err("%s: -o %s: %s: %s", context, path, f.failed, strerror(-err));
		goto out;
	}
	rc = EXIT_OK;
out:
	afile_discard(&f);
	if (held)
		afile_signals_release(&saved);
	if (dirfd >= 0)
		close(dirfd);
	free(dir);
	return rc;
}

int cmd_get(int argc, char **argv)
{
	const char *out_file = NULL, *version_arg = NULL, *why;
	const struct ctl_opt opts[] = {
		{ "-o", true, &out_file, NULL },
		{ "--version", true, &version_arg, NULL },
	};
	struct wire_request req = { .type = WIRE_GET };
	struct conn c = { .fd = -1 };
	char context[300];
	uint32_t version = 0;
	bool help;
	int nops = 0;
	int rc;

	rc = ctl_parse_args(argc, argv, opts, sizeof(opts) / sizeof(opts[0]), &nops, &help);
	if (rc != 0 || help)
		goto out;
	rc = EXIT_USAGE;
	if (nops != 1) {
		rc = ctl_usage_err(argv[0], nops == 0 ? "no NAME given" : "one NAME only");
		goto out;
	}
	if (!name_valid(argv[1], strlen(argv[1]), &why)) {
		ctl_err("get: invalid name: %s", why);
		goto out;
	}
	if (version_arg != NULL && !ctl_parse_u32(version_arg, 1, UINT32_MAX, &version)) {
		ctl_err("get: --version needs a number from 1 to %u", UINT32_MAX);
		goto out;
	}
	if (out_file != NULL && out_file[0] == '\0') {
		ctl_err("get: -o needs a FILE");
		goto out;
	}
	snprintf(context, sizeof(context), "get %s", argv[1]);
	req.name.ptr = (const uint8_t *)argv[1];
	req.name.len = strlen(argv[1]);
	req.version = version;

	rc = conn_open(&c);
	if (rc == EXIT_OK)
		rc = conn_request(&c, &req, context);
	if (rc != EXIT_OK)
		goto out;
	if (out_file != NULL) {
		rc = write_to_file(context, out_file, &c.resp.value);
	} else {
		/* Straight from locked memory to the descriptor: no stdio buffer. */
		int err = ctl_write_all(STDOUT_FILENO, c.resp.value.ptr, c.resp.value.len);
		if (err != 0) {
			ctl_err("%s: writing to standard output: %s", context, strerror(-err));
			rc = EXIT_ERROR;
		}
	}
out:
	conn_close(&c);
	return rc;
}
