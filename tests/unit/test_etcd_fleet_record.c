/*
 * The fleet's etcd records: key layout and parsing, heads, the wrapped data
 * key, and sealed versions bound to prefix, name, version and term (a
 * record moved, renumbered or flipped fails to open, never gives a value).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "fleet_record.h"

#define P "/secretd/"

static uint8_t ck[FLEET_KEY_LEN], dk[FLEET_KEY_LEN];

static int setup(void **state)
{
	(void)state;
	if (sodium_init() < 0)
		return -1;
	randombytes_buf(ck, sizeof(ck));
	randombytes_buf(dk, sizeof(dk));
	return 0;
}

static void test_keys(void **state)
{
	uint8_t k[FLEET_ETCD_KEY_MAX];
	size_t n;

	(void)state;
	n = fleet_key_head(k, sizeof(k), P, "db/pw", 5);
	assert_int_equal(n, strlen(P "n/db/pw"));
	assert_memory_equal(k, P "n/db/pw", n);
	n = fleet_key_version(k, sizeof(k), P, "db/pw", 5, 42);
	assert_memory_equal(k, P "v/db/pw@0000000042", n);
	n = fleet_key_versions(k, sizeof(k), P, "db/pw", 5);
	assert_memory_equal(k, P "v/db/pw@", n);
	n = fleet_key_datakey(k, sizeof(k), P, 1);
	assert_memory_equal(k, P "keys/1", n);
	/* Invalid names, version 0, a bad prefix or a short buffer give no key. */
	assert_int_equal(fleet_key_head(k, sizeof(k), P, "a@b", 3), 0);
	assert_int_equal(fleet_key_head(k, sizeof(k), P, "../x", 4), 0);
	assert_int_equal(fleet_key_version(k, sizeof(k), P, "a", 1, 0), 0);
	assert_int_equal(fleet_key_head(k, sizeof(k), "has space/", "a", 1), 0);
	assert_int_equal(fleet_key_head(k, 5, P, "a", 1), 0);
}

static void parse(const char *key, struct fleet_key *out)
{
	fleet_key_parse(P, (const uint8_t *)key, strlen(key), out);
}

static void test_key_parse(void **state)
{
	struct fleet_key k;

	(void)state;
	parse(P "n/db/pw", &k);
	assert_int_equal(k.kind, FLEET_K_HEAD);
	assert_int_equal(k.name_len, 5);
	assert_memory_equal(k.name, "db/pw", 5);
	parse(P "v/db/pw@0000000042", &k);
	assert_int_equal(k.kind, FLEET_K_VERSION);
	assert_int_equal(k.version, 42);
	assert_int_equal(k.name_len, 5);
	parse(P "v/a@4294967295", &k);
	assert_int_equal(k.kind, FLEET_K_VERSION);
	assert_true(k.version == UINT32_MAX);
	parse(P "keys/1", &k);
	assert_int_equal(k.kind, FLEET_K_DATAKEY);
	assert_int_equal(k.version, 1);
	/* Anything not exactly in the layout is OTHER, never a name. */
	static const char *const other[] = {
		P "v/a@4294967296", P "v/a@0000000000", P "v/a@00000001", P "v/a@000000000x",
		P "v/@0000000001", P "v/a/../b@0000000001", P "n/", P "n/a b", P "n/a@b",
		P "keys/01", P "keys/x", P "keys/", P "x/a", "/other/n/a", P, "",
	};
	for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
		parse(other[i], &k);
		if (k.kind != FLEET_K_OTHER)
			fail_msg("classified: %s", other[i]);
	}
	/* A NUL inside a name. */
	fleet_key_parse(P, (const uint8_t *)P "n/a\0b", sizeof(P "n/a\0b") - 1, &k);
	assert_int_equal(k.kind, FLEET_K_OTHER);
}

static void test_head(void **state)
{
	uint8_t rec[FLEET_HEAD_LEN];
	uint32_t v;
	bool removed;

	(void)state;
	fleet_head_encode(rec, 7, true);
	assert_int_equal(fleet_head_decode(rec, sizeof(rec), &v, &removed), ETCD_OK);
	assert_int_equal(v, 7);
	assert_true(removed);
	assert_int_equal(fleet_head_decode(rec, sizeof(rec) - 1, &v, &removed), ETCD_E_INTEGRITY);
	rec[8] = 2;
	assert_int_equal(fleet_head_decode(rec, sizeof(rec), &v, &removed), ETCD_E_INTEGRITY);
	fleet_head_encode(rec, 0, false);
	assert_int_equal(fleet_head_decode(rec, sizeof(rec), &v, &removed), ETCD_E_INTEGRITY);
	fleet_head_encode(rec, 1, false);
	rec[0] = 'X';
	assert_int_equal(fleet_head_decode(rec, sizeof(rec), &v, &removed), ETCD_E_INTEGRITY);
}

static void test_datakey(void **state)
{
	uint8_t rec[FLEET_DATAKEY_REC_LEN], made[FLEET_KEY_LEN], opened[FLEET_KEY_LEN];
	uint8_t other[FLEET_KEY_LEN];

	(void)state;
	assert_int_equal(fleet_datakey_new(ck, P, 1, made, rec), ETCD_OK);
	assert_int_equal(fleet_datakey_open(ck, P, 1, rec, sizeof(rec), opened), ETCD_OK);
	assert_memory_equal(made, opened, sizeof(made));
	/* Another cluster key, another prefix, another term: refused. */
	randombytes_buf(other, sizeof(other));
	assert_int_equal(fleet_datakey_open(other, P, 1, rec, sizeof(rec), opened), ETCD_E_KEY);
	assert_int_equal(fleet_datakey_open(ck, "/other/", 1, rec, sizeof(rec), opened), ETCD_E_KEY);
	assert_int_equal(fleet_datakey_open(ck, P, 2, rec, sizeof(rec), opened), ETCD_E_KEY);
	assert_int_equal(fleet_datakey_open(ck, P, 1, rec, sizeof(rec) - 1, opened),
			 ETCD_E_INTEGRITY);
	for (size_t i = 4; i < sizeof(rec); i++) {
		rec[i] ^= 1;
		assert_int_not_equal(fleet_datakey_open(ck, P, 1, rec, sizeof(rec), opened), ETCD_OK);
		rec[i] ^= 1;
	}
}

static void test_seal_roundtrip(void **state)
{
	const char value[] = "PLAINTEXT-CANARY-record";
	uint8_t rec[sizeof(value) + FLEET_SEALED_OVERHEAD], out[sizeof(value)];
	size_t len, outlen;
	uint32_t term, version;

	(void)state;
	assert_int_equal(fleet_seal(dk, 1, P, "db/pw", 5, 3, (const uint8_t *)value,
				    sizeof(value), rec, sizeof(rec), &len), ETCD_OK);
	assert_int_equal(len, sizeof(rec));
	assert_null(memmem(rec, len, "CANARY", 6));
	assert_int_equal(fleet_sealed_info(rec, len, &term, &version), ETCD_OK);
	assert_int_equal(term, 1);
	assert_int_equal(version, 3);
	assert_int_equal(fleet_open(dk, 1, P, "db/pw", 5, 3, rec, len, out, sizeof(out), &outlen),
			 ETCD_OK);
	assert_int_equal(outlen, sizeof(value));
	assert_memory_equal(out, value, sizeof(value));
	/* The buffer must hold the plaintext. */
	assert_int_equal(fleet_seal(dk, 1, P, "db/pw", 5, 3, (const uint8_t *)value,
				    sizeof(value), rec, sizeof(rec) - 1, &len), ETCD_E_INVALID);
}

static void test_seal_empty(void **state)
{
	uint8_t rec[FLEET_SEALED_OVERHEAD], out[1];
	size_t len, outlen = 99;

	(void)state;
	assert_int_equal(fleet_seal(dk, 1, P, "e", 1, 1, NULL, 0, rec, sizeof(rec), &len), ETCD_OK);
	assert_int_equal(fleet_open(dk, 1, P, "e", 1, 1, rec, len, out, 0, &outlen), ETCD_OK);
	assert_int_equal(outlen, 0);
}

static void test_seal_bound(void **state)
{
	const uint8_t value[] = "secret";
	uint8_t rec[sizeof(value) + FLEET_SEALED_OVERHEAD], out[sizeof(value)], dk2[FLEET_KEY_LEN];
	size_t len, outlen;

	(void)state;
	assert_int_equal(fleet_seal(dk, 1, P, "db/pw", 5, 3, value, sizeof(value), rec,
				    sizeof(rec), &len), ETCD_OK);
	/* Moved to another name, version, prefix or term, or under another key. */
	assert_int_equal(fleet_open(dk, 1, P, "db/px", 5, 3, rec, len, out, sizeof(out), &outlen),
			 ETCD_E_INTEGRITY);
	assert_int_equal(fleet_open(dk, 1, P, "db/pw", 5, 4, rec, len, out, sizeof(out), &outlen),
			 ETCD_E_INTEGRITY);
	assert_int_equal(fleet_open(dk, 1, "/other/", "db/pw", 5, 3, rec, len, out, sizeof(out),
				    &outlen), ETCD_E_INTEGRITY);
	assert_int_equal(fleet_open(dk, 2, P, "db/pw", 5, 3, rec, len, out, sizeof(out), &outlen),
			 ETCD_E_INTEGRITY);
	randombytes_buf(dk2, sizeof(dk2));
	assert_int_equal(fleet_open(dk2, 1, P, "db/pw", 5, 3, rec, len, out, sizeof(out), &outlen),
			 ETCD_E_INTEGRITY);
	/* The version in the record renumbered to match another key: the AD still holds. */
	rec[11] = 4;
	assert_int_equal(fleet_open(dk, 1, P, "db/pw", 5, 4, rec, len, out, sizeof(out), &outlen),
			 ETCD_E_INTEGRITY);
	rec[11] = 3;
	/* Every single flipped bit, and every truncation. */
	for (size_t i = 0; i < len; i++) {
		rec[i] ^= 0x20;
		assert_int_not_equal(fleet_open(dk, 1, P, "db/pw", 5, 3, rec, len, out, sizeof(out),
						&outlen), ETCD_OK);
		rec[i] ^= 0x20;
	}
	for (size_t n = 0; n < len; n++)
		assert_int_not_equal(fleet_open(dk, 1, P, "db/pw", 5, 3, rec, n, out, sizeof(out),
						&outlen), ETCD_OK);
	assert_int_equal(fleet_open(dk, 1, P, "db/pw", 5, 3, rec, len, out, sizeof(out), &outlen),
			 ETCD_OK);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_key_parse),
		cmocka_unit_test(test_head),
		cmocka_unit_test(test_datakey),
		cmocka_unit_test(test_seal_roundtrip),
		cmocka_unit_test(test_seal_empty),
		cmocka_unit_test(test_seal_bound),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
