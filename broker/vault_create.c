/* A new vault file (vault_internal.h for the format). */
#include "vault_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static const char schema_sql[] =
	"CREATE TABLE meta(k TEXT PRIMARY KEY, v BLOB NOT NULL);"
	"CREATE TABLE datakeys(term INTEGER PRIMARY KEY, nonce BLOB NOT NULL,"
	" wrapped BLOB NOT NULL);"
	"CREATE TABLE secrets(name BLOB NOT NULL, version INTEGER NOT NULL,"
	" term INTEGER NOT NULL, nonce BLOB NOT NULL, ct BLOB NOT NULL,"
	" PRIMARY KEY(name, version)) WITHOUT ROWID;";

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

	if (dk == NULL || (rc = vault_derive_kek(master, &kek)) != VAULT_OK)
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
	rc = vault_db_open(path, &db, err, errlen);
	if (rc != VAULT_OK)
		goto out;
	rc = vault_db_configure(db, path, err, errlen);
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
