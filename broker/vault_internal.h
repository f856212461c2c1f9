/*
 * What the parts of the vault share, and nothing outside them includes:
 * the format's constants, the structs behind vault.h's opaque types, small
 * helpers, and the few functions one part calls in another.
 *
 *   vault.c         the format, opening (keys, checks), closing, errors
 *   vault_db.c      SQLite connections and the meta table
 *   vault_create.c  a new vault file
 *   vault_read.c    the loop's reads and the plaintext boxes they return
 *   vault_write.c   the writer: puts, deletes, checkpoints, a replica's changes
 */
#ifndef SECRETD_VAULT_INTERNAL_H
#define SECRETD_VAULT_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>
#include <sqlite3.h>

#include <secretd/names.h>

#include "guarded.h"
#include "vault.h"
#include "vault_rows.h"

#define SCHEMA_VERSION 1
#define FORMAT_TAG "secretd-vault"
#define APPLICATION_ID 0x53445654 /* "SDVT": lets file(1) and us spot a vault */
#define ID_LEN 16
#define NONCE_LEN crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
_Static_assert(NONCE_LEN == SEALED_NONCE_LEN, "vault_rows.h keeps nonces of this size");
/* Sealed rows kept for gets (vault_rows.h): about 8,000 short secrets. */
#define ROWS_BUDGET ((size_t)1 << 20)
#define TAG_LEN crypto_aead_xchacha20poly1305_ietf_ABYTES
#define WRAPPED_LEN (VAULT_KEY_LEN + TAG_LEN)
#define CKPT_MAX 256
#define BUSY_MS 5000
#define KDF_CONTEXT "sdvaultk"
#define KDF_SUBKEY_ID 1

/*
 * sodium_malloc costs an mmap, mprotects and an mlock (about 25 us), which
 * would dominate every read; so small plaintexts go into guarded slots
 * (guarded.h: locked, between guard pages, wiped on return), slabs of them
 * made 64 at a time.  Larger values get their own allocation.
 */
#define POOL_SLOT GUARDED_SLOT
#define POOL_FIRST 4
#define POOL_PER_SLAB 64

#define DATAKEY_AD_TAG "secretd-datakey"
#define SECRET_AD_TAG "secretd-secret"
#define DATAKEY_AD_LEN (sizeof(DATAKEY_AD_TAG) - 1 + ID_LEN + 4)
#define SECRET_AD_MAX (sizeof(SECRET_AD_TAG) - 1 + ID_LEN + 4 + 4 + 2 + NAME_MAX_LEN)
#define UPSTREAM_AD_TAG "secretd-upstream"
#define UPSTREAM_AD_LEN (sizeof(UPSTREAM_AD_TAG) - 1 + ID_LEN + 4)
/* be64 revision, be64 cluster id, be64 check revision, hash, be16 key length, key */
#define UPSTREAM_PLAIN_MIN (8 + 8 + 8 + VAULT_UPSTREAM_HASH_LEN + 2)
#define UPSTREAM_PLAIN_MAX (UPSTREAM_PLAIN_MIN + VAULT_UPSTREAM_KEY_MAX)
#define UPSTREAM_REC_OVERHEAD (4 + NONCE_LEN + TAG_LEN)

/* Every term's unwrapped data key; the key bytes live read-only in sodium memory. */
struct keyring {
	uint32_t *terms; /* ascending; not secret */
	uint8_t *keys;   /* sodium_malloc'd, n * VAULT_KEY_LEN, read-only once filled */
	size_t n;
};

/* What vault_get hands out; pub comes first so vault_secret_free finds the rest. */
struct secret_box {
	struct vault_secret pub;
	/*
	 * Set: the box is the head of slot, a slot of pool.  NULL: slot is a
	 * sodium_malloc of its own and the box a calloc.  The pool outlives
	 * the vault while a secret is out (guarded_close), so a secret freed
	 * after vault_close, or on another thread, is still handled.
	 */
	struct guarded *pool;
	uint8_t *slot;
	size_t cap;
};

struct vault {
	sqlite3 *db;
	int lock_fd;     /* holds PATH.lock (lockfile.c); -1 when opened for reading */
	struct guarded *pool;     /* plaintext slots */
	char *path;
	uint8_t id[ID_LEN];
	struct keyring kr;
	sqlite3_stmt *st_latest;
	sqlite3_stmt *st_version;
	sqlite3_stmt *st_list;
	sqlite3_stmt *st_versions;
	sqlite3_stmt *st_ckpt;
	sqlite3_stmt *st_upstream;
	sqlite3_stmt *st_count;
	/* reads of one turn of the loop in one read transaction (vault_hold_reads) */
	sqlite3_stmt *st_read_begin, *st_read_end;
	bool hold;
	bool held;          /* a BEGIN of ours is open */
	unsigned turn_reads; /* vault_get calls since the last vault_turn_end */
	struct vault_rows *rows; /* the newest sealed rows read lately (vault_rows.h) */
	struct subkeys *sk;      /* their rows' subkeys, made at the first get (subkeys.h) */
};

struct vault_writer {
	struct vault *v; /* shared read-only: id and keyring */
	sqlite3 *db;
	unsigned keep;
	uint8_t *ct;     /* ciphertext scratch; not secret */
	size_t ct_cap;
	sqlite3_stmt *st_begin, *st_commit, *st_rollback;
	sqlite3_stmt *st_savepoint, *st_release, *st_rollback_to;
	sqlite3_stmt *st_maxver, *st_insert, *st_prune, *st_delete, *st_ckpt;
	sqlite3_stmt *st_insert_new, *st_remove_upto, *st_clear, *st_state_put, *st_state_del;
};

__attribute__((format(printf, 3, 4)))
static inline void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static inline void put_be32(uint8_t *p, uint32_t x)
{
	p[0] = (uint8_t)(x >> 24);
	p[1] = (uint8_t)(x >> 16);
	p[2] = (uint8_t)(x >> 8);
	p[3] = (uint8_t)x;
}

static inline void put_be16(uint8_t *p, uint16_t x)
{
	p[0] = (uint8_t)(x >> 8);
	p[1] = (uint8_t)x;
}

static inline void datakey_ad(uint8_t ad[DATAKEY_AD_LEN], const uint8_t id[ID_LEN], uint32_t term)
{
	size_t off = sizeof(DATAKEY_AD_TAG) - 1;

	memcpy(ad, DATAKEY_AD_TAG, off);
	memcpy(ad + off, id, ID_LEN);
	put_be32(ad + off + ID_LEN, term);
}

/* The caller has checked len <= NAME_MAX_LEN. */
static inline size_t secret_ad(uint8_t ad[SECRET_AD_MAX], const uint8_t id[ID_LEN], uint32_t term,
			uint32_t version, const char *name, size_t len)
{
	size_t off = sizeof(SECRET_AD_TAG) - 1;

	memcpy(ad, SECRET_AD_TAG, off);
	memcpy(ad + off, id, ID_LEN);
	off += ID_LEN;
	put_be32(ad + off, term);
	put_be32(ad + off + 4, version);
	put_be16(ad + off + 8, (uint16_t)len);
	off += 10;
	if (len > 0)
		memcpy(ad + off, name, len);
	return off + len;
}

static inline void upstream_ad(uint8_t ad[UPSTREAM_AD_LEN], const uint8_t id[ID_LEN], uint32_t term)
{
	size_t off = sizeof(UPSTREAM_AD_TAG) - 1;

	memcpy(ad, UPSTREAM_AD_TAG, off);
	memcpy(ad + off, id, ID_LEN);
	put_be32(ad + off + ID_LEN, term);
}

/* SQLite binds a NULL pointer as SQL NULL, so empty blobs need a real pointer. */
static inline int bind_bytes(sqlite3_stmt *st, int idx, const void *p, size_t len)
{
	return sqlite3_bind_blob(st, idx, len > 0 ? p : "", (int)len, SQLITE_STATIC);
}

static inline void stmt_done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

/* Run a statement that returns no rows; returns an SQLite code. */
static inline int stmt_run(sqlite3_stmt *st)
{
	int src = sqlite3_step(st);

	stmt_done(st);
	return src == SQLITE_DONE ? SQLITE_OK : src;
}

static inline int prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st)
{
	return sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
}

/* What a failed SQLite call means for our callers. */
static inline int sqlite_to_vault(int src)
{
	switch (src & 0xff) {
	case SQLITE_NOMEM:
		return VAULT_E_NOMEM;
	case SQLITE_NOTADB:
	case SQLITE_CORRUPT:
		return VAULT_E_FORMAT;
	default:
		return VAULT_E_IO;
	}
}

static inline const uint8_t *keyring_find(const struct keyring *kr, uint32_t term)
{
	for (size_t i = 0; i < kr->n; i++)
		if (kr->terms[i] == term)
			return kr->keys + i * VAULT_KEY_LEN;
	return NULL;
}

static inline uint64_t get_be64(const uint8_t *p)
{
	uint64_t x = 0;

	for (int i = 0; i < 8; i++)
		x = x << 8 | p[i];
	return x;
}

static inline uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void put_be64(uint8_t *p, uint64_t x)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)x;
		x >>= 8;
	}
}

/* vault.c */
int vault_derive_kek(const uint8_t master[VAULT_KEY_LEN], uint8_t **kek);
void vault_keyring_free(struct keyring *kr);

/* vault_db.c */
int vault_db_open(const char *path, sqlite3 **out, char *err, size_t errlen);
int vault_db_configure(sqlite3 *db, const char *path, char *err, size_t errlen);
int vault_read_meta(sqlite3 *db, const char *k, sqlite3_stmt **st);
int vault_read_id(sqlite3 *db, const char *path, uint8_t id[ID_LEN], char *err, size_t errlen);

#endif
