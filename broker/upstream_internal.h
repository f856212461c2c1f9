/*
 * What upstream.c and upstream_step.c share, and nothing else includes: the
 * upstream's state and its steps.  upstream.c follows etcd (the watch,
 * resynchronisation, the history check, the tick, start and stop, this
 * node's writes); upstream_step.c turns what etcd sent into steps for the
 * writer, in guarded memory, and audits and announces what they changed.
 * Both are built into the loadable module only (upstream_ops.h), so what
 * they share is hidden from everything outside it.
 */
#ifndef SECRETD_UPSTREAM_INTERNAL_H
#define SECRETD_UPSTREAM_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "etcd_client.h"
#include "fleet.h"
#include "services.h"
#include "tailq.h"
#include "upstream.h"
#include "vault.h"
#include "writer.h"

#define UP_HIDDEN __attribute__((visibility("hidden")))

enum up_state { UP_CONNECTING, UP_FOLLOWING, UP_RESYNCING, UP_REFUSED };

/* ---- guarded memory for a step's names and plaintexts -------------------- */

struct chunk {
	struct chunk *next;
	uint8_t *data; /* sodium_malloc'd */
	size_t used, cap;
};

struct arena {
	struct chunk *head;
};

/* ---- the upstream ----------------------------------------------------------- */

/*
 * A put or rm of this node, from its call to etcd until the replica holds
 * it.  Its own change may come back through the watch before etcd's answer
 * does: a change of its name meanwhile waits here (parked), and is audited
 * as a sync only if it is not this write (another revision).
 */
struct parked {
	uint32_t version;
	int64_t revision;
};

struct local_write {
	TAILQ_ENTRY(local_write) link;
	struct upstream *u;
	const char *name;
	size_t nlen;
	const uint8_t *value;
	size_t vlen;
	bool rm;
	bool committed;    /* etcd answered: revision is this write's */
	int64_t revision;
	struct parked *parked;
	size_t nparked;
	upstream_done_fn done;
	void *arg;
};
TAILQ_HEAD(local_writes, local_write);

enum step_kind { STEP_WATCH, STEP_RESYNC, STEP_LOCAL };

/* A name's latest version, for what a resync changed. */
struct name_version {
	const char *name;
	size_t len;
	uint32_t version;
};

struct step {
	struct writer_job job; /* first */
	struct upstream *u;
	enum step_kind kind;
	struct vault_replica rep;
	struct vault_upstream state;
	struct vault_change *changes;
	int64_t *revs;         /* each change's etcd revision */
	size_t n, cap;
	struct arena arena;
	uint64_t received_ms;
	/* STEP_RESYNC: the names and latest versions before it */
	struct name_version *prior;
	size_t nprior, prior_cap;
	struct local_write *lw; /* STEP_LOCAL */
	struct step *held_next; /* STEP_LOCAL held while a resync is read */
	bool failed;           /* gathering failed: never submitted */
};

struct upstream {
	const struct config *cfg;
	struct services *svc;
	struct etcd_client *client;
	struct fleet *fleet;
	bool fleet_pending;     /* fleet_new is running */
	bool unreachable_logged; /* fleet_new's failure to open the fleet was logged once */
	struct fleet_watch *watch;
	bool watch_live;        /* the stream delivered since it (re)started */
	bool probe_ok;          /* the last status probe was answered */
	bool probe_pending;
	struct step *snap;      /* a resync being read */
	/*
	 * This node's writes that etcd committed while snap was read, in
	 * order: they go to the writer after the resync, which would
	 * otherwise replace them with an older snapshot until the watch
	 * brought them back.
	 */
	struct step *held_first, *held_last;
	bool need_resync;
	bool verified;          /* etcd's history checked since the watch last stopped */
	bool verify_pending;
	struct vault_upstream st_cur; /* the state as last handed to the writer */
	uint8_t *cluster_key;   /* sodium_malloc'd */
	char *password;         /* sodium_malloc'd */
	size_t password_len;
	char prefix[FLEET_PREFIX_MAX + 1];
	unsigned keep;
	enum up_state state;
	char problem[256];
	int64_t applied;        /* the highest revision the vault holds */
	int64_t submitted;      /* the highest revision handed to the writer */
	uint64_t cluster_id;
	bool state_known;       /* the vault holds a state (else it must stay empty) */
	unsigned steps_pending; /* in the writer */
	struct local_writes writes; /* this node's, in flight */
	uint64_t oldest_pending_ms;
	uint64_t current_at_ms; /* when the replica last held all it had been sent */
	uint64_t refused_at_ms;
	uint64_t resyncs, rollbacks;
	uv_timer_t timer;
	bool closing;
	void (*closed)(void *arg);
	void *closed_arg;
};

static inline uint64_t now_ms(const struct upstream *u)
{
	return uv_now(u->svc->loop);
}

/* upstream.c */
UP_HIDDEN void stop_watch(struct upstream *u);
UP_HIDDEN void follow(struct upstream *u);
UP_HIDDEN int local_write(struct upstream *u, struct local_write *lw);

/* upstream_step.c */
UP_HIDDEN uint8_t *arena_alloc(struct arena *a, size_t len);
UP_HIDDEN struct step *step_new(struct upstream *u, enum step_kind kind);
UP_HIDDEN void step_free(struct step *s);
UP_HIDDEN struct vault_change *step_add(struct step *s, enum vault_change_kind kind,
					 const char *name, size_t len, uint32_t version, int64_t rev);
UP_HIDDEN int step_add_item(struct step *s, enum etcd_event_type type, const struct fleet_item *it);
UP_HIDDEN void unpark(struct upstream *u, struct local_write *lw);
UP_HIDDEN void write_end(struct upstream *u, struct local_write *lw);
UP_HIDDEN void step_submit(struct upstream *u, struct step *s);

#endif
