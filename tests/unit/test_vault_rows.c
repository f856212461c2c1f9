/* The sealed rows a broker keeps for gets: bounded, replaced, emptied (vault_rows.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "vault_rows.h"

static uint8_t nonce[SEALED_NONCE_LEN];
static uint8_t ct[4096];

static struct sealed_row row(uint32_t version, size_t ct_len)
{
	memset(ct, (int)version, ct_len);
	return (struct sealed_row){ .version = version, .term = 1, .nonce = nonce, .ct = ct,
				    .ct_len = ct_len };
}

static void put(struct vault_rows *rs, const char *name, uint32_t version, size_t ct_len)
{
	struct sealed_row r = row(version, ct_len);

	vault_rows_put(rs, name, strlen(name), &r);
}

/* The row kept for name has this version and its bytes; -1 version: none kept. */
static void expect(const struct vault_rows *rs, const char *name, long version, size_t ct_len)
{
	struct sealed_row got;
	int rc = vault_rows_get(rs, name, strlen(name), &got);

	if (version < 0) {
		assert_int_equal(rc, -1);
		return;
	}
	assert_int_equal(rc, 0);
	assert_int_equal(got.version, (uint32_t)version);
	assert_int_equal(got.ct_len, ct_len);
	for (size_t i = 0; i < ct_len; i++)
		assert_int_equal(got.ct[i], (uint8_t)version);
	assert_memory_equal(got.nonce, nonce, SEALED_NONCE_LEN);
}

static void test_kept_replaced_cleared(void **state)
{
	struct vault_rows *rs = vault_rows_new(1 << 16);

	(void)state;
	assert_non_null(rs);
	expect(rs, "a", -1, 0);
	put(rs, "a", 1, 40);
	put(rs, "b", 2, 40);
	expect(rs, "a", 1, 40);
	expect(rs, "b", 2, 40);
	expect(rs, "ab", -1, 0);
	put(rs, "a", 3, 100); /* a newer row replaces the old one */
	expect(rs, "a", 3, 100);
	vault_rows_clear(rs);
	expect(rs, "a", -1, 0);
	expect(rs, "b", -1, 0);
	put(rs, "a", 4, 40);
	expect(rs, "a", 4, 40);
	vault_rows_free(rs);
}

/* Over its budget the set is emptied, never grown; a row over the budget is not kept. */
static void test_bounded(void **state)
{
	/* Room for two rows of 4,000 bytes with their entries, not for three. */
	struct vault_rows *rs = vault_rows_new(3 * 4000);
	struct vault_rows *tiny = vault_rows_new(1000);

	(void)state;
	assert_non_null(rs);
	assert_non_null(tiny);
	put(rs, "n0", 1, 4000);
	put(rs, "n1", 2, 4000);
	expect(rs, "n0", 1, 4000);
	expect(rs, "n1", 2, 4000);
	put(rs, "n2", 3, 4000); /* over the budget: emptied, then the newest kept */
	expect(rs, "n0", -1, 0);
	expect(rs, "n1", -1, 0);
	expect(rs, "n2", 3, 4000);
	put(tiny, "big", 1, 2000);
	expect(tiny, "big", -1, 0);
	vault_rows_free(tiny);
	vault_rows_free(rs);
}

/* Names with bytes a string would stop at are told apart by their length. */
static void test_names_by_length(void **state)
{
	struct vault_rows *rs = vault_rows_new(1 << 16);
	struct sealed_row r = row(7, 10), got;

	(void)state;
	assert_non_null(rs);
	vault_rows_put(rs, "x\0y", 3, &r);
	assert_int_equal(vault_rows_get(rs, "x", 1, &got), -1);
	assert_int_equal(vault_rows_get(rs, "x\0y", 3, &got), 0);
	assert_int_equal(got.version, 7);
	vault_rows_free(rs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kept_replaced_cleared),
		cmocka_unit_test(test_bounded),
		cmocka_unit_test(test_names_by_length),
	};

	if (sodium_init() < 0)
		return 1;
	randombytes_buf(nonce, sizeof(nonce));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
