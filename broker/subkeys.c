/* XChaCha20-Poly1305 opening with each row's HChaCha20 subkey kept (subkeys.h). */
#include "subkeys.h"

#include <string.h>

#include <sodium.h>

#define SLOTS 256 /* one for each value of the nonce's first byte */
#define PREFIX_LEN crypto_core_hchacha20_INPUTBYTES
#define SUBKEY_LEN crypto_core_hchacha20_OUTPUTBYTES
#define NONCE_LEN crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG_LEN crypto_aead_chacha20poly1305_ietf_ABYTES

struct subkey_slot {
	uint8_t key[SUBKEY_LEN];
	uint8_t prefix[PREFIX_LEN]; /* the nonce's first bytes it was derived from */
	uint32_t term;              /* 0: empty (terms begin at 1) */
};

struct subkeys {
	struct subkey_slot slot[SLOTS];
};

_Static_assert(SLOTS == UINT8_MAX + 1, "a slot for each first byte of a nonce");

struct subkeys *subkeys_new(void)
{
	struct subkeys *sk = sodium_malloc(sizeof(*sk));

	if (sk != NULL)
		sodium_memzero(sk, sizeof(*sk)); /* sodium_malloc fills with junk */
	return sk;
}

void subkeys_free(struct subkeys *sk)
{
	if (sk != NULL)
		sodium_free(sk); /* wipes */
}

/* The slot holding the subkey of (term, nonce), derived now if it is not. */
static const struct subkey_slot *slot_for(struct subkeys *sk, uint32_t term, const uint8_t *key,
					  const uint8_t *nonce)
{
	struct subkey_slot *s = &sk->slot[nonce[0]];

	/* The nonce is not secret: a plain comparison. */
	if (s->term == term && memcmp(s->prefix, nonce, PREFIX_LEN) == 0)
		return s;
	if (crypto_core_hchacha20(s->key, nonce, key, NULL) != 0) {
		sodium_memzero(s, sizeof(*s));
		return NULL;
	}
	memcpy(s->prefix, nonce, PREFIX_LEN);
	s->term = term;
	return s;
}

int subkeys_open(struct subkeys *sk, uint32_t term, const uint8_t *key, const uint8_t *nonce,
		 uint8_t *m, const uint8_t *ct, size_t clen, const uint8_t *ad, size_t adlen)
{
	/* ChaCha20-Poly1305's nonce: four zero bytes, then the nonce's last eight. */
	uint8_t npub[crypto_aead_chacha20poly1305_ietf_NPUBBYTES] = { 0 };
	const struct subkey_slot *s;

	if (term == 0 || clen < TAG_LEN)
		return -1;
	s = slot_for(sk, term, key, nonce);
	if (s == NULL)
		return -1;
	memcpy(npub + 4, nonce + PREFIX_LEN, NONCE_LEN - PREFIX_LEN);
	if (crypto_aead_chacha20poly1305_ietf_decrypt(m, NULL, NULL, ct, (unsigned long long)clen, ad,
						      (unsigned long long)adlen, npub, s->key) != 0) {
		sodium_memzero(m, clen - TAG_LEN);
		return -1;
	}
	return 0;
}
