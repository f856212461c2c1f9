/*
 * The audit log: the exact records (field order, types, escaping, bounds),
 * the chain across restarts and rotations, the key ratchet, the verifier
 * catching every kind of tampering (including re-sealing with a later key,
 * done here as an attacker who read the broker's memory would), and the
 * degraded state on a full disk (a small tmpfs, when running as root).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "audit.h"
#include "audit_links.h"
#include "audit_record.h"
#include "identity.h"

#define MAX_LINES 256
#define CONTAINER "3f2a9c51e0b7d4c1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70819"

static char dir[64];
static char logpath[256];
static uint8_t master[32];
static struct identity who;
static char cgroup_buf[4096];

static const struct audit_options small_epochs = { AUDIT_SYNC_BATCH, 5, 3600 };

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test_audit.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(logpath, sizeof(logpath), "%s/audit.log", dir);
	randombytes_buf(master, sizeof(master));
	memset(&who, 0, sizeof(who));
	who.uid = 1000;
	who.gid = 1001;
	who.pid = 4242;
	snprintf(cgroup_buf, sizeof(cgroup_buf), "/system.slice/docker-%s.scope", CONTAINER);
	who.cgroup = cgroup_buf;
	snprintf(who.container, sizeof(who.container), "%s", CONTAINER);
	return 0;
}

static void rm_tree(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	char p[512];

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
		if (unlink(p) != 0 && errno == EISDIR)
			rm_tree(p);
	}
	closedir(d);
	rmdir(path);
}

static int teardown(void **state)
{
	(void)state;
	rm_tree(dir);
	return 0;
}

/* ---- helpers --------------------------------------------------------------- */

static struct audit *open_log(const struct audit_options *opt, const uint8_t *ckpt, size_t len)
{
	struct audit *a = NULL;
	char err[512] = "";
	int rc = audit_open(logpath, master, opt, ckpt, len, &a, err, sizeof(err));

	if (rc != 0)
		fail_msg("audit_open: %d %s", rc, err);
	assert_non_null(a);
	return a;
}

static int append_ev(struct audit *a, const char *op, const char *name, long long version,
		     const char *decision, unsigned rule, const char *error, long long count)
{
	struct audit_event ev = {
		.op = op, .name = name, .name_len = name != NULL ? strlen(name) : 0,
		.version = version, .decision = decision, .rule = rule, .who = &who,
		.error = error, .count = count,
	};
	return audit_append(a, &ev);
}

static void append_get(struct audit *a, const char *name)
{
	assert_int_equal(append_ev(a, "get", name, 3, "allow", 4, NULL, -1), 0);
}

struct lines {
	char *l[MAX_LINES];
	size_t n;
	bool last_complete;
};

static void lines_free(struct lines *ls)
{
	for (size_t i = 0; i < ls->n; i++)
		free(ls->l[i]);
	ls->n = 0;
}

static void read_lines(const char *path, struct lines *ls)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	assert_non_null(f);
	ls->n = 0;
	ls->last_complete = true;
	while ((n = getline(&line, &cap, f)) > 0) {
		assert_true(ls->n < MAX_LINES);
		ls->last_complete = line[n - 1] == '\n';
		if (ls->last_complete)
			line[n - 1] = '\0';
		ls->l[ls->n++] = strdup(line);
	}
	free(line);
	fclose(f);
}

static void write_lines(const char *path, const struct lines *ls)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	for (size_t i = 0; i < ls->n; i++)
		fprintf(f, "%s\n", ls->l[i]);
	assert_int_equal(fclose(f), 0);
}

static void set_line(struct lines *ls, size_t i, const char *text)
{
	free(ls->l[i]);
	ls->l[i] = strdup(text);
}

static int verify_files(const char *const *files, size_t n, const uint8_t *ckpt, size_t len,
			char *report, size_t cap)
{
	return audit_verify(master, files, n, ckpt, len, report, cap);
}

static int verify_log(char *report, size_t cap)
{
	const char *files[] = { logpath };

	return verify_files(files, 1, NULL, 0, report, cap);
}

static void assert_verifies(const char *const *files, size_t n)
{
	char report[1024];
	int rc = verify_files(files, n, NULL, 0, report, sizeof(report));

	if (rc != 0)
		fail_msg("verify: %d %s", rc, report);
	assert_memory_equal(report, "OK: ", 4);
}

static void assert_broken(const char *expect1, const char *expect2)
{
	char report[1024];
	int rc = verify_log(report, sizeof(report));

	if (rc != 1 || strstr(report, expect1) == NULL ||
	    (expect2 != NULL && strstr(report, expect2) == NULL))
		fail_msg("expected broken (%s / %s), got %d: %s", expect1,
			 expect2 != NULL ? expect2 : "", rc, report);
}

/* The raw text of a field's value (string contents without quotes). */
static bool field(const char *line, const char *key, char *out, size_t cap)
{
	char pat[64];
	const char *p, *end;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(line, pat);
	if (p == NULL)
		return false;
	p += strlen(pat);
	if (*p == '"') {
		p++;
		for (end = p; *end != '\0' && *end != '"'; end++)
			if (*end == '\\')
				end++;
	} else {
		end = p + strspn(p, "-0123456789");
	}
	if ((size_t)(end - p) >= cap)
		return false;
	memcpy(out, p, (size_t)(end - p));
	out[end - p] = '\0';
	return true;
}

static long long num_field(const char *line, const char *key)
{
	char v[32];

	if (!field(line, key, v, sizeof(v)))
		fail_msg("no field %s in %s", key, line);
	return strtoll(v, NULL, 10);
}

/*
 * "key:type key:type ..." of a flat JSON object, type s or n; fails the test
 * on anything that is not such an object.
 */
static void key_sig(const char *line, char *out, size_t cap)
{
	const char *p = line;
	size_t used = 0;

	out[0] = '\0';
	assert_int_equal(*p++, '{');
	for (;;) {
		const char *k;
		char type;

		assert_int_equal(*p++, '"');
		k = p;
		while (*p != '"')
			p++;
		used += (size_t)snprintf(out + used, cap - used, "%s%.*s:", used ? " " : "",
					 (int)(p - k), k);
		p++;
		assert_int_equal(*p++, ':');
		if (*p == '"') {
			type = 's';
			for (p++; *p != '"'; p++) {
				assert_true((unsigned char)*p >= 0x20 && (unsigned char)*p <= 0x7e);
				if (*p == '\\')
					p++;
			}
			p++;
		} else {
			type = 'n';
			assert_true(*p == '-' || (*p >= '0' && *p <= '9'));
			p += strspn(p, "-0123456789");
		}
		used += (size_t)snprintf(out + used, cap - used, "%c", type);
		if (*p == '}') {
			assert_int_equal(p[1], '\0');
			return;
		}
		assert_int_equal(*p++, ',');
	}
}

/* The line with its ts and chain values replaced by TS and CHAIN. */
static void mask(const char *line, char *out, size_t cap)
{
	const char *ts = strstr(line, "{\"ts\":\"");
	const char *ch = strstr(line, ",\"chain\":\"");
	const char *ts_end;

	assert_non_null(ts);
	assert_non_null(ch);
	ts += 7;
	ts_end = strchr(ts, '"');
	assert_int_equal(strlen(ch), 10 + 64 + 2);
	snprintf(out, cap, "{\"ts\":\"TS%.*s,\"chain\":\"CHAIN\"}", (int)(ch - ts_end), ts_end);
}

static void assert_ts_format(const char *line)
{
	char ts[64];
	const char *shape = "dddd-dd-ddTdd:dd:dd.ddddddZ";

	assert_true(field(line, "ts", ts, sizeof(ts)));
	assert_int_equal(strlen(ts), strlen(shape));
	for (size_t i = 0; shape[i] != '\0'; i++) {
		if (shape[i] == 'd')
			assert_true(ts[i] >= '0' && ts[i] <= '9');
		else
			assert_int_equal(ts[i], shape[i]);
	}
}

/* The parser reads a line back, and what it read builds the same body again. */
static void assert_roundtrip(const char *line)
{
	static struct audit_parsed p;
	static char body[AUDIT_RECORD_MAX];
	static char who_fields[AUDIT_WHO_MAX];
	size_t len = strlen(line), n;

	if (!audit_record_parse(line, len, &p))
		fail_msg("does not parse: %s", line);
	n = audit_record_body(&p.ev, body, sizeof(body) - AUDIT_RECORD_SUFFIX_LEN);
	assert_int_equal(n, p.body_len);
	assert_memory_equal(body, line, n);
	/* The identity's fields laid out once (a connection's) give the same bytes. */
	p.ev.who_json_len = audit_record_who(&p.who, who_fields, sizeof(who_fields));
	assert_true(p.ev.who_json_len > 0);
	p.ev.who_json = who_fields;
	n = audit_record_body(&p.ev, body, sizeof(body) - AUDIT_RECORD_SUFFIX_LEN);
	assert_int_equal(n, p.body_len);
	assert_memory_equal(body, line, n);
	assert_false(audit_record_parse(line, len - 1, &p));
}

/* ---- an attacker who holds K_epoch ------------------------------------------- */

static void key_for_epoch(uint64_t epoch, uint8_t k[32])
{
	assert_int_equal(crypto_kdf_derive_from_key(k, 32, 2, "sdauditk", master), 0);
	for (uint64_t i = 0; i < epoch; i++) {
		crypto_generichash_state st;

		crypto_generichash_init(&st, NULL, 0, 32);
		crypto_generichash_update(&st, (const uint8_t *)"secretd-ratchet", 15);
		crypto_generichash_update(&st, k, 32);
		crypto_generichash_final(&st, k, 32);
	}
}

/* Re-seal line (new body text) after prev_line with K_epoch. */
static void reseal(struct lines *ls, size_t i, const char *body, uint64_t epoch)
{
	uint8_t k[32], prev[32], mac[32];
	char hex[65], text[4200];
	char prevhex[80];

	key_for_epoch(epoch, k);
	assert_true(field(ls->l[i - 1], "chain", prevhex, sizeof(prevhex)));
	assert_int_equal(sodium_hex2bin(prev, 32, prevhex, 64, NULL, NULL, NULL), 0);
	crypto_generichash_state st;
	crypto_generichash_init(&st, k, 32, 32);
	crypto_generichash_update(&st, prev, 32);
	crypto_generichash_update(&st, (const uint8_t *)body, strlen(body));
	crypto_generichash_final(&st, mac, 32);
	sodium_bin2hex(hex, sizeof(hex), mac, 32);
	snprintf(text, sizeof(text), "%s,\"chain\":\"%s\"}", body, hex);
	set_line(ls, i, text);
}

/* The body (what the MAC covers) of a line, with one substring replaced. */
static void body_with(const char *line, const char *from, const char *to, char *out, size_t cap)
{
	const char *ch = strstr(line, ",\"chain\":\"");
	char body[4200];
	const char *at;

	snprintf(body, sizeof(body), "%.*s", (int)(ch - line), line);
	if (from == NULL) {
		snprintf(out, cap, "%s", body);
		return;
	}
	at = strstr(body, from);
	assert_non_null(at);
	snprintf(out, cap, "%.*s%s%s", (int)(at - body), body, to, at + strlen(from));
}

/*
 * A log of 21 records, 5 an epoch: line i is seq i; seq 1 is the start
 * record, seq 7, 13 and 19 are epoch records (epochs 1, 2, 3).
 */
static void make_tamper_log(struct lines *ls)
{
	struct audit *a;

	unlink(logpath);
	a = open_log(&small_epochs, NULL, 0);

	for (int i = 0; i < 16; i++)
		append_get(a, "app/db/password");
	assert_int_equal(audit_last_seq(a), 20);
	assert_int_equal(audit_close(a), 0); /* seq 21: stop */
	read_lines(logpath, ls);
	assert_int_equal(ls->n, 21);
}

/* ---- records -------------------------------------------------------------------- */

static void test_record_fields(void **state)
{
	struct audit *a = open_log(NULL, NULL, 0);
	struct lines ls;
	char m[4200], sig[1024], expect[4200];
	char idf[512];

	(void)state;
	append_get(a, "app/db/password");
	assert_int_equal(append_ev(a, "list", NULL, -1, "allow", 2, NULL, 7), 0);
	assert_int_equal(append_ev(a, "get", "app/db/root", -1, "deny", 0, NULL, -1), 0);
	assert_int_equal(append_ev(a, "put", "app/x", -1, "error", 3, "value too large", -1), 0);
	assert_int_equal(append_ev(a, "ping", NULL, -1, "allow", 0, NULL, -1), 0);
	assert_int_equal(audit_last_seq(a), 6);
	assert_int_equal(audit_close(a), 0);

	read_lines(logpath, &ls);
	assert_int_equal(ls.n, 7);
	assert_true(ls.last_complete);
	for (size_t i = 0; i < ls.n; i++) {
		assert_roundtrip(ls.l[i]);
		assert_ts_format(ls.l[i]);
		assert_true(strlen(ls.l[i]) < 4096);
		assert_int_equal(num_field(ls.l[i], "seq"), (long long)i + 1);
	}

	key_sig(ls.l[0], sig, sizeof(sig));
	/* the first record written into a file says so, and names the chain before it */
	assert_string_equal(sig, "ts:s seq:n op:s decision:s rule:n uid:n gid:n pid:n cgroup:s "
			    "container:s pod:s file:s prev:s epoch:n chain:s");
	mask(ls.l[0], m, sizeof(m));
	snprintf(expect, sizeof(expect),
		 "{\"ts\":\"TS\",\"seq\":1,\"op\":\"start\",\"decision\":\"allow\",\"rule\":0,"
		 "\"uid\":%u,\"gid\":%u,\"pid\":%d,\"cgroup\":\"\",\"container\":\"\",\"pod\":\"\","
		 "\"file\":\"new\",\"prev\":\"%064d\",\"epoch\":0,\"chain\":\"CHAIN\"}",
		 (unsigned)getuid(), (unsigned)getgid(), (int)getpid(), 0);
	assert_string_equal(m, expect);

	snprintf(idf, sizeof(idf), "\"uid\":1000,\"gid\":1001,\"pid\":4242,"
		 "\"cgroup\":\"/system.slice/docker-%s.scope\",\"container\":\"%s\",\"pod\":\"\"",
		 CONTAINER, CONTAINER);
	key_sig(ls.l[1], sig, sizeof(sig));
	assert_string_equal(sig, "ts:s seq:n op:s name:s version:n decision:s rule:n uid:n gid:n "
			    "pid:n cgroup:s container:s pod:s epoch:n chain:s");
	mask(ls.l[1], m, sizeof(m));
	snprintf(expect, sizeof(expect), "{\"ts\":\"TS\",\"seq\":2,\"op\":\"get\","
		 "\"name\":\"app/db/password\",\"version\":3,\"decision\":\"allow\",\"rule\":4,"
		 "%s,\"epoch\":0,\"chain\":\"CHAIN\"}", idf);
	assert_string_equal(m, expect);

	/* list: the count of names, never the names */
	mask(ls.l[2], m, sizeof(m));
	snprintf(expect, sizeof(expect), "{\"ts\":\"TS\",\"seq\":3,\"op\":\"list\","
		 "\"decision\":\"allow\",\"rule\":2,%s,\"count\":7,\"epoch\":0,\"chain\":\"CHAIN\"}",
		 idf);
	assert_string_equal(m, expect);

	mask(ls.l[3], m, sizeof(m));
	snprintf(expect, sizeof(expect), "{\"ts\":\"TS\",\"seq\":4,\"op\":\"get\","
		 "\"name\":\"app/db/root\",\"decision\":\"deny\",\"rule\":0,%s,\"epoch\":0,"
		 "\"chain\":\"CHAIN\"}", idf);
	assert_string_equal(m, expect);

	mask(ls.l[4], m, sizeof(m));
	snprintf(expect, sizeof(expect), "{\"ts\":\"TS\",\"seq\":5,\"op\":\"put\","
		 "\"name\":\"app/x\",\"decision\":\"error\",\"rule\":3,%s,"
		 "\"error\":\"value too large\",\"epoch\":0,\"chain\":\"CHAIN\"}", idf);
	assert_string_equal(m, expect);

	mask(ls.l[5], m, sizeof(m));
	snprintf(expect, sizeof(expect), "{\"ts\":\"TS\",\"seq\":6,\"op\":\"ping\","
		 "\"decision\":\"allow\",\"rule\":0,%s,\"epoch\":0,\"chain\":\"CHAIN\"}", idf);
	assert_string_equal(m, expect);

	/* the clean shutdown */
	key_sig(ls.l[6], sig, sizeof(sig));
	assert_string_equal(sig, "ts:s seq:n op:s decision:s rule:n uid:n gid:n pid:n cgroup:s "
			    "container:s pod:s epoch:n chain:s");
	assert_non_null(strstr(ls.l[6], "\"op\":\"stop\""));
	lines_free(&ls);
	assert_verifies((const char *const[]){ logpath }, 1);
}

static void test_escaping_and_bounds(void **state)
{
	struct audit *a = open_log(NULL, NULL, 0);
	static char v[AUDIT_RECORD_MAX];
	struct lines ls;
	char sig[1024];
	const char nasty_name[] = "a\"b\\c";

	(void)state;
	snprintf(cgroup_buf, sizeof(cgroup_buf), "/a\"b\\c\n\x01\x7f\xff/\"},\"uid\":0");
	append_get(a, nasty_name);
	/* long, and every byte a control byte (6 bytes escaped): still whole */
	memset(cgroup_buf, 0x01, 3000);
	cgroup_buf[3000] = '\0';
	append_get(a, "x");
	memset(cgroup_buf, 'y', sizeof(cgroup_buf) - 1);
	cgroup_buf[sizeof(cgroup_buf) - 1] = '\0';
	append_get(a, "x");
	/* a name past its bound (512 escaped bytes) is cut and marked */
	memset(v, 0x02, 200);
	v[200] = '\0';
	append_get(a, v);
	assert_int_equal(audit_close(a), 0);

	read_lines(logpath, &ls);
	assert_int_equal(ls.n, 6);
	assert_true(field(ls.l[4], "name", v, sizeof(v)));
	assert_int_equal(strlen(v), 6 * 84 + 3);
	assert_string_equal(v + strlen(v) - 9, "\\u0002...");
	for (size_t i = 0; i < ls.n; i++) {
		key_sig(ls.l[i], sig, sizeof(sig)); /* still one flat object each */
		assert_roundtrip(ls.l[i]);
		assert_true(strlen(ls.l[i]) + 1 <= AUDIT_RECORD_MAX);
	}
	assert_true(field(ls.l[1], "cgroup", v, sizeof(v)));
	assert_string_equal(v, "/a\\\"b\\\\c\\u000a\\u0001\\u007f\\u00ff/\\\"},\\\"uid\\\":0");
	assert_int_equal(num_field(ls.l[1], "uid"), 1000);
	assert_non_null(strstr(ls.l[1], "\"name\":\"a\\\"b\\\\c\""));

	assert_true(field(ls.l[2], "cgroup", v, sizeof(v)));
	assert_int_equal(strlen(v), 6 * 3000);
	for (size_t i = 0; i < 3000; i++)
		assert_memory_equal(v + 6 * i, "\\u0001", 6);
	assert_true(field(ls.l[3], "cgroup", v, sizeof(v)));
	assert_int_equal(strlen(v), sizeof(cgroup_buf) - 1);
	assert_null(strstr(v, "..."));
	lines_free(&ls);
	assert_verifies((const char *const[]){ logpath }, 1);
}

/*
 * Every byte value in a cgroup path, against the escaping the format
 * promises: printable ASCII as itself, '"' and '\\' with a backslash, all
 * else as \u00xx.  The record stays one object that round-trips and verifies.
 */
static void test_every_byte_escaped(void **state)
{
	struct audit *a = open_log(NULL, NULL, 0);
	static char v[AUDIT_RECORD_MAX], want[AUDIT_RECORD_MAX];
	struct lines ls;
	size_t w = 0;

	(void)state;
	for (int c = 1; c < 256; c++) {
		cgroup_buf[c - 1] = (char)c;
		if (c == '"' || c == '\\')
			w += (size_t)snprintf(want + w, sizeof(want) - w, "\\%c", c);
		else if (c >= 0x20 && c <= 0x7e)
			want[w++] = (char)c;
		else
			w += (size_t)snprintf(want + w, sizeof(want) - w, "\\u%04x", c);
	}
	cgroup_buf[255] = '\0';
	want[w] = '\0';
	append_get(a, "x");
	assert_int_equal(audit_close(a), 0);
	read_lines(logpath, &ls);
	assert_true(field(ls.l[1], "cgroup", v, sizeof(v)));
	assert_string_equal(v, want);
	assert_roundtrip(ls.l[1]);
	lines_free(&ls);
	assert_verifies((const char *const[]){ logpath }, 1);
}

/* want: s escaped as the format promises (the reference for the tests). */
static size_t escape_ref(const unsigned char *s, size_t n, char *want, size_t cap)
{
	size_t w = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned c = s[i];

		if (c == '"' || c == '\\')
			w += (size_t)snprintf(want + w, cap - w, "\\%c", c);
		else if (c >= 0x20 && c <= 0x7e)
			want[w++] = (char)c;
		else
			w += (size_t)snprintf(want + w, cap - w, "\\u%04x", c);
	}
	want[w] = '\0';
	return w;
}

/*
 * Each byte value at each place in a run of plain bytes, and runs of
 * plain bytes of every length around a word: the scan that skips eight
 * plain bytes at a time must stop at exactly the byte that needs escaping,
 * whatever its lane, and never escape a plain one.
 */
static void test_escape_every_lane(void **state)
{
	struct identity caller = { .uid = 1, .gid = 2, .pid = 3 };
	char path[40], json[512], want[256], got[256];
	size_t n;

	(void)state;
	caller.cgroup = path;
	/* The byte at each lane of the first three words; whole words, and a tail. */
	for (int c = 1; c < 256; c++) {
		for (size_t k = 0; k < 3 * 8 * 2; k++) {
			size_t word = k / 16, lane = k / 2 % 8, at = 8 * word + lane;
			size_t len = 8 * (word + 1) + (k % 2 ? 3 : 0);

			memset(path, c == 'a' ? 'b' : 'a', len);
			path[at] = (char)c;
			path[len] = '\0';
			escape_ref((const unsigned char *)path, len, want, sizeof(want));
			n = audit_record_who(&caller, json, sizeof(json) - 1);
			assert_true(n > 0);
			json[n] = '\0';
			assert_true(field(json, "cgroup", got, sizeof(got)));
			assert_string_equal(got, want);
		}
	}
}

/* Fields added for credentials and fleet sync appear only when set. */
static void test_unit_and_revision(void **state)
{
	struct audit *a = open_log(NULL, NULL, 0);
	struct audit_event ev = {
		.op = "credential", .name = "systemd/web.service/db", .name_len = 22,
		.version = 2, .decision = "allow", .rule = 1, .who = &who, .count = -1,
		.unit = "web.service",
	};
	struct lines ls;
	char sig[1024];

	(void)state;
	assert_int_equal(audit_append(a, &ev), 0);
	ev = (struct audit_event){ .op = "sync", .version = -1, .decision = "allow",
				   .who = &who, .count = 3, .revision = 41 };
	assert_int_equal(audit_append(a, &ev), 0);
	assert_int_equal(audit_close(a), 0);
	read_lines(logpath, &ls);
	assert_int_equal(ls.n, 4);
	key_sig(ls.l[1], sig, sizeof(sig));
	assert_string_equal(sig, "ts:s seq:n op:s name:s version:n decision:s rule:n uid:n gid:n "
			    "pid:n cgroup:s container:s pod:s unit:s epoch:n chain:s");
	assert_non_null(strstr(ls.l[1], "\"pod\":\"\",\"unit\":\"web.service\","));
	key_sig(ls.l[2], sig, sizeof(sig));
	assert_string_equal(sig, "ts:s seq:n op:s decision:s rule:n uid:n gid:n pid:n cgroup:s "
			    "container:s pod:s count:n revision:n epoch:n chain:s");
	assert_int_equal(num_field(ls.l[2], "revision"), 41);
	for (size_t i = 0; i < ls.n; i++)
		assert_roundtrip(ls.l[i]);
	lines_free(&ls);
	assert_verifies((const char *const[]){ logpath }, 1);
}

/*
 * Two deep cgroups that differ only past the first kilobyte: each record
 * holds its caller's whole path, so they never look alike.
 */
static void test_deep_cgroups_told_apart(void **state)
{
	static char v[AUDIT_RECORD_MAX], want[sizeof(cgroup_buf)];
	struct audit *a = open_log(NULL, NULL, 0);
	struct lines ls;
	size_t n = sizeof(cgroup_buf) - 1; /* the longest path cgroup.c takes */

	(void)state;
	for (size_t i = 0; i < n; i++)
		cgroup_buf[i] = i % 16 == 0 ? '/' : 'a' + (char)(i % 7);
	cgroup_buf[n - 1] = '1';
	cgroup_buf[n] = '\0';
	append_get(a, "x");
	cgroup_buf[n - 1] = '2';
	append_get(a, "x");
	/* a short one that differs late, escaped bytes and all */
	snprintf(cgroup_buf, sizeof(cgroup_buf), "/%01500d\x01\xff/end", 0);
	append_get(a, "x");
	assert_int_equal(audit_close(a), 0);

	read_lines(logpath, &ls);
	assert_int_equal(ls.n, 5);
	assert_true(field(ls.l[1], "cgroup", v, sizeof(v)));
	assert_int_equal(strlen(v), n);
	assert_int_equal(v[n - 1], '1');
	assert_true(field(ls.l[2], "cgroup", v, sizeof(v)));
	assert_int_equal(strlen(v), n);
	assert_int_equal(v[n - 1], '2');
	assert_true(field(ls.l[3], "cgroup", v, sizeof(v)));
	snprintf(want, sizeof(want), "/%01500d\\u0001\\u00ff/end", 0);
	assert_string_equal(v, want);
	for (size_t i = 0; i < ls.n; i++)
		assert_roundtrip(ls.l[i]);
	lines_free(&ls);
	assert_verifies((const char *const[]){ logpath }, 1);
}

static void test_bad_arguments(void **state)
{
	struct audit *a = open_log(NULL, NULL, 0);
	struct audit_event ev = { .op = "get", .decision = "allow", .version = -1, .count = -1 };

	(void)state;
	assert_int_equal(audit_append(a, &ev), -EINVAL); /* no identity */
	assert_true(audit_healthy(a));
	assert_string_equal(audit_problem(a), "");
	assert_int_equal(audit_close(a), 0);
}

static void test_file_mode_and_symlink(void **state)
{
	struct audit *a;
	struct stat st;
	char link[160], err[512];

	(void)state;
	a = open_log(NULL, NULL, 0);
	assert_int_equal(stat(logpath, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(audit_close(a), 0);

	snprintf(link, sizeof(link), "%s/link.log", dir);
	assert_int_equal(symlink(logpath, link), 0);
	assert_int_not_equal(audit_open(link, master, NULL, NULL, 0, &a, err, sizeof(err)), 0);
	assert_null(a);
	assert_non_null(strstr(err, link));
}

/* ---- chain across restarts, rotation, epochs --------------------------------------- */

static void test_restart_continues(void **state)
{
	struct audit *a;
	struct lines ls;

	(void)state;
	a = open_log(NULL, NULL, 0);
	append_get(a, "a");
	append_get(a, "b");
	assert_int_equal(audit_close(a), 0); /* seq 1..4 */
	a = open_log(NULL, NULL, 0);
	assert_int_equal(audit_last_seq(a), 5);
	append_get(a, "c");
	assert_int_equal(audit_close(a), 0);

	read_lines(logpath, &ls);
	assert_int_equal(ls.n, 7);
	for (size_t i = 0; i < ls.n; i++)
		assert_int_equal(num_field(ls.l[i], "seq"), (long long)i + 1);
	assert_non_null(strstr(ls.l[4], "\"op\":\"start\""));
	assert_int_equal(num_field(ls.l[3], "epoch"), 0);
	assert_int_equal(num_field(ls.l[4], "epoch"), 1);
	assert_int_equal(num_field(ls.l[5], "epoch"), 1);
	lines_free(&ls);
	assert_verifies((const char *const[]){ logpath }, 1);
}

static void test_rotation(void **state)
{
	char old[160], report[1024];
	struct audit *a;
	struct lines ls;

	(void)state;
	snprintf(old, sizeof(old), "%s/audit.log.1", dir);
	a = open_log(NULL, NULL, 0);
	append_get(a, "a");
	append_get(a, "b");
	assert_int_equal(rename(logpath, old), 0); /* logrotate's rename, then HUP */
	assert_int_equal(audit_reopen(a), 0);
	append_get(a, "c");
	assert_int_equal(audit_close(a), 0);

	read_lines(logpath, &ls);
	assert_int_equal(num_field(ls.l[0], "seq"), 4);
	assert_non_null(strstr(ls.l[0], "\"op\":\"reopen\""));
	lines_free(&ls);
	assert_verifies((const char *const[]){ old, logpath }, 2);

	/* the newer file alone: intact, but it says where it starts */
	assert_int_equal(verify_files((const char *const[]){ logpath }, 1, NULL, 0, report,
				      sizeof(report)), 0);
	assert_non_null(strstr(report, "starting at seq 4, earlier files not given"));
	/* wrong order */
	assert_int_equal(verify_files((const char *const[]){ logpath, old }, 2, NULL, 0, report,
				      sizeof(report)), 1);
	assert_non_null(strstr(report, old));
	/* the older file given twice */
	assert_int_equal(verify_files((const char *const[]){ old, old, logpath }, 3, NULL, 0,
				      report, sizeof(report)), 1);
	/* a missing file */
	assert_true(verify_files((const char *const[]){ "/nonexistent/x.log" }, 1, NULL, 0, report,
				 sizeof(report)) < 0);
	assert_non_null(strstr(report, "/nonexistent/x.log"));
}

static void test_tick_notices_rename_and_removal(void **state)
{
	char old[160];
	struct audit *a;
	struct lines ls;

	(void)state;
	snprintf(old, sizeof(old), "%s/audit.log.1", dir);
	a = open_log(NULL, NULL, 0);
	append_get(a, "a");
	assert_int_equal(rename(logpath, old), 0); /* no HUP */
	assert_int_equal(audit_tick(a), 0);
	assert_true(audit_healthy(a));
	append_get(a, "b");
	assert_int_equal(audit_close(a), 0);
	read_lines(logpath, &ls);
	assert_non_null(strstr(ls.l[0], "\"op\":\"reopen\""));
	assert_int_equal(num_field(ls.l[0], "seq"), 3);
	lines_free(&ls);
	assert_verifies((const char *const[]){ old, logpath }, 2);

	/* removed: recreated at once by the tick, not written into the void */
	unlink(old);
	unlink(logpath);
	a = open_log(NULL, NULL, 0);
	append_get(a, "c");
	assert_int_equal(unlink(logpath), 0);
	assert_int_equal(audit_tick(a), 0);
	assert_true(audit_healthy(a));
	assert_int_equal(access(logpath, F_OK), 0);
	append_get(a, "d");
	assert_int_equal(audit_close(a), 0);
	read_lines(logpath, &ls);
	assert_non_null(strstr(ls.l[0], "\"op\":\"degraded\""));
	assert_non_null(strstr(ls.l[0], "removed"));
	assert_int_equal(num_field(ls.l[0], "seq"), 3);
	lines_free(&ls);
	assert_verifies((const char *const[]){ logpath }, 1);
}

/*
 * What the broker's loop does: the watch descriptor is readable once the
 * file lost its name, and the log is told so before its next write.
 */
static void removal_told(struct audit *a)
{
	struct pollfd p = { .fd = audit_watch_fd(a), .events = POLLIN };

	assert_true(p.fd >= 0);
	assert_int_equal(poll(&p, 1, 0), 1);
	audit_watch_event(a);
}

static void test_removed_file_degrades(void **state)
{
	struct audit *a = open_log(NULL, NULL, 0);
	struct lines ls;

	(void)state;
	append_get(a, "a");
	assert_int_equal(unlink(logpath), 0);
	removal_told(a);
	assert_int_not_equal(append_ev(a, "get", "b", -1, "allow", 1, NULL, -1), 0);
	assert_false(audit_healthy(a));
	assert_non_null(strstr(audit_problem(a), "removed"));
	/* degraded: refused at once, no seq used */
	assert_int_equal(append_ev(a, "get", "b", -1, "allow", 1, NULL, -1), -EIO);
	assert_int_equal(audit_last_seq(a), 2);
	assert_int_equal(audit_recover(a), 0);
	assert_true(audit_healthy(a));
	append_get(a, "c");
	assert_int_equal(audit_close(a), 0);
	read_lines(logpath, &ls);
	assert_int_equal(ls.n, 3);
	for (size_t i = 0; i < ls.n; i++)
		assert_roundtrip(ls.l[i]);
	assert_non_null(strstr(ls.l[0], "\"op\":\"degraded\""));
	assert_int_equal(num_field(ls.l[0], "seq"), 3);
	assert_int_equal(num_field(ls.l[0], "refused"), 2);
	assert_true(num_field(ls.l[0], "degraded_us") >= 0);
	lines_free(&ls);
	assert_verifies((const char *const[]){ logpath }, 1);
}

/*
 * Without the watch (the gate could not poll it) every write checks the
 * link count itself: a removal nobody was told of still degrades the log.
 */
static void test_removed_file_degrades_unwatched(void **state)
{
	struct audit *a = open_log(NULL, NULL, 0);

	(void)state;
	audit_watch_off(a);
	append_get(a, "a");
	append_get(a, "b");
	assert_int_equal(unlink(logpath), 0);
	assert_int_not_equal(append_ev(a, "get", "c", -1, "allow", 1, NULL, -1), 0);
	assert_false(audit_healthy(a));
	assert_non_null(strstr(audit_problem(a), "removed"));
	assert_int_equal(audit_recover(a), 0);
	append_get(a, "d");
	assert_int_equal(audit_close(a), 0);
	assert_verifies((const char *const[]){ logpath }, 1);
}

/* No inotify instance to be had (no descriptor left): the watch says "check" for ever. */
static void test_links_without_inotify(void **state)
{
	struct audit_links l;
	struct rlimit old, none;
	int lowest = open("/dev/null", O_RDONLY | O_CLOEXEC), fd;

	(void)state;
	assert_true(lowest >= 0); /* the lowest descriptor free */
	assert_int_equal(close(lowest), 0);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	none = old;
	none.rlim_cur = (rlim_t)lowest; /* not one more descriptor */
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &none), 0);
	audit_links_init(&l);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	assert_int_equal(audit_links_fd(&l), -1);
	fd = open(logpath, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	audit_links_watch(&l, fd);
	assert_true(audit_links_unsure(&l));
	audit_links_confirmed(&l);
	assert_true(audit_links_unsure(&l)); /* no event could ever say otherwise */
	audit_links_drain(&l);
	assert_true(audit_links_unsure(&l));
	audit_links_close(&l);
	assert_int_equal(close(fd), 0);
}

static void test_ratchet_by_records(void **state)
{
	struct lines ls;

	(void)state;
	make_tamper_log(&ls);
	for (size_t i = 0; i < 20; i++) {
		long long seq = (long long)i + 1;
		bool opens = seq == 7 || seq == 13 || seq == 19;

		assert_int_equal(num_field(ls.l[i], "seq"), seq);
		assert_int_equal(num_field(ls.l[i], "epoch"), seq < 7 ? 0 : seq < 13 ? 1 : seq < 19 ? 2 : 3);
		assert_int_equal(strstr(ls.l[i], "\"op\":\"epoch\"") != NULL, opens);
	}
	lines_free(&ls);
	assert_verifies((const char *const[]){ logpath }, 1);
}

static void test_ratchet_by_time(void **state)
{
	struct audit_options opt = { AUDIT_SYNC_BATCH, 1000, 1 };
	struct audit *a = open_log(&opt, NULL, 0);
	struct lines ls;

	(void)state;
	assert_int_equal(audit_tick(a), 0); /* nothing in the epoch: no ratchet */
	append_get(a, "a");
	assert_int_equal(audit_last_seq(a), 2);
	usleep(1100 * 1000);
	assert_int_equal(audit_tick(a), 0);
	assert_int_equal(audit_last_seq(a), 3);
	usleep(1100 * 1000);
	assert_int_equal(audit_tick(a), 0); /* idle epoch: no further ratchet */
	assert_int_equal(audit_last_seq(a), 3);
	append_get(a, "b");
	assert_int_equal(audit_close(a), 0);
	read_lines(logpath, &ls);
	assert_non_null(strstr(ls.l[2], "\"op\":\"epoch\""));
	assert_int_equal(num_field(ls.l[2], "epoch"), 1);
	assert_int_equal(num_field(ls.l[3], "epoch"), 1);
	lines_free(&ls);
	assert_verifies((const char *const[]){ logpath }, 1);
}

/* ---- durability and checkpoints ------------------------------------------------ */

static size_t sync_now(struct audit *a, uint8_t *blob)
{
	size_t len = 99;
	uint64_t covers = audit_sync_begin(a, blob, &len);

	assert_int_equal(covers, audit_last_seq(a));
	assert_int_equal(audit_sync_run(a), 0);
	audit_sync_end(a, covers, 0);
	assert_int_equal(audit_synced_seq(a), covers);
	assert_false(audit_dirty(a));
	return len;
}

static void test_sync_and_checkpoint(void **state)
{
	uint8_t blob[AUDIT_CHECKPOINT_MAX];
	struct audit *a = open_log(NULL, NULL, 0);
	size_t len;
	char report[1024];

	(void)state;
	assert_true(audit_dirty(a)); /* the start record */
	append_get(a, "a");
	len = sync_now(a, blob);
	assert_true(len > 0 && len <= AUDIT_CHECKPOINT_MAX);
	append_get(a, "b");
	assert_true(audit_dirty(a));
	assert_int_equal(audit_synced_seq(a), 2);
	/* a failed sync degrades */
	audit_sync_end(a, audit_sync_begin(a, NULL, NULL), -EIO);
	assert_false(audit_healthy(a));
	assert_non_null(strstr(audit_problem(a), "fsync"));
	assert_int_equal(audit_recover(a), 0);
	len = sync_now(a, blob);
	assert_int_equal(audit_close(a), 0);

	assert_int_equal(verify_files((const char *const[]){ logpath }, 1, blob, len, report,
				      sizeof(report)), 0);
	assert_non_null(strstr(report, "checkpoint at seq 4 matches"));
	blob[10] ^= 1;
	assert_int_equal(verify_files((const char *const[]){ logpath }, 1, blob, len, report,
				      sizeof(report)), 1);
	assert_non_null(strstr(report, "checkpoint"));
}

static void test_stop_then_checkpoint_then_new_file(void **state)
{
	uint8_t blob[AUDIT_CHECKPOINT_MAX];
	char old[160];
	struct audit *a = open_log(NULL, NULL, 0);
	struct lines ls;
	size_t len;

	(void)state;
	snprintf(old, sizeof(old), "%s/audit.log.1", dir);
	append_get(a, "a");
	assert_int_equal(audit_stop(a), 0);
	len = sync_now(a, blob);
	assert_int_equal(audit_close(a), 0); /* no second stop record */
	read_lines(logpath, &ls);
	assert_int_equal(ls.n, 3);
	lines_free(&ls);

	/* rotated while the broker was down: the new file continues from the vault */
	assert_int_equal(rename(logpath, old), 0);
	a = open_log(NULL, blob, len);
	assert_int_equal(audit_last_seq(a), 4);
	assert_int_equal(audit_close(a), 0);
	read_lines(logpath, &ls);
	assert_non_null(strstr(ls.l[0], "checkpoint"));
	assert_int_equal(num_field(ls.l[0], "epoch"), 1);
	lines_free(&ls);
	assert_verifies((const char *const[]){ old, logpath }, 2);
}

static void test_open_after_cut_keeps_gap_visible(void **state)
{
	uint8_t blob[AUDIT_CHECKPOINT_MAX];
	struct audit *a = open_log(NULL, NULL, 0);
	struct lines ls;
	size_t len;

	(void)state;
	for (int i = 0; i < 5; i++)
		append_get(a, "a");
	len = sync_now(a, blob); /* checkpoint at seq 6 */
	assert_int_equal(audit_close(a), 0);
	read_lines(logpath, &ls);
	for (size_t i = 3; i < ls.n; i++)
		free(ls.l[i]);
	ls.n = 3; /* cut after seq 3 */
	write_lines(logpath, &ls);
	lines_free(&ls);

	a = open_log(NULL, blob, len);
	assert_int_equal(audit_last_seq(a), 7);
	assert_int_equal(audit_close(a), 0);
	assert_broken("seq 7 follows 3", NULL);
}

/* ---- tampering -------------------------------------------------------------------- */

static void test_tamper_edit(void **state)
{
	struct lines ls;
	char body[4200];

	(void)state;
	make_tamper_log(&ls);
	body_with(ls.l[3], "\"rule\":4", "\"rule\":5", body, sizeof(body));
	snprintf(body + strlen(body), sizeof(body) - strlen(body), "%s",
		 strstr(ls.l[3], ",\"chain\":"));
	set_line(&ls, 3, body);
	write_lines(logpath, &ls);
	lines_free(&ls);
	assert_broken("audit.log:4: seq 4: chain MAC mismatch", NULL);
}

static void test_tamper_delete(void **state)
{
	struct lines ls;

	(void)state;
	make_tamper_log(&ls);
	free(ls.l[3]);
	memmove(&ls.l[3], &ls.l[4], (ls.n - 4) * sizeof(ls.l[0]));
	ls.n--;
	write_lines(logpath, &ls);
	lines_free(&ls);
	assert_broken("audit.log:4: seq 5: seq 5 follows 3", "removed");
}

static void drop_first_lines(struct lines *ls, size_t k)
{
	for (size_t i = 0; i < k; i++)
		free(ls->l[i]);
	memmove(&ls->l[0], &ls->l[k], (ls->n - k) * sizeof(ls->l[0]));
	ls->n -= k;
}

/*
 * A log may be verified from a later file on (older ones rotated away), but
 * only from a record the broker wrote first into its file: records cut off
 * the head of a file are found, also when the cut lands on a restart.
 */
static void test_tamper_delete_first(void **state)
{
	struct audit *a;
	struct lines ls;

	(void)state;
	a = open_log(NULL, NULL, 0);
	append_get(a, "a");
	assert_int_equal(audit_close(a), 0); /* start, get, stop: seq 1..3 */
	a = open_log(NULL, NULL, 0);         /* start at seq 4, mid-file */
	append_get(a, "b");
	assert_int_equal(audit_close(a), 0);

	read_lines(logpath, &ls);
	assert_non_null(strstr(ls.l[0], "\"file\":\"new\""));
	assert_non_null(strstr(ls.l[3], "\"op\":\"start\""));
	assert_null(strstr(ls.l[3], "\"file\""));
	drop_first_lines(&ls, 1);
	write_lines(logpath, &ls);
	assert_broken("audit.log:1: seq 2: the first record given is not the first",
		      "records before it removed");
	drop_first_lines(&ls, 2); /* now it begins at the restart's start record */
	write_lines(logpath, &ls);
	lines_free(&ls);
	assert_broken("audit.log:1: seq 4: the first record given is not the first", NULL);
}

/*
 * The head of a log cut off and its new first record forged as the start of
 * a file: "file":"new" and the chain value of the record it replaces.  Found
 * with or without the vault's checkpoint.
 */
static void test_tamper_forged_file_start(void **state)
{
	uint8_t blob[AUDIT_CHECKPOINT_MAX];
	struct audit *a = open_log(NULL, NULL, 0);
	struct lines ls;
	char body[4200], report[1024];
	size_t len;

	(void)state;
	for (int i = 0; i < 10; i++)
		append_get(a, "app/db/password");
	len = sync_now(a, blob); /* checkpoint at seq 11 */
	assert_int_equal(audit_close(a), 0);
	read_lines(logpath, &ls);
	assert_int_equal(ls.n, 12);
	drop_first_lines(&ls, 4); /* seq 1..4 gone; seq 5 comes first */
	body_with(ls.l[0], "\"epoch\":0", "\"file\":\"new\",\"epoch\":0", body, sizeof(body));
	snprintf(body + strlen(body), sizeof(body) - strlen(body), "%s",
		 strstr(ls.l[0], ",\"chain\":"));
	set_line(&ls, 0, body);
	write_lines(logpath, &ls);
	lines_free(&ls);
	assert_broken("audit.log:1: seq 5:", NULL);
	assert_int_equal(verify_files((const char *const[]){ logpath }, 1, blob, len, report,
				      sizeof(report)), 1);
	assert_non_null(strstr(report, "audit.log:1: seq 5:"));
}

/*
 * Whoever holds the current epoch's key can forge a file start and re-seal
 * what follows, which verifies on its own (the limit of forward security),
 * but not against the vault's checkpoint: the chain value there changed.
 */
static void test_tamper_file_start_with_current_key(void **state)
{
	uint8_t blob[AUDIT_CHECKPOINT_MAX];
	struct audit *a = open_log(NULL, NULL, 0);
	struct lines ls;
	char body[4200], prev[80], with[200], report[1024];
	size_t len;

	(void)state;
	for (int i = 0; i < 10; i++)
		append_get(a, "app/db/password");
	len = sync_now(a, blob); /* checkpoint at seq 11, its file begun at seq 1 */
	assert_int_equal(audit_close(a), 0);
	read_lines(logpath, &ls);
	assert_true(field(ls.l[3], "chain", prev, sizeof(prev)));
	snprintf(with, sizeof(with), "\"file\":\"new\",\"prev\":\"%s\",\"epoch\":0", prev);
	body_with(ls.l[4], "\"epoch\":0", with, body, sizeof(body));
	reseal(&ls, 4, body, 0);
	for (size_t i = 5; i < ls.n; i++) {
		body_with(ls.l[i], NULL, NULL, body, sizeof(body));
		reseal(&ls, i, body, 0);
	}
	drop_first_lines(&ls, 4);
	write_lines(logpath, &ls);
	lines_free(&ls);
	assert_verifies((const char *const[]){ logpath }, 1);
	assert_int_equal(verify_files((const char *const[]){ logpath }, 1, blob, len, report,
				      sizeof(report)), 1);
	assert_non_null(strstr(report, "audit.log:7: seq 11: does not match the vault's "
			       "checkpoint"));
}

/* A file start of an older secretd (no "prev") cannot begin a verification. */
static void test_file_start_without_prev(void **state)
{
	char old[160], report[1024];
	struct audit *a = open_log(NULL, NULL, 0);
	struct lines ls;
	char *p, *end;

	(void)state;
	snprintf(old, sizeof(old), "%s/audit.log.1", dir);
	append_get(a, "a");
	assert_int_equal(rename(logpath, old), 0);
	assert_int_equal(audit_reopen(a), 0);
	append_get(a, "b");
	assert_int_equal(audit_close(a), 0);
	read_lines(logpath, &ls);
	p = strstr(ls.l[0], ",\"prev\":\"");
	assert_non_null(p);
	end = strchr(p + 9, '"');
	memmove(p, end + 1, strlen(end + 1) + 1);
	write_lines(logpath, &ls);
	lines_free(&ls);
	assert_int_equal(verify_files((const char *const[]){ logpath }, 1, NULL, 0, report,
				      sizeof(report)), 1);
	assert_non_null(strstr(report, "seq 3: the first record given begins a file but does not "
			       "name the chain before it"));
	/* with the earlier file it is an ordinary record whose MAC now fails */
	assert_int_equal(verify_files((const char *const[]){ old, logpath }, 2, NULL, 0, report,
				      sizeof(report)), 1);
	assert_non_null(strstr(report, "seq 3: chain MAC mismatch"));
}

static void test_tamper_delete_last(void **state)
{
	struct lines ls;
	uint8_t blob[AUDIT_CHECKPOINT_MAX];
	struct audit *a = open_log(NULL, NULL, 0);
	size_t len;
	char report[1024];

	(void)state;
	for (int i = 0; i < 8; i++)
		append_get(a, "a");
	len = sync_now(a, blob); /* checkpoint at seq 9 */
	assert_int_equal(audit_close(a), 0);
	read_lines(logpath, &ls);
	assert_int_equal(ls.n, 10);
	for (size_t i = 7; i < ls.n; i++)
		free(ls.l[i]);
	ls.n = 7; /* seq 8, 9 and the stop record are gone */
	write_lines(logpath, &ls);
	lines_free(&ls);
	/* without the checkpoint a cut tail looks intact ... */
	assert_verifies((const char *const[]){ logpath }, 1);
	/* ... with it, it does not */
	assert_int_equal(verify_files((const char *const[]){ logpath }, 1, blob, len, report,
				      sizeof(report)), 1);
	assert_string_equal(report, "log ends at seq 7 but the vault's checkpoint is at seq 9: "
			    "records cut off");
}

static void test_tamper_insert_copy(void **state)
{
	struct lines ls;

	(void)state;
	make_tamper_log(&ls);
	memmove(&ls.l[5], &ls.l[4], (ls.n - 4) * sizeof(ls.l[0]));
	ls.l[4] = strdup(ls.l[3]);
	ls.n++;
	write_lines(logpath, &ls);
	lines_free(&ls);
	assert_broken("audit.log:5: seq 4: seq 4 follows 4", "inserted");
}

static void test_tamper_swap(void **state)
{
	struct lines ls;
	char *t;

	(void)state;
	make_tamper_log(&ls);
	t = ls.l[3];
	ls.l[3] = ls.l[4];
	ls.l[4] = t;
	write_lines(logpath, &ls);
	lines_free(&ls);
	assert_broken("audit.log:4: seq 5: seq 5 follows 3", NULL);
}

static void test_tamper_seq_renumbered(void **state)
{
	struct lines ls;
	char body[4200];

	(void)state;
	make_tamper_log(&ls);
	/* delete seq 4 and renumber the rest: the MACs give it away */
	free(ls.l[3]);
	memmove(&ls.l[3], &ls.l[4], (ls.n - 4) * sizeof(ls.l[0]));
	ls.n--;
	body_with(ls.l[3], "\"seq\":5", "\"seq\":4", body, sizeof(body));
	snprintf(body + strlen(body), sizeof(body) - strlen(body), "%s",
		 strstr(ls.l[3], ",\"chain\":"));
	set_line(&ls, 3, body);
	write_lines(logpath, &ls);
	lines_free(&ls);
	assert_broken("audit.log:4: seq 4: chain MAC mismatch", NULL);
}

static void test_tamper_resealed_with_later_key(void **state)
{
	struct lines ls;
	char body[4200];

	(void)state;
	make_tamper_log(&ls);
	/* sanity: the attacker's sealing reproduces the broker's with the right key */
	body_with(ls.l[2], NULL, NULL, body, sizeof(body));
	{
		char *orig = strdup(ls.l[2]);
		reseal(&ls, 2, body, 0);
		assert_string_equal(ls.l[2], orig);
		free(orig);
	}
	lines_free(&ls);

	/* edit a record of epoch 0, re-seal it with K_1, keep its epoch number */
	make_tamper_log(&ls);
	body_with(ls.l[2], "\"rule\":4", "\"rule\":0", body, sizeof(body));
	reseal(&ls, 2, body, 1);
	write_lines(logpath, &ls);
	lines_free(&ls);
	assert_broken("audit.log:3: seq 3: chain MAC mismatch", NULL);

	/* ... and with its epoch number changed to match the key */
	make_tamper_log(&ls);
	body_with(ls.l[2], "\"epoch\":0", "\"epoch\":1", body, sizeof(body));
	reseal(&ls, 2, body, 1);
	write_lines(logpath, &ls);
	lines_free(&ls);
	assert_broken("audit.log:3: seq 3: epoch changes from 0 to 1", NULL);

	/* ... or turned into a fake epoch change sealed with the new key */
	make_tamper_log(&ls);
	{
		char tmp[4200];
		body_with(ls.l[2], "\"epoch\":0", "\"epoch\":1", tmp, sizeof(tmp));
		snprintf(body, sizeof(body), "%s", tmp);
		body_with(body, "\"op\":\"get\"", "\"op\":\"epoch\"", tmp, sizeof(tmp));
		reseal(&ls, 2, tmp, 1);
	}
	write_lines(logpath, &ls);
	lines_free(&ls);
	assert_broken("audit.log:3: seq 3: chain MAC mismatch", NULL);

	/* a record in the current epoch re-sealed with its own key verifies (the
	 * limit of forward security), but the next record's chain then breaks */
	make_tamper_log(&ls);
	body_with(ls.l[19], "\"rule\":4", "\"rule\":0", body, sizeof(body));
	reseal(&ls, 19, body, 3);
	write_lines(logpath, &ls);
	lines_free(&ls);
	assert_broken("audit.log:21: seq 21: chain MAC mismatch", NULL);
}

static void test_tamper_wrong_key(void **state)
{
	struct lines ls;
	char report[1024];

	(void)state;
	make_tamper_log(&ls);
	lines_free(&ls);
	master[0] ^= 1;
	assert_int_equal(verify_log(report, sizeof(report)), 1);
	assert_non_null(strstr(report, "seq 1: chain MAC mismatch"));
	master[0] ^= 1;
}

static void test_torn_last_line(void **state)
{
	struct audit *a = open_log(NULL, NULL, 0);
	struct lines ls;
	struct stat st;
	int fd;

	(void)state;
	append_get(a, "a");
	assert_int_equal(audit_close(a), 0);
	fd = open(logpath, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "{\"ts\":\"2026-", 12), 12);
	close(fd);
	assert_broken("audit.log:4: after seq 3: incomplete last line", NULL);

	/* the broker cuts it off on start and says so */
	a = open_log(NULL, NULL, 0);
	assert_int_equal(audit_close(a), 0);
	read_lines(logpath, &ls);
	assert_int_equal(ls.n, 5);
	assert_roundtrip(ls.l[3]);
	assert_int_equal(num_field(ls.l[3], "torn_bytes"), 12);
	assert_int_equal(num_field(ls.l[3], "seq"), 4);
	lines_free(&ls);
	assert_verifies((const char *const[]){ logpath }, 1);

	/* a complete last line that is no record: refuse to continue blindly */
	fd = open(logpath, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "hello\n", 6), 6);
	close(fd);
	{
		char err[512];
		a = NULL;
		assert_int_not_equal(audit_open(logpath, master, NULL, NULL, 0, &a, err, sizeof(err)), 0);
		assert_null(a);
		assert_non_null(strstr(err, "not an audit record"));
	}
	assert_int_equal(stat(logpath, &st), 0);
	assert_broken("audit.log:6: after seq 5: not a valid audit record", NULL);
}

/* Append bytes to the log as they are; expect the next start refused, the file as it was. */
static void append_raw(const char *bytes, size_t len)
{
	int fd = open(logpath, O_WRONLY | O_APPEND);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, bytes, len), (ssize_t)len);
	close(fd);
}

static void assert_refused_unchanged(const char *why)
{
	struct stat before, after;
	struct audit *a = NULL;
	char err[512];

	assert_int_equal(stat(logpath, &before), 0);
	assert_int_not_equal(audit_open(logpath, master, NULL, NULL, 0, &a, err, sizeof(err)), 0);
	assert_null(a);
	assert_non_null(strstr(err, why));
	assert_int_equal(stat(logpath, &after), 0);
	assert_int_equal(after.st_size, before.st_size);
}

/*
 * A last record whose epoch is not below its seq cannot be one the broker
 * wrote (every epoch opens with a record of its own): continuing after it
 * would take a forged epoch number as the chain's, so the broker refuses to
 * start and leaves the file as it is.
 */
static void test_forged_last_epoch(void **state)
{
	struct audit *a = open_log(NULL, NULL, 0);
	struct lines ls;
	char line[1024];
	const char *at;
	size_t head;
	int n;

	(void)state;
	append_get(a, "a");
	assert_int_equal(audit_close(a), 0);
	read_lines(logpath, &ls);
	at = strstr(ls.l[ls.n - 1], "\"epoch\":");
	assert_non_null(at);
	head = (size_t)(at - ls.l[ls.n - 1]);
	at = strchr(at, ',');
	assert_non_null(at);
	/* the same record, its epoch set to 99 (its seq is 4) */
	n = snprintf(line, sizeof(line), "%.*s\"epoch\":99%s\n", (int)head, ls.l[ls.n - 1], at);
	assert_true(n > 0 && (size_t)n < sizeof(line));
	lines_free(&ls);
	append_raw(line, (size_t)n);
	assert_refused_unchanged("the last record's epoch is impossible");
}

/*
 * A refusal changes nothing: a log whose last complete line is no record,
 * followed by a partial line, is refused with the partial line still there
 * (it is the operator's evidence, and cutting it would hide what was
 * appended); and so is a partial line longer than any record the broker can
 * write, which no crash mid-write can leave.
 */
static void test_refused_tail_left_alone(void **state)
{
	struct audit *a = open_log(NULL, NULL, 0);
	char *torn = malloc(AUDIT_RECORD_MAX);
	struct lines ls;
	struct stat st;
	off_t before_torn;

	(void)state;
	assert_non_null(torn);
	append_get(a, "a");
	assert_int_equal(audit_close(a), 0);
	append_raw("hello\n{\"ts\":\"2026-", 18);
	assert_refused_unchanged("not an audit record");

	/* the same with a record last: only an overlong partial line is refused */
	unlink(logpath);
	a = open_log(NULL, NULL, 0);
	append_get(a, "a");
	assert_int_equal(audit_close(a), 0);
	assert_int_equal(stat(logpath, &st), 0);
	before_torn = st.st_size;
	memset(torn, 'x', AUDIT_RECORD_MAX);
	append_raw(torn, AUDIT_RECORD_MAX);
	assert_refused_unchanged("longer than any record");

	/* one byte less could be a torn record: cut and counted */
	assert_int_equal(truncate(logpath, before_torn), 0);
	append_raw(torn, AUDIT_RECORD_MAX - 1);
	a = open_log(NULL, NULL, 0);
	assert_int_equal(audit_close(a), 0);
	read_lines(logpath, &ls);
	assert_int_equal(num_field(ls.l[ls.n - 2], "torn_bytes"), AUDIT_RECORD_MAX - 1);
	lines_free(&ls);
	assert_verifies((const char *const[]){ logpath }, 1);
	free(torn);
}

/* ---- degraded: a full disk --------------------------------------------------------- */

static void test_full_disk(void **state)
{
	char mnt[128], fill[200], buf[1024];
	struct audit *a;
	struct lines ls;
	int fd, rc = 0, i;
	uint64_t seq_before;

	(void)state;
	if (geteuid() != 0)
		skip();
	snprintf(mnt, sizeof(mnt), "%s/mnt", dir);
	assert_int_equal(mkdir(mnt, 0700), 0);
	if (mount("tmpfs", mnt, "tmpfs", 0, "size=64k") != 0)
		skip();
	snprintf(logpath, sizeof(logpath), "%s/audit.log", mnt);
	snprintf(fill, sizeof(fill), "%s/fill", mnt);

	a = open_log(NULL, NULL, 0);
	append_get(a, "before");
	fd = open(fill, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	memset(buf, 'f', sizeof(buf));
	while (write(fd, buf, sizeof(buf)) > 0)
		;
	close(fd);
	for (i = 0; i < 1000 && rc == 0; i++)
		rc = append_ev(a, "get", "app/db/password", 3, "allow", 4, NULL, -1);
	assert_int_equal(rc, -ENOSPC);
	assert_false(audit_healthy(a));
	assert_non_null(strstr(audit_problem(a), "No space left on device"));
	seq_before = audit_last_seq(a);
	/* no hang, no write, no seq while degraded */
	assert_int_equal(append_ev(a, "get", "x", -1, "allow", 1, NULL, -1), -EIO);
	assert_int_equal(audit_last_seq(a), seq_before);

	assert_int_equal(unlink(fill), 0);
	assert_int_equal(audit_recover(a), 0);
	assert_true(audit_healthy(a));
	append_get(a, "after");
	assert_int_equal(audit_close(a), 0);

	read_lines(logpath, &ls);
	assert_true(ls.last_complete);
	assert_non_null(strstr(ls.l[ls.n - 3], "\"op\":\"degraded\""));
	assert_non_null(strstr(ls.l[ls.n - 3], "No space left on device"));
	assert_true(num_field(ls.l[ls.n - 3], "degraded_us") >= 0);
	assert_int_equal(num_field(ls.l[ls.n - 3], "seq"), (long long)seq_before + 1);
	assert_int_equal(num_field(ls.l[ls.n - 3], "refused"), 2);
	lines_free(&ls);
	assert_verifies((const char *const[]){ logpath }, 1);
	assert_int_equal(umount(mnt), 0);
}


static int queue_ev(struct audit *a, const char *name)
{
	struct audit_event ev = {
		.op = "get", .name = name, .name_len = strlen(name), .version = 1,
		.decision = "allow", .rule = 1, .who = &who, .count = -1,
	};
	return audit_queue(a, &ev);
}

/* Queued records are sealed at once, written together, in chain order. */
static void test_queue_then_flush(void **state)
{
	struct audit_options opt = { AUDIT_SYNC_BATCH, 7, 60 };
	struct audit *a = open_log(&opt, NULL, 0);
	struct lines ls;
	char name[16];

	(void)state;
	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "q%d", i);
		assert_int_equal(queue_ev(a, name), 0);
		if (i % 6 == 5)
			assert_int_equal(audit_flush(a), 0);
	}
	assert_true(audit_pending(a));
	/* a direct record after queued ones keeps the order */
	append_get(a, "direct");
	assert_false(audit_pending(a));
	assert_int_equal(audit_flush(a), 0);
	assert_int_equal(audit_close(a), 0);
	read_lines(logpath, &ls);
	for (size_t i = 0; i < ls.n; i++)
		assert_int_equal(num_field(ls.l[i], "seq"), (long long)i + 1);
	assert_non_null(strstr(ls.l[ls.n - 2], "\"name\":\"direct\""));
	lines_free(&ls);
	assert_verifies((const char *const[]){ logpath }, 1);
}

/* A failed flush forgets the queued records: seq and chain go back. */
static void test_queue_lost_on_failure(void **state)
{
	struct audit *a = open_log(NULL, NULL, 0);
	uint64_t seq, drops;
	struct lines ls;

	(void)state;
	append_get(a, "kept");
	seq = audit_last_seq(a);
	drops = audit_drops(a);
	assert_int_equal(queue_ev(a, "lost1"), 0);
	assert_int_equal(queue_ev(a, "lost2"), 0);
	assert_int_equal(audit_last_seq(a), seq + 2);
	assert_int_equal(unlink(logpath), 0);
	removal_told(a);
	assert_int_not_equal(audit_flush(a), 0);
	assert_false(audit_healthy(a));
	assert_int_equal(audit_last_seq(a), seq);
	assert_int_equal(audit_drops(a), drops + 1);
	assert_int_equal(audit_recover(a), 0);
	append_get(a, "after");
	assert_int_equal(audit_close(a), 0);
	read_lines(logpath, &ls);
	for (size_t i = 0; i < ls.n; i++)
		assert_null(strstr(ls.l[i], "lost"));
	assert_int_equal(num_field(ls.l[0], "seq"), (long long)seq + 1);
	lines_free(&ls);
	assert_verifies((const char *const[]){ logpath }, 1);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_record_fields),
		T(test_escaping_and_bounds),
		T(test_every_byte_escaped),
		T(test_escape_every_lane),
		T(test_deep_cgroups_told_apart),
		T(test_unit_and_revision),
		T(test_bad_arguments),
		T(test_file_mode_and_symlink),
		T(test_restart_continues),
		T(test_rotation),
		T(test_tick_notices_rename_and_removal),
		T(test_removed_file_degrades),
		T(test_removed_file_degrades_unwatched),
		T(test_links_without_inotify),
		T(test_ratchet_by_records),
		T(test_ratchet_by_time),
		T(test_sync_and_checkpoint),
		T(test_stop_then_checkpoint_then_new_file),
		T(test_open_after_cut_keeps_gap_visible),
		T(test_tamper_edit),
		T(test_tamper_delete),
		T(test_tamper_delete_first),
		T(test_tamper_forged_file_start),
		T(test_tamper_file_start_with_current_key),
		T(test_file_start_without_prev),
		T(test_tamper_delete_last),
		T(test_tamper_insert_copy),
		T(test_tamper_swap),
		T(test_tamper_seq_renumbered),
		T(test_tamper_resealed_with_later_key),
		T(test_tamper_wrong_key),
		T(test_torn_last_line),
		T(test_forged_last_epoch),
		T(test_refused_tail_left_alone),
		T(test_full_disk),
		T(test_queue_then_flush),
		T(test_queue_lost_on_failure),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
