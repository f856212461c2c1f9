/*
 * The secretd wire codec (proto/PROTOCOL.md is the specification).
 *
 * Decoders read untrusted bytes through a cursor that checks every field
 * against the bytes that remain before touching it; limits are checked
 * before bounds so that an absurd length is reported as too big rather than
 * merely truncated.  Encoders first validate the whole message and compute
 * its exact size, then write it in one pass that cannot overrun.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "secretd/wire.h"

/* Codec-level bound on a name or glob; the broker applies name_valid(). */
#define WIRE_MAX_NAME 1024u
/* The largest string a str16 can carry. */
#define STR16_MAX 0xffffu

/* ---- decoding ---------------------------------------------------------- */

struct reader {
	const uint8_t *p;
	size_t left;
};

static uint32_t load32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
	       (uint32_t)p[3];
}

static int read_u8(struct reader *r, uint8_t *v)
{
	if (r->left < 1)
		return WIRE_E_TRUNCATED;
	*v = r->p[0];
	r->p += 1;
	r->left -= 1;
	return 0;
}

static int read_u32(struct reader *r, uint32_t *v)
{
	if (r->left < 4)
		return WIRE_E_TRUNCATED;
	*v = load32(r->p);
	r->p += 4;
	r->left -= 4;
	return 0;
}

static int read_bytes(struct reader *r, size_t len, struct wire_str *s)
{
	if (len > r->left)
		return WIRE_E_TRUNCATED;
	s->ptr = r->p;
	s->len = len;
	r->p += len;
	r->left -= len;
	return 0;
}

/* A str16 of at most max bytes. */
static int read_str16(struct reader *r, size_t max, struct wire_str *s)
{
	size_t len;

	if (r->left < 2)
		return WIRE_E_TRUNCATED;
	len = (size_t)r->p[0] << 8 | r->p[1];
	if (len > max)
		return WIRE_E_TOOBIG;
	r->p += 2;
	r->left -= 2;
	return read_bytes(r, len, s);
}

/* A blob32 of at most max bytes. */
static int read_blob32(struct reader *r, size_t max, struct wire_str *s)
{
	uint32_t len;

	if (r->left < 4)
		return WIRE_E_TRUNCATED;
	len = load32(r->p);
	if (len > max)
		return WIRE_E_TOOBIG;
	r->p += 4;
	r->left -= 4;
	return read_bytes(r, len, s);
}

/* Types a client may send; a response may also be an EVENT. */
static bool request_type_known(uint8_t type)
{
	return (type >= WIRE_PING && type <= WIRE_WATCH) || type == WIRE_STATUS;
}

static bool response_type_known(uint8_t type)
{
	return type >= WIRE_PING && type <= WIRE_STATUS;
}

uint8_t wire_type_version(uint8_t type)
{
	if (type >= WIRE_PING && type <= WIRE_WHOAMI)
		return 1;
	if (type == WIRE_WATCH || type == WIRE_EVENT)
		return 2;
	if (type == WIRE_STATUS)
		return 3;
	return 0;
}

/* The bytes of a name, and for a pattern also '*'. */
static bool name_byte(uint8_t ch, bool star)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-' ||
	       ch == '/' || (star && ch == '*');
}

/*
 * A WATCH pattern, or a name in a WATCH answer or an EVENT: 1..255 bytes of
 * the name alphabet (so a client can print it as one line).  The finer
 * rules (segments, name_valid, the glob syntax) are the broker's to apply.
 */
static int check_word(const struct wire_str *s, bool star)
{
	if (s->len > WIRE_MAX_PATTERN)
		return WIRE_E_TOOBIG;
	if (s->len == 0)
		return WIRE_E_FIELD;
	if (s->ptr == NULL)
		return WIRE_E_TRUNCATED;
	for (size_t i = 0; i < s->len; i++) {
		if (!name_byte(s->ptr[i], star))
			return WIRE_E_FIELD;
	}
	return 0;
}

static bool status_known(uint8_t status)
{
	switch (status) {
	case WIRE_OK:
	case WIRE_ERROR:
	case WIRE_INVALID:
	case WIRE_NOT_FOUND:
	case WIRE_DENIED:
	case WIRE_UNAVAILABLE:
	case WIRE_RATE_LIMITED:
		return true;
	default:
		return false;
	}
}

/* The common start of every body: version, then a type byte. */
static int read_head(struct reader *r, uint8_t *version, uint8_t *type)
{
	int rc;

	if (r->left == 0)
		return WIRE_E_EMPTY;
	if ((rc = read_u8(r, version)) != 0)
		return rc;
	return read_u8(r, type);
}

static int read_u16(struct reader *r, uint16_t *v)
{
	if (r->left < 2)
		return WIRE_E_TRUNCATED;
	*v = (uint16_t)(r->p[0] << 8 | r->p[1]);
	r->p += 2;
	r->left -= 2;
	return 0;
}

/* A pattern or event name: a str16 that check_word accepts. */
static int read_word(struct reader *r, bool star, struct wire_str *s)
{
	int rc;

	if ((rc = read_str16(r, WIRE_MAX_PATTERN, s)) != 0)
		return rc;
	return check_word(s, star);
}

/*
 * WATCH request: u16 n (1..64), then n patterns of at least 3 bytes each,
 * so a count the body cannot hold is refused before the walk.
 */
static int read_patterns(struct reader *r, struct wire_request *req)
{
	const uint8_t *start;
	uint16_t n;
	struct wire_str s;
	int rc;

	if ((rc = read_u16(r, &n)) != 0)
		return rc;
	if (n > WIRE_MAX_PATTERNS)
		return WIRE_E_TOOBIG;
	if (n == 0)
		return WIRE_E_FIELD;
	if (n > r->left / 3)
		return WIRE_E_TRUNCATED;
	start = r->p;
	for (uint16_t i = 0; i < n; i++) {
		if ((rc = read_word(r, true, &s)) != 0)
			return rc;
	}
	req->items_raw.ptr = start;
	req->items_raw.len = (size_t)(r->p - start);
	req->nitems = n;
	return 0;
}

static int request_fields(struct reader *r, struct wire_request *req)
{
	int rc = 0;

	switch (req->type) {
	case WIRE_PING:
	case WIRE_WHOAMI:
	case WIRE_STATUS:
		break;
	case WIRE_GET:
		if ((rc = read_str16(r, WIRE_MAX_NAME, &req->name)) == 0)
			rc = read_u32(r, &req->version);
		break;
	case WIRE_PUT:
		if ((rc = read_str16(r, WIRE_MAX_NAME, &req->name)) == 0)
			rc = read_blob32(r, WIRE_MAX_VALUE, &req->value);
		break;
	case WIRE_LIST:
	case WIRE_DELETE:
		rc = read_str16(r, WIRE_MAX_NAME, &req->name);
		break;
	case WIRE_WATCH:
		rc = read_patterns(r, req);
		break;
	default:
		rc = WIRE_E_TYPE;
		break;
	}
	return rc;
}

int wire_decode_request(const uint8_t *body, size_t len, struct wire_request *req)
{
	struct reader r = { body, len };
	uint8_t version;
	int rc;

	memset(req, 0, sizeof(*req));
	if (len > WIRE_MAX_REQUEST)
		return WIRE_E_TOOBIG;
	if ((rc = read_head(&r, &version, &req->type)) != 0)
		return rc;
	if (!request_type_known(req->type))
		return WIRE_E_TYPE;
	if (version != wire_type_version(req->type))
		return WIRE_E_VERSION;
	if ((rc = request_fields(&r, req)) != 0)
		return rc;
	return r.left == 0 ? 0 : WIRE_E_TRAILING;
}

/*
 * u32 n, then n str16 strings; items_raw spans exactly the strings.  Each
 * string takes at least two bytes, so a count the body cannot hold is
 * refused before the walk.
 */
static int read_items(struct reader *r, bool pairs, struct wire_response *resp)
{
	const uint8_t *start;
	uint32_t n;
	struct wire_str s;
	int rc;

	if ((rc = read_u32(r, &n)) != 0)
		return rc;
	if (pairs && n % 2 != 0)
		return WIRE_E_TRUNCATED; /* a key without its value */
	if (n > r->left / 2)
		return WIRE_E_TRUNCATED;
	start = r->p;
	for (uint32_t i = 0; i < n; i++) {
		if ((rc = read_str16(r, STR16_MAX, &s)) != 0)
			return rc;
	}
	resp->items_raw.ptr = start;
	resp->items_raw.len = (size_t)(r->p - start);
	resp->nitems = n;
	return 0;
}

/*
 * WATCH answer: u32 n, then n (str16 name, u32 version), each at least 7
 * bytes; items_raw spans exactly the pairs.
 */
static int read_pairs(struct reader *r, struct wire_response *resp)
{
	const uint8_t *start;
	uint32_t n, version;
	struct wire_str s;
	int rc;

	if ((rc = read_u32(r, &n)) != 0)
		return rc;
	if (n > r->left / 7)
		return WIRE_E_TRUNCATED;
	start = r->p;
	for (uint32_t i = 0; i < n; i++) {
		if ((rc = read_word(r, false, &s)) != 0)
			return rc;
		if ((rc = read_u32(r, &version)) != 0)
			return rc;
	}
	resp->items_raw.ptr = start;
	resp->items_raw.len = (size_t)(r->p - start);
	resp->nitems = n;
	return 0;
}

static int response_fields(struct reader *r, struct wire_response *resp)
{
	int rc = 0;

	if (resp->status != WIRE_OK)
		return read_str16(r, WIRE_MAX_MESSAGE, &resp->value);
	switch (resp->type) {
	case WIRE_PING:
		rc = read_str16(r, STR16_MAX, &resp->value);
		break;
	case WIRE_GET:
		if ((rc = read_u32(r, &resp->version)) == 0)
			rc = read_blob32(r, WIRE_MAX_VALUE, &resp->value);
		break;
	case WIRE_PUT:
	case WIRE_DELETE:
		rc = read_u32(r, &resp->version);
		break;
	case WIRE_LIST:
		rc = read_items(r, false, resp);
		break;
	case WIRE_WHOAMI:
	case WIRE_STATUS:
		rc = read_items(r, true, resp);
		break;
	case WIRE_WATCH:
		rc = read_pairs(r, resp);
		break;
	case WIRE_EVENT:
		if ((rc = read_word(r, false, &resp->name)) == 0)
			rc = read_u32(r, &resp->version);
		break;
	default:
		rc = WIRE_E_TYPE;
		break;
	}
	return rc;
}

int wire_decode_response(const uint8_t *body, size_t len, struct wire_response *resp)
{
	struct reader r = { body, len };
	uint8_t version, type;
	int rc;

	memset(resp, 0, sizeof(*resp));
	if (len > WIRE_MAX_RESPONSE)
		return WIRE_E_TOOBIG;
	if ((rc = read_head(&r, &version, &type)) != 0)
		return rc;
	if (!(type & WIRE_RESPONSE_BIT) || !response_type_known(type & ~WIRE_RESPONSE_BIT))
		return WIRE_E_TYPE;
	resp->type = type & ~WIRE_RESPONSE_BIT;
	if (version != wire_type_version(resp->type))
		return WIRE_E_VERSION;
	if ((rc = read_u8(&r, &resp->status)) != 0)
		return rc;
	if (!status_known(resp->status))
		return WIRE_E_STATUS;
	if ((rc = response_fields(&r, resp)) != 0)
		return rc;
	return r.left == 0 ? 0 : WIRE_E_TRAILING;
}

bool wire_items_next(struct wire_str *cursor, struct wire_str *item)
{
	struct reader r = { cursor->ptr, cursor->len };

	if (cursor->ptr == NULL || read_str16(&r, STR16_MAX, item) != 0)
		return false;
	cursor->ptr = r.p;
	cursor->len = r.left;
	return true;
}

bool wire_pairs_next(struct wire_str *cursor, struct wire_str *name, uint32_t *version)
{
	struct reader r = { cursor->ptr, cursor->len };
	struct wire_str s;
	uint32_t v;

	if (cursor->ptr == NULL || read_str16(&r, WIRE_MAX_EVENT_NAME, &s) != 0 ||
	    read_u32(&r, &v) != 0)
		return false;
	*name = s;
	*version = v;
	cursor->ptr = r.p;
	cursor->len = r.left;
	return true;
}

int wire_frame_length(const uint8_t header[WIRE_HEADER_SIZE], uint32_t max,
		      uint32_t *len)
{
	uint32_t n = load32(header);

	if (n == 0)
		return WIRE_E_EMPTY;
	if (n > max)
		return WIRE_E_TOOBIG;
	*len = n;
	return 0;
}

/* ---- encoding ---------------------------------------------------------- */

/*
 * Sizes are summed only after each part has been checked against its limit,
 * and those limits are far below SIZE_MAX, so no sum here can wrap.
 */

/* Add one length-prefixed part (a 2-byte prefix for str16, 4 for blob32). */
static int part_body(const struct wire_str *s, size_t max, size_t prefix, size_t *size)
{
	if (s->len > max)
		return WIRE_E_TOOBIG;
	if (s->len > 0 && s->ptr == NULL)
		return WIRE_E_TRUNCATED;
	*size += prefix + s->len;
	return 0;
}

static int str_body(const struct wire_str *s, size_t max, size_t *size)
{
	return part_body(s, max, 2, size);
}

static int blob_body(const struct wire_str *s, size_t max, size_t *size)
{
	return part_body(s, max, 4, size);
}

static int patterns_body(const struct wire_request *req, size_t *size)
{
	int rc;

	if (req->nitems > WIRE_MAX_PATTERNS)
		return WIRE_E_TOOBIG;
	if (req->nitems == 0)
		return WIRE_E_FIELD;
	if (req->items == NULL)
		return WIRE_E_TRUNCATED;
	*size += 2;
	for (size_t i = 0; i < req->nitems; i++) {
		if ((rc = check_word(&req->items[i], true)) != 0)
			return rc;
		*size += 2 + req->items[i].len;
	}
	return 0;
}

/* The body size of a request, or a negative wire_err if it cannot be sent. */
static int request_body(const struct wire_request *req, size_t *size)
{
	int rc = 0;

	*size = 2;
	switch (req->type) {
	case WIRE_PING:
	case WIRE_WHOAMI:
	case WIRE_STATUS:
		break;
	case WIRE_GET:
		if ((rc = str_body(&req->name, WIRE_MAX_NAME, size)) == 0)
			*size += 4;
		break;
	case WIRE_PUT:
		if ((rc = str_body(&req->name, WIRE_MAX_NAME, size)) == 0)
			rc = blob_body(&req->value, WIRE_MAX_VALUE, size);
		break;
	case WIRE_LIST:
	case WIRE_DELETE:
		rc = str_body(&req->name, WIRE_MAX_NAME, size);
		break;
	case WIRE_WATCH:
		rc = patterns_body(req, size);
		break;
	default:
		rc = WIRE_E_TYPE;
		break;
	}
	if (rc == 0 && *size > WIRE_MAX_REQUEST)
		rc = WIRE_E_TOOBIG;
	return rc;
}

static int items_body(const struct wire_response *resp, bool pairs, size_t *size)
{
	int rc;

	if (resp->nitems > UINT32_MAX || resp->nitems > WIRE_MAX_RESPONSE / 2)
		return WIRE_E_TOOBIG;
	if (pairs && resp->nitems % 2 != 0)
		return WIRE_E_TRUNCATED;
	if (resp->nitems > 0 && resp->items == NULL)
		return WIRE_E_TRUNCATED;
	*size += 4;
	for (size_t i = 0; i < resp->nitems; i++) {
		if ((rc = str_body(&resp->items[i], STR16_MAX, size)) != 0)
			return rc;
		/* Stop early so that the sum stays bounded. */
		if (*size > WIRE_MAX_RESPONSE)
			return WIRE_E_TOOBIG;
	}
	return 0;
}

static int pairs_body(const struct wire_response *resp, size_t *size)
{
	int rc;

	if (resp->nitems > WIRE_MAX_RESPONSE / 7)
		return WIRE_E_TOOBIG;
	if (resp->nitems > 0 && (resp->items == NULL || resp->versions == NULL))
		return WIRE_E_TRUNCATED;
	*size += 4;
	for (size_t i = 0; i < resp->nitems; i++) {
		if ((rc = check_word(&resp->items[i], false)) != 0)
			return rc;
		*size += 2 + resp->items[i].len + 4;
		if (*size > WIRE_MAX_RESPONSE)
			return WIRE_E_TOOBIG;
	}
	return 0;
}

static int response_ok_body(const struct wire_response *resp, size_t *size)
{
	int rc = 0;

	switch (resp->type) {
	case WIRE_PING:
		rc = str_body(&resp->value, STR16_MAX, size);
		break;
	case WIRE_GET:
		*size += 4;
		rc = blob_body(&resp->value, WIRE_MAX_VALUE, size);
		break;
	case WIRE_PUT:
	case WIRE_DELETE:
		*size += 4;
		break;
	case WIRE_LIST:
		rc = items_body(resp, false, size);
		break;
	case WIRE_WHOAMI:
	case WIRE_STATUS:
		rc = items_body(resp, true, size);
		break;
	case WIRE_WATCH:
		rc = pairs_body(resp, size);
		break;
	case WIRE_EVENT:
		if ((rc = check_word(&resp->name, false)) == 0)
			*size += 2 + resp->name.len + 4;
		break;
	default:
		rc = WIRE_E_TYPE;
		break;
	}
	return rc;
}

/* The body size of a response, or a negative wire_err if it cannot be sent. */
static int response_body(const struct wire_response *resp, size_t *size)
{
	int rc;

	*size = 3;
	if (!response_type_known(resp->type))
		return WIRE_E_TYPE;
	if (!status_known(resp->status))
		return WIRE_E_STATUS;
	if (resp->status != WIRE_OK)
		rc = str_body(&resp->value, WIRE_MAX_MESSAGE, size);
	else
		rc = response_ok_body(resp, size);
	if (rc == 0 && *size > WIRE_MAX_RESPONSE)
		rc = WIRE_E_TOOBIG;
	return rc;
}

size_t wire_request_size(const struct wire_request *req)
{
	size_t size;

	if (request_body(req, &size) != 0)
		return 0;
	return WIRE_HEADER_SIZE + size;
}

size_t wire_response_size(const struct wire_response *resp)
{
	size_t size;

	if (response_body(resp, &size) != 0)
		return 0;
	return WIRE_HEADER_SIZE + size;
}

/* The writer never checks space: the caller has already sized the frame. */
struct writer {
	uint8_t *p;
};

static void put_u8(struct writer *w, uint8_t v)
{
	*w->p++ = v;
}

static void put_u16(struct writer *w, size_t v)
{
	*w->p++ = (uint8_t)(v >> 8);
	*w->p++ = (uint8_t)v;
}

static void put_u32(struct writer *w, uint32_t v)
{
	*w->p++ = (uint8_t)(v >> 24);
	*w->p++ = (uint8_t)(v >> 16);
	*w->p++ = (uint8_t)(v >> 8);
	*w->p++ = (uint8_t)v;
}

static void put_bytes(struct writer *w, const struct wire_str *s)
{
	if (s->len > 0)
		memcpy(w->p, s->ptr, s->len);
	w->p += s->len;
}

static void put_str16(struct writer *w, const struct wire_str *s)
{
	put_u16(w, s->len);
	put_bytes(w, s);
}

static void put_blob32(struct writer *w, const struct wire_str *s)
{
	put_u32(w, (uint32_t)s->len);
	put_bytes(w, s);
}

static void write_request(struct writer *w, const struct wire_request *req)
{
	put_u8(w, wire_type_version(req->type));
	put_u8(w, req->type);
	switch (req->type) {
	case WIRE_GET:
		put_str16(w, &req->name);
		put_u32(w, req->version);
		break;
	case WIRE_PUT:
		put_str16(w, &req->name);
		put_blob32(w, &req->value);
		break;
	case WIRE_LIST:
	case WIRE_DELETE:
		put_str16(w, &req->name);
		break;
	case WIRE_WATCH:
		put_u16(w, req->nitems);
		for (size_t i = 0; i < req->nitems; i++)
			put_str16(w, &req->items[i]);
		break;
	default: /* PING, WHOAMI, STATUS: no fields */
		break;
	}
}

static void write_response(struct writer *w, const struct wire_response *resp)
{
	put_u8(w, wire_type_version(resp->type));
	put_u8(w, resp->type | WIRE_RESPONSE_BIT);
	put_u8(w, resp->status);
	if (resp->status != WIRE_OK) {
		put_str16(w, &resp->value);
		return;
	}
	switch (resp->type) {
	case WIRE_PING:
		put_str16(w, &resp->value);
		break;
	case WIRE_GET:
		put_u32(w, resp->version);
		put_blob32(w, &resp->value);
		break;
	case WIRE_PUT:
	case WIRE_DELETE:
		put_u32(w, resp->version);
		break;
	case WIRE_WATCH:
		put_u32(w, (uint32_t)resp->nitems);
		for (size_t i = 0; i < resp->nitems; i++) {
			put_str16(w, &resp->items[i]);
			put_u32(w, resp->versions[i]);
		}
		break;
	case WIRE_EVENT:
		put_str16(w, &resp->name);
		put_u32(w, resp->version);
		break;
	default: /* LIST, WHOAMI, STATUS */
		put_u32(w, (uint32_t)resp->nitems);
		for (size_t i = 0; i < resp->nitems; i++)
			put_str16(w, &resp->items[i]);
		break;
	}
}

long wire_encode_request(const struct wire_request *req, uint8_t *out, size_t cap)
{
	struct writer w = { out };
	size_t size;
	int rc;

	if ((rc = request_body(req, &size)) != 0)
		return rc;
	if (out == NULL || cap < WIRE_HEADER_SIZE + size)
		return WIRE_E_SPACE;
	put_u32(&w, (uint32_t)size);
	write_request(&w, req);
	return (long)(WIRE_HEADER_SIZE + size);
}

long wire_encode_response(const struct wire_response *resp, uint8_t *out, size_t cap)
{
	struct writer w = { out };
	size_t size;
	int rc;

	if ((rc = response_body(resp, &size)) != 0)
		return rc;
	if (out == NULL || cap < WIRE_HEADER_SIZE + size)
		return WIRE_E_SPACE;
	put_u32(&w, (uint32_t)size);
	write_response(&w, resp);
	return (long)(WIRE_HEADER_SIZE + size);
}

/* ---- names ------------------------------------------------------------- */

const char *wire_strerror(int err)
{
	switch (err) {
	case 0:
		return "no error";
	case WIRE_E_TRUNCATED:
		return "a field runs past the end of the message";
	case WIRE_E_TRAILING:
		return "unexpected bytes after the last field";
	case WIRE_E_VERSION:
		return "unsupported protocol version";
	case WIRE_E_TYPE:
		return "unknown message type";
	case WIRE_E_TOOBIG:
		return "a length exceeds the protocol maximum";
	case WIRE_E_EMPTY:
		return "empty message";
	case WIRE_E_SPACE:
		return "output buffer too small";
	case WIRE_E_STATUS:
		return "unknown status code";
	case WIRE_E_FIELD:
		return "a field holds a value the protocol does not allow";
	default:
		return "unknown protocol error";
	}
}

const char *wire_type_name(uint8_t type)
{
	switch (type) {
	case WIRE_PING:
		return "ping";
	case WIRE_GET:
		return "get";
	case WIRE_PUT:
		return "put";
	case WIRE_LIST:
		return "list";
	case WIRE_DELETE:
		return "rm"; /* the client command and the audit log's op */
	case WIRE_WHOAMI:
		return "whoami";
	case WIRE_WATCH:
		return "watch";
	case WIRE_STATUS:
		return "status";
	default:
		return NULL;
	}
}
