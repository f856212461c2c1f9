/*
 * The audit log's cryptography: the chain key that ratchets forward, the
 * keyed MAC that links each record to the one before it, and the checkpoint
 * blob the broker keeps in the vault.  Used by the live log (audit.c) and the
 * offline verifier (audit_check.c); nothing here does I/O.
 *
 * Keys live in one sodium_malloc block; audit_keys_free wipes it.  Functions
 * return 0 or -1.
 */
#ifndef SECRETD_AUDIT_CHAIN_H
#define SECRETD_AUDIT_CHAIN_H

#include <stddef.h>
#include <stdint.h>

#define AUDIT_CHAIN_LEN 32

struct audit_keys;

/* The chain key of epoch 0 and the checkpoint key, derived from master. */
struct audit_keys *audit_keys_new(const uint8_t master[32]);
void audit_keys_free(struct audit_keys *k);

/* The epoch whose key the chain key is now. */
uint64_t audit_keys_epoch(const struct audit_keys *k);

/*
 * Ratchet forward to epoch, K(e+1) = BLAKE2b-256("secretd-ratchet" || K(e)),
 * wiping every key passed; -1 if epoch lies behind (it cannot go back).
 */
int audit_keys_to(struct audit_keys *k, uint64_t epoch);

/* out = BLAKE2b-256(K(epoch); prev || body): a record's chain value. */
int audit_chain_mac(struct audit_keys *k, const uint8_t prev[AUDIT_CHAIN_LEN],
		    const char *body, size_t len, uint8_t out[AUDIT_CHAIN_LEN]);

/*
 * The checkpoint: the last record made durable (seq, epoch, chain), MAC'd
 * with a static key.  It pins every record up to seq: a record before it
 * changed, removed or forged changes the chain value at seq.
 */
struct audit_ckpt {
	uint64_t seq;
	uint64_t epoch;
	uint8_t chain[AUDIT_CHAIN_LEN];
};

#define AUDIT_CKPT_LEN (5 + 8 + 8 + AUDIT_CHAIN_LEN + AUDIT_CHAIN_LEN)

/* out gets AUDIT_CKPT_LEN bytes. */
int audit_ckpt_seal(struct audit_keys *k, const struct audit_ckpt *c, uint8_t *out);
/* 0 when the blob is well-formed and its MAC holds. */
int audit_ckpt_open(struct audit_keys *k, const uint8_t *blob, size_t len, struct audit_ckpt *c);

#endif
