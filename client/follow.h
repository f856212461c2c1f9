/*
 * Following a fixed set of names for the sidecar modes (inject --watch,
 * exec --watch): a WATCH subscription that is re-established with back-off
 * when the broker goes away, the version of each name last applied, and a
 * "stale" flag with its own back-off for the fetches that fail.  The
 * caller's poll loop asks follow_timeout how long it may sleep, polls
 * follow_fd, and fetches whenever follow_fetch_due says so.
 */
#ifndef SECRETCTL_FOLLOW_H
#define SECRETCTL_FOLLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conn.h"

#define FOLLOW_BACKOFF_MIN_MS 1000
#define FOLLOW_BACKOFF_MAX_MS 30000

struct follow {
	const char *context;    /* "inject", "exec": the messages' prefix */
	char **names;           /* borrowed */
	size_t n;
	uint32_t *applied;      /* version of each name now in use (0: none) */
	struct conn c;          /* the subscription; c.fd < 0 when there is none */
	long long connect_at;   /* when to try subscribing again */
	int connect_backoff;
	bool stale;             /* a newer version than applied exists */
	long long fetch_at;     /* when to try fetching again */
	int fetch_backoff;
};

/* Prepare for names[0..n) whose versions in use are applied (copied); 0 or -ENOMEM. */
int follow_init(struct follow *f, const char *context, char **names, size_t n,
		const uint32_t *applied);
void follow_free(struct follow *f);

/*
 * Subscribe now: EXIT_OK; a refusal's exit status (the broker does not know
 * WATCH, or denies it), which the caller should treat as final; or
 * EXIT_UNREACHABLE, after which follow_tick retries with back-off.
 */
int follow_start(struct follow *f, long long now);

/* Retry a lost subscription when due. */
void follow_tick(struct follow *f, long long now);

/* The descriptor to poll for input (-1 when not subscribed). */
int follow_fd(const struct follow *f);

/* Read what the broker pushed (after poll said follow_fd is readable). */
void follow_input(struct follow *f, long long now);

/* Whether a fetch of the whole set should be made now. */
bool follow_fetch_due(const struct follow *f, long long now);

/* A fetch succeeded (versions of every name now in use) or failed (retry later). */
void follow_fetched(struct follow *f, const uint32_t *versions, long long now);
void follow_fetch_failed(struct follow *f, long long now);

/* How long the caller may sleep (ms, -1 forever) before something is due. */
int follow_timeout(const struct follow *f, long long now);

#endif
