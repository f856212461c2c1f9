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
#include "vault_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "lockfile.h"
#include "subkeys.h"

int vault_derive_kek(const uint8_t master[VAULT_KEY_LEN], uint8_t **kek)
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

void vault_keyring_free(struct keyring *kr)
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

	src = vault_read_meta(db, k, &st);
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
		rc = vault_read_id(v->db, v->path, v->id, err, errlen);
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
	if (kr->terms == NULL || kr->keys == NULL || vault_derive_kek(master, &kek) != VAULT_OK) {
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
		vault_keyring_free(kr);
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
		rc = vault_db_open(path, &v->db, err, errlen);
	if (rc == VAULT_OK)
		rc = check_format(v, err, errlen);
	if (rc == VAULT_OK)
		rc = vault_db_configure(v->db, path, err, errlen);
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
	vault_keyring_free(&v->kr);
	guarded_close(v->pool);
	vault_rows_free(v->rows);
	subkeys_free(v->sk);
	free(v->path);
	free(v);
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
