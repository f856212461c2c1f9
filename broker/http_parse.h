/*
 * The request parser of the metrics listener: one HTTP/1.x request head,
 * from untrusted bytes with an explicit length.  Only what the listener
 * serves is accepted: GET (or nothing), an origin-form target, HTTP/1.0 or
 * HTTP/1.1, header lines of visible characters with a name and a colon, no
 * body.  Pure, no allocation; fuzzed by tests/fuzz/fuzz_http.c.
 */
#ifndef SECRETD_HTTP_PARSE_H
#define SECRETD_HTTP_PARSE_H

#include <stddef.h>

/* A request head is refused beyond this many bytes (431). */
#define HTTP_MAX_REQUEST 4096

enum http_target { HTTP_TARGET_METRICS, HTTP_TARGET_HEALTHZ, HTTP_TARGET_OTHER };

struct http_request {
	enum http_target target;
	size_t head_len; /* bytes up to and including the blank line */
};

/*
 * Parse BUF[0..LEN).  Returns 0 when a whole head was parsed (REQ filled),
 * 1 when more bytes are needed (LEN < HTTP_MAX_REQUEST and nothing wrong
 * yet), or the HTTP status to answer with: 400 (malformed, or announcing
 * a body), 405 (a method other than GET), 431 (too large), 505 (a version
 * other than 1.0 and 1.1).
 */
int http_parse_request(const char *buf, size_t len, struct http_request *req);

#endif
