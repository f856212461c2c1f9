/*
 * The sealed vault: secrets in SQLite, each version sealed with
 * XChaCha20-Poly1305 under a data key that the master key wraps.
 *
 * Threading: a struct vault is used by one thread (the loop) for reads; a
 * struct vault_writer has its own SQLite connection and is used by one other
 * thread at a time for writes, so a durable commit never stalls reads.  The
 * data key is shared read-only between them.
 *
 * Errors are negative enum vault_err values; nothing here prints.  Messages
 * written into err never contain a value.
 */
#ifndef SECRETD_VAULT_H
#define SECRETD_VAULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VAULT_KEY_LEN 32
#define VAULT_DEFAULT_KEEP 10

enum vault_err {
	VAULT_OK = 0,
	VAULT_E_NOTFOUND = -1,  /* no such name or version */
	VAULT_E_INTEGRITY = -2, /* a row failed authentication: tampered */
	VAULT_E_IO = -3,        /* SQLite or file error */
	VAULT_E_KEY = -4,       /* the master key does not open this vault */
	VAULT_E_NOMEM = -5,
	VAULT_E_EXISTS = -6,    /* create: the file is already there */
	VAULT_E_FORMAT = -7,    /* not a secretd vault, or unknown schema */
	VAULT_E_TOOBIG = -8,    /* value larger than WIRE_MAX_VALUE */
	VAULT_E_BUSY = -9,      /* another process holds the vault's lock */
};

struct vault;
struct vault_writer;

/* A plaintext value in sodium_malloc memory; vault_secret_free wipes it. */
struct vault_secret {
	uint8_t *data; /* sodium_malloc'd (may be non-NULL for len 0) */
	size_t len;
	uint32_t version;
};

/* Create a new vault file (mode 0600) sealed under master; refuses to overwrite. */
int vault_create(const char *path, const uint8_t master[VAULT_KEY_LEN],
		 char *err, size_t errlen);

/*
 * Open an existing vault and unwrap its data key with master.  The master
 * key is not kept: the caller may wipe it after this returns.  Takes an
 * exclusive lock (PATH.lock, lockfile.h) for the life of the struct, so a
 * second broker on the same vault gets VAULT_E_BUSY and err names the
 * holder.
 */
int vault_open(const char *path, const uint8_t master[VAULT_KEY_LEN],
	       struct vault **out, char *err, size_t errlen);
/*
 * The same without the lock, for tools that only read (audit-verify reads
 * the checkpoint of a vault a broker may be serving); such a vault cannot
 * get a writer.
 */
int vault_open_reader(const char *path, const uint8_t master[VAULT_KEY_LEN],
		      struct vault **out, char *err, size_t errlen);
void vault_close(struct vault *v);

/* Read one version (0 = latest) of name into *out. */
int vault_get(struct vault *v, const char *name, size_t len, uint32_t version,
	      struct vault_secret **out);
void vault_secret_free(struct vault_secret *s);

/*
 * Let the gets of one turn of the loop share one read transaction (the
 * broker; see vault.c).  Whoever calls it must call vault_turn_end before
 * the loop waits for events, and vault_writer_committed (on the loop
 * thread) after each commit of the writer before anything acts on it, so
 * that a read after an acknowledged write sees it.
 */
void vault_hold_reads(struct vault *v);
void vault_turn_end(struct vault *v);
void vault_writer_committed(struct vault_writer *w);

/*
 * Call fn for every name with at least one version, in byte order
 * (memcmp, shorter first on a tie).  fn returns 0 to go on, nonzero to stop
 * (that value is returned).  Names are passed with their length.
 */
typedef int (*vault_name_fn)(const char *name, size_t len, void *ctx);
int vault_list(struct vault *v, vault_name_fn fn, void *ctx);

/*
 * The same walk with each name's latest version number, read without
 * decrypting (for watch: a version is authenticated when its value is read).
 */
typedef int (*vault_version_fn)(const char *name, size_t len, uint32_t version, void *ctx);
int vault_list_versions(struct vault *v, vault_version_fn fn, void *ctx);

/*
 * A replica (upstream.c) remembers what it followed: the highest upstream
 * revision applied and the upstream's cluster id, sealed under the vault's
 * data key so that an edited file cannot make it follow a rolled-back store.
 */
#define VAULT_UPSTREAM_KEY_MAX 512
#define VAULT_UPSTREAM_HASH_LEN 32

struct vault_upstream {
	int64_t revision;
	uint64_t cluster_id;
	/*
	 * One upstream key as the replica applied it: its revision, the hash
	 * of its value, the key.  A store restored from a backup and written
	 * past the revision above has the same cluster id and revisions, but
	 * not this key at this revision with this value.  check_revision 0:
	 * none yet.
	 */
	int64_t check_revision;
	uint8_t check_hash[VAULT_UPSTREAM_HASH_LEN];
	uint8_t check_key[VAULT_UPSTREAM_KEY_MAX];
	size_t check_key_len;
};

/* VAULT_E_NOTFOUND when the vault never followed an upstream. */
int vault_upstream_get(struct vault *v, struct vault_upstream *out);
/* How many names hold at least one version. */
int vault_count(struct vault *v, size_t *out);

/* A change that comes from the upstream with its version already chosen. */
enum vault_change_kind { VAULT_CHANGE_PUT, VAULT_CHANGE_REMOVE };

struct vault_change {
	enum vault_change_kind kind;
	const char *name;
	size_t name_len;
	uint32_t version;     /* PUT: this version; REMOVE: every version up to it */
	const uint8_t *value; /* PUT: plaintext */
	size_t value_len;
	bool applied;         /* out: the vault changed (false: it held it already) */
	uint32_t count;       /* out, REMOVE: the versions removed */
};

/*
 * One replica step, applied as one unit (all of it or none): a watch
 * message, a whole resynchronisation (replace: every name goes first), a
 * write this node made through the upstream, or forgetting the upstream
 * (forget: the state is dropped).  state NULL leaves the state as it is.
 */
struct vault_replica {
	bool replace;
	bool forget;
	struct vault_change *changes;
	size_t n;
	const struct vault_upstream *state;
};

/* Writes, batched into one durable commit by the writer. */
enum vault_op_kind { VAULT_OP_PUT, VAULT_OP_DELETE, VAULT_OP_CHECKPOINT, VAULT_OP_REPLICA };

struct vault_op {
	enum vault_op_kind kind;
	const char *name;     /* PUT, DELETE */
	size_t name_len;
	const uint8_t *value; /* PUT: plaintext; CHECKPOINT: opaque blob */
	size_t value_len;
	struct vault_replica *replica; /* REPLICA */
	/* results */
	int result;           /* VAULT_OK or an error for this op alone */
	uint32_t version;     /* PUT: the new version; DELETE: versions removed */
};

/* A second connection to the same vault for writing (own thread). */
int vault_writer_open(struct vault *v, unsigned keep_versions,
		      struct vault_writer **out, char *err, size_t errlen);
void vault_writer_close(struct vault_writer *w);

/*
 * Apply ops in order inside one transaction and commit durably (WAL,
 * synchronous=FULL).  A failing op gets its own result and does not undo
 * the others; if the commit itself fails every op gets VAULT_E_IO and the
 * function returns VAULT_E_IO.  Acknowledge nothing before this returns.
 */
int vault_write_batch(struct vault_writer *w, struct vault_op *ops, size_t n);

/* The opaque checkpoint blob last stored with VAULT_OP_CHECKPOINT. */
int vault_checkpoint_get(struct vault *v, uint8_t *buf, size_t cap, size_t *len);

/* A short description of a vault_err. */
const char *vault_strerror(int err);

#endif
