/*
 * secretctl watch PATTERN...
 *
 * One line "NAME VERSION" for every readable name the patterns match, at
 * once, then one for every change as the broker pushes it ("NAME 0": the
 * name was deleted), stdout flushed after each line.  SIGTERM or SIGINT end
 * it with status 0; the broker going away with 5.  Values are never fetched.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <secretd/exitcodes.h>
#include <secretd/names.h>
#include <secretd/wire.h>

#include "conn.h"
#include "secretctl.h"
#include "sigs.h"
#include "watch.h"

static int print_pair(void *arg, const struct wire_str *name, uint32_t version)
{
	(void)arg;
	/* The codec let only name bytes through: the line stays one line. */
	if (printf("%.*s %u\n", (int)name->len, (const char *)name->ptr, (unsigned)version) < 0 ||
	    fflush(stdout) != 0) {
		ctl_err("watch: writing to standard output: %s", strerror(errno));
		return EXIT_ERROR;
	}
	return EXIT_OK;
}

static int check_patterns(char **pats, int n)
{
	const char *why;

	if (n == 0)
		return ctl_usage_err("watch", "no PATTERN given");
	if ((size_t)n > WIRE_MAX_PATTERNS) {
		ctl_err("watch: at most %u patterns", WIRE_MAX_PATTERNS);
		return EXIT_USAGE;
	}
	for (int i = 0; i < n; i++) {
		if (!pattern_valid(pats[i], strlen(pats[i]), &why)) {
			ctl_err("watch: invalid pattern: %s", why);
			return EXIT_USAGE;
		}
	}
	return EXIT_OK;
}

/* Events until a stop signal (EXIT_OK), the broker goes, or stdout fails. */
static int follow(struct conn *c, int sigfd)
{
	struct pollfd pfd[2] = { { .fd = c->fd, .events = POLLIN }, { .fd = sigfd, .events = POLLIN } };
	int rc = EXIT_OK;

	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			ctl_err("watch: poll: %s", strerror(errno));
			return EXIT_ERROR;
		}
		if (pfd[1].revents != 0) {
			int sig = sigs_read(sigfd);
			if (sig == SIGTERM || sig == SIGINT)
				return EXIT_OK;
		}
		if (pfd[0].revents != 0) {
			rc = watch_event(c, "watch", print_pair, NULL);
			if (rc != EXIT_OK)
				return rc;
		}
	}
}

int cmd_watch(int argc, char **argv)
{
	struct conn c = { .fd = -1 };
	sigset_t stop, saved;
	bool help;
	int nops = 0;
	int sigfd = -1;
	int rc;

	rc = ctl_parse_args(argc, argv, NULL, 0, &nops, &help);
	if (rc != 0 || help)
		goto out;
	rc = check_patterns(argv + 1, nops);
	if (rc != EXIT_OK)
		goto out;
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	sigfd = sigs_open(&stop, &saved);
	if (sigfd < 0) {
		ctl_err("watch: signalfd: %s", strerror(-sigfd));
		rc = EXIT_ERROR;
		goto out;
	}
	rc = watch_subscribe(&c, argv + 1, (size_t)nops, "watch", print_pair, NULL);
	if (rc == EXIT_OK)
		rc = follow(&c, sigfd);
out:
	conn_close(&c);
	if (sigfd >= 0)
		close(sigfd);
	return rc;
}
