/*
 * secretctl put NAME [--from-file FILE]
 * secretctl put NAME --generate N [--charset base64|hex|alnum]
 *
 * --generate makes the value here, from libsodium's generator, straight into
 * locked memory: it never crosses a shell, a pipe or a terminal, and it is
 * never printed (only the new version is).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include <secretd/exitcodes.h>
#include <secretd/names.h>
#include <secretd/wire.h>

#include "conn.h"
#include "secretctl.h"

/*
 * Read the whole value from fd into buf (WIRE_MAX_VALUE + 1 bytes, so that
 * one byte too many is seen): the length, -EFBIG past the limit, or -errno.
 */
static long read_value(int fd, uint8_t *buf)
{
	size_t have = 0;
	const size_t cap = WIRE_MAX_VALUE + 1;

	while (have < cap) {
		ssize_t n = read(fd, buf + have, cap - have);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return (long)have;
		have += (size_t)n;
	}
	return -EFBIG;
}

static const struct {
	const char *name;
	const char *chars;
} charsets[] = {
	{ "alnum", "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789" },
	{ "base64", "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/" },
	{ "hex", "0123456789abcdef" },
};

static const char *charset_chars(const char *name)
{
	for (size_t i = 0; i < sizeof(charsets) / sizeof(charsets[0]); i++)
		if (strcmp(charsets[i].name, name) == 0)
			return charsets[i].chars;
	return NULL;
}

/* n characters drawn uniformly from chars (randombytes_uniform: no modulo bias). */
static void generate(uint8_t *buf, size_t n, const char *chars)
{
	uint32_t count = (uint32_t)strlen(chars);

	for (size_t i = 0; i < n; i++)
		buf[i] = (uint8_t)chars[randombytes_uniform(count)];
}

/* Check --generate and --charset; EXIT_OK or EXIT_USAGE with the message printed. */
static int check_generate(const char *gen_arg, const char *charset, const char *from_file,
			  size_t *n, const char **chars)
{
	uint32_t v;

	*n = 0;
	*chars = NULL;
	if (gen_arg == NULL) {
		if (charset != NULL)
			return ctl_usage_err("put", "--charset goes with --generate N");
		return EXIT_OK;
	}
	if (from_file != NULL)
		return ctl_usage_err("put", "--generate and --from-file exclude each other");
	if (!ctl_parse_u32(gen_arg, 1, WIRE_MAX_VALUE, &v)) {
		ctl_err("put: --generate needs a length from 1 to %u", WIRE_MAX_VALUE);
		return EXIT_USAGE;
	}
	*chars = charset_chars(charset != NULL ? charset : "alnum");
	if (*chars == NULL) {
		ctl_err("put: --charset must be base64, hex or alnum");
		return EXIT_USAGE;
	}
	*n = v;
	return EXIT_OK;
}

int cmd_put(int argc, char **argv)
{
	const char *from_file = NULL, *gen_arg = NULL, *charset = NULL, *why;
	const struct ctl_opt opts[] = {
		{ "--from-file", true, &from_file, NULL },
		{ "--generate", true, &gen_arg, NULL },
		{ "--charset", true, &charset, NULL },
	};
	const char *chars = NULL;
	size_t gen_len = 0;
	struct wire_request req = { .type = WIRE_PUT };
	struct conn c = { .fd = -1 };
	uint8_t *value = NULL;
	char context[300];
	int fd = STDIN_FILENO;
	bool help;
	int nops = 0;
	long len;
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
		ctl_err("put: invalid name: %s", why);
		goto out;
	}
	if (from_file != NULL && from_file[0] == '\0') {
		ctl_err("put: --from-file needs a FILE");
		goto out;
	}
	rc = check_generate(gen_arg, charset, from_file, &gen_len, &chars);
	if (rc != EXIT_OK)
		goto out;
	snprintf(context, sizeof(context), "put %s", argv[1]);

	rc = EXIT_ERROR;
	value = sodium_malloc(WIRE_MAX_VALUE + 1);
	if (value == NULL) {
		ctl_err("%s: out of memory", context);
		goto out;
	}
	if (from_file != NULL) {
		fd = open(from_file, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			ctl_err("%s: opening %s: %s", context, from_file, strerror(errno));
			goto out;
		}
	}
	if (chars != NULL) {
		generate(value, gen_len, chars);
		len = (long)gen_len;
	} else {
		len = read_value(fd, value);
	}
	if (len == -EFBIG) {
		ctl_err("%s: value too large: more than %u bytes", context, WIRE_MAX_VALUE);
		goto out;
	}
	if (len < 0) {
		ctl_err("%s: reading %s: %s", context,
			from_file != NULL ? from_file : "standard input", strerror((int)-len));
		goto out;
	}
	req.name.ptr = (const uint8_t *)argv[1];
	req.name.len = strlen(argv[1]);
	req.value.ptr = value;
	req.value.len = (size_t)len;

	rc = conn_open(&c);
	if (rc == EXIT_OK)
		rc = conn_request(&c, &req, context);
	/* A value the broker refuses (larger than its max-secret-size) is not a usage error. */
	if (rc != EXIT_OK && c.resp.status == WIRE_INVALID)
		rc = EXIT_ERROR;
	if (rc != EXIT_OK)
		goto out;
	printf("%u\n", (unsigned)c.resp.version);
	if (fflush(stdout) != 0) {
		ctl_err("%s: writing to standard output: %s", context, strerror(errno));
		rc = EXIT_ERROR;
	}
out:
	if (fd != STDIN_FILENO && fd >= 0)
		close(fd);
	sodium_free(value);
	conn_close(&c);
	return rc;
}
