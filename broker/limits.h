/*
 * Fairness between callers: a cap on open connections per identity (uid
 * plus cgroup) and in all, and a token-bucket request rate per identity, so
 * one container holding thousands of sockets or flooding requests cannot
 * lock out another.  No I/O; the caller passes the time.
 */
#ifndef SECRETD_LIMITS_H
#define SECRETD_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct limits;
struct limits_slot;

struct limits_config {
	unsigned max_total;     /* connections in all */
	unsigned max_per_peer;  /* connections per identity */
	unsigned rate;          /* requests per second per identity */
	unsigned burst;         /* bucket size */
	unsigned connect_rate;  /* connection attempts per second per uid */
	unsigned connect_burst;
	size_t in_budget;       /* large request buffers, all identities together */
	size_t share;           /* large buffers per identity, at most (each kind) */
};

/* Large buffers are charged by kind: requests may not take what answers need. */
enum limits_buf { LIMITS_IN, LIMITS_OUT };

enum limits_result { LIMITS_OK = 0, LIMITS_TOTAL = -1, LIMITS_PEER = -2, LIMITS_NOMEM = -3 };

struct limits *limits_new(const struct limits_config *cfg);
void limits_free(struct limits *l);

/* Count a new connection for (uid, cgroup); cgroup may be NULL. */
int limits_acquire(struct limits *l, uid_t uid, const char *cgroup,
		   uint64_t now_ms, struct limits_slot **slot);
void limits_release(struct limits *l, struct limits_slot *slot);

/* Forget identities with no connection and a full bucket (call every second). */
void limits_sweep(struct limits *l, uint64_t now_ms);

/* Take one request token; false when the identity is over its rate. */
bool limits_take(struct limits_slot *slot, uint64_t now_ms);

unsigned limits_total(const struct limits *l);

/*
 * A connection attempt by uid, before anything else about it is read (no
 * /proc): false when the uid is over its connection rate.
 */
bool limits_connect(struct limits *l, uid_t uid, uint64_t now_ms);

/*
 * Large-buffer bytes held by an identity's connections: charge (true when
 * within its share) and refund.  An identity's share of request buffers
 * shrinks as more identities hold some, so that a few cannot take them all.
 */
bool limits_charge(struct limits_slot *slot, enum limits_buf kind, size_t bytes);
void limits_refund(struct limits_slot *slot, enum limits_buf kind, size_t bytes);
/* Identities holding large request buffers now. */
unsigned limits_holders(const struct limits *l);

#endif
