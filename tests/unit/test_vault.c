/*
 * The sealed vault: round trips, versions, deletes, listing, batches,
 * persistence, WAL concurrency, and tampering done behind its back with a
 * raw SQLite connection, which must give an integrity error, never a value.
 */
#include <dirent.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>
#include <sqlite3.h>

#include "vault.h"
#include <secretd/wire.h>

static char dir[64];
static char path[128];
static uint8_t key[VAULT_KEY_LEN], other_key[VAULT_KEY_LEN];

static const char canary[] = "PLAINTEXT-CANARY-7f3e91c2-do-not-store";

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test_vault.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/vault.db", dir);
	randombytes_buf(key, sizeof(key));
	randombytes_buf(other_key, sizeof(other_key));
	return 0;
}

static int teardown(void **state)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char p[512];

	(void)state;
	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		unlink(p);
	}
	closedir(d);
	return rmdir(dir);
}

/* ---- helpers --------------------------------------------------------------- */

static struct vault *open_ok(void)
{
	struct vault *v = NULL;
	char err[512] = "";

	assert_int_equal(vault_open(path, key, &v, err, sizeof(err)), VAULT_OK);
	assert_non_null(v);
	return v;
}

static struct vault *create_open(void)
{
	char err[512] = "";

	assert_int_equal(vault_create(path, key, err, sizeof(err)), VAULT_OK);
	return open_ok();
}

static struct vault_writer *writer_ok(struct vault *v, unsigned keep)
{
	struct vault_writer *w = NULL;
	char err[512] = "";

	assert_int_equal(vault_writer_open(v, keep, &w, err, sizeof(err)), VAULT_OK);
	assert_non_null(w);
	return w;
}

static struct vault_op put_op(const char *name, const void *val, size_t len)
{
	return (struct vault_op){ .kind = VAULT_OP_PUT, .name = name, .name_len = strlen(name),
				  .value = val, .value_len = len };
}

static void put_ok(struct vault_writer *w, const char *name, const void *val, size_t len,
		   uint32_t want_version)
{
	struct vault_op op = put_op(name, val, len);

	assert_int_equal(vault_write_batch(w, &op, 1), VAULT_OK);
	assert_int_equal(op.result, VAULT_OK);
	assert_int_equal(op.version, want_version);
}

static void put_str(struct vault_writer *w, const char *name, const char *val, uint32_t ver)
{
	put_ok(w, name, val, strlen(val), ver);
}

static int delete_rc(struct vault_writer *w, const char *name, uint32_t *removed)
{
	struct vault_op op = { .kind = VAULT_OP_DELETE, .name = name, .name_len = strlen(name) };

	assert_int_equal(vault_write_batch(w, &op, 1), VAULT_OK);
	*removed = op.version;
	return op.result;
}

static void expect_bytes(struct vault *v, const char *name, uint32_t version,
			 const void *val, size_t len, uint32_t want_version)
{
	struct vault_secret *s = NULL;

	assert_int_equal(vault_get(v, name, strlen(name), version, &s), VAULT_OK);
	assert_non_null(s);
	assert_non_null(s->data);
	assert_int_equal(s->len, len);
	assert_int_equal(s->version, want_version);
	if (len > 0)
		assert_memory_equal(s->data, val, len);
	vault_secret_free(s);
}

static void expect_str(struct vault *v, const char *name, uint32_t version, const char *val,
		       uint32_t want_version)
{
	expect_bytes(v, name, version, val, strlen(val), want_version);
}

/* The error of a get, which must then hand back nothing. */
static int get_rc(struct vault *v, const char *name, uint32_t version)
{
	struct vault_secret *s = (struct vault_secret *)&s; /* must be cleared */
	int rc = vault_get(v, name, strlen(name), version, &s);

	if (rc != VAULT_OK)
		assert_null(s);
	vault_secret_free(rc == VAULT_OK ? s : NULL);
	return rc;
}

static void raw_exec(const char *sql)
{
	sqlite3 *db = NULL;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

/* A vault holding x (versions 1 and 2), y and z, closed, ready to tamper with. */
static void make_sample(void)
{
	struct vault *v = create_open();
	struct vault_writer *w = writer_ok(v, 10);

	put_str(w, "x", "x-one", 1);
	put_str(w, "x", "x-two", 2);
	put_str(w, "y", "y-one", 1);
	put_str(w, "z", "z-one", 1);
	vault_writer_close(w);
	vault_close(v);
}

static int open_rc(const uint8_t *k, char *err, size_t errlen)
{
	struct vault *v = (struct vault *)&v;
	int rc = vault_open(path, k, &v, err, errlen);

	if (rc != VAULT_OK)
		assert_null(v);
	vault_close(rc == VAULT_OK ? v : NULL);
	return rc;
}

/* ---- create and open --------------------------------------------------------- */

static void test_create_open(void **state)
{
	char err[512] = "";
	struct stat sb;
	struct vault *v;

	(void)state;
	v = create_open();
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	vault_close(v);

	assert_int_equal(vault_create(path, key, err, sizeof(err)), VAULT_E_EXISTS);
	assert_non_null(strstr(err, path));
	/* The refused create left the vault as it was. */
	vault_close(open_ok());
}

static void test_wrong_key(void **state)
{
	char err[512] = "";

	(void)state;
	vault_close(create_open());
	assert_int_equal(open_rc(other_key, err, sizeof(err)), VAULT_E_KEY);
	assert_non_null(strstr(err, "key does not open"));
	assert_non_null(strstr(err, path));
}

static void test_missing(void **state)
{
	char err[512] = "";

	(void)state;
	assert_int_not_equal(open_rc(key, err, sizeof(err)), VAULT_OK);
	assert_non_null(strstr(err, "no such file"));
	assert_non_null(strstr(err, path));
	/* Open never creates. */
	assert_int_equal(access(path, F_OK), -1);
}

static void write_file(const void *buf, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(buf, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void test_not_a_vault(void **state)
{
	uint8_t junk[8192], head[2048];
	char err[512] = "";
	FILE *f;
	int rc;

	(void)state;
	/* Empty: SQLite would call it a new database; we must not. */
	write_file("", 0);
	assert_int_equal(open_rc(key, err, sizeof(err)), VAULT_E_FORMAT);
	assert_non_null(strstr(err, path));

	randombytes_buf(junk, sizeof(junk));
	write_file(junk, sizeof(junk));
	rc = open_rc(key, err, sizeof(err));
	assert_true(rc == VAULT_E_FORMAT || rc == VAULT_E_IO);

	/* A real SQLite database that is not ours. */
	unlink(path);
	{
		sqlite3 *db = NULL;

		assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
		assert_int_equal(sqlite3_exec(db, "CREATE TABLE t(a)", NULL, NULL, NULL), SQLITE_OK);
		sqlite3_close(db);
	}
	assert_int_equal(open_rc(key, err, sizeof(err)), VAULT_E_FORMAT);
	assert_non_null(strstr(err, "not a secretd vault"));

	/* A vault cut short. */
	unlink(path);
	make_sample();
	f = fopen(path, "rb");
	assert_non_null(f);
	assert_int_equal(fread(head, 1, sizeof(head), f), sizeof(head));
	fclose(f);
	write_file(head, sizeof(head));
	rc = open_rc(key, err, sizeof(err));
	assert_true(rc == VAULT_E_FORMAT || rc == VAULT_E_IO);
	assert_non_null(strstr(err, path));
}

static void test_unknown_schema(void **state)
{
	char err[512] = "";

	(void)state;
	make_sample();
	raw_exec("UPDATE meta SET v = '2' WHERE k = 'schema'");
	assert_int_equal(open_rc(key, err, sizeof(err)), VAULT_E_FORMAT);
	assert_non_null(strstr(err, "schema"));
}

/* ---- values and versions ------------------------------------------------------ */

/*
 * Held reads (vault_hold_reads): the gets of one turn share a snapshot,
 * which must end at the turn's end and at each writer commit, so that a
 * get after an acknowledged put sees it.
 */
static void test_held_reads(void **state)
{
	struct vault *v = create_open();
	struct vault_writer *w = writer_ok(v, 10);

	(void)state;
	put_str(w, "k", "one", 1);
	vault_hold_reads(v);
	expect_str(v, "k", 0, "one", 1);
	expect_str(v, "k", 0, "one", 1); /* the second get of the turn holds its snapshot */
	put_str(w, "k", "two", 2);
	expect_str(v, "k", 0, "one", 1); /* the snapshot: why the writer must say so */
	vault_writer_committed(w);
	expect_str(v, "k", 0, "two", 2);
	expect_str(v, "k", 0, "two", 2);
	put_str(w, "k", "three", 3);
	vault_turn_end(v);
	/* The row read is kept across turns, until the writer says it committed. */
	expect_str(v, "k", 0, "two", 2);
	expect_str(v, "k", 3, "three", 3); /* a given version is always read */
	vault_writer_committed(w);
	expect_str(v, "k", 0, "three", 3);
	vault_turn_end(v);
	expect_str(v, "k", 0, "three", 3);
	put_str(w, "k", "four", 4);
	vault_writer_committed(w);
	expect_str(v, "k", 0, "four", 4);
	vault_writer_close(w);
	vault_close(v); /* with a read transaction open */
}

/* More names than the kept rows' budget holds: every get still right. */
static void test_held_reads_many(void **state)
{
	struct vault *v = create_open();
	struct vault_writer *w = writer_ok(v, 10);
	static char big[40000];
	char name[32];
	int i, round;

	(void)state;
	memset(big, 'x', sizeof(big));
	vault_hold_reads(v);
	for (i = 0; i < 60; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		big[0] = (char)('a' + i % 26);
		put_ok(w, name, big, sizeof(big), 1);
	}
	vault_writer_committed(w);
	for (round = 0; round < 2; round++) {
		for (i = 0; i < 60; i++) {
			snprintf(name, sizeof(name), "n%d", i);
			big[0] = (char)('a' + i % 26);
			expect_bytes(v, name, 0, big, sizeof(big), 1);
		}
		vault_turn_end(v);
	}
	assert_int_equal(get_rc(v, "missing", 0), VAULT_E_NOTFOUND);
	put_str(w, "missing", "now", 1);
	vault_writer_committed(w);
	expect_str(v, "missing", 0, "now", 1);
	vault_writer_close(w);
	vault_close(v);
}

/*
 * The loop's gets (vault_hold_reads: rows and their subkeys kept) at the
 * sizes around a value's guarded slot, many held at once, each read twice.
 */
static void test_held_reads_sizes(void **state)
{
	static const size_t sizes[] = { 0, 1, 32, 4000, 4047, 4048, 4049, 4050, 4095, 4096, 4097, 9000 };
	enum { N = sizeof(sizes) / sizeof(sizes[0]) };
	struct vault *v = create_open();
	struct vault_writer *w = writer_ok(v, 10);
	struct vault_secret *held[2][N];
	static uint8_t val[9000];
	char name[16];

	(void)state;
	randombytes_buf(val, sizeof(val));
	for (size_t i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "s%zu", i);
		put_ok(w, name, val, sizes[i], 1);
	}
	vault_hold_reads(v);
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < N; i++) {
			struct vault_secret *s = NULL;

			snprintf(name, sizeof(name), "s%zu", i);
			assert_int_equal(vault_get(v, name, strlen(name), 0, &s), VAULT_OK);
			assert_int_equal(s->len, sizes[i]);
			if (sizes[i] > 0)
				assert_memory_equal(s->data, val, sizes[i]);
			held[pass][i] = s;
		}
	for (size_t i = N; i-- > 0;) {
		vault_secret_free(held[1][i]);
		vault_secret_free(held[0][i]);
	}
	vault_turn_end(v);
	vault_writer_close(w);
	vault_close(v);
}

static void test_round_trip(void **state)
{
	static const uint8_t bin[] = { 0, 1, 0, 0xff, 'a', 0, '\n', 0 };
	struct vault *v = create_open();
	struct vault_writer *w = writer_ok(v, 10);
	uint8_t *big = malloc(WIRE_MAX_VALUE + 1);
	struct vault_op op;

	(void)state;
	assert_non_null(big);
	randombytes_buf(big, WIRE_MAX_VALUE + 1);
	put_ok(w, "bin", bin, sizeof(bin), 1);
	put_ok(w, "empty", NULL, 0, 1);
	put_ok(w, "big", big, WIRE_MAX_VALUE, 1);

	op = put_op("big", big, WIRE_MAX_VALUE + 1);
	assert_int_equal(vault_write_batch(w, &op, 1), VAULT_OK);
	assert_int_equal(op.result, VAULT_E_TOOBIG);

	expect_bytes(v, "bin", 0, bin, sizeof(bin), 1);
	expect_bytes(v, "bin", 1, bin, sizeof(bin), 1);
	expect_bytes(v, "empty", 0, NULL, 0, 1);
	expect_bytes(v, "big", 0, big, WIRE_MAX_VALUE, 1);
	assert_int_equal(get_rc(v, "nothing", 0), VAULT_E_NOTFOUND);
	assert_int_equal(get_rc(v, "bin", 2), VAULT_E_NOTFOUND);
	/* Names are bytes: a prefix is another name. */
	assert_int_equal(get_rc(v, "bi", 0), VAULT_E_NOTFOUND);
	free(big);
	vault_writer_close(w);
	vault_close(v);
}

static void test_versions_pruned(void **state)
{
	struct vault *v = create_open();
	struct vault_writer *w = writer_ok(v, 10);
	char val[32];

	(void)state;
	for (uint32_t i = 1; i <= 12; i++) {
		snprintf(val, sizeof(val), "value-%u", i);
		put_str(w, "s", val, i);
	}
	assert_int_equal(get_rc(v, "s", 1), VAULT_E_NOTFOUND);
	assert_int_equal(get_rc(v, "s", 2), VAULT_E_NOTFOUND);
	for (uint32_t i = 3; i <= 12; i++) {
		snprintf(val, sizeof(val), "value-%u", i);
		expect_str(v, "s", i, val, i);
	}
	expect_str(v, "s", 0, "value-12", 12);
	assert_int_equal(get_rc(v, "s", 13), VAULT_E_NOTFOUND);
	vault_writer_close(w);
	vault_close(v);
}

static void test_keep_one(void **state)
{
	struct vault *v = create_open();
	struct vault_writer *w = writer_ok(v, 1);

	(void)state;
	put_str(w, "s", "a", 1);
	put_str(w, "s", "b", 2);
	assert_int_equal(get_rc(v, "s", 1), VAULT_E_NOTFOUND);
	expect_str(v, "s", 0, "b", 2);
	vault_writer_close(w);
	vault_close(v);
}

static void test_delete(void **state)
{
	struct vault *v = create_open();
	struct vault_writer *w = writer_ok(v, 10);
	uint32_t removed = 0;

	(void)state;
	put_str(w, "d", "1", 1);
	put_str(w, "d", "2", 2);
	put_str(w, "d", "3", 3);
	put_str(w, "keep", "k", 1);
	assert_int_equal(delete_rc(w, "d", &removed), VAULT_OK);
	assert_int_equal(removed, 3);
	assert_int_equal(get_rc(v, "d", 0), VAULT_E_NOTFOUND);
	assert_int_equal(get_rc(v, "d", 2), VAULT_E_NOTFOUND);
	assert_int_equal(delete_rc(w, "d", &removed), VAULT_E_NOTFOUND);
	assert_int_equal(removed, 0);
	expect_str(v, "keep", 0, "k", 1);
	/* A deleted name starts again at version 1. */
	put_str(w, "d", "again", 1);
	vault_writer_close(w);
	vault_close(v);
}

struct names {
	char buf[16][8];
	size_t len[16];
	size_t n;
	int stop_after;
};

static int collect(const char *name, size_t len, void *ctx)
{
	struct names *c = ctx;

	assert_true(c->n < 16 && len <= 8);
	memcpy(c->buf[c->n], name, len);
	c->len[c->n++] = len;
	return c->stop_after > 0 && (int)c->n == c->stop_after ? 7 : 0;
}

static void test_list(void **state)
{
	static const struct {
		const char *s;
		size_t len;
	} want[] = { { "B", 1 }, { "a", 1 }, { "a\0", 2 }, { "a/b", 3 }, { "b", 1 } };
	struct vault *v = create_open();
	struct vault_writer *w = writer_ok(v, 10);
	struct names got = { 0 };
	struct vault_op op = { .kind = VAULT_OP_PUT, .name = "a\0", .name_len = 2,
			       .value = (const uint8_t *)"v", .value_len = 1 };
	uint32_t removed;

	(void)state;
	assert_int_equal(vault_list(v, collect, &got), 0);
	assert_int_equal(got.n, 0);
	put_str(w, "b", "v", 1);
	put_str(w, "a/b", "v", 1);
	put_str(w, "B", "v", 1);
	put_str(w, "a", "v", 1);
	put_str(w, "a", "v", 2);
	put_str(w, "gone", "v", 1);
	assert_int_equal(delete_rc(w, "gone", &removed), VAULT_OK);
	assert_int_equal(vault_write_batch(w, &op, 1), VAULT_OK);
	assert_int_equal(op.result, VAULT_OK);

	assert_int_equal(vault_list(v, collect, &got), 0);
	assert_int_equal(got.n, sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < got.n; i++) {
		assert_int_equal(got.len[i], want[i].len);
		assert_memory_equal(got.buf[i], want[i].s, want[i].len);
	}
	/* A nonzero answer stops the walk and is handed back. */
	memset(&got, 0, sizeof(got));
	got.stop_after = 2;
	assert_int_equal(vault_list(v, collect, &got), 7);
	assert_int_equal(got.n, 2);
	vault_writer_close(w);
	vault_close(v);
}

/* ---- batches, persistence, checkpoint ----------------------------------------- */

static void test_batch_partial_failure(void **state)
{
	struct vault *v = create_open();
	struct vault_writer *w = writer_ok(v, 10);
	uint8_t *big = calloc(1, WIRE_MAX_VALUE + 1);
	uint8_t blob[4] = { 1, 2, 3, 4 };
	struct vault_op ops[6];

	(void)state;
	assert_non_null(big);
	put_str(w, "old", "o", 1);
	ops[0] = put_op("p1", "one", 3);
	ops[1] = put_op("p2", big, WIRE_MAX_VALUE + 1);
	ops[2] = (struct vault_op){ .kind = VAULT_OP_DELETE, .name = "absent", .name_len = 6 };
	ops[3] = put_op("p1", "two", 3);
	ops[4] = (struct vault_op){ .kind = VAULT_OP_DELETE, .name = "old", .name_len = 3 };
	ops[5] = (struct vault_op){ .kind = VAULT_OP_CHECKPOINT, .value = blob, .value_len = 4 };
	assert_int_equal(vault_write_batch(w, ops, 6), VAULT_OK);
	assert_int_equal(ops[0].result, VAULT_OK);
	assert_int_equal(ops[0].version, 1);
	assert_int_equal(ops[1].result, VAULT_E_TOOBIG);
	assert_int_equal(ops[2].result, VAULT_E_NOTFOUND);
	assert_int_equal(ops[3].result, VAULT_OK);
	assert_int_equal(ops[3].version, 2);
	assert_int_equal(ops[4].result, VAULT_OK);
	assert_int_equal(ops[4].version, 1);
	assert_int_equal(ops[5].result, VAULT_OK);

	expect_str(v, "p1", 1, "one", 1);
	expect_str(v, "p1", 0, "two", 2);
	assert_int_equal(get_rc(v, "p2", 0), VAULT_E_NOTFOUND);
	assert_int_equal(get_rc(v, "old", 0), VAULT_E_NOTFOUND);
	assert_int_equal(vault_write_batch(w, NULL, 0), VAULT_OK);
	free(big);
	vault_writer_close(w);
	vault_close(v);
}

static void test_persistence(void **state)
{
	uint8_t blob[8], got[16];
	struct vault_writer *w;
	struct vault *v;
	size_t len = 0;

	(void)state;
	v = create_open();
	w = writer_ok(v, 10);
	put_str(w, "p", "first", 1);
	put_str(w, "p", "second", 2);
	randombytes_buf(blob, sizeof(blob));
	{
		struct vault_op op = { .kind = VAULT_OP_CHECKPOINT, .value = blob,
				       .value_len = sizeof(blob) };
		assert_int_equal(vault_write_batch(w, &op, 1), VAULT_OK);
	}
	vault_writer_close(w);
	vault_close(v);

	v = open_ok();
	expect_str(v, "p", 0, "second", 2);
	expect_str(v, "p", 1, "first", 1);
	assert_int_equal(vault_checkpoint_get(v, got, sizeof(got), &len), VAULT_OK);
	assert_int_equal(len, sizeof(blob));
	assert_memory_equal(got, blob, sizeof(blob));
	/* The writer on a reopened vault continues the version sequence. */
	w = writer_ok(v, 10);
	put_str(w, "p", "third", 3);
	vault_writer_close(w);
	vault_close(v);
}

static void test_checkpoint(void **state)
{
	struct vault *v = create_open();
	struct vault_writer *w = writer_ok(v, 10);
	uint8_t blob[257], got[300];
	struct vault_op op = { .kind = VAULT_OP_CHECKPOINT, .value = blob, .value_len = 256 };
	size_t len = 99;

	(void)state;
	assert_int_equal(vault_checkpoint_get(v, got, sizeof(got), &len), VAULT_E_NOTFOUND);
	randombytes_buf(blob, sizeof(blob));
	assert_int_equal(vault_write_batch(w, &op, 1), VAULT_OK);
	assert_int_equal(op.result, VAULT_OK);
	assert_int_equal(vault_checkpoint_get(v, got, sizeof(got), &len), VAULT_OK);
	assert_int_equal(len, 256);
	assert_memory_equal(got, blob, 256);
	assert_int_equal(vault_checkpoint_get(v, got, 10, &len), VAULT_E_TOOBIG);

	op.value_len = 257;
	assert_int_equal(vault_write_batch(w, &op, 1), VAULT_OK);
	assert_int_equal(op.result, VAULT_E_TOOBIG);
	/* A later checkpoint replaces the earlier one. */
	op.value = (const uint8_t *)"xy";
	op.value_len = 2;
	assert_int_equal(vault_write_batch(w, &op, 1), VAULT_OK);
	assert_int_equal(vault_checkpoint_get(v, got, sizeof(got), &len), VAULT_OK);
	assert_int_equal(len, 2);
	assert_memory_equal(got, "xy", 2);
	vault_writer_close(w);
	vault_close(v);
}

/* ---- tampering ------------------------------------------------------------------ */

/* Flip one bit of one ciphertext byte in place, in C so the column stays a BLOB. */
static void flip_ct_byte(const char *name, uint32_t version, size_t at)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	uint8_t ct[256];
	int len;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT ct FROM secrets WHERE name = ?1 AND"
					    " version = ?2", -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_blob(st, 1, name, (int)strlen(name), SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, version);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	len = sqlite3_column_bytes(st, 0);
	assert_true(len > (int)at && len <= (int)sizeof(ct));
	memcpy(ct, sqlite3_column_blob(st, 0), (size_t)len);
	sqlite3_finalize(st);
	ct[at] ^= 1;
	assert_int_equal(sqlite3_prepare_v2(db, "UPDATE secrets SET ct = ?3 WHERE name = ?1 AND"
					    " version = ?2", -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_blob(st, 1, name, (int)strlen(name), SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, version);
	sqlite3_bind_blob(st, 3, ct, len, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	assert_int_equal(sqlite3_changes(db), 1);
	sqlite3_finalize(st);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

/* The loop's gets refuse what every get refuses, the second time too (from what they keep). */
static void test_held_reads_tampered(void **state)
{
	struct vault *v;

	(void)state;
	make_sample();
	flip_ct_byte("x", 2, 0);
	flip_ct_byte("z", 1, 20); /* the tag */
	/* w: y's row, nonce and all, under another name: y's kept subkey opens nothing there. */
	raw_exec("INSERT INTO secrets SELECT x'77', version, term, nonce, ct FROM secrets"
		 " WHERE name = x'79'");
	v = open_ok();
	vault_hold_reads(v);
	for (int pass = 0; pass < 2; pass++) {
		expect_str(v, "y", 0, "y-one", 1);
		assert_int_equal(get_rc(v, "w", 0), VAULT_E_INTEGRITY);
		assert_int_equal(get_rc(v, "x", 0), VAULT_E_INTEGRITY);
		assert_int_equal(get_rc(v, "z", 0), VAULT_E_INTEGRITY);
		expect_str(v, "x", 1, "x-one", 1);
		vault_turn_end(v);
	}
	vault_close(v);
}

static void test_tamper_ciphertext_byte(void **state)
{
	struct vault *v;

	(void)state;
	make_sample();
	flip_ct_byte("x", 2, 0);   /* a ciphertext byte */
	flip_ct_byte("y", 1, 7);   /* tag bytes: "y-one" is 5 + 16 bytes */
	flip_ct_byte("y", 1, 20);
	v = open_ok();
	assert_int_equal(get_rc(v, "x", 2), VAULT_E_INTEGRITY);
	assert_int_equal(get_rc(v, "x", 0), VAULT_E_INTEGRITY);
	assert_int_equal(get_rc(v, "y", 0), VAULT_E_INTEGRITY);
	expect_str(v, "x", 1, "x-one", 1);
	expect_str(v, "z", 0, "z-one", 1);
	vault_close(v);
}

/* Swap nonce and ciphertext between y and z (whole values: they stay BLOBs). */
static void test_tamper_swap_rows(void **state)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	struct vault *v;

	(void)state;
	make_sample();
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
		"CREATE TEMP TABLE t AS SELECT name, nonce, ct FROM secrets;"
		"UPDATE secrets SET nonce = (SELECT nonce FROM t WHERE name = x'7a'),"
		" ct = (SELECT ct FROM t WHERE name = x'7a') WHERE name = x'79';"
		"UPDATE secrets SET nonce = (SELECT nonce FROM t WHERE name = x'79'),"
		" ct = (SELECT ct FROM t WHERE name = x'79') WHERE name = x'7a';",
		NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT typeof(ct) FROM secrets WHERE name = x'79'",
					    -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "blob");
	sqlite3_finalize(st);
	sqlite3_close(db);

	v = open_ok();
	assert_int_equal(get_rc(v, "y", 0), VAULT_E_INTEGRITY);
	assert_int_equal(get_rc(v, "z", 0), VAULT_E_INTEGRITY);
	expect_str(v, "x", 0, "x-two", 2);
	vault_close(v);
}

static void test_tamper_copy_to_other_name(void **state)
{
	struct vault *v;

	(void)state;
	make_sample();
	/* Both a fresh name and an existing one (as its newest version). */
	raw_exec("INSERT INTO secrets SELECT x'77', version, term, nonce, ct FROM secrets"
		 " WHERE name = x'79';"
		 "INSERT INTO secrets SELECT x'7a', 2, term, nonce, ct FROM secrets"
		 " WHERE name = x'79'");
	v = open_ok();
	assert_int_equal(get_rc(v, "w", 0), VAULT_E_INTEGRITY);
	assert_int_equal(get_rc(v, "z", 0), VAULT_E_INTEGRITY);
	expect_str(v, "z", 1, "z-one", 1);
	expect_str(v, "y", 0, "y-one", 1);
	vault_close(v);
}

static void test_tamper_version(void **state)
{
	struct vault *v;

	(void)state;
	make_sample();
	raw_exec("UPDATE secrets SET version = 5 WHERE name = x'78' AND version = 1");
	v = open_ok();
	assert_int_equal(get_rc(v, "x", 5), VAULT_E_INTEGRITY);
	assert_int_equal(get_rc(v, "x", 0), VAULT_E_INTEGRITY);
	expect_str(v, "x", 2, "x-two", 2);
	vault_close(v);
}

static void test_tamper_term(void **state)
{
	struct vault *v;

	(void)state;
	make_sample();
	raw_exec("UPDATE secrets SET term = 2 WHERE name = x'79'");
	v = open_ok();
	assert_int_equal(get_rc(v, "y", 0), VAULT_E_INTEGRITY);
	expect_str(v, "x", 0, "x-two", 2);
	vault_close(v);
}

static void test_tamper_datakey(void **state)
{
	char err[512] = "";
	int rc;

	(void)state;
	make_sample();
	raw_exec("DELETE FROM datakeys");
	rc = open_rc(key, err, sizeof(err));
	assert_true(rc == VAULT_E_INTEGRITY || rc == VAULT_E_KEY || rc == VAULT_E_FORMAT);
	assert_non_null(strstr(err, path));
}

static void test_tamper_datakey_bytes(void **state)
{
	char err[512] = "";

	(void)state;
	make_sample();
	raw_exec("UPDATE datakeys SET nonce = zeroblob(24)");
	assert_int_equal(open_rc(key, err, sizeof(err)), VAULT_E_KEY);
}

static void test_tamper_vault_id(void **state)
{
	char err[512] = "";

	(void)state;
	make_sample();
	raw_exec("UPDATE meta SET v = randomblob(16) WHERE k = 'vault_id'");
	assert_int_equal(open_rc(key, err, sizeof(err)), VAULT_E_KEY);
	raw_exec("UPDATE meta SET v = randomblob(15) WHERE k = 'vault_id'");
	assert_int_equal(open_rc(key, err, sizeof(err)), VAULT_E_FORMAT);
}

/* ---- concurrency and what reaches the disk ------------------------------------ */

/* WAL: a reader reads the last commit while another connection holds a write open. */
static void test_read_during_write(void **state)
{
	struct vault *v = create_open();
	struct vault_writer *w = writer_ok(v, 10);
	sqlite3 *raw = NULL;

	(void)state;
	put_str(w, "r", "committed", 1);
	assert_int_equal(sqlite3_open(path, &raw), SQLITE_OK);
	assert_int_equal(sqlite3_exec(raw, "BEGIN IMMEDIATE; DELETE FROM secrets;",
				      NULL, NULL, NULL), SQLITE_OK);
	expect_str(v, "r", 0, "committed", 1);
	assert_int_equal(sqlite3_exec(raw, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(raw);
	vault_writer_close(w);
	vault_close(v);
}

struct writer_thread {
	struct vault_writer *w;
	int failures;
	atomic_bool done; /* set when the writer returns, failed writes or not */
};

static void *write_many(void *arg)
{
	struct writer_thread *t = arg;
	char val[32];

	for (uint32_t i = 1; i <= 100; i++) {
		struct vault_op op;

		snprintf(val, sizeof(val), "c-%u", i);
		op = put_op("c", val, strlen(val));
		if (vault_write_batch(t->w, &op, 1) != VAULT_OK || op.result != VAULT_OK ||
		    op.version != i)
			t->failures++;
	}
	atomic_store(&t->done, true);
	return NULL;
}

/* One read of "c": versions never go back, and each value is its version's. */
static void read_latest(struct vault *v, uint32_t *last)
{
	struct vault_secret *s = NULL;
	char want[32];
	int rc = vault_get(v, "c", 1, 0, &s);

	if (rc == VAULT_E_NOTFOUND)
		return;
	assert_int_equal(rc, VAULT_OK);
	assert_true(s->version >= *last);
	*last = s->version;
	snprintf(want, sizeof(want), "c-%u", *last);
	assert_int_equal(s->len, strlen(want));
	assert_memory_equal(s->data, want, s->len);
	vault_secret_free(s);
}

/* The writer on its own thread while the reader keeps reading: every read succeeds. */
static void test_reader_and_writer_threads(void **state)
{
	struct vault *v = create_open();
	struct writer_thread t = { .w = writer_ok(v, 10) };
	uint32_t last = 0;
	pthread_t th;

	(void)state;
	atomic_init(&t.done, false);
	assert_int_equal(pthread_create(&th, NULL, write_many, &t), 0);
	/* Stop when the writer is done too: if its writes fail, version 100
	 * never comes, and the failure count below must report, not a timeout. */
	while (last < 100 && !atomic_load(&t.done))
		read_latest(v, &last);
	read_latest(v, &last); /* the writes after the last read in the loop */
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(t.failures, 0);
	assert_int_equal(last, 100);
	vault_writer_close(t.w);
	vault_close(v);
}

static bool file_contains(const char *p, const void *needle, size_t nlen)
{
	FILE *f = fopen(p, "rb");
	uint8_t *buf;
	long size;
	bool found;

	if (f == NULL)
		return false;
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	size = ftell(f);
	assert_true(size >= 0);
	rewind(f);
	buf = malloc((size_t)size + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)size, f), (size_t)size);
	fclose(f);
	found = memmem(buf, (size_t)size, needle, nlen) != NULL;
	free(buf);
	return found;
}

static void check_no_plaintext(bool need_side_files)
{
	static const char *const side[] = { "", "-wal", "-shm" };
	char p[256];
	struct stat sb;

	for (size_t i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s%s", path, side[i]);
		if (stat(p, &sb) != 0) {
			assert_false(need_side_files);
			continue;
		}
		/* Neither the vault nor its WAL may be open to group or others. */
		assert_int_equal(sb.st_mode & 077, 0);
		assert_false(file_contains(p, canary, strlen(canary)));
		assert_false(file_contains(p, "PLAINTEXT-CANARY", 16));
	}
}

static void test_no_plaintext_on_disk(void **state)
{
	struct vault *v = create_open();
	struct vault_writer *w = writer_ok(v, 2);
	size_t biglen = 64 * 1024;
	uint8_t *big = malloc(biglen);
	uint8_t ckpt[64];
	uint32_t removed;

	(void)state;
	assert_non_null(big);
	for (size_t off = 0; off < biglen; off += strlen(canary))
		memcpy(big + off, canary, biglen - off < strlen(canary) ? biglen - off : strlen(canary));
	for (uint32_t i = 1; i <= 5; i++)
		put_str(w, "canary", canary, i);
	put_ok(w, "big", big, biglen, 1);
	put_str(w, "gone", canary, 1);
	assert_int_equal(delete_rc(w, "gone", &removed), VAULT_OK);
	memset(ckpt, 'C', sizeof(ckpt));
	{
		struct vault_op op = { .kind = VAULT_OP_CHECKPOINT, .value = ckpt,
				       .value_len = sizeof(ckpt) };
		assert_int_equal(vault_write_batch(w, &op, 1), VAULT_OK);
	}
	expect_str(v, "canary", 0, canary, 5);
	/* Both connections open: the WAL and shared memory files exist now. */
	check_no_plaintext(true);
	vault_writer_close(w);
	vault_close(v);
	check_no_plaintext(false);
	free(big);
}

/* Values stay intact while many are out at once, and after the vault is closed. */
static void test_secrets_outstanding(void **state)
{
	struct vault *v = create_open();
	struct vault_writer *w = writer_ok(v, 10);
	struct vault_secret *out[40] = { 0 };
	char name[16], val[5000];

	(void)state;
	for (int i = 0; i < 40; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		/* Some small, some beyond the size the broker keeps buffers for. */
		memset(val, 'a' + i % 26, sizeof(val));
		put_ok(w, name, val, i % 3 == 0 ? 4500 : (size_t)i, 1);
	}
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < 40; i++) {
			snprintf(name, sizeof(name), "n%d", i);
			assert_int_equal(vault_get(v, name, strlen(name), 0, &out[i]), VAULT_OK);
		}
		for (int i = 0; i < 40; i++) {
			size_t want = i % 3 == 0 ? 4500 : (size_t)i;

			memset(val, 'a' + i % 26, sizeof(val));
			assert_int_equal(out[i]->len, want);
			if (want > 0)
				assert_memory_equal(out[i]->data, val, want);
			if (round == 0)
				vault_secret_free(out[i]);
		}
	}
	vault_writer_close(w);
	vault_close(v);
	/* Freed only now, after the vault is gone. */
	assert_memory_equal(out[1]->data, "b", 1);
	for (int i = 0; i < 40; i++)
		vault_secret_free(out[i]);
	vault_secret_free(NULL);
}

static void test_strerror(void **state)
{
	(void)state;
	assert_string_equal(vault_strerror(VAULT_E_INTEGRITY), "integrity error");
	assert_string_equal(vault_strerror(VAULT_E_NOTFOUND), "not found");
	assert_non_null(strstr(vault_strerror(VAULT_E_KEY), "key"));
	assert_non_null(vault_strerror(12345));
}

/* ---- the replica's steps (upstream.c) -------------------------------------- */

static int replica_rc(struct vault_writer *w, struct vault_replica *r)
{
	struct vault_op op = { .kind = VAULT_OP_REPLICA, .replica = r };

	assert_int_equal(vault_write_batch(w, &op, 1), VAULT_OK);
	return op.result;
}

static struct vault_change change_put(const char *name, uint32_t version, const char *val)
{
	return (struct vault_change){ .kind = VAULT_CHANGE_PUT, .name = name,
				      .name_len = strlen(name), .version = version,
				      .value = (const uint8_t *)val, .value_len = strlen(val) };
}

/* Versions chosen upstream land as given; one held already is left alone. */
static void test_replica_versions(void **state)
{
	struct vault *v = create_open();
	struct vault_writer *w = writer_ok(v, 3);
	struct vault_change ch[3] = { change_put("db", 7, "seven"), change_put("db", 9, "nine"),
				      change_put("db", 7, "not-seven") };
	struct vault_upstream st = { .revision = 40, .cluster_id = 0x1234 }, got;
	struct vault_replica r = { .changes = ch, .n = 3, .state = &st };

	(void)state;
	assert_int_equal(vault_upstream_get(v, &got), VAULT_E_NOTFOUND);
	assert_int_equal(replica_rc(w, &r), VAULT_OK);
	assert_true(ch[0].applied);
	assert_true(ch[1].applied);
	assert_false(ch[2].applied); /* the same version again: an echo, not a change */
	expect_str(v, "db", 0, "nine", 9);
	expect_str(v, "db", 7, "seven", 7);
	assert_int_equal(vault_upstream_get(v, &got), VAULT_OK);
	assert_int_equal(got.revision, 40);
	assert_int_equal(got.cluster_id, 0x1234);

	/* A removal takes every version up to its own, not a later one. */
	ch[0] = change_put("db", 10, "ten");
	ch[1] = (struct vault_change){ .kind = VAULT_CHANGE_REMOVE, .name = "db", .name_len = 2,
				       .version = 9 };
	r = (struct vault_replica){ .changes = ch, .n = 2, .state = NULL };
	assert_int_equal(replica_rc(w, &r), VAULT_OK);
	assert_true(ch[1].applied);
	assert_int_equal(ch[1].count, 2);
	expect_str(v, "db", 0, "ten", 10);
	assert_int_equal(get_rc(v, "db", 9), VAULT_E_NOTFOUND);
	assert_int_equal(vault_upstream_get(v, &got), VAULT_OK);
	assert_int_equal(got.revision, 40); /* state NULL leaves it */

	/* A resync replaces every name; forget drops the state too. */
	put_str(w, "other", "x", 1);
	ch[0] = change_put("fresh", 3, "three");
	st.revision = 99;
	r = (struct vault_replica){ .replace = true, .changes = ch, .n = 1, .state = &st };
	assert_int_equal(replica_rc(w, &r), VAULT_OK);
	assert_int_equal(get_rc(v, "db", 0), VAULT_E_NOTFOUND);
	assert_int_equal(get_rc(v, "other", 0), VAULT_E_NOTFOUND);
	expect_str(v, "fresh", 0, "three", 3);
	r = (struct vault_replica){ .replace = true, .forget = true };
	assert_int_equal(replica_rc(w, &r), VAULT_OK);
	assert_int_equal(vault_upstream_get(v, &got), VAULT_E_NOTFOUND);
	assert_int_equal(get_rc(v, "fresh", 0), VAULT_E_NOTFOUND);
	vault_writer_close(w);
	vault_close(v);
}

static void flip_upstream_byte(size_t at)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	uint8_t rec[256];
	size_t len;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT v FROM meta WHERE k = 'upstream'", -1,
					    &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	len = (size_t)sqlite3_column_bytes(st, 0);
	assert_true(len > at && len <= sizeof(rec));
	memcpy(rec, sqlite3_column_blob(st, 0), len);
	sqlite3_finalize(st);
	rec[at] ^= 1;
	assert_int_equal(sqlite3_prepare_v2(db, "UPDATE meta SET v = ?1 WHERE k = 'upstream'", -1,
					    &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_bind_blob(st, 1, rec, (int)len, SQLITE_TRANSIENT), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

/* The remembered revision is sealed: an edited file cannot lower it. */
static void test_replica_state_sealed(void **state)
{
	struct vault *v = create_open();
	struct vault_writer *w = writer_ok(v, 3);
	struct vault_upstream st = { .revision = 500, .cluster_id = 7 }, got;
	struct vault_replica r = { .state = &st };
	size_t count = 9;

	(void)state;
	assert_int_equal(replica_rc(w, &r), VAULT_OK);
	assert_int_equal(vault_count(v, &count), VAULT_OK);
	assert_int_equal(count, 0);
	vault_writer_close(w);
	vault_close(v);
	flip_upstream_byte(4 + 24 + 3); /* in the ciphertext, past term and nonce */
	v = open_ok();
	assert_int_equal(vault_upstream_get(v, &got), VAULT_E_INTEGRITY);
	vault_close(v);
	raw_exec("UPDATE meta SET v = x'00' WHERE k = 'upstream'");
	v = open_ok();
	assert_int_equal(vault_upstream_get(v, &got), VAULT_E_INTEGRITY);
	vault_close(v);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_create_open),
		T(test_wrong_key),
		T(test_missing),
		T(test_not_a_vault),
		T(test_unknown_schema),
		T(test_round_trip),
		T(test_held_reads),
		T(test_held_reads_many),
		T(test_held_reads_sizes),
		T(test_held_reads_tampered),
		T(test_versions_pruned),
		T(test_keep_one),
		T(test_delete),
		T(test_list),
		T(test_batch_partial_failure),
		T(test_persistence),
		T(test_checkpoint),
		T(test_tamper_ciphertext_byte),
		T(test_tamper_swap_rows),
		T(test_tamper_copy_to_other_name),
		T(test_tamper_version),
		T(test_tamper_term),
		T(test_tamper_datakey),
		T(test_tamper_datakey_bytes),
		T(test_tamper_vault_id),
		T(test_read_during_write),
		T(test_reader_and_writer_threads),
		T(test_no_plaintext_on_disk),
		T(test_secrets_outstanding),
		T(test_strerror),
		T(test_replica_versions),
		T(test_replica_state_sealed),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
