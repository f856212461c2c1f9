/* The writer: its own connection, one transaction a batch (vault_internal.h). */
#include "vault_internal.h"

#include <stdlib.h>

#include <secretd/wire.h>

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
	rc = vault_db_open(v->path, &w->db, err, errlen);
	if (rc == VAULT_OK)
		rc = vault_read_id(w->db, v->path, id, err, errlen);
	if (rc == VAULT_OK && sodium_memcmp(id, v->id, ID_LEN) != 0) {
		/* The file was replaced since vault_open: our keys are not its keys. */
		set_err(err, errlen, "vault %s: the file changed since it was opened", v->path);
		rc = VAULT_E_FORMAT;
	}
	if (rc == VAULT_OK)
		rc = vault_db_configure(w->db, v->path, err, errlen);
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
