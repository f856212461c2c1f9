/* A watched set of names: subscription, versions, back-off. */
#include "follow.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include <secretd/exitcodes.h>

#include "secretctl.h"
#include "watch.h"

/* Events read in one go before the caller gets to fetch: bursts coalesce. */
#define FOLLOW_DRAIN_MAX 1024

int follow_init(struct follow *f, const char *context, char **names, size_t n,
		const uint32_t *applied)
{
	memset(f, 0, sizeof(*f));
	f->c.fd = -1;
	f->context = context;
	f->names = names;
	f->n = n;
	f->applied = calloc(n > 0 ? n : 1, sizeof(*f->applied));
	if (f->applied == NULL)
		return -ENOMEM;
	memcpy(f->applied, applied, n * sizeof(*applied));
	f->connect_backoff = FOLLOW_BACKOFF_MIN_MS;
	f->fetch_backoff = FOLLOW_BACKOFF_MIN_MS;
	return 0;
}

void follow_free(struct follow *f)
{
	conn_close(&f->c);
	free(f->applied);
	f->applied = NULL;
}

static int backoff_next(int *backoff)
{
	int now = *backoff;

	*backoff = now >= FOLLOW_BACKOFF_MAX_MS / 2 ? FOLLOW_BACKOFF_MAX_MS : now * 2;
	return now;
}

/* A (name, version) from the state or an event: stale if not what is in use. */
static int on_version(void *arg, const struct wire_str *name, uint32_t version)
{
	struct follow *f = arg;

	for (size_t i = 0; i < f->n; i++) {
		if (strlen(f->names[i]) == name->len &&
		    memcmp(f->names[i], name->ptr, name->len) == 0 && f->applied[i] != version) {
			f->stale = true;
			/* News cuts a fetch back-off short: the change may be the fix. */
			f->fetch_at = 0;
		}
	}
	return EXIT_OK;
}

/* The state names only what exists and may be read: a name missing is a change too. */
struct state_seen {
	struct follow *f;
	bool *seen;
};

static int on_state(void *arg, const struct wire_str *name, uint32_t version)
{
	struct state_seen *s = arg;

	for (size_t i = 0; i < s->f->n; i++)
		if (strlen(s->f->names[i]) == name->len &&
		    memcmp(s->f->names[i], name->ptr, name->len) == 0)
			s->seen[i] = true;
	return on_version(s->f, name, version);
}

static void lost(struct follow *f, long long now)
{
	int wait = backoff_next(&f->connect_backoff);

	conn_close(&f->c);
	f->connect_at = now + wait;
	ctl_err("%s: not watching; subscribing again in %d s", f->context, wait / 1000);
}

int follow_start(struct follow *f, long long now)
{
	struct state_seen s = { f, calloc(f->n > 0 ? f->n : 1, sizeof(bool)) };
	int rc;

	if (s.seen == NULL) {
		ctl_err("%s: out of memory", f->context);
		return EXIT_ERROR;
	}
	rc = watch_subscribe(&f->c, f->names, f->n, f->context, on_state, &s);
	if (rc == EXIT_OK) {
		for (size_t i = 0; i < f->n; i++) {
			if (!s.seen[i] && f->applied[i] != 0) {
				f->stale = true;
				f->fetch_at = 0;
			}
		}
		f->connect_backoff = FOLLOW_BACKOFF_MIN_MS;
	} else if (rc == EXIT_UNREACHABLE) {
		lost(f, now);
	} else {
		conn_close(&f->c);
	}
	free(s.seen);
	return rc;
}

void follow_tick(struct follow *f, long long now)
{
	if (f->c.fd < 0 && now >= f->connect_at) {
		int rc = follow_start(f, now);
		/* A refusal now (a policy reload took the right away) is retried too. */
		if (rc != EXIT_OK && rc != EXIT_UNREACHABLE)
			lost(f, now);
	}
}

int follow_fd(const struct follow *f)
{
	return f->c.fd;
}

void follow_input(struct follow *f, long long now)
{
	struct pollfd pfd = { .fd = f->c.fd, .events = POLLIN };

	for (int i = 0; i < FOLLOW_DRAIN_MAX; i++) {
		if (watch_event(&f->c, f->context, on_version, f) != EXIT_OK) {
			lost(f, now);
			return;
		}
		if (poll(&pfd, 1, 0) <= 0 || (pfd.revents & POLLIN) == 0)
			return;
	}
}

bool follow_fetch_due(const struct follow *f, long long now)
{
	return f->stale && now >= f->fetch_at;
}

void follow_fetched(struct follow *f, const uint32_t *versions, long long now)
{
	(void)now;
	memcpy(f->applied, versions, f->n * sizeof(*versions));
	f->stale = false;
	f->fetch_backoff = FOLLOW_BACKOFF_MIN_MS;
}

void follow_fetch_failed(struct follow *f, long long now)
{
	int wait = backoff_next(&f->fetch_backoff);

	f->fetch_at = now + wait;
	ctl_err("%s: keeping the current set; fetching again in %d s", f->context, wait / 1000);
}

int follow_timeout(const struct follow *f, long long now)
{
	long long next = -1;

	if (f->c.fd < 0)
		next = f->connect_at;
	if (f->stale && (next < 0 || f->fetch_at < next))
		next = f->fetch_at;
	if (next < 0)
		return -1;
	if (next <= now)
		return 0;
	return next - now > 60000 ? 60000 : (int)(next - now);
}
