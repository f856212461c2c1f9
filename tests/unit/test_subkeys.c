/*
 * Opening with kept subkeys is XChaCha20-Poly1305's opening (subkeys.h):
 * the same plaintext, the same refusals, whatever the table holds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "subkeys.h"

#define KEY_LEN crypto_aead_xchacha20poly1305_ietf_KEYBYTES
#define NONCE_LEN crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG_LEN crypto_aead_xchacha20poly1305_ietf_ABYTES
#define ROWS 600 /* more than the table's slots: some share a slot */

struct row {
	uint32_t term;
	uint8_t nonce[NONCE_LEN];
	uint8_t ad[20];
	uint8_t plain[64];
	size_t len;
	uint8_t ct[64 + TAG_LEN];
};

static uint8_t keys[3][KEY_LEN]; /* terms 1, 2, 3 */
static struct row rows[ROWS];

static int setup(void **state)
{
	(void)state;
	if (sodium_init() < 0)
		return -1;
	for (int t = 0; t < 3; t++)
		randombytes_buf(keys[t], KEY_LEN);
	for (size_t i = 0; i < ROWS; i++) {
		struct row *r = &rows[i];

		r->term = (uint32_t)(i % 3) + 1;
		randombytes_buf(r->nonce, NONCE_LEN);
		randombytes_buf(r->ad, sizeof(r->ad));
		r->len = i % 65;
		randombytes_buf(r->plain, r->len);
		crypto_aead_xchacha20poly1305_ietf_encrypt(r->ct, NULL, r->plain, r->len, r->ad,
							   sizeof(r->ad), NULL, r->nonce,
							   keys[r->term - 1]);
	}
	/*
	 * Rows 1 and 2 share a slot with row 0: row 1's nonce has row 0's first
	 * 16 bytes (the same subkey), row 2's only its first 8 (another one).
	 */
	memcpy(rows[1].nonce, rows[0].nonce, 16);
	memcpy(rows[2].nonce, rows[0].nonce, 8);
	for (size_t i = 1; i <= 2; i++) {
		rows[i].term = rows[0].term;
		crypto_aead_xchacha20poly1305_ietf_encrypt(rows[i].ct, NULL, rows[i].plain,
							   rows[i].len, rows[i].ad,
							   sizeof(rows[i].ad), NULL, rows[i].nonce,
							   keys[rows[i].term - 1]);
	}
	return 0;
}

static int open_row(struct subkeys *sk, const struct row *r, uint32_t term, const uint8_t *ad,
		    uint8_t *out)
{
	return subkeys_open(sk, term, keys[term - 1], r->nonce, out, r->ct, r->len + TAG_LEN, ad,
			    sizeof(r->ad));
}

/* Every row opens to its plaintext, first time, again, and after others took its slot. */
static void test_same_as_xchacha(void **state)
{
	struct subkeys *sk = subkeys_new();
	uint8_t out[64], ref[64];

	(void)state;
	assert_non_null(sk);
	for (int pass = 0; pass < 3; pass++) {
		for (size_t i = 0; i < ROWS; i++) {
			const struct row *r = &rows[pass == 1 ? ROWS - 1 - i : i];

			memset(out, 0xaa, sizeof(out));
			assert_int_equal(open_row(sk, r, r->term, r->ad, out), 0);
			assert_int_equal(crypto_aead_xchacha20poly1305_ietf_decrypt(
						 ref, NULL, NULL, r->ct, r->len + TAG_LEN, r->ad,
						 sizeof(r->ad), r->nonce, keys[r->term - 1]),
					 0);
			assert_memory_equal(out, r->plain, r->len);
			assert_memory_equal(out, ref, r->len);
		}
	}
	subkeys_free(sk);
}

/* What XChaCha20-Poly1305 refuses is refused, and leaves no plaintext behind. */
static void test_refusals(void **state)
{
	struct subkeys *sk = subkeys_new();
	struct row r = rows[7]; /* 7 bytes of plaintext */
	uint32_t other = r.term % 3 + 1;
	uint8_t out[64], ad[sizeof(r.ad)];

	(void)state;
	assert_non_null(sk);
	assert_int_equal(open_row(sk, &r, r.term, r.ad, out), 0); /* its subkey is kept now */
	/* The kept subkey is of this term: another term's key does not open the row. */
	assert_int_not_equal(open_row(sk, &r, other, r.ad, out), 0);
	assert_int_equal(open_row(sk, &r, r.term, r.ad, out), 0);
	memcpy(ad, r.ad, sizeof(ad));
	ad[3] ^= 1;
	memset(out, 0xaa, sizeof(out));
	assert_int_not_equal(open_row(sk, &r, r.term, ad, out), 0);
	for (size_t i = 0; i < r.len; i++)
		assert_int_equal(out[i], 0);
	r.ct[r.len] ^= 0x80; /* the tag */
	assert_int_not_equal(open_row(sk, &r, r.term, r.ad, out), 0);
	r.ct[r.len] ^= 0x80;
	r.ct[0] ^= 1;
	assert_int_not_equal(open_row(sk, &r, r.term, r.ad, out), 0);
	r.ct[0] ^= 1;
	r.nonce[20] ^= 1; /* outside the part the subkey is derived from */
	assert_int_not_equal(open_row(sk, &r, r.term, r.ad, out), 0);
	r.nonce[20] ^= 1;
	assert_int_equal(subkeys_open(sk, r.term, keys[r.term - 1], r.nonce, out, r.ct, TAG_LEN - 1,
				      r.ad, sizeof(r.ad)),
			 -1);
	assert_int_equal(subkeys_open(sk, 0, keys[0], r.nonce, out, r.ct, r.len + TAG_LEN, r.ad,
				      sizeof(r.ad)),
			 -1);
	assert_int_equal(open_row(sk, &r, r.term, r.ad, out), 0);
	assert_memory_equal(out, r.plain, r.len);
	subkeys_free(sk);
	subkeys_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_same_as_xchacha),
		cmocka_unit_test(test_refusals),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
