/*
 * The newest sealed row of each name read lately, kept by the loop's
 * vault so that a get of a name already read opens its row without a
 * SQLite read transaction (two fcntl locks on the -shm file, a statement
 * and a B-tree seek).  Rows are ciphertext, as on disk: nothing here is
 * secret, and each get still decrypts and checks its row.  The vault
 * empties the set after every commit of its writer, so a read after an
 * acknowledged write never sees an older row.  Bounded in bytes; when
 * full it is emptied and filled again by the reads that follow.
 */
#ifndef SECRETD_VAULT_ROWS_H
#define SECRETD_VAULT_ROWS_H

#include <stddef.h>
#include <stdint.h>

#define SEALED_NONCE_LEN 24

/* One row as SQLite returns it, or as the set keeps it. */
struct sealed_row {
	uint32_t version;
	uint32_t term;
	const uint8_t *nonce; /* SEALED_NONCE_LEN bytes */
	const uint8_t *ct;    /* ciphertext and tag */
	size_t ct_len;
};

struct vault_rows;

/* A set holding at most budget bytes of names and rows; NULL: out of memory. */
struct vault_rows *vault_rows_new(size_t budget);
void vault_rows_free(struct vault_rows *rs);

/* The row kept for name, valid until the next put or clear; 0, or -1 if none. */
int vault_rows_get(const struct vault_rows *rs, const char *name, size_t len,
		   struct sealed_row *out);
/* Keep a copy of row for name (a row too large for the budget is not kept). */
void vault_rows_put(struct vault_rows *rs, const char *name, size_t len,
		    const struct sealed_row *row);
void vault_rows_clear(struct vault_rows *rs);

#endif
