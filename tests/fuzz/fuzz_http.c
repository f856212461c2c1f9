/*
 * libFuzzer harness for the metrics listener's request parser: any bytes,
 * fed whole and then as every prefix a slow client could have sent so far.
 * Never a crash or a sanitizer report; the answer is always one of the
 * documented ones; a parsed head lies within the input and ends with a blank
 * line; and a prefix never gets a different verdict than "need more" unless
 * the whole input gets it too.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "http_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int verdict(const char *buf, size_t len, struct http_request *req)
{
	int st = http_parse_request(buf, len, req);

	if (st != 0 && st != 1 && st != 400 && st != 405 && st != 431 && st != 505)
		__builtin_trap();
	if (st == 0) {
		if (req->head_len < 4 || req->head_len > len || req->head_len > HTTP_MAX_REQUEST)
			__builtin_trap();
		if (buf[req->head_len - 1] != '\n' || req->target > HTTP_TARGET_OTHER)
			__builtin_trap();
	}
	return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	struct http_request req;
	int whole = verdict(buf, size, &req);

	for (size_t n = 0; n < size && n < 512; n++) {
		int part = verdict(buf, n, &req);
		/* A verdict on a prefix is final: more bytes cannot change it. */
		if (part != 1 && part != whole && !(part == 0 && whole == 0))
			__builtin_trap();
	}
	return 0;
}
