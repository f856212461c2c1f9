/*
 * Building and parsing one audit record.
 *
 * A record is a flat JSON object on one line.  The fields come in one
 * order, given by the table below, which also holds each string's bound
 * (in escaped bytes, the "..." marker included); "chain" is always last
 * and is not part of the body that the MAC covers.
 */
#include "audit_record.h"

#include "cgroup.h" /* CGROUP_PATH_MAX: only the constant */

#include <string.h>

/* (broker/limits.h shadows <limits.h>: the bounds come from <stdint.h>) */
_Static_assert(sizeof(long long) == 8 && sizeof(unsigned) == 4, "integer sizes");

#define TRUNC_MARK "..."
#define TRUNC_MARK_LEN (sizeof(TRUNC_MARK) - 1)
#define CHAIN_PREFIX ",\"chain\":\""
#define CHAIN_PREFIX_LEN (sizeof(CHAIN_PREFIX) - 1)
#define CHAIN_SUFFIX_LEN (CHAIN_PREFIX_LEN + 2 * AUDIT_CHAIN_LEN + 2) /* ...hex"} */

_Static_assert(CHAIN_SUFFIX_LEN + 1 == AUDIT_RECORD_SUFFIX_LEN, "suffix length");

#define CGROUP_MAX_OUT (6 * (CGROUP_PATH_MAX - 1)) /* every byte as \u00XX */

_Static_assert(AUDIT_WHO_MAX >= CGROUP_MAX_OUT + 3 * 40 + 2 * 17 + CONTAINER_ID_LEN + POD_UID_LEN,
	       "the identity's fields fit");

/* A record with every field at its bound still fits, chain and newline included. */
_Static_assert(CGROUP_MAX_OUT + 39 + 32 + 512 + 16 + 64 + 36 + 3 * 256 + 256 + 3 + 64 +
	       12 * 20 + 600 + AUDIT_RECORD_SUFFIX_LEN < AUDIT_RECORD_MAX, "record bound");

enum field_id {
	F_TS, F_SEQ, F_OP, F_NAME, F_VERSION, F_DECISION, F_RULE, F_UID, F_GID, F_PID,
	F_CGROUP, F_CONTAINER, F_POD, F_UNIT, F_ERROR, F_COUNT, F_REVISION, F_DEGRADED_US,
	F_REFUSED, F_TORN_BYTES, F_NOTE, F_FILE, F_PREV, F_EPOCH, F_COUNT_OF_FIELDS
};

struct field_spec {
	const char *key;
	size_t klen;
	const char *lead; /* ,"key": as written before the value */
	bool str;      /* a JSON string (else a number) */
	bool required;
	size_t max;    /* strings: bound of the escaped value */
};

#define K(key) key, sizeof(key) - 1, ",\"" key "\":"
static const struct field_spec fields[F_COUNT_OF_FIELDS] = {
	[F_TS] = { K("ts"), true, true, AUDIT_TS_MAX - 1 },
	[F_SEQ] = { K("seq"), false, true, 0 },
	[F_OP] = { K("op"), true, true, 32 },
	[F_NAME] = { K("name"), true, false, 512 },
	[F_VERSION] = { K("version"), false, false, 0 },
	[F_DECISION] = { K("decision"), true, true, 16 },
	[F_RULE] = { K("rule"), false, true, 0 },
	[F_UID] = { K("uid"), false, true, 0 },
	[F_GID] = { K("gid"), false, true, 0 },
	[F_PID] = { K("pid"), false, true, 0 },
	/* the whole path, so that two deep cgroups never look alike */
	[F_CGROUP] = { K("cgroup"), true, true, CGROUP_MAX_OUT },
	[F_CONTAINER] = { K("container"), true, true, CONTAINER_ID_LEN },
	[F_POD] = { K("pod"), true, true, POD_UID_LEN },
	[F_UNIT] = { K("unit"), true, false, 256 },
	[F_ERROR] = { K("error"), true, false, 256 },
	[F_COUNT] = { K("count"), false, false, 0 },
	[F_REVISION] = { K("revision"), false, false, 0 },
	[F_DEGRADED_US] = { K("degraded_us"), false, false, 0 },
	[F_REFUSED] = { K("refused"), false, false, 0 },
	[F_TORN_BYTES] = { K("torn_bytes"), false, false, 0 },
	[F_NOTE] = { K("note"), true, false, 256 },
	[F_FILE] = { K("file"), true, false, 3 },
	[F_PREV] = { K("prev"), true, false, 2 * AUDIT_CHAIN_LEN },
	[F_EPOCH] = { K("epoch"), false, true, 0 },
};
#undef K

/* ---- building ---------------------------------------------------------------- */

struct builder {
	char *p;
	size_t len, cap;
	bool overflow;
};

static void b_raw(struct builder *b, const char *s, size_t n)
{
	if (b->overflow || n > b->cap - b->len) {
		b->overflow = true;
		return;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

static void b_char(struct builder *b, char c)
{
	if (b->overflow || b->len == b->cap) {
		b->overflow = true;
		return;
	}
	b->p[b->len++] = c;
}

/* ,"key": (or {"key": for the first). */
static void b_key(struct builder *b, enum field_id f)
{
	size_t n = fields[f].klen + 4;

	if (b->overflow || n > b->cap - b->len) {
		b->overflow = true;
		return;
	}
	memcpy(b->p + b->len, fields[f].lead, n);
	if (f == F_TS)
		b->p[b->len] = '{';
	b->len += n;
}

/*
 * The bytes written as themselves: printable ASCII, 0x20-0x7e, less '"'
 * (0x22) and '\\' (0x5c); a bit each, so that a scan costs a lookup a byte.
 */
static const uint64_t plain_bytes[4] = {
	0xffffffff00000000ULL & ~(1ULL << 0x22),
	0x7fffffffffffffffULL & ~(1ULL << (0x5c - 64)),
	0,
	0,
};

static bool is_plain(unsigned char c)
{
	return (plain_bytes[c >> 6] >> (c & 63)) & 1;
}

#define LANES(b) (0x0101010101010101ULL * (b))

/*
 * True when no byte of the 8 at p needs escaping (the usual case: a path or a
 * name has none), checked a word at a time: no byte at or above 0x80, none
 * below 0x20, none equal to 0x7f, '"' or '\\'.  Each test is the exact "some
 * byte is zero" test, (v - 0x01..) & ~v & 0x80.., on a word whose bytes are
 * all below 0x80, so that no byte borrows into its neighbour's answer.
 */
static bool plain_word(const unsigned char *p)
{
	uint64_t x, hi = LANES(0x80);

	memcpy(&x, p, sizeof(x));
	if ((x & hi) != 0)
		return false;
	return ((((x - LANES(0x20)) & ~x) |
		 (((x ^ LANES(0x7f)) - LANES(1)) & ~(x ^ LANES(0x7f))) |
		 (((x ^ LANES(0x22)) - LANES(1)) & ~(x ^ LANES(0x22))) |
		 (((x ^ LANES(0x5c)) - LANES(1)) & ~(x ^ LANES(0x5c)))) &
		hi) == 0;
}

/* The length of s's first run of bytes that need no escaping. */
static size_t plain_run(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (n - i >= 8 && plain_word(s + i))
		i += 8;
	while (i < n && is_plain(s[i]))
		i++;
	return i;
}

/* Bytes one input byte takes once escaped. */
static size_t esc_width(unsigned char c)
{
	if (is_plain(c))
		return 1;
	return c == '"' || c == '\\' ? 2 : 6;
}

static void b_esc(struct builder *b, unsigned char c)
{
	static const char hex[] = "0123456789abcdef";
	char u[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };

	if (is_plain(c)) {
		char ch = (char)c;
		b_raw(b, &ch, 1);
	} else if (c == '"' || c == '\\') {
		char e[2] = { '\\', (char)c };
		b_raw(b, e, 2);
	} else {
		b_raw(b, u, sizeof(u));
	}
}

/*
 * A string field, escaped: everything outside printable ASCII as \u00XX
 * (the cgroup path is chosen by whoever made the container).  When the
 * escaped form would exceed the field's bound it is cut and marked "...".
 */
static void b_str(struct builder *b, enum field_id f, const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t max = fields[f].max, total = 0, out = 0, i;

	b_key(b, f);
	b_char(b, '"');
	/* The usual case: nothing to escape (the first byte that needs it ends the scan). */
	i = plain_run(u, n);
	total = i;
	if (i == n && n <= max) {
		b_raw(b, s, n);
		b_char(b, '"');
		return;
	}
	for (; i < n; i++)
		total += esc_width(u[i]);
	if (total <= max) {
		for (i = 0; i < n; i++)
			b_esc(b, u[i]);
	} else {
		for (i = 0; i < n && out + esc_width(u[i]) <= max - TRUNC_MARK_LEN; i++) {
			out += esc_width(u[i]);
			b_esc(b, u[i]);
		}
		b_raw(b, TRUNC_MARK, TRUNC_MARK_LEN);
	}
	b_char(b, '"');
}

static void b_cstr(struct builder *b, enum field_id f, const char *s)
{
	b_str(b, f, s != NULL ? s : "", s != NULL ? strlen(s) : 0);
}

/* v in decimal, as printf's %llu writes it, ending at end; its start. */
static char *decimal(char *end, unsigned long long v)
{
	do {
		*--end = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	return end;
}

static void b_unum(struct builder *b, enum field_id f, unsigned long long v)
{
	char num[24], *p = decimal(num + sizeof(num), v);

	b_key(b, f);
	b_raw(b, p, (size_t)(num + sizeof(num) - p));
}

static void b_num(struct builder *b, enum field_id f, long long v)
{
	/* The magnitude of LLONG_MIN too, computed unsigned. */
	unsigned long long m = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
	char num[24], *p = decimal(num + sizeof(num), m);

	if (v < 0)
		*--p = '-';
	b_key(b, f);
	b_raw(b, p, (size_t)(num + sizeof(num) - p));
}

/* Every byte's two hex digits, so that a chain costs one copy a byte. */
#define HEX_ROW(h)                                                                   \
	h "0" h "1" h "2" h "3" h "4" h "5" h "6" h "7" h "8" h "9" h "a" h "b" h "c" h "d" \
	h "e" h "f"
static const char hex_pairs[] = HEX_ROW("0") HEX_ROW("1") HEX_ROW("2") HEX_ROW("3")
	HEX_ROW("4") HEX_ROW("5") HEX_ROW("6") HEX_ROW("7") HEX_ROW("8") HEX_ROW("9")
	HEX_ROW("a") HEX_ROW("b") HEX_ROW("c") HEX_ROW("d") HEX_ROW("e") HEX_ROW("f");
#undef HEX_ROW
_Static_assert(sizeof(hex_pairs) == 2 * 256 + 1, "two digits for each byte value");

static void hex_encode(const uint8_t *in, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		memcpy(out + 2 * i, hex_pairs + 2 * in[i], 2);
}

static void b_who(struct builder *b, const struct identity *who)
{
	b_unum(b, F_UID, who->uid);
	b_unum(b, F_GID, who->gid);
	b_num(b, F_PID, who->pid);
	b_cstr(b, F_CGROUP, who->cgroup);
	b_cstr(b, F_CONTAINER, who->container);
	b_cstr(b, F_POD, who->pod);
}

size_t audit_record_who(const struct identity *who, char *out, size_t cap)
{
	struct builder b = { .p = out, .cap = cap };

	b_who(&b, who);
	return b.overflow ? 0 : b.len;
}

size_t audit_record_body(const struct audit_event *ev, char *out, size_t cap)
{
	char prev[2 * AUDIT_CHAIN_LEN];

	const struct identity *who = ev->who;
	struct builder b = { .p = out, .cap = cap };

	if (ev->op == NULL || ev->decision == NULL || who == NULL || ev->ts == NULL ||
	    cap > AUDIT_RECORD_MAX - AUDIT_RECORD_SUFFIX_LEN)
		return 0;
	b_cstr(&b, F_TS, ev->ts);
	b_unum(&b, F_SEQ, ev->seq);
	b_cstr(&b, F_OP, ev->op);
	if (ev->name != NULL)
		b_str(&b, F_NAME, ev->name, ev->name_len);
	if (ev->version >= 0)
		b_num(&b, F_VERSION, ev->version);
	b_cstr(&b, F_DECISION, ev->decision);
	b_unum(&b, F_RULE, ev->rule);
	if (ev->who_json != NULL)
		b_raw(&b, ev->who_json, ev->who_json_len);
	else
		b_who(&b, who);
	if (ev->unit != NULL)
		b_cstr(&b, F_UNIT, ev->unit);
	if (ev->error != NULL)
		b_cstr(&b, F_ERROR, ev->error);
	if (ev->count >= 0)
		b_num(&b, F_COUNT, ev->count);
	if (ev->revision > 0)
		b_num(&b, F_REVISION, ev->revision);
	if (ev->degraded) {
		b_num(&b, F_DEGRADED_US, ev->degraded_us);
		b_num(&b, F_REFUSED, ev->refused);
	}
	if (ev->torn_bytes > 0)
		b_num(&b, F_TORN_BYTES, ev->torn_bytes);
	if (ev->note != NULL)
		b_cstr(&b, F_NOTE, ev->note);
	if (ev->file_start)
		b_cstr(&b, F_FILE, "new");
	if (ev->file_start && ev->has_prev) {
		hex_encode(ev->prev, AUDIT_CHAIN_LEN, prev);
		b_str(&b, F_PREV, prev, sizeof(prev));
	}
	b_unum(&b, F_EPOCH, ev->epoch);
	return b.overflow ? 0 : b.len;
}

size_t audit_record_seal(char *buf, size_t body_len, const uint8_t chain[AUDIT_CHAIN_LEN])
{
	char *p = buf + body_len;

	memcpy(p, CHAIN_PREFIX, CHAIN_PREFIX_LEN);
	p += CHAIN_PREFIX_LEN;
	hex_encode(chain, AUDIT_CHAIN_LEN, p);
	p += 2 * AUDIT_CHAIN_LEN;
	memcpy(p, "\"}\n", 3);
	return body_len + AUDIT_RECORD_SUFFIX_LEN;
}

/* ---- parsing ------------------------------------------------------------------- */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1; /* upper case is not what the builder writes */
}

struct cursor {
	const char *p;
	size_t i, n;
	char *text;   /* where decoded strings go */
	size_t used;
};

/*
 * A JSON string in the builder's escaping, decoded into c->text and
 * terminated there; *s and *len describe the decoded bytes, *raw_len the
 * escaped ones.
 */
static bool p_string(struct cursor *c, const char **s, size_t *len, size_t *raw_len)
{
	char *out = c->text + c->used;
	size_t start, n = 0;

	if (c->i >= c->n || c->p[c->i] != '"')
		return false;
	start = ++c->i;
	while (c->i < c->n && c->p[c->i] != '"') {
		unsigned char ch = (unsigned char)c->p[c->i];

		if (ch == '\\') {
			int hi, lo;

			if (c->i + 1 < c->n && (c->p[c->i + 1] == '"' || c->p[c->i + 1] == '\\')) {
				out[n++] = c->p[c->i + 1];
				c->i += 2;
				continue;
			}
			if (c->i + 6 > c->n || c->p[c->i + 1] != 'u' || c->p[c->i + 2] != '0' ||
			    c->p[c->i + 3] != '0' || (hi = hexval(c->p[c->i + 4])) < 0 ||
			    (lo = hexval(c->p[c->i + 5])) < 0)
				return false;
			ch = (unsigned char)(hi << 4 | lo);
			if (esc_width(ch) != 6)
				return false; /* the builder writes that byte as itself */
			out[n++] = (char)ch;
			c->i += 6;
			continue;
		}
		if (esc_width(ch) != 1)
			return false;
		out[n++] = (char)ch;
		c->i++;
	}
	if (c->i >= c->n)
		return false;
	*raw_len = c->i - start;
	c->i++;
	out[n] = '\0';
	c->used += n + 1;
	*s = out;
	*len = n;
	return true;
}

/* An integer as printf writes it: an optional '-', no leading zeros. */
static bool p_number(struct cursor *c, bool *neg, uint64_t *v)
{
	size_t start;

	*neg = false;
	*v = 0;
	if (c->i < c->n && c->p[c->i] == '-') {
		*neg = true;
		c->i++;
	}
	start = c->i;
	while (c->i < c->n && c->p[c->i] >= '0' && c->p[c->i] <= '9') {
		uint64_t d = (uint64_t)(c->p[c->i] - '0');

		if (*v > (UINT64_MAX - d) / 10)
			return false;
		*v = *v * 10 + d;
		c->i++;
	}
	if (c->i == start || (c->i - start > 1 && c->p[start] == '0') || (*neg && *v == 0))
		return false;
	return true;
}

static bool parse_chain_hex(const char *p, uint8_t out[AUDIT_CHAIN_LEN])
{
	for (size_t i = 0; i < AUDIT_CHAIN_LEN; i++) {
		int hi = hexval(p[2 * i]), lo = hexval(p[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return false;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}

/* The field named by the key at the cursor, at or after *next in the table order. */
static bool p_key(struct cursor *c, enum field_id *next, enum field_id *f)
{
	const char *k = c->p + c->i + 1;
	const char *end;
	size_t klen;

	if (c->i >= c->n || c->p[c->i] != '"')
		return false;
	end = memchr(k, '"', c->n - c->i - 1);
	if (end == NULL)
		return false;
	klen = (size_t)(end - k);
	for (enum field_id i = *next; i < F_COUNT_OF_FIELDS; i++) {
		if (fields[i].klen == klen && memcmp(fields[i].key, k, klen) == 0) {
			*f = i;
			*next = i + 1;
			c->i += klen + 2;
			return c->i < c->n && c->p[c->i++] == ':';
		}
		if (fields[i].required)
			return false; /* a required field is missing, or the order is wrong */
	}
	return false;
}

static bool set_signed(long long *dst, bool neg, uint64_t v, long long min)
{
	long long x;

	if (v > (uint64_t)INT64_MAX)
		return false;
	x = neg ? -(long long)v : (long long)v;
	if (x < min)
		return false;
	*dst = x;
	return true;
}

/* A string field's decoded value into the event. */
static bool set_string(struct audit_parsed *out, enum field_id f, const char *s, size_t len)
{
	struct audit_event *ev = &out->ev;

	if (f != F_NAME && memchr(s, '\0', len) != NULL)
		return false; /* only a name is kept with its length */
	switch (f) {
	case F_TS: ev->ts = s; return true;
	case F_OP: ev->op = s; return true;
	case F_NAME: ev->name = s; ev->name_len = len; return true;
	case F_DECISION: ev->decision = s; return true;
	case F_CGROUP: out->who.cgroup = (char *)(uintptr_t)s; return true;
	case F_CONTAINER: memcpy(out->who.container, s, len + 1); return true;
	case F_POD: memcpy(out->who.pod, s, len + 1); return true;
	case F_UNIT: ev->unit = s; return true;
	case F_ERROR: ev->error = s; return true;
	case F_NOTE: ev->note = s; return true;
	case F_FILE: ev->file_start = true; return len == 3 && memcmp(s, "new", 3) == 0;
	case F_PREV:
		ev->has_prev = true;
		return ev->file_start && len == 2 * AUDIT_CHAIN_LEN && parse_chain_hex(s, ev->prev);
	default: return false;
	}
}

/* A number field's value into the event, within what the builder writes. */
static bool set_number(struct audit_parsed *out, enum field_id f, bool neg, uint64_t v)
{
	struct audit_event *ev = &out->ev;
	long long x;

	if (neg && f != F_PID && f != F_DEGRADED_US && f != F_REFUSED)
		return false;
	switch (f) {
	case F_SEQ: ev->seq = v; return v > 0;
	case F_EPOCH: ev->epoch = v; return true;
	case F_VERSION: return set_signed(&ev->version, neg, v, 0);
	case F_COUNT: return set_signed(&ev->count, neg, v, 0);
	case F_REVISION: return set_signed(&ev->revision, neg, v, 1);
	case F_TORN_BYTES: return set_signed(&ev->torn_bytes, neg, v, 1);
	case F_DEGRADED_US:
		ev->degraded = true;
		return set_signed(&ev->degraded_us, neg, v, INT64_MIN);
	case F_REFUSED: return set_signed(&ev->refused, neg, v, INT64_MIN);
	case F_RULE:
		ev->rule = (unsigned)v;
		return v <= UINT32_MAX;
	case F_UID:
		out->who.uid = (uid_t)v;
		return v <= UINT32_MAX;
	case F_GID:
		out->who.gid = (gid_t)v;
		return v <= UINT32_MAX;
	case F_PID:
		if (!set_signed(&x, neg, v, INT32_MIN) || x > INT32_MAX)
			return false;
		out->who.pid = (pid_t)x;
		return true;
	default: return false;
	}
}

bool audit_record_parse(const char *line, size_t len, struct audit_parsed *out)
{
	struct cursor c = { .p = line, .i = 1, .text = out->text };
	enum field_id next = F_TS;
	bool refused = false;
	const char *sfx;

	memset(&out->ev, 0, sizeof(out->ev));
	memset(&out->who, 0, sizeof(out->who));
	out->ev.who = &out->who;
	out->ev.version = out->ev.count = -1;
	if (len + 1 > AUDIT_RECORD_MAX || len < CHAIN_SUFFIX_LEN + 2 || line[0] != '{')
		return false;
	sfx = line + len - CHAIN_SUFFIX_LEN;
	if (memcmp(sfx, CHAIN_PREFIX, CHAIN_PREFIX_LEN) != 0 ||
	    !parse_chain_hex(sfx + CHAIN_PREFIX_LEN, out->ev.chain) ||
	    memcmp(sfx + CHAIN_PREFIX_LEN + 2 * AUDIT_CHAIN_LEN, "\"}", 2) != 0)
		return false;
	out->body_len = (size_t)(sfx - line);
	c.n = out->body_len;
	while (c.i < c.n) {
		enum field_id f;

		if (next != F_TS && (c.p[c.i++] != ',' || c.i >= c.n))
			return false;
		if (!p_key(&c, &next, &f) || c.i >= c.n)
			return false;
		if (fields[f].str) {
			const char *s;
			size_t slen, raw;

			if (!p_string(&c, &s, &slen, &raw) || raw > fields[f].max ||
			    !set_string(out, f, s, slen))
				return false;
		} else {
			bool neg;
			uint64_t v;

			if (!p_number(&c, &neg, &v) || !set_number(out, f, neg, v))
				return false;
			refused |= f == F_REFUSED;
		}
	}
	/* every required field up to the last, "epoch"; a degraded record has both counts */
	return next == F_COUNT_OF_FIELDS && out->ev.degraded == refused;
}

bool audit_record_opens_epoch(const struct audit_event *ev)
{
	return ev->op != NULL && (strcmp(ev->op, "start") == 0 || strcmp(ev->op, "epoch") == 0);
}
