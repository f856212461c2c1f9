/*
 * XChaCha20-Poly1305 opening for the loop's gets, with the HChaCha20
 * subkey of each row kept.  Opening an XChaCha20 row first derives a
 * one-row key, HChaCha20(data key, the nonce's first 16 bytes), then opens
 * the row with ChaCha20-Poly1305 under it (libsodium does exactly this);
 * for a short value that derivation is a quarter of the work of a get, and
 * the same rows are read again and again.  So is the row's Poly1305 key
 * (ChaCha20's first block under the subkey and the whole nonce), another
 * tenth; the tag and the plaintext are computed each time.  The result is
 * the same as crypto_aead_xchacha20poly1305_ietf_decrypt's, byte for byte
 * and failure for failure.
 *
 * A subkey opens the one row it was derived for (its poly key, forges tags
 * for that row alone), so both are kept as the data
 * keys are: in sodium_malloc memory (guard pages, locked, out of core
 * dumps), wiped by subkeys_free.  A fixed table of 256 slots, chosen by
 * the nonce (the writer's random bytes, not a caller's); a slot taken by
 * another row is simply derived again.  A table serves one vault, whose
 * terms keep their keys while it is open.  Not thread-safe: the loop's.
 */
#ifndef SECRETD_SUBKEYS_H
#define SECRETD_SUBKEYS_H

#include <stddef.h>
#include <stdint.h>

struct subkeys;

/* An empty table, or NULL when memory is out. */
struct subkeys *subkeys_new(void);
/* Wipe and free (NULL is fine). */
void subkeys_free(struct subkeys *sk);

/*
 * Open ct (clen bytes: ciphertext, then the 16-byte tag) sealed under the
 * 32-byte key of term with the 24-byte nonce and ad, into m (clen - 16
 * bytes).  0, or -1 when it does not authenticate (m is then wiped).
 */
int subkeys_open(struct subkeys *sk, uint32_t term, const uint8_t *key, const uint8_t *nonce,
		 uint8_t *m, const uint8_t *ct, size_t clen, const uint8_t *ad, size_t adlen);

#endif
