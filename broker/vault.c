/*
 * The sealed vault.  SQLite holds only ciphertext: every version of every
 * secret is sealed with XChaCha20-Poly1305 under a random data key, and the
 * data key is stored wrapped under a key derived from the master key.  The
 * associated data binds each row to its vault, name, version and term, so a
 * row that is edited, moved or swapped fails to open instead of being
 * returned.
 *
 * Schema (version 1):
 *   meta(k TEXT PRIMARY KEY, v BLOB)   format, schema, vault_id, checkpoint,
 *                                      upstream (a replica's state, sealed)
 *   datakeys(term INTEGER PRIMARY KEY, nonce BLOB, wrapped BLOB)
 *   secrets(name BLOB, version INTEGER, term INTEGER, nonce BLOB, ct BLOB,
 *           PRIMARY KEY(name, version)) WITHOUT ROWID
 * Names are BLOBs so that SQLite orders them with memcmp.
 */
#include "vault.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>
#include <sqlite3.h>

#include <secretd/names.h>
#include <secretd/wire.h>

#include "guarded.h"
#include "lockfile.h"
#include "subkeys.h"
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

static const char schema_sql[] =
	"CREATE TABLE meta(k TEXT PRIMARY KEY, v BLOB NOT NULL);"
	"CREATE TABLE datakeys(term INTEGER PRIMARY KEY, nonce BLOB NOT NULL,"
	" wrapped BLOB NOT NULL);"
	"CREATE TABLE secrets(name BLOB NOT NULL, version INTEGER NOT NULL,"
	" term INTEGER NOT NULL, nonce BLOB NOT NULL, ct BLOB NOT NULL,"
	" PRIMARY KEY(name, version)) WITHOUT ROWID;";

__attribute__((format(printf, 3, 4)))
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static void put_be32(uint8_t *p, uint32_t x)
{
	p[0] = (uint8_t)(x >> 24);
	p[1] = (uint8_t)(x >> 16);
	p[2] = (uint8_t)(x >> 8);
	p[3] = (uint8_t)x;
}

static void put_be16(uint8_t *p, uint16_t x)
{
	p[0] = (uint8_t)(x >> 8);
	p[1] = (uint8_t)x;
}

static void datakey_ad(uint8_t ad[DATAKEY_AD_LEN], const uint8_t id[ID_LEN], uint32_t term)
{
	size_t off = sizeof(DATAKEY_AD_TAG) - 1;

	memcpy(ad, DATAKEY_AD_TAG, off);
	memcpy(ad + off, id, ID_LEN);
	put_be32(ad + off + ID_LEN, term);
}

/* The caller has checked len <= NAME_MAX_LEN. */
static size_t secret_ad(uint8_t ad[SECRET_AD_MAX], const uint8_t id[ID_LEN], uint32_t term,
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

static void upstream_ad(uint8_t ad[UPSTREAM_AD_LEN], const uint8_t id[ID_LEN], uint32_t term)
{
	size_t off = sizeof(UPSTREAM_AD_TAG) - 1;

	memcpy(ad, UPSTREAM_AD_TAG, off);
	memcpy(ad + off, id, ID_LEN);
	put_be32(ad + off + ID_LEN, term);
}

/* SQLite binds a NULL pointer as SQL NULL, so empty blobs need a real pointer. */
static int bind_bytes(sqlite3_stmt *st, int idx, const void *p, size_t len)
{
	return sqlite3_bind_blob(st, idx, len > 0 ? p : "", (int)len, SQLITE_STATIC);
}

static void stmt_done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

/* Run a statement that returns no rows; returns an SQLite code. */
static int stmt_run(sqlite3_stmt *st)
{
	int src = sqlite3_step(st);

	stmt_done(st);
	return src == SQLITE_DONE ? SQLITE_OK : src;
}

static int prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st)
{
	return sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
}

/* What a failed SQLite call means for our callers. */
static int sqlite_to_vault(int src)
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

static const uint8_t *keyring_find(const struct keyring *kr, uint32_t term)
{
	for (size_t i = 0; i < kr->n; i++)
		if (kr->terms[i] == term)
			return kr->keys + i * VAULT_KEY_LEN;
	return NULL;
}

static void keyring_free(struct keyring *kr)
{
	if (kr->keys != NULL) {
		sodium_mprotect_readwrite(kr->keys);
		sodium_free(kr->keys); /* wipes */
	}
	free(kr->terms);
	kr->keys = NULL;
	kr->terms = NULL;
	kr->n = 0;
}

/* ---- plaintext buffers ------------------------------------------------------ */

/*
 * A box for len plaintext bytes.  The value ends exactly where its region
 * ends, so an overrun hits sodium's guard page; len 0 still gets one byte.
 */
static struct secret_box *box_new(struct guarded *pool, size_t len)
{
	struct secret_box *b;
	size_t need = len > 0 ? len : 1;
	uint8_t *slot;

	if (need <= POOL_SLOT - sizeof(*b)) {
		/* The usual value: the box heads its own slot, no allocation of its own. */
		slot = guarded_take(pool);
		if (slot == NULL)
			return NULL;
		b = (struct secret_box *)(void *)slot; /* slots are page-aligned and zeroed */
		b->pool = pool;
		b->cap = POOL_SLOT;
	} else {
		b = calloc(1, sizeof(*b));
		slot = sodium_malloc(need);
		if (b == NULL || slot == NULL) {
			free(b);
			if (slot != NULL)
				sodium_free(slot);
			return NULL;
		}
		b->cap = need;
	}
	b->slot = slot;
	b->pub.data = slot + b->cap - need;
	b->pub.len = len;
	return b;
}

void vault_secret_free(struct vault_secret *s)
{
	struct secret_box *b = (struct secret_box *)s;
	struct guarded *pool;
	uint8_t *slot;

	if (b == NULL)
		return;
	pool = b->pool;
	slot = b->slot;
	if (pool != NULL) {
		/* Slots come zeroed; only the box and the value's bytes were written. */
		sodium_memzero(b->pub.data, b->pub.len > 0 ? b->pub.len : 1);
		sodium_memzero(b, sizeof(*b));
		guarded_give(pool, slot);
	} else {
		sodium_free(slot); /* wipes */
		free(b);
	}
}

/* ---- connections --------------------------------------------------------- */

/*
 * Process-wide, before SQLite initialises: no memory statistics (a mutex
 * around every allocation) and no bulk page allocation for each
 * connection (20 pages, about 90 KiB, all written at once: most of an idle
 * broker's heap); a vault's pages are allocated as they are read.  Either
 * call fails harmlessly if something else initialised SQLite first.
 */
static void sqlite_setup(void)
{
	(void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	(void)sqlite3_config(SQLITE_CONFIG_PAGECACHE, NULL, 0, 0);
}

/*
 * Open one connection.  Settings that touch the file (WAL) come later, in
 * db_configure, once we know the file is a vault, so a foreign file is
 * never modified.
 */
static int db_open(const char *path, sqlite3 **out, char *err, size_t errlen)
{
	static pthread_once_t setup_once = PTHREAD_ONCE_INIT;
	sqlite3 *db = NULL;
	int src, rc = VAULT_E_IO;

	if (pthread_once(&setup_once, sqlite_setup) != 0) {
		set_err(err, errlen, "vault %s: cannot set SQLite up", path);
		goto out;
	}
	src = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (src != SQLITE_OK) {
		rc = sqlite_to_vault(src);
		set_err(err, errlen, "vault %s: %s", path,
			db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(src));
		goto out;
	}
	/* The file may have been edited by someone else: trust nothing in its schema. */
	if (sqlite3_busy_timeout(db, BUSY_MS) != SQLITE_OK ||
	    sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL) != SQLITE_OK ||
	    sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL) != SQLITE_OK) {
		set_err(err, errlen, "vault %s: %s", path, sqlite3_errmsg(db));
		goto out;
	}
	rc = VAULT_OK;
out:
	if (rc != VAULT_OK) {
		sqlite3_close(db);
		db = NULL;
	}
	*out = db;
	return rc;
}

/* WAL, durable commits, and deleted content overwritten, on every connection. */
static int db_configure(sqlite3 *db, const char *path, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int src, rc = VAULT_E_IO;

	src = prepare(db, "PRAGMA journal_mode=WAL", &st);
	if (src == SQLITE_OK)
		src = sqlite3_step(st);
	if (src != SQLITE_ROW) {
		rc = sqlite_to_vault(src);
		set_err(err, errlen, "vault %s: %s", path, sqlite3_errmsg(db));
		goto out;
	}
	if (sqlite3_column_type(st, 0) != SQLITE_TEXT ||
	    strcmp((const char *)sqlite3_column_text(st, 0), "wal") != 0) {
		set_err(err, errlen, "vault %s: cannot switch to WAL mode", path);
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	src = sqlite3_exec(db, "PRAGMA synchronous=FULL; PRAGMA secure_delete=ON;"
			   " PRAGMA foreign_keys=OFF;", NULL, NULL, NULL);
	if (src != SQLITE_OK) {
		rc = sqlite_to_vault(src);
		set_err(err, errlen, "vault %s: %s", path, sqlite3_errmsg(db));
		goto out;
	}
	rc = VAULT_OK;
out:
	sqlite3_finalize(st);
	return rc;
}

/* ---- create --------------------------------------------------------------- */

static int exclusive_create(const char *path, char *err, size_t errlen)
{
	static const char *const side[] = { "-wal", "-shm", "-journal" };
	char side_path[4096];
	int fd, rc = VAULT_E_IO;

	/* A stale WAL beside a new file would be replayed into it. */
	for (size_t i = 0; i < sizeof(side) / sizeof(side[0]); i++) {
		struct stat sb;
		int n = snprintf(side_path, sizeof(side_path), "%s%s", path, side[i]);

		if (n < 0 || (size_t)n >= sizeof(side_path)) {
			set_err(err, errlen, "vault %s: path too long", path);
			return VAULT_E_IO;
		}
		if (lstat(side_path, &sb) == 0) {
			set_err(err, errlen, "vault %s: a stale file %s is in the way", path, side_path);
			return VAULT_E_EXISTS;
		}
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		rc = errno == EEXIST ? VAULT_E_EXISTS : VAULT_E_IO;
		set_err(err, errlen, "vault %s: %s", path,
			errno == EEXIST ? "already exists, not overwriting" : strerror(errno));
		return rc;
	}
	/* Exactly 0600 whatever the umask; SQLite gives -wal and -shm the same mode. */
	if (fchmod(fd, 0600) != 0) {
		set_err(err, errlen, "vault %s: %s", path, strerror(errno));
		goto out;
	}
	rc = VAULT_OK;
out:
	close(fd);
	return rc;
}

static void unlink_all(const char *path)
{
	static const char *const side[] = { "", "-wal", "-shm", "-journal" };
	char p[4096];

	for (size_t i = 0; i < sizeof(side) / sizeof(side[0]); i++) {
		int n = snprintf(p, sizeof(p), "%s%s", path, side[i]);

		if (n > 0 && (size_t)n < sizeof(p))
			unlink(p);
	}
}

/* Make the new directory entry durable too. */
static int sync_parent(const char *path)
{
	char *copy = strdup(path);
	int fd = -1, rc = -1;

	if (copy == NULL)
		goto out;
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) != 0)
		goto out;
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	free(copy);
	return rc;
}

static int derive_kek(const uint8_t master[VAULT_KEY_LEN], uint8_t **kek)
{
	*kek = sodium_malloc(VAULT_KEY_LEN);
	if (*kek == NULL)
		return VAULT_E_NOMEM;
	if (crypto_kdf_derive_from_key(*kek, VAULT_KEY_LEN, KDF_SUBKEY_ID, KDF_CONTEXT,
				       master) != 0) {
		sodium_free(*kek);
		*kek = NULL;
		return VAULT_E_KEY;
	}
	return VAULT_OK;
}

static int insert_meta(sqlite3 *db, const char *k, const void *v, size_t len, bool text)
{
	sqlite3_stmt *st = NULL;
	int src;

	src = prepare(db, "INSERT INTO meta(k, v) VALUES(?1, ?2)", &st);
	if (src == SQLITE_OK)
		src = sqlite3_bind_text(st, 1, k, -1, SQLITE_STATIC);
	if (src == SQLITE_OK)
		src = text ? sqlite3_bind_text(st, 2, v, (int)len, SQLITE_STATIC)
			   : bind_bytes(st, 2, v, len);
	if (src == SQLITE_OK)
		src = stmt_run(st);
	sqlite3_finalize(st);
	return src;
}

/* A fresh random data key, wrapped for term 1. */
static int insert_datakey(sqlite3 *db, const uint8_t id[ID_LEN],
			  const uint8_t master[VAULT_KEY_LEN])
{
	uint8_t *kek = NULL, *dk = sodium_malloc(VAULT_KEY_LEN);
	uint8_t nonce[NONCE_LEN], wrapped[WRAPPED_LEN], ad[DATAKEY_AD_LEN];
	sqlite3_stmt *st = NULL;
	int rc = VAULT_E_NOMEM, src;

	if (dk == NULL || (rc = derive_kek(master, &kek)) != VAULT_OK)
		goto out;
	randombytes_buf(dk, VAULT_KEY_LEN);
	randombytes_buf(nonce, sizeof(nonce));
	datakey_ad(ad, id, 1);
	crypto_aead_xchacha20poly1305_ietf_encrypt(wrapped, NULL, dk, VAULT_KEY_LEN, ad,
						   sizeof(ad), NULL, nonce, kek);
	rc = VAULT_E_IO;
	src = prepare(db, "INSERT INTO datakeys(term, nonce, wrapped) VALUES(1, ?1, ?2)", &st);
	if (src == SQLITE_OK)
		src = bind_bytes(st, 1, nonce, sizeof(nonce));
	if (src == SQLITE_OK)
		src = bind_bytes(st, 2, wrapped, sizeof(wrapped));
	if (src == SQLITE_OK)
		src = stmt_run(st);
	if (src != SQLITE_OK) {
		rc = sqlite_to_vault(src);
		goto out;
	}
	rc = VAULT_OK;
out:
	sqlite3_finalize(st);
	sodium_free(kek);
	sodium_free(dk);
	return rc;
}

static int create_schema(sqlite3 *db, const char *path, const uint8_t master[VAULT_KEY_LEN],
			 char *err, size_t errlen)
{
	uint8_t id[ID_LEN];
	char pragma[64];
	int rc = VAULT_E_IO, src;

	randombytes_buf(id, sizeof(id));
	snprintf(pragma, sizeof(pragma), "PRAGMA application_id=%d", APPLICATION_ID);
	if (sqlite3_exec(db, pragma, NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		goto out;
	src = sqlite3_exec(db, schema_sql, NULL, NULL, NULL);
	if (src == SQLITE_OK)
		src = insert_meta(db, "format", FORMAT_TAG, strlen(FORMAT_TAG), true);
	if (src == SQLITE_OK)
		src = insert_meta(db, "schema", "1", 1, true);
	if (src == SQLITE_OK)
		src = insert_meta(db, "vault_id", id, sizeof(id), false);
	if (src != SQLITE_OK) {
		rc = sqlite_to_vault(src);
		goto out;
	}
	rc = insert_datakey(db, id, master);
	if (rc != VAULT_OK)
		goto out;
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		rc = VAULT_E_IO;
		goto out;
	}
	rc = VAULT_OK;
out:
	if (rc != VAULT_OK) {
		set_err(err, errlen, "vault %s: creating the vault: %s", path,
			rc == VAULT_E_NOMEM ? "out of memory" : sqlite3_errmsg(db));
		if (!sqlite3_get_autocommit(db))
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	}
	return rc;
}

int vault_create(const char *path, const uint8_t master[VAULT_KEY_LEN],
		 char *err, size_t errlen)
{
	sqlite3 *db = NULL;
	bool created = false;
	int rc;

	if (sodium_init() < 0) {
		set_err(err, errlen, "vault %s: cannot initialise libsodium", path);
		return VAULT_E_IO;
	}
	rc = exclusive_create(path, err, errlen);
	if (rc != VAULT_OK)
		goto out;
	created = true;
	rc = db_open(path, &db, err, errlen);
	if (rc != VAULT_OK)
		goto out;
	rc = db_configure(db, path, err, errlen);
	if (rc != VAULT_OK)
		goto out;
	rc = create_schema(db, path, master, err, errlen);
	if (rc != VAULT_OK)
		goto out;
	/* Closing the last connection folds the WAL into the file. */
	if (sqlite3_close(db) != SQLITE_OK) {
		set_err(err, errlen, "vault %s: %s", path, sqlite3_errmsg(db));
		rc = VAULT_E_IO;
		goto out;
	}
	db = NULL;
	if (sync_parent(path) != 0) {
		set_err(err, errlen, "vault %s: syncing its directory: %s", path, strerror(errno));
		rc = VAULT_E_IO;
		goto out;
	}
	rc = VAULT_OK;
out:
	sqlite3_close(db);
	if (rc != VAULT_OK && created)
		unlink_all(path);
	return rc;
}

/* ---- open ----------------------------------------------------------------- */

static int check_file(const char *path, char *err, size_t errlen)
{
	struct stat sb;

	if (stat(path, &sb) != 0) {
		set_err(err, errlen, "vault %s: %s", path,
			errno == ENOENT ? "no such file" : strerror(errno));
		return VAULT_E_IO;
	}
	if (!S_ISREG(sb.st_mode)) {
		set_err(err, errlen, "vault %s: not a regular file", path);
		return VAULT_E_FORMAT;
	}
	/* SQLite would take an empty file for a new database and write to it. */
	if (sb.st_size == 0) {
		set_err(err, errlen, "vault %s: empty file, not a secretd vault", path);
		return VAULT_E_FORMAT;
	}
	return VAULT_OK;
}

/* Read meta value k; *st holds the row until the caller finalizes it. */
static int read_meta(sqlite3 *db, const char *k, sqlite3_stmt **st)
{
	int src = prepare(db, "SELECT v FROM meta WHERE k = ?1", st);

	if (src == SQLITE_OK)
		src = sqlite3_bind_text(*st, 1, k, -1, SQLITE_STATIC);
	if (src == SQLITE_OK)
		src = sqlite3_step(*st);
	return src;
}

static int check_app_id(sqlite3 *db, const char *path, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int src, rc = VAULT_E_FORMAT;

	src = prepare(db, "PRAGMA application_id", &st);
	if (src == SQLITE_OK)
		src = sqlite3_step(st);
	if (src != SQLITE_ROW) {
		rc = sqlite_to_vault(src);
		set_err(err, errlen, "vault %s: not a secretd vault (%s)", path, sqlite3_errmsg(db));
		goto out;
	}
	if (sqlite3_column_int64(st, 0) != APPLICATION_ID) {
		set_err(err, errlen, "vault %s: not a secretd vault", path);
		goto out;
	}
	rc = VAULT_OK;
out:
	sqlite3_finalize(st);
	return rc;
}

static int check_meta_text(sqlite3 *db, const char *path, const char *k, const char *want,
			   char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int src, rc = VAULT_E_FORMAT;

	src = read_meta(db, k, &st);
	if (src != SQLITE_ROW && src != SQLITE_DONE) {
		rc = sqlite_to_vault(src);
		set_err(err, errlen, "vault %s: not a secretd vault (%s)", path, sqlite3_errmsg(db));
		goto out;
	}
	if (src == SQLITE_DONE || (size_t)sqlite3_column_bytes(st, 0) != strlen(want) ||
	    memcmp(sqlite3_column_blob(st, 0), want, strlen(want)) != 0) {
		if (strcmp(k, "schema") == 0)
			set_err(err, errlen, "vault %s: unknown schema version (this secretd "
				"reads version %d)", path, SCHEMA_VERSION);
		else
			set_err(err, errlen, "vault %s: not a secretd vault", path);
		goto out;
	}
	rc = VAULT_OK;
out:
	sqlite3_finalize(st);
	return rc;
}

static int read_vault_id(sqlite3 *db, const char *path, uint8_t id[ID_LEN],
			 char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int src, rc = VAULT_E_FORMAT;

	src = read_meta(db, "vault_id", &st);
	if (src != SQLITE_ROW && src != SQLITE_DONE) {
		rc = sqlite_to_vault(src);
		set_err(err, errlen, "vault %s: %s", path, sqlite3_errmsg(db));
		goto out;
	}
	if (src == SQLITE_DONE || sqlite3_column_type(st, 0) != SQLITE_BLOB ||
	    sqlite3_column_bytes(st, 0) != ID_LEN) {
		set_err(err, errlen, "vault %s: damaged: the vault id is missing or malformed", path);
		goto out;
	}
	memcpy(id, sqlite3_column_blob(st, 0), ID_LEN);
	rc = VAULT_OK;
out:
	sqlite3_finalize(st);
	return rc;
}

static int check_format(struct vault *v, char *err, size_t errlen)
{
	char schema[16];
	int rc;

	snprintf(schema, sizeof(schema), "%d", SCHEMA_VERSION);
	rc = check_app_id(v->db, v->path, err, errlen);
	if (rc == VAULT_OK)
		rc = check_meta_text(v->db, v->path, "format", FORMAT_TAG, err, errlen);
	if (rc == VAULT_OK)
		rc = check_meta_text(v->db, v->path, "schema", schema, err, errlen);
	if (rc == VAULT_OK)
		rc = read_vault_id(v->db, v->path, v->id, err, errlen);
	return rc;
}

/* Unwrap the data key of the current row of st into slot. */
static int unwrap_one(struct vault *v, sqlite3_stmt *st, const uint8_t *kek, uint8_t *slot,
		      uint32_t *term, char *err, size_t errlen)
{
	sqlite3_int64 t = sqlite3_column_int64(st, 0);
	uint8_t ad[DATAKEY_AD_LEN];
	unsigned long long outlen;

	if (sqlite3_column_type(st, 0) != SQLITE_INTEGER || t < 1 || t > UINT32_MAX ||
	    sqlite3_column_type(st, 1) != SQLITE_BLOB || sqlite3_column_bytes(st, 1) != NONCE_LEN ||
	    sqlite3_column_type(st, 2) != SQLITE_BLOB ||
	    sqlite3_column_bytes(st, 2) != WRAPPED_LEN) {
		set_err(err, errlen, "vault %s: damaged: a data key row is malformed", v->path);
		return VAULT_E_FORMAT;
	}
	*term = (uint32_t)t;
	datakey_ad(ad, v->id, *term);
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(slot, &outlen, NULL,
						       sqlite3_column_blob(st, 2), WRAPPED_LEN,
						       ad, sizeof(ad),
						       sqlite3_column_blob(st, 1), kek) != 0 ||
	    outlen != VAULT_KEY_LEN) {
		set_err(err, errlen, "vault %s: the key does not open this vault", v->path);
		return VAULT_E_KEY;
	}
	return VAULT_OK;
}

static int count_terms(struct vault *v, size_t *n, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int src, rc = VAULT_E_IO;

	src = prepare(v->db, "SELECT count(*) FROM datakeys", &st);
	if (src == SQLITE_OK)
		src = sqlite3_step(st);
	if (src != SQLITE_ROW) {
		rc = sqlite_to_vault(src);
		set_err(err, errlen, "vault %s: %s", v->path, sqlite3_errmsg(v->db));
		goto out;
	}
	*n = (size_t)sqlite3_column_int64(st, 0);
	if (*n == 0 || *n > 1024) {
		rc = VAULT_E_INTEGRITY;
		set_err(err, errlen, "vault %s: integrity error: %s", v->path,
			*n == 0 ? "no data key" : "too many data keys");
		goto out;
	}
	rc = VAULT_OK;
out:
	sqlite3_finalize(st);
	return rc;
}

static int load_keys(struct vault *v, const uint8_t master[VAULT_KEY_LEN],
		     char *err, size_t errlen)
{
	struct keyring *kr = &v->kr;
	sqlite3_stmt *st = NULL;
	uint8_t *kek = NULL;
	size_t n = 0;
	int src, rc;

	rc = count_terms(v, &n, err, errlen);
	if (rc != VAULT_OK)
		goto out;
	rc = VAULT_E_NOMEM;
	kr->terms = calloc(n, sizeof(*kr->terms));
	kr->keys = sodium_malloc(n * VAULT_KEY_LEN);
	if (kr->terms == NULL || kr->keys == NULL || derive_kek(master, &kek) != VAULT_OK) {
		set_err(err, errlen, "vault %s: out of memory", v->path);
		goto out;
	}
	src = prepare(v->db, "SELECT term, nonce, wrapped FROM datakeys ORDER BY term", &st);
	while (src == SQLITE_OK && (src = sqlite3_step(st)) == SQLITE_ROW && kr->n < n) {
		rc = unwrap_one(v, st, kek, kr->keys + kr->n * VAULT_KEY_LEN,
				&kr->terms[kr->n], err, errlen);
		if (rc != VAULT_OK)
			goto out;
		kr->n++;
		src = SQLITE_OK;
	}
	if (src != SQLITE_DONE || kr->n != n) {
		rc = src == SQLITE_DONE || src == SQLITE_ROW ? VAULT_E_IO : sqlite_to_vault(src);
		set_err(err, errlen, "vault %s: reading the data keys: %s", v->path,
			sqlite3_errmsg(v->db));
		goto out;
	}
	if (sodium_mprotect_readonly(kr->keys) != 0) {
		rc = VAULT_E_IO;
		set_err(err, errlen, "vault %s: cannot protect the data key", v->path);
		goto out;
	}
	rc = VAULT_OK;
out:
	sqlite3_finalize(st);
	sodium_free(kek); /* wipes the derived key */
	if (rc != VAULT_OK)
		keyring_free(kr);
	return rc;
}

static int prepare_reader(struct vault *v, char *err, size_t errlen)
{
	int src;

	src = prepare(v->db, "SELECT version, term, nonce, ct FROM secrets WHERE name = ?1"
		      " ORDER BY version DESC LIMIT 1", &v->st_latest);
	if (src == SQLITE_OK)
		src = prepare(v->db, "SELECT version, term, nonce, ct FROM secrets"
			      " WHERE name = ?1 AND version = ?2", &v->st_version);
	if (src == SQLITE_OK)
		src = prepare(v->db, "SELECT DISTINCT name FROM secrets ORDER BY name",
			      &v->st_list);
	if (src == SQLITE_OK)
		src = prepare(v->db, "SELECT name, max(version) FROM secrets GROUP BY name"
			      " ORDER BY name", &v->st_versions);
	if (src == SQLITE_OK)
		src = prepare(v->db, "SELECT v FROM meta WHERE k = 'checkpoint'", &v->st_ckpt);
	if (src == SQLITE_OK)
		src = prepare(v->db, "SELECT v FROM meta WHERE k = 'upstream'", &v->st_upstream);
	if (src == SQLITE_OK)
		src = prepare(v->db, "SELECT count(DISTINCT name) FROM secrets", &v->st_count);
	if (src == SQLITE_OK)
		src = prepare(v->db, "BEGIN", &v->st_read_begin);
	if (src == SQLITE_OK)
		src = prepare(v->db, "COMMIT", &v->st_read_end);
	if (src != SQLITE_OK) {
		set_err(err, errlen, "vault %s: not a secretd vault (%s)", v->path,
			sqlite3_errmsg(v->db));
		return src == SQLITE_NOMEM ? VAULT_E_NOMEM : VAULT_E_FORMAT;
	}
	return VAULT_OK;
}

/*
 * lock: take PATH.lock for the life of the struct (a broker); without it
 * (a reader such as audit-verify) the vault can be read beside a broker
 * that holds it, SQLite's WAL keeping the two consistent.
 */
static int open_vault(const char *path, const uint8_t master[VAULT_KEY_LEN], bool lock,
		      struct vault **out, char *err, size_t errlen)
{
	struct vault *v = NULL;
	int rc = VAULT_E_NOMEM;

	*out = NULL;
	if (sodium_init() < 0) {
		set_err(err, errlen, "vault %s: cannot initialise libsodium", path);
		rc = VAULT_E_IO;
		goto out;
	}
	v = calloc(1, sizeof(*v));
	if (v != NULL)
		v->lock_fd = -1;
	if (v == NULL || (v->path = strdup(path)) == NULL ||
	    (v->pool = guarded_new(POOL_FIRST, POOL_PER_SLAB, GUARDED_EACH)) == NULL) {
		set_err(err, errlen, "vault %s: out of memory", path);
		goto out;
	}
	rc = check_file(path, err, errlen);
	if (rc == VAULT_OK && lock) {
		/* Before SQLite opens it: a second broker must not even replay the WAL. */
		v->lock_fd = lockfile_take(path, "vault", err, errlen);
		rc = v->lock_fd >= 0 ? VAULT_OK : v->lock_fd == -EWOULDBLOCK ? VAULT_E_BUSY : VAULT_E_IO;
	}
	if (rc == VAULT_OK)
		rc = db_open(path, &v->db, err, errlen);
	if (rc == VAULT_OK)
		rc = check_format(v, err, errlen);
	if (rc == VAULT_OK)
		rc = db_configure(v->db, path, err, errlen);
	if (rc == VAULT_OK)
		rc = load_keys(v, master, err, errlen);
	if (rc == VAULT_OK)
		rc = prepare_reader(v, err, errlen);
	if (rc != VAULT_OK)
		goto out;
	*out = v;
	v = NULL;
out:
	vault_close(v);
	return rc;
}

int vault_open(const char *path, const uint8_t master[VAULT_KEY_LEN],
	       struct vault **out, char *err, size_t errlen)
{
	return open_vault(path, master, true, out, err, errlen);
}

int vault_open_reader(const char *path, const uint8_t master[VAULT_KEY_LEN],
		      struct vault **out, char *err, size_t errlen)
{
	return open_vault(path, master, false, out, err, errlen);
}

void vault_close(struct vault *v)
{
	if (v == NULL)
		return;
	vault_turn_end(v);
	sqlite3_finalize(v->st_read_begin);
	sqlite3_finalize(v->st_read_end);
	sqlite3_finalize(v->st_latest);
	sqlite3_finalize(v->st_version);
	sqlite3_finalize(v->st_list);
	sqlite3_finalize(v->st_versions);
	sqlite3_finalize(v->st_ckpt);
	sqlite3_finalize(v->st_upstream);
	sqlite3_finalize(v->st_count);
	sqlite3_close(v->db);
	lockfile_release(v->lock_fd); /* after SQLite let go of the file */
	keyring_free(&v->kr);
	guarded_close(v->pool);
	vault_rows_free(v->rows);
	subkeys_free(v->sk);
	free(v->path);
	free(v);
}

/* ---- reads ---------------------------------------------------------------- */

/* The current row of st as a sealed row, or VAULT_E_INTEGRITY if it is not one. */
static int row_of(sqlite3_stmt *st, struct sealed_row *row)
{
	sqlite3_int64 ver = sqlite3_column_int64(st, 0), term = sqlite3_column_int64(st, 1);
	int ctlen = sqlite3_column_bytes(st, 3);

	if (sqlite3_column_type(st, 0) != SQLITE_INTEGER || ver < 1 || ver > UINT32_MAX ||
	    sqlite3_column_type(st, 1) != SQLITE_INTEGER || term < 1 || term > UINT32_MAX ||
	    sqlite3_column_type(st, 2) != SQLITE_BLOB || sqlite3_column_bytes(st, 2) != NONCE_LEN ||
	    sqlite3_column_type(st, 3) != SQLITE_BLOB || ctlen < (int)TAG_LEN ||
	    (size_t)ctlen - TAG_LEN > WIRE_MAX_VALUE)
		return VAULT_E_INTEGRITY;
	row->version = (uint32_t)ver;
	row->term = (uint32_t)term;
	row->nonce = sqlite3_column_blob(st, 2);
	row->ct = sqlite3_column_blob(st, 3);
	row->ct_len = (size_t)ctlen;
	return VAULT_OK;
}

/*
 * Authenticate and decrypt a row of name; nothing is returned on failure.
 * The loop's vault (vault_hold_reads) keeps the rows' subkeys.
 */
static int open_row(struct vault *v, const struct sealed_row *row, const char *name, size_t len,
		    struct vault_secret **out)
{
	struct secret_box *b = NULL;
	struct vault_secret *s = NULL;
	uint8_t ad[SECRET_AD_MAX];
	const uint8_t *key;
	size_t adlen;
	int rc = VAULT_E_INTEGRITY, open;

	key = keyring_find(&v->kr, row->term);
	if (key == NULL)
		goto out;
	rc = VAULT_E_NOMEM;
	b = box_new(v->pool, row->ct_len - TAG_LEN);
	if (b == NULL)
		goto out;
	s = &b->pub;
	s->version = row->version;
	adlen = secret_ad(ad, v->id, row->term, s->version, name, len);
	if (v->hold && v->sk == NULL)
		v->sk = subkeys_new(); /* NULL: each get derives its subkey, as before */
	if (v->sk != NULL)
		open = subkeys_open(v->sk, row->term, key, row->nonce, s->data, row->ct, row->ct_len, ad,
				    adlen);
	else
		open = crypto_aead_xchacha20poly1305_ietf_decrypt(s->data, NULL, NULL, row->ct,
								  (unsigned long long)row->ct_len, ad,
								  adlen, row->nonce, key);
	rc = VAULT_E_INTEGRITY;
	if (open != 0)
		goto out;
	*out = s;
	s = NULL;
	rc = VAULT_OK;
out:
	vault_secret_free(s);
	return rc;
}

/*
 * Reads held together.  SQLite takes and drops a WAL read lock (two fcntl
 * calls on the -shm file) for each transaction; with many gets in one turn
 * of the loop, the second one opens a read transaction that the rest share
 * and vault_turn_end closes before the loop sleeps.  The first read of a
 * turn stays a transaction of its own, so one get a turn costs no BEGIN
 * and COMMIT.  A transaction is never held while the loop waits: the WAL
 * can still be checkpointed and restarted by the writer.
 */
void vault_hold_reads(struct vault *v)
{
	v->hold = true;
	/* Under the same promise, rows read can be kept until the next commit. */
	if (v->rows == NULL)
		v->rows = vault_rows_new(ROWS_BUDGET); /* NULL: every get reads SQLite */
}

void vault_turn_end(struct vault *v)
{
	if (v == NULL)
		return;
	v->turn_reads = 0;
	if (!v->held)
		return;
	v->held = false;
	if (sqlite3_get_autocommit(v->db))
		return; /* already ended (an error rolls a transaction back) */
	if (sqlite3_step(v->st_read_end) != SQLITE_DONE) {
		sqlite3_reset(v->st_read_end);
		(void)sqlite3_exec(v->db, "ROLLBACK", NULL, NULL, NULL);
	}
	sqlite3_reset(v->st_read_end);
}

void vault_writer_committed(struct vault_writer *w)
{
	if (w == NULL)
		return;
	vault_turn_end(w->v);
	/* Whatever the commit changed, no row read before it is served again. */
	vault_rows_clear(w->v->rows);
}

static void read_enter(struct vault *v)
{
	if (!v->hold || v->held || v->turn_reads++ == 0 || !sqlite3_get_autocommit(v->db))
		return;
	/* Without it the read is its own transaction, as before: nothing lost. */
	if (sqlite3_step(v->st_read_begin) == SQLITE_DONE)
		v->held = true;
	sqlite3_reset(v->st_read_begin);
}

int vault_get(struct vault *v, const char *name, size_t len, uint32_t version,
	      struct vault_secret **out)
{
	sqlite3_stmt *st = version == 0 ? v->st_latest : v->st_version;
	struct sealed_row row;
	int src, rc = VAULT_E_NOTFOUND;

	*out = NULL;
	if (len > NAME_MAX_LEN)
		goto out;
	if (version == 0 && vault_rows_get(v->rows, name, len, &row) == 0)
		return open_row(v, &row, name, len, out);
	read_enter(v);
	src = bind_bytes(st, 1, name, len);
	if (src == SQLITE_OK && version != 0)
		src = sqlite3_bind_int64(st, 2, version);
	if (src == SQLITE_OK)
		src = sqlite3_step(st);
	if (src == SQLITE_DONE)
		goto out;
	if (src != SQLITE_ROW) {
		/* A damaged page under a read is the file failing its integrity. */
		rc = sqlite_to_vault(src);
		if (rc == VAULT_E_FORMAT)
			rc = VAULT_E_INTEGRITY;
		goto out;
	}
	rc = row_of(st, &row);
	if (rc == VAULT_OK && version == 0)
		vault_rows_put(v->rows, name, len, &row);
	if (rc == VAULT_OK)
		rc = open_row(v, &row, name, len, out);
out:
	stmt_done(st);
	return rc;
}

int vault_list(struct vault *v, vault_name_fn fn, void *ctx)
{
	sqlite3_stmt *st = v->st_list;
	int src, rc = 0;

	while ((src = sqlite3_step(st)) == SQLITE_ROW) {
		const void *p = sqlite3_column_blob(st, 0);
		size_t len = (size_t)sqlite3_column_bytes(st, 0);

		rc = fn(p != NULL ? (const char *)p : "", len, ctx);
		if (rc != 0)
			goto out;
	}
	if (src != SQLITE_DONE)
		rc = sqlite_to_vault(src) == VAULT_E_NOMEM ? VAULT_E_NOMEM : VAULT_E_IO;
out:
	stmt_done(st);
	return rc;
}

int vault_list_versions(struct vault *v, vault_version_fn fn, void *ctx)
{
	sqlite3_stmt *st = v->st_versions;
	int src, rc = 0;

	while ((src = sqlite3_step(st)) == SQLITE_ROW) {
		const void *p = sqlite3_column_blob(st, 0);
		size_t len = (size_t)sqlite3_column_bytes(st, 0);
		sqlite3_int64 version = sqlite3_column_int64(st, 1);

		if (version <= 0 || version > UINT32_MAX) {
			rc = VAULT_E_INTEGRITY;
			goto out;
		}
		rc = fn(p != NULL ? (const char *)p : "", len, (uint32_t)version, ctx);
		if (rc != 0)
			goto out;
	}
	if (src != SQLITE_DONE)
		rc = sqlite_to_vault(src) == VAULT_E_NOMEM ? VAULT_E_NOMEM : VAULT_E_IO;
out:
	stmt_done(st);
	return rc;
}

int vault_checkpoint_get(struct vault *v, uint8_t *buf, size_t cap, size_t *len)
{
	sqlite3_stmt *st = v->st_ckpt;
	int src, rc = VAULT_E_NOTFOUND;
	size_t n;

	*len = 0;
	src = sqlite3_step(st);
	if (src == SQLITE_DONE)
		goto out;
	if (src != SQLITE_ROW) {
		rc = sqlite_to_vault(src) == VAULT_E_NOMEM ? VAULT_E_NOMEM : VAULT_E_IO;
		goto out;
	}
	n = (size_t)sqlite3_column_bytes(st, 0);
	if (n > cap) {
		rc = VAULT_E_TOOBIG;
		goto out;
	}
	if (n > 0)
		memcpy(buf, sqlite3_column_blob(st, 0), n);
	*len = n;
	rc = VAULT_OK;
out:
	stmt_done(st);
	return rc;
}

static uint64_t get_be64(const uint8_t *p)
{
	uint64_t x = 0;

	for (int i = 0; i < 8; i++)
		x = x << 8 | p[i];
	return x;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be64(uint8_t *p, uint64_t x)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)x;
		x >>= 8;
	}
}

/* Open a sealed upstream record: term | nonce | ct. */
static int upstream_open(const struct vault *v, const uint8_t *rec, size_t len,
			 struct vault_upstream *out)
{
	uint8_t plain[UPSTREAM_PLAIN_MAX], ad[UPSTREAM_AD_LEN];
	const uint8_t *key;
	size_t plen, klen;
	uint32_t term;
	uint64_t rev, crev;

	if (len < UPSTREAM_REC_OVERHEAD + UPSTREAM_PLAIN_MIN ||
	    len > UPSTREAM_REC_OVERHEAD + UPSTREAM_PLAIN_MAX)
		return VAULT_E_INTEGRITY;
	plen = len - UPSTREAM_REC_OVERHEAD;
	term = get_be32(rec);
	key = keyring_find(&v->kr, term);
	if (key == NULL)
		return VAULT_E_INTEGRITY;
	upstream_ad(ad, v->id, term);
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain, NULL, NULL, rec + 4 + NONCE_LEN,
						       plen + TAG_LEN, ad, sizeof(ad), rec + 4,
						       key) != 0)
		return VAULT_E_INTEGRITY;
	rev = get_be64(plain);
	crev = get_be64(plain + 16);
	klen = (size_t)plain[UPSTREAM_PLAIN_MIN - 2] << 8 | plain[UPSTREAM_PLAIN_MIN - 1];
	if (rev > INT64_MAX || crev > rev || klen != plen - UPSTREAM_PLAIN_MIN)
		return VAULT_E_INTEGRITY;
	out->revision = (int64_t)rev;
	out->cluster_id = get_be64(plain + 8);
	out->check_revision = (int64_t)crev;
	memcpy(out->check_hash, plain + 24, VAULT_UPSTREAM_HASH_LEN);
	memcpy(out->check_key, plain + UPSTREAM_PLAIN_MIN, klen);
	out->check_key_len = klen;
	return VAULT_OK;
}

int vault_upstream_get(struct vault *v, struct vault_upstream *out)
{
	sqlite3_stmt *st = v->st_upstream;
	int src, rc;

	memset(out, 0, sizeof(*out));
	src = sqlite3_step(st);
	if (src == SQLITE_DONE)
		rc = VAULT_E_NOTFOUND;
	else if (src != SQLITE_ROW)
		rc = sqlite_to_vault(src) == VAULT_E_NOMEM ? VAULT_E_NOMEM : VAULT_E_IO;
	else if (sqlite3_column_type(st, 0) != SQLITE_BLOB)
		rc = VAULT_E_INTEGRITY;
	else
		rc = upstream_open(v, sqlite3_column_blob(st, 0),
				   (size_t)sqlite3_column_bytes(st, 0), out);
	stmt_done(st);
	return rc;
}

int vault_count(struct vault *v, size_t *out)
{
	sqlite3_stmt *st = v->st_count;
	int src = sqlite3_step(st), rc = VAULT_OK;

	*out = 0;
	if (src == SQLITE_ROW && sqlite3_column_int64(st, 0) >= 0)
		*out = (size_t)sqlite3_column_int64(st, 0);
	else
		rc = sqlite_to_vault(src) == VAULT_E_NOMEM ? VAULT_E_NOMEM : VAULT_E_IO;
	stmt_done(st);
	return rc;
}

/* ---- writes --------------------------------------------------------------- */

static int prepare_writer(struct vault_writer *w)
{
	sqlite3_stmt **slot[] = {
		&w->st_begin, &w->st_commit, &w->st_rollback, &w->st_savepoint,
		&w->st_release, &w->st_rollback_to, &w->st_maxver, &w->st_insert,
		&w->st_prune, &w->st_delete, &w->st_ckpt, &w->st_insert_new,
		&w->st_remove_upto, &w->st_clear, &w->st_state_put, &w->st_state_del,
	};
	static const char *const sql[] = {
		"BEGIN IMMEDIATE", "COMMIT", "ROLLBACK", "SAVEPOINT op", "RELEASE op",
		"ROLLBACK TO op",
		"SELECT max(version) FROM secrets WHERE name = ?1",
		"INSERT INTO secrets(name, version, term, nonce, ct) VALUES(?1, ?2, ?3, ?4, ?5)",
		/* Keep the newest keep versions: delete below the keep-th newest (OFFSET keep - 1). */
		("DELETE FROM secrets WHERE name = ?1 AND version < (SELECT version FROM secrets"
		 " WHERE name = ?1 ORDER BY version DESC LIMIT 1 OFFSET ?2)"),
		"DELETE FROM secrets WHERE name = ?1",
		"INSERT OR REPLACE INTO meta(k, v) VALUES('checkpoint', ?1)",
		/* A replica's versions are the upstream's: one already held stays as it is. */
		("INSERT INTO secrets(name, version, term, nonce, ct) VALUES(?1, ?2, ?3, ?4, ?5)"
		 " ON CONFLICT(name, version) DO NOTHING"),
		"DELETE FROM secrets WHERE name = ?1 AND version <= ?2",
		"DELETE FROM secrets",
		"INSERT OR REPLACE INTO meta(k, v) VALUES('upstream', ?1)",
		"DELETE FROM meta WHERE k = 'upstream'",
	};
	_Static_assert(sizeof(slot) / sizeof(slot[0]) == sizeof(sql) / sizeof(sql[0]),
		       "one statement a slot");

	for (size_t i = 0; i < sizeof(sql) / sizeof(sql[0]); i++) {
		int src = prepare(w->db, sql[i], slot[i]);

		if (src != SQLITE_OK)
			return src;
	}
	return SQLITE_OK;
}

int vault_writer_open(struct vault *v, unsigned keep_versions,
		      struct vault_writer **out, char *err, size_t errlen)
{
	struct vault_writer *w = calloc(1, sizeof(*w));
	uint8_t id[ID_LEN];
	int src, rc = VAULT_E_NOMEM;

	*out = NULL;
	if (w == NULL) {
		set_err(err, errlen, "vault %s: out of memory", v->path);
		goto out;
	}
	w->v = v;
	w->keep = keep_versions > 0 ? keep_versions : VAULT_DEFAULT_KEEP;
	if (v->lock_fd < 0) {
		set_err(err, errlen, "vault %s: opened for reading only", v->path);
		rc = VAULT_E_BUSY;
		goto out;
	}
	rc = db_open(v->path, &w->db, err, errlen);
	if (rc == VAULT_OK)
		rc = read_vault_id(w->db, v->path, id, err, errlen);
	if (rc == VAULT_OK && sodium_memcmp(id, v->id, ID_LEN) != 0) {
		/* The file was replaced since vault_open: our keys are not its keys. */
		set_err(err, errlen, "vault %s: the file changed since it was opened", v->path);
		rc = VAULT_E_FORMAT;
	}
	if (rc == VAULT_OK)
		rc = db_configure(w->db, v->path, err, errlen);
	if (rc != VAULT_OK)
		goto out;
	src = prepare_writer(w);
	if (src != SQLITE_OK) {
		rc = src == SQLITE_NOMEM ? VAULT_E_NOMEM : VAULT_E_FORMAT;
		set_err(err, errlen, "vault %s: %s", v->path, sqlite3_errmsg(w->db));
		goto out;
	}
	*out = w;
	w = NULL;
	rc = VAULT_OK;
out:
	vault_writer_close(w);
	return rc;
}

void vault_writer_close(struct vault_writer *w)
{
	if (w == NULL)
		return;
	sqlite3_finalize(w->st_begin);
	sqlite3_finalize(w->st_commit);
	sqlite3_finalize(w->st_rollback);
	sqlite3_finalize(w->st_savepoint);
	sqlite3_finalize(w->st_release);
	sqlite3_finalize(w->st_rollback_to);
	sqlite3_finalize(w->st_maxver);
	sqlite3_finalize(w->st_insert);
	sqlite3_finalize(w->st_prune);
	sqlite3_finalize(w->st_delete);
	sqlite3_finalize(w->st_ckpt);
	sqlite3_finalize(w->st_insert_new);
	sqlite3_finalize(w->st_remove_upto);
	sqlite3_finalize(w->st_clear);
	sqlite3_finalize(w->st_state_put);
	sqlite3_finalize(w->st_state_del);
	sqlite3_close(w->db);
	free(w->ct);
	free(w);
}

/* The highest stored version of name, 0 if none. */
static int max_version(struct vault_writer *w, const struct vault_op *op, uint32_t *out)
{
	sqlite3_stmt *st = w->st_maxver;
	sqlite3_int64 max;
	int src, rc = VAULT_E_IO;

	src = bind_bytes(st, 1, op->name, op->name_len);
	if (src == SQLITE_OK)
		src = sqlite3_step(st);
	if (src != SQLITE_ROW) {
		rc = sqlite_to_vault(src);
		goto out;
	}
	max = sqlite3_column_int64(st, 0);
	rc = VAULT_E_INTEGRITY;
	if (max < 0 || max >= UINT32_MAX)
		goto out;
	*out = (uint32_t)max;
	rc = VAULT_OK;
out:
	stmt_done(st);
	return rc;
}

/* Seal op's value for (name, version) under the current term into w->ct. */
static int seal(struct vault_writer *w, const struct vault_op *op, uint32_t version,
		uint32_t term, uint8_t nonce[NONCE_LEN], size_t *ctlen)
{
	const struct keyring *kr = &w->v->kr;
	const uint8_t *key = kr->keys + (kr->n - 1) * VAULT_KEY_LEN;
	uint8_t ad[SECRET_AD_MAX];
	size_t adlen, need = op->value_len + TAG_LEN;

	if (need > w->ct_cap) {
		uint8_t *bigger = realloc(w->ct, need);

		if (bigger == NULL)
			return VAULT_E_NOMEM;
		w->ct = bigger;
		w->ct_cap = need;
	}
	randombytes_buf(nonce, NONCE_LEN);
	adlen = secret_ad(ad, w->v->id, term, version, op->name, op->name_len);
	crypto_aead_xchacha20poly1305_ietf_encrypt(w->ct, NULL,
						   op->value_len > 0 ? op->value : (const uint8_t *)"",
						   op->value_len, ad, adlen, NULL, nonce, key);
	*ctlen = need;
	return VAULT_OK;
}

static int insert_row(struct vault_writer *w, sqlite3_stmt *st, const struct vault_op *op,
		      uint32_t version, uint32_t term, const uint8_t nonce[NONCE_LEN], size_t ctlen)
{
	int src;

	src = bind_bytes(st, 1, op->name, op->name_len);
	if (src == SQLITE_OK)
		src = sqlite3_bind_int64(st, 2, version);
	if (src == SQLITE_OK)
		src = sqlite3_bind_int64(st, 3, term);
	if (src == SQLITE_OK)
		src = bind_bytes(st, 4, nonce, NONCE_LEN);
	if (src == SQLITE_OK)
		src = bind_bytes(st, 5, w->ct, ctlen);
	if (src == SQLITE_OK)
		src = stmt_run(st);
	else
		stmt_done(st);
	return src;
}

static int prune(struct vault_writer *w, const struct vault_op *op)
{
	sqlite3_stmt *st = w->st_prune;
	int src;

	src = bind_bytes(st, 1, op->name, op->name_len);
	if (src == SQLITE_OK)
		src = sqlite3_bind_int64(st, 2, (sqlite3_int64)w->keep - 1);
	if (src == SQLITE_OK)
		src = stmt_run(st);
	else
		stmt_done(st);
	return src;
}

static int apply_put(struct vault_writer *w, struct vault_op *op)
{
	const struct keyring *kr = &w->v->kr;
	uint32_t term = kr->terms[kr->n - 1], version = 0;
	uint8_t nonce[NONCE_LEN];
	size_t ctlen = 0;
	int src, rc;

	if (op->value_len > WIRE_MAX_VALUE || op->name_len > NAME_MAX_LEN)
		return VAULT_E_TOOBIG;
	rc = max_version(w, op, &version);
	if (rc != VAULT_OK)
		return rc;
	version++;
	rc = seal(w, op, version, term, nonce, &ctlen);
	if (rc != VAULT_OK)
		return rc;
	src = insert_row(w, w->st_insert, op, version, term, nonce, ctlen);
	if (src == SQLITE_OK)
		src = prune(w, op);
	if (src != SQLITE_OK)
		return sqlite_to_vault(src) == VAULT_E_NOMEM ? VAULT_E_NOMEM : VAULT_E_IO;
	op->version = version;
	return VAULT_OK;
}

static int apply_delete(struct vault_writer *w, struct vault_op *op)
{
	sqlite3_stmt *st = w->st_delete;
	int src, changes;

	if (op->name_len > NAME_MAX_LEN)
		return VAULT_E_NOTFOUND;
	src = bind_bytes(st, 1, op->name, op->name_len);
	if (src == SQLITE_OK)
		src = stmt_run(st);
	else
		stmt_done(st);
	if (src != SQLITE_OK)
		return sqlite_to_vault(src) == VAULT_E_NOMEM ? VAULT_E_NOMEM : VAULT_E_IO;
	changes = sqlite3_changes(w->db);
	if (changes <= 0)
		return VAULT_E_NOTFOUND;
	op->version = (uint32_t)changes;
	return VAULT_OK;
}

static int apply_checkpoint(struct vault_writer *w, const struct vault_op *op)
{
	sqlite3_stmt *st = w->st_ckpt;
	int src;

	if (op->value_len > CKPT_MAX)
		return VAULT_E_TOOBIG;
	src = bind_bytes(st, 1, op->value, op->value_len);
	if (src == SQLITE_OK)
		src = stmt_run(st);
	else
		stmt_done(st);
	if (src != SQLITE_OK)
		return sqlite_to_vault(src) == VAULT_E_NOMEM ? VAULT_E_NOMEM : VAULT_E_IO;
	return VAULT_OK;
}

static int sql_result(int src)
{
	if (src == SQLITE_OK)
		return VAULT_OK;
	return sqlite_to_vault(src) == VAULT_E_NOMEM ? VAULT_E_NOMEM : VAULT_E_IO;
}

/* A version chosen upstream, inserted unless the vault holds it already. */
static int replica_put(struct vault_writer *w, struct vault_change *c)
{
	const struct keyring *kr = &w->v->kr;
	uint32_t term = kr->terms[kr->n - 1];
	struct vault_op op = { .name = c->name, .name_len = c->name_len,
			       .value = c->value, .value_len = c->value_len };
	uint8_t nonce[NONCE_LEN];
	size_t ctlen = 0;
	int src, rc;

	if (c->value_len > WIRE_MAX_VALUE || c->name_len > NAME_MAX_LEN || c->version == 0)
		return VAULT_E_TOOBIG;
	rc = seal(w, &op, c->version, term, nonce, &ctlen);
	if (rc != VAULT_OK)
		return rc;
	src = insert_row(w, w->st_insert_new, &op, c->version, term, nonce, ctlen);
	if (src != SQLITE_OK)
		return sql_result(src);
	c->applied = sqlite3_changes(w->db) > 0;
	return sql_result(prune(w, &op));
}

static int replica_remove(struct vault_writer *w, struct vault_change *c)
{
	sqlite3_stmt *st = w->st_remove_upto;
	int src;

	src = bind_bytes(st, 1, c->name, c->name_len);
	if (src == SQLITE_OK)
		src = sqlite3_bind_int64(st, 2, c->version);
	if (src == SQLITE_OK)
		src = stmt_run(st);
	else
		stmt_done(st);
	if (src != SQLITE_OK)
		return sql_result(src);
	c->count = (uint32_t)sqlite3_changes(w->db);
	c->applied = c->count > 0;
	return VAULT_OK;
}

/* Seal the state under the current term: term | nonce | ct. */
static int replica_state(struct vault_writer *w, const struct vault_upstream *st)
{
	const struct keyring *kr = &w->v->kr;
	uint32_t term = kr->terms[kr->n - 1];
	uint8_t rec[UPSTREAM_REC_OVERHEAD + UPSTREAM_PLAIN_MAX], plain[UPSTREAM_PLAIN_MAX];
	uint8_t ad[UPSTREAM_AD_LEN];
	size_t plen = UPSTREAM_PLAIN_MIN + st->check_key_len;
	int src;

	if (st->revision < 0 || st->check_revision < 0 || st->check_revision > st->revision ||
	    st->check_key_len > VAULT_UPSTREAM_KEY_MAX)
		return VAULT_E_INTEGRITY;
	put_be32(rec, term);
	randombytes_buf(rec + 4, NONCE_LEN);
	put_be64(plain, (uint64_t)st->revision);
	put_be64(plain + 8, st->cluster_id);
	put_be64(plain + 16, (uint64_t)st->check_revision);
	memcpy(plain + 24, st->check_hash, VAULT_UPSTREAM_HASH_LEN);
	put_be16(plain + UPSTREAM_PLAIN_MIN - 2, (uint16_t)st->check_key_len);
	memcpy(plain + UPSTREAM_PLAIN_MIN, st->check_key, st->check_key_len);
	upstream_ad(ad, w->v->id, term);
	crypto_aead_xchacha20poly1305_ietf_encrypt(rec + 4 + NONCE_LEN, NULL, plain, plen,
						   ad, sizeof(ad), NULL, rec + 4,
						   kr->keys + (kr->n - 1) * VAULT_KEY_LEN);
	src = bind_bytes(w->st_state_put, 1, rec, UPSTREAM_REC_OVERHEAD + plen);
	if (src == SQLITE_OK)
		src = stmt_run(w->st_state_put);
	else
		stmt_done(w->st_state_put);
	return sql_result(src);
}

static int apply_replica(struct vault_writer *w, struct vault_op *op)
{
	struct vault_replica *r = op->replica;
	int rc = VAULT_OK;

	if (r == NULL)
		return VAULT_E_IO;
	if (r->replace)
		rc = sql_result(stmt_run(w->st_clear));
	if (rc == VAULT_OK && r->forget)
		rc = sql_result(stmt_run(w->st_state_del));
	for (size_t i = 0; rc == VAULT_OK && i < r->n; i++) {
		struct vault_change *c = &r->changes[i];

		c->applied = false;
		rc = c->kind == VAULT_CHANGE_PUT ? replica_put(w, c) : replica_remove(w, c);
	}
	if (rc == VAULT_OK && r->state != NULL)
		rc = replica_state(w, r->state);
	if (rc != VAULT_OK)
		for (size_t i = 0; i < r->n; i++)
			r->changes[i].applied = false;
	return rc;
}

/*
 * One op inside its own savepoint, so that its failure undoes only its own
 * changes.  Returns -1 when the savepoint machinery itself failed: then the
 * transaction can no longer be trusted and the batch is abandoned.
 */
static int apply_op(struct vault_writer *w, struct vault_op *op)
{
	int r = VAULT_E_IO;

	if (stmt_run(w->st_savepoint) != SQLITE_OK)
		return -1;
	switch (op->kind) {
	case VAULT_OP_PUT:
		r = apply_put(w, op);
		break;
	case VAULT_OP_DELETE:
		r = apply_delete(w, op);
		break;
	case VAULT_OP_CHECKPOINT:
		r = apply_checkpoint(w, op);
		break;
	case VAULT_OP_REPLICA:
		r = apply_replica(w, op);
		break;
	}
	op->result = r;
	if (r != VAULT_OK) {
		op->version = 0;
		if (stmt_run(w->st_rollback_to) != SQLITE_OK)
			return -1;
	}
	return stmt_run(w->st_release) == SQLITE_OK ? 0 : -1;
}

int vault_write_batch(struct vault_writer *w, struct vault_op *ops, size_t n)
{
	int rc = VAULT_E_IO;

	for (size_t i = 0; i < n; i++) {
		ops[i].result = VAULT_E_IO;
		ops[i].version = 0;
	}
	if (n == 0)
		return VAULT_OK;
	if (stmt_run(w->st_begin) != SQLITE_OK)
		goto out;
	for (size_t i = 0; i < n; i++)
		if (apply_op(w, &ops[i]) != 0)
			goto out;
	if (stmt_run(w->st_commit) != SQLITE_OK)
		goto out;
	rc = VAULT_OK;
out:
	if (rc != VAULT_OK) {
		if (!sqlite3_get_autocommit(w->db))
			stmt_run(w->st_rollback);
		for (size_t i = 0; i < n; i++) {
			ops[i].result = VAULT_E_IO;
			ops[i].version = 0;
		}
	}
	return rc;
}

const char *vault_strerror(int err)
{
	switch (err) {
	case VAULT_OK:
		return "ok";
	case VAULT_E_NOTFOUND:
		return "not found";
	case VAULT_E_INTEGRITY:
		return "integrity error";
	case VAULT_E_IO:
		return "vault I/O error";
	case VAULT_E_KEY:
		return "the key does not open this vault";
	case VAULT_E_NOMEM:
		return "out of memory";
	case VAULT_E_EXISTS:
		return "the vault already exists";
	case VAULT_E_FORMAT:
		return "not a secretd vault, or an unknown format";
	case VAULT_E_TOOBIG:
		return "value too large";
	case VAULT_E_BUSY:
		return "the vault is in use by another secretd";
	default:
		return "unknown vault error";
	}
}
