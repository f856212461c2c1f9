/*
 * The secretd wire protocol: frame layout, message types, status codes and
 * the one codec that both the broker and the client use.  proto/PROTOCOL.md
 * is the specification; bump WIRE_VERSION if any of these change.
 *
 * Decoding never trusts a terminator: every field is checked against the
 * length the frame declares, unknown types and trailing bytes are errors, and
 * decoded strings point into the caller's buffer (they are not terminated).
 */
#ifndef SECRETD_WIRE_H
#define SECRETD_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Version 2 added WATCH and EVENT, version 3 STATUS.  The version byte of a message is the
 * lowest protocol version that defines its type (wire_type_version), so
 * every version-1 message is still byte-identical and a version-1 peer keeps
 * working; any other version byte for a type is refused (one encoding each).
 */
#define WIRE_VERSION 3

/* A frame is a 4-byte big-endian body length followed by the body. */
#define WIRE_HEADER_SIZE 4

/* The largest value any broker accepts (max-secret-size can only lower it). */
#define WIRE_MAX_VALUE (1024u * 1024u)
/* A request body: a put of the largest value plus its small header. */
#define WIRE_MAX_REQUEST (WIRE_MAX_VALUE + 512u)
/* A response body: a list of many names is the largest answer. */
#define WIRE_MAX_RESPONSE (16u * 1024u * 1024u)
/* An error message in a response. */
#define WIRE_MAX_MESSAGE 1024u
/* WATCH: at most this many patterns, each 1..WIRE_MAX_PATTERN bytes. */
#define WIRE_MAX_PATTERNS 64u
#define WIRE_MAX_PATTERN 255u
/* A name in a WATCH answer or an EVENT: 1..WIRE_MAX_EVENT_NAME bytes. */
#define WIRE_MAX_EVENT_NAME 255u

/* Request types 0x01..0x3f; a response carries the same type | 0x80. */
enum wire_type {
	WIRE_PING = 0x01,
	WIRE_GET = 0x02,
	WIRE_PUT = 0x03,
	WIRE_LIST = 0x04,
	WIRE_DELETE = 0x05,
	WIRE_WHOAMI = 0x06,
	WIRE_WATCH = 0x07, /* since version 2 */
	WIRE_EVENT = 0x08, /* since version 2; response only (0x88), pushed */
	WIRE_STATUS = 0x09, /* since version 3: the broker's state, key=value pairs */
};
#define WIRE_RESPONSE_BIT 0x80

/* Status codes; where a client exit code exists the numbers are the same. */
enum wire_status {
	WIRE_OK = 0,
	WIRE_ERROR = 1,        /* the broker failed (integrity, I/O) */
	WIRE_INVALID = 2,      /* malformed request, bad name, value too large */
	WIRE_NOT_FOUND = 3,    /* only ever said to a caller allowed to read */
	WIRE_DENIED = 4,
	WIRE_UNAVAILABLE = 6,  /* vault sealed or audit log cannot be written */
	WIRE_RATE_LIMITED = 7, /* too many requests or connections from one identity */
};

/* Decoder results: 0 or one of these (negative). */
enum wire_err {
	WIRE_E_TRUNCATED = -1, /* a field runs past the end of the body */
	WIRE_E_TRAILING = -2,  /* bytes left after the last field */
	WIRE_E_VERSION = -3,   /* protocol version not WIRE_VERSION */
	WIRE_E_TYPE = -4,      /* unknown message type */
	WIRE_E_TOOBIG = -5,    /* a length beyond the protocol's maximum */
	WIRE_E_EMPTY = -6,     /* zero-length frame */
	WIRE_E_SPACE = -7,     /* encoder: output buffer too small */
	WIRE_E_STATUS = -8,    /* unknown status code */
	WIRE_E_FIELD = -9,     /* a field the protocol does not allow: an empty
				* pattern or name, a zero count, a bad byte */
};

/* A length-carrying byte string; never assumed to be terminated. */
struct wire_str {
	const uint8_t *ptr;
	size_t len;
};

struct wire_request {
	uint8_t type;           /* enum wire_type */
	struct wire_str name;   /* GET PUT DELETE: the name; LIST: glob (may be empty) */
	uint32_t version;       /* GET: 0 = latest */
	struct wire_str value;  /* PUT: the value (secret: wipe the buffer) */
	/*
	 * WATCH: the patterns.  For encoding, `items` points at nitems strings;
	 * decoding leaves `items` NULL and sets `items_raw` to the validated
	 * encoded patterns, walked with wire_items_next().
	 */
	const struct wire_str *items;
	size_t nitems;
	struct wire_str items_raw;
};

struct wire_response {
	uint8_t type;          /* the request type answered (without the 0x80 bit) */
	uint8_t status;        /* enum wire_status */
	uint32_t version;      /* GET, PUT: version; DELETE: versions removed;
				* EVENT: the new version, 0 = deleted */
	struct wire_str value; /* GET: value; PING: server banner; status != OK: message */
	struct wire_str name;  /* EVENT: the name that changed */
	/*
	 * LIST: names; WHOAMI, STATUS: key, value, key, value ...; WATCH: names, with
	 * versions[i] the version of items[i].  For encoding, `items` (and for
	 * WATCH `versions`) point at nitems entries.  Decoding leaves both NULL
	 * and sets `items_raw` to the validated encoded list, walked with
	 * wire_items_next() (LIST, WHOAMI, STATUS) or wire_pairs_next() (WATCH).
	 */
	const struct wire_str *items;
	const uint32_t *versions;
	size_t nitems;
	struct wire_str items_raw;
};

/* The body length a header declares; WIRE_E_EMPTY or WIRE_E_TOOBIG past max. */
int wire_frame_length(const uint8_t header[WIRE_HEADER_SIZE], uint32_t max,
		      uint32_t *len);

/* Sizes of the whole frame (header included) an encoder will write. */
size_t wire_request_size(const struct wire_request *req);
size_t wire_response_size(const struct wire_response *resp);

/* Write a whole frame into out; returns bytes written or WIRE_E_SPACE/TOOBIG. */
long wire_encode_request(const struct wire_request *req, uint8_t *out, size_t cap);
long wire_encode_response(const struct wire_response *resp, uint8_t *out, size_t cap);

/* Decode a frame body (without the 4-byte header).  0 or a wire_err. */
int wire_decode_request(const uint8_t *body, size_t len, struct wire_request *req);
int wire_decode_response(const uint8_t *body, size_t len, struct wire_response *resp);

/* Next string of a decoded items_raw; false when none is left. */
bool wire_items_next(struct wire_str *cursor, struct wire_str *item);
/* Next (name, version) of a decoded WATCH items_raw; false when none is left. */
bool wire_pairs_next(struct wire_str *cursor, struct wire_str *name, uint32_t *version);

/* The protocol version that defines a type (the byte its messages carry), 0 if none. */
uint8_t wire_type_version(uint8_t type);

/* A short English description of a wire_err, for messages. */
const char *wire_strerror(int err);
/* The name of a request type ("get", "watch"), or NULL if unknown (EVENT is none). */
const char *wire_type_name(uint8_t type);

#endif
