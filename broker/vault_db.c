/* The vault's SQLite connections, and reading its meta table (vault_internal.h). */
#include "vault_internal.h"

#include <pthread.h>

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
 * vault_db_configure, once we know the file is a vault, so a foreign file is
 * never modified.
 */
int vault_db_open(const char *path, sqlite3 **out, char *err, size_t errlen)
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
int vault_db_configure(sqlite3 *db, const char *path, char *err, size_t errlen)
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

/* ---- meta ----------------------------------------------------------------- */

/* Read meta value k; *st holds the row until the caller finalizes it. */
int vault_read_meta(sqlite3 *db, const char *k, sqlite3_stmt **st)
{
	int src = prepare(db, "SELECT v FROM meta WHERE k = ?1", st);

	if (src == SQLITE_OK)
		src = sqlite3_bind_text(*st, 1, k, -1, SQLITE_STATIC);
	if (src == SQLITE_OK)
		src = sqlite3_step(*st);
	return src;
}

int vault_read_id(sqlite3 *db, const char *path, uint8_t id[ID_LEN],
			 char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int src, rc = VAULT_E_FORMAT;

	src = vault_read_meta(db, "vault_id", &st);
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
