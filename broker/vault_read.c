/* The loop's reads, and the guarded boxes of plaintext they hand out (vault_internal.h). */
#include "vault_internal.h"

#include <stdlib.h>

#include <secretd/wire.h>

#include "subkeys.h"

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
