/* XChaCha20-Poly1305 opening with each row's HChaCha20 subkey kept (subkeys.h). */
#include "subkeys.h"

#include <string.h>

#include <sodium.h>

#define SLOTS 256 /* one for each value of the nonce's first byte */
#define PREFIX_LEN crypto_core_hchacha20_INPUTBYTES
#define SUBKEY_LEN crypto_core_hchacha20_OUTPUTBYTES
#define NONCE_LEN crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAIL_LEN (NONCE_LEN - PREFIX_LEN)
#define IETF_NONCE_LEN crypto_aead_chacha20poly1305_ietf_NPUBBYTES
#define POLY_KEY_LEN crypto_onetimeauth_poly1305_KEYBYTES
#define TAG_LEN crypto_aead_chacha20poly1305_ietf_ABYTES

/*
 * A row's keys: the subkey from the nonce's first 16 bytes, and the
 * Poly1305 key of the whole nonce (ChaCha20 block 0 under the subkey), the
 * one other thing an opening derives that is the same each time.
 */
struct subkey_slot {
	uint8_t key[SUBKEY_LEN];
	uint8_t poly_key[POLY_KEY_LEN];
	uint8_t prefix[PREFIX_LEN]; /* the nonce's first bytes the subkey is of */
	uint8_t tail[TAIL_LEN];     /* and its last, with them the poly key's */
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

/* ChaCha20-Poly1305's nonce under the subkey: four zero bytes, then the tail. */
static void ietf_nonce(uint8_t npub[IETF_NONCE_LEN], const uint8_t *nonce)
{
	memset(npub, 0, IETF_NONCE_LEN - TAIL_LEN);
	memcpy(npub + IETF_NONCE_LEN - TAIL_LEN, nonce + PREFIX_LEN, TAIL_LEN);
}

/* The slot holding the keys of (term, nonce), derived now if it does not. */
static const struct subkey_slot *slot_for(struct subkeys *sk, uint32_t term, const uint8_t *key,
					  const uint8_t *nonce)
{
	struct subkey_slot *s = &sk->slot[nonce[0]];
	uint8_t npub[IETF_NONCE_LEN];

	/* The nonce is not secret: plain comparisons. */
	if (s->term != term || memcmp(s->prefix, nonce, PREFIX_LEN) != 0) {
		s->term = 0; /* until both keys are this row's */
		if (crypto_core_hchacha20(s->key, nonce, key, NULL) != 0)
			goto fail;
		memcpy(s->prefix, nonce, PREFIX_LEN);
	} else if (memcmp(s->tail, nonce + PREFIX_LEN, TAIL_LEN) == 0) {
		return s;
	}
	ietf_nonce(npub, nonce);
	if (crypto_stream_chacha20_ietf(s->poly_key, POLY_KEY_LEN, npub, s->key) != 0)
		goto fail;
	memcpy(s->tail, nonce + PREFIX_LEN, TAIL_LEN);
	s->term = term;
	return s;
fail:
	sodium_memzero(s, sizeof(*s));
	return NULL;
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/*
 * RFC 8439's tag over ad and the ciphertext, as libsodium's
 * crypto_aead_chacha20poly1305_ietf_decrypt_detached computes it: each
 * padded to 16 bytes, then both lengths, little-endian.
 */
static void tag_of(uint8_t tag[TAG_LEN], const uint8_t poly_key[POLY_KEY_LEN], const uint8_t *ad,
		   size_t adlen, const uint8_t *c, size_t mlen)
{
	static const uint8_t zeros[16];
	crypto_onetimeauth_poly1305_state st;
	uint8_t lens[16];

	put_le64(lens, (uint64_t)adlen);
	put_le64(lens + 8, (uint64_t)mlen);
	/* Poly1305's functions have no failure to report (they return 0). */
	(void)crypto_onetimeauth_poly1305_init(&st, poly_key);
	(void)crypto_onetimeauth_poly1305_update(&st, ad, (unsigned long long)adlen);
	(void)crypto_onetimeauth_poly1305_update(&st, zeros, (0x10 - adlen) & 0xf);
	(void)crypto_onetimeauth_poly1305_update(&st, c, (unsigned long long)mlen);
	(void)crypto_onetimeauth_poly1305_update(&st, zeros, (0x10 - mlen) & 0xf);
	(void)crypto_onetimeauth_poly1305_update(&st, lens, sizeof(lens));
	(void)crypto_onetimeauth_poly1305_final(&st, tag);
	sodium_memzero(&st, sizeof(st));
}

int subkeys_open(struct subkeys *sk, uint32_t term, const uint8_t *key, const uint8_t *nonce,
		 uint8_t *m, const uint8_t *ct, size_t clen, const uint8_t *ad, size_t adlen)
{
	uint8_t npub[IETF_NONCE_LEN], tag[TAG_LEN];
	const struct subkey_slot *s;
	size_t mlen;
	int bad;

	if (term == 0 || clen < TAG_LEN)
		return -1;
	mlen = clen - TAG_LEN;
	s = slot_for(sk, term, key, nonce);
	if (s == NULL)
		return -1;
	tag_of(tag, s->poly_key, ad, adlen, ct, mlen);
	bad = crypto_verify_16(tag, ct + mlen);
	sodium_memzero(tag, sizeof(tag));
	if (bad != 0) {
		sodium_memzero(m, mlen);
		return -1;
	}
	/* Block 0 gave the poly key; the message is from block 1 on. */
	ietf_nonce(npub, nonce);
	if (crypto_stream_chacha20_ietf_xor_ic(m, ct, (unsigned long long)mlen, npub, 1, s->key) != 0) {
		sodium_memzero(m, mlen);
		return -1;
	}
	return 0;
}
