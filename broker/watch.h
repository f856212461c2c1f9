/*
 * The watch hub: which subscriptions a changed name concerns, found without
 * looking at every subscription.  Exact names are looked up in a hash; a
 * glob is filed under its literal prefix (what comes before its first '*'),
 * so that a change of NAME costs one look-up per prefix of NAME (at most 256)
 * plus a glob match for each glob filed there.  It knows nothing of
 * connections or policy: a subscription is an owner and a callback.
 */
#ifndef SECRETD_WATCH_H
#define SECRETD_WATCH_H

#include <stddef.h>
#include <stdint.h>

#include <secretd/wire.h>

struct watch_hub;
struct watch_sub;

/* A change of name (version 0: deleted) that one of owner's patterns matches. */
typedef void (*watch_notify_fn)(void *owner, const char *name, size_t len, uint32_t version);

struct watch_hub *watch_hub_new(void);
/* Only once every subscription is gone. */
void watch_hub_free(struct watch_hub *h);

/*
 * Subscribe owner to n patterns (policy glob syntax, already validated).
 * The hub copies them.  0 or -ENOMEM.
 */
int watch_subscribe(struct watch_hub *h, const struct wire_str *patterns, size_t n,
		    watch_notify_fn notify, void *owner, struct watch_sub **out);
void watch_unsubscribe(struct watch_hub *h, struct watch_sub *sub);

/* True when one of sub's patterns matches name. */
int watch_matches(const struct watch_sub *sub, const char *name, size_t len);

/* A change is durable: tell every subscription that matches it, once each. */
void watch_changed(struct watch_hub *h, const char *name, size_t len, uint32_t version);

size_t watch_count(const struct watch_hub *h);

#endif
