/*
 * Chain and checkpoint cryptography of the audit log.
 *
 * A record's chain value is BLAKE2b-256 keyed with the epoch key over the
 * previous record's chain value and this record's bytes up to ",\"chain\":".
 * The epoch key ratchets forward (K' = H("secretd-ratchet" || K)) and the
 * old one is wiped, so whoever later reads the broker's memory holds only
 * keys that cannot re-seal earlier epochs.  The checkpoint key is static:
 * it seals the blob the vault keeps, which names the last durable record.
 */
#include "audit_chain.h"

#include <string.h>

#include <sodium.h>

#define KEY_LEN 32
#define KDF_CONTEXT "sdauditk"
#define KDF_SUB_CHAIN 2
#define KDF_SUB_CKPT 3
#define RATCHET_LABEL "secretd-ratchet"
#define CKPT_MAGIC "SDCK1"
#define CKPT_MAGIC_LEN 5
#define CKPT_BODY_LEN (CKPT_MAGIC_LEN + 8 + 8 + AUDIT_CHAIN_LEN)

_Static_assert(CKPT_BODY_LEN + AUDIT_CHAIN_LEN == AUDIT_CKPT_LEN, "checkpoint layout");

/*
 * Key material, in one sodium_malloc block.  The hash state lives here too
 * because a keyed BLAKE2b state holds the key.  The struct's size is a
 * multiple of its alignment (the state's, 64), which keeps sodium_malloc's
 * pointer (the block ends at a guard page) aligned.
 */
struct audit_keys {
	crypto_generichash_state st;
	/* The state right after keying with K_epoch: each record's MAC starts from a copy. */
	crypto_generichash_state chain_init;
	uint8_t chain_key[KEY_LEN]; /* K_epoch */
	uint8_t ckpt_key[KEY_LEN];  /* static, seals checkpoint blobs */
	uint8_t tmp[KEY_LEN];
	uint64_t epoch;
};

struct audit_keys *audit_keys_new(const uint8_t master[32])
{
	struct audit_keys *k = sodium_malloc(sizeof(*k));

	if (k == NULL)
		return NULL;
	sodium_memzero(k, sizeof(*k));
	if (crypto_kdf_derive_from_key(k->chain_key, KEY_LEN, KDF_SUB_CHAIN, KDF_CONTEXT,
				       master) != 0 ||
	    crypto_kdf_derive_from_key(k->ckpt_key, KEY_LEN, KDF_SUB_CKPT, KDF_CONTEXT,
				       master) != 0 ||
	    crypto_generichash_init(&k->chain_init, k->chain_key, KEY_LEN, AUDIT_CHAIN_LEN) != 0) {
		sodium_free(k);
		return NULL;
	}
	return k;
}

void audit_keys_free(struct audit_keys *k)
{
	if (k != NULL)
		sodium_free(k); /* sodium_free wipes the block */
}

uint64_t audit_keys_epoch(const struct audit_keys *k)
{
	return k->epoch;
}

/* Finish k->st, already keyed, over a || b into out; the state is wiped. */
static int hash_rest(struct audit_keys *k, const uint8_t *a, size_t alen, const uint8_t *b,
		     size_t blen, uint8_t out[AUDIT_CHAIN_LEN])
{
	int rc = -1;

	if (crypto_generichash_update(&k->st, a, alen) == 0 &&
	    crypto_generichash_update(&k->st, b, blen) == 0 &&
	    crypto_generichash_final(&k->st, out, AUDIT_CHAIN_LEN) == 0)
		rc = 0;
	sodium_memzero(&k->st, sizeof(k->st));
	return rc;
}

/* out = BLAKE2b-256(key; a || b), the state kept in the key block. */
static int keyed_hash(struct audit_keys *k, const uint8_t *key, const uint8_t *a, size_t alen,
		      const uint8_t *b, size_t blen, uint8_t out[AUDIT_CHAIN_LEN])
{
	if (crypto_generichash_init(&k->st, key, key != NULL ? KEY_LEN : 0, AUDIT_CHAIN_LEN) != 0) {
		sodium_memzero(&k->st, sizeof(k->st));
		return -1;
	}
	return hash_rest(k, a, alen, b, blen, out);
}

/* K_{e+1} = BLAKE2b-256("secretd-ratchet" || K_e); K_e is gone afterwards. */
static int ratchet(struct audit_keys *k)
{
	int rc = keyed_hash(k, NULL, (const uint8_t *)RATCHET_LABEL, sizeof(RATCHET_LABEL) - 1,
			    k->chain_key, KEY_LEN, k->tmp);

	/* The new key's MAC state first: if that fails, nothing has moved. */
	if (rc == 0)
		rc = crypto_generichash_init(&k->st, k->tmp, KEY_LEN, AUDIT_CHAIN_LEN);
	if (rc == 0) {
		memcpy(&k->chain_init, &k->st, sizeof(k->chain_init));
		memcpy(k->chain_key, k->tmp, KEY_LEN);
		k->epoch++;
	}
	sodium_memzero(&k->st, sizeof(k->st));
	sodium_memzero(k->tmp, sizeof(k->tmp));
	return rc;
}

int audit_keys_to(struct audit_keys *k, uint64_t epoch)
{
	if (epoch < k->epoch)
		return -1;
	while (k->epoch < epoch)
		if (ratchet(k) != 0)
			return -1;
	return 0;
}

int audit_chain_mac(struct audit_keys *k, const uint8_t prev[AUDIT_CHAIN_LEN],
		    const char *body, size_t len, uint8_t out[AUDIT_CHAIN_LEN])
{
	memcpy(&k->st, &k->chain_init, sizeof(k->st));
	return hash_rest(k, prev, AUDIT_CHAIN_LEN, (const uint8_t *)body, len, out);
}

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)(v & 0xff);
		v >>= 8;
	}
}

static uint64_t get_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

int audit_ckpt_seal(struct audit_keys *k, const struct audit_ckpt *c, uint8_t *out)
{
	memcpy(out, CKPT_MAGIC, CKPT_MAGIC_LEN);
	put_be64(out + CKPT_MAGIC_LEN, c->seq);
	put_be64(out + CKPT_MAGIC_LEN + 8, c->epoch);
	memcpy(out + CKPT_MAGIC_LEN + 16, c->chain, AUDIT_CHAIN_LEN);
	return keyed_hash(k, k->ckpt_key, out, CKPT_BODY_LEN, NULL, 0, out + CKPT_BODY_LEN);
}

int audit_ckpt_open(struct audit_keys *k, const uint8_t *blob, size_t len, struct audit_ckpt *c)
{
	uint8_t mac[AUDIT_CHAIN_LEN];
	int rc = -1;

	if (blob == NULL || len != AUDIT_CKPT_LEN || memcmp(blob, CKPT_MAGIC, CKPT_MAGIC_LEN) != 0)
		return -1;
	if (keyed_hash(k, k->ckpt_key, blob, CKPT_BODY_LEN, NULL, 0, mac) != 0 ||
	    sodium_memcmp(mac, blob + CKPT_BODY_LEN, AUDIT_CHAIN_LEN) != 0)
		goto out;
	c->seq = get_be64(blob + CKPT_MAGIC_LEN);
	c->epoch = get_be64(blob + CKPT_MAGIC_LEN + 8);
	memcpy(c->chain, blob + CKPT_MAGIC_LEN + 16, AUDIT_CHAIN_LEN);
	rc = 0;
out:
	sodium_memzero(mac, sizeof(mac));
	return rc;
}
