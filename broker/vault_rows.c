/* The newest sealed rows read lately: a chained hash table (vault_rows.h). */
#include "vault_rows.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#define BUCKETS 4096 /* a power of two */

struct row_entry {
	struct row_entry *next;
	uint64_t hash;
	uint32_t version, term;
	uint8_t nonce[SEALED_NONCE_LEN];
	size_t name_len, ct_len;
	uint8_t data[]; /* the name, then the ciphertext */
};

struct vault_rows {
	struct row_entry **bucket; /* BUCKETS heads, allocated at the first put */
	size_t used, budget;
	/* Names come from callers: a keyed hash, so none can choose collisions. */
	uint8_t key[crypto_shorthash_KEYBYTES];
};

struct vault_rows *vault_rows_new(size_t budget)
{
	struct vault_rows *rs = calloc(1, sizeof(*rs));

	if (rs == NULL)
		return NULL;
	rs->budget = budget;
	randombytes_buf(rs->key, sizeof(rs->key));
	return rs;
}

void vault_rows_clear(struct vault_rows *rs)
{
	size_t i;

	if (rs == NULL || rs->bucket == NULL || rs->used == 0)
		return;
	for (i = 0; i < BUCKETS; i++) {
		struct row_entry *e = rs->bucket[i], *next;

		for (; e != NULL; e = next) {
			next = e->next;
			free(e);
		}
		rs->bucket[i] = NULL;
	}
	rs->used = 0;
}

void vault_rows_free(struct vault_rows *rs)
{
	if (rs == NULL)
		return;
	vault_rows_clear(rs);
	free(rs->bucket);
	free(rs);
}

static uint64_t hash_name(const struct vault_rows *rs, const char *name, size_t len)
{
	uint8_t out[crypto_shorthash_BYTES];
	uint64_t h;

	(void)crypto_shorthash(out, (const unsigned char *)name, len, rs->key);
	memcpy(&h, out, sizeof(h));
	return h;
}

static size_t entry_cost(size_t name_len, size_t ct_len)
{
	return sizeof(struct row_entry) + name_len + ct_len;
}

/* The link that points at name's entry (or at the chain's end). */
static struct row_entry **find(const struct vault_rows *rs, uint64_t h, const char *name,
			       size_t len)
{
	struct row_entry **link = &rs->bucket[h & (BUCKETS - 1)];

	for (; *link != NULL; link = &(*link)->next) {
		const struct row_entry *e = *link;

		if (e->hash == h && e->name_len == len && memcmp(e->data, name, len) == 0)
			break;
	}
	return link;
}

int vault_rows_get(const struct vault_rows *rs, const char *name, size_t len,
		   struct sealed_row *out)
{
	const struct row_entry *e;

	if (rs == NULL || rs->bucket == NULL || rs->used == 0)
		return -1;
	e = *find(rs, hash_name(rs, name, len), name, len);
	if (e == NULL)
		return -1;
	out->version = e->version;
	out->term = e->term;
	out->nonce = e->nonce;
	out->ct = e->data + e->name_len;
	out->ct_len = e->ct_len;
	return 0;
}

void vault_rows_put(struct vault_rows *rs, const char *name, size_t len,
		    const struct sealed_row *row)
{
	size_t cost = entry_cost(len, row->ct_len);
	struct row_entry **link, *e;
	uint64_t h;

	if (rs == NULL || cost > rs->budget)
		return;
	if (rs->bucket == NULL && (rs->bucket = calloc(BUCKETS, sizeof(*rs->bucket))) == NULL)
		return; /* not kept: the next get reads SQLite again */
	h = hash_name(rs, name, len);
	link = find(rs, h, name, len);
	if (*link != NULL) {
		e = *link;
		*link = e->next;
		rs->used -= entry_cost(e->name_len, e->ct_len);
		free(e);
	}
	if (rs->used + cost > rs->budget) {
		vault_rows_clear(rs);
		link = &rs->bucket[h & (BUCKETS - 1)];
	}
	e = malloc(cost);
	if (e == NULL)
		return;
	e->hash = h;
	e->version = row->version;
	e->term = row->term;
	memcpy(e->nonce, row->nonce, SEALED_NONCE_LEN);
	e->name_len = len;
	e->ct_len = row->ct_len;
	memcpy(e->data, name, len);
	memcpy(e->data + len, row->ct, row->ct_len);
	e->next = *link;
	*link = e;
	rs->used += cost;
}
